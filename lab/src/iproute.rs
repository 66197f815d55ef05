//! Runs iproute2's `ip` and turns its failures into errors naming the command
//! line and what it printed on stderr.

use anyhow::{Context, Result, bail};
use std::io::ErrorKind;
use std::process::{Command, Stdio};

const IP: &str = "ip";

/// Runs `ip <args>` and fails unless it exits successfully.
pub(crate) fn ip(args: &[&str]) -> Result<()> {
    let command_line = format!("{IP} {}", args.join(" "));
    let output = Command::new(IP)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| not_runnable(error, &command_line))?;
    if !output.status.success() {
        bail!(
            "`{command_line}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Checks that `ip` can be run at all, so a missing iproute2 is reported once
/// and by name rather than as the failure of some later step.
pub(crate) fn ensure_available() -> Result<()> {
    ip(&["-V"]).context("iproute2's `ip` command is required")
}

fn not_runnable(error: std::io::Error, command_line: &str) -> anyhow::Error {
    if error.kind() == ErrorKind::NotFound {
        anyhow::anyhow!("`{IP}` (iproute2) was not found in PATH; install iproute2")
    } else {
        anyhow::Error::new(error).context(format!("running `{command_line}`"))
    }
}
