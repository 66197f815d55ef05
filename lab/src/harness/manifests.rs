//! Writes manifests for emulated pods: a temporary directory the agent reads, and YAML
//! for Namespaces, Nodes and Pods that point at the lab's cgroups and addresses.

use crate::PodHandle;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// A temporary manifests directory, removed on drop.
pub struct ManifestDir {
    path: PathBuf,
}

impl ManifestDir {
    pub fn new(id: &str) -> Result<Self> {
        let path = std::env::temp_dir().join(format!("palisade-manifests-{id}"));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes (or replaces) `name` atomically, so the agent never reads half a file.
    pub fn write(&self, name: &str, text: &str) -> Result<()> {
        let tmp = self.path.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, self.path.join(name))?;
        Ok(())
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        std::fs::remove_file(self.path.join(name))?;
        Ok(())
    }
}

impl Drop for ManifestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A Namespace with labels.
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:{}\n---\n",
        label_block(labels, 4)
    )
}

/// A Node with addresses.
pub fn node(name: &str, addresses: &[std::net::IpAddr]) -> String {
    let mut s =
        format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\nstatus:\n  addresses:\n");
    for a in addresses {
        s.push_str(&format!("    - type: InternalIP\n      address: \"{a}\"\n"));
    }
    s.push_str("---\n");
    s
}

/// A Node (`node`, with the dual-stack lab's node addresses `10.90.0.1` and
/// `fd00:90::1`), the Namespace `namespace`, and each pod in it labelled
/// `app: <pod name>`.
pub fn dual_stack_cluster(node_name: &str, namespace_name: &str, pods: &[&PodHandle]) -> String {
    let addresses = [
        std::net::IpAddr::from([10, 90, 0, 1]),
        "fd00:90::1".parse().expect("address literal"),
    ];
    let mut cluster = node(node_name, &addresses);
    cluster.push_str(&namespace(namespace_name, &[]));
    for p in pods {
        cluster.push_str(&pod(namespace_name, p, &[("app", p.name())], &[], true));
    }
    cluster
}

/// A Pod for an emulated pod: its IPs, its cgroup annotation (unless `cgroup` is
/// false: a remote peer), labels and named TCP ports.
pub fn pod(
    namespace: &str,
    handle: &PodHandle,
    labels: &[(&str, &str)],
    ports: &[(&str, u16)],
    cgroup: bool,
) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {}\n  namespace: {namespace}\n  labels:{}\n",
        handle.name(),
        label_block(labels, 4)
    );
    if cgroup {
        s.push_str(&format!(
            "  annotations:\n    palisade.dev/cgroup-path: \"{}\"\n",
            handle.cgroup_path_annotation()
        ));
    }
    s.push_str("spec:\n  containers:\n    - name: main\n      ports:\n");
    if ports.is_empty() {
        s.push_str("        []\n");
    }
    for (name, port) in ports {
        s.push_str(&format!(
            "        - name: {name}\n          containerPort: {port}\n          protocol: TCP\n"
        ));
    }
    let ips = handle.ips();
    s.push_str("status:\n");
    if let Some(first) = ips.first() {
        s.push_str(&format!("  podIP: \"{first}\"\n  podIPs:\n"));
        for ip in &ips {
            s.push_str(&format!("    - ip: \"{ip}\"\n"));
        }
    }
    s.push_str("---\n");
    s
}

fn label_block(labels: &[(&str, &str)], indent: usize) -> String {
    if labels.is_empty() {
        return " {}".into();
    }
    let pad = " ".repeat(indent);
    labels
        .iter()
        .map(|(k, v)| format!("\n{pad}{k}: \"{v}\""))
        .collect()
}
