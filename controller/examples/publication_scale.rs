//! Measures the publication at a synthetic scale (not a test; numbers for the docs):
//! `cargo run --release -p palisade-controller --example publication_scale -- NODES PODS POLICIES`.
//! Builds the objects as the API would send them, through the controller's object
//! store (the manifest parser), compiles, shards, and plans; then one pod is added and
//! the time to the new plan and the objects it rewrites are reported.

use palisade_controller::objects::{MODEL_KINDS, ObjectStore};
use palisade_controller::publication::desired;
use palisade_controller::reconcile::{Published, PublishedObject, reconcile};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let (nodes, pods, policies) = (args[0], args[1], args[2]);
    let kind = |k: &str| MODEL_KINDS.iter().find(|m| m.kind == k).unwrap();
    let mut store = ObjectStore::default();
    let namespaces = 50;
    for ns in 0..namespaces {
        store.upsert(kind("Namespace"), &json!({"metadata": {"name": format!("ns{ns}"), "labels": {"team": format!("t{}", ns % 10)}}}));
    }
    for n in 0..nodes {
        store.upsert(kind("Node"), &json!({"metadata": {"name": format!("node{n}")},
            "status": {"addresses": [{"type": "InternalIP", "address": format!("172.16.{}.{}", n / 250, n % 250 + 1)}]}}));
    }
    let pod = |p: usize| {
        json!({"metadata": {"name": format!("pod{p}"), "namespace": format!("ns{}", p % namespaces),
                "labels": {"app": format!("app{}", p % 200)}},
               "spec": {"nodeName": format!("node{}", p % nodes)},
               "status": {"podIP": format!("10.{}.{}.{}", p >> 16, (p >> 8) & 255, p & 255)}})
    };
    for p in 0..pods {
        store.upsert(kind("Pod"), &pod(p));
    }
    for i in 0..policies {
        store.upsert(kind("NetworkPolicy"), &json!({"metadata": {"name": format!("np{i}"), "namespace": format!("ns{}", i % namespaces)},
            "spec": {"podSelector": {"matchLabels": {"app": format!("app{}", i % 200)}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": format!("app{}", (i + 1) % 200)}}}],
                                  "ports": [{"protocol": "TCP", "port": 8080}]}]}}));
    }
    let started = Instant::now();
    let compiled = palisade_policy::compile::compile(&store.cluster().unwrap());
    let compile = started.elapsed();
    let started = Instant::now();
    let wanted = desired(&compiled, &BTreeMap::new());
    let shard_time = started.elapsed();
    let plan = reconcile(
        &wanted,
        &Published::default(),
        &[],
        &mut Default::default(),
        "t",
    );
    let largest = |kind: &str| {
        plan.writes
            .iter()
            .filter(|w| w.kind.kind() == kind)
            .map(|w| w.size)
            .max()
            .unwrap_or(0)
    };
    println!(
        "{nodes} nodes, {pods} pods, {policies} policies: compile {:.2?}, publication {:.2?}",
        compile, shard_time
    );
    println!(
        "shards {:?}; objects {} ({} bytes total); largest ClusterTable {} bytes, largest NodePolicy {} bytes; over budget {}",
        wanted.shards,
        plan.writes.len(),
        plan.writes.iter().map(|w| w.size).sum::<usize>(),
        largest("ClusterTable"),
        largest("NodePolicy"),
        plan.oversize.len()
    );
    let mut published = Published::default();
    for write in &plan.writes {
        let object = PublishedObject {
            generation: write.generation,
            content_hash: write.content_hash.clone(),
            shards: write.body["spec"]["shards"].as_u64().map(|s| s as u32),
            applied_generation: None,
        };
        match write.kind.kind() {
            "ClusterTable" => published.tables.insert(write.name.clone(), object),
            _ => published.nodes.insert(write.name.clone(), object),
        };
    }
    // One more pod with the labels of an existing one.
    let started = Instant::now();
    store.upsert(kind("Pod"), &pod(pods + 200));
    let compiled = palisade_policy::compile::compile(&store.cluster().unwrap());
    let wanted = desired(&compiled, &wanted.shards);
    let plan = reconcile(&wanted, &published, &[], &mut Default::default(), "t");
    println!(
        "one pod added: plan in {:.2?}, rewrites {:?}",
        started.elapsed(),
        plan.writes
            .iter()
            .map(|w| w.name.clone())
            .collect::<Vec<_>>()
    );
}
