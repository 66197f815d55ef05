//! A private network namespace with one veth pair, for test runs to name a device
//! that is not loopback. Nothing is ever sent through it.

use anyhow::{Context, Result, ensure};
use std::process::Command;

/// Moves the calling thread into a new network namespace holding a veth pair and
/// returns the index of one end. Network namespaces are per thread: call it on the
/// thread that will make the test runs (processes it spawns inherit it).
pub fn private_network_device() -> Result<u32> {
    // SAFETY: unshare only changes the calling thread's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).context("unshare(CLONE_NEWNET)");
    }
    ip(&[
        "link", "add", "testrun0", "type", "veth", "peer", "name", "testrun1",
    ])?;
    let line = ip(&["-o", "link", "show", "testrun0"])?;
    line.split(':')
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .with_context(|| format!("reading the ifindex of testrun0 from {line:?}"))
}

fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    ensure!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
