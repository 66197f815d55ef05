//! Test controls and limits: injected failures, the request log, request
//! and object size limits, discovery, custom types, stop and resume.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::Discovery;
use kube::{Api, Error};
use palisade_apiserver_double::{FaultRule, ResourceType, Scope, Verb};
use serde_json::json;

use crate::common::{double, namespace, pod};

fn api_code(e: Error) -> u16 {
    match e {
        Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn injected_failures_hit_the_next_matching_requests_only() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    double.fail_next(FaultRule::new(Some(Verb::Create), 1, 500).on("pods"));
    double.fail_next(FaultRule::new(Some(Verb::List), 1, 429));
    let err = pods
        .create(&PostParams::default(), &pod("a", "n", &[]))
        .await
        .unwrap_err();
    assert_eq!(api_code(err), 500);
    pods.create(&PostParams::default(), &pod("a", "n", &[]))
        .await
        .unwrap();
    // kube retries 429 (after the Retry-After the double sends) by itself.
    assert_eq!(pods.list(&Default::default()).await.unwrap().items.len(), 1);
    let codes: Vec<(Verb, u16)> = double
        .requests()
        .iter()
        .filter(|r| r.plural == "pods")
        .map(|r| (r.verb, r.code))
        .collect();
    assert_eq!(
        codes,
        [
            (Verb::Create, 500),
            (Verb::Create, 201),
            (Verb::List, 429),
            (Verb::List, 200)
        ]
    );
}

#[tokio::test]
async fn oversized_requests_and_objects_are_refused_with_413() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    for (name, size) in [("body", 4 * 1024 * 1024), ("object", 2 * 1024 * 1024)] {
        let mut p = pod(name, "n", &[]);
        p.metadata.annotations = Some([("big".to_string(), "x".repeat(size))].into());
        let err = pods.create(&PostParams::default(), &p).await.unwrap_err();
        assert_eq!(api_code(err), 413, "{name}");
    }
    assert!(
        pods.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn discovery_and_version_describe_the_registered_types() {
    let double = double().await;
    double.register(ResourceType::custom(
        "example.com",
        "v1",
        "widgets",
        "Widget",
        Scope::Cluster,
    ));
    let client = double.client();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    for group in [
        "",
        "palisade.dev",
        "policy.networking.k8s.io",
        "example.com",
    ] {
        assert!(discovery.has_group(group), "group {group:?}");
    }
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let (resource, caps) = discovery.resolve_gvk(&gvk).unwrap();
    assert_eq!(resource.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Cluster);

    let widgets: Api<DynamicObject> = Api::all_with(client, &ApiResource::from_gvk(&gvk));
    let widget = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}
    }))
    .unwrap();
    widgets
        .create(&PostParams::default(), &widget)
        .await
        .unwrap();
    assert_eq!(widgets.get("w").await.unwrap().data["spec"]["size"], 3);
}

#[tokio::test]
async fn a_stopped_server_refuses_connections_and_comes_back_with_its_state() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    pods.create(&PostParams::default(), &pod("a", "n", &[]))
        .await
        .unwrap();
    double.stop();
    assert!(!double.is_running());
    assert!(pods.get("a").await.is_err());
    double.resume().await.unwrap();
    assert_eq!(
        pods.get("a").await.unwrap().metadata.name.as_deref(),
        Some("a")
    );
}

#[tokio::test]
async fn delayed_responses_still_complete_and_are_logged() {
    let double = double().await;
    double.set_response_delay(Some(std::time::Duration::from_millis(50)));
    let client = double.client();
    namespace(&client, "ns").await;
    double.set_response_delay(None);
    let records = double.requests();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].verb, records[0].code, records[0].plural.as_str()),
        (Verb::Create, 201, "namespaces")
    );
    // kube sends no user agent and create names no manager.
    assert_eq!(records[0].field_manager, "unknown");
}
