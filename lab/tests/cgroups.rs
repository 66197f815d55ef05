//! Pod cgroups: their ids and paths match what the kernel reports for
//! processes in them, and child cgroups can be added at any time.

mod common;

use common::{new_lab, pod_v4};
use palisade_lab::{PodSpec, cgroup_id};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The cgroup v2 path of a process, from the `0::` line of /proc/<pid>/cgroup.
fn cgroup_of(pid: u32) -> String {
    let text =
        fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("reading /proc/<pid>/cgroup");
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no 0:: line in /proc/{pid}/cgroup: {text:?}"))
        .to_owned()
}

#[test]
fn annotation_matches_the_cgroup_the_kernel_reports() -> anyhow::Result<()> {
    let mut lab = new_lab();
    let pod = lab.add_pod(PodSpec::ipv4("web", pod_v4(2)))?;

    let in_container = lab.spawn(&pod, None, &["serve", "--tcp", "8080"])?;
    assert_eq!(
        cgroup_of(in_container.id()),
        pod.container_cgroup_path_annotation()
    );

    let in_pod = lab.spawn(&pod, Some(pod.cgroup_dir()), &["serve", "--tcp", "8081"])?;
    assert_eq!(cgroup_of(in_pod.id()), pod.cgroup_path_annotation());

    let expected = format!(
        "/{}",
        pod.cgroup_dir()
            .strip_prefix(lab.cgroup2_mount().mount_point())?
            .display()
    );
    assert_eq!(pod.cgroup_path_annotation(), expected);
    assert!(pod.cgroup_path_annotation().ends_with("/web"));
    lab.cleanup()
}

#[test]
fn cgroup_ids_are_directory_inodes() -> anyhow::Result<()> {
    let mut lab = new_lab();
    let first = lab.add_pod(PodSpec::ipv4("first", pod_v4(2)))?;
    let second = lab.add_pod(PodSpec::ipv4("second", pod_v4(3)))?;
    assert_eq!(first.cgroup_id(), fs::metadata(first.cgroup_dir())?.ino());
    assert_eq!(first.cgroup_id(), cgroup_id(first.cgroup_dir())?);
    assert_ne!(first.cgroup_id(), second.cgroup_id());
    assert_ne!(first.cgroup_id(), cgroup_id(&first.container_cgroup_dir())?);
    lab.cleanup()
}

#[test]
fn cgroups_are_laid_out_under_the_lab_root() -> anyhow::Result<()> {
    let mut lab = new_lab();
    let root = lab.cgroup_root().to_path_buf();
    assert!(root.is_absolute());
    assert!(root.starts_with(lab.cgroup2_mount().mount_point()));
    let name = root
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    assert!(name.starts_with("palisade-lab-test-"), "{name}");

    let pod = lab.add_pod(PodSpec::ipv4("web", pod_v4(2)))?;
    assert_eq!(pod.cgroup_dir(), root.join("web"));
    assert_eq!(pod.container_cgroup_dir(), root.join("web/ctr"));
    assert!(pod.container_cgroup_dir().is_dir());

    let child = lab.add_child_cgroup(&pod, "job-1")?;
    assert_eq!(child, root.join("web/job-1"));
    assert!(Path::new(&child).join("cgroup.procs").is_file());
    assert!(
        lab.add_child_cgroup(&pod, "job-1").is_err(),
        "created twice"
    );
    assert!(lab.add_child_cgroup(&pod, "../escape").is_err());
    lab.cleanup()
}
