//! Security identities: classes of addresses that no policy can tell apart, and the
//! stable number each class gets.
//!
//! As in Cilium, an identity stands for a set of security-relevant labels, not for a
//! pod: ten thousand replicas with the same labels share one. What is security-relevant
//! is everything a policy can look at on a peer:
//! - a pod: its namespace (name and labels), its pod labels, the blocks its address is
//!   in ([`Membership`]), and, for port names that egress rules use, the number the pod
//!   gives each name (egress named ports resolve on the destination);
//! - a node: its Node labels and the blocks any of its addresses is in (to policies a
//!   node is one peer, whichever of its addresses traffic uses);
//! - any other prefix of the ip cache: its membership alone.
//!
//! Numbers are derived from a hash of the identity's canonical label list, so the same
//! labels get the same number across compiler runs and agent restarts, and adding an
//! unrelated pod does not renumber anything (barring a hash collision with it).

use super::cidr::{BlockId, IpBlocks, Membership};
use super::tables::IdentityInfo;
use crate::model::{Cluster, Labels, NodePeer, ObjectRef, Protocol};
use ipnet::IpNet;
use palisade_abi::reserved;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Port names (with protocol) that some egress rule uses.
pub(crate) type EgressPortNames = BTreeSet<(String, Protocol)>;

/// What a pod identity is made of: everything a policy can match a peer pod on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PodIdentity {
    pub namespace: String,
    /// Includes the `kubernetes.io/metadata.name` label.
    pub namespace_labels: Labels,
    pub labels: Labels,
    pub membership: Membership,
    /// The pod's number for each [`EgressPortNames`] entry it declares.
    pub named_ports: BTreeMap<(String, Protocol), u16>,
}

impl PodIdentity {
    /// The pod's number for a port name egress rules use.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.named_ports.get(&(name.to_string(), protocol)).copied()
    }
}

/// What a node identity is made of: everything a policy can match a node on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct NodeIdentity {
    /// The Node object's labels (none without one).
    pub labels: Labels,
    /// The blocks any of the node's addresses is in.
    pub membership: Membership,
}

impl NodeIdentity {
    pub fn of(node: &NodePeer, blocks: &IpBlocks) -> Self {
        Self {
            labels: node.labels.clone(),
            membership: blocks.membership_of_any(&node.addresses),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum IdentityKey {
    Pod(PodIdentity),
    Node(NodeIdentity),
    /// Addresses outside every pod and node, in exactly these blocks (never empty: such
    /// addresses are [`reserved::WORLD`]).
    Cidr(Membership),
}

impl IdentityKey {
    fn membership(&self) -> &Membership {
        match self {
            IdentityKey::Pod(pod) => &pod.membership,
            IdentityKey::Node(node) => &node.membership,
            IdentityKey::Cidr(membership) => membership,
        }
    }

    fn info(&self, blocks: &IpBlocks) -> IdentityInfo {
        let block_labels = self
            .membership()
            .iter()
            .filter_map(|id| blocks.get(*id))
            .map(ToString::to_string);
        let (kind, mut labels): (&str, Vec<String>) = match self {
            IdentityKey::Pod(pod) => {
                let mut labels = vec![format!("ns:name={}", pod.namespace)];
                labels.extend(
                    pod.namespace_labels
                        .0
                        .iter()
                        .map(|(k, v)| format!("ns-label:{k}={v}")),
                );
                labels.extend(pod.labels.0.iter().map(|(k, v)| format!("k8s:{k}={v}")));
                labels.extend(block_labels);
                labels.extend(
                    pod.named_ports
                        .iter()
                        .map(|((name, protocol), port)| format!("port:{name}/{protocol}={port}")),
                );
                ("pod", labels)
            }
            IdentityKey::Node(node) => {
                let mut labels: Vec<String> = node
                    .labels
                    .0
                    .iter()
                    .map(|(k, v)| format!("node:{k}={v}"))
                    .collect();
                labels.extend(block_labels);
                ("node", labels)
            }
            IdentityKey::Cidr(_) => ("cidr", block_labels.collect()),
        };
        labels.sort_unstable();
        IdentityInfo {
            kind: kind.to_string(),
            labels,
        }
    }
}

/// Every identity of the cluster and who holds it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Identities {
    /// Identity of each address of each pod that is not host-network, in the pod's
    /// address order, addresses canonical.
    pub pod_addresses: BTreeMap<ObjectRef, Vec<(IpAddr, u32)>>,
    /// Identity of each endpoint (pod that is not host-network): that of its first
    /// address, or of its labels alone when it has none.
    pub endpoints: BTreeMap<ObjectRef, u32>,
    /// Identity of each address of each node, nodes in [`Cluster::node_peers`] order,
    /// addresses canonical.
    pub node_addresses: Vec<(IpAddr, u32)>,
    /// Identity of each prefix [`IpBlocks::prefixes`] lists; WORLD for prefixes in no
    /// block.
    pub prefixes: BTreeMap<IpNet, u32>,
    /// What each pod identity is made of.
    pub pods: BTreeMap<u32, PodIdentity>,
    /// What each node identity is made of.
    pub nodes: BTreeMap<u32, NodeIdentity>,
    /// What each named node that has addresses is made of, by name: what its own
    /// endpoints see as HOST.
    pub named_nodes: BTreeMap<String, NodeIdentity>,
    /// For each block, the identities (pod, node and CIDR) whose addresses are in it.
    pub in_block: BTreeMap<BlockId, BTreeSet<u32>>,
    /// Every identity, reserved ones included, described.
    pub info: BTreeMap<u32, IdentityInfo>,
    /// Identities that did not get their preferred number (a collision): number ->
    /// preferred number.
    pub displaced: BTreeMap<u32, u32>,
}

/// Who an identity is allocated for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Holder {
    /// Address number `index` of a pod, canonical.
    PodAddress(ObjectRef, usize, IpAddr),
    /// A pod without addresses.
    AddresslessPod(ObjectRef),
    /// Node number `index` of [`Cluster::node_peers`].
    Node(usize),
    Prefix(IpNet),
}

impl Identities {
    /// Identities for every pod of `cluster`, every node of `nodes` (the cluster's
    /// [`Cluster::node_peers`]) and every prefix of `blocks`.
    pub fn assign(
        cluster: &Cluster,
        nodes: &[NodePeer],
        blocks: &IpBlocks,
        egress_port_names: &EgressPortNames,
    ) -> Self {
        let mut requests = Vec::new();
        for (pod_ref, pod) in cluster.pods.iter().filter(|(_, pod)| !pod.host_network) {
            let keys = pod_identities(cluster, pod_ref, pod, blocks, egress_port_names);
            for (index, (address, key)) in keys.into_iter().enumerate() {
                let holder = match address {
                    None => Holder::AddresslessPod(pod_ref.clone()),
                    Some(address) => Holder::PodAddress(pod_ref.clone(), index, address),
                };
                requests.push((holder, IdentityKey::Pod(key)));
            }
        }
        let mut named_nodes = BTreeMap::new();
        for (index, node) in nodes.iter().enumerate() {
            if node.addresses.is_empty() {
                continue;
            }
            let identity = NodeIdentity::of(node, blocks);
            if let Some(name) = &node.name {
                named_nodes.insert(name.clone(), identity.clone());
            }
            requests.push((Holder::Node(index), IdentityKey::Node(identity)));
        }
        let mut prefixes = BTreeMap::new();
        for prefix in blocks.prefixes() {
            let membership = blocks.membership_of_prefix(&prefix);
            if membership.is_empty() {
                prefixes.insert(prefix, reserved::WORLD);
            } else {
                requests.push((Holder::Prefix(prefix), IdentityKey::Cidr(membership)));
            }
        }

        let (numbers, keys, displaced) = allocate(requests, blocks);

        let mut identities = Identities {
            prefixes,
            named_nodes,
            info: reserved_identities(),
            displaced,
            ..Self::default()
        };
        for (holder, number) in numbers {
            match holder {
                Holder::PodAddress(pod_ref, index, addr) => {
                    if index == 0 {
                        identities.endpoints.insert(pod_ref.clone(), number);
                    }
                    identities
                        .pod_addresses
                        .entry(pod_ref)
                        .or_default()
                        .push((addr, number));
                }
                Holder::AddresslessPod(pod_ref) => {
                    identities.endpoints.insert(pod_ref, number);
                }
                Holder::Node(index) => {
                    let addresses = nodes.get(index).map_or(&[][..], |n| &n.addresses);
                    identities
                        .node_addresses
                        .extend(addresses.iter().map(|addr| (*addr, number)));
                }
                Holder::Prefix(prefix) => {
                    identities.prefixes.insert(prefix, number);
                }
            }
        }
        for (number, key) in keys {
            for block in key.membership() {
                identities
                    .in_block
                    .entry(*block)
                    .or_default()
                    .insert(number);
            }
            identities.info.insert(number, key.info(blocks));
            match key {
                IdentityKey::Pod(pod) => {
                    identities.pods.insert(number, pod);
                }
                IdentityKey::Node(node) => {
                    identities.nodes.insert(number, node);
                }
                IdentityKey::Cidr(_) => {}
            }
        }
        identities
    }
}

impl Identities {
    /// Adds the pod identity `key`, which no pod holds yet, under the number a
    /// from-scratch compile would give it; None (nothing added) when that is not
    /// known without renumbering: its preferred number is taken.
    pub fn add_pod(&mut self, key: PodIdentity, blocks: &IpBlocks) -> Option<u32> {
        let key = IdentityKey::Pod(key);
        let info = key.info(blocks);
        let number = preferred_number(&info);
        if self.info.contains_key(&number) {
            return None;
        }
        for block in key.membership() {
            self.in_block.entry(*block).or_default().insert(number);
        }
        self.info.insert(number, info);
        if let IdentityKey::Pod(pod) = key {
            self.pods.insert(number, pod);
        }
        Some(number)
    }

    /// Whether removing the identity `number` would renumber another: some identity
    /// that did not get its preferred number probed past it.
    pub fn removal_renumbers(&self, number: u32) -> bool {
        self.displaced.iter().any(|(actual, preferred)| {
            if preferred <= actual {
                (*preferred..*actual).contains(&number)
            } else {
                number >= *preferred || number < *actual
            }
        })
    }

    /// Removes the pod identity `number` (no pod holds it any more); see
    /// [`Identities::removal_renumbers`].
    pub fn remove_pod(&mut self, number: u32) {
        if let Some(pod) = self.pods.remove(&number) {
            for block in &pod.membership {
                if let Some(members) = self.in_block.get_mut(block) {
                    members.remove(&number);
                    if members.is_empty() {
                        self.in_block.remove(block);
                    }
                }
            }
        }
        self.info.remove(&number);
        self.displaced.remove(&number);
    }

    /// The identities `numbers` alone, as far as policies can match them (pods,
    /// nodes, block membership): to evaluate rules against a few changed peers.
    pub fn restricted(&self, numbers: &BTreeSet<u32>) -> Identities {
        let mut in_block: BTreeMap<BlockId, BTreeSet<u32>> = BTreeMap::new();
        for (block, members) in &self.in_block {
            let kept: BTreeSet<u32> = numbers
                .iter()
                .filter(|n| members.contains(n))
                .copied()
                .collect();
            if !kept.is_empty() {
                in_block.insert(*block, kept);
            }
        }
        Identities {
            pods: numbers
                .iter()
                .filter_map(|n| Some((*n, self.pods.get(n)?.clone())))
                .collect(),
            nodes: numbers
                .iter()
                .filter_map(|n| Some((*n, self.nodes.get(n)?.clone())))
                .collect(),
            in_block,
            ..Identities::default()
        }
    }
}

/// What the pod `pod_ref` (not host-network) holds: per address in its address order,
/// the address (canonical) and the pod identity it gives; for a pod without addresses,
/// one identity of its labels alone.
pub(crate) fn pod_identities(
    cluster: &Cluster,
    pod_ref: &ObjectRef,
    pod: &crate::model::Pod,
    blocks: &IpBlocks,
    egress_port_names: &EgressPortNames,
) -> Vec<(Option<IpAddr>, PodIdentity)> {
    let key = |membership| PodIdentity {
        namespace: pod_ref.namespace.clone(),
        namespace_labels: cluster.namespace_labels(&pod_ref.namespace),
        labels: pod.labels.clone(),
        membership,
        named_ports: egress_port_names
            .iter()
            .filter_map(|(name, protocol)| {
                let port = pod.named_port(name, *protocol)?;
                Some(((name.clone(), *protocol), port))
            })
            .collect(),
    };
    if pod.ips.is_empty() {
        return vec![(None, key(Membership::new()))];
    }
    pod.ips
        .iter()
        .map(|ip| (Some(ip.to_canonical()), key(blocks.membership_of_addr(*ip))))
        .collect()
}

fn reserved_identities() -> BTreeMap<u32, IdentityInfo> {
    let info = |kind: &str, label: &str| IdentityInfo {
        kind: kind.to_string(),
        labels: vec![label.to_string()],
    };
    BTreeMap::from([
        (reserved::HOST, info("reserved", "reserved:host")),
        (reserved::WORLD, info("reserved", "reserved:world")),
        (reserved::REMOTE_NODE, info("node", "reserved:remote-node")),
    ])
}

/// First number past the allocatable range.
const ALLOCATABLE_END: u32 = 1 << 24;

/// Gives every distinct key a number in `[FIRST_ALLOCATED, 2^24)`: the one its label
/// hash prefers, or on a collision the next free one. Keys are processed in the order of
/// their canonical labels, so the outcome does not depend on request order.
#[allow(clippy::type_complexity)]
fn allocate<H: Ord>(
    requests: Vec<(H, IdentityKey)>,
    blocks: &IpBlocks,
) -> (
    BTreeMap<H, u32>,
    BTreeMap<u32, IdentityKey>,
    BTreeMap<u32, u32>,
) {
    let mut holders: BTreeMap<IdentityKey, Vec<H>> = BTreeMap::new();
    for (holder, key) in requests {
        holders.entry(key).or_default().push(holder);
    }
    let mut ordered: Vec<(IdentityInfo, IdentityKey, Vec<H>)> = holders
        .into_iter()
        .map(|(key, holders)| (key.info(blocks), key, holders))
        .collect();
    ordered.sort_by(|a, b| (&a.0.kind, &a.0.labels, &a.1).cmp(&(&b.0.kind, &b.0.labels, &b.1)));

    let mut numbers = BTreeMap::new();
    let mut keys = BTreeMap::new();
    let mut displaced = BTreeMap::new();
    for (info, key, key_holders) in ordered {
        // There are far fewer keys than numbers (the ip cache holds 2^18 entries), so a
        // free number is always found.
        let preferred = preferred_number(&info);
        let mut number = preferred;
        while keys.contains_key(&number) {
            number = if number + 1 >= ALLOCATABLE_END {
                reserved::FIRST_ALLOCATED
            } else {
                number + 1
            };
        }
        if number != preferred {
            displaced.insert(number, preferred);
        }
        keys.insert(number, key);
        for holder in key_holders {
            numbers.insert(holder, number);
        }
    }
    (numbers, keys, displaced)
}

/// The number an identity gets unless another identity already took it.
fn preferred_number(info: &IdentityInfo) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(info.kind.as_bytes());
    for label in &info.labels {
        hasher.update(b"\n");
        hasher.update(label.as_bytes());
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let span = u64::from(ALLOCATABLE_END - reserved::FIRST_ALLOCATED);
    let offset = u64::from_be_bytes(first) % span;
    // `offset < span < 2^24`.
    reserved::FIRST_ALLOCATED + offset as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(labels: &[&str]) -> IdentityInfo {
        IdentityInfo {
            kind: "pod".into(),
            labels: labels.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn preferred_numbers_are_stable_and_in_range() {
        let a = preferred_number(&info(&["k8s:app=web", "ns:name=default"]));
        assert_eq!(
            a,
            preferred_number(&info(&["k8s:app=web", "ns:name=default"]))
        );
        assert_ne!(
            a,
            preferred_number(&info(&["k8s:app=db", "ns:name=default"]))
        );
        assert!((reserved::FIRST_ALLOCATED..ALLOCATABLE_END).contains(&a));
    }

    #[test]
    fn collisions_probe_to_the_next_free_number() {
        // Two distinct keys that render to the same labels (the model can hold label
        // keys containing '='), hence the same preferred number.
        let pod = |labels: &[(&str, &str)]| {
            IdentityKey::Pod(PodIdentity {
                namespace: "ns".into(),
                namespace_labels: Labels::for_namespace_name("ns"),
                labels: labels.iter().map(|(k, v)| (*k, *v)).collect(),
                membership: Membership::new(),
                named_ports: BTreeMap::new(),
            })
        };
        let a = pod(&[("a=b", "c")]);
        let b = pod(&[("a", "b=c")]);
        let blocks = IpBlocks::default();
        assert_eq!(a.info(&blocks), b.info(&blocks));
        let (numbers, keys, _) = allocate(vec![(1, a.clone()), (2, b), (3, a.clone())], &blocks);
        assert_eq!(keys.len(), 2);
        assert_eq!(numbers[&1], numbers[&3]);
        let preferred = preferred_number(&a.info(&blocks));
        let next = if preferred + 1 == ALLOCATABLE_END {
            reserved::FIRST_ALLOCATED
        } else {
            preferred + 1
        };
        let mut got = [numbers[&1], numbers[&2]];
        let mut want = [preferred, next];
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
    }
}
