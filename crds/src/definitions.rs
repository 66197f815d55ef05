//! The two CustomResourceDefinitions, `palisade.dev/v1alpha1` TrustBoundary
//! (cluster-scoped) and EgressPolicy (namespaced), as JSON values: names, scope,
//! printer columns, status subresource, and the structural schema built from the
//! parser's wire types (spec) and [`PolicyStatus`] (status).

use crate::status::PolicyStatus;
use crate::structural::structural;
use palisade_policy::manifest::schema;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

pub const GROUP: &str = "palisade.dev";
pub const VERSION: &str = "v1alpha1";

/// One kind's CRD, with where it is written.
pub struct Definition {
    /// `charts/palisade/crds/<file_name>`.
    pub file_name: &'static str,
    /// The CustomResourceDefinition object.
    pub crd: Value,
}

/// Both CRDs, TrustBoundary first.
pub fn definitions() -> Vec<Definition> {
    vec![trust_boundaries(), egress_policies()]
}

fn trust_boundaries() -> Definition {
    let spec = structural(&schema::trust_boundary_spec().to_value(), false);
    Definition {
        file_name: "palisade.dev_trustboundaries.yaml",
        crd: crd(
            Names {
                kind: "TrustBoundary",
                plural: "trustboundaries",
                singular: "trustboundary",
                short_names: &["tb"],
            },
            "Cluster",
            "An administrator's isolation of namespaces, alone or grouped into zones by a \
             label: traffic may cross the boundary only to or from the shared services it \
             names, whatever namespaced policies say.",
            spec,
            json!({"name": "Priority", "type": "integer", "jsonPath": ".spec.priority"}),
        ),
    }
}

fn egress_policies() -> Definition {
    let spec = structural(&schema::egress_policy_spec().to_value(), false);
    Definition {
        file_name: "palisade.dev_egresspolicies.yaml",
        crd: crd(
            Names {
                kind: "EgressPolicy",
                plural: "egresspolicies",
                singular: "egresspolicy",
                short_names: &["egp"],
            },
            "Namespaced",
            "An egress allowlist for the pods it selects: they may connect only to these \
             destinations (pods, CIDRs, DNS names, on these ports) and use only these kinds \
             of sockets. It narrows what NetworkPolicies allow, never widens it.",
            spec,
            json!({"name": "Enforcement", "type": "string", "jsonPath": ".spec.enforcement"}),
        ),
    }
}

struct Names {
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
}

fn crd(names: Names, scope: &str, description: &str, spec: Value, spec_column: Value) -> Value {
    let condition_column = |name: &str| {
        json!({
            "name": name,
            "type": "string",
            "jsonPath": format!(".status.conditions[?(@.type==\"{name}\")].status"),
        })
    };
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{GROUP}", names.plural)},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": names.kind,
                "listKind": format!("{}List", names.kind),
                "plural": names.plural,
                "singular": names.singular,
                "shortNames": names.short_names,
                "categories": ["palisade"],
            },
            "scope": scope,
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    spec_column,
                    condition_column("Accepted"),
                    condition_column("Programmed"),
                    {
                        "name": "Nodes",
                        "type": "integer",
                        "description": "Nodes that applied the current generation",
                        "jsonPath": ".status.programmedNodes",
                    },
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": description,
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec,
                        "status": status(),
                    },
                }},
            }],
        },
    })
}

/// The schema of [`PolicyStatus`], descriptions kept (they are written for users).
fn status() -> Value {
    let schema = SchemaSettings::draft2020_12()
        .for_serialize()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator()
        .into_root_schema_for::<PolicyStatus>();
    structural(&schema.to_value(), true)
}
