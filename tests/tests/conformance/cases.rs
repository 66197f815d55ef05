//! The upstream truth tables in `shared/conformance/cases.json` (schema in its
//! README): each case is a cluster (namespaces, pods, nodes), the policy objects in
//! creation order, and probes with the verdict upstream asserts.

use anyhow::{Context, Result, ensure};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Overrides where the cases are read from.
const CASES_ENV: &str = "PALISADE_CONFORMANCE_CASES";

/// Which upstream suite a case comes from (`source_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Suite {
    /// kubernetes/kubernetes `test/e2e/network/netpol` (NetworkPolicy).
    #[serde(rename = "k8s-e2e")]
    K8sE2e,
    /// kubernetes-sigs/network-policy-api conformance (AdminNetworkPolicy,
    /// BaselineAdminNetworkPolicy).
    #[serde(rename = "network-policy-api-conformance")]
    NetworkPolicyApi,
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Suite::K8sE2e => "k8s-e2e",
            Suite::NetworkPolicyApi => "network-policy-api-conformance",
        })
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Case {
    pub id: String,
    /// The upstream test it transcribes.
    pub source: String,
    pub source_kind: Suite,
    pub cluster: ClusterSpec,
    /// Full Kubernetes objects, in creation order.
    pub policies: Vec<Value>,
    /// The asserted probes (loopback probes, which upstream does not assert, are kept
    /// apart in the file and not read).
    pub probes: Vec<Probe>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ClusterSpec {
    pub namespaces: BTreeMap<String, NamespaceSpec>,
    pub pods: Vec<PodSpec>,
    #[serde(default)]
    pub nodes: Vec<NodeSpec>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct NamespaceSpec {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PodSpec {
    pub ns: String,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub ip: String,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default, rename = "hostNetwork")]
    pub host_network: bool,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PortSpec {
    pub port: u16,
    pub protocol: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct NodeSpec {
    pub name: String,
    pub ip: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Probe {
    pub from: String,
    pub to: String,
    pub port: u16,
    pub protocol: String,
    pub expect: Expect,
    #[serde(default)]
    pub dst_ip: Option<String>,
}

impl Probe {
    /// Where the probe goes, as reports print it: the pod, then the address it was
    /// sent to when the case names one (`x/b (10.0.0.5)`).
    pub fn destination(&self) -> String {
        match &self.dst_ip {
            Some(ip) => format!("{} ({ip})", self.to),
            None => self.to.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Allow,
    Deny,
}

impl Expect {
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
        }
    }
}

impl Case {
    /// The upstream test a case belongs to, for the report's breakdown: the protocol
    /// context of an e2e case (`tcp`, `udp`, `sctp`), the conformance test of a
    /// network-policy-api case (`AdminNetworkPolicyIngressTCP`).
    pub fn group(&self) -> String {
        match self.source_kind {
            Suite::K8sE2e => self.id.split('-').nth(1).unwrap_or(&self.id).to_string(),
            Suite::NetworkPolicyApi => {
                let id = self.id.strip_prefix("npapi-").unwrap_or(&self.id);
                match id.rsplit_once('-') {
                    Some((test, step)) if step.chars().all(|c| c.is_ascii_digit()) => {
                        test.to_string()
                    }
                    _ => id.to_string(),
                }
            }
        }
    }
}

/// Where the cases are: `$PALISADE_CONFORMANCE_CASES`, else `shared/` next to the
/// workspace.
fn cases_path() -> PathBuf {
    match std::env::var_os(CASES_ENV) {
        Some(path) => PathBuf::from(path),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/cases.json")
        }
    }
}

/// Every case of `suite`, in file order.
pub fn load(suite: Suite) -> Result<Vec<Case>> {
    let path = cases_path();
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the conformance cases at {} (is shared/ next to the workspace? \
             {CASES_ENV} overrides the path)",
            path.display()
        )
    })?;
    let cases: Vec<Case> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not the expected list of cases", path.display()))?;
    let cases: Vec<Case> = cases
        .into_iter()
        .filter(|case| case.source_kind == suite)
        .collect();
    ensure!(!cases.is_empty(), "{} has no {suite} case", path.display());
    for case in &cases {
        ensure!(!case.probes.is_empty(), "case {} has no probes", case.id);
    }
    Ok(cases)
}
