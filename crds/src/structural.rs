//! JSON Schema (as `schemars` writes it) -> a Kubernetes structural schema, and the
//! rules a structural schema must keep, checked.
//!
//! Kubernetes (apiextensions.k8s.io/v1) wants every node typed, no `$ref`, no
//! `anyOf`/`oneOf` around types, no `nullable` unless null is meant to be stored, no
//! `additionalProperties: false` (unknown fields are pruned, or refused under strict
//! field validation) and no defaults we did not mean. The conversion drops `null` from
//! optional fields (the API server prunes nulls of non-nullable fields, and the parser
//! reads them as absent), drops schemars' defaults (Kubernetes would write them into
//! stored objects) and keeps everything else.

use serde_json::{Map, Value};

/// Keywords a node of a structural schema may carry here (a subset of what Kubernetes
/// allows: what palisade's schemas use).
const KEYWORDS: &[&str] = &[
    "type",
    "format",
    "description",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "maxProperties",
];

const TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean"];

/// Converts a JSON schema to a structural one; `descriptions: false` also drops the
/// descriptions (doc comments of internal wire types are not user documentation).
pub fn structural(schema: &Value, descriptions: bool) -> Value {
    let Value::Object(node) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    // `anyOf: [X, {type: null}]` (an optional field of a non-primitive type): X.
    if let Some(Value::Array(branches)) = node.get("anyOf") {
        let non_null: Vec<&Value> = branches.iter().filter(|b| !is_null_type(b)).collect();
        if let [only] = non_null[..]
            && let Value::Object(branch) = structural(only, descriptions)
        {
            out.extend(branch);
        }
    }
    for (key, value) in node {
        let converted = match key.as_str() {
            "anyOf" | "$schema" | "title" | "default" | "examples" => continue,
            "description" if !descriptions => continue,
            "additionalProperties" if value.is_boolean() => continue,
            "type" => without_null_type(value),
            "enum" => Value::Array(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|v| !v.is_null())
                    .cloned()
                    .collect(),
            ),
            "const" => {
                out.insert("enum".into(), Value::Array(vec![value.clone()]));
                continue;
            }
            "properties" => Value::Object(
                value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, property)| (name.clone(), structural(property, descriptions)))
                    .collect(),
            ),
            "items" | "additionalProperties" => structural(value, descriptions),
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    Value::Object(out)
}

fn is_null_type(schema: &Value) -> bool {
    schema.get("type") == Some(&Value::String("null".into()))
}

fn without_null_type(written: &Value) -> Value {
    match written {
        Value::Array(types) => {
            let types: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
            match &types[..] {
                [only] => only.clone(),
                _ => Value::Array(types),
            }
        }
        other => other.clone(),
    }
}

/// Everything in `schema` that breaks the rules of a structural schema, or leaves a CEL
/// rule without a cost bound, as `path: problem` lines (empty: none).
pub fn violations(schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    check(schema, "", &[], &mut problems);
    problems
}

/// A list or map around a node, and whether its size is bounded.
#[derive(Clone)]
struct Enclosing {
    path: String,
    bounded: bool,
}

fn check(schema: &Value, path: &str, enclosing: &[Enclosing], problems: &mut Vec<String>) {
    let at = if path.is_empty() { "<root>" } else { path };
    let Value::Object(node) = schema else {
        problems.push(format!("{at}: a schema must be an object"));
        return;
    };
    for key in node.keys() {
        if !KEYWORDS.contains(&key.as_str()) && !key.starts_with("x-kubernetes-") {
            problems.push(format!("{at}: keyword {key:?} is not allowed here"));
        }
    }
    let Some(kind) = node.get("type").and_then(Value::as_str) else {
        problems.push(format!("{at}: every node needs a single type"));
        return;
    };
    if !TYPES.contains(&kind) {
        problems.push(format!("{at}: unknown type {kind:?}"));
    }
    if node.contains_key("properties") && node.contains_key("additionalProperties") {
        problems.push(format!(
            "{at}: properties and additionalProperties exclude each other"
        ));
    }
    if let Some(required) = node.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if node.get("properties").and_then(|p| p.get(name)).is_none() {
                problems.push(format!("{at}: required property {name:?} is not declared"));
            }
        }
    }
    if node.contains_key("x-kubernetes-validations") {
        check_cost_bounds(node, at, enclosing, problems);
    }
    if node.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
        let required = node
            .get("items")
            .and_then(|items| items.get("required"))
            .and_then(Value::as_array);
        for key in node
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !required.is_some_and(|r| r.contains(key)) {
                problems.push(format!("{at}: list map key {key} must be required"));
            }
        }
    }
    match kind {
        "object" => {
            for (name, property) in node
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                check(property, &format!("{path}.{name}"), enclosing, problems);
            }
            if let Some(values) = node.get("additionalProperties") {
                let enclosing = inside(enclosing, at, node.contains_key("maxProperties"));
                check(values, &format!("{path}.*"), &enclosing, problems);
            }
        }
        "array" => match node.get("items") {
            None => problems.push(format!("{at}: an array needs items")),
            Some(items) => {
                let enclosing = inside(enclosing, at, node.contains_key("maxItems"));
                check(items, &format!("{path}[*]"), &enclosing, problems);
            }
        },
        _ => {}
    }
}

/// A node with CEL rules: every list or map around it is bounded (Kubernetes multiplies
/// a rule's cost by how often it can run), and the strings and lists it reads are
/// bounded (their size is in the rule's cost).
fn check_cost_bounds(
    node: &Map<String, Value>,
    at: &str,
    enclosing: &[Enclosing],
    problems: &mut Vec<String>,
) {
    for outer in enclosing.iter().filter(|e| !e.bounded) {
        problems.push(format!(
            "{at}: has CEL rules inside {}, which has no maxItems/maxProperties",
            outer.path
        ));
    }
    let unbounded_string = |schema: &Value| {
        schema.get("type").and_then(Value::as_str) == Some("string")
            && !schema
                .as_object()
                .is_some_and(|s| s.contains_key("maxLength"))
    };
    if unbounded_string(&Value::Object(node.clone())) {
        problems.push(format!("{at}: a string with CEL rules needs maxLength"));
    }
    for (name, property) in node
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if unbounded_string(property) {
            problems.push(format!(
                "{at}.{name}: a string CEL rules read needs maxLength"
            ));
        }
        if property.get("type").and_then(Value::as_str) == Some("array") {
            if property.get("maxItems").is_none() {
                problems.push(format!("{at}.{name}: a list CEL rules read needs maxItems"));
            }
            if property.get("items").is_some_and(unbounded_string) {
                problems.push(format!(
                    "{at}.{name}[*]: a string CEL rules read needs maxLength"
                ));
            }
        }
    }
}

/// `enclosing` and one more list or map around the nodes below it.
fn inside(enclosing: &[Enclosing], path: &str, bounded: bool) -> Vec<Enclosing> {
    let mut all = enclosing.to_vec();
    all.push(Enclosing {
        path: path.to_string(),
        bounded,
    });
    all
}
