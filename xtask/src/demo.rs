//! `cargo xtask demo`: the quickstart on emulated pods, with real connections.
//!
//! Builds one network namespace plus cgroup per Pod in `examples/quickstart/` (its
//! addresses and container ports), measures who can reach whom over TCP, starts
//! `palisade-agent standalone` on the quickstart policies (each Pod gets its
//! `palisade.dev/cgroup-path`), measures again, and removes everything it made.

use crate::run::step;
use crate::{build, paths, setup};
use anyhow::{Context, Result, bail};
use palisade_lab::harness::agent::{Agent, AgentOptions};
use palisade_lab::harness::manifests::ManifestDir;
use palisade_lab::{Lab, LabConfig, PodHandle, PodSpec, ProbeSpec, Proto};
use serde_norway::Value;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

const NODE: &str = "demo-node";
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// A Pod of the quickstart, as the demo needs it.
struct DemoPod {
    namespace: String,
    name: String,
    ipv4: Ipv4Addr,
    ipv6: Option<Ipv6Addr>,
    ports: Vec<u16>,
}

pub fn run() -> Result<()> {
    if !crate::run::is_root() {
        bail!("the demo creates network namespaces and loads BPF programs: run it as root");
    }
    setup::run()?;
    build::run()?;
    let quickstart = paths::workspace().join("examples/quickstart");
    let files = read_yaml_files(&quickstart)?;
    let pods = demo_pods(&files)?;

    step("emulated pods");
    let mut lab = Lab::with_config(
        "palisade-demo",
        LabConfig {
            node_ipv4: Some("10.90.0.1".parse()?),
            node_ipv6: Some("fd00:90::1".parse()?),
            netprobe: Some(paths::release_bin("palisade-netprobe")),
            ..Default::default()
        },
    )?;
    let mut handles = Vec::new();
    for pod in &pods {
        let spec = match pod.ipv6 {
            Some(v6) => PodSpec::dual_stack(&pod.name, pod.ipv4, v6),
            None => PodSpec::ipv4(&pod.name, pod.ipv4),
        };
        let handle = lab.add_pod(spec)?;
        lab.serve(&handle, &pod.ports, &[])?;
        eprintln!(
            "    {}/{} at {} serving TCP {:?} (cgroup {})",
            pod.namespace,
            pod.name,
            pod.ipv4,
            pod.ports,
            handle.cgroup_path_annotation()
        );
        handles.push(handle);
    }

    step("reachability without palisade");
    let before = matrix(&lab, &pods, &handles)?;
    print_matrix(&pods, &before, None);

    step("palisade-agent standalone on examples/quickstart");
    let dir = ManifestDir::new(&format!("demo-{}", lab.id()))?;
    for (name, docs) in &files {
        let docs: Vec<Value> = docs
            .iter()
            .map(|doc| annotate_pod(doc.clone(), &pods, &handles))
            .collect();
        dir.write(name, &to_yaml(&docs)?)?;
    }
    dir.write(
        "node.yaml",
        &palisade_lab::harness::manifests::node(
            NODE,
            &["10.90.0.1".parse()?, "fd00:90::1".parse()?],
        ),
    )?;
    let mut agent = Agent::start(AgentOptions {
        id: &format!("demo-{}", lab.id()),
        manifests: dir.path(),
        cgroup_root: lab.cgroup_root(),
        node_name: NODE,
        extra_args: &["--log-json"],
    })?;
    agent.wait_ready(Duration::from_secs(30))?;
    let status = agent.status()?;
    eprintln!(
        "    ready: generation {}, {} endpoints, manifests {}",
        status["generation"], status["endpoints"], status["manifest_hash"]
    );

    step("reachability with palisade");
    let after = matrix(&lab, &pods, &handles)?;
    print_matrix(&pods, &after, Some(&before));

    let denials: Vec<String> = agent
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "flow")
        .map(|e| {
            format!(
                "{} {:7} {:14} local {:18} remote {:18} {}",
                e["verdict"].as_str().unwrap_or("?"),
                e["direction"].as_str().unwrap_or("?"),
                e["pod"].as_str().unwrap_or("?"),
                e["local"].as_str().unwrap_or("?"),
                e["remote"].as_str().unwrap_or("?"),
                e["rule"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    if !denials.is_empty() {
        step("the agent's flow events (from its JSON log)");
        for line in denials {
            println!("    {line}");
        }
    }

    step("cleaning up");
    drop(agent);
    lab.cleanup()?;
    eprintln!("    removed the agent's pins, the pods, their namespaces and cgroups");
    Ok(())
}

type YamlFiles = Vec<(String, Vec<Value>)>;

fn read_yaml_files(dir: &Path) -> Result<YamlFiles> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    let mut files = Vec::new();
    for name in names {
        let text = std::fs::read_to_string(dir.join(&name))?;
        let mut docs = Vec::new();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value = <Value as serde::Deserialize>::deserialize(doc)
                .with_context(|| format!("parsing {name}"))?;
            if !value.is_null() {
                docs.push(value);
            }
        }
        files.push((name, docs));
    }
    Ok(files)
}

fn demo_pods(files: &YamlFiles) -> Result<Vec<DemoPod>> {
    let mut pods = Vec::new();
    for doc in files.iter().flat_map(|(_, docs)| docs) {
        if doc["kind"].as_str() != Some("Pod") {
            continue;
        }
        let name = doc["metadata"]["name"]
            .as_str()
            .context("pod without name")?;
        let ips: Vec<IpAddr> = doc["status"]["podIPs"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|i| i["ip"].as_str()?.parse().ok())
            .collect();
        let ipv4 = ips
            .iter()
            .find_map(|ip| match ip {
                IpAddr::V4(a) => Some(*a),
                _ => None,
            })
            .with_context(|| format!("pod {name} has no IPv4 podIP"))?;
        let ipv6 = ips.iter().find_map(|ip| match ip {
            IpAddr::V6(a) => Some(*a),
            _ => None,
        });
        let ports = doc["spec"]["containers"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_sequence().cloned().unwrap_or_default())
            .filter_map(|p| p["containerPort"].as_u64().map(|p| p as u16))
            .collect();
        pods.push(DemoPod {
            namespace: doc["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string(),
            name: name.to_string(),
            ipv4,
            ipv6,
            ports,
        });
    }
    Ok(pods)
}

/// Adds `palisade.dev/cgroup-path` to a Pod document of the demo.
fn annotate_pod(mut doc: Value, pods: &[DemoPod], handles: &[PodHandle]) -> Value {
    if doc["kind"].as_str() != Some("Pod") {
        return doc;
    }
    let name = doc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Some(i) = pods.iter().position(|p| p.name == name) else {
        return doc;
    };
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_mapping_mut) {
        let annotations = meta
            .entry(Value::from("annotations"))
            .or_insert_with(|| Value::Mapping(Default::default()));
        if let Some(map) = annotations.as_mapping_mut() {
            map.insert(
                Value::from("palisade.dev/cgroup-path"),
                Value::from(handles[i].cgroup_path_annotation()),
            );
        }
    }
    doc
}

fn to_yaml(docs: &[Value]) -> Result<String> {
    let mut out = String::new();
    for doc in docs {
        out.push_str(&serde_norway::to_string(doc)?);
        out.push_str("---\n");
    }
    Ok(out)
}

/// `result[from][to]`: whether `from` reached `to`'s first port over IPv4 (`None` on
/// the diagonal).
fn matrix(lab: &Lab, pods: &[DemoPod], handles: &[PodHandle]) -> Result<Vec<Vec<Option<bool>>>> {
    let mut specs = Vec::new();
    let mut cells = Vec::new();
    for (i, from) in handles.iter().enumerate() {
        for (j, to) in pods.iter().enumerate() {
            if i == j || to.ports.is_empty() {
                continue;
            }
            specs.push(
                ProbeSpec::new(from, IpAddr::V4(to.ipv4), Proto::Tcp, to.ports[0])
                    .with_timeout(PROBE_TIMEOUT),
            );
            cells.push((i, j));
        }
    }
    let results = lab.probe_all(&specs)?;
    let mut m = vec![vec![None; pods.len()]; pods.len()];
    for ((i, j), r) in cells.into_iter().zip(results) {
        m[i][j] = Some(r.allowed());
    }
    Ok(m)
}

fn print_matrix(pods: &[DemoPod], m: &[Vec<Option<bool>>], before: Option<&[Vec<Option<bool>>]>) {
    let label = |p: &DemoPod| format!("{}/{}", p.namespace, p.name);
    let width = pods
        .iter()
        .map(|p| label(p).len())
        .max()
        .unwrap_or(8)
        .max(14);
    let mut header = format!("    {:width$}", "from \\ to");
    for p in pods {
        let col = format!("{}:{}", p.name, p.ports.first().copied().unwrap_or(0));
        header.push_str(&format!(" {col:>14}"));
    }
    println!("{header}");
    for (i, from) in pods.iter().enumerate() {
        let mut row = format!("    {:width$}", label(from));
        for j in 0..pods.len() {
            let cell = match m[i][j] {
                None => "·".to_string(),
                Some(ok) => {
                    let changed = before.is_some_and(|b| b[i][j] != Some(ok));
                    format!(
                        "{}{}",
                        if ok { "ok" } else { "--" },
                        if changed { "*" } else { "" }
                    )
                }
            };
            row.push_str(&format!(" {cell:>14}"));
        }
        println!("{row}");
    }
    if before.is_some() {
        println!("    (* = changed by palisade)");
    }
}
