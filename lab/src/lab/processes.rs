//! Running processes in a lab's pods and node: arbitrary netprobe commands,
//! echo servers and held connections.

use super::Lab;
use crate::held_connection::HeldConnection;
use crate::pidfd::Pidfd;
use crate::pod::PodHandle;
use crate::process::{Placement, kill_wait_reap, spawn_placed};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, ChildStderr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How long an echo server may take to print `ready`.
const SERVER_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a server's stderr is kept for error messages.
const STDERR_KEPT_BYTES: usize = 16 * 1024;

/// The line `palisade-netprobe serve` prints once it listens on every port.
const READY_LINE: &str = "ready";

impl Lab {
    /// Runs `palisade-netprobe <args>` in `pod`, in `cgroup` (the pod's
    /// container cgroup if `None`). Stdin is /dev/null; stdout and stderr are
    /// piped for the caller to read. The lab kills and reaps the process when
    /// it is dropped, if it is still running.
    pub fn spawn(&self, pod: &PodHandle, cgroup: Option<&Path>, args: &[&str]) -> Result<Child> {
        self.spawn_program(pod, cgroup, &self.netprobe, args)
    }

    /// Like [`spawn`](Self::spawn), for any program.
    pub fn spawn_program(
        &self,
        pod: &PodHandle,
        cgroup: Option<&Path>,
        program: &Path,
        args: &[&str],
    ) -> Result<Child> {
        let container = pod.container_cgroup_dir();
        let placement = Placement {
            netns: &pod.netns,
            cgroup: Some(cgroup.unwrap_or(&container)),
        };
        Ok(self.start(program, args, placement)?.0)
    }

    /// Runs `palisade-netprobe <args>` to completion in `pod` (in `cgroup`, default
    /// its container cgroup) and returns the one JSON line it printed. A line whose
    /// `result` or `outcome` is `error` is an error: the probe itself failed, which
    /// says nothing about policy.
    pub fn run_netprobe(
        &self,
        pod: &PodHandle,
        cgroup: Option<&Path>,
        args: &[&str],
    ) -> Result<serde_json::Value> {
        let child = self.spawn(pod, cgroup, args)?;
        let output = child
            .wait_with_output()
            .context("waiting for palisade-netprobe")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line: serde_json::Value = serde_json::from_str(stdout.trim()).with_context(|| {
            format!(
                "netprobe {args:?} in {} printed {stdout:?}, stderr {:?}",
                pod.name,
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        if line["result"] == "error" || line["outcome"] == "error" {
            bail!("netprobe {args:?} in {} failed: {line}", pod.name);
        }
        Ok(line)
    }

    /// Runs `palisade-netprobe <args>` in the node network namespace, staying
    /// in the caller's cgroup. Stdio and lifetime as for [`spawn`](Self::spawn).
    pub fn spawn_in_node(&self, args: &[&str]) -> Result<Child> {
        let placement = Placement {
            netns: &self.node_netns,
            cgroup: None,
        };
        Ok(self.start(&self.netprobe, args, placement)?.0)
    }

    /// Starts a netprobe echo server in the pod's container cgroup on the
    /// given ports (both IPv4 and IPv6) and waits until it listens on all of
    /// them. It runs until the lab is dropped; what it prints afterwards goes
    /// to this process's stderr.
    pub fn serve(&self, pod: &PodHandle, tcp_ports: &[u16], udp_ports: &[u16]) -> Result<()> {
        let container = pod.container_cgroup_dir();
        let placement = Placement {
            netns: &pod.netns,
            cgroup: Some(&container),
        };
        self.start_server(
            placement,
            &format!("pod {}", pod.name),
            None,
            tcp_ports,
            udp_ports,
        )
    }

    /// Like [`serve`](Self::serve), in the node network namespace (in the
    /// caller's cgroup): a "host network" server for pod-to-node tests.
    pub fn serve_in_node(&self, tcp_ports: &[u16], udp_ports: &[u16]) -> Result<()> {
        let placement = Placement {
            netns: &self.node_netns,
            cgroup: None,
        };
        self.start_server(placement, "the node", None, tcp_ports, udp_ports)
    }

    /// Like [`serve_in_node`](Self::serve_in_node), listening on `address`
    /// only: a "host network" server of one node address when the node
    /// namespace has several (see [`add_node_address`](Self::add_node_address)).
    /// Bound to one address, its UDP replies come from that address, which a
    /// client's connected socket requires.
    pub fn serve_in_node_at(
        &self,
        address: IpAddr,
        tcp_ports: &[u16],
        udp_ports: &[u16],
    ) -> Result<()> {
        let placement = Placement {
            netns: &self.node_netns,
            cgroup: None,
        };
        let location = format!("the node at {address}");
        self.start_server(placement, &location, Some(address), tcp_ports, udp_ports)
    }

    fn start_server(
        &self,
        placement: Placement<'_>,
        location: &str,
        bind: Option<IpAddr>,
        tcp_ports: &[u16],
        udp_ports: &[u16],
    ) -> Result<()> {
        let mut args = vec!["serve".to_owned()];
        for port in tcp_ports {
            args.extend(["--tcp".to_owned(), port.to_string()]);
        }
        for port in udp_ports {
            args.extend(["--udp".to_owned(), port.to_string()]);
        }
        if let Some(address) = bind {
            args.extend(["--bind".to_owned(), address.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let label = format!("netprobe server in {location} (tcp {tcp_ports:?}, udp {udp_ports:?})");
        let (mut child, pidfd) = self.start(&self.netprobe, &args, placement)?;
        let started = wait_until_ready(&mut child, &pidfd, &label);
        if started.is_err() {
            // wait_until_ready disposed of it.
            self.processes.forget(&pidfd);
        }
        started.with_context(|| format!("starting {label}"))
    }

    /// Opens a TCP connection from the pod's container cgroup to `to:port` and
    /// keeps it open, making a round trip on it every 100 ms (each with
    /// `timeout`) until the returned handle is dropped.
    pub fn hold(
        &self,
        from: &PodHandle,
        to: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> Result<HeldConnection> {
        self.hold_from_cgroup(from, &from.container_cgroup_dir(), to, port, timeout)
    }

    /// Like [`hold`](Self::hold), from `cgroup` (a pod's cgroup elsewhere, such as a
    /// kubelet-style tree) in the pod's network namespace.
    pub fn hold_from_cgroup(
        &self,
        from: &PodHandle,
        cgroup: &Path,
        to: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> Result<HeldConnection> {
        let (to_text, port_text) = (to.to_string(), port.to_string());
        let timeout_ms = timeout.as_millis().max(1).to_string();
        let args = [
            "hold",
            "--proto",
            "tcp",
            "--addr",
            &to_text,
            "--port",
            &port_text,
            "--timeout-ms",
            &timeout_ms,
        ];
        let placement = Placement {
            netns: &from.netns,
            cgroup: Some(cgroup),
        };
        let (child, pidfd) = self.start(&self.netprobe, &args, placement)?;
        let description = format!("held connection from pod {} to tcp {to}:{port}", from.name);
        HeldConnection::new(child, pidfd, description)
    }

    /// Starts a process at `placement` and tracks it.
    pub(super) fn start(
        &self,
        program: &Path,
        args: &[&str],
        placement: Placement<'_>,
    ) -> Result<(Child, Arc<Pidfd>)> {
        let mut child = spawn_placed(program, args, placement)?;
        let pidfd = self.processes.track(&mut child)?;
        Ok((child, pidfd))
    }
}

/// Waits for a just-started server's `ready` line. On success, leaves threads
/// forwarding its further output to our stderr; on failure, kills it and says
/// what it printed on stderr.
fn wait_until_ready(child: &mut Child, pidfd: &Pidfd, label: &str) -> Result<()> {
    let stdout = child.stdout.take().context("server stdout was not piped")?;
    let stderr = child.stderr.take().context("server stderr was not piped")?;
    let ready = Arc::new(AtomicBool::new(false));
    let stderr_reader = read_stderr(stderr, label.to_owned(), Arc::clone(&ready));
    let (first_line_tx, first_line_rx) = mpsc::channel();
    let stdout_label = label.to_owned();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = first_line_tx.send(lines.next());
        for line in lines.map_while(Result::ok) {
            eprintln!("[{stdout_label}] {line}");
        }
    });

    let failure = match first_line_rx.recv_timeout(SERVER_READY_TIMEOUT) {
        Ok(Some(Ok(line))) if line.trim() == READY_LINE => {
            ready.store(true, Ordering::Relaxed);
            return Ok(());
        }
        Ok(Some(Ok(line))) => format!("printed {line:?} instead of {READY_LINE:?}"),
        Ok(Some(Err(error))) => format!("reading its stdout failed: {error}"),
        Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            "exited before it was ready".to_owned()
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            format!("was not ready within {SERVER_READY_TIMEOUT:?}")
        }
    };
    kill_wait_reap(pidfd)?;
    let stderr_text = stderr_reader
        .join()
        .unwrap_or_else(|_| "<stderr reader panicked>".to_owned());
    bail!("{failure}; stderr: {}", stderr_text.trim());
}

/// Reads a server's stderr: keeps (the start of) it while the server is
/// starting, for the error message if it fails to, and copies it to ours,
/// prefixed with `label`, once `ready` is set. Returns what it kept when the
/// server closes stderr.
fn read_stderr(stderr: ChildStderr, label: String, ready: Arc<AtomicBool>) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut kept = String::new();
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|read| read > 0) {
            if ready.load(Ordering::Relaxed) {
                eprint!("[{label}] {line}");
            } else if kept.len() < STDERR_KEPT_BYTES {
                kept.push_str(&line);
            }
            line.clear();
        }
        kept
    })
}
