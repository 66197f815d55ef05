//! The controller at cluster scale: the real `palisade-controller` binary (its own
//! process, so its memory is its own) against the in-process API-server double seeded
//! with a synthetic cluster (the layout of the `compile` benchmark: nodes, namespaces,
//! pods of five apps per namespace, five NetworkPolicies per namespace).
//!
//! Reports the initial sync (controller start to `/readyz`: everything listed,
//! compiled and published), the controller's RSS (VmRSS and VmHWM), then pods created
//! and NetworkPolicies changed one at a time, each timed from the write to the double
//! to the last object it affects having been stored by the double (a pod: its node's
//! NodePolicy and the ipcache shard of its address; a policy: the NodePolicies of the
//! nodes running the pods it selects), observed by polling the double's per-object
//! write counters. Absolute numbers; nothing is asserted.

use anyhow::{Context, Result, bail};
use palisade_apiserver_double::{ApiServerDouble, Options, ResourceType};
use palisade_controller::publication::shard_of;
use palisade_crds::publication::NODE_POLICY_PLURAL;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GROUP: &str = "palisade.dev";
/// Apps per namespace and policies per namespace (as in the `compile` benchmark).
const APPS: usize = 5;
const POLICIES_PER_NAMESPACE: usize = 5;
/// A change not published within this long is reported as lost (a hang guard).
const CHANGE_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub nodes: usize,
    pub namespaces: usize,
    pub pods: usize,
}

pub const FULL: Scale = Scale {
    nodes: 5_000,
    namespaces: 2_000,
    pods: 150_000,
};

/// Kills the controller (by its pid) however the benchmark ends.
pub(crate) struct Controller(pub(crate) Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Timings {
    kind: &'static str,
    /// Milliseconds, one per change.
    samples: Vec<f64>,
    /// Objects the double stored per change (its revision advance, minus the change).
    writes: Vec<u64>,
}

impl Timings {
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }
}

pub fn run(
    scale: Scale,
    pod_changes: usize,
    policy_changes: usize,
    bin: Option<PathBuf>,
) -> Result<()> {
    let bin = match bin {
        Some(bin) => bin,
        None => std::env::current_exe()?
            .parent()
            .context("the benchmark's directory")?
            .join("palisade-controller"),
    };
    let runtime = runtime()?;
    let _entered = runtime.enter();
    let double = start_double(&runtime)?;
    let started = Instant::now();
    seed(&double, scale)?;
    eprintln!(
        "  seeded the double: {} nodes, {} namespaces, {} pods, {} NetworkPolicies in {:.1} s",
        scale.nodes,
        scale.namespaces,
        scale.pods,
        scale.namespaces * POLICIES_PER_NAMESPACE,
        started.elapsed().as_secs_f64()
    );

    let dir =
        std::env::temp_dir().join(format!("palisade-bench-controller-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    write_kubeconfig(&kubeconfig, &double.url())?;
    let log = dir.join("controller.log");
    let started = Instant::now();
    let (controller, health) = spawn_controller(&bin, &kubeconfig, &log)?;
    let pid = controller.0.id();
    wait_ready(health, Duration::from_secs(1800))?;
    let sync_s = started.elapsed().as_secs_f64();
    let build_s = whole_model_seconds(&log);
    let (rss_sync, hwm_sync) = rss_mib(pid)?;
    eprintln!(
        "  initial sync {sync_s:.1} s (whole-model compile and publication build {build_s:.1} s); controller RSS {rss_sync:.0} MiB (peak {hwm_sync:.0} MiB)"
    );

    let pods = time_pod_creations(&double, scale, pod_changes)?;
    eprintln!(
        "  pod created: p50 {:.2} ms, p99 {:.2} ms ({} runs)",
        pods.percentile(50.0),
        pods.percentile(99.0),
        pods.samples.len()
    );
    let policies = time_policy_changes(&double, scale, policy_changes)?;
    eprintln!(
        "  NetworkPolicy changed: p50 {:.1} ms, p99 {:.1} ms ({} runs)",
        policies.percentile(50.0),
        policies.percentile(99.0),
        policies.samples.len()
    );
    let (rss_end, hwm_end) = rss_mib(pid)?;
    drop(controller);
    let _ = std::fs::remove_file(&kubeconfig);
    eprintln!("  the controller's log: {}", log.display());
    report(
        scale,
        sync_s,
        build_s,
        (rss_sync, hwm_sync),
        (rss_end, hwm_end),
        &[pods, policies],
    )
}

/// The runtime the double runs on (one worker: the benchmark's thread polls).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

/// The API-server double with palisade's publication kinds, on `runtime`.
pub(crate) fn start_double(runtime: &tokio::runtime::Runtime) -> Result<ApiServerDouble> {
    let double = runtime.block_on(ApiServerDouble::start_with(Options {
        bookmark_interval: Duration::from_secs(1),
        ..Options::default()
    }))?;
    register_publication_kinds(&double)?;
    Ok(double)
}

/// Registers the publication kinds (ClusterTable, NodePolicy) from their CRDs.
pub(crate) fn register_publication_kinds(double: &ApiServerDouble) -> Result<()> {
    for definition in palisade_crds::publication::publication_definitions() {
        let kind = ResourceType::from_crd(&definition.crd)
            .with_context(|| format!("the CRD of {}", definition.file_name))?;
        double.register(kind);
    }
    Ok(())
}

/// A kubeconfig for the double at `url`.
pub(crate) fn write_kubeconfig(path: &Path, url: &str) -> Result<()> {
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: d, cluster: {{server: \"{url}\"}}}}]\n\
             users: [{{name: u, user: {{}}}}]\n\
             contexts: [{{name: c, context: {{cluster: d, user: u, namespace: default}}}}]\n\
             current-context: c\n"
        ),
    )?;
    Ok(())
}

/// `palisade-controller run` against the double (`--debounce-ms 0`, JSON log to
/// `log`); returns it and its health address.
pub(crate) fn spawn_controller(
    bin: &Path,
    kubeconfig: &Path,
    log: &Path,
) -> Result<(Controller, SocketAddr)> {
    let health = free_addr()?;
    let metrics = free_addr()?;
    let controller = Controller(
        Command::new(bin)
            .args([
                "run",
                "--log-json",
                "--identity",
                "bench",
                "--debounce-ms",
                "0",
            ])
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--health-addr")
            .arg(health.to_string())
            .arg("--metrics-addr")
            .arg(metrics.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?,
    );
    Ok((controller, health))
}

pub(crate) fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

pub(crate) fn insert(
    double: &ApiServerDouble,
    group: &str,
    plural: &str,
    object: Value,
) -> Result<()> {
    double
        .insert(group, plural, object)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("seeding {plural}: {e:?}"))
}

fn pod_ip(ns: usize, p: usize) -> Ipv4Addr {
    // 10.0.0.0/8, numbered through the namespaces as the compile benchmark does.
    Ipv4Addr::from(0x0a00_0000u32 + (ns * pods_per_namespace_hint() + p) as u32 + 1)
}

/// Pods per namespace (150,000 / 2,000 at every scale this benchmark runs).
fn pods_per_namespace_hint() -> usize {
    FULL.pods / FULL.namespaces
}

fn node_of(ip: Ipv4Addr, scale: Scale) -> String {
    format!("node-{:05}", (u32::from(ip) as usize * 7919) % scale.nodes)
}

fn pod(namespace: &str, name: &str, app: usize, ip: Ipv4Addr, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app": format!("app-{app}"), "tier": format!("t{app}")}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i",
                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}]}})
}

fn seed(double: &ApiServerDouble, scale: Scale) -> Result<()> {
    if scale.pods / scale.namespaces != pods_per_namespace_hint() {
        bail!("the benchmark keeps 75 pods per namespace");
    }
    for namespace in ["palisade-system", "default"] {
        insert(
            double,
            "",
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        )?;
    }
    for n in 0..scale.nodes {
        let addr = Ipv4Addr::from(0xac10_0000u32 + n as u32 + 1);
        insert(
            double,
            "",
            "nodes",
            json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": format!("node-{n:05}"), "labels": {"zone": format!("z{}", n % 3)}},
                "status": {"addresses": [{"type": "InternalIP", "address": addr.to_string()}]}}),
        )?;
    }
    for ns in 0..scale.namespaces {
        let namespace = format!("ns-{ns:05}");
        insert(
            double,
            "",
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {"team": format!("team-{}", ns % 50)}}}),
        )?;
        for p in 0..pods_per_namespace_hint() {
            let ip = pod_ip(ns, p);
            let app = p % APPS;
            let name = format!("app-{app}-{p:04}");
            insert(
                double,
                "",
                "pods",
                pod(&namespace, &name, app, ip, &node_of(ip, scale)),
            )?;
        }
        for k in 0..POLICIES_PER_NAMESPACE {
            insert(
                double,
                "networking.k8s.io",
                "networkpolicies",
                network_policy(&namespace, ns, k, 8080),
            )?;
        }
    }
    Ok(())
}

/// The k-th policy of namespace `ns` (the mix of the `compile` benchmark); `port` is
/// the port of policy 2, which the policy changes vary.
fn network_policy(namespace: &str, ns: usize, k: usize, port: u16) -> Value {
    let app = |i: usize| json!({"matchLabels": {"app": format!("app-{}", i % APPS)}});
    let spec = match k {
        0 => json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        1 => json!({"podSelector": app(1), "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": app(0)}], "ports": [{"protocol": "TCP", "port": "http"}]}]}),
        2 => json!({"podSelector": app(2), "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": format!("team-{}", ns % 50)}},
                                   "podSelector": app(1)}],
                         "ports": [{"protocol": "TCP", "port": port}]}]}),
        3 => json!({"podSelector": app(3), "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "192.0.2.0/24", "except": ["192.0.2.1/32"]}}],
                        "ports": [{"protocol": "TCP", "port": 8000, "endPort": 8100}]}]}),
        _ => json!({"podSelector": app(4), "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": format!("team-{}", (ns + 1) % 50)}},
                                   "podSelector": app(2)}],
                         "ports": [{"protocol": "TCP", "port": 8080}]}]}),
    };
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": format!("policy-{k}"), "namespace": namespace}, "spec": spec})
}

/// Waits until `GET /readyz` answers 200.
pub(crate) fn wait_ready(health: SocketAddr, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if http_status(health, "/readyz") == Some(200) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{health} was not ready within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    http_get(addr, path).map(|(code, _)| code)
}

/// The body of a 200 answer to `GET path`.
pub(crate) fn http_body(addr: SocketAddr, path: &str) -> Option<String> {
    http_get(addr, path).and_then(|(code, body)| (code == 200).then_some(body))
}

fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((code, body.to_string()))
}

/// The controller's own report of its whole-model compile, from its log.
fn whole_model_seconds(log: &Path) -> f64 {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|line| line.contains("compiled the whole model"))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|v| v["fields"]["seconds"].as_f64())
        .next_back()
        .unwrap_or(f64::NAN)
}

/// (VmRSS, VmHWM) of `pid` in MiB.
pub(crate) fn rss_mib(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// Stored writes of each object in `objects` (group, plural, name).
fn write_counts(double: &ApiServerDouble, objects: &[(String, String)]) -> Vec<u64> {
    objects
        .iter()
        .map(|(plural, name)| double.stored_writes(GROUP, plural, "", name))
        .collect()
}

/// Makes the change `write`, then polls until every object in `affected` has been
/// stored once more; returns the milliseconds from the write to the last of them and
/// how many objects the double stored meanwhile (besides the change).
fn time_change(
    double: &ApiServerDouble,
    affected: &[(String, String)],
    write: impl FnOnce() -> Result<()>,
) -> Result<(f64, u64)> {
    let before = write_counts(double, affected);
    let revision = double.revision();
    let started = Instant::now();
    write()?;
    let mut pending: Vec<usize> = (0..affected.len()).collect();
    while !pending.is_empty() {
        pending.retain(|&i| {
            let (plural, name) = &affected[i];
            double.stored_writes(GROUP, plural, "", name) <= before[i]
        });
        if started.elapsed() > CHANGE_DEADLINE {
            bail!("not published within {CHANGE_DEADLINE:?}: {pending:?} of {affected:?}");
        }
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let elapsed = started.elapsed().as_secs_f64() * 1e3;
    // Let trailing writes of the same change land before counting them.
    std::thread::sleep(Duration::from_millis(50));
    Ok((elapsed, double.revision() - revision - 1))
}

fn ipcache_shards(double: &ApiServerDouble) -> u32 {
    double
        .get(GROUP, "clustertables", "", "ipcache-000")
        .and_then(|v| v["spec"]["shards"].as_u64())
        .unwrap_or(1) as u32
}

/// Pods created with the labels of an existing app (an existing identity), on the
/// node the synthetic layout would put them on.
fn time_pod_creations(double: &ApiServerDouble, scale: Scale, count: usize) -> Result<Timings> {
    let mut timings = Timings {
        kind: "pod created",
        samples: Vec::new(),
        writes: Vec::new(),
    };
    for i in 0..count {
        let ns = (i * 37) % scale.namespaces;
        let namespace = format!("ns-{ns:05}");
        let ip = Ipv4Addr::from(0x0afa_0000u32 + i as u32 + 1); // 10.250.0.0/16
        let node = node_of(ip, scale);
        let shard = shard_of(&format!("{ip}/32"), ipcache_shards(double));
        let affected = vec![
            (NODE_POLICY_PLURAL.to_string(), node.clone()),
            ("clustertables".to_string(), format!("ipcache-{shard:03}")),
        ];
        let object = pod(&namespace, &format!("bench-{i}"), 1, ip, &node);
        let (ms, writes) = time_change(double, &affected, || insert(double, "", "pods", object))?;
        timings.samples.push(ms);
        timings.writes.push(writes);
    }
    Ok(timings)
}

/// Policy 2 of a namespace gets another port: the NodePolicies of the nodes running
/// that namespace's app-2 pods change.
fn time_policy_changes(double: &ApiServerDouble, scale: Scale, count: usize) -> Result<Timings> {
    let mut timings = Timings {
        kind: "NetworkPolicy changed",
        samples: Vec::new(),
        writes: Vec::new(),
    };
    for i in 0..count {
        let ns = (i * 53 + 11) % scale.namespaces;
        let namespace = format!("ns-{ns:05}");
        let mut nodes: Vec<String> = (0..pods_per_namespace_hint())
            .filter(|p| p % APPS == 2)
            .map(|p| node_of(pod_ip(ns, p), scale))
            .collect();
        nodes.sort();
        nodes.dedup();
        let affected: Vec<(String, String)> = nodes
            .into_iter()
            .map(|n| (NODE_POLICY_PLURAL.to_string(), n))
            .collect();
        let port = 9000 + i as u16;
        let spec = network_policy(&namespace, ns, 2, port)["spec"].clone();
        let (ms, writes) = time_change(double, &affected, || {
            double
                .patch(
                    "networking.k8s.io",
                    "networkpolicies",
                    &namespace,
                    "policy-2",
                    json!({"spec": spec}),
                )
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("changing policy-2 of {namespace}: {e:?}"))
        })?;
        timings.samples.push(ms);
        timings.writes.push(writes);
    }
    Ok(timings)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cpu}, {cores} cores, {memory:.0} GiB")
}

fn report(
    scale: Scale,
    sync_s: f64,
    build_s: f64,
    after_sync: (f64, f64),
    at_end: (f64, f64),
    timings: &[Timings],
) -> Result<()> {
    let machine = machine();
    let policies = scale.namespaces * POLICIES_PER_NAMESPACE;
    let mut md = String::from("# Controller at cluster scale\n\n");
    md.push_str(&format!(
        "The `palisade-controller` binary (its own process) against the in-process API-server double \
         (`apiserver-double/`) seeded with {} nodes, {} namespaces, {} pods and {} NetworkPolicies \
         (the synthetic layout of the `compile` benchmark). Machine: {machine}, shared with other work \
         while measured. `palisade-bench controller --divide {} --pods {} --policies {}` \
         (1/{} of the 5,000-node target scale).\n\n",
        scale.nodes,
        scale.namespaces,
        scale.pods,
        policies,
        FULL.nodes / scale.nodes,
        timings[0].samples.len(),
        timings.get(1).map_or(0, |t| t.samples.len()),
        FULL.nodes / scale.nodes,
    ));
    md.push_str(
        "Initial sync: controller start to `/readyz` (every watch listed, the whole model compiled with \
         `Compiler::new`, every ClusterTable shard and NodePolicy written). Changes are made one at a \
         time, each timed from the write to the double to the moment the double has stored the last \
         object it affects (a pod: its node's NodePolicy and its ipcache shard; a NetworkPolicy: the \
         NodePolicies of the nodes running the pods it selects). Objects written: what the double stored \
         per change besides the change itself.\n\n",
    );
    md.push_str("| measure | value |\n|---|---:|\n");
    md.push_str(&format!("| initial sync (s) | {sync_s:.1} |\n"));
    md.push_str(&format!(
        "| of which whole-model compile and publication build (s) | {build_s:.1} |\n"
    ));
    md.push_str(&format!(
        "| controller RSS after sync (MiB) | {:.0} |\n| controller peak RSS after sync (MiB) | {:.0} |\n",
        after_sync.0, after_sync.1
    ));
    md.push_str(&format!(
        "| controller RSS at the end (MiB) | {:.0} |\n| controller peak RSS at the end (MiB) | {:.0} |\n\n",
        at_end.0, at_end.1
    ));
    md.push_str("| change | runs | p50 (ms) | p99 (ms) | max (ms) | objects written (median) |\n|---|---:|---:|---:|---:|---:|\n");
    let mut changes = Vec::new();
    for t in timings {
        let mut writes = t.writes.clone();
        writes.sort();
        let median_writes = writes.get(writes.len() / 2).copied().unwrap_or(0);
        md.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {} |\n",
            t.kind,
            t.samples.len(),
            t.percentile(50.0),
            t.percentile(99.0),
            t.percentile(100.0),
            median_writes
        ));
        changes.push(json!({
            "change": t.kind,
            "runs": t.samples.len(),
            "p50_ms": t.percentile(50.0),
            "p99_ms": t.percentile(99.0),
            "max_ms": t.percentile(100.0),
            "objects_written_median": median_writes,
            "samples_ms": t.samples,
        }));
    }
    let json = json!({
        "machine": machine,
        "scale": {"nodes": scale.nodes, "namespaces": scale.namespaces, "pods": scale.pods, "network_policies": policies},
        "initial_sync_s": sync_s,
        "whole_model_build_s": build_s,
        "rss_after_sync_mib": after_sync.0,
        "peak_rss_after_sync_mib": after_sync.1,
        "rss_end_mib": at_end.0,
        "peak_rss_end_mib": at_end.1,
        "changes": changes,
    });
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("controller.md"), md)?;
    std::fs::write(
        dir.join("controller.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    eprintln!("  wrote {}", dir.join("controller.md").display());
    Ok(())
}
