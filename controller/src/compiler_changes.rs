//! A change of the controller's model as the incremental compiler takes it: an
//! object's accepted version becomes an upsert, its removal a delete by key. Pure.

use crate::objects::{ModelChange, ObjectKey, ObjectStore};
use palisade_policy::compile::Change;
use palisade_policy::manifest::Object;
use palisade_policy::model::{ClusterPolicyKind, ClusterPolicyRef, ObjectRef};

/// The compiler's change for `change`, made to `store` (an upsert carries the
/// object's accepted version as the store has it now).
pub fn of(store: &ObjectStore, change: ModelChange) -> Option<Change> {
    match change {
        ModelChange::Upserted(key) => store
            .get(&key)
            .and_then(|stored| stored.accepted.clone())
            .map(upsert),
        ModelChange::Deleted(key) => delete(&key),
    }
}

/// The upsert of an accepted object.
pub fn upsert(object: Object) -> Change {
    match object {
        Object::Namespace(namespace) => Change::NamespaceUpsert(namespace),
        Object::Pod(pod) => Change::PodUpsert(pod),
        Object::Node(node) => Change::NodeUpsert(node),
        Object::NetworkPolicy(policy) => Change::NetworkPolicyUpsert(policy),
        Object::ClusterPolicy(policy) => Change::ClusterPolicyUpsert(policy),
        Object::Service(service) => Change::ServiceUpsert(service),
        Object::EndpointSlice(slice) => Change::EndpointSliceUpsert(slice),
        Object::TrustBoundary(boundary) => Change::TrustBoundaryUpsert(boundary),
        Object::EgressPolicy(policy) => Change::EgressPolicyUpsert(policy),
    }
}

/// The delete of the object `key` (None: not a kind of the model).
pub fn delete(key: &ObjectKey) -> Option<Change> {
    let object_ref = || ObjectRef {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    };
    let cluster_policy = |kind| ClusterPolicyRef {
        kind,
        name: key.name.clone(),
    };
    Some(match key.kind {
        "Namespace" => Change::NamespaceDelete(key.name.clone()),
        "Pod" => Change::PodDelete(object_ref()),
        "Node" => Change::NodeDelete(key.name.clone()),
        "Service" => Change::ServiceDelete(object_ref()),
        "EndpointSlice" => Change::EndpointSliceDelete(object_ref()),
        "NetworkPolicy" => Change::NetworkPolicyDelete(object_ref()),
        "AdminNetworkPolicy" => {
            Change::ClusterPolicyDelete(cluster_policy(ClusterPolicyKind::AdminNetworkPolicy))
        }
        "BaselineAdminNetworkPolicy" => Change::ClusterPolicyDelete(cluster_policy(
            ClusterPolicyKind::BaselineAdminNetworkPolicy,
        )),
        "TrustBoundary" => Change::TrustBoundaryDelete(key.name.clone()),
        "EgressPolicy" => Change::EgressPolicyDelete(object_ref()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::MODEL_KINDS;

    #[test]
    fn every_model_kind_has_a_delete() {
        for kind in MODEL_KINDS {
            let key = ObjectKey {
                kind: kind.kind,
                namespace: if kind.namespaced { "x" } else { "" }.into(),
                name: "n".into(),
            };
            assert!(delete(&key).is_some(), "{}", kind.kind);
        }
    }
}
