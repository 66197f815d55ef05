//! `palisade-agent standalone`: enforcement on one machine from a directory of
//! manifests, with no Kubernetes. Compiles with the same library the controller uses,
//! publishes to the kernel, reloads when a file changes (inotify, plus a periodic
//! resync that also picks up pod cgroups created later), serves health and status,
//! and, with `--events-addr`, the flow event stream.

pub(crate) mod conntrack;
mod reconcile;

use crate::datapath::{Datapath, KernelLogger};
use crate::events::hub::EventHub;
use crate::pins::{self, PinLayout};
use crate::status::{EventNames, EventsStatus, GenerationNames, PendingPod, Shared, Status};
use crate::{cgroupfs, events, health, preflight};
use anyhow::{Context, Result};
use conntrack::ConntrackWatch;
use notify::{RecursiveMode, Watcher};
use palisade_abi::{ABI_VERSION, NodeConfig, node_flags};
use reconcile::{PassReport, Reconciler};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Resync period while some pod waits for its cgroup.
const PENDING_RESYNC: Duration = Duration::from_millis(200);
/// Resync period otherwise (the safety net behind inotify).
const IDLE_RESYNC: Duration = Duration::from_secs(2);
/// How long to let a burst of file events settle before reading the directory.
const DEBOUNCE: Duration = Duration::from_millis(30);

pub struct Options {
    pub manifests: PathBuf,
    pub cgroup_root: PathBuf,
    pub health_addr: SocketAddr,
    pub pin_path: PathBuf,
    pub node_name: String,
    pub unknown_endpoint_verdict: u8,
    /// Flow events each endpoint may emit per second, and in a burst.
    pub events_per_second: u32,
    pub event_burst: u32,
    /// Report allowed new flows too, not only denied and audit-denied ones.
    pub allow_events: bool,
    /// Where to serve the flow event stream (`GET /events`); None: not served.
    pub events_addr: Option<SocketAddr>,
    /// Size of the conntrack table when this agent creates it.
    pub conntrack_max: u32,
}

pub async fn run(opts: Options) -> Result<()> {
    preflight::check()?;
    let mount = cgroupfs::cgroup2_mount()?;
    let root = cgroupfs::protected_root(&mount, &opts.cgroup_root)?;
    let root_id = cgroupfs::cgroup_id(&root)?;
    if !opts.manifests.is_dir() {
        anyhow::bail!(
            "--manifests {} is not a directory",
            opts.manifests.display()
        );
    }
    pins::ensure_bpffs(&opts.pin_path, true)?;
    let layout = PinLayout::new(&opts.pin_path);
    let mut datapath = Datapath::load_with_conntrack(&layout, opts.conntrack_max)?;
    let mut conntrack = match datapath.conntrack.take() {
        Some(map) => Some(ConntrackWatch::new(map, opts.conntrack_max)?),
        None => None,
    };

    let (lsm, socket_controls) = datapath.start_socket_controls();
    let shared = Shared::default();
    *shared.status.write().expect("status lock") = Status {
        socket_controls,
        node: opts.node_name.clone(),
        abi_version: ABI_VERSION,
        pin_path: opts.pin_path.display().to_string(),
        cgroup_root: root.display().to_string(),
        generation: datapath.tables.current_generation()?,
        lsm,
        events: EventsStatus {
            stream_addr: opts.events_addr.map(|a| a.to_string()),
            allow_events: opts.allow_events,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut health = tokio::spawn(health::serve(opts.health_addr, shared.clone()));
    let hub = Arc::new(EventHub::default());
    if let Some(ring) = datapath.events.take() {
        tokio::spawn(events::run(ring, shared.clone(), hub.clone()));
    }
    let mut stream = match opts.events_addr {
        Some(addr) => tokio::spawn(events::stream::serve(addr, hub.clone())),
        None => tokio::spawn(std::future::pending()),
    };
    if let Some(logger) = datapath.logger.take() {
        tokio::spawn(poll_kernel_logs(logger));
    }

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |_event| {
        let _ = tx.send(());
    })
    .context("starting the manifests watcher (inotify)")?;
    watcher
        .watch(&opts.manifests, RecursiveMode::Recursive)
        .with_context(|| format!("watching {}", opts.manifests.display()))?;

    let mut reconciler = Reconciler::new(
        opts.manifests.clone(),
        opts.node_name.clone(),
        mount,
        root.clone(),
        NodeConfig {
            unknown_endpoint_verdict: u32::from(opts.unknown_endpoint_verdict),
            flags: if opts.allow_events {
                node_flags::ALLOW_EVENTS
            } else {
                0
            },
            events_per_second: opts.events_per_second,
            event_burst: opts.event_burst,
        },
    );
    let mut attached = false;
    let mut warned_pending = BTreeSet::new();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let resync = match reconciler.pass(&mut datapath.tables) {
            Ok(report) => {
                if !attached {
                    // Tables first, programs second: the first packet sees policy.
                    for (direction, how) in datapath.attach(&layout, &root, root_id)? {
                        tracing::info!(direction, ?how, root = %root.display(), "program attached");
                    }
                    // This version's programs run: another version's may go now.
                    crate::datapath::upgrade::retire_other_versions(&layout)?;
                    attached = true;
                }
                let waiting = !report.pending.is_empty();
                record_success(&shared, report, &mut warned_pending);
                if waiting { PENDING_RESYNC } else { IDLE_RESYNC }
            }
            Err(failure) => {
                tracing::error!(error = %format!("{:#}", failure.error), "manifests not applied; the last applied state stays in force");
                let mut status = shared.status.write().expect("status lock");
                status.ready = false;
                status.last_error = Some(format!("{:#}", failure.error));
                status.observed_manifest_hash = failure.observed_hash;
                IDLE_RESYNC
            }
        };
        match datapath.counters() {
            Ok(packets) => {
                let sampled = conntrack.as_mut().and_then(|c| c.sample(&packets));
                let mut status = shared.status.write().expect("status lock");
                if let Some(ct) = sampled {
                    status.conntrack = ct;
                }
                record_events(&mut status, &packets, &hub);
                status.packets = packets;
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "reading packet counters"),
        }
        tokio::select! {
            Some(()) = rx.recv() => {
                tokio::time::sleep(DEBOUNCE).await;
                while rx.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(resync) => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            res = &mut health => {
                match res {
                    Ok(Err(e)) => return Err(e),
                    other => anyhow::bail!("health server stopped: {other:?}"),
                }
            }
            res = &mut stream => {
                match res {
                    Ok(Err(e)) => return Err(e),
                    other => anyhow::bail!("event stream server stopped: {other:?}"),
                }
            }
        }
    }
    tracing::info!(
        pin_path = %opts.pin_path.display(),
        "exiting; enforcement stays in place (pinned). `palisade-agent cleanup --pin-path {}` removes it",
        opts.pin_path.display()
    );
    Ok(())
}

fn record_success(shared: &Shared, report: PassReport, warned: &mut BTreeSet<PendingPod>) {
    for p in &report.pending {
        if warned.insert(p.clone()) {
            tracing::warn!(pod = %p.pod, reason = %p.reason, "pod not enforced yet");
        }
    }
    warned.retain(|p| report.pending.contains(p));
    let mut status = shared.status.write().expect("status lock");
    if let Some(stats) = report.published {
        tracing::info!(
            generation = stats.generation,
            written = stats.written,
            deleted = stats.deleted,
            manifest_hash = %report.applied_hash,
            endpoints = report.cgroup_ids.len(),
            "policy published"
        );
        status.generation = stats.generation;
        let mut names = shared.names.write().expect("names lock");
        names.generations.insert(
            stats.generation,
            Arc::new(GenerationNames {
                compiled: report.compiled.clone(),
                isolating: report.isolating.as_ref().clone(),
                socket_policies: report.socket_policies.as_ref().clone(),
                rules: BTreeMap::new(),
            }),
        );
        while names.generations.len() > 2 {
            let oldest = *names.generations.keys().next().expect("non-empty");
            names.generations.remove(&oldest);
        }
        *names = EventNames {
            pods_by_cgroup: report
                .cgroup_ids
                .iter()
                .map(|(pod, id)| (*id, pod.clone()))
                .collect(),
            pods_by_ip: report.pods_by_ip.as_ref().clone(),
            generations: std::mem::take(&mut names.generations),
        };
    }
    status.manifest_hash = Some(report.applied_hash.clone());
    status.observed_manifest_hash = Some(report.observed_hash.clone());
    status.ready = report.observed_hash == report.applied_hash;
    status.last_error = None;
    status.endpoints = report.cgroup_ids.len();
    status.pending = report.pending;
}

/// `/status.events` from the kernel counters and the stream's own.
fn record_events(status: &mut Status, packets: &BTreeMap<&'static str, u64>, hub: &EventHub) {
    let counter = |name: &str| packets.get(name).copied().unwrap_or(0);
    status.events = EventsStatus {
        received: hub.received(),
        ring_buffer_full: counter("event_dropped"),
        rate_limited: counter("event_rate_limited"),
        stream_lagged: hub.lagged(),
        subscribers: hub.subscribers(),
        ..std::mem::take(&mut status.events)
    };
}

async fn poll_kernel_logs(logger: KernelLogger) -> Result<()> {
    // SAFETY: the logger owns its ring buffer fd and the AsyncFd owns the logger.
    let mut fd = unsafe { tokio::io::unix::AsyncFd::register(logger)? };
    loop {
        let mut guard = fd.readable_mut().await?;
        guard.get_inner_mut().flush();
        guard.clear_ready();
    }
}
