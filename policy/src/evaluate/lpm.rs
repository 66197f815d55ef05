//! Longest-prefix match over fixed-size byte keys, as the kernel's LPM trie does it:
//! a key matches an entry when the entry's first `prefix_len` bits equal the key's,
//! and the longest matching entry wins. Bits past an entry's prefix are ignored, so
//! inserting the same prefix twice replaces the value, as a map update does.
//!
//! One hash map per prefix length, probed longest first: a lookup costs at most one
//! probe per distinct length (a few dozen in practice), which is plenty for tests over
//! hundreds of thousands of entries.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

#[derive(Clone, Debug)]
pub(crate) struct LpmTable<const N: usize, V> {
    by_len: BTreeMap<Reverse<u32>, HashMap<[u8; N], V>>,
}

impl<const N: usize, V> Default for LpmTable<N, V> {
    fn default() -> Self {
        Self {
            by_len: BTreeMap::new(),
        }
    }
}

impl<const N: usize, V> LpmTable<N, V> {
    /// Inserts `key/prefix_len`; a `prefix_len` past the key counts as the whole key.
    pub fn insert(&mut self, key: [u8; N], prefix_len: u32, value: V) {
        let prefix_len = prefix_len.min(Self::KEY_BITS);
        self.by_len
            .entry(Reverse(prefix_len))
            .or_default()
            .insert(masked(key, prefix_len), value);
    }

    /// The value of the longest prefix containing `key`.
    pub fn lookup(&self, key: &[u8; N]) -> Option<&V> {
        self.by_len
            .iter()
            .find_map(|(Reverse(len), entries)| entries.get(&masked(*key, *len)))
    }

    const KEY_BITS: u32 = N as u32 * 8;
}

/// `key` with every bit past the first `prefix_len` cleared.
fn masked<const N: usize>(mut key: [u8; N], prefix_len: u32) -> [u8; N] {
    for (i, byte) in key.iter_mut().enumerate() {
        let first_bit = i as u32 * 8;
        if prefix_len <= first_bit {
            *byte = 0;
        } else if prefix_len < first_bit + 8 {
            *byte &= 0xff << (8 - (prefix_len - first_bit));
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let mut t = LpmTable::<2, &str>::default();
        t.insert([0x0a, 0x00], 8, "10/8");
        t.insert([0x0a, 0x80], 9, "10.128/9");
        t.insert([0x00, 0x00], 0, "default");
        assert_eq!(t.lookup(&[0x0a, 0x01]), Some(&"10/8"));
        assert_eq!(t.lookup(&[0x0a, 0xff]), Some(&"10.128/9"));
        assert_eq!(t.lookup(&[0x0b, 0x00]), Some(&"default"));
    }

    #[test]
    fn bits_past_the_prefix_are_ignored() {
        let mut t = LpmTable::<2, u8>::default();
        t.insert([0x0a, 0xff], 8, 1);
        t.insert([0x0a, 0x00], 8, 2);
        assert_eq!(t.lookup(&[0x0a, 0x42]), Some(&2));
        assert_eq!(t.lookup(&[0x0b, 0x42]), None);
        t.insert([0x0a, 0x42], 99, 3);
        assert_eq!(t.lookup(&[0x0a, 0x42]), Some(&3));
    }

    #[test]
    fn masks_within_bytes() {
        assert_eq!(masked([0xff, 0xff], 0), [0, 0]);
        assert_eq!(masked([0xff, 0xff], 3), [0xe0, 0]);
        assert_eq!(masked([0xff, 0xff], 12), [0xff, 0xf0]);
        assert_eq!(masked([0xff, 0xff], 16), [0xff, 0xff]);
    }
}
