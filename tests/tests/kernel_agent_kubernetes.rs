//! Kernel tests of `palisade-agent kubernetes`: the real agent binary against the
//! API-server double, fed by the real controller (running in-process against the same
//! double), enforcing on emulated pods whose cgroups are laid out as the kubelet does
//! (systemd driver in one test, cgroupfs in the other, containerd scopes), with real
//! connections between network namespaces the test created.
//!
//! Asserted: allowed and denied connections as the NetworkPolicy says; the
//! NodePolicy's `status.appliedGeneration`/`appliedHash` and each pod's
//! `palisade.dev/PolicyProgrammed` condition written; a pod created after start
//! enforced; a policy change in force once the agent reports its generation applied; the off switch (`palisade-agent enforcement off|on` and the Node label)
//! opening and closing again; the agent killed with SIGKILL and restarted, and the
//! API server going away, leaving enforcement (and readiness) as they were; `/metrics` naming what it should.
//! And the agent as it runs in a cluster: in a pod's network namespace and cgroup
//! under kubepods, reaching the API through the pod's interface, killed with SIGKILL
//! under held traffic and replaced by a new pod (new UID, new cgroup): no denied
//! packet leaks, no allowed connection breaks, and the new agent's own API traffic
//! is not held by the unknown-endpoint default the old tables apply to its new cgroup.
//!
//! Needs root; a missing privilege or tool is a failure naming it, never a skip.

mod kernel_agent_kubernetes {
    pub mod cluster;
    pub mod netns_relay;
}

use anyhow::{Context, Result, bail, ensure};
use kernel_agent_kubernetes::cluster::{
    AgentProcess, Cluster, Driver, InPod, KubeletTree, NAMESPACE,
};
use kernel_agent_kubernetes::netns_relay::Relay;
use palisade_lab::harness::binaries::require_root;
use palisade_lab::{Lab, LabConfig, PodHandle, PodSpec, Proto};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

const DB_PORT: u16 = 5432;
/// A denied connection is dropped at the server's ingress: the probe times out.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// shop/db (app=db) accepts TCP 5432 from app=client only.
fn db_policy() -> serde_json::Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "db-from-client", "namespace": NAMESPACE},
        "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                              "ports": [{"protocol": "TCP", "port": DB_PORT}]}]}})
}

/// A lab pod known to the API and laid out in the kubelet's tree: its container
/// cgroup (where its processes run).
struct KubePod {
    handle: PodHandle,
    container: std::path::PathBuf,
}

struct Setup {
    // Dropped in this order: agent (kill, unpin), then the lab, then the cluster.
    agent: AgentProcess,
    lab: Lab,
    cluster: Cluster,
    tree: KubeletTree,
    db: KubePod,
    client: KubePod,
    other: KubePod,
    _dir: tempfile::TempDir,
}

fn add_pod(
    lab: &mut Lab,
    cluster: &Cluster,
    tree: &KubeletTree,
    name: &str,
    host: u8,
    app: &str,
) -> Result<KubePod> {
    let handle = lab.add_pod(PodSpec::ipv4(name, Ipv4Addr::new(10, 81, 0, host)))?;
    let uid = cluster.create_pod(&handle, app)?;
    let container = tree.add_pod(&uid)?;
    Ok(KubePod { handle, container })
}

/// A netprobe echo server in `cgroup` of `pod`, up once it says `ready`.
fn serve(lab: &Lab, pod: &PodHandle, cgroup: &Path, port: u16) -> Result<()> {
    let port = port.to_string();
    let mut child = lab.spawn(pod, Some(cgroup), &["serve", "--tcp", &port])?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    ensure!(line.trim() == "ready", "server said {line:?}");
    Ok(())
}

/// The shop: db, client and other, the db's policy, and the db's server.
fn shop(lab: &mut Lab, cluster: &Cluster, tree: &KubeletTree) -> Result<[KubePod; 3]> {
    let db = add_pod(lab, cluster, tree, "db", 4, "db")?;
    let client = add_pod(lab, cluster, tree, "client", 2, "client")?;
    let other = add_pod(lab, cluster, tree, "other", 3, "other")?;
    cluster.insert("networking.k8s.io", "networkpolicies", db_policy())?;
    serve(lab, &db.handle, &db.container, DB_PORT)?;
    Ok([db, client, other])
}

fn set_up(driver: Driver) -> Result<Setup> {
    require_root()?;
    let mut lab = Lab::new("pk8s")?;
    let node = format!("node-{}", lab.id());
    let cluster = Cluster::start(&node)?;
    let tree = KubeletTree::create(&lab, driver)?;
    let [db, client, other] = shop(&mut lab, &cluster, &tree)?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.kubeconfig(&kubeconfig)?;
    let mut agent = AgentProcess::start(lab.id(), &node, &kubeconfig, lab.cgroup_root())?;
    agent.wait_for("ready (/readyz 200)", |a| a.readyz() == Some(200))?;
    Ok(Setup {
        agent,
        lab,
        cluster,
        tree,
        db,
        client,
        other,
        _dir: dir,
    })
}

/// The NodePolicy's status condition of `type_`.
fn node_policy_condition(cluster: &Cluster, type_: &str) -> Option<serde_json::Value> {
    cluster.node_policy()["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

impl Setup {
    /// Whether a TCP connection from `from`'s container to the db gets through.
    fn reaches_db(&self, from: &KubePod) -> Result<bool> {
        let to = self.db.handle.ips()[0];
        let result = self.lab.probe_from_cgroup(
            &from.handle,
            &from.container,
            to,
            Proto::Tcp,
            DB_PORT,
            PROBE_TIMEOUT,
        )?;
        Ok(result.allowed())
    }

    fn expect(&self, from: &KubePod, allowed: bool, when: &str) -> Result<()> {
        let got = self.reaches_db(from)?;
        if got != allowed {
            bail!(
                "{when}: {} -> db {} but should be {}; agent log:\n{}",
                from.handle.name(),
                if got { "connected" } else { "was blocked" },
                if allowed { "allowed" } else { "denied" },
                self.agent.log()
            );
        }
        Ok(())
    }

    fn wait_programmed(&mut self, pods: &[&str]) -> Result<()> {
        self.wait_condition(pods, "True")
    }

    fn wait_condition(&mut self, pods: &[&str], status: &str) -> Result<()> {
        let cluster = &self.cluster;
        self.agent
            .wait_for(&format!("pod conditions PolicyProgrammed={status}"), |_| {
                pods.iter()
                    .all(|p| cluster.programmed(p).as_deref() == Some(status))
            })
    }

    /// The NodePolicy's status names its current spec (written by the agent).
    fn wait_status_applied(&mut self) -> Result<()> {
        let cluster = &self.cluster;
        self.agent.wait_for("NodePolicy status applied", |_| {
            let policy = cluster.node_policy();
            policy["status"]["appliedGeneration"] == policy["spec"]["generation"]
                && policy["status"]["appliedHash"] == policy["spec"]["contentHash"]
                && policy["spec"]["generation"].is_i64()
                && node_policy_condition(cluster, "Applied").is_some_and(|c| {
                    c["status"] == "True" && c["observedGeneration"] == policy["spec"]["generation"]
                })
        })
    }
}

#[test]
fn systemd_layout_enforces_reports_and_switches_off() -> Result<()> {
    let mut s = set_up(Driver::Systemd)?;
    s.wait_programmed(&["db", "client", "other"])?;
    s.wait_status_applied()?;
    s.expect(&s.client, true, "app=client")?;
    s.expect(&s.other, false, "app=other")?;
    let status = s.agent.status()?;
    assert_eq!(status["kubernetes"]["cgroup_driver"], "systemd", "{status}");
    assert_eq!(status["endpoints"], 3, "{status}");
    assert_eq!(status["enforcement"]["enforcing"], true, "{status}");

    // A pod created after the agent started: enforced once its condition says so.
    let late = add_pod(&mut s.lab, &s.cluster, &s.tree, "late", 5, "client")?;
    s.wait_programmed(&["late"])?;
    s.expect(&late, true, "a pod created after start (app=client)")?;

    // The command's switch: off opens at once, on closes again.
    let switched = s.agent.switch("off")?;
    assert_eq!(switched["command_off"], true, "{switched}");
    s.expect(&s.other, true, "enforcement off")?;
    s.agent.wait_for("/status reporting enforcement off", |a| {
        a.status().is_ok_and(|st| {
            st["enforcement"]["enforcing"] == false && st["enforcement"]["command_off"] == true
        })
    })?;
    let metrics = s.agent.metrics()?;
    assert!(
        metrics.contains("palisade_agent_enforcement_enabled 0"),
        "{metrics}"
    );
    // Not fenced in any more: the readiness gate turns False, the NodePolicy says why.
    s.wait_condition(&["db", "client", "other", "late"], "False")?;
    let cluster = &s.cluster;
    s.agent
        .wait_for("NodePolicy condition Enforcing=False", |_| {
            node_policy_condition(cluster, "Enforcing").is_some_and(|c| {
                c["status"] == "False"
                    && c["reason"] == "SwitchedOff"
                    && c["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("palisade-agent enforcement off"))
            })
        })?;
    s.agent.switch("on")?;
    s.expect(&s.other, false, "enforcement on again")?;
    s.wait_condition(&["db", "client", "other", "late"], "True")?;

    // The Node label does the same through the API.
    s.cluster.label_node(Some("off"))?;
    s.agent.wait_for("the label's switch", |a| {
        a.status()
            .is_ok_and(|st| st["enforcement"]["node_label_off"] == true)
    })?;
    s.expect(&s.other, true, "Node labelled palisade.dev/enforcement=off")?;
    s.cluster.label_node(None)?;
    s.agent.wait_for("the label's switch cleared", |a| {
        a.status()
            .is_ok_and(|st| st["enforcement"]["node_label_off"] == false)
    })?;
    s.expect(&s.other, false, "label removed")?;
    s.expect(&s.client, true, "label removed (client)")?;

    // A policy change: app=other admitted too. The new verdict holds once the agent
    // reports the NodePolicy's new generation applied (and how long its kernel write
    // took); the old one is no longer in force.
    let before = s.cluster.node_policy()["spec"]["generation"]
        .as_i64()
        .context("NodePolicy generation")?;
    s.cluster.patch(
        "networking.k8s.io",
        "networkpolicies",
        NAMESPACE,
        "db-from-client",
        json!({"spec": {"ingress": [{"from": [
            {"podSelector": {"matchLabels": {"app": "client"}}},
            {"podSelector": {"matchLabels": {"app": "other"}}}],
            "ports": [{"protocol": "TCP", "port": DB_PORT}]}]}}),
    )?;
    let cluster = &s.cluster;
    s.agent.wait_for("the changed policy applied", |a| {
        let generation = cluster.node_policy()["spec"]["generation"].as_i64();
        generation > Some(before)
            && a.status().is_ok_and(|st| {
                st["kubernetes"]["applied_generation"].as_i64() == generation
                    && st["kubernetes"]["last_apply_seconds"].is_f64()
            })
    })?;
    s.expect(&s.other, true, "the policy changed to admit app=other")?;
    s.expect(&s.client, true, "the policy changed (client)")?;

    let metrics = s.agent.metrics()?;
    for name in [
        "palisade_agent_packets_total{reason=\"allowed_policy\",verdict=\"allowed\"}",
        "palisade_agent_packets_total{reason=\"allowed_enforcement_off\",verdict=\"allowed\"}",
        "palisade_agent_map_entries{map=\"PALISADE_ENDPOINTS\"}",
        "palisade_agent_apply_seconds_bucket",
        "palisade_agent_enforcement_enabled 1",
        "palisade_agent_ready 1",
    ] {
        assert!(metrics.contains(name), "{name} in\n{metrics}");
    }
    let generation = s.cluster.node_policy()["spec"]["generation"].clone();
    assert!(
        metrics.contains(&format!("palisade_agent_applied_generation {generation}")),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn cgroupfs_layout_survives_agent_restarts_and_api_outages() -> Result<()> {
    let mut s = set_up(Driver::Cgroupfs)?;
    s.wait_programmed(&["db", "client", "other"])?;
    s.wait_status_applied()?;
    assert_eq!(s.agent.status()?["kubernetes"]["cgroup_driver"], "cgroupfs");
    s.expect(&s.client, true, "app=client")?;
    s.expect(&s.other, false, "app=other")?;

    // kill -9: the pinned programs keep enforcing; a new agent adopts the pins and
    // swaps its programs into the pinned links.
    s.agent.kill()?;
    s.expect(&s.client, true, "agent killed (client)")?;
    s.expect(&s.other, false, "agent killed (other)")?;
    s.agent.restart()?;
    s.agent.wait_for("ready again after the restart", |a| {
        a.readyz() == Some(200)
            && a.status()
                .is_ok_and(|st| st["kubernetes"]["applied_generation"].is_i64())
    })?;
    ensure!(
        s.agent.full_log().contains("how=Replaced"),
        "the restarted agent did not swap its programs into the pinned links:\n{}",
        s.agent.log()
    );
    s.expect(&s.client, true, "agent restarted (client)")?;
    s.expect(&s.other, false, "agent restarted (other)")?;

    // The API server goes away: the last state stays enforced, readiness stays.
    s.cluster.double.stop();
    s.agent
        .wait_for("/status reporting the API unreachable", |a| {
            a.status()
                .is_ok_and(|st| st["kubernetes"]["api_connected"] == false)
        })?;
    assert_eq!(s.agent.readyz(), Some(200));
    s.expect(&s.client, true, "API server down (client)")?;
    s.expect(&s.other, false, "API server down (other)")?;
    s.cluster.runtime.block_on(s.cluster.double.resume())?;
    s.agent.wait_for("/status reporting the API back", |a| {
        a.status()
            .is_ok_and(|st| st["kubernetes"]["api_connected"] == true)
    })?;
    s.expect(&s.other, false, "API server back")?;
    // The pods' containers are gone from the lab's view before the Setup drops.
    let _ = &s.db;
    Ok(())
}

/// The agent's pods: UIDs as the API server would assign them (not in the double:
/// no NodePolicy names them, as none selects the agent's namespace here).
const AGENT_HEALTH_PORT: u16 = 9876;
const AGENT_METRICS_PORT: u16 = 9877;
const AGENT_POD_UIDS: [&str; 2] = [
    "a9e17000-0000-4000-8000-000000000001",
    "a9e17000-0000-4000-8000-000000000002",
];

/// The agent's pod `uid`: its netns (the lab pod `agent`) and a new pod cgroup.
fn in_pod(tree: &KubeletTree, agent_pod: &PodHandle, uid: &str) -> Result<InPod> {
    let ip = agent_pod.ips()[0];
    Ok(InPod {
        netns: agent_pod.netns().to_string(),
        health_addr: (ip, AGENT_HEALTH_PORT).into(),
        metrics_addr: (ip, AGENT_METRICS_PORT).into(),
        cgroup: tree.add_pod(uid)?,
        pod_uid: uid.to_string(),
    })
}

#[test]
fn agent_in_a_pod_is_replaced_under_traffic_without_a_gap() -> Result<()> {
    require_root()?;
    let node_ip = Ipv4Addr::new(10, 81, 0, 1);
    let mut lab = Lab::with_config(
        "pk8p",
        LabConfig {
            node_ipv4: Some(node_ip),
            ..LabConfig::default()
        },
    )?;
    let node = format!("node-{}", lab.id());
    let cluster = Cluster::start(&node)?;
    let tree = KubeletTree::create(&lab, Driver::Systemd)?;
    let [db, client, other] = shop(&mut lab, &cluster, &tree)?;
    let agent_pod = lab.add_pod(PodSpec::ipv4("agent", Ipv4Addr::new(10, 81, 0, 9)))?;
    let api = Relay::start(
        Some(lab.node_netns()),
        (node_ip, 0).into(),
        None,
        cluster.double.addr(),
    )?;
    // The agent's endpoints on its pod address, reached from here through the node.
    let agent_ip = agent_pod.ips()[0];
    let endpoints = [AGENT_HEALTH_PORT, AGENT_METRICS_PORT].map(|port| {
        Relay::start(
            None,
            (Ipv4Addr::LOCALHOST, 0).into(),
            Some(lab.node_netns()),
            (agent_ip, port).into(),
        )
    });
    let [health, metrics] = endpoints;
    let (health, metrics) = (health?, metrics?);
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.kubeconfig_at(&kubeconfig, &format!("http://{}", api.addr))?;
    let mut agent = AgentProcess::start_in_pod(
        lab.id(),
        &node,
        &kubeconfig,
        lab.cgroup_root(),
        in_pod(&tree, &agent_pod, AGENT_POD_UIDS[0])?,
        (health.addr, metrics.addr),
    )?;
    agent.wait_for("ready (/readyz 200)", |a| a.readyz() == Some(200))?;
    let mut s = Setup {
        agent,
        lab,
        cluster,
        tree,
        db,
        client,
        other,
        _dir: dir,
    };
    s.wait_programmed(&["db", "client", "other"])?;
    s.expect(&s.client, true, "app=client")?;
    s.expect(&s.other, false, "app=other")?;

    let db_ip = s.db.handle.ips()[0];
    let held = s.lab.hold_from_cgroup(
        &s.client.handle,
        &s.client.container,
        db_ip,
        DB_PORT,
        PROBE_TIMEOUT,
    )?;
    let first = held.next_result(Duration::from_secs(20))?;
    ensure!(
        first.allowed(),
        "the held connection never worked: {first:?}"
    );

    // kill -9, then a replacement pod: a new UID and cgroup, unknown to the pinned
    // tables (whose unknown-endpoint default is deny).
    s.agent.kill()?;
    held.discard_reported();
    s.expect(&s.other, false, "no agent running (other)")?;
    s.agent
        .restart_in_pod(in_pod(&s.tree, &agent_pod, AGENT_POD_UIDS[1])?)?;
    // While the replacement starts, adopts the pins and rebuilds its state: denied
    // stays denied, probe after probe.
    let mut denied_probes = 0;
    while denied_probes < 2 || s.agent.readyz() != Some(200) {
        s.expect(
            &s.other,
            false,
            "while the replacement agent starts (other)",
        )?;
        denied_probes += 1;
        ensure!(
            denied_probes < 40,
            "the replacement agent never became ready"
        );
    }
    s.agent
        .wait_for("the replacement agent ready, its state applied", |a| {
            a.readyz() == Some(200)
                && a.status().is_ok_and(|st| {
                    st["kubernetes"]["applied_generation"].is_i64()
                        && st["kubernetes"]["api_connected"] == true
                })
        })?;
    ensure!(
        s.agent
            .full_log()
            .contains("the agent's own pod cgroup entered in the pinned tables"),
        "the replacement agent did not enter its own pod cgroup:\n{}",
        s.agent.log()
    );
    s.expect(&s.other, false, "replacement agent running (other)")?;
    s.expect(&s.client, true, "replacement agent running (client)")?;

    // Every round trip on the held connection, across the kill and the replacement,
    // went through: the ones queued since the kill, then a second of live ones.
    let mut round_trips = 0;
    let until = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < until {
        let result = held
            .next_result(PROBE_TIMEOUT * 2)
            .with_context(|| format!("after {round_trips} round trips"))?;
        ensure!(
            result.allowed(),
            "the allowed connection broke after {round_trips} round trips: {result:?}\nagent log:\n{}",
            s.agent.log()
        );
        round_trips += 1;
    }
    ensure!(
        round_trips >= 10,
        "only {round_trips} round trips were reported"
    );
    println!(
        "held connection: {round_trips} round trips across the kill -9 and the replacement, none failed"
    );
    drop(held);
    drop((api, health, metrics));
    Ok(())
}
