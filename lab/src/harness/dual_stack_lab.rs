//! The lab most kernel tests build: a node at 10.90.0.1 and fd00:90::1, and pods
//! numbered N at 10.90.0.N and fd00:90::N.

use super::binaries::require_root;
use crate::{Lab, LabConfig, PodHandle, PodSpec};
use anyhow::Result;

/// A lab (cgroup prefix `prefix`) with one dual-stack pod per `(name, N)`, in order.
/// Needs root.
pub fn dual_stack_lab(prefix: &str, pods: &[(&str, u8)]) -> Result<(Lab, Vec<PodHandle>)> {
    require_root()?;
    let mut lab = Lab::with_config(
        prefix,
        LabConfig {
            node_ipv4: Some("10.90.0.1".parse()?),
            node_ipv6: Some("fd00:90::1".parse()?),
            ..Default::default()
        },
    )?;
    let mut handles = Vec::new();
    for (name, n) in pods {
        handles.push(lab.add_pod(PodSpec::dual_stack(
            name,
            format!("10.90.0.{n}").parse()?,
            format!("fd00:90::{n}").parse()?,
        ))?);
    }
    Ok((lab, handles))
}
