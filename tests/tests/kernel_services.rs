//! Kernel tests of Services: the socket hooks translate a Service address to a
//! backend at connect/sendmsg (and back at getpeername/recvmsg), and the flow is
//! decided by the policy of the backend actually used. Real programs, real cgroups,
//! real TCP and UDP between network namespaces, driven through
//! `palisade-agent standalone`.
//!
//! The Service addresses (10.96.0.0/24, fd00:96::/64) are assigned to no interface
//! anywhere: a probe that is not translated leaves for the node and is lost, so every
//! answer proves the translation. Backends listen on the target ports only (8080
//! named `http`, UDP 5353), never on the Service ports (80, 53). Every kernel outcome
//! is also held against the policy library's decision for the same flow
//! (`evaluate::flow_via_service`, what `palisadectl` builds on).
//!
//! Needs root; a missing privilege or tool is a failure, never a skip.

use anyhow::{Context, Result, bail, ensure};
use palisade_lab::harness::agent::{Agent, AgentOptions};
use palisade_lab::harness::binaries::require_root;
use palisade_lab::harness::manifests::{self, ManifestDir};
use palisade_lab::report::{AnswerReport, ProbeReport, ReportOutcome};
use palisade_lab::{Lab, LabConfig, PodHandle, PodSpec};
use palisade_policy::compile::tables::{CompiledCluster, Verdict};
use palisade_policy::evaluate::{Endpoint, flow_via_service};
use palisade_policy::model::Cluster;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Child;
use std::time::Duration;

const NODE: &str = "node-1";
const NAMESPACE: &str = "shop";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound of one probe; an allowed one answers in a few milliseconds, a denied one
/// fails at once with EPERM, so only a broken translation ever waits this long.
const PROBE_TIMEOUT_MS: &str = "2000";

/// Backends of `open` (web-1 only), `web` (web-1 and web-2), `locked` (web-2 only) and
/// `empty` (none).
const OPEN_V4: &str = "10.96.0.10";
const OPEN_V6: &str = "fd00:96::10";
const WEB_V4: &str = "10.96.0.20";
const LOCKED_V4: &str = "10.96.0.30";
const LOCKED_V6: &str = "fd00:96::30";
const EMPTY_V4: &str = "10.96.0.40";
/// IPv4 Service addresses as an AF_INET6 socket names them (the connect6 and sendmsg6
/// hooks see them): the IPv4 Service, and its verdicts.
const OPEN_V4_MAPPED: &str = "::ffff:10.96.0.10";
const LOCKED_V4_MAPPED: &str = "::ffff:10.96.0.30";

const TCP: u8 = 6;
const UDP: u8 = 17;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address literal")
}

/// A Service of `shop` with a dual-stack (or IPv4) cluster IP, TCP 80 -> `http` and
/// UDP 53 -> 5353.
fn service(name: &str, cluster_ips: &[&str], selector: &str) -> String {
    let families: Vec<&str> = cluster_ips
        .iter()
        .map(|a| if ip(a).is_ipv4() { "IPv4" } else { "IPv6" })
        .collect();
    let policy = if cluster_ips.len() > 1 {
        "RequireDualStack"
    } else {
        "SingleStack"
    };
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  clusterIP: "{first}"
  clusterIPs: [{ips}]
  ipFamilies: [{families}]
  ipFamilyPolicy: {policy}
  selector: {{{selector}}}
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: http
    - name: dns
      protocol: UDP
      port: 53
      targetPort: 5353
---
"#,
        first = cluster_ips[0],
        ips = cluster_ips
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", "),
        families = families.join(", "),
    )
}

/// web-2 (instance=two) accepts only app=friend; `fenced` may open flows only to
/// instance=one, on the backends' target ports (never the Service ports).
const POLICIES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-2-friends-only
  namespace: shop
spec:
  podSelector:
    matchLabels:
      instance: two
  policyTypes: [Ingress]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              app: friend
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: fenced-to-web-1
  namespace: shop
spec:
  podSelector:
    matchLabels:
      app: fenced
  policyTypes: [Egress]
  egress:
    - to:
        - podSelector:
            matchLabels:
              instance: one
      ports:
        - protocol: TCP
          port: 8080
        - protocol: UDP
          port: 5353
"#;

struct Shop {
    lab: Lab,
    client: PodHandle,
    fenced: PodHandle,
    stranger: PodHandle,
    dir: ManifestDir,
    agent: Agent,
    model: Model,
    /// The backend servers (the lab kills them when it is dropped).
    _servers: Vec<Child>,
}

/// shop/client, shop/fenced, backends shop/web-1 and shop/web-2, and `stranger`, a
/// pod of the lab that no manifest names (not an endpoint); Services open, web,
/// locked and empty.
fn shop(prefix: &str) -> Result<Shop> {
    require_root()?;
    let mut lab = Lab::with_config(
        prefix,
        LabConfig {
            node_ipv4: Some("10.90.0.1".parse()?),
            node_ipv6: Some("fd00:90::1".parse()?),
            ..Default::default()
        },
    )?;
    let mut add = |name: &str, n: u8| -> Result<PodHandle> {
        lab.add_pod(PodSpec::dual_stack(
            name,
            format!("10.90.0.{n}").parse()?,
            format!("fd00:90::{n}").parse()?,
        ))
    };
    let client = add("client", 10)?;
    let fenced = add("fenced", 11)?;
    let web1 = add("web-1", 21)?;
    let web2 = add("web-2", 22)?;
    let stranger = add("stranger", 50)?;
    let mut servers = Vec::new();
    for (pod, name) in [(&web1, "web-1"), (&web2, "web-2")] {
        servers.push(serve_named(&lab, pod, name)?);
    }

    let dir = ManifestDir::new(lab.id())?;
    let mut cluster = manifests::node(NODE, &[ip("10.90.0.1"), ip("fd00:90::1")]);
    cluster.push_str(&manifests::namespace(NAMESPACE, &[]));
    let http = [("http", 8080)];
    for (pod, labels, ports) in [
        (&client, &[("app", "client")][..], &[][..]),
        (&fenced, &[("app", "fenced")][..], &[][..]),
        (&web1, &[("app", "web"), ("instance", "one")][..], &http[..]),
        (&web2, &[("app", "web"), ("instance", "two")][..], &http[..]),
    ] {
        cluster.push_str(&manifests::pod(NAMESPACE, pod, labels, ports, true));
    }
    dir.write("cluster.yaml", &cluster)?;
    let services = [
        service("open", &[OPEN_V4, OPEN_V6], "instance: one"),
        service("web", &[WEB_V4], "app: web"),
        service("locked", &[LOCKED_V4, LOCKED_V6], "instance: two"),
        service("empty", &[EMPTY_V4], "app: nobody"),
    ];
    dir.write("services.yaml", &services.concat())?;
    dir.write("policies.yaml", POLICIES)?;
    let model = Model::load(dir.path())?;

    let mut agent = Agent::start(AgentOptions {
        id: lab.id(),
        manifests: dir.path(),
        cgroup_root: lab.cgroup_root(),
        node_name: NODE,
        extra_args: &[],
    })?;
    agent.wait_ready(READY_TIMEOUT)?;
    Ok(Shop {
        lab,
        client,
        fenced,
        stranger,
        dir,
        agent,
        model,
        _servers: servers,
    })
}

/// Starts `palisade-netprobe serve --name NAME` on TCP 8080 and UDP 5353 in `pod`
/// and waits for its `ready` line.
fn serve_named(lab: &Lab, pod: &PodHandle, name: &str) -> Result<Child> {
    let mut child = lab.spawn(
        pod,
        None,
        &["serve", "--tcp", "8080", "--udp", "5353", "--name", name],
    )?;
    let stdout = child.stdout.take().context("server stdout not piped")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    ensure!(
        line.trim() == "ready",
        "server {name} printed {line:?} instead of ready"
    );
    Ok(child)
}

/// How a probe sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Tcp,
    /// UDP on a connected socket (connect, send, recv, getpeername).
    UdpConnected,
    /// UDP on an unconnected socket (sendto, recvfrom).
    UdpUnconnected,
}

impl Via {
    fn protocol(self) -> u8 {
        match self {
            Via::Tcp => TCP,
            Via::UdpConnected | Via::UdpUnconnected => UDP,
        }
    }

    fn service_port(self) -> u16 {
        match self {
            Via::Tcp => 80,
            Via::UdpConnected | Via::UdpUnconnected => 53,
        }
    }
}

/// One identifying probe to a Service port.
#[derive(Clone, Debug)]
struct Probe<'a> {
    from: &'a PodHandle,
    vip: IpAddr,
    via: Via,
}

impl std::fmt::Display for Probe<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let to = SocketAddr::new(self.vip, self.via.service_port());
        write!(f, "{} -> {:?} {to}", self.from.name(), self.via)
    }
}

fn probe<'a>(from: &'a PodHandle, vip: &str, via: Via) -> Probe<'a> {
    Probe {
        from,
        vip: ip(vip),
        via,
    }
}

/// Runs probes in parallel; each report in the order given.
fn run_all(lab: &Lab, probes: &[Probe<'_>]) -> Result<Vec<ProbeReport>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = probes
            .iter()
            .map(|p| scope.spawn(move || run_one(lab, p)))
            .collect();
        handles
            .into_iter()
            .zip(probes)
            .map(|(handle, p)| match handle.join() {
                Ok(result) => result.with_context(|| format!("probe {p}")),
                Err(_) => bail!("probe {p} panicked"),
            })
            .collect()
    })
}

fn run_one(lab: &Lab, p: &Probe<'_>) -> Result<ProbeReport> {
    let (addr, port) = (p.vip.to_string(), p.via.service_port().to_string());
    let proto = if p.via == Via::Tcp { "tcp" } else { "udp" };
    let mut args = vec![
        "connect",
        "--proto",
        proto,
        "--addr",
        &addr,
        "--port",
        &port,
        "--timeout-ms",
        PROBE_TIMEOUT_MS,
        "--identify",
    ];
    if p.via == Via::UdpUnconnected {
        args.push("--unconnected");
    }
    let output = lab.spawn(p.from, None, &args)?.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "netprobe {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty());
    serde_json::from_str(line.unwrap_or_default())
        .with_context(|| format!("netprobe printed {stdout:?}"))
}

/// The address part of `ip:port` / `[ip]:port`.
fn address_of(socket: &str) -> Result<IpAddr> {
    Ok(socket
        .parse::<SocketAddr>()
        .with_context(|| format!("{socket:?} is no socket address"))?
        .ip())
}

/// What a probe must show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Answered by this backend, which saw the client's own address, while the
    /// client's socket names the Service address and port as its peer.
    AnsweredBy(&'static str),
    /// Refused at the socket: EPERM.
    Refused,
}

/// Checks one report against an expectation; `None` when it holds.
fn mismatch(p: &Probe<'_>, report: &ProbeReport, expect: Expect) -> Option<String> {
    let wrong = |why: String| Some(format!("{p}: {why}; report {report:?}"));
    match expect {
        Expect::Refused if report.outcome == ReportOutcome::Eperm => None,
        Expect::Refused => wrong("expected EPERM".into()),
        Expect::AnsweredBy(server) => {
            let Some(answer) = &report.answer else {
                return wrong(format!("expected an answer from {server}"));
            };
            answer_mismatch(p, answer, server).and_then(wrong)
        }
    }
}

fn answer_mismatch(p: &Probe<'_>, answer: &AnswerReport, server: &str) -> Option<String> {
    if answer.server != server {
        return Some(format!("answered by {}, expected {server}", answer.server));
    }
    let vip = p.vip.to_canonical();
    let own = p
        .from
        .ips()
        .into_iter()
        .find(|a| a.is_ipv4() == vip.is_ipv4());
    match address_of(&answer.seen_as) {
        Ok(seen) if Some(seen) == own => {}
        _ => return Some(format!("the backend saw {}, not {own:?}", answer.seen_as)),
    }
    let service = SocketAddr::new(vip, p.via.service_port()).to_string();
    if answer.peer != service {
        return Some(format!(
            "the client's socket names {} as its peer, not {service}",
            answer.peer
        ));
    }
    None
}

/// Runs probes and checks each against its expectation and against the policy
/// library, reporting every mismatch at once.
fn expect_all(shop: &Shop, cases: &[(Probe<'_>, Expect)]) -> Result<()> {
    let probes: Vec<Probe<'_>> = cases.iter().map(|(p, _)| p.clone()).collect();
    let reports = run_all(&shop.lab, &probes)?;
    let mut failures = Vec::new();
    for ((p, expect), report) in cases.iter().zip(&reports) {
        failures.extend(mismatch(p, report, *expect));
        failures.extend(shop.model.disagreement(p, report)?);
    }
    ensure!(
        failures.is_empty(),
        "{} probe(s) wrong:\n  {}\nagent log:\n{}",
        failures.len(),
        failures.join("\n  "),
        shop.agent.log_tail(40)
    );
    Ok(())
}

/// The policy library's view of the same manifests.
struct Model {
    cluster: Cluster,
    compiled: CompiledCluster,
}

impl Model {
    fn load(dir: &Path) -> Result<Self> {
        let cluster = palisade_manifests::read_dir(dir)?
            .parse()
            .map_err(|errors| anyhow::anyhow!("{}:\n{errors}", dir.display()))?;
        let compiled = palisade_policy::compile::compile(&cluster);
        Ok(Self { cluster, compiled })
    }

    /// The verdict for each backend (pod name) of a probe's Service flow, as the
    /// library decides it. Probes from pods no manifest names are not decided.
    fn backend_verdicts(&self, p: &Probe<'_>) -> Result<Option<BTreeMap<String, Verdict>>> {
        let Some(pod) = self
            .cluster
            .pods
            .iter()
            .find(|(r, _)| r.namespace == NAMESPACE && r.name == p.from.name())
            .map(|(_, pod)| pod)
        else {
            return Ok(None);
        };
        let from = Endpoint::Pod(pod);
        let decision = flow_via_service(
            &self.compiled,
            from,
            p.vip,
            p.via.protocol(),
            p.via.service_port(),
        )?
        .with_context(|| format!("{p}: no Service in the compiled tables"))?;
        Ok(Some(
            decision
                .backends
                .iter()
                .map(|b| {
                    let name = b.backend.pod.as_ref().map_or("?", |r| r.name.as_str());
                    (name.to_owned(), b.flow.verdict)
                })
                .collect(),
        ))
    }

    /// Where the kernel and the library disagree about a probe: an answer from a
    /// backend the library denies, or a refusal although it allows every backend.
    fn disagreement(&self, p: &Probe<'_>, report: &ProbeReport) -> Result<Option<String>> {
        let Some(verdicts) = self.backend_verdicts(p)? else {
            return Ok(None);
        };
        let why = match (&report.answer, report.outcome) {
            (Some(answer), _) => match verdicts.get(&answer.server) {
                Some(Verdict::Allow) => None,
                other => Some(format!(
                    "answered by {} but the library says {other:?} ({verdicts:?})",
                    answer.server
                )),
            },
            (None, ReportOutcome::Eperm)
                if verdicts.is_empty() || verdicts.values().any(|v| *v == Verdict::Deny) =>
            {
                None
            }
            (None, outcome) => Some(format!(
                "{outcome:?} but the library allows every backend ({verdicts:?})"
            )),
        };
        Ok(why.map(|why| format!("{p}: kernel and palisade-policy disagree: {why}")))
    }
}

#[test]
fn tcp_to_a_service_reaches_its_backend_which_sees_the_client() -> Result<()> {
    // (a) and (f): the backend listens on the target port `http` (8080) only; the
    // client connected to the Service port 80 and its socket says so.
    let s = shop("pl-svc-tcp")?;
    let (c, fenced) = (&s.client, &s.fenced);
    expect_all(
        &s,
        &[
            (probe(c, OPEN_V4, Via::Tcp), Expect::AnsweredBy("web-1")),
            (probe(c, OPEN_V6, Via::Tcp), Expect::AnsweredBy("web-1")),
            (
                probe(c, OPEN_V4_MAPPED, Via::Tcp),
                Expect::AnsweredBy("web-1"),
            ),
            // An egress allowlist written for the target port admits the Service flow.
            (
                probe(fenced, OPEN_V4, Via::Tcp),
                Expect::AnsweredBy("web-1"),
            ),
            (
                probe(fenced, OPEN_V6, Via::Tcp),
                Expect::AnsweredBy("web-1"),
            ),
        ],
    )?;
    // Translation applies to every socket on the node, endpoint or not (as
    // kube-proxy's does); policy does not decide for the stranger.
    let stranger = run_all(&s.lab, &[probe(&s.stranger, OPEN_V4, Via::Tcp)])?;
    let p = probe(&s.stranger, OPEN_V4, Via::Tcp);
    if let Some(why) = mismatch(&p, &stranger[0], Expect::AnsweredBy("web-1")) {
        bail!("{why}");
    }
    Ok(())
}

#[test]
fn a_backend_whose_policy_denies_the_client_fails_the_connect_with_eperm() -> Result<()> {
    // (b): web-2 admits only app=friend. The client is not isolated itself: the
    // verdict is the backend's ingress policy, given at the client's connect().
    let s = shop("pl-svc-deny")?;
    let (c, fenced) = (&s.client, &s.fenced);
    expect_all(
        &s,
        &[
            (probe(c, LOCKED_V4, Via::Tcp), Expect::Refused),
            (probe(c, LOCKED_V6, Via::Tcp), Expect::Refused),
            (probe(c, LOCKED_V4_MAPPED, Via::Tcp), Expect::Refused),
            // fenced's own egress allowlist denies web-2 as well.
            (probe(fenced, LOCKED_V4, Via::Tcp), Expect::Refused),
        ],
    )
}

#[test]
fn the_verdict_is_that_of_the_backend_actually_used() -> Result<()> {
    // `web` has both backends: each connection is decided for the one it got. Every
    // attempt either reaches web-1 or fails with EPERM (web-2), never reaches web-2
    // and never times out; over 24 attempts with a random pick both happen (the odds
    // of one backend only are 2^-23).
    let s = shop("pl-svc-mixed")?;
    let probes: Vec<Probe<'_>> = (0..24)
        .map(|_| probe(&s.client, WEB_V4, Via::Tcp))
        .collect();
    let reports = run_all(&s.lab, &probes)?;
    let mut failures = Vec::new();
    let (mut reached, mut refused) = (0, 0);
    for (p, report) in probes.iter().zip(&reports) {
        let expect = if report.outcome == ReportOutcome::Eperm {
            refused += 1;
            Expect::Refused
        } else {
            reached += 1;
            Expect::AnsweredBy("web-1")
        };
        failures.extend(mismatch(p, report, expect));
        failures.extend(s.model.disagreement(p, report)?);
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    ensure!(
        reached > 0 && refused > 0,
        "24 connections to a two-backend Service: {reached} reached web-1, {refused} were \
         refused; the backend pick is not spreading"
    );
    Ok(())
}

#[test]
fn udp_to_a_service_answers_from_the_service_address() -> Result<()> {
    // (c): request and reply through the Service, on unconnected sockets (sendmsg
    // translates, recvmsg turns the backend's source back into the Service address,
    // which recvfrom shows) and connected ones (connect translates, getpeername
    // reverses).
    let s = shop("pl-svc-udp")?;
    let (c, fenced) = (&s.client, &s.fenced);
    let mut cases = Vec::new();
    for vip in [OPEN_V4, OPEN_V6, OPEN_V4_MAPPED] {
        for via in [Via::UdpUnconnected, Via::UdpConnected] {
            cases.push((probe(c, vip, via), Expect::AnsweredBy("web-1")));
            cases.push((probe(fenced, vip, via), Expect::AnsweredBy("web-1")));
        }
    }
    expect_all(&s, &cases)
}

#[test]
fn udp_to_a_denied_backend_fails_the_send_with_eperm() -> Result<()> {
    // (d): sendto (unconnected) and connect (connected) are refused at the socket.
    let s = shop("pl-svc-udp-deny")?;
    let (c, fenced) = (&s.client, &s.fenced);
    let mut cases = Vec::new();
    for vip in [LOCKED_V4, LOCKED_V6, LOCKED_V4_MAPPED] {
        for via in [Via::UdpUnconnected, Via::UdpConnected] {
            cases.push((probe(c, vip, via), Expect::Refused));
        }
    }
    cases.push((
        probe(fenced, LOCKED_V4, Via::UdpUnconnected),
        Expect::Refused,
    ));
    expect_all(&s, &cases)
}

#[test]
fn a_service_without_endpoints_is_refused_at_the_socket() -> Result<()> {
    // (e): no backend to translate to: connect and sendto fail with EPERM at once,
    // for endpoints and for sockets palisade enforces nothing on alike.
    let s = shop("pl-svc-empty")?;
    let mut cases = Vec::new();
    for from in [&s.client, &s.stranger] {
        for via in [Via::Tcp, Via::UdpConnected, Via::UdpUnconnected] {
            cases.push((probe(from, EMPTY_V4, via), Expect::Refused));
        }
    }
    expect_all(&s, &cases)
}

#[test]
fn services_follow_manifest_changes_and_outlive_the_agent() -> Result<()> {
    // Service tables are published with the rest of the state (slot flip): `locked`
    // moved to web-1 is reached through the same address at once; after SIGKILL of the
    // agent the pinned hooks and tables keep translating and deciding, and a new agent
    // swaps its programs into the pinned links (BPF_LINK_UPDATE) and carries on.
    let mut s = shop("pl-svc-update")?;
    let c = &s.client;
    expect_all(&s, &[(probe(c, LOCKED_V4, Via::Tcp), Expect::Refused)])?;
    let services = [
        service("open", &[OPEN_V4, OPEN_V6], "instance: one"),
        service("web", &[WEB_V4], "app: web"),
        service("locked", &[LOCKED_V4, LOCKED_V6], "instance: one"),
        service("empty", &[EMPTY_V4], "app: nobody"),
    ];
    s.dir.write("services.yaml", &services.concat())?;
    s.model = Model::load(s.dir.path())?;
    let hash = palisade_manifests::read_dir(s.dir.path())?.hash;
    s.agent.wait_applied(&hash, READY_TIMEOUT)?;
    expect_all(&s, &locked_moved_to_web_1(&s))?;
    s.agent.kill()?;
    expect_all(&s, &locked_moved_to_web_1(&s))?;
    s.agent.restart(AgentOptions {
        id: s.lab.id(),
        manifests: s.dir.path(),
        cgroup_root: s.lab.cgroup_root(),
        node_name: NODE,
        extra_args: &[],
    })?;
    s.agent.wait_ready(READY_TIMEOUT)?;
    expect_all(&s, &locked_moved_to_web_1(&s))?;
    let log = s.agent.log();
    for hook in ["connect4", "sendmsg6", "recvmsg4", "getpeername6"] {
        ensure!(
            log.lines()
                .any(|line| line.contains(hook) && line.contains("Replaced")),
            "the restarted agent did not swap its {hook} program into the pinned link:\n{log}"
        );
    }
    s.agent.cleanup_pins()
}

/// What `locked` moved to web-1 must show.
fn locked_moved_to_web_1(s: &Shop) -> Vec<(Probe<'_>, Expect)> {
    vec![
        (
            probe(&s.client, LOCKED_V4, Via::Tcp),
            Expect::AnsweredBy("web-1"),
        ),
        (
            probe(&s.client, LOCKED_V6, Via::UdpUnconnected),
            Expect::AnsweredBy("web-1"),
        ),
        (
            probe(&s.fenced, LOCKED_V4, Via::Tcp),
            Expect::AnsweredBy("web-1"),
        ),
        (probe(&s.client, EMPTY_V4, Via::Tcp), Expect::Refused),
    ]
}
