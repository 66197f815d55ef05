//! The cluster side of the Kubernetes-mode kernel tests: the API-server double with
//! palisade's publication kinds, the real controller running in-process against it
//! (so the NodePolicy and ClusterTables are the ones it really publishes), a
//! kubelet-style cgroup tree for the lab's pods (systemd or cgroupfs driver, containerd
//! scopes), and the real `palisade-agent kubernetes` binary with its own pins, health
//! and metrics ports.

use anyhow::{Context, Result, bail, ensure};
use palisade_apiserver_double::{ApiServerDouble, Options, ResourceType};
use palisade_controller::controller::{self, Settings};
use palisade_controller::health::Readiness;
use palisade_controller::leader::LeaseSettings;
use palisade_controller::metrics::Metrics;
use palisade_lab::harness::{binaries, http};
use palisade_lab::{Lab, PodHandle};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub const GROUP: &str = "palisade.dev";
pub const NAMESPACE: &str = "shop";
/// A hang guard for waits, not a timing assertion.
pub const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Systemd,
    Cgroupfs,
}

/// The double and a controller replica on a runtime of their own (the test thread
/// blocks on probes).
pub struct Cluster {
    pub runtime: tokio::runtime::Runtime,
    pub double: ApiServerDouble,
    stop: watch::Sender<bool>,
    pub node: String,
}

impl Cluster {
    pub fn start(node: &str) -> Result<Cluster> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let double = runtime.block_on(ApiServerDouble::start_with(Options {
            bookmark_interval: Duration::from_millis(200),
            ..Options::default()
        }))?;
        for definition in palisade_crds::publication::publication_definitions() {
            double.register(ResourceType::from_crd(&definition.crd).expect("a publication CRD"));
        }
        for ns in [NAMESPACE, "palisade-system"] {
            double.insert(
                "",
                "namespaces",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )?;
        }
        double.insert(
            "",
            "nodes",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}),
        )?;
        let mut settings = Settings::new(LeaseSettings {
            name: "palisade-controller".into(),
            namespace: "palisade-system".into(),
            identity: "test".into(),
            duration: Duration::from_secs(5),
            retry: Duration::from_millis(200),
        });
        settings.debounce = Duration::from_millis(20);
        settings.retry = Duration::from_millis(200);
        let (stop, stop_rx) = watch::channel(false);
        let client = {
            let _in_runtime = runtime.enter();
            double.client()
        };
        runtime.spawn(controller::run(
            client,
            settings,
            Arc::new(Metrics::new()),
            Arc::new(Readiness::default()),
            stop_rx,
        ));
        Ok(Cluster {
            runtime,
            double,
            stop,
            node: node.to_string(),
        })
    }

    /// Creates the pod in the double (bound to this node, with its lab addresses) and
    /// returns its UID, as the API server assigned it.
    pub fn create_pod(&self, pod: &PodHandle, app: &str) -> Result<String> {
        let ips: Vec<Value> = pod
            .ips()
            .iter()
            .map(|ip| json!({"ip": ip.to_string()}))
            .collect();
        let created = self.double.insert(
            "",
            "pods",
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod.name(), "namespace": NAMESPACE, "labels": {"app": app}},
                "spec": {"nodeName": self.node, "containers": [{"name": "c", "image": "i"}],
                         "readinessGates": [{"conditionType": "palisade.dev/PolicyProgrammed"}]},
                "status": {"phase": "Running", "podIP": pod.ips()[0].to_string(), "podIPs": ips}}),
        )?;
        created["metadata"]["uid"]
            .as_str()
            .map(str::to_string)
            .context("the double assigned no uid")
    }

    pub fn insert(&self, group: &str, plural: &str, object: Value) -> Result<()> {
        self.double.insert(group, plural, object)?;
        Ok(())
    }

    /// Merge-patches a namespaced object, as `kubectl patch --type merge` would.
    pub fn patch(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Result<()> {
        self.double
            .patch(group, plural, namespace, name, patch)
            .map_err(|e| anyhow::anyhow!("patching {plural} {namespace}/{name}: {e:?}"))?;
        Ok(())
    }

    /// Writes a kubeconfig for the double.
    pub fn kubeconfig(&self, path: &Path) -> Result<()> {
        self.kubeconfig_at(path, &self.double.url())
    }

    /// Writes a kubeconfig naming `server` (a relay to the double).
    pub fn kubeconfig_at(&self, path: &Path, server: &str) -> Result<()> {
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: d, cluster: {{server: \"{}\"}}}}]\n\
                 users: [{{name: u, user: {{}}}}]\n\
                 contexts: [{{name: c, context: {{cluster: d, user: u, namespace: default}}}}]\n\
                 current-context: c\n",
                server
            ),
        )?;
        Ok(())
    }

    pub fn node_policy(&self) -> Value {
        self.double
            .get(GROUP, "nodepolicies", "", &self.node)
            .unwrap_or(Value::Null)
    }

    /// The pod's `palisade.dev/PolicyProgrammed` condition status ("True"), if set.
    pub fn programmed(&self, name: &str) -> Option<String> {
        let pod = self.double.get("", "pods", NAMESPACE, name)?;
        pod["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "palisade.dev/PolicyProgrammed")
            .and_then(|c| c["status"].as_str().map(str::to_string))
    }

    pub fn label_node(&self, value: Option<&str>) -> Result<()> {
        self.double.patch(
            "",
            "nodes",
            "",
            &self.node,
            json!({"metadata": {"labels": {"palisade.dev/enforcement": value}}}),
        )?;
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// The kubelet's cgroup tree for the lab's pods, under the lab's cgroup root.
pub struct KubeletTree {
    pub root: PathBuf,
    pub driver: Driver,
}

impl KubeletTree {
    /// `kubepods.slice` / `kubepods` with its BestEffort parent.
    pub fn create(lab: &Lab, driver: Driver) -> Result<KubeletTree> {
        let tree = KubeletTree {
            root: lab.cgroup_root().to_path_buf(),
            driver,
        };
        std::fs::create_dir_all(tree.besteffort()).context("creating the kubepods cgroups")?;
        Ok(tree)
    }

    fn besteffort(&self) -> PathBuf {
        match self.driver {
            Driver::Systemd => self.root.join("kubepods.slice/kubepods-besteffort.slice"),
            Driver::Cgroupfs => self.root.join("kubepods/besteffort"),
        }
    }

    /// Creates the pod's cgroup and one containerd container cgroup below it, as the
    /// kubelet and containerd would; returns the container's.
    pub fn add_pod(&self, uid: &str) -> Result<PathBuf> {
        let container = "0123456789abcdef".repeat(4);
        let dir = match self.driver {
            Driver::Systemd => self
                .besteffort()
                .join(format!(
                    "kubepods-besteffort-pod{}.slice",
                    uid.replace('-', "_")
                ))
                .join(format!("cri-containerd-{container}.scope")),
            Driver::Cgroupfs => self.besteffort().join(format!("pod{uid}")).join(container),
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating pod cgroup {}", dir.display()))?;
        Ok(dir)
    }
}

/// Where an agent runs as a pod would: a lab pod's network namespace and a cgroup of
/// the kubelet tree, with that pod's UID as `--pod-uid`.
#[derive(Clone, Debug)]
pub struct InPod {
    /// The network namespace's name (under /run/netns).
    pub netns: String,
    /// The container cgroup the agent's process is moved into.
    pub cgroup: PathBuf,
    pub pod_uid: String,
    /// `--health-addr` and `--metrics-addr`: addresses of the pod.
    pub health_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
}

/// `palisade-agent kubernetes`, killed and its pins removed on drop.
pub struct AgentProcess {
    child: Option<Child>,
    binary: PathBuf,
    args: Vec<String>,
    in_pod: Option<InPod>,
    pub pin_path: PathBuf,
    pub health: SocketAddr,
    pub metrics: SocketAddr,
    log: PathBuf,
}

fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl AgentProcess {
    pub fn start(id: &str, node: &str, kubeconfig: &Path, cgroup_root: &Path) -> Result<Self> {
        let mut agent = Self::start_stopped(id, node, kubeconfig, cgroup_root)?;
        agent.spawn()?;
        Ok(agent)
    }

    fn start_stopped(id: &str, node: &str, kubeconfig: &Path, cgroup_root: &Path) -> Result<Self> {
        let binary = binaries::agent()?;
        let pin_path = PathBuf::from(format!("/sys/fs/bpf/palisade-test-k8s-{id}"));
        // The agent refuses a --pin-path whose parent is not a bpffs (it never mounts
        // one itself in this mode): the test machine's /sys/fs/bpf is made one here.
        palisade_agent::pins::ensure_bpffs(&pin_path, true)?;
        let log = std::env::temp_dir().join(format!("palisade-agent-k8s-{id}.log"));
        let (health, metrics) = (free_addr()?, free_addr()?);
        let args: Vec<String> = [
            "kubernetes",
            "--node-name",
            node,
            "--resync-seconds",
            "1",
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "--cgroup-root",
            &cgroup_root.display().to_string(),
            "--pin-path",
            &pin_path.display().to_string(),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        Ok(AgentProcess {
            child: None,
            binary,
            args,
            in_pod: None,
            pin_path,
            health,
            metrics,
            log,
        })
    }

    /// Like [`start`](Self::start), running in a pod's network namespace and cgroup
    /// (`kubeconfig` must then name an address reachable from there). `health` and
    /// `metrics` are where the test reaches the agent's endpoints (relays to the
    /// pod's addresses in `in_pod`).
    pub fn start_in_pod(
        id: &str,
        node: &str,
        kubeconfig: &Path,
        cgroup_root: &Path,
        in_pod: InPod,
        (health, metrics): (SocketAddr, SocketAddr),
    ) -> Result<Self> {
        let mut agent = Self::start_stopped(id, node, kubeconfig, cgroup_root)?;
        agent.in_pod = Some(in_pod);
        (agent.health, agent.metrics) = (health, metrics);
        agent.spawn()?;
        Ok(agent)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = Command::new(&self.binary);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Opened before the fork, used between fork and exec, closed on exec.
        let mut placement = None;
        let (health, metrics) = match &self.in_pod {
            Some(pod) => (pod.health_addr, pod.metrics_addr),
            None => (self.health, self.metrics),
        };
        command.args([
            "--health-addr",
            &health.to_string(),
            "--metrics-addr",
            &metrics.to_string(),
        ]);
        if let Some(pod) = &self.in_pod {
            command.args(["--pod-uid", &pod.pod_uid]);
            let netns = std::fs::File::open(format!("/run/netns/{}", pod.netns))
                .with_context(|| format!("opening netns {}", pod.netns))?;
            let procs = std::fs::OpenOptions::new()
                .write(true)
                .open(pod.cgroup.join("cgroup.procs"))
                .with_context(|| format!("opening {}/cgroup.procs", pod.cgroup.display()))?;
            placement = Some((netns, procs));
        }
        let fds = placement
            .as_ref()
            .map(|(netns, procs)| (netns.as_raw_fd(), procs.as_raw_fd()));
        // SAFETY: only async-signal-safe calls (prctl, setns, write) run in the child.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some((netns, procs)) = fds {
                    if libc::setns(netns, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if libc::write(procs, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        drop(placement);
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL, as a crash would: the pins stay.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the agent again after [`kill`](Self::kill): same pins, same ports.
    pub fn restart(&mut self) -> Result<()> {
        ensure!(self.child.is_none(), "the agent is still running");
        self.spawn()
    }

    /// Starts the agent again in another pod (a DaemonSet's replacement pod: new UID,
    /// new cgroup): same pins, same ports.
    pub fn restart_in_pod(&mut self, in_pod: InPod) -> Result<()> {
        ensure!(self.child.is_none(), "the agent is still running");
        self.in_pod = Some(in_pod);
        self.spawn()
    }

    /// Everything the agent logged, across restarts.
    pub fn full_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the log, for failure messages.
    pub fn log(&self) -> String {
        let log = self.full_log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    pub fn status(&self) -> Result<Value> {
        let (code, body) = http::get(self.health, "/status")?;
        if code != 200 {
            bail!("/status answered {code}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    pub fn readyz(&self) -> Option<u16> {
        http::get(self.health, "/readyz").ok().map(|(code, _)| code)
    }

    pub fn metrics(&self) -> Result<String> {
        Ok(http::get(self.metrics, "/metrics")?.1)
    }

    /// Waits until `cond` holds, failing with the agent's log.
    pub fn wait_for(&mut self, what: &str, mut cond: impl FnMut(&Self) -> bool) -> Result<()> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(exit) = child.try_wait()?
            {
                bail!("the agent exited ({exit}) before {what}:\n{}", self.log());
            }
            if cond(self) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("not {what} within {DEADLINE:?}; agent log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `palisade-agent enforcement off|on` on this agent's pins.
    pub fn switch(&self, state: &str) -> Result<Value> {
        let out = Command::new(&self.binary)
            .args(["enforcement", state, "--pin-path"])
            .arg(&self.pin_path)
            .output()?;
        if !out.status.success() {
            bail!(
                "enforcement {state} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let cleaned = Command::new(&self.binary)
            .args(["cleanup", "--pin-path"])
            .arg(&self.pin_path)
            .output();
        if !cleaned.is_ok_and(|o| o.status.success()) {
            eprintln!("cleanup of {} failed", self.pin_path.display());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
