//! The node's emergency off switch: the unslotted switches entry of the pinned
//! `PALISADE_CONFIG` map (`palisade_abi::NODE_CONFIG_SWITCHES`). While a switch bit is
//! set, the kernel programs pass everything they would drop or refuse (counted
//! `allowed_enforcement_off`, reported as audit-deny); it takes effect with the next
//! packet, needs no agent, and survives agent restarts because the map is pinned.
//!
//! Two bits, two owners: `ENFORCEMENT_OFF` belongs to `palisade-agent enforcement
//! off|on`; `ENFORCEMENT_OFF_NODE_LABEL` to the Kubernetes-mode agent following its
//! Node's `palisade.dev/enforcement=off` label. The agent never touches the command's
//! bit, so it can never turn enforcement back on by itself.

use crate::pins::{self, PinLayout};
use anyhow::{Context, Result, bail};
use aya::maps::{Array, Map, MapData};
use palisade_abi::{NODE_CONFIG_SWITCHES, NodeConfig, map_names, node_flags};
use serde::Serialize;
use std::path::Path;

/// The label on a Node that switches enforcement off on it.
pub const NODE_LABEL: &str = "palisade.dev/enforcement";

/// Who has switched enforcement off, as read from the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SwitchState {
    /// `palisade-agent enforcement off` is in force.
    pub command_off: bool,
    /// The Node's `palisade.dev/enforcement=off` label is in force.
    pub node_label_off: bool,
}

impl SwitchState {
    pub fn from_flags(flags: u32) -> Self {
        Self {
            command_off: flags & node_flags::ENFORCEMENT_OFF != 0,
            node_label_off: flags & node_flags::ENFORCEMENT_OFF_NODE_LABEL != 0,
        }
    }

    /// Whether the programs enforce policy now.
    pub fn enforcing(self) -> bool {
        !self.command_off && !self.node_label_off
    }
}

/// Whether a Node's labels ask for enforcement to be off (`palisade.dev/enforcement`
/// = `off`; any other value, or none, leaves it on).
pub fn label_says_off(labels: &serde_json::Value) -> bool {
    labels.get(NODE_LABEL).and_then(|v| v.as_str()) == Some("off")
}

/// The pinned `PALISADE_CONFIG` of the agent owning `pin_path`.
pub struct Switch {
    config: Array<MapData, NodeConfig>,
}

impl Switch {
    /// Opens the pinned map; fails clearly if no agent has pinned its maps there.
    pub fn open(pin_path: &Path) -> Result<Self> {
        if !pins::is_bpffs(pin_path)? {
            bail!(
                "--pin-path {} is not on a bpf filesystem: no palisade agent pins there",
                pin_path.display()
            );
        }
        let pin = PinLayout::new(pin_path)
            .maps_dir()
            .join(map_names::NODE_CONFIG);
        let data = MapData::from_pin(&pin).with_context(|| {
            format!(
                "opening {} (has a palisade agent of this version run with --pin-path {}?)",
                pin.display(),
                pin_path.display()
            )
        })?;
        let config = Array::try_from(Map::Array(data))
            .with_context(|| format!("{} is not the node config array", pin.display()))?;
        if config.len() <= NODE_CONFIG_SWITCHES {
            bail!(
                "{} has no switches entry (pinned by an older agent): restart the agent after \
                 `palisade-agent cleanup`, or remove the pod cgroups' enforcement another way",
                pin.display()
            );
        }
        Ok(Self { config })
    }

    pub fn state(&self) -> Result<SwitchState> {
        Ok(SwitchState::from_flags(self.flags()?))
    }

    fn flags(&self) -> Result<u32> {
        Ok(self
            .config
            .get(&NODE_CONFIG_SWITCHES, 0)
            .context("reading the switches entry of PALISADE_CONFIG")?
            .flags)
    }

    /// Sets or clears `bits` in the switches entry, leaving the others alone.
    fn set_bits(&mut self, bits: u32, on: bool) -> Result<SwitchState> {
        let flags = self.flags()?;
        let flags = if on { flags | bits } else { flags & !bits };
        let value = NodeConfig {
            flags,
            ..Default::default()
        };
        self.config
            .set(NODE_CONFIG_SWITCHES, value, 0)
            .context("writing the switches entry of PALISADE_CONFIG")?;
        Ok(SwitchState::from_flags(flags))
    }

    /// `palisade-agent enforcement off` (`off` = true) or `on`: `on` clears both bits
    /// (a running Kubernetes-mode agent sets the label's bit again while the label
    /// says off).
    pub fn set_by_command(&mut self, off: bool) -> Result<SwitchState> {
        if off {
            self.set_bits(node_flags::ENFORCEMENT_OFF, true)
        } else {
            self.set_bits(node_flags::ENFORCEMENT_OFF_ANY, false)
        }
    }

    /// The agent following its Node's label: only the label's bit.
    pub fn set_by_node_label(&mut self, off: bool) -> Result<SwitchState> {
        self.set_bits(node_flags::ENFORCEMENT_OFF_NODE_LABEL, off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn state_names_each_owner() {
        assert!(SwitchState::from_flags(0).enforcing());
        let command = SwitchState::from_flags(node_flags::ENFORCEMENT_OFF);
        assert!(command.command_off && !command.node_label_off && !command.enforcing());
        let label = SwitchState::from_flags(node_flags::ENFORCEMENT_OFF_NODE_LABEL);
        assert!(!label.command_off && label.node_label_off && !label.enforcing());
        // Other node flags are not the switch.
        assert!(SwitchState::from_flags(node_flags::ALLOW_EVENTS).enforcing());
    }

    #[test]
    fn only_the_value_off_switches_off() {
        assert!(label_says_off(&json!({NODE_LABEL: "off"})));
        assert!(!label_says_off(&json!({NODE_LABEL: "on"})));
        assert!(!label_says_off(&json!({NODE_LABEL: "OFF"})));
        assert!(!label_says_off(&json!({})));
        assert!(!label_says_off(&json!(null)));
    }
}
