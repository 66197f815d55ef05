//! One scenario per NetworkPolicy feature. Every probe is decided by both evaluators
//! (the harness asserts they agree, rule and reason included) and checked against the
//! verdict Kubernetes documents.

use super::fixture::*;
use crate::compile::tables::Verdict;
use crate::evaluate::{IpFamily, Reason};
use crate::model::{Direction, LabelSelector, Protocol, SelectorOperator};

const WEB: End = End::Pod("prod", "web");
const DB: End = End::Pod("prod", "db");
const PROD_CLIENT: End = End::Pod("prod", "client");
const DEV_CLIENT: End = End::Pod("dev", "client");
const INTERNET: End = End::Addr("203.0.113.7");

/// prod (team=a): web (http=8080), db, client; dev (team=b): client. One node.
fn base() -> ClusterBuilder {
    let mut web = pod("prod", "web", &[("app", "web")], &["10.0.0.1"]);
    web.ports = vec![
        container_port("http", 8080, Protocol::Tcp),
        container_port("metrics", 9090, Protocol::Tcp),
    ];
    ClusterBuilder::new()
        .namespace("prod", &[("team", "a")])
        .namespace("dev", &[("team", "b")])
        .node("node-a", &["192.168.0.10"])
        .pod(web)
        .pod(pod("prod", "db", &[("app", "db")], &["10.0.0.2"]))
        .pod(pod("prod", "client", &[("app", "client")], &["10.0.0.3"]))
        .pod(pod("dev", "client", &[("app", "client")], &["10.0.1.1"]))
}

fn web_ingress(rules: Vec<crate::model::PolicyRule>) -> Harness {
    Harness::new(
        base()
            .policy(ingress_policy(
                "prod",
                "web",
                match_labels(&[("app", "web")]),
                rules,
            ))
            .build(),
    )
}

#[test]
fn pods_without_policies_allow_everything() {
    let h = Harness::new(base().build());
    for (from, to) in [
        (DEV_CLIENT, WEB),
        (WEB, INTERNET),
        (INTERNET, DB),
        (DB, WEB),
    ] {
        let outcome = h.outcome(from, to, TCP, 80, None).unwrap();
        assert_eq!(outcome.verdict, Verdict::Allow);
        for end in outcome.egress.iter().chain(&outcome.ingress) {
            assert_eq!(end.reason, Reason::AllowedNotIsolated);
        }
    }
    assert!(h.compiled.nodes["node-a"].policy_tables.is_empty());
}

#[test]
fn empty_rule_list_denies_everything() {
    let h = web_ingress(vec![]);
    assert!(!h.allows(DB, WEB, TCP, 8080));
    assert!(!h.allows(INTERNET, WEB, UDP, 53));
    assert!(!h.allows(DB, WEB, ICMP, 0));
    // Only ingress is isolated, and only for web.
    assert!(h.allows(WEB, DB, TCP, 5432));
    assert!(h.allows(WEB, INTERNET, TCP, 443));
    assert!(h.allows(PROD_CLIENT, DB, TCP, 5432));
    let outcome = h.outcome(DB, WEB, TCP, 80, None).unwrap();
    assert_eq!(outcome.ingress.unwrap().reason, Reason::DeniedPolicy);
}

#[test]
fn empty_rule_allows_everything() {
    let h = web_ingress(vec![rule(vec![], vec![])]);
    assert!(h.allows(DB, WEB, TCP, 8080));
    assert!(h.allows(INTERNET, WEB, UDP, 53));
    assert!(h.allows(DEV_CLIENT, WEB, ICMP, 0));
    assert!(h.allows(End::Addr("10.0.0.99"), WEB, SCTP, 1));
}

#[test]
fn pod_selector_peers_match_same_namespace_only() {
    let h = web_ingress(vec![rule(
        vec![pods_peer(None, Some(match_labels(&[("app", "client")])))],
        vec![],
    )]);
    assert!(h.allows(PROD_CLIENT, WEB, TCP, 8080));
    assert!(!h.allows(DEV_CLIENT, WEB, TCP, 8080));
    assert!(!h.allows(DB, WEB, TCP, 8080));
    assert!(!h.allows(INTERNET, WEB, TCP, 8080));
    // Pods peers never match the addresses of non-pods, even inside pod ranges.
    assert!(!h.allows(End::Addr("10.0.0.99"), WEB, TCP, 8080));
}

#[test]
fn namespace_selector_peers_match_every_pod_of_selected_namespaces() {
    let h = web_ingress(vec![rule(
        vec![pods_peer(Some(match_labels(&[("team", "b")])), None)],
        vec![],
    )]);
    assert!(h.allows(DEV_CLIENT, WEB, TCP, 8080));
    assert!(!h.allows(PROD_CLIENT, WEB, TCP, 8080));

    // The empty namespace selector selects every namespace.
    let h = web_ingress(vec![rule(
        vec![pods_peer(Some(LabelSelector::default()), None)],
        vec![],
    )]);
    assert!(h.allows(DEV_CLIENT, WEB, TCP, 8080));
    assert!(h.allows(DB, WEB, TCP, 8080));
    assert!(!h.allows(INTERNET, WEB, TCP, 8080));

    // By name, through the automatic label.
    let h = web_ingress(vec![rule(
        vec![pods_peer(
            Some(match_labels(&[("kubernetes.io/metadata.name", "dev")])),
            None,
        )],
        vec![],
    )]);
    assert!(h.allows(DEV_CLIENT, WEB, TCP, 8080));
    assert!(!h.allows(DB, WEB, TCP, 8080));
}

#[test]
fn namespace_and_pod_selector_together_intersect() {
    let dev_db = pod("dev", "db", &[("app", "db")], &["10.0.1.2"]);
    let policy = ingress_policy(
        "prod",
        "web",
        match_labels(&[("app", "web")]),
        vec![rule(
            vec![pods_peer(
                Some(match_labels(&[("team", "b")])),
                Some(match_labels(&[("app", "client")])),
            )],
            vec![],
        )],
    );
    let h = Harness::new(base().pod(dev_db).policy(policy).build());
    assert!(h.allows(DEV_CLIENT, WEB, TCP, 80));
    assert!(!h.allows(End::Pod("dev", "db"), WEB, TCP, 80));
    assert!(!h.allows(PROD_CLIENT, WEB, TCP, 80));
}

#[test]
fn match_expressions_select_peers() {
    let selector = LabelSelector {
        match_expressions: vec![expression("app", SelectorOperator::NotIn, &["db"])],
        ..LabelSelector::default()
    };
    let h = web_ingress(vec![rule(vec![pods_peer(None, Some(selector))], vec![])]);
    assert!(h.allows(PROD_CLIENT, WEB, TCP, 80));
    assert!(!h.allows(DB, WEB, TCP, 80));
}

#[test]
fn ip_blocks_with_excepts_apply_to_pod_addresses_too() {
    let h = web_ingress(vec![rule(
        vec![ip_block("10.0.0.0/16", &["10.0.1.0/24", "10.0.0.2/32"])],
        vec![],
    )]);
    assert!(h.allows(PROD_CLIENT, WEB, TCP, 80)); // 10.0.0.3
    assert!(!h.allows(DB, WEB, TCP, 80)); // 10.0.0.2, excepted
    assert!(!h.allows(DEV_CLIENT, WEB, TCP, 80)); // 10.0.1.1, excepted
    assert!(h.allows(End::Addr("10.0.200.1"), WEB, TCP, 80));
    assert!(!h.allows(End::Addr("10.0.1.200"), WEB, TCP, 80));
    assert!(!h.allows(INTERNET, WEB, TCP, 80));
}

#[test]
fn ip_blocks_ignore_host_bits() {
    // 10.0.1.1/4 is 0.0.0.0/4: it contains 10.x but not 203.x.
    let h = web_ingress(vec![rule(vec![ip_block("10.0.1.1/4", &[])], vec![])]);
    assert!(h.allows(DB, WEB, TCP, 80));
    assert!(h.allows(End::Addr("15.1.2.3"), WEB, TCP, 80));
    assert!(!h.allows(End::Addr("16.0.0.1"), WEB, TCP, 80));
    assert!(!h.allows(INTERNET, WEB, TCP, 80));
}

#[test]
fn nested_blocks_and_excepts_resolve_by_longest_prefix() {
    // Block A allows 10/8 but not 10.1/16; block B allows 10.1.2/24 inside that hole.
    let h = web_ingress(vec![
        rule(
            vec![ip_block("10.0.0.0/8", &["10.1.0.0/16"])],
            vec![port(Protocol::Tcp, 80)],
        ),
        rule(
            vec![ip_block("10.1.2.0/24", &[])],
            vec![port(Protocol::Tcp, 443)],
        ),
    ]);
    assert!(h.allows(End::Addr("10.2.0.1"), WEB, TCP, 80));
    assert!(!h.allows(End::Addr("10.2.0.1"), WEB, TCP, 443));
    assert!(!h.allows(End::Addr("10.1.3.1"), WEB, TCP, 80));
    assert!(!h.allows(End::Addr("10.1.2.1"), WEB, TCP, 80));
    assert!(h.allows(End::Addr("10.1.2.1"), WEB, TCP, 443));
}

#[test]
fn numeric_ports_and_protocols() {
    let h = web_ingress(vec![rule(
        vec![],
        vec![
            port(Protocol::Tcp, 8080),
            port(Protocol::Udp, 53),
            port(Protocol::Sctp, 9),
        ],
    )]);
    assert!(h.allows(DB, WEB, TCP, 8080));
    assert!(!h.allows(DB, WEB, UDP, 8080));
    assert!(h.allows(DB, WEB, UDP, 53));
    assert!(!h.allows(DB, WEB, TCP, 53));
    assert!(h.allows(DB, WEB, SCTP, 9));
    assert!(!h.allows(DB, WEB, SCTP, 8080));
    // Port specs never match protocols without ports.
    assert!(!h.allows(DB, WEB, ICMP, 0));
}

#[test]
fn whole_protocols() {
    let h = web_ingress(vec![rule(vec![], vec![all_ports(Protocol::Udp)])]);
    assert!(h.allows(DB, WEB, UDP, 0));
    assert!(h.allows(DB, WEB, UDP, 65535));
    assert!(!h.allows(DB, WEB, TCP, 80));
}

#[test]
fn end_port_ranges() {
    let h = web_ingress(vec![
        rule(
            vec![pods_peer(None, None)],
            vec![port_range(Protocol::Tcp, 1000, 2000)],
        ),
        rule(
            vec![ip_block("203.0.113.0/24", &[])],
            vec![port_range(Protocol::Udp, 1, 65535)],
        ),
    ]);
    for (port, allowed) in [
        (999, false),
        (1000, true),
        (1500, true),
        (2000, true),
        (2001, false),
    ] {
        assert_eq!(h.allows(DB, WEB, TCP, port), allowed, "tcp {port}");
    }
    assert!(!h.allows(DB, WEB, UDP, 1500));
    assert!(h.allows(INTERNET, WEB, UDP, 1));
    assert!(h.allows(INTERNET, WEB, UDP, 65535));
    assert!(!h.allows(INTERNET, WEB, UDP, 0));
    assert!(!h.allows(INTERNET, WEB, TCP, 1500));
    // 1000..=2000 is 8 prefixes, 1..=65535 is 16, plus the None rows and protocol rows.
    let rows: Vec<_> = h
        .compiled
        .policy_entries(&h.compiled.nodes["node-a"])
        .collect();
    assert!(
        rows.iter()
            .any(|r| r.protocol == Some(TCP) && r.port == 1024 && r.port_prefix_len == 7)
    );
}

#[test]
fn named_ports_resolve_on_the_receiving_pod_for_ingress() {
    let h = web_ingress(vec![rule(vec![], vec![named_port(Protocol::Tcp, "http")])]);
    assert!(h.allows(DB, WEB, TCP, 8080));
    assert!(!h.allows(DB, WEB, TCP, 80));
    assert!(h.allows(INTERNET, WEB, TCP, 8080));
    assert!(!h.allows(DB, WEB, UDP, 8080));

    // A name the pod does not declare matches nothing.
    let h = web_ingress(vec![rule(vec![], vec![named_port(Protocol::Tcp, "grpc")])]);
    assert!(!h.allows(DB, WEB, TCP, 8080));
}

#[test]
fn named_ports_resolve_on_the_destination_for_egress() {
    let mut other_web = pod("prod", "web2", &[("app", "web")], &["10.0.0.4"]);
    other_web.ports = vec![container_port("http", 80, Protocol::Tcp)];
    let policy = egress_policy(
        "prod",
        "client",
        match_labels(&[("app", "client")]),
        vec![rule(vec![], vec![named_port(Protocol::Tcp, "http")])],
    );
    let h = Harness::new(base().pod(other_web).policy(policy).build());
    let web2 = End::Pod("prod", "web2");
    assert!(h.allows(PROD_CLIENT, WEB, TCP, 8080));
    assert!(!h.allows(PROD_CLIENT, WEB, TCP, 80));
    assert!(h.allows(PROD_CLIENT, web2, TCP, 80));
    assert!(!h.allows(PROD_CLIENT, web2, TCP, 8080));
    // Never on external addresses, nor on pods without the name.
    assert!(!h.allows(PROD_CLIENT, INTERNET, TCP, 8080));
    assert!(!h.allows(PROD_CLIENT, INTERNET, TCP, 80));
    assert!(!h.allows(PROD_CLIENT, DB, TCP, 8080));
    // Pods with the same labels but different numbers for the name differ.
    let identity = |name: &str| {
        h.compiled.nodes["node-a"]
            .endpoints
            .iter()
            .find(|e| e.pod.name == name)
            .unwrap()
            .identity
    };
    assert_ne!(identity("web"), identity("web2"));
}

#[test]
fn egress_only_policies_leave_ingress_open() {
    let h = Harness::new(
        base()
            .policy(egress_policy(
                "prod",
                "db",
                match_labels(&[("app", "db")]),
                vec![rule(
                    vec![pods_peer(None, Some(match_labels(&[("app", "web")])))],
                    vec![],
                )],
            ))
            .build(),
    );
    assert!(h.allows(DB, WEB, TCP, 8080));
    assert!(!h.allows(DB, PROD_CLIENT, TCP, 8080));
    assert!(!h.allows(DB, INTERNET, TCP, 443));
    assert!(h.allows(INTERNET, DB, TCP, 5432));
    assert!(h.allows(DEV_CLIENT, DB, TCP, 5432));
    let db = h.compiled.nodes["node-a"]
        .endpoints
        .iter()
        .find(|e| e.pod.name == "db")
        .unwrap();
    assert!(db.enforce_egress && !db.enforce_ingress);
}

#[test]
fn policy_types_decide_isolation_not_rule_lists() {
    // Egress rules of a policy whose types say Ingress only are ignored.
    let mut policy = ingress_policy("prod", "web", match_labels(&[("app", "web")]), vec![]);
    policy.egress = vec![rule(vec![pods_peer(None, None)], vec![])];
    let h = Harness::new(base().policy(policy).build());
    assert!(h.allows(WEB, INTERNET, TCP, 443));
    assert!(!h.allows(DB, WEB, TCP, 8080));
}

#[test]
fn policies_form_a_union() {
    let h = Harness::new(
        base()
            .policy(ingress_policy(
                "prod",
                "a",
                match_labels(&[("app", "web")]),
                vec![rule(
                    vec![pods_peer(None, Some(match_labels(&[("app", "db")])))],
                    vec![],
                )],
            ))
            .policy(ingress_policy(
                "prod",
                "b",
                LabelSelector::default(),
                vec![rule(vec![], vec![port(Protocol::Tcp, 443)])],
            ))
            .build(),
    );
    assert!(h.allows(DB, WEB, TCP, 1));
    assert!(h.allows(DEV_CLIENT, WEB, TCP, 443));
    assert!(!h.allows(DEV_CLIENT, WEB, TCP, 444));
    // Policy b alone isolates db.
    assert!(h.allows(WEB, DB, TCP, 443));
    assert!(!h.allows(WEB, DB, TCP, 5432));
    // Where both allow, the first rule by policy name is the one cited.
    let outcome = h.outcome(DB, WEB, TCP, 443, None).unwrap();
    assert_eq!(outcome.ingress.unwrap().rule.unwrap().name, "a");
}

#[test]
fn both_ends_must_allow() {
    let h = Harness::new(
        base()
            .policy(egress_policy(
                "dev",
                "deny-all",
                LabelSelector::default(),
                vec![],
            ))
            .policy(ingress_policy(
                "prod",
                "web",
                match_labels(&[("app", "web")]),
                vec![rule(
                    vec![pods_peer(Some(LabelSelector::default()), None)],
                    vec![],
                )],
            ))
            .build(),
    );
    let outcome = h.outcome(DEV_CLIENT, WEB, TCP, 80, None).unwrap();
    assert_eq!(outcome.ingress.as_ref().unwrap().verdict, Verdict::Allow);
    assert_eq!(outcome.egress.as_ref().unwrap().verdict, Verdict::Deny);
    assert_eq!(outcome.verdict, Verdict::Deny);
    assert!(h.allows(PROD_CLIENT, WEB, TCP, 80));
}

#[test]
fn ipv6_and_dual_stack() {
    let mut web = pod("prod", "web", &[("app", "web")], &["10.0.0.1", "fd00::1"]);
    web.ports = vec![container_port("http", 8080, Protocol::Tcp)];
    let h = Harness::new(
        ClusterBuilder::new()
            .namespace("prod", &[])
            .pod(web)
            .pod(pod("prod", "v6only", &[("app", "client")], &["fd00::2"]))
            .pod(pod(
                "prod",
                "dual",
                &[("app", "client")],
                &["10.0.0.3", "fd00::3"],
            ))
            .policy(ingress_policy(
                "prod",
                "web",
                match_labels(&[("app", "web")]),
                vec![
                    rule(
                        vec![pods_peer(None, Some(match_labels(&[("app", "client")])))],
                        vec![],
                    ),
                    rule(
                        vec![ip_block("2001:db8::/32", &["2001:db8:1::/48"])],
                        vec![],
                    ),
                    rule(vec![ip_block("::/0", &[])], vec![port(Protocol::Udp, 53)]),
                ],
            ))
            .build(),
    );
    let web = End::Pod("prod", "web");
    let dual = End::Pod("prod", "dual");
    assert!(h.allows(End::Pod("prod", "v6only"), web, TCP, 8080));
    for family in [IpFamily::V4, IpFamily::V6] {
        let outcome = h.outcome(dual, web, TCP, 8080, Some(family)).unwrap();
        assert_eq!(outcome.verdict, Verdict::Allow, "{family}");
    }
    assert!(h.allows(End::Addr("2001:db8::5"), web, TCP, 22));
    assert!(!h.allows(End::Addr("2001:db8:1::5"), web, TCP, 22));
    assert!(h.allows(End::Addr("2001:db8:1::5"), web, UDP, 53));
    // ::/0 is IPv6 only: IPv4 addresses, stored IPv4-mapped, are not in it.
    assert!(!h.allows(End::Addr("203.0.113.1"), web, UDP, 53));
    assert!(!h.allows(End::Addr("::ffff:203.0.113.1"), web, UDP, 53));
    // A v6-only pod has no IPv4 address to probe with.
    assert!(
        h.outcome(End::Pod("prod", "v6only"), web, TCP, 80, Some(IpFamily::V4))
            .is_err()
    );
}

#[test]
fn own_node_is_always_allowed_other_nodes_only_by_peerless_rules() {
    let mut remote_pod = pod("prod", "remote", &[("app", "client")], &["10.0.2.1"]);
    remote_pod.node_name = Some("node-b".into());
    let mut host_pod = pod("prod", "agent", &[("app", "client")], &["192.168.0.11"]);
    host_pod.host_network = true;
    host_pod.node_name = Some("node-b".into());
    let h = Harness::new(
        base()
            .node("node-b", &["192.168.0.11"])
            .pod(remote_pod)
            .pod(host_pod)
            .policy(ingress_policy(
                "prod",
                "web",
                match_labels(&[("app", "web")]),
                vec![rule(
                    vec![
                        pods_peer(None, Some(match_labels(&[("app", "client")]))),
                        ip_block("192.168.0.0/16", &[]),
                    ],
                    vec![port(Protocol::Tcp, 8080)],
                )],
            ))
            .build(),
    );
    let own_node = End::Addr("192.168.0.10");
    let outcome = h.outcome(own_node, WEB, TCP, 22, None).unwrap();
    assert_eq!(outcome.verdict, Verdict::Allow);
    assert_eq!(outcome.ingress.unwrap().reason, Reason::AllowedHost);
    assert!(h.allows(End::Pod("prod", "remote"), WEB, TCP, 8080));
    // Node addresses are not ipBlock members (documented simplification), and a
    // host-network pod is its node.
    assert!(!h.allows(End::Addr("192.168.0.11"), WEB, TCP, 8080));
    assert!(!h.allows(End::Pod("prod", "agent"), WEB, TCP, 8080));
    assert!(h.allows(End::Addr("192.168.5.5"), WEB, TCP, 8080));
    assert!(
        h.compiled.nodes["node-b"]
            .endpoints
            .iter()
            .all(|e| e.pod.name != "agent")
    );
}

#[test]
fn pods_without_addresses_are_endpoints_but_never_peers() {
    let h = Harness::new(
        base()
            .pod(pod("prod", "pending", &[("app", "web")], &[]))
            .policy(ingress_policy(
                "prod",
                "web",
                match_labels(&[("app", "web")]),
                vec![],
            ))
            .build(),
    );
    let pending = h.compiled.nodes["node-a"]
        .endpoints
        .iter()
        .find(|e| e.pod.name == "pending")
        .unwrap();
    assert!(pending.enforce_ingress);
    assert!(
        h.outcome(DB, End::Pod("prod", "pending"), TCP, 80, None)
            .is_err()
    );
}

#[test]
fn unscheduled_pods_compile_under_the_empty_node() {
    let mut floating = pod("prod", "floating", &[("app", "web")], &["10.0.0.9"]);
    floating.node_name = None;
    let h = Harness::new(
        base()
            .pod(floating)
            .policy(ingress_policy(
                "prod",
                "web",
                match_labels(&[("app", "web")]),
                vec![],
            ))
            .build(),
    );
    assert_eq!(h.compiled.nodes[""].endpoints.len(), 1);
    assert!(!h.allows(DB, End::Pod("prod", "floating"), TCP, 80));
}

#[test]
fn rule_refs_cite_the_first_allowing_rule() {
    let h = web_ingress(vec![
        rule(vec![], vec![port(Protocol::Tcp, 80)]),
        rule(vec![], vec![]),
    ]);
    let rule_of = |port| {
        h.outcome(DB, WEB, TCP, port, None)
            .unwrap()
            .ingress
            .unwrap()
            .rule
            .unwrap()
    };
    assert_eq!(rule_of(80).rule, 0);
    assert_eq!(rule_of(81).rule, 1);
    assert_eq!(rule_of(80).direction, Direction::Ingress);
    assert_eq!(h.compiled.rules.len(), 2);
}
