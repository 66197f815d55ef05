//! What the agent writes to the API: its NodePolicy's status (the generation and hash
//! it has in the kernel and its conditions; merge patch on the `status` subresource)
//! and the `palisade.dev/PolicyProgrammed` condition of its pods (strategic merge
//! patch on `pods/status`, which merges conditions by type). What to write is decided
//! in `conditions`; the bodies are built by pure functions; the sends are the I/O edge.

use super::conditions::Wanted;
use super::local_pods::PROGRAMMED_CONDITION;
use super::watch::{Source, api_resource};
use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use palisade_crds::publication::NodePolicyStatus;
use serde_json::{Value, json};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "palisade-agent";

/// The NodePolicy status body (a merge patch: the conditions list is replaced whole;
/// the agent owns it).
pub fn node_policy_status(status: &NodePolicyStatus) -> Value {
    json!({ "status": status })
}

/// The pod status body setting the PolicyProgrammed condition as `want` says. `now`
/// is an RFC 3339 time.
pub fn programmed_condition(now: &str, want: &Wanted) -> Value {
    json!({"status": {"conditions": [{
        "type": PROGRAMMED_CONDITION,
        "status": if want.status { "True" } else { "False" },
        "reason": want.reason,
        "message": want.message,
        "lastTransitionTime": now,
    }]}})
}

pub async fn write_node_policy_status(
    client: &kube::Client,
    node: &str,
    status: &NodePolicyStatus,
) -> Result<()> {
    let (resource, _) = Source::NodePolicy.resource(node);
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    api.patch_status(
        node,
        &patch_params(),
        &Patch::Merge(node_policy_status(status)),
    )
    .await
    .with_context(|| format!("writing NodePolicy {node} status"))?;
    Ok(())
}

pub async fn write_pod_condition(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    body: &Value,
) -> Result<()> {
    let resource = api_resource("", "v1", "Pod", "pods");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    api.patch_status(name, &patch_params(), &Patch::Strategic(body.clone()))
        .await
        .with_context(|| {
            format!("writing the {PROGRAMMED_CONDITION} condition of pod {namespace}/{name}")
        })?;
    Ok(())
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

/// Now, as the API's timestamps are written.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_api_shapes() {
        let status = NodePolicyStatus {
            applied_generation: Some(4),
            applied_hash: Some("abc".into()),
            conditions: vec![],
        };
        assert_eq!(
            node_policy_status(&status),
            json!({"status": {"appliedGeneration": 4, "appliedHash": "abc"}})
        );
        let want = Wanted {
            status: false,
            reason: "EnforcementOff",
            message: "off".into(),
        };
        let body = programmed_condition("2026-01-01T00:00:00Z", &want);
        let condition = &body["status"]["conditions"][0];
        assert_eq!(condition["type"], PROGRAMMED_CONDITION);
        assert_eq!(condition["status"], "False");
        assert_eq!(condition["reason"], "EnforcementOff");
        assert!(now_rfc3339().ends_with('Z'));
    }
}
