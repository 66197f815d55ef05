//! The seam between the controller and the policy compiler.
//!
//! The controller hands every model change to a [`PolicyCompiler`] and asks it for the
//! compiled cluster. [`FullCompiler`] recompiles the whole model with
//! [`palisade_policy::compile::compile`] (what standalone mode and `palisadectl check`
//! run); an incremental compiler (`Compiler::apply(change)`) plugs in here by
//! implementing the same trait: its `apply` takes the changes, its `compiled` returns
//! the same output `compile()` would give for the model.

use crate::objects::ModelChange;
use palisade_policy::compile::{compile, tables::CompiledCluster};
use palisade_policy::model::Cluster;

pub trait PolicyCompiler: Send + Sync {
    /// One change of the model, in the order the controller saw them.
    fn apply(&mut self, change: &ModelChange);
    /// The compiled cluster for `model` (which already holds every applied change).
    fn compiled(&mut self, model: &Cluster) -> CompiledCluster;
}

/// Recompiles everything on each call.
#[derive(Debug, Default)]
pub struct FullCompiler;

impl PolicyCompiler for FullCompiler {
    fn apply(&mut self, _change: &ModelChange) {}

    fn compiled(&mut self, model: &Cluster) -> CompiledCluster {
        compile(model)
    }
}
