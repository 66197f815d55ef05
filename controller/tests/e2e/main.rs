//! The controller end to end against the in-process API-server double: initial
//! publication, pods and policies changing, rejections, Programmed, the double
//! restarting or compacting, two replicas, and a controller restart.

mod binary;
mod support;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_publishes_what_compile_gives() {
    let double = double().await;
    seed(&double);
    let replica = Replica::start(&double, "a");
    converged(&double).await;
    let published = published(&double);
    for name in [
        "ClusterTable/identities-000",
        "ClusterTable/ipcache-000",
        "ClusterTable/services-000",
        "NodePolicy/n1",
        "NodePolicy/n2",
        "NodePolicy/n3",
    ] {
        assert_eq!(
            published.get(name).map(|p| p.1),
            Some(1),
            "{name} written once"
        );
    }
    let n1 = double.get(GROUP, "nodepolicies", "", "n1").unwrap();
    assert_eq!(n1["spec"]["generation"], 1);
    assert_eq!(n1["spec"]["endpoints"].as_array().unwrap().len(), 1);
    assert!(
        n1["metadata"]["managedFields"]
            .to_string()
            .contains("palisade-controller")
    );
    wait_until("ready", || replica.readiness.is_ready()).await;
    let metrics = replica.metrics.encode();
    assert!(
        metrics.contains("palisade_controller_leader 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("palisade_controller_objects_written_total{kind=\"NodePolicy\"} 3"),
        "{metrics}"
    );
    replica.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_changes_rewrite_only_affected_objects() {
    let double = double().await;
    seed(&double);
    let replica = Replica::start(&double, "a");
    converged(&double).await;

    // A new web pod on n1: same identity as web-1, so the identities are unchanged;
    // its address and n1's endpoints change, n2 and n3 do not.
    let before = published(&double);
    insert(&double, "", "pods", pod("web-3", "n1", "10.0.1.2", "web"));
    converged(&double).await;
    let after = published(&double);
    let written = only_changed_rewritten(&before, &after);
    assert!(
        written.contains(&"NodePolicy/n1".to_string()),
        "{written:?}"
    );
    assert!(
        written.contains(&"ClusterTable/ipcache-000".to_string()),
        "{written:?}"
    );
    for untouched in [
        "NodePolicy/n2",
        "NodePolicy/n3",
        "ClusterTable/identities-000",
    ] {
        assert!(
            !written.contains(&untouched.to_string()),
            "{untouched}: {written:?}"
        );
    }

    // Relabelled: db-1 becomes a web pod.
    let before = after;
    double
        .patch(
            "",
            "pods",
            "x",
            "db-1",
            json!({"metadata": {"labels": {"app": "web"}}}),
        )
        .unwrap();
    converged(&double).await;
    let after = published(&double);
    let written = only_changed_rewritten(&before, &after);
    assert!(
        written.contains(&"NodePolicy/n3".to_string()),
        "{written:?}"
    );

    // Deleted.
    let before = after;
    double.delete("", "pods", "x", "web-3").unwrap();
    converged(&double).await;
    let written = only_changed_rewritten(&before, &published(&double));
    assert!(
        written.contains(&"NodePolicy/n1".to_string()),
        "{written:?}"
    );
    assert!(
        !written.contains(&"NodePolicy/n2".to_string()),
        "{written:?}"
    );

    // A node goes away: its NodePolicy is deleted.
    double.delete("", "pods", "x", "web-2").unwrap();
    double.delete("", "nodes", "", "n2").unwrap();
    converged(&double).await;
    assert!(double.get(GROUP, "nodepolicies", "", "n2").is_none());
    replica.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_change_updates_node_policies_and_status_and_programmed_follows_agents() {
    let double = double().await;
    seed(&double);
    let replica = Replica::start(&double, "a");
    converged(&double).await;
    wait_until("EgressPolicy accepted", || {
        condition(
            &status(&double, "egresspolicies", "x", "egress"),
            "Accepted",
        )["status"]
            == "True"
    })
    .await;
    let first = status(&double, "egresspolicies", "x", "egress");
    assert_eq!(first["observedGeneration"], 1);
    assert_eq!(first["targetNodes"], 2, "{first}");
    assert_eq!(
        condition(&first, "Programmed")["status"],
        "False",
        "{first}"
    );

    // Simulated agents apply what they were given: Programmed.
    agents_apply_all(&double);
    wait_until("Programmed", || {
        condition(
            &status(&double, "egresspolicies", "x", "egress"),
            "Programmed",
        )["status"]
            == "True"
    })
    .await;
    let programmed = status(&double, "egresspolicies", "x", "egress");
    assert_eq!(programmed["programmedNodes"], 2, "{programmed}");

    // The policy changes: the web nodes get new tables, Programmed waits for them.
    let before = published(&double);
    double
        .patch(
            GROUP,
            "egresspolicies",
            "x",
            "egress",
            json!({"spec": {"egress": [{"to": [{"cidr": "10.1.0.0/16"}]}]}}),
        )
        .unwrap();
    converged(&double).await;
    let written = only_changed_rewritten(&before, &published(&double));
    assert!(
        written.contains(&"NodePolicy/n1".to_string()),
        "{written:?}"
    );
    assert!(
        written.contains(&"NodePolicy/n2".to_string()),
        "{written:?}"
    );
    wait_until("generation 2 observed, not yet programmed", || {
        let s = status(&double, "egresspolicies", "x", "egress");
        s["observedGeneration"] == 2 && condition(&s, "Programmed")["status"] == "False"
    })
    .await;
    agents_apply_all(&double);
    wait_until("generation 2 programmed", || {
        let s = status(&double, "egresspolicies", "x", "egress");
        s["observedGeneration"] == 2 && condition(&s, "Programmed")["status"] == "True"
    })
    .await;
    replica.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_egress_policy_is_rejected_alone() {
    let double = double().await;
    seed(&double);
    let replica = Replica::start(&double, "a");
    converged(&double).await;
    let before = published(&double);

    insert(
        &double,
        GROUP,
        "egresspolicies",
        egress_policy("bad", "not-a-cidr"),
    );
    wait_until("bad rejected", || {
        condition(&status(&double, "egresspolicies", "x", "bad"), "Accepted")["status"] == "False"
    })
    .await;
    let accepted = condition(&status(&double, "egresspolicies", "x", "bad"), "Accepted");
    assert_eq!(accepted["reason"], "Invalid");
    assert!(
        accepted["message"]
            .as_str()
            .unwrap()
            .contains("spec.egress[0].to[0].cidr"),
        "{accepted}"
    );
    wait_until("an Event about bad", || {
        double.list("events.k8s.io", "events").iter().any(|e| {
            e["regarding"]["name"] == "bad"
                && e["reason"] == "Invalid"
                && e["note"]
                    .as_str()
                    .unwrap_or("")
                    .contains("spec.egress[0].to[0].cidr")
        })
    })
    .await;
    // The valid policy is unaffected and nothing was republished.
    assert_eq!(
        condition(
            &status(&double, "egresspolicies", "x", "egress"),
            "Accepted"
        )["status"],
        "True"
    );
    converged(&double).await;
    assert_eq!(published(&double), before);

    // The valid policy turns invalid: its last accepted version stays in force.
    double
        .patch(
            GROUP,
            "egresspolicies",
            "x",
            "egress",
            json!({"spec": {"egress": [{"to": [{"cidr": "10.0.0.0/33"}]}]}}),
        )
        .unwrap();
    wait_until("egress rejected", || {
        let s = status(&double, "egresspolicies", "x", "egress");
        s["observedGeneration"] == 2 && condition(&s, "Accepted")["status"] == "False"
    })
    .await;
    assert_eq!(hashes(&published(&double)), hashes(&before));
    // Fixed again: accepted, and (same content as generation 1) still nothing written.
    double
        .patch(
            GROUP,
            "egresspolicies",
            "x",
            "egress",
            json!({"spec": {"egress": [{"to": [{"cidr": "10.0.0.0/8"}]}]}}),
        )
        .unwrap();
    wait_until("egress accepted again", || {
        let s = status(&double, "egresspolicies", "x", "egress");
        s["observedGeneration"] == 3 && condition(&s, "Accepted")["status"] == "True"
    })
    .await;
    assert_eq!(published(&double), before);

    // Another kind: a NetworkPolicy that does not parse gets an Event, and the rest
    // of the cluster is still published as before.
    insert(
        &double,
        "networking.k8s.io",
        "networkpolicies",
        json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "broken", "namespace": "x"},
        "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "nope"}}]}]}}),
    );
    wait_until("an Event about the NetworkPolicy", || {
        double.list("events.k8s.io", "events").iter().any(|e| {
            e["regarding"]["name"] == "broken"
                && e["regarding"]["kind"] == "NetworkPolicy"
                && e["note"]
                    .as_str()
                    .unwrap_or("")
                    .contains("spec.ingress[0].from[0].ipBlock.cidr")
        })
    })
    .await;
    converged(&double).await;
    assert_eq!(published(&double), before);
    replica.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_from_restarts_dropped_watches_and_compaction() {
    let double = double().await;
    seed(&double);
    let replica = Replica::start(&double, "a");
    converged(&double).await;

    double.restart().await.unwrap();
    insert(&double, "", "pods", pod("web-4", "n2", "10.0.2.4", "web"));
    converged(&double).await;

    double.drop_watches();
    insert(&double, "", "pods", pod("db-2", "n1", "10.0.1.9", "db"));
    converged(&double).await;

    // Down while things change, and the history compacted: the watches relist (410).
    double.stop();
    double.delete("", "pods", "x", "web-4").unwrap();
    insert(&double, "", "pods", pod("web-5", "n3", "10.0.3.5", "web"));
    double.compact();
    double.resume().await.unwrap();
    converged(&double).await;
    assert!(replica.readiness.is_ready());
    replica.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_and_a_standby_takes_over() {
    let double = double().await;
    seed(&double);
    let a = Replica::start(&double, "a");
    wait_until("a leads", || a.readiness.is_leader()).await;
    converged(&double).await;
    let b = Replica::start(&double, "b");
    wait_until("b synced", || b.readiness.is_ready()).await;
    assert!(!b.readiness.is_leader());

    insert(&double, "", "pods", pod("web-3", "n1", "10.0.1.2", "web"));
    converged(&double).await;
    assert!(a.metrics.written_total() > 0);
    assert_eq!(b.metrics.written_total(), 0);
    let lease = double
        .get(
            "coordination.k8s.io",
            "leases",
            "palisade-system",
            "palisade-controller",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "a");

    // a crashes (the lease is not released): b takes over once it expires.
    a.kill().await;
    wait_until("b leads", || b.readiness.is_leader()).await;
    insert(&double, "", "pods", pod("web-6", "n3", "10.0.3.6", "web"));
    converged(&double).await;
    assert!(b.metrics.written_total() > 0);
    let lease = double
        .get(
            "coordination.k8s.io",
            "leases",
            "palisade-system",
            "palisade-controller",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    b.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_writes_nothing() {
    let double = double().await;
    seed(&double);
    let replica = Replica::start(&double, "a");
    converged(&double).await;
    agents_apply_all(&double);
    wait_until("Programmed", || {
        condition(
            &status(&double, "egresspolicies", "x", "egress"),
            "Programmed",
        )["status"]
            == "True"
    })
    .await;
    let before = published(&double);
    let status_before = status(&double, "egresspolicies", "x", "egress");
    replica.shut_down().await;
    let lease = double
        .get(
            "coordination.k8s.io",
            "leases",
            "palisade-system",
            "palisade-controller",
        )
        .unwrap();
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "released: {lease}"
    );

    let again = Replica::start(&double, "a2");
    wait_until("leads and published", || {
        again.readiness.is_leader() && again.readiness.is_ready()
    })
    .await;
    assert_eq!(published(&double), before);
    assert_eq!(again.metrics.written_total(), 0);
    assert_eq!(
        status(&double, "egresspolicies", "x", "egress"),
        status_before
    );
    again.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lease_stops_writing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let double = Arc::new(double().await);
    seed(&double);
    let a = Replica::start(&double, "a");
    converged(&double).await;

    // Someone else takes the lease and keeps renewing it.
    let stealing = Arc::new(AtomicBool::new(true));
    let renewals = Arc::new(AtomicUsize::new(0));
    let thief = {
        let (double, stealing, renewals) = (double.clone(), stealing.clone(), renewals.clone());
        tokio::spawn(async move {
            while stealing.load(Ordering::SeqCst) {
                let now = jiff::Timestamp::now().to_string();
                double
                    .patch(
                        "coordination.k8s.io",
                        "leases",
                        "palisade-system",
                        "palisade-controller",
                        json!({"spec": {"holderIdentity": "intruder", "renewTime": now}}),
                    )
                    .unwrap();
                renewals.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
    };
    wait_until("a steps down", || !a.readiness.is_leader()).await;
    double.clear_requests();
    insert(&double, "", "pods", pod("web-3", "n1", "10.0.1.2", "web"));
    let seen = renewals.load(Ordering::SeqCst);
    wait_until("the intruder renewed ten more times", || {
        renewals.load(Ordering::SeqCst) >= seen + 10
    })
    .await;
    let writes: Vec<_> = double
        .requests()
        .into_iter()
        .filter(|r| r.verb.is_write() && r.field_manager == "palisade-controller")
        .collect();
    let all: Vec<String> = double
        .requests()
        .into_iter()
        .filter(|r| r.verb != palisade_apiserver_double::Verb::Watch)
        .map(|r| {
            format!(
                "{:?} {} {} {} {}",
                r.verb, r.plural, r.name, r.code, r.field_manager
            )
        })
        .collect();
    assert!(writes.is_empty(), "a standby wrote: {all:#?}");
    assert!(!a.readiness.is_leader());

    // The intruder lets go: a leads again and publishes the pod.
    stealing.store(false, Ordering::SeqCst);
    thief.await.unwrap();
    double
        .patch(
            "coordination.k8s.io",
            "leases",
            "palisade-system",
            "palisade-controller",
            json!({"spec": {"holderIdentity": null}}),
        )
        .unwrap();
    wait_until("a leads again", || a.readiness.is_leader()).await;
    converged(&double).await;
    a.shut_down().await;
}
