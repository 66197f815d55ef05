//! The compiled Service table: which addresses get entries, backends derived from
//! selectors (named target ports, several ports, dual stack), EndpointSlices taking
//! precedence with kube-proxy's reading of their conditions, conflicting claims, and
//! determinism.

use super::fixture::*;
use super::service_fixture::*;
use crate::compile::compile;
use crate::compile::tables::{CompiledCluster, ServiceBackend, ServiceEntry};
use crate::evaluate::services::{backends, service as lookup};
use crate::manifest::{build_cluster, parse_documents};
use crate::model::{AddressType, Cluster, Protocol, ServiceType};

const VIP: &str = "10.96.0.10";

/// shop: web-1 (http 8080/TCP, dns 5353/UDP; dual stack), web-2 (http 9090/TCP;
/// IPv4), web-3 (http 7070/UDP; dual stack), web-4 (no address yet), web-host
/// (host network), db; dev: web. Every web pod has app=web.
fn shop() -> Cluster {
    let mut web1 = pod("shop", "web-1", &[("app", "web")], &["10.0.0.1", "fd00::1"]);
    web1.ports = vec![
        container_port("http", 8080, Protocol::Tcp),
        container_port("dns", 5353, Protocol::Udp),
    ];
    let mut web2 = pod("shop", "web-2", &[("app", "web")], &["10.0.0.2"]);
    web2.ports = vec![container_port("http", 9090, Protocol::Tcp)];
    let mut web3 = pod("shop", "web-3", &[("app", "web")], &["10.0.0.3", "fd00::3"]);
    web3.ports = vec![container_port("http", 7070, Protocol::Udp)];
    let mut host = pod("shop", "web-host", &[("app", "web")], &["192.168.0.10"]);
    host.host_network = true;
    ClusterBuilder::new()
        .node("node-a", &["192.168.0.10"])
        .pod(web1)
        .pod(web2)
        .pod(web3)
        .pod(pod("shop", "web-4", &[("app", "web")], &[]))
        .pod(host)
        .pod(pod("shop", "db", &[("app", "db")], &["10.0.0.9"]))
        .pod(pod("dev", "web", &[("app", "web")], &["10.0.1.1"]))
        .build()
}

fn compiled_with(
    services: Vec<crate::model::Service>,
    slices: Vec<crate::model::EndpointSlice>,
) -> CompiledCluster {
    compile(&with_services(shop(), services, slices))
}

/// The backends of `address:port` over `protocol`, which must be a Service address.
fn backends_of(
    compiled: &CompiledCluster,
    address: &str,
    port: u16,
    protocol: u8,
) -> Vec<ServiceBackend> {
    backends(compiled, ip(address), port, protocol)
        .unwrap_or_else(|| panic!("no Service at {address}:{port}/{protocol}"))
        .to_vec()
}

fn keys(compiled: &CompiledCluster) -> Vec<String> {
    compiled
        .services
        .iter()
        .map(|e| format!("{}:{}/{} {}", e.address, e.port, e.protocol, e.service))
        .collect()
}

#[test]
fn selector_backends_are_the_selected_pods_with_an_address() {
    let web = service(
        "shop",
        "web",
        &[VIP],
        &[("app", "web")],
        vec![service_port("", Protocol::Tcp, 80, 8080)],
    );
    let compiled = compiled_with(vec![web], vec![]);
    assert_eq!(keys(&compiled), ["10.96.0.10:80/6 shop/web"]);
    // Not web-4 (no address), db (not selected), dev/web (another namespace); the
    // host-network pod is a backend at its node's address, as Kubernetes has it.
    assert_eq!(
        backends_of(&compiled, VIP, 80, TCP),
        [
            backend("10.0.0.1", 8080, Some(("shop", "web-1"))),
            backend("10.0.0.2", 8080, Some(("shop", "web-2"))),
            backend("10.0.0.3", 8080, Some(("shop", "web-3"))),
            backend("192.168.0.10", 8080, Some(("shop", "web-host"))),
        ]
    );
}

#[test]
fn named_target_ports_resolve_on_each_pod() {
    let web = service(
        "shop",
        "web",
        &[VIP],
        &[("app", "web")],
        vec![
            named_service_port("http", Protocol::Tcp, 80, "http"),
            named_service_port("dns", Protocol::Udp, 53, "dns"),
        ],
    );
    let compiled = compiled_with(vec![web], vec![]);
    // web-3's "http" is UDP: no backend for a TCP port.
    assert_eq!(
        backends_of(&compiled, VIP, 80, TCP),
        [
            backend("10.0.0.1", 8080, Some(("shop", "web-1"))),
            backend("10.0.0.2", 9090, Some(("shop", "web-2"))),
        ]
    );
    assert_eq!(
        backends_of(&compiled, VIP, 53, UDP),
        [backend("10.0.0.1", 5353, Some(("shop", "web-1")))]
    );
}

#[test]
fn every_port_is_its_own_entry() {
    let web = service(
        "shop",
        "web",
        &[VIP],
        &[("app", "web")],
        vec![
            named_service_port("http", Protocol::Tcp, 80, "http"),
            service_port("metrics", Protocol::Tcp, 9100, 9100),
            named_service_port("dns", Protocol::Udp, 53, "dns"),
        ],
    );
    let compiled = compiled_with(vec![web], vec![]);
    assert_eq!(
        keys(&compiled),
        [
            "10.96.0.10:53/17 shop/web",
            "10.96.0.10:80/6 shop/web",
            "10.96.0.10:9100/6 shop/web"
        ]
    );
    // A numeric target port needs no container port: every selected pod serves it.
    assert_eq!(backends_of(&compiled, VIP, 9100, TCP).len(), 4);
    assert_eq!(backends_of(&compiled, VIP, 80, TCP).len(), 2);
    assert_eq!(backends(&compiled, ip(VIP), 80, UDP), None);
    assert_eq!(backends(&compiled, ip(VIP), 8080, TCP), None);
}

#[test]
fn dual_stack_services_have_entries_per_family_with_backends_of_that_family() {
    let mut web = service(
        "shop",
        "web",
        &[VIP, "fd00:96::10"],
        &[("app", "web")],
        vec![service_port("http", Protocol::Tcp, 80, 8080)],
    );
    web.external_ips = vec![ip("203.0.113.10"), ip("2001:db8::10")];
    let mut single = service(
        "shop",
        "single",
        &["10.96.0.11"],
        &[("app", "db")],
        vec![service_port("", Protocol::Tcp, 5432, 5432)],
    );
    // An external IP of a family without a cluster IP is not translated.
    single.external_ips = vec![ip("2001:db8::11")];
    let compiled = compiled_with(vec![web, single], vec![]);
    assert_eq!(
        keys(&compiled),
        [
            "10.96.0.10:80/6 shop/web",
            "10.96.0.11:5432/6 shop/single",
            "203.0.113.10:80/6 shop/web",
            "2001:db8::10:80/6 shop/web",
            "fd00:96::10:80/6 shop/web",
        ]
    );
    let v6 = [
        backend("fd00::1", 8080, Some(("shop", "web-1"))),
        backend("fd00::3", 8080, Some(("shop", "web-3"))),
    ];
    assert_eq!(backends_of(&compiled, "fd00:96::10", 80, TCP), v6);
    assert_eq!(backends_of(&compiled, "2001:db8::10", 80, TCP), v6);
    assert_eq!(backends_of(&compiled, "203.0.113.10", 80, TCP).len(), 4);
    // Lookups take IPv4-mapped addresses as IPv4.
    assert_eq!(
        backends_of(&compiled, "::ffff:10.96.0.10", 80, TCP).len(),
        4
    );
}

#[test]
fn headless_external_name_and_unallocated_services_have_no_entries() {
    let port = || vec![service_port("", Protocol::Tcp, 80, 8080)];
    let mut headless = service("shop", "headless", &[], &[("app", "web")], port());
    headless.headless = true;
    headless.external_ips = vec![ip("203.0.113.1")];
    let mut alias = service("shop", "alias", &["10.96.0.12"], &[], port());
    alias.service_type = ServiceType::ExternalName;
    let mut unallocated = service("shop", "unallocated", &[], &[("app", "web")], port());
    unallocated.external_ips = vec![ip("203.0.113.2")];
    let compiled = compiled_with(vec![headless, alias, unallocated], vec![]);
    assert!(compiled.services.is_empty(), "{:?}", compiled.services);
}

#[test]
fn services_without_backends_keep_their_entries() {
    let port = || vec![service_port("", Protocol::Tcp, 80, 8080)];
    let manual = service("shop", "manual", &["10.96.0.20"], &[], port());
    let nobody = service(
        "shop",
        "nobody",
        &["10.96.0.21"],
        &[("app", "none")],
        port(),
    );
    let compiled = compiled_with(vec![manual, nobody], vec![]);
    assert_eq!(
        backends(&compiled, ip("10.96.0.20"), 80, TCP),
        Some(&[][..])
    );
    assert_eq!(
        backends(&compiled, ip("10.96.0.21"), 80, TCP),
        Some(&[][..])
    );
    assert_eq!(backends(&compiled, ip("10.96.0.22"), 80, TCP), None);
}

#[test]
fn endpoint_slices_replace_the_selector() {
    let web = service(
        "shop",
        "web",
        &[VIP],
        &[("app", "web")],
        vec![service_port("", Protocol::Tcp, 80, 80)],
    );
    let ready = ready();
    let slice = slice(
        "shop",
        "web-abc",
        "web",
        AddressType::Ipv4,
        vec![
            slice_endpoint("10.0.0.1", ready, Some(("shop", "web-1"))),
            // No targetRef: the pod at the address.
            slice_endpoint("10.0.0.9", ready, None),
            // Outside the known pods.
            slice_endpoint("172.16.0.5", ready, None),
            // A stale targetRef: web-2 is not at that address, and no pod is.
            slice_endpoint("10.0.0.77", ready, Some(("shop", "web-2"))),
        ],
        vec![slice_port("", Protocol::Tcp, 8080)],
    );
    let compiled = compiled_with(vec![web], vec![slice]);
    assert_eq!(
        backends_of(&compiled, VIP, 80, TCP),
        [
            backend("10.0.0.1", 8080, Some(("shop", "web-1"))),
            backend("10.0.0.9", 8080, Some(("shop", "db"))),
            backend("10.0.0.77", 8080, None),
            backend("172.16.0.5", 8080, None),
        ]
    );
}

#[test]
fn slice_ports_match_by_name_and_protocol_and_slices_by_family() {
    let web = service(
        "shop",
        "web",
        &[VIP],
        &[],
        vec![
            service_port("http", Protocol::Tcp, 80, 80),
            service_port("dns", Protocol::Udp, 53, 53),
        ],
    );
    let ready = ready();
    let mut no_number = slice_port("metrics", Protocol::Tcp, 1);
    no_number.port = None;
    let v4 = slice(
        "shop",
        "web-v4",
        "web",
        AddressType::Ipv4,
        vec![slice_endpoint("10.0.0.1", ready, None)],
        vec![
            slice_port("http", Protocol::Tcp, 8080),
            slice_port("http", Protocol::Udp, 9999),
            slice_port("dns", Protocol::Udp, 5353),
            no_number,
        ],
    );
    let v6 = slice(
        "shop",
        "web-v6",
        "web",
        AddressType::Ipv6,
        vec![slice_endpoint("fd00::1", ready, None)],
        vec![slice_port("http", Protocol::Tcp, 8080)],
    );
    let mut fqdn = slice(
        "shop",
        "web-fqdn",
        "web",
        AddressType::Fqdn,
        vec![],
        vec![slice_port("http", Protocol::Tcp, 80)],
    );
    fqdn.endpoints = vec![crate::model::SliceEndpoint {
        addresses: Vec::new(),
        conditions: ready,
        target_ref: None,
        node_name: None,
    }];
    let other = slice(
        "shop",
        "other-abc",
        "other",
        AddressType::Ipv4,
        vec![slice_endpoint("10.0.0.2", ready, None)],
        vec![slice_port("http", Protocol::Tcp, 8080)],
    );
    let compiled = compiled_with(vec![web], vec![v4, v6, fqdn, other]);
    let pod = Some(("shop", "web-1"));
    assert_eq!(
        backends_of(&compiled, VIP, 80, TCP),
        [backend("10.0.0.1", 8080, pod)]
    );
    assert_eq!(
        backends_of(&compiled, VIP, 53, UDP),
        [backend("10.0.0.1", 5353, pod)]
    );
}

#[test]
fn ready_endpoints_win_and_serving_terminating_ones_are_the_fallback() {
    let web = service(
        "shop",
        "web",
        &[VIP],
        &[],
        vec![service_port("", Protocol::Tcp, 80, 80)],
    );
    let endpoints = |which: &[usize]| {
        let all = [
            slice_endpoint("10.0.0.1", conditions(Some(true), None, None), None),
            slice_endpoint("10.0.0.2", draining(), None),
            // Not ready, not serving.
            slice_endpoint(
                "10.0.0.3",
                conditions(Some(false), Some(false), Some(false)),
                None,
            ),
            // Serving but neither ready nor terminating: kube-proxy uses it never.
            slice_endpoint("10.0.0.4", conditions(Some(false), Some(true), None), None),
            // Terminating and no longer serving.
            slice_endpoint(
                "10.0.0.5",
                conditions(Some(false), Some(false), Some(true)),
                None,
            ),
        ];
        which.iter().map(|i| all[*i].clone()).collect::<Vec<_>>()
    };
    let addresses = |which: &[usize]| -> Vec<String> {
        let slice = slice(
            "shop",
            "web-abc",
            "web",
            AddressType::Ipv4,
            endpoints(which),
            vec![slice_port("", Protocol::Tcp, 8080)],
        );
        let compiled = compiled_with(vec![web.clone()], vec![slice]);
        backends_of(&compiled, VIP, 80, TCP)
            .iter()
            .map(|b| b.address.to_string())
            .collect()
    };
    assert_eq!(addresses(&[0, 1, 2, 3, 4]), ["10.0.0.1"]);
    assert_eq!(addresses(&[1, 2, 3, 4]), ["10.0.0.2"]);
    assert!(addresses(&[2, 3, 4]).is_empty());
}

#[test]
fn an_address_in_two_slices_counts_once_the_live_endpoint_winning() {
    let web = service(
        "shop",
        "web",
        &[VIP],
        &[],
        vec![service_port("", Protocol::Tcp, 80, 80)],
    );
    let port = || vec![slice_port("", Protocol::Tcp, 8080)];
    // The pod at 10.0.0.1 was replaced: the old one terminates in slice "a", the new
    // one is ready in slice "b".
    let old = slice(
        "shop",
        "web-a",
        "web",
        AddressType::Ipv4,
        vec![slice_endpoint(
            "10.0.0.1",
            draining(),
            Some(("shop", "web-old")),
        )],
        port(),
    );
    let new = slice(
        "shop",
        "web-b",
        "web",
        AddressType::Ipv4,
        vec![slice_endpoint("10.0.0.1", ready(), Some(("shop", "web-1")))],
        port(),
    );
    let compiled = compiled_with(vec![web], vec![old, new]);
    assert_eq!(
        backends_of(&compiled, VIP, 80, TCP),
        [backend("10.0.0.1", 8080, Some(("shop", "web-1")))]
    );
}

#[test]
fn conflicting_claims_go_to_cluster_ips_then_the_first_service() {
    let port = |number| service_port(&format!("p{number}"), Protocol::Tcp, number, number);
    let mut a = service("shop", "a", &["10.96.0.1"], &[], vec![port(80)]);
    a.external_ips = vec![ip("10.96.0.2")];
    let b = service("shop", "b", &["10.96.0.2"], &[], vec![port(80)]);
    let c = service("shop", "c", &["10.96.0.1"], &[], vec![port(80), port(81)]);
    let compiled = compiled_with(vec![c, b, a], vec![]);
    assert_eq!(
        keys(&compiled),
        [
            "10.96.0.1:80/6 shop/a",
            "10.96.0.1:81/6 shop/c",
            "10.96.0.2:80/6 shop/b"
        ]
    );
    let entry: &ServiceEntry = lookup(&compiled, ip("10.96.0.2"), 80, TCP).unwrap();
    assert_eq!(entry.service.to_string(), "shop/b");
}

#[test]
fn service_tables_are_deterministic_and_serialize_additively() {
    let build = || {
        let web = service(
            "shop",
            "web",
            &[VIP, "fd00:96::10"],
            &[("app", "web")],
            vec![
                named_service_port("http", Protocol::Tcp, 80, "http"),
                service_port("metrics", Protocol::Tcp, 9100, 9100),
            ],
        );
        let db = service(
            "shop",
            "db",
            &["10.96.0.11"],
            &[("app", "db")],
            vec![service_port("", Protocol::Tcp, 5432, 5432)],
        );
        with_services(shop(), vec![web, db], vec![])
    };
    let first = compile(&build());
    let second = compile(&build());
    assert_eq!(first, second);
    let json = serde_json::to_string(&first).unwrap();
    assert_eq!(json, serde_json::to_string(&second).unwrap());
    let mut sorted = first.services.clone();
    sorted.sort();
    assert_eq!(first.services, sorted);
    let back: CompiledCluster = serde_json::from_str(&json).unwrap();
    assert_eq!(back, first);

    // Without Services the serialized tables are what they were before the field.
    let plain = compile(&shop());
    let json = serde_json::to_value(&plain).unwrap();
    assert!(json.get("services").is_none(), "{json}");
    let back: CompiledCluster = serde_json::from_value(json).unwrap();
    assert_eq!(back, plain);
}

#[test]
fn manifests_to_service_table() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec:
  containers: [{name: app, ports: [{name: http, containerPort: 8080}]}]
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: shop, labels: {app: web}}
spec:
  containers: [{name: app, ports: [{name: http, containerPort: 8081}]}]
status: {podIPs: [{ip: 10.0.0.2}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;
    let objects = parse_documents("shop.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let cluster = build_cluster(objects.into_iter().map(|o| ("shop.yaml".to_string(), o)))
        .unwrap_or_else(|e| panic!("{e}"));
    let compiled = compile(&cluster);
    assert_eq!(
        backends_of(&compiled, VIP, 80, TCP),
        [
            backend("10.0.0.1", 8080, Some(("shop", "web-1"))),
            backend("10.0.0.2", 8081, Some(("shop", "web-2"))),
        ]
    );
}
