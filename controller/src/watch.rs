//! The watches: one kube `watcher` per kind (model kinds and the two publication
//! kinds), each turned into [`WatchEvent`]s on one channel. The watcher lists, then
//! watches from the list's resourceVersion, relists after a 410 Gone or a dropped
//! connection (with backoff), and says when a (re)list is complete, which is when the
//! controller replaces that kind's objects.

use crate::objects::WatchedKind;
use crate::reconcile::PublicationKind;
use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use palisade_crds::definitions::{GROUP, VERSION};
use palisade_crds::publication::{
    CLUSTER_TABLE_KIND, CLUSTER_TABLE_PLURAL, NODE_POLICY_KIND, NODE_POLICY_PLURAL,
};
use serde_json::Value;
use tokio::sync::mpsc;

/// Where an event comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Model(WatchedKind),
    Publication(PublicationKind),
}

#[derive(Debug)]
pub enum WatchEvent {
    Upsert(Source, Value),
    Delete(Source, Value),
    /// A complete (re)list: exactly these objects exist now.
    Listed(Source, Vec<Value>),
}

/// The ApiResource of a watched kind.
pub fn api_resource(source: Source) -> ApiResource {
    let (group, version, kind, plural) = match source {
        Source::Model(kind) => (kind.group, kind.version, kind.kind, kind.plural),
        Source::Publication(PublicationKind::ClusterTable) => {
            (GROUP, VERSION, CLUSTER_TABLE_KIND, CLUSTER_TABLE_PLURAL)
        }
        Source::Publication(PublicationKind::NodePolicy) => {
            (GROUP, VERSION, NODE_POLICY_KIND, NODE_POLICY_PLURAL)
        }
    };
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version,
        kind: kind.to_string(),
        plural: plural.to_string(),
    }
}

/// Watches `source` until the channel closes.
pub async fn watch(
    client: kube::Client,
    source: Source,
    events: mpsc::UnboundedSender<WatchEvent>,
) {
    let resource = api_resource(source);
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    futures_util::pin_mut!(stream);
    let mut listing: Vec<Value> = Vec::new();
    while let Some(event) = stream.next().await {
        let sent = match event {
            Ok(watcher::Event::Init) => {
                listing.clear();
                Ok(())
            }
            Ok(watcher::Event::InitApply(object)) => {
                listing.push(to_value(object));
                Ok(())
            }
            Ok(watcher::Event::InitDone) => {
                events.send(WatchEvent::Listed(source, std::mem::take(&mut listing)))
            }
            Ok(watcher::Event::Apply(object)) => {
                events.send(WatchEvent::Upsert(source, to_value(object)))
            }
            Ok(watcher::Event::Delete(object)) => {
                events.send(WatchEvent::Delete(source, to_value(object)))
            }
            // A kind the server does not serve (the AdminNetworkPolicy CRDs not
            // installed): no objects of it, until it is served.
            Err(watcher::Error::InitialListFailed(kube::Error::Api(status)))
                if status.code == 404 =>
            {
                tracing::info!(kind = %resource.kind, "not served; treated as empty until it is");
                events.send(WatchEvent::Listed(source, Vec::new()))
            }
            Err(e) => {
                tracing::warn!(kind = %resource.kind, error = %e, "watch failed; retrying");
                Ok(())
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

fn to_value(object: DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}
