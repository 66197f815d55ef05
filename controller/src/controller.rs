//! The driver: runs the watches, keeps the object store and what the server has
//! published, and on each burst of changes has the compile thread
//! ([`compiler`](crate::compiler)) apply them, brings its copy of the publication up
//! to date with the objects that changed, plans with the pure
//! [`reconcile`](crate::reconcile) core and carries the plan out with server-side
//! apply (field manager `palisade-controller`), deletes, status writes and Events.
//! The whole model is assembled and compiled once, after the initial list (and again
//! only should the compile thread be lost).
//!
//! Only the lease holder writes: a standby keeps its watches warm and does nothing
//! else; the leader checks its lease before every write and stops at once when it
//! loses it. Nothing is compiled or written before every watch has listed once, so
//! the first reconcile after a restart sees what is published and writes nothing
//! that is unchanged.

use crate::compiler::CompileWorker;
use crate::compiler_changes;
use crate::events::{self, Regarding};
use crate::health::Readiness;
use crate::leader::{self, LeaseSettings};
use crate::metrics::Metrics;
use crate::objects::{MODEL_KINDS, ModelChange, ObjectKey, ObjectStore, key_of};
use crate::publication::Desired;
use crate::reconcile::{
    Plan, PolicyObject, ProgrammedTracker, PublicationKind, Published, PublishedObject, reconcile,
};
use crate::watch::{Source, WatchEvent, api_resource, watch};
use futures_util::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use palisade_crds::publication::TABLES;
use palisade_policy::compile::Change;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, watch as signal};
use tokio::time::Instant;

pub const FIELD_MANAGER: &str = "palisade-controller";
/// Publication objects applied concurrently.
const WRITE_CONCURRENCY: usize = 16;

#[derive(Clone, Debug)]
pub struct Settings {
    pub lease: LeaseSettings,
    /// How long to wait after a change for more before reconciling (zero: take what
    /// is queued and go; changes arriving during a reconcile make the next batch).
    pub debounce: Duration,
    /// How soon to retry after a failed write.
    pub retry: Duration,
}

impl Settings {
    pub fn new(lease: LeaseSettings) -> Self {
        Settings {
            lease,
            debounce: Duration::ZERO,
            retry: Duration::from_secs(1),
        }
    }
}

/// Runs the controller until `shutdown` turns true; releases the lease on the way out.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: signal::Receiver<bool>,
) {
    let (leader_tx, leader_rx) = signal::channel(false);
    let elector = tokio::spawn(leader::run(
        client.clone(),
        settings.lease.clone(),
        leader_tx,
        shutdown.clone(),
    ));
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let sources: Vec<Source> = MODEL_KINDS
        .iter()
        .map(|k| Source::Model(*k))
        .chain([
            Source::Publication(PublicationKind::ClusterTable),
            Source::Publication(PublicationKind::NodePolicy),
        ])
        .collect();
    let watches: Vec<_> = sources
        .iter()
        .map(|source| tokio::spawn(watch(client.clone(), *source, events_tx.clone())))
        .collect();
    drop(events_tx);
    let mut driver = Driver {
        client,
        settings,
        metrics,
        readiness,
        leader: leader_rx,
        store: ObjectStore::default(),
        published: Published::default(),
        unsynced: sources.into_iter().collect(),
        compiler: CompileWorker::start(),
        pending: Vec::new(),
        desired: None,
        tracker: ProgrammedTracker::default(),
        first_change: None,
        retry: false,
        reported: BTreeMap::new(),
    };
    driver.run(events_rx, shutdown).await;
    for task in watches {
        task.abort();
    }
    // The elector releases the lease once it sees the shutdown.
    let _ = elector.await;
}

struct Driver {
    client: kube::Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    leader: signal::Receiver<bool>,
    store: ObjectStore,
    published: Published,
    /// Watches that have not listed yet.
    unsynced: BTreeSet<Source>,
    compiler: CompileWorker,
    /// Model changes not yet given to the compiler.
    pending: Vec<Change>,
    /// What to publish; None until the compile thread has built the whole model.
    desired: Option<Desired>,
    tracker: ProgrammedTracker,
    /// When the oldest change not yet published was observed.
    first_change: Option<Instant>,
    /// A write failed: reconcile again after `settings.retry`.
    retry: bool,
    /// Rejections of other kinds already reported with an Event (key -> message).
    reported: BTreeMap<ObjectKey, String>,
}

impl Driver {
    async fn run(
        &mut self,
        mut events: mpsc::UnboundedReceiver<WatchEvent>,
        mut shutdown: signal::Receiver<bool>,
    ) {
        loop {
            let retry_after = self.settings.retry;
            let retry = self.retry;
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.observe(event),
                    None => return,
                },
                changed = self.leader.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    self.sync_leader();
                }
                _ = tokio::time::sleep(retry_after), if retry => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            // Debounce: take whatever else arrives within the window.
            let deadline = Instant::now() + self.settings.debounce;
            while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
                self.observe(event);
            }
            if !self.unsynced.is_empty() {
                continue;
            }
            self.readiness.caches_synced.store(true, Ordering::SeqCst);
            self.metrics
                .rejected_objects
                .set(self.store.rejected() as i64);
            if self.sync_leader() {
                self.reconcile().await;
            }
        }
    }

    /// Reads the elector's verdict and reports it (readiness, metric), so that what
    /// is reported is what the driver acts on.
    fn sync_leader(&mut self) -> bool {
        let leader = *self.leader.borrow_and_update();
        self.readiness.leader.store(leader, Ordering::SeqCst);
        self.metrics.leader.set(i64::from(leader));
        if !leader {
            self.readiness.published.store(false, Ordering::SeqCst);
        }
        leader
    }

    fn observe(&mut self, event: WatchEvent) {
        match event {
            WatchEvent::Upsert(Source::Model(kind), value) => {
                let change = self.store.upsert(&kind, &value);
                self.model_changed(change.into_iter().collect());
            }
            WatchEvent::Delete(Source::Model(kind), value) => {
                let namespace = value["metadata"]["namespace"].as_str().unwrap_or("");
                let name = value["metadata"]["name"].as_str().unwrap_or("");
                let change = self.store.delete(&kind, namespace, name);
                self.model_changed(change.into_iter().collect());
            }
            WatchEvent::Listed(Source::Model(kind), values) => {
                let mut changes = Vec::new();
                let mut listed = BTreeSet::new();
                for value in &values {
                    if let Some(key) = key_of(&kind, value) {
                        listed.insert(key);
                    }
                    changes.extend(self.store.upsert(&kind, value));
                }
                changes.extend(self.store.retain_listed(&kind, &listed));
                self.unsynced.remove(&Source::Model(kind));
                self.model_changed(changes);
            }
            WatchEvent::Upsert(Source::Publication(kind), value) => {
                if let Some(name) = value["metadata"]["name"].as_str() {
                    let object = published_object(&value);
                    self.published_map(kind).insert(name.to_string(), object);
                }
            }
            WatchEvent::Delete(Source::Publication(kind), value) => {
                if let Some(name) = value["metadata"]["name"].as_str() {
                    self.published_map(kind).remove(name);
                }
            }
            WatchEvent::Listed(Source::Publication(kind), values) => {
                let map = self.published_map(kind);
                map.clear();
                for value in &values {
                    if let Some(name) = value["metadata"]["name"].as_str() {
                        map.insert(name.to_string(), published_object(value));
                    }
                }
                self.unsynced.remove(&Source::Publication(kind));
            }
        }
    }

    fn model_changed(&mut self, changes: Vec<ModelChange>) {
        if changes.is_empty() {
            return;
        }
        self.first_change.get_or_insert_with(Instant::now);
        for change in changes {
            self.pending
                .extend(compiler_changes::of(&self.store, change));
        }
    }

    fn published_map(&mut self, kind: PublicationKind) -> &mut BTreeMap<String, PublishedObject> {
        match kind {
            PublicationKind::ClusterTable => &mut self.published.tables,
            PublicationKind::NodePolicy => &mut self.published.nodes,
        }
    }

    /// Compiles if the model changed, plans, and writes.
    async fn reconcile(&mut self) {
        let started = Instant::now();
        self.metrics.reconciles.inc();
        let changes = self.pending.len();
        if !self.compile().await {
            self.metrics.reconcile_errors.inc();
            self.retry = true;
            return;
        }
        let compiled = started.elapsed();
        let desired = self.desired.as_ref().expect("compiled above");
        let policies: Vec<PolicyObject> = self
            .store
            .policies()
            .map(|(key, stored)| PolicyObject {
                key: key.clone(),
                uid: stored.uid.clone(),
                generation: stored.generation,
                rejection: stored.rejection.clone(),
                status: serde_json::from_value(stored.status.clone()).unwrap_or_default(),
            })
            .collect();
        let now = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now());
        let plan = reconcile(
            desired,
            &self.published,
            &policies,
            &mut self.tracker,
            &now.to_string(),
        );
        let wrote = !plan.writes.is_empty() || !plan.deletes.is_empty();
        tracing::debug!(
            changes,
            compile_ms = compiled.as_secs_f64() * 1e3,
            plan_ms = (started.elapsed() - compiled).as_secs_f64() * 1e3,
            writes = plan.writes.len(),
            "planned"
        );
        let mut complete = self.execute(plan).await;
        complete &= self.report_other_rejections().await;
        self.retry = !complete;
        if complete {
            self.readiness.published.store(true, Ordering::SeqCst);
            if let Some(first) = self.first_change.take()
                && wrote
            {
                self.metrics
                    .propagation_seconds
                    .observe(first.elapsed().as_secs_f64());
            }
        } else {
            self.metrics.reconcile_errors.inc();
        }
        self.metrics
            .reconcile_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    /// Brings `desired` up to date: the pending changes through the compile thread,
    /// or, before the first build (or after the thread was lost), the whole model.
    /// False if nothing could be compiled (what is published stays).
    async fn compile(&mut self) -> bool {
        let started = Instant::now();
        if let Some(desired) = self.desired.as_mut() {
            if self.pending.is_empty() {
                return true;
            }
            let changes = std::mem::take(&mut self.pending);
            match self.compiler.apply(changes).await {
                Ok(applied) => {
                    desired.apply(applied.update);
                    self.metrics
                        .compile_seconds
                        .observe(started.elapsed().as_secs_f64());
                    return true;
                }
                Err(_) => {
                    tracing::error!("the compile thread was lost: compiling the whole model again");
                    self.compiler = CompileWorker::start();
                }
            }
        }
        let model = match self.store.cluster() {
            Ok(model) => model,
            Err(e) => {
                // Keep what is published: never publish a partial model.
                tracing::error!(error = %e, "the model could not be assembled");
                return false;
            }
        };
        // The model holds every change so far.
        self.pending.clear();
        let previous = match &self.desired {
            Some(desired) => desired.shards.clone(),
            None => published_shards(&self.published),
        };
        match self.compiler.build(model, previous).await {
            Ok(desired) => {
                self.desired = Some(desired);
                self.metrics
                    .compile_seconds
                    .observe(started.elapsed().as_secs_f64());
                true
            }
            Err(_) => {
                tracing::error!("the compile thread was lost while building");
                self.compiler = CompileWorker::start();
                self.desired = None;
                false
            }
        }
    }

    /// One Event per rejected version of an object of another kind (a Pod,
    /// NetworkPolicy, ...), which has no status of palisade's to carry it.
    async fn report_other_rejections(&mut self) -> bool {
        let current: BTreeMap<ObjectKey, (String, String)> = self
            .store
            .other_rejections()
            .filter_map(|(key, stored)| {
                let message = stored.rejection.as_ref()?.message.clone();
                Some((key.clone(), (message, stored.uid.clone())))
            })
            .collect();
        self.reported.retain(|key, _| current.contains_key(key));
        for (key, (message, uid)) in current {
            if self.reported.get(&key) == Some(&message) {
                continue;
            }
            if !self.is_leader() {
                return false;
            }
            let kind = MODEL_KINDS
                .iter()
                .find(|k| k.kind == key.kind)
                .expect("stored objects are of watched kinds");
            tracing::warn!(object = %key.source(), message = %message, "rejected");
            let regarding = Regarding {
                api_version: kind.api_version(),
                kind: kind.kind.into(),
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                uid,
            };
            self.event(&regarding, "Invalid", "Compile", &message).await;
            self.reported.insert(key, message);
        }
        true
    }

    fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Carries `plan` out; false if something failed (or leadership was lost) and
    /// needs another try.
    async fn execute(&mut self, plan: Plan) -> bool {
        let mut complete = true;
        for (kind, count) in &plan.unchanged {
            Metrics::count(&self.metrics.unchanged, kind.kind(), *count as u64);
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        // Up to WRITE_CONCURRENCY applies in flight, each checking the lease first.
        let applies = plan.writes.into_iter().map(|write| {
            let api = self.publication_api(write.kind);
            let leader = self.leader.clone();
            let params = params.clone();
            async move {
                if !*leader.borrow() {
                    return (write, None);
                }
                let result = api
                    .patch(&write.name, &params, &Patch::Apply(&write.body))
                    .await;
                (write, Some(result))
            }
        });
        let applied: Vec<_> = futures_util::stream::iter(applies)
            .buffer_unordered(WRITE_CONCURRENCY)
            .collect()
            .await;
        for (write, result) in applied {
            let Some(result) = result else {
                return false;
            };
            match result {
                Ok(_) => {
                    Metrics::count(&self.metrics.written, write.kind.kind(), 1);
                    let map = self.published_map(write.kind);
                    let entry = map.entry(write.name.clone()).or_default();
                    entry.generation = write.generation;
                    entry.content_hash = write.content_hash;
                    entry.shards = write.body["spec"]["shards"].as_u64().map(|s| s as u32);
                    tracing::debug!(kind = write.kind.kind(), name = %write.name, generation = write.generation, size = write.size, "published");
                }
                Err(e) => {
                    tracing::warn!(kind = write.kind.kind(), name = %write.name, error = %e, "publishing failed");
                    complete = false;
                }
            }
        }
        for (kind, name) in plan.deletes {
            if !self.is_leader() {
                return false;
            }
            match self
                .publication_api(kind)
                .delete(&name, &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => {
                    tracing::warn!(kind = kind.kind(), name = %name, error = %e, "delete failed");
                    complete = false;
                    continue;
                }
            }
            Metrics::count(&self.metrics.deleted, kind.kind(), 1);
            self.published_map(kind).remove(&name);
        }
        for oversize in plan.oversize {
            Metrics::count(&self.metrics.over_budget, oversize.kind.kind(), 1);
            tracing::error!(kind = oversize.kind.kind(), name = %oversize.name, size = oversize.size, "publication object over the 1 MiB budget: not written");
            let regarding = match oversize.kind {
                PublicationKind::NodePolicy => Regarding {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    namespace: String::new(),
                    name: oversize.name.clone(),
                    uid: String::new(),
                },
                PublicationKind::ClusterTable => Regarding {
                    api_version: format!(
                        "{}/{}",
                        palisade_crds::definitions::GROUP,
                        palisade_crds::definitions::VERSION
                    ),
                    kind: oversize.kind.kind().into(),
                    namespace: String::new(),
                    name: oversize.name.clone(),
                    uid: String::new(),
                },
            };
            let note = format!(
                "{} {} would be {} bytes, over the 1 MiB budget; the nodes keep its last published version",
                oversize.kind.kind(),
                oversize.name,
                oversize.size
            );
            self.event(&regarding, "OverBudget", "Publish", &note).await;
        }
        for update in plan.statuses {
            if !self.is_leader() {
                return false;
            }
            let kind = MODEL_KINDS
                .iter()
                .find(|k| k.kind == update.key.kind)
                .expect("policies are watched kinds");
            let resource = api_resource(Source::Model(*kind));
            let api: Api<DynamicObject> = if kind.namespaced {
                Api::namespaced_with(self.client.clone(), &update.key.namespace, &resource)
            } else {
                Api::all_with(self.client.clone(), &resource)
            };
            let status = serde_json::to_value(&update.status).expect("status serializes");
            let body = json!({
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": {"name": update.key.name},
                "status": status,
            });
            match api
                .patch_status(&update.key.name, &params, &Patch::Apply(&body))
                .await
            {
                Ok(_) => self.store.set_status(&update.key, status),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    tracing::warn!(object = %update.key.source(), error = %e, "status write failed");
                    complete = false;
                }
            }
        }
        for event in plan.events {
            let kind = MODEL_KINDS
                .iter()
                .find(|k| k.kind == event.key.kind)
                .expect("policies are watched kinds");
            tracing::warn!(object = %event.key.source(), generation = event.generation, message = %event.message, "rejected");
            let regarding = Regarding {
                api_version: kind.api_version(),
                kind: kind.kind.into(),
                namespace: event.key.namespace.clone(),
                name: event.key.name.clone(),
                uid: event.uid.clone(),
            };
            self.event(&regarding, "Invalid", "Compile", &event.message)
                .await;
        }
        complete
    }

    async fn event(&self, regarding: &Regarding, reason: &str, action: &str, note: &str) {
        if let Err(e) = events::warn(
            &self.client,
            &self.settings.lease.identity,
            regarding,
            reason,
            action,
            note,
        )
        .await
        {
            tracing::warn!(error = %e, "could not create an Event");
        }
    }

    fn publication_api(&self, kind: PublicationKind) -> Api<DynamicObject> {
        Api::all_with(
            self.client.clone(),
            &api_resource(Source::Publication(kind)),
        )
    }
}

/// A publication object's envelope and, for NodePolicies, the agent's status.
fn published_object(value: &Value) -> PublishedObject {
    let spec = &value["spec"];
    PublishedObject {
        generation: spec["generation"].as_i64().unwrap_or(0),
        content_hash: spec["contentHash"].as_str().unwrap_or("").to_string(),
        shards: spec["shards"].as_u64().map(|s| s as u32),
        applied_generation: value["status"]["appliedGeneration"].as_i64(),
    }
}

/// The shard count of each table as published (before the first compile).
fn published_shards(published: &Published) -> BTreeMap<&'static str, u32> {
    let mut shards = BTreeMap::new();
    for table in TABLES {
        let prefix = format!("{table}-");
        let count = published
            .tables
            .iter()
            .filter(|(name, _)| name.starts_with(&prefix))
            .filter_map(|(_, object)| object.shards)
            .max();
        if let Some(count) = count {
            shards.insert(table, count);
        }
    }
    shards
}

/// For tests and tools: the key of a TrustBoundary or EgressPolicy.
pub fn policy_key(kind: &'static str, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}
