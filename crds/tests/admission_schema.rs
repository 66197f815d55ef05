//! The generated OpenAPI schemas, as a JSON Schema validator reads them (with unknown
//! fields refused, as `kubectl`'s strict field validation does), admit every
//! TrustBoundary and EgressPolicy of the repository's examples and docs, and their CEL
//! rules hold on every one of them.

mod support;

use serde_json::{Value, json};
use support::kube_cel;

/// The structural schema of `kind` as a draft 2020-12 JSON Schema: unknown fields are
/// errors (Kubernetes prunes them, or refuses them under strict field validation).
fn strict(schema: &Value) -> Value {
    match schema {
        Value::Object(node) => {
            let mut out: serde_json::Map<String, Value> = node
                .iter()
                .map(|(k, v)| match k.as_str() {
                    "properties" => (
                        k.clone(),
                        Value::Object(
                            v.as_object()
                                .unwrap()
                                .iter()
                                .map(|(name, p)| (name.clone(), strict(p)))
                                .collect(),
                        ),
                    ),
                    "items" | "additionalProperties" => (k.clone(), strict(v)),
                    _ => (k.clone(), v.clone()),
                })
                .collect();
            if node.contains_key("properties") {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Schema errors and CEL violations of `object` (a TrustBoundary or EgressPolicy).
fn problems(object: &Value) -> Vec<String> {
    let kind = object["kind"].as_str().unwrap();
    let schema = support::object_schema(kind);
    let object = support::without_nulls(object);
    let validator = jsonschema::draft202012::new(&strict(&schema)).expect("a valid JSON Schema");
    let mut found: Vec<String> = validator
        .iter_errors(&object)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    found.extend(
        kube_cel::validate(&schema, &object)
            .into_iter()
            .map(|v| format!("{}: {}", v.path, v.message)),
    );
    found
}

#[test]
fn every_example_and_doc_object_is_admitted() {
    let examples = support::examples();
    let count = |kind: &str| examples.iter().filter(|e| e.kind == kind).count();
    println!(
        "{} TrustBoundary and {} EgressPolicy documents",
        count("TrustBoundary"),
        count("EgressPolicy")
    );
    assert!(count("TrustBoundary") >= 3 && count("EgressPolicy") >= 5);
    let failures: Vec<String> = examples
        .iter()
        .flat_map(|example| {
            problems(&example.object)
                .into_iter()
                .map(move |p| format!("{}: {p}", example.origin))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn egress_policy(spec: Value) -> Value {
    json!({
        "apiVersion": "palisade.dev/v1alpha1",
        "kind": "EgressPolicy",
        "metadata": {"name": "p", "namespace": "team-a"},
        "spec": spec,
    })
}

#[test]
fn the_schema_refuses_what_the_parser_refuses_by_shape() {
    for (spec, why) in [
        (json!({}), "podSelector"),
        (json!({"podSelector": {}, "colour": "blue"}), "colour"),
        (
            json!({"podSelector": {}, "enforcement": "DryRun"}),
            "DryRun",
        ),
        (
            json!({"podSelector": {}, "egress": [{"to": [{"fqdn": "a.b"}], "ports": [{"port": 0}]}]}),
            "minimum",
        ),
        (
            json!({"podSelector": {}, "egress": [{"to": [{"fqdn": "a.b"}], "ports": [{"protocol": "tcp"}]}]}),
            "tcp",
        ),
        (json!({"podSelector": {}, "egress": [{"to": []}]}), "to"),
        (json!({"podSelector": {}, "egress": [{"ports": []}]}), "to"),
        (
            json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "in"}]}}),
            "in",
        ),
        (
            json!({"podSelector": {"matchLabels": {"app": "bad value"}}}),
            "bad value",
        ),
    ] {
        let found = problems(&egress_policy(spec.clone()));
        assert!(
            found.iter().any(|p| p.contains(why)),
            "{spec}: expected a problem about {why:?}, got {found:?}"
        );
    }
    assert!(problems(&egress_policy(json!({"podSelector": {}}))).is_empty());
}
