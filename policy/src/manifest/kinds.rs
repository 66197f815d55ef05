//! The kinds palisade reads, and the dispatch from a document's `apiVersion` and `kind`
//! to the parser of that kind (`kind: List` documents are expanded here).
//!
//! Adding a kind: write its module (wire types, validation, conversion to the model),
//! add a variant to [`Object`] and one entry to [`KINDS`].

use super::Object;
use super::admin_network_policy;
use super::baseline_admin_network_policy;
use super::core;
use super::egress_policy;
use super::endpoint_slice;
use super::error::{FieldError, FieldPath};
use super::metadata::{self, NameSyntax, ObjectMeta, Scope};
use super::network_policy;
use super::service;
use super::trust_boundary;
use super::wire::type_name;
use serde_norway::Value;

/// Parses one object of a kind, at `at` in its document, once its metadata is read.
type ParseFn = fn(&Value, &FieldPath, ObjectMeta) -> Result<Object, Vec<FieldError>>;

/// A kind palisade reads.
pub(crate) struct Kind {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub scope: Scope,
    pub name_syntax: NameSyntax,
    pub parse: ParseFn,
}

pub(crate) const KINDS: &[Kind] = &[
    Kind {
        api_version: "v1",
        kind: "Namespace",
        scope: Scope::Cluster,
        name_syntax: NameSyntax::Dns1123Label,
        parse: core::namespace,
    },
    Kind {
        api_version: "v1",
        kind: "Pod",
        scope: Scope::Namespaced,
        name_syntax: NameSyntax::Dns1123Subdomain,
        parse: core::pod,
    },
    Kind {
        api_version: "v1",
        kind: "Node",
        scope: Scope::Cluster,
        name_syntax: NameSyntax::Dns1123Subdomain,
        parse: core::node,
    },
    Kind {
        api_version: "v1",
        kind: "Service",
        scope: Scope::Namespaced,
        name_syntax: NameSyntax::Dns1035Label,
        parse: service::service,
    },
    Kind {
        api_version: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        scope: Scope::Namespaced,
        name_syntax: NameSyntax::Dns1123Subdomain,
        parse: endpoint_slice::endpoint_slice,
    },
    Kind {
        api_version: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        scope: Scope::Namespaced,
        name_syntax: NameSyntax::Dns1123Subdomain,
        parse: network_policy::network_policy,
    },
    Kind {
        api_version: "policy.networking.k8s.io/v1alpha1",
        kind: "AdminNetworkPolicy",
        scope: Scope::Cluster,
        name_syntax: NameSyntax::Dns1123Subdomain,
        parse: admin_network_policy::admin_network_policy,
    },
    Kind {
        api_version: "policy.networking.k8s.io/v1alpha1",
        kind: "BaselineAdminNetworkPolicy",
        scope: Scope::Cluster,
        name_syntax: NameSyntax::Dns1123Subdomain,
        parse: baseline_admin_network_policy::baseline_admin_network_policy,
    },
    Kind {
        api_version: "palisade.dev/v1alpha1",
        kind: "TrustBoundary",
        scope: Scope::Cluster,
        name_syntax: NameSyntax::Dns1123Subdomain,
        parse: trust_boundary::trust_boundary,
    },
    Kind {
        api_version: "palisade.dev/v1alpha1",
        kind: "EgressPolicy",
        scope: Scope::Namespaced,
        name_syntax: NameSyntax::Dns1123Subdomain,
        parse: egress_policy::egress_policy,
    },
];

/// `kind: List` (apiVersion v1), as `kubectl get -o yaml` writes it: its `items` are
/// objects.
const LIST_API_VERSION: &str = "v1";
const LIST_KIND: &str = "List";

/// What became of one object of a document.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The object as messages name it (`NetworkPolicy x/allow-web`), once its kind is
    /// known.
    pub object: Option<String>,
    pub result: Result<Object, Vec<FieldError>>,
}

/// Reads every object of a non-empty document: the document itself, or the items of a
/// List.
pub(crate) fn read_document(document: &Value) -> Vec<Outcome> {
    let root = FieldPath::root();
    let (api_version, kind) = match type_meta(document, &root) {
        Ok(type_meta) => type_meta,
        Err(errors) => return vec![failed(None, errors)],
    };
    if kind != LIST_KIND {
        return vec![read_object(document, &root, &api_version, &kind)];
    }
    if api_version != LIST_API_VERSION {
        let message = unsupported_api_version(LIST_KIND, &api_version, &[LIST_API_VERSION]);
        return vec![failed(
            Some(LIST_KIND.into()),
            vec![FieldError::at(&root.field("apiVersion"), message)],
        )];
    }
    let items_at = root.field("items");
    let items = match document.get("items") {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Sequence(items)) => items,
        Some(other) => {
            let message = format!("expected a list of objects, found {}", type_name(other));
            return vec![failed(
                Some(LIST_KIND.into()),
                vec![FieldError::at(&items_at, message)],
            )];
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = items_at.index(i);
            match type_meta(item, &at) {
                Err(errors) => failed(None, errors),
                Ok((_, kind)) if kind == LIST_KIND => failed(
                    Some(LIST_KIND.into()),
                    vec![FieldError::at(
                        &at.field("kind"),
                        "a List may not contain another List",
                    )],
                ),
                Ok((api_version, kind)) => read_object(item, &at, &api_version, &kind),
            }
        })
        .collect()
}

fn read_object(document: &Value, at: &FieldPath, api_version: &str, kind: &str) -> Outcome {
    let Some(def) = KINDS
        .iter()
        .find(|k| k.kind == kind && k.api_version == api_version)
    else {
        let object = Some(metadata::object_label(kind, None, document));
        return failed(object, vec![unsupported(at, api_version, kind)]);
    };
    let object = Some(metadata::object_label(kind, Some(def.scope), document));
    let result = ObjectMeta::read(document, at, def.scope, def.name_syntax)
        .and_then(|meta| (def.parse)(document, at, meta));
    Outcome { object, result }
}

/// `apiVersion` and `kind` of the object at `at`.
fn type_meta(document: &Value, at: &FieldPath) -> Result<(String, String), Vec<FieldError>> {
    if !document.is_mapping() {
        return Err(vec![FieldError::at(
            at,
            format!(
                "expected a Kubernetes object (a mapping with apiVersion and kind), found {}",
                type_name(document)
            ),
        )]);
    }
    let text = |field: &str| {
        let message = match document.get(field) {
            Some(Value::String(text)) if !text.is_empty() => return Ok(text.clone()),
            None | Some(Value::Null) => "required field is missing".to_string(),
            Some(Value::String(_)) => "must not be empty".to_string(),
            Some(other) => format!("expected a string, found {}", type_name(other)),
        };
        Err(FieldError::at(&at.field(field), message))
    };
    match (text("apiVersion"), text("kind")) {
        (Ok(api_version), Ok(kind)) => Ok((api_version, kind)),
        (api_version, kind) => Err(api_version.err().into_iter().chain(kind.err()).collect()),
    }
}

/// The error for an (apiVersion, kind) pair palisade does not read: names both, and
/// what it reads instead.
fn unsupported(at: &FieldPath, api_version: &str, kind: &str) -> FieldError {
    let versions: Vec<&str> = KINDS
        .iter()
        .filter(|k| k.kind == kind)
        .map(|k| k.api_version)
        .collect();
    if versions.is_empty() {
        let known: Vec<String> = KINDS
            .iter()
            .map(|k| format!("{} {}", k.api_version, k.kind))
            .chain([format!("{LIST_API_VERSION} {LIST_KIND}")])
            .collect();
        FieldError::at(
            &at.field("kind"),
            format!(
                "unsupported kind {kind:?} (apiVersion {api_version:?}); palisade reads {}",
                known.join(", ")
            ),
        )
    } else {
        FieldError::at(
            &at.field("apiVersion"),
            unsupported_api_version(kind, api_version, &versions),
        )
    }
}

fn unsupported_api_version(kind: &str, api_version: &str, supported: &[&str]) -> String {
    format!(
        "unsupported apiVersion {api_version:?} for kind {kind:?}; palisade reads {kind} in {}",
        supported.join(", ")
    )
}

fn failed(object: Option<String>, errors: Vec<FieldError>) -> Outcome {
    Outcome {
        object,
        result: Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::{Object, parse_documents};

    fn error_texts(yaml: &str) -> Vec<String> {
        parse_documents("m.yaml", yaml)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}";

    #[test]
    fn unknown_kinds_are_rejected_naming_kind_and_api_version() {
        let texts =
            error_texts("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: x}");
        assert_eq!(texts.len(), 1);
        assert!(
            texts[0].starts_with(
                "m.yaml: document 1 (ConfigMap x/web): kind: unsupported kind \"ConfigMap\" \
                 (apiVersion \"v1\"); palisade reads v1 Namespace, v1 Pod,"
            ),
            "{texts:?}"
        );
    }

    #[test]
    fn unsupported_api_versions_are_rejected_naming_both() {
        let texts = error_texts(
            "apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}",
        );
        assert_eq!(
            texts,
            [
                "m.yaml: document 1 (NetworkPolicy x/p): apiVersion: unsupported apiVersion \
              \"extensions/v1beta1\" for kind \"NetworkPolicy\"; palisade reads NetworkPolicy \
              in networking.k8s.io/v1"
            ]
        );
    }

    #[test]
    fn missing_or_mistyped_type_fields_are_named() {
        assert_eq!(
            error_texts("metadata: {name: a}\nkind: 3"),
            [
                "m.yaml: document 1: apiVersion: required field is missing",
                "m.yaml: document 1: kind: expected a string, found a number",
            ]
        );
        assert_eq!(
            error_texts("- just\n- a list"),
            [
                "m.yaml: document 1: expected a Kubernetes object (a mapping with apiVersion \
              and kind), found a list"
            ]
        );
    }

    #[test]
    fn garbage_yaml_names_file_and_document() {
        let texts = error_texts(&format!("{POD}\n---\nkind: [Pod\nmetadata: {{"));
        assert_eq!(texts.len(), 1);
        assert!(
            texts[0].starts_with("m.yaml: document 2: invalid YAML: "),
            "{texts:?}"
        );
    }

    #[test]
    fn errors_of_every_document_are_collected() {
        let yaml = format!(
            "{POD}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{namespace: x}}\n---\n{POD}\n\
             ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s}}"
        );
        let texts = error_texts(&yaml);
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert_eq!(
            texts[0],
            "m.yaml: document 2 (Pod): metadata.name: required field is missing"
        );
        assert!(
            texts[1].starts_with("m.yaml: document 4 (Secret s): kind: "),
            "{texts:?}"
        );
    }

    #[test]
    fn empty_documents_are_skipped() {
        let objects =
            parse_documents("m.yaml", &format!("---\n# nothing\n---\n{POD}\n---\n---\n")).unwrap();
        assert_eq!(objects.len(), 1);
        assert!(parse_documents("m.yaml", "").unwrap().is_empty());
    }

    #[test]
    fn json_documents_are_read() {
        let objects = parse_documents(
            "m.json",
            r#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}"#,
        )
        .unwrap();
        assert!(matches!(&objects[..], [Object::Node(node)] if node.name == "n1"));
    }

    #[test]
    fn lists_are_expanded() {
        let yaml = "apiVersion: v1\nkind: List\nmetadata: {resourceVersion: ''}\nitems:\n\
                    - {apiVersion: v1, kind: Namespace, metadata: {name: x}}\n\
                    - {apiVersion: v1, kind: Pod, metadata: {name: a, namespace: x}}";
        let objects = parse_documents("m.yaml", yaml).unwrap();
        let described: Vec<String> = objects.iter().map(Object::describe).collect();
        assert_eq!(described, ["Namespace x", "Pod x/a"]);
        assert!(
            parse_documents("m.yaml", "apiVersion: v1\nkind: List\nitems: []")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn list_item_errors_carry_the_item_path() {
        let yaml = "apiVersion: v1\nkind: List\nitems:\n\
                    - {apiVersion: v1, kind: Pod, metadata: {name: a}}\n\
                    - {apiVersion: v1, kind: Pod, metadata: {name: b}, status: {podIP: nope}}\n\
                    - {apiVersion: v1, kind: List, items: []}\n\
                    - 7";
        assert_eq!(
            error_texts(yaml),
            [
                "m.yaml: document 1 (Pod default/b): items[1].status.podIP: invalid IP address \
                 \"nope\"",
                "m.yaml: document 1 (List): items[2].kind: a List may not contain another List",
                "m.yaml: document 1: items[3]: expected a Kubernetes object (a mapping with \
                 apiVersion and kind), found a number",
            ]
        );
        assert_eq!(
            error_texts("apiVersion: v1\nkind: List\nitems: {a: 1}"),
            ["m.yaml: document 1 (List): items: expected a list of objects, found a mapping"]
        );
        assert_eq!(
            error_texts("apiVersion: v2\nkind: List\nitems: []"),
            [
                "m.yaml: document 1 (List): apiVersion: unsupported apiVersion \"v2\" for kind \
              \"List\"; palisade reads List in v1"
            ]
        );
    }
}
