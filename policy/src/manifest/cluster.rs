//! Assembles parsed objects, from any number of files, into the model's [`Cluster`],
//! refusing an object defined twice.

use super::Object;
use super::error::{ManifestError, ManifestErrors};
use crate::model::{Cluster, ObjectRef};
use std::collections::HashMap;

/// Builds the cluster from `(file, object)` pairs. An object defined twice (same kind,
/// namespace and name) is an error naming both files; every duplicate is reported.
/// Objects may sit in namespaces that have no Namespace object.
pub fn build_cluster(
    objects: impl IntoIterator<Item = (String, Object)>,
) -> Result<Cluster, ManifestErrors> {
    let mut cluster = Cluster::default();
    // Where each object was first defined, keyed by its description (`Pod x/a`), which
    // is unique per kind, namespace and name.
    let mut defined_in: HashMap<String, String> = HashMap::new();
    let mut errors = Vec::new();
    for (file, object) in objects {
        let description = object.describe();
        if let Some(first) = defined_in.get(&description) {
            errors.push(ManifestError {
                file,
                document: 0,
                object: Some(description.clone()),
                field: None,
                message: format!("{description} is defined more than once: also in {first}"),
            });
            continue;
        }
        defined_in.insert(description, file);
        insert(&mut cluster, object);
    }
    if errors.is_empty() {
        Ok(cluster)
    } else {
        Err(ManifestErrors(errors))
    }
}

fn insert(cluster: &mut Cluster, object: Object) {
    match object {
        Object::Namespace(namespace) => {
            cluster.namespaces.insert(namespace.name.clone(), namespace);
        }
        Object::Pod(pod) => {
            cluster.pods.insert(pod.object_ref(), pod);
        }
        Object::Node(node) => {
            cluster.nodes.insert(node.name.clone(), node);
        }
        Object::NetworkPolicy(policy) => {
            let key = ObjectRef {
                namespace: policy.namespace.clone(),
                name: policy.name.clone(),
            };
            cluster.network_policies.insert(key, policy);
        }
        Object::ClusterPolicy(policy) => {
            cluster.cluster_policies.insert(policy.policy_ref(), policy);
        }
        Object::Service(service) => {
            let key = ObjectRef {
                namespace: service.namespace.clone(),
                name: service.name.clone(),
            };
            cluster.services.insert(key, service);
        }
        Object::EndpointSlice(slice) => {
            let key = ObjectRef {
                namespace: slice.namespace.clone(),
                name: slice.name.clone(),
            };
            cluster.endpoint_slices.insert(key, slice);
        }
        Object::TrustBoundary(boundary) => {
            cluster
                .trust_boundaries
                .insert(boundary.name.clone(), boundary);
        }
        Object::EgressPolicy(policy) => {
            let key = ObjectRef {
                namespace: policy.namespace.clone(),
                name: policy.name.clone(),
            };
            cluster.egress_policies.insert(key, policy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_documents;
    use crate::model::NAMESPACE_NAME_LABEL;

    fn objects(file: &str, yaml: &str) -> Vec<(String, Object)> {
        parse_documents(file, yaml)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|o| (file.to_string(), o))
            .collect()
    }

    const NAMESPACE_X: &str =
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x, labels: {team: a}}";
    const POD_A: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}";
    const POD_A_IN_Y: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: y}";
    const POLICY_A: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                            metadata: {name: a, namespace: x}\nspec: {podSelector: {}}";
    const NODE_A: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: a}";

    #[test]
    fn assembles_every_kind() {
        let yaml = [NAMESPACE_X, POD_A, POD_A_IN_Y, POLICY_A, NODE_A].join("\n---\n");
        let cluster = build_cluster(objects("all.yaml", &yaml)).unwrap();
        assert_eq!(cluster.namespaces.len(), 1);
        assert_eq!(cluster.pods.len(), 2);
        assert_eq!(cluster.network_policies.len(), 1);
        assert_eq!(cluster.nodes.len(), 1);
        assert_eq!(cluster.namespace_labels("x").get("team"), Some("a"));
        // y has no Namespace object: it still has its name label.
        assert_eq!(
            cluster.namespace_labels("y").get(NAMESPACE_NAME_LABEL),
            Some("y")
        );
    }

    #[test]
    fn same_name_in_different_kinds_or_namespaces_is_fine() {
        let yaml = [POD_A, POD_A_IN_Y, POLICY_A, NODE_A].join("\n---\n");
        assert!(build_cluster(objects("all.yaml", &yaml)).is_ok());
    }

    #[test]
    fn cluster_policies_are_keyed_by_kind_and_name() {
        let policy = |kind: &str| {
            format!(
                "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: {kind}\n\
                 metadata: {{name: default}}\nspec: {{priority: 1, subject: {{namespaces: {{}}}}}}"
            )
        };
        let banp = policy("BaselineAdminNetworkPolicy").replace("priority: 1, ", "");
        let yaml = [policy("AdminNetworkPolicy"), banp].join("\n---\n");
        let cluster = build_cluster(objects("all.yaml", &yaml)).unwrap();
        assert_eq!(cluster.cluster_policies.len(), 2);
        let twice = [policy("AdminNetworkPolicy"), policy("AdminNetworkPolicy")].join("\n---\n");
        let errors = build_cluster(objects("all.yaml", &twice)).unwrap_err();
        assert!(
            errors.0[0]
                .message
                .starts_with("AdminNetworkPolicy default is defined more than once"),
            "{errors}"
        );
    }

    #[test]
    fn duplicates_name_both_files() {
        let mut all = objects("a.yaml", &[POD_A, POLICY_A].join("\n---\n"));
        all.extend(objects("b.yaml", &[POLICY_A, POD_A].join("\n---\n")));
        let errors = build_cluster(all).unwrap_err();
        let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "b.yaml (NetworkPolicy x/a): NetworkPolicy x/a is defined more than once: \
                 also in a.yaml",
                "b.yaml (Pod x/a): Pod x/a is defined more than once: also in a.yaml",
            ]
        );
    }
}
