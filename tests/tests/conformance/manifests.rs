//! Turns a case into what `palisadectl check` and `palisade-agent standalone` read:
//! the files of a manifests directory (Namespaces, Nodes, Pods and the policy objects
//! as written upstream) and a probes file (JSON lines, `expect` included: the CLI
//! ignores fields it does not know).

use super::cases::{Case, NodeSpec, PodSpec, Probe};
use serde_json::{Value, json};

/// The annotation that names a pod's cgroup (see docs/standalone.md).
const CGROUP_PATH_ANNOTATION: &str = "palisade.dev/cgroup-path";

/// The files of the case's manifests directory, as (file name, text), in order of
/// name: `namespaces.json`, `nodes.json`, `pods.json`, then `policy-NNN.json` in
/// creation order. `cgroup_path` gives a pod's `palisade.dev/cgroup-path` annotation
/// (an emulated pod the agent enforces), or `None` (a pod that is only a peer, or no
/// agent at all).
pub fn manifest_files(
    case: &Case,
    cgroup_path: &dyn Fn(&PodSpec) -> Option<String>,
) -> Vec<(String, String)> {
    let namespaces = case.cluster.namespaces.iter().map(|(name, namespace)| {
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": namespace.labels},
        })
    });
    let mut files = vec![
        ("namespaces.json".to_string(), list(namespaces)),
        (
            "nodes.json".to_string(),
            list(case.cluster.nodes.iter().map(node)),
        ),
        (
            "pods.json".to_string(),
            list(
                case.cluster
                    .pods
                    .iter()
                    .map(|spec| pod(spec, cgroup_path(spec))),
            ),
        ),
    ];
    for (index, policy) in case.policies.iter().enumerate() {
        files.push((format!("policy-{index:03}.json"), text(policy)));
    }
    files
}

/// The probes as `palisadectl check --probes` reads them, one JSON line each.
pub fn probes_file<'a>(probes: impl IntoIterator<Item = &'a Probe>) -> String {
    let mut text = String::new();
    for probe in probes {
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
        text.push_str(&line.to_string());
        text.push('\n');
    }
    text
}

fn node(node: &NodeSpec) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": node.labels},
        "status": {"addresses": [{"type": "InternalIP", "address": node.ip}]},
    })
}

fn pod(pod: &PodSpec, cgroup_path: Option<String>) -> Value {
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
    let mut metadata = json!({"name": pod.name, "namespace": pod.ns, "labels": pod.labels});
    if let Some(path) = cgroup_path {
        metadata["annotations"] = json!({ CGROUP_PATH_ANNOTATION: path });
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
        "status": {"podIP": pod.ip, "podIPs": [{"ip": pod.ip}]},
    })
}

/// `items` as one `v1 List` document.
fn list(items: impl Iterator<Item = Value>) -> String {
    let items: Vec<Value> = items.collect();
    text(&json!({"apiVersion": "v1", "kind": "List", "items": items}))
}

fn text(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON values serialize")
}
