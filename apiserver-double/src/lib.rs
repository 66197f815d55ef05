//! An in-process test double of the Kubernetes API server.
//!
//! No kube-apiserver can be installed where palisade's tests run, so this
//! crate serves the real HTTP API on a loopback port for kube's client, with
//! the semantics the controller and agent rely on: one global revision as
//! resourceVersion, list with resourceVersion and pagination, watch streams
//! with bookmarks, 410 Gone past the history window, server-side apply with
//! field-manager conflicts, the status subresource, generation, optimistic
//! concurrency conflicts and request size limits. Tests control it: restart,
//! dropped watches, compaction, injected failures, request log. README.md
//! lists what is implemented and what is simplified.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let double = palisade_apiserver_double::ApiServerDouble::start().await?;
//! let client = double.client();
//! # drop(client); Ok(()) }
//! ```

mod apply;
mod discovery;
mod double;
mod faults;
mod fieldset;
mod handler;
mod merge;
mod resource;
mod route;
mod selector;
mod server;
mod status;
mod store;
mod watch_stream;

pub use double::{ApiServerDouble, Options, TEST_MANAGER};
pub use faults::{FaultRule, RequestRecord};
pub use resource::{ListMap, Registry, ResourceKey, ResourceType, Scope};
pub use route::Verb;
pub use status::ApiError;
