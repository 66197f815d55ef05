//! Lists: pagination with consistent snapshots, resourceVersion semantics
//! (any, not-older-than, exact, expired, too large), label and field
//! selectors, metadata-only lists.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams, VersionMatch};
use kube::{Api, Error};

use crate::common::{client_without_retries, double, namespace, pod};

fn names(list: &kube::core::ObjectList<Pod>) -> Vec<String> {
    list.items
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect()
}

fn api_code(e: Error) -> u16 {
    match e {
        Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn pages_form_one_consistent_snapshot() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    for i in 0..7 {
        pods.create(&PostParams::default(), &pod(&format!("p{i}"), "n", &[]))
            .await
            .unwrap();
    }
    let first = pods.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(names(&first), ["p0", "p1", "p2"]);
    assert_eq!(first.metadata.remaining_item_count, Some(4));
    // A change between pages does not show up in later pages.
    pods.create(&PostParams::default(), &pod("p9", "n", &[]))
        .await
        .unwrap();
    let token = first.metadata.continue_.clone().unwrap();
    let second = pods
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(&second), ["p3", "p4", "p5"]);
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    let token = second.metadata.continue_.clone().unwrap();
    let third = pods
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(&third), ["p6"]);
    assert!(third.metadata.continue_.is_none());

    // A continue token older than the compacted history is gone.
    let again = pods.list(&ListParams::default().limit(2)).await.unwrap();
    pods.create(&PostParams::default(), &pod("q", "n", &[]))
        .await
        .unwrap();
    double.compact();
    let token = again.metadata.continue_.unwrap();
    let err = pods
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap_err();
    assert_eq!(api_code(err), 410);
}

#[tokio::test]
async fn resource_version_semantics() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    pods.create(&PostParams::default(), &pod("a", "n", &[]))
        .await
        .unwrap();
    let before = double.revision().to_string();
    pods.create(&PostParams::default(), &pod("b", "n", &[]))
        .await
        .unwrap();

    // Exact: the state at that revision, reconstructed from history.
    let exact = pods
        .list(
            &ListParams::default()
                .at(&before)
                .matching(VersionMatch::Exact),
        )
        .await
        .unwrap();
    assert_eq!(names(&exact), ["a"]);
    assert_eq!(
        exact.metadata.resource_version.as_deref(),
        Some(before.as_str())
    );
    // Not older than: the current state.
    let fresh = pods
        .list(
            &ListParams::default()
                .at(&before)
                .matching(VersionMatch::NotOlderThan),
        )
        .await
        .unwrap();
    assert_eq!(names(&fresh), ["a", "b"]);
    // Any ("0").
    assert_eq!(
        names(&pods.list(&ListParams::default().match_any()).await.unwrap()),
        ["a", "b"]
    );
    // From the future: 504 Timeout (ResourceVersionTooLarge).
    let future = (double.revision() + 100).to_string();
    let no_retries: Api<Pod> = Api::namespaced(client_without_retries(&double), "ns");
    let err = no_retries
        .list(
            &ListParams::default()
                .at(&future)
                .matching(VersionMatch::NotOlderThan),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(err), 504);
    // Compacted: 410 Gone.
    double.compact();
    let err = pods
        .list(
            &ListParams::default()
                .at(&before)
                .matching(VersionMatch::Exact),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(err), 410);
}

#[tokio::test]
async fn selectors_filter_and_unknown_fields_are_refused() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    namespace(&client, "other").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ns");
    pods.create(
        &PostParams::default(),
        &pod("a", "node-1", &[("app", "web")]),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &pod("b", "node-2", &[("app", "web")]),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &pod("c", "node-1", &[("app", "db")]),
    )
    .await
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), "other")
        .create(&PostParams::default(), &pod("d", "node-1", &[]))
        .await
        .unwrap();

    let on_node = pods
        .list(&ListParams::default().fields("spec.nodeName=node-1"))
        .await
        .unwrap();
    assert_eq!(names(&on_node), ["a", "c"]);
    let web = pods
        .list(&ListParams::default().labels("app in (web),app!=db"))
        .await
        .unwrap();
    assert_eq!(names(&web), ["a", "b"]);
    let everywhere: Api<Pod> = Api::all(client);
    let all_on_node = everywhere
        .list(&ListParams::default().fields("spec.nodeName=node-1"))
        .await
        .unwrap();
    assert_eq!(names(&all_on_node), ["a", "c", "d"]);
    let err = pods
        .list(&ListParams::default().fields("spec.bogus=x"))
        .await
        .unwrap_err();
    assert_eq!(api_code(err), 400);

    let meta = pods
        .list_metadata(&ListParams::default().labels("app=db"))
        .await
        .unwrap();
    assert_eq!(meta.items.len(), 1);
    assert_eq!(meta.items[0].metadata.name.as_deref(), Some("c"));
}
