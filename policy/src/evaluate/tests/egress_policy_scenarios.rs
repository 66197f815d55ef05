//! One scenario per EgressPolicy feature and per interaction with the tiers around it
//! (admin before it, NetworkPolicy and baseline after it), plus its outputs besides
//! policy rows: DNS name rules per policy table and socket controls per endpoint.
//! Every probe is decided by both evaluators, which must agree.

use super::fixture::*;
use crate::compile::tables::{EndpointEntry, PortRangeEntry, RuleInfo, Verdict};
use crate::evaluate::Reason;
use crate::manifest::{build_cluster, parse_documents};
use crate::model::{
    EgressPeer, EgressPolicy, EgressRule, Enforcement, FqdnPattern, LabelSelector, Protocol,
    ProtocolPorts, RuleAction, SocketRules, Subject,
};

const RUNTIME: End = End::Pod("runtimes", "runtime");
const SIDECAR: End = End::Pod("runtimes", "sidecar");
const DB: End = End::Pod("data", "db");
const KNOWN_HOST: End = End::Addr("203.0.113.7");
const OTHER_HOST: End = End::Addr("198.51.100.7");
const OWN_NODE: End = End::Addr("192.168.0.10");
const OTHER_NODE: End = End::Addr("192.168.0.11");

/// runtimes: runtime (app=runtime), sidecar; data: db; two nodes.
fn base() -> ClusterBuilder {
    ClusterBuilder::new()
        .namespace("runtimes", &[("team", "a")])
        .namespace("data", &[("team", "data")])
        .node("node-a", &["192.168.0.10"])
        .node("node-b", &["192.168.0.11"])
        .pod(pod(
            "runtimes",
            "runtime",
            &[("app", "runtime")],
            &["10.2.0.1"],
        ))
        .pod(pod(
            "runtimes",
            "sidecar",
            &[("app", "sidecar")],
            &["10.2.0.2"],
        ))
        .pod(pod("data", "db", &[("app", "db")], &["10.2.1.1"]))
}

fn to_cidr(block: &str) -> EgressPeer {
    EgressPeer::Cidr {
        cidr: cidr(block),
        except: Vec::new(),
    }
}

fn to_db() -> EgressPeer {
    EgressPeer::Pods {
        namespace_selector: Some(match_labels(&[("team", "data")])),
        pod_selector: Some(match_labels(&[("app", "db")])),
    }
}

fn allow(to: Vec<EgressPeer>, ports: Vec<ProtocolPorts>) -> EgressRule {
    EgressRule {
        name: String::new(),
        to,
        ports,
    }
}

fn tcp(port: u16) -> ProtocolPorts {
    ProtocolPorts::single(Protocol::Tcp, port)
}

/// An enforcing EgressPolicy for the runtime pods.
fn allowlist(name: &str, egress: Vec<EgressRule>) -> EgressPolicy {
    EgressPolicy {
        namespace: "runtimes".into(),
        name: name.into(),
        pod_selector: match_labels(&[("app", "runtime")]),
        enforcement: Enforcement::Enforce,
        egress,
        sockets: None,
    }
}

fn known_hosts_and_db() -> EgressPolicy {
    allowlist(
        "runtime-egress",
        vec![
            allow(vec![to_cidr("203.0.113.0/24")], vec![tcp(443)]),
            allow(vec![to_db()], vec![tcp(5432)]),
        ],
    )
}

fn egress_rule(
    h: &Harness,
    to: End,
    protocol: u8,
    port: u16,
) -> (Verdict, Option<RuleInfo>, Reason) {
    let egress = h
        .outcome(RUNTIME, to, protocol, port, None)
        .unwrap()
        .egress
        .unwrap();
    (egress.verdict, egress.rule, egress.reason)
}

fn endpoint<'h>(h: &'h Harness, name: &str) -> &'h EndpointEntry {
    h.compiled
        .nodes
        .values()
        .flat_map(|n| &n.endpoints)
        .find(|e| e.pod.name == name)
        .unwrap_or_else(|| panic!("no endpoint {name}"))
}

#[test]
fn an_egress_policy_narrows_what_network_policy_allows() {
    let allow_all_egress = egress_policy(
        "runtimes",
        "allow-all-egress",
        LabelSelector::default(),
        vec![rule(vec![], vec![])],
    );
    let h = Harness::new(
        base()
            .policy(allow_all_egress)
            .egress_policy(known_hosts_and_db())
            .build(),
    );
    let policy = known_hosts_and_db();
    let (verdict, rule, _) = egress_rule(&h, KNOWN_HOST, TCP, 443);
    assert_eq!(
        (verdict, rule),
        (Verdict::Allow, Some(RuleInfo::egress_policy(&policy, 0)))
    );
    let cited = RuleInfo::egress_policy(&policy, 0);
    assert_eq!(
        (cited.tier.as_str(), cited.kind.as_str()),
        ("egress", "EgressPolicy")
    );
    assert!(h.allows(RUNTIME, DB, TCP, 5432));
    let (verdict, rule, reason) = egress_rule(&h, OTHER_HOST, TCP, 443);
    assert_eq!((verdict, reason), (Verdict::Deny, Reason::DeniedPolicy));
    let rule = rule.unwrap();
    assert_eq!(rule, RuleInfo::egress_policy_implicit_deny(&policy));
    assert_eq!(
        (rule.rule, rule.action.as_str(), rule.rule_name.as_str()),
        (2, "Deny", "implicit deny")
    );
    assert!(!h.allows(RUNTIME, DB, TCP, 22));
    assert!(!h.allows(RUNTIME, KNOWN_HOST, UDP, 443));
    // Pods it does not select keep what NetworkPolicy gives them.
    assert!(h.allows(SIDECAR, OTHER_HOST, TCP, 443));
    assert!(endpoint(&h, "runtime").enforce_egress && !endpoint(&h, "runtime").enforce_ingress);
}

#[test]
fn an_egress_policy_never_widens_what_network_policy_denies() {
    let db_only = egress_policy(
        "runtimes",
        "db-only",
        LabelSelector::default(),
        vec![rule(
            vec![pods_peer(Some(match_labels(&[("team", "data")])), None)],
            vec![],
        )],
    );
    let h = Harness::new(
        base()
            .policy(db_only)
            .egress_policy(known_hosts_and_db())
            .build(),
    );
    let (verdict, rule, reason) = egress_rule(&h, KNOWN_HOST, TCP, 443);
    assert_eq!(
        (verdict, rule, reason),
        (Verdict::Deny, None, Reason::DeniedPolicy)
    );
    assert!(h.allows(RUNTIME, DB, TCP, 5432));
}

#[test]
fn the_admin_tier_is_decided_before_the_allowlist() {
    let admin = |action| {
        admin_policy(
            "platform",
            10,
            Subject::Namespaces(match_labels(&[("team", "a")])),
            vec![],
            vec![cluster_rule(
                action,
                vec![networks(&["198.51.100.0/24", "203.0.113.0/24"])],
                vec![],
            )],
        )
    };
    let h = Harness::new(
        base()
            .cluster_policy(admin(RuleAction::Allow))
            .egress_policy(known_hosts_and_db())
            .build(),
    );
    let (verdict, rule, _) = egress_rule(&h, OTHER_HOST, TCP, 443);
    assert_eq!(verdict, Verdict::Allow);
    assert_eq!(rule.unwrap().kind, "AdminNetworkPolicy");
    let h = Harness::new(
        base()
            .cluster_policy(admin(RuleAction::Deny))
            .egress_policy(known_hosts_and_db())
            .build(),
    );
    let (verdict, rule, _) = egress_rule(&h, KNOWN_HOST, TCP, 443);
    assert_eq!(
        (verdict, rule.unwrap().action.as_str()),
        (Verdict::Deny, "Deny")
    );
    // Pass reaches the allowlist.
    let h = Harness::new(
        base()
            .cluster_policy(admin(RuleAction::Pass))
            .egress_policy(known_hosts_and_db())
            .build(),
    );
    assert!(h.allows(RUNTIME, KNOWN_HOST, TCP, 443));
    assert!(!h.allows(RUNTIME, OTHER_HOST, TCP, 443));
}

#[test]
fn audit_mode_reports_what_it_would_deny_and_passes_it() {
    let audited = EgressPolicy {
        enforcement: Enforcement::Audit,
        ..known_hosts_and_db()
    };
    let h = Harness::new(base().egress_policy(audited.clone()).build());
    let (verdict, rule, reason) = egress_rule(&h, OTHER_HOST, TCP, 443);
    assert_eq!((verdict, reason), (Verdict::AuditDeny, Reason::AuditDenied));
    assert_eq!(rule.unwrap().action, "AuditDeny");
    assert_eq!(h.verdict(RUNTIME, OTHER_HOST, TCP, 443), Verdict::AuditDeny);
    assert!(h.allows(RUNTIME, KNOWN_HOST, TCP, 443));
    // What NetworkPolicy denies stays denied.
    let h = Harness::new(
        base()
            .policy(egress_policy(
                "runtimes",
                "deny-egress",
                LabelSelector::default(),
                vec![],
            ))
            .egress_policy(audited)
            .build(),
    );
    assert_eq!(h.verdict(RUNTIME, OTHER_HOST, TCP, 443), Verdict::Deny);
}

#[test]
fn several_egress_policies_allow_the_union_of_their_allowlists() {
    let github = allowlist(
        "a-github",
        vec![allow(vec![to_cidr("203.0.113.0/24")], vec![tcp(443)])],
    );
    let mirror = allowlist(
        "b-mirror",
        vec![allow(vec![to_cidr("198.51.100.0/24")], vec![tcp(443)])],
    );
    let h = Harness::new(
        base()
            .egress_policy(github.clone())
            .egress_policy(mirror.clone())
            .build(),
    );
    assert_eq!(
        egress_rule(&h, KNOWN_HOST, TCP, 443).1,
        Some(RuleInfo::egress_policy(&github, 0))
    );
    assert_eq!(
        egress_rule(&h, OTHER_HOST, TCP, 443).1,
        Some(RuleInfo::egress_policy(&mirror, 0))
    );
    // What neither allows cites the first policy's implicit deny.
    assert_eq!(
        egress_rule(&h, OTHER_HOST, TCP, 80).1,
        Some(RuleInfo::egress_policy_implicit_deny(&github))
    );
    // An audit policy never widens an enforcing one.
    let audited_mirror = EgressPolicy {
        enforcement: Enforcement::Audit,
        ..mirror
    };
    let h = Harness::new(
        base()
            .egress_policy(github)
            .egress_policy(audited_mirror)
            .build(),
    );
    assert_eq!(h.verdict(RUNTIME, OTHER_HOST, TCP, 443), Verdict::Deny);
}

#[test]
fn cidrs_match_nodes_and_excepts_and_the_own_node_is_not_narrowed() {
    let policy = allowlist(
        "nodes",
        vec![allow(
            vec![EgressPeer::Cidr {
                cidr: cidr("192.168.0.0/16"),
                except: vec![cidr("192.168.1.0/24")],
            }],
            vec![],
        )],
    );
    let h = Harness::new(
        base()
            .pod(pod("data", "cache", &[("app", "cache")], &["192.168.1.5"]))
            .egress_policy(policy)
            .build(),
    );
    assert!(h.allows(RUNTIME, OTHER_NODE, TCP, 10250));
    assert!(!h.allows(RUNTIME, End::Pod("data", "cache"), TCP, 6379));
    let h = Harness::new(base().egress_policy(allowlist("nothing", vec![])).build());
    assert!(!h.allows(RUNTIME, OTHER_NODE, TCP, 10250));
    assert!(h.allows(RUNTIME, OWN_NODE, TCP, 10250));
}

#[test]
fn dns_name_rules_are_compiled_per_policy_table_and_allow_no_address() {
    let names = allowlist(
        "names",
        vec![
            allow(vec![to_cidr("203.0.113.0/24")], vec![]),
            EgressRule {
                name: "python packages".into(),
                to: vec![
                    EgressPeer::Fqdn(FqdnPattern::validated("*.pypi.org".into())),
                    EgressPeer::Fqdn(FqdnPattern::validated("pypi.org".into())),
                ],
                ports: vec![tcp(443)],
            },
        ],
    );
    let h = Harness::new(
        base()
            .pod(pod(
                "runtimes",
                "runtime-2",
                &[("app", "runtime")],
                &["10.2.0.3"],
            ))
            .pod(pod("runtimes", "twin", &[("app", "twin")], &["10.2.0.4"]))
            .egress_policy(names.clone())
            .egress_policy(EgressPolicy {
                name: "twin".into(),
                pod_selector: match_labels(&[("app", "twin")]),
                egress: vec![allow(vec![to_cidr("203.0.113.0/24")], vec![])],
                ..names
            })
            .build(),
    );
    let tables = &h.compiled.nodes["node-a"];
    let runtime = endpoint(&h, "runtime");
    assert_eq!(runtime.policy_id, endpoint(&h, "runtime-2").policy_id);
    // Same rows, but no names: a table of its own.
    assert_ne!(runtime.policy_id, endpoint(&h, "twin").policy_id);
    let fqdn_rules: Vec<_> = h.compiled.fqdn_rule_entries(tables).collect();
    let rules: Vec<(u32, &str, &[PortRangeEntry])> = fqdn_rules
        .iter()
        .map(|r| (r.policy_id, r.pattern.as_str(), r.ports.as_slice()))
        .collect();
    let https = [PortRangeEntry {
        protocol: 6,
        first: 443,
        last: 443,
    }];
    assert_eq!(
        rules,
        [
            (runtime.policy_id, "*.pypi.org", &https[..]),
            (runtime.policy_id, "pypi.org", &https[..])
        ]
    );
    let cited = &h.compiled.rules[fqdn_rules[0].rule_ref.unwrap() as usize];
    assert_eq!(
        (cited.kind.as_str(), cited.rule, cited.rule_name.as_str()),
        ("EgressPolicy", 1, "python packages")
    );
    // Until the DNS proxy resolves a name, it allows no address.
    assert!(!h.allows(RUNTIME, OTHER_HOST, TCP, 443));
}

#[test]
fn socket_controls_are_compiled_per_endpoint() {
    let sockets = |allow_raw, bind_ports: Option<Vec<ProtocolPorts>>| SocketRules {
        allow_raw,
        allow_packet: false,
        bind_ports,
    };
    let with_sockets = |name: &str, rules: Option<SocketRules>, enforcement| EgressPolicy {
        sockets: rules,
        enforcement,
        ..allowlist(name, vec![])
    };
    let controls = |policies: Vec<EgressPolicy>| {
        let mut builder = base();
        for policy in policies {
            builder = builder.egress_policy(policy);
        }
        let h = Harness::new(builder.build());
        let e = endpoint(&h, "runtime");
        let sidecar = endpoint(&h, "sidecar");
        assert!(!sidecar.deny_raw_sockets && sidecar.bind_ports.is_none());
        (
            e.deny_raw_sockets,
            e.deny_packet_sockets,
            e.bind_ports.clone(),
            e.audit_sockets,
        )
    };
    let bind_8080 = Some(vec![tcp(8080)]);
    let entry = |first, last| PortRangeEntry {
        protocol: 6,
        first,
        last,
    };
    assert_eq!(
        controls(vec![with_sockets(
            "a",
            Some(sockets(false, bind_8080.clone())),
            Enforcement::Enforce
        )]),
        (true, true, Some(vec![entry(8080, 8080)]), false)
    );
    // A policy without `sockets` has no say; one that allows widens (the union).
    assert_eq!(
        controls(vec![
            with_sockets(
                "a",
                Some(sockets(false, bind_8080.clone())),
                Enforcement::Enforce
            ),
            with_sockets("b", None, Enforcement::Enforce),
            with_sockets(
                "c",
                Some(sockets(true, Some(vec![tcp(9000)]))),
                Enforcement::Enforce
            ),
        ]),
        (
            false,
            true,
            Some(vec![entry(8080, 8080), entry(9000, 9000)]),
            false
        )
    );
    assert_eq!(
        controls(vec![
            with_sockets(
                "a",
                Some(sockets(false, bind_8080.clone())),
                Enforcement::Enforce
            ),
            with_sockets("c", Some(sockets(false, None)), Enforcement::Enforce),
        ]),
        (true, true, None, false)
    );
    assert_eq!(
        controls(vec![with_sockets(
            "a",
            Some(sockets(false, None)),
            Enforcement::Audit
        )]),
        (true, true, None, true)
    );
    assert_eq!(
        controls(vec![with_sockets("a", None, Enforcement::Enforce)]),
        (false, false, None, false)
    );
}

#[test]
fn manifests_of_both_kinds_compile_end_to_end() {
    let yaml = "\
apiVersion: v1
kind: Namespace
metadata: {name: team-a, labels: {tenant: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-b, labels: {tenant: b}}
---
apiVersion: v1
kind: Pod
metadata: {name: runner, namespace: team-a, labels: {app: runner}}
status: {podIP: 10.3.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: runner, namespace: team-b, labels: {app: runner}}
status: {podIP: 10.3.1.1}
---
apiVersion: palisade.dev/v1alpha1
kind: TrustBoundary
metadata: {name: tenants}
spec:
  namespaceSelector: {matchExpressions: [{key: tenant, operator: Exists}]}
---
apiVersion: palisade.dev/v1alpha1
kind: EgressPolicy
metadata: {name: runner-egress, namespace: team-a}
spec:
  podSelector: {matchLabels: {app: runner}}
  egress:
  - to: [{cidr: 203.0.113.0/24}, {fqdn: api.github.com}]
    ports: [{port: 443}]
  sockets: {bindPorts: []}
";
    let objects = parse_documents("all.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let cluster = build_cluster(objects.into_iter().map(|o| ("all.yaml".to_string(), o))).unwrap();
    let h = Harness::new(cluster);
    let a = End::Pod("team-a", "runner");
    let b = End::Pod("team-b", "runner");
    assert!(!h.allows(a, b, TCP, 80));
    assert!(!h.allows(b, a, TCP, 80));
    assert!(h.allows(a, KNOWN_HOST, TCP, 443));
    assert!(!h.allows(a, KNOWN_HOST, TCP, 80));
    assert!(h.allows(b, KNOWN_HOST, TCP, 80));
    // Pods without spec.nodeName are compiled under "".
    let runner = h.compiled.nodes[""]
        .endpoints
        .iter()
        .find(|e| e.pod.namespace == "team-a")
        .unwrap();
    assert_eq!(
        (runner.deny_raw_sockets, runner.bind_ports.as_deref()),
        (true, Some(&[][..]))
    );
    assert_eq!(
        h.compiled
            .fqdn_rule_entries(&h.compiled.nodes[""])
            .next()
            .unwrap()
            .pattern,
        "api.github.com"
    );
}
