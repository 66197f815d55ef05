//! Turns a case into what `palisadectl check` reads: a manifests directory
//! (Namespaces, Nodes, Pods and the policy objects as written upstream) and a probes
//! file (JSON lines, `expect` included: the CLI ignores fields it does not know).

use super::cases::{Case, NodeSpec, PodSpec};
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Name of the probes file, beside (not inside) the manifests directory.
const PROBES_FILE: &str = "probes.jsonl";

/// Writes the case under `root`: `root/manifests/` and `root/probes.jsonl`. Returns
/// (manifests directory, probes file).
pub fn write_case(case: &Case, root: &Path) -> Result<(PathBuf, PathBuf)> {
    let manifests = root.join("manifests");
    std::fs::create_dir_all(&manifests)
        .with_context(|| format!("creating {}", manifests.display()))?;

    let namespaces = case.cluster.namespaces.iter().map(|(name, namespace)| {
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": namespace.labels},
        })
    });
    write_list(&manifests.join("namespaces.json"), namespaces)?;
    write_list(
        &manifests.join("nodes.json"),
        case.cluster.nodes.iter().map(node),
    )?;
    write_list(
        &manifests.join("pods.json"),
        case.cluster.pods.iter().map(pod),
    )?;
    for (index, policy) in case.policies.iter().enumerate() {
        let path = manifests.join(format!("policy-{index:03}.json"));
        write_json(&path, policy)?;
    }

    let probes_path = root.join(PROBES_FILE);
    let mut probes = String::new();
    for probe in &case.probes {
        let mut line = json!({
            "from": probe.from,
            "to": probe.to,
            "port": probe.port,
            "protocol": probe.protocol,
            "expect": probe.expect.as_str(),
        });
        if let Some(dst_ip) = &probe.dst_ip {
            line["dst_ip"] = json!(dst_ip);
        }
        probes.push_str(&line.to_string());
        probes.push('\n');
    }
    std::fs::write(&probes_path, probes)
        .with_context(|| format!("writing {}", probes_path.display()))?;
    Ok((manifests, probes_path))
}

fn node(node: &NodeSpec) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": node.labels},
        "status": {"addresses": [{"type": "InternalIP", "address": node.ip}]},
    })
}

fn pod(pod: &PodSpec) -> Value {
    let ports: Vec<Value> = pod
        .ports
        .iter()
        .map(|port| {
            let mut value = json!({"containerPort": port.port, "protocol": port.protocol});
            if let Some(name) = &port.name {
                value["name"] = json!(name);
            }
            value
        })
        .collect();
    let mut spec = json!({"containers": [{"name": "server", "ports": ports}]});
    if let Some(node) = &pod.node {
        spec["nodeName"] = json!(node);
    }
    if pod.host_network {
        spec["hostNetwork"] = json!(true);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": pod.ns, "labels": pod.labels},
        "spec": spec,
        "status": {"podIP": pod.ip, "podIPs": [{"ip": pod.ip}]},
    })
}

/// Writes `items` as one `v1 List` document.
fn write_list(path: &Path, items: impl Iterator<Item = Value>) -> Result<()> {
    let items: Vec<Value> = items.collect();
    write_json(
        path,
        &json!({"apiVersion": "v1", "kind": "List", "items": items}),
    )
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
