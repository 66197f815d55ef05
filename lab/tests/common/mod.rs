//! Shared setup of the lab's integration tests: labs that use the netprobe
//! binary cargo built for this package, the pod addresses the tests use, and
//! checks of what is left on the machine.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use palisade_lab::{Lab, LabConfig};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The cgroup root prefix of every lab made by these tests.
pub const PREFIX: &str = "palisade-lab-test";

/// Timeout of probes expected to succeed or be refused.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub const NODE_V4: Ipv4Addr = Ipv4Addr::new(10, 90, 0, 1);
pub const NODE_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x90, 0, 0, 0, 0, 0, 1);

/// Address number `host` of the pod networks 10.90.0.0/24 and fd00:90::/64.
pub fn pod_v4(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 90, 0, host)
}

pub fn pod_v6(host: u8) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x90, 0, 0, 0, 0, 0, u16::from(host))
}

/// A config running this package's netprobe binary.
pub fn config() -> LabConfig {
    LabConfig {
        netprobe: Some(PathBuf::from(env!("CARGO_BIN_EXE_palisade-netprobe"))),
        ..LabConfig::default()
    }
}

/// A lab without node addresses.
pub fn new_lab() -> Lab {
    Lab::with_config(PREFIX, config()).expect("creating a lab (these tests must run as root)")
}

/// A lab whose node has 10.90.0.1 and fd00:90::1.
pub fn new_lab_with_node_addrs() -> Lab {
    let config = LabConfig {
        node_ipv4: Some(NODE_V4),
        node_ipv6: Some(NODE_V6),
        ..config()
    };
    Lab::with_config(PREFIX, config).expect("creating a lab (these tests must run as root)")
}

/// The names `ip netns list` shows.
pub fn netns_list() -> Vec<String> {
    let output = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("running `ip netns list`");
    assert!(
        output.status.success(),
        "`ip netns list` failed: {output:?}"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}
