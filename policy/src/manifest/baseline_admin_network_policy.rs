//! `policy.networking.k8s.io/v1alpha1` BaselineAdminNetworkPolicy (network-policy-api
//! v0.1.7): wire type, validation as the CRD schema does it, and conversion to the
//! baseline-tier [`ClusterPolicy`]. There is one per cluster, named `default`; its
//! rules Allow or Deny (no Pass: nothing follows the baseline). Unknown fields anywhere
//! in the object are errors; `status` is ignored.

use super::Object;
use super::cluster_policy::{
    self, EgressRuleWire, IngressRuleWire, SubjectAndRulesWire, SubjectWire,
};
use super::error::{FieldError, FieldPath, Problems};
use super::metadata::ObjectMeta;
use super::wire::{SpecDocument, deserialize_at, nullable};
use crate::model::{ClusterPolicyKind, RuleAction};
use serde::Deserialize;
use serde_norway::Value;

/// The only name a BaselineAdminNetworkPolicy may have.
pub(crate) const SINGLETON_NAME: &str = "default";

/// The actions a BaselineAdminNetworkPolicy rule may take.
const ACTIONS: [RuleAction; 2] = [RuleAction::Allow, RuleAction::Deny];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    subject: Option<SubjectWire>,
    #[serde(default, deserialize_with = "nullable")]
    ingress: Vec<IngressRuleWire>,
    #[serde(default, deserialize_with = "nullable")]
    egress: Vec<EgressRuleWire>,
}

pub(crate) fn baseline_admin_network_policy(
    document: &Value,
    at: &FieldPath,
    meta: ObjectMeta,
) -> Result<Object, Vec<FieldError>> {
    let wire: SpecDocument<Spec> = deserialize_at(document, at).map_err(|e| vec![e])?;
    let mut problems = Problems::new();
    if meta.name != SINGLETON_NAME {
        problems.add(
            &at.field("metadata").field("name"),
            format!(
                "must be {SINGLETON_NAME:?}: a cluster has one BaselineAdminNetworkPolicy, \
                 named {SINGLETON_NAME:?}"
            ),
        );
    }
    let spec_at = at.field("spec");
    let Some(spec) = wire.spec else {
        problems.add(&spec_at, "required field is missing");
        return Err(problems.into_errors());
    };
    let subject_and_rules = SubjectAndRulesWire {
        subject: spec.subject,
        ingress: spec.ingress,
        egress: spec.egress,
    };
    let policy = cluster_policy::cluster_policy(
        ClusterPolicyKind::BaselineAdminNetworkPolicy,
        meta.name,
        0,
        subject_and_rules,
        &ACTIONS,
        &spec_at,
        &mut problems,
    );
    problems.finish(Object::ClusterPolicy(policy))
}

#[cfg(test)]
mod tests {
    use crate::manifest::{Object, parse_documents};
    use crate::model::{ClusterPolicyKind, RuleAction, Tier};

    fn banp(name: &str, spec: &str) -> String {
        format!(
            "apiVersion: policy.networking.k8s.io/v1alpha1\n\
             kind: BaselineAdminNetworkPolicy\nmetadata: {{name: {name}}}\n{spec}"
        )
    }

    const SPEC: &str = "spec:\n  subject: {namespaces: {}}\n  ingress:\n  \
                        - {action: Deny, from: [{namespaces: {}}]}\n  egress:\n  \
                        - {action: Allow, to: [{networks: ['0.0.0.0/0']}]}";

    fn errors(yaml: &str) -> Vec<String> {
        parse_documents("banp.yaml", yaml)
            .expect_err("invalid")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_default_singleton_is_the_baseline_tier() {
        let objects = parse_documents("banp.yaml", &banp("default", SPEC)).unwrap();
        let [Object::ClusterPolicy(policy)] = &objects[..] else {
            panic!("{objects:?}")
        };
        assert_eq!(policy.kind, ClusterPolicyKind::BaselineAdminNetworkPolicy);
        assert_eq!((policy.tier, policy.priority), (Tier::Baseline, 0));
        assert_eq!(policy.ingress[0].action, RuleAction::Deny);
        assert_eq!(policy.egress[0].action, RuleAction::Allow);
    }

    #[test]
    fn other_names_are_refused() {
        assert_eq!(
            errors(&banp("strict", SPEC)),
            [
                "banp.yaml: document 1 (BaselineAdminNetworkPolicy strict): metadata.name: must \
                 be \"default\": a cluster has one BaselineAdminNetworkPolicy, named \"default\""
            ]
        );
    }

    #[test]
    fn pass_and_priority_are_admin_only() {
        let pass = SPEC.replace("action: Deny", "action: Pass");
        assert_eq!(
            errors(&banp("default", &pass)),
            [
                "banp.yaml: document 1 (BaselineAdminNetworkPolicy default): \
                 spec.ingress[0].action: unsupported action \"Pass\": must be \"Allow\" or \"Deny\""
            ]
        );
        let priority = SPEC.replace("spec:\n", "spec:\n  priority: 1\n");
        let texts = errors(&banp("default", &priority));
        assert!(
            texts.len() == 1 && texts[0].contains("spec.priority: unknown field"),
            "{texts:?}"
        );
    }

    #[test]
    fn spec_is_required() {
        assert_eq!(
            errors(&banp("default", "")),
            [
                "banp.yaml: document 1 (BaselineAdminNetworkPolicy default): spec: required field \
              is missing"
            ]
        );
    }
}
