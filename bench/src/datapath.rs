//! Per-packet cost of palisade's egress program, measured with BPF_PROG_TEST_RUN on
//! the real object and real maps, for growing ip caches (10 .. 100,000 CIDR entries)
//! and identity counts (10 .. 10,000).
//!
//! Three paths are timed: a packet of an established connection (the socket's flow
//! cache, `sock_flow.rs` in the kernel programs, with conntrack behind it), the first
//! packet of a new flow to a pod that policy denies (endpoint walk, ip cache host hash, policy LPM twice, a flow event), and the same to an address
//! only a CIDR covers (the host hash misses, the ip cache trie decides). Half of the
//! ip cache entries are pod addresses (/32, kept in the exact-match hash), half CIDRs
//! /16../31 (kept in the trie), as in a cluster whose policies name CIDRs. For a test run the kernel gives the packet
//! a socket in the calling process's cgroup, so the benchmark registers its own cgroup
//! as the endpoint (nothing is attached anywhere). The baseline is
//! the smallest configuration measured in the same run; ratios to it are what matters
//! on a noisy machine.

use anyhow::{Context, Result, bail, ensure};
use aya::programs::{TestRun, TestRunOptions};
use palisade_abi::{
    EndpointInfo, IpCacheValue, NodeConfig, POLICY_PREFIX_ANY_PORT, POLICY_PREFIX_ANY_PROTOCOL,
    PolicyValue, RULE_REF_DEFAULT, direction, endpoint_flags, program_names, reserved, v4_mapped,
    verdict,
};
use palisade_agent::cgroupfs;
use palisade_agent::datapath::Datapath;
use palisade_agent::desired::DesiredState;
use palisade_agent::pins::{self, PinLayout};
use palisade_lab::test_run;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

const CONFIGS: &[(usize, u32)] = &[
    (10, 10),
    (1_000, 10),
    (100_000, 10),
    (10, 10_000),
    (100_000, 10_000),
];
const POLICY_ID: u32 = 1;
const FIRST_IDENTITY: u32 = 1_000;
const ALLOWED_PORT: u16 = 443;

struct Measurement {
    cidrs: usize,
    identities: u32,
    established_ns: f64,
    new_flow_ns: f64,
    new_flow_cidr_ns: f64,
}

/// Removes the benchmark's pins whatever happens.
struct PinsGuard(PinLayout);

impl Drop for PinsGuard {
    fn drop(&mut self) {
        if let Err(e) = self.0.remove_all() {
            eprintln!("palisade-bench: removing pins: {e:#}");
        }
    }
}

pub fn run(repeat: u32, rounds: usize) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the datapath benchmark loads BPF programs: run it as root");
    }
    let ifindex = test_run::private_network_device()?;
    let pin_path = PathBuf::from(format!("/sys/fs/bpf/palisade-bench-{}", std::process::id()));
    pins::ensure_bpffs(&pin_path, true)?;
    let guard = PinsGuard(PinLayout::new(&pin_path));
    let mut datapath = Datapath::load(&guard.0)?;
    let mount = cgroupfs::cgroup2_mount()?;
    let own_cgroup = cgroupfs::cgroup_id(&cgroupfs::own_cgroup(&mount)?)?;

    let mut results = Vec::new();
    for &(cidrs, identities) in CONFIGS {
        let scenario = Scenario::build(own_cgroup, cidrs, identities);
        datapath.tables.apply(&scenario.state)?;
        let program = datapath.program(program_names::SKB_EGRESS)?;
        let src = IpAddr::V4(Ipv4Addr::new(192, 168, 77, 1));
        let established = test_run::ip_packet(src, scenario.allowed_dst, 6, 40_000, ALLOWED_PORT);
        let denied = test_run::ip_packet(src, scenario.allowed_dst, 6, 40_001, ALLOWED_PORT + 1);
        let denied_cidr = test_run::ip_packet(src, scenario.cidr_dst, 6, 40_002, ALLOWED_PORT + 1);
        // The first run admits the allowed flow into conntrack.
        ensure!(
            test_run(program, &established, ifindex, 1)?.0 == 1,
            "allowed packet was dropped"
        );
        if test_run(program, &denied, ifindex, 1)?.0 != 0
            || test_run(program, &denied_cidr, ifindex, 1)?.0 != 0
        {
            bail!(
                "denied packet was passed (cgroup {own_cgroup}); counters: {:?}",
                datapath.counters()?
            );
        }
        let established_ns = median(rounds, || {
            Ok(test_run(program, &established, ifindex, repeat)?.1)
        })?;
        let new_flow_ns = median(
            rounds,
            || Ok(test_run(program, &denied, ifindex, repeat)?.1),
        )?;
        let new_flow_cidr_ns = median(rounds, || {
            Ok(test_run(program, &denied_cidr, ifindex, repeat)?.1)
        })?;
        eprintln!(
            "  {cidrs:>7} CIDRs {identities:>6} identities: established {established_ns:6.1} ns, new flow {new_flow_ns:6.1} ns, to a CIDR {new_flow_cidr_ns:6.1} ns"
        );
        results.push(Measurement {
            cidrs,
            identities,
            established_ns,
            new_flow_ns,
            new_flow_cidr_ns,
        });
    }
    report(&results, repeat, rounds)
}

/// Runs the program `repeat` times on `packet` as if sent through device `ifindex`:
/// (return value, ns per run). Without an ifindex the kernel uses the loopback device,
/// which the programs always pass.
fn test_run(
    program: &aya::programs::CgroupSkb,
    packet: &[u8],
    ifindex: u32,
    repeat: u32,
) -> Result<(u32, f64)> {
    let ctx = test_run::skb_context(ifindex);
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(packet);
    opts.ctx_in = Some(&ctx);
    opts.repeat = repeat;
    let result = program.test_run(opts).context("BPF_PROG_TEST_RUN")?;
    Ok((result.return_value, duration_ns(result.duration)))
}

fn duration_ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

fn median(rounds: usize, mut f: impl FnMut() -> Result<f64>) -> Result<f64> {
    let mut v = (0..rounds.max(1))
        .map(|_| f())
        .collect::<Result<Vec<_>>>()?;
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

/// Tables for one configuration.
struct Scenario {
    state: DesiredState,
    /// A pod address (/32 entry) whose identity may be reached on [`ALLOWED_PORT`].
    allowed_dst: IpAddr,
    /// An address inside a CIDR entry (not a /32), same policy.
    cidr_dst: IpAddr,
}

impl Scenario {
    fn build(endpoint_cgroup: u64, cidrs: usize, identities: u32) -> Self {
        let mut state = DesiredState {
            config: NodeConfig {
                unknown_endpoint_verdict: u32::from(verdict::ALLOW),
                flags: 0,
                events_per_second: NodeConfig::DEFAULT_EVENTS_PER_SECOND,
                event_burst: NodeConfig::DEFAULT_EVENT_BURST,
            },
            ..Default::default()
        };
        state.endpoints.insert(
            endpoint_cgroup,
            EndpointInfo {
                identity: FIRST_IDENTITY - 1,
                policy_id: POLICY_ID,
                flags: endpoint_flags::ENFORCE_EGRESS | endpoint_flags::ENFORCE_INGRESS,
                _pad: 0,
            },
        );
        // Distinct pseudo-random entries in 10.0.0.0/8 (deterministic): every other
        // one a pod address (/32), the others CIDRs /16../31.
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut prefixes = BTreeMap::new();
        let mut last_host = Ipv4Addr::new(10, 0, 0, 1);
        let mut last_cidr = Ipv4Addr::new(10, 0, 0, 1);
        while prefixes.len() < cidrs {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let host = prefixes.len() % 2 == 0;
            let len = if host { 32 } else { 16 + (rng % 16) as u32 };
            let addr = 0x0a00_0000 | ((rng >> 20) as u32 & 0x00ff_ffff);
            let mask = u32::MAX << (32 - len);
            let network = addr & mask;
            let identity = FIRST_IDENTITY + (prefixes.len() as u32 % identities);
            if prefixes
                .insert(
                    (v4_mapped(network.to_be_bytes()), 96 + len),
                    IpCacheValue { identity, flags: 0 },
                )
                .is_none()
            {
                if host {
                    last_host = Ipv4Addr::from(network);
                } else {
                    last_cidr = Ipv4Addr::from(network | (!mask & 1));
                }
            }
        }
        state.ipcache = std::sync::Arc::new(prefixes);
        let allowed = |rule_ref| PolicyValue {
            verdict: verdict::ALLOW,
            flags: 0,
            _pad: 0,
            rule_ref,
        };
        let deny = PolicyValue {
            verdict: verdict::DENY,
            flags: 0,
            _pad: 0,
            rule_ref: RULE_REF_DEFAULT,
        };
        let egress = direction::EGRESS;
        state.policy.insert(
            (
                POLICY_PREFIX_ANY_PROTOCOL,
                POLICY_ID,
                reserved::ANY,
                egress,
                0,
                0,
            ),
            deny,
        );
        for identity in FIRST_IDENTITY..FIRST_IDENTITY + identities {
            state.policy.insert(
                (
                    POLICY_PREFIX_ANY_PROTOCOL,
                    POLICY_ID,
                    identity,
                    egress,
                    0,
                    0,
                ),
                deny,
            );
            state.policy.insert(
                (
                    POLICY_PREFIX_ANY_PORT + 16,
                    POLICY_ID,
                    identity,
                    egress,
                    6,
                    ALLOWED_PORT,
                ),
                allowed(identity),
            );
        }
        Self {
            state,
            allowed_dst: IpAddr::V4(last_host),
            cidr_dst: IpAddr::V4(last_cidr),
        }
    }
}

fn report(results: &[Measurement], repeat: u32, rounds: usize) -> Result<()> {
    let base = &results[0];
    let mut md = String::from("# Per-packet cost of the egress program (BPF_PROG_TEST_RUN)\n\n");
    md.push_str(&format!(
        "Median of {rounds} measurements of {repeat} runs each; ratios to the first row, measured in the same run.\n\n"
    ));
    md.push_str("Ip cache entries: half pod addresses (/32, exact-match hash), half CIDRs /16../31 (LPM trie). New flows go to a pod (hash hit) or to an address only a CIDR covers (hash miss, trie lookup).\n\n");
    md.push_str("The last column compares the CIDR flow with the same identity count at the fewest ip cache entries (the curve over ip cache sizes); `ratio` columns compare with the first row. A test run of a program that returns at once costs about 34 ns on this kernel, included in every number.\n\n");
    md.push_str("| ip cache entries | identities | established (ns) | ratio | new flow to a pod, denied (ns) | ratio | new flow to a CIDR, denied (ns) | ratio | ratio, same identities |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut json = Vec::new();
    for m in results {
        let (re, rn, rc) = (
            m.established_ns / base.established_ns,
            m.new_flow_ns / base.new_flow_ns,
            m.new_flow_cidr_ns / base.new_flow_cidr_ns,
        );
        // The smallest ip cache measured with this many identities.
        let same_identities = results
            .iter()
            .filter(|r| r.identities == m.identities)
            .min_by_key(|r| r.cidrs)
            .unwrap_or(m);
        let rs = m.new_flow_cidr_ns / same_identities.new_flow_cidr_ns;
        md.push_str(&format!(
            "| {} | {} | {:.1} | {:.2} | {:.1} | {:.2} | {:.1} | {:.2} | {:.2} |\n",
            m.cidrs,
            m.identities,
            m.established_ns,
            re,
            m.new_flow_ns,
            rn,
            m.new_flow_cidr_ns,
            rc,
            rs
        ));
        json.push(serde_json::json!({
            "cidr_entries": m.cidrs,
            "identities": m.identities,
            "established_ns": m.established_ns,
            "established_ratio": re,
            "new_flow_denied_ns": m.new_flow_ns,
            "new_flow_denied_ratio": rn,
            "new_flow_cidr_denied_ns": m.new_flow_cidr_ns,
            "new_flow_cidr_denied_ratio": rc,
            "new_flow_cidr_denied_ratio_same_identities": rs,
        }));
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("datapath.md"), &md)?;
    std::fs::write(
        dir.join("datapath.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "benchmark": "datapath per-packet cost",
            "repeat": repeat,
            "rounds": rounds,
            "results": json,
        }))?,
    )?;
    print!("{md}");
    Ok(())
}
