//! Throughput, latency and connection rate across a veth pair, with no program, with
//! palisade enforcing 10,000 rules, and with iptables (legacy and nft back ends) and
//! nftables holding the same 10,000 rules, all in one run; reported as ratios to the
//! no-program baseline.
//!
//! Two emulated pods (network namespaces + cgroups on the lab's bridge): a server that
//! runs `iperf3 -s` and palisade-netprobe's echo server, and a client. The rules guard
//! the server's ingress: 9,999 `allow <address>/32 to TCP ports` rules for addresses
//! nobody uses, and last the one that allows the client, so a new connection walks
//! the whole list where a firewall's rules are a list. palisade gets them as one
//! NetworkPolicy with 10,000 ipBlock rules; iptables and nftables as 10,000 rules
//! after an `ESTABLISHED,RELATED accept`, in the server's namespace only.
//!
//! Per configuration: iperf3 TCP throughput (one stream), a request/response round
//! trip on one connection (1 byte each way), and new connections per second
//! (connect, one round trip, close; one client thread). With palisade also the time a
//! denied `connect()` takes to fail with EPERM (the client's egress is limited to the
//! server's two ports, and the benchmark connects to a third). The load generators are this binary's
//! hidden `load` subcommand, run inside the client pod.

use anyhow::{Context, Result, bail, ensure};
use palisade_lab::harness::agent::{Agent, AgentOptions};
use palisade_lab::harness::binaries;
use palisade_lab::harness::manifests::{self, ManifestDir};
use palisade_lab::{Lab, PodHandle, PodSpec};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

/// Rules every configuration holds.
const RULES: u32 = 10_000;
/// The echo server's port (netprobe), for round trips and connections.
const ECHO_PORT: u16 = 7000;
/// iperf3's port.
const IPERF_PORT: u16 = 5201;
/// A port the policy does not open, for the denied-connect timing.
const CLOSED_PORT: u16 = 7001;
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);

/// One configuration's numbers.
struct Measurement {
    config: &'static str,
    throughput_gbps: f64,
    round_trip_us: f64,
    connections_per_s: f64,
    /// From `load::PARALLEL_CLIENTS` threads, closing with resets.
    parallel_connections_per_s: f64,
    /// palisade only: median time of a denied connect() (EPERM), microseconds.
    denied_connect_us: Option<f64>,
}

pub fn run(seconds: u64) -> Result<()> {
    binaries::require_root()?;
    for tool in [
        "iperf3",
        "iptables-legacy-restore",
        "iptables-nft-restore",
        "nft",
    ] {
        which(tool).with_context(|| {
            format!(
                "{tool} is not installed (cargo xtask bench installs iperf3, iptables and nftables)"
            )
        })?;
    }
    let mut results = Vec::new();
    for config in [
        Config::NoProgram,
        Config::Palisade,
        Config::IptablesLegacy,
        Config::IptablesNft,
        Config::Nftables,
    ] {
        let m = measure(config, seconds).with_context(|| format!("measuring {}", config.name()))?;
        eprintln!(
            "  {}: {:.2} Gbit/s, round trip {:.1} us, {:.0} connections/s, {:.0} in parallel{}",
            m.config,
            m.throughput_gbps,
            m.round_trip_us,
            m.connections_per_s,
            m.parallel_connections_per_s,
            m.denied_connect_us
                .map(|us| format!(", denied connect {us:.1} us"))
                .unwrap_or_default()
        );
        results.push(m);
    }
    report(&results, seconds)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Config {
    NoProgram,
    Palisade,
    IptablesLegacy,
    IptablesNft,
    Nftables,
}

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::NoProgram => "no program",
            Config::Palisade => "palisade",
            Config::IptablesLegacy => "iptables (legacy)",
            Config::IptablesNft => "iptables (nft)",
            Config::Nftables => "nftables",
        }
    }
}

fn measure(config: Config, seconds: u64) -> Result<Measurement> {
    let mut lab = Lab::new("pl-bthr")?;
    let server = lab.add_pod(PodSpec::ipv4("server", SERVER_IP))?;
    let client = lab.add_pod(PodSpec::ipv4("client", CLIENT_IP))?;
    lab.serve(&server, &[ECHO_PORT], &[])?;
    let iperf = IperfServer::start(&lab, &server)?;

    // Held until the measurement ends: the agent (and its pins) or the firewall rules.
    let mut _agent = None;
    let mut _manifests = None;
    match config {
        Config::NoProgram => {}
        Config::Palisade => {
            let dir = ManifestDir::new("bench-throughput")?;
            dir.write("cluster.yaml", &palisade_manifests(&server, &client))?;
            let mut agent = Agent::start(AgentOptions {
                id: "bench-throughput",
                manifests: dir.path(),
                cgroup_root: lab.cgroup_root(),
                node_name: "bench",
                extra_args: &[],
            })?;
            agent.wait_ready(Duration::from_secs(60))?;
            _agent = Some(agent);
            _manifests = Some(dir);
        }
        Config::IptablesLegacy => {
            run_in_netns(server.netns(), "iptables-legacy-restore", &iptables_rules())?
        }
        Config::IptablesNft => {
            run_in_netns(server.netns(), "iptables-nft-restore", &iptables_rules())?
        }
        Config::Nftables => run_in_netns(server.netns(), "nft", &nftables_rules())?,
    }

    // A first connection proves the rules let the client in.
    let load = |args: &[&str]| -> Result<String> {
        let mut all = vec!["load"];
        all.extend_from_slice(args);
        let child = lab.spawn_program(&client, None, &current_exe()?, &all)?;
        finish(child, "palisade-bench load")
    };
    let server_addr = SERVER_IP.to_string();
    let secs = seconds.to_string();
    let echo = ECHO_PORT.to_string();
    let round_trip_us: f64 = load(&["rtt", &server_addr, &echo, &secs])?
        .trim()
        .parse()
        .context("rtt output")?;
    let connections_per_s: f64 = load(&["rate", &server_addr, &echo, &secs])?
        .trim()
        .parse()
        .context("rate output")?;
    let parallel_connections_per_s: f64 = load(&["parallel", &server_addr, &echo, &secs])?
        .trim()
        .parse()
        .context("parallel rate output")?;
    let denied_connect_us = match config {
        Config::Palisade => Some(
            load(&["denied", &server_addr, &CLOSED_PORT.to_string(), "2000"])?
                .trim()
                .parse()
                .context("denied output")?,
        ),
        _ => None,
    };
    let iperf_out = {
        let child = lab.spawn_program(
            &client,
            None,
            &which("iperf3")?,
            &[
                "-c",
                &server_addr,
                "-p",
                &IPERF_PORT.to_string(),
                "-t",
                &secs,
                "-J",
            ],
        )?;
        finish(child, "iperf3 -c")?
    };
    let json: serde_json::Value = serde_json::from_str(&iperf_out).context("iperf3 -J output")?;
    let bps = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("iperf3 reported no throughput: {iperf_out}"))?;
    drop(iperf);
    Ok(Measurement {
        config: config.name(),
        throughput_gbps: bps / 1e9,
        round_trip_us,
        connections_per_s,
        parallel_connections_per_s,
        denied_connect_us,
    })
}

/// The 9,999 unused addresses the rules name before the client's.
fn decoy(i: u32) -> Ipv4Addr {
    // 198.18.0.0/15 (benchmarking range), never a pod of the lab.
    Ipv4Addr::from(0xc612_0000 + i)
}

fn palisade_manifests(server: &PodHandle, client: &PodHandle) -> String {
    let mut s = manifests::namespace("bench", &[]);
    s.push_str(&manifests::pod(
        "bench",
        server,
        &[("app", "server")],
        &[],
        true,
    ));
    s.push_str(&manifests::pod(
        "bench",
        client,
        &[("app", "client")],
        &[],
        true,
    ));
    s.push_str(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: server-ingress, namespace: bench}\nspec:\n  podSelector: {matchLabels: {app: server}}\n  policyTypes: [Ingress]\n  ingress:\n",
    );
    let ports = format!("[{{port: {ECHO_PORT}}}, {{port: {IPERF_PORT}}}]");
    for i in 0..RULES - 1 {
        let _ = writeln!(
            s,
            "    - from: [{{ipBlock: {{cidr: {}/32}}}}]\n      ports: {ports}",
            decoy(i)
        );
    }
    let _ = writeln!(
        s,
        "    - from: [{{ipBlock: {{cidr: {CLIENT_IP}/32}}}}]\n      ports: {ports}"
    );
    // The client may reach the server's two ports only: a connect() elsewhere is
    // refused at the socket (EPERM), which the denied-connect timing measures.
    let _ = write!(
        s,
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: client-egress, namespace: bench}}\nspec:\n  podSelector: {{matchLabels: {{app: client}}}}\n  policyTypes: [Egress]\n  egress:\n    - to: [{{podSelector: {{matchLabels: {{app: server}}}}}}]\n      ports: {ports}\n"
    );
    s
}

fn iptables_rules() -> String {
    let mut s = String::from("*filter\n:INPUT DROP [0:0]\n");
    s.push_str("-A INPUT -i lo -j ACCEPT\n");
    s.push_str("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n");
    let mut rule = |addr: Ipv4Addr| {
        let _ = writeln!(
            s,
            "-A INPUT -s {addr}/32 -p tcp -m multiport --dports {ECHO_PORT},{IPERF_PORT} -j ACCEPT"
        );
    };
    for i in 0..RULES - 1 {
        rule(decoy(i));
    }
    rule(CLIENT_IP);
    s.push_str("COMMIT\n");
    s
}

fn nftables_rules() -> String {
    let mut s = String::from(
        "table inet palisade_bench {\n  chain input {\n    type filter hook input priority 0; policy drop;\n    iif lo accept\n    ct state established,related accept\n",
    );
    let mut rule = |addr: Ipv4Addr| {
        let _ = writeln!(
            s,
            "    ip saddr {addr} tcp dport {{ {ECHO_PORT}, {IPERF_PORT} }} accept"
        );
    };
    for i in 0..RULES - 1 {
        rule(decoy(i));
    }
    rule(CLIENT_IP);
    s.push_str("  }\n}\n");
    s
}

/// Loads `rules` with `tool` (an `*-restore` or `nft`) in the network namespace
/// `netns` (a lab pod's: the rules die with it).
fn run_in_netns(netns: &str, tool: &str, rules: &str) -> Result<()> {
    let path = std::env::temp_dir().join(format!("palisade-bench-{netns}.rules"));
    std::fs::write(&path, rules)?;
    let mut command = Command::new("ip");
    command.args(["netns", "exec", netns, tool]);
    if tool == "nft" {
        command.arg("-f");
    }
    command.arg(&path);
    let out = command
        .output()
        .with_context(|| format!("running {tool}"))?;
    let _ = std::fs::remove_file(&path);
    ensure!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `iperf3 -s` in the server pod, killed on drop.
struct IperfServer(Child);

impl IperfServer {
    fn start(lab: &Lab, server: &PodHandle) -> Result<Self> {
        let child = lab.spawn_program(
            server,
            None,
            &which("iperf3")?,
            &["-s", "-p", &IPERF_PORT.to_string()],
        )?;
        // iperf3 listens at once; give it a moment before the first client.
        std::thread::sleep(Duration::from_millis(300));
        Ok(Self(child))
    }
}

impl Drop for IperfServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn finish(child: Child, what: &str) -> Result<String> {
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn which(tool: &str) -> Result<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(tool))
        .find(|path| path.is_file())
        .with_context(|| format!("{tool} not found"))
}

fn current_exe() -> Result<PathBuf> {
    std::env::current_exe().context("locating palisade-bench")
}

fn report(results: &[Measurement], seconds: u64) -> Result<()> {
    let base = &results[0];
    let mut md = String::from("# Throughput, latency and connection rate across a veth pair\n\n");
    let _ = write!(
        md,
        "Two emulated pods on the lab bridge; {RULES} rules guarding the server's ingress \
         (9,999 for unused /32 addresses, then the client's). iperf3 one TCP stream for {seconds} s; \
         round trip: 1 byte each way on one connection; connections: connect, one round trip, close, \
         one thread, {seconds} s (bound by round trips); in parallel: the same from {clients} threads, \
         closing with a reset, {seconds} s (bound by the CPUs, so per-connection costs show). \
         Ratios are to the no-program row of the same run.\n\n",
        clients = crate::load::PARALLEL_CLIENTS
    );
    md.push_str("| configuration | throughput (Gbit/s) | ratio | round trip (us) | ratio | connections/s | ratio | in parallel/s | ratio | denied connect (us) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut json = Vec::new();
    for m in results {
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.3} | {:.1} | {:.2} | {:.0} | {:.3} | {:.0} | {:.3} | {} |",
            m.config,
            m.throughput_gbps,
            m.throughput_gbps / base.throughput_gbps,
            m.round_trip_us,
            m.round_trip_us / base.round_trip_us,
            m.connections_per_s,
            m.connections_per_s / base.connections_per_s,
            m.parallel_connections_per_s,
            m.parallel_connections_per_s / base.parallel_connections_per_s,
            m.denied_connect_us
                .map_or_else(|| "-".into(), |us| format!("{us:.1}")),
        );
        json.push(serde_json::json!({
            "configuration": m.config,
            "throughput_gbps": m.throughput_gbps,
            "throughput_ratio": m.throughput_gbps / base.throughput_gbps,
            "round_trip_us": m.round_trip_us,
            "round_trip_ratio": m.round_trip_us / base.round_trip_us,
            "connections_per_s": m.connections_per_s,
            "connections_ratio": m.connections_per_s / base.connections_per_s,
            "parallel_connections_per_s": m.parallel_connections_per_s,
            "parallel_connections_ratio": m.parallel_connections_per_s / base.parallel_connections_per_s,
            "denied_connect_us": m.denied_connect_us,
        }));
    }
    let palisade = results.iter().find(|m| m.config == Config::Palisade.name());
    let iptables = results
        .iter()
        .find(|m| m.config == Config::IptablesLegacy.name());
    if let (Some(p), Some(i)) = (palisade, iptables) {
        let _ = writeln!(
            md,
            "\npalisade's connection rate is {:.2}x that of iptables (legacy) with the same rules \
             ({:.2}x in parallel).",
            p.connections_per_s / i.connections_per_s,
            p.parallel_connections_per_s / i.parallel_connections_per_s
        );
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("throughput.md"), &md)?;
    std::fs::write(
        dir.join("throughput.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "benchmark": "throughput across a veth pair",
            "rules": RULES,
            "seconds": seconds,
            "results": json,
        }))?,
    )?;
    print!("{md}");
    Ok(())
}
