//! Builders for test clusters, straight from the model types, and a harness that
//! decides each probe with both evaluators and insists they agree.

use crate::compile::compile;
use crate::compile::tables::{CompiledCluster, RuleInfo, Verdict};
use crate::evaluate::{ClusterEvaluator, Endpoint, FlowDecision, FlowError, IpFamily, direct};
use crate::model::{
    Cidr, Cluster, ClusterPeer, ClusterPolicy, ClusterPolicyKind, ClusterPort, ClusterRule,
    ContainerPort, Direction, LabelSelector, Labels, Namespace, NetworkPolicy, Node, ObjectRef,
    Peer, Pod, PolicyRule, PortRef, PortSpec, Protocol, RuleAction, SelectorOperator,
    SelectorRequirement, Subject,
};
use crate::model::{EgressPolicy, TrustBoundary};
use std::net::IpAddr;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const SCTP: u8 = 132;
pub const ICMP: u8 = 1;

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, *v)).collect()
}

pub fn match_labels(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        match_expressions: Vec::new(),
    }
}

pub fn expression(key: &str, operator: SelectorOperator, values: &[&str]) -> SelectorRequirement {
    SelectorRequirement {
        key: key.to_string(),
        operator,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn cidr(s: &str) -> Cidr {
    Cidr(s.parse().unwrap())
}

pub fn object_ref(namespace: &str, name: &str) -> ObjectRef {
    ObjectRef {
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

/// A pod on node `node-a` with no ports.
pub fn pod(namespace: &str, name: &str, pod_labels: &[(&str, &str)], ips: &[&str]) -> Pod {
    Pod {
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid: None,
        labels: labels(pod_labels),
        ips: ips.iter().map(|s| ip(s)).collect(),
        node_name: Some("node-a".to_string()),
        host_network: false,
        ports: Vec::new(),
        cgroup_path: None,
    }
}

pub fn container_port(name: &str, port: u16, protocol: Protocol) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        port,
        protocol,
    }
}

/// A policy in `namespace` selecting `selector`, with no rules and no policy types.
pub fn policy(namespace: &str, name: &str, selector: LabelSelector) -> NetworkPolicy {
    NetworkPolicy {
        namespace: namespace.to_string(),
        name: name.to_string(),
        pod_selector: selector,
        policy_types: Vec::new(),
        ingress: Vec::new(),
        egress: Vec::new(),
    }
}

/// An ingress-isolating policy with these rules.
pub fn ingress_policy(
    namespace: &str,
    name: &str,
    selector: LabelSelector,
    rules: Vec<PolicyRule>,
) -> NetworkPolicy {
    NetworkPolicy {
        policy_types: vec![Direction::Ingress],
        ingress: rules,
        ..policy(namespace, name, selector)
    }
}

/// An egress-isolating policy with these rules.
pub fn egress_policy(
    namespace: &str,
    name: &str,
    selector: LabelSelector,
    rules: Vec<PolicyRule>,
) -> NetworkPolicy {
    NetworkPolicy {
        policy_types: vec![Direction::Egress],
        egress: rules,
        ..policy(namespace, name, selector)
    }
}

pub fn rule(peers: Vec<Peer>, ports: Vec<PortSpec>) -> PolicyRule {
    PolicyRule { peers, ports }
}

pub fn pods_peer(
    namespace_selector: Option<LabelSelector>,
    pod_selector: Option<LabelSelector>,
) -> Peer {
    Peer::Pods {
        namespace_selector,
        pod_selector,
    }
}

pub fn ip_block(block: &str, except: &[&str]) -> Peer {
    Peer::IpBlock {
        cidr: cidr(block),
        except: except.iter().map(|e| cidr(e)).collect(),
    }
}

pub fn port(protocol: Protocol, number: u16) -> PortSpec {
    PortSpec {
        protocol,
        port: Some(PortRef::Number(number)),
        end_port: None,
    }
}

pub fn port_range(protocol: Protocol, first: u16, last: u16) -> PortSpec {
    PortSpec {
        protocol,
        port: Some(PortRef::Number(first)),
        end_port: Some(last),
    }
}

pub fn named_port(protocol: Protocol, name: &str) -> PortSpec {
    PortSpec {
        protocol,
        port: Some(PortRef::Name(name.to_string())),
        end_port: None,
    }
}

pub fn all_ports(protocol: Protocol) -> PortSpec {
    PortSpec {
        protocol,
        port: None,
        end_port: None,
    }
}

/// An AdminNetworkPolicy.
pub fn admin_policy(
    name: &str,
    priority: u32,
    subject: Subject,
    ingress: Vec<ClusterRule>,
    egress: Vec<ClusterRule>,
) -> ClusterPolicy {
    let kind = ClusterPolicyKind::AdminNetworkPolicy;
    ClusterPolicy {
        kind,
        name: name.to_string(),
        tier: kind.tier(),
        priority,
        subject,
        ingress,
        egress,
    }
}

/// The BaselineAdminNetworkPolicy (`default`).
pub fn baseline_policy(
    subject: Subject,
    ingress: Vec<ClusterRule>,
    egress: Vec<ClusterRule>,
) -> ClusterPolicy {
    let kind = ClusterPolicyKind::BaselineAdminNetworkPolicy;
    ClusterPolicy {
        kind,
        name: "default".to_string(),
        tier: kind.tier(),
        priority: 0,
        subject,
        ingress,
        egress,
    }
}

pub fn cluster_rule(
    action: RuleAction,
    peers: Vec<ClusterPeer>,
    ports: Vec<ClusterPort>,
) -> ClusterRule {
    ClusterRule {
        name: String::new(),
        action,
        peers,
        ports,
    }
}

/// Every pod of the namespaces with these labels.
pub fn namespaces(pairs: &[(&str, &str)]) -> ClusterPeer {
    ClusterPeer::Namespaces(match_labels(pairs))
}

/// The nodes with these labels.
pub fn nodes(pairs: &[(&str, &str)]) -> ClusterPeer {
    ClusterPeer::Nodes(match_labels(pairs))
}

pub fn networks(cidrs: &[&str]) -> ClusterPeer {
    ClusterPeer::Networks(cidrs.iter().map(|c| cidr(c)).collect())
}

pub fn port_number(protocol: Protocol, port: u16) -> ClusterPort {
    ClusterPort::Number { protocol, port }
}

/// Builds a [`Cluster`] object by object.
#[derive(Clone, Debug, Default)]
pub struct ClusterBuilder {
    cluster: Cluster,
}

impl ClusterBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn namespace(mut self, name: &str, extra_labels: &[(&str, &str)]) -> Self {
        let mut labels = Labels::for_namespace_name(name);
        labels.0.extend(
            extra_labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        self.cluster.namespaces.insert(
            name.to_string(),
            Namespace {
                name: name.to_string(),
                labels,
            },
        );
        self
    }

    pub fn pod(mut self, pod: Pod) -> Self {
        self.cluster.pods.insert(pod.object_ref(), pod);
        self
    }

    pub fn node(self, name: &str, addresses: &[&str]) -> Self {
        self.labelled_node(name, addresses, &[])
    }

    pub fn labelled_node(
        mut self,
        name: &str,
        addresses: &[&str],
        node_labels: &[(&str, &str)],
    ) -> Self {
        self.cluster.nodes.insert(
            name.to_string(),
            Node {
                name: name.to_string(),
                labels: labels(node_labels),
                addresses: addresses.iter().map(|s| ip(s)).collect(),
            },
        );
        self
    }

    pub fn cluster_policy(mut self, policy: ClusterPolicy) -> Self {
        self.cluster
            .cluster_policies
            .insert(policy.policy_ref(), policy);
        self
    }

    pub fn trust_boundary(mut self, boundary: TrustBoundary) -> Self {
        self.cluster
            .trust_boundaries
            .insert(boundary.name.clone(), boundary);
        self
    }

    pub fn egress_policy(mut self, policy: EgressPolicy) -> Self {
        self.cluster
            .egress_policies
            .insert(object_ref(&policy.namespace, &policy.name), policy);
        self
    }

    pub fn policy(mut self, policy: NetworkPolicy) -> Self {
        self.cluster
            .network_policies
            .insert(object_ref(&policy.namespace, &policy.name), policy);
        self
    }

    pub fn build(self) -> Cluster {
        self.cluster
    }
}

/// A flow's end in a probe: a pod by namespace/name, or an address.
#[derive(Clone, Copy, Debug)]
pub enum End<'a> {
    Pod(&'a str, &'a str),
    Addr(&'a str),
}

/// A cluster, its compiled tables and both evaluators.
pub struct Harness {
    pub cluster: Cluster,
    pub compiled: CompiledCluster,
}

/// One end's decision in evaluator-neutral terms, for comparing the evaluators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndOutcome {
    pub verdict: Verdict,
    pub rule: Option<RuleInfo>,
    pub reason: crate::evaluate::Reason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowOutcome {
    pub verdict: Verdict,
    pub egress: Option<EndOutcome>,
    pub ingress: Option<EndOutcome>,
}

impl Harness {
    pub fn new(cluster: Cluster) -> Self {
        let compiled = compile(&cluster);
        Self { cluster, compiled }
    }

    fn endpoint<'a>(&'a self, end: End<'a>) -> Endpoint<'a> {
        match end {
            End::Pod(namespace, name) => Endpoint::Pod(
                self.cluster
                    .pods
                    .get(&object_ref(namespace, name))
                    .unwrap_or_else(|| panic!("no pod {namespace}/{name}")),
            ),
            End::Addr(addr) => Endpoint::External(ip(addr)),
        }
    }

    /// Decides a flow with both evaluators, asserts they agree, returns the outcome.
    pub fn outcome(
        &self,
        from: End,
        to: End,
        protocol: u8,
        port: u16,
        family: Option<IpFamily>,
    ) -> Result<FlowOutcome, FlowError> {
        let evaluator = ClusterEvaluator::new(&self.compiled);
        let (from, to) = (self.endpoint(from), self.endpoint(to));
        self.compare(&evaluator, from, to, protocol, port, family)
    }

    /// Decides a flow with both evaluators, asserts they agree, returns the outcome.
    pub fn compare(
        &self,
        evaluator: &ClusterEvaluator,
        from: Endpoint,
        to: Endpoint,
        protocol: u8,
        port: u16,
        family: Option<IpFamily>,
    ) -> Result<FlowOutcome, FlowError> {
        let table = evaluator.flow(from, to, protocol, port, family);
        let direct = direct::flow(&self.cluster, from, to, protocol, port, family);
        let table = table.map(|t| self.table_outcome(t));
        let direct = direct.map(direct_outcome);
        assert_eq!(
            table, direct,
            "table evaluator (left) and direct evaluator (right) disagree on \
             {from:?} -> {to:?} proto {protocol} port {port}\ncompiled: {:#?}",
            self.compiled
        );
        table
    }

    /// The flow's verdict, both evaluators agreeing.
    pub fn verdict(&self, from: End, to: End, protocol: u8, port: u16) -> Verdict {
        self.outcome(from, to, protocol, port, None)
            .unwrap_or_else(|e| panic!("{from:?} -> {to:?}: {e}"))
            .verdict
    }

    pub fn allows(&self, from: End, to: End, protocol: u8, port: u16) -> bool {
        self.verdict(from, to, protocol, port) == Verdict::Allow
    }

    fn table_outcome(&self, decision: FlowDecision<crate::evaluate::Decision>) -> FlowOutcome {
        let end = |d: crate::evaluate::Decision| EndOutcome {
            verdict: d.verdict,
            rule: d.rule_ref.map(|r| self.compiled.rules[r as usize].clone()),
            reason: d.reason,
        };
        FlowOutcome {
            verdict: decision.verdict,
            egress: decision.egress.map(end),
            ingress: decision.ingress.map(end),
        }
    }
}

fn direct_outcome(decision: FlowDecision<direct::Decision>) -> FlowOutcome {
    let end = |d: direct::Decision| EndOutcome {
        verdict: d.verdict,
        rule: d.rule,
        reason: d.reason,
    };
    FlowOutcome {
        verdict: decision.verdict,
        egress: decision.egress.map(end),
        ingress: decision.ingress.map(end),
    }
}
