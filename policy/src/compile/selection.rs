//! Which policies of one source apply to one endpoint in one direction: positions in
//! that source's index, in its evaluation order. Endpoints with equal selections (and
//! equal other inputs) share their compiled rows.

/// Positions of the selected policies, ascending. Empty: the source says nothing about
/// the endpoint in this direction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Selection(Vec<usize>);

impl Selection {
    /// The positions `selected` yields, which must be ascending.
    pub fn new(selected: impl IntoIterator<Item = usize>) -> Self {
        let positions: Vec<usize> = selected.into_iter().collect();
        debug_assert!(positions.windows(2).all(|w| w[0] < w[1]));
        Self(positions)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn positions(&self) -> &[usize] {
        &self.0
    }
}
