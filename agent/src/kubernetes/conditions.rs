//! The conditions the agent reports, decided from what one pass saw. Pure: the driver
//! sends what these functions say must change.
//!
//! - Each pod's `palisade.dev/PolicyProgrammed` (a readiness gate): `True` once the
//!   pod's entry is in the kernel and enforced; `False` again when it no longer is
//!   (the node's enforcement switch is off, or its endpoint became pending), so a
//!   pod that gates on it leaves the Service endpoints while it is not fenced in.
//!   A pod that never had the condition is not given `False`: a missing readiness
//!   gate already counts as not ready, and one write per pod is enough.
//! - The NodePolicy's status conditions: `Applied` (the current spec is in the
//!   kernel, every endpoint enforced; else why not) and `Enforcing` (the node's
//!   switch), beside `appliedGeneration`/`appliedHash`.

use super::local_pods::LocalPod;
use super::plan::Plan;
use palisade_crds::publication::NodePolicyStatus;
use palisade_crds::status::Condition;
use std::collections::BTreeMap;

/// `PolicyProgrammed` reasons.
pub const REASON_PROGRAMMED: &str = "Programmed";
pub const REASON_HOST_NETWORK: &str = "HostNetwork";
pub const REASON_ENFORCEMENT_OFF: &str = "EnforcementOff";
pub const REASON_PENDING: &str = "Pending";

/// NodePolicy condition types and reasons.
pub const APPLIED: &str = "Applied";
pub const ENFORCING: &str = "Enforcing";
pub const REASON_APPLIED: &str = "Applied";
pub const REASON_ENDPOINTS_PENDING: &str = "EndpointsPending";
pub const REASON_KERNEL_WRITE_FAILED: &str = "KernelWriteFailed";
pub const REASON_SWITCHED_ON: &str = "SwitchedOn";
pub const REASON_SWITCHED_OFF: &str = "SwitchedOff";

/// Most pending endpoints a message names (the count is always given).
const PENDING_NAMED: usize = 5;

/// A condition as the agent wants it (time added when written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Wanted {
    fn new(status: bool, reason: &'static str, message: impl Into<String>) -> Self {
        Wanted {
            status,
            reason,
            message: message.into(),
        }
    }

    /// Status and reason, as a pod's observed condition is compared.
    pub fn key(&self) -> (bool, &'static str) {
        (self.status, self.reason)
    }
}

/// The `PolicyProgrammed` condition each pod must carry now, by UID, for the pods
/// whose condition must be written (it differs from what the pod shows).
pub fn pod_conditions(
    plan: &Plan,
    pods: &BTreeMap<String, LocalPod>,
    enforcing: bool,
) -> BTreeMap<String, Wanted> {
    let mut wanted = BTreeMap::new();
    for uid in &plan.covered {
        let Some(pod) = pods.get(uid) else { continue };
        let want = if pod.host_network {
            Wanted::new(
                true,
                REASON_HOST_NETWORK,
                "host-network pod: its traffic is the node's, which palisade does not enforce",
            )
        } else if enforcing {
            Wanted::new(
                true,
                REASON_PROGRAMMED,
                "the pod's policy is in the node's kernel tables",
            )
        } else {
            Wanted::new(
                false,
                REASON_ENFORCEMENT_OFF,
                "the node's enforcement switch is off: the pod's traffic is not enforced",
            )
        };
        wanted.insert(uid.clone(), want);
    }
    let pending: BTreeMap<&str, &str> = plan
        .pending
        .iter()
        .map(|p| (p.pod.as_str(), p.reason.as_str()))
        .collect();
    for pod in pods.values() {
        let Some(reason) = pending.get(pod.pod.to_string().as_str()) else {
            continue;
        };
        if !pod.finished
            && !plan.covered.contains(&pod.uid)
            && pod.condition.as_ref().is_some_and(|c| c.status)
        {
            let message = format!("the pod's policy is not in the kernel: {reason}");
            wanted.insert(pod.uid.clone(), Wanted::new(false, REASON_PENDING, message));
        }
    }
    wanted.retain(|uid, want| {
        pods[uid]
            .condition
            .as_ref()
            .is_none_or(|seen| (seen.status, seen.reason.as_str()) != want.key())
    });
    wanted
}

/// The NodePolicy's `Applied` condition: `kernel_error` if the last write to the
/// kernel failed, else whether every endpoint of the spec is enforced.
pub fn applied_condition(plan: &Plan, kernel_error: Option<&str>) -> Wanted {
    if let Some(error) = kernel_error {
        return Wanted::new(false, REASON_KERNEL_WRITE_FAILED, error);
    }
    if plan.pending.is_empty() {
        return Wanted::new(
            true,
            REASON_APPLIED,
            format!("{} endpoints enforced", plan.endpoints),
        );
    }
    let named: Vec<String> = plan
        .pending
        .iter()
        .take(PENDING_NAMED)
        .map(|p| format!("{} ({})", p.pod, p.reason))
        .collect();
    let more = plan.pending.len().saturating_sub(PENDING_NAMED);
    Wanted::new(
        false,
        REASON_ENDPOINTS_PENDING,
        format!(
            "{} endpoints enforced, {} pending: {}{}",
            plan.endpoints,
            plan.pending.len(),
            named.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ),
    )
}

/// The NodePolicy's `Enforcing` condition from the node's switch.
pub fn enforcing_condition(command_off: bool, node_label_off: bool) -> Wanted {
    match (command_off, node_label_off) {
        (false, false) => Wanted::new(true, REASON_SWITCHED_ON, "policy is enforced"),
        _ => {
            let by: Vec<&str> = [
                (command_off, "`palisade-agent enforcement off`"),
                (
                    node_label_off,
                    "the Node label palisade.dev/enforcement=off",
                ),
            ]
            .into_iter()
            .filter_map(|(on, what)| on.then_some(what))
            .collect();
            Wanted::new(
                false,
                REASON_SWITCHED_OFF,
                format!(
                    "enforcement is off on this node (by {}): every packet passes",
                    by.join(" and ")
                ),
            )
        }
    }
}

/// The NodePolicy status to write, if it differs from `seen`: `applied` is the
/// (generation, hash) in the kernel, `wanted` the conditions by type. A condition
/// whose status did not change keeps its `lastTransitionTime`.
pub fn node_policy_status(
    seen: &NodePolicyStatus,
    applied: Option<(i64, &str)>,
    spec_generation: i64,
    wanted: &[(&str, Wanted)],
    now: &str,
) -> Option<NodePolicyStatus> {
    let conditions = wanted
        .iter()
        .map(|(type_, want)| {
            let status = if want.status { "True" } else { "False" };
            let since = seen
                .conditions
                .iter()
                .find(|c| c.type_ == *type_ && c.status == status)
                .map_or(now, |c| c.last_transition_time.as_str());
            Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                observed_generation: Some(spec_generation),
                last_transition_time: since.to_string(),
                reason: want.reason.to_string(),
                message: want.message.clone(),
            }
        })
        .collect();
    let next = NodePolicyStatus {
        applied_generation: applied.map(|(g, _)| g).or(seen.applied_generation),
        applied_hash: applied
            .map(|(_, h)| h.to_string())
            .or_else(|| seen.applied_hash.clone()),
        conditions,
    };
    (next != *seen).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::local_pods::SeenCondition;
    use crate::status::PendingPod;
    use palisade_policy::model::ObjectRef;

    fn pod(name: &str, uid: &str, seen: Option<(bool, &str)>) -> (String, LocalPod) {
        (
            uid.to_string(),
            LocalPod {
                uid: uid.to_string(),
                pod: ObjectRef {
                    namespace: "shop".into(),
                    name: name.into(),
                },
                host_network: false,
                ips: vec![],
                condition: seen.map(|(status, reason)| SeenCondition {
                    status,
                    reason: reason.to_string(),
                }),
                finished: false,
            },
        )
    }

    fn plan(covered: &[&str], pending: &[&str]) -> Plan {
        Plan {
            covered: covered.iter().map(|s| s.to_string()).collect(),
            pending: pending
                .iter()
                .map(|p| PendingPod {
                    pod: format!("shop/{p}"),
                    reason: "pod cgroup not found under kubepods (yet)".into(),
                })
                .collect(),
            endpoints: covered.len(),
            ..Plan::default()
        }
    }

    #[test]
    fn pods_are_programmed_then_false_when_switched_off_or_pending() {
        let pods = BTreeMap::from([
            pod("a", "ua", None),
            pod("b", "ub", Some((true, REASON_PROGRAMMED))),
            pod("c", "uc", Some((true, REASON_PROGRAMMED))),
            pod("d", "ud", None),
        ]);
        let p = plan(&["ua", "ub"], &["c", "d"]);
        let on = pod_conditions(&p, &pods, true);
        // a: new True; b: unchanged; c: was True, now pending; d: never set, left alone.
        assert_eq!(on.keys().collect::<Vec<_>>(), ["ua", "uc"]);
        assert_eq!(on["ua"].key(), (true, REASON_PROGRAMMED));
        assert_eq!(on["uc"].key(), (false, REASON_PENDING));
        assert!(
            on["uc"].message.contains("cgroup not found"),
            "{:?}",
            on["uc"]
        );
        let off = pod_conditions(&p, &pods, false);
        assert_eq!(off["ua"].key(), (false, REASON_ENFORCEMENT_OFF));
        assert_eq!(off["ub"].key(), (false, REASON_ENFORCEMENT_OFF));
    }

    #[test]
    fn the_node_policy_status_is_written_only_when_it_changes() {
        let p = plan(&["ua"], &[]);
        let wanted = [
            (APPLIED, applied_condition(&p, None)),
            (ENFORCING, enforcing_condition(false, false)),
        ];
        let first = node_policy_status(
            &NodePolicyStatus::default(),
            Some((3, "h")),
            3,
            &wanted,
            "t1",
        )
        .expect("a first write");
        assert_eq!(first.applied_generation, Some(3));
        assert_eq!(first.conditions[0].reason, REASON_APPLIED);
        assert_eq!(first.conditions[0].message, "1 endpoints enforced");
        assert_eq!(
            node_policy_status(&first, Some((3, "h")), 3, &wanted, "t2"),
            None
        );
        // Switched off: Enforcing turns False at t2; Applied keeps its time.
        let off = [
            (APPLIED, applied_condition(&p, None)),
            (ENFORCING, enforcing_condition(false, true)),
        ];
        let second = node_policy_status(&first, Some((3, "h")), 3, &off, "t2").unwrap();
        assert_eq!(second.conditions[0].last_transition_time, "t1");
        assert_eq!(second.conditions[1].status, "False");
        assert_eq!(second.conditions[1].last_transition_time, "t2");
        assert!(second.conditions[1].message.contains("Node label"));
        // A failed kernel write keeps the last applied generation.
        let failed = [(
            APPLIED,
            applied_condition(&p, Some("PALISADE_POLICY insert")),
        )];
        let third = node_policy_status(&second, None, 4, &failed, "t3").unwrap();
        assert_eq!(third.applied_generation, Some(3));
        assert_eq!(third.conditions[0].reason, REASON_KERNEL_WRITE_FAILED);
    }

    #[test]
    fn pending_endpoints_are_named_up_to_a_bound() {
        let names: Vec<String> = (0..8).map(|i| format!("p{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let want = applied_condition(&plan(&[], &refs), None);
        assert_eq!(want.key(), (false, REASON_ENDPOINTS_PENDING));
        assert!(want.message.contains("8 pending"), "{}", want.message);
        assert!(want.message.ends_with("and 3 more"), "{}", want.message);
    }
}
