//! The storage behind the double, like etcd under the real server: one
//! global revision that every write increments and that becomes the written
//! object's resourceVersion, a bounded history of change events (the watch
//! window; older revisions are compacted and answer 410 Gone), and the
//! registered watchers, to whom each change is fanned out in revision order.
//!
//! Everything here is synchronous and free of I/O: the HTTP layer holds the
//! store behind a mutex and turns requests into these calls.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::apply::{self, Writer};
use crate::merge::{PatchKind, apply_patch};
use crate::resource::{Registry, ResourceKey, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;

/// The limit of a stored object, as etcd's default request limit (1.5 MiB).
pub const DEFAULT_MAX_OBJECT_BYTES: usize = 1536 * 1024;
/// How many change events the history keeps by default (the watch window).
pub const DEFAULT_HISTORY_LIMIT: usize = 100_000;

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// A change in the history: the object after it (for a deletion, its last
/// state stamped with the deletion revision) and before it.
#[derive(Clone, Debug)]
struct Change {
    revision: u64,
    resource: ResourceKey,
    kind: EventType,
    object: Arc<Value>,
    old: Option<Arc<Value>>,
}

/// What a watcher receives, in order.
#[derive(Clone, Debug)]
pub enum WatchMessage {
    Event(EventType, Arc<Value>),
    /// A bookmark at this revision: every change up to it has been sent.
    Bookmark {
        revision: u64,
        initial_events_end: bool,
    },
    /// An error event (410 Expired); the stream ends after it.
    Error(ApiError),
}

/// Which objects a watch or list sees.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    fn matches(&self, object: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                != Some(ns)
        {
            return false;
        }
        self.labels.matches(object) && self.fields.matches(object)
    }
}

/// The resourceVersion parameters of a list.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub resource_version: Option<String>,
    pub exact: bool,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// The parameters of a watch.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    pub resource_version: Option<String>,
    pub send_initial_events: bool,
}

struct Watcher {
    id: u64,
    filter: Filter,
    /// Changes at or below this revision were already covered when the watch started.
    after: u64,
    sender: mpsc::UnboundedSender<WatchMessage>,
}

/// A paginated list in progress: the full result at one revision.
struct Snapshot {
    revision: u64,
    items: Arc<Vec<Arc<Value>>>,
}

type ObjectKey = (String, String);

/// Who writes and how, for the managedFields of a write.
#[derive(Clone, Debug)]
pub struct WriteContext {
    pub field_manager: String,
    pub dry_run: bool,
}

/// The double's storage.
pub struct Store {
    registry: Registry,
    objects: HashMap<ResourceKey, BTreeMap<ObjectKey, Arc<Value>>>,
    revision: u64,
    history: VecDeque<Change>,
    history_limit: usize,
    /// Lists and watches at revisions below this one are gone (410).
    compacted: u64,
    watchers: HashMap<ResourceKey, Vec<Watcher>>,
    next_watcher: u64,
    snapshots: HashMap<u64, Snapshot>,
    snapshot_order: VecDeque<u64>,
    next_snapshot: u64,
    /// Stored changes per object, for "never rewritten" assertions.
    writes: HashMap<(ResourceKey, String, String), u64>,
    uid_counter: u64,
    pub max_object_bytes: usize,
    pub require_namespaces: bool,
}

const MAX_SNAPSHOTS: usize = 256;

impl Store {
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            objects: HashMap::new(),
            revision: 1,
            history: VecDeque::new(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            compacted: 0,
            watchers: HashMap::new(),
            next_watcher: 1,
            snapshots: HashMap::new(),
            snapshot_order: VecDeque::new(),
            next_snapshot: 1,
            writes: HashMap::new(),
            uid_counter: 0,
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            require_namespaces: true,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn register(&mut self, t: ResourceType) {
        self.registry.register(t);
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn set_history_limit(&mut self, limit: usize) {
        self.history_limit = limit.max(1);
        self.trim_history();
    }

    /// Forgets all history: every list or watch at an older revision than the
    /// current one now gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.revision;
        let compacted = self.compacted;
        self.snapshots.retain(|_, s| s.revision >= compacted);
    }

    /// Ends every watch (their streams close), as a restart of the server does.
    pub fn drop_watchers(&mut self) {
        self.watchers.clear();
    }

    pub fn watcher_count(&self) -> usize {
        self.watchers.values().map(Vec::len).sum()
    }

    /// Stored changes of one object so far.
    pub fn write_count(&self, resource: &ResourceKey, namespace: &str, name: &str) -> u64 {
        self.writes
            .get(&(resource.clone(), namespace.to_string(), name.to_string()))
            .copied()
            .unwrap_or(0)
    }

    pub fn resource(&self, key: &ResourceKey) -> Result<ResourceType, ApiError> {
        self.registry.get(key).cloned().ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                format!("the server could not find the requested resource ({key})"),
            )
        })
    }

    pub fn get(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        self.objects
            .get(&rt.key())
            .and_then(|m| m.get(&(namespace.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// All objects of a type, in key order.
    pub fn all(&self, rt: &ResourceType) -> Vec<Arc<Value>> {
        self.objects
            .get(&rt.key())
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    fn parse_revision(text: &str) -> Result<u64, ApiError> {
        text.parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: \"{text}\"")))
    }

    fn too_large(&self, requested: u64) -> ApiError {
        ApiError::new(
            504,
            "Timeout",
            format!(
                "Too large resource version: {requested}, current: {}",
                self.revision
            ),
        )
        .with_details(json!({
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1
        }))
    }

    /// The objects of a type as they were at `revision` (undoing later changes).
    fn state_at(&self, rt: &ResourceType, revision: u64) -> BTreeMap<ObjectKey, Arc<Value>> {
        let key = rt.key();
        let mut state = self.objects.get(&key).cloned().unwrap_or_default();
        for change in self.history.iter().rev() {
            if change.revision <= revision {
                break;
            }
            if change.resource != key {
                continue;
            }
            let k = object_key(&change.object);
            match &change.old {
                Some(old) => {
                    state.insert(k, old.clone());
                }
                None => {
                    state.remove(&k);
                }
            }
        }
        state
    }

    /// A list: returns the items of this page, the list's revision, the
    /// continue token and the count of remaining items.
    pub fn list(
        &mut self,
        rt: &ResourceType,
        filter: &Filter,
        options: &ListOptions,
    ) -> Result<ListPage, ApiError> {
        if let Some(token) = &options.continue_token {
            let (id, offset) = parse_continue(token)?;
            let snapshot = self
                .snapshots
                .get(&id)
                .filter(|s| s.revision >= self.compacted)
                .ok_or_else(|| {
                    ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. \
                         You can start a new list without the continue parameter.",
                    )
                })?;
            let (revision, items) = (snapshot.revision, snapshot.items.clone());
            return Ok(self.page(id, revision, items, offset, options.limit));
        }
        let requested = match options.resource_version.as_deref() {
            None | Some("") | Some("0") => None,
            Some(text) => Some(Self::parse_revision(text)?),
        };
        let (revision, state) = match requested {
            Some(rv) if rv > self.revision => return Err(self.too_large(rv)),
            Some(rv) if options.exact => {
                if rv < self.compacted {
                    return Err(ApiError::expired(format!(
                        "The resourceVersion for the provided list is too old. ({rv} < {})",
                        self.compacted
                    )));
                }
                (rv, self.state_at(rt, rv))
            }
            _ => (
                self.revision,
                self.objects.get(&rt.key()).cloned().unwrap_or_default(),
            ),
        };
        let items: Vec<Arc<Value>> = state.into_values().filter(|o| filter.matches(o)).collect();
        let id = self.next_snapshot;
        Ok(self.page(id, revision, Arc::new(items), 0, options.limit))
    }

    fn page(
        &mut self,
        id: u64,
        revision: u64,
        items: Arc<Vec<Arc<Value>>>,
        offset: usize,
        limit: Option<usize>,
    ) -> ListPage {
        let end = match limit {
            Some(l) if l > 0 => (offset + l).min(items.len()),
            _ => items.len(),
        };
        let page: Vec<Arc<Value>> = items[offset.min(end)..end].to_vec();
        let remaining = items.len() - end;
        let continue_token = if remaining > 0 {
            if !self.snapshots.contains_key(&id) {
                self.next_snapshot += 1;
                self.snapshots.insert(
                    id,
                    Snapshot {
                        revision,
                        items: items.clone(),
                    },
                );
                self.snapshot_order.push_back(id);
                while self.snapshot_order.len() > MAX_SNAPSHOTS {
                    if let Some(old) = self.snapshot_order.pop_front() {
                        self.snapshots.remove(&old);
                    }
                }
            }
            Some(format!("{id}-{end}"))
        } else {
            if self.snapshots.remove(&id).is_some() {
                self.snapshot_order.retain(|s| *s != id);
            }
            None
        };
        ListPage {
            items: page,
            revision,
            continue_token,
            remaining,
        }
    }

    /// Registers a watch and queues its initial messages. Returns the
    /// watcher id (to unregister) and its message stream.
    pub fn watch(
        &mut self,
        rt: &ResourceType,
        filter: Filter,
        options: &WatchOptions,
    ) -> Result<(u64, mpsc::UnboundedReceiver<WatchMessage>), ApiError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let requested = match options.resource_version.as_deref() {
            None | Some("") | Some("0") => None,
            Some(text) => Some(Self::parse_revision(text)?),
        };
        let key = rt.key();
        let after = match requested {
            Some(rv) if rv < self.compacted && !options.send_initial_events => {
                let _ = sender.send(WatchMessage::Error(ApiError::expired(format!(
                    "too old resource version: {rv} ({})",
                    self.compacted
                ))));
                let id = self.next_watcher;
                self.next_watcher += 1;
                return Ok((id, receiver));
            }
            Some(rv) if !options.send_initial_events => {
                for change in self
                    .history
                    .iter()
                    .filter(|c| c.revision > rv && c.resource == key)
                {
                    if let Some(message) = translate(change, &filter) {
                        let _ = sender.send(message);
                    }
                }
                rv.max(self.revision)
            }
            _ => {
                if let Some(objects) = self.objects.get(&key) {
                    for object in objects.values().filter(|o| filter.matches(o)) {
                        let _ = sender.send(WatchMessage::Event(EventType::Added, object.clone()));
                    }
                }
                if options.send_initial_events {
                    let _ = sender.send(WatchMessage::Bookmark {
                        revision: self.revision,
                        initial_events_end: true,
                    });
                }
                self.revision
            }
        };
        let id = self.next_watcher;
        self.next_watcher += 1;
        self.watchers.entry(key).or_default().push(Watcher {
            id,
            filter,
            after,
            sender,
        });
        Ok((id, receiver))
    }

    pub fn unwatch(&mut self, id: u64) {
        for list in self.watchers.values_mut() {
            list.retain(|w| w.id != id);
        }
    }

    /// Queues a bookmark at the current revision for one watcher. Returns
    /// false if the watcher is gone (dropped by `drop_watchers`).
    pub fn bookmark(&mut self, id: u64) -> bool {
        let revision = self.revision;
        self.watchers
            .values()
            .flatten()
            .find(|w| w.id == id)
            .map(|w| {
                w.sender
                    .send(WatchMessage::Bookmark {
                        revision,
                        initial_events_end: false,
                    })
                    .is_ok()
            })
            .unwrap_or(false)
    }

    fn check_namespace(&self, rt: &ResourceType, namespace: &str) -> Result<(), ApiError> {
        if !rt.namespaced() {
            return Ok(());
        }
        if namespace.is_empty() {
            return Err(ApiError::bad_request(
                "the namespace of the object is required",
            ));
        }
        if self.require_namespaces {
            let ns_key = ResourceKey::new("", "v1", "namespaces");
            let exists = self
                .objects
                .get(&ns_key)
                .is_some_and(|m| m.contains_key(&(String::new(), namespace.to_string())));
            if !exists {
                return Err(ApiError::not_found("", "namespaces", namespace));
            }
        }
        Ok(())
    }

    fn next_uid(&mut self) -> String {
        self.uid_counter += 1;
        let a = splitmix(self.uid_counter);
        let b = splitmix(a);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48 & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    fn generated_name(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        self.uid_counter += 1;
        let mut x = splitmix(self.uid_counter ^ 0x5eed);
        let mut name = prefix.to_string();
        for _ in 0..5 {
            name.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
            x /= ALPHABET.len() as u64;
        }
        name
    }

    /// Creates an object. `keep_status` is for test seeding (the HTTP create
    /// of a type with a status subresource drops status like the real server).
    pub fn create(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        mut body: Value,
        ctx: &WriteContext,
        keep_status: bool,
    ) -> Result<Arc<Value>, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        let namespace = if rt.namespaced() {
            let in_body = body
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !in_body.is_empty() && !namespace.is_empty() && in_body != namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            if namespace.is_empty() {
                in_body
            } else {
                namespace
            }
            .to_string()
        } else {
            String::new()
        };
        self.check_namespace(rt, &namespace)?;
        let name = match body.pointer("/metadata/name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match body
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
            {
                Some(prefix) if !prefix.is_empty() => self.generated_name(prefix),
                _ => {
                    return Err(ApiError::invalid(
                        &rt.kind,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ));
                }
            },
        };
        validate_name(rt, &name)?;
        let objects = self.objects.entry(rt.key()).or_default();
        if objects.contains_key(&(namespace.clone(), name.clone())) {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if rt.status_subresource && !keep_status {
            body.as_object_mut().expect("object").remove("status");
        }
        body["apiVersion"] = json!(rt.api_version());
        body["kind"] = json!(rt.kind);
        let uid = self.next_uid();
        let metadata = metadata_mut(&mut body);
        metadata.insert("name".into(), json!(name));
        if rt.namespaced() {
            metadata.insert("namespace".into(), json!(namespace));
        } else {
            metadata.remove("namespace");
        }
        metadata.insert("uid".into(), json!(uid));
        metadata.insert("creationTimestamp".into(), json!(now()));
        metadata.insert("generation".into(), json!(1));
        for server_owned in [
            "resourceVersion",
            "deletionTimestamp",
            "managedFields",
            "selfLink",
        ] {
            metadata.remove(server_owned);
        }
        let writer = Writer {
            manager: &ctx.field_manager,
            subresource: "",
            api_version: &rt.api_version(),
            now: &now(),
        };
        apply::record_update(None, &mut body, Vec::new(), &writer, rt);
        self.check_size(&body)?;
        if ctx.dry_run {
            return Ok(Arc::new(body));
        }
        Ok(self.commit(rt, None, Some(body)))
    }

    /// Replaces an object (PUT), on the main resource or `status`.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        subresource: &str,
        body: Value,
        ctx: &WriteContext,
    ) -> Result<Arc<Value>, ApiError> {
        let old = self.get(rt, namespace, name)?;
        check_body_name(&body, name)?;
        if let Some(rv) = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && !rv.is_empty()
            && rv != resource_version(&old)
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        let base = match body.pointer("/metadata/managedFields") {
            Some(Value::Array(a)) if !a.is_empty() => apply::read(&body),
            _ => apply::read(&old),
        };
        let new = merge_update(rt, &old, body, subresource);
        self.finish_update(rt, old, new, base, subresource, ctx)
    }

    /// Patches an object (merge, JSON, strategic or server-side apply).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        subresource: &str,
        kind: PatchKind,
        patch: Value,
        force: bool,
        ctx: &WriteContext,
    ) -> Result<Arc<Value>, ApiError> {
        if kind == PatchKind::Apply {
            return self.server_side_apply(rt, namespace, name, subresource, patch, force, ctx);
        }
        let old = self.get(rt, namespace, name)?;
        let mut patched = (*old).clone();
        apply_patch(&mut patched, kind, &patch, rt)?;
        check_body_name(&patched, name)?;
        if resource_version(&patched) != resource_version(&old) {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        let base = apply::read(&patched);
        let new = merge_update(rt, &old, patched, subresource);
        self.finish_update(rt, old, new, base, subresource, ctx)
    }

    #[allow(clippy::too_many_arguments)]
    fn server_side_apply(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        subresource: &str,
        mut config: Value,
        force: bool,
        ctx: &WriteContext,
    ) -> Result<Arc<Value>, ApiError> {
        if ctx.field_manager.is_empty() {
            return Err(ApiError::bad_request(
                "PATCH, application/apply-patch+yaml requests require fieldManager to be set",
            ));
        }
        check_body_name(&config, name)?;
        let Some(config_map) = config.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the apply configuration must be an object",
            ));
        };
        for (field, expected) in [("apiVersion", rt.api_version()), ("kind", rt.kind.clone())] {
            match config_map.get(field).and_then(Value::as_str) {
                Some(v) if v == expected => {}
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "{field} must be set to {expected} in an apply configuration"
                    )));
                }
            }
        }
        if subresource == "status" {
            config_map.retain(|k, _| {
                k == "status" || k == "metadata" || k == "apiVersion" || k == "kind"
            });
            if let Some(Value::Object(m)) = config_map.get_mut("metadata") {
                m.retain(|k, _| k == "name" || k == "namespace" || k == "resourceVersion");
            }
        } else if rt.status_subresource {
            config_map.remove("status");
        }
        let precondition = config
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let now = now();
        let api_version = rt.api_version();
        let writer = Writer {
            manager: &ctx.field_manager,
            subresource,
            api_version: &api_version,
            now: &now,
        };
        let old = match self.get(rt, namespace, name) {
            Ok(old) => old,
            Err(e) if e.code == 404 && subresource.is_empty() => {
                let mut created = apply::apply(None, &config, force, &writer, rt)?;
                metadata_mut(&mut created).insert("name".into(), json!(name));
                if rt.namespaced() {
                    metadata_mut(&mut created).insert("namespace".into(), json!(namespace));
                }
                let managed = created.pointer("/metadata/managedFields").cloned();
                return self.create_applied(rt, namespace, created, managed, ctx);
            }
            Err(e) => return Err(e),
        };
        if let Some(rv) = precondition
            && rv != resource_version(&old)
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        let mut strip = config;
        if let Some(m) = strip.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        let applied = apply::apply(Some(&old), &strip, force, &writer, rt)?;
        let base = apply::read(&applied);
        let mut new = merge_update(rt, &old, applied, subresource);
        apply::write(&mut new, &base);
        self.finish_write(rt, old, new, ctx)
    }

    fn create_applied(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        object: Value,
        managed: Option<Value>,
        ctx: &WriteContext,
    ) -> Result<Arc<Value>, ApiError> {
        let dry = WriteContext {
            dry_run: true,
            ..ctx.clone()
        };
        let mut created = (*self.create(rt, namespace, object, &dry, false)?).clone();
        match managed {
            Some(m) => {
                metadata_mut(&mut created).insert("managedFields".into(), m);
            }
            None => {
                metadata_mut(&mut created).remove("managedFields");
            }
        }
        self.check_size(&created)?;
        if ctx.dry_run {
            return Ok(Arc::new(created));
        }
        Ok(self.commit(rt, None, Some(created)))
    }

    fn finish_update(
        &mut self,
        rt: &ResourceType,
        old: Arc<Value>,
        mut new: Value,
        base: Vec<apply::ManagerEntry>,
        subresource: &str,
        ctx: &WriteContext,
    ) -> Result<Arc<Value>, ApiError> {
        let now = now();
        let api_version = rt.api_version();
        let writer = Writer {
            manager: &ctx.field_manager,
            subresource,
            api_version: &api_version,
            now: &now,
        };
        apply::record_update(Some(&old), &mut new, base, &writer, rt);
        self.finish_write(rt, old, new, ctx)
    }

    /// Generation, no-op detection, finalizer completion, size, commit.
    fn finish_write(
        &mut self,
        rt: &ResourceType,
        old: Arc<Value>,
        mut new: Value,
        ctx: &WriteContext,
    ) -> Result<Arc<Value>, ApiError> {
        if spec_changed(&old, &new) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            metadata_mut(&mut new).insert("generation".into(), json!(generation + 1));
        }
        if apply::without_times(&new) == apply::without_times(&old) {
            return Ok(old);
        }
        self.check_size(&new)?;
        if ctx.dry_run {
            return Ok(Arc::new(new));
        }
        let finalized = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        if finalized {
            return Ok(self.commit_delete(rt, old, new));
        }
        Ok(self.commit(rt, Some(old), Some(new)))
    }

    /// Deletes an object (or marks it for deletion while it has finalizers).
    /// Deleting a namespace deletes everything in it at once.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        preconditions: &DeletePreconditions,
        ctx: &WriteContext,
    ) -> Result<Arc<Value>, ApiError> {
        let old = self.get(rt, namespace, name)?;
        if let Some(uid) = &preconditions.uid {
            let actual = old
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if uid != actual {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                    ),
                ));
            }
        }
        if let Some(rv) = &preconditions.resource_version
            && rv != resource_version(&old)
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    resource_version(&old)
                ),
            ));
        }
        if ctx.dry_run {
            return Ok(old);
        }
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(old);
            }
            let mut marked = (*old).clone();
            let metadata = metadata_mut(&mut marked);
            metadata.insert("deletionTimestamp".into(), json!(now()));
            metadata.insert("deletionGracePeriodSeconds".into(), json!(0));
            return Ok(self.commit(rt, Some(old), Some(marked)));
        }
        if rt.key() == ResourceKey::new("", "v1", "namespaces") {
            let contained: Vec<(ResourceType, Arc<Value>)> = self
                .registry
                .iter()
                .filter(|t| t.namespaced())
                .flat_map(|t| {
                    self.objects
                        .get(&t.key())
                        .into_iter()
                        .flat_map(|m| m.values())
                        .filter(|o| {
                            o.pointer("/metadata/namespace").and_then(Value::as_str) == Some(name)
                        })
                        .map(|o| (t.clone(), o.clone()))
                        .collect::<Vec<_>>()
                })
                .collect();
            for (t, object) in contained {
                let last = (*object).clone();
                self.commit_delete(&t, object, last);
            }
        }
        let last = (*old).clone();
        Ok(self.commit_delete(rt, old, last))
    }

    fn check_size(&self, object: &Value) -> Result<(), ApiError> {
        let size = serde_json::to_vec(object).map(|v| v.len()).unwrap_or(0);
        if size > self.max_object_bytes {
            return Err(ApiError::too_large(format!(
                "etcdserver: request is too large ({size} bytes, limit {})",
                self.max_object_bytes
            )));
        }
        Ok(())
    }

    /// Stores a change under a new revision, records it and fans it out.
    fn commit(
        &mut self,
        rt: &ResourceType,
        old: Option<Arc<Value>>,
        new: Option<Value>,
    ) -> Arc<Value> {
        self.record(rt, old, new, None)
    }

    /// Removes an object; `last` is its final state, sent with the DELETED event.
    fn commit_delete(&mut self, rt: &ResourceType, old: Arc<Value>, last: Value) -> Arc<Value> {
        self.record(rt, Some(old), None, Some(last))
    }

    fn record(
        &mut self,
        rt: &ResourceType,
        old: Option<Arc<Value>>,
        new: Option<Value>,
        last: Option<Value>,
    ) -> Arc<Value> {
        self.revision += 1;
        let revision = self.revision;
        let key = rt.key();
        let (kind, object) = match new {
            Some(mut object) => {
                metadata_mut(&mut object)
                    .insert("resourceVersion".into(), json!(revision.to_string()));
                let kind = if old.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                (kind, Arc::new(object))
            }
            None => {
                let mut last = last.expect("a deletion has a last state");
                metadata_mut(&mut last)
                    .insert("resourceVersion".into(), json!(revision.to_string()));
                (EventType::Deleted, Arc::new(last))
            }
        };
        let object_key = object_key(&object);
        let objects = self.objects.entry(key.clone()).or_default();
        if kind == EventType::Deleted {
            objects.remove(&object_key);
        } else {
            objects.insert(object_key.clone(), object.clone());
        }
        *self
            .writes
            .entry((key.clone(), object_key.0, object_key.1))
            .or_default() += 1;
        let change = Change {
            revision,
            resource: key.clone(),
            kind,
            object: object.clone(),
            old,
        };
        if let Some(watchers) = self.watchers.get_mut(&key) {
            watchers.retain(|w| {
                if change.revision <= w.after {
                    return true;
                }
                match translate(&change, &w.filter) {
                    Some(message) => w.sender.send(message).is_ok(),
                    None => !w.sender.is_closed(),
                }
            });
        }
        self.history.push_back(change);
        self.trim_history();
        object
    }

    fn trim_history(&mut self) {
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = self.compacted.max(dropped.revision);
            }
        }
    }
}

/// A page of a list.
pub struct ListPage {
    pub items: Vec<Arc<Value>>,
    pub revision: u64,
    pub continue_token: Option<String>,
    pub remaining: usize,
}

/// Preconditions of a delete (`DeleteOptions.preconditions`).
#[derive(Clone, Debug, Default)]
pub struct DeletePreconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// The manager name used when a request names none (the real server derives
/// it from the user agent; apply requires one).
pub const DEFAULT_MANAGER: &str = "unknown";

/// The event a watcher with `filter` sees for a change, if any: an object
/// that starts matching is ADDED, one that stops matching is DELETED.
fn translate(change: &Change, filter: &Filter) -> Option<WatchMessage> {
    let now = change.kind != EventType::Deleted && filter.matches(&change.object);
    let before = match &change.old {
        Some(old) => filter.matches(old),
        None => false,
    };
    let kind = match (change.kind, before, now) {
        (EventType::Deleted, _, _) => {
            if filter.matches(&change.object) || before {
                EventType::Deleted
            } else {
                return None;
            }
        }
        (_, false, true) => EventType::Added,
        (_, true, true) => EventType::Modified,
        (_, true, false) => EventType::Deleted,
        (_, false, false) => return None,
    };
    Some(WatchMessage::Event(kind, change.object.clone()))
}

fn object_key(object: &Value) -> ObjectKey {
    let field = |f: &str| {
        object
            .pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (field("namespace"), field("name"))
}

fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    let root = object.as_object_mut().expect("objects are JSON objects");
    root.entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .expect("metadata is an object")
}

pub fn resource_version(object: &Value) -> &str {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn check_body_name(body: &Value, name: &str) -> Result<(), ApiError> {
    match body.pointer("/metadata/name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() && n != name => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

/// The object a write leads to: the server keeps identity metadata; the main
/// resource of a type with a status subresource keeps its status, and the
/// status subresource changes nothing but status.
fn merge_update(rt: &ResourceType, old: &Value, mut new: Value, subresource: &str) -> Value {
    if subresource == "status" {
        let mut result = old.clone();
        match new.as_object_mut().and_then(|m| m.remove("status")) {
            Some(status) => result["status"] = status,
            None => {
                result.as_object_mut().expect("object").remove("status");
            }
        }
        if let Some(managed) = new.pointer("/metadata/managedFields") {
            metadata_mut(&mut result).insert("managedFields".into(), managed.clone());
        }
        return result;
    }
    if !new.is_object() {
        return old.clone();
    }
    if rt.status_subresource {
        let root = new.as_object_mut().expect("object");
        match old.get("status") {
            Some(status) => {
                root.insert("status".into(), status.clone());
            }
            None => {
                root.remove("status");
            }
        }
    }
    new["apiVersion"] = json!(rt.api_version());
    new["kind"] = json!(rt.kind);
    let keep = [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "generation",
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ];
    let old_meta = old
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let metadata = metadata_mut(&mut new);
    for field in keep {
        match old_meta.get(field) {
            Some(v) => {
                metadata.insert(field.into(), v.clone());
            }
            None => {
                metadata.remove(field);
            }
        }
    }
    new
}

/// Whether anything but metadata and status changed (what bumps generation).
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        let mut m = v.as_object().cloned().unwrap_or_default();
        m.remove("metadata");
        m.remove("status");
        m
    };
    strip(old) != strip(new)
}

fn validate_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    let valid = name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &rt.kind,
            name,
            "metadata.name",
            &format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case \
                 alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        ))
    }
}

fn parse_continue(token: &str) -> Result<(u64, usize), ApiError> {
    let bad = || ApiError::bad_request(format!("invalid continue token: \"{token}\""));
    let (id, offset) = token.split_once('-').ok_or_else(bad)?;
    Ok((
        id.parse().map_err(|_| bad())?,
        offset.parse().map_err(|_| bad())?,
    ))
}

/// Now, as a Kubernetes timestamp (RFC 3339, seconds, UTC).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
