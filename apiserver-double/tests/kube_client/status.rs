//! The status subresource and generation: main-resource writes leave status
//! alone, `/status` writes change nothing else, generation follows spec only.

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::apply::trust_boundaries;
use crate::common::{double, namespace, pod};

#[tokio::test]
async fn status_and_spec_are_written_separately_and_generation_follows_spec() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let api = trust_boundaries(client, "ns");
    let object = serde_json::from_value(json!({
        "apiVersion": "palisade.dev/v1alpha1", "kind": "TrustBoundary",
        "metadata": {"name": "tb"},
        "spec": {"tier": "a"},
        "status": {"observedGeneration": 99},
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &object).await.unwrap();
    assert!(created.data.get("status").is_none(), "create drops status");
    assert_eq!(created.metadata.generation, Some(1));

    // A status write: status changes, spec and generation do not.
    let status_patch = json!({"spec": {"tier": "ignored"}, "status": {"observedGeneration": 1}});
    let with_status = api
        .patch_status("tb", &PatchParams::default(), &Patch::Merge(&status_patch))
        .await
        .unwrap();
    assert_eq!(with_status.data["status"]["observedGeneration"], 1);
    assert_eq!(with_status.data["spec"]["tier"], "a");
    assert_eq!(with_status.metadata.generation, Some(1));

    // A main-resource write: spec changes and generation bumps, status stays.
    let spec_patch = json!({"spec": {"tier": "b"}, "status": {"observedGeneration": 7}});
    let with_spec = api
        .patch("tb", &PatchParams::default(), &Patch::Merge(&spec_patch))
        .await
        .unwrap();
    assert_eq!(with_spec.data["spec"]["tier"], "b");
    assert_eq!(with_spec.data["status"]["observedGeneration"], 1);
    assert_eq!(with_spec.metadata.generation, Some(2));

    // Metadata changes do not bump generation.
    let labels = json!({"metadata": {"labels": {"x": "y"}}});
    let labelled = api
        .patch("tb", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));
}

#[tokio::test]
async fn pod_status_replace_keeps_the_spec() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    pods.create(&PostParams::default(), &pod("a", "node-1", &[]))
        .await
        .unwrap();
    let mut current = pods.get("a").await.unwrap();
    current.status = Some(PodStatus {
        pod_ip: Some("10.0.0.7".into()),
        phase: Some("Running".into()),
        ..Default::default()
    });
    current.spec.as_mut().unwrap().node_name = Some("elsewhere".into());
    let updated = pods
        .replace_status("a", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(updated.status.unwrap().pod_ip.as_deref(), Some("10.0.0.7"));
    assert_eq!(updated.spec.unwrap().node_name.as_deref(), Some("node-1"));

    let listed = pods
        .list(&kube::api::ListParams::default().fields("status.podIP=10.0.0.7"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
}
