//! Core (`v1`) objects palisade reads: Namespace, Pod and Node. Real manifests of these
//! carry many fields palisade has no use for, so unknown fields are ignored; the fields
//! palisade reads are type-checked and validated.

use super::Object;
use super::error::{FieldError, FieldPath, Problems};
use super::metadata::ObjectMeta;
use super::names;
use super::ports;
use super::wire::{deserialize_at, nullable};
use crate::model::{
    CGROUP_PATH_ANNOTATION, ContainerPort, NAMESPACE_NAME_LABEL, Namespace, Node, Pod,
};
use serde::Deserialize;
use serde_norway::Value;
use std::net::IpAddr;

/// A Namespace carries, besides its own labels, [`NAMESPACE_NAME_LABEL`] set to its
/// name, as Kubernetes sets it (overriding any value written there).
pub(crate) fn namespace(
    _document: &Value,
    _at: &FieldPath,
    meta: ObjectMeta,
) -> Result<Object, Vec<FieldError>> {
    let mut labels = meta.labels;
    labels
        .0
        .insert(NAMESPACE_NAME_LABEL.to_string(), meta.name.clone());
    Ok(Object::Namespace(Namespace {
        name: meta.name,
        labels,
    }))
}

#[derive(Debug, Default, Deserialize)]
struct PodDocument {
    #[serde(default, deserialize_with = "nullable")]
    spec: PodSpec,
    #[serde(default, deserialize_with = "nullable")]
    status: PodStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    node_name: Option<String>,
    host_network: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    containers: Vec<Container>,
    #[serde(default, deserialize_with = "nullable")]
    init_containers: Vec<Container>,
}

#[derive(Debug, Default, Deserialize)]
struct Container {
    #[serde(default, deserialize_with = "nullable")]
    ports: Vec<ContainerPortWire>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerPortWire {
    name: Option<String>,
    container_port: i64,
    protocol: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs", default, deserialize_with = "nullable")]
    pod_ips: Vec<PodIp>,
}

#[derive(Debug, Deserialize)]
struct PodIp {
    ip: String,
}

pub(crate) fn pod(
    document: &Value,
    at: &FieldPath,
    meta: ObjectMeta,
) -> Result<Object, Vec<FieldError>> {
    let wire: PodDocument = deserialize_at(document, at).map_err(|e| vec![e])?;
    let mut problems = Problems::new();

    let cgroup_path = meta.annotations.get(CGROUP_PATH_ANNOTATION).cloned();
    if let Some(path) = &cgroup_path
        && !path.starts_with('/')
    {
        problems.add(
            &at.field("metadata")
                .field("annotations")
                .field(CGROUP_PATH_ANNOTATION),
            format!("cgroup path {path:?} must start with '/'"),
        );
    }

    let ports = container_ports(&wire.spec, &at.field("spec"), &mut problems);
    let ips = pod_ips(&wire.status, &at.field("status"), &mut problems);

    let namespace = meta.namespace.expect("Pod is a namespaced kind");
    problems.finish(Object::Pod(Pod {
        namespace,
        name: meta.name,
        uid: meta.uid,
        labels: meta.labels,
        ips,
        node_name: wire.spec.node_name.filter(|n| !n.is_empty()),
        host_network: wire.spec.host_network.unwrap_or(false),
        ports,
        cgroup_path,
    }))
}

/// The ports of every container, then of every init container.
fn container_ports(spec: &PodSpec, at: &FieldPath, problems: &mut Problems) -> Vec<ContainerPort> {
    let mut ports = Vec::new();
    for (list, containers) in [
        ("containers", &spec.containers),
        ("initContainers", &spec.init_containers),
    ] {
        for (c, container) in containers.iter().enumerate() {
            let ports_at = at.field(list).index(c).field("ports");
            for (p, port) in container.ports.iter().enumerate() {
                ports.extend(container_port(port, &ports_at.index(p), problems));
            }
        }
    }
    ports
}

fn container_port(
    wire: &ContainerPortWire,
    at: &FieldPath,
    problems: &mut Problems,
) -> Option<ContainerPort> {
    let name = wire.name.clone().filter(|n| !n.is_empty());
    if let Some(name) = &name {
        problems.check(&at.field("name"), names::port_name(name));
    }
    let port = problems.check(
        &at.field("containerPort"),
        ports::port_number(wire.container_port),
    );
    let protocol = problems.check(
        &at.field("protocol"),
        ports::protocol(wire.protocol.as_deref()),
    );
    Some(ContainerPort {
        name,
        port: port?,
        protocol: protocol?,
    })
}

/// `status.podIP` and `status.podIPs`, each address once.
fn pod_ips(status: &PodStatus, at: &FieldPath, problems: &mut Problems) -> Vec<IpAddr> {
    let mut written = Vec::new();
    if let Some(ip) = status.pod_ip.as_ref().filter(|ip| !ip.is_empty()) {
        written.push((at.field("podIP"), ip));
    }
    for (i, entry) in status.pod_ips.iter().enumerate() {
        written.push((at.field("podIPs").index(i).field("ip"), &entry.ip));
    }
    let mut ips = Vec::new();
    for (field, text) in written {
        if let Some(ip) = problems.check(&field, ip_address(text))
            && !ips.contains(&ip)
        {
            ips.push(ip);
        }
    }
    ips
}

#[derive(Debug, Default, Deserialize)]
struct NodeDocument {
    #[serde(default, deserialize_with = "nullable")]
    status: NodeStatus,
}

#[derive(Debug, Default, Deserialize)]
struct NodeStatus {
    #[serde(default, deserialize_with = "nullable")]
    addresses: Vec<NodeAddress>,
}

#[derive(Debug, Deserialize)]
struct NodeAddress {
    #[serde(rename = "type")]
    kind: String,
    address: String,
}

/// Address types that carry the node's IPs (others are host names).
const NODE_IP_ADDRESS_TYPES: [&str; 2] = ["InternalIP", "ExternalIP"];

pub(crate) fn node(
    document: &Value,
    at: &FieldPath,
    meta: ObjectMeta,
) -> Result<Object, Vec<FieldError>> {
    let wire: NodeDocument = deserialize_at(document, at).map_err(|e| vec![e])?;
    let mut problems = Problems::new();
    let addresses_at = at.field("status").field("addresses");
    let mut addresses = Vec::new();
    for (i, entry) in wire.status.addresses.iter().enumerate() {
        if !NODE_IP_ADDRESS_TYPES.contains(&entry.kind.as_str()) {
            continue;
        }
        let field = addresses_at.index(i).field("address");
        if let Some(ip) = problems.check(&field, ip_address(&entry.address))
            && !addresses.contains(&ip)
        {
            addresses.push(ip);
        }
    }
    problems.finish(Object::Node(Node {
        name: meta.name,
        labels: meta.labels,
        addresses,
    }))
}

/// An IP address as the API writes it.
pub(crate) fn ip_address(written: &str) -> Result<IpAddr, String> {
    written
        .parse()
        .map_err(|_| format!("invalid IP address {written:?}"))
}

#[cfg(test)]
mod tests {
    use crate::manifest::{Object, parse_documents};
    use crate::model::{ContainerPort, Protocol};
    use std::net::IpAddr;

    fn parse_one(yaml: &str) -> Object {
        let mut objects = parse_documents("core.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(objects.len(), 1);
        objects.remove(0)
    }

    fn error_text(yaml: &str) -> String {
        parse_documents("core.yaml", yaml).unwrap_err().to_string()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn namespace_gets_its_name_label() {
        let Object::Namespace(ns) = parse_one(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  labels:\n    ns: x\n    \
             kubernetes.io/metadata.name: spoofed\nstatus: {phase: Active}",
        ) else {
            panic!("not a Namespace")
        };
        assert_eq!(ns.name, "x");
        assert_eq!(ns.labels.get("ns"), Some("x"));
        assert_eq!(ns.labels.get("kubernetes.io/metadata.name"), Some("x"));
    }

    #[test]
    fn namespace_names_are_dns_labels() {
        let text = error_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a.b}");
        assert!(
            text.starts_with("core.yaml: document 1 (Namespace a.b): metadata.name: invalid name"),
            "{text}"
        );
    }

    const FULL_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: x
  uid: 1234-abcd
  labels: {app: web}
  annotations:
    palisade.dev/cgroup-path: /kubepods/pod1234
    unrelated: "{\"json\": true}"
  ownerReferences: [{kind: ReplicaSet, name: web-1}]
spec:
  nodeName: node-1
  hostNetwork: false
  serviceAccountName: web
  initContainers:
  - name: init
    image: busybox
    ports: [{containerPort: 9000, name: init-metrics, protocol: UDP}]
  containers:
  - name: app
    image: nginx
    resources: {limits: {cpu: "1"}}
    ports:
    - {containerPort: 80, name: http}
    - {containerPort: 443, protocol: TCP, hostPort: 8443}
status:
  phase: Running
  podIP: 10.0.1.1
  podIPs: [{ip: 10.0.1.1}, {ip: "fd00::1"}]
  conditions: [{type: Ready, status: "True"}]
"#;

    #[test]
    fn pod_reads_what_palisade_uses() {
        let Object::Pod(pod) = parse_one(FULL_POD) else {
            panic!("not a Pod")
        };
        assert_eq!(pod.object_ref().to_string(), "x/web");
        assert_eq!(pod.uid.as_deref(), Some("1234-abcd"));
        assert_eq!(pod.labels.get("app"), Some("web"));
        assert_eq!(pod.cgroup_path.as_deref(), Some("/kubepods/pod1234"));
        assert_eq!(pod.node_name.as_deref(), Some("node-1"));
        assert!(!pod.host_network);
        assert_eq!(pod.ips, vec![ip("10.0.1.1"), ip("fd00::1")]);
        let port = |name: Option<&str>, port, protocol| ContainerPort {
            name: name.map(str::to_string),
            port,
            protocol,
        };
        assert_eq!(
            pod.ports,
            vec![
                port(Some("http"), 80, Protocol::Tcp),
                port(None, 443, Protocol::Tcp),
                port(Some("init-metrics"), 9000, Protocol::Udp),
            ]
        );
        assert_eq!(pod.named_port("http", Protocol::Tcp), Some(80));
    }

    #[test]
    fn pod_defaults() {
        let Object::Pod(pod) = parse_one("apiVersion: v1\nkind: Pod\nmetadata: {name: a}") else {
            panic!("not a Pod")
        };
        assert_eq!(pod.namespace, "default");
        assert_eq!(pod.uid, None);
        assert!(pod.ips.is_empty() && pod.ports.is_empty());
        assert!(!pod.host_network);
        assert_eq!(pod.node_name, None);
    }

    #[test]
    fn pod_errors_name_file_object_and_field() {
        let cases = [
            (
                "status: {podIPs: [{ip: 10.0.0.1}, {ip: not-an-ip}]}",
                "status.podIPs[1].ip: invalid IP address \"not-an-ip\"",
            ),
            (
                "status: {podIP: 300.1.1.1}",
                "status.podIP: invalid IP address",
            ),
            (
                "spec: {containers: [{ports: [{containerPort: 0}]}]}",
                "spec.containers[0].ports[0].containerPort: invalid port 0",
            ),
            (
                "spec: {initContainers: [{ports: [{name: x}]}]}",
                "spec.initContainers[0].ports[0].containerPort: required field is missing",
            ),
            (
                "spec: {containers: [{}, {ports: [{containerPort: 80, protocol: tcp}]}]}",
                "spec.containers[1].ports[0].protocol: unsupported protocol \"tcp\"",
            ),
            (
                "spec: {containers: [{ports: [{containerPort: 80, name: HTTP}]}]}",
                "spec.containers[0].ports[0].name: invalid port name \"HTTP\"",
            ),
            (
                "spec: {hostNetwork: 'yes'}",
                "spec.hostNetwork: invalid type",
            ),
            (
                "metadata: {name: a, namespace: x, annotations: {palisade.dev/cgroup-path: kubepods}}",
                "metadata.annotations.palisade.dev/cgroup-path: cgroup path \"kubepods\" must start with '/'",
            ),
        ];
        for (body, expected) in cases {
            let metadata = if body.starts_with("metadata:") {
                ""
            } else {
                "metadata: {name: a, namespace: x}\n"
            };
            let text = error_text(&format!("apiVersion: v1\nkind: Pod\n{metadata}{body}"));
            assert!(
                text.starts_with(&format!("core.yaml: document 1 (Pod x/a): {expected}")),
                "{body}\n  got: {text}"
            );
        }
    }

    #[test]
    fn node_reads_ip_addresses() {
        let Object::Node(node) = parse_one(
            "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {zone: a}}\n\
             status:\n  addresses:\n  - {type: Hostname, address: n1.example}\n  \
             - {type: InternalIP, address: 192.168.0.10}\n  \
             - {type: ExternalIP, address: 203.0.113.7}\n  \
             - {type: InternalIP, address: 192.168.0.10}\n  capacity: {cpu: '2'}",
        ) else {
            panic!("not a Node")
        };
        assert_eq!(node.name, "n1");
        assert_eq!(node.labels.get("zone"), Some("a"));
        assert_eq!(node.addresses, vec![ip("192.168.0.10"), ip("203.0.113.7")]);
    }

    #[test]
    fn node_address_errors_name_the_field() {
        let text = error_text(
            "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n\
             status: {addresses: [{type: InternalIP, address: n1.local}]}",
        );
        assert_eq!(
            text,
            "core.yaml: document 1 (Node n1): status.addresses[0].address: \
             invalid IP address \"n1.local\""
        );
    }
}
