//! Reference evaluators: what happens to a new flow, decided two independent ways.
//!
//! - [`TableEvaluator`] and [`ClusterEvaluator`] read compiled tables exactly as the
//!   kernel programs do (ip cache LPM, policy LPM with the ANY fallback, fail-closed
//!   deny) and nothing else: a test against them tests what the kernel will do.
//! - [`direct`] decides the same question straight from the model's NetworkPolicy
//!   objects with Kubernetes semantics, without identities or tables.
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
