//! One scenario per cluster policy feature and per interaction of the tiers (admin,
//! NetworkPolicy, baseline). Every probe is decided by both evaluators (the harness
//! asserts they agree, rule and reason included) and checked against what
//! AdminNetworkPolicy / BaselineAdminNetworkPolicy v0.1.7 specify.

use super::fixture::*;
use crate::compile::tables::{EndpointEntry, RuleInfo, Verdict};
use crate::evaluate::{IpFamily, Reason};
use crate::model::{ClusterPort, Direction, LabelSelector, Protocol, RuleAction, Subject};
use RuleAction::{Allow, Deny, Pass};
use palisade_abi::reserved;

const WEB: End = End::Pod("prod", "web");
const DB: End = End::Pod("prod", "db");
const DEV_CLIENT: End = End::Pod("dev", "client");
const REMOTE: End = End::Pod("dev", "remote");
const INTERNET: End = End::Addr("203.0.113.7");
const OWN_NODE: End = End::Addr("192.168.0.10");
const OTHER_NODE: End = End::Addr("192.168.0.11");

/// prod (team=a): web (http=TCP 8080, dns=UDP 53), db; dev (team=b): client on node-a,
/// remote on node-b. node-a (role=worker) 192.168.0.10, node-b (role=infra)
/// 192.168.0.11 and fd00:ff::11.
fn base() -> ClusterBuilder {
    let mut web = pod("prod", "web", &[("app", "web")], &["10.0.0.1", "fd00::1"]);
    web.ports = vec![
        container_port("http", 8080, Protocol::Tcp),
        container_port("dns", 53, Protocol::Udp),
    ];
    let mut remote = pod("dev", "remote", &[("app", "client")], &["10.0.1.2"]);
    remote.node_name = Some("node-b".into());
    ClusterBuilder::new()
        .namespace("prod", &[("team", "a")])
        .namespace("dev", &[("team", "b")])
        .labelled_node("node-a", &["192.168.0.10"], &[("role", "worker")])
        .labelled_node(
            "node-b",
            &["192.168.0.11", "fd00:ff::11"],
            &[("role", "infra")],
        )
        .pod(web)
        .pod(pod("prod", "db", &[("app", "db")], &["10.0.0.2"]))
        .pod(pod("dev", "client", &[("app", "client")], &["10.0.1.1"]))
        .pod(remote)
}

fn prod() -> Subject {
    Subject::Namespaces(match_labels(&[("team", "a")]))
}

fn web_only() -> Subject {
    Subject::Pods {
        namespace_selector: match_labels(&[("team", "a")]),
        pod_selector: match_labels(&[("app", "web")]),
    }
}

fn from_dev(action: RuleAction) -> crate::model::ClusterRule {
    cluster_rule(action, vec![namespaces(&[("team", "b")])], vec![])
}

fn endpoint<'h>(h: &'h Harness, name: &str) -> &'h EndpointEntry {
    h.compiled
        .nodes
        .values()
        .flat_map(|n| &n.endpoints)
        .find(|e| e.pod.name == name)
        .unwrap_or_else(|| panic!("no endpoint {name}"))
}

fn ingress_rule(h: &Harness, from: End, to: End, protocol: u8, port: u16) -> Option<RuleInfo> {
    h.outcome(from, to, protocol, port, None)
        .unwrap()
        .ingress
        .unwrap()
        .rule
}

#[test]
fn admin_allow_beats_a_network_policy_deny() {
    let h = Harness::new(
        base()
            .policy(ingress_policy(
                "prod",
                "deny-all",
                LabelSelector::default(),
                vec![],
            ))
            .cluster_policy(admin_policy(
                "allow-dev",
                10,
                prod(),
                vec![from_dev(Allow)],
                vec![],
            ))
            .build(),
    );
    assert!(h.allows(DEV_CLIENT, WEB, TCP, 8080));
    assert!(!h.allows(DB, WEB, TCP, 8080));
    let cited = ingress_rule(&h, DEV_CLIENT, WEB, TCP, 8080).unwrap();
    assert_eq!(
        (
            cited.tier.as_str(),
            cited.kind.as_str(),
            cited.namespace.as_str()
        ),
        ("admin", "AdminNetworkPolicy", "")
    );
    assert_eq!(
        (cited.name.as_str(), cited.rule, cited.action.as_str()),
        ("allow-dev", 0, "Allow")
    );
}

#[test]
fn admin_deny_beats_a_network_policy_allow() {
    let h = Harness::new(
        base()
            .policy(ingress_policy(
                "prod",
                "allow-all",
                LabelSelector::default(),
                vec![rule(vec![], vec![])],
            ))
            .cluster_policy(admin_policy(
                "deny-dev",
                10,
                prod(),
                vec![from_dev(Deny)],
                vec![],
            ))
            .build(),
    );
    let outcome = h.outcome(DEV_CLIENT, WEB, TCP, 8080, None).unwrap();
    assert_eq!(outcome.verdict, Verdict::Deny);
    let ingress = outcome.ingress.unwrap();
    assert_eq!(ingress.reason, Reason::DeniedPolicy);
    assert_eq!(ingress.rule.unwrap().action, "Deny");
    assert!(h.allows(DB, WEB, TCP, 8080));
}

#[test]
fn pass_defers_to_network_policy_and_skips_the_rest_of_the_tier() {
    let cluster = |with_network_policy: bool| {
        let mut b = base()
            .cluster_policy(admin_policy(
                "pass-dev",
                10,
                prod(),
                vec![from_dev(Pass), from_dev(Deny)],
                vec![],
            ))
            // A later admin policy is skipped too.
            .cluster_policy(admin_policy(
                "deny-dev",
                20,
                prod(),
                vec![from_dev(Deny)],
                vec![],
            ));
        if with_network_policy {
            b = b.policy(ingress_policy(
                "prod",
                "db-only",
                LabelSelector::default(),
                vec![rule(
                    vec![pods_peer(None, Some(match_labels(&[("app", "db")])))],
                    vec![],
                )],
            ));
        }
        Harness::new(b.build())
    };
    // NetworkPolicy decides: dev is not allowed by it, db is.
    let h = cluster(true);
    assert!(!h.allows(DEV_CLIENT, WEB, TCP, 8080));
    assert!(h.allows(DB, WEB, TCP, 8080));
    // Without NetworkPolicy nothing decides: allowed by default.
    let h = cluster(false);
    let outcome = h.outcome(DEV_CLIENT, WEB, TCP, 8080, None).unwrap();
    assert_eq!(outcome.verdict, Verdict::Allow);
    let ingress = outcome.ingress.unwrap();
    assert_eq!(
        (ingress.rule, ingress.reason),
        (None, Reason::AllowedNotIsolated)
    );
}

#[test]
fn baseline_applies_only_where_network_policy_does_not_isolate() {
    let banp = baseline_policy(prod(), vec![from_dev(Deny)], vec![from_dev(Deny)]);
    let h = Harness::new(base().cluster_policy(banp.clone()).build());
    assert!(!h.allows(DEV_CLIENT, WEB, TCP, 8080));
    assert!(!h.allows(WEB, DEV_CLIENT, TCP, 8080));
    let cited = ingress_rule(&h, DEV_CLIENT, WEB, TCP, 8080).unwrap();
    assert_eq!(
        (
            cited.tier.as_str(),
            cited.kind.as_str(),
            cited.name.as_str()
        ),
        ("baseline", "BaselineAdminNetworkPolicy", "default")
    );

    // Ingress isolated by NetworkPolicy (which allows dev): the baseline's ingress
    // rules are not consulted; its egress rules still are.
    let h = Harness::new(
        base()
            .cluster_policy(banp)
            .policy(ingress_policy(
                "prod",
                "allow-dev",
                LabelSelector::default(),
                vec![rule(
                    vec![pods_peer(Some(match_labels(&[("team", "b")])), None)],
                    vec![],
                )],
            ))
            .build(),
    );
    assert!(h.allows(DEV_CLIENT, WEB, TCP, 8080));
    assert!(!h.allows(WEB, DEV_CLIENT, TCP, 8080));
}

#[test]
fn baseline_deny_versus_default_allow() {
    let h = Harness::new(
        base()
            .cluster_policy(baseline_policy(prod(), vec![from_dev(Deny)], vec![]))
            .build(),
    );
    assert!(!h.allows(DEV_CLIENT, WEB, TCP, 8080));
    let outcome = h.outcome(DB, WEB, TCP, 8080, None).unwrap();
    assert_eq!(outcome.verdict, Verdict::Allow);
    assert_eq!(outcome.ingress.unwrap().reason, Reason::AllowedNotIsolated);
    // A constrained direction is enforced; the other is not.
    let web = endpoint(&h, "web");
    assert!(web.enforce_ingress && !web.enforce_egress);
    assert!(!endpoint(&h, "client").enforce_ingress);
}

#[test]
fn admin_decisions_are_final_for_the_baseline_too() {
    let h = Harness::new(
        base()
            .cluster_policy(admin_policy(
                "allow-dev",
                10,
                prod(),
                vec![from_dev(Allow)],
                vec![],
            ))
            .cluster_policy(baseline_policy(prod(), vec![from_dev(Deny)], vec![]))
            .build(),
    );
    assert!(h.allows(DEV_CLIENT, WEB, TCP, 8080));
}

#[test]
fn lower_priority_numbers_win_and_equal_priorities_go_by_name() {
    let cluster = |allow_priority, deny_priority| {
        Harness::new(
            base()
                .cluster_policy(admin_policy(
                    "b-allow",
                    allow_priority,
                    prod(),
                    vec![from_dev(Allow)],
                    vec![],
                ))
                .cluster_policy(admin_policy(
                    "a-deny",
                    deny_priority,
                    prod(),
                    vec![from_dev(Deny)],
                    vec![],
                ))
                .build(),
        )
    };
    assert!(cluster(1, 2).allows(DEV_CLIENT, WEB, TCP, 80));
    assert!(!cluster(2, 1).allows(DEV_CLIENT, WEB, TCP, 80));
    // Upstream leaves ties undefined; palisade goes by name: a-deny first.
    assert!(!cluster(5, 5).allows(DEV_CLIENT, WEB, TCP, 80));
}

#[test]
fn the_first_matching_rule_of_a_policy_wins() {
    let tcp_80 = |action| {
        cluster_rule(
            action,
            vec![namespaces(&[("team", "b")])],
            vec![port_number(Protocol::Tcp, 80)],
        )
    };
    let h = Harness::new(
        base()
            .cluster_policy(admin_policy(
                "ordered",
                10,
                prod(),
                vec![tcp_80(Allow), from_dev(Deny), tcp_80(Deny)],
                vec![],
            ))
            .build(),
    );
    assert!(h.allows(DEV_CLIENT, WEB, TCP, 80));
    assert!(!h.allows(DEV_CLIENT, WEB, TCP, 81));
    assert!(!h.allows(DEV_CLIENT, WEB, UDP, 80));
    assert_eq!(ingress_rule(&h, DEV_CLIENT, WEB, TCP, 80).unwrap().rule, 0);
    assert_eq!(ingress_rule(&h, DEV_CLIENT, WEB, TCP, 81).unwrap().rule, 1);
}

#[test]
fn subjects_select_namespaces_or_pods_within_them() {
    let h = Harness::new(
        base()
            .cluster_policy(admin_policy(
                "web-only",
                10,
                web_only(),
                vec![from_dev(Deny)],
                vec![],
            ))
            .build(),
    );
    assert!(!h.allows(DEV_CLIENT, WEB, TCP, 80));
    assert!(h.allows(DEV_CLIENT, DB, TCP, 80));
    assert!(!endpoint(&h, "db").enforce_ingress);
}

#[test]
fn named_ports_resolve_on_the_receiving_pod() {
    let named = |action, name: &str| {
        cluster_rule(
            action,
            vec![namespaces(&[("team", "b")]), namespaces(&[("team", "a")])],
            vec![ClusterPort::Named(name.to_string())],
        )
    };
    let h = Harness::new(
        base()
            // Ingress: on the subject (web).
            .cluster_policy(admin_policy(
                "web-dns",
                10,
                web_only(),
                vec![named(Allow, "dns"), from_dev(Deny)],
                vec![],
            ))
            // Egress: on the destination; never on an external address.
            .cluster_policy(baseline_policy(
                prod(),
                vec![],
                vec![
                    named(Allow, "http"),
                    cluster_rule(Deny, vec![networks(&["0.0.0.0/0"])], vec![]),
                ],
            ))
            .build(),
    );
    assert!(h.allows(DEV_CLIENT, WEB, UDP, 53));
    assert!(!h.allows(DEV_CLIENT, WEB, TCP, 53));
    assert!(h.allows(DB, WEB, TCP, 8080));
    assert!(!h.allows(DB, WEB, TCP, 8081));
    assert!(!h.allows(DB, INTERNET, TCP, 8080));
}

#[test]
fn port_ranges_include_both_ends() {
    let h = Harness::new(
        base()
            .cluster_policy(admin_policy(
                "range",
                10,
                prod(),
                vec![
                    cluster_rule(
                        Allow,
                        vec![namespaces(&[("team", "b")])],
                        vec![ClusterPort::Range {
                            protocol: Protocol::Tcp,
                            first: 1000,
                            last: 2000,
                        }],
                    ),
                    from_dev(Deny),
                ],
                vec![],
            ))
            .build(),
    );
    for (port, allowed) in [
        (999, false),
        (1000, true),
        (1500, true),
        (2000, true),
        (2001, false),
    ] {
        assert_eq!(h.allows(DEV_CLIENT, WEB, TCP, port), allowed, "{port}");
    }
    assert!(!h.allows(DEV_CLIENT, WEB, UDP, 1500));
}

#[test]
fn networks_match_pods_external_addresses_and_nodes() {
    let h = Harness::new(
        base()
            .cluster_policy(admin_policy(
                "deny-networks",
                10,
                prod(),
                vec![],
                vec![cluster_rule(
                    Deny,
                    vec![networks(&[
                        "10.0.1.0/24",
                        "203.0.113.0/24",
                        "192.168.0.11/32",
                    ])],
                    vec![],
                )],
            ))
            .build(),
    );
    assert!(!h.allows(WEB, DEV_CLIENT, TCP, 80));
    assert!(!h.allows(WEB, INTERNET, TCP, 80));
    assert!(h.allows(WEB, DB, TCP, 80));
    assert!(h.allows(WEB, End::Addr("198.51.100.1"), TCP, 80));
    // node-b is in the network through its IPv4 address: to policies a node is one
    // peer, so its IPv6 address is denied too.
    assert!(!h.allows(WEB, OTHER_NODE, TCP, 80));
    assert!(!h.allows(WEB, End::Addr("fd00:ff::11"), TCP, 80));
}

#[test]
fn ipv6_networks_do_not_cover_ipv4() {
    let h = Harness::new(
        base()
            .cluster_policy(admin_policy(
                "deny-v6",
                10,
                web_only(),
                vec![],
                vec![cluster_rule(Deny, vec![networks(&["::/0"])], vec![])],
            ))
            .build(),
    );
    assert!(h.allows(WEB, INTERNET, TCP, 80));
    assert!(!h.allows(WEB, End::Addr("2001:db8::1"), TCP, 80));
    let v6 = h
        .outcome(WEB, DB, TCP, 80, Some(IpFamily::V6))
        .map(|o| o.verdict);
    assert!(v6.is_err(), "db has no IPv6 address");
}

#[test]
fn nodes_peers_select_nodes_by_label_remote_and_own() {
    let everyone = Subject::Namespaces(LabelSelector::default());
    let h = Harness::new(
        base()
            .cluster_policy(admin_policy(
                "nodes",
                10,
                everyone,
                vec![],
                vec![
                    cluster_rule(
                        Allow,
                        vec![nodes(&[])],
                        vec![port_number(Protocol::Tcp, 10250)],
                    ),
                    cluster_rule(Deny, vec![nodes(&[("role", "infra")])], vec![]),
                    cluster_rule(Deny, vec![nodes(&[("role", "worker")])], vec![]),
                ],
            ))
            .build(),
    );
    let deciding_rule = |from, to| {
        let egress = h.outcome(from, to, TCP, 22, None).unwrap().egress.unwrap();
        assert_eq!(egress.verdict, Verdict::Deny);
        egress.rule.unwrap().rule
    };
    // From node-a: node-b is a remote node whose identity carries its labels; node-a
    // is the own node, decided by the HOST rows of node-a's table.
    assert!(h.allows(WEB, OTHER_NODE, TCP, 10250));
    assert_eq!(deciding_rule(WEB, OTHER_NODE), 1);
    assert!(h.allows(WEB, OWN_NODE, TCP, 10250));
    assert_eq!(deciding_rule(WEB, OWN_NODE), 2);
    let web = endpoint(&h, "web");
    assert!(
        h.compiled
            .policy_entries(&h.compiled.nodes["node-a"])
            .any(|row| { row.policy_id == web.policy_id && row.peer_identity == reserved::HOST })
    );
    // From node-b the roles swap.
    assert_eq!(deciding_rule(REMOTE, OWN_NODE), 2);
    assert_eq!(deciding_rule(REMOTE, OTHER_NODE), 1);
    // Pods are not nodes.
    assert!(h.allows(WEB, DEV_CLIENT, TCP, 22));
}

#[test]
fn the_own_node_is_allowed_unless_a_cluster_policy_decides_about_it() {
    let h = Harness::new(
        base()
            .policy(ingress_policy(
                "prod",
                "deny-all",
                LabelSelector::default(),
                vec![],
            ))
            .policy(egress_policy(
                "prod",
                "deny-all-out",
                LabelSelector::default(),
                vec![],
            ))
            .cluster_policy(baseline_policy(
                prod(),
                vec![],
                vec![cluster_rule(Deny, vec![nodes(&[])], vec![])],
            ))
            .build(),
    );
    // Isolated by NetworkPolicy: kubelet probes and the own node pass, the baseline
    // is not consulted.
    let outcome = h.outcome(OWN_NODE, WEB, TCP, 8080, None).unwrap();
    assert_eq!(outcome.ingress.unwrap().reason, Reason::AllowedHost);
    let outcome = h.outcome(WEB, OWN_NODE, TCP, 22, None).unwrap();
    assert_eq!(outcome.verdict, Verdict::Allow);
    assert_eq!(outcome.egress.unwrap().reason, Reason::AllowedHost);
    // Only HOST rows that say something other than "allowed" are written.
    assert!(
        h.compiled
            .policy_entries(&h.compiled.nodes["node-a"])
            .all(|row| row.peer_identity != reserved::HOST)
    );

    // Not isolated: the baseline decides about the own node.
    let h = Harness::new(
        base()
            .cluster_policy(baseline_policy(
                prod(),
                vec![],
                vec![cluster_rule(Deny, vec![nodes(&[])], vec![])],
            ))
            .build(),
    );
    assert!(!h.allows(WEB, OWN_NODE, TCP, 22));
    assert!(h.allows(OWN_NODE, WEB, TCP, 8080));
}

#[test]
fn host_network_pods_are_nodes_never_pods_nor_subjects() {
    let mut agent = pod("prod", "agent", &[("app", "web")], &["192.168.0.11"]);
    agent.host_network = true;
    agent.node_name = Some("node-b".into());
    let h = Harness::new(
        base()
            .pod(agent)
            .cluster_policy(admin_policy(
                "deny-prod-pods",
                10,
                prod(),
                vec![],
                vec![cluster_rule(
                    Deny,
                    vec![namespaces(&[("team", "a")])],
                    vec![],
                )],
            ))
            .build(),
    );
    assert!(!h.allows(WEB, DB, TCP, 80));
    // The host-network pod is node-b, not a prod pod.
    assert!(h.allows(WEB, End::Pod("prod", "agent"), TCP, 80));
    assert!(
        h.compiled
            .nodes
            .values()
            .flat_map(|n| &n.endpoints)
            .all(|e| e.pod.name != "agent")
    );
}

#[test]
fn rules_without_peers_match_nothing() {
    let h = Harness::new(
        base()
            .cluster_policy(admin_policy(
                "empty",
                10,
                prod(),
                vec![cluster_rule(Deny, vec![], vec![])],
                vec![],
            ))
            .build(),
    );
    assert!(h.allows(DEV_CLIENT, WEB, TCP, 80));
    // The subject has a rule for ingress: the direction is enforced.
    assert!(endpoint(&h, "web").enforce_ingress);
    assert_eq!(
        ingress_rule(&h, DEV_CLIENT, WEB, TCP, 80),
        None,
        "no rule decided"
    );
}

#[test]
fn both_ends_decide_with_their_own_tiers() {
    // dev egress denies prod; prod ingress allows dev: the flow is denied at the source.
    let h = Harness::new(
        base()
            .cluster_policy(admin_policy(
                "allow-dev-in",
                10,
                prod(),
                vec![from_dev(Allow)],
                vec![],
            ))
            .cluster_policy(admin_policy(
                "deny-prod-out",
                20,
                Subject::Namespaces(match_labels(&[("team", "b")])),
                vec![],
                vec![cluster_rule(
                    Deny,
                    vec![namespaces(&[("team", "a")])],
                    vec![],
                )],
            ))
            .build(),
    );
    let outcome = h.outcome(DEV_CLIENT, WEB, TCP, 80, None).unwrap();
    assert_eq!(outcome.verdict, Verdict::Deny);
    let egress = outcome.egress.unwrap();
    assert_eq!(egress.verdict, Verdict::Deny);
    assert_eq!(egress.rule.unwrap().direction, Direction::Egress);
    assert_eq!(outcome.ingress.unwrap().verdict, Verdict::Allow);
}
