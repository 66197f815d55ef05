//! Watches: ordered ADDED/MODIFIED/DELETED events, bookmarks, 410 Gone on
//! compacted versions, kube's watcher relisting after 410 and resuming after
//! a restart, selector transitions, streaming lists, reflectors.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::common::{DEADLINE, double, in_background, namespace, next_where, pod, rv, wait_until};

#[tokio::test]
async fn a_watch_sees_every_change_in_order_then_bookmarks() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let start = double.revision().to_string();
    let mut events = pods
        .watch(&WatchParams::default(), &start)
        .await
        .unwrap()
        .boxed();

    pods.create(&PostParams::default(), &pod("a", "n", &[]))
        .await
        .unwrap();
    let labels = Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}));
    pods.patch("a", &PatchParams::default(), &labels)
        .await
        .unwrap();
    pods.delete("a", &Default::default()).await.unwrap();

    let mut seen = Vec::new();
    let mut last = 0;
    while seen.len() < 3 {
        let (kind, version) = next_where(&mut events, "a change event", |e| match e.unwrap() {
            WatchEvent::Added(p) => Some(("ADDED", rv(&p.metadata))),
            WatchEvent::Modified(p) => Some(("MODIFIED", rv(&p.metadata))),
            WatchEvent::Deleted(p) => Some(("DELETED", rv(&p.metadata))),
            WatchEvent::Bookmark(_) => None,
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        })
        .await;
        assert!(version > last, "resourceVersions increase");
        last = version;
        seen.push(kind);
    }
    assert_eq!(seen, ["ADDED", "MODIFIED", "DELETED"]);
    let bookmark = next_where(&mut events, "a bookmark", |e| match e.unwrap() {
        WatchEvent::Bookmark(b) => Some(b.metadata.resource_version.parse::<u64>().unwrap()),
        _ => None,
    })
    .await;
    assert!(bookmark >= last);
}

#[tokio::test]
async fn a_watch_from_a_compacted_version_gets_410_expired() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let old = double.revision().to_string();
    pods.create(&PostParams::default(), &pod("a", "n", &[]))
        .await
        .unwrap();
    double.compact();
    let mut events = pods
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .boxed();
    let status = next_where(&mut events, "an error event", |e| match e.unwrap() {
        WatchEvent::Error(s) => Some(s),
        _ => None,
    })
    .await;
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
    assert!(
        events.next().await.is_none(),
        "the stream ends after the error"
    );
}

#[tokio::test]
async fn the_watcher_relists_after_410_and_sees_what_it_missed() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    pods.create(&PostParams::default(), &pod("a", "n", &[]))
        .await
        .unwrap();
    let mut events = watcher(pods.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    next_where(&mut events, "the initial list", |e| {
        matches!(e, Ok(watcher::Event::InitDone)).then_some(())
    })
    .await;

    // While the server is down, "b" appears and the history is compacted:
    // the watcher's resourceVersion is now too old.
    double.stop();
    double
        .insert(
            "",
            "pods",
            serde_json::to_value({
                let mut p = pod("b", "n", &[]);
                p.metadata.namespace = Some("ns".into());
                p
            })
            .unwrap(),
        )
        .unwrap();
    double.compact();
    double.resume().await.unwrap();

    let mut gone = false;
    let mut relisted = Vec::new();
    next_where(&mut events, "a relist", |e| match e {
        Err(watcher::Error::WatchError(s)) if s.code == 410 => {
            gone = true;
            None
        }
        Ok(watcher::Event::InitApply(p)) => {
            relisted.push(p.name_any());
            None
        }
        Ok(watcher::Event::InitDone) => Some(()),
        _ => None,
    })
    .await;
    assert!(gone, "the watcher was told 410 Gone");
    assert_eq!(relisted, ["a", "b"]);
}

#[tokio::test]
async fn after_a_restart_the_watcher_resumes_from_its_version() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let watching = watcher(pods.clone(), watcher::Config::default()).default_backoff();
    let mut events = in_background(watching);
    next_where(&mut events, "the initial list", |e| {
        matches!(e, Ok(watcher::Event::InitDone)).then_some(())
    })
    .await;
    wait_until("watching", || double.watch_count() == 1).await;

    double.restart().await.unwrap();
    assert_eq!(double.watch_count(), 0);
    pods.create(&PostParams::default(), &pod("after", "n", &[]))
        .await
        .unwrap();
    let mut relisted = false;
    let name = next_where(&mut events, "the new pod", |e| match e {
        Ok(watcher::Event::Init) => {
            relisted = true;
            None
        }
        Ok(watcher::Event::Apply(p)) => Some(p.name_any()),
        _ => None,
    })
    .await;
    assert_eq!(name, "after");
    assert!(!relisted, "history survives a restart: no relist needed");

    // Dropped watches (without a restart) are resumed the same way.
    wait_until("watching again", || double.watch_count() == 1).await;
    double.drop_watches();
    pods.create(&PostParams::default(), &pod("later", "n", &[]))
        .await
        .unwrap();
    let name = next_where(&mut events, "the next pod", |e| match e {
        Ok(watcher::Event::Init) => panic!("no relist after dropped watches"),
        Ok(watcher::Event::Apply(p)) => Some(p.name_any()),
        _ => None,
    })
    .await;
    assert_eq!(name, "later");
}

#[tokio::test]
async fn objects_leaving_a_label_selector_are_deleted_from_the_watch() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let start = double.revision().to_string();
    let mut events = pods
        .watch(&WatchParams::default().labels("app=web"), &start)
        .await
        .unwrap()
        .boxed();
    pods.create(&PostParams::default(), &pod("a", "n", &[("app", "web")]))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("z", "n", &[("app", "db")]))
        .await
        .unwrap();
    for value in ["db", "web"] {
        let patch = Patch::Merge(json!({"metadata": {"labels": {"app": value}}}));
        pods.patch("a", &PatchParams::default(), &patch)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = next_where(&mut events, "an event", |e| match e.unwrap() {
            WatchEvent::Added(p) => Some(format!("ADDED {}", p.name_any())),
            WatchEvent::Modified(p) => Some(format!("MODIFIED {}", p.name_any())),
            WatchEvent::Deleted(p) => Some(format!("DELETED {}", p.name_any())),
            _ => None,
        })
        .await;
        seen.push(event);
    }
    assert_eq!(seen, ["ADDED a", "DELETED a", "ADDED a"]);
}

#[tokio::test]
async fn streaming_lists_end_with_the_initial_events_bookmark() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    for name in ["a", "b"] {
        pods.create(&PostParams::default(), &pod(name, "n", &[]))
            .await
            .unwrap();
    }
    let config = watcher::Config::default().streaming_lists();
    let mut events = watcher(pods.clone(), config).default_backoff().boxed();
    let mut initial = Vec::new();
    next_where(&mut events, "the end of initial events", |e| {
        match e.unwrap() {
            watcher::Event::InitApply(p) => {
                initial.push(p.name_any());
                None
            }
            watcher::Event::InitDone => Some(()),
            _ => None,
        }
    })
    .await;
    assert_eq!(initial, ["a", "b"]);
    pods.create(&PostParams::default(), &pod("c", "n", &[]))
        .await
        .unwrap();
    let name = next_where(&mut events, "the new pod", |e| match e.unwrap() {
        watcher::Event::Apply(p) => Some(p.name_any()),
        _ => None,
    })
    .await;
    assert_eq!(name, "c");
}

#[tokio::test]
async fn a_reflector_on_a_node_field_selector_mirrors_that_nodes_pods() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ns");
    pods.create(&PostParams::default(), &pod("here-1", "node-1", &[]))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("there", "node-2", &[]))
        .await
        .unwrap();

    let (reader, writer) = reflector::store();
    let config = watcher::Config::default().fields("spec.nodeName=node-1");
    let stream = reflector(writer, watcher(Api::<Pod>::all(client), config)).default_backoff();
    let _events = in_background(stream);
    tokio::time::timeout(DEADLINE, reader.wait_until_ready())
        .await
        .expect("the reflector is ready in time")
        .unwrap();
    let names = || {
        let mut names: Vec<String> = reader.state().iter().map(|p| p.name_any()).collect();
        names.sort();
        names
    };
    assert_eq!(names(), ["here-1"]);

    pods.create(&PostParams::default(), &pod("here-2", "node-1", &[]))
        .await
        .unwrap();
    pods.delete("here-1", &Default::default()).await.unwrap();
    pods.create(&PostParams::default(), &pod("there-2", "node-2", &[]))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("here-3", "node-1", &[]))
        .await
        .unwrap();
    wait_until("the reflector mirrors node-1", || {
        names() == ["here-2", "here-3"]
    })
    .await;
}

#[tokio::test]
async fn a_watch_ends_at_its_timeout() {
    let double = double().await;
    let client = double.client();
    namespace(&client, "ns").await;
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let start = double.revision().to_string();
    let params = WatchParams::default().timeout(1).disable_bookmarks();
    let mut events = pods.watch(&params, &start).await.unwrap().boxed();
    let ended = tokio::time::timeout(DEADLINE, events.next())
        .await
        .expect("the watch ends");
    assert!(ended.is_none());
    wait_until("the watcher unregistered", || double.watch_count() == 0).await;
}
