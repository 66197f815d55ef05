//! Manifest parsing: Kubernetes-style YAML (or JSON) documents -> model objects, with
//! errors that name the file, the document, the object and the field.
//!
//! Pure: text in, objects out; reading files is the `palisade-manifests` crate's job.
//! [`parse_documents`] reads one file's text; [`build_cluster`] assembles the objects of
//! every file into the model's [`Cluster`](crate::model::Cluster).
//!
//! Layout: `documents` splits a stream, `kinds` dispatches on apiVersion/kind (adding a
//! kind starts there), one module per kind or group of kinds (`core`, `network_policy`,
//! `admin_network_policy`, `baseline_admin_network_policy`, `service`,
//! `endpoint_slice`, and palisade's own `trust_boundary`, `egress_policy`) holds their
//! wire types, validation and conversion, with shared pieces in `metadata`,
//! `selector`, `ports`, `port_ranges`, `cidr`, `fqdn`, `names`, `wire` and
//! `cluster_policy` (what the `policy.networking.k8s.io` kinds share); `error` has the
//! error types and `cluster` the assembly.

mod admin_network_policy;
#[cfg(feature = "schema")]
mod admission;
mod baseline_admin_network_policy;
mod cidr;
mod cluster;
mod cluster_policy;
mod core;
mod documents;
mod egress_policy;
mod endpoint_slice;
mod error;
mod fqdn;
mod kinds;
mod metadata;
mod names;
mod network_policy;
mod port_ranges;
mod ports;
#[cfg(feature = "schema")]
pub mod schema;
mod selector;
mod service;
mod trust_boundary;
mod wire;

#[cfg(test)]
mod conformance_tests;
#[cfg(test)]
mod test_support;

pub use cluster::build_cluster;
pub use error::{ManifestError, ManifestErrors};

use crate::model::{ClusterPolicy, Namespace, NetworkPolicy, Node, Pod};
use crate::model::{EgressPolicy, TrustBoundary};
use crate::model::{EndpointSlice, Service};

/// An object palisade reads from manifests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    Namespace(Namespace),
    Pod(Pod),
    Node(Node),
    NetworkPolicy(NetworkPolicy),
    /// An AdminNetworkPolicy or a BaselineAdminNetworkPolicy (its `kind` says which).
    ClusterPolicy(ClusterPolicy),
    Service(Service),
    EndpointSlice(EndpointSlice),
    /// A palisade TrustBoundary (`palisade.dev/v1alpha1`).
    TrustBoundary(TrustBoundary),
    /// A palisade EgressPolicy (`palisade.dev/v1alpha1`).
    EgressPolicy(EgressPolicy),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Namespace(_) => "Namespace",
            Object::Pod(_) => "Pod",
            Object::Node(_) => "Node",
            Object::NetworkPolicy(_) => "NetworkPolicy",
            Object::ClusterPolicy(policy) => policy.kind.as_str(),
            Object::Service(_) => "Service",
            Object::EndpointSlice(_) => "EndpointSlice",
            Object::TrustBoundary(_) => "TrustBoundary",
            Object::EgressPolicy(_) => "EgressPolicy",
        }
    }

    /// The object as messages name it: `Pod x/web`, `Node n1`.
    pub fn describe(&self) -> String {
        let kind = self.kind();
        match self {
            Object::Namespace(namespace) => format!("{kind} {}", namespace.name),
            Object::Node(node) => format!("{kind} {}", node.name),
            Object::Pod(pod) => format!("{kind} {}/{}", pod.namespace, pod.name),
            Object::NetworkPolicy(policy) => {
                format!("{kind} {}/{}", policy.namespace, policy.name)
            }
            Object::ClusterPolicy(policy) => format!("{kind} {}", policy.name),
            Object::Service(service) => format!("{kind} {}/{}", service.namespace, service.name),
            Object::EndpointSlice(slice) => format!("{kind} {}/{}", slice.namespace, slice.name),
            Object::TrustBoundary(boundary) => format!("{kind} {}", boundary.name),
            Object::EgressPolicy(policy) => format!("{kind} {}/{}", policy.namespace, policy.name),
        }
    }
}

/// Parses one object that arrived as JSON (from the Kubernetes API, as the controller's
/// watches deliver them) with the same parsers as [`parse_documents`], so both modes
/// read an object identically. `source` names it in errors, e.g.
/// `kube:EgressPolicy/ns/name`; `document` is 0 in them. A `kind: List` is refused:
/// one value is one object here.
pub fn parse_json_object(
    source: &str,
    value: &serde_json::Value,
) -> Result<Object, ManifestErrors> {
    let error = |object: Option<String>, field: Option<String>, message: String| ManifestError {
        file: source.to_string(),
        document: 0,
        object,
        field,
        message,
    };
    let value = match serde_norway::to_value(value) {
        Ok(value) => value,
        Err(e) => return Err(ManifestErrors(vec![error(None, None, e.to_string())])),
    };
    let mut outcomes = kinds::read_document(&value);
    if outcomes.len() != 1 {
        let message = format!("expected one object, found {}", outcomes.len());
        return Err(ManifestErrors(vec![error(None, None, message)]));
    }
    let outcome = outcomes.remove(0);
    outcome.result.map_err(|problems| {
        ManifestErrors(
            problems
                .into_iter()
                .map(|problem| error(outcome.object.clone(), problem.field, problem.message))
                .collect(),
        )
    })
}

/// Parses every document of one file's `text` (`file` names it in errors). Empty
/// documents are skipped and `kind: List` documents expanded. Every problem of every
/// document is reported, except that a YAML syntax error ends the file.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Object>, ManifestErrors> {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for document in documents::split(text) {
        let error =
            |object: Option<String>, field: Option<String>, message: String| ManifestError {
                file: file.to_string(),
                document: document.number,
                object,
                field,
                message,
            };
        let value = match &document.content {
            Ok(value) => value,
            Err(message) => {
                errors.push(error(None, None, message.clone()));
                continue;
            }
        };
        if value.is_null() {
            continue;
        }
        for outcome in kinds::read_document(value) {
            match outcome.result {
                Ok(object) => objects.push(object),
                Err(problems) => {
                    errors.extend(problems.into_iter().map(|problem| {
                        error(outcome.object.clone(), problem.field, problem.message)
                    }))
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(ManifestErrors(errors))
    }
}

#[cfg(test)]
mod json_object_tests {
    use super::*;

    #[test]
    fn a_json_object_parses_as_its_yaml_twin() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {app: web}, resourceVersion: '7'}\nstatus: {podIP: 10.0.0.1}";
        let from_yaml = parse_documents("f.yaml", yaml).unwrap().remove(0);
        let json: serde_json::Value = serde_norway::from_str(yaml).unwrap();
        assert_eq!(parse_json_object("kube:Pod/x/a", &json).unwrap(), from_yaml);
    }

    #[test]
    fn errors_name_the_source_object_and_field() {
        let json = serde_json::json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "x"},
            "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "nope"}}]}]}
        });
        let errors = parse_json_object("kube:NetworkPolicy/x/p", &json).unwrap_err();
        let error = &errors.0[0];
        assert_eq!(error.file, "kube:NetworkPolicy/x/p");
        assert_eq!(error.object.as_deref(), Some("NetworkPolicy x/p"));
        assert_eq!(
            error.field.as_deref(),
            Some("spec.ingress[0].from[0].ipBlock.cidr")
        );
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": []});
        assert!(parse_json_object("kube:List", &list).is_err());
    }
}
