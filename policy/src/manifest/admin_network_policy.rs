//! `policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy (network-policy-api v0.1.7):
//! wire type, validation as the CRD schema does it, and conversion to an admin-tier
//! [`ClusterPolicy`]. Unknown fields anywhere in the object are errors; `status` is
//! ignored.

use super::Object;
use super::cluster_policy::{
    self, EgressRuleWire, IngressRuleWire, SubjectAndRulesWire, SubjectWire,
};
use super::error::{FieldError, FieldPath, Problems};
use super::metadata::ObjectMeta;
use super::wire::{nullable, required_spec};
use crate::model::{ClusterPolicyKind, RuleAction};
use serde::Deserialize;
use serde_norway::Value;

/// `spec.priority` range; lower numbers are evaluated first. TrustBoundary's
/// `spec.priority` has the same range.
const MAX_PRIORITY: i64 = 1000;

/// The actions an AdminNetworkPolicy rule may take.
const ACTIONS: [RuleAction; 3] = [RuleAction::Allow, RuleAction::Deny, RuleAction::Pass];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    priority: Option<i64>,
    subject: Option<SubjectWire>,
    #[serde(default, deserialize_with = "nullable")]
    ingress: Vec<IngressRuleWire>,
    #[serde(default, deserialize_with = "nullable")]
    egress: Vec<EgressRuleWire>,
}

pub(crate) fn admin_network_policy(
    document: &Value,
    at: &FieldPath,
    meta: ObjectMeta,
) -> Result<Object, Vec<FieldError>> {
    let spec: Spec = required_spec(document, at)?;
    let spec_at = at.field("spec");
    let mut problems = Problems::new();
    let priority = priority(spec.priority, &spec_at.field("priority"), &mut problems);
    let subject_and_rules = SubjectAndRulesWire {
        subject: spec.subject,
        ingress: spec.ingress,
        egress: spec.egress,
    };
    let policy = cluster_policy::cluster_policy(
        ClusterPolicyKind::AdminNetworkPolicy,
        meta.name,
        priority,
        subject_and_rules,
        &ACTIONS,
        &spec_at,
        &mut problems,
    );
    problems.finish(Object::ClusterPolicy(policy))
}

/// `spec.priority`: required, 0..=1000.
fn priority(written: Option<i64>, at: &FieldPath, problems: &mut Problems) -> u32 {
    let checked = match written {
        None => Err("required field is missing".to_string()),
        Some(priority) => priority_in_range(priority),
    };
    problems.check(at, checked).unwrap_or_default()
}

/// A written `spec.priority` checked against 0..=[`MAX_PRIORITY`], the range
/// AdminNetworkPolicy and TrustBoundary share.
pub(crate) fn priority_in_range(priority: i64) -> Result<u32, String> {
    u32::try_from(priority)
        .ok()
        .filter(|p| i64::from(*p) <= MAX_PRIORITY)
        .ok_or_else(|| format!("invalid priority {priority}: must be between 0 and {MAX_PRIORITY}"))
}

#[cfg(test)]
mod tests {
    use crate::manifest::{Object, test_support};
    use crate::model::{
        Cidr, ClusterPeer, ClusterPolicy, ClusterPolicyKind, ClusterPort, Protocol, RuleAction,
        Subject, Tier,
    };

    const HEADER: &str = "apiVersion: policy.networking.k8s.io/v1alpha1\n\
                          kind: AdminNetworkPolicy\nmetadata: {name: cluster-control}\n";

    fn parse(body: &str) -> ClusterPolicy {
        match test_support::parse_one("anp.yaml", &format!("{HEADER}{body}")) {
            Object::ClusterPolicy(policy) => policy,
            other => panic!("not a cluster policy: {other:?}"),
        }
    }

    /// Asserts `body` fails with exactly one error, at `field`, whose message starts
    /// with `message`.
    fn assert_error(body: &str, field: &str, message: &str) {
        test_support::assert_errors(
            "anp.yaml",
            &format!("{HEADER}{body}"),
            "AdminNetworkPolicy cluster-control",
            &[(field, message)],
        );
    }

    /// A spec with priority 10, subject every namespace, and `rules` as its egress.
    fn egress(rules: &str) -> String {
        format!("spec: {{priority: 10, subject: {{namespaces: {{}}}}, egress: [{rules}]}}")
    }

    const SLYTHERIN: &str = "{namespaces: {matchLabels: {house: slytherin}}}";

    #[test]
    fn converts_a_full_policy() {
        let policy = parse(
            "spec:
  priority: 3
  subject:
    pods:
      namespaceSelector: {matchLabels: {house: gryffindor}}
      podSelector: {matchExpressions: [{key: app, operator: Exists}]}
  ingress:
  - name: allow-ravenclaw
    action: Allow
    from:
    - namespaces: {matchLabels: {house: ravenclaw}}
    - pods:
        namespaceSelector: {}
        podSelector: {matchLabels: {app: owl}}
  egress:
  - name: pass-nodes
    action: Pass
    to: [{nodes: {matchLabels: {kubernetes.io/os: linux}}}]
    ports:
    - portNumber: {port: 36363}
    - portRange: {protocol: UDP, start: 1000, end: 2000}
    - namedPort: dns
  - action: Deny
    to: [{networks: [10.0.1.1/24, '::/0']}]
status: {conditions: []}
",
        );
        assert_eq!(policy.kind, ClusterPolicyKind::AdminNetworkPolicy);
        assert_eq!((policy.tier, policy.priority), (Tier::Admin, 3));
        assert_eq!(policy.name, "cluster-control");
        assert!(matches!(
            &policy.subject,
            Subject::Pods { namespace_selector, pod_selector }
                if namespace_selector.match_labels.len() == 1
                    && pod_selector.match_expressions.len() == 1
        ));
        let allow = &policy.ingress[0];
        assert_eq!(
            (allow.name.as_str(), allow.action),
            ("allow-ravenclaw", RuleAction::Allow)
        );
        assert!(matches!(&allow.peers[0], ClusterPeer::Namespaces(s) if s.match_labels.len() == 1));
        assert!(matches!(
            &allow.peers[1],
            ClusterPeer::Pods { namespace_selector, .. } if namespace_selector.is_empty()
        ));
        assert!(allow.ports.is_empty());
        let pass = &policy.egress[0];
        assert_eq!(pass.action, RuleAction::Pass);
        assert!(matches!(&pass.peers[0], ClusterPeer::Nodes(s) if s.match_labels.len() == 1));
        assert_eq!(
            pass.ports,
            [
                ClusterPort::Number {
                    protocol: Protocol::Tcp,
                    port: 36363
                },
                ClusterPort::Range {
                    protocol: Protocol::Udp,
                    first: 1000,
                    last: 2000
                },
                ClusterPort::Named("dns".into()),
            ]
        );
        let deny = &policy.egress[1];
        assert_eq!((deny.name.as_str(), deny.action), ("", RuleAction::Deny));
        let cidr = |s: &str| Cidr(s.parse().unwrap());
        assert_eq!(
            deny.peers,
            [ClusterPeer::Networks(vec![
                cidr("10.0.1.1/24"),
                cidr("::/0")
            ])]
        );
    }

    #[test]
    fn priority_is_required_and_bounded() {
        let spec = |priority: &str| format!("spec: {{{priority}subject: {{namespaces: {{}}}}}}");
        assert_error(&spec(""), "spec.priority", "required field is missing");
        assert_error(
            &spec("priority: 1001, "),
            "spec.priority",
            "invalid priority 1001: must be between 0 and 1000",
        );
        assert_error(
            &spec("priority: -1, "),
            "spec.priority",
            "invalid priority -1",
        );
        assert_eq!(parse(&spec("priority: 1000, ")).priority, 1000);
        assert_eq!(parse(&spec("priority: 0, ")).priority, 0);
    }

    #[test]
    fn subject_is_exactly_one_of_namespaces_or_pods() {
        assert_error(
            "spec: {priority: 1}",
            "spec.subject",
            "required field is missing",
        );
        assert_error(
            "spec: {priority: 1, subject: {}}",
            "spec.subject",
            "must specify exactly one of namespaces or pods",
        );
        assert_error(
            "spec: {priority: 1, subject: {namespaces: {}, pods: {namespaceSelector: {}, \
             podSelector: {}}}}",
            "spec.subject",
            "must specify exactly one of namespaces or pods",
        );
        assert_error(
            "spec: {priority: 1, subject: {pods: {podSelector: {}}}}",
            "spec.subject.pods.namespaceSelector",
            "required field is missing",
        );
    }

    #[test]
    fn actions_are_allow_deny_or_pass() {
        assert_error(
            &egress(&format!("{{action: Drop, to: [{SLYTHERIN}]}}")),
            "spec.egress[0].action",
            "unsupported action \"Drop\": must be \"Allow\" or \"Deny\" or \"Pass\"",
        );
        assert_error(
            &egress(&format!("{{to: [{SLYTHERIN}]}}")),
            "spec.egress[0].action",
            "required field is missing",
        );
        assert_eq!(
            parse(&egress(&format!("{{action: Pass, to: [{SLYTHERIN}]}}"))).egress[0].action,
            RuleAction::Pass
        );
    }

    #[test]
    fn peers_are_required_and_exactly_one_kind_each() {
        assert_error(
            &egress("{action: Deny}"),
            "spec.egress[0].to",
            "required field is missing",
        );
        assert_error(
            &egress("{action: Deny, to: []}"),
            "spec.egress[0].to",
            "must list at least one peer",
        );
        assert_error(
            &egress("{action: Deny, to: [{namespaces: {}, nodes: {}}]}"),
            "spec.egress[0].to[0]",
            "must specify exactly one of namespaces, pods, nodes or networks",
        );
        // Ingress peers are pods only.
        assert_error(
            "spec: {priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, \
             from: [{nodes: {}}]}]}",
            "spec.ingress[0].from[0].nodes",
            "unknown field",
        );
    }

    #[test]
    fn networks_are_cidrs_parsed_as_the_api_server_does() {
        assert_error(
            &egress("{action: Deny, to: [{networks: []}]}"),
            "spec.egress[0].to[0].networks",
            "must list at least one CIDR",
        );
        assert_error(
            &egress("{action: Deny, to: [{networks: [10.0.0.0/8, 10.0.0.0]}]}"),
            "spec.egress[0].to[0].networks[1]",
            "invalid CIDR \"10.0.0.0\"",
        );
        assert_error(
            &egress("{action: Deny, to: [{networks: [10.0.0.0/8, 10.0.0.0/8]}]}"),
            "spec.egress[0].to[0].networks[1]",
            "duplicate entry",
        );
        let many: Vec<String> = (0..26).map(|i| format!("10.0.{i}.0/24")).collect();
        assert_error(
            &egress(&format!(
                "{{action: Deny, to: [{{networks: [{}]}}]}}",
                many.join(", ")
            )),
            "spec.egress[0].to[0].networks",
            "may not list more than 25 CIDRs",
        );
    }

    #[test]
    fn ports_name_exactly_one_form() {
        let ports = |entry: &str| {
            egress(&format!(
                "{{action: Allow, to: [{SLYTHERIN}], ports: [{entry}]}}"
            ))
        };
        let at = "spec.egress[0].ports[0]";
        assert_error(
            &ports("{}"),
            at,
            "must specify exactly one of portNumber, namedPort or portRange",
        );
        assert_error(
            &ports("{namedPort: dns, portNumber: {port: 53}}"),
            at,
            "must specify exactly one of portNumber, namedPort or portRange",
        );
        assert_error(
            &ports("{portNumber: {protocol: ICMP, port: 1}}"),
            &format!("{at}.portNumber.protocol"),
            "unsupported protocol \"ICMP\"",
        );
        assert_error(
            &ports("{portNumber: {port: 0}}"),
            &format!("{at}.portNumber.port"),
            "invalid port 0",
        );
        assert_error(
            &ports("{portNumber: {}}"),
            &format!("{at}.portNumber.port"),
            "required field is missing",
        );
        assert_error(
            &ports("{portRange: {start: 2000, end: 1000}}"),
            &format!("{at}.portRange"),
            "start port 2000 must be less than end port 1000",
        );
        assert_error(
            &ports("{portRange: {start: 80, end: 80}}"),
            &format!("{at}.portRange"),
            "start port 80 must be less than end port 80",
        );
        assert_error(
            &ports("{portRange: {start: 80, end: 65536}}"),
            &format!("{at}.portRange.end"),
            "invalid port 65536",
        );
        assert_error(
            &ports("{portNumber: {port: 80, extra: 1}}"),
            &format!("{at}.portNumber.extra"),
            "unknown field",
        );
    }

    #[test]
    fn at_most_one_hundred_rules_per_direction() {
        let rule = format!("{{action: Deny, to: [{SLYTHERIN}]}}");
        let rules = vec![rule.as_str(); 101].join(", ");
        assert_error(
            &egress(&rules),
            "spec.egress",
            "may not have more than 100 rules (has 101)",
        );
        assert_eq!(
            parse(&egress(&vec![rule.as_str(); 100].join(", ")))
                .egress
                .len(),
            100
        );
    }

    #[test]
    fn unknown_fields_are_named_and_rule_names_bounded() {
        assert_error(
            "spec: {priority: 1, subject: {namespaces: {}}, tier: admin}",
            "spec.tier",
            "unknown field",
        );
        assert_error(
            &egress(&format!(
                "{{name: {}, action: Deny, to: [{SLYTHERIN}]}}",
                "r".repeat(101)
            )),
            "spec.egress[0].name",
            "may not be longer than 100 characters",
        );
        assert_error("metadata2: {}", "metadata2", "unknown field");
    }
}
