//! The status of a TrustBoundary or EgressPolicy: conditions Accepted and Programmed,
//! observedGeneration, programmedNodes and targetNodes. Pure.
//!
//! - Accepted: True when the current generation parses; False (reason Invalid) with
//!   every error, each naming its field, otherwise.
//! - Programmed: True when every node whose NodePolicy depends on the object (cites
//!   one of its rules) reports an appliedGeneration at least the NodePolicy generation
//!   that first carried the object's current generation; False (reason Pending) with
//!   the counts until then; False (reason Invalid) while the current generation is
//!   refused (the nodes keep the last accepted one).
//!
//! A condition's lastTransitionTime changes only when its status does.

use crate::objects::Rejection;
use palisade_crds::status::{
    ACCEPTED, Condition, PROGRAMMED, PolicyStatus, REASON_ACCEPTED, REASON_INVALID, REASON_PENDING,
    REASON_PROGRAMMED,
};

/// How far the nodes are with an accepted object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub programmed: usize,
    pub targets: usize,
}

/// The status the object should have. `current` is what it has (its transition times
/// are kept where the condition's status does not change); `now` is RFC 3339.
pub fn policy_status(
    generation: i64,
    rejection: Option<&Rejection>,
    progress: Progress,
    current: &PolicyStatus,
    now: &str,
) -> PolicyStatus {
    let condition = |type_: &str, ok: bool, reason: &str, message: String| {
        let status = if ok { "True" } else { "False" };
        let last_transition_time = current
            .conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.to_string());
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            observed_generation: Some(generation),
            last_transition_time,
            reason: reason.to_string(),
            message,
        }
    };
    let accepted = match rejection {
        None => condition(
            ACCEPTED,
            true,
            REASON_ACCEPTED,
            format!("generation {generation} compiled"),
        ),
        Some(rejection) => condition(ACCEPTED, false, REASON_INVALID, rejection.message.clone()),
    };
    let Progress {
        programmed,
        targets,
    } = progress;
    let programmed_condition = match rejection {
        Some(_) => condition(
            PROGRAMMED,
            false,
            REASON_INVALID,
            format!(
                "generation {generation} is not accepted; nodes keep enforcing the last accepted \
                 generation, if any"
            ),
        ),
        None if programmed >= targets => condition(
            PROGRAMMED,
            true,
            REASON_PROGRAMMED,
            format!("applied by {programmed} of {targets} nodes"),
        ),
        None => condition(
            PROGRAMMED,
            false,
            REASON_PENDING,
            format!("applied by {programmed} of {targets} nodes"),
        ),
    };
    PolicyStatus {
        observed_generation: Some(generation),
        programmed_nodes: Some(programmed as i32),
        target_nodes: Some(targets as i32),
        conditions: vec![accepted, programmed_condition],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_and_programmed() {
        let status = policy_status(
            3,
            None,
            Progress {
                programmed: 2,
                targets: 2,
            },
            &PolicyStatus::default(),
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.programmed_nodes, Some(2));
        assert_eq!(status.conditions[0].status, "True");
        assert_eq!(status.conditions[1].status, "True");
        assert_eq!(status.conditions[1].message, "applied by 2 of 2 nodes");
    }

    #[test]
    fn transition_times_move_only_with_the_status() {
        let pending = Progress {
            programmed: 1,
            targets: 2,
        };
        let first = policy_status(1, None, pending, &PolicyStatus::default(), "t1");
        assert_eq!(first.conditions[1].reason, "Pending");
        let again = policy_status(1, None, pending, &first, "t2");
        assert_eq!(again, first);
        let done = policy_status(
            1,
            None,
            Progress {
                programmed: 2,
                targets: 2,
            },
            &first,
            "t3",
        );
        assert_eq!(done.conditions[0].last_transition_time, "t1");
        assert_eq!(done.conditions[1].last_transition_time, "t3");
    }

    #[test]
    fn a_rejection_names_the_field() {
        let rejection = Rejection {
            field: Some("spec.egress[0].to[0].cidr".into()),
            message: "spec.egress[0].to[0].cidr: invalid CIDR".into(),
        };
        let status = policy_status(
            2,
            Some(&rejection),
            Progress {
                programmed: 0,
                targets: 0,
            },
            &PolicyStatus::default(),
            "t",
        );
        assert_eq!(status.conditions[0].status, "False");
        assert_eq!(status.conditions[0].reason, "Invalid");
        assert!(
            status.conditions[0]
                .message
                .contains("spec.egress[0].to[0].cidr")
        );
        assert_eq!(status.conditions[1].status, "False");
    }
}
