//! Publishes a [`DesiredState`] to the kernel maps without a partial state ever being
//! visible: the next state is written into the inactive slot (diffed against what
//! that slot holds), then the generation word is flipped with one 32-bit store.
//!
//! Ip cache host entries (/32, /128: `IpPrefix` with 128 bits) go to the exact-match
//! `PALISADE_IPCACHE_HOSTS`, shorter IPv4 prefixes to the `PALISADE_IPCACHE4` trie and
//! shorter IPv6 ones to `PALISADE_IPCACHE`; the programs try the hash first. All three
//! are one table here (`DesiredState::ipcache`, IPv4 as `::ffff:a.b.c.d`).
//!
//! The writer keeps a shadow of each slot's contents so that a diff costs no map
//! iteration; after a restart the shadow is rebuilt once from the pinned maps.

use crate::desired::{self, DesiredState, IpPrefix, PolicyRow, ServiceRow};
use anyhow::{Context, Result};
use aya::maps::{Array, HashMap, LpmTrie, MapData, lpm_trie::Key};
use palisade_abi::{
    BackendKey, BackendValue, BindPorts, EndpointAddrKey, EndpointInfo, EndpointKey,
    GenerationWord, IpCache4Key, IpCacheHostKey, IpCacheKey, IpCacheValue, LocalAddrKey,
    NodeConfig, PolicyKey, PolicyValue, ServiceKey, ServiceValue, ipcache_prefix_len,
    ipcache4_prefix_len,
};
use std::collections::BTreeMap;

pub struct TableWriter {
    pub(super) generation: Array<MapData, GenerationWord>,
    pub(super) config: Array<MapData, NodeConfig>,
    pub(super) endpoints: HashMap<MapData, EndpointKey, EndpointInfo>,
    pub(super) local_addrs: HashMap<MapData, LocalAddrKey, u64>,
    pub(super) ipcache: LpmTrie<MapData, IpCacheKey, IpCacheValue>,
    pub(super) ipcache4: LpmTrie<MapData, IpCache4Key, IpCacheValue>,
    pub(super) policy: LpmTrie<MapData, PolicyKey, PolicyValue>,
    pub(super) endpoint_addrs: HashMap<MapData, EndpointAddrKey, [u8; 16]>,
    pub(super) services: HashMap<MapData, ServiceKey, ServiceValue>,
    pub(super) service_backends: HashMap<MapData, BackendKey, BackendValue>,
    pub(super) ipcache_hosts: HashMap<MapData, IpCacheHostKey, IpCacheValue>,
    pub(super) bind_ports: HashMap<MapData, EndpointKey, BindPorts>,
    /// What each slot holds, once known.
    pub(super) shadow: [Option<DesiredState>; 2],
}

/// Counts of one publication, for logs and metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApplyStats {
    pub generation: u32,
    pub written: usize,
    pub deleted: usize,
}

impl TableWriter {
    /// The generation the programs currently read.
    pub fn current_generation(&self) -> Result<u32> {
        Ok(self
            .generation
            .get(&0, 0)
            .context("reading PALISADE_GEN")?
            .generation)
    }

    /// Publishes the live state again with a host-traffic entry for `cgroup_id` added,
    /// through the usual inactive slot and flip, if tables were ever published and no
    /// entry covers that cgroup yet. A restarted agent in a new pod calls this before
    /// anything else: the pinned programs keep enforcing the previous agent's tables,
    /// in which its new pod cgroup is unknown (the unknown-endpoint default, `deny` in
    /// the chart, would hold its own API traffic). Returns whether it published.
    pub fn publish_host_entry(&mut self, cgroup_id: u64) -> Result<bool> {
        let generation = self.current_generation()?;
        if generation == 0 {
            return Ok(false);
        }
        let live = self.slot_state(generation & 1)?;
        if live.endpoints.contains_key(&cgroup_id) {
            return Ok(false);
        }
        let mut next = live.clone();
        next.endpoints.insert(cgroup_id, EndpointInfo::HOST_TRAFFIC);
        self.apply(&next)?;
        Ok(true)
    }

    /// Writes `desired` into the inactive slot and makes it active.
    pub fn apply(&mut self, desired: &DesiredState) -> Result<ApplyStats> {
        let next = self.current_generation()?.wrapping_add(1);
        let mut stats = self.write_slot(next & 1, desired)?;
        stats.generation = next;
        // The flip: from here on every packet reads the new slot.
        self.generation
            .set(0, GenerationWord { generation: next }, 0)
            .context("PALISADE_GEN flip")?;
        Ok(stats)
    }

    /// Brings the inactive slot up to `desired` (the state just applied), without a
    /// flip, so that the next [`apply`](Self::apply) diffs only what changes then:
    /// otherwise it would first redo the previous change in that slot (for an ip cache
    /// change, a walk of the whole cache). Call it a while after an apply (at the end
    /// of the pass), not right after the flip: a program that read the generation just
    /// before the flip may still be reading that slot.
    pub fn sync_inactive(&mut self, desired: &DesiredState) -> Result<Option<ApplyStats>> {
        let slot = self.current_generation()?.wrapping_add(1) & 1;
        if self.shadow[slot as usize].as_ref() == Some(desired) {
            return Ok(None);
        }
        self.write_slot(slot, desired).map(Some)
    }

    /// Writes `desired` into `slot` (diffed against what it holds); no flip.
    fn write_slot(&mut self, slot: u32, desired: &DesiredState) -> Result<ApplyStats> {
        // Taken out of the shadow: if a write below fails, the slot's contents are
        // unknown and are read back from the maps before the next diff.
        self.slot_state(slot)?;
        let old = self.shadow[slot as usize]
            .take()
            .expect("filled by slot_state");
        let mut stats = ApplyStats::default();
        // Deletions first, so a full table has room for the additions.
        for cgroup_id in removed(&old.endpoints, &desired.endpoints) {
            self.endpoints
                .remove(&endpoint_key(cgroup_id, slot))
                .context("PALISADE_ENDPOINTS delete")?;
            stats.deleted += 1;
        }
        for addr in removed(&old.local_addrs, &desired.local_addrs) {
            self.local_addrs
                .remove(&LocalAddrKey { slot, addr })
                .context("PALISADE_LOCAL_ADDRS delete")?;
            stats.deleted += 1;
        }
        // One shared ip cache in both states: nothing to diff (the common case when
        // only local endpoints changed).
        let same_ipcache = std::sync::Arc::ptr_eq(&old.ipcache, &desired.ipcache);
        let no_ipcache = desired::IpCacheTable::new();
        let (old_ipcache, new_ipcache) = if same_ipcache {
            (&no_ipcache, &no_ipcache)
        } else {
            (&*old.ipcache, &*desired.ipcache)
        };
        for prefix in removed(old_ipcache, new_ipcache) {
            if is_host(prefix) {
                self.ipcache_hosts
                    .remove(&ipcache_host_key(slot, prefix))
                    .context("PALISADE_IPCACHE_HOSTS delete")?;
            } else if let Some(key) = ipcache4_key(slot, prefix) {
                self.ipcache4
                    .remove(&key)
                    .context("PALISADE_IPCACHE4 delete")?;
            } else {
                self.ipcache
                    .remove(&ipcache_key(slot, prefix))
                    .context("PALISADE_IPCACHE delete")?;
            }
            stats.deleted += 1;
        }
        for cgroup_id in removed(&old.bind_ports, &desired.bind_ports) {
            self.bind_ports
                .remove(&endpoint_key(cgroup_id, slot))
                .context("PALISADE_BIND_PORTS delete")?;
            stats.deleted += 1;
        }
        for row in removed(&old.policy, &desired.policy) {
            self.policy
                .remove(&policy_key(slot, row))
                .context("PALISADE_POLICY delete")?;
            stats.deleted += 1;
        }
        for (cgroup_id, version) in removed(&old.endpoint_addrs, &desired.endpoint_addrs) {
            self.endpoint_addrs
                .remove(&endpoint_addr_key(cgroup_id, version, slot))
                .context("PALISADE_ENDPOINT_ADDRS delete")?;
            stats.deleted += 1;
        }
        for (row, index) in removed(&old.service_backends, &desired.service_backends) {
            self.service_backends
                .remove(&backend_key(row, index, slot))
                .context("PALISADE_SVC_BACKENDS delete")?;
            stats.deleted += 1;
        }
        for row in removed(&old.services, &desired.services) {
            self.services
                .remove(&service_key(row, slot))
                .context("PALISADE_SERVICES delete")?;
            stats.deleted += 1;
        }
        for (&cgroup_id, value) in changed(&old.endpoints, &desired.endpoints) {
            self.endpoints
                .insert(endpoint_key(cgroup_id, slot), value, 0)
                .context("PALISADE_ENDPOINTS insert (table full?)")?;
            stats.written += 1;
        }
        for (&addr, cgroup_id) in changed(&old.local_addrs, &desired.local_addrs) {
            self.local_addrs
                .insert(LocalAddrKey { slot, addr }, cgroup_id, 0)
                .context("PALISADE_LOCAL_ADDRS insert (table full?)")?;
            stats.written += 1;
        }
        for (&prefix, value) in changed(old_ipcache, new_ipcache) {
            if is_host(prefix) {
                self.ipcache_hosts
                    .insert(ipcache_host_key(slot, prefix), value, 0)
                    .context("PALISADE_IPCACHE_HOSTS insert (table full?)")?;
            } else if let Some(key) = ipcache4_key(slot, prefix) {
                self.ipcache4
                    .insert(&key, value, 0)
                    .context("PALISADE_IPCACHE4 insert (table full?)")?;
            } else {
                self.ipcache
                    .insert(&ipcache_key(slot, prefix), value, 0)
                    .context("PALISADE_IPCACHE insert (table full?)")?;
            }
            stats.written += 1;
        }
        for (&cgroup_id, value) in changed(&old.bind_ports, &desired.bind_ports) {
            self.bind_ports
                .insert(endpoint_key(cgroup_id, slot), value, 0)
                .context("PALISADE_BIND_PORTS insert (table full?)")?;
            stats.written += 1;
        }
        for (&row, value) in changed(&old.policy, &desired.policy) {
            self.policy
                .insert(&policy_key(slot, row), value, 0)
                .context("PALISADE_POLICY insert (table full?)")?;
            stats.written += 1;
        }
        for (&(cgroup_id, version), addr) in changed(&old.endpoint_addrs, &desired.endpoint_addrs) {
            self.endpoint_addrs
                .insert(endpoint_addr_key(cgroup_id, version, slot), addr, 0)
                .context("PALISADE_ENDPOINT_ADDRS insert (table full?)")?;
            stats.written += 1;
        }
        // Backends before their Service entry; the slot is not read yet either way.
        for (&(row, index), value) in changed(&old.service_backends, &desired.service_backends) {
            self.service_backends
                .insert(backend_key(row, index, slot), value, 0)
                .context("PALISADE_SVC_BACKENDS insert (table full?)")?;
            stats.written += 1;
        }
        for (&row, value) in changed(&old.services, &desired.services) {
            self.services
                .insert(service_key(row, slot), value, 0)
                .context("PALISADE_SERVICES insert (table full?)")?;
            stats.written += 1;
        }
        self.config
            .set(slot, desired.config, 0)
            .context("PALISADE_CONFIG update")?;
        self.shadow[slot as usize] = Some(desired.clone());
        Ok(stats)
    }

    /// The contents of `slot`, from the shadow or, the first time, from the maps.
    fn slot_state(&mut self, slot: u32) -> Result<&DesiredState> {
        if self.shadow[slot as usize].is_none() {
            let state = self.read_slot(slot)?;
            self.shadow[slot as usize] = Some(state);
        }
        Ok(self.shadow[slot as usize].as_ref().expect("filled above"))
    }

    fn read_slot(&self, slot: u32) -> Result<DesiredState> {
        let mut state = DesiredState {
            config: self
                .config
                .get(&slot, 0)
                .context("reading PALISADE_CONFIG")?,
            ..Default::default()
        };
        for item in self.endpoints.iter() {
            let (key, value) = item.context("iterating PALISADE_ENDPOINTS")?;
            if key.slot == slot {
                state.endpoints.insert(key.cgroup_id, value);
            }
        }
        for item in self.local_addrs.iter() {
            let (key, cgroup_id) = item.context("iterating PALISADE_LOCAL_ADDRS")?;
            if key.slot == slot {
                state.local_addrs.insert(key.addr, cgroup_id);
            }
        }
        for item in self.ipcache.iter() {
            let (key, value) = item.context("iterating PALISADE_IPCACHE")?;
            let data = key.data();
            if u32::from_be(data.slot_be) == slot {
                std::sync::Arc::make_mut(&mut state.ipcache)
                    .insert((data.addr, key.prefix_len() - ipcache_prefix_len(0)), value);
            }
        }
        for item in self.ipcache4.iter() {
            let (key, value) = item.context("iterating PALISADE_IPCACHE4")?;
            let data = key.data();
            if u32::from_be(data.slot_be) == slot {
                let addr = std::net::Ipv4Addr::from(data.addr)
                    .to_ipv6_mapped()
                    .octets();
                let bits = MAPPED_V4_BITS + key.prefix_len() - ipcache4_prefix_len(0);
                std::sync::Arc::make_mut(&mut state.ipcache).insert((addr, bits), value);
            }
        }
        for item in self.ipcache_hosts.iter() {
            let (key, value) = item.context("iterating PALISADE_IPCACHE_HOSTS")?;
            if key.slot == slot {
                std::sync::Arc::make_mut(&mut state.ipcache).insert((key.addr, 128), value);
            }
        }
        for item in self.bind_ports.iter() {
            let (key, value) = item.context("iterating PALISADE_BIND_PORTS")?;
            if key.slot == slot {
                state.bind_ports.insert(key.cgroup_id, value);
            }
        }
        for item in self.policy.iter() {
            let (key, value) = item.context("iterating PALISADE_POLICY")?;
            let data = key.data();
            if u32::from_be(data.slot_be) == slot {
                state
                    .policy
                    .insert(desired::policy_row_of_key(key.prefix_len(), &data), value);
            }
        }
        for item in self.endpoint_addrs.iter() {
            let (key, addr) = item.context("iterating PALISADE_ENDPOINT_ADDRS")?;
            if key.slot == slot {
                state
                    .endpoint_addrs
                    .insert((key.cgroup_id, key.ip_version), addr);
            }
        }
        for item in self.services.iter() {
            let (key, value) = item.context("iterating PALISADE_SERVICES")?;
            if key.slot == slot {
                state.services.insert(service_row(&key), value);
            }
        }
        for item in self.service_backends.iter() {
            let (key, value) = item.context("iterating PALISADE_SVC_BACKENDS")?;
            if key.service.slot == slot {
                state
                    .service_backends
                    .insert((service_row(&key.service), key.index), value);
            }
        }
        Ok(state)
    }
}

fn removed<'a, K: Ord + Copy, V>(
    old: &'a BTreeMap<K, V>,
    new: &'a BTreeMap<K, V>,
) -> impl Iterator<Item = K> + 'a {
    old.keys().filter(|k| !new.contains_key(k)).copied()
}

fn changed<'a, K: Ord, V: PartialEq>(
    old: &'a BTreeMap<K, V>,
    new: &'a BTreeMap<K, V>,
) -> impl Iterator<Item = (&'a K, &'a V)> + 'a {
    new.iter().filter(|(k, v)| old.get(k) != Some(v))
}

fn endpoint_key(cgroup_id: u64, slot: u32) -> EndpointKey {
    EndpointKey {
        cgroup_id,
        slot,
        _pad: 0,
    }
}

fn ipcache_key(slot: u32, (addr, bits): IpPrefix) -> Key<IpCacheKey> {
    Key::new(ipcache_prefix_len(bits), IpCacheKey::new(slot, addr))
}

/// Bits of `::ffff:0:0/96`, the IPv4-mapped part of an address.
const MAPPED_V4_BITS: u32 = 96;

/// The `PALISADE_IPCACHE4` key of an IPv4 (mapped) prefix, `None` for IPv6 ones.
fn ipcache4_key(slot: u32, (addr, bits): IpPrefix) -> Option<Key<IpCache4Key>> {
    let v4 = std::net::Ipv6Addr::from(addr).to_ipv4_mapped()?;
    (bits >= MAPPED_V4_BITS).then(|| {
        Key::new(
            ipcache4_prefix_len(bits - MAPPED_V4_BITS),
            IpCache4Key::new(slot, v4.octets()),
        )
    })
}

/// A host entry: one address, looked up by exact match.
fn is_host((_, bits): IpPrefix) -> bool {
    bits == 128
}

fn ipcache_host_key(slot: u32, (addr, _): IpPrefix) -> IpCacheHostKey {
    IpCacheHostKey { slot, addr }
}

fn policy_key(slot: u32, row: PolicyRow) -> Key<PolicyKey> {
    let (prefixlen, policy_id, peer, direction, protocol, dport) = row;
    Key::new(
        prefixlen,
        PolicyKey::new(slot, policy_id, peer, direction, protocol, dport),
    )
}

fn endpoint_addr_key(cgroup_id: u64, ip_version: u32, slot: u32) -> EndpointAddrKey {
    EndpointAddrKey {
        cgroup_id,
        slot,
        ip_version,
    }
}

fn service_key((addr, port, protocol): ServiceRow, slot: u32) -> ServiceKey {
    ServiceKey {
        addr,
        port_be: port.to_be(),
        protocol,
        _pad: 0,
        slot,
    }
}

fn service_row(key: &ServiceKey) -> ServiceRow {
    (key.addr, u16::from_be(key.port_be), key.protocol)
}

fn backend_key(row: ServiceRow, index: u32, slot: u32) -> BackendKey {
    BackendKey {
        service: service_key(row, slot),
        index,
        _pad: 0,
    }
}
