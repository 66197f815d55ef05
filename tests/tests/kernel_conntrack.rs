//! Kernel tests of connection state: a conntrack table far too small for the flows
//! through it (evictions are counted and reported, an evicted flow is decided by
//! policy again, nothing denied gets through), a pinned table of another size, and
//! ICMP errors, which pass when they quote a tracked flow and are decided by policy
//! as ICMP otherwise.
//!
//! Raw ICMP packets are sent and received by small helper processes forked from the
//! test and placed in a pod (its cgroup, then its network namespace) before they make
//! their system calls.
//!
//! Needs root; a missing privilege or tool is a failure, never a skip.

use anyhow::{Context, Result, bail, ensure};
use palisade_lab::harness::agent::{Agent, AgentOptions};
use palisade_lab::harness::dual_stack_lab::dual_stack_lab;
use palisade_lab::harness::manifests::{self, ManifestDir};
use palisade_lab::{Lab, Outcome, PodHandle, ProbeSpec, Proto};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const NODE: &str = "node-1";

/// Node, namespace `tenant` and every pod (label `app` = its name), plus `policy`.
fn write_manifests(dir: &ManifestDir, pods: &[&PodHandle], policy: &str) -> Result<()> {
    dir.write(
        "cluster.yaml",
        &manifests::dual_stack_cluster(NODE, "tenant", pods),
    )?;
    dir.write("policy.yaml", policy)
}

fn agent_options<'a>(lab: &'a Lab, dir: &'a ManifestDir, args: &'a [&'a str]) -> AgentOptions<'a> {
    AgentOptions {
        id: lab.id(),
        manifests: dir.path(),
        cgroup_root: lab.cgroup_root(),
        node_name: NODE,
        extra_args: args,
    }
}

fn v4(pod: &PodHandle) -> Ipv4Addr {
    pod.ipv4().expect("dual-stack pod")
}

/// The client may open TCP 80 to the server only; the server accepts TCP 80 from the
/// client only. Replies travel in directions neither policy isolates, so a flow whose
/// entry was evicted is admitted again by policy from either end.
const TWO_WAY_FENCE: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: client-out
  namespace: tenant
spec:
  podSelector:
    matchLabels:
      app: client
  policyTypes: [Egress]
  egress:
    - to:
        - podSelector:
            matchLabels:
              app: server
      ports:
        - protocol: TCP
          port: 80
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: server-in
  namespace: tenant
spec:
  podSelector:
    matchLabels:
      app: server
  policyTypes: [Ingress]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              app: client
      ports:
        - protocol: TCP
          port: 80
"#;

/// Live connections through the table: each has an entry at both ends, so 200 of
/// them need 400 entries of a 64-entry table.
const CONNECTIONS: usize = 200;
const TABLE: &str = "64";

#[test]
fn a_full_conntrack_table_evicts_counts_and_never_opens() -> Result<()> {
    let (lab, pods) = dual_stack_lab(
        "pl-ct-full",
        &[("client", 10), ("server", 20), ("denied", 30)],
    )?;
    let [client, server, denied] = <[PodHandle; 3]>::try_from(pods).expect("three pods");
    for pod in [&server, &denied] {
        lab.serve(pod, &[80, 81], &[])?;
    }
    let dir = ManifestDir::new(lab.id())?;
    write_manifests(&dir, &[&client, &server, &denied], TWO_WAY_FENCE)?;
    let args = ["--conntrack-max", TABLE];
    let mut agent = Agent::start(agent_options(&lab, &dir, &args))?;
    agent.wait_ready(READY_TIMEOUT)?;

    let server_ip = IpAddr::V4(v4(&server));
    let mut held = Vec::new();
    for _ in 0..CONNECTIONS {
        held.push(lab.hold(&client, server_ip, 80, PROBE_TIMEOUT)?);
    }
    for (i, h) in held.iter().enumerate() {
        let first = h.next_result(Duration::from_secs(20))?;
        ensure!(first.allowed(), "connection {i} never worked: {first:?}");
    }

    // Under constant eviction, nothing denied passes ...
    let denied_cases = [
        ProbeSpec::new(&client, IpAddr::V4(v4(&denied)), Proto::Tcp, 80),
        ProbeSpec::new(&client, server_ip, Proto::Tcp, 81),
        ProbeSpec::new(&denied, server_ip, Proto::Tcp, 80),
        ProbeSpec::new(&client, server.ips()[1], Proto::Tcp, 81),
    ];
    for round in 0..3 {
        let specs: Vec<ProbeSpec> = denied_cases
            .iter()
            .map(|s| s.clone().with_timeout(PROBE_TIMEOUT))
            .collect();
        for (spec, result) in specs.iter().zip(lab.probe_all(&specs)?) {
            ensure!(
                !result.allowed(),
                "round {round}: {spec} passed under conntrack pressure: {result:?}"
            );
        }
    }
    // ... and every allowed connection keeps working: its evicted entries are
    // re-admitted by policy, never passed blindly.
    for h in &held {
        h.discard_reported();
    }
    for (i, h) in held.iter().enumerate() {
        let r = h.next_result(Duration::from_secs(10))?;
        ensure!(r.allowed(), "connection {i} broke under eviction: {r:?}");
    }

    // The agent reports the table full and the evictions. (The held connections'
    // packets pass through their sockets' flow cache, which never touches conntrack:
    // their evicted entries are found missing only once that cache is gone, after the
    // restart below.)
    agent.wait_for(Duration::from_secs(15), "reporting evictions", |a| {
        let ct = &a.status()?["conntrack"];
        Ok(ct["evicted"].as_u64() > Some(0))
    })?;
    let status = agent.status()?;
    let ct = &status["conntrack"];
    ensure!(
        ct["max_entries"] == 64 && ct["requested_max_entries"] == 64,
        "table size: {ct}"
    );
    ensure!(
        ct["entries"].as_u64() <= Some(64),
        "more entries than the table holds: {ct}"
    );
    ensure!(
        status["packets"]["conntrack_created"].as_u64() > Some(2 * CONNECTIONS as u64),
        "kernel counters: {}",
        status["packets"]
    );

    // A restart asking for another size keeps the pinned table (and its flows).
    agent.kill()?;
    let bigger = ["--conntrack-max", "128"];
    agent.restart(agent_options(&lab, &dir, &bigger))?;
    agent.wait_ready(READY_TIMEOUT)?;
    let ct = agent.status()?["conntrack"].clone();
    ensure!(
        ct["max_entries"] == 64 && ct["requested_max_entries"] == 128,
        "after a restart with --conntrack-max 128: {ct}"
    );
    ensure!(
        agent.log().contains("pinned conntrack table"),
        "no warning about the kept table:\n{}",
        agent.log_tail(30)
    );
    for h in &held {
        h.discard_reported();
    }
    for (i, h) in held.iter().enumerate() {
        let r = h.next_result(Duration::from_secs(10))?;
        ensure!(
            r.allowed(),
            "connection {i} broke across the restart: {r:?}"
        );
    }
    // The restarted programs start with empty socket flow caches: the held
    // connections' next packets went to conntrack, found their evicted entries
    // missing, and were admitted again by policy (counted), not passed blindly.
    agent.wait_for(
        Duration::from_secs(15),
        "counting established misses",
        |a| Ok(a.status()?["packets"]["conntrack_miss_established"].as_u64() > Some(0)),
    )?;
    Ok(())
}

/// The client may send UDP 53-54 to the server and accepts nothing; the server
/// accepts UDP 53-54 from the client and may send nothing (so no ICMP either).
const ICMP_FENCE: &str = r#"
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
          endPort: 54
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: server-fence
  namespace: tenant
spec:
  podSelector:
    matchLabels:
      app: server
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              app: client
      ports:
        - protocol: UDP
          port: 53
          endPort: 54
"#;

#[test]
fn icmp_errors_pass_for_tracked_flows_and_policy_decides_the_rest() -> Result<()> {
    let (lab, pods) = dual_stack_lab(
        "pl-ct-icmp",
        &[("client", 10), ("server", 20), ("other", 30)],
    )?;
    let [client, server, other] = <[PodHandle; 3]>::try_from(pods).expect("three pods");
    lab.serve(&server, &[], &[53])?;
    let dir = ManifestDir::new(lab.id())?;
    write_manifests(&dir, &[&client, &server, &other], ICMP_FENCE)?;
    let mut agent = Agent::start(agent_options(&lab, &dir, &[]))?;
    agent.wait_ready(READY_TIMEOUT)?;
    let (c, s) = (v4(&client), v4(&server));

    // An allowed datagram to a closed port: the kernel's port unreachable reaches
    // the sender (ECONNREFUSED), over IPv4 and IPv6.
    for to in server.ips() {
        let specs = [
            ProbeSpec::new(&client, to, Proto::Udp, 53).with_timeout(PROBE_TIMEOUT),
            ProbeSpec::new(&client, to, Proto::Udp, 54).with_timeout(PROBE_TIMEOUT),
        ];
        let results = lab.probe_all(&specs)?;
        ensure!(results[0].allowed(), "{}: {:?}", specs[0], results[0]);
        ensure!(
            results[1].outcome == Outcome::Refused,
            "{}: expected ECONNREFUSED, got {:?}",
            specs[1],
            results[1]
        );
    }

    // Arriving: the client (ingress isolated, no ICMP allowed) watches with a raw
    // ICMP socket after sending from port 40005 to the server. Another pod sends two
    // port-unreachable errors: one about that flow (passes: conntrack knows it), one
    // about a flow from port 40003 that never existed (dropped by policy).
    let mut watcher = spawn_in(&client, icmp_watch(c, 40005, s, 53, [40005, 40003]))?;
    watcher.wait_ready()?;
    let mut sender = spawn_in(
        &other,
        icmp_send(
            c,
            vec![
                port_unreachable(c, 40005, s, 53),
                port_unreachable(c, 40003, s, 53),
            ],
        ),
    )?;
    let sent = sender.exit_code()?;
    ensure!(
        sent == 0b11,
        "the sender (not isolated) could not send: bits {sent:#b}"
    );
    let got = watcher.exit_code()?;
    ensure!(
        got == 0b01,
        "arriving errors: expected only the one about the tracked flow (bits 01), got {got:#b}"
    );

    // Leaving: the server (egress isolated, nothing allowed) answers a datagram the
    // client sent from port 40006 with an error about it (passes), and sends one about
    // a flow from port 40007 that never existed (refused: EPERM).
    let mut exchange = spawn_in(&client, udp_exchange(40006, s, 53))?;
    ensure!(
        exchange.exit_code()? == 0,
        "the client's datagram to the server got no echo"
    );
    let mut sender = spawn_in(
        &server,
        icmp_send(
            c,
            vec![
                port_unreachable(c, 40006, s, 53),
                port_unreachable(c, 40007, s, 53),
            ],
        ),
    )?;
    let sent = sender.exit_code()?;
    ensure!(
        sent == 0b01,
        "leaving errors: expected only the one about the tracked flow sent (bits 01), got {sent:#b}"
    );
    // Both passes were counted (the agent refreshes its counters at each resync).
    agent.wait_for(Duration::from_secs(10), "counting related ICMP", |a| {
        Ok(a.status()?["packets"]["allowed_related_icmp"].as_u64() >= Some(2))
    })?;
    Ok(())
}

// ---- helper processes -------------------------------------------------------------

/// A job a helper process runs after joining its pod: only async-signal-safe system
/// calls on memory prepared before the fork. Its return value is the exit code.
type Job = Box<dyn FnMut() -> i32 + Send + Sync>;

/// A helper process in a pod, until it exits.
struct Helper {
    pid: libc::pid_t,
    /// Read end of the pipe on the helper's stdout.
    ready: File,
    reaped: bool,
}

/// Forks a process that moves into `pod`'s container cgroup and network namespace,
/// runs `job` and exits with its result (it never execs). Its stdout is a pipe the
/// helper may signal readiness on.
fn spawn_in(pod: &PodHandle, mut job: Job) -> Result<Helper> {
    let procs_path = pod.container_cgroup_dir().join("cgroup.procs");
    let procs = OpenOptions::new()
        .write(true)
        .open(&procs_path)
        .with_context(|| format!("opening {}", procs_path.display()))?;
    let netns_path = format!("/run/netns/{}", pod.netns());
    let netns = File::open(&netns_path).with_context(|| format!("opening {netns_path}"))?;
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe2: {}", std::io::Error::last_os_error());
    }
    // SAFETY: both fds are fresh and owned here.
    let (ready, write_end) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    let (procs_fd, netns_fd, write_fd) =
        (procs.as_raw_fd(), netns.as_raw_fd(), write_end.as_raw_fd());
    // SAFETY: after fork the child only makes async-signal-safe system calls (dup2,
    // write, setns, socket calls, _exit) on fds and memory that exist before the
    // fork, and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            if libc::dup2(write_fd, 1) != 1 {
                libc::_exit(102);
            }
            if libc::write(procs_fd, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(100);
            }
            if libc::setns(netns_fd, libc::CLONE_NEWNET) != 0 {
                libc::_exit(101);
            }
            libc::_exit(job());
        }
    }
    drop((procs, netns, write_end));
    Ok(Helper {
        pid,
        ready,
        reaped: false,
    })
}

impl Helper {
    /// Waits for the byte the helper writes once its sockets are set up.
    fn wait_ready(&mut self) -> Result<()> {
        let mut byte = [0u8; 1];
        if self.ready.read(&mut byte)? != 1 {
            let code = self.exit_code();
            bail!("helper ended before it was ready: {code:?}");
        }
        Ok(())
    }

    fn exit_code(&mut self) -> Result<i32> {
        let mut status = 0;
        // SAFETY: waits for our own child.
        if unsafe { libc::waitpid(self.pid, &mut status, 0) } != self.pid {
            bail!("waitpid: {}", std::io::Error::last_os_error());
        }
        self.reaped = true;
        if !libc::WIFEXITED(status) {
            bail!("helper did not exit normally (status {status:#x})");
        }
        match libc::WEXITSTATUS(status) {
            code if code < 100 => Ok(code),
            100 => bail!("helper could not join its pod's cgroup"),
            101 => bail!("helper could not join its pod's network namespace"),
            code => bail!("helper failed ({code})"),
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: our own child, not reaped yet, so the pid is still ours.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

fn sockaddr(addr: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr.octets()),
        },
        sin_zero: [0; 8],
    }
}

const SOCKADDR_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

/// Sets a receive timeout on `fd`.
///
/// # Safety
/// `fd` must be a socket.
unsafe fn receive_timeout(fd: i32, ms: i64) {
    let tv = libc::timeval {
        tv_sec: ms / 1000,
        tv_usec: (ms % 1000) * 1000,
    };
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
}

/// Sends one datagram from `from_port` to `to:port` and waits for the echo: exit 0 if
/// it came, 2 if the send failed, 3 if no echo.
fn udp_exchange(from_port: u16, to: Ipv4Addr, port: u16) -> Job {
    let local = sockaddr(Ipv4Addr::UNSPECIFIED, from_port);
    let remote = sockaddr(to, port);
    Box::new(move || unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if fd < 0
            || libc::bind(
                fd,
                (&local as *const libc::sockaddr_in).cast(),
                SOCKADDR_LEN,
            ) != 0
        {
            return 4;
        }
        receive_timeout(fd, 2000);
        let payload = b"ping";
        if libc::sendto(
            fd,
            payload.as_ptr().cast(),
            payload.len(),
            0,
            (&remote as *const libc::sockaddr_in).cast(),
            SOCKADDR_LEN,
        ) < 0
        {
            return 2;
        }
        let mut buf = [0u8; 64];
        if libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) <= 0 {
            return 3;
        }
        0
    })
}

/// Sends each ICMP message (header and body) to `to` from a raw ICMP socket; exit
/// code bit i is set when message i was sent.
fn icmp_send(to: Ipv4Addr, messages: Vec<Vec<u8>>) -> Job {
    let remote = sockaddr(to, 0);
    Box::new(move || unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
        if fd < 0 {
            return 64;
        }
        let mut bits = 0;
        for (i, m) in messages.iter().enumerate() {
            let sent = libc::sendto(
                fd,
                m.as_ptr().cast(),
                m.len(),
                0,
                (&remote as *const libc::sockaddr_in).cast(),
                SOCKADDR_LEN,
            );
            if sent == m.len() as isize {
                bits |= 1 << i;
            }
        }
        bits
    })
}

/// Opens a raw ICMP socket, sends a datagram from `from_port` to `to:port` (so the
/// flow is tracked), signals readiness, then collects ICMP destination-unreachable
/// errors: exit code bit i is set when one quoting a UDP packet from `watch[i]`
/// arrived. It waits up to 5 s for the first such error and 1 s after each.
fn icmp_watch(local: Ipv4Addr, from_port: u16, to: Ipv4Addr, port: u16, watch: [u16; 2]) -> Job {
    let bind = sockaddr(local, from_port);
    let remote = sockaddr(to, port);
    Box::new(move || unsafe {
        let raw = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
        let udp = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if raw < 0
            || udp < 0
            || libc::bind(
                udp,
                (&bind as *const libc::sockaddr_in).cast(),
                SOCKADDR_LEN,
            ) != 0
        {
            return 64;
        }
        let payload = b"ping";
        if libc::sendto(
            udp,
            payload.as_ptr().cast(),
            payload.len(),
            0,
            (&remote as *const libc::sockaddr_in).cast(),
            SOCKADDR_LEN,
        ) < 0
        {
            return 65;
        }
        // The echo comes back before the test goes on (it waits for this byte).
        receive_timeout(udp, 2000);
        let mut echo = [0u8; 64];
        if libc::recv(udp, echo.as_mut_ptr().cast(), echo.len(), 0) <= 0 {
            return 66;
        }
        libc::write(1, b"r".as_ptr().cast(), 1);
        let mut bits = 0;
        let mut quiet_rounds = 0;
        receive_timeout(raw, 1000);
        let mut buf = [0u8; 1500];
        while quiet_rounds < if bits == 0 { 5 } else { 1 } {
            let n = libc::recv(raw, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n <= 0 {
                quiet_rounds += 1;
                continue;
            }
            let n = n as usize;
            // IP header, ICMP header (8), quoted IP header, quoted UDP ports.
            let ihl = ((buf[0] & 0x0f) as usize) * 4;
            if n < ihl + 8 + 20 || buf[ihl] != 3 {
                continue;
            }
            let quoted = ihl + 8;
            let qihl = ((buf[quoted] & 0x0f) as usize) * 4;
            if n < quoted + qihl + 4 || buf[quoted + 9] != 17 {
                continue;
            }
            let sport = u16::from_be_bytes([buf[quoted + qihl], buf[quoted + qihl + 1]]);
            for (i, w) in watch.iter().enumerate() {
                if sport == *w {
                    bits |= 1 << i;
                }
            }
        }
        bits
    })
}

/// An ICMP port unreachable about a UDP datagram `src:sport -> dst:dport`, as `dst`
/// would send it back to `src`: ICMP header, the datagram's IPv4 header and its UDP
/// header.
fn port_unreachable(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let checksum = internet_checksum(&ip);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&12u16.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&ip);
    icmp.extend_from_slice(&udp);
    let checksum = internet_checksum(&icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
    icmp
}

/// RFC 1071.
fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// [`TWO_WAY_FENCE`] with the server's egress isolated too: it may send nothing on
/// its own, so its replies pass only as part of a tracked flow.
fn replies_need_conntrack() -> String {
    let fence = TWO_WAY_FENCE.replace(
        "policyTypes: [Ingress]\n",
        "policyTypes: [Ingress, Egress]\n",
    );
    assert_ne!(fence, TWO_WAY_FENCE, "the server's policyTypes line moved");
    fence
}

/// An agent of a newer map ABI takes over from an older one side by side: it adopts
/// the older conntrack table (so a connection whose replies pass only as a tracked
/// flow survives), attaches beside the older programs, then detaches and removes the
/// older version's pins. The older agent is emulated by this agent's own pins moved
/// to the previous version's directory while no agent runs: its programs stay
/// attached through their links and keep reading their maps.
#[test]
fn an_agent_of_a_newer_abi_takes_over_established_flows() -> Result<()> {
    let (lab, pods) = dual_stack_lab(
        "pl-ct-upgrade",
        &[("client", 10), ("server", 20), ("denied", 30)],
    )?;
    let [client, server, denied] = <[PodHandle; 3]>::try_from(pods).expect("three pods");
    lab.serve(&server, &[80], &[])?;
    lab.serve(&denied, &[80], &[])?;
    let dir = ManifestDir::new(lab.id())?;
    write_manifests(
        &dir,
        &[&client, &server, &denied],
        &replies_need_conntrack(),
    )?;
    let mut agent = Agent::start(agent_options(&lab, &dir, &[]))?;
    agent.wait_ready(READY_TIMEOUT)?;
    let held = lab.hold(&client, IpAddr::V4(v4(&server)), 80, PROBE_TIMEOUT)?;
    let first = held.next_result(Duration::from_secs(20))?;
    ensure!(first.allowed(), "the connection never worked: {first:?}");

    agent.kill()?;
    let current = agent
        .pin_path
        .join(format!("v{}", palisade_abi::ABI_VERSION));
    let older_abi = palisade_abi::ABI_VERSION - 1;
    let older = agent.pin_path.join(format!("v{older_abi}"));
    std::fs::rename(&current, &older)
        .with_context(|| format!("moving {} to {}", current.display(), older.display()))?;
    held.discard_reported();
    let r = held.next_result(Duration::from_secs(10))?;
    ensure!(
        r.allowed(),
        "the older version's programs stopped enforcing: {r:?}"
    );

    agent.restart(agent_options(&lab, &dir, &[]))?;
    agent.wait_ready(READY_TIMEOUT)?;
    let log = agent.log();
    ensure!(
        log.contains("adopted conntrack entries of an agent of another ABI")
            && log.contains("retired the pins of an agent of another ABI"),
        "no takeover in the log:\n{}",
        agent.log_tail(30)
    );
    ensure!(!older.exists(), "the older version's pins are still there");
    ensure!(current.is_dir(), "no pins of the current version");
    let adopted = log
        .lines()
        .find(|l| l.contains("adopted conntrack entries of an agent of another ABI"))
        .and_then(|l| l.split("entries=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    ensure!(
        adopted >= 2,
        "the held connection's entries (one per end) were not adopted: {adopted}"
    );
    // The connection goes on. (Here the client speaks first after the takeover, which
    // the new programs would admit as a flow anyway; the adopted entries are what
    // carries a flow whose isolated side speaks first, e.g. a server push.)
    held.discard_reported();
    for round in 0..3 {
        let r = held.next_result(Duration::from_secs(10))?;
        ensure!(
            r.allowed(),
            "round trip {round} after the takeover failed: {r:?}"
        );
    }
    // Policy is whole under the new version: a denied flow is denied, a new allowed
    // one works.
    let denied_probe = lab.probe(
        &client,
        IpAddr::V4(v4(&denied)),
        Proto::Tcp,
        80,
        PROBE_TIMEOUT,
    )?;
    ensure!(
        !denied_probe.allowed(),
        "client -> denied passed after the takeover"
    );
    let allowed = lab.probe(
        &client,
        IpAddr::V4(v4(&server)),
        Proto::Tcp,
        80,
        PROBE_TIMEOUT,
    )?;
    ensure!(
        allowed.allowed(),
        "client -> server failed after the takeover: {allowed:?}"
    );
    drop(held);
    agent.kill()?;
    agent.cleanup_pins()?;
    lab.cleanup()
}
