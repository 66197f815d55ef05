//! The evasion suite: a process in a restricted pod tries every way out it has, and
//! each one is asserted blocked by the real programs under `palisade-agent
//! standalone`, with a positive control beside it (the same kind of attempt toward
//! what the policy allows works, so a broken probe cannot pass for a block).
//!
//! `tenant/run` may reach only `tenant/allowed` on TCP 8080 and UDP 5353 and may not
//! open raw or packet sockets (EgressPolicy `run-allowlist`); `tenant/raw-run` has the
//! same allowlist but may open raw sockets (`raw-run-allowlist`), to show that what a
//! raw socket sends is still fenced. `other/target` listens on every port tried.
//! Ways out tried: TCP over IPv4, IPv6 and IPv4-mapped IPv6; UDP to many ports,
//! connected and unconnected; ICMP and ICMPv6 echo through ping sockets; raw IP
//! sockets; AF_PACKET sockets; hand-made packets and fragments through a raw socket;
//! a new child cgroup; a connection opened before the policy changed; a Service
//! ClusterIP whose backend is denied.
//!
//! Needs root; a missing privilege, tool or kernel feature is a failure naming it.

use anyhow::{Context, Result, ensure};
use palisade_lab::harness::agent::{Agent, AgentOptions};
use palisade_lab::harness::dual_stack_lab::dual_stack_lab;
use palisade_lab::harness::manifests::{self, ManifestDir};
use palisade_lab::{Lab, PodHandle};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const APPLY_TIMEOUT: Duration = Duration::from_secs(15);
const NODE: &str = "node-1";
/// A denied TCP connect is refused at once (EPERM); this only bounds a wrong answer.
const PROBE_TIMEOUT_MS: &str = "1500";
/// Target ports: the allowed pair, well-known ones and an arbitrary high one.
const TARGET_UDP_PORTS: [u16; 5] = [53, 123, 5353, 8080, 40000];
const TARGET_SERVICE_V4: &str = "10.96.0.30";
const TARGET_SERVICE_V6: &str = "fd00:96::30";
const ALLOWED_SERVICE_V4: &str = "10.96.0.20";

/// The allowlist of pods `app: {app}`: `tenant/allowed` on TCP 8080 and UDP 5353,
/// raw sockets only if `allow_raw`, never packet sockets.
fn allowlist(name: &str, app: &str, allow_raw: bool) -> String {
    format!(
        r#"apiVersion: palisade.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: {name}
  namespace: tenant
spec:
  podSelector:
    matchLabels:
      app: {app}
  egress:
    - name: allowed-only
      to:
        - podSelector:
            matchLabels:
              app: allowed
      ports:
        - {{protocol: TCP, port: 8080}}
        - {{protocol: UDP, port: 5353}}
  sockets:
    allowRaw: {allow_raw}
    allowPacket: false
---
"#
    )
}

fn policies() -> String {
    allowlist("run-allowlist", "run", false) + &allowlist("raw-run-allowlist", "raw-run", true)
}

/// The same allowlists without TCP 8080: connections opened under [`policies`] must
/// stop.
fn policies_without_tcp() -> String {
    policies().replace("        - {protocol: TCP, port: 8080}\n", "")
}

/// A dual-stack (or IPv4) Service, TCP 80 -> 8080 and UDP 53 -> 5353 of its pods.
fn service(namespace: &str, name: &str, cluster_ips: &[&str], app: &str) -> String {
    let families: Vec<&str> = cluster_ips
        .iter()
        .map(|a| if a.contains(':') { "IPv6" } else { "IPv4" })
        .collect();
    let policy = if cluster_ips.len() > 1 {
        "RequireDualStack"
    } else {
        "SingleStack"
    };
    let ips: Vec<String> = cluster_ips.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\n\
         spec:\n  clusterIP: \"{first}\"\n  clusterIPs: [{ips}]\n  ipFamilies: [{families}]\n\
         \x20 ipFamilyPolicy: {policy}\n  selector: {{app: {app}}}\n  ports:\n\
         \x20   - {{name: http, protocol: TCP, port: 80, targetPort: 8080}}\n\
         \x20   - {{name: dns, protocol: UDP, port: 53, targetPort: 5353}}\n---\n",
        first = cluster_ips[0],
        ips = ips.join(", "),
        families = families.join(", "),
    )
}

struct Suite {
    lab: Lab,
    run: PodHandle,
    raw_run: PodHandle,
    allowed: PodHandle,
    target: PodHandle,
    dir: ManifestDir,
    agent: Agent,
}

fn suite(prefix: &str) -> Result<Suite> {
    let (lab, pods) = dual_stack_lab(
        prefix,
        &[
            ("run", 10),
            ("raw-run", 11),
            ("allowed", 20),
            ("target", 30),
        ],
    )?;
    let [run, raw_run, allowed, target] = <[PodHandle; 4]>::try_from(pods).expect("four pods");
    lab.serve(&allowed, &[8080], &[5353])?;
    lab.serve(&target, &[8080], &TARGET_UDP_PORTS)?;

    let dir = ManifestDir::new(lab.id())?;
    let mut cluster = manifests::node(NODE, &[ip("10.90.0.1"), ip("fd00:90::1")]);
    cluster.push_str(&manifests::namespace("tenant", &[]));
    cluster.push_str(&manifests::namespace("other", &[]));
    for (namespace, pod, app) in [
        ("tenant", &run, "run"),
        ("tenant", &raw_run, "raw-run"),
        ("tenant", &allowed, "allowed"),
        ("other", &target, "target"),
    ] {
        cluster.push_str(&manifests::pod(namespace, pod, &[("app", app)], &[], true));
    }
    cluster.push_str(&service(
        "other",
        "target",
        &[TARGET_SERVICE_V4, TARGET_SERVICE_V6],
        "target",
    ));
    cluster.push_str(&service(
        "tenant",
        "allowed",
        &[ALLOWED_SERVICE_V4],
        "allowed",
    ));
    dir.write("cluster.yaml", &cluster)?;
    dir.write("policy.yaml", &policies())?;
    let mut agent = Agent::start(AgentOptions {
        id: lab.id(),
        manifests: dir.path(),
        cgroup_root: lab.cgroup_root(),
        node_name: NODE,
        extra_args: &[],
    })?;
    agent.wait_ready(READY_TIMEOUT)?;
    Ok(Suite {
        lab,
        run,
        raw_run,
        allowed,
        target,
        dir,
        agent,
    })
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address literal")
}

impl Suite {
    /// Asserts the attempt is blocked: refused at the socket (`eperm`) or never
    /// answered (`timeout`). A reset or port-unreachable answer would mean the packet
    /// reached the peer, so it counts as getting through.
    fn blocked(
        &self,
        what: &str,
        pod: &PodHandle,
        cgroup: Option<&Path>,
        args: &[&str],
    ) -> Result<()> {
        let line = self.lab.run_netprobe(pod, cgroup, args)?;
        let result = line["result"].as_str().or(line["outcome"].as_str());
        ensure!(
            matches!(result, Some("eperm" | "timeout")),
            "EVASION: {what} from {} got through ({args:?}): {line}\nagent log:\n{}",
            pod.name(),
            self.agent.log_tail(30)
        );
        Ok(())
    }

    /// Asserts the attempt works (the positive control of a blocked one).
    fn works(&self, what: &str, pod: &PodHandle, args: &[&str]) -> Result<()> {
        let line = self.lab.run_netprobe(pod, None, args)?;
        ensure!(
            line["result"] == "ok" || line["outcome"] == "connected",
            "control: {what} from {} should work ({args:?}): {line}\nagent log:\n{}",
            pod.name(),
            self.agent.log_tail(30)
        );
        Ok(())
    }
}

fn connect<'a>(proto: &'a str, addr: &'a str, port: &'a str) -> Vec<&'a str> {
    vec![
        "connect",
        "--proto",
        proto,
        "--addr",
        addr,
        "--port",
        port,
        "--timeout-ms",
        PROBE_TIMEOUT_MS,
    ]
}

#[test]
fn every_way_out_of_a_restricted_pod_is_blocked() -> Result<()> {
    let s = suite("pl-evade")?;
    let (target_v4, target_v6) = (s.target.ips()[0].to_string(), s.target.ips()[1].to_string());
    let (allowed_v4, allowed_v6) = (
        s.allowed.ips()[0].to_string(),
        s.allowed.ips()[1].to_string(),
    );
    let mapped = format!("::ffff:{target_v4}");
    let allowed_mapped = format!("::ffff:{allowed_v4}");

    // Controls: what the allowlist names works, by every address form.
    for addr in [&allowed_v4, &allowed_v6, &allowed_mapped] {
        s.works(
            "TCP to the allowed pod",
            &s.run,
            &connect("tcp", addr, "8080"),
        )?;
    }
    s.works(
        "UDP to the allowed pod",
        &s.run,
        &connect("udp", &allowed_v4, "5353"),
    )?;
    s.works(
        "TCP to the allowed pod's Service",
        &s.run,
        &connect("tcp", ALLOWED_SERVICE_V4, "80"),
    )?;

    // TCP to the target: IPv4, IPv6, IPv4-mapped IPv6, and a port the allowlist has.
    for addr in [&target_v4, &target_v6, &mapped] {
        s.blocked(
            "TCP to a denied pod",
            &s.run,
            None,
            &connect("tcp", addr, "8080"),
        )?;
    }
    // The allowed pod on a port the allowlist does not name.
    s.blocked(
        "TCP to an allowed pod on another port",
        &s.run,
        None,
        &connect("tcp", &allowed_v4, "22"),
    )?;

    // UDP to arbitrary ports, connected and unconnected, both families.
    for port in TARGET_UDP_PORTS {
        let port = port.to_string();
        for addr in [&target_v4, &target_v6, &mapped] {
            let mut args = connect("udp", addr, &port);
            s.blocked("connected UDP to a denied pod", &s.run, None, &args)?;
            args.push("--unconnected");
            s.blocked("unconnected UDP to a denied pod", &s.run, None, &args)?;
        }
    }
    s.blocked(
        "UDP to the allowed pod on a TCP-only port",
        &s.run,
        None,
        &connect("udp", &allowed_v4, "8080"),
    )?;

    // ICMP and ICMPv6 echo through ping sockets (no raw socket needed): the
    // allowlist names no ICMP, so not even the allowed pod answers. The control is
    // the unrestricted target pinging back.
    for addr in [&target_v4, &target_v6, &allowed_v4, &allowed_v6] {
        s.blocked(
            "ICMP echo",
            &s.run,
            None,
            &["ping", "--addr", addr, "--timeout-ms", PROBE_TIMEOUT_MS],
        )?;
    }
    let run_v4 = s.run.ips()[0].to_string();
    s.works(
        "ICMP echo from an unrestricted pod",
        &s.target,
        &["ping", "--addr", &allowed_v4],
    )?;

    // Raw IP sockets are refused at creation.
    for kind in ["raw4", "raw6"] {
        s.blocked("a raw socket", &s.run, None, &["socket", "--kind", kind])?;
        s.works(
            "a raw socket where allowed",
            &s.raw_run,
            &["socket", "--kind", kind],
        )?;
    }
    // AF_PACKET sockets: refused where BPF LSM programs load; elsewhere the agent
    // must say precisely that it cannot (see kernel_sockets for the full account).
    let packet = s.agent.status()?["socket_controls"]["packet_sockets"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if packet.starts_with("enforced") {
        s.blocked(
            "an AF_PACKET socket",
            &s.run,
            None,
            &["socket", "--kind", "packet"],
        )?;
    } else {
        ensure!(
            packet.starts_with("unavailable: ") && packet.contains("BPF_LSM_CGROUP"),
            "AF_PACKET sockets neither refused nor reported unavailable: {packet:?}"
        );
    }

    // What a permitted raw socket sends is still fenced: a whole hand-made UDP
    // datagram to the target, and a non-first fragment (dropped for every pod).
    let raw_v4 = s.raw_run.ips()[0].to_string();
    for whole in [true, false] {
        let mut args = vec!["fragment", "--src", &raw_v4, "--dst", &target_v4];
        if whole {
            args.push("--whole");
        }
        s.blocked(
            "a hand-made packet through a raw socket",
            &s.raw_run,
            None,
            &args,
        )?;
    }
    // ... and a spoofed source address gains nothing either.
    s.blocked(
        "a raw packet with a spoofed source",
        &s.raw_run,
        None,
        &["fragment", "--src", &run_v4, "--dst", &target_v4, "--whole"],
    )?;

    // A new child cgroup below the pod is the pod.
    let child = s.lab.add_child_cgroup(&s.run, "escape")?;
    s.blocked(
        "TCP from a new child cgroup",
        &s.run,
        Some(&child),
        &connect("tcp", &target_v4, "8080"),
    )?;
    // (Removed with the pod's cgroup tree when the lab is cleaned up.)
    let nested = child.join("deeper");
    std::fs::create_dir(&nested).with_context(|| format!("creating {}", nested.display()))?;
    s.blocked(
        "UDP from a nested child cgroup",
        &s.run,
        Some(&nested),
        &connect("udp", &target_v6, "53"),
    )?;

    // A Service ClusterIP whose backend is denied: refused for the backend, by
    // either family and either protocol.
    for addr in [TARGET_SERVICE_V4, TARGET_SERVICE_V6] {
        s.blocked(
            "TCP to a denied Service",
            &s.run,
            None,
            &connect("tcp", addr, "80"),
        )?;
        let mut args = connect("udp", addr, "53");
        s.blocked("connected UDP to a denied Service", &s.run, None, &args)?;
        args.push("--unconnected");
        s.blocked("unconnected UDP to a denied Service", &s.run, None, &args)?;
    }

    let mut s = s;
    s.agent
        .wait_for(APPLY_TIMEOUT, "counting the denials", |a| {
            let packets = &a.status()?["packets"];
            Ok(packets["denied_socket"].as_u64() >= Some(2)
                && packets["denied_fragment"].as_u64() >= Some(1))
        })?;
    s.lab.cleanup()
}

#[test]
fn a_connection_opened_before_a_policy_change_gains_nothing() -> Result<()> {
    let mut s = suite("pl-evade-held")?;
    let allowed = s.allowed.ips()[0];
    let held = s
        .lab
        .hold(&s.run, allowed, 8080, Duration::from_millis(1000))?;
    let first = held.next_result(Duration::from_secs(20))?;
    ensure!(
        first.allowed(),
        "the held connection did not open: {first:?}"
    );

    let generation =
        |a: &Agent| -> Result<u64> { Ok(a.status()?["generation"].as_u64().unwrap_or(0)) };
    let before = generation(&s.agent)?;
    s.dir.write("policy.yaml", &policies_without_tcp())?;
    s.agent
        .wait_for(APPLY_TIMEOUT, "publishing the narrower allowlist", |a| {
            Ok(a.status()?["ready"] == true && generation(a)? > before)
        })?;
    // The socket opened before the change must not keep its way out: its next round
    // trips fail (the programs revalidate tracked flows against the new generation).
    held.discard_reported();
    let mut broke = false;
    for _ in 0..5 {
        let r = held.next_result(Duration::from_secs(10))?;
        if !r.allowed() {
            broke = true;
            break;
        }
    }
    ensure!(
        broke,
        "EVASION: a connection opened before the policy change kept working\nagent log:\n{}",
        s.agent.log_tail(30)
    );
    drop(held);
    // A new connection is refused at once, and UDP 5353 still works.
    let addr = allowed.to_string();
    s.blocked(
        "TCP after the change",
        &s.run,
        None,
        &connect("tcp", &addr, "8080"),
    )?;
    s.works(
        "UDP the narrower allowlist keeps",
        &s.run,
        &connect("udp", &addr, "5353"),
    )?;
    s.lab.cleanup()
}
