//! palisade's cluster controller, as a library (the `palisade-controller` binary and
//! the end-to-end tests drive it).
//!
//! Pure core: [`objects`] (watched objects -> policy model, through the manifest
//! parser), [`compiler_changes`] (model changes -> the incremental compiler's
//! changes), [`publication`] (compiled cluster -> sharded ClusterTables and
//! NodePolicies with content hashes), [`sharded_table`] and [`publication_state`]
//! (that publication kept up to date from the compiler's deltas), [`policy_status`]
//! (conditions) and [`reconcile`] (desired vs published -> plan). I/O at the edges:
//! [`compiler`] (the thread owning the incremental compiler), [`watch`],
//! [`controller`] (the driver), [`leader`] (Lease), [`events`], [`metrics`],
//! [`health`], [`telemetry`].

pub mod compiler;
pub mod compiler_changes;
pub mod controller;
pub mod events;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod objects;
pub mod policy_status;
pub mod publication;
pub mod publication_state;
pub mod reconcile;
pub mod sharded_table;
pub mod telemetry;
pub mod watch;

#[cfg(test)]
mod incremental_tests;
