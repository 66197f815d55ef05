//! The incrementally maintained publication against a from-scratch one: random
//! sequences of object changes go through the controller's own path (JSON objects ->
//! object store -> compiler changes -> compile thread's state -> update applied to the
//! driver's copy); after each batch the copy must equal `publication::desired` of a
//! full `compile()` of the store's model (tables by content hash, NodePolicies by
//! canonical content hash, since rule numbers differ), and an update must carry only
//! objects whose content changed. Also: a pod change touches only its ipcache shard
//! and its node.

use crate::compiler::IncrementalPublication;
use crate::compiler_changes;
use crate::objects::{MODEL_KINDS, ObjectStore, WatchedKind};
use crate::publication::{Desired, canonical_content_hash, desired};
use palisade_crds::publication::TABLE_IPCACHE;
use palisade_policy::compile::{Change, compile};
use palisade_policy::model::{Cluster, Labels, Node, ObjectRef, Pod};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

fn kind(name: &str) -> &'static WatchedKind {
    MODEL_KINDS
        .iter()
        .find(|k| k.kind == name)
        .expect("a model kind")
}

const APPS: [&str; 3] = ["a", "b", "c"];
const NAMESPACES: [&str; 2] = ["ns0", "ns1"];

fn pod(i: usize, node: Option<usize>, app: usize, ip: u8) -> Value {
    let mut spec = json!({"containers": [{"name": "c", "image": "i",
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]});
    if let Some(node) = node {
        spec["nodeName"] = json!(format!("n{node}"));
    }
    json!({"metadata": {"name": format!("p{i}"), "namespace": NAMESPACES[i % 2],
            "labels": {"app": APPS[app % 3]}},
        "spec": spec,
        "status": {"phase": "Running", "podIP": format!("10.0.{i}.{ip}"),
                   "podIPs": [{"ip": format!("10.0.{i}.{ip}")}]}})
}

fn node(i: usize, label: usize) -> Value {
    json!({"metadata": {"name": format!("n{i}"), "labels": {"zone": format!("z{label}")}},
        "status": {"addresses": [{"type": "InternalIP", "address": format!("192.168.0.{}", i + 1)}]}})
}

fn namespace(i: usize, team: usize) -> Value {
    json!({"metadata": {"name": NAMESPACES[i % 2], "labels": {"team": format!("t{team}")}}})
}

fn network_policy(i: usize, target: usize, peer: usize, port: u16) -> Value {
    json!({"metadata": {"name": format!("np{i}"), "namespace": NAMESPACES[i % 2]},
        "spec": {"podSelector": {"matchLabels": {"app": APPS[target % 3]}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": APPS[peer % 3]}}}],
                              "ports": [{"protocol": "TCP", "port": port}]}]}})
}

fn egress_policy(i: usize, target: usize, cidr: usize) -> Value {
    let cidr = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/24"][cidr % 3];
    json!({"metadata": {"name": format!("ep{i}"), "namespace": NAMESPACES[i % 2]},
        "spec": {"podSelector": {"matchLabels": {"app": APPS[target % 3]}},
                 "egress": [{"to": [{"cidr": cidr}]}]}})
}

fn service(i: usize, app: usize) -> Value {
    json!({"metadata": {"name": format!("s{i}"), "namespace": NAMESPACES[i % 2]},
        "spec": {"clusterIP": format!("10.96.0.{}", i + 1), "selector": {"app": APPS[app % 3]},
                 "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}]}})
}

/// One object change.
#[derive(Clone, Debug)]
enum Op {
    Upsert(&'static str, Value),
    Delete(&'static str, &'static str, String),
}

fn op() -> impl Strategy<Value = Op> {
    let ns = |i: usize| NAMESPACES[i % 2];
    prop_oneof![
        6 => (0..10usize, prop::option::of(0..4usize), 0..3usize, 1..3u8)
            .prop_map(|(i, n, a, ip)| Op::Upsert("Pod", pod(i, n, a, ip))),
        3 => (0..10usize).prop_map(move |i| Op::Delete("Pod", ns(i), format!("p{i}"))),
        1 => (0..4usize, 0..2usize).prop_map(|(i, l)| Op::Upsert("Node", node(i, l))),
        1 => (0..4usize).prop_map(|i| Op::Delete("Node", "", format!("n{i}"))),
        1 => (0..2usize, 0..2usize).prop_map(|(i, t)| Op::Upsert("Namespace", namespace(i, t))),
        2 => (0..3usize, 0..3usize, 0..3usize, 80..82u16)
            .prop_map(|(i, t, p, port)| Op::Upsert("NetworkPolicy", network_policy(i, t, p, port))),
        1 => (0..3usize).prop_map(move |i| Op::Delete("NetworkPolicy", ns(i), format!("np{i}"))),
        1 => (0..2usize, 0..3usize, 0..3usize)
            .prop_map(|(i, t, c)| Op::Upsert("EgressPolicy", egress_policy(i, t, c))),
        1 => (0..2usize).prop_map(move |i| Op::Delete("EgressPolicy", ns(i), format!("ep{i}"))),
        1 => (0..2usize, 0..3usize).prop_map(|(i, a)| Op::Upsert("Service", service(i, a))),
        1 => (0..2usize).prop_map(move |i| Op::Delete("Service", ns(i), format!("s{i}"))),
    ]
}

fn seeded() -> ObjectStore {
    let mut store = ObjectStore::default();
    for i in 0..2 {
        store.upsert(kind("Namespace"), &namespace(i, i));
    }
    for i in 0..3 {
        store.upsert(kind("Node"), &node(i, i % 2));
    }
    for i in 0..6 {
        store.upsert(kind("Pod"), &pod(i, Some(i % 3), i, 1));
    }
    store.upsert(kind("NetworkPolicy"), &network_policy(0, 1, 0, 80));
    store.upsert(kind("EgressPolicy"), &egress_policy(0, 0, 0));
    store.upsert(kind("Service"), &service(0, 1));
    assert_eq!(store.rejected(), 0, "every seed object parses");
    store
}

/// The store's changes for `op`, as the driver makes them.
fn apply_op(store: &mut ObjectStore, op: Op) -> Vec<Change> {
    let change = match op {
        Op::Upsert(k, value) => store.upsert(kind(k), &value),
        Op::Delete(k, namespace, name) => store.delete(kind(k), namespace, &name),
    };
    change
        .into_iter()
        .filter_map(|c| compiler_changes::of(store, c))
        .collect()
}

/// Object name -> content hash (NodePolicies: canonical).
fn comparable(desired: &Desired) -> BTreeMap<String, String> {
    let tables = desired
        .tables
        .iter()
        .map(|(n, s)| (format!("ClusterTable/{n}"), s.content_hash.clone()));
    let nodes = desired.nodes.iter().map(|(n, c)| {
        (
            format!("NodePolicy/{n}"),
            canonical_content_hash(&c.content),
        )
    });
    tables.chain(nodes).collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_incremental_publication_is_the_full_one(
        batches in prop::collection::vec(prop::collection::vec(op(), 1..4), 1..12)
    ) {
        let mut store = seeded();
        let (mut publication, mut kept) =
            IncrementalPublication::new(store.cluster().unwrap(), &BTreeMap::new());
        for batch in batches {
            let changes: Vec<Change> = batch
                .into_iter()
                .flat_map(|op| apply_op(&mut store, op))
                .collect();
            let update = publication.apply(changes).update;
            // Only what changed is carried.
            for (name, shard) in &update.tables {
                if let Some(shard) = shard {
                    prop_assert_ne!(
                        kept.tables.get(name).map(|s| &s.content_hash),
                        Some(&shard.content_hash),
                        "{} unchanged but in the update", name
                    );
                } else {
                    prop_assert!(kept.tables.contains_key(name), "{} deleted twice", name);
                }
            }
            for (name, node) in &update.nodes {
                if let Some(node) = node {
                    prop_assert_ne!(
                        kept.nodes.get(name).map(|n| &n.content_hash),
                        Some(&node.content_hash),
                        "{} unchanged but in the update", name
                    );
                } else {
                    prop_assert!(kept.nodes.contains_key(name), "{} deleted twice", name);
                }
            }
            kept.apply(update);
            let full = desired(&compile(&store.cluster().unwrap()), &kept.shards);
            prop_assert_eq!(&kept.shards, &full.shards);
            prop_assert_eq!(comparable(&kept), comparable(&full));
        }
    }
}

fn big_cluster(pods: u32) -> Cluster {
    let mut cluster = Cluster::default();
    for n in 0..3u8 {
        let name = format!("n{n}");
        cluster.nodes.insert(
            name.clone(),
            Node {
                name,
                labels: Labels::default(),
                addresses: vec![IpAddr::V4(Ipv4Addr::new(192, 168, 0, n + 1))],
            },
        );
    }
    for i in 0..pods {
        let pod = Pod {
            namespace: "x".into(),
            name: format!("p{i}"),
            uid: None,
            labels: [("app", format!("a{}", i % 4))].into_iter().collect(),
            ips: vec![IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i + 1))],
            node_name: Some(format!("n{}", i % 3)),
            host_network: false,
            ports: Vec::new(),
            cgroup_path: None,
        };
        cluster.pods.insert(pod.object_ref(), pod);
    }
    cluster
}

#[test]
fn a_pod_change_touches_its_ipcache_shard_and_its_node_only() {
    let cluster = big_cluster(40_000);
    let (mut publication, mut kept) = IncrementalPublication::new(cluster, &BTreeMap::new());
    assert!(kept.shards[TABLE_IPCACHE] > 1, "{:?}", kept.shards);
    let template = publication.compiler().cluster().pods[&ObjectRef {
        namespace: "x".into(),
        name: "p4".into(),
    }]
        .clone();
    let created = Pod {
        name: "new".into(),
        ips: vec!["10.200.0.1".parse().unwrap()],
        ..template
    };
    let node = created.node_name.clone().unwrap();
    let applied = publication.apply(vec![Change::PodUpsert(created.clone())]);
    assert!(!applied.full_recompile);
    let update = applied.update;
    let tables: Vec<&String> = update.tables.keys().collect();
    assert_eq!(tables.len(), 1, "{tables:?}");
    assert!(tables[0].starts_with("ipcache-"), "{tables:?}");
    assert_eq!(
        update.nodes.keys().collect::<Vec<_>>(),
        [&node],
        "only the pod's node"
    );
    kept.apply(update);
    // Deleted again: the same shard and node, back to what they were.
    let update = publication
        .apply(vec![Change::PodDelete(created.object_ref())])
        .update;
    assert_eq!(update.tables.len(), 1);
    assert_eq!(update.nodes.keys().collect::<Vec<_>>(), [&node]);
    kept.apply(update);
    let full = desired(&compile(publication.compiler().cluster()), &kept.shards);
    assert_eq!(comparable(&kept), comparable(&full));
}
