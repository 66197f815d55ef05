//! Reference evaluators: what happens to a new flow, decided two independent ways.
//!
//! - [`TableEvaluator`] and [`ClusterEvaluator`] read compiled tables exactly as the
//!   kernel programs do (ip cache LPM, policy LPM with the ANY fallback, fail-closed
//!   deny) and nothing else: a test against them tests what the kernel will do. One
//!   step is ahead of the ABI version 1 programs: the own node (HOST) is looked up in
//!   the policy table before it is allowed by default (see `table`).
//! - [`direct`] decides the same question straight from the model's policy objects
//!   (cluster policy tiers and NetworkPolicy) with their published semantics, without
//!   identities or tables.
//!
//! Tests hold the two against each other on hand-written scenarios and on random
//! clusters.

pub mod direct;
mod flow;
mod lpm;
mod outcome;
mod table;

#[cfg(test)]
mod tests;

pub use flow::{Endpoint, FlowDecision, FlowError, IpFamily};
pub use outcome::{Reason, strictest};
pub use table::{ClusterEvaluator, Decision, TableEvaluator, flow};
