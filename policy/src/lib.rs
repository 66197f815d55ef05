//! palisade's policy library, shared by the controller, the agent and `palisadectl`.
//!
//! Pure and free of I/O: text in, tables out.
//! - [`manifest`]: Kubernetes-style YAML documents -> typed objects, with errors that
//!   name the file, the object and the field.
//! - [`model`]: the validated cluster model (namespaces, pods, nodes, policies).
//! - [`compile`]: model -> identities, the IP-to-identity cache and per-node policy
//!   tables, in exactly the shape the kernel maps hold (see `palisade-abi`).
//! - [`evaluate`]: a reference evaluator that reads compiled tables the way the kernel
//!   programs do; tests hold it against a direct reading of the policy objects.

pub mod compile;
pub mod evaluate;
pub mod manifest;
pub mod model;
