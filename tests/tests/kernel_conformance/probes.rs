//! Which probes run in the kernel, and running them. A TCP or UDP probe becomes a
//! netprobe connection (TCP: connect and echo; UDP: a datagram and its echo) from the
//! source pod's container cgroup to the destination address (`dst_ip`, else the
//! destination pod's address); it is allowed when the echo comes back. Some probes
//! cannot run here; each such class is counted and named in the report.

use super::cases::{Case, Probe};
use super::testbed::{Testbed, pod_key};
use anyhow::{Context, Result, bail};
use palisade_lab::{Lab, ProbeSpec, Proto};
use std::net::IpAddr;
use std::time::Duration;

/// Timeout of a probe's first attempt. On a local veth an allowed connection
/// completes in well under a millisecond; a denied one times out (an ingress drop)
/// or fails at once (an egress drop of a datagram).
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Timeout of the second attempt of a probe whose first disagreed with
/// palisadectl, so that a slow moment of the machine is not taken for a denial.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(2);

/// How many probes run at once (most of the time of a batch is denied probes
/// waiting out their timeout).
const PARALLELISM: usize = 12;

/// Why a probe does not run in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exclusion {
    /// The lab's netprobe speaks TCP and UDP only (and this kernel may have no SCTP).
    Sctp,
    /// A host-network pod's connections come from its node, which this lab emulates
    /// only as a destination (servers bound to the node's addresses).
    FromHostNetwork,
}

impl Exclusion {
    pub fn reason(self, kernel_has_sctp: bool) -> &'static str {
        match (self, kernel_has_sctp) {
            (Exclusion::Sctp, false) => "no SCTP in this kernel; the simulator covers them",
            (Exclusion::Sctp, true) => {
                "the lab's netprobe speaks TCP and UDP only; the simulator covers them"
            }
            (Exclusion::FromHostNetwork, _) => {
                "from host-network pods: the lab emulates node addresses only as \
                 destinations; the simulator covers them"
            }
        }
    }
}

/// A probe as the kernel run sees it.
pub enum Plan {
    Run(ProbeSpec),
    Excluded(Exclusion),
}

/// How `probe` of `case` runs on `testbed`.
pub fn plan(testbed: &Testbed, case: &Case, probe: &Probe) -> Result<Plan> {
    let proto = match probe.protocol.to_ascii_uppercase().as_str() {
        "TCP" => Proto::Tcp,
        "UDP" => Proto::Udp,
        "SCTP" => return Ok(Plan::Excluded(Exclusion::Sctp)),
        other => bail!("probe of protocol {other:?}: this harness runs TCP and UDP"),
    };
    if testbed.is_host_network(&probe.from) {
        return Ok(Plan::Excluded(Exclusion::FromHostNetwork));
    }
    let from = testbed
        .pod(&probe.from)
        .with_context(|| format!("probe from {}: no such pod", probe.from))?;
    let to = match &probe.dst_ip {
        Some(ip) => ip.as_str(),
        None => {
            let pod = case.cluster.pods.iter().find(|p| pod_key(p) == probe.to);
            &pod.with_context(|| format!("probe to {}: no such pod", probe.to))?
                .ip
        }
    };
    let to: IpAddr = to
        .parse()
        .with_context(|| format!("probe to {}: bad address {to:?}", probe.to))?;
    Ok(Plan::Run(
        ProbeSpec::new(from, to, proto, probe.port).with_timeout(PROBE_TIMEOUT),
    ))
}

/// What the kernel did with a probe: its last attempt, and its first when that one
/// disagreed with palisadectl and the probe was run again with [`RETRY_TIMEOUT`].
pub use palisade_lab::RecheckedProbe as KernelResult;

/// Runs every probe, then once more with a long timeout each whose result differs
/// from `simulator_allows` (palisadectl's verdict, per probe).
pub fn run(lab: &Lab, specs: &[ProbeSpec], simulator_allows: &[bool]) -> Result<Vec<KernelResult>> {
    lab.probe_all_rechecking(specs, simulator_allows, PARALLELISM, RETRY_TIMEOUT)
}
