//! Compiler at cluster scale: a synthetic cluster of 5,000 nodes, 150,000 pods, 2,000
//! namespaces and 10,000 NetworkPolicies (and a tenth of it as the same-run
//! baseline). Reports full-compile time, the time to recompile after one pod's labels
//! change, peak memory (max RSS) and the largest per-node table, serialized.

use anyhow::Result;
use palisade_policy::compile;
use palisade_policy::model::{
    Cidr, Cluster, ContainerPort, Direction, LabelSelector, Labels, Namespace, NetworkPolicy, Node,
    ObjectRef, Peer, Pod, PolicyRule, PortRef, PortSpec, Protocol,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Instant;

/// Scale of a synthetic cluster.
#[derive(Clone, Copy)]
struct Scale {
    nodes: usize,
    namespaces: usize,
    pods: usize,
    policies_per_namespace: usize,
}

const FULL: Scale = Scale {
    nodes: 5_000,
    namespaces: 2_000,
    pods: 150_000,
    policies_per_namespace: 5,
};

/// Apps per namespace (pods of one app share labels, so they share an identity).
const APPS: usize = 5;

struct Measurement {
    label: &'static str,
    scale: Scale,
    full_compile_s: f64,
    pod_change_s: f64,
    max_rss_mib: f64,
    identities: usize,
    largest_node_table_bytes: usize,
    policy_rows: usize,
}

pub fn run() -> Result<()> {
    let tenth = Scale {
        nodes: FULL.nodes / 10,
        namespaces: FULL.namespaces / 10,
        pods: FULL.pods / 10,
        policies_per_namespace: FULL.policies_per_namespace,
    };
    let mut results = Vec::new();
    for (label, scale) in [("baseline (1/10)", tenth), ("target", FULL)] {
        let m = measure(label, scale)?;
        eprintln!(
            "  {label}: full compile {:.2} s, pod change {:.2} s, max RSS {:.0} MiB, largest node table {} bytes",
            m.full_compile_s, m.pod_change_s, m.max_rss_mib, m.largest_node_table_bytes
        );
        results.push(m);
    }
    report(&results)
}

fn measure(label: &'static str, scale: Scale) -> Result<Measurement> {
    let mut cluster = synthetic(scale);
    let start = Instant::now();
    let compiled = compile::compile(&cluster);
    let full_compile_s = start.elapsed().as_secs_f64();
    // A node's table: its own object (addresses, endpoints, table references) and the
    // policy tables it references, serialized.
    let table_bytes: Vec<usize> = compiled
        .policy_tables
        .iter()
        .map(|t| serde_json::to_vec(t).map(|v| v.len()).unwrap_or(0))
        .collect();
    let largest_node_table_bytes = compiled
        .nodes
        .values()
        .map(|t| {
            serde_json::to_vec(t).map(|v| v.len()).unwrap_or(0)
                + t.policy_tables
                    .iter()
                    .map(|r| table_bytes[r.table as usize])
                    .sum::<usize>()
        })
        .max()
        .unwrap_or(0);
    let policy_rows = compiled
        .nodes
        .values()
        .map(|t| {
            t.policy_tables
                .iter()
                .map(|r| compiled.policy_tables[r.table as usize].rows.len())
                .sum::<usize>()
        })
        .sum();
    let identities = compiled.identities.len();
    drop(compiled);

    // One pod changes its labels (moves to another app's identity).
    let pod = cluster.pods.values_mut().next().expect("pods");
    pod.labels = [("app", "app-1"), ("tier", "t1")].into_iter().collect();
    let start = Instant::now();
    let recompiled = compile::compile(&cluster);
    let pod_change_s = start.elapsed().as_secs_f64();
    drop(recompiled);
    Ok(Measurement {
        label,
        scale,
        full_compile_s,
        pod_change_s,
        max_rss_mib: max_rss_mib(),
        identities,
        largest_node_table_bytes,
        policy_rows,
    })
}

fn max_rss_mib() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

fn synthetic(scale: Scale) -> Cluster {
    let mut cluster = Cluster::default();
    for n in 0..scale.nodes {
        let name = format!("node-{n:05}");
        let addr = Ipv4Addr::from(0xac10_0000u32 + n as u32 + 1); // 172.16.0.0/12
        cluster.nodes.insert(
            name.clone(),
            Node {
                name,
                labels: [("zone", format!("z{}", n % 3))].into_iter().collect(),
                addresses: vec![IpAddr::V4(addr)],
            },
        );
    }
    for ns in 0..scale.namespaces {
        let name = format!("ns-{ns:05}");
        let mut labels = Labels::for_namespace_name(&name);
        labels.0.insert("team".into(), format!("team-{}", ns % 50));
        cluster
            .namespaces
            .insert(name.clone(), Namespace { name, labels });
    }
    let pods_per_ns = scale.pods / scale.namespaces;
    let mut ip = 0x0a00_0000u32; // 10.0.0.0/8
    for ns in 0..scale.namespaces {
        let namespace = format!("ns-{ns:05}");
        for p in 0..pods_per_ns {
            ip += 1;
            let app = p % APPS;
            let name = format!("app-{app}-{p:04}");
            let pod = Pod {
                namespace: namespace.clone(),
                name: name.clone(),
                uid: None,
                labels: [("app", format!("app-{app}")), ("tier", format!("t{app}"))]
                    .into_iter()
                    .collect(),
                ips: vec![IpAddr::V4(Ipv4Addr::from(ip))],
                node_name: Some(format!("node-{:05}", (ip as usize * 7919) % scale.nodes)),
                host_network: false,
                ports: vec![ContainerPort {
                    name: Some("http".into()),
                    port: 8080,
                    protocol: Protocol::Tcp,
                }],
                cgroup_path: None,
            };
            cluster.pods.insert(
                ObjectRef {
                    namespace: namespace.clone(),
                    name,
                },
                pod,
            );
        }
        for k in 0..scale.policies_per_namespace {
            let policy = policy(&namespace, ns, k);
            cluster.network_policies.insert(
                ObjectRef {
                    namespace: namespace.clone(),
                    name: policy.name.clone(),
                },
                policy,
            );
        }
    }
    cluster
}

fn selector(pairs: &[(&str, String)]) -> LabelSelector {
    LabelSelector {
        match_labels: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        match_expressions: vec![],
    }
}

fn tcp(port: PortRef) -> PortSpec {
    PortSpec {
        protocol: Protocol::Tcp,
        port: Some(port),
        end_port: None,
    }
}

/// The k-th policy of namespace `ns`: a realistic mix of isolation, app-to-app,
/// cross-namespace and CIDR rules.
fn policy(namespace: &str, ns: usize, k: usize) -> NetworkPolicy {
    let app = |i: usize| ("app", format!("app-{}", i % APPS));
    let (pod_selector, types, ingress, egress) = match k {
        0 => (
            LabelSelector::default(),
            vec![Direction::Ingress],
            vec![],
            vec![],
        ),
        1 => (
            selector(&[app(1)]),
            vec![Direction::Ingress],
            vec![PolicyRule {
                peers: vec![Peer::Pods {
                    namespace_selector: None,
                    pod_selector: Some(selector(&[app(0)])),
                }],
                ports: vec![tcp(PortRef::Name("http".into()))],
            }],
            vec![],
        ),
        2 => (
            selector(&[app(2)]),
            vec![Direction::Ingress],
            vec![PolicyRule {
                peers: vec![Peer::Pods {
                    namespace_selector: Some(selector(&[("team", format!("team-{}", ns % 50))])),
                    pod_selector: Some(selector(&[app(1)])),
                }],
                ports: vec![tcp(PortRef::Number(8080))],
            }],
            vec![],
        ),
        3 => (
            selector(&[app(3)]),
            vec![Direction::Egress],
            vec![],
            vec![PolicyRule {
                peers: vec![Peer::IpBlock {
                    cidr: Cidr("192.0.2.0/24".parse().expect("cidr")),
                    except: vec![Cidr(
                        format!("192.0.2.{}/32", ns % 256).parse().expect("cidr"),
                    )],
                }],
                ports: vec![PortSpec {
                    protocol: Protocol::Tcp,
                    port: Some(PortRef::Number(8000)),
                    end_port: Some(8100),
                }],
            }],
        ),
        _ => (
            selector(&[app(4)]),
            vec![Direction::Ingress],
            vec![PolicyRule {
                peers: vec![Peer::Pods {
                    namespace_selector: Some(LabelSelector::default()),
                    pod_selector: Some(selector(&[app(2)])),
                }],
                ports: vec![tcp(PortRef::Number(8080))],
            }],
            vec![],
        ),
    };
    NetworkPolicy {
        namespace: namespace.to_string(),
        name: format!("policy-{k}"),
        pod_selector,
        policy_types: types,
        ingress,
        egress,
    }
}

fn report(results: &[Measurement]) -> Result<()> {
    let base = &results[0];
    let mut md = String::from("# Compiler at cluster scale\n\n");
    md.push_str(
        "Synthetic clusters (NetworkPolicy only: default deny, app-to-app, cross-namespace, CIDR with except and port ranges). \
         Ratios are to the 1/10 baseline measured in the same run. The pod change is one pod's labels changing; \
         it is measured as a full recompile, since the compiler is not incremental yet.\n\n",
    );
    md.push_str("| run | nodes | namespaces | pods | policies | identities | full compile (s) | ratio | pod change (s) | max RSS (MiB) | largest node table (bytes) | policy rows (all nodes) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut json = Vec::new();
    for m in results {
        let policies = m.scale.namespaces * m.scale.policies_per_namespace;
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.2} | {:.1} | {:.2} | {:.0} | {} | {} |\n",
            m.label,
            m.scale.nodes,
            m.scale.namespaces,
            m.scale.pods,
            policies,
            m.identities,
            m.full_compile_s,
            m.full_compile_s / base.full_compile_s,
            m.pod_change_s,
            m.max_rss_mib,
            m.largest_node_table_bytes,
            m.policy_rows
        ));
        json.push(serde_json::json!({
            "run": m.label, "nodes": m.scale.nodes, "namespaces": m.scale.namespaces,
            "pods": m.scale.pods, "policies": policies, "identities": m.identities,
            "full_compile_s": m.full_compile_s, "pod_change_s": m.pod_change_s,
            "max_rss_mib": m.max_rss_mib, "largest_node_table_bytes": m.largest_node_table_bytes,
            "policy_rows": m.policy_rows,
        }));
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("compile.md"), &md)?;
    std::fs::write(
        dir.join("compile.json"),
        serde_json::to_string_pretty(
            &serde_json::json!({"benchmark": "compiler at scale", "results": json}),
        )?,
    )?;
    print!("{md}");
    Ok(())
}
