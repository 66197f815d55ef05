//! `v1` Service: wire types, validation of the fields palisade reads (type, cluster
//! IPs, ports, selector, external IPs, IP families), defaulting as the API server does
//! it, and conversion to the model. Like the other core objects, it ignores every field
//! palisade does not read (`sessionAffinity`, `status`, ...).
//!
//! Cross-field rules are checked where palisade's reading depends on them: the cluster
//! IPs (`clusterIP` against `clusterIPs`, one per family, `None` alone, `ipFamilies` in
//! step), and port names and numbers (unique, named when there are several), since
//! EndpointSlices find a Service port by name and the datapath by number and protocol.

use super::Object;
use super::core::ip_address;
use super::error::{FieldError, FieldPath, Problems};
use super::metadata::{ObjectMeta, read_labels};
use super::names;
use super::ports::{self, IntOrString};
use super::wire::{deserialize_at, nullable};
use crate::model::{AddressType, PortRef, Service, ServicePort, ServiceType};
use serde::Deserialize;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// `clusterIP` of a headless Service.
const HEADLESS: &str = "None";

#[derive(Debug, Default, Deserialize)]
struct ServiceDocument {
    #[serde(default, deserialize_with = "nullable")]
    spec: ServiceSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceSpec {
    #[serde(rename = "type")]
    service_type: Option<String>,
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs", default, deserialize_with = "nullable")]
    cluster_ips: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    ports: Vec<ServicePortWire>,
    #[serde(default, deserialize_with = "nullable")]
    selector: BTreeMap<String, String>,
    #[serde(rename = "externalIPs", default, deserialize_with = "nullable")]
    external_ips: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    ip_families: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServicePortWire {
    name: Option<String>,
    protocol: Option<String>,
    port: i64,
    target_port: Option<IntOrString>,
    node_port: Option<i64>,
}

pub(crate) fn service(
    document: &Value,
    at: &FieldPath,
    meta: ObjectMeta,
) -> Result<Object, Vec<FieldError>> {
    let wire: ServiceDocument = deserialize_at(document, at).map_err(|e| vec![e])?;
    let spec = wire.spec;
    let at = at.field("spec");
    let mut problems = Problems::new();

    let service_type = problems
        .check(
            &at.field("type"),
            service_type(spec.service_type.as_deref()),
        )
        .unwrap_or_default();
    let (cluster_ips, headless) = cluster_ips(&spec, &at, &mut problems);
    ip_families(
        &spec.ip_families,
        &cluster_ips,
        &at.field("ipFamilies"),
        &mut problems,
    );
    let ports = service_ports(&spec.ports, &at.field("ports"), &mut problems);
    let selector = read_labels(spec.selector, &at.field("selector"), &mut problems);
    let external_ips = addresses(&spec.external_ips, &at.field("externalIPs"), &mut problems);

    problems.finish(Object::Service(Service {
        namespace: meta.namespace.expect("Service is a namespaced kind"),
        name: meta.name,
        service_type,
        cluster_ips,
        headless,
        ports,
        selector: (!selector.0.is_empty()).then_some(selector),
        external_ips,
    }))
}

fn service_type(written: Option<&str>) -> Result<ServiceType, String> {
    match written {
        None | Some("") | Some("ClusterIP") => Ok(ServiceType::ClusterIp),
        Some("NodePort") => Ok(ServiceType::NodePort),
        Some("LoadBalancer") => Ok(ServiceType::LoadBalancer),
        Some("ExternalName") => Ok(ServiceType::ExternalName),
        Some(other) => Err(format!(
            "unsupported Service type {other:?}: must be \"ClusterIP\", \"NodePort\", \
             \"LoadBalancer\" or \"ExternalName\""
        )),
    }
}

/// The cluster IPs (canonical) and whether the Service is headless. `clusterIPs` wins
/// when written, and `clusterIP` must then be its first entry; `clusterIP: ""` is an
/// address not yet allocated.
fn cluster_ips(spec: &ServiceSpec, at: &FieldPath, problems: &mut Problems) -> (Vec<IpAddr>, bool) {
    let single = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty());
    let written: Vec<(FieldPath, &str)> = if spec.cluster_ips.is_empty() {
        single
            .map(|ip| (at.field("clusterIP"), ip))
            .into_iter()
            .collect()
    } else {
        if let Some(single) = single
            && single != spec.cluster_ips[0]
        {
            problems.add(
                &at.field("clusterIP"),
                format!(
                    "{single:?} must equal spec.clusterIPs[0] ({:?})",
                    spec.cluster_ips[0]
                ),
            );
        }
        let list_at = at.field("clusterIPs");
        (spec.cluster_ips.iter().enumerate())
            .map(|(i, ip)| (list_at.index(i), ip.as_str()))
            .collect()
    };
    if written.iter().any(|(_, ip)| *ip == HEADLESS) {
        if written.len() > 1 {
            let (field, _) = &written[0];
            problems.add(
                field,
                "\"None\" (headless) may not be combined with addresses",
            );
        }
        return (Vec::new(), true);
    }
    if written.len() > 2 {
        problems.add(
            &at.field("clusterIPs"),
            "may list at most two addresses, one per IP family",
        );
    }
    let mut ips: Vec<IpAddr> = Vec::new();
    for (field, text) in written {
        let Some(ip) = problems.check(&field, ip_address(text)) else {
            continue;
        };
        let ip = ip.to_canonical();
        if ips
            .iter()
            .any(|other| AddressType::of(*other) == AddressType::of(ip))
        {
            problems.add(
                &field,
                format!(
                    "a Service has at most one cluster IP per family; {ip} is a second {} \
                     address",
                    AddressType::of(ip).as_str()
                ),
            );
        } else {
            ips.push(ip);
        }
    }
    (ips, false)
}

/// Checks `ipFamilies`: IPv4 or IPv6, each once, in step with the cluster IPs.
fn ip_families(
    written: &[String],
    cluster_ips: &[IpAddr],
    at: &FieldPath,
    problems: &mut Problems,
) {
    if written.len() > 2 {
        problems.add(at, "may list at most two IP families");
    }
    let mut seen = Vec::new();
    for (i, text) in written.iter().enumerate() {
        let family = match text.as_str() {
            "IPv4" => AddressType::Ipv4,
            "IPv6" => AddressType::Ipv6,
            other => {
                problems.add(
                    &at.index(i),
                    format!("unsupported IP family {other:?}: must be \"IPv4\" or \"IPv6\""),
                );
                continue;
            }
        };
        if seen.contains(&family) {
            problems.add(&at.index(i), format!("{text} is listed twice"));
        }
        seen.push(family);
        if let Some(ip) = cluster_ips.get(i)
            && AddressType::of(*ip) != family
        {
            problems.add(
                &at.index(i),
                format!("{text} does not match the family of spec.clusterIPs[{i}] ({ip})"),
            );
        }
    }
}

/// `ports`, defaulted (protocol TCP, targetPort the port) and checked: names are DNS
/// labels, unique, and required when there are several ports; port and protocol pairs
/// are unique.
fn service_ports(
    written: &[ServicePortWire],
    at: &FieldPath,
    problems: &mut Problems,
) -> Vec<ServicePort> {
    let mut ports: Vec<(usize, ServicePort)> = Vec::new();
    for (i, wire) in written.iter().enumerate() {
        let at = at.index(i);
        let name = wire.name.clone().unwrap_or_default();
        if name.is_empty() && written.len() > 1 {
            problems.add(
                &at.field("name"),
                "required when the Service has more than one port",
            );
        } else if !name.is_empty() {
            problems.check(
                &at.field("name"),
                names::dns1123_label(&name).map_err(|why| format!("invalid port name: {why}")),
            );
        }
        let protocol = problems.check(
            &at.field("protocol"),
            ports::protocol(wire.protocol.as_deref()),
        );
        let port = problems.check(&at.field("port"), ports::port_number(wire.port));
        let target_port = match &wire.target_port {
            // The API server defaults an unset, 0 or "" targetPort to the port.
            None | Some(IntOrString::Int(0)) => port.map(PortRef::Number),
            Some(IntOrString::String(text)) if text.is_empty() => port.map(PortRef::Number),
            Some(target) => problems.check(&at.field("targetPort"), ports::port_ref(target)),
        };
        let node_port = match wire.node_port {
            // 0 asks the API server to allocate one.
            None | Some(0) => Some(None),
            Some(number) => problems
                .check(&at.field("nodePort"), ports::port_number(number))
                .map(Some),
        };
        let (Some(protocol), Some(port), Some(target_port), Some(node_port)) =
            (protocol, port, target_port, node_port)
        else {
            continue;
        };
        for (j, earlier) in &ports {
            if !name.is_empty() && earlier.name == name {
                problems.add(
                    &at.field("name"),
                    format!("duplicate port name {name:?} (also ports[{j}])"),
                );
            }
            if (earlier.port, earlier.protocol) == (port, protocol) {
                problems.add(
                    &at,
                    format!("duplicate port {port}/{protocol} (also ports[{j}])"),
                );
            }
        }
        ports.push((
            i,
            ServicePort {
                name,
                protocol,
                port,
                target_port,
                node_port,
            },
        ));
    }
    ports.into_iter().map(|(_, port)| port).collect()
}

/// A list of IP addresses (canonical), each once.
fn addresses(written: &[String], at: &FieldPath, problems: &mut Problems) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for (i, text) in written.iter().enumerate() {
        if let Some(ip) = problems.check(&at.index(i), ip_address(text)) {
            let ip = ip.to_canonical();
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    ips
}

#[cfg(test)]
mod tests {
    use crate::manifest::{Object, build_cluster, parse_documents};
    use crate::model::{PortRef, Protocol, Service, ServicePort, ServiceType};
    use std::net::IpAddr;

    fn parse(yaml: &str) -> Service {
        let objects = parse_documents("svc.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
        match <[Object; 1]>::try_from(objects) {
            Ok([Object::Service(service)]) => service,
            other => panic!("not one Service: {other:?}"),
        }
    }

    fn error_text(spec: &str) -> String {
        let yaml =
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: x}}\n{spec}");
        parse_documents("svc.yaml", &yaml).unwrap_err().to_string()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const FULL: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  labels: {app: web}
  annotations: {note: anything}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, "fd00:96::a"]
  ipFamilies: [IPv4, IPv6]
  ipFamilyPolicy: PreferDualStack
  selector: {app: web, tier: front}
  externalIPs: [203.0.113.5, 203.0.113.5, "2001:db8::5"]
  sessionAffinity: ClientIP
  externalTrafficPolicy: Local
  ports:
  - {name: http, port: 80, targetPort: http-alt, nodePort: 30080, appProtocol: http}
  - {name: dns, protocol: UDP, port: 53, targetPort: 5353}
  - {name: metrics, port: 9090}
status:
  loadBalancer: {ingress: [{ip: 198.51.100.1}]}
"#;

    #[test]
    fn reads_what_palisade_uses_and_ignores_the_rest() {
        let service = parse(FULL);
        assert_eq!(
            (service.namespace.as_str(), service.name.as_str()),
            ("shop", "web")
        );
        assert_eq!(service.service_type, ServiceType::LoadBalancer);
        assert_eq!(service.cluster_ips, [ip("10.96.0.10"), ip("fd00:96::a")]);
        assert!(!service.headless);
        let selector = service.selector.as_ref().unwrap();
        assert_eq!(selector.get("tier"), Some("front"));
        assert_eq!(service.external_ips, [ip("203.0.113.5"), ip("2001:db8::5")]);
        let port = |name: &str, protocol, port, target_port, node_port| ServicePort {
            name: name.into(),
            protocol,
            port,
            target_port,
            node_port,
        };
        assert_eq!(
            service.ports,
            [
                port(
                    "http",
                    Protocol::Tcp,
                    80,
                    PortRef::Name("http-alt".into()),
                    Some(30080)
                ),
                port("dns", Protocol::Udp, 53, PortRef::Number(5353), None),
                port("metrics", Protocol::Tcp, 9090, PortRef::Number(9090), None),
            ]
        );
    }

    #[test]
    fn defaults() {
        let service = parse(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n\
             spec: {ports: [{port: 80, targetPort: 0, nodePort: 0}], selector: {}}",
        );
        assert_eq!(service.namespace, "default");
        assert_eq!(service.service_type, ServiceType::ClusterIp);
        assert!(service.cluster_ips.is_empty() && !service.headless);
        assert_eq!(service.selector, None);
        assert_eq!(
            service.ports,
            [ServicePort {
                name: String::new(),
                protocol: Protocol::Tcp,
                port: 80,
                target_port: PortRef::Number(80),
                node_port: None,
            }]
        );
        let bare = parse("apiVersion: v1\nkind: Service\nmetadata: {name: web}");
        assert!(bare.ports.is_empty() && bare.external_ips.is_empty());
    }

    #[test]
    fn headless_and_single_cluster_ips() {
        let headless = parse(
            "apiVersion: v1\nkind: Service\nmetadata: {name: db}\n\
             spec: {clusterIP: None, clusterIPs: [None], selector: {app: db}}",
        );
        assert!(headless.headless && headless.cluster_ips.is_empty());
        let single = parse(
            "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {clusterIP: 10.96.0.7}",
        );
        assert_eq!(single.cluster_ips, [ip("10.96.0.7")]);
        let alias = parse(
            "apiVersion: v1\nkind: Service\nmetadata: {name: db}\n\
             spec: {type: ExternalName, externalName: db.example.com}",
        );
        assert_eq!(alias.service_type, ServiceType::ExternalName);
    }

    #[test]
    fn errors_name_file_object_and_field() {
        let cases = [
            (
                "spec: {type: Internal}",
                "spec.type: unsupported Service type \"Internal\"",
            ),
            (
                "spec: {clusterIP: 10.96.0.300}",
                "spec.clusterIP: invalid IP address",
            ),
            (
                "spec: {clusterIPs: [10.96.0.1, nope]}",
                "spec.clusterIPs[1]: invalid IP address \"nope\"",
            ),
            (
                "spec: {clusterIP: 10.96.0.2, clusterIPs: [10.96.0.1]}",
                "spec.clusterIP: \"10.96.0.2\" must equal spec.clusterIPs[0]",
            ),
            (
                "spec: {clusterIPs: [10.96.0.1, 10.96.0.2]}",
                "spec.clusterIPs[1]: a Service has at most one cluster IP per family",
            ),
            (
                "spec: {clusterIPs: [None, 10.96.0.2]}",
                "spec.clusterIPs[0]: \"None\" (headless) may not be combined with addresses",
            ),
            (
                "spec: {clusterIPs: [10.96.0.1], ipFamilies: [IPv6]}",
                "spec.ipFamilies[0]: IPv6 does not match the family of spec.clusterIPs[0]",
            ),
            (
                "spec: {ipFamilies: [IPv4, ipv6]}",
                "spec.ipFamilies[1]: unsupported IP family",
            ),
            (
                "spec: {ipFamilies: [IPv4, IPv4]}",
                "spec.ipFamilies[1]: IPv4 is listed twice",
            ),
            (
                "spec: {ports: [{port: 0}]}",
                "spec.ports[0].port: invalid port 0",
            ),
            (
                "spec: {ports: [{name: a}]}",
                "spec.ports[0].port: required field is missing",
            ),
            (
                "spec: {ports: [{port: 80, protocol: tcp}]}",
                "spec.ports[0].protocol: unsupported protocol \"tcp\"",
            ),
            (
                "spec: {ports: [{port: 80, targetPort: 70000}]}",
                "spec.ports[0].targetPort: invalid port 70000",
            ),
            (
                "spec: {ports: [{port: 80, targetPort: \"8080\"}]}",
                "spec.ports[0].targetPort: port \"8080\" is a quoted number",
            ),
            (
                "spec: {ports: [{port: 80, targetPort: Web_UI}]}",
                "spec.ports[0].targetPort: invalid port name \"Web_UI\"",
            ),
            (
                "spec: {ports: [{port: 80, nodePort: 65536}]}",
                "spec.ports[0].nodePort: invalid port 65536",
            ),
            (
                "spec: {ports: [{name: http, port: 80}, {port: 81}]}",
                "spec.ports[1].name: required when the Service has more than one port",
            ),
            (
                "spec: {ports: [{name: HTTP, port: 80}]}",
                "spec.ports[0].name: invalid port name: \"HTTP\" is not a valid DNS-1123 label",
            ),
            (
                "spec: {ports: [{name: a, port: 80}, {name: a, port: 81}]}",
                "spec.ports[1].name: duplicate port name \"a\" (also ports[0])",
            ),
            (
                "spec: {ports: [{name: a, port: 80}, {name: b, port: 80, protocol: TCP}]}",
                "spec.ports[1]: duplicate port 80/TCP (also ports[0])",
            ),
            (
                "spec: {selector: {app: -web}}",
                "spec.selector.app: invalid label value",
            ),
            (
                "spec: {externalIPs: [203.0.113.1, example.com]}",
                "spec.externalIPs[1]: invalid IP address \"example.com\"",
            ),
            ("spec: {ports: {port: 80}}", "spec.ports: invalid type"),
        ];
        for (spec, expected) in cases {
            let text = error_text(spec);
            assert!(
                text.starts_with(&format!("svc.yaml: document 1 (Service x/web): {expected}")),
                "{spec}\n  got: {text}"
            );
        }
    }

    #[test]
    fn service_names_are_dns_1035_labels() {
        let text = parse_documents(
            "svc.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: 1web, namespace: x}",
        )
        .unwrap_err()
        .to_string();
        assert!(
            text.starts_with(
                "svc.yaml: document 1 (Service x/1web): metadata.name: invalid name: \"1web\" is \
                 not a valid DNS-1035 label"
            ),
            "{text}"
        );
    }

    #[test]
    fn services_are_assembled_by_namespace_and_name() {
        let objects = parse_documents("svc.yaml", FULL).unwrap();
        let twice = objects
            .iter()
            .chain(&objects)
            .map(|o| ("svc.yaml".to_string(), o.clone()));
        let errors = build_cluster(twice).unwrap_err();
        assert_eq!(
            errors.to_string(),
            "svc.yaml (Service shop/web): Service shop/web is defined more than once: also in \
             svc.yaml"
        );
        let cluster =
            build_cluster(objects.into_iter().map(|o| ("svc.yaml".to_string(), o))).unwrap();
        let key = crate::model::ObjectRef {
            namespace: "shop".into(),
            name: "web".into(),
        };
        assert_eq!(cluster.services[&key].ports.len(), 3);
    }
}
