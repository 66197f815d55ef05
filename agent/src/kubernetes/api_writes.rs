//! What the agent writes to the API: its NodePolicy's status (the generation and hash
//! it has in the kernel; merge patch on the `status` subresource) and the
//! `palisade.dev/PolicyProgrammed` condition of each local pod whose entry is in the
//! kernel (strategic merge patch on `pods/status`, which merges conditions by type).
//! The bodies are built by pure functions; the sends are the I/O edge.

use super::local_pods::PROGRAMMED_CONDITION;
use super::watch::{Source, api_resource};
use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "palisade-agent";

/// The NodePolicy status body for what is in the kernel.
pub fn node_policy_status(generation: i64, hash: &str) -> Value {
    json!({"status": {"appliedGeneration": generation, "appliedHash": hash}})
}

/// The pod status body setting the PolicyProgrammed condition to True. `now` is an
/// RFC 3339 time; `host_network` pods get their own reason (no policy applies to host
/// traffic).
pub fn programmed_condition(now: &str, host_network: bool) -> Value {
    let (reason, message) = if host_network {
        (
            "HostNetwork",
            "host-network pod: its traffic is the node's, which palisade does not enforce",
        )
    } else {
        (
            "Programmed",
            "the pod's policy is in the node's kernel tables",
        )
    };
    json!({"status": {"conditions": [{
        "type": PROGRAMMED_CONDITION,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
    }]}})
}

pub async fn write_node_policy_status(
    client: &kube::Client,
    node: &str,
    generation: i64,
    hash: &str,
) -> Result<()> {
    let (resource, _) = Source::NodePolicy.resource(node);
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    api.patch_status(
        node,
        &patch_params(),
        &Patch::Merge(node_policy_status(generation, hash)),
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
        assert_eq!(
            node_policy_status(4, "abc"),
            json!({"status": {"appliedGeneration": 4, "appliedHash": "abc"}})
        );
        let body = programmed_condition("2026-01-01T00:00:00Z", false);
        let condition = &body["status"]["conditions"][0];
        assert_eq!(condition["type"], PROGRAMMED_CONDITION);
        assert_eq!(condition["status"], "True");
        assert_eq!(condition["reason"], "Programmed");
        assert_eq!(
            programmed_condition("t", true)["status"]["conditions"][0]["reason"],
            "HostNetwork"
        );
        assert!(now_rfc3339().ends_with('Z'));
    }
}
