//! The incremental compiler against from-scratch compiles: random clusters (the
//! generator of `properties`) take random sequences of changes of every kind; after
//! each, the incrementally maintained result must equal a from-scratch compile of the
//! same state up to numbering (canonical forms equal), its delta must name everything
//! that changed, and at the end the table evaluator on the incremental result must
//! agree with the direct evaluator on random probes. Every table's compact encoding
//! must decode to it.

use super::compiled::assert_table_invariants;
use super::fixture::*;
use super::properties::{
    NODE_ADDRESSES, Probe, cluster_policies, cluster_strategy, egress_policy, endpoint, label_map,
    network_policy, peer, pod_strategy, port_spec, probe, selector, trust_boundary,
};
use crate::compile::{CanonicalCluster, Change, Compiler, Delta, canonical, compile};
use crate::evaluate::{ClusterEvaluator, IpFamily};
use crate::model::{
    Cluster, ClusterPolicy, EgressPolicy, LabelSelector, Labels, Namespace, NetworkPolicy, Node,
    Peer, Pod, PortSpec, TrustBoundary,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use std::collections::BTreeMap;

const NAMESPACES: [&str; 3] = ["ns0", "ns1", "ns2"];

/// A change, resolved against the cluster when applied (indexes pick existing
/// objects, modulo their number).
#[derive(Clone, Debug)]
enum Op {
    Pod(Pod),
    Relabel(usize, BTreeMap<String, String>),
    /// Relabelled with a label no other pod has: a new identity.
    FreshLabels(usize, BTreeMap<String, String>, u32),
    MovePod(usize, Option<&'static str>),
    DeletePod(usize),
    NetworkPolicy(NetworkPolicy),
    /// A NetworkPolicy under a name no policy has yet.
    AddNetworkPolicy(NetworkPolicy, u32),
    DeleteNetworkPolicy(usize),
    /// An existing NetworkPolicy with another pod selector, and its rules with other
    /// peers and ports (their number unchanged: a change in place).
    ModifyNetworkPolicy(usize, LabelSelector, Vec<Peer>, Vec<PortSpec>),
    /// An existing EgressPolicy selecting other pods.
    ModifyEgressPolicy(usize, LabelSelector),
    ClusterPolicies(Vec<ClusterPolicy>),
    DeleteClusterPolicy(usize),
    TrustBoundary(TrustBoundary),
    DeleteTrustBoundary(usize),
    EgressPolicy(EgressPolicy),
    /// An EgressPolicy under a name no policy has yet.
    AddEgressPolicy(EgressPolicy, u32),
    DeleteEgressPolicy(usize),
    Namespace(usize, BTreeMap<String, String>),
    DeleteNamespace(usize),
    Node(usize, Vec<&'static str>, BTreeMap<String, String>),
    DeleteNode(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..8usize).prop_flat_map(pod_strategy).prop_map(Op::Pod),
        6 => (0..8usize, label_map()).prop_map(|(i, l)| Op::Relabel(i, l)),
        4 => (0..8usize, label_map(), 0..1000u32).prop_map(|(i, l, n)| Op::FreshLabels(i, l, n)),
        2 => (0..8usize, select(vec![Some("node-0"), Some("node-1"), Some("node-2"), None]))
            .prop_map(|(i, n)| Op::MovePod(i, n)),
        3 => (0..8usize).prop_map(Op::DeletePod),
        1 => (0..5usize).prop_flat_map(network_policy).prop_map(Op::NetworkPolicy),
        2 => ((0..5usize).prop_flat_map(network_policy), 0..1000u32)
            .prop_map(|(p, n)| Op::AddNetworkPolicy(p, n)),
        2 => (0..5usize).prop_map(Op::DeleteNetworkPolicy),
        3 => (0..5usize, selector(), vec(peer(), 0..=2), vec(port_spec(), 0..=2))
            .prop_map(|(i, s, peers, ports)| Op::ModifyNetworkPolicy(i, s, peers, ports)),
        2 => (0..4usize, selector()).prop_map(|(i, s)| Op::ModifyEgressPolicy(i, s)),
        1 => cluster_policies().prop_map(Op::ClusterPolicies),
        1 => (0..5usize).prop_map(Op::DeleteClusterPolicy),
        1 => (0..3usize).prop_flat_map(trust_boundary).prop_map(Op::TrustBoundary),
        1 => (0..3usize).prop_map(Op::DeleteTrustBoundary),
        1 => (0..4usize).prop_flat_map(egress_policy).prop_map(Op::EgressPolicy),
        2 => ((0..4usize).prop_flat_map(egress_policy), 0..1000u32)
            .prop_map(|(p, n)| Op::AddEgressPolicy(p, n)),
        2 => (0..4usize).prop_map(Op::DeleteEgressPolicy),
        4 => (0..3usize, label_map()).prop_map(|(i, l)| Op::Namespace(i, l)),
        1 => (0..3usize).prop_map(Op::DeleteNamespace),
        1 => (0..3usize, subsequence(NODE_ADDRESSES.to_vec(), 0..=2), label_map())
            .prop_map(|(i, a, l)| Op::Node(i, a, l)),
        1 => (0..3usize).prop_map(Op::DeleteNode),
    ]
}

fn nth<K: Clone, V>(map: &BTreeMap<K, V>, i: usize) -> Option<K> {
    (!map.is_empty()).then(|| map.keys().nth(i % map.len()).cloned().expect("in range"))
}

/// The changes `op` stands for in the state `cluster`.
fn changes(cluster: &Cluster, op: Op) -> Vec<Change> {
    let pod = |i: usize| nth(&cluster.pods, i).map(|key| cluster.pods[&key].clone());
    match op {
        Op::Pod(pod) => vec![Change::PodUpsert(pod)],
        Op::Relabel(i, labels) => pod(i)
            .map(|pod| {
                Change::PodUpsert(Pod {
                    labels: Labels(labels),
                    ..pod
                })
            })
            .into_iter()
            .collect(),
        Op::FreshLabels(i, mut labels, n) => pod(i)
            .map(|pod| {
                labels.insert("fresh".to_string(), format!("f{n}"));
                Change::PodUpsert(Pod {
                    labels: Labels(labels),
                    ..pod
                })
            })
            .into_iter()
            .collect(),
        Op::MovePod(i, node) => pod(i)
            .map(|pod| {
                Change::PodUpsert(Pod {
                    node_name: node.map(str::to_string),
                    ..pod
                })
            })
            .into_iter()
            .collect(),
        Op::DeletePod(i) => nth(&cluster.pods, i)
            .map(Change::PodDelete)
            .into_iter()
            .collect(),
        Op::NetworkPolicy(policy) => vec![Change::NetworkPolicyUpsert(policy)],
        Op::AddNetworkPolicy(policy, n) => vec![Change::NetworkPolicyUpsert(NetworkPolicy {
            name: format!("added{n}"),
            ..policy
        })],
        Op::ModifyNetworkPolicy(i, pod_selector, peers, ports) => nth(&cluster.network_policies, i)
            .map(|key| {
                let mut policy = cluster.network_policies[&key].clone();
                policy.pod_selector = pod_selector;
                for rule in policy.ingress.iter_mut().chain(&mut policy.egress) {
                    rule.peers = peers.clone();
                    rule.ports = ports.clone();
                }
                Change::NetworkPolicyUpsert(policy)
            })
            .into_iter()
            .collect(),
        Op::ModifyEgressPolicy(i, pod_selector) => nth(&cluster.egress_policies, i)
            .map(|key| {
                Change::EgressPolicyUpsert(EgressPolicy {
                    pod_selector,
                    ..cluster.egress_policies[&key].clone()
                })
            })
            .into_iter()
            .collect(),
        Op::DeleteNetworkPolicy(i) => nth(&cluster.network_policies, i)
            .map(Change::NetworkPolicyDelete)
            .into_iter()
            .collect(),
        Op::ClusterPolicies(policies) => policies
            .into_iter()
            .map(Change::ClusterPolicyUpsert)
            .collect(),
        Op::DeleteClusterPolicy(i) => nth(&cluster.cluster_policies, i)
            .map(Change::ClusterPolicyDelete)
            .into_iter()
            .collect(),
        Op::TrustBoundary(boundary) => vec![Change::TrustBoundaryUpsert(boundary)],
        Op::DeleteTrustBoundary(i) => nth(&cluster.trust_boundaries, i)
            .map(Change::TrustBoundaryDelete)
            .into_iter()
            .collect(),
        Op::EgressPolicy(policy) => vec![Change::EgressPolicyUpsert(policy)],
        Op::AddEgressPolicy(policy, n) => vec![Change::EgressPolicyUpsert(EgressPolicy {
            name: format!("added{n}"),
            ..policy
        })],
        Op::DeleteEgressPolicy(i) => nth(&cluster.egress_policies, i)
            .map(Change::EgressPolicyDelete)
            .into_iter()
            .collect(),
        Op::Namespace(i, extra) => {
            let name = NAMESPACES[i % NAMESPACES.len()];
            let mut labels = Labels::for_namespace_name(name);
            labels.0.extend(extra);
            vec![Change::NamespaceUpsert(Namespace {
                name: name.to_string(),
                labels,
            })]
        }
        Op::DeleteNamespace(i) => vec![Change::NamespaceDelete(
            NAMESPACES[i % NAMESPACES.len()].to_string(),
        )],
        Op::Node(i, addresses, labels) => vec![Change::NodeUpsert(Node {
            name: format!("node-{i}"),
            labels: Labels(labels),
            addresses: addresses.iter().map(|a| ip(a)).collect(),
        })],
        Op::DeleteNode(i) => vec![Change::NodeDelete(format!("node-{i}"))],
    }
}

/// Everything that differs between `before` and `after` is named in `delta`.
fn assert_delta_covers(
    before: (&CanonicalCluster, &crate::compile::tables::CompiledCluster),
    after: (&CanonicalCluster, &crate::compile::tables::CompiledCluster),
    delta: &Delta,
) {
    let (old, old_compiled) = before;
    let (new, new_compiled) = after;
    for name in old.nodes.keys().chain(new.nodes.keys()) {
        if old.nodes.get(name) != new.nodes.get(name) {
            assert!(
                delta.nodes.contains(name),
                "node {name} changed, delta {delta:?}"
            );
        }
    }
    let as_map = |c: &CanonicalCluster| -> BTreeMap<_, _> {
        c.ipcache.iter().map(|e| (e.prefix, e.identity)).collect()
    };
    let (old_cache, new_cache) = (as_map(old), as_map(new));
    for prefix in old_cache.keys().chain(new_cache.keys()) {
        if old_cache.get(prefix) != new_cache.get(prefix) {
            assert!(delta.ipcache.contains(prefix), "ip cache {prefix} changed");
        }
    }
    for id in old.identities.keys().chain(new.identities.keys()) {
        if old.identities.get(id) != new.identities.get(id) {
            assert!(delta.identities.contains(id), "identity {id} changed");
        }
    }
    let tables = old_compiled
        .policy_tables
        .len()
        .max(new_compiled.policy_tables.len());
    for index in 0..tables {
        if old_compiled.policy_tables.get(index) != new_compiled.policy_tables.get(index) {
            assert!(
                delta.policy_tables.contains(&(index as u32)),
                "policy table {index} changed"
            );
        }
    }
    // Rules renumbered: a full rebuild. Otherwise every rule index that names another
    // rule is listed, and every table citing a listed one is listed too.
    if !delta.rules {
        let rules = old_compiled.rules.len().max(new_compiled.rules.len());
        for index in 0..rules {
            if old_compiled.rules.get(index) != new_compiled.rules.get(index) {
                assert!(
                    delta.rule_refs.contains(&(index as u32)),
                    "rule {index} changed, delta {delta:?}"
                );
            }
        }
        for (index, table) in new_compiled.policy_tables.iter().enumerate() {
            let cites_listed = table
                .rows
                .iter()
                .filter_map(|row| row.rule_ref)
                .chain(table.fqdn_rules.iter().filter_map(|rule| rule.rule_ref))
                .any(|rule| delta.rule_refs.contains(&rule));
            if cites_listed {
                assert!(
                    delta.policy_tables.contains(&(index as u32)),
                    "policy table {index} cites a changed rule"
                );
            }
        }
    }
    if old.services != new.services {
        assert!(delta.services, "services changed");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn incremental_compiles_equal_from_scratch_compiles(
        cluster in cluster_strategy(),
        ops in vec(op(), 1..=12),
        probes in vec(probe(), 1..=12),
    ) {
        let mut compiler = Compiler::new(cluster);
        prop_assert_eq!(
            canonical(compiler.compiled()),
            canonical(&compile(compiler.cluster()))
        );
        compiler.take_delta();
        for op in ops {
            for change in changes(compiler.cluster(), op) {
                let before = (canonical(compiler.compiled()), compiler.compiled().clone());
                let must_be_incremental = leaves_identities_alone(compiler.cluster(), &change);
                compiler.apply(change.clone());
                let delta = compiler.take_delta();
                prop_assert!(
                    !(must_be_incremental && delta.full_recompile),
                    "{:?} recompiled fully", change
                );
                let after = canonical(compiler.compiled());
                let scratch = compile(compiler.cluster());
                prop_assert_eq!(&after, &canonical(&scratch), "after {:?}", change);
                if delta.full_recompile {
                    // A full recompile is exactly a new compiler's result.
                    let fresh = Compiler::new(compiler.cluster().clone());
                    prop_assert_eq!(compiler.compiled(), fresh.compiled());
                }
                assert_table_invariants(compiler.compiled());
                assert_delta_covers(
                    (&before.0, &before.1),
                    (&after, compiler.compiled()),
                    &delta,
                );
            }
        }
        // The compact encoding of every table decodes to the table.
        for table in &compiler.compiled().policy_tables {
            let compact = crate::compile::compact::CompactPolicyTable::of(table);
            prop_assert_eq!(&compact.expand().unwrap(), table);
        }
        let harness = Harness {
            cluster: compiler.cluster().clone(),
            compiled: compiler.compiled().clone(),
        };
        let evaluator = ClusterEvaluator::new(&harness.compiled);
        check_probes(&harness, &evaluator, &probes);
    }
}

/// Whether `change` is a NetworkPolicy or EgressPolicy added, changed or deleted
/// where neither the old nor the new object names an address block or a port by name
/// (the inputs of identities): such a change must take the incremental path.
fn leaves_identities_alone(cluster: &Cluster, change: &Change) -> bool {
    let network_policy = |policy: Option<&NetworkPolicy>| {
        policy.is_none_or(|policy| {
            policy.ingress.iter().chain(&policy.egress).all(|rule| {
                rule.peers
                    .iter()
                    .all(|peer| matches!(peer, Peer::Pods { .. }))
                    && rule
                        .ports
                        .iter()
                        .all(|spec| !matches!(spec.port, Some(crate::model::PortRef::Name(_))))
            })
        })
    };
    let egress_policy = |policy: Option<&EgressPolicy>| {
        policy.is_none_or(|policy| {
            policy
                .egress
                .iter()
                .flat_map(|rule| &rule.to)
                .all(|peer| !matches!(peer, crate::model::EgressPeer::Cidr { .. }))
        })
    };
    let key = |namespace: &str, name: &str| crate::model::ObjectRef {
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    match change {
        Change::NetworkPolicyUpsert(policy) => {
            let old = cluster
                .network_policies
                .get(&key(&policy.namespace, &policy.name));
            network_policy(old) && network_policy(Some(policy))
        }
        Change::NetworkPolicyDelete(key) => network_policy(cluster.network_policies.get(key)),
        Change::EgressPolicyUpsert(policy) => {
            let old = cluster
                .egress_policies
                .get(&key(&policy.namespace, &policy.name));
            egress_policy(old) && egress_policy(Some(policy))
        }
        Change::EgressPolicyDelete(key) => egress_policy(cluster.egress_policies.get(key)),
        _ => false,
    }
}

fn check_probes(harness: &Harness, evaluator: &ClusterEvaluator, probes: &[Probe]) {
    if harness.cluster.pods.is_empty() {
        return;
    }
    for probe in probes {
        let from = endpoint(&harness.cluster, &probe.from);
        let to = endpoint(&harness.cluster, &probe.to);
        for family in [None, Some(IpFamily::V4), Some(IpFamily::V6)] {
            let _ = harness.compare(evaluator, from, to, probe.protocol, probe.port, family);
        }
    }
}

/// The frequent changes take the incremental path: a pod relabelled to labels another
/// pod has, a pod created with them, a pod deleted while a replica remains.
#[test]
fn pod_changes_within_the_identity_set_are_incremental() {
    let web = |name: &str, addr: &str| {
        let mut pod = pod("ns0", name, &[("app", "web")], &[addr]);
        pod.node_name = Some("node-0".into());
        pod
    };
    let db = |name: &str, addr: &str| {
        let mut pod = pod("ns0", name, &[("app", "db")], &[addr]);
        pod.node_name = Some("node-1".into());
        pod
    };
    let cluster = ClusterBuilder::new()
        .namespace("ns0", &[])
        .pod(web("web-0", "10.0.0.1"))
        .pod(web("web-1", "10.0.0.2"))
        .pod(db("db-0", "10.0.0.3"))
        .pod(db("db-1", "10.0.0.4"))
        .policy(ingress_policy(
            "ns0",
            "db",
            match_labels(&[("app", "db")]),
            vec![rule(
                vec![pods_peer(None, Some(match_labels(&[("app", "web")])))],
                vec![],
            )],
        ))
        .build();
    let mut compiler = Compiler::new(cluster);
    compiler.take_delta();
    let steps = [
        Change::PodUpsert(Pod {
            labels: Labels([("app".to_string(), "db".to_string())].into()),
            ..compiler
                .cluster()
                .pods
                .values()
                .find(|p| p.name == "web-0")
                .unwrap()
                .clone()
        }),
        Change::PodUpsert(web("web-2", "10.0.0.5")),
        Change::PodDelete(crate::model::ObjectRef {
            namespace: "ns0".into(),
            name: "db-1".into(),
        }),
    ];
    for change in steps {
        compiler.apply(change.clone());
        let delta = compiler.take_delta();
        assert!(!delta.full_recompile, "{change:?} recompiled fully");
        assert!(!delta.nodes.is_empty());
        assert_eq!(
            canonical(compiler.compiled()),
            canonical(&compile(compiler.cluster()))
        );
    }
}

/// The random sequences above must exercise the incremental path, or their agreement
/// would prove little: count pod changes that did not recompile fully.
#[test]
fn random_change_sequences_take_the_incremental_path() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let (mut pod_changes, mut incremental) = (0, 0);
    // Changes that added or retired an identity, and namespace changes, incremental.
    let (mut identity_changes, mut namespace_changes) = (0, 0);
    // Policy changes in place that took the incremental path; policies added or
    // deleted that did.
    let (mut policy_changes, mut policies_added, mut policies_deleted) = (0, 0, 0);
    for _ in 0..100 {
        let cluster = cluster_strategy().new_tree(&mut runner).unwrap().current();
        let ops = vec(op(), 12).new_tree(&mut runner).unwrap().current();
        let mut compiler = Compiler::new(cluster);
        for op in ops {
            for change in changes(compiler.cluster(), op) {
                let is_pod = matches!(change, Change::PodUpsert(_) | Change::PodDelete(_));
                let is_namespace = matches!(
                    change,
                    Change::NamespaceUpsert(_) | Change::NamespaceDelete(_)
                );
                let is_added = match &change {
                    Change::NetworkPolicyUpsert(p) => !compiler
                        .cluster()
                        .network_policies
                        .keys()
                        .any(|k| k.namespace == p.namespace && k.name == p.name),
                    Change::EgressPolicyUpsert(p) => !compiler
                        .cluster()
                        .egress_policies
                        .keys()
                        .any(|k| k.namespace == p.namespace && k.name == p.name),
                    _ => false,
                };
                let is_policy = matches!(
                    change,
                    Change::NetworkPolicyUpsert(_) | Change::EgressPolicyUpsert(_)
                );
                let is_deleted = matches!(
                    change,
                    Change::NetworkPolicyDelete(_) | Change::EgressPolicyDelete(_)
                );
                compiler.apply(change);
                let delta = compiler.take_delta();
                let took_incremental_path = !delta.full_recompile && !delta.is_empty();
                if is_policy && !is_added && took_incremental_path {
                    policy_changes += 1;
                }
                policies_added += usize::from(is_added && took_incremental_path);
                policies_deleted += usize::from(is_deleted && took_incremental_path);
                if !delta.full_recompile && !delta.identities.is_empty() {
                    identity_changes += 1;
                    namespace_changes += usize::from(is_namespace);
                }
                if is_pod && !delta.is_empty() {
                    pod_changes += 1;
                    incremental += usize::from(!delta.full_recompile);
                }
            }
        }
    }
    eprintln!(
        "{incremental} of {pod_changes} pod changes incremental; {identity_changes} incremental \
         changes of the identity set, {namespace_changes} of them namespace changes; \
         {policy_changes} policy changes in place, {policies_added} added and \
         {policies_deleted} deleted incremental"
    );
    assert!(policy_changes >= 10, "{policy_changes}");
    assert!(policies_added >= 10, "{policies_added}");
    assert!(policies_deleted >= 10, "{policies_deleted}");
    assert!(identity_changes >= 50, "{identity_changes}");
    assert!(namespace_changes >= 10, "{namespace_changes}");
    // Small random clusters often give a pod an identity of its own (a change then
    // adds or drops one, which recompiles fully); enough still stay within the set.
    assert!(incremental >= 50, "{incremental} of {pod_changes}");
}

/// NetworkPolicies and EgressPolicies added and deleted take the incremental path,
/// and the rows they give cite them by name (what deny events and `palisadectl
/// check` show), also after an id freed by a deleted policy is reused.
#[test]
fn policies_added_and_deleted_are_incremental_and_cite_their_rules() {
    use crate::model::{EgressPeer, EgressRule, Enforcement};
    let placed = |mut pod: Pod, node: &str| {
        pod.node_name = Some(node.into());
        pod
    };
    let cluster = ClusterBuilder::new()
        .namespace("ns0", &[])
        .namespace("ns1", &[])
        .pod(placed(
            pod("ns0", "web", &[("app", "web")], &["10.0.0.1"]),
            "node-0",
        ))
        .pod(placed(
            pod("ns0", "db", &[("app", "db")], &["10.0.0.2"]),
            "node-1",
        ))
        .pod(placed(
            pod("ns1", "api", &[("app", "api")], &["10.0.0.3"]),
            "node-1",
        ))
        .policy(ingress_policy(
            "ns1",
            "api",
            match_labels(&[("app", "api")]),
            vec![rule(vec![pods_peer(None, None)], vec![])],
        ))
        .build();
    let db_from_web = |name: &str| {
        ingress_policy(
            "ns0",
            name,
            match_labels(&[("app", "db")]),
            vec![rule(
                vec![pods_peer(None, Some(match_labels(&[("app", "web")])))],
                vec![],
            )],
        )
    };
    let web_to_db = EgressPolicy {
        namespace: "ns0".into(),
        name: "web-out".into(),
        pod_selector: match_labels(&[("app", "web")]),
        enforcement: Enforcement::Enforce,
        egress: vec![EgressRule {
            name: "to-db".into(),
            to: vec![EgressPeer::Pods {
                namespace_selector: None,
                pod_selector: Some(match_labels(&[("app", "db")])),
            }],
            ports: vec![],
        }],
        sockets: None,
    };
    let key = |name: &str| crate::model::ObjectRef {
        namespace: "ns0".into(),
        name: name.into(),
    };
    let mut compiler = Compiler::new(cluster);
    compiler.take_delta();
    let steps = [
        (
            Change::NetworkPolicyUpsert(db_from_web("db-a")),
            Some("db-a"),
        ),
        (Change::EgressPolicyUpsert(web_to_db), Some("web-out")),
        (Change::NetworkPolicyDelete(key("db-a")), None),
        // Takes the ids db-a freed.
        (
            Change::NetworkPolicyUpsert(db_from_web("db-b")),
            Some("db-b"),
        ),
        (Change::EgressPolicyDelete(key("web-out")), None),
    ];
    for (change, cited) in steps {
        compiler.apply(change.clone());
        let delta = compiler.take_delta();
        assert!(!delta.full_recompile, "{change:?} recompiled fully");
        assert!(!delta.rules, "{change:?} renumbered the rules");
        assert!(!delta.nodes.is_empty(), "{change:?} changed no node");
        let canonical_form = canonical(compiler.compiled());
        assert_eq!(
            canonical_form,
            canonical(&compile(compiler.cluster())),
            "after {change:?}"
        );
        if let Some(name) = cited {
            let cites = canonical_form.nodes.values().any(|node| {
                node.tables.values().any(|table| {
                    table
                        .rows
                        .iter()
                        .any(|(_, rule)| rule.as_ref().is_some_and(|r| r.name == name))
                })
            });
            assert!(cites, "no row cites {name}");
        }
    }
}
