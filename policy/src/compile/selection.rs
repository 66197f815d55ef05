//! Which policies of one source apply to one endpoint in one direction: positions in
//! that source's index, in its evaluation order. Endpoints with equal selections (and
//! equal other inputs) share their compiled rows.

/// Positions of the selected policies, in evaluation order (for cluster policies the
/// positions ascend; namespaced policies keep stable positions, listed in key order).
/// Empty: the source says nothing about the endpoint in this direction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Selection(Vec<usize>);

impl Selection {
    /// The positions `selected` yields, in evaluation order, each once.
    pub fn new(selected: impl IntoIterator<Item = usize>) -> Self {
        Self(selected.into_iter().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn positions(&self) -> &[usize] {
        &self.0
    }
}
