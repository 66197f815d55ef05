//! Compiler at cluster scale: a synthetic cluster of 5,000 nodes, 150,000 pods, 2,000
//! namespaces and 10,000 NetworkPolicies (and a tenth of it as the same-run
//! baseline). Reports full-compile time (`compile::compile`, and `compile::Compiler::new`,
//! which keeps the state for incremental changes), the time of single changes applied
//! with `Compiler::apply` (a pod relabelled to an existing identity, a pod moved to a
//! brand-new label set and back, to a new label set every namespace's rules select, a
//! pod created and deleted, a namespace relabelled, a NetworkPolicy changed, deleted
//! and added, an EgressPolicy added and deleted), peak memory (max RSS) and the
//! largest per-node table, serialized.

use anyhow::Result;
use palisade_policy::compile::{self, Change, Compiler};
use palisade_policy::model::{
    Cidr, Cluster, ContainerPort, Direction, EgressPeer, EgressPolicy, EgressRule, Enforcement,
    LabelSelector, Labels, Namespace, NetworkPolicy, Node, ObjectRef, Peer, Pod, PolicyRule,
    PortRef, PortSpec, Protocol, ProtocolPorts,
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
    /// Max RSS after `compile::compile` (cluster and one compile)...
    max_rss_compile_mib: f64,
    compiler_new_s: f64,
    /// Max RSS right after `Compiler::new` (before any change)...
    max_rss_compiler_new_mib: f64,
    changes: Vec<ChangeTiming>,
    /// ... and at the end (the `Compiler`, its full recompiles included).
    max_rss_mib: f64,
    identities: usize,
    largest_node_table_bytes: usize,
    largest_node_compact_bytes: usize,
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
            "  {label}: full compile {:.2} s, Compiler::new {:.2} s, max RSS {:.0} MiB, largest node table {} bytes",
            m.full_compile_s, m.compiler_new_s, m.max_rss_mib, m.largest_node_table_bytes
        );
        for c in &m.changes {
            eprintln!(
                "    {}: {:.3} ms (median of {}), {} nodes changed, full recompile: {}",
                c.name, c.median_ms, c.runs, c.nodes_changed, c.full_recompile
            );
        }
        results.push(m);
    }
    report(&results)
}

/// A full compile and `Compiler::new` at the target scale, timed, and nothing else:
/// the run to profile.
pub fn profile() -> Result<()> {
    let cluster = synthetic(FULL);
    eprintln!("  cluster built: max RSS {:.0} MiB", max_rss_mib());
    let start = Instant::now();
    let compiled = compile::compile(&cluster);
    eprintln!(
        "  full compile {:.2} s, max RSS {:.0} MiB",
        start.elapsed().as_secs_f64(),
        max_rss_mib()
    );
    drop(compiled);
    let start = Instant::now();
    let compiler = Compiler::new(cluster);
    eprintln!(
        "  Compiler::new {:.2} s, max RSS {:.0} MiB",
        start.elapsed().as_secs_f64(),
        max_rss_mib()
    );
    drop(compiler);
    Ok(())
}

/// One kind of change, applied with [`Compiler::apply`].
struct ChangeTiming {
    name: &'static str,
    median_ms: f64,
    runs: usize,
    /// Nodes the delta names (their policy entries must be rewritten).
    nodes_changed: usize,
    full_recompile: bool,
}

/// Applies `changes` in turn, each timed, and reports the median.
fn time_changes(compiler: &mut Compiler, name: &'static str, changes: Vec<Change>) -> ChangeTiming {
    let mut times = Vec::new();
    let mut nodes_changed = 0;
    let mut full_recompile = false;
    for change in changes {
        compiler.take_delta();
        let start = Instant::now();
        compiler.apply(change);
        times.push(start.elapsed().as_secs_f64() * 1e3);
        let delta = compiler.take_delta();
        nodes_changed = nodes_changed.max(delta.nodes.len());
        full_recompile |= delta.full_recompile;
    }
    times.sort_by(f64::total_cmp);
    ChangeTiming {
        name,
        median_ms: times[times.len() / 2],
        runs: times.len(),
        nodes_changed,
        full_recompile,
    }
}

fn measure(label: &'static str, scale: Scale) -> Result<Measurement> {
    let cluster = synthetic(scale);
    let start = Instant::now();
    let compiled = compile::compile(&cluster);
    let full_compile_s = start.elapsed().as_secs_f64();
    drop(compiled);
    let max_rss_compile_mib = max_rss_mib();

    let start = Instant::now();
    let mut compiler = Compiler::new(cluster);
    let compiler_new_s = start.elapsed().as_secs_f64();
    let max_rss_compiler_new_mib = max_rss_mib();
    let compiled = compiler.compiled();
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
    // The same with the tables in their compact form (`compile::compact`).
    let compact_bytes: Vec<usize> = compiled
        .policy_tables
        .iter()
        .map(|t| {
            serde_json::to_vec(&compile::compact::CompactPolicyTable::of(t))
                .map(|v| v.len())
                .unwrap_or(0)
        })
        .collect();
    let largest_node_compact_bytes = compiled
        .nodes
        .values()
        .map(|t| {
            serde_json::to_vec(t).map(|v| v.len()).unwrap_or(0)
                + t.policy_tables
                    .iter()
                    .map(|r| compact_bytes[r.table as usize])
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

    let pod_named = |compiler: &Compiler, ns: usize, name: &str| -> Pod {
        compiler.cluster().pods[&ObjectRef {
            namespace: format!("ns-{ns:05}"),
            name: name.to_string(),
        }]
            .clone()
    };
    let app_labels = |app: &str, tier: &str| -> Labels {
        [("app", app.to_string()), ("tier", tier.to_string())]
            .into_iter()
            .collect()
    };
    let mut changes = Vec::new();
    // A pod relabelled to another app of its namespace (an existing identity), and
    // back, on different namespaces.
    let relabels: Vec<Change> = (0..10)
        .flat_map(|ns| {
            let pod = pod_named(&compiler, ns, "app-0-0000");
            let moved = Pod {
                labels: app_labels("app-1", "t1"),
                ..pod.clone()
            };
            [Change::PodUpsert(moved), Change::PodUpsert(pod)]
        })
        .collect();
    changes.push(time_changes(
        &mut compiler,
        "pod relabelled (existing identity)",
        relabels,
    ));
    // Pods created with existing labels, on existing nodes, then deleted.
    let created: Vec<Change> = (0..10)
        .map(|i| {
            let template = pod_named(&compiler, i, "app-1-0001");
            Change::PodUpsert(Pod {
                name: format!("app-1-new-{i}"),
                ips: vec![IpAddr::V4(Ipv4Addr::new(10, 250, 0, i as u8 + 1))],
                ..template
            })
        })
        .collect();
    changes.push(time_changes(&mut compiler, "pod created", created));
    let deleted: Vec<Change> = (0..10)
        .map(|i| {
            Change::PodDelete(ObjectRef {
                namespace: format!("ns-{i:05}"),
                name: format!("app-1-new-{i}"),
            })
        })
        .collect();
    changes.push(time_changes(&mut compiler, "pod deleted", deleted));
    // A pod moved to a label set no pod has (a new identity): one run.
    let pod = pod_named(&compiler, 0, "app-2-0002");
    let fresh = Pod {
        labels: app_labels("app-new", "t-new"),
        ..pod
    };
    changes.push(time_changes(
        &mut compiler,
        "pod to a new label set (new identity)",
        vec![Change::PodUpsert(fresh)],
    ));
    // The same pod back to its labels: the new identity retired.
    let back = Pod {
        labels: app_labels("app-2", "t2"),
        ..pod_named(&compiler, 0, "app-2-0002")
    };
    changes.push(time_changes(
        &mut compiler,
        "pod back to its label set (identity retired)",
        vec![Change::PodUpsert(back)],
    ));
    // A new label set that a rule of every namespace selects as a peer ("app-2 in any
    // namespace"): every namespace's app-4 table gains rows for it.
    let pod = pod_named(&compiler, 0, "app-2-0007");
    let selected = Pod {
        labels: app_labels("app-2", "t-new"),
        ..pod
    };
    changes.push(time_changes(
        &mut compiler,
        "pod to a new label set every namespace's rules select",
        vec![Change::PodUpsert(selected)],
    ));
    // A namespace relabelled (another team): its pods' identities all change.
    let mut namespace = compiler.cluster().namespaces["ns-00003"].clone();
    namespace
        .labels
        .0
        .insert("team".into(), "team-other".into());
    changes.push(time_changes(
        &mut compiler,
        "namespace relabelled",
        vec![Change::NamespaceUpsert(namespace)],
    ));
    // One NetworkPolicy changed (another port): one run.
    let mut changed = compiler.cluster().network_policies[&ObjectRef {
        namespace: "ns-00001".into(),
        name: "policy-2".into(),
    }]
        .clone();
    changed.ingress[0].ports = vec![tcp(PortRef::Number(8081))];
    changes.push(time_changes(
        &mut compiler,
        "NetworkPolicy changed",
        vec![Change::NetworkPolicyUpsert(changed)],
    ));
    // One NetworkPolicy deleted and added back (a policy whose ipBlocks other policies
    // share, so no identity changes).
    let removed_key = ObjectRef {
        namespace: "ns-00002".into(),
        name: "policy-4".into(),
    };
    let removed = compiler.cluster().network_policies[&removed_key].clone();
    changes.push(time_changes(
        &mut compiler,
        "NetworkPolicy deleted",
        vec![Change::NetworkPolicyDelete(removed_key)],
    ));
    changes.push(time_changes(
        &mut compiler,
        "NetworkPolicy added",
        vec![Change::NetworkPolicyUpsert(removed)],
    ));
    // An EgressPolicy added (app-0 of one namespace may reach app-1 of its namespace
    // on 8080), then deleted.
    let allowlist = EgressPolicy {
        namespace: "ns-00004".into(),
        name: "egress-0".into(),
        pod_selector: selector(&[("app", "app-0".to_string())]),
        enforcement: Enforcement::Enforce,
        egress: vec![EgressRule {
            name: "to-app-1".into(),
            to: vec![EgressPeer::Pods {
                namespace_selector: None,
                pod_selector: Some(selector(&[("app", "app-1".to_string())])),
            }],
            ports: vec![ProtocolPorts {
                protocol: Protocol::Tcp,
                first: 8080,
                last: 8080,
            }],
        }],
        sockets: None,
    };
    changes.push(time_changes(
        &mut compiler,
        "EgressPolicy added",
        vec![Change::EgressPolicyUpsert(allowlist)],
    ));
    changes.push(time_changes(
        &mut compiler,
        "EgressPolicy deleted",
        vec![Change::EgressPolicyDelete(ObjectRef {
            namespace: "ns-00004".into(),
            name: "egress-0".into(),
        })],
    ));
    drop(compiler);
    Ok(Measurement {
        label,
        scale,
        full_compile_s,
        max_rss_compile_mib,
        compiler_new_s,
        max_rss_compiler_new_mib,
        changes,
        max_rss_mib: max_rss_mib(),
        identities,
        largest_node_table_bytes,
        largest_node_compact_bytes,
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
         Ratios are to the 1/10 baseline measured in the same run. Full compile is `compile::compile`; \
         `Compiler::new` is the same compile keeping the state the incremental compiler needs. \
         Changes are applied with `Compiler::apply` (median of the runs). Pod changes (new and retired \
         identities included), namespace relabels and NetworkPolicies/EgressPolicies added, changed or deleted \
         are incremental (unless they change the set of ipBlocks or of named egress ports, which shape identities); \
         a cluster policy and a node change are full recompiles. The largest node table counts the \
         node's object and the policy tables it refers to, serialized as JSON; the compact column serializes \
         the tables in their compact form (`compile::compact::CompactPolicyTable`: each distinct row list \
         once, with its peers as delta-coded varints), which is how a NodePolicy carries them. Max RSS is the process's peak so far: after the full \
         compile (the cluster model and one compile), after `Compiler::new` (the compile dropped), and at the \
         end (the compiler after every change below; the largest changes hold old and new rows of the tables \
         they replace for a moment). Measured on a 2-core machine shared with other builds: absolute times \
         vary by up to 2x from run to run; the ratios are steadier.\n\n",
    );
    md.push_str("| run | nodes | namespaces | pods | policies | identities | full compile (s) | ratio | Compiler::new (s) | max RSS, compile (MiB) | max RSS, Compiler::new (MiB) | max RSS, after changes (MiB) | largest node table (bytes, JSON) | largest node table (bytes, compact JSON) | policy rows (all nodes) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut json = Vec::new();
    for m in results {
        let policies = m.scale.namespaces * m.scale.policies_per_namespace;
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.2} | {:.1} | {:.2} | {:.0} | {:.0} | {:.0} | {} | {} | {} |\n",
            m.label,
            m.scale.nodes,
            m.scale.namespaces,
            m.scale.pods,
            policies,
            m.identities,
            m.full_compile_s,
            m.full_compile_s / base.full_compile_s,
            m.compiler_new_s,
            m.max_rss_compile_mib,
            m.max_rss_compiler_new_mib,
            m.max_rss_mib,
            m.largest_node_table_bytes,
            m.largest_node_compact_bytes,
            m.policy_rows
        ));
        let changes: Vec<_> = m
            .changes
            .iter()
            .map(|c| {
                serde_json::json!({
                    "change": c.name, "median_ms": c.median_ms, "runs": c.runs,
                    "nodes_changed": c.nodes_changed, "full_recompile": c.full_recompile,
                })
            })
            .collect();
        json.push(serde_json::json!({
            "run": m.label, "nodes": m.scale.nodes, "namespaces": m.scale.namespaces,
            "pods": m.scale.pods, "policies": policies, "identities": m.identities,
            "full_compile_s": m.full_compile_s, "compiler_new_s": m.compiler_new_s,
            "max_rss_compile_mib": m.max_rss_compile_mib,
            "max_rss_compiler_new_mib": m.max_rss_compiler_new_mib,
            "changes": changes,
            "max_rss_mib": m.max_rss_mib, "largest_node_table_bytes": m.largest_node_table_bytes,
            "largest_node_compact_bytes": m.largest_node_compact_bytes,
            "policy_rows": m.policy_rows,
        }));
    }
    md.push_str("\n## Single changes (`Compiler::apply`)\n\n| change | run | time (ms) | ratio to baseline | runs | nodes changed (max) | full recompile |\n|---|---|---:|---:|---:|---:|---|\n");
    for (i, name) in base.changes.iter().map(|c| c.name).enumerate() {
        for m in results {
            let c = &m.changes[i];
            md.push_str(&format!(
                "| {} | {} | {:.3} | {:.1} | {} | {} | {} |\n",
                name,
                m.label,
                c.median_ms,
                c.median_ms / base.changes[i].median_ms,
                c.runs,
                c.nodes_changed,
                if c.full_recompile { "yes" } else { "no" }
            ));
        }
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
