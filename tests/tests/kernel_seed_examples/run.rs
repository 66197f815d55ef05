//! One variant of one example through the kernel: its pods emulated, its manifests
//! (cgroup annotations pointing at the emulated cgroups) applied by
//! `palisade-agent standalone`, `palisadectl check` run on the same directory, and
//! every probe the kernel can run made as a real connection.

use super::agents::Agents;
use super::cgroup_annotations;
use super::example::{
    Probe, examples_dir, load, pod_ref, probes_file, protocol, read_probes, simulate,
};
use super::testbed::Testbed;
use anyhow::{Context, Result, bail};
use palisade_lab::{Outcome, ProbeOrigin, ProbeSpec, Proto, RecheckedProbe};
use palisade_policy::model::{Cluster, Protocol};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

/// Timeout of a probe's first attempt. On a local veth an allowed connection
/// completes in well under a millisecond; a denied one times out (an ingress drop)
/// or fails at once (an egress drop).
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Timeout of the second attempt of a probe whose first disagreed with palisadectl,
/// so that a slow moment of the machine is not taken for a denial.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(2);

/// How many probes run at once (most of the time is denied probes waiting out their
/// timeout).
const PARALLELISM: usize = 12;

/// Whether a verdict (or an expectation) lets the traffic through: `audit-deny` does.
pub fn passes(verdict: &str) -> bool {
    matches!(verdict, "allow" | "audit-deny")
}

/// One probe of the example, and what palisadectl and the kernel said.
pub struct ProbeOutcome {
    pub probe: Probe,
    /// palisadectl's verdict.
    pub simulator: String,
    /// The real connection; none for a probe with an end outside the cluster
    /// (`"kernel": false`), which only the simulator decides.
    pub kernel: Option<RecheckedProbe>,
}

impl ProbeOutcome {
    /// palisadectl says what the guide expects, and the kernel (where it ran) lets
    /// the traffic through exactly when that verdict does. A connection refused or
    /// unreachable is never agreement: the datapath drops (a timeout, or `EPERM` at
    /// the sender), so such an answer came from the lab (nothing listening), not from
    /// policy.
    pub fn agrees(&self) -> bool {
        self.simulator == self.probe.expect
            && self.kernel.as_ref().is_none_or(|kernel| {
                kernel.allowed() == passes(&self.probe.expect)
                    && matches!(
                        kernel.result.outcome,
                        Outcome::Connected | Outcome::TimedOut | Outcome::PermissionDenied
                    )
            })
    }
}

pub struct VariantOutcome {
    pub platform: String,
    pub variant: String,
    pub pods: usize,
    /// Runs emulated as child cgroups of their Runtime Pod.
    pub runs: usize,
    pub nodes: Vec<String>,
    /// Building the lab and starting the agents until the manifests were applied.
    pub setup: Duration,
    /// palisadectl and the kernel probes.
    pub probing: Duration,
    pub probes: Vec<ProbeOutcome>,
    /// The agents' counters and logs, when a probe disagreed.
    pub diagnostics: Option<String>,
}

impl VariantOutcome {
    pub fn all_agree(&self) -> bool {
        self.probes.iter().all(ProbeOutcome::agrees)
    }
}

/// Runs `variant` of `platform` with palisadectl at `ctl`.
pub fn run_variant(ctl: &Path, platform: &str, variant: &str) -> Result<VariantOutcome> {
    let started = Instant::now();
    let probes = read_probes(platform)?;
    let manifests = examples_dir().join(platform).join(variant);
    let cluster = load(&manifests)?;
    let testbed = Testbed::build(&cluster)?;
    let files = cgroup_annotations::rewrite(&manifests, &cluster, &|pod| testbed.cgroup_path(pod))?;
    let mut agents = Agents::start(&testbed.lab, &testbed.nodes, &files)?;
    agents.apply(&files)?;
    let setup = started.elapsed();

    let started = Instant::now();
    let verdicts = simulate(ctl, agents.dir(), &probes_file(platform), probes.len())?;
    let mut specs = Vec::new();
    let mut in_kernel = Vec::new();
    for probe in probes.iter().filter(|probe| probe.kernel) {
        let spec = plan(&testbed, &cluster, probe).with_context(|| {
            format!(
                "probe {} -> {} {}/{}",
                probe.from, probe.to, probe.port, probe.protocol
            )
        })?;
        specs.push(spec);
    }
    for (probe, verdict) in probes.iter().zip(&verdicts) {
        if probe.kernel {
            in_kernel.push(passes(verdict));
        }
    }
    let marks = agents.log_marks();
    let mut kernel = testbed
        .lab
        .probe_all_rechecking(&specs, &in_kernel, PARALLELISM, RETRY_TIMEOUT)?
        .into_iter();
    let outcomes: Vec<ProbeOutcome> = probes
        .into_iter()
        .zip(verdicts)
        .map(|(probe, simulator)| ProbeOutcome {
            kernel: if probe.kernel { kernel.next() } else { None },
            probe,
            simulator,
        })
        .collect();
    let probing = started.elapsed();
    let (pods, runs) = testbed.counts();
    let mut outcome = VariantOutcome {
        platform: platform.to_string(),
        variant: variant.to_string(),
        pods,
        runs,
        nodes: agents.nodes().into_iter().map(str::to_string).collect(),
        setup,
        probing,
        probes: outcomes,
        diagnostics: None,
    };
    if !outcome.all_agree() {
        let flows: Vec<(String, String)> = outcome
            .probes
            .iter()
            .filter(|o| o.kernel.is_some())
            .zip(&specs)
            .filter(|(o, _)| !o.agrees())
            .flat_map(|(o, spec)| flow_ends(&o.probe.from, spec))
            .collect();
        outcome.diagnostics = Some(agents.diagnostics(&marks, &flows));
    }
    Ok(outcome)
}

/// The connection a probe makes: from its source pod (or Run) to `dst_ip`, else the
/// destination pod's first address.
fn plan(testbed: &Testbed, cluster: &Cluster, probe: &Probe) -> Result<ProbeSpec> {
    let (Some(from), Some(to)) = (pod_ref(&probe.from), pod_ref(&probe.to)) else {
        bail!("an end outside the cluster: such a probe needs \"kernel\": false");
    };
    let origin = testbed
        .origin(&from)
        .with_context(|| format!("{from} is not an emulated pod (no such pod, or host network)"))?;
    let address = match probe.dst_ip {
        Some(address) => address,
        None => *cluster
            .pods
            .get(&to)
            .and_then(|pod| pod.ips.first())
            .with_context(|| format!("{to}: no such pod, or it has no address"))?,
    };
    let proto = match protocol(&probe.protocol) {
        Some(Protocol::Tcp) => Proto::Tcp,
        Some(Protocol::Udp) => Proto::Udp,
        Some(Protocol::Sctp) => bail!("SCTP: the lab's netprobe speaks TCP and UDP only"),
        None => bail!("unknown protocol {:?}", probe.protocol),
    };
    Ok(ProbeSpec {
        origin,
        to: address,
        proto,
        port: probe.port,
        timeout: PROBE_TIMEOUT,
    })
}

/// What the agents' flow events of a probe from pod `from` contain, as pairs of texts
/// that both appear in one: the source pod and the destination `address:port`
/// (`"ns/name"` and `10.0.1.2:80"`; an egress event, also one refused before it had a
/// local address), and the source address and the destination (`"10.0.1.1:` and
/// `10.0.1.2:80"`, `"[fd00::1]:` and `[fd00::2]:80"`; an ingress event).
fn flow_ends(from: &str, spec: &ProbeSpec) -> Vec<(String, String)> {
    let to = format!("{}\"", SocketAddr::new(spec.to, spec.port));
    let mut ends = vec![(format!("\"{from}\""), to.clone())];
    if let ProbeOrigin::Pod(pod) | ProbeOrigin::PodCgroup(pod, _) = &spec.origin {
        let source = match spec.to {
            IpAddr::V4(_) => pod.ipv4().map(IpAddr::V4),
            IpAddr::V6(_) => pod.ipv6().map(IpAddr::V6),
        };
        if let Some(source) = source {
            let source = SocketAddr::new(source, 0).to_string();
            ends.push((format!("\"{}", source.trim_end_matches('0')), to));
        }
    }
    ends
}
