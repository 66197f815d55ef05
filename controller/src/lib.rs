//! palisade's cluster controller, as a library (the `palisade-controller` binary and
//! the end-to-end tests drive it).
//!
//! Pure core: [`objects`] (watched objects -> policy model, through the manifest
//! parser), [`compiler`] (the seam to the policy compiler), [`publication`] (compiled
//! cluster -> sharded ClusterTables and NodePolicies with content hashes),
//! [`policy_status`] (conditions) and [`reconcile`] (desired vs published -> plan).
//! I/O at the edges: [`watch`], [`controller`] (the driver), [`leader`] (Lease),
//! [`events`], [`metrics`], [`health`], [`telemetry`].

pub mod compiler;
pub mod controller;
pub mod events;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod objects;
pub mod policy_status;
pub mod publication;
pub mod reconcile;
pub mod telemetry;
pub mod watch;
