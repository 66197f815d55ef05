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
use aya::maps::{HashMap, Map, MapData};
use palisade_abi::{CtKey, CtValue, map_names};
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
