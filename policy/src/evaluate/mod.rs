//! Reference evaluators: what happens to a new flow, decided two independent ways.
//!
//! - [`TableEvaluator`] and [`ClusterEvaluator`] read compiled tables exactly as the
//!   kernel programs do (ip cache LPM, policy LPM with the ANY fallback, fail-closed
//!   deny) and nothing else: a test against them tests what the kernel will do. One
//!   step is ahead of the ABI version 1 programs: the own node (HOST) is looked up in
//!   the policy table before it is allowed by default (see `table`).
//! - [`direct`] decides the same question straight from the model's policy objects
//!   (cluster policy tiers, TrustBoundaries, EgressPolicies and NetworkPolicy) with
//!   their published semantics, without identities, tables or per-zone expansion.
//!
//! Tests hold the two against each other on hand-written scenarios and on random
//! clusters.
//!
//! [`services`] decides flows to a Service address from the compiled Service table:
//! per backend, as the datapath translates it ([`flow_via_service`]).

pub mod direct;
mod flow;
mod lpm;
mod outcome;
pub mod services;
mod table;

#[cfg(test)]
mod tests;

pub use flow::{Endpoint, FlowDecision, FlowError, IpFamily};
pub use outcome::{Reason, strictest};
pub use services::{BackendDecision, ServiceFlowDecision, flow_via_service};
pub use table::{ClusterEvaluator, Decision, TableEvaluator, flow};
