//! `status` of TrustBoundary and EgressPolicy, written by the controller (status
//! subresource), read by users and `kubectl get`: conditions in the shape of
//! `metav1.Condition`, the generation they describe, and how many nodes enforce it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type: the compiler accepted the object (`True`), or refused it (`False`,
/// reason [`REASON_INVALID`], the message naming the field and the problem).
pub const ACCEPTED: &str = "Accepted";
/// Condition type: every node that enforces the object applied its current generation
/// (`True`), or some have not yet (`False`, reason [`REASON_PENDING`], the message
/// saying how many have).
pub const PROGRAMMED: &str = "Programmed";

/// Reason of `Accepted=True`.
pub const REASON_ACCEPTED: &str = "Accepted";
/// Reason of `Accepted=False`.
pub const REASON_INVALID: &str = "Invalid";
/// Reason of `Programmed=True`.
pub const REASON_PROGRAMMED: &str = "Programmed";
/// Reason of `Programmed=False` while nodes are catching up.
pub const REASON_PENDING: &str = "Pending";

/// Most conditions a status holds (a bound for the API server; two are used).
const MAX_CONDITIONS: usize = 8;

/// The observed state of a TrustBoundary or EgressPolicy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// The metadata.generation of the object that the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
    /// How many nodes applied the policy tables of observedGeneration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub programmed_nodes: Option<i32>,
    /// How many nodes enforce this object (the nodes of the pods it applies to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub target_nodes: Option<i32>,
    /// Accepted and Programmed, one of each type at most.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = MAX_CONDITIONS),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"])
    )]
    pub conditions: Vec<Condition>,
}

/// One aspect of the object's state, as `metav1.Condition` (same fields, same
/// validation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type: Accepted or Programmed.
    #[serde(rename = "type")]
    #[schemars(
        length(max = 316),
        regex(
            pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
        )
    )]
    pub type_: String,
    /// True, False or Unknown.
    #[schemars(extend("enum" = ["True", "False", "Unknown"]))]
    pub status: String,
    /// The metadata.generation this condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
    /// When the status last changed (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: String,
    /// A CamelCase word for why.
    #[schemars(
        length(min = 1, max = 1024),
        regex(pattern = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    )]
    pub reason: String,
    /// For people: what is wrong and where (the field), or how far programming is.
    #[schemars(length(max = 32768))]
    pub message: String,
}
