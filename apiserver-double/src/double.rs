//! `ApiServerDouble`, the handle a test holds: starts the server on a
//! loopback port, hands out kube clients for it, and offers the controls a
//! test needs — stop, resume and restart on the same port, dropping watches,
//! compaction, injected faults and delays, the request log, write counts —
//! and direct access to the stored objects for seeding and assertions.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::faults::{FaultRule, Faults, RequestRecord};
use crate::merge::PatchKind;
use crate::resource::{Registry, ResourceKey, ResourceType};
use crate::server::{self, DEFAULT_MAX_BODY_BYTES, Shared};
use crate::status::ApiError;
use crate::store::{DEFAULT_HISTORY_LIMIT, DeletePreconditions, Store, WriteContext};

/// The field manager of writes made through the direct (non-HTTP) methods.
pub const TEST_MANAGER: &str = "apiserver-double-test";

/// Start-up settings.
#[derive(Clone, Debug)]
pub struct Options {
    pub registry: Registry,
    /// Change events kept for watches and exact lists; older revisions get 410.
    pub history_limit: usize,
    /// How often a watch that allows bookmarks gets one (the real server: about a minute).
    pub bookmark_interval: Duration,
    /// Largest accepted request body (the real server: 3 MiB).
    pub max_body_bytes: usize,
    /// Largest stored object (etcd's default: 1.5 MiB).
    pub max_object_bytes: usize,
    /// Namespaced objects can only be created in an existing namespace.
    pub require_namespaces: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            registry: Registry::with_defaults(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            bookmark_interval: Duration::from_secs(60),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_object_bytes: crate::store::DEFAULT_MAX_OBJECT_BYTES,
            require_namespaces: true,
        }
    }
}

/// A running API-server double.
pub struct ApiServerDouble {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ApiServerDouble {
    /// Starts with the default types and settings on 127.0.0.1 and a free port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> std::io::Result<Self> {
        let mut store = Store::new(options.registry);
        store.set_history_limit(options.history_limit);
        store.max_object_bytes = options.max_object_bytes;
        store.require_namespaces = options.require_namespaces;
        let shared = Arc::new(Shared {
            store: Arc::new(Mutex::new(store)),
            faults: Mutex::new(Faults::default()),
            log: Mutex::new(Vec::new()),
            bookmark_interval: Mutex::new(options.bookmark_interval),
            max_body_bytes: options.max_body_bytes,
        });
        let (addr, task) =
            server::serve(SocketAddr::from(([127, 0, 0, 1], 0)), shared.clone()).await?;
        Ok(Self {
            shared,
            addr,
            task: Mutex::new(Some(task)),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube config for this server (plain HTTP, namespace "default").
    pub fn kube_config(&self) -> kube::Config {
        let mut config = kube::Config::new(self.url().parse().expect("a valid URL"));
        config.default_namespace = "default".into();
        config
    }

    /// A new kube client for this server.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.kube_config()).expect("a client for a plain-HTTP URL")
    }

    /// Whether the server is accepting connections.
    pub fn is_running(&self) -> bool {
        self.task.lock().expect("task lock").is_some()
    }

    /// Takes the server down: the port refuses connections, open connections
    /// and watches are cut. Stored state is kept.
    pub fn stop(&self) {
        if let Some(task) = self.task.lock().expect("task lock").take() {
            task.abort();
        }
        self.store().drop_watchers();
    }

    /// Brings a stopped server back on the same port.
    pub async fn resume(&self) -> std::io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let mut attempts = 0;
        let task = loop {
            match server::serve(self.addr, self.shared.clone()).await {
                Ok((_, task)) => break task,
                // The aborted listener may take a moment to release the port.
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        };
        *self.task.lock().expect("task lock") = Some(task);
        Ok(())
    }

    /// A restart: every connection and watch is cut, the port and the stored
    /// state (and its revision history) stay.
    pub async fn restart(&self) -> std::io::Result<()> {
        self.stop();
        self.resume().await
    }

    /// Ends every open watch stream (clients see their watch end and re-watch).
    pub fn drop_watches(&self) {
        self.store().drop_watchers();
    }

    /// Forgets the change history: lists and watches at older revisions get 410 Gone.
    pub fn compact(&self) {
        self.store().compact();
    }

    pub fn set_history_limit(&self, limit: usize) {
        self.store().set_history_limit(limit);
    }

    /// Bookmark interval for watches opened from now on.
    pub fn set_bookmark_interval(&self, interval: Duration) {
        *self.shared.bookmark_interval.lock().expect("settings lock") = interval;
    }

    /// A delay before every response (None: no delay).
    pub fn set_response_delay(&self, delay: Option<Duration>) {
        self.shared.faults.lock().expect("faults lock").delay = delay;
    }

    /// Fails the next matching requests (see `FaultRule`).
    pub fn fail_next(&self, rule: FaultRule) {
        self.shared.faults.lock().expect("faults lock").add(rule);
    }

    pub fn clear_faults(&self) {
        self.shared.faults.lock().expect("faults lock").clear();
    }

    /// Every request handled so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.lock().expect("log lock").clone()
    }

    pub fn clear_requests(&self) {
        self.shared.log.lock().expect("log lock").clear();
    }

    /// Accepted write requests (create, update, patch, delete) to one object.
    pub fn write_requests(&self, plural: &str, namespace: &str, name: &str) -> usize {
        self.shared
            .log
            .lock()
            .expect("log lock")
            .iter()
            .filter(|r| {
                r.is_accepted_write()
                    && r.plural == plural
                    && r.namespace == namespace
                    && r.name == name
            })
            .count()
    }

    /// Stored changes of one object (a no-op write stores nothing).
    pub fn stored_writes(&self, group: &str, plural: &str, namespace: &str, name: &str) -> u64 {
        let store = self.store();
        match store.registry().find(group, plural) {
            Some(t) => store.write_count(&t.key(), namespace, name),
            None => 0,
        }
    }

    /// The current global revision (the resourceVersion of the latest write).
    pub fn revision(&self) -> u64 {
        self.store().revision()
    }

    /// Open watch streams.
    pub fn watch_count(&self) -> usize {
        self.store().watcher_count()
    }

    /// Registers another resource type (for example a CRD a test defines).
    pub fn register(&self, t: ResourceType) {
        self.store().register(t);
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().expect("store lock")
    }

    fn resource(&self, group: &str, plural: &str) -> Result<ResourceType, ApiError> {
        self.store()
            .registry()
            .find(group, plural)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "NotFound",
                    format!("no resource {plural} in group \"{group}\""),
                )
            })
    }

    fn context() -> WriteContext {
        WriteContext {
            field_manager: TEST_MANAGER.into(),
            dry_run: false,
        }
    }

    /// Creates an object directly, keeping its status (seeding, for example a
    /// pod with its IP). Namespace from the object.
    pub fn insert(&self, group: &str, plural: &str, object: Value) -> Result<Value, ApiError> {
        let rt = self.resource(group, plural)?;
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let created = self
            .store()
            .create(&rt, &namespace, object, &Self::context(), true)?;
        Ok((*created).clone())
    }

    /// Merge-patches an object directly (status included for types without
    /// a status subresource; use `patch_status` for the others).
    pub fn patch(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Result<Value, ApiError> {
        self.patch_sub(group, plural, namespace, name, "", patch)
    }

    /// Merge-patches the status of an object directly.
    pub fn patch_status(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Result<Value, ApiError> {
        self.patch_sub(group, plural, namespace, name, "status", patch)
    }

    fn patch_sub(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
        sub: &str,
        patch: Value,
    ) -> Result<Value, ApiError> {
        let rt = self.resource(group, plural)?;
        let patched = self.store().patch(
            &rt,
            namespace,
            name,
            sub,
            PatchKind::Merge,
            patch,
            false,
            &Self::context(),
        )?;
        Ok((*patched).clone())
    }

    /// Deletes an object directly.
    pub fn delete(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let rt = self.resource(group, plural)?;
        self.store()
            .delete(
                &rt,
                namespace,
                name,
                &DeletePreconditions::default(),
                &Self::context(),
            )
            .map(|_| ())
    }

    /// One stored object.
    pub fn get(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let rt = self.resource(group, plural).ok()?;
        self.store()
            .get(&rt, namespace, name)
            .ok()
            .map(|o| (*o).clone())
    }

    /// All stored objects of a type, in namespace/name order.
    pub fn list(&self, group: &str, plural: &str) -> Vec<Value> {
        match self.resource(group, plural) {
            Ok(rt) => self
                .store()
                .all(&rt)
                .into_iter()
                .map(|o| (*o).clone())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The key of a registered type, for callers that index by it.
    pub fn resource_key(&self, group: &str, plural: &str) -> Option<ResourceKey> {
        self.resource(group, plural).ok().map(|t| t.key())
    }
}

impl Drop for ApiServerDouble {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
        if let Ok(mut store) = self.shared.store.lock() {
            store.drop_watchers();
        }
    }
}
