//! `palisade-agent kubernetes`: the node agent of a cluster (the chart's DaemonSet).
//! Watches its NodePolicy, every ClusterTable shard, the pods bound to its node and
//! its Node; finds the pods' cgroups in the kubelet's hierarchy; publishes the node's
//! state to the kernel through the same table writer as standalone mode (inactive
//! slot, then one flip, and only from a complete set of inputs); then writes the
//! NodePolicy's `status.appliedGeneration`/`appliedHash` and each covered pod's
//! `palisade.dev/PolicyProgrammed` condition. Serves `/healthz`, `/readyz`, `/status`
//! and `/metrics`. See docs/agent.md.
//!
//! Pieces: `watch` (API watches), `pod_cgroups` (kubepods discovery and inotify),
//! `cluster_tables` and `plan` (the pure core: inputs -> desired kernel state),
//! `local_pods` (Pod JSON), `api_writes` (status and pod conditions), `metrics`.
//! This file is the driver that holds the inputs and runs the passes.

mod api_writes;
pub mod cluster_tables;
mod conditions;
pub mod local_pods;
mod metrics;
pub mod plan;
mod pod_cgroups;
mod watch;

use crate::datapath::{Datapath, KernelLogger};
use crate::desired::IpCacheTable;
use crate::enforcement_switch::{self, Switch};
use crate::events::hub::EventHub;
use crate::kubelet_cgroups::Driver;
use crate::pins::{self, PinLayout};
use crate::standalone::conntrack::ConntrackWatch;
use crate::status::{
    EnforcementStatus, EventsStatus, GenerationNames, KubernetesStatus, Shared, Status,
};
use crate::{cgroupfs, events, health, preflight};
use anyhow::{Context, Result, bail};
use cluster_tables::ClusterTables;
use local_pods::LocalPod;
use metrics::Metrics;
use palisade_abi::{ABI_VERSION, NodeConfig, capacity, map_names};
use palisade_crds::publication::{ClusterTableSpec, NodePolicyStatus};
use plan::{NodePolicyInput, PlanInputs};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use watch::{Source, WatchEvent};

/// Resync period while a pod waits for its cgroup, or a write must be retried.
const PENDING_RESYNC: Duration = Duration::from_millis(200);
/// How long to let a burst of API events settle before a pass.
const DEBOUNCE: Duration = Duration::from_millis(20);
/// The same for pod cgroup events: a new pod's cgroup should be in the map before
/// its first container starts, and the kubelet creates the container cgroups below it
/// right after (one more short pass if they arrive later).
const CGROUP_DEBOUNCE: Duration = Duration::from_millis(2);

pub struct Options {
    pub node_name: String,
    pub kubeconfig: Option<PathBuf>,
    /// The agent's own pod UID (`--pod-uid`): finds its own pod cgroup when
    /// /proc/self/cgroup cannot (a container's cgroup namespace).
    pub pod_uid: Option<String>,
    pub cgroup_root: PathBuf,
    pub pin_path: PathBuf,
    pub health_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub events_addr: Option<SocketAddr>,
    pub unknown_endpoint_verdict: u8,
    pub events_per_second: u32,
    pub event_burst: u32,
    pub conntrack_max: u32,
    /// Full resync period (cgroup rescan, counters) when nothing is pending.
    pub resync: Duration,
}

/// A kube client from `--kubeconfig`, else in-cluster or `KUBECONFIG` (kube's
/// inference).
async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading --kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("--kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no in-cluster service account and no KUBECONFIG: set --kubeconfig")?,
    };
    kube::Client::try_from(config).context("creating the Kubernetes client")
}

/// Refuses a `--pin-path` whose parent is not a bpffs: in a container a bpffs
/// mounted there would be private and its pins would die with the pod; the host's
/// `/sys/fs/bpf` must come in through a hostPath volume.
fn require_bpffs(pin_path: &Path) -> Result<()> {
    let parent = pin_path.parent().unwrap_or(pin_path);
    if !pins::is_bpffs(parent)? {
        bail!(
            "{} (the parent of --pin-path) is not a bpf filesystem: mount the host's \
             /sys/fs/bpf (a bpffs; `mount -t bpf bpf /sys/fs/bpf` on the host) into the \
             agent with a hostPath volume, so that pins outlive the agent's pod",
            parent.display()
        );
    }
    Ok(())
}

pub async fn run(opts: Options) -> Result<()> {
    preflight::check()?;
    pod_cgroups::require_cgroup2(&opts.cgroup_root)?;
    let mount = cgroupfs::cgroup2_mount()?;
    let root = cgroupfs::protected_root(&mount, &opts.cgroup_root)?;
    require_bpffs(&opts.pin_path)?;
    let client = client(opts.kubeconfig.as_deref()).await?;

    let layout = PinLayout::new(&opts.pin_path);
    let mut datapath = Datapath::load_with_conntrack(&layout, opts.conntrack_max)?;
    let conntrack = match datapath.conntrack.take() {
        Some(map) => Some(ConntrackWatch::new(map, opts.conntrack_max)?),
        None => None,
    };
    let (lsm, socket_controls) = datapath.start_socket_controls();
    let switch = Switch::open(&opts.pin_path)?;

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
            ..Default::default()
        },
        last_error: Some("waiting for the API server's lists".into()),
        kubernetes: Some(KubernetesStatus::default()),
        enforcement: Some(EnforcementStatus::default()),
        ..Default::default()
    };
    let metrics = Arc::new(Metrics::new());
    let mut health = tokio::spawn(health::serve(opts.health_addr, shared.clone()));
    let mut metrics_server = tokio::spawn(metrics::serve(opts.metrics_addr, metrics.clone()));
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

    let (watch_tx, mut watch_rx) = mpsc::unbounded_channel();
    for source in Source::ALL {
        tokio::spawn(watch::watch(
            client.clone(),
            opts.node_name.clone(),
            source,
            watch_tx.clone(),
        ));
    }
    let (cgroup_tx, mut cgroup_rx) = mpsc::unbounded_channel();
    let config = NodeConfig {
        unknown_endpoint_verdict: u32::from(opts.unknown_endpoint_verdict),
        flags: 0,
        events_per_second: opts.events_per_second,
        event_burst: opts.event_burst,
    };
    let mut agent = Agent {
        node: opts.node_name.clone(),
        client,
        root,
        mount,
        config,
        layout,
        datapath,
        switch,
        conntrack,
        shared,
        metrics,
        hub,
        cgroup_tx,
        inputs: Inputs::default(),
        kubepods: None,
        cgroup_watcher: None,
        pod_uid: opts.pod_uid.clone(),
        own_cgroup: None,
        own_entry_published: false,
        cgroups: BTreeMap::new(),
        applied: None,
        assembled: None,
        attached: false,
        ready: false,
        patched: BTreeMap::new(),
        last_apply_seconds: None,
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut trimmed_version = 0;
    loop {
        let outcome = agent.pass().await;
        agent.report(&outcome);
        if agent.inputs.tables_version != trimmed_version {
            // The cluster tables arrive as large JSON documents: once parsed and
            // assembled, give the freed heap back to the system (glibc keeps it in
            // its arenas otherwise), so the agent's RSS is what it holds.
            // SAFETY: malloc_trim has no preconditions.
            unsafe { libc::malloc_trim(0) };
            trimmed_version = agent.inputs.tables_version;
        }
        let wait = if outcome.retry_soon {
            PENDING_RESYNC
        } else {
            opts.resync
        };
        tokio::select! {
            Some(event) = watch_rx.recv() => {
                agent.inputs.handle(event);
                tokio::time::sleep(DEBOUNCE).await;
                while let Ok(event) = watch_rx.try_recv() {
                    agent.inputs.handle(event);
                }
            }
            Some(()) = cgroup_rx.recv() => {
                tokio::time::sleep(CGROUP_DEBOUNCE).await;
                while cgroup_rx.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            res = &mut health => return server_stopped("health", res),
            res = &mut metrics_server => return server_stopped("metrics", res),
            res = &mut stream => return server_stopped("event stream", res),
        }
    }
    tracing::info!(
        pin_path = %opts.pin_path.display(),
        "exiting; enforcement stays in place (pinned). `palisade-agent cleanup --pin-path {}` removes it",
        opts.pin_path.display()
    );
    Ok(())
}

fn server_stopped(
    what: &str,
    res: std::result::Result<Result<()>, tokio::task::JoinError>,
) -> Result<()> {
    match res {
        Ok(Err(e)) => Err(e),
        other => bail!("{what} server stopped: {other:?}"),
    }
}

/// What the watches have delivered.
#[derive(Default)]
struct Inputs {
    node_policy: Option<NodePolicyInput>,
    /// The NodePolicy's status as last seen (what the API says was applied).
    node_policy_status: NodePolicyStatus,
    tables: BTreeMap<String, cluster_tables::ParsedShard>,
    /// Bumped on every change of `tables` (the assembled tables are cached by it).
    tables_version: u64,
    pods: BTreeMap<String, LocalPod>,
    node_labels: Value,
    listed: BTreeSet<Source>,
    /// Sources whose watch currently fails, with the error.
    failing: BTreeMap<Source, String>,
    /// Objects that did not parse (kept out; the previous version stays).
    rejected: BTreeMap<String, String>,
    /// Lists in progress, parsed as their objects arrive; they replace the
    /// source's state when complete.
    relisting: BTreeMap<Source, Inputs>,
}

impl Inputs {
    fn handle(&mut self, event: WatchEvent) {
        match event {
            WatchEvent::Failed(source, error) => {
                self.failing.insert(source, error);
            }
            WatchEvent::Relisting(source) => {
                self.relisting.insert(source, Inputs::default());
            }
            WatchEvent::ListItem(source, object) => {
                self.relisting
                    .entry(source)
                    .or_default()
                    .upsert(source, object);
            }
            WatchEvent::Listed(source) => {
                self.failing.remove(&source);
                self.listed.insert(source);
                let list = self.relisting.remove(&source).unwrap_or_default();
                match source {
                    Source::NodePolicy => {
                        self.node_policy = list.node_policy;
                        self.node_policy_status = list.node_policy_status;
                    }
                    Source::ClusterTables => {
                        self.tables = list.tables;
                        self.tables_version += 1;
                    }
                    Source::Pods => self.pods = list.pods,
                    Source::Node => self.node_labels = list.node_labels,
                }
                let prefix = format!("{}/", source.name());
                self.rejected.retain(|key, _| !key.starts_with(&prefix));
                self.rejected.extend(list.rejected);
            }
            WatchEvent::Upsert(source, object) => {
                self.failing.remove(&source);
                self.upsert(source, object);
            }
            WatchEvent::Delete(source, object) => {
                self.failing.remove(&source);
                let name = object["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                match source {
                    // A deleted NodePolicy: keep enforcing what was applied.
                    Source::NodePolicy => self.node_policy = None,
                    Source::ClusterTables => {
                        self.tables.remove(&name);
                        self.tables_version += 1;
                    }
                    Source::Pods => {
                        if let Some(uid) = object["metadata"]["uid"].as_str() {
                            self.pods.remove(uid);
                        }
                    }
                    Source::Node => self.node_labels = Value::Null,
                }
            }
        }
    }

    fn upsert(&mut self, source: Source, mut object: Value) {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let key = format!("{}/{name}", source.name());
        let rejected = match source {
            Source::NodePolicy => match plan::parse_node_policy(&object["spec"]) {
                Ok(policy) => {
                    self.node_policy = Some(policy);
                    self.node_policy_status =
                        serde_json::from_value(object["status"].clone()).unwrap_or_default();
                    None
                }
                Err(e) => Some(format!("spec: {e}")),
            },
            Source::ClusterTables => {
                match serde_json::from_value::<ClusterTableSpec>(object["spec"].take()) {
                    Ok(spec) => match cluster_tables::parse_shard(&name, spec) {
                        Ok(shard) => {
                            self.tables.insert(name, shard);
                            self.tables_version += 1;
                            None
                        }
                        Err(e) => Some(e.to_string()),
                    },
                    Err(e) => Some(format!("spec: {e}")),
                }
            }
            Source::Pods => match local_pods::parse(&object) {
                Some(pod) => {
                    self.pods.insert(pod.uid.clone(), pod);
                    None
                }
                None => Some("metadata.uid or metadata.name missing".into()),
            },
            Source::Node => {
                self.node_labels = object["metadata"]["labels"].clone();
                None
            }
        };
        match rejected {
            Some(error) => {
                tracing::error!(object = %key, %error, "object not used; the previous version stays");
                self.rejected.insert(key, error);
            }
            None => {
                self.rejected.remove(&key);
            }
        }
    }
}

/// What one pass saw.
#[derive(Default)]
struct PassOutcome {
    /// Why the received state is not (fully) applied, if it is not.
    waiting_for: Option<String>,
    /// Something is pending or a write failed: pass again soon.
    retry_soon: bool,
    pending: Vec<crate::status::PendingPod>,
    endpoints: usize,
    api_error: Option<String>,
}

struct Agent {
    node: String,
    client: kube::Client,
    /// `--cgroup-root`, canonical.
    root: PathBuf,
    mount: PathBuf,
    config: NodeConfig,
    layout: PinLayout,
    datapath: Datapath,
    switch: Switch,
    conntrack: Option<ConntrackWatch>,
    shared: Shared,
    metrics: Arc<Metrics>,
    hub: Arc<EventHub>,
    cgroup_tx: mpsc::UnboundedSender<()>,
    inputs: Inputs,
    kubepods: Option<(PathBuf, Driver)>,
    cgroup_watcher: Option<notify::RecommendedWatcher>,
    /// `--pod-uid`: this agent's own pod.
    pod_uid: Option<String>,
    /// The agent's own cgroup (its pod's, by `--pod-uid`, else from
    /// /proc/self/cgroup when that lies under kubepods): host traffic.
    own_cgroup: Option<u64>,
    /// Whether the own cgroup's entry was entered in the tables found at start.
    own_entry_published: bool,
    /// Pod UID -> cgroup id, as last scanned.
    cgroups: BTreeMap<String, u64>,
    /// The NodePolicy (generation, hash) and tables whose state the kernel holds.
    applied: Option<Applied>,
    assembled: Option<Assembled>,
    attached: bool,
    ready: bool,
    /// Pods whose condition this agent wrote, with the (status, reason) written,
    /// until the watch shows it.
    patched: BTreeMap<String, (bool, &'static str)>,
    last_apply_seconds: Option<f64>,
}

/// The cluster tables assembled from the shards of one `Inputs::tables_version`,
/// and the node's ip cache made from them.
struct Assembled {
    version: u64,
    tables: std::result::Result<Arc<ClusterTables>, String>,
    ipcache: Option<(Vec<std::net::IpAddr>, Arc<IpCacheTable>)>,
}

struct Applied {
    generation: i64,
    hash: String,
    desired: crate::desired::DesiredState,
}

impl Agent {
    async fn pass(&mut self) -> PassOutcome {
        let mut out = PassOutcome::default();
        if !self.inputs.failing.is_empty() {
            // A watcher that resumes after an outage sends nothing until an object
            // changes: ask the server directly whether it is back.
            out.retry_soon = true;
            let answer =
                tokio::time::timeout(Duration::from_secs(2), self.client.apiserver_version()).await;
            if matches!(answer, Ok(Ok(_))) {
                tracing::info!("the API server answers again");
                self.inputs.failing.clear();
            }
        }
        self.follow_node_label();
        if self.kubepods.is_none() {
            self.find_kubepods();
        }
        let Some((kubepods, driver)) = self.kubepods.clone() else {
            out.waiting_for = Some(format!(
                "no kubepods cgroup (kubepods.slice or kubepods) under {}",
                self.root.display()
            ));
            out.retry_soon = true;
            return out;
        };
        match pod_cgroups::scan(&kubepods, driver) {
            Ok(cgroups) => self.cgroups = cgroups,
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "scanning pod cgroups"),
        }
        if let Some(uid) = &self.pod_uid {
            // The agent's own pod is exempt before the programs first attach: with
            // `--unknown-endpoint deny` its own API traffic would otherwise be denied.
            self.own_cgroup = self.cgroups.get(uid).copied();
            if self.own_cgroup.is_none() && !self.attached {
                out.waiting_for = Some(format!(
                    "the agent's own pod cgroup (--pod-uid {uid}) under {}",
                    kubepods.display()
                ));
                out.retry_soon = true;
                return out;
            }
        }
        if !self.attached
            && !self.own_entry_published
            && let Some(own) = self.own_cgroup
            && let Err(e) = self.publish_own_entry(own)
        {
            out.waiting_for = Some(format!("entering the agent's own cgroup: {e:#}"));
            out.retry_soon = true;
            return out;
        }
        if let Some(missing) = Source::ALL.iter().find(|s| !self.inputs.listed.contains(s)) {
            out.waiting_for = Some(format!("the first list of {}s", missing.name()));
            return out;
        }
        let Some(policy) = self.inputs.node_policy.clone() else {
            out.waiting_for = Some(format!("NodePolicy {} (not published yet)", self.node));
            return out;
        };
        let tables = match self.cluster_tables() {
            Ok(tables) => tables,
            Err(incomplete) => {
                out.waiting_for = Some(incomplete);
                return out;
            }
        };
        let ipcache = self.ipcache(&tables, &policy.content.host_addresses);
        let plan = plan::plan(&PlanInputs {
            node: &self.node,
            node_policy: &policy,
            tables: &tables,
            pods: &self.inputs.pods,
            cgroups: &self.cgroups,
            config: self.config,
            own_cgroup: self.own_cgroup,
            ipcache,
        });
        out.retry_soon |= !plan.pending.is_empty();
        out.pending = plan.pending.clone();
        out.endpoints = plan.endpoints;
        let unchanged = self
            .applied
            .as_ref()
            .is_some_and(|a| a.desired == plan.desired);
        let kernel_error = if unchanged {
            None
        } else {
            self.publish(&plan, &policy, &kubepods).err()
        };
        if let Some(error) = &kernel_error {
            out.waiting_for = Some(error.clone());
            out.retry_soon = true;
        } else {
            self.applied = Some(Applied {
                generation: policy.generation,
                hash: policy.content_hash.clone(),
                desired: plan.desired.clone(),
            });
            self.ready = true;
            self.metrics.applied_generation.set(policy.generation);
        }

        // The writes back: NodePolicy status, then pod conditions.
        let switch = self.switch.state().unwrap_or_default();
        let now = api_writes::now_rfc3339();
        let wanted = [
            (
                conditions::APPLIED,
                conditions::applied_condition(&plan, kernel_error.as_deref()),
            ),
            (
                conditions::ENFORCING,
                conditions::enforcing_condition(switch.command_off, switch.node_label_off),
            ),
        ];
        let applied = self
            .applied
            .as_ref()
            .map(|a| (a.generation, a.hash.as_str()));
        if let Some(status) = conditions::node_policy_status(
            &self.inputs.node_policy_status,
            applied,
            policy.generation,
            &wanted,
            &now,
        ) {
            match api_writes::write_node_policy_status(&self.client, &self.node, &status).await {
                Ok(()) => self.inputs.node_policy_status = status,
                Err(e) => {
                    out.api_error = Some(format!("{e:#}"));
                    out.retry_soon = true;
                }
            }
        }
        if kernel_error.is_some() {
            return out;
        }
        if let Some(applied) = &self.applied
            && let Err(e) = self.datapath.tables.sync_inactive(&applied.desired)
        {
            // Harmless: the next publication writes that slot in full.
            tracing::warn!(error = %format!("{e:#}"), "bringing the inactive slot up to date");
        }
        // What was patched stays remembered until the watch shows it.
        self.patched.retain(|uid, sent| {
            self.inputs.pods.get(uid).is_some_and(|p| {
                p.condition
                    .as_ref()
                    .is_none_or(|seen| (seen.status, seen.reason.as_str()) != *sent)
            })
        });
        for (uid, want) in conditions::pod_conditions(&plan, &self.inputs.pods, switch.enforcing())
        {
            if self.patched.get(&uid) == Some(&want.key()) {
                continue;
            }
            let pod = &self.inputs.pods[&uid];
            let body = api_writes::programmed_condition(&now, &want);
            match api_writes::write_pod_condition(
                &self.client,
                &pod.pod.namespace,
                &pod.pod.name,
                &body,
            )
            .await
            {
                Ok(()) => {
                    tracing::info!(pod = %pod.pod, status = want.status, reason = want.reason, "pod condition PolicyProgrammed written");
                    self.patched.insert(uid, want.key());
                }
                Err(e) => {
                    out.api_error = Some(format!("{e:#}"));
                    out.retry_soon = true;
                }
            }
        }
        out
    }

    /// Writes the plan's state to the kernel (and attaches the programs the first
    /// time); the error says what failed.
    fn publish(
        &mut self,
        plan: &plan::Plan,
        policy: &NodePolicyInput,
        kubepods: &Path,
    ) -> std::result::Result<(), String> {
        let started = Instant::now();
        let stats = self
            .datapath
            .tables
            .apply(&plan.desired)
            .map_err(|e| format!("publishing to the kernel: {e:#}"))?;
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.apply_seconds.observe(seconds);
        self.metrics.applies.inc();
        self.last_apply_seconds = Some(seconds);
        tracing::info!(
            generation = stats.generation,
            node_policy_generation = policy.generation,
            written = stats.written,
            deleted = stats.deleted,
            endpoints = plan.endpoints,
            seconds,
            "policy published"
        );
        self.record_names(plan, stats.generation, &policy.content.rules);
        if !self.attached {
            // Tables first, programs second: the first packet sees policy.
            self.attach(kubepods)
                .map_err(|e| format!("attaching the programs: {e:#}"))?;
            self.attached = true;
        }
        Ok(())
    }

    /// The assembled cluster tables, reassembled only when a shard changed.
    fn cluster_tables(&mut self) -> std::result::Result<Arc<ClusterTables>, String> {
        let version = self.inputs.tables_version;
        if self.assembled.as_ref().is_none_or(|a| a.version != version) {
            self.assembled = Some(Assembled {
                version,
                tables: cluster_tables::assemble(&self.inputs.tables)
                    .map(Arc::new)
                    .map_err(|e| e.to_string()),
                ipcache: None,
            });
        }
        self.assembled.as_ref().expect("set above").tables.clone()
    }

    /// The node's ip cache for `tables` (the assembled ones) and this node's
    /// addresses, made again only when either changed.
    fn ipcache(&mut self, tables: &ClusterTables, hosts: &[std::net::IpAddr]) -> Arc<IpCacheTable> {
        let assembled = self.assembled.as_mut().expect("tables assembled first");
        match &assembled.ipcache {
            Some((cached_hosts, table)) if cached_hosts == hosts => table.clone(),
            _ => {
                let table = Arc::new(crate::desired::ipcache_table(&tables.ipcache, hosts));
                assembled.ipcache = Some((hosts.to_vec(), table.clone()));
                table
            }
        }
    }

    /// Sets or clears the label's switch bit to match the Node's label (never the
    /// command's bit).
    fn follow_node_label(&mut self) {
        if !self.inputs.listed.contains(&Source::Node) {
            return;
        }
        let wanted = enforcement_switch::label_says_off(&self.inputs.node_labels);
        match self.switch.state() {
            Ok(state) if state.node_label_off != wanted => {
                match self.switch.set_by_node_label(wanted) {
                    Ok(_) => tracing::warn!(
                        label = enforcement_switch::NODE_LABEL,
                        off = wanted,
                        "enforcement switch set from the Node's label"
                    ),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "setting the enforcement switch")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %format!("{e:#}"), "reading the enforcement switch"),
        }
    }

    fn find_kubepods(&mut self) {
        let Some((dir, driver)) = pod_cgroups::locate(&self.root) else {
            return;
        };
        tracing::info!(kubepods = %dir.display(), ?driver, "kubelet pod cgroups found");
        match pod_cgroups::watch(&dir, self.cgroup_tx.clone()) {
            Ok(watcher) => self.cgroup_watcher = Some(watcher),
            Err(e) => tracing::warn!(
                error = %format!("{e:#}"),
                "no inotify on the pod cgroups: new pods are found by the periodic resync only"
            ),
        }
        if self.pod_uid.is_none() {
            self.own_cgroup = cgroupfs::own_cgroup(&self.mount)
                .ok()
                .filter(|own| own.starts_with(&dir))
                .and_then(|own| cgroupfs::cgroup_id(&own).ok());
        }
        self.kubepods = Some((dir, driver));
    }

    /// Before anything else is known: the programs a previous agent left attached
    /// enforce its tables, where this agent's (new) pod cgroup is unknown. Enter it as
    /// host traffic in this ABI's live tables (one flip) and in any other ABI's, so
    /// the agent's own API traffic passes while it rebuilds the state.
    fn publish_own_entry(&mut self, own: u64) -> Result<()> {
        if self.datapath.tables.publish_host_entry(own)? {
            tracing::info!(
                cgroup_id = own,
                "the agent's own pod cgroup entered in the pinned tables (host traffic)"
            );
        }
        crate::datapath::upgrade::host_entry_in_other_versions(&self.layout, own)?;
        self.own_entry_published = true;
        Ok(())
    }

    fn attach(&mut self, kubepods: &Path) -> Result<()> {
        let id = cgroupfs::cgroup_id(kubepods)?;
        for (hook, how) in self.datapath.attach(&self.layout, kubepods, id)? {
            tracing::info!(hook, ?how, root = %kubepods.display(), "program attached");
        }
        // This version's programs run: another version's may go now.
        crate::datapath::upgrade::retire_other_versions(&self.layout)?;
        Ok(())
    }

    /// Names for flow events of this generation.
    fn record_names(
        &self,
        plan: &plan::Plan,
        generation: u32,
        rules: &BTreeMap<u32, palisade_policy::compile::tables::RuleInfo>,
    ) {
        let mut names = self.shared.names.write().expect("names lock");
        names.pods_by_cgroup = plan.pods_by_cgroup.clone();
        names.pods_by_ip = self
            .inputs
            .pods
            .values()
            .filter(|p| !p.host_network)
            .flat_map(|p| p.ips.iter().map(|ip| (*ip, p.pod.clone())))
            .collect();
        names.generations.insert(
            generation,
            Arc::new(GenerationNames {
                compiled: Arc::new(plan.compiled.clone()),
                rules: rules.clone(),
                ..Default::default()
            }),
        );
        while names.generations.len() > 2 {
            let oldest = *names.generations.keys().next().expect("non-empty");
            names.generations.remove(&oldest);
        }
    }

    /// `/status` and the gauges from this pass and the kernel's counters.
    fn report(&mut self, out: &PassOutcome) {
        let switch = self.switch.state().unwrap_or_default();
        self.metrics
            .set_enforcement(switch.command_off, switch.node_label_off);
        let api_connected = self.inputs.failing.is_empty();
        self.metrics.api_connected.set(i64::from(api_connected));
        let api_error = out
            .api_error
            .clone()
            .or_else(|| self.inputs.failing.values().next().cloned());
        if let Some(applied) = &self.applied {
            report_maps(&self.metrics, &applied.desired);
        }
        let packets = self.datapath.counters().unwrap_or_default();
        self.metrics.record_packets(&packets);
        let sampled = self.conntrack.as_mut().and_then(|c| c.sample(&packets));
        if let Some(ct) = &sampled {
            self.metrics
                .set_map(map_names::CONNTRACK, ct.entries as usize, ct.max_entries);
        }
        let counter = |name: &str| packets.get(name).copied().unwrap_or(0);
        self.metrics.record_event_drops(
            counter("event_dropped"),
            counter("event_rate_limited"),
            self.hub.lagged(),
        );
        // Ready once the received state is fully applied; an unreachable API server
        // changes nothing (the last state stays enforced, readiness stays).
        let fully_applied = out.waiting_for.is_none()
            && self.applied.as_ref().is_some_and(|a| {
                self.inputs
                    .node_policy
                    .as_ref()
                    .is_some_and(|p| p.generation == a.generation && p.content_hash == a.hash)
            });
        let ready = if api_connected {
            self.ready && fully_applied
        } else {
            self.ready
        };
        self.metrics.ready.set(i64::from(ready));
        self.metrics.endpoints.set(out.endpoints as i64);
        self.metrics.pending_pods.set(out.pending.len() as i64);
        let generation = self.datapath.tables.current_generation().unwrap_or(0);
        self.metrics.kernel_generation.set(i64::from(generation));

        let mut status = self.shared.status.write().expect("status lock");
        status.generation = generation;
        status.ready = ready;
        status.last_error = if ready {
            None
        } else {
            out.waiting_for
                .clone()
                .or_else(|| Some("the node's policy is not applied yet".into()))
        };
        status.endpoints = out.endpoints;
        status.pending = out.pending.clone();
        status.events = EventsStatus {
            received: self.hub.received(),
            ring_buffer_full: counter("event_dropped"),
            rate_limited: counter("event_rate_limited"),
            stream_lagged: self.hub.lagged(),
            subscribers: self.hub.subscribers(),
            ..std::mem::take(&mut status.events)
        };
        if let Some(ct) = sampled {
            status.conntrack = ct;
        }
        status.packets = packets;
        status.enforcement = Some(EnforcementStatus {
            enforcing: switch.enforcing(),
            command_off: switch.command_off,
            node_label_off: switch.node_label_off,
        });
        let policy = self.inputs.node_policy.as_ref();
        status.kubernetes = Some(KubernetesStatus {
            node_policy_generation: policy.map(|p| p.generation),
            node_policy_hash: policy.map(|p| p.content_hash.clone()),
            applied_generation: self.applied.as_ref().map(|a| a.generation),
            applied_hash: self.applied.as_ref().map(|a| a.hash.clone()),
            waiting_for: out.waiting_for.clone(),
            api_connected,
            api_error,
            kubepods: self.kubepods.as_ref().map(|(d, _)| d.display().to_string()),
            cgroup_driver: self
                .kubepods
                .as_ref()
                .map(|(_, d)| format!("{d:?}").to_lowercase()),
            pods: self.inputs.pods.len(),
            programmed_pods: self.inputs.pods.values().filter(|p| p.programmed()).count(),
            last_apply_seconds: self.last_apply_seconds,
        });
    }
}

/// Map fill levels of the state in the kernel.
fn report_maps(metrics: &Metrics, desired: &crate::desired::DesiredState) {
    let hosts = desired
        .ipcache
        .keys()
        .filter(|(_, bits)| *bits == 128)
        .count();
    for (map, entries, capacity) in [
        (
            map_names::ENDPOINTS,
            desired.endpoints.len(),
            capacity::ENDPOINTS_PER_SLOT,
        ),
        (
            map_names::LOCAL_ADDRS,
            desired.local_addrs.len(),
            capacity::LOCAL_ADDRS_PER_SLOT,
        ),
        (
            map_names::IPCACHE_HOSTS,
            hosts,
            capacity::IPCACHE_HOSTS_PER_SLOT,
        ),
        (
            map_names::IPCACHE,
            desired.ipcache.len() - hosts,
            capacity::IPCACHE_PER_SLOT,
        ),
        (
            map_names::POLICY,
            desired.policy.len(),
            capacity::POLICY_PER_SLOT,
        ),
        (
            map_names::ENDPOINT_ADDRS,
            desired.endpoint_addrs.len(),
            capacity::ENDPOINT_ADDRS_PER_SLOT,
        ),
        (
            map_names::SERVICES,
            desired.services.len(),
            capacity::SERVICES_PER_SLOT,
        ),
        (
            map_names::SERVICE_BACKENDS,
            desired.service_backends.len(),
            capacity::SERVICE_BACKENDS_PER_SLOT,
        ),
        (
            map_names::BIND_PORTS,
            desired.bind_ports.len(),
            capacity::BIND_PORTS_PER_SLOT,
        ),
    ] {
        metrics.set_map(map, entries, capacity);
    }
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
