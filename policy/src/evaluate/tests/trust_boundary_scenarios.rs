//! One scenario per TrustBoundary feature and per interaction with the other tiers.
//! Every probe is decided by both evaluators (the harness asserts they agree, rule and
//! reason included): the compiler's per-zone admin policies and the oracle's direct
//! reading of the boundary.

use super::fixture::*;
use crate::compile::tables::{RuleInfo, Verdict};
use crate::model::{
    DEFAULT_TRUST_BOUNDARY_PRIORITY, Direction, LabelSelector, Protocol, ProtocolPorts, RuleAction,
    SharedService, SharedServiceDirection, Subject, TrustBoundary,
};

const A1_WEB: End = End::Pod("tenant-a1", "web");
const A2_API: End = End::Pod("tenant-a2", "api");
const B_WEB: End = End::Pod("tenant-b", "web");
const COREDNS: End = End::Pod("kube-system", "coredns");
const PROMETHEUS: End = End::Pod("monitoring", "prometheus");
const INTERNET: End = End::Addr("203.0.113.7");
const NODE: End = End::Addr("192.168.0.10");

/// tenant-a1 and tenant-a2 (tenant=a), tenant-b (tenant=b), all kind=tenant; a DNS
/// server in kube-system and Prometheus in monitoring; one node.
fn base() -> ClusterBuilder {
    let tenant = |name: &str, value: &str| (name.to_string(), value.to_string());
    let mut builder = ClusterBuilder::new()
        .node("node-a", &["192.168.0.10"])
        .namespace("kube-system", &[])
        .namespace("monitoring", &[])
        .pod(pod(
            "kube-system",
            "coredns",
            &[("k8s-app", "kube-dns")],
            &["10.1.9.53"],
        ))
        .pod(pod(
            "monitoring",
            "prometheus",
            &[("app", "prometheus")],
            &["10.1.9.90"],
        ))
        .pod(pod("tenant-a1", "web", &[("app", "web")], &["10.1.0.1"]))
        .pod(pod("tenant-a2", "api", &[("app", "api")], &["10.1.0.2"]))
        .pod(pod("tenant-b", "web", &[("app", "web")], &["10.1.1.1"]));
    for (name, value) in [
        tenant("tenant-a1", "a"),
        tenant("tenant-a2", "a"),
        tenant("tenant-b", "b"),
    ] {
        builder = builder.namespace(&name, &[("kind", "tenant"), ("tenant", &value)]);
    }
    builder
}

fn service(
    name: &str,
    namespace: &str,
    ports: Vec<ProtocolPorts>,
    direction: SharedServiceDirection,
) -> SharedService {
    SharedService {
        name: name.to_string(),
        namespace_selector: match_labels(&[(crate::model::NAMESPACE_NAME_LABEL, namespace)]),
        pod_selector: LabelSelector::default(),
        ports,
        direction,
    }
}

/// Tenants grouped by their `tenant` label, with DNS (to it, 53) and Prometheus (from
/// it, 9090) as shared services.
fn tenants(zone_label: Option<&str>) -> TrustBoundary {
    TrustBoundary {
        name: "tenants".into(),
        priority: DEFAULT_TRUST_BOUNDARY_PRIORITY,
        namespace_selector: match_labels(&[("kind", "tenant")]),
        zone_label: zone_label.map(str::to_string),
        shared_services: vec![
            service(
                "dns",
                "kube-system",
                vec![
                    ProtocolPorts::single(Protocol::Udp, 53),
                    ProtocolPorts::single(Protocol::Tcp, 53),
                ],
                SharedServiceDirection::ToService,
            ),
            service(
                "prometheus",
                "monitoring",
                vec![ProtocolPorts::single(Protocol::Tcp, 9090)],
                SharedServiceDirection::FromService,
            ),
        ],
    }
}

fn allow_all_ingress(namespace: &str) -> crate::model::NetworkPolicy {
    ingress_policy(
        namespace,
        "allow-all",
        LabelSelector::default(),
        vec![rule(vec![], vec![])],
    )
}

fn rule_of(
    h: &Harness,
    from: End,
    to: End,
    protocol: u8,
    port: u16,
    direction: Direction,
) -> Option<RuleInfo> {
    let outcome = h.outcome(from, to, protocol, port, None).unwrap();
    let end = match direction {
        Direction::Egress => outcome.egress,
        Direction::Ingress => outcome.ingress,
    };
    end.unwrap().rule
}

#[test]
fn a_boundary_denies_across_zones_what_a_network_policy_allows() {
    let h = Harness::new(
        base()
            .policy(allow_all_ingress("tenant-b"))
            .trust_boundary(tenants(Some("tenant")))
            .build(),
    );
    assert_eq!(h.verdict(A1_WEB, B_WEB, TCP, 8080), Verdict::Deny);
    assert_eq!(h.verdict(B_WEB, A1_WEB, TCP, 8080), Verdict::Deny);
    // Egress of the source already denies: zone isolation, as the boundary names it.
    let cited = rule_of(&h, A1_WEB, B_WEB, TCP, 8080, Direction::Egress).unwrap();
    assert_eq!(
        cited,
        RuleInfo::trust_boundary(
            "tenants",
            Direction::Egress,
            2,
            RuleAction::Deny,
            "zone isolation"
        )
    );
    assert_eq!(
        (
            cited.tier.as_str(),
            cited.kind.as_str(),
            cited.namespace.as_str()
        ),
        ("admin", "TrustBoundary", "")
    );
    // On ingress the isolation rule comes after the one service that crosses inward.
    let cited = rule_of(&h, A1_WEB, B_WEB, TCP, 8080, Direction::Ingress).unwrap();
    assert_eq!(
        (cited.rule, cited.rule_name.as_str()),
        (2, "zone isolation")
    );
}

#[test]
fn namespaces_with_one_zone_label_value_form_one_zone() {
    let h = Harness::new(base().trust_boundary(tenants(Some("tenant"))).build());
    assert!(h.allows(A1_WEB, A2_API, TCP, 80));
    assert!(h.allows(A2_API, A1_WEB, TCP, 80));
    // Without a zone label every namespace is a zone of its own.
    let h = Harness::new(base().trust_boundary(tenants(None)).build());
    assert!(!h.allows(A1_WEB, A2_API, TCP, 80));
    // A selected namespace without the zone label is a zone of its own.
    let h = Harness::new(
        base()
            .namespace("tenant-c", &[("kind", "tenant")])
            .pod(pod("tenant-c", "job", &[], &["10.1.2.1"]))
            .pod(pod("tenant-c", "job-2", &[], &["10.1.2.2"]))
            .trust_boundary(tenants(Some("tenant")))
            .build(),
    );
    let job = End::Pod("tenant-c", "job");
    assert!(!h.allows(job, A1_WEB, TCP, 80));
    assert!(h.allows(job, End::Pod("tenant-c", "job-2"), TCP, 80));
}

#[test]
fn shared_services_pass_on_their_ports_in_their_direction() {
    let h = Harness::new(base().trust_boundary(tenants(Some("tenant"))).build());
    // DNS: zone pods may reach it on 53, nothing else, and it may not reach into zones.
    assert!(h.allows(A1_WEB, COREDNS, UDP, 53));
    assert!(h.allows(A1_WEB, COREDNS, TCP, 53));
    assert!(!h.allows(A1_WEB, COREDNS, TCP, 80));
    assert!(!h.allows(COREDNS, A1_WEB, TCP, 53));
    // Prometheus: it may scrape zone pods on 9090; zone pods may not reach it.
    assert!(h.allows(PROMETHEUS, A1_WEB, TCP, 9090));
    assert!(!h.allows(PROMETHEUS, A1_WEB, TCP, 8080));
    assert!(!h.allows(A1_WEB, PROMETHEUS, TCP, 9090));
    // The services' own pods are outside the boundary: not enforced by it.
    assert!(h.allows(COREDNS, PROMETHEUS, TCP, 9090));
}

#[test]
fn passed_traffic_is_still_decided_by_network_policy() {
    let h = Harness::new(
        base()
            .policy(egress_policy(
                "tenant-a1",
                "deny-egress",
                LabelSelector::default(),
                vec![],
            ))
            .trust_boundary(tenants(Some("tenant")))
            .build(),
    );
    assert!(
        !h.allows(A1_WEB, A2_API, TCP, 80),
        "same zone, but NetworkPolicy isolates"
    );
    assert!(
        !h.allows(A1_WEB, COREDNS, UDP, 53),
        "shared service, but NetworkPolicy isolates"
    );
    assert!(h.allows(A2_API, A1_WEB, TCP, 80));
}

#[test]
fn nodes_and_outside_addresses_are_left_alone() {
    let h = Harness::new(base().trust_boundary(tenants(Some("tenant"))).build());
    assert!(h.allows(A1_WEB, INTERNET, TCP, 443));
    assert!(h.allows(INTERNET, A1_WEB, TCP, 8080));
    assert!(h.allows(NODE, A1_WEB, TCP, 8080));
    assert!(h.allows(A1_WEB, NODE, TCP, 10250));
}

#[test]
fn admin_network_policies_come_first_unless_the_boundary_has_a_lower_priority() {
    let monitoring_allowed = |priority: u32, boundary_priority: u32| {
        let allow = admin_policy(
            "scrape-everything",
            priority,
            Subject::Namespaces(LabelSelector::default()),
            vec![cluster_rule(
                RuleAction::Allow,
                vec![namespaces(&[(
                    crate::model::NAMESPACE_NAME_LABEL,
                    "monitoring",
                )])],
                vec![],
            )],
            vec![],
        );
        let boundary = TrustBoundary {
            priority: boundary_priority,
            ..tenants(Some("tenant"))
        };
        let h = Harness::new(
            base()
                .cluster_policy(allow)
                .trust_boundary(boundary)
                .build(),
        );
        h.allows(PROMETHEUS, A1_WEB, TCP, 8080)
    };
    assert!(monitoring_allowed(10, DEFAULT_TRUST_BOUNDARY_PRIORITY));
    // At equal priority AdminNetworkPolicies are evaluated first.
    assert!(monitoring_allowed(1000, 1000));
    assert!(!monitoring_allowed(10, 5));
}
