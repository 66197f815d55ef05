//! The seam between the controller and the policy compiler: a dedicated thread (the
//! incremental [`Compiler`] holds `Rc`s, so it cannot move between the runtime's
//! threads) that owns the compiler and the publication state.
//!
//! The first job after the initial list is a build: `Compiler::new` on the whole
//! model, and the whole publication. Every later job is a batch of [`Change`]s; the
//! answer is only the publication objects whose content changed
//! ([`PublicationUpdate`]), which the driver applies to its copy of the publication.
//! [`IncrementalPublication`] is the thread's pure state, usable without the thread.

use crate::publication::Desired;
use crate::publication_state::{PublicationState, PublicationUpdate};
use palisade_policy::compile::{Change, Compiler};
use palisade_policy::model::Cluster;
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Instant;
use tokio::sync::oneshot;

/// The incremental compiler and what is published for its result.
pub struct IncrementalPublication {
    compiler: Compiler,
    state: PublicationState,
}

impl IncrementalPublication {
    /// Compiles `cluster` from scratch; `previous_shards` is each table's published
    /// shard count.
    pub fn new(cluster: Cluster, previous_shards: &BTreeMap<&'static str, u32>) -> (Self, Desired) {
        let mut compiler = Compiler::new(cluster);
        compiler.take_delta();
        let (state, desired) = PublicationState::build(compiler.compiled(), previous_shards);
        (Self { compiler, state }, desired)
    }

    /// Applies `changes` in order; returns the objects whose content changed.
    pub fn apply(&mut self, changes: Vec<Change>) -> Applied {
        for change in changes {
            self.compiler.apply(change);
        }
        let delta = self.compiler.take_delta();
        let update = self.state.update(self.compiler.compiled(), &delta);
        Applied {
            update,
            full_recompile: delta.full_recompile,
        }
    }

    pub fn compiler(&self) -> &Compiler {
        &self.compiler
    }
}

/// The answer to a batch of changes.
#[derive(Debug)]
pub struct Applied {
    pub update: PublicationUpdate,
    /// The compiler recompiled everything.
    pub full_recompile: bool,
}

enum Job {
    Build {
        cluster: Box<Cluster>,
        previous_shards: BTreeMap<&'static str, u32>,
        reply: oneshot::Sender<Desired>,
    },
    Apply {
        changes: Vec<Change>,
        reply: oneshot::Sender<Option<Applied>>,
    },
}

/// The compile thread went away (it panicked) or was never built: build again.
#[derive(Debug)]
pub struct WorkerLost;

/// A handle to the compile thread; the thread ends when the handle is dropped.
pub struct CompileWorker {
    jobs: mpsc::Sender<Job>,
}

impl CompileWorker {
    pub fn start() -> Self {
        let (jobs, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("palisade-compile".into())
            .spawn(move || serve(receiver))
            .expect("the compile thread starts");
        CompileWorker { jobs }
    }

    /// Compiles `cluster` from scratch (dropping any previous state first) and
    /// returns its whole publication.
    pub async fn build(
        &self,
        cluster: Cluster,
        previous_shards: BTreeMap<&'static str, u32>,
    ) -> Result<Desired, WorkerLost> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Build {
                cluster: Box::new(cluster),
                previous_shards,
                reply,
            })
            .map_err(|_| WorkerLost)?;
        answer.await.map_err(|_| WorkerLost)
    }

    /// Applies `changes`; the objects whose content changed.
    pub async fn apply(&self, changes: Vec<Change>) -> Result<Applied, WorkerLost> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Apply { changes, reply })
            .map_err(|_| WorkerLost)?;
        answer.await.map_err(|_| WorkerLost)?.ok_or(WorkerLost)
    }
}

fn serve(jobs: mpsc::Receiver<Job>) {
    let mut current: Option<IncrementalPublication> = None;
    for job in jobs {
        match job {
            Job::Build {
                cluster,
                previous_shards,
                reply,
            } => {
                // The old state goes first: two at once would double the peak memory.
                drop(current.take());
                let started = Instant::now();
                let (publication, desired) =
                    IncrementalPublication::new(*cluster, &previous_shards);
                tracing::info!(
                    seconds = started.elapsed().as_secs_f64(),
                    nodes = desired.nodes.len(),
                    "compiled the whole model"
                );
                current = Some(publication);
                let _ = reply.send(desired);
            }
            Job::Apply { changes, reply } => {
                let _ = reply.send(current.as_mut().map(|p| p.apply(changes)));
            }
        }
    }
}
