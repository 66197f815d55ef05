//! SCTP cannot be opened on this kernel (CONFIG_IP_SCTP is unset), so SCTP port
//! matching is proven with BPF_PROG_TEST_RUN: crafted SCTP packets through the real
//! egress and ingress programs, with tables compiled from a real NetworkPolicy, and
//! the kernel's answers compared with the reference evaluator's (what `palisadectl
//! check` reports). Needs root.

use anyhow::{Context, Result, ensure};
use aya::programs::{TestRun, TestRunOptions};
use palisade_abi::{NodeConfig, program_names, verdict};
use palisade_agent::cgroupfs;
use palisade_agent::datapath::Datapath;
use palisade_agent::desired;
use palisade_agent::pins::{self, PinLayout};
use palisade_lab::harness::binaries::require_root;
use palisade_lab::test_run;
use palisade_policy::evaluate::TableEvaluator;
use palisade_policy::model::{Direction, ObjectRef};
use std::collections::BTreeMap;
use std::net::IpAddr;

const NODE: &str = "node-1";
const SCTP: u8 = 132;
const TCP: u8 = 6;
const UDP: u8 = 17;

/// `client` may send only SCTP 9003 (and the range 9100-9199) to `server`; `server`
/// accepts SCTP 9003 from `client` only.
const MANIFESTS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: hpc, labels: {app: client}}
spec: {nodeName: node-1}
status: {podIP: 10.77.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: hpc, labels: {app: server}}
spec:
  nodeName: node-1
  containers:
    - name: s
      ports: [{name: sctp-rpc, containerPort: 9003, protocol: SCTP}]
status: {podIP: 10.77.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress, namespace: hpc}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
    - to: [{podSelector: {matchLabels: {app: server}}}]
      ports:
        - {protocol: SCTP, port: 9003}
        - {protocol: SCTP, port: 9100, endPort: 9199}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-ingress, namespace: hpc}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
  ingress:
    - from: [{podSelector: {matchLabels: {app: client}}}]
      ports: [{protocol: SCTP, port: sctp-rpc}]
"#;

#[test]
fn sctp_ports_are_matched_in_the_kernel_as_the_simulator_says() -> Result<()> {
    require_root()?;
    // Test runs use the calling thread's network namespace: give this work a thread
    // (and a namespace with a device) of its own.
    std::thread::spawn(run)
        .join()
        .expect("test thread panicked")
}

fn run() -> Result<()> {
    let ifindex = test_run::private_network_device()?;
    let objects = palisade_policy::manifest::parse_documents("sctp.yaml", MANIFESTS)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let cluster = palisade_policy::manifest::build_cluster(
        objects.into_iter().map(|o| ("sctp.yaml".to_string(), o)),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let compiled = palisade_policy::compile::compile(&cluster);

    let pin_path = format!("/sys/fs/bpf/palisade-test-sctp-{}", std::process::id());
    pins::ensure_bpffs(std::path::Path::new(&pin_path), true)?;
    let layout = PinLayout::new(&pin_path);
    let _cleanup = PinsGuard(layout.clone());
    let mut datapath = Datapath::load(&layout)?;

    // A test run's packet belongs to a socket in this process's cgroup: that cgroup
    // plays each pod in turn (nothing is attached anywhere).
    let mount = cgroupfs::cgroup2_mount()?;
    let own = cgroupfs::cgroup_id(&cgroupfs::own_cgroup(&mount)?)?;
    let pod_ips: BTreeMap<ObjectRef, Vec<IpAddr>> = cluster
        .pods
        .iter()
        .map(|(r, p)| (r.clone(), p.ips.clone()))
        .collect();
    let config = NodeConfig {
        unknown_endpoint_verdict: u32::from(verdict::DENY),
        ..Default::default()
    };
    let evaluator = TableEvaluator::new(&compiled, NODE);
    let client: IpAddr = "10.77.0.1".parse()?;
    let server: IpAddr = "10.77.0.2".parse()?;

    let mut rows = Vec::new();
    for (side, pod, program, dir) in [
        (
            "egress at client",
            "client",
            program_names::SKB_EGRESS,
            Direction::Egress,
        ),
        (
            "ingress at server",
            "server",
            program_names::SKB_INGRESS,
            Direction::Ingress,
        ),
    ] {
        let pod_ref = ObjectRef {
            namespace: "hpc".into(),
            name: pod.into(),
        };
        let ids = BTreeMap::from([(pod_ref.clone(), own)]);
        datapath
            .tables
            .apply(&desired::build(&compiled, NODE, &ids, &pod_ips, config))?;
        let endpoint = compiled.nodes[NODE]
            .endpoints
            .iter()
            .find(|e| e.pod == pod_ref)
            .context("endpoint missing")?;
        for (n, (protocol, port)) in [
            (SCTP, 9003),
            (SCTP, 9005),
            (SCTP, 9100),
            (SCTP, 9150),
            (SCTP, 9199),
            (SCTP, 9200),
            (TCP, 9003),
            (UDP, 9003),
        ]
        .into_iter()
        .enumerate()
        {
            let sport = 40_000 + n as u16;
            let packet = test_run::ip_packet(client, server, protocol, sport, port);
            let ctx = test_run::skb_context(ifindex);
            let mut opts = TestRunOptions::new();
            opts.data_in = Some(&packet);
            opts.ctx_in = Some(&ctx);
            let kernel = datapath.program(program)?.test_run(opts)?.return_value == 1;
            let peer = if dir == Direction::Egress {
                server
            } else {
                client
            };
            let simulator = evaluator
                .decide(endpoint, dir, peer, protocol, port)
                .verdict
                .abi()
                == verdict::ALLOW;
            rows.push((side, protocol, port, kernel, simulator));
        }
    }
    println!(
        "{:18} {:>8} {:>6} {:>8} {:>10}",
        "side", "protocol", "port", "kernel", "simulator"
    );
    let word = |allowed: bool| if allowed { "allow" } else { "deny" };
    for (side, protocol, port, kernel, simulator) in &rows {
        println!(
            "{side:18} {protocol:>8} {port:>6} {:>8} {:>10}",
            word(*kernel),
            word(*simulator)
        );
    }
    let disagree: Vec<_> = rows.iter().filter(|r| r.3 != r.4).collect();
    ensure!(
        disagree.is_empty(),
        "kernel and simulator disagree on {disagree:?}"
    );
    // And the expectations themselves (so the test cannot pass with both wrong).
    let allowed = |side: &str, protocol: u8, port: u16| {
        rows.iter()
            .find(|r| r.0 == side && r.1 == protocol && r.2 == port)
            .map(|r| r.3)
    };
    ensure!(allowed("egress at client", SCTP, 9003) == Some(true));
    ensure!(allowed("egress at client", SCTP, 9005) == Some(false));
    ensure!(allowed("egress at client", SCTP, 9150) == Some(true));
    ensure!(allowed("egress at client", SCTP, 9200) == Some(false));
    ensure!(allowed("egress at client", TCP, 9003) == Some(false));
    ensure!(
        allowed("ingress at server", SCTP, 9003) == Some(true),
        "named SCTP port"
    );
    ensure!(allowed("ingress at server", SCTP, 9100) == Some(false));
    ensure!(allowed("ingress at server", UDP, 9003) == Some(false));
    Ok(())
}

/// Removes the test's pins whatever happens.
struct PinsGuard(PinLayout);

impl Drop for PinsGuard {
    fn drop(&mut self) {
        if let Err(e) = self.0.remove_all() {
            eprintln!("removing test pins: {e:#}");
        }
    }
}
