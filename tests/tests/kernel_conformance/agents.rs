//! The agents of a testbed: one `palisade-agent standalone` per node, all attached
//! at the lab's cgroup root, each with its own pins and `--node-name`, all reading
//! one manifests directory. An agent enforces its own node's pods; pods of other
//! nodes are unknown endpoints to it, which it allows, so a packet between pods of
//! two nodes is decided by the sender's agent at egress and the receiver's at
//! ingress, as in a cluster.

use anyhow::{Context, Result, ensure};
use palisade_lab::Lab;
use palisade_lab::harness::agent::{Agent, AgentOptions};
use palisade_lab::harness::manifests::ManifestDir;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// How long an agent may take to start and apply the first manifests.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an agent may take to apply changed manifests (it takes milliseconds).
const APPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// At most this many of an agent's log lines are shown for a case.
const LOG_LINES_SHOWN: usize = 60;

pub struct Agents {
    /// Declared before the directory: agents stop before their manifests go.
    agents: Vec<(String, Agent)>,
    dir: ManifestDir,
    /// What each file of the directory holds.
    written: BTreeMap<String, String>,
}

/// Where each agent's log stood, to show what it logged since.
pub struct LogMarks(Vec<usize>);

impl Agents {
    /// Writes `files` into a new manifests directory and starts one agent per node on
    /// the lab's cgroup root, each logging JSON lines (flow events included).
    pub fn start(lab: &Lab, nodes: &[String], files: &[(String, String)]) -> Result<Self> {
        let dir = ManifestDir::new(&format!("kconf-{}", lab.id()))?;
        let mut agents = Agents {
            agents: Vec::new(),
            dir,
            written: BTreeMap::new(),
        };
        agents.write(files)?;
        for node in nodes {
            let mut agent = Agent::start(AgentOptions {
                id: &format!("{}-{node}", lab.id()),
                manifests: agents.dir.path(),
                cgroup_root: lab.cgroup_root(),
                node_name: node,
                extra_args: &["--log-json"],
            })
            .with_context(|| format!("starting the agent of node {node}"))?;
            agent
                .wait_ready(START_TIMEOUT)
                .with_context(|| format!("waiting for the agent of node {node}"))?;
            agents.agents.push((node.clone(), agent));
        }
        Ok(agents)
    }

    /// The manifests directory the agents read.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The nodes whose agents run, in order.
    pub fn nodes(&self) -> Vec<&str> {
        self.agents.iter().map(|(node, _)| node.as_str()).collect()
    }

    /// Makes the directory hold exactly `files` and waits until every agent has the
    /// result in the kernel (`/status`: its hash applied, ready, no pod pending).
    pub fn apply(&mut self, files: &[(String, String)]) -> Result<()> {
        self.write(files)?;
        let hash = palisade_manifests::read_dir(self.dir.path())
            .with_context(|| format!("hashing {}", self.dir.path().display()))?
            .hash;
        for (node, agent) in &mut self.agents {
            agent
                .wait_applied(&hash, APPLY_TIMEOUT)
                .with_context(|| format!("the agent of node {node}"))?;
            // A pod the agent cannot find (no cgroup yet) would be unenforced.
            let pending = &agent.status()?["pending"];
            ensure!(
                pending.as_array().is_none_or(Vec::is_empty),
                "the agent of node {node} applied the manifests without pods it cannot \
                 find: {pending}"
            );
        }
        Ok(())
    }

    /// Writes the files that changed (atomically) and removes those no longer there.
    fn write(&mut self, files: &[(String, String)]) -> Result<()> {
        for (name, text) in files {
            if self.written.get(name) != Some(text) {
                self.dir.write(name, text)?;
                self.written.insert(name.clone(), text.clone());
            }
        }
        let stale: Vec<String> = self
            .written
            .keys()
            .filter(|name| !files.iter().any(|(file, _)| file == *name))
            .cloned()
            .collect();
        for name in stale {
            self.dir.remove(&name)?;
            self.written.remove(&name);
        }
        Ok(())
    }

    /// Where the agents' logs stand now.
    pub fn log_marks(&self) -> LogMarks {
        LogMarks(self.agents.iter().map(|(_, a)| a.log().len()).collect())
    }

    /// Per agent: its packet counters and generation from `/status`, and what it
    /// logged since `marks`: every line but flow events, and the flow events of the
    /// flows `flows` names (each a pair of `address:port` or `address:` texts that
    /// both appear in the event: its local and remote ends, as it prints them).
    pub fn diagnostics(&self, marks: &LogMarks, flows: &[(String, String)]) -> String {
        let mut text = String::new();
        for ((node, agent), &mark) in self.agents.iter().zip(&marks.0) {
            let status = match agent.status() {
                Ok(status) => format!(
                    "generation {}, ready {}, endpoints {}; packets since start, as of its \
                     last pass: {}",
                    status["generation"], status["ready"], status["endpoints"], status["packets"]
                ),
                Err(error) => format!("/status failed: {error:#}"),
            };
            let _ = writeln!(text, "  agent of node {node}: {status}");
            let log = agent.log();
            let lines: Vec<&str> = log
                .get(mark..)
                .unwrap_or(&log)
                .lines()
                .filter(|line| {
                    !line.contains(r#""event":"flow""#)
                        || flows
                            .iter()
                            .any(|(a, b)| line.contains(a.as_str()) && line.contains(b.as_str()))
                })
                .collect();
            let shown = &lines[lines.len().saturating_sub(LOG_LINES_SHOWN)..];
            if shown.len() < lines.len() {
                let _ = writeln!(text, "    ... {} earlier lines", lines.len() - shown.len());
            }
            if lines.is_empty() {
                let _ = writeln!(text, "    (no log line about these flows)");
            }
            for line in shown {
                let _ = writeln!(text, "    {line}");
            }
        }
        text
    }
}
