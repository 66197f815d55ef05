//! Create, get, replace and delete: identity metadata, AlreadyExists,
//! optimistic-concurrency conflicts, delete preconditions, finalizers.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::{Api, Error};

use crate::common::{double, namespace, pod, rv};

fn code(e: Error) -> (u16, String) {
    match e {
        Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn create_sets_identity_and_refuses_duplicates() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let created = pods
        .create(&PostParams::default(), &pod("a", "node-1", &[]))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("ns"));
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    assert_eq!(rv(meta), double.revision());
    let fetched = pods.get("a").await.unwrap();
    assert_eq!(fetched.metadata.uid, meta.uid);

    let dup = pods
        .create(&PostParams::default(), &pod("a", "node-1", &[]))
        .await
        .unwrap_err();
    assert_eq!(code(dup), (409, "AlreadyExists".into()));
    let missing = pods.get("b").await.unwrap_err();
    assert_eq!(code(missing), (404, "NotFound".into()));
}

#[tokio::test]
async fn namespaced_objects_need_their_namespace() {
    let double = double().await;
    let pods: Api<Pod> = Api::namespaced(double.client(), "absent");
    let err = pods
        .create(&PostParams::default(), &pod("a", "n", &[]))
        .await
        .unwrap_err();
    assert_eq!(code(err), (404, "NotFound".into()));
}

#[tokio::test]
async fn stale_update_conflicts_and_a_retry_on_the_latest_version_succeeds() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let first = pods
        .create(&PostParams::default(), &pod("a", "n", &[]))
        .await
        .unwrap();

    let mut mine = first.clone();
    mine.metadata.labels = Some([("who".to_string(), "me".to_string())].into());
    let mut theirs = first.clone();
    theirs.metadata.labels = Some([("who".to_string(), "them".to_string())].into());
    let theirs = pods
        .replace("a", &PostParams::default(), &theirs)
        .await
        .unwrap();
    assert!(rv(&theirs.metadata) > rv(&first.metadata));

    let err = pods
        .replace("a", &PostParams::default(), &mine)
        .await
        .unwrap_err();
    assert_eq!(code(err), (409, "Conflict".into()));

    let mut latest = pods.get("a").await.unwrap();
    latest.metadata.labels = mine.metadata.labels.clone();
    let updated = pods
        .replace("a", &PostParams::default(), &latest)
        .await
        .unwrap();
    assert_eq!(updated.metadata.labels.unwrap()["who"], "me");
    // Labels are metadata: no generation bump.
    assert_eq!(updated.metadata.generation, Some(1));
}

#[tokio::test]
async fn delete_checks_preconditions() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let created = pods
        .create(&PostParams::default(), &pod("a", "n", &[]))
        .await
        .unwrap();
    let stale = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: Some("1".into()),
            uid: None,
        }),
        ..Default::default()
    };
    assert_eq!(code(pods.delete("a", &stale).await.unwrap_err()).0, 409);
    let exact = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: created.metadata.resource_version.clone(),
            uid: created.metadata.uid.clone(),
        }),
        ..Default::default()
    };
    pods.delete("a", &exact).await.unwrap();
    assert_eq!(code(pods.get("a").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let mut p = pod("a", "n", &[]);
    p.metadata.finalizers = Some(vec!["palisade.dev/test".into()]);
    pods.create(&PostParams::default(), &p).await.unwrap();
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    let mut held = pods.get("a").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    held.metadata.finalizers = None;
    pods.replace("a", &PostParams::default(), &held)
        .await
        .unwrap();
    assert_eq!(code(pods.get("a").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn generate_name_and_invalid_names() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let mut p = pod("x", "n", &[]);
    p.metadata = ObjectMeta {
        generate_name: Some("web-".into()),
        ..Default::default()
    };
    let created = pods.create(&PostParams::default(), &p).await.unwrap();
    let name = created.metadata.name.unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    let bad = pods
        .create(&PostParams::default(), &pod("Bad_Name", "n", &[]))
        .await
        .unwrap_err();
    assert_eq!(code(bad), (422, "Invalid".into()));
}
