//! Kernel tests of `palisade-agent kubernetes`: the real agent binary against the
//! API-server double, fed by the real controller (running in-process against the same
//! double), enforcing on emulated pods whose cgroups are laid out as the kubelet does
//! (systemd driver in one test, cgroupfs in the other, containerd scopes), with real
//! connections between network namespaces the test created.
//!
//! Asserted: allowed and denied connections as the NetworkPolicy says; the
//! NodePolicy's `status.appliedGeneration`/`appliedHash` and each pod's
//! `palisade.dev/PolicyProgrammed` condition written; a pod created after start
//! enforced; the off switch (`palisade-agent enforcement off|on` and the Node label)
//! opening and closing again; the agent killed with SIGKILL and restarted, and the
//! API server going away, leaving enforcement (and readiness) as they were; `/metrics` naming what it should.
//!
//! Needs root; a missing privilege or tool is a failure naming it, never a skip.

mod kernel_agent_kubernetes {
    pub mod cluster;
}

use anyhow::{Context, Result, bail, ensure};
use kernel_agent_kubernetes::cluster::{AgentProcess, Cluster, Driver, KubeletTree, NAMESPACE};
use palisade_lab::harness::binaries::require_root;
use palisade_lab::{Lab, PodHandle, PodSpec, Proto};
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

fn set_up(driver: Driver) -> Result<Setup> {
    require_root()?;
    let mut lab = Lab::new("pk8s")?;
    let node = format!("node-{}", lab.id());
    let cluster = Cluster::start(&node)?;
    let tree = KubeletTree::create(&lab, driver)?;
    let db = add_pod(&mut lab, &cluster, &tree, "db", 4, "db")?;
    let client = add_pod(&mut lab, &cluster, &tree, "client", 2, "client")?;
    let other = add_pod(&mut lab, &cluster, &tree, "other", 3, "other")?;
    cluster.insert("networking.k8s.io", "networkpolicies", db_policy())?;
    serve(&lab, &db.handle, &db.container, DB_PORT)?;
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
        let cluster = &self.cluster;
        self.agent
            .wait_for("pod conditions PolicyProgrammed=True", |_| {
                pods.iter()
                    .all(|p| cluster.programmed(p).as_deref() == Some("True"))
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
    s.agent.switch("on")?;
    s.expect(&s.other, false, "enforcement on again")?;

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
