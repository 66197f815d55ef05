//! Server-side apply through kube: create, no-op re-apply, field-manager
//! conflicts and force, removal of fields a manager stops applying, and
//! associative lists (pod conditions) shared between managers.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Error};
use serde_json::{Value, json};

use crate::common::{double, namespace, pod, rv};

pub fn trust_boundaries(client: kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("palisade.dev", "v1alpha1", "TrustBoundary");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "trustboundaries");
    Api::namespaced_with(client, ns, &resource)
}

fn boundary(spec: Value) -> Value {
    json!({
        "apiVersion": "palisade.dev/v1alpha1",
        "kind": "TrustBoundary",
        "metadata": {"name": "tb"},
        "spec": spec,
    })
}

#[tokio::test]
async fn apply_creates_updates_and_an_identical_apply_is_a_no_op() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let api = trust_boundaries(client, "ns");
    let pp = PatchParams::apply("palisade-controller");
    let created = api
        .patch("tb", &pp, &Patch::Apply(boundary(json!({"tier": "a"}))))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let again = api
        .patch("tb", &pp, &Patch::Apply(boundary(json!({"tier": "a"}))))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(double.write_requests("trustboundaries", "ns", "tb"), 2);
    assert_eq!(
        double.stored_writes("palisade.dev", "trustboundaries", "ns", "tb"),
        1
    );

    let changed = api
        .patch("tb", &pp, &Patch::Apply(boundary(json!({"tier": "b"}))))
        .await
        .unwrap();
    assert!(rv(&changed.metadata) > rv(&created.metadata));
    assert_eq!(changed.metadata.generation, Some(2));
    let managed = changed.metadata.managed_fields.unwrap();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("palisade-controller"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));
}

#[tokio::test]
async fn another_manager_conflicts_unless_it_forces() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let api = trust_boundaries(client, "ns");
    api.patch(
        "tb",
        &PatchParams::apply("first"),
        &Patch::Apply(boundary(json!({"tier": "a", "shared": 1}))),
    )
    .await
    .unwrap();
    // Same value: shared ownership, no conflict.
    api.patch(
        "tb",
        &PatchParams::apply("second"),
        &Patch::Apply(boundary(json!({"shared": 1}))),
    )
    .await
    .unwrap();
    let err = api
        .patch(
            "tb",
            &PatchParams::apply("second"),
            &Patch::Apply(boundary(json!({"tier": "b"}))),
        )
        .await
        .unwrap_err();
    let Error::Api(status) = err else {
        panic!("expected a conflict")
    };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains("conflict with \"first\""),
        "{}",
        status.message
    );
    assert!(status.message.contains(".spec.tier"), "{}", status.message);

    let forced = api
        .patch(
            "tb",
            &PatchParams::apply("second").force(),
            &Patch::Apply(boundary(json!({"tier": "b", "shared": 1}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data["spec"]["tier"], "b");
    // "first" stops applying "tier" and "shared": "tier" now belongs to
    // "second", "shared" is still applied by "second": both stay.
    let after = api
        .patch(
            "tb",
            &PatchParams::apply("first"),
            &Patch::Apply(boundary(json!({}))),
        )
        .await
        .unwrap();
    assert_eq!(after.data["spec"], json!({"tier": "b", "shared": 1}));
}

#[tokio::test]
async fn fields_a_manager_no_longer_applies_are_removed() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let api = trust_boundaries(client, "ns");
    let pp = PatchParams::apply("controller");
    api.patch("tb", &pp, &Patch::Apply(boundary(json!({"a": 1, "b": 2}))))
        .await
        .unwrap();
    let after = api
        .patch("tb", &pp, &Patch::Apply(boundary(json!({"a": 1}))))
        .await
        .unwrap();
    assert_eq!(after.data["spec"], json!({"a": 1}));
}

#[tokio::test]
async fn pod_conditions_from_two_managers_merge_by_type() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    pods.create(&PostParams::default(), &pod("a", "n", &[]))
        .await
        .unwrap();
    let condition = |t: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
               "status": {"conditions": [{"type": t, "status": "True"}]}})
    };
    pods.patch_status(
        "a",
        &PatchParams::apply("kubelet"),
        &Patch::Apply(condition("Ready")),
    )
    .await
    .unwrap();
    let both = pods
        .patch_status(
            "a",
            &PatchParams::apply("palisade-agent"),
            &Patch::Apply(condition("palisade.dev/PolicyProgrammed")),
        )
        .await
        .unwrap();
    let mut types: Vec<String> = both
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    types.sort();
    assert_eq!(types, ["Ready", "palisade.dev/PolicyProgrammed"]);
}
