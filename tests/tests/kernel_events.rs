//! Kernel tests of flow events as an operator sees them: real programs on emulated
//! pods, `palisade-agent standalone --events-addr`, and `palisadectl observe`
//! following the stream. An EgressPolicy in Audit mode lets a flow through and
//! reports it naming the policy; a denied connection produces an event whose every
//! field is the expected one, with the same `decided_by` as `palisadectl check`.
//!
//! Needs root; a missing privilege or tool is a failure, never a skip.

use anyhow::{Context, Result, bail, ensure};
use palisade_lab::harness::agent::{Agent, AgentOptions};
use palisade_lab::harness::binaries::{palisadectl, require_root};
use palisade_lab::harness::manifests::{self, ManifestDir};
use palisade_lab::{Lab, LabConfig, Outcome, PodHandle, PodSpec, ProbeSpec, Proto};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an expected event may take to show up on the stream.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
const NODE: &str = "node-1";

/// tenant/client (10.90.0.10), tenant/server (.20) and tenant/denied (.30), each
/// serving TCP 80 and UDP 53; the node at .1.
struct Setup {
    lab: Lab,
    client: PodHandle,
    server: PodHandle,
    denied: PodHandle,
    dir: ManifestDir,
    agent: Agent,
    events: SocketAddr,
}

fn setup(prefix: &str, policy: &str, agent_args: &[&str]) -> Result<Setup> {
    require_root()?;
    let mut lab = Lab::with_config(
        prefix,
        LabConfig {
            node_ipv4: Some("10.90.0.1".parse()?),
            ..Default::default()
        },
    )?;
    let mut pods = Vec::new();
    for (name, n) in [("client", 10), ("server", 20), ("denied", 30)] {
        let pod = lab.add_pod(PodSpec::ipv4(name, format!("10.90.0.{n}").parse()?))?;
        lab.serve(&pod, &[80], &[53])?;
        pods.push(pod);
    }
    let [client, server, denied] = <[PodHandle; 3]>::try_from(pods).expect("three pods");
    let dir = ManifestDir::new(lab.id())?;
    let mut cluster = manifests::node(NODE, &["10.90.0.1".parse()?]);
    cluster.push_str(&manifests::namespace("tenant", &[]));
    for (pod, app) in [
        (&client, "client"),
        (&server, "server"),
        (&denied, "denied"),
    ] {
        cluster.push_str(&manifests::pod("tenant", pod, &[("app", app)], &[], true));
    }
    dir.write("cluster.yaml", &cluster)?;
    dir.write("policy.yaml", policy)?;
    let events = free_port()?;
    let events_arg = events.to_string();
    let mut args = vec!["--events-addr", &events_arg];
    args.extend_from_slice(agent_args);
    let mut agent = Agent::start(AgentOptions {
        id: lab.id(),
        manifests: dir.path(),
        cgroup_root: lab.cgroup_root(),
        node_name: NODE,
        extra_args: &args,
    })?;
    agent.wait_ready(READY_TIMEOUT)?;
    Ok(Setup {
        lab,
        client,
        server,
        denied,
        dir,
        agent,
        events,
    })
}

fn free_port() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn ip(pod: &PodHandle) -> IpAddr {
    pod.ips()[0]
}

/// `palisadectl observe` running against the agent, its stdout lines collected.
struct Observer {
    child: Child,
    lines: Receiver<String>,
}

impl Observer {
    fn start(agent: SocketAddr, filters: &[&str]) -> Result<Self> {
        let mut child = Command::new(palisadectl()?)
            .args(["observe", "--agent", &agent.to_string(), "--output", "json"])
            .args(filters)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting palisadectl observe")?;
        let stdout = child.stdout.take().context("observe stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines })
    }

    /// The next `n` events, each parsed.
    fn events(&mut self, n: usize, agent: &Agent) -> Result<Vec<Value>> {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => out.push(
                    serde_json::from_str(&line)
                        .with_context(|| format!("observe printed a non-JSON line {line:?}"))?,
                ),
                Err(_) => bail!(
                    "{} of {n} events after {EVENT_TIMEOUT:?}: {out:?}\nobserve stderr: {}\nagent log:\n{}",
                    out.len(),
                    self.stderr(),
                    agent.log_tail(100)
                ),
            }
        }
        Ok(out)
    }

    fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `palisadectl check`'s `decided_by` for a flow, minus nothing: the contract both
/// share.
fn check_decided_by(
    dir: &ManifestDir,
    from: &str,
    to: &str,
    port: u16,
    proto: &str,
) -> Result<Value> {
    let out = Command::new(palisadectl()?)
        .args(["check", "--manifests"])
        .arg(dir.path())
        .args(["--from", from, "--to", to, "--port", &port.to_string()])
        .args(["--protocol", proto, "--output", "json"])
        .output()?;
    ensure!(
        out.status.success(),
        "palisadectl check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["decided_by"].clone())
}

/// The entries of `decided_by` for one side.
fn side(decided_by: &Value, side: &str) -> Value {
    Value::Array(
        decided_by
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["side"] == side)
            .cloned()
            .collect(),
    )
}

const AUDIT_POLICY: &str = r#"
apiVersion: palisade.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: audit-client
  namespace: tenant
spec:
  podSelector:
    matchLabels:
      app: client
  enforcement: Audit
  egress:
    - name: only-documentation-net
      to:
        - cidr: 192.0.2.0/24
      ports:
        - protocol: TCP
          port: 443
"#;

#[test]
fn an_audit_mode_policy_passes_the_flow_and_reports_it() -> Result<()> {
    let s = setup("pl-ev-audit", AUDIT_POLICY, &[])?;
    let mut observer = Observer::start(
        s.events,
        &["--policy", "tenant/audit-client", "--count", "1"],
    )?;
    // Subscribed before the flow, or the flow's event is replayed: both work, with
    // --last; without it the observer must be following first.
    s.agent.wait_for_status_subscribers()?;

    let result = s
        .lab
        .probe(&s.client, ip(&s.server), Proto::Tcp, 80, PROBE_TIMEOUT)?;
    ensure!(
        result.allowed(),
        "an Audit EgressPolicy blocked the flow: {result:?}\n{}",
        s.agent.log_tail(50)
    );
    let events = observer.events(1, &s.agent)?;
    let e = &events[0];
    ensure!(e["verdict"] == "audit-deny", "{e}");
    ensure!(
        e["direction"] == "egress" && e["protocol"] == "TCP" && e["port"] == 80,
        "{e}"
    );
    ensure!(
        e["local"]["namespace"] == "tenant" && e["local"]["pod"] == "client",
        "{e}"
    );
    ensure!(
        e["peer"]["pod"] == "server" && e["peer"]["address"] == "10.90.0.20",
        "{e}"
    );
    let names_policy = e["decided_by"].as_array().into_iter().flatten().any(|d| {
        d["kind"] == "EgressPolicy" && d["namespace"] == "tenant" && d["name"] == "audit-client"
    });
    ensure!(names_policy, "the event does not name the policy: {e}");
    let expected = side(
        &check_decided_by(&s.dir, "tenant/client", "tenant/server", 80, "TCP")?,
        "egress",
    );
    ensure!(
        e["decided_by"] == expected,
        "event decided_by {} differs from palisadectl check's {expected}",
        e["decided_by"]
    );
    // observe stops by itself after --count events, successfully.
    let status = observer.child.wait()?;
    ensure!(status.success(), "observe --count 1 exited with {status}");
    Ok(())
}

/// The client may send only to app=server, UDP 53, and accepts nothing.
const FENCE: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: client-fence
  namespace: tenant
spec:
  podSelector:
    matchLabels:
      app: client
  policyTypes: [Ingress, Egress]
  egress:
    - to:
        - podSelector:
            matchLabels:
              app: server
      ports:
        - protocol: UDP
          port: 53
"#;

#[test]
fn a_denied_connection_produces_exactly_the_expected_event() -> Result<()> {
    let s = setup("pl-ev-deny", FENCE, &[])?;
    let client_id = s.client.cgroup_id();
    let generation = s.agent.status()?["generation"].clone();
    let mut observer = Observer::start(
        s.events,
        &[
            "--pod",
            "tenant/client",
            "--verdict",
            "deny",
            "--last",
            "10",
        ],
    )?;
    s.agent.wait_for_status_subscribers()?;

    // One at a time, so the events come in this order: a datagram dropped at egress
    // (packet path), a TCP connect refused at the socket, an inbound connection
    // dropped at ingress.
    let expect = [
        (
            ProbeSpec::new(&s.client, ip(&s.denied), Proto::Udp, 53),
            Outcome::PermissionDenied,
        ),
        (
            ProbeSpec::new(&s.client, ip(&s.denied), Proto::Tcp, 80),
            Outcome::PermissionDenied,
        ),
        (
            ProbeSpec::new(&s.denied, ip(&s.client), Proto::Tcp, 80),
            Outcome::TimedOut,
        ),
    ];
    for (spec, outcome) in &expect {
        let result = s
            .lab
            .probe_all(&[spec.clone().with_timeout(PROBE_TIMEOUT)])?
            .remove(0);
        ensure!(result.outcome == *outcome, "{spec}: {result:?}");
    }
    let events = observer.events(3, &s.agent)?;

    let check_egress = |port, proto| -> Result<Value> {
        Ok(side(
            &check_decided_by(&s.dir, "tenant/client", "tenant/denied", port, proto)?,
            "egress",
        ))
    };
    let check_ingress = side(
        &check_decided_by(&s.dir, "tenant/denied", "tenant/client", 80, "TCP")?,
        "ingress",
    );
    let fence_isolates = |dir: &str| {
        json!([{"side": dir, "tier": "networkpolicy", "kind": "NetworkPolicy",
                "namespace": "tenant", "name": "client-fence", "rule": null, "action": "Deny"}])
    };
    ensure!(
        check_ingress == fence_isolates("ingress"),
        "check says {check_ingress}"
    );

    // Volatile fields are checked apart: time, identities, ephemeral ports.
    let mut seen = Vec::new();
    for e in &events {
        let time = e["time"].as_str().unwrap_or_default();
        ensure!(
            time.len() > 20 && time.ends_with('Z') && time.as_bytes()[4] == b'-',
            "time {time:?} is not RFC 3339 UTC"
        );
        ensure!(
            e["local"]["identity"].as_u64() >= Some(256)
                && e["peer"]["identity"].as_u64() >= Some(256),
            "identities of two pods are allocated ones: {e}"
        );
        let mut rest = e.clone();
        for path in [["time", ""], ["local", "identity"], ["peer", "identity"]] {
            strip(&mut rest, &path);
        }
        seen.push(rest);
    }
    let client = s.client.ips()[0].to_string();
    let denied = s.denied.ips()[0].to_string();
    // The UDP datagram: its source port is whatever the socket got.
    let udp_port = events[0]["local"]["port"].as_u64().unwrap_or(0);
    ensure!(udp_port > 1024, "ephemeral source port: {}", events[0]);
    // The inbound connection: the peer's source port likewise.
    let inbound_port = events[2]["peer"]["port"].as_u64().unwrap_or(0);
    ensure!(inbound_port > 1024, "ephemeral source port: {}", events[2]);
    let expected = [
        json!({"type": "flow", "verdict": "deny", "direction": "egress", "protocol": "UDP",
               "port": 53,
               "local": {"namespace": "tenant", "pod": "client", "cgroup_id": client_id,
                         "address": client, "port": udp_port},
               "peer": {"namespace": "tenant", "pod": "denied", "address": denied, "port": 53},
               "decided_by": check_egress(53, "UDP")?, "generation": generation}),
        // Refused at connect(): no packet yet, so no local address or port.
        json!({"type": "flow", "verdict": "deny", "direction": "egress", "protocol": "TCP",
               "port": 80,
               "local": {"namespace": "tenant", "pod": "client", "cgroup_id": client_id,
                         "address": null, "port": 0},
               "peer": {"namespace": "tenant", "pod": "denied", "address": denied, "port": 80},
               "decided_by": check_egress(80, "TCP")?, "generation": generation}),
        json!({"type": "flow", "verdict": "deny", "direction": "ingress", "protocol": "TCP",
               "port": 80,
               "local": {"namespace": "tenant", "pod": "client", "cgroup_id": client_id,
                         "address": client, "port": 80},
               "peer": {"namespace": "tenant", "pod": "denied", "address": denied,
                        "port": inbound_port},
               "decided_by": check_ingress, "generation": generation}),
    ];
    for (i, (got, want)) in seen.iter().zip(&expected).enumerate() {
        ensure!(got == want, "event {i}:\n got  {got}\n want {want}");
    }
    ensure!(
        events[0]["decided_by"] == fence_isolates("egress"),
        "{}",
        events[0]
    );

    let status = s.agent.status()?;
    ensure!(
        status["events"]["received"].as_u64() >= Some(3)
            && status["events"]["stream_addr"] == s.events.to_string(),
        "/status.events: {}",
        status["events"]
    );
    Ok(())
}

#[test]
fn allowed_flows_are_reported_with_allow_events() -> Result<()> {
    let s = setup("pl-ev-allow", FENCE, &["--allow-events"])?;
    let mut observer = Observer::start(s.events, &["--verdict", "allow", "--pod", "client"])?;
    s.agent.wait_for_status_subscribers()?;
    let result = s
        .lab
        .probe(&s.client, ip(&s.server), Proto::Udp, 53, PROBE_TIMEOUT)?;
    ensure!(result.allowed(), "client -> server udp/53: {result:?}");
    let e = &observer.events(1, &s.agent)?[0];
    ensure!(
        e["verdict"] == "allow"
            && e["direction"] == "egress"
            && e["protocol"] == "UDP"
            && e["port"] == 53
            && e["local"]["pod"] == "client"
            && e["peer"]["pod"] == "server",
        "{e}"
    );
    // The rule that allowed it, as palisadectl check names it.
    let expected = side(
        &check_decided_by(&s.dir, "tenant/client", "tenant/server", 53, "UDP")?,
        "egress",
    );
    ensure!(
        e["decided_by"] == expected && e["decided_by"][0]["rule"] == 0,
        "event decided_by {} differs from palisadectl check's {expected}",
        e["decided_by"]
    );
    ensure!(
        s.agent.status()?["events"]["allow_events"] == true,
        "/status.events.allow_events"
    );
    Ok(())
}

#[test]
fn observe_fails_clearly_when_the_agent_is_unreachable() -> Result<()> {
    let nobody = free_port()?;
    let out = Command::new(palisadectl()?)
        .args(["observe", "--agent", &nobody.to_string()])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.code() == Some(1),
        "exit {:?}: {stderr}",
        out.status
    );
    ensure!(
        stderr.contains("cannot reach the agent's event stream")
            && stderr.contains(&nobody.to_string()),
        "unclear message: {stderr}"
    );
    Ok(())
}

/// Removes `path` (one or two keys deep) from a JSON object.
fn strip(v: &mut Value, path: &[&str; 2]) {
    match path {
        [key, ""] => {
            v.as_object_mut().map(|o| o.remove(*key));
        }
        [outer, inner] => {
            if let Some(o) = v.get_mut(*outer).and_then(Value::as_object_mut) {
                o.remove(*inner);
            }
        }
    }
}

trait WaitSubscribed {
    fn wait_for_status_subscribers(&self) -> Result<()>;
}

impl WaitSubscribed for Agent {
    /// Waits until `/status` counts a client on the event stream (it is refreshed at
    /// each resync of the agent, every 2 s at most).
    fn wait_for_status_subscribers(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.status()?["events"]["subscribers"].as_u64() >= Some(1) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("no subscriber in /status: {}", self.status()?["events"]);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
