//! Kubernetes Events (`events.k8s.io/v1`) the controller emits: a rejected
//! TrustBoundary or EgressPolicy (reason `Invalid`, the message naming the field) and a
//! publication object over budget (reason `OverBudget`, regarding the Node or the
//! table shard).

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

pub const REPORTING_CONTROLLER: &str = "palisade.dev/controller";

/// What an Event is about.
#[derive(Clone, Debug)]
pub struct Regarding {
    pub api_version: String,
    pub kind: String,
    /// "" for cluster-scoped objects (their Events go to `default`).
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// Creates one Warning Event.
pub async fn warn(
    client: &kube::Client,
    instance: &str,
    regarding: &Regarding,
    reason: &str,
    action: &str,
    note: &str,
) -> kube::Result<()> {
    let namespace = if regarding.namespace.is_empty() {
        "default"
    } else {
        &regarding.namespace
    };
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    // The API server refuses notes over 1 KiB.
    let note: String = note.chars().take(1000).collect();
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", regarding.name)),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        event_time: Some(MicroTime(jiff::Timestamp::now())),
        type_: Some("Warning".into()),
        reason: Some(reason.into()),
        action: Some(action.into()),
        note: Some(note),
        reporting_controller: Some(REPORTING_CONTROLLER.into()),
        reporting_instance: Some(instance.into()),
        regarding: Some(ObjectReference {
            api_version: Some(regarding.api_version.clone()),
            kind: Some(regarding.kind.clone()),
            namespace: (!regarding.namespace.is_empty()).then(|| regarding.namespace.clone()),
            name: Some(regarding.name.clone()),
            uid: (!regarding.uid.is_empty()).then(|| regarding.uid.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    api.create(&PostParams::default(), &event).await.map(|_| ())
}
