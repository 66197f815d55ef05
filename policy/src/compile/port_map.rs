//! Functions over (IP protocol, destination port): the compiler's working form of
//! "what happens to a new flow to this peer", before it is encoded as LPM rows.
//!
//! A [`PortMap`] is total: it has a value for every protocol number and every port.
//! Policy sources produce maps (a NetworkPolicy rule: "this rule on these ports, nothing
//! elsewhere") and combine them pointwise with [`PortMap::zip_with`]; that is how rules
//! form a union today, and how tiers, narrowing allowlists and audit mode combine
//! tomorrow, without the encoder knowing where a value came from.

use super::ports::PortRange;
use std::collections::BTreeMap;

/// A total function from (protocol, port) to `T`, kept in a canonical form so that two
/// maps are equal exactly when they agree everywhere.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PortMap<T> {
    /// Value for every protocol that has no entry in `by_protocol`.
    other: T,
    /// Protocols whose value depends on the port or differs from `other`.
    by_protocol: BTreeMap<u8, Steps<T>>,
}

/// A step function over ports `0..=65535`: `(start, value)` pairs, the first at port 0,
/// starts strictly increasing, neighbours with different values.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Steps<T>(Vec<(u16, T)>);

impl<T: Clone + Eq> PortMap<T> {
    /// `value` for every protocol and port.
    pub fn constant(value: T) -> Self {
        Self {
            other: value,
            by_protocol: BTreeMap::new(),
        }
    }

    /// `inside` on `range` of `protocol`, `outside` everywhere else.
    pub fn on_range(protocol: u8, range: PortRange, inside: T, outside: T) -> Self {
        let mut steps = Vec::with_capacity(3);
        if range.first() > 0 {
            steps.push((0, outside.clone()));
        }
        steps.push((range.first(), inside));
        if let Some(after) = range.last().checked_add(1) {
            steps.push((after, outside.clone()));
        }
        let mut map = Self::constant(outside);
        map.by_protocol.insert(protocol, Steps::merged(steps));
        map.canonicalize();
        map
    }

    /// The pointwise combination `f(self(p, port), other(p, port))`.
    pub fn zip_with<U: Clone + Eq, V: Clone + Eq>(
        &self,
        other: &PortMap<U>,
        f: impl Fn(&T, &U) -> V,
    ) -> PortMap<V> {
        let mut protocols: Vec<u8> = self.by_protocol.keys().copied().collect();
        protocols.extend(other.by_protocol.keys().copied());
        protocols.sort_unstable();
        protocols.dedup();

        let mut zipped = PortMap::constant(f(&self.other, &other.other));
        for protocol in protocols {
            let left = self.steps_of(protocol);
            let right = other.steps_of(protocol);
            zipped
                .by_protocol
                .insert(protocol, Steps::zip(&left, &right, &f));
        }
        zipped.canonicalize();
        zipped
    }

    /// The pointwise image `f(self(p, port))`.
    pub fn map<U: Clone + Eq>(&self, f: impl Fn(&T) -> U) -> PortMap<U> {
        let mut mapped = PortMap::constant(f(&self.other));
        for (protocol, steps) in &self.by_protocol {
            let image = steps.0.iter().map(|(start, v)| (*start, f(v))).collect();
            mapped.by_protocol.insert(*protocol, Steps::merged(image));
        }
        mapped.canonicalize();
        mapped
    }

    /// The value for every protocol [`PortMap::protocols`] does not list.
    pub fn other(&self) -> &T {
        &self.other
    }

    /// The protocols whose value differs from [`PortMap::other`] somewhere, each with
    /// its maximal runs of equal values, lowest ports first.
    pub fn protocols(&self) -> impl Iterator<Item = (u8, Vec<(PortRange, &T)>)> {
        self.by_protocol
            .iter()
            .map(|(protocol, steps)| (*protocol, steps.runs()))
    }

    /// The value for one protocol and port.
    #[cfg(test)]
    pub fn get(&self, protocol: u8, port: u16) -> &T {
        match self.by_protocol.get(&protocol) {
            None => &self.other,
            Some(steps) => {
                let i = steps.0.partition_point(|(start, _)| *start <= port);
                // `steps` starts at port 0, so `i >= 1`.
                &steps.0[i.saturating_sub(1)].1
            }
        }
    }

    /// The steps of `protocol`, a single constant one when it has none of its own.
    fn steps_of(&self, protocol: u8) -> Steps<T> {
        self.by_protocol
            .get(&protocol)
            .cloned()
            .unwrap_or_else(|| Steps(vec![(0, self.other.clone())]))
    }

    /// Drops the protocols that are constant and equal to `other`.
    fn canonicalize(&mut self) {
        let other = &self.other;
        self.by_protocol
            .retain(|_, steps| !(steps.0.len() == 1 && steps.0[0].1 == *other));
    }
}

impl<T: Clone + Eq> Steps<T> {
    /// Steps from `(start, value)` pairs sorted by start (the first at 0), with
    /// neighbours of equal value merged.
    fn merged(pairs: Vec<(u16, T)>) -> Self {
        let mut steps: Vec<(u16, T)> = Vec::with_capacity(pairs.len());
        for (start, value) in pairs {
            if steps.last().is_none_or(|(_, last)| *last != value) {
                steps.push((start, value));
            }
        }
        Steps(steps)
    }

    fn zip<U, V: Clone + Eq>(
        left: &Steps<T>,
        right: &Steps<U>,
        f: impl Fn(&T, &U) -> V,
    ) -> Steps<V> {
        let (left, right) = (&left.0, &right.0);
        let mut pairs = Vec::with_capacity(left.len() + right.len());
        let (mut i, mut j) = (0, 0);
        while i < left.len() && j < right.len() {
            let start = left[i].0.max(right[j].0);
            pairs.push((start, f(&left[i].1, &right[j].1)));
            match (left.get(i + 1), right.get(j + 1)) {
                (None, None) => break,
                (Some(_), None) => i += 1,
                (None, Some(_)) => j += 1,
                (Some((next_left, _)), Some((next_right, _))) => {
                    if next_left <= next_right {
                        i += 1;
                    }
                    if next_right <= next_left {
                        j += 1;
                    }
                }
            }
        }
        Steps::merged(pairs)
    }

    /// Maximal runs of equal values as inclusive port ranges.
    fn runs(&self) -> Vec<(PortRange, &T)> {
        let steps = &self.0;
        steps
            .iter()
            .enumerate()
            .filter_map(|(i, (start, value))| {
                let last = match steps.get(i + 1) {
                    Some((next, _)) => next.checked_sub(1)?,
                    None => u16::MAX,
                };
                Some((PortRange::new(*start, last)?, value))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: u8 = 6;
    const UDP: u8 = 17;

    fn range(first: u16, last: u16) -> PortRange {
        PortRange::new(first, last).unwrap()
    }

    fn union(a: &PortMap<bool>, b: &PortMap<bool>) -> PortMap<bool> {
        a.zip_with(b, |x, y| *x || *y)
    }

    #[test]
    fn ranges_hold_their_value_inside_only() {
        let m = PortMap::on_range(TCP, range(80, 90), true, false);
        assert!(!m.get(TCP, 79));
        assert!(m.get(TCP, 80));
        assert!(m.get(TCP, 90));
        assert!(!m.get(TCP, 91));
        assert!(!m.get(UDP, 80));
        assert!(!m.get(1, 0));
    }

    #[test]
    fn ranges_at_the_edges_of_the_port_space() {
        let m = PortMap::on_range(TCP, range(0, 10), true, false);
        assert!(*m.get(TCP, 0) && !m.get(TCP, 11));
        let m = PortMap::on_range(TCP, range(65530, 65535), true, false);
        assert!(*m.get(TCP, 65535) && !m.get(TCP, 65529));
        // A whole protocol is one run.
        let m = PortMap::on_range(TCP, PortRange::ALL, true, false);
        let runs: Vec<_> = m.protocols().collect();
        assert_eq!(runs, vec![(TCP, vec![(PortRange::ALL, &true)])]);
    }

    #[test]
    fn unions_merge_overlapping_and_adjacent_ranges() {
        let a = PortMap::on_range(TCP, range(80, 90), true, false);
        let b = PortMap::on_range(TCP, range(91, 100), true, false);
        let c = PortMap::on_range(TCP, range(85, 95), true, false);
        let u = union(&union(&a, &b), &c);
        let runs: Vec<_> = u.protocols().collect();
        assert_eq!(
            runs,
            vec![(
                TCP,
                vec![
                    (range(0, 79), &false),
                    (range(80, 100), &true),
                    (range(101, 65535), &false),
                ]
            )]
        );
    }

    #[test]
    fn equal_functions_are_equal_values() {
        // Built two different ways, the same function.
        let whole = PortMap::on_range(TCP, range(0, 65535), true, false);
        let halves = union(
            &PortMap::on_range(TCP, range(0, 99), true, false),
            &PortMap::on_range(TCP, range(100, 65535), true, false),
        );
        assert_eq!(whole, halves);
        // A protocol equal to `other` everywhere is not listed.
        let all = union(&whole, &PortMap::constant(true));
        assert_eq!(all, PortMap::constant(true));
        assert_eq!(all.protocols().count(), 0);
    }

    #[test]
    fn map_and_zip_keep_every_point() {
        let a = PortMap::on_range(TCP, range(10, 20), 1u8, 0);
        let b = PortMap::on_range(UDP, range(15, 25), 2u8, 0);
        let sum = a.zip_with(&b, |x, y| x + y).map(|v| v * 10);
        for port in [0, 9, 10, 15, 20, 21, 25, 26, 65535] {
            for protocol in [TCP, UDP, 132] {
                let expected = (a.get(protocol, port) + b.get(protocol, port)) * 10;
                assert_eq!(*sum.get(protocol, port), expected, "{protocol}/{port}");
            }
        }
    }
}
