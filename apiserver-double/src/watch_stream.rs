//! The body of a watch response: one JSON watch event per line, streamed as
//! changes happen. A task per watch forwards the store's messages, adds a
//! BOOKMARK every bookmark interval when the client allows bookmarks, ends
//! the stream at `timeoutSeconds`, after an ERROR event, when the store drops
//! the watcher (restart, `drop_watches`) or when the client goes away.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;

use crate::handler::partial_metadata;
use crate::resource::ResourceType;
use crate::store::{Store, WatchMessage};

/// How a watch stream behaves.
pub struct StreamSettings {
    pub bookmarks: bool,
    pub bookmark_interval: Duration,
    pub timeout: Duration,
    pub metadata_only: bool,
}

/// Runs the forwarding task; the returned receiver feeds the response body.
pub fn spawn(
    store: Arc<Mutex<Store>>,
    rt: ResourceType,
    watcher: u64,
    mut messages: mpsc::UnboundedReceiver<WatchMessage>,
    settings: StreamSettings,
) -> mpsc::Receiver<Bytes> {
    let (lines, body) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(settings.timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(settings.bookmark_interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                message = messages.recv() => {
                    let Some(message) = message else { break };
                    let last = matches!(message, WatchMessage::Error(_));
                    if let Some(line) = encode(&message, &rt, &settings)
                        && lines.send(line).await.is_err()
                    {
                        break;
                    }
                    if last {
                        break;
                    }
                }
                _ = ticker.tick(), if settings.bookmarks => {
                    if !store.lock().expect("store lock").bookmark(watcher) {
                        break;
                    }
                }
                _ = &mut deadline => break,
                _ = lines.closed() => break,
            }
        }
        store.lock().expect("store lock").unwatch(watcher);
    });
    body
}

/// One watch event line, or None for a bookmark the client did not ask for.
fn encode(message: &WatchMessage, rt: &ResourceType, settings: &StreamSettings) -> Option<Bytes> {
    let event = match message {
        WatchMessage::Event(kind, object) if settings.metadata_only => {
            json!({"type": kind.as_str(), "object": partial_metadata(object)})
        }
        WatchMessage::Event(kind, object) => {
            // Written without cloning the object.
            let mut out = format!("{{\"type\":\"{}\",\"object\":", kind.as_str()).into_bytes();
            serde_json::to_writer(&mut out, &**object).expect("JSON values serialize");
            out.extend_from_slice(b"}\n");
            return Some(Bytes::from(out));
        }
        WatchMessage::Bookmark {
            revision,
            initial_events_end,
        } => {
            if !settings.bookmarks && !initial_events_end {
                return None;
            }
            let (api_version, kind) = if settings.metadata_only {
                (
                    "meta.k8s.io/v1".to_string(),
                    "PartialObjectMetadata".to_string(),
                )
            } else {
                (rt.api_version(), rt.kind.clone())
            };
            let mut metadata = json!({"resourceVersion": revision.to_string()});
            if *initial_events_end {
                metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": metadata}})
        }
        WatchMessage::Error(error) => json!({"type": "ERROR", "object": error.to_status()}),
    };
    let mut line = serde_json::to_vec(&event).expect("JSON values serialize");
    line.push(b'\n');
    Some(Bytes::from(line))
}
