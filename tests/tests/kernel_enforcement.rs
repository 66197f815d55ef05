//! Kernel tests of the foundation: real programs attached to a real cgroup subtree,
//! real TCP and UDP between network namespaces, driven through
//! `palisade-agent standalone` exactly as an outside harness would.
//!
//! Needs root; a missing privilege or tool is a failure, never a skip.

use anyhow::{Result, ensure};
use palisade_lab::harness::agent::{Agent, AgentOptions};
use palisade_lab::harness::dual_stack_lab::dual_stack_lab;
use palisade_lab::harness::manifests::{self, ManifestDir};
use palisade_lab::{Lab, Outcome, PodHandle, ProbeSpec, Proto};
use std::net::IpAddr;
use std::time::Duration;

const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const NODE: &str = "node-1";

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn node_manifest() -> String {
    manifests::node(NODE, &[v4("10.90.0.1"), "fd00:90::1".parse().unwrap()])
}

fn start_agent(lab: &Lab, dir: &ManifestDir) -> Result<Agent> {
    start_agent_with(lab, dir, &[])
}

fn start_agent_with(lab: &Lab, dir: &ManifestDir, extra_args: &[&str]) -> Result<Agent> {
    let mut agent = Agent::start(AgentOptions {
        id: lab.id(),
        manifests: dir.path(),
        cgroup_root: lab.cgroup_root(),
        node_name: NODE,
        extra_args,
    })?;
    agent.wait_ready(READY_TIMEOUT)?;
    Ok(agent)
}

/// Runs probes in parallel and checks each against its expectation, reporting every
/// mismatch at once.
fn expect_all(lab: &Lab, agent: &Agent, cases: &[(&str, ProbeSpec, bool)]) -> Result<()> {
    let specs: Vec<ProbeSpec> = cases.iter().map(|(_, s, _)| s.clone()).collect();
    let results = lab.probe_all(&specs)?;
    let mut failures = Vec::new();
    for ((what, _, expect), result) in cases.iter().zip(&results) {
        if result.allowed() != *expect {
            failures.push(format!(
                "{what}: expected {}, got {:?}",
                if *expect { "connected" } else { "blocked" },
                result.outcome
            ));
        }
    }
    ensure!(
        failures.is_empty(),
        "{} probe(s) wrong:\n  {}\nagent log:\n{}",
        failures.len(),
        failures.join("\n  "),
        agent.log()
    );
    Ok(())
}

fn tcp(from: &PodHandle, to: IpAddr, port: u16) -> ProbeSpec {
    ProbeSpec::new(from, to, Proto::Tcp, port).with_timeout(PROBE_TIMEOUT)
}

fn udp(from: &PodHandle, to: IpAddr, port: u16) -> ProbeSpec {
    ProbeSpec::new(from, to, Proto::Udp, port).with_timeout(PROBE_TIMEOUT)
}

/// The client may open connections only to `app=allowed` on TCP 80 and UDP 53, and
/// accepts no inbound connections at all.
const CLIENT_POLICY: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: client-egress-allowlist
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
              app: allowed
      ports:
        - protocol: TCP
          port: 80
        - protocol: UDP
          port: 53
"#;

struct Fence {
    lab: Lab,
    client: PodHandle,
    allowed: PodHandle,
    denied: PodHandle,
    dir: ManifestDir,
    agent: Agent,
}

/// tenant/client (fenced), tenant/allowed and tenant/denied servers, node-1.
fn fence(prefix: &str) -> Result<Fence> {
    fence_with(prefix, &[])
}

fn fence_with(prefix: &str, agent_args: &[&str]) -> Result<Fence> {
    let (lab, pods) = dual_stack_lab(prefix, &[("client", 10), ("allowed", 20), ("denied", 30)])?;
    let [client, allowed, denied] = <[PodHandle; 3]>::try_from(pods).expect("three pods");
    for server in [&allowed, &denied, &client] {
        lab.serve(server, &[80, 81], &[53])?;
    }
    let dir = ManifestDir::new(lab.id())?;
    let mut cluster = node_manifest();
    cluster.push_str(&manifests::namespace("tenant", &[("team", "t")]));
    cluster.push_str(&manifests::pod(
        "tenant",
        &client,
        &[("app", "client")],
        &[],
        true,
    ));
    cluster.push_str(&manifests::pod(
        "tenant",
        &allowed,
        &[("app", "allowed")],
        &[],
        true,
    ));
    cluster.push_str(&manifests::pod(
        "tenant",
        &denied,
        &[("app", "denied")],
        &[],
        true,
    ));
    dir.write("cluster.yaml", &cluster)?;
    dir.write("policy.yaml", CLIENT_POLICY)?;
    let agent = start_agent_with(&lab, &dir, agent_args)?;
    Ok(Fence {
        lab,
        client,
        allowed,
        denied,
        dir,
        agent,
    })
}

#[test]
fn restricted_pod_reaches_only_allowed_peers_v4_and_v6() -> Result<()> {
    let f = fence("pl-fence")?;
    let (c, a, d) = (&f.client, &f.allowed, &f.denied);
    let mut cases = Vec::new();
    for (family, ai, di) in [
        ("v4", a.ips()[0], d.ips()[0]),
        ("v6", a.ips()[1], d.ips()[1]),
    ] {
        cases.extend([
            (
                format!("{family} client -> allowed tcp/80"),
                tcp(c, ai, 80),
                true,
            ),
            (
                format!("{family} client -> allowed tcp/81 (port not allowed)"),
                tcp(c, ai, 81),
                false,
            ),
            (
                format!("{family} client -> denied tcp/80"),
                tcp(c, di, 80),
                false,
            ),
            (
                format!("{family} client -> allowed udp/53 (reply comes back)"),
                udp(c, ai, 53),
                true,
            ),
            (
                format!("{family} client -> denied udp/53"),
                udp(c, di, 53),
                false,
            ),
            (
                format!("{family} denied -> client tcp/80 (client ingress isolated)"),
                tcp(d, c.ips()[if family == "v4" { 0 } else { 1 }], 80),
                false,
            ),
            (
                format!("{family} allowed -> denied tcp/80 (not isolated)"),
                tcp(a, di, 80),
                true,
            ),
        ]);
    }
    // An IPv6 socket connecting to an IPv4-mapped address gets the IPv4 verdict.
    let mapped = |ip: IpAddr| -> IpAddr {
        match ip {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            other => other,
        }
    };
    cases.extend([
        (
            "v4-mapped client -> allowed tcp/80".to_string(),
            tcp(c, mapped(a.ips()[0]), 80),
            true,
        ),
        (
            "v4-mapped client -> denied tcp/80".to_string(),
            tcp(c, mapped(d.ips()[0]), 80),
            false,
        ),
    ]);
    let cases: Vec<(&str, ProbeSpec, bool)> = cases
        .iter()
        .map(|(w, s, e)| (w.as_str(), s.clone(), *e))
        .collect();
    expect_all(&f.lab, &f.agent, &cases)
}

#[test]
fn how_denials_look_to_the_caller() -> Result<()> {
    let f = fence("pl-deny")?;
    // A datagram dropped at egress fails the send at once (EPERM); a denied TCP
    // connect is refused at the socket by the connect4/6 hooks (EPERM at once); an
    // ingress drop is silent (the caller times out).
    let out = f.lab.probe_all(&[
        udp(&f.client, f.denied.ips()[0], 53),
        tcp(&f.client, f.denied.ips()[0], 80),
        tcp(&f.denied, f.client.ips()[0], 80),
    ])?;
    ensure!(
        out[0].outcome == Outcome::PermissionDenied,
        "udp egress deny: {:?}",
        out[0]
    );
    ensure!(
        out[1].outcome == Outcome::PermissionDenied && out[1].elapsed < Duration::from_millis(100),
        "tcp egress deny: {:?}",
        out[1]
    );
    ensure!(
        out[2].outcome == Outcome::TimedOut,
        "tcp ingress deny: {:?}",
        out[2]
    );
    Ok(())
}

#[test]
fn loopback_inside_a_restricted_pod_works() -> Result<()> {
    let f = fence("pl-lo")?;
    let c = &f.client;
    expect_all(
        &f.lab,
        &f.agent,
        &[
            ("client -> 127.0.0.1:80", tcp(c, v4("127.0.0.1"), 80), true),
            ("client -> [::1]:80", tcp(c, "::1".parse()?, 80), true),
            ("client -> own pod IP", tcp(c, c.ips()[0], 80), true),
            (
                "client -> 127.0.0.1 udp/53",
                udp(c, v4("127.0.0.1"), 53),
                true,
            ),
        ],
    )
}

#[test]
fn a_cgroup_created_after_attach_is_covered() -> Result<()> {
    let f = fence("pl-child")?;
    let child = f.lab.add_child_cgroup(&f.client, "escape-attempt")?;
    let from_child = |to: IpAddr, port| {
        ProbeSpec::new(&f.client, to, Proto::Tcp, port)
            .with_timeout(PROBE_TIMEOUT)
            .from_origin(palisade_lab::ProbeOrigin::PodCgroup(
                f.client.clone(),
                child.clone(),
            ))
    };
    expect_all(
        &f.lab,
        &f.agent,
        &[
            (
                "child cgroup -> denied",
                from_child(f.denied.ips()[0], 80),
                false,
            ),
            (
                "child cgroup -> denied v6",
                from_child(f.denied.ips()[1], 80),
                false,
            ),
            (
                "child cgroup -> allowed",
                from_child(f.allowed.ips()[0], 80),
                true,
            ),
        ],
    )
}

#[test]
fn the_node_always_reaches_its_pods() -> Result<()> {
    let f = fence("pl-node")?;
    // The client accepts no ingress at all, but kubelet-style probes from the node pass.
    for ip in f.client.ips() {
        let r = f.lab.probe_from_node(ip, Proto::Tcp, 80, PROBE_TIMEOUT)?;
        ensure!(
            r.allowed(),
            "node -> client {ip}: {:?}\n{}",
            r,
            f.agent.log()
        );
    }
    Ok(())
}

#[test]
fn bad_manifests_keep_the_last_good_state() -> Result<()> {
    let mut f = fence("pl-bad")?;
    let before = f.agent.status()?;
    let expectations = |f: &Fence| -> Vec<(&'static str, ProbeSpec, bool)> {
        vec![
            (
                "client -> allowed",
                tcp(&f.client, f.allowed.ips()[0], 80),
                true,
            ),
            (
                "client -> denied",
                tcp(&f.client, f.denied.ips()[0], 80),
                false,
            ),
        ]
    };
    for (file, text, must_mention) in [
        (
            "broken-cidr.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad-cidr, namespace: tenant}\nspec:\n  podSelector: {}\n  egress:\n    - to:\n        - ipBlock: {cidr: 10.0.0.0/33}\n",
            vec!["broken-cidr.yaml", "bad-cidr", "cidr"],
        ),
        (
            "unknown-field.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: typo, namespace: tenant}\nspec:\n  podSelector: {}\n  ingres: []\n",
            vec!["unknown-field.yaml", "typo", "ingres"],
        ),
        (
            "unknown-kind.yaml",
            "apiVersion: example.com/v1\nkind: Firewall\nmetadata: {name: fw}\n",
            vec!["unknown-kind.yaml", "Firewall"],
        ),
        (
            "garbage.yaml",
            "this: [is not: yaml\n",
            vec!["garbage.yaml"],
        ),
    ] {
        f.dir.write(file, text)?;
        f.agent
            .wait_for(Duration::from_secs(10), "reporting the bad manifest", |a| {
                let s = a.status()?;
                Ok(s["ready"] == false
                    && s["last_error"].as_str().is_some_and(|e| e.contains(file)))
            })?;
        let status = f.agent.status()?;
        let error = status["last_error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for word in must_mention {
            ensure!(
                error.contains(word),
                "error for {file} does not name {word:?}: {error}"
            );
        }
        ensure!(
            status["generation"] == before["generation"]
                && status["manifest_hash"] == before["manifest_hash"],
            "a bad manifest changed the applied state: {status}"
        );
        let (code, _) = palisade_lab::harness::http::get(f.agent.health, "/readyz")?;
        ensure!(code == 503, "/readyz answered {code} with bad manifests");
        expect_all(&f.lab, &f.agent, &expectations(&f))?;
        f.dir.remove(file)?;
        f.agent.wait_ready(Duration::from_secs(10))?;
    }
    // A CIDR with host bits set is what Kubernetes accepts, and so does palisade.
    f.dir.write(
        "host-bits.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: host-bits, namespace: tenant}\nspec:\n  podSelector: {matchLabels: {app: nobody}}\n  egress:\n    - to:\n        - ipBlock: {cidr: 10.0.1.1/4}\n",
    )?;
    f.agent
        .wait_for(Duration::from_secs(10), "applying host-bits CIDR", |a| {
            let s = a.status()?;
            Ok(s["ready"] == true && s["manifest_hash"] != before["manifest_hash"])
        })?;
    expect_all(&f.lab, &f.agent, &expectations(&f))
}

#[test]
fn a_pod_whose_cgroup_appears_later_is_enforced_then() -> Result<()> {
    let (lab, pods) = dual_stack_lab("pl-late", &[("late", 40), ("server", 41)])?;
    let [late, server] = <[PodHandle; 2]>::try_from(pods).expect("two pods");
    lab.serve(&server, &[80], &[])?;
    let dir = ManifestDir::new(lab.id())?;
    // The annotation names a cgroup that does not exist yet.
    let late_cgroup = format!("{}/later", late.cgroup_path_annotation());
    let pod = manifests::pod("tenant", &late, &[("app", "late")], &[], false).replace(
        "  labels:",
        &format!("  annotations:\n    palisade.dev/cgroup-path: \"{late_cgroup}\"\n  labels:"),
    );
    let mut text = node_manifest();
    text.push_str(&pod);
    text.push_str(&manifests::pod(
        "tenant",
        &server,
        &[("app", "server")],
        &[],
        true,
    ));
    text.push_str(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-egress, namespace: tenant}\nspec:\n  podSelector: {matchLabels: {app: late}}\n  policyTypes: [Egress]\n",
    );
    dir.write("all.yaml", &text)?;
    let mut agent = start_agent(&lab, &dir)?;
    let status = agent.status()?;
    ensure!(
        status["pending"].to_string().contains("tenant/late"),
        "late pod not reported pending: {status}"
    );
    let child = lab.add_child_cgroup(&late, "later")?;
    agent.wait_for(Duration::from_secs(10), "enforcing the late pod", |a| {
        Ok(a.status()?["pending"]
            .as_array()
            .is_some_and(|p| p.is_empty()))
    })?;
    let r = lab.probe_from_cgroup(
        &late,
        &child,
        server.ips()[0],
        Proto::Tcp,
        80,
        PROBE_TIMEOUT,
    )?;
    ensure!(
        !r.allowed(),
        "late pod not enforced: {r:?}\n{}",
        agent.log()
    );
    Ok(())
}

#[test]
fn enforcement_survives_sigkill_and_cleanup_removes_it() -> Result<()> {
    let mut f = fence("pl-kill")?;
    f.agent.kill()?;
    expect_all(
        &f.lab,
        &f.agent,
        &[
            (
                "after SIGKILL: client -> denied",
                tcp(&f.client, f.denied.ips()[0], 80),
                false,
            ),
            (
                "after SIGKILL: client -> allowed",
                tcp(&f.client, f.allowed.ips()[0], 80),
                true,
            ),
        ],
    )?;
    // A restarted agent adopts the pins and swaps its programs in.
    f.agent.restart(AgentOptions {
        id: f.lab.id(),
        manifests: f.dir.path(),
        cgroup_root: f.lab.cgroup_root(),
        node_name: NODE,
        extra_args: &[],
    })?;
    f.agent.wait_ready(READY_TIMEOUT)?;
    ensure!(
        f.agent.log().contains("Replaced"),
        "restart did not reuse the pinned links:\n{}",
        f.agent.log()
    );
    expect_all(
        &f.lab,
        &f.agent,
        &[
            (
                "after restart: client -> denied",
                tcp(&f.client, f.denied.ips()[0], 80),
                false,
            ),
            (
                "after restart: client -> allowed",
                tcp(&f.client, f.allowed.ips()[0], 80),
                true,
            ),
        ],
    )?;
    f.agent.kill()?;
    f.agent.cleanup_pins()?;
    ensure!(!f.agent.pin_path.exists(), "pins left after cleanup");
    expect_all(
        &f.lab,
        &f.agent,
        &[(
            "after cleanup: client -> denied peer flows",
            tcp(&f.client, f.denied.ips()[0], 80),
            true,
        )],
    )
}

#[test]
fn the_most_specific_cgroup_with_an_entry_decides() -> Result<()> {
    // A runtime pod whose runs live in child cgroups: the pod is fenced (no egress),
    // one run is declared as its own endpoint with its own (open) policy.
    let (lab, pods) = dual_stack_lab("pl-nest", &[("runtime", 50), ("server", 51)])?;
    let [runtime, server] = <[PodHandle; 2]>::try_from(pods).expect("two pods");
    lab.serve(&server, &[80], &[])?;
    let run = lab.add_child_cgroup(&runtime, "run-1")?;
    let nested = run.join("step");
    std::fs::create_dir(&nested)?;
    let dir = ManifestDir::new(lab.id())?;
    let mut text = node_manifest();
    text.push_str(&manifests::pod(
        "tenant",
        &runtime,
        &[("app", "runtime")],
        &[],
        true,
    ));
    text.push_str(&manifests::pod(
        "tenant",
        &server,
        &[("app", "server")],
        &[],
        true,
    ));
    text.push_str(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: run-1\n  namespace: tenant\n  labels: {{app: run}}\n  annotations:\n    palisade.dev/cgroup-path: \"{}/run-1\"\n---\n",
        runtime.cgroup_path_annotation()
    ));
    text.push_str(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: runtime-no-egress, namespace: tenant}\nspec:\n  podSelector: {matchLabels: {app: runtime}}\n  policyTypes: [Egress]\n",
    );
    dir.write("all.yaml", &text)?;
    let agent = start_agent(&lab, &dir)?;
    let from = |cgroup: &std::path::Path| {
        ProbeSpec::new(&runtime, server.ips()[0], Proto::Tcp, 80)
            .with_timeout(PROBE_TIMEOUT)
            .from_origin(palisade_lab::ProbeOrigin::PodCgroup(
                runtime.clone(),
                cgroup.to_path_buf(),
            ))
    };
    expect_all(
        &lab,
        &agent,
        &[
            (
                "runtime container (pod entry)",
                from(&runtime.container_cgroup_dir()),
                false,
            ),
            ("run-1 (its own entry wins)", from(&run), true),
            ("run-1/step (inherits run-1)", from(&nested), true),
        ],
    )
}

#[test]
fn an_established_connection_stops_when_policy_now_denies_it() -> Result<()> {
    let mut f = fence("pl-reval")?;
    let held = f
        .lab
        .hold(&f.client, f.allowed.ips()[0], 80, PROBE_TIMEOUT)?;
    let first = held.next_result(Duration::from_secs(5))?;
    ensure!(
        first.allowed(),
        "held connection never worked: {first:?}\n{}",
        f.agent.log()
    );

    // An unrelated change bumps the generation: the connection must keep working.
    let generation =
        |a: &Agent| -> Result<u64> { Ok(a.status()?["generation"].as_u64().unwrap_or(0)) };
    let before = generation(&f.agent)?;
    f.dir.write(
        "extra.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: elsewhere, namespace: unrelated}\nspec: {nodeName: node-2}\nstatus: {podIP: 10.99.0.1}\n",
    )?;
    f.agent.wait_for(
        Duration::from_secs(10),
        "publishing the unrelated change",
        |a| Ok(a.status()?["ready"] == true && generation(a)? > before),
    )?;
    held.discard_reported();
    for _ in 0..3 {
        let r = held.next_result(Duration::from_secs(5))?;
        ensure!(
            r.allowed(),
            "an allowed connection broke on an unrelated change: {r:?}"
        );
    }

    // Now the client may no longer reach `allowed`: the open connection stops too.
    let before = generation(&f.agent)?;
    f.dir.write(
        "policy.yaml",
        &CLIENT_POLICY.replace("app: allowed", "app: nobody"),
    )?;
    f.agent
        .wait_for(Duration::from_secs(10), "publishing the denial", |a| {
            Ok(a.status()?["ready"] == true && generation(a)? > before)
        })?;
    held.discard_reported();
    let mut stopped = false;
    for _ in 0..5 {
        match held.next_result(Duration::from_secs(3)) {
            Ok(r) if r.allowed() => continue,
            _ => {
                stopped = true;
                break;
            }
        }
    }
    ensure!(
        stopped,
        "the established connection survived a policy that denies it\n{}",
        f.agent.log()
    );
    // And a new connection is denied as well.
    expect_all(
        &f.lab,
        &f.agent,
        &[(
            "new connection after the change",
            tcp(&f.client, f.allowed.ips()[0], 80),
            false,
        )],
    )
}

#[test]
fn flow_events_name_the_pod_and_are_rate_limited_per_endpoint() -> Result<()> {
    let f = fence_with(
        "pl-events",
        &[
            "--log-json",
            "--events-per-second",
            "5",
            "--event-burst",
            "10",
        ],
    )?;
    // 60 denied datagrams, each from a new socket: 60 new flows, 60 denials.
    let flood: Vec<ProbeSpec> = (0..60)
        .map(|_| udp(&f.client, f.denied.ips()[0], 53))
        .collect();
    let start = std::time::Instant::now();
    let results = f.lab.probe_all(&flood)?;
    let elapsed = start.elapsed().as_secs_f64();
    ensure!(
        results.iter().all(|r| !r.allowed()),
        "a denied datagram passed"
    );
    std::thread::sleep(Duration::from_millis(300));
    let events: Vec<serde_json::Value> = f
        .agent
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "flow")
        .collect();
    ensure!(!events.is_empty(), "no flow events:\n{}", f.agent.log());
    let e = &events[0];
    ensure!(
        e["verdict"] == "deny" && e["pod"] == "tenant/client" && e["direction"] == "egress",
        "unexpected event {e}"
    );
    // At most the burst plus what the rate refilled while flooding (with slack).
    let budget = 10.0 + 5.0 * (elapsed + 1.0);
    ensure!(
        (events.len() as f64) <= budget,
        "{} events for one endpoint in {elapsed:.1}s exceed its budget of {budget:.0}",
        events.len()
    );
    let limited = f.agent.status()?["packets"]["event_rate_limited"]
        .as_u64()
        .unwrap_or(0);
    ensure!(
        limited > 0,
        "no event was rate-limited: {}",
        f.agent.status()?
    );
    Ok(())
}

#[test]
fn a_restart_under_traffic_leaks_nothing_and_breaks_nothing() -> Result<()> {
    let mut f = fence("pl-restart")?;
    let held = f
        .lab
        .hold(&f.client, f.allowed.ips()[0], 80, PROBE_TIMEOUT)?;
    ensure!(
        held.next_result(Duration::from_secs(5))?.allowed(),
        "held connection never worked"
    );
    held.discard_reported();

    let stop = std::sync::atomic::AtomicBool::new(false);
    let (leaks, probes) = std::thread::scope(|scope| -> Result<(usize, usize)> {
        // Denied flows, tried over and over while the agent dies and comes back.
        let prober = scope.spawn(|| -> Result<(usize, usize)> {
            let (mut leaks, mut probes) = (0, 0);
            let quick = Duration::from_millis(300);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let results = f.lab.probe_all(&[
                    tcp(&f.client, f.denied.ips()[0], 80).with_timeout(quick),
                    tcp(&f.client, f.denied.ips()[1], 80).with_timeout(quick),
                    udp(&f.client, f.denied.ips()[0], 53).with_timeout(quick),
                    udp(&f.client, f.denied.ips()[1], 53).with_timeout(quick),
                    tcp(&f.denied, f.client.ips()[0], 80).with_timeout(quick),
                    tcp(&f.denied, f.client.ips()[1], 80).with_timeout(quick),
                ])?;
                probes += results.len();
                leaks += results.iter().filter(|r| r.allowed()).count();
            }
            Ok((leaks, probes))
        });
        f.agent.kill()?;
        std::thread::sleep(Duration::from_millis(500));
        f.agent.restart(AgentOptions {
            id: f.lab.id(),
            manifests: f.dir.path(),
            cgroup_root: f.lab.cgroup_root(),
            node_name: NODE,
            extra_args: &[],
        })?;
        f.agent.wait_ready(READY_TIMEOUT)?;
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        prober.join().expect("prober thread")
    })?;
    ensure!(probes > 0, "no denied flow was tried during the restart");
    ensure!(
        leaks == 0,
        "{leaks} of {probes} denied flows passed during the restart"
    );

    // Every round trip of the allowed connection during the restart went through. The
    // holder reports one every 100 ms: drain what was reported until now.
    let mut round_trips = 0;
    while let Ok(r) = held.next_result(Duration::from_millis(20)) {
        ensure!(
            r.allowed(),
            "the allowed connection broke during the restart: {r:?}"
        );
        round_trips += 1;
    }
    ensure!(
        round_trips >= 5,
        "only {round_trips} round trips during the restart"
    );
    eprintln!(
        "restart under traffic: {probes} denied probes, 0 leaked; {round_trips} round trips, 0 broken"
    );
    Ok(())
}
