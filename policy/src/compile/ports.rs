//! Destination-port ranges: what a policy `ports` entry names, and the exact cover of a
//! range by the port prefixes a `PALISADE_POLICY` key can hold.

use crate::model::{PortRef, PortSpec};

/// An inclusive, non-empty range of destination ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// Every port, 0 included.
    pub const ALL: PortRange = PortRange {
        first: 0,
        last: u16::MAX,
    };

    /// `first..=last`, or None if the range is empty (`last < first`).
    pub fn new(first: u16, last: u16) -> Option<Self> {
        (first <= last).then_some(Self { first, last })
    }

    pub fn single(port: u16) -> Self {
        Self {
            first: port,
            last: port,
        }
    }

    pub fn first(self) -> u16 {
        self.first
    }

    pub fn last(self) -> u16 {
        self.last
    }

    /// The aligned power-of-two blocks that together cover exactly this range, lowest
    /// first. This is the smallest such set: `1000..=2000` needs 8 blocks, `1..=65535`
    /// needs 16, a single port or [`PortRange::ALL`] needs 1.
    pub fn prefixes(self) -> impl Iterator<Item = PortPrefix> {
        let last = u32::from(self.last);
        let mut next = u32::from(self.first);
        std::iter::from_fn(move || {
            if next > last {
                return None;
            }
            // The largest block that starts at `next` (alignment) and ends by `last`.
            let mut bits = next.trailing_zeros().min(16);
            while next + (1 << bits) - 1 > last {
                bits -= 1;
            }
            let prefix = PortPrefix {
                // `next <= last <= u16::MAX` here.
                port: next as u16,
                len: 16 - bits as u8,
            };
            next += 1 << bits;
            Some(prefix)
        })
    }
}

/// `port/len`: the ports whose `len` leading bits (of 16) equal those of `port`.
/// Bits of `port` past `len` are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PortPrefix {
    pub port: u16,
    pub len: u8,
}

/// The ports a policy `ports` entry names on a pod whose named ports `resolve` looks up
/// (`resolve(name)` gives the number of the pod's container port of that name and of
/// `spec.protocol`). None when the entry names no port: a name the pod does not declare,
/// or an inverted range.
///
/// `end_port` only extends a numeric `port` (the Kubernetes API rejects it elsewhere);
/// with a named port or no port it is ignored.
pub(crate) fn spec_range(
    spec: &PortSpec,
    resolve: impl FnOnce(&str) -> Option<u16>,
) -> Option<PortRange> {
    match &spec.port {
        None => Some(PortRange::ALL),
        Some(PortRef::Number(port)) => match spec.end_port {
            Some(end) => PortRange::new(*port, end),
            None => Some(PortRange::single(*port)),
        },
        Some(PortRef::Name(name)) => resolve(name).map(PortRange::single),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn prefixes(first: u16, last: u16) -> Vec<(u16, u8)> {
        PortRange::new(first, last)
            .unwrap()
            .prefixes()
            .map(|p| (p.port, p.len))
            .collect()
    }

    /// Every port the prefixes cover, in order, for comparison with the range.
    fn covered(first: u16, last: u16) -> Vec<u16> {
        PortRange::new(first, last)
            .unwrap()
            .prefixes()
            .flat_map(|p| {
                let size = 1u32 << (16 - p.len);
                (0..size).map(move |i| (u32::from(p.port) + i) as u16)
            })
            .collect()
    }

    #[test]
    fn single_ports_and_everything_are_one_prefix() {
        assert_eq!(prefixes(80, 80), vec![(80, 16)]);
        assert_eq!(prefixes(0, 0), vec![(0, 16)]);
        assert_eq!(prefixes(65535, 65535), vec![(65535, 16)]);
        assert_eq!(prefixes(0, 65535), vec![(0, 0)]);
    }

    #[test]
    fn ranges_decompose_into_aligned_blocks() {
        assert_eq!(
            prefixes(1000, 2000),
            vec![
                (1000, 13),
                (1008, 12),
                (1024, 7),
                (1536, 8),
                (1792, 9),
                (1920, 10),
                (1984, 12),
                (2000, 16),
            ]
        );
        let all_but_zero = prefixes(1, 65535);
        assert_eq!(all_but_zero.len(), 16);
        assert_eq!(all_but_zero[0], (1, 16));
        assert_eq!(all_but_zero[15], (32768, 1));
        assert_eq!(prefixes(0, 65534).len(), 16);
        assert_eq!(prefixes(8000, 8079), vec![(8000, 10), (8064, 12)]);
    }

    #[test]
    fn prefixes_cover_exactly_the_range() {
        for (first, last) in [
            (1000, 2000),
            (1, 65535),
            (0, 65534),
            (3, 17),
            (65000, 65535),
        ] {
            let expected: Vec<u16> = (first..=last).collect();
            assert_eq!(covered(first, last), expected, "{first}..={last}");
        }
    }

    #[test]
    fn inverted_ranges_are_empty() {
        assert_eq!(PortRange::new(2000, 1000), None);
    }

    #[test]
    fn specs_resolve_numbers_names_and_ranges() {
        let spec = |port, end_port| PortSpec {
            protocol: Protocol::Tcp,
            port,
            end_port,
        };
        let resolve = |name: &str| (name == "http").then_some(8080);
        assert_eq!(spec_range(&spec(None, None), resolve), Some(PortRange::ALL));
        assert_eq!(
            spec_range(&spec(Some(PortRef::Number(80)), None), resolve),
            Some(PortRange::single(80))
        );
        assert_eq!(
            spec_range(&spec(Some(PortRef::Number(80)), Some(90)), resolve),
            PortRange::new(80, 90)
        );
        assert_eq!(
            spec_range(&spec(Some(PortRef::Number(90)), Some(80)), resolve),
            None
        );
        assert_eq!(
            spec_range(
                &spec(Some(PortRef::Name("http".into())), Some(9000)),
                resolve
            ),
            Some(PortRange::single(8080))
        );
        assert_eq!(
            spec_range(&spec(Some(PortRef::Name("grpc".into())), None), resolve),
            None
        );
    }
}
