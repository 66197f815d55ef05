//! Label selectors (`matchLabels` + `matchExpressions`) as policy objects write them,
//! validated as `metav1.LabelSelector` is, and converted to the model.

use super::error::{FieldPath, Problems};
use super::names;
use super::wire::nullable;
use crate::model::{LabelSelector, SelectorOperator, SelectorRequirement};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LabelSelectorWire {
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "schema", schemars(with = "super::admission::MatchLabels"))]
    match_labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    match_expressions: Vec<RequirementWire>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RequirementWire {
    #[cfg_attr(feature = "schema", schemars(with = "super::admission::LabelKey"))]
    key: String,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "super::admission::SelectorOperatorName")
    )]
    operator: String,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Vec<super::admission::LabelValue>")
    )]
    values: Vec<String>,
}

/// Validates the selector found at `at` and converts it. Problems go to `problems`;
/// the returned selector is only meaningful if there were none.
pub(crate) fn convert(
    wire: LabelSelectorWire,
    at: &FieldPath,
    problems: &mut Problems,
) -> LabelSelector {
    let labels_at = at.field("matchLabels");
    for (key, value) in &wire.match_labels {
        let field = labels_at.field(key);
        if problems.check(&field, names::label_key(key)).is_some() {
            problems.check(&field, names::label_value(value));
        }
    }
    let expressions_at = at.field("matchExpressions");
    let match_expressions = wire
        .match_expressions
        .into_iter()
        .enumerate()
        .filter_map(|(i, requirement)| {
            convert_requirement(requirement, &expressions_at.index(i), problems)
        })
        .collect();
    LabelSelector {
        match_labels: wire.match_labels,
        match_expressions,
    }
}

/// The message for a missing `podSelector` on a namespaced policy (NetworkPolicy,
/// EgressPolicy), which says how to select every pod instead.
pub(crate) const MISSING_POD_SELECTOR: &str =
    "required field is missing (write podSelector: {} to select every pod in the namespace)";

/// A selector the API requires, found at `at`: converted with [`convert`] when written;
/// when absent (or `null`) the `missing` message is reported at `at` and the empty
/// selector returned, which is only a placeholder since there is now a problem.
pub(crate) fn required(
    wire: Option<LabelSelectorWire>,
    at: &FieldPath,
    missing: &str,
    problems: &mut Problems,
) -> LabelSelector {
    match wire {
        Some(wire) => convert(wire, at, problems),
        None => {
            problems.add(at, missing);
            LabelSelector::default()
        }
    }
}

/// One `matchExpressions` entry; `None` if its operator is not one Kubernetes knows.
fn convert_requirement(
    wire: RequirementWire,
    at: &FieldPath,
    problems: &mut Problems,
) -> Option<SelectorRequirement> {
    problems.check(&at.field("key"), names::label_key(&wire.key));
    let operator = problems.check(&at.field("operator"), operator(&wire.operator))?;
    let values_at = at.field("values");
    match operator {
        SelectorOperator::In | SelectorOperator::NotIn if wire.values.is_empty() => {
            let message = format!("must be non-empty when operator is {}", wire.operator);
            problems.add(&values_at, message);
        }
        SelectorOperator::Exists | SelectorOperator::DoesNotExist if !wire.values.is_empty() => {
            let message = format!("must be empty when operator is {}", wire.operator);
            problems.add(&values_at, message);
        }
        _ => {
            for (i, value) in wire.values.iter().enumerate() {
                problems.check(&values_at.index(i), names::label_value(value));
            }
        }
    }
    Some(SelectorRequirement {
        key: wire.key,
        operator,
        values: wire.values,
    })
}

fn operator(written: &str) -> Result<SelectorOperator, String> {
    match written {
        "In" => Ok(SelectorOperator::In),
        "NotIn" => Ok(SelectorOperator::NotIn),
        "Exists" => Ok(SelectorOperator::Exists),
        "DoesNotExist" => Ok(SelectorOperator::DoesNotExist),
        other => Err(format!(
            "unsupported operator {other:?}: must be In, NotIn, Exists or DoesNotExist"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::error::FieldError;
    use crate::manifest::wire::deserialize_at;
    use serde_norway::Value;

    fn read(yaml: &str) -> Result<LabelSelector, Vec<FieldError>> {
        let value: Value = serde_norway::from_str(yaml).unwrap();
        let at = FieldPath::root().field("spec").field("podSelector");
        let wire = deserialize_at(&value, &at).map_err(|e| vec![e])?;
        let mut problems = Problems::new();
        let selector = convert(wire, &at, &mut problems);
        problems.finish(selector)
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().filter_map(|e| e.field).collect()
    }

    #[test]
    fn converts_labels_and_expressions() {
        let selector = read(
            "matchLabels: {app: web}\nmatchExpressions:\n\
             - {key: tier, operator: In, values: [a, b]}\n\
             - {key: legacy, operator: DoesNotExist}",
        )
        .unwrap();
        assert_eq!(
            selector.match_labels.get("app").map(String::as_str),
            Some("web")
        );
        assert_eq!(
            selector.match_expressions,
            vec![
                SelectorRequirement {
                    key: "tier".into(),
                    operator: SelectorOperator::In,
                    values: vec!["a".into(), "b".into()],
                },
                SelectorRequirement {
                    key: "legacy".into(),
                    operator: SelectorOperator::DoesNotExist,
                    values: vec![],
                },
            ]
        );
        assert!(read("{}").unwrap().is_empty());
        assert!(
            read("{matchLabels: null, matchExpressions: null}")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn operators_and_values_are_checked() {
        let errors = read(
            "matchExpressions:\n\
             - {key: a, operator: In}\n\
             - {key: b, operator: Exists, values: [x]}\n\
             - {key: c, operator: in, values: [x]}\n\
             - {key: d, operator: NotIn, values: ['bad value']}",
        )
        .unwrap_err();
        assert_eq!(
            fields(errors),
            [
                "spec.podSelector.matchExpressions[0].values",
                "spec.podSelector.matchExpressions[1].values",
                "spec.podSelector.matchExpressions[2].operator",
                "spec.podSelector.matchExpressions[3].values[0]",
            ]
        );
    }

    #[test]
    fn label_keys_and_values_are_checked() {
        let errors = read("matchLabels: {'-bad': x, good: 'bad value'}").unwrap_err();
        assert_eq!(
            fields(errors),
            [
                "spec.podSelector.matchLabels.-bad",
                "spec.podSelector.matchLabels.good"
            ]
        );
        let errors = read("matchExpressions: [{key: 'a b', operator: Exists}]").unwrap_err();
        assert_eq!(fields(errors), ["spec.podSelector.matchExpressions[0].key"]);
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let err = read("matchExpressions: [{key: a}]").unwrap_err();
        assert_eq!(
            fields(err),
            ["spec.podSelector.matchExpressions[0].operator"]
        );
        let err = read("matchLabel: {a: b}").unwrap_err();
        assert_eq!(fields(err), ["spec.podSelector.matchLabel"]);
    }
}
