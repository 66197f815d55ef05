//! JSON schemas of the `spec` of palisade's own kinds, derived from the wire types the
//! parser reads them with (feature `schema`). They carry the admission rules of
//! [`admission`](super::admission); `palisade-crds` turns them into the structural
//! schemas of the CustomResourceDefinitions.
//!
//! The schemas are JSON Schema as `schemars` writes it: optional fields may allow
//! `null` (Kubernetes prunes `null`s of fields that are not nullable, which the
//! parser reads as absent too), and unknown fields are refused (`additionalProperties:
//! false`; Kubernetes prunes them, and refuses them under strict field validation).

use schemars::Schema;
use schemars::generate::SchemaSettings;

/// The schema of a `palisade.dev/v1alpha1` TrustBoundary's `spec`, every subschema
/// inlined.
pub fn trust_boundary_spec() -> Schema {
    settings()
        .into_generator()
        .into_root_schema_for::<super::trust_boundary::Spec>()
}

/// The schema of a `palisade.dev/v1alpha1` EgressPolicy's `spec`, every subschema
/// inlined.
pub fn egress_policy_spec() -> Schema {
    settings()
        .into_generator()
        .into_root_schema_for::<super::egress_policy::Spec>()
}

/// JSON Schema 2020-12 for what the parser accepts, without `$ref`s.
fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12().for_deserialize().with(|s| {
        s.inline_subschemas = true;
        s.meta_schema = None;
    })
}
