//! The binary interface between palisade's kernel programs and user space.
//!
//! Every BPF map the programs read is declared here once, as `#[repr(C)]` structs with
//! no implicit padding, so the kernel crate (`ebpf/`, `no_std`) and the agent agree on
//! every byte. With the `user` feature the types implement `aya::Pod`.
//!
//! Conventions, in the spirit of Cilium's `bpf/lib`:
//! - Multi-byte fields that take part in an LPM prefix are stored in network byte order
//!   (big endian): the LPM trie compares key bytes in memory order, so only big-endian
//!   numbers make "the first N bits" mean "the most significant N bits".
//! - Every address is 16 bytes. IPv4 addresses are stored IPv4-mapped
//!   (`::ffff:a.b.c.d`), so one trie serves both families and an IPv6 packet to a
//!   v4-mapped address gets the IPv4 verdict for free.
//! - Tables that change together (node config, endpoints, ip cache, policy) carry a
//!   `slot` (0 or 1). User space writes the next state into the inactive slot and then
//!   flips [`GenerationWord`] with a single aligned 32-bit store: a packet sees either
//!   the old state or the new one, never a mix. Conntrack is not slotted: it survives
//!   table flips (entries remember the generation that allowed them).
//! - Service tables (`PALISADE_SERVICES`, `PALISADE_SVC_BACKENDS`) are slotted like
//!   the policy tables: a Service and its backends change with the rest of the state.
//!   The reverse-translation map (`PALISADE_SVC_REVNAT`) is kernel state, like
//!   conntrack, and is not slotted.
//! - Layout changes bump [`ABI_VERSION`], which is part of every pin path, so an agent
//!   never reuses a pinned map of a different layout (aya does not check).
#![no_std]

/// Version of every layout in this file. Part of the pin path (`<pin-path>/v<N>/`).
pub const ABI_VERSION: u32 = 5;

/// Map names, as the kernel object declares them and as they are pinned.
pub mod map_names {
    pub const GENERATION: &str = "PALISADE_GEN";
    pub const NODE_CONFIG: &str = "PALISADE_CONFIG";
    pub const ENDPOINTS: &str = "PALISADE_ENDPOINTS";
    pub const IPCACHE: &str = "PALISADE_IPCACHE";
    pub const IPCACHE4: &str = "PALISADE_IPCACHE4";
    pub const POLICY: &str = "PALISADE_POLICY";
    pub const CONNTRACK: &str = "PALISADE_CT";
    pub const EVENTS: &str = "PALISADE_EVENTS";
    pub const COUNTERS: &str = "PALISADE_COUNTERS";
    pub const EVENT_BUDGET: &str = "PALISADE_EVENT_BUDGET";
    pub const LOCAL_ADDRS: &str = "PALISADE_LOCAL_ADDRS";
    pub const ENDPOINT_ADDRS: &str = "PALISADE_ENDPOINT_ADDRS";
    pub const SERVICES: &str = "PALISADE_SERVICES";
    pub const SERVICE_BACKENDS: &str = "PALISADE_SVC_BACKENDS";
    pub const SERVICE_REV_NAT: &str = "PALISADE_SVC_REVNAT";
    pub const IPCACHE_HOSTS: &str = "PALISADE_IPCACHE_HOSTS";
    pub const BIND_PORTS: &str = "PALISADE_BIND_PORTS";
    /// Every pinned map, for cleanup and adoption.
    pub const ALL: [&str; 17] = [
        GENERATION,
        NODE_CONFIG,
        ENDPOINTS,
        IPCACHE,
        IPCACHE4,
        POLICY,
        CONNTRACK,
        EVENTS,
        COUNTERS,
        EVENT_BUDGET,
        LOCAL_ADDRS,
        ENDPOINT_ADDRS,
        SERVICES,
        SERVICE_BACKENDS,
        SERVICE_REV_NAT,
        IPCACHE_HOSTS,
        BIND_PORTS,
    ];
}

/// Program names (the Rust function names in `ebpf/`).
pub mod program_names {
    pub const SKB_EGRESS: &str = "palisade_egress";
    pub const SKB_INGRESS: &str = "palisade_ingress";
    pub const CONNECT4: &str = "palisade_connect4";
    pub const CONNECT6: &str = "palisade_connect6";
    /// Service translation of unconnected UDP (and its early rejection).
    pub const SENDMSG4: &str = "palisade_sendmsg4";
    pub const SENDMSG6: &str = "palisade_sendmsg6";
    /// Reverse Service translation of datagram sources and of peer names.
    pub const RECVMSG4: &str = "palisade_recvmsg4";
    pub const RECVMSG6: &str = "palisade_recvmsg6";
    pub const GETPEERNAME4: &str = "palisade_getpeername4";
    pub const GETPEERNAME6: &str = "palisade_getpeername6";
    /// Socket controls (`ebpf/src/socket_controls.rs`): raw and packet sockets at
    /// creation, local ports at `bind()`.
    pub const SOCK_CREATE: &str = "palisade_sock_create";
    pub const BIND4: &str = "palisade_bind4";
    pub const BIND6: &str = "palisade_bind6";
    /// BPF LSM cgroup hook `socket_post_create` (AF_PACKET; needs BPF LSM).
    pub const LSM_SOCKET_POST_CREATE: &str = "palisade_socket_post_create";
    /// The LSM hook the program above attaches to.
    pub const LSM_SOCKET_HOOK: &str = "socket_post_create";
}

/// Capacities. Doubled where a table is slotted, since both slots may be full during a
/// flip.
pub mod capacity {
    /// Pods (cgroups with an entry) per node, per slot.
    pub const ENDPOINTS_PER_SLOT: u32 = 16_384;
    /// IP-to-identity entries, per slot (pods of the whole cluster plus policy CIDRs).
    pub const IPCACHE_PER_SLOT: u32 = 262_144;
    /// IPv4 prefix (shorter than /32) entries in one slot's `IpCache4Key` trie.
    pub const IPCACHE4_PER_SLOT: u32 = 262_144;
    /// Policy entries on one node, per slot.
    pub const POLICY_PER_SLOT: u32 = 262_144;
    /// Addresses of local endpoints, per slot (IPv4 and IPv6 per pod).
    pub const LOCAL_ADDRS_PER_SLOT: u32 = 2 * ENDPOINTS_PER_SLOT;
    /// Own addresses of local endpoints, per slot (one per family per pod).
    pub const ENDPOINT_ADDRS_PER_SLOT: u32 = 2 * ENDPOINTS_PER_SLOT;
    /// Service address, port and protocol triples, cluster-wide, per slot.
    pub const SERVICES_PER_SLOT: u32 = 65_536;
    /// Backends of all Service ports together, cluster-wide, per slot.
    pub const SERVICE_BACKENDS_PER_SLOT: u32 = 262_144;
    /// Reverse-translation entries (sockets that reached a backend through a Service
    /// address), node-wide (LRU).
    pub const SERVICE_REV_NAT: u32 = 131_072;
    /// Tracked connections on one node (LRU), unless the agent is told otherwise
    /// (`--conntrack-max`, applied when the map is created).
    pub const CONNTRACK: u32 = 262_144;
    /// Smallest conntrack table the agent accepts.
    pub const CONNTRACK_MIN: u32 = 16;
    /// Host (/32, /128) ip cache entries, per slot (see `IpCacheHostKey`).
    pub const IPCACHE_HOSTS_PER_SLOT: u32 = 262_144;
    /// Endpoints with bind port restrictions, per slot.
    pub const BIND_PORTS_PER_SLOT: u32 = ENDPOINTS_PER_SLOT;
    /// Endpoints with an event budget (LRU).
    pub const EVENT_BUDGETS: u32 = 16_384;
    /// Event ring buffer size in bytes (power of two, multiple of the page size).
    pub const EVENTS_BYTES: u32 = 1 << 20;
    /// Slots of the per-CPU counter array (reasons in use: [`super::reason::COUNT`]).
    pub const COUNTERS: u32 = 64;
    /// Deepest cgroup level the programs walk when resolving an endpoint.
    pub const MAX_CGROUP_LEVEL: i32 = 32;
}

/// Identities with a fixed meaning. Numbers below [`reserved::FIRST_ALLOCATED`] are
/// never handed out by the compiler.
pub mod reserved {
    /// Wildcard in a [`PolicyKey`](super::PolicyKey): "any peer".
    pub const ANY: u32 = 0;
    /// The node an endpoint runs on (the agent maps its addresses to this identity).
    /// Traffic with it is allowed unless the endpoint's table has a row for HOST itself
    /// that says otherwise (only cluster policies, e.g. an AdminNetworkPolicy `nodes`
    /// peer, produce such rows; NetworkPolicy always allows kubelet probes). The
    /// programs never apply the table for every peer to HOST.
    pub const HOST: u32 = 1;
    /// An address the ip cache knows nothing about: outside the cluster and outside
    /// every CIDR a policy names.
    pub const WORLD: u32 = 2;
    /// Reserved for "another node of the cluster"; not assigned today: node addresses
    /// get identities from their node's labels, so `nodes` peers can select them.
    pub const REMOTE_NODE: u32 = 3;
    /// First identity the compiler may allocate.
    pub const FIRST_ALLOCATED: u32 = 256;
}

/// Traffic direction, from the local endpoint's point of view.
pub mod direction {
    /// Packets arriving at the endpoint.
    pub const INGRESS: u8 = 0;
    /// Packets leaving the endpoint.
    pub const EGRESS: u8 = 1;
}

/// What a [`FlowEvent`] reports ([`FlowEvent::kind`]): a flow (packet or connect), or a
/// socket operation a socket control refused (or, in audit mode, would have).
pub mod event_kind {
    /// A new flow (the packet programs and the connect hooks).
    pub const FLOW: u32 = 0;
    /// `socket(AF_INET/AF_INET6, SOCK_RAW, protocol)`: `protocol` is the socket's
    /// protocol, `ip_version` its family (4 or 6).
    pub const RAW_SOCKET: u32 = 1;
    /// `socket(AF_PACKET, ...)`: `protocol` is zero; `remote_port` carries the
    /// requested ethertype (host byte order).
    pub const PACKET_SOCKET: u32 = 2;
    /// `bind()` to a port outside the endpoint's bind ports: `local_addr`,
    /// `local_port` and `protocol` say what was asked for.
    pub const BIND: u32 = 3;
}

/// What a policy entry says about a new flow.
pub mod verdict {
    pub const DENY: u8 = 0;
    pub const ALLOW: u8 = 1;
    /// Would be denied, but the deciding policy is in audit mode: report and pass.
    pub const AUDIT_DENY: u8 = 2;
}

/// Why a packet was passed or dropped; index into [`map_names::COUNTERS`].
pub mod reason {
    /// Allowed by a policy entry (new flow).
    pub const ALLOWED_POLICY: u32 = 0;
    /// Allowed as part of a tracked connection.
    pub const ALLOWED_CONNTRACK: u32 = 1;
    /// Allowed because the direction is not isolated for this endpoint.
    pub const ALLOWED_NOT_ISOLATED: u32 = 2;
    /// Allowed: loopback, own node, or ICMPv6 neighbour discovery.
    pub const ALLOWED_ALWAYS: u32 = 3;
    /// Cgroup has no endpoint entry (nor does any ancestor).
    pub const UNKNOWN_ENDPOINT: u32 = 4;
    /// Denied by a policy entry.
    pub const DENIED_POLICY: u32 = 5;
    /// Denied because no policy entry matched at all (fail closed).
    pub const DENIED_NO_ENTRY: u32 = 6;
    /// Would be denied, passed because the policy is in audit mode.
    pub const AUDIT_DENIED: u32 = 7;
    /// Not an IP packet or a malformed header: passed (IP packets only are policed).
    pub const NOT_IP: u32 = 8;
    /// The conntrack table refused an insert (full, no eviction possible).
    pub const CONNTRACK_INSERT_FAILED: u32 = 9;
    /// A deny event could not be written because the ring buffer was full.
    pub const EVENT_DROPPED: u32 = 10;
    /// Non-first IP fragment leaving an endpoint: no ports to decide on, dropped.
    pub const DENIED_FRAGMENT: u32 = 11;
    /// A flow event was not written: the endpoint used up its event budget.
    pub const EVENT_RATE_LIMITED: u32 = 12;
    /// Allowed: an ICMP/ICMPv6 error (destination unreachable, packet too big, time
    /// exceeded, parameter problem) quoting a packet of a flow conntrack tracks under
    /// the current generation. Errors quoting anything else are decided by policy as
    /// ICMP.
    pub const ALLOWED_RELATED_ICMP: u32 = 13;
    /// A conntrack entry was created (one per admitted new flow; not a packet count).
    pub const CONNTRACK_CREATED: u32 = 14;
    /// A conntrack entry was deleted because policy no longer allows its flow (or
    /// its endpoint's default now denies it). With [`CONNTRACK_CREATED`] and the
    /// number of live entries this gives the evictions of the LRU table:
    /// `created - removed - live`.
    pub const CONNTRACK_REMOVED: u32 = 15;
    /// A TCP packet that does not open a connection (anything but a bare SYN) found
    /// no conntrack entry: its flow's entry was evicted from a full table (or removed
    /// by a policy change, or the connection predates palisade). The packet is
    /// decided by policy as the first packet of a new flow would be, never passed
    /// blindly, so replies of an evicted allowed flow are dropped where policy does
    /// not allow their direction on its own.
    pub const CONNTRACK_MISS_ESTABLISHED: u32 = 16;
    /// A socket control refused a socket (raw, packet) or a `bind()` (one count per
    /// refused call, not per packet).
    pub const DENIED_SOCKET: u32 = 17;
    /// A socket control would have refused, but every policy behind it audits:
    /// reported, allowed.
    pub const AUDIT_DENIED_SOCKET: u32 = 18;
    /// Would have been dropped or refused (by policy, the unknown-endpoint default, a
    /// socket control, the fragment rule or a Service without backends), passed
    /// because enforcement is switched off on this node
    /// ([`super::node_flags::ENFORCEMENT_OFF`]). Policy decisions are reported as
    /// audit-deny flow events meanwhile.
    pub const ALLOWED_ENFORCEMENT_OFF: u32 = 19;
    /// Number of counters in use; the map has [`super::capacity::COUNTERS`] slots so
    /// that new reasons need no layout change.
    pub const COUNT: u32 = 20;
}

/// Single-element array `PALISADE_GEN`, value type.
///
/// The generation of the state the programs must read; the active slot is
/// `generation & 1`. User space flips it with one aligned 32-bit store after the new
/// slot is completely written.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenerationWord {
    pub generation: u32,
}

impl GenerationWord {
    pub const fn slot(self) -> u32 {
        self.generation & 1
    }
}

/// Array `PALISADE_CONFIG` ([`NODE_CONFIG_ENTRIES`] entries), value type: node-wide
/// settings. Index 0 and 1 are the slots (see [`GenerationWord`]), written by the agent
/// with every publication. Index [`NODE_CONFIG_SWITCHES`] is not slotted: only its
/// `flags` word is read, for [`node_flags::ENFORCEMENT_OFF`], the node's emergency off
/// switch, written by `palisade-agent enforcement off|on` (and by the Kubernetes-mode
/// agent when its Node carries the label `palisade.dev/enforcement=off`), never by a
/// publication, so that it takes effect at once, survives agent restarts and cannot be
/// undone by a table flip. The third entry was added without an ABI version change:
/// a map pinned by an older agent has two entries, the programs' lookup of index 2
/// then finds nothing (enforcement on) and the switch command fails with a clear
/// error until the pins are recreated.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeConfig {
    /// [`verdict`] applied to packets of a cgroup under the protected root that neither
    /// it nor any ancestor has an endpoint entry for.
    pub unknown_endpoint_verdict: u32,
    /// [`node_flags`].
    pub flags: u32,
    /// Flow events each endpoint may emit per second (token bucket refill rate), so
    /// that a flooding workload cannot starve the others' events. Zero: no events.
    pub events_per_second: u32,
    /// Bucket size: events an endpoint may emit in a burst.
    pub event_burst: u32,
}

impl NodeConfig {
    /// Default event budget per endpoint.
    pub const DEFAULT_EVENTS_PER_SECOND: u32 = 100;
    pub const DEFAULT_EVENT_BURST: u32 = 200;
}

/// Index of the unslotted switches entry of `PALISADE_CONFIG` (see [`NodeConfig`]).
pub const NODE_CONFIG_SWITCHES: u32 = 2;
/// Entries of `PALISADE_CONFIG`: two slots and the switches.
pub const NODE_CONFIG_ENTRIES: u32 = 3;

/// Flags of a [`NodeConfig`]; unknown bits are zero.
pub mod node_flags {
    /// Report allowed new flows too (verdict ALLOW), within the same per-endpoint
    /// event budget as denials. Off by default: one event per new flow. Read in the
    /// slots' entries.
    pub const ALLOW_EVENTS: u32 = 1 << 0;
    /// Emergency off switch, read in the switches entry
    /// ([`super::NODE_CONFIG_SWITCHES`]) only: every packet, connection and socket
    /// call the programs would drop or refuse passes instead, counted as
    /// [`super::reason::ALLOWED_ENFORCEMENT_OFF`] and reported as audit-deny; flows
    /// admitted that way are marked in conntrack ([`super::ct_flags`]) and decided
    /// again once the switch is back on. Set and cleared by `palisade-agent
    /// enforcement off|on`; never cleared by the agent.
    pub const ENFORCEMENT_OFF: u32 = 1 << 1;
    /// The same switch, set by the Kubernetes-mode agent while its Node carries the
    /// label `palisade.dev/enforcement=off` (and cleared by it when the label goes, or
    /// by `enforcement on`). A second bit, so that the agent following the label never
    /// clears a switch the command set.
    pub const ENFORCEMENT_OFF_NODE_LABEL: u32 = 1 << 2;
    /// Either switch: what the programs test.
    pub const ENFORCEMENT_OFF_ANY: u32 = ENFORCEMENT_OFF | ENFORCEMENT_OFF_NODE_LABEL;
}

/// LRU hash `PALISADE_EVENT_BUDGET`, key: cgroup id of the endpoint (host byte order);
/// value: its token bucket. Kernel-only; entries of idle endpoints age out.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventBudget {
    /// Tokens left, in millionths of an event (so refills need no division).
    pub micro_tokens: u64,
    /// `bpf_ktime_get_ns()` of the last refill.
    pub refilled_ns: u64,
}

/// Hash `PALISADE_ENDPOINTS`, key: one cgroup (pod or container) in one slot.
///
/// The programs resolve the endpoint of a packet by walking from the packet's cgroup up
/// through its ancestors; the most specific cgroup with an entry wins, so an entry on a
/// pod's cgroup also covers every container and any child cgroup a run creates.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    /// cgroup v2 id (the inode number of the cgroup directory), host byte order.
    pub cgroup_id: u64,
    /// 0 or 1, see [`GenerationWord`].
    pub slot: u32,
    /// Zero.
    pub _pad: u32,
}

/// Flags of an [`EndpointInfo`].
pub mod endpoint_flags {
    /// Ingress is isolated: new inbound flows need a policy entry.
    pub const ENFORCE_INGRESS: u32 = 1 << 0;
    /// Egress is isolated: new outbound flows need a policy entry.
    pub const ENFORCE_EGRESS: u32 = 1 << 1;
    /// EgressPolicy socket controls: no `SOCK_RAW` AF_INET/AF_INET6 sockets ...
    pub const DENY_RAW_SOCKETS: u32 = 1 << 2;
    /// ... no AF_PACKET sockets ...
    pub const DENY_PACKET_SOCKETS: u32 = 1 << 3;
    /// ... `bind()` only to the ports of the endpoint's `PALISADE_BIND_PORTS` entry
    /// (no entry: no port at all) ...
    pub const RESTRICT_BIND: u32 = 1 << 4;
    /// ... and all three are reported (an event with verdict AUDIT_DENY), not
    /// enforced: every EgressPolicy behind them is in Audit mode.
    pub const AUDIT_SOCKETS: u32 = 1 << 5;
}

/// Hash `PALISADE_ENDPOINTS`, value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointInfo {
    /// Security identity of the endpoint (what peers see it as), host byte order.
    pub identity: u32,
    /// Key of this endpoint's table in `PALISADE_POLICY`; endpoints with identical
    /// compiled policy share one id. Host byte order.
    pub policy_id: u32,
    /// [`endpoint_flags`].
    pub flags: u32,
    /// Zero.
    pub _pad: u32,
}

impl EndpointInfo {
    /// The entry of a cgroup whose traffic is host traffic (a host-network pod, the
    /// agent's own pod): identity `HOST`, no table, no flags, so nothing is enforced
    /// and the node's unknown-endpoint default does not apply to it.
    pub const HOST_TRAFFIC: EndpointInfo = EndpointInfo {
        identity: reserved::HOST,
        policy_id: 0,
        flags: 0,
        _pad: 0,
    };
}

/// Hash `PALISADE_LOCAL_ADDRS`, key: an address of a local endpoint, in one slot.
/// Value: the cgroup id (`u64`, host byte order) of the endpoint that owns it.
///
/// The socket hooks use it to recognise a pod connecting to its own address (which
/// travels over loopback and is never blocked) without a route lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LocalAddrKey {
    pub slot: u32,
    /// IPv6 or IPv4-mapped address, network byte order.
    pub addr: [u8; 16],
}

/// Length in bits of the data part of an [`IpCacheKey`] (slot + address).
pub const IPCACHE_KEY_BITS: u32 = 32 + 128;

/// LPM trie `PALISADE_IPCACHE`, key data: an IPv6 address prefix (shorter than /128)
/// in one slot.
///
/// The trie's key is `{ prefixlen: u32, data: IpCacheKey }` (aya's `lpm_trie::Key`,
/// on both sides). Data layout: `slot` (4 bytes, big endian) then the 16-byte address;
/// lookups use [`IPCACHE_KEY_BITS`]. The slot is always fully matched. IPv4 prefixes
/// live in `PALISADE_IPCACHE4` ([`IpCache4Key`]), host entries of both families in
/// `PALISADE_IPCACHE_HOSTS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IpCacheKey {
    /// Slot, big endian.
    pub slot_be: u32,
    /// IPv6 or IPv4-mapped address, network byte order.
    pub addr: [u8; 16],
}

impl IpCacheKey {
    pub const fn new(slot: u32, addr: [u8; 16]) -> Self {
        Self {
            slot_be: slot.to_be(),
            addr,
        }
    }
}

/// Length in bits of the data part of an [`IpCache4Key`] (slot + IPv4 address).
pub const IPCACHE4_KEY_BITS: u32 = 32 + 32;

/// LPM trie `PALISADE_IPCACHE4`, key data: an IPv4 prefix (shorter than /32) in one
/// slot.
///
/// IPv4 prefixes have a trie of their own so that a lookup compares 8 bytes of key
/// per trie node (slot and address in one 64-bit step) instead of the 20 bytes of an
/// [`IpCacheKey`], whose first 12 address bytes are the same (`::ffff:`) for every
/// IPv4 entry: a third of the cost of a CIDR lookup at 100,000 entries. The compiler
/// guarantees that an IPv4 address never resolves to an IPv6 prefix (it adds
/// `0.0.0.0/0` when an IPv6 prefix covers `::ffff:0:0/96`), so IPv4 addresses are
/// looked up here only, IPv6 addresses in `PALISADE_IPCACHE` only.
///
/// The trie's key is `{ prefixlen: u32, data: IpCache4Key }`; the prefix length of
/// `a.b.c.d/n` is `ipcache4_prefix_len(n)`; lookups use [`IPCACHE4_KEY_BITS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IpCache4Key {
    /// Slot, big endian.
    pub slot_be: u32,
    /// IPv4 address, network byte order.
    pub addr: [u8; 4],
}

impl IpCache4Key {
    pub const fn new(slot: u32, addr: [u8; 4]) -> Self {
        Self {
            slot_be: slot.to_be(),
            addr,
        }
    }
}

/// LPM prefix length of an `IpCache4Key` entry covering `addr_bits` bits of the
/// IPv4 address.
pub const fn ipcache4_prefix_len(addr_bits: u32) -> u32 {
    32 + addr_bits
}

/// LPM prefix length of an ip cache entry covering `addr_bits` bits of the 16-byte
/// address (96 + n for an IPv4 /n).
pub const fn ipcache_prefix_len(addr_bits: u32) -> u32 {
    32 + addr_bits
}

/// LPM trie `PALISADE_IPCACHE`, value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpCacheValue {
    /// Identity of every address in the prefix that no longer prefix claims.
    pub identity: u32,
    /// Reserved; zero.
    pub flags: u32,
}

/// Length in bits of the data part of a [`PolicyKey`].
pub const POLICY_KEY_BITS: u32 = 32 + 32 + 32 + 8 + 8 + 16;
/// Prefix length of an entry that matches every protocol and port for one
/// (slot, policy, peer, direction).
pub const POLICY_PREFIX_ANY_PROTOCOL: u32 = 32 + 32 + 32 + 8;
/// Prefix length of an entry that matches every port of one protocol.
pub const POLICY_PREFIX_ANY_PORT: u32 = POLICY_PREFIX_ANY_PROTOCOL + 8;

/// LPM trie `PALISADE_POLICY`, key data: what one endpoint table says for one peer,
/// direction, protocol and destination-port prefix.
///
/// The trie's key is `{ prefixlen: u32, data: PolicyKey }`. Data layout, every field
/// big endian, in this order because the fields that are always exact come first and
/// the ones that may be wildcarded come last, nested: `slot`, `policy_id`,
/// `peer_identity`, `direction` (always exact), `protocol` (exact, or wildcarded by a
/// prefix of [`POLICY_PREFIX_ANY_PROTOCOL`]), `dport` (a prefix of the 16-bit port: a
/// port range `port..=endPort` is stored as the few prefixes that cover it exactly, so
/// ranges need no ABI change).
///
/// A peer wildcard cannot be a prefix (it sits before direction), so the programs
/// look up the peer's identity first and [`reserved::ANY`] second. The compiler keeps
/// this invariant: if any entry exists for (policy, peer, direction), there is one of
/// prefix [`POLICY_PREFIX_ANY_PROTOCOL`] too, so the table for that peer is complete and
/// the second lookup is only made for peers the policy does not name.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PolicyKey {
    pub slot_be: u32,
    pub policy_id_be: u32,
    /// Identity of the remote side, or [`reserved::ANY`].
    pub peer_identity_be: u32,
    /// [`direction`].
    pub direction: u8,
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP, 1 ICMP, 58 ICMPv6, ...).
    pub protocol: u8,
    /// Destination port of the new flow: the remote port on egress, the local port on
    /// ingress. Zero for protocols without ports. Big endian.
    pub dport_be: u16,
}

impl PolicyKey {
    pub const fn new(
        slot: u32,
        policy_id: u32,
        peer_identity: u32,
        direction: u8,
        protocol: u8,
        dport: u16,
    ) -> Self {
        Self {
            slot_be: slot.to_be(),
            policy_id_be: policy_id.to_be(),
            peer_identity_be: peer_identity.to_be(),
            direction,
            protocol,
            dport_be: dport.to_be(),
        }
    }
}

/// LPM trie `PALISADE_POLICY`, value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyValue {
    /// [`verdict`].
    pub verdict: u8,
    /// Reserved; zero.
    pub flags: u8,
    pub _pad: u16,
    /// Which rule decided, as an index into the rule table the agent published with
    /// this generation (reported in deny events); `u32::MAX` for "no rule" (default
    /// deny of an isolated endpoint).
    pub rule_ref: u32,
}

/// Rule reference of a verdict that no rule produced (isolation default).
pub const RULE_REF_DEFAULT: u32 = u32::MAX;

/// LRU hash `PALISADE_CT`, key: one connection as seen from the local endpoint.
///
/// Both directions of a flow use the same key (local side first), so a reply finds
/// the entry its request created. Addresses are 16 bytes (IPv4-mapped for IPv4),
/// ports in network byte order as on the wire, zero for portless protocols.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtKey {
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    pub local_port_be: u16,
    pub remote_port_be: u16,
    pub protocol: u8,
    pub _pad: [u8; 3],
}

/// LRU hash `PALISADE_CT`, value. Stable across agent versions: fields are only ever
/// added at the end, in space taken from `_reserved`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtValue {
    /// [`direction`] of the packet that opened the flow.
    pub origin: u8,
    /// [`verdict`] the flow was admitted with (ALLOW or AUDIT_DENY).
    pub verdict: u8,
    /// [`ct_flags`] (was padding, zero, before the off switch existed).
    pub flags: u16,
    /// [`GenerationWord::generation`] that admitted the flow.
    pub generation: u32,
    /// Rule that admitted it.
    pub rule_ref: u32,
    pub _reserved: u32,
}

/// Flags of a [`CtValue`].
pub mod ct_flags {
    /// The flow was admitted only because enforcement was switched off
    /// ([`super::node_flags::ENFORCEMENT_OFF`]): while the switch is on again, its
    /// next packet is decided by policy again instead of passing as tracked.
    pub const ENFORCEMENT_OFF: u16 = 1 << 0;
}

/// Ring buffer `PALISADE_EVENTS`: one record per denied or audit-denied new flow (and
/// per allowed one with [`node_flags::ALLOW_EVENTS`]), and per connection refused at
/// the socket (then `local_addr` and `local_port` are zero: no packet exists yet).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEvent {
    /// `bpf_ktime_get_ns()` at the decision.
    pub timestamp_ns: u64,
    /// Cgroup of the packet's socket.
    pub cgroup_id: u64,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    /// Host byte order.
    pub local_port: u16,
    /// Host byte order.
    pub remote_port: u16,
    pub protocol: u8,
    /// [`direction`].
    pub direction: u8,
    /// [`verdict`].
    pub verdict: u8,
    /// IP version, 4 or 6 (the addresses are 16 bytes either way).
    pub ip_version: u8,
    /// Local endpoint identity.
    pub identity: u32,
    pub peer_identity: u32,
    pub policy_id: u32,
    /// [`PolicyValue::rule_ref`] of the deciding entry.
    pub rule_ref: u32,
    /// [`GenerationWord::generation`] the decision was made in.
    pub generation: u32,
    /// [`event_kind`]; zero (a flow) in records of ABI version 3, where this was
    /// reserved.
    pub kind: u32,
}

/// Hash `PALISADE_ENDPOINT_ADDRS`, key: one address family of a local endpoint, in
/// one slot. Value: the endpoint's address of that family (`[u8; 16]`, network byte
/// order, IPv4-mapped for IPv4): its first one, which is the source of its packets when
/// a pod has one address per family, as Kubernetes gives it.
///
/// The socket hooks need the caller's address before the kernel has chosen one (a
/// `connect()` on an unbound socket): to decide, at the caller, a flow to a Service's
/// backend on this node with the backend's ingress policy, which keys on the source
/// address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EndpointAddrKey {
    /// cgroup id of the endpoint (as in [`EndpointKey`]), host byte order.
    pub cgroup_id: u64,
    /// 0 or 1, see [`GenerationWord`].
    pub slot: u32,
    /// 4 or 6.
    pub ip_version: u32,
}

/// Hash `PALISADE_SERVICES`, key: one Service address, port and protocol in one slot.
///
/// The socket hooks (`connect4/6`, `sendmsg4/6`) look up every destination here before
/// any packet exists; a hit is translated to one of the Service's backends, so the
/// packet programs and every policy decision only ever see the backend (Cilium's
/// socket-level load balancing; kube-proxy's DNAT would happen later, in the node's
/// network namespace, after the pod's cgroup hooks ran). Exact match only: a hash.
/// Hash keys are compared as bytes, so the padding must be zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// The Service address (cluster IP or external IP), IPv6 or IPv4-mapped, network
    /// byte order: an AF_INET6 socket sending to `::ffff:a.b.c.d` finds the IPv4
    /// Service.
    pub addr: [u8; 16],
    /// The Service port, network byte order (as `sin_port`).
    pub port_be: u16,
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP).
    pub protocol: u8,
    /// Zero.
    pub _pad: u8,
    /// 0 or 1, see [`GenerationWord`]; host byte order.
    pub slot: u32,
}

/// Hash `PALISADE_SERVICES`, value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceValue {
    /// Number of backends, host byte order: entries `0..backend_count` of
    /// `PALISADE_SVC_BACKENDS` under the same [`ServiceKey`]. Zero: the Service has
    /// no backends and the hooks refuse the call (EPERM), as kube-proxy rejects it,
    /// rather than letting it leave for an address that routes nowhere.
    pub backend_count: u32,
    /// Reserved for per-Service flags (session affinity, say); zero.
    pub flags: u32,
}

/// Hash `PALISADE_SVC_BACKENDS`, key: backend number `index` of one Service address,
/// port and protocol.
///
/// The key embeds the whole [`ServiceKey`] instead of a Service number (Cilium's
/// `backend_slot` under a `rev_nat_index`): with no numbers to allocate, the agent's
/// diff of a slot touches only the Services that changed, and the kernel needs one
/// lookup to find the Service and one to find the backend.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BackendKey {
    pub service: ServiceKey,
    /// `0..ServiceValue::backend_count`, host byte order.
    pub index: u32,
    /// Zero.
    pub _pad: u32,
}

/// Hash `PALISADE_SVC_BACKENDS`, value: where a flow to the Service goes instead.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendValue {
    /// IPv6 or IPv4-mapped, network byte order; same family as the Service address.
    pub addr: [u8; 16],
    /// The Service port's `targetPort` on this backend, network byte order.
    pub port_be: u16,
    /// Zero.
    pub _pad: u16,
    /// Reserved; zero.
    pub flags: u32,
}

/// LRU hash `PALISADE_SVC_REVNAT`, key: a socket that reached a backend through a
/// Service address, and that backend.
///
/// Written by the socket hooks when they translate; read by `getpeername4/6` and
/// `recvmsg4/6`, which turn the backend back into the Service address, so the caller
/// sees only the address it used (an unconnected UDP client typically drops a reply
/// from an address it did not send to). Kernel state, not slotted. The socket cookie
/// is a 64-bit counter never reused while the node runs, so an entry of a closed
/// socket can only age out, never match another socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RevNatKey {
    /// `bpf_get_socket_cookie()` of the socket, host byte order.
    pub cookie: u64,
    /// The backend, IPv6 or IPv4-mapped, network byte order.
    pub backend_addr: [u8; 16],
    /// The backend port, network byte order.
    pub backend_port_be: u16,
    /// Zero.
    pub _pad: [u8; 6],
}

/// LRU hash `PALISADE_SVC_REVNAT`, value: the Service address the socket used.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RevNatValue {
    /// IPv6 or IPv4-mapped, network byte order.
    pub addr: [u8; 16],
    /// The Service port, network byte order.
    pub port_be: u16,
    /// Zero.
    pub _pad: u16,
    /// Reserved; zero.
    pub _reserved: u32,
}

/// Hash `PALISADE_IPCACHE_HOSTS`, key: one address (a /32 or /128 ip cache entry) in
/// one slot. Value: [`IpCacheValue`].
///
/// The exact-match front of `PALISADE_IPCACHE`: host entries (every pod address, node
/// addresses, /32 and /128 policy CIDRs) are written here instead of into the trie,
/// and the programs look an address up here first (one hash lookup, about a third of
/// a trie lookup in a large trie); only a miss walks the trie, which then holds the
/// shorter prefixes alone. Equivalent to one longest-prefix match over both: a host
/// entry is the longest prefix an address can have. Hash keys are compared as bytes,
/// so every byte is defined (no padding).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IpCacheHostKey {
    /// 0 or 1, see [`GenerationWord`]; host byte order.
    pub slot: u32,
    /// IPv6 or IPv4-mapped address, network byte order.
    pub addr: [u8; 16],
}

/// Most port ranges one endpoint's [`BindPorts`] holds. The compiler merges the
/// ranges of every EgressPolicy behind an endpoint; with more than this many the agent
/// writes no entry (so the endpoint may bind no port: fail closed) and logs an error
/// naming the pod, never a truncated list.
pub const MAX_BIND_RANGES: usize = 16;

/// One inclusive range of local ports for one transport protocol, host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BindRange {
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP); 0 marks an unused entry.
    pub protocol: u8,
    /// Zero.
    pub _pad: u8,
    pub first: u16,
    pub last: u16,
}

/// Hash `PALISADE_BIND_PORTS`, key: [`EndpointKey`] (cgroup id and slot, as in
/// `PALISADE_ENDPOINTS`). Value: the local ports the endpoint may `bind()` to, read by
/// `cgroup/bind4` and `bind6` when its entry has [`endpoint_flags::RESTRICT_BIND`].
///
/// A small array rather than a trie: an endpoint has a handful of ranges, a linear
/// scan of at most [`MAX_BIND_RANGES`] entries is bounded for the verifier and costs
/// less than a map lookup per range, and `bind()` is rare. Ranges are sorted; unused
/// entries are zero (protocol 0 matches no socket) and `count` says how many are used.
/// No entry at all for a restricted endpoint means no port may be bound.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BindPorts {
    /// Used entries of `ranges`, host byte order.
    pub count: u32,
    pub ranges: [BindRange; MAX_BIND_RANGES],
}

/// The IPv4-mapped IPv6 form of an IPv4 address.
pub const fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

/// Whether a 16-byte address is IPv4-mapped.
pub const fn is_v4_mapped(a: &[u8; 16]) -> bool {
    a[0] == 0
        && a[1] == 0
        && a[2] == 0
        && a[3] == 0
        && a[4] == 0
        && a[5] == 0
        && a[6] == 0
        && a[7] == 0
        && a[8] == 0
        && a[9] == 0
        && a[10] == 0xff
        && a[11] == 0xff
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all types are #[repr(C)], contain only integers and byte arrays, and have
    // no implicit padding (explicit `_pad` fields), so every bit pattern is valid.
    unsafe impl aya::Pod for GenerationWord {}
    unsafe impl aya::Pod for NodeConfig {}
    unsafe impl aya::Pod for EndpointKey {}
    unsafe impl aya::Pod for EndpointInfo {}
    unsafe impl aya::Pod for IpCacheKey {}
    unsafe impl aya::Pod for IpCache4Key {}
    unsafe impl aya::Pod for IpCacheValue {}
    unsafe impl aya::Pod for PolicyKey {}
    unsafe impl aya::Pod for PolicyValue {}
    unsafe impl aya::Pod for CtKey {}
    unsafe impl aya::Pod for CtValue {}
    unsafe impl aya::Pod for FlowEvent {}
    unsafe impl aya::Pod for EventBudget {}
    unsafe impl aya::Pod for LocalAddrKey {}
    unsafe impl aya::Pod for EndpointAddrKey {}
    unsafe impl aya::Pod for ServiceKey {}
    unsafe impl aya::Pod for ServiceValue {}
    unsafe impl aya::Pod for BackendKey {}
    unsafe impl aya::Pod for BackendValue {}
    unsafe impl aya::Pod for IpCacheHostKey {}
    unsafe impl aya::Pod for BindPorts {}
    unsafe impl aya::Pod for RevNatKey {}
    unsafe impl aya::Pod for RevNatValue {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<GenerationWord>(), 4);
        assert_eq!(size_of::<NodeConfig>(), 16);
        assert_eq!(size_of::<EventBudget>(), 16);
        assert_eq!(size_of::<LocalAddrKey>(), 20);
        assert_eq!(size_of::<EndpointKey>(), 16);
        assert_eq!(size_of::<EndpointInfo>(), 16);
        assert_eq!(size_of::<IpCacheKey>() as u32 * 8, IPCACHE_KEY_BITS);
        assert_eq!(size_of::<IpCache4Key>() as u32 * 8, IPCACHE4_KEY_BITS);
        assert_eq!(size_of::<IpCacheValue>(), 8);
        assert_eq!(size_of::<PolicyKey>() as u32 * 8, POLICY_KEY_BITS);
        assert_eq!(size_of::<PolicyValue>(), 8);
        assert_eq!(size_of::<CtKey>(), 40);
        assert_eq!(size_of::<CtValue>(), 16);
        assert_eq!(size_of::<FlowEvent>(), 8 + 8 + 16 + 16 + 2 + 2 + 4 + 4 * 6);
        assert_eq!(size_of::<IpCacheHostKey>(), 20);
        assert_eq!(size_of::<BindRange>(), 6);
        assert_eq!(size_of::<BindPorts>(), 4 + 6 * MAX_BIND_RANGES);
    }

    #[test]
    fn service_layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<EndpointAddrKey>(), 16);
        assert_eq!(size_of::<ServiceKey>(), 16 + 2 + 1 + 1 + 4);
        assert_eq!(size_of::<ServiceValue>(), 8);
        assert_eq!(size_of::<BackendKey>(), size_of::<ServiceKey>() + 8);
        assert_eq!(size_of::<BackendValue>(), 16 + 2 + 2 + 4);
        assert_eq!(size_of::<RevNatKey>(), 8 + 16 + 2 + 6);
        assert_eq!(size_of::<RevNatValue>(), 16 + 2 + 2 + 4);
    }

    #[test]
    fn v4_mapping_round_trips() {
        let m = v4_mapped([10, 0, 1, 2]);
        assert!(is_v4_mapped(&m));
        assert_eq!(&m[12..], &[10, 0, 1, 2]);
        assert!(!is_v4_mapped(&[0; 16]));
    }
}
