//! EgressPolicies, read straight from the objects: which are a pod's effective
//! allowlist (the enforcing ones that select it, else the audit ones), whether one of
//! their rules allows a flow (some destination and some port match; DNS names match no
//! address), and how the allowlist narrows what the later tiers decided.

use super::peer::PeerKind;
use super::{Decision, FlowAtEnd};
use crate::compile::tables::{RuleInfo, Verdict};
use crate::model::{Cluster, EgressPeer, EgressPolicy, EgressRule, Enforcement, Pod};

/// The effective EgressPolicies of the pod `pod` of `namespace`, by name.
pub(super) fn effective<'a>(
    cluster: &'a Cluster,
    namespace: &str,
    pod: &Pod,
) -> Vec<&'a EgressPolicy> {
    let selecting = |enforcement: Enforcement| -> Vec<&'a EgressPolicy> {
        cluster
            .egress_policies
            .values()
            .filter(|p| {
                p.namespace == namespace
                    && p.enforcement == enforcement
                    && p.pod_selector.matches(&pod.labels)
            })
            .collect()
    };
    let enforcing = selecting(Enforcement::Enforce);
    if enforcing.is_empty() {
        selecting(Enforcement::Audit)
    } else {
        enforcing
    }
}

impl FlowAtEnd<'_> {
    /// `later` (what the tiers after the allowlist decided) narrowed by the allowlist of
    /// `policies` (not empty).
    pub(super) fn narrowed(&self, policies: &[&EgressPolicy], later: Decision) -> Decision {
        let allowing = policies.iter().find_map(|policy| {
            let index = policy
                .egress
                .iter()
                .position(|rule| self.egress_rule_allows(policy, rule))?;
            Some(RuleInfo::egress_policy(policy, index))
        });
        if let Some(rule) = allowing {
            return match later.verdict {
                Verdict::Allow => Decision::by_rule(Verdict::Allow, rule),
                _ => later,
            };
        }
        let first = policies[0];
        let verdict = match first.enforcement {
            Enforcement::Enforce => Verdict::Deny,
            Enforcement::Audit => Verdict::AuditDeny,
        };
        if later.verdict == Verdict::Deny && verdict != Verdict::Deny {
            return later;
        }
        Decision::by_rule(verdict, RuleInfo::egress_policy_implicit_deny(first))
    }

    fn egress_rule_allows(&self, policy: &EgressPolicy, rule: &EgressRule) -> bool {
        let port_matches = rule.ports.is_empty()
            || rule
                .ports
                .iter()
                .any(|ports| ports.contains(self.protocol, self.dport));
        port_matches
            && rule
                .to
                .iter()
                .any(|to| self.egress_peer_matches(policy, to))
    }

    fn egress_peer_matches(&self, policy: &EgressPolicy, to: &EgressPeer) -> bool {
        match (to, &self.peer) {
            (
                EgressPeer::Pods {
                    namespace_selector,
                    pod_selector,
                },
                PeerKind::Pod(pod_ref, pod, _),
            ) => {
                let namespace_matches = match namespace_selector {
                    None => pod_ref.namespace == policy.namespace,
                    Some(selector) => {
                        selector.matches(&self.cluster.namespace_labels(&pod_ref.namespace))
                    }
                };
                namespace_matches
                    && pod_selector
                        .as_ref()
                        .is_none_or(|selector| selector.matches(&pod.labels))
            }
            (EgressPeer::Cidr { cidr, except }, _) => self.peer.in_cidr(*cidr, except),
            (EgressPeer::Pods { .. } | EgressPeer::Fqdn(_), _) => false,
        }
    }
}
