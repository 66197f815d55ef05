//! The controller's view of the cluster: every watched object, converted to the policy
//! model by the same manifest parser standalone mode uses
//! ([`palisade_policy::manifest::parse_json_object`]), so both modes read an object
//! identically.
//!
//! An object that fails to parse is rejected on its own: it is recorded with the error
//! (for its status and an Event) and its last accepted version, if it had one, stays in
//! the model. Other objects are untouched, and a rejected policy never loosens what was
//! enforced: the nodes keep the last version that compiled. Pure: no I/O.

use palisade_policy::manifest::{
    ManifestError, ManifestErrors, Object, build_cluster, parse_json_object,
};
use palisade_policy::model::Cluster;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Which watched kind an object is: apiVersion, kind, and whether it is namespaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatchedKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

impl WatchedKind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// TrustBoundary and EgressPolicy: the kinds that get a status from the controller.
    pub fn has_policy_status(&self) -> bool {
        self.group == palisade_crds::definitions::GROUP
            && (self.kind == "TrustBoundary" || self.kind == "EgressPolicy")
    }
}

const fn kind(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> WatchedKind {
    WatchedKind {
        group,
        version,
        kind,
        plural,
        namespaced,
    }
}

/// Every kind that feeds the policy model.
pub const MODEL_KINDS: [WatchedKind; 10] = [
    kind("", "v1", "Namespace", "namespaces", false),
    kind("", "v1", "Pod", "pods", true),
    kind("", "v1", "Node", "nodes", false),
    kind("", "v1", "Service", "services", true),
    kind(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
    ),
    kind(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    kind(
        "policy.networking.k8s.io",
        "v1alpha1",
        "AdminNetworkPolicy",
        "adminnetworkpolicies",
        false,
    ),
    kind(
        "policy.networking.k8s.io",
        "v1alpha1",
        "BaselineAdminNetworkPolicy",
        "baselineadminnetworkpolicies",
        false,
    ),
    kind(
        "palisade.dev",
        "v1alpha1",
        "TrustBoundary",
        "trustboundaries",
        false,
    ),
    kind(
        "palisade.dev",
        "v1alpha1",
        "EgressPolicy",
        "egresspolicies",
        true,
    ),
];

/// An object's identity: kind, namespace ("" when cluster-scoped), name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// How parse errors name the object's source: `kube:EgressPolicy/ns/name`.
    pub fn source(&self) -> String {
        if self.namespace.is_empty() {
            format!("kube:{}/{}", self.kind, self.name)
        } else {
            format!("kube:{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Why the current version of an object was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The first error's field (`spec.egress[0].to[0].cidr`), when it names one.
    pub field: Option<String>,
    /// Every error, one per line, each naming its field.
    pub message: String,
}

/// One watched object as the controller holds it.
#[derive(Clone, Debug)]
pub struct StoredObject {
    /// The last version that parsed, which is what the model holds.
    pub accepted: Option<Object>,
    /// Set while the current version does not parse.
    pub rejection: Option<Rejection>,
    /// `metadata.generation` of the current version (0 when the kind has none).
    pub generation: i64,
    pub uid: String,
    /// `status` of the current version, as the server has it (TrustBoundary and
    /// EgressPolicy: what the controller wrote last).
    pub status: Value,
}

/// What an upsert or delete did to the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelChange {
    /// The object's accepted version is new or different.
    Upserted(ObjectKey),
    /// The object left the model.
    Deleted(ObjectKey),
}

/// Every watched object, by key.
#[derive(Debug, Default)]
pub struct ObjectStore {
    objects: BTreeMap<ObjectKey, StoredObject>,
}

impl ObjectStore {
    /// Reads the object `value` of `kind` (as the API server sent it). Returns the
    /// model change it makes, if any. A value without a name is ignored.
    pub fn upsert(&mut self, kind: &WatchedKind, value: &Value) -> Option<ModelChange> {
        let key = key_of(kind, value)?;
        let mut value = value.clone();
        // Watch events carry apiVersion and kind, but a list's items need not.
        value["apiVersion"] = Value::String(kind.api_version());
        value["kind"] = Value::String(kind.kind.to_string());
        let generation = value["metadata"]["generation"].as_i64().unwrap_or(0);
        let uid = value["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let status = value.get("status").cloned().unwrap_or(Value::Null);
        let parsed = parse_json_object(&key.source(), &value);
        let entry = self
            .objects
            .entry(key.clone())
            .or_insert_with(|| StoredObject {
                accepted: None,
                rejection: None,
                generation,
                uid: uid.clone(),
                status: Value::Null,
            });
        entry.generation = generation;
        entry.uid = uid;
        entry.status = status;
        match parsed {
            Ok(object) => {
                entry.rejection = None;
                if entry.accepted.as_ref() == Some(&object) {
                    return None;
                }
                entry.accepted = Some(object);
                Some(ModelChange::Upserted(key))
            }
            Err(errors) => {
                entry.rejection = Some(rejection(errors.0));
                None
            }
        }
    }

    /// Removes the object; returns the model change if it was in the model.
    pub fn delete(
        &mut self,
        kind: &WatchedKind,
        namespace: &str,
        name: &str,
    ) -> Option<ModelChange> {
        let key = ObjectKey {
            kind: kind.kind,
            namespace: if kind.namespaced { namespace } else { "" }.to_string(),
            name: name.to_string(),
        };
        let removed = self.objects.remove(&key)?;
        removed.accepted.map(|_| ModelChange::Deleted(key))
    }

    /// After a relist of `kind`: removes every object of the kind not in `listed`.
    pub fn retain_listed(
        &mut self,
        kind: &WatchedKind,
        listed: &BTreeSet<ObjectKey>,
    ) -> Vec<ModelChange> {
        let gone: Vec<ObjectKey> = self
            .objects
            .keys()
            .filter(|key| key.kind == kind.kind && !listed.contains(*key))
            .cloned()
            .collect();
        gone.into_iter()
            .filter_map(|key| {
                let removed = self.objects.remove(&key)?;
                removed.accepted.map(|_| ModelChange::Deleted(key))
            })
            .collect()
    }

    /// The model: every accepted object. Keys are unique per kind, namespace and
    /// name, so nothing is defined twice; should assembly fail all the same, the
    /// caller must keep what it published (an empty model would open everything).
    pub fn cluster(&self) -> Result<Cluster, ManifestErrors> {
        let objects = self.objects.iter().filter_map(|(key, stored)| {
            stored.accepted.clone().map(|object| (key.source(), object))
        });
        build_cluster(objects)
    }

    /// The TrustBoundaries and EgressPolicies, with their state.
    pub fn policies(&self) -> impl Iterator<Item = (&ObjectKey, &StoredObject)> {
        self.objects
            .iter()
            .filter(|(key, _)| key.kind == "TrustBoundary" || key.kind == "EgressPolicy")
    }

    /// Records a status the controller wrote, before its watch event arrives.
    pub fn set_status(&mut self, key: &ObjectKey, status: Value) {
        if let Some(stored) = self.objects.get_mut(key) {
            stored.status = status;
        }
    }

    pub fn get(&self, key: &ObjectKey) -> Option<&StoredObject> {
        self.objects.get(key)
    }

    /// Objects other than TrustBoundaries and EgressPolicies whose current version is
    /// refused (those two report through their status).
    pub fn other_rejections(&self) -> impl Iterator<Item = (&ObjectKey, &StoredObject)> {
        self.objects.iter().filter(|(key, stored)| {
            stored.rejection.is_some() && key.kind != "TrustBoundary" && key.kind != "EgressPolicy"
        })
    }

    /// Objects whose current version is refused.
    pub fn rejected(&self) -> usize {
        self.objects
            .values()
            .filter(|o| o.rejection.is_some())
            .count()
    }
}

/// The key of `value` of `kind`, if it has a name.
pub fn key_of(kind: &WatchedKind, value: &Value) -> Option<ObjectKey> {
    let name = value["metadata"]["name"].as_str()?.to_string();
    let namespace = if kind.namespaced {
        value["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string()
    } else {
        String::new()
    };
    Some(ObjectKey {
        kind: kind.kind,
        namespace,
        name,
    })
}

fn rejection(errors: Vec<ManifestError>) -> Rejection {
    let field = errors.iter().find_map(|e| e.field.clone());
    let message = errors
        .iter()
        .map(|e| match &e.field {
            Some(field) => format!("{field}: {}", e.message),
            None => e.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    Rejection { field, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn egress_policy() -> &'static WatchedKind {
        MODEL_KINDS
            .iter()
            .find(|k| k.kind == "EgressPolicy")
            .unwrap()
    }

    fn policy(cidr: &str, generation: i64) -> Value {
        json!({
            "metadata": {"name": "p", "namespace": "x", "generation": generation, "uid": "u1"},
            "spec": {"podSelector": {}, "egress": [{"to": [{"cidr": cidr}]}]},
        })
    }

    #[test]
    fn a_rejected_version_keeps_the_last_accepted_one() {
        let mut store = ObjectStore::default();
        let kind = egress_policy();
        assert!(store.upsert(kind, &policy("10.0.0.0/8", 1)).is_some());
        let before = store.cluster().unwrap();
        assert_eq!(before.egress_policies.len(), 1);
        assert_eq!(store.upsert(kind, &policy("not-a-cidr", 2)), None);
        let key = key_of(kind, &policy("x", 2)).unwrap();
        let stored = store.get(&key).unwrap();
        let rejection = stored.rejection.as_ref().unwrap();
        assert_eq!(
            rejection.field.as_deref(),
            Some("spec.egress[0].to[0].cidr")
        );
        assert!(
            rejection.message.starts_with("spec.egress[0].to[0].cidr: "),
            "{rejection:?}"
        );
        assert_eq!(stored.generation, 2);
        assert_eq!(store.cluster().unwrap(), before);
        // Fixed: accepted again, the rejection cleared.
        assert!(store.upsert(kind, &policy("10.1.0.0/16", 3)).is_some());
        assert!(store.get(&key).unwrap().rejection.is_none());
    }

    #[test]
    fn a_rejected_new_object_is_not_in_the_model() {
        let mut store = ObjectStore::default();
        assert_eq!(store.upsert(egress_policy(), &policy("bad", 1)), None);
        assert!(store.cluster().unwrap().egress_policies.is_empty());
        assert_eq!(store.rejected(), 1);
    }

    #[test]
    fn relists_remove_what_is_gone_and_identical_upserts_change_nothing() {
        let mut store = ObjectStore::default();
        let pods = MODEL_KINDS.iter().find(|k| k.kind == "Pod").unwrap();
        let pod = |name: &str| json!({"metadata": {"name": name, "namespace": "x", "resourceVersion": "3"}});
        store.upsert(pods, &pod("a"));
        store.upsert(pods, &pod("b"));
        assert_eq!(store.upsert(pods, &pod("a")), None);
        let listed = BTreeSet::from([key_of(pods, &pod("a")).unwrap()]);
        let changes = store.retain_listed(pods, &listed);
        assert_eq!(
            changes,
            vec![ModelChange::Deleted(key_of(pods, &pod("b")).unwrap())]
        );
        assert_eq!(store.cluster().unwrap().pods.len(), 1);
    }
}
