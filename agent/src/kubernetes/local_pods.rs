//! The pods bound to this node, as the agent needs them: UID (to find the pod's cgroup),
//! namespace/name (how the NodePolicy names endpoints), addresses (the socket hooks'
//! own-address check), host networking, and the `palisade.dev/PolicyProgrammed`
//! condition it carries. Pure: parsed from the Pod's JSON.

use palisade_policy::model::ObjectRef;
use serde_json::Value;
use std::net::IpAddr;

/// The pod condition the agent sets once the pod's endpoint entry is in the kernel.
pub const PROGRAMMED_CONDITION: &str = "palisade.dev/PolicyProgrammed";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPod {
    pub uid: String,
    pub pod: ObjectRef,
    /// `spec.hostNetwork`: the pod shares the node's network namespace; its traffic is
    /// host traffic (no endpoint, never enforced).
    pub host_network: bool,
    /// `status.podIPs` (or `status.podIP`), canonical.
    pub ips: Vec<IpAddr>,
    /// `status.conditions`' `palisade.dev/PolicyProgrammed`, if present.
    pub condition: Option<SeenCondition>,
    /// `status.phase` is Succeeded or Failed: its containers are gone.
    pub finished: bool,
}

/// A pod's `palisade.dev/PolicyProgrammed` condition as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenCondition {
    /// `status` is `True`.
    pub status: bool,
    pub reason: String,
}

impl LocalPod {
    /// The pod shows `palisade.dev/PolicyProgrammed=True`.
    pub fn programmed(&self) -> bool {
        self.condition.as_ref().is_some_and(|c| c.status)
    }
}

/// The pod a Pod object describes; None if it has no UID or name (not a stored pod).
pub fn parse(object: &Value) -> Option<LocalPod> {
    let metadata = &object["metadata"];
    let uid = metadata["uid"].as_str()?.to_string();
    let name = metadata["name"].as_str()?.to_string();
    let namespace = metadata["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let status = &object["status"];
    let mut ips: Vec<IpAddr> = status["podIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["ip"].as_str()?.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    if ips.is_empty()
        && let Some(ip) = status["podIP"]
            .as_str()
            .and_then(|s| s.parse::<IpAddr>().ok())
    {
        ips.push(ip.to_canonical());
    }
    let condition = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == PROGRAMMED_CONDITION)
        .map(|c| SeenCondition {
            status: c["status"] == "True",
            reason: c["reason"].as_str().unwrap_or("").to_string(),
        });
    let phase = status["phase"].as_str().unwrap_or("");
    Some(LocalPod {
        uid,
        pod: ObjectRef { namespace, name },
        host_network: object["spec"]["hostNetwork"].as_bool().unwrap_or(false),
        ips,
        condition,
        finished: matches!(phase, "Succeeded" | "Failed"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_addresses_networking_and_the_condition() {
        let pod = parse(&json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1"},
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                       "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
                       "conditions": [{"type": PROGRAMMED_CONDITION, "status": "True"}]}
        }))
        .unwrap();
        assert_eq!(pod.pod.to_string(), "shop/web-1");
        assert_eq!(pod.ips.len(), 2);
        assert!(pod.programmed() && !pod.host_network && !pod.finished);

        let host = parse(&json!({
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "u-2"},
            "spec": {"hostNetwork": true},
            "status": {"phase": "Succeeded", "podIP": "192.168.0.1",
                       "conditions": [{"type": PROGRAMMED_CONDITION, "status": "False"}]}
        }))
        .unwrap();
        assert!(host.host_network && host.finished && !host.programmed());
        assert_eq!(host.condition.map(|c| c.status), Some(false));
        assert_eq!(host.ips, ["192.168.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(parse(&json!({"metadata": {"name": "x"}})), None);
    }
}
