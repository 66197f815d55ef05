//! Shared helpers: a double with fast bookmarks, namespaces and pods, and
//! waiting on streams with a deadline (a hang guard, not a timing assertion).

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use palisade_apiserver_double::{ApiServerDouble, Options};

/// How long a test waits for something that should happen at once.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A double whose watches get a bookmark every 100 ms.
pub async fn double() -> ApiServerDouble {
    let options = Options {
        bookmark_interval: Duration::from_millis(100),
        ..Options::default()
    };
    ApiServerDouble::start_with(options)
        .await
        .expect("the double starts")
}

/// A client that does not retry 429/503/504 (kube retries them by default).
pub fn client_without_retries(double: &ApiServerDouble) -> Client {
    let mut config = double.kube_config();
    config.default_retry = false;
    Client::try_from(config).expect("a client")
}

/// Runs `stream` in a background task (so it makes progress while the test
/// does other things) and returns a stream of its items.
pub fn in_background<S>(stream: S) -> futures_util::stream::BoxStream<'static, S::Item>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if tx.send(item).is_err() {
                break;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

/// Waits until `condition` holds, checking every 10 ms, within the deadline.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    tokio::time::timeout(DEADLINE, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not {what} within {DEADLINE:?}"));
}

pub async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

pub fn pod(name: &str, node: &str, labels: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            containers: vec![Container {
                name: "main".into(),
                image: Some("registry.invalid/app:1".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The next item of `stream` that `pick` maps to Some, within the deadline.
pub async fn next_where<S, T, R>(
    stream: &mut S,
    what: &str,
    mut pick: impl FnMut(T) -> Option<R>,
) -> R
where
    S: Stream<Item = T> + Unpin,
{
    tokio::time::timeout(DEADLINE, async {
        while let Some(item) = stream.next().await {
            if let Some(r) = pick(item) {
                return r;
            }
        }
        panic!("the stream ended before {what}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within {DEADLINE:?}"))
}

/// The resourceVersion of an object, as a number.
pub fn rv(meta: &ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .expect("a resourceVersion")
        .parse()
        .expect("a numeric resourceVersion")
}
