//! Property tests: on random small clusters, the table evaluator (compiled tables read
//! the kernel's way) decides every probe exactly as the direct evaluator (the published
//! semantics on the policy objects) does: verdict, deciding rule and reason, at both
//! ends. The compiled tables must also keep their invariants.
//!
//! Clusters carry NetworkPolicies, AdminNetworkPolicies (priorities from a small set,
//! so that ties happen), TrustBoundaries (by namespace or by zone label, with shared
//! services), EgressPolicies (enforcing and auditing, with CIDR, pod and DNS name
//! destinations) and a BaselineAdminNetworkPolicy, over labelled nodes. Labels,
//! addresses, CIDRs and ports come from small alphabets so that selectors, blocks,
//! excepts, networks, node addresses and named ports collide with pods and probes
//! often.

use super::compiled::assert_table_invariants;
use super::fixture::*;
use crate::compile::compile;
use crate::evaluate::{ClusterEvaluator, Endpoint, IpFamily};
use crate::model::{
    Cluster, ClusterPeer, ClusterPolicy, ClusterPolicyKind, ClusterPort, ClusterRule, Direction,
    LabelSelector, NetworkPolicy, Peer, Pod, PolicyRule, PortRef, PortSpec, Protocol, RuleAction,
    SelectorOperator, SelectorRequirement, Subject,
};
use crate::model::{
    EgressPeer, EgressPolicy, EgressRule, Enforcement, FqdnPattern, ProtocolPorts, SharedService,
    SharedServiceDirection, TrustBoundary,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use std::collections::BTreeMap;

const NAMESPACES: [&str; 3] = ["ns0", "ns1", "ns2"];
const LABEL_KEYS: [&str; 2] = ["app", "tier"];
const LABEL_VALUES: [&str; 2] = ["a", "b"];
const POD_V4: [&str; 8] = [
    "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5", "10.0.0.9", "10.0.1.1", "10.0.1.2", "10.0.1.7",
];
const POD_V6: [&str; 4] = ["fd00::1", "fd00::2", "fd00::a", "fd00:1::1"];
pub(super) const NODE_ADDRESSES: [&str; 4] =
    ["192.168.0.1", "192.168.0.2", "10.0.0.9", "fd00:ff::1"];
const CIDRS: [&str; 12] = [
    "10.0.0.0/24",
    "10.0.0.0/30",
    "10.0.0.4/30",
    "10.0.0.1/32",
    "0.0.0.0/0",
    "10.0.1.1/4",
    "192.168.0.0/16",
    "203.0.113.0/24",
    "fd00::/64",
    "fd00::/120",
    "::/0",
    "2001:db8::/32",
];
const EXCEPTS: [&str; 7] = [
    "10.0.0.0/30",
    "10.0.0.2/32",
    "10.0.1.0/24",
    "203.0.113.128/25",
    "fd00::/126",
    "2001:db8::/48",
    "10.0.0.0/8",
];
const EXTERNAL: [&str; 14] = [
    "203.0.113.7",
    "203.0.113.200",
    "8.8.8.8",
    "10.0.0.9",
    "10.0.0.4",
    "10.0.0.2",
    "10.0.2.1",
    "10.0.1.1",
    "192.168.0.1",
    "192.168.0.2",
    "fd00::99",
    "2001:db8::1",
    "2001:db8:1::1",
    "::ffff:10.0.0.2",
];
const PORT_NAMES: [&str; 4] = ["http", "dns", "sig", "nope"];
const PRIORITIES: [u32; 4] = [0, 5, 5, 1000];
const PORTS: [u16; 6] = [53, 80, 443, 1000, 1500, 8080];
const END_PORTS: [u16; 4] = [80, 1000, 2000, 65535];
const PROBE_PROTOCOLS: [u8; 6] = [TCP, TCP, TCP, UDP, SCTP, ICMP];
const PROBE_PORTS: [u16; 12] = [0, 9, 53, 80, 80, 443, 999, 1000, 1500, 2000, 8080, 65535];

fn protocol() -> impl Strategy<Value = Protocol> {
    select(vec![Protocol::Tcp, Protocol::Udp, Protocol::Sctp])
}

/// Each key absent or set to one of the values.
pub(super) fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    vec(
        prop::option::of(select(LABEL_VALUES.to_vec())),
        LABEL_KEYS.len(),
    )
    .prop_map(|values| {
        LABEL_KEYS
            .iter()
            .zip(values)
            .filter_map(|(key, value)| Some((key.to_string(), value?.to_string())))
            .collect()
    })
}

fn requirement() -> impl Strategy<Value = SelectorRequirement> {
    (
        select(LABEL_KEYS.to_vec()),
        select(vec![
            SelectorOperator::In,
            SelectorOperator::NotIn,
            SelectorOperator::Exists,
            SelectorOperator::DoesNotExist,
        ]),
        subsequence(LABEL_VALUES.to_vec(), 1..=LABEL_VALUES.len()),
    )
        .prop_map(|(key, operator, values)| SelectorRequirement {
            key: key.to_string(),
            operator,
            values: match operator {
                SelectorOperator::In | SelectorOperator::NotIn => {
                    values.iter().map(|v| v.to_string()).collect()
                }
                SelectorOperator::Exists | SelectorOperator::DoesNotExist => Vec::new(),
            },
        })
}

/// Mostly empty or single-label selectors, which match often enough to matter.
pub(super) fn selector() -> impl Strategy<Value = LabelSelector> {
    let one_label = (select(LABEL_KEYS.to_vec()), select(LABEL_VALUES.to_vec()))
        .prop_map(|(k, v)| BTreeMap::from([(k.to_string(), v.to_string())]));
    prop_oneof![
        2 => Just(LabelSelector::default()),
        3 => one_label.clone().prop_map(|match_labels| LabelSelector {
            match_labels,
            match_expressions: Vec::new(),
        }),
        1 => requirement().prop_map(|r| LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![r],
        }),
        1 => (label_map(), requirement()).prop_map(|(match_labels, r)| LabelSelector {
            match_labels,
            match_expressions: vec![r],
        }),
    ]
}

pub(super) fn peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        3 => (prop::option::of(selector()), prop::option::of(selector())).prop_map(
            |(namespace_selector, pod_selector)| Peer::Pods {
                namespace_selector,
                pod_selector,
            }
        ),
        2 => (select(CIDRS.to_vec()), subsequence(EXCEPTS.to_vec(), 0..=2)).prop_map(
            |(block, except)| Peer::IpBlock {
                cidr: cidr(block),
                except: except.into_iter().map(cidr).collect(),
            }
        ),
    ]
}

pub(super) fn port_spec() -> impl Strategy<Value = PortSpec> {
    let port = prop_oneof![
        1 => Just(None),
        3 => select(PORTS.to_vec()).prop_map(|p| Some(PortRef::Number(p))),
        2 => select(PORT_NAMES.to_vec()).prop_map(|n| Some(PortRef::Name(n.to_string()))),
    ];
    (
        protocol(),
        port,
        prop::option::weighted(0.3, select(END_PORTS.to_vec())),
    )
        .prop_map(|(protocol, port, end_port)| PortSpec {
            protocol,
            port,
            end_port,
        })
}

fn policy_rule() -> impl Strategy<Value = PolicyRule> {
    (vec(peer(), 0..=2), vec(port_spec(), 0..=2))
        .prop_map(|(peers, ports)| PolicyRule { peers, ports })
}

pub(super) fn network_policy(index: usize) -> impl Strategy<Value = NetworkPolicy> {
    (
        select(NAMESPACES.to_vec()),
        prop_oneof![2 => Just(LabelSelector::default()), 3 => selector()],
        prop_oneof![
            1 => Just(vec![]),
            2 => Just(vec![Direction::Ingress]),
            2 => Just(vec![Direction::Egress]),
            3 => Just(vec![Direction::Ingress, Direction::Egress]),
        ],
        vec(policy_rule(), 0..=3),
        vec(policy_rule(), 0..=3),
    )
        .prop_map(
            move |(namespace, pod_selector, policy_types, ingress, egress)| NetworkPolicy {
                namespace: namespace.to_string(),
                name: format!("np{index}"),
                pod_selector,
                policy_types,
                ingress,
                egress,
            },
        )
}

fn cluster_peer() -> impl Strategy<Value = ClusterPeer> {
    prop_oneof![
        2 => selector().prop_map(ClusterPeer::Namespaces),
        2 => (selector(), selector()).prop_map(|(namespace_selector, pod_selector)| {
            ClusterPeer::Pods {
                namespace_selector,
                pod_selector,
            }
        }),
        1 => selector().prop_map(ClusterPeer::Nodes),
        2 => subsequence(CIDRS.to_vec(), 1..=2)
            .prop_map(|cidrs| ClusterPeer::Networks(cidrs.into_iter().map(cidr).collect())),
    ]
}

fn cluster_port() -> impl Strategy<Value = ClusterPort> {
    prop_oneof![
        3 => (protocol(), select(PORTS.to_vec()))
            .prop_map(|(protocol, port)| ClusterPort::Number { protocol, port }),
        1 => (protocol(), select(PORTS.to_vec()), select(END_PORTS.to_vec())).prop_map(
            |(protocol, first, last)| ClusterPort::Range {
                protocol,
                first: first.min(last),
                last: first.max(last),
            }
        ),
        2 => select(PORT_NAMES.to_vec()).prop_map(|name| ClusterPort::Named(name.to_string())),
    ]
}

fn cluster_rule(actions: Vec<RuleAction>) -> impl Strategy<Value = ClusterRule> {
    (
        select(actions),
        vec(cluster_peer(), 0..=2),
        prop_oneof![1 => Just(Vec::new()), 2 => vec(cluster_port(), 1..=2)],
    )
        .prop_map(|(action, peers, ports)| ClusterRule {
            name: String::new(),
            action,
            peers,
            ports,
        })
}

fn subject() -> impl Strategy<Value = Subject> {
    prop_oneof![
        selector().prop_map(Subject::Namespaces),
        (selector(), selector()).prop_map(|(namespace_selector, pod_selector)| Subject::Pods {
            namespace_selector,
            pod_selector,
        }),
    ]
}

fn cluster_policy(kind: ClusterPolicyKind, name: String) -> impl Strategy<Value = ClusterPolicy> {
    let actions = match kind {
        ClusterPolicyKind::BaselineAdminNetworkPolicy => vec![RuleAction::Allow, RuleAction::Deny],
        ClusterPolicyKind::AdminNetworkPolicy | ClusterPolicyKind::TrustBoundary => {
            vec![RuleAction::Allow, RuleAction::Deny, RuleAction::Pass]
        }
    };
    (
        select(PRIORITIES.to_vec()),
        subject(),
        vec(cluster_rule(actions.clone()), 0..=3),
        vec(cluster_rule(actions), 0..=3),
    )
        .prop_map(move |(priority, subject, ingress, egress)| ClusterPolicy {
            kind,
            name: name.clone(),
            tier: kind.tier(),
            priority: match kind {
                ClusterPolicyKind::BaselineAdminNetworkPolicy => 0,
                ClusterPolicyKind::AdminNetworkPolicy | ClusterPolicyKind::TrustBoundary => {
                    priority
                }
            },
            subject,
            ingress,
            egress,
        })
}

/// Up to three AdminNetworkPolicies and perhaps the BaselineAdminNetworkPolicy.
pub(super) fn cluster_policies() -> impl Strategy<Value = Vec<ClusterPolicy>> {
    let admin = (0..=3usize).prop_flat_map(|n| {
        (0..n)
            .map(|i| cluster_policy(ClusterPolicyKind::AdminNetworkPolicy, format!("anp{i}")))
            .collect::<Vec<_>>()
    });
    let baseline = prop::option::of(cluster_policy(
        ClusterPolicyKind::BaselineAdminNetworkPolicy,
        "default".to_string(),
    ));
    (admin, baseline).prop_map(|(mut policies, baseline)| {
        policies.extend(baseline);
        policies
    })
}

fn protocol_ports() -> impl Strategy<Value = ProtocolPorts> {
    prop_oneof![
        3 => (protocol(), select(PORTS.to_vec()))
            .prop_map(|(protocol, port)| ProtocolPorts::single(protocol, port)),
        1 => (protocol(), select(PORTS.to_vec()), select(END_PORTS.to_vec())).prop_map(
            |(protocol, first, last)| ProtocolPorts {
                protocol,
                first: first.min(last),
                last: first.max(last),
            }
        ),
        1 => protocol().prop_map(ProtocolPorts::all),
    ]
}

fn shared_service(index: usize) -> impl Strategy<Value = SharedService> {
    (
        selector(),
        selector(),
        vec(protocol_ports(), 0..=2),
        select(vec![
            SharedServiceDirection::ToService,
            SharedServiceDirection::FromService,
            SharedServiceDirection::Both,
        ]),
    )
        .prop_map(
            move |(namespace_selector, pod_selector, ports, direction)| SharedService {
                name: format!("svc{index}"),
                namespace_selector,
                pod_selector,
                ports,
                direction,
            },
        )
}

pub(super) fn trust_boundary(index: usize) -> impl Strategy<Value = TrustBoundary> {
    let services = (0..=2usize).prop_flat_map(|n| (0..n).map(shared_service).collect::<Vec<_>>());
    (
        select(PRIORITIES.to_vec()),
        prop_oneof![1 => Just(LabelSelector::default()), 2 => selector()],
        prop::option::of(select(LABEL_KEYS.to_vec())),
        services,
    )
        .prop_map(
            move |(priority, namespace_selector, zone_label, shared_services)| TrustBoundary {
                name: format!("tb{index}"),
                priority,
                namespace_selector,
                zone_label: zone_label.map(str::to_string),
                shared_services,
            },
        )
}

fn egress_peer() -> impl Strategy<Value = EgressPeer> {
    prop_oneof![
        2 => (prop::option::of(selector()), prop::option::of(selector())).prop_map(
            |(namespace_selector, pod_selector)| EgressPeer::Pods {
                namespace_selector,
                pod_selector,
            }
        ),
        3 => (select(CIDRS.to_vec()), subsequence(EXCEPTS.to_vec(), 0..=1)).prop_map(
            |(block, except)| EgressPeer::Cidr {
                cidr: cidr(block),
                except: except.into_iter().map(cidr).collect(),
            }
        ),
        1 => select(vec!["api.github.com", "*.pypi.org"])
            .prop_map(|name| EgressPeer::Fqdn(FqdnPattern::validated(name.to_string()))),
    ]
}

fn egress_rule() -> impl Strategy<Value = EgressRule> {
    (
        vec(egress_peer(), 1..=2),
        prop_oneof![1 => Just(Vec::new()), 2 => vec(protocol_ports(), 1..=2)],
    )
        .prop_map(|(to, ports)| EgressRule {
            name: String::new(),
            to,
            ports,
        })
}

pub(super) fn egress_policy(index: usize) -> impl Strategy<Value = EgressPolicy> {
    (
        select(NAMESPACES.to_vec()),
        prop_oneof![1 => Just(LabelSelector::default()), 2 => selector()],
        select(vec![
            Enforcement::Enforce,
            Enforcement::Enforce,
            Enforcement::Audit,
        ]),
        vec(egress_rule(), 0..=3),
    )
        .prop_map(
            move |(namespace, pod_selector, enforcement, egress)| EgressPolicy {
                namespace: namespace.to_string(),
                name: format!("ep{index}"),
                pod_selector,
                enforcement,
                egress,
                sockets: None,
            },
        )
}

pub(super) fn pod_strategy(index: usize) -> impl Strategy<Value = Pod> {
    let container_ports = subsequence(
        vec![
            ("http", 80, Protocol::Tcp),
            ("http", 8080, Protocol::Tcp),
            ("dns", 53, Protocol::Udp),
            ("dns", 53, Protocol::Tcp),
            ("sig", 9, Protocol::Sctp),
            ("alt", 1500, Protocol::Tcp),
        ],
        0..=3,
    );
    (
        select(NAMESPACES.to_vec()),
        label_map(),
        prop::option::weighted(0.9, select(POD_V4.to_vec())),
        prop::option::weighted(0.4, select(POD_V6.to_vec())),
        select(vec![Some("node-0"), Some("node-1"), None]),
        prop::bool::weighted(0.05),
        container_ports,
    )
        .prop_map(
            move |(namespace, labels, v4, v6, node, host_network, ports)| Pod {
                namespace: namespace.to_string(),
                name: format!("pod{index}"),
                uid: None,
                labels: crate::model::Labels(labels),
                ips: v4.into_iter().chain(v6).map(ip).collect(),
                node_name: node.map(str::to_string),
                host_network,
                ports: ports
                    .into_iter()
                    .map(|(name, port, protocol)| container_port(name, port, protocol))
                    .collect(),
                cgroup_path: None,
            },
        )
}

pub(super) fn cluster_strategy() -> impl Strategy<Value = Cluster> {
    let namespaces = vec(label_map(), NAMESPACES.len());
    let nodes = vec(
        (subsequence(NODE_ADDRESSES.to_vec(), 0..=2), label_map()),
        2,
    );
    let pods = (2..=6usize).prop_flat_map(|n| (0..n).map(pod_strategy).collect::<Vec<_>>());
    let policies = (0..=4usize).prop_flat_map(|n| (0..n).map(network_policy).collect::<Vec<_>>());
    let boundaries = (0..=2usize).prop_flat_map(|n| (0..n).map(trust_boundary).collect::<Vec<_>>());
    let allowlists = (0..=3usize).prop_flat_map(|n| (0..n).map(egress_policy).collect::<Vec<_>>());
    let tiers = (
        namespaces,
        nodes,
        pods,
        policies,
        cluster_policies(),
        boundaries,
        allowlists,
    );
    tiers.prop_map(
        |(namespaces, nodes, pods, policies, cluster_policies, boundaries, allowlists)| {
            let mut builder = ClusterBuilder::new();
            for (name, labels) in NAMESPACES.iter().zip(&namespaces) {
                let labels: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                builder = builder.namespace(name, &labels);
            }
            for (i, (addresses, labels)) in nodes.iter().enumerate() {
                let labels: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                builder = builder.labelled_node(&format!("node-{i}"), addresses, &labels);
            }
            for pod in pods {
                builder = builder.pod(pod);
            }
            for policy in policies {
                builder = builder.policy(policy);
            }
            for policy in cluster_policies {
                builder = builder.cluster_policy(policy);
            }
            for boundary in boundaries {
                builder = builder.trust_boundary(boundary);
            }
            for policy in allowlists {
                builder = builder.egress_policy(policy);
            }
            builder.build()
        },
    )
}

/// A flow's end: a pod by position in the cluster, or an external address.
#[derive(Clone, Debug)]
pub(super) enum ProbeEnd {
    Pod(usize),
    External(&'static str),
}

/// A probe; it is tried with the given family and with both families, since which
/// addresses exist depends on the random cluster.
#[derive(Clone, Debug)]
pub(super) struct Probe {
    pub from: ProbeEnd,
    pub to: ProbeEnd,
    pub protocol: u8,
    pub port: u16,
}

fn probe_end() -> impl Strategy<Value = ProbeEnd> {
    prop_oneof![
        3 => (0..6usize).prop_map(ProbeEnd::Pod),
        1 => select(EXTERNAL.to_vec()).prop_map(ProbeEnd::External),
    ]
}

pub(super) fn probe() -> impl Strategy<Value = Probe> {
    (
        probe_end(),
        probe_end(),
        select(PROBE_PROTOCOLS.to_vec()),
        select(PROBE_PORTS.to_vec()),
    )
        .prop_map(|(from, to, protocol, port)| Probe {
            from,
            to,
            protocol,
            port,
        })
}

pub(super) fn endpoint<'a>(cluster: &'a Cluster, end: &ProbeEnd) -> Endpoint<'a> {
    match end {
        ProbeEnd::Pod(i) => {
            let pods: Vec<&Pod> = cluster.pods.values().collect();
            Endpoint::Pod(pods[i % pods.len()])
        }
        ProbeEnd::External(addr) => Endpoint::External(ip(addr)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 500,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn table_evaluator_agrees_with_kubernetes_semantics(
        cluster in cluster_strategy(),
        probes in vec(probe(), 1..=16),
    ) {
        let harness = Harness::new(cluster);
        assert_table_invariants(&harness.compiled);
        super::compiled::assert_rules_sorted(&harness.compiled);
        prop_assert_eq!(
            serde_json::to_string(&harness.compiled).unwrap(),
            serde_json::to_string(&compile(&harness.cluster)).unwrap(),
            "compiling twice gave different tables"
        );
        let evaluator = ClusterEvaluator::new(&harness.compiled);
        for probe in &probes {
            let from = endpoint(&harness.cluster, &probe.from);
            let to = endpoint(&harness.cluster, &probe.to);
            for family in [None, Some(IpFamily::V4), Some(IpFamily::V6)] {
                // Panics (with both outcomes) if the evaluators disagree; a probe
                // without addresses of the family is an error for both alike.
                let _ = harness.compare(&evaluator, from, to, probe.protocol, probe.port, family);
            }
        }
    }
}

/// The random clusters above must reach every source of decisions, or agreement on
/// them would prove little: decide a fixed sample of them and count who decided.
#[test]
fn random_clusters_reach_every_policy_source_and_verdict() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeSet;

    let mut runner = TestRunner::deterministic();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut verdicts = BTreeSet::new();
    for _ in 0..150 {
        let cluster = cluster_strategy().new_tree(&mut runner).unwrap().current();
        let probes = vec(probe(), 8).new_tree(&mut runner).unwrap().current();
        let harness = Harness::new(cluster);
        let evaluator = ClusterEvaluator::new(&harness.compiled);
        for probe in &probes {
            let from = endpoint(&harness.cluster, &probe.from);
            let to = endpoint(&harness.cluster, &probe.to);
            let Ok(outcome) =
                harness.compare(&evaluator, from, to, probe.protocol, probe.port, None)
            else {
                continue;
            };
            for end in [outcome.egress, outcome.ingress].into_iter().flatten() {
                verdicts.insert(end.verdict);
                if let Some(rule) = end.rule {
                    seen.insert((rule.kind, rule.action));
                }
            }
        }
    }
    for (kind, action) in [
        ("NetworkPolicy", "Allow"),
        ("AdminNetworkPolicy", "Allow"),
        ("AdminNetworkPolicy", "Deny"),
        ("BaselineAdminNetworkPolicy", "Deny"),
        ("TrustBoundary", "Deny"),
        ("EgressPolicy", "Allow"),
        ("EgressPolicy", "Deny"),
        ("EgressPolicy", "AuditDeny"),
    ] {
        assert!(
            seen.contains(&(kind.to_string(), action.to_string())),
            "no probe was decided by a {kind} {action} rule: {seen:?}"
        );
    }
    assert_eq!(verdicts.len(), 3, "{verdicts:?}");
}
