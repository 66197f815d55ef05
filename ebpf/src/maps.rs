//! Every map the kernel programs use. Layouts live in `palisade-abi`, with the meaning
//! of each field and its byte order; this file only declares the maps, with their
//! capacity and who writes them.
//!
//! All maps are pinned by name (the agent pins them under `<pin-path>/v<ABI>/maps/`),
//! so they outlive the agent process and a restarted agent adopts them. Writers:
//! - user space only: GEN, CONFIG, ENDPOINTS, LOCAL_ADDRS, IPCACHE, IPCACHE4, IPCACHE_HOSTS,
//!   POLICY, BIND_PORTS;
//! - kernel only: CT (user space may read and delete), EVENTS, COUNTERS, EVENT_BUDGET.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use palisade_abi::{
    BindPorts, CtKey, CtValue, EndpointInfo, EndpointKey, EventBudget, GenerationWord,
    IpCache4Key, IpCacheHostKey, IpCacheKey, IpCacheValue, LocalAddrKey, NODE_CONFIG_ENTRIES,
    NODE_CONFIG_SWITCHES, NodeConfig, PolicyKey, PolicyValue, capacity, node_flags,
};

/// Index 0: the generation the programs read; slot = generation & 1.
#[map(name = "PALISADE_GEN")]
pub static GEN: Array<GenerationWord> = Array::pinned(1, 0);

/// Index = slot: node-wide settings of that slot; index `NODE_CONFIG_SWITCHES`: the
/// unslotted switches (the emergency off switch).
#[map(name = "PALISADE_CONFIG")]
pub static CONFIG: Array<NodeConfig> = Array::pinned(NODE_CONFIG_ENTRIES, 0);

/// Whether enforcement is switched off on this node (`node_flags::ENFORCEMENT_OFF_ANY` in
/// the switches entry): everything the programs would drop or refuse passes.
#[inline(always)]
pub fn enforcement_off() -> bool {
    CONFIG
        .get(NODE_CONFIG_SWITCHES)
        .is_some_and(|c| c.flags & node_flags::ENFORCEMENT_OFF_ANY != 0)
}

/// (cgroup id, slot) -> endpoint.
#[map(name = "PALISADE_ENDPOINTS")]
pub static ENDPOINTS: HashMap<EndpointKey, EndpointInfo> =
    HashMap::pinned(2 * capacity::ENDPOINTS_PER_SLOT, 0);

/// (slot, address of a local endpoint) -> cgroup id of that endpoint.
#[map(name = "PALISADE_LOCAL_ADDRS")]
pub static LOCAL_ADDRS: HashMap<LocalAddrKey, u64> =
    HashMap::pinned(2 * capacity::LOCAL_ADDRS_PER_SLOT, 0);

/// (slot, IPv6 address prefix) -> identity.
#[map(name = "PALISADE_IPCACHE")]
pub static IPCACHE: LpmTrie<IpCacheKey, IpCacheValue> =
    LpmTrie::pinned(2 * capacity::IPCACHE_PER_SLOT, 0);

/// (slot, IPv4 address prefix) -> identity: IPv4 lookups compare 8 bytes per trie
/// node instead of 20 (see `IpCache4Key`).
#[map(name = "PALISADE_IPCACHE4")]
pub static IPCACHE4: LpmTrie<IpCache4Key, IpCacheValue> =
    LpmTrie::pinned(2 * capacity::IPCACHE4_PER_SLOT, 0);

/// (slot, address) -> identity, for host (/32, /128) entries: looked up before the
/// trie, which holds the shorter prefixes only.
#[map(name = "PALISADE_IPCACHE_HOSTS")]
pub static IPCACHE_HOSTS: HashMap<IpCacheHostKey, IpCacheValue> =
    HashMap::pinned(2 * capacity::IPCACHE_HOSTS_PER_SLOT, 0);

/// (cgroup id, slot) -> ports the endpoint may bind (socket controls).
#[map(name = "PALISADE_BIND_PORTS")]
pub static BIND_PORTS: HashMap<EndpointKey, BindPorts> =
    HashMap::pinned(2 * capacity::BIND_PORTS_PER_SLOT, 0);

/// (slot, policy, peer, direction, protocol, port prefix) -> verdict.
#[map(name = "PALISADE_POLICY")]
pub static POLICY: LpmTrie<PolicyKey, PolicyValue> =
    LpmTrie::pinned(2 * capacity::POLICY_PER_SLOT, 0);

/// Connections admitted by policy, keyed from the local endpoint's side. LRU: when
/// full, the least recently used entry is evicted; its flow is then re-decided by
/// policy on its next packet (never passed blindly).
#[map(name = "PALISADE_CT")]
pub static CT: LruHashMap<CtKey, CtValue> = LruHashMap::pinned(capacity::CONNTRACK, 0);

/// Flow events (denied and audit-denied new flows) for the agent.
#[map(name = "PALISADE_EVENTS")]
pub static EVENTS: RingBuf = RingBuf::pinned(capacity::EVENTS_BYTES, 0);

/// Per-endpoint token buckets limiting flow events (see `events::emit`).
#[map(name = "PALISADE_EVENT_BUDGET")]
pub static EVENT_BUDGET: LruHashMap<u64, EventBudget> =
    LruHashMap::pinned(capacity::EVENT_BUDGETS, 0);

/// Packet counters per `palisade_abi::reason`.
#[map(name = "PALISADE_COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::pinned(capacity::COUNTERS, 0);
