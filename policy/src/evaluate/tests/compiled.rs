//! Properties of the compiled tables themselves: identity sharing and stability,
//! determinism, and the invariants the kernel relies on.

use super::fixture::*;
use crate::compile::compile;
use crate::compile::tables::{CompiledCluster, Verdict};
use crate::model::{Cluster, Direction, LabelSelector, Protocol};
use palisade_abi::reserved;
use std::collections::{BTreeMap, BTreeSet};

fn cluster() -> Cluster {
    let mut web = pod("prod", "web-1", &[("app", "web")], &["10.0.0.1"]);
    web.ports = vec![container_port("http", 8080, Protocol::Tcp)];
    let mut web2 = web.clone();
    web2.name = "web-2".into();
    web2.ips = vec![ip("10.0.0.2")];
    ClusterBuilder::new()
        .namespace("prod", &[("team", "a")])
        .namespace("dev", &[])
        .node("node-a", &["192.168.0.10"])
        .pod(web)
        .pod(web2)
        .pod(pod(
            "prod",
            "db",
            &[("app", "db")],
            &["10.0.0.3", "fd00::3"],
        ))
        .pod(pod("dev", "client", &[("app", "client")], &["10.0.1.1"]))
        .policy(ingress_policy(
            "prod",
            "web",
            match_labels(&[("app", "web")]),
            vec![
                rule(
                    vec![pods_peer(
                        Some(LabelSelector::default()),
                        Some(match_labels(&[("app", "client")])),
                    )],
                    vec![
                        named_port(Protocol::Tcp, "http"),
                        port_range(Protocol::Udp, 1000, 2000),
                    ],
                ),
                rule(
                    vec![ip_block("0.0.0.0/0", &["10.0.0.0/8"])],
                    vec![port(Protocol::Tcp, 443)],
                ),
            ],
        ))
        .policy(egress_policy(
            "prod",
            "db",
            match_labels(&[("app", "db")]),
            vec![],
        ))
        .build()
}

fn identity_of(compiled: &CompiledCluster, name: &str) -> u32 {
    compiled
        .nodes
        .values()
        .flat_map(|n| &n.endpoints)
        .find(|e| e.pod.name == name)
        .unwrap_or_else(|| panic!("no endpoint {name}"))
        .identity
}

#[test]
fn pods_with_the_same_labels_share_an_identity() {
    let compiled = compile(&cluster());
    assert_eq!(
        identity_of(&compiled, "web-1"),
        identity_of(&compiled, "web-2")
    );
    assert_ne!(
        identity_of(&compiled, "web-1"),
        identity_of(&compiled, "db")
    );
    let web = identity_of(&compiled, "web-1");
    assert!((reserved::FIRST_ALLOCATED..1 << 24).contains(&web));
    assert_eq!(compiled.identities[&web].kind, "pod");
    assert!(
        compiled.identities[&web]
            .labels
            .contains(&"k8s:app=web".to_string())
    );
    // Both replicas also share a policy table.
    let endpoints = &compiled.nodes["node-a"].endpoints;
    let policy_of = |name: &str| {
        endpoints
            .iter()
            .find(|e| e.pod.name == name)
            .unwrap()
            .policy_id
    };
    assert_eq!(policy_of("web-1"), policy_of("web-2"));
    assert_ne!(policy_of("web-1"), policy_of("db"));
    assert_eq!(policy_of("client"), crate::compile::NO_POLICY);
}

#[test]
fn identities_do_not_change_when_unrelated_pods_are_added() {
    let before = compile(&cluster());
    let mut bigger = cluster();
    for i in 0..50 {
        let p = pod(
            "dev",
            &format!("batch-{i}"),
            &[("job", &format!("j{i}"))],
            &[&format!("10.0.2.{i}")],
        );
        bigger.pods.insert(p.object_ref(), p);
    }
    let after = compile(&bigger);
    for name in ["web-1", "web-2", "db", "client"] {
        assert_eq!(
            identity_of(&before, name),
            identity_of(&after, name),
            "{name}"
        );
    }
    for (number, info) in &before.identities {
        assert_eq!(after.identities.get(number), Some(info));
    }
}

#[test]
fn compiling_is_deterministic() {
    let a = serde_json::to_string(&compile(&cluster())).unwrap();
    let b = serde_json::to_string(&compile(&cluster())).unwrap();
    assert_eq!(a, b);
}

/// Every invariant the kernel and the agent rely on.
pub fn assert_table_invariants(compiled: &CompiledCluster) {
    // The ip cache is sorted, one entry per prefix, host bits clear.
    let prefixes: Vec<_> = compiled.ipcache.iter().map(|e| e.prefix).collect();
    let mut sorted = prefixes.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(prefixes, sorted, "ip cache sorted and without duplicates");
    for entry in &compiled.ipcache {
        assert_eq!(entry.prefix, entry.prefix.trunc());
        assert!(
            compiled.identities.contains_key(&entry.identity),
            "{entry:?}"
        );
    }
    for (node, tables) in &compiled.nodes {
        let policy: Vec<_> = compiled.policy_entries(tables).collect();
        let mut rows = policy.clone();
        rows.sort();
        assert_eq!(rows, policy, "{node}: policy sorted");
        // Every (policy, peer, direction) with rows has a protocol-None row, exactly one.
        let mut none_rows: BTreeMap<(u32, u32, Direction), usize> = BTreeMap::new();
        let mut keys = BTreeSet::new();
        for row in &policy {
            keys.insert((row.policy_id, row.peer_identity, row.direction));
            if row.protocol.is_none() {
                assert_eq!(row.port_prefix_len, 0);
                *none_rows
                    .entry((row.policy_id, row.peer_identity, row.direction))
                    .or_default() += 1;
            }
            assert!(row.port_prefix_len <= 16);
            if let Some(rule) = row.rule_ref {
                assert!((rule as usize) < compiled.rules.len());
            } else {
                // A default: isolation's deny or the allow where no tier decides.
                assert_ne!(row.verdict, Verdict::AuditDeny, "{row:?}");
            }
            let unique = policy.iter().filter(|r| {
                (
                    r.policy_id,
                    r.peer_identity,
                    r.direction,
                    r.protocol,
                    r.port,
                    r.port_prefix_len,
                ) == (
                    row.policy_id,
                    row.peer_identity,
                    row.direction,
                    row.protocol,
                    row.port,
                    row.port_prefix_len,
                )
            });
            assert_eq!(unique.count(), 1, "{node}: duplicate key {row:?}");
        }
        for key in &keys {
            assert_eq!(
                none_rows.get(key),
                Some(&1),
                "{node}: {key:?} lacks its None row"
            );
        }
        // Every enforced direction has its ANY default, so no lookup ever misses.
        for endpoint in &tables.endpoints {
            for (enforced, direction) in [
                (endpoint.enforce_ingress, Direction::Ingress),
                (endpoint.enforce_egress, Direction::Egress),
            ] {
                if enforced {
                    assert!(
                        none_rows.contains_key(&(endpoint.policy_id, reserved::ANY, direction)),
                        "{node}: {endpoint:?} {direction:?} has no ANY row"
                    );
                }
            }
        }
    }
    // No two rule indexes that tables cite name the same rule.
    let cited: BTreeSet<u32> = compiled
        .policy_tables
        .iter()
        .flat_map(|table| {
            let rows = table.rows.iter().filter_map(|row| row.rule_ref);
            rows.chain(table.fqdn_rules.iter().filter_map(|rule| rule.rule_ref))
        })
        .collect();
    let named: BTreeSet<_> = cited
        .iter()
        .map(|index| &compiled.rules[*index as usize])
        .collect();
    assert_eq!(named.len(), cited.len(), "two cited indexes name one rule");
}

/// A from-scratch compile publishes its rules sorted and distinct (the incremental
/// compiler publishes the rules of policies added later at stable indexes).
pub(super) fn assert_rules_sorted(compiled: &CompiledCluster) {
    let mut rules = compiled.rules.clone();
    rules.sort();
    rules.dedup();
    assert_eq!(rules, compiled.rules);
}

#[test]
fn tables_keep_their_invariants() {
    let compiled = compile(&cluster());
    assert_table_invariants(&compiled);
    assert_rules_sorted(&compiled);
}

#[test]
fn ip_cache_resolves_pods_prefixes_and_nodes() {
    let compiled = compile(&cluster());
    let identity = |prefix: &str| {
        compiled
            .ipcache
            .iter()
            .find(|e| e.prefix == prefix.parse().unwrap())
            .map(|e| e.identity)
    };
    assert_eq!(
        identity("10.0.0.1/32"),
        Some(identity_of(&compiled, "web-1"))
    );
    // A node address has its node's identity, made of its labels.
    let node = identity("192.168.0.10/32").unwrap();
    assert_eq!(compiled.identities[&node].kind, "node");
    assert!(node >= reserved::FIRST_ALLOCATED);
    // 10/8 is a hole punched in 0/0: WORLD.
    assert_eq!(identity("10.0.0.0/8"), Some(reserved::WORLD));
    let everything = identity("0.0.0.0/0").unwrap();
    assert_eq!(compiled.identities[&everything].kind, "cidr");
    assert_eq!(
        compiled.identities[&everything].labels,
        vec!["cidr-except:0.0.0.0/0 -10.0.0.0/8".to_string()]
    );
    // Each address of a dual-stack pod has an entry.
    assert!(identity("fd00::3/128").is_some());
}

#[test]
fn duplicate_pod_addresses_go_to_the_first_pod() {
    let mut cluster = cluster();
    let twin = pod("dev", "twin", &[("app", "twin")], &["10.0.0.1"]);
    cluster.pods.insert(twin.object_ref(), twin);
    let compiled = compile(&cluster);
    let entry = compiled
        .ipcache
        .iter()
        .find(|e| e.prefix == "10.0.0.1/32".parse().unwrap())
        .unwrap();
    // dev/twin sorts before prod/web-1.
    assert_eq!(entry.identity, identity_of(&compiled, "twin"));
    assert_table_invariants(&compiled);
}

#[test]
fn large_clusters_compile_and_share() {
    let mut cluster = cluster();
    for i in 0..2000u32 {
        let app = format!("app{}", i % 10);
        let p = pod(
            "prod",
            &format!("replica-{i}"),
            &[("app", &app)],
            &[&format!("10.1.{}.{}", i / 250, i % 250)],
        );
        cluster.pods.insert(p.object_ref(), p);
    }
    let started = std::time::Instant::now();
    let compiled = compile(&cluster);
    let elapsed = started.elapsed();
    let pod_identities = compiled
        .identities
        .values()
        .filter(|i| i.kind == "pod")
        .count();
    assert!(pod_identities < 20, "{pod_identities} pod identities");
    assert!(elapsed.as_secs() < 10, "compiling took {elapsed:?}");
    assert_table_invariants(&compiled);
}
