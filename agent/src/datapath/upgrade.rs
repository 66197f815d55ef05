//! Taking over from an agent of another map ABI (side-by-side upgrade or downgrade).
//!
//! Every layout change bumps `ABI_VERSION`, which names the pin directory
//! (`<pin-path>/v<ABI>/`), so an agent never adopts maps it cannot read. Another
//! version's pins are not simply removed, though: its programs are still attached and
//! enforcing, and its conntrack table knows the established flows. The starting agent
//! (the one owner of the pin path) therefore, in this order:
//! 1. copies the other conntrack entries into its own table ([`adopt_conntrack`]),
//!    before its programs see a packet, so established flows keep their direction and
//!    replies (the entries carry the old generation, so each flow is decided once
//!    more by the current policy on its next packet: allowed flows go on, newly
//!    denied ones stop);
//! 2. publishes its tables and attaches its programs beside the old ones (for that
//!    moment a packet must pass both: the stricter of old and new policy applies);
//! 3. detaches and removes the other versions' links and maps
//!    ([`retire_other_versions`]).
//!
//! The conntrack layout (`CtKey`, `CtValue`) is kept stable across versions; a table
//! whose key or value size differs is not copied (its flows are then decided
//! again as new ones), and the agent says so.

use super::ConntrackMap;
use super::links::detach_pinned;
use crate::pins::PinLayout;
use anyhow::{Context, Result};
use aya::maps::{Array, HashMap, Map, MapData};
use palisade_abi::{CtKey, CtValue, EndpointInfo, EndpointKey, GenerationWord, map_names};
use std::path::Path;

/// `BPF_NOEXIST`: an entry the new programs already made wins over the old one.
const BPF_NOEXIST: u64 = 1;

/// Copies the conntrack entries of every other ABI version under `layout` into
/// `conntrack`. Returns how many were copied.
pub fn adopt_conntrack(layout: &PinLayout, conntrack: &mut ConntrackMap) -> Result<usize> {
    let mut copied = 0;
    for (version, dir) in layout.other_versions()? {
        let pin = dir.join("maps").join(map_names::CONNTRACK);
        if !pin.exists() {
            continue;
        }
        match copy_entries(&pin, conntrack) {
            Ok(n) => {
                tracing::info!(
                    from_abi = version,
                    entries = n,
                    "adopted conntrack entries of an agent of another ABI"
                );
                copied += n;
            }
            Err(e) => tracing::warn!(
                from_abi = version,
                error = %format!("{e:#}"),
                "conntrack entries of an agent of another ABI not adopted: their flows are decided again"
            ),
        }
    }
    Ok(copied)
}

fn copy_entries(pin: &Path, conntrack: &mut ConntrackMap) -> Result<usize> {
    let data = MapData::from_pin(pin).with_context(|| format!("opening {}", pin.display()))?;
    let info = data.info().context("reading the map's info")?;
    anyhow::ensure!(
        info.key_size() as usize == size_of::<CtKey>()
            && info.value_size() as usize == size_of::<CtValue>(),
        "its layout differs (key {} / value {} bytes, this agent's {} / {})",
        info.key_size(),
        info.value_size(),
        size_of::<CtKey>(),
        size_of::<CtValue>()
    );
    let old: HashMap<MapData, CtKey, CtValue> = HashMap::try_from(Map::LruHashMap(data))?;
    let mut copied = 0;
    for entry in old.iter() {
        let Ok((key, value)) = entry else { continue };
        if conntrack.insert(key, value, BPF_NOEXIST).is_ok() {
            copied += 1;
        }
    }
    Ok(copied)
}

/// Adds a host-traffic entry for `cgroup_id` to the live slot of every other ABI
/// version's endpoint table, where that table's layout is this agent's and no entry
/// covers the cgroup yet. The other version's programs keep enforcing until this
/// agent's are attached, and the new agent's pod is unknown to their tables: without
/// the entry their unknown-endpoint default could hold the agent's own API traffic,
/// and the takeover would never complete. Adding a key no entry had changes only
/// that cgroup's verdict, in one atomic map update. Returns how many tables took it.
pub fn host_entry_in_other_versions(layout: &PinLayout, cgroup_id: u64) -> Result<usize> {
    let mut added = 0;
    for (version, dir) in layout.other_versions()? {
        let maps = dir.join("maps");
        match add_host_entry(&maps, cgroup_id) {
            Ok(true) => {
                tracing::info!(
                    abi = version,
                    cgroup_id,
                    "the agent's own pod cgroup entered in the tables of an agent of another ABI"
                );
                added += 1;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(
                abi = version,
                error = %format!("{e:#}"),
                "the agent's own pod cgroup not entered in the tables of another ABI: \
                 their unknown-endpoint default applies to it until this agent attaches"
            ),
        }
    }
    Ok(added)
}

fn add_host_entry(maps: &Path, cgroup_id: u64) -> Result<bool> {
    let gen_pin = maps.join(map_names::GENERATION);
    let endpoints_pin = maps.join(map_names::ENDPOINTS);
    if !gen_pin.exists() || !endpoints_pin.exists() {
        return Ok(false);
    }
    let open =
        |pin: &Path| MapData::from_pin(pin).with_context(|| format!("opening {}", pin.display()));
    let (gen_data, endpoints_data) = (open(&gen_pin)?, open(&endpoints_pin)?);
    let (gen_info, ep_info) = (gen_data.info()?, endpoints_data.info()?);
    anyhow::ensure!(
        gen_info.value_size() as usize == size_of::<GenerationWord>()
            && ep_info.key_size() as usize == size_of::<EndpointKey>()
            && ep_info.value_size() as usize == size_of::<EndpointInfo>(),
        "its generation word or endpoint layout differs from this agent's"
    );
    let generation: Array<MapData, GenerationWord> = Array::try_from(Map::Array(gen_data))?;
    let live = generation.get(&0, 0)?.generation;
    if live == 0 {
        return Ok(false);
    }
    let mut endpoints: HashMap<MapData, EndpointKey, EndpointInfo> =
        HashMap::try_from(Map::HashMap(endpoints_data))?;
    let key = EndpointKey {
        cgroup_id,
        slot: live & 1,
        _pad: 0,
    };
    Ok(endpoints
        .insert(key, EndpointInfo::HOST_TRAFFIC, BPF_NOEXIST)
        .is_ok())
}

/// Detaches every link of every other ABI version under `layout` and removes that
/// version's pins (links and maps). Call once this agent's programs are attached.
/// Returns the versions retired.
pub fn retire_other_versions(layout: &PinLayout) -> Result<Vec<u32>> {
    let mut retired = Vec::new();
    for (version, dir) in layout.other_versions()? {
        let links = dir.join("links");
        if links.is_dir() {
            for entry in
                std::fs::read_dir(&links).with_context(|| format!("listing {}", links.display()))?
            {
                let pin = entry?.path();
                if let Err(e) = detach_pinned(&pin) {
                    tracing::debug!(error = %format!("{e:#}"), "link of another ABI not detached before unpinning");
                }
            }
        }
        let removed = crate::pins::remove_dir(&dir)?;
        tracing::info!(
            abi = version,
            pins = removed,
            "retired the pins of an agent of another ABI"
        );
        retired.push(version);
    }
    Ok(retired)
}
