//! ipBlocks, the prefix set they induce in the ip cache, and which blocks an address or
//! a prefix falls in ("membership"). A block is a NetworkPolicy `ipBlock`, one CIDR of
//! a cluster policy's `networks` peer (a block without excepts) or an EgressPolicy
//! `cidr` with its `except`; one that several name is one block.
//!
//! The ip cache resolves an address to the identity of the longest prefix that contains
//! it. Putting every `cidr` and every `except` network of every block into the cache
//! makes that resolution exact: if `P` is the longest listed prefix containing address
//! `a`, then for every block `B`, `a ∈ B` iff `P ⊆ B.cidr` and `P ⊄ e` for every except
//! `e` of `B` (listed prefixes containing one address are nested, so `a ∈ N` iff
//! `P ⊆ N` for every listed `N`). [`IpBlocks::membership_of_prefix`] is that test.
//!
//! Addresses and prefixes are canonical: host bits cleared and IPv4-mapped IPv6
//! (`::ffff:a.b.c.d`) written as IPv4, because the kernel's single trie stores IPv4 in
//! exactly that mapped form and cannot tell the two apart.

use crate::model::{Cidr, Cluster, ClusterPeer, EgressPeer, Peer};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// An ipBlock with canonical networks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct IpBlock {
    cidr: IpNet,
    /// Sorted, without duplicates.
    except: Vec<IpNet>,
}

impl IpBlock {
    pub fn new(cidr: Cidr, except: &[Cidr]) -> Self {
        let mut except: Vec<IpNet> = except.iter().map(|e| canonical_net(e.0)).collect();
        except.sort_unstable();
        except.dedup();
        Self {
            cidr: canonical_net(cidr.0),
            except,
        }
    }

    /// Whether every address of `prefix` is in the block.
    fn contains_prefix(&self, prefix: &IpNet) -> bool {
        self.cidr.contains(prefix) && !self.except.iter().any(|e| e.contains(prefix))
    }

    fn networks(&self) -> impl Iterator<Item = IpNet> + '_ {
        std::iter::once(self.cidr).chain(self.except.iter().copied())
    }
}

/// Identity label: `cidr:10.0.0.0/8`, or with excepts
/// `cidr-except:10.0.0.0/8 -10.1.0.0/16 -10.2.0.0/16`.
impl fmt::Display for IpBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.except.is_empty() {
            return write!(f, "cidr:{}", self.cidr);
        }
        write!(f, "cidr-except:{}", self.cidr)?;
        for e in &self.except {
            write!(f, " -{e}")?;
        }
        Ok(())
    }
}

/// Index of a block in [`IpBlocks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct BlockId(usize);

/// The blocks an address, or every address of a prefix, is in.
pub(crate) type Membership = BTreeSet<BlockId>;

/// Every distinct block of every policy, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IpBlocks {
    blocks: Vec<IpBlock>,
    /// Each network of `blocks` with the range of the blocks that have it (adjacent:
    /// blocks sort by network first).
    networks: Vec<(IpNet, std::ops::Range<usize>)>,
}

impl IpBlocks {
    fn of(blocks: Vec<IpBlock>) -> Self {
        let mut networks: Vec<(IpNet, std::ops::Range<usize>)> = Vec::new();
        for (i, block) in blocks.iter().enumerate() {
            match networks.last_mut() {
                Some((network, range)) if *network == block.cidr => range.end = i + 1,
                _ => networks.push((block.cidr, i..i + 1)),
            }
        }
        Self { blocks, networks }
    }

    pub fn collect(cluster: &Cluster) -> Self {
        let ip_blocks = cluster
            .network_policies
            .values()
            .flat_map(|p| p.ingress.iter().chain(&p.egress))
            .flat_map(|rule| &rule.peers)
            .filter_map(|peer| match peer {
                Peer::IpBlock { cidr, except } => Some(IpBlock::new(*cidr, except)),
                Peer::Pods { .. } => None,
            });
        let networks = cluster
            .cluster_policies
            .values()
            .flat_map(|p| p.ingress.iter().chain(&p.egress))
            .flat_map(|rule| &rule.peers)
            .filter_map(|peer| match peer {
                ClusterPeer::Networks(cidrs) => Some(cidrs),
                _ => None,
            })
            .flatten()
            .map(|cidr| IpBlock::new(*cidr, &[]));
        let egress_cidrs = cluster
            .egress_policies
            .values()
            .flat_map(|p| &p.egress)
            .flat_map(|rule| &rule.to)
            .filter_map(|peer| match peer {
                EgressPeer::Cidr { cidr, except } => Some(IpBlock::new(*cidr, except)),
                _ => None,
            });
        let mut blocks: Vec<IpBlock> = ip_blocks.chain(networks).chain(egress_cidrs).collect();
        blocks.sort_unstable();
        blocks.dedup();
        Self::of(blocks)
    }

    /// The id of the block a policy peer names (a `networks` CIDR: no excepts), if it
    /// is one [`IpBlocks::collect`] saw.
    pub fn id_of(&self, cidr: Cidr, except: &[Cidr]) -> Option<BlockId> {
        self.blocks
            .binary_search(&IpBlock::new(cidr, except))
            .ok()
            .map(BlockId)
    }

    pub fn get(&self, id: BlockId) -> Option<&IpBlock> {
        self.blocks.get(id.0)
    }

    pub fn membership_of_addr(&self, addr: IpAddr) -> Membership {
        self.membership_of_prefix(&host_net(addr))
    }

    /// The blocks any of `addresses` is in.
    pub fn membership_of_any(&self, addresses: &[IpAddr]) -> Membership {
        addresses
            .iter()
            .flat_map(|addr| self.membership_of_addr(*addr))
            .collect()
    }

    pub fn membership_of_prefix(&self, prefix: &IpNet) -> Membership {
        // A network that does not contain the prefix is skipped with all its blocks
        // (every pod address is checked against every block).
        self.networks
            .iter()
            .filter(|(network, _)| network.contains(prefix))
            .flat_map(|(_, range)| range.clone())
            .filter(|i| self.blocks[*i].contains_prefix(prefix))
            .map(BlockId)
            .collect()
    }

    /// The prefixes the ip cache needs for LPM to resolve every address to a prefix of
    /// the same membership: every network the blocks name, plus `0.0.0.0/0` when an
    /// IPv6 prefix covers the IPv4-mapped range (so IPv4 addresses, stored mapped, never
    /// resolve to an IPv6 prefix).
    pub fn prefixes(&self) -> BTreeSet<IpNet> {
        let mut prefixes: BTreeSet<IpNet> =
            self.blocks.iter().flat_map(IpBlock::networks).collect();
        let mapped = IpNet::V6(Ipv6Net::new_assert(
            Ipv4Addr::UNSPECIFIED.to_ipv6_mapped(),
            96,
        ));
        if prefixes.iter().any(|p| p.contains(&mapped)) {
            prefixes.insert(IpNet::V4(Ipv4Net::default()));
        }
        prefixes
    }
}

/// `addr/32` or `addr/128`, canonical.
pub(crate) fn host_net(addr: IpAddr) -> IpNet {
    IpNet::from(addr.to_canonical())
}

/// Host bits cleared; an IPv6 prefix inside `::ffff:0:0/96` written as IPv4.
pub(crate) fn canonical_net(net: IpNet) -> IpNet {
    match net.trunc() {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::V4(Ipv4Net::new_assert(v4, v6.prefix_len() - 96)),
            None => IpNet::V6(v6),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        Cidr(s.parse().unwrap())
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn blocks(list: &[(&str, &[&str])]) -> IpBlocks {
        let mut blocks: Vec<IpBlock> = list
            .iter()
            .map(|(c, ex)| {
                let ex: Vec<Cidr> = ex.iter().map(|e| cidr(e)).collect();
                IpBlock::new(cidr(c), &ex)
            })
            .collect();
        blocks.sort_unstable();
        blocks.dedup();
        IpBlocks::of(blocks)
    }

    fn ids(blocks: &IpBlocks, list: &[(&str, &[&str])]) -> Membership {
        list.iter()
            .map(|(c, ex)| {
                let ex: Vec<Cidr> = ex.iter().map(|e| cidr(e)).collect();
                blocks.id_of(cidr(c), &ex).unwrap()
            })
            .collect()
    }

    #[test]
    fn networks_are_canonical() {
        assert_eq!(canonical_net(net("10.0.1.1/4")), net("0.0.0.0/4"));
        assert_eq!(
            canonical_net(net("::ffff:10.1.0.0/112")),
            net("10.1.0.0/16")
        );
        assert_eq!(canonical_net(net("fd00::1/64")), net("fd00::/64"));
        assert_eq!(
            host_net("::ffff:1.2.3.4".parse().unwrap()),
            net("1.2.3.4/32")
        );
    }

    #[test]
    fn excepts_punch_holes() {
        let spec: &[(&str, &[&str])] = &[("10.0.0.0/8", &["10.1.0.0/16"]), ("10.0.0.0/8", &[])];
        let b = blocks(spec);
        let both = ids(&b, spec);
        let plain = ids(&b, &spec[1..]);
        assert_eq!(b.membership_of_addr("10.2.0.1".parse().unwrap()), both);
        assert_eq!(b.membership_of_addr("10.1.0.1".parse().unwrap()), plain);
        assert!(b.membership_of_addr("11.0.0.1".parse().unwrap()).is_empty());
        // Prefix memberships agree with the addresses they resolve.
        assert_eq!(b.membership_of_prefix(&net("10.0.0.0/8")), both);
        assert_eq!(b.membership_of_prefix(&net("10.1.0.0/16")), plain);
        assert_eq!(
            b.prefixes().into_iter().collect::<Vec<_>>(),
            vec![net("10.0.0.0/8"), net("10.1.0.0/16")]
        );
    }

    #[test]
    fn families_do_not_mix() {
        let b = blocks(&[("::/0", &[])]);
        assert!(b.membership_of_addr("8.8.8.8".parse().unwrap()).is_empty());
        assert_eq!(
            b.membership_of_addr("2001:db8::1".parse().unwrap()).len(),
            1
        );
        // An IPv6 prefix covering the mapped range brings 0.0.0.0/0 along.
        assert!(b.prefixes().contains(&net("0.0.0.0/0")));
        assert!(b.membership_of_prefix(&net("0.0.0.0/0")).is_empty());
        let b = blocks(&[("fd00::/8", &[])]);
        assert!(!b.prefixes().contains(&net("0.0.0.0/0")));
    }

    #[test]
    fn labels_name_the_block() {
        let b = IpBlock::new(
            cidr("10.0.1.1/8"),
            &[cidr("10.2.0.0/16"), cidr("10.1.0.0/16")],
        );
        assert_eq!(
            b.to_string(),
            "cidr-except:10.0.0.0/8 -10.1.0.0/16 -10.2.0.0/16"
        );
        assert_eq!(
            IpBlock::new(cidr("fd00::/8"), &[]).to_string(),
            "cidr:fd00::/8"
        );
    }
}
