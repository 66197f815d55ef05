//! Where the kubelet puts pods in the cgroup v2 hierarchy, and which pod a cgroup
//! directory belongs to: the mapping pod UID -> cgroup that Kubernetes mode needs
//! before a pod's first packet (its endpoint entry is keyed by that cgroup's id).
//!
//! The kubelet's layouts, below its cgroup root (`/` unless `--cgroup-root` says
//! otherwise), for the two cgroup drivers:
//!
//! | QoS class  | systemd driver                                                         | cgroupfs driver              |
//! |------------|------------------------------------------------------------------------|------------------------------|
//! | Guaranteed | `kubepods.slice/kubepods-pod<UID>.slice`                               | `kubepods/pod<UID>`          |
//! | Burstable  | `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<UID>.slice` | `kubepods/burstable/pod<UID>` |
//! | BestEffort | `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<UID>.slice` | `kubepods/besteffort/pod<UID>` |
//!
//! With the systemd driver the UID's dashes are underscores (systemd reserves `-` in
//! unit names for nesting). Containers are children of the pod's cgroup: with systemd,
//! `cri-containerd-<id>.scope` (containerd), `crio-<id>.scope` and
//! `crio-conmon-<id>.scope` (CRI-O), `docker-<id>.scope`; with cgroupfs, directories
//! named by the container id. palisade enforces at the pod's cgroup: the kernel
//! programs resolve a socket's cgroup to its nearest ancestor with an endpoint entry,
//! so every container (and any cgroup a container creates below itself) is covered
//! by its pod's entry without being listed.
//!
//! Pure parsing and a directory scan; watching the hierarchy is the caller's.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The kubelet's cgroup driver, as seen from its layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Systemd,
    Cgroupfs,
}

/// A pod's Quality of Service class, which decides its parent cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// A pod's cgroup, found in the hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodCgroup {
    /// The pod's `metadata.uid`, with dashes (as the API server writes it).
    pub uid: String,
    pub qos: QosClass,
    pub driver: Driver,
    /// Absolute directory of the pod's cgroup.
    pub dir: PathBuf,
}

/// The pod UID (with dashes) a cgroup directory name stands for under `driver`, and
/// the QoS class the name says (systemd names carry it; cgroupfs names do not, the
/// parent directory does).
fn pod_uid_of_name(name: &str, driver: Driver) -> Option<(String, Option<QosClass>)> {
    match driver {
        Driver::Systemd => {
            let unit = name.strip_suffix(".slice")?;
            let (qos, rest) = if let Some(rest) = unit.strip_prefix("kubepods-burstable-pod") {
                (QosClass::Burstable, rest)
            } else if let Some(rest) = unit.strip_prefix("kubepods-besteffort-pod") {
                (QosClass::BestEffort, rest)
            } else {
                (QosClass::Guaranteed, unit.strip_prefix("kubepods-pod")?)
            };
            let uid = rest.replace('_', "-");
            is_uid(&uid).then_some((uid, Some(qos)))
        }
        Driver::Cgroupfs => {
            let uid = name.strip_prefix("pod")?;
            is_uid(uid).then(|| (uid.to_string(), None))
        }
    }
}

/// Whether `text` is a UID as Kubernetes writes it: 36 characters, hex digits and
/// dashes at positions 8, 13, 18 and 23.
fn is_uid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The directory of the kubelet's `kubepods` cgroup under `kubelet_root` (the
/// kubelet's `--cgroup-root`, absolute in the cgroup2 mount), and the driver its name
/// shows; None if neither layout is there (no kubelet, or not started yet).
pub fn kubepods_dir(kubelet_root: &Path) -> Option<(PathBuf, Driver)> {
    [
        ("kubepods.slice", Driver::Systemd),
        ("kubepods", Driver::Cgroupfs),
    ]
    .into_iter()
    .map(|(name, driver)| (kubelet_root.join(name), driver))
    .find(|(dir, _)| dir.join("cgroup.procs").exists())
}

/// Every pod cgroup below `kubepods` (see [`kubepods_dir`]), by pod UID. A UID
/// found twice (a pod moving between QoS parents while the kubelet recreates it)
/// keeps the first found, in QoS order.
pub fn scan(kubepods: &Path, driver: Driver) -> Result<BTreeMap<String, PodCgroup>> {
    let mut pods = BTreeMap::new();
    let parents = match driver {
        Driver::Systemd => [
            (kubepods.to_path_buf(), QosClass::Guaranteed),
            (
                kubepods.join("kubepods-burstable.slice"),
                QosClass::Burstable,
            ),
            (
                kubepods.join("kubepods-besteffort.slice"),
                QosClass::BestEffort,
            ),
        ],
        Driver::Cgroupfs => [
            (kubepods.to_path_buf(), QosClass::Guaranteed),
            (kubepods.join("burstable"), QosClass::Burstable),
            (kubepods.join("besteffort"), QosClass::BestEffort),
        ],
    };
    for (parent, parent_qos) in parents {
        let entries = match std::fs::read_dir(&parent) {
            Ok(entries) => entries,
            // A QoS parent appears with its first pod.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("listing {}", parent.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", parent.display()))?;
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name();
            let Some((uid, named_qos)) = name.to_str().and_then(|n| pod_uid_of_name(n, driver))
            else {
                continue;
            };
            let qos = named_qos.unwrap_or(parent_qos);
            if qos != parent_qos {
                // A systemd pod slice under the wrong parent: not the kubelet's.
                continue;
            }
            pods.entry(uid.clone()).or_insert(PodCgroup {
                uid,
                qos,
                driver,
                dir: entry.path(),
            });
        }
    }
    Ok(pods)
}

/// The pod a cgroup directory (a pod's, a container's, or any descendant's) belongs
/// to: the UID of the nearest ancestor-or-self that is a pod cgroup under `kubepods`.
pub fn pod_of(kubepods: &Path, driver: Driver, dir: &Path) -> Option<String> {
    let relative = dir.strip_prefix(kubepods).ok()?;
    relative
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .find_map(|name| pod_uid_of_name(name, driver).map(|(uid, _)| uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0b8c7d1e-4f2a-4c3b-9d8e-1a2b3c4d5e6f";

    fn mkcgroup(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("cgroup.procs"), "").unwrap();
    }

    #[test]
    fn systemd_names_carry_the_uid_with_underscores_and_the_qos() {
        let underscored = UID.replace('-', "_");
        assert_eq!(
            pod_uid_of_name(
                &format!("kubepods-burstable-pod{underscored}.slice"),
                Driver::Systemd
            ),
            Some((UID.to_string(), Some(QosClass::Burstable)))
        );
        assert_eq!(
            pod_uid_of_name(&format!("kubepods-pod{underscored}.slice"), Driver::Systemd),
            Some((UID.to_string(), Some(QosClass::Guaranteed)))
        );
        assert_eq!(
            pod_uid_of_name("kubepods-burstable.slice", Driver::Systemd),
            None
        );
        assert_eq!(
            pod_uid_of_name(
                &format!("cri-containerd-{underscored}.scope"),
                Driver::Systemd
            ),
            None
        );
    }

    #[test]
    fn cgroupfs_names_are_pod_and_the_uid() {
        assert_eq!(
            pod_uid_of_name(&format!("pod{UID}"), Driver::Cgroupfs),
            Some((UID.to_string(), None))
        );
        assert_eq!(pod_uid_of_name("pod1234", Driver::Cgroupfs), None);
        assert_eq!(pod_uid_of_name("burstable", Driver::Cgroupfs), None);
    }

    #[test]
    fn scans_both_layouts_with_every_qos_class() {
        // In UID order, which is the scan's.
        let uids = [
            UID,
            "11111111-2222-3333-4444-555555555555",
            "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        ];
        let root = tempfile::tempdir().unwrap();

        let systemd = root.path().join("systemd");
        let kubepods = systemd.join("kubepods.slice");
        let u = |i: usize| uids[i].replace('-', "_");
        mkcgroup(&kubepods);
        mkcgroup(&kubepods.join(format!("kubepods-pod{}.slice", u(0))));
        mkcgroup(
            &kubepods
                .join("kubepods-burstable.slice")
                .join(format!("kubepods-burstable-pod{}.slice", u(1)))
                .join(format!("cri-containerd-{}.scope", "ab".repeat(32))),
        );
        mkcgroup(
            &kubepods
                .join("kubepods-besteffort.slice")
                .join(format!("kubepods-besteffort-pod{}.slice", u(2)))
                .join(format!("crio-{}.scope", "cd".repeat(32))),
        );
        let (found, driver) = kubepods_dir(&systemd).unwrap();
        assert_eq!(
            (found.as_path(), driver),
            (kubepods.as_path(), Driver::Systemd)
        );
        let pods = scan(&kubepods, driver).unwrap();
        let qos: Vec<(&str, QosClass)> = pods.values().map(|p| (p.uid.as_str(), p.qos)).collect();
        assert_eq!(
            qos,
            [
                (uids[0], QosClass::Guaranteed),
                (uids[1], QosClass::Burstable),
                (uids[2], QosClass::BestEffort)
            ]
        );
        let container = pods[uids[1]]
            .dir
            .join(format!("cri-containerd-{}.scope", "ab".repeat(32)));
        assert_eq!(
            pod_of(&kubepods, driver, &container).as_deref(),
            Some(uids[1])
        );

        let cgroupfs = root.path().join("cgroupfs");
        let kubepods = cgroupfs.join("kubepods");
        mkcgroup(&kubepods);
        mkcgroup(&kubepods.join(format!("pod{}", uids[0])));
        mkcgroup(
            &kubepods
                .join("burstable")
                .join(format!("pod{}", uids[1]))
                .join("0123abcd"),
        );
        mkcgroup(&kubepods.join("besteffort").join(format!("pod{}", uids[2])));
        let (found, driver) = kubepods_dir(&cgroupfs).unwrap();
        assert_eq!(
            (found.as_path(), driver),
            (kubepods.as_path(), Driver::Cgroupfs)
        );
        let pods = scan(&kubepods, driver).unwrap();
        assert_eq!(pods.len(), 3);
        assert_eq!(pods[uids[1]].qos, QosClass::Burstable);
        let container = pods[uids[1]].dir.join("0123abcd");
        assert_eq!(
            pod_of(&kubepods, driver, &container).as_deref(),
            Some(uids[1])
        );
        assert_eq!(pod_of(&kubepods, driver, &kubepods.join("burstable")), None);
    }

    #[test]
    fn no_kubelet_layout_is_none() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(kubepods_dir(root.path()), None);
    }
}
