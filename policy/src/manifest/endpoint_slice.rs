//! `discovery.k8s.io/v1` EndpointSlice: wire types, validation of the fields palisade
//! reads (the Service name label, address type, endpoints with their addresses,
//! conditions, target and node, ports), defaulting as the API server does it, and
//! conversion to the model. Every other field (`hostname`, `zone`, `hints`, ...) is
//! ignored, as for the other core objects.

use super::Object;
use super::core::ip_address;
use super::error::{FieldError, FieldPath, Problems};
use super::metadata::ObjectMeta;
use super::names;
use super::ports;
use super::wire::{deserialize_at, nullable};
use crate::model::{
    AddressType, EndpointConditions, EndpointSlice, Protocol, SERVICE_NAME_LABEL, SliceEndpoint,
    SlicePort, TargetRef,
};
use serde::Deserialize;
use serde_norway::Value;
use std::net::IpAddr;

/// Most addresses an endpoint may have (API validation).
const MAX_ADDRESSES: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndpointSliceDocument {
    address_type: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    endpoints: Vec<EndpointWire>,
    #[serde(default, deserialize_with = "nullable")]
    ports: Vec<PortWire>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndpointWire {
    #[serde(default, deserialize_with = "nullable")]
    addresses: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    conditions: ConditionsWire,
    target_ref: Option<TargetRefWire>,
    node_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ConditionsWire {
    ready: Option<bool>,
    serving: Option<bool>,
    terminating: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct TargetRefWire {
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PortWire {
    name: Option<String>,
    protocol: Option<String>,
    port: Option<i64>,
}

pub(crate) fn endpoint_slice(
    document: &Value,
    at: &FieldPath,
    meta: ObjectMeta,
) -> Result<Object, Vec<FieldError>> {
    let wire: EndpointSliceDocument = deserialize_at(document, at).map_err(|e| vec![e])?;
    let namespace = meta.namespace.expect("EndpointSlice is a namespaced kind");
    let mut problems = Problems::new();

    let type_at = at.field("addressType");
    let address_type = match wire.address_type.as_deref() {
        None | Some("") => {
            problems.add(&type_at, "required field is missing");
            None
        }
        Some(written) => problems.check(&type_at, address_type(written)),
    };
    let endpoints_at = at.field("endpoints");
    let endpoints = (wire.endpoints.iter().enumerate())
        .map(|(i, endpoint)| {
            let at = endpoints_at.index(i);
            slice_endpoint(endpoint, address_type, &namespace, &at, &mut problems)
        })
        .collect();
    let ports = slice_ports(&wire.ports, &at.field("ports"), &mut problems);

    let service_name = meta
        .labels
        .get(SERVICE_NAME_LABEL)
        .filter(|name| !name.is_empty())
        .map(str::to_string);
    problems.finish(Object::EndpointSlice(EndpointSlice {
        namespace,
        name: meta.name,
        service_name,
        // Only None if a problem was recorded.
        address_type: address_type.unwrap_or(AddressType::Fqdn),
        endpoints,
        ports,
    }))
}

fn address_type(written: &str) -> Result<AddressType, String> {
    match written {
        "IPv4" => Ok(AddressType::Ipv4),
        "IPv6" => Ok(AddressType::Ipv6),
        "FQDN" => Ok(AddressType::Fqdn),
        other => Err(format!(
            "unsupported address type {other:?}: must be \"IPv4\", \"IPv6\" or \"FQDN\""
        )),
    }
}

/// One endpoint. Its addresses must be of the slice's address type (`None` when that
/// is itself invalid: then they are only checked to be addresses); FQDN addresses are
/// not kept.
fn slice_endpoint(
    wire: &EndpointWire,
    address_type: Option<AddressType>,
    namespace: &str,
    at: &FieldPath,
    problems: &mut Problems,
) -> SliceEndpoint {
    let addresses_at = at.field("addresses");
    if wire.addresses.is_empty() {
        problems.add(&addresses_at, "must contain at least one address");
    } else if wire.addresses.len() > MAX_ADDRESSES {
        problems.add(
            &addresses_at,
            format!("may contain at most {MAX_ADDRESSES} addresses"),
        );
    }
    let mut addresses = Vec::new();
    if address_type != Some(AddressType::Fqdn) {
        for (i, text) in wire.addresses.iter().enumerate() {
            let field = addresses_at.index(i);
            if let Some(ip) = problems.check(&field, address(text, address_type)) {
                addresses.push(ip);
            }
        }
    }
    let target_ref = wire
        .target_ref
        .as_ref()
        .and_then(|target| target_ref(target, namespace, &at.field("targetRef"), problems));
    let node_name = wire.node_name.clone().filter(|name| !name.is_empty());
    if let Some(name) = &node_name {
        problems.check(
            &at.field("nodeName"),
            names::dns1123_subdomain(name).map_err(|why| format!("invalid node name: {why}")),
        );
    }
    let ConditionsWire {
        ready,
        serving,
        terminating,
    } = wire.conditions;
    SliceEndpoint {
        addresses,
        conditions: EndpointConditions {
            ready,
            serving,
            terminating,
        },
        target_ref,
        node_name,
    }
}

/// An IP address (canonical) of `address_type`, if known.
fn address(text: &str, address_type: Option<AddressType>) -> Result<IpAddr, String> {
    let ip = ip_address(text)?.to_canonical();
    match address_type {
        Some(expected) if AddressType::of(ip) != expected => Err(format!(
            "{text} is not an {} address (the slice's addressType)",
            expected.as_str()
        )),
        _ => Ok(ip),
    }
}

/// `targetRef`, its namespace defaulted to the slice's. A Pod target must name the pod
/// validly; other kinds are kept as written.
fn target_ref(
    wire: &TargetRefWire,
    namespace: &str,
    at: &FieldPath,
    problems: &mut Problems,
) -> Option<TargetRef> {
    let text = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
    let kind = text(&wire.kind).unwrap_or_default();
    let namespace = text(&wire.namespace).unwrap_or_else(|| namespace.to_string());
    let name = text(&wire.name).unwrap_or_default();
    if kind == "Pod" {
        if name.is_empty() {
            problems.add(
                &at.field("name"),
                "required field is missing for a Pod target",
            );
        } else {
            problems.check(
                &at.field("name"),
                names::dns1123_subdomain(&name).map_err(|why| format!("invalid pod name: {why}")),
            );
        }
        problems.check(
            &at.field("namespace"),
            names::dns1123_label(&namespace).map_err(|why| format!("invalid namespace: {why}")),
        );
    }
    Some(TargetRef {
        kind,
        namespace,
        name,
    })
}

/// `ports`, defaulted (name "", protocol TCP); names are DNS labels and unique.
fn slice_ports(written: &[PortWire], at: &FieldPath, problems: &mut Problems) -> Vec<SlicePort> {
    let mut ports: Vec<SlicePort> = Vec::new();
    for (i, wire) in written.iter().enumerate() {
        let at = at.index(i);
        let name = wire.name.clone().unwrap_or_default();
        if !name.is_empty() {
            problems.check(
                &at.field("name"),
                names::dns1123_label(&name).map_err(|why| format!("invalid port name: {why}")),
            );
        }
        if let Some(j) = ports.iter().position(|earlier| earlier.name == name) {
            problems.add(
                &at.field("name"),
                format!("duplicate port name {name:?} (also ports[{j}])"),
            );
        }
        let protocol = problems.check(
            &at.field("protocol"),
            ports::protocol(wire.protocol.as_deref()),
        );
        let port = match wire.port {
            None => Some(None),
            Some(number) => problems
                .check(&at.field("port"), ports::port_number(number))
                .map(Some),
        };
        // Kept even when invalid, so that later duplicates are named against it.
        ports.push(SlicePort {
            name,
            protocol: protocol.unwrap_or(Protocol::Tcp),
            port: port.flatten(),
        });
    }
    ports
}

#[cfg(test)]
mod tests {
    use crate::manifest::{Object, build_cluster, parse_documents};
    use crate::model::{
        AddressType, EndpointConditions, EndpointSlice, ObjectRef, Protocol, SlicePort, TargetRef,
    };

    fn parse(yaml: &str) -> EndpointSlice {
        let objects = parse_documents("eps.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
        match <[Object; 1]>::try_from(objects) {
            Ok([Object::EndpointSlice(slice)]) => slice,
            other => panic!("not one EndpointSlice: {other:?}"),
        }
    }

    const HEAD: &str = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
                        metadata: {name: web-abc, namespace: x}\n";

    fn error_text(body: &str) -> String {
        parse_documents("eps.yaml", &format!("{HEAD}{body}"))
            .unwrap_err()
            .to_string()
    }

    const FULL: &str = r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc12
  namespace: shop
  labels:
    kubernetes.io/service-name: web
    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
  ownerReferences: [{apiVersion: v1, kind: Service, name: web, uid: u1}]
addressType: IPv4
endpoints:
- addresses: [10.0.0.1]
  conditions: {ready: true, serving: true, terminating: false}
  hostname: web-1
  nodeName: node-a
  zone: z1
  targetRef: {kind: Pod, namespace: shop, name: web-1, uid: p1}
- addresses: [10.0.0.2, 10.0.0.3]
  conditions: {ready: false, serving: true, terminating: true}
  targetRef: {kind: Pod, name: web-2}
- addresses: [10.0.0.4]
  targetRef: {kind: VirtualMachine, name: vm-1}
ports:
- {name: http, port: 8080, protocol: TCP, appProtocol: http}
- {name: dns, port: 5353, protocol: UDP}
- {}
"#;

    #[test]
    fn reads_what_palisade_uses_and_ignores_the_rest() {
        let slice = parse(FULL);
        assert_eq!(slice.service().unwrap().to_string(), "shop/web");
        assert_eq!(slice.address_type, AddressType::Ipv4);
        let [first, second, third] = &slice.endpoints[..] else {
            panic!("three endpoints")
        };
        assert_eq!(first.address(), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(first.node_name.as_deref(), Some("node-a"));
        assert_eq!(first.target_pod().unwrap().to_string(), "shop/web-1");
        assert_eq!(second.addresses.len(), 2);
        assert_eq!(
            second.conditions,
            EndpointConditions {
                ready: Some(false),
                serving: Some(true),
                terminating: Some(true),
            }
        );
        // The namespace of a target defaults to the slice's.
        assert_eq!(second.target_pod().unwrap().to_string(), "shop/web-2");
        assert_eq!(third.conditions, EndpointConditions::default());
        assert_eq!(
            third.target_ref,
            Some(TargetRef {
                kind: "VirtualMachine".into(),
                namespace: "shop".into(),
                name: "vm-1".into(),
            })
        );
        assert_eq!(third.target_pod(), None);
        let port = |name: &str, protocol, port| SlicePort {
            name: name.into(),
            protocol,
            port,
        };
        assert_eq!(
            slice.ports,
            [
                port("http", Protocol::Tcp, Some(8080)),
                port("dns", Protocol::Udp, Some(5353)),
                port("", Protocol::Tcp, None),
            ]
        );
    }

    #[test]
    fn fqdn_slices_and_unlabelled_slices() {
        let slice = parse(&format!(
            "{HEAD}addressType: FQDN\nendpoints: [{{addresses: [db.example.com]}}]"
        ));
        assert_eq!(slice.address_type, AddressType::Fqdn);
        assert!(slice.endpoints[0].addresses.is_empty());
        assert_eq!(slice.service(), None);
        let v6 = parse(&format!(
            "{HEAD}addressType: IPv6\nendpoints: [{{addresses: ['fd00::1']}}]"
        ));
        assert_eq!(v6.endpoints[0].address(), Some("fd00::1".parse().unwrap()));
    }

    #[test]
    fn errors_name_file_object_and_field() {
        let cases = [
            ("endpoints: []", "addressType: required field is missing"),
            (
                "addressType: ipv4",
                "addressType: unsupported address type \"ipv4\"",
            ),
            (
                "addressType: IPv4\nendpoints: [{addresses: []}]",
                "endpoints[0].addresses: must contain at least one address",
            ),
            (
                "addressType: IPv4\nendpoints: [{addresses: ['fd00::1']}]",
                "endpoints[0].addresses[0]: fd00::1 is not an IPv4 address",
            ),
            (
                "addressType: IPv6\nendpoints: [{addresses: ['::ffff:10.0.0.1']}]",
                "endpoints[0].addresses[0]: ::ffff:10.0.0.1 is not an IPv6 address",
            ),
            (
                "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1]}, {addresses: [ten]}]",
                "endpoints[1].addresses[0]: invalid IP address \"ten\"",
            ),
            (
                "addressType: IPv4\n\
                 endpoints: [{addresses: [10.0.0.1], conditions: {ready: yes-ish}}]",
                "endpoints[0].conditions.ready: invalid type",
            ),
            (
                "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], targetRef: {kind: Pod}}]",
                "endpoints[0].targetRef.name: required field is missing for a Pod target",
            ),
            (
                "addressType: IPv4\n\
                 endpoints: [{addresses: [10.0.0.1], targetRef: {kind: Pod, name: Web}}]",
                "endpoints[0].targetRef.name: invalid pod name",
            ),
            (
                "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], nodeName: Node_1}]",
                "endpoints[0].nodeName: invalid node name",
            ),
            (
                "addressType: IPv4\nports: [{port: 0}]",
                "ports[0].port: invalid port 0",
            ),
            (
                "addressType: IPv4\nports: [{port: 80, protocol: HTTP}]",
                "ports[0].protocol: unsupported protocol \"HTTP\"",
            ),
            (
                "addressType: IPv4\nports: [{name: Http}]",
                "ports[0].name: invalid port name",
            ),
            (
                "addressType: IPv4\nports: [{port: 80}, {port: 81}]",
                "ports[1].name: duplicate port name \"\" (also ports[0])",
            ),
        ];
        for (body, expected) in cases {
            let text = error_text(body);
            assert!(
                text.starts_with(&format!(
                    "eps.yaml: document 1 (EndpointSlice x/web-abc): {expected}"
                )),
                "{body}\n  got: {text}"
            );
        }
    }

    #[test]
    fn slices_are_assembled_by_their_own_name() {
        let objects = parse_documents("eps.yaml", FULL).unwrap();
        let cluster =
            build_cluster(objects.into_iter().map(|o| ("eps.yaml".to_string(), o))).unwrap();
        let key = ObjectRef {
            namespace: "shop".into(),
            name: "web-abc12".into(),
        };
        assert_eq!(cluster.endpoint_slices[&key].endpoints.len(), 3);
    }
}
