//! The upstream truth tables (`shared/conformance/cases.json`: Kubernetes' e2e
//! NetworkPolicy suite and network-policy-api's AdminNetworkPolicy /
//! BaselineAdminNetworkPolicy conformance suite), run through `compile` and the table
//! evaluator. Every asserted probe must get the verdict upstream asserts; the direct
//! evaluator must agree with the tables on each of them too.
//!
//! Each case's namespaces, pods and nodes are built directly; its policy objects go
//! through `parse_documents`, as manifests would.

use super::compiled::assert_table_invariants;
use crate::compile::compile;
use crate::compile::tables::{CompiledCluster, Verdict};
use crate::evaluate::{ClusterEvaluator, Endpoint, FlowDecision, direct};
use crate::manifest::{Object, build_cluster, parse_documents};
use crate::model::{Cluster, ContainerPort, Labels, Namespace, Node, ObjectRef, Pod, Protocol};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/conformance/cases.json"
);

#[derive(Debug, Deserialize)]
struct Case {
    id: String,
    source_kind: String,
    cluster: CaseCluster,
    policies: Vec<serde_json::Value>,
    probes: Vec<Probe>,
}

#[derive(Debug, Deserialize)]
struct CaseCluster {
    namespaces: BTreeMap<String, CaseNamespace>,
    pods: Vec<CasePod>,
    #[serde(default)]
    nodes: Vec<CaseNode>,
}

#[derive(Debug, Deserialize)]
struct CaseNamespace {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CasePod {
    ns: String,
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    ip: IpAddr,
    #[serde(default)]
    ports: Vec<CasePort>,
    node: Option<String>,
    #[serde(default)]
    host_network: bool,
}

#[derive(Debug, Deserialize)]
struct CasePort {
    port: u16,
    protocol: String,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CaseNode {
    name: String,
    ip: IpAddr,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Probe {
    from: String,
    to: String,
    port: u16,
    protocol: String,
    expect: String,
    dst_ip: Option<IpAddr>,
}

fn load_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(CASES).unwrap_or_else(|e| {
        panic!(
            "cannot read the conformance cases at {CASES}: {e}\n\
             (the upstream truth tables live in shared/conformance/, next to the workspace)"
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{CASES} is not a list of cases: {e}"))
}

fn protocol(name: &str) -> Protocol {
    match name {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        other => panic!("unknown protocol {other:?}"),
    }
}

/// The case's cluster: objects built directly, policies parsed from their JSON.
fn cluster_of(case: &Case) -> Cluster {
    let mut objects: Vec<(String, Object)> = Vec::new();
    let direct = |object| ("cases.json".to_string(), object);
    for (name, namespace) in &case.cluster.namespaces {
        let mut labels = Labels::for_namespace_name(name);
        labels.0.extend(namespace.labels.clone());
        objects.push(direct(Object::Namespace(Namespace {
            name: name.clone(),
            labels,
        })));
    }
    for node in &case.cluster.nodes {
        objects.push(direct(Object::Node(Node {
            name: node.name.clone(),
            labels: Labels(node.labels.clone()),
            addresses: vec![node.ip],
        })));
    }
    for pod in &case.cluster.pods {
        objects.push(direct(Object::Pod(Pod {
            namespace: pod.ns.clone(),
            name: pod.name.clone(),
            uid: None,
            labels: Labels(pod.labels.clone()),
            ips: vec![pod.ip],
            node_name: pod.node.clone(),
            host_network: pod.host_network,
            ports: pod
                .ports
                .iter()
                .map(|p| ContainerPort {
                    name: p.name.clone(),
                    port: p.port,
                    protocol: protocol(&p.protocol),
                })
                .collect(),
            cgroup_path: None,
        })));
    }
    for (index, policy) in case.policies.iter().enumerate() {
        let file = format!("cases.json:{}:policies[{index}]", case.id);
        let text = serde_json::to_string_pretty(policy).expect("JSON serializes");
        let parsed = parse_documents(&file, &text).unwrap_or_else(|e| panic!("{e}"));
        objects.extend(parsed.into_iter().map(|object| (file.clone(), object)));
    }
    build_cluster(objects).unwrap_or_else(|e| panic!("{}: {e}", case.id))
}

fn pod<'c>(cluster: &'c Cluster, case: &Case, name: &str) -> &'c Pod {
    let (namespace, name) = name
        .split_once('/')
        .unwrap_or_else(|| panic!("{}: probe end {name:?} is not namespace/pod", case.id));
    let key = ObjectRef {
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    cluster
        .pods
        .get(&key)
        .unwrap_or_else(|| panic!("{}: no pod {key}", case.id))
}

/// Per suite: cases, cases passed, probes, probes passed.
#[derive(Debug, Default)]
struct Tally {
    cases: usize,
    cases_passed: usize,
    probes: usize,
    probes_passed: usize,
}

/// Decides `probe` in `case`; a description of the failure, if any.
fn check_probe(
    case: &Case,
    cluster: &Cluster,
    compiled: &CompiledCluster,
    evaluator: &ClusterEvaluator,
    probe: &Probe,
) -> Option<String> {
    let from = pod(cluster, case, &probe.from);
    let to = pod(cluster, case, &probe.to);
    if let Some(dst_ip) = probe.dst_ip {
        assert!(
            to.ips.contains(&dst_ip),
            "{}: probe to {} names dst_ip {dst_ip}, not its address",
            case.id,
            probe.to
        );
    }
    let protocol = protocol(&probe.protocol).number();
    let (from, to) = (Endpoint::Pod(from), Endpoint::Pod(to));
    let table = evaluator
        .flow(from, to, protocol, probe.port, None)
        .unwrap_or_else(|e| panic!("{}: {e}", case.id));
    let oracle = direct::flow(cluster, from, to, protocol, probe.port, None)
        .unwrap_or_else(|e| panic!("{}: {e}", case.id));
    let expected = match probe.expect.as_str() {
        "allow" => Verdict::Allow,
        "deny" => Verdict::Deny,
        other => panic!("{}: unknown expectation {other:?}", case.id),
    };
    let probe_text = format!(
        "{}: {} -> {} {}/{} expected {}",
        case.id, probe.from, probe.to, probe.protocol, probe.port, probe.expect
    );
    if table.verdict != expected {
        return Some(format!(
            "{probe_text}, tables say {}:\n{}",
            table.verdict.as_str(),
            explain(compiled, &table)
        ));
    }
    if oracle.verdict != expected {
        return Some(format!(
            "{probe_text}; the tables agree but the direct evaluator says {}: {oracle:?}",
            oracle.verdict.as_str()
        ));
    }
    None
}

fn explain(
    compiled: &CompiledCluster,
    decision: &FlowDecision<crate::evaluate::Decision>,
) -> String {
    let mut text = String::new();
    for (end, d) in [("egress", &decision.egress), ("ingress", &decision.ingress)] {
        let _ = match d {
            None => writeln!(text, "    {end}: not an endpoint"),
            Some(d) => writeln!(
                text,
                "    {end}: {} ({:?}), peer identity {}, rule {:?}",
                d.verdict.as_str(),
                d.reason,
                d.peer_identity,
                d.rule_ref.and_then(|r| compiled.rules.get(r as usize)),
            ),
        };
    }
    text
}

#[test]
fn every_upstream_conformance_probe_passes() {
    let cases = load_cases();
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &cases {
        let cluster = cluster_of(case);
        let compiled = compile(&cluster);
        assert_table_invariants(&compiled);
        let evaluator = ClusterEvaluator::new(&compiled);
        let tally = tallies.entry(case.source_kind.clone()).or_default();
        tally.cases += 1;
        let mut case_passed = true;
        for probe in &case.probes {
            tally.probes += 1;
            match check_probe(case, &cluster, &compiled, &evaluator, probe) {
                None => tally.probes_passed += 1,
                Some(failure) => {
                    case_passed = false;
                    failures.push(failure);
                }
            }
        }
        tally.cases_passed += usize::from(case_passed);
    }
    for (suite, t) in &tallies {
        println!(
            "{suite}: {}/{} cases, {}/{} probes passed",
            t.cases_passed, t.cases, t.probes_passed, t.probes
        );
    }
    assert!(
        failures.is_empty(),
        "{} probes failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(cases.len(), 150, "{CASES} should hold 150 cases");
}
