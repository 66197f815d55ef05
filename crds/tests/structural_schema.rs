//! The generated CRDs keep the rules of Kubernetes structural schemas and give every
//! CEL rule a cost bound; the conversion from JSON Schema and the checker do what they
//! say on small schemas.

use palisade_crds::definitions::definitions;
use palisade_crds::structural::{structural, violations};
use serde_json::{Value, json};

fn crds() -> Vec<Value> {
    definitions().into_iter().map(|d| d.crd).collect()
}

fn root_schema(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
}

#[test]
fn generated_schemas_are_structural_and_cost_bounded() {
    for crd in crds() {
        let name = crd["metadata"]["name"].as_str().unwrap().to_string();
        assert_eq!(
            violations(root_schema(&crd)),
            Vec::<String>::new(),
            "{name}"
        );
        let text = serde_json::to_string(&crd).unwrap();
        for forbidden in [
            "$ref",
            "$defs",
            "anyOf",
            "oneOf",
            "allOf",
            "nullable",
            "\"default\"",
            "\"null\"",
            "x-kubernetes-preserve-unknown-fields",
            "\"additionalProperties\":false",
        ] {
            assert!(!text.contains(forbidden), "{name} contains {forbidden}");
        }
    }
}

#[test]
fn crds_declare_names_scope_status_and_columns() {
    let crds = crds();
    let [trust_boundaries, egress_policies] = &crds[..] else {
        panic!("two CRDs")
    };
    for (crd, kind, scope, short) in [
        (trust_boundaries, "TrustBoundary", "Cluster", "tb"),
        (egress_policies, "EgressPolicy", "Namespaced", "egp"),
    ] {
        let spec = &crd["spec"];
        assert_eq!(spec["group"], "palisade.dev");
        assert_eq!(spec["names"]["kind"], kind);
        assert_eq!(spec["names"]["shortNames"], json!([short]));
        assert_eq!(spec["names"]["categories"], json!(["palisade"]));
        assert_eq!(spec["scope"], scope);
        let version = &spec["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert_eq!(version["subresources"], json!({"status": {}}));
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(
            columns.ends_with(&["Accepted", "Programmed", "Nodes", "Age"]),
            "{columns:?}"
        );
        let schema = root_schema(crd);
        assert_eq!(schema["required"], json!(["spec"]));
        let conditions = &schema["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(
            conditions["items"]["required"],
            json!(["type", "status", "lastTransitionTime", "reason", "message"])
        );
    }
    let tb = &root_schema(trust_boundaries)["properties"]["spec"];
    assert_eq!(tb["required"], json!(["namespaceSelector"]));
    let services = &tb["properties"]["sharedServices"];
    assert_eq!(services["x-kubernetes-list-map-keys"], json!(["name"]));
    assert_eq!(
        services["items"]["required"],
        json!(["name", "namespaceSelector"])
    );
    let ep = &root_schema(egress_policies)["properties"]["spec"];
    assert_eq!(ep["required"], json!(["podSelector"]));
    assert_eq!(
        ep["properties"]["egress"]["items"]["required"],
        json!(["to"])
    );
}

#[test]
fn conversion_drops_null_defaults_and_closed_objects() {
    let converted = structural(
        &json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Spec",
            "description": "internal",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "name": {"type": ["string", "null"], "maxLength": 3},
                "mode": {"type": ["string", "null"], "enum": ["A", "B", null]},
                "labels": {"type": "object", "default": {}, "additionalProperties": {"type": "string"}},
                "inner": {"anyOf": [{"type": "object", "properties": {"x": {"const": 1}}}, {"type": "null"}]},
            },
        }),
        false,
    );
    assert_eq!(
        converted,
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 3},
                "mode": {"type": "string", "enum": ["A", "B"]},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "inner": {"type": "object", "properties": {"x": {"enum": [1]}}},
            },
        })
    );
}

#[test]
fn the_checker_finds_what_breaks_the_rules() {
    let rule = json!([{"rule": "self.size() > 0", "message": "m"}]);
    for (schema, problem) in [
        (
            json!({"properties": {}}),
            "<root>: every node needs a single type",
        ),
        (
            json!({"type": "object", "properties": {"a": {"$ref": "#/x", "type": "string"}}}),
            ".a: keyword \"$ref\" is not allowed here",
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": ["string", "null"]}}}),
            ".a: every node needs a single type",
        ),
        (
            json!({"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}),
            "<root>: properties and additionalProperties exclude each other",
        ),
        (json!({"type": "array"}), "<root>: an array needs items"),
        (
            json!({"type": "object", "required": ["b"], "properties": {"a": {"type": "string"}}}),
            "<root>: required property \"b\" is not declared",
        ),
        (
            json!({"type": "array", "items": {"type": "string", "maxLength": 5, "x-kubernetes-validations": rule}}),
            "[*]: has CEL rules inside <root>, which has no maxItems/maxProperties",
        ),
        (
            json!({"type": "string", "x-kubernetes-validations": rule}),
            "<root>: a string with CEL rules needs maxLength",
        ),
        (
            json!({"type": "object", "x-kubernetes-validations": rule, "properties": {"s": {"type": "string"}}}),
            "<root>.s: a string CEL rules read needs maxLength",
        ),
        (
            json!({"type": "array", "maxItems": 2, "x-kubernetes-list-type": "map",
                   "x-kubernetes-list-map-keys": ["name"],
                   "items": {"type": "object", "properties": {"name": {"type": "string"}}}}),
            "<root>: list map key \"name\" must be required",
        ),
    ] {
        let found = violations(&schema);
        assert!(
            found.iter().any(|p| p == problem),
            "{schema}: expected {problem:?}, got {found:?}"
        );
    }
}
