//! `metadata` of any object. The fields palisade reads (name, namespace, labels,
//! annotations, uid) are type-checked and validated; every other metadata field
//! (resourceVersion, managedFields, ...) is accepted and ignored.

use super::error::{FieldError, FieldPath, Problems};
use super::names;
use super::wire::{deserialize_at, nullable};
use crate::model::Labels;
use serde::Deserialize;
use serde_norway::Value;
use std::collections::BTreeMap;

/// The namespace of a namespaced object that does not name one, as `kubectl` applies it
/// without `-n`.
pub(crate) const DEFAULT_NAMESPACE: &str = "default";

/// Whether objects of a kind live in a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    Namespaced,
    Cluster,
}

/// The syntax Kubernetes requires of a kind's object names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameSyntax {
    /// Namespaces.
    Dns1123Label,
    /// Services: a DNS-1123 label starting with a letter.
    Dns1035Label,
    /// Most other kinds.
    Dns1123Subdomain,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectMetaWire {
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    annotations: BTreeMap<String, String>,
    uid: Option<String>,
}

/// Validated `metadata`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ObjectMeta {
    pub name: String,
    /// `Some` (defaulted to [`DEFAULT_NAMESPACE`]) exactly for namespaced kinds.
    pub namespace: Option<String>,
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub uid: Option<String>,
}

impl ObjectMeta {
    /// Reads `metadata` of the object `document`, found at `at`.
    pub fn read(
        document: &Value,
        at: &FieldPath,
        scope: Scope,
        name_syntax: NameSyntax,
    ) -> Result<ObjectMeta, Vec<FieldError>> {
        let at = at.field("metadata");
        let wire: ObjectMetaWire = match document.get("metadata") {
            None | Some(Value::Null) => ObjectMetaWire::default(),
            Some(value) => deserialize_at(value, &at).map_err(|e| vec![e])?,
        };

        let mut problems = Problems::new();
        let name_at = at.field("name");
        let name = match wire.name.filter(|n| !n.is_empty()) {
            None => {
                problems.add(&name_at, "required field is missing");
                String::new()
            }
            Some(name) => {
                let syntax = match name_syntax {
                    NameSyntax::Dns1123Label => names::dns1123_label(&name),
                    NameSyntax::Dns1035Label => names::dns1035_label(&name),
                    NameSyntax::Dns1123Subdomain => names::dns1123_subdomain(&name),
                };
                problems.check(
                    &name_at,
                    syntax.map_err(|why| format!("invalid name: {why}")),
                );
                name
            }
        };
        let namespace = match scope {
            Scope::Cluster => None,
            Scope::Namespaced => {
                let namespace = wire
                    .namespace
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
                problems.check(
                    &at.field("namespace"),
                    names::dns1123_label(&namespace)
                        .map_err(|why| format!("invalid namespace: {why}")),
                );
                Some(namespace)
            }
        };
        let labels = read_labels(wire.labels, &at.field("labels"), &mut problems);
        problems.finish(ObjectMeta {
            name,
            namespace,
            labels,
            annotations: wire.annotations,
            uid: wire.uid.filter(|uid| !uid.is_empty()),
        })
    }
}

/// Checks every label key and value of a label map found at `at`.
pub(crate) fn read_labels(
    labels: BTreeMap<String, String>,
    at: &FieldPath,
    problems: &mut Problems,
) -> Labels {
    for (key, value) in &labels {
        let field = at.field(key);
        if problems.check(&field, names::label_key(key)).is_some() {
            problems.check(&field, names::label_value(value));
        }
    }
    Labels(labels)
}

/// A best-effort name for the object in `document`, for error messages, read before
/// (and whatever the outcome of) validation: `Pod x/web`, `Node n1`, or just the kind.
pub(crate) fn object_label(kind: &str, scope: Option<Scope>, document: &Value) -> String {
    let metadata = document.get("metadata");
    let text = |field: &str| {
        metadata
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let Some(name) = text("name") else {
        return kind.to_string();
    };
    let namespace = match scope {
        Some(Scope::Namespaced) => Some(text("namespace").unwrap_or(DEFAULT_NAMESPACE)),
        Some(Scope::Cluster) => None,
        None => text("namespace"),
    };
    match namespace {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str, scope: Scope) -> Result<ObjectMeta, Vec<FieldError>> {
        let document: Value = serde_norway::from_str(yaml).unwrap();
        ObjectMeta::read(
            &document,
            &FieldPath::root(),
            scope,
            NameSyntax::Dns1123Subdomain,
        )
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().filter_map(|e| e.field).collect()
    }

    #[test]
    fn reads_the_fields_palisade_uses_and_ignores_the_rest() {
        let meta = read(
            "metadata:\n  name: web\n  uid: u-1\n  resourceVersion: '5'\n  generation: 3\n  \
             creationTimestamp: null\n  managedFields: [{manager: kubectl}]\n  \
             labels: {app: web}\n  annotations: {note: hi}",
            Scope::Namespaced,
        )
        .unwrap();
        assert_eq!(meta.name, "web");
        assert_eq!(meta.namespace.as_deref(), Some(DEFAULT_NAMESPACE));
        assert_eq!(meta.uid.as_deref(), Some("u-1"));
        assert_eq!(meta.labels.get("app"), Some("web"));
        assert_eq!(meta.annotations.get("note").map(String::as_str), Some("hi"));
    }

    #[test]
    fn cluster_scoped_objects_have_no_namespace() {
        let meta = read("metadata: {name: n1, namespace: ignored}", Scope::Cluster).unwrap();
        assert_eq!(meta.namespace, None);
    }

    #[test]
    fn missing_name_is_an_error() {
        for yaml in [
            "kind: Pod",
            "metadata: {}",
            "metadata: {name: ''}",
            "metadata: null",
        ] {
            assert_eq!(
                fields(read(yaml, Scope::Namespaced).unwrap_err()),
                ["metadata.name"],
                "{yaml}"
            );
        }
    }

    #[test]
    fn invalid_names_labels_and_types_are_reported_with_their_field() {
        let errors = read(
            "metadata: {name: Web, namespace: Bad_NS, labels: {'bad key': x, ok: '-bad'}}",
            Scope::Namespaced,
        )
        .unwrap_err();
        assert_eq!(
            fields(errors),
            [
                "metadata.name",
                "metadata.namespace",
                "metadata.labels.bad key",
                "metadata.labels.ok"
            ]
        );
        let errors = read("metadata: {name: a, labels: {n: 1}}", Scope::Namespaced).unwrap_err();
        assert_eq!(fields(errors), ["metadata.labels.n"]);
        let errors = read("metadata: {name: a, uid: 7}", Scope::Namespaced).unwrap_err();
        assert_eq!(fields(errors), ["metadata.uid"]);
        let errors = read("metadata: {name: a, annotations: [x]}", Scope::Namespaced).unwrap_err();
        assert_eq!(fields(errors), ["metadata.annotations"]);
    }

    #[test]
    fn labels_objects_for_messages() {
        let doc: Value = serde_norway::from_str("metadata: {name: a, namespace: x}").unwrap();
        assert_eq!(
            object_label("Pod", Some(Scope::Namespaced), &doc),
            "Pod x/a"
        );
        assert_eq!(object_label("Node", Some(Scope::Cluster), &doc), "Node a");
        assert_eq!(object_label("Service", None, &doc), "Service x/a");
        let unnamed: Value = serde_norway::from_str("metadata: {}").unwrap();
        assert_eq!(
            object_label("Pod", Some(Scope::Namespaced), &unnamed),
            "Pod"
        );
        let no_ns: Value = serde_norway::from_str("metadata: {name: a}").unwrap();
        assert_eq!(
            object_label("Pod", Some(Scope::Namespaced), &no_ns),
            "Pod default/a"
        );
    }
}
