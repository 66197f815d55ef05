//! The per-group summary table both conformance reports open with: one row for the
//! whole suite, then one indented row per upstream test group, in the order the groups
//! first appear, with the name column as wide as its widest entry.

/// The rows of a summary table and the width of its name column.
pub struct GroupRows<T> {
    /// `(name, tally)`: the suite's total first, then each group's, indented.
    pub rows: Vec<(String, T)>,
    /// The width of the name column: the longest name, or the column's header.
    pub name_width: usize,
}

/// Tallies `cases` into one row for `suite` and one row per group (`group_of`), in the
/// order the groups first appear, with `add` counting a case into a tally.
/// `name_header` is the name column's header, which the column is at least as wide as.
pub fn group_rows<'c, C: 'c, T: Default>(
    suite: &str,
    name_header: &str,
    cases: impl IntoIterator<Item = &'c C>,
    group_of: impl Fn(&C) -> &str,
    add: impl Fn(&mut T, &C),
) -> GroupRows<T> {
    let mut total = T::default();
    let mut groups: Vec<(String, T)> = Vec::new();
    for case in cases {
        add(&mut total, case);
        let group = group_of(case);
        match groups.iter_mut().find(|(name, _)| name == group) {
            Some((_, tally)) => add(tally, case),
            None => {
                let mut tally = T::default();
                add(&mut tally, case);
                groups.push((group.to_string(), tally));
            }
        }
    }
    let rows: Vec<(String, T)> = std::iter::once((suite.to_string(), total))
        .chain(
            groups
                .into_iter()
                .map(|(group, tally)| (format!("  {group}"), tally)),
        )
        .collect();
    let name_width = rows
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0)
        .max(name_header.len());
    GroupRows { rows, name_width }
}
