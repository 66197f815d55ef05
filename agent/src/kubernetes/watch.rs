//! The agent's four watches (kube-rs runtime watchers), each turned into
//! [`WatchEvent`]s on one channel: its own NodePolicy (by name), every ClusterTable
//! shard, the pods bound to its node (field selector `spec.nodeName`), and its own
//! Node (for the enforcement label). A watcher lists, then watches from the list's
//! resourceVersion, relists after a 410 Gone or a dropped connection (with backoff),
//! and says when a (re)list is complete; errors are passed on so the agent can report
//! an unreachable API server while it keeps enforcing what it has.

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use palisade_crds::definitions::{GROUP, VERSION};
use palisade_crds::publication::{
    CLUSTER_TABLE_KIND, CLUSTER_TABLE_PLURAL, NODE_POLICY_KIND, NODE_POLICY_PLURAL,
};
use serde_json::Value;
use tokio::sync::mpsc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    NodePolicy,
    ClusterTables,
    Pods,
    Node,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::NodePolicy,
        Source::ClusterTables,
        Source::Pods,
        Source::Node,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::NodePolicy => "NodePolicy",
            Source::ClusterTables => "ClusterTable",
            Source::Pods => "Pod",
            Source::Node => "Node",
        }
    }

    /// The resource, and the field selector that narrows it to this node.
    pub fn resource(self, node: &str) -> (ApiResource, Option<String>) {
        let (group, version, kind, plural, fields) = match self {
            Source::NodePolicy => (
                GROUP,
                VERSION,
                NODE_POLICY_KIND,
                NODE_POLICY_PLURAL,
                Some(format!("metadata.name={node}")),
            ),
            Source::ClusterTables => (
                GROUP,
                VERSION,
                CLUSTER_TABLE_KIND,
                CLUSTER_TABLE_PLURAL,
                None,
            ),
            Source::Pods => (
                "",
                "v1",
                "Pod",
                "pods",
                Some(format!("spec.nodeName={node}")),
            ),
            Source::Node => (
                "",
                "v1",
                "Node",
                "nodes",
                Some(format!("metadata.name={node}")),
            ),
        };
        (api_resource(group, version, kind, plural), fields)
    }
}

pub fn api_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.to_string(),
        plural: plural.to_string(),
    }
}

/// ClusterTable shards per list page (about 1 MiB of JSON).
const CLUSTER_TABLES_PAGE: u32 = 16;

#[derive(Debug)]
pub enum WatchEvent {
    Upsert(Source, Value),
    Delete(Source, Value),
    /// A (re)list begins: the objects follow one by one as `ListItem`s.
    Relisting(Source),
    /// One object of the list in progress.
    ListItem(Source, Value),
    /// The (re)list is complete: exactly its objects exist now.
    Listed(Source),
    /// The watch failed (it is retried with backoff).
    Failed(Source, String),
}

/// Watches `source` for `node` until the channel closes.
pub async fn watch(
    client: kube::Client,
    node: String,
    source: Source,
    events: mpsc::UnboundedSender<WatchEvent>,
) {
    let (resource, fields) = source.resource(&node);
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let mut config = watcher::Config::default();
    if source == Source::ClusterTables {
        // Shards are up to 64 KiB of JSON each, parsed as values by the client: a
        // small page bounds what one list response holds in memory.
        config = config.page_size(CLUSTER_TABLES_PAGE);
    }
    if let Some(fields) = &fields {
        config = config.fields(fields);
    }
    let stream = watcher(api, config).default_backoff();
    futures_util::pin_mut!(stream);
    // A list is passed on object by object (the receiver parses each as it comes and
    // keeps its previous state until `Listed`), so the whole list is never held as
    // JSON at once.
    while let Some(event) = stream.next().await {
        let sent = match event {
            Ok(watcher::Event::Init) => events.send(WatchEvent::Relisting(source)),
            Ok(watcher::Event::InitApply(object)) => {
                events.send(WatchEvent::ListItem(source, to_value(object)))
            }
            Ok(watcher::Event::InitDone) => events.send(WatchEvent::Listed(source)),
            Ok(watcher::Event::Apply(object)) => {
                events.send(WatchEvent::Upsert(source, to_value(object)))
            }
            Ok(watcher::Event::Delete(object)) => {
                events.send(WatchEvent::Delete(source, to_value(object)))
            }
            Err(e) => {
                tracing::warn!(kind = source.name(), error = %e, "watch failed; retrying");
                events.send(WatchEvent::Failed(source, e.to_string()))
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// The object as one JSON value, moving its content (a ClusterTable shard's entries
/// are most of the agent's input: they are not copied).
fn to_value(object: DynamicObject) -> Value {
    let mut value = match object.data {
        Value::Object(map) => Value::Object(map),
        _ => Value::Object(serde_json::Map::new()),
    };
    value["metadata"] = serde_json::to_value(&object.metadata).unwrap_or(Value::Null);
    if let Some(types) = object.types {
        value["apiVersion"] = Value::String(types.api_version);
        value["kind"] = Value::String(types.kind);
    }
    value
}
