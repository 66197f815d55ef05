//! The CustomResourceDefinitions of palisade's own kinds, `palisade.dev/v1alpha1`
//! TrustBoundary and EgressPolicy, built from the Rust types that parse them (the wire
//! types of `palisade_policy::manifest`, feature `schema`) so that the API server and
//! the compiler agree on what an object may say; and the status both kinds carry.
//!
//! - [`definitions`]: the CRD objects (names, printer columns, status subresource,
//!   schema with CEL rules);
//! - [`structural`]: JSON Schema -> Kubernetes structural schema, and its rules checked;
//! - [`publication`]: the controller's publication kinds, ClusterTable and NodePolicy
//!   (types and CRDs);
//! - [`status`]: `status` (conditions Accepted and Programmed), for the controller;
//! - [`render`] and [`files`]: the YAML files of `charts/palisade/crds/`, written by
//!   `cargo xtask crds` and checked by `cargo xtask crds --check` and this crate's tests.

mod compact_tables;
pub mod definitions;
pub mod files;
mod integer_keys;
pub mod publication;
pub mod render;
pub mod status;
pub mod structural;
