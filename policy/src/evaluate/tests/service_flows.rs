//! Flows to a Service address, decided per backend with NetworkPolicy: policy applies to
//! the backend's target port on the pod, never to the Service port or address; one
//! denied backend denies the Service. Every backend decision is held against the
//! direct evaluator's decision on the same translated flow.

use super::fixture::*;
use super::service_fixture::*;
use crate::compile::compile;
use crate::compile::tables::{CompiledCluster, Verdict};
use crate::evaluate::{
    ClusterEvaluator, Endpoint, FlowError, IpFamily, Reason, ServiceFlowDecision, direct,
    flow_via_service, services,
};
use crate::model::{Cluster, Direction, NetworkPolicy, Protocol, Service};

const VIP: &str = "10.96.0.10";
const CLIENT: End = End::Pod("shop", "client");
const OTHER: End = End::Pod("shop", "other");
const WEB_1: End = End::Pod("shop", "web-1");

/// shop: web-1 and web-2 (app=web, http=8080/TCP; web-2 also canary=yes), client,
/// other; one node. Service shop/web at 10.96.0.10 (and fd00:96::10) port 80 -> http.
fn cluster(policies: Vec<NetworkPolicy>, services: Vec<Service>) -> Cluster {
    let mut web1 = pod("shop", "web-1", &[("app", "web")], &["10.0.0.1", "fd00::1"]);
    web1.ports = vec![container_port("http", 8080, Protocol::Tcp)];
    let mut web2 = pod(
        "shop",
        "web-2",
        &[("app", "web"), ("canary", "yes")],
        &["10.0.0.2", "fd00::2"],
    );
    web2.ports = web1.ports.clone();
    let mut builder = ClusterBuilder::new()
        .namespace("shop", &[])
        .node("node-a", &["192.168.0.10"])
        .pod(web1)
        .pod(web2)
        .pod(pod("shop", "client", &[("app", "client")], &["10.0.0.3"]))
        .pod(pod("shop", "other", &[("app", "other")], &["10.0.0.4"]));
    for policy in policies {
        builder = builder.policy(policy);
    }
    with_services(builder.build(), services, vec![])
}

fn web_service() -> Service {
    service(
        "shop",
        "web",
        &[VIP, "fd00:96::10"],
        &[("app", "web")],
        vec![named_service_port("http", Protocol::Tcp, 80, "http")],
    )
}

fn with_policies(policies: Vec<NetworkPolicy>) -> Cluster {
    cluster(policies, vec![web_service()])
}

fn endpoint<'a>(cluster: &'a Cluster, end: End<'a>) -> Endpoint<'a> {
    match end {
        End::Pod(namespace, name) => Endpoint::Pod(&cluster.pods[&object_ref(namespace, name)]),
        End::Addr(addr) => Endpoint::External(ip(addr)),
    }
}

/// Decides `from` -> `vip:port` and holds every backend's decisions against the direct
/// evaluator's on the translated flow.
fn via_service(
    cluster: &Cluster,
    from: End,
    vip: &str,
    protocol: u8,
    port: u16,
) -> Result<Option<ServiceFlowDecision>, FlowError> {
    let compiled = compile(cluster);
    let from = endpoint(cluster, from);
    let decision = flow_via_service(&compiled, from, ip(vip), protocol, port)?;
    if let Some(decision) = &decision {
        agree_with_direct(cluster, &compiled, from, decision);
    }
    Ok(decision)
}

fn agree_with_direct(
    cluster: &Cluster,
    compiled: &CompiledCluster,
    from: Endpoint,
    decision: &ServiceFlowDecision,
) {
    let table = |d: &Option<crate::evaluate::Decision>| {
        d.map(|d| {
            let rule = d.rule_ref.map(|r| compiled.rules[r as usize].clone());
            (d.verdict, d.reason, rule)
        })
    };
    let direct_end = |d: Option<direct::Decision>| d.map(|d| (d.verdict, d.reason, d.rule));
    for backend in decision.backends.iter().filter(|b| !b.loopback) {
        let (port, protocol) = (backend.backend.port, decision.protocol);
        let egress = match from {
            Endpoint::Pod(pod) => direct::decide(
                cluster,
                &pod.object_ref(),
                Direction::Egress,
                backend.backend.address,
                protocol,
                port,
            ),
            Endpoint::External(_) => None,
        };
        let ingress = backend.backend.pod.as_ref().and_then(|pod| {
            direct::decide(
                cluster,
                pod,
                Direction::Ingress,
                decision.src,
                protocol,
                port,
            )
        });
        assert_eq!(
            table(&backend.flow.egress),
            direct_end(egress),
            "egress {backend:?}"
        );
        assert_eq!(
            table(&backend.flow.ingress),
            direct_end(ingress),
            "ingress {backend:?}"
        );
    }
}

fn decided(cluster: &Cluster, from: End, port: u16) -> ServiceFlowDecision {
    via_service(cluster, from, VIP, TCP, port)
        .unwrap()
        .expect("a Service address")
}

/// Each backend's pod name and verdict.
fn per_backend(decision: &ServiceFlowDecision) -> Vec<(String, Verdict)> {
    decision
        .backends
        .iter()
        .map(|b| (b.backend.pod.as_ref().unwrap().name.clone(), b.flow.verdict))
        .collect()
}

fn web_ingress(rules: Vec<crate::model::PolicyRule>) -> NetworkPolicy {
    ingress_policy("shop", "web", match_labels(&[("app", "web")]), rules)
}

fn from_client(ports: Vec<crate::model::PortSpec>) -> crate::model::PolicyRule {
    rule(
        vec![pods_peer(None, Some(match_labels(&[("app", "client")])))],
        ports,
    )
}

#[test]
fn without_policy_every_backend_is_allowed_at_its_own_address_and_port() {
    let decision = decided(&with_policies(vec![]), CLIENT, 80);
    assert_eq!(decision.verdict, Verdict::Allow);
    assert_eq!(decision.service.to_string(), "shop/web");
    assert_eq!((decision.address, decision.port), (ip(VIP), 80));
    assert_eq!(decision.src, ip("10.0.0.3"));
    let translated: Vec<(String, u16)> = decision
        .backends
        .iter()
        .map(|b| (b.flow.dst.to_string(), b.backend.port))
        .collect();
    assert_eq!(
        translated,
        [("10.0.0.1".into(), 8080), ("10.0.0.2".into(), 8080)]
    );
    for backend in &decision.backends {
        assert!(!backend.loopback);
        assert_eq!(backend.flow.src, ip("10.0.0.3"));
        assert_eq!(
            backend.flow.ingress.unwrap().reason,
            Reason::AllowedNotIsolated
        );
    }
}

#[test]
fn a_policy_allowing_the_target_port_but_not_the_service_port_allows() {
    for target in [port(Protocol::Tcp, 8080), named_port(Protocol::Tcp, "http")] {
        let cluster = with_policies(vec![web_ingress(vec![from_client(vec![target])])]);
        let decision = decided(&cluster, CLIENT, 80);
        assert_eq!(decision.verdict, Verdict::Allow);
        assert!(
            decision
                .backends
                .iter()
                .all(|b| { b.flow.ingress.unwrap().reason == Reason::AllowedPolicy })
        );
        // The Service port on the pod itself is not allowed: a direct flow to it is
        // denied, and other clients are denied through the Service too.
        assert!(!Harness::new(cluster.clone()).allows(CLIENT, WEB_1, TCP, 80));
        assert_eq!(decided(&cluster, OTHER, 80).verdict, Verdict::Deny);
    }
}

#[test]
fn a_policy_allowing_the_service_port_but_not_the_target_port_denies() {
    let cluster = with_policies(vec![web_ingress(vec![from_client(vec![port(
        Protocol::Tcp,
        80,
    )])])]);
    let decision = decided(&cluster, CLIENT, 80);
    assert_eq!(decision.verdict, Verdict::Deny);
    for backend in &decision.backends {
        let ingress = backend.flow.ingress.unwrap();
        assert_eq!(
            (ingress.verdict, ingress.reason),
            (Verdict::Deny, Reason::DeniedPolicy)
        );
    }
}

#[test]
fn egress_policy_sees_the_backend_not_the_service_address() {
    let client = match_labels(&[("app", "client")]);
    let to_vip = egress_policy(
        "shop",
        "client",
        client.clone(),
        vec![rule(
            vec![ip_block("10.96.0.10/32", &[])],
            vec![port(Protocol::Tcp, 80)],
        )],
    );
    let decision = decided(&with_policies(vec![to_vip]), CLIENT, 80);
    assert_eq!(decision.verdict, Verdict::Deny);
    assert!(
        decision
            .backends
            .iter()
            .all(|b| b.flow.egress.unwrap().verdict == Verdict::Deny)
    );

    let to_web = egress_policy(
        "shop",
        "client",
        client,
        vec![rule(
            vec![pods_peer(None, Some(match_labels(&[("app", "web")])))],
            vec![port(Protocol::Tcp, 8080)],
        )],
    );
    let decision = decided(&with_policies(vec![to_web]), CLIENT, 80);
    assert_eq!(decision.verdict, Verdict::Allow);
    assert!(
        decision
            .backends
            .iter()
            .all(|b| { b.flow.egress.unwrap().reason == Reason::AllowedPolicy })
    );
}

#[test]
fn one_denied_backend_denies_the_service_and_is_named() {
    let isolate_canary =
        ingress_policy("shop", "canary", match_labels(&[("canary", "yes")]), vec![]);
    let decision = decided(&with_policies(vec![isolate_canary]), CLIENT, 80);
    assert_eq!(decision.verdict, Verdict::Deny);
    assert_eq!(
        per_backend(&decision),
        [
            ("web-1".into(), Verdict::Allow),
            ("web-2".into(), Verdict::Deny)
        ]
    );
}

#[test]
fn a_pod_reaching_its_own_service_passes_on_loopback() {
    let cluster = with_policies(vec![web_ingress(vec![from_client(vec![])])]);
    let decision = decided(&cluster, WEB_1, 80);
    let [own, other] = &decision.backends[..] else {
        panic!("two backends")
    };
    assert!(own.loopback && own.flow.egress.is_none() && own.flow.ingress.is_none());
    assert_eq!(own.flow.verdict, Verdict::Allow);
    assert!(!other.loopback);
    assert_eq!(other.flow.verdict, Verdict::Deny);
    assert_eq!(decision.verdict, Verdict::Deny);
}

#[test]
fn a_service_without_backends_is_denied_and_says_so() {
    let lonely = service(
        "shop",
        "lonely",
        &["10.96.0.20"],
        &[("app", "none")],
        vec![service_port("", Protocol::Tcp, 80, 8080)],
    );
    let cluster = cluster(vec![], vec![web_service(), lonely]);
    let decision = via_service(&cluster, CLIENT, "10.96.0.20", TCP, 80)
        .unwrap()
        .unwrap();
    assert!(decision.backends.is_empty());
    assert_eq!(decision.verdict, Verdict::Deny);
}

#[test]
fn addresses_that_are_no_service_port_are_none() {
    let cluster = with_policies(vec![]);
    assert_eq!(
        via_service(&cluster, CLIENT, "10.0.0.1", TCP, 8080),
        Ok(None)
    );
    assert_eq!(via_service(&cluster, CLIENT, VIP, TCP, 8080), Ok(None));
    assert_eq!(via_service(&cluster, CLIENT, VIP, UDP, 80), Ok(None));
}

#[test]
fn the_service_address_family_picks_the_source_address() {
    let cluster = with_policies(vec![]);
    // web-1 is dual stack: its IPv6 address reaches the IPv6 backends.
    let decision = via_service(&cluster, WEB_1, "fd00:96::10", TCP, 80)
        .unwrap()
        .unwrap();
    assert_eq!(decision.src, ip("fd00::1"));
    assert_eq!(decision.backends[1].flow.dst, ip("fd00::2"));
    // The client has no IPv6 address.
    assert!(matches!(
        via_service(&cluster, CLIENT, "fd00:96::10", TCP, 80),
        Err(FlowError::NoAddress {
            family: IpFamily::V6,
            ..
        })
    ));
    assert!(matches!(
        via_service(&cluster, End::Addr("203.0.113.7"), "fd00:96::10", TCP, 80),
        Err(FlowError::FamilyMismatch { .. })
    ));
}

#[test]
fn an_external_source_is_decided_at_the_backends_only() {
    let cluster = with_policies(vec![web_ingress(vec![from_client(vec![])])]);
    let decision = decided(&cluster, End::Addr("203.0.113.7"), 80);
    assert_eq!(decision.verdict, Verdict::Deny);
    for backend in &decision.backends {
        assert!(backend.flow.egress.is_none());
        assert_eq!(backend.flow.ingress.unwrap().verdict, Verdict::Deny);
    }
}

#[test]
fn one_evaluator_decides_many_service_flows() {
    let cluster = with_policies(vec![web_ingress(vec![from_client(vec![])])]);
    let compiled = compile(&cluster);
    let evaluator = ClusterEvaluator::new(&compiled);
    let entry = services::service(&compiled, ip(VIP), 80, TCP).unwrap();
    let verdicts: Vec<Verdict> = [CLIENT, OTHER]
        .into_iter()
        .map(|from| {
            evaluator
                .flow_to_service(endpoint(&cluster, from), entry)
                .unwrap()
                .verdict
        })
        .collect();
    assert_eq!(verdicts, [Verdict::Allow, Verdict::Deny]);
}
