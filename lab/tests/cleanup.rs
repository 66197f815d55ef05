//! A lab leaves nothing behind: not when dropped, not when a test panics
//! midway, not when cleaned up explicitly, and not when adding a pod fails.

mod common;

use common::{PROBE_TIMEOUT, netns_list, new_lab, new_lab_with_node_addrs, pod_v4, pod_v6};
use palisade_lab::{PodSpec, Proto};
use std::net::{IpAddr, Ipv4Addr};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a lab created, recorded so it can be checked after the lab is gone.
#[derive(Debug, Default)]
struct Footprint {
    netns: Vec<String>,
    cgroup_root: PathBuf,
    server_pids: Vec<u32>,
}

/// Makes a lab with two pods, a server, a spare process and a child cgroup,
/// and records what it created.
fn populated_lab(footprint: &mut Footprint) -> anyhow::Result<palisade_lab::Lab> {
    let mut lab = new_lab();
    footprint.cgroup_root = lab.cgroup_root().to_path_buf();
    let client = lab.add_pod(PodSpec::dual_stack("client", pod_v4(2), pod_v6(2)))?;
    let server = lab.add_pod(PodSpec::dual_stack("server", pod_v4(3), pod_v6(3)))?;
    footprint.netns = lab.netns_names();
    lab.serve(&server, &[8080], &[])?;
    let spare = lab.spawn(&server, None, &["serve", "--udp", "9000"])?;
    footprint.server_pids.push(spare.id());
    lab.add_child_cgroup(&client, "late")?;
    let result = lab.probe(
        &client,
        IpAddr::V4(pod_v4(3)),
        Proto::Tcp,
        8080,
        PROBE_TIMEOUT,
    )?;
    assert!(result.allowed(), "{result:?}");
    Ok(lab)
}

fn assert_gone(footprint: &Footprint) {
    assert_eq!(footprint.netns.len(), 3, "node + 2 pods: {footprint:?}");
    let remaining = netns_list();
    for netns in &footprint.netns {
        assert!(
            !remaining.contains(netns),
            "netns {netns} is left: {remaining:?}"
        );
    }
    assert!(
        !footprint.cgroup_root.exists(),
        "cgroup {} is left",
        footprint.cgroup_root.display()
    );
    for pid in &footprint.server_pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} is still there"
        );
    }
}

#[test]
fn dropping_a_lab_removes_everything() -> anyhow::Result<()> {
    let mut footprint = Footprint::default();
    let lab = populated_lab(&mut footprint)?;
    assert!(footprint.cgroup_root.is_dir());
    let listed = netns_list();
    for netns in &footprint.netns {
        assert!(
            listed.contains(netns),
            "netns {netns} not listed: {listed:?}"
        );
    }
    drop(lab);
    assert_gone(&footprint);
    Ok(())
}

#[test]
fn a_panicking_test_still_removes_everything() {
    let footprint = Mutex::new(Footprint::default());
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut recorded = footprint.lock().expect("footprint lock");
        let _lab = populated_lab(&mut recorded).expect("populating the lab");
        drop(recorded);
        panic!("test failure while the lab is alive (expected by this test)");
    }));
    assert!(outcome.is_err(), "the closure should have panicked");
    assert_gone(&footprint.lock().expect("footprint lock"));
}

#[test]
fn cleanup_reports_success_and_removes_everything() -> anyhow::Result<()> {
    let mut footprint = Footprint::default();
    let lab = populated_lab(&mut footprint)?;
    lab.cleanup()?;
    assert_gone(&footprint);
    Ok(())
}

#[test]
fn a_failed_add_pod_leaves_the_lab_usable() -> anyhow::Result<()> {
    let mut lab = new_lab_with_node_addrs();
    lab.add_pod(PodSpec::ipv4("web", pod_v4(2)))?;
    let netns_before = lab.netns_names();

    let duplicate = lab.add_pod(PodSpec::ipv4("web", pod_v4(3)));
    assert!(duplicate.is_err(), "a second pod named web was added");
    let bad_name = lab.add_pod(PodSpec::ipv4("no/slash", pod_v4(4)));
    assert!(
        bad_name.is_err(),
        "a pod with a slash in its name was added"
    );
    // Outside the node's subnet, the default route via the node can't be
    // added: that fails after the pod's namespace exists, and is undone.
    let off_subnet = lab.add_pod(PodSpec::ipv4("elsewhere", Ipv4Addr::new(10, 91, 0, 2)));
    let error = off_subnet.expect_err("a pod outside the node's subnet was added");
    let message = format!("{error:#}");
    assert!(
        message.contains("route add default via 10.90.0.1"),
        "{message}"
    );
    assert_eq!(lab.netns_names(), netns_before);
    assert!(!lab.cgroup_root().join("elsewhere").exists());

    let other = lab.add_pod(PodSpec::ipv4("other", pod_v4(5)))?;
    assert_eq!(lab.pods().len(), 2);
    assert_eq!(lab.pod("other"), Some(&other));
    lab.cleanup()
}
