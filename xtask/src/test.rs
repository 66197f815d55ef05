//! `cargo xtask test`: the whole suite on a fresh machine. Sets up the toolchain,
//! builds everything, checks formatting and lints, then runs every test (unit,
//! property, conformance, end-to-end and kernel tests) against the release binaries.

use crate::build::{self, cargo};
use crate::run::{status, step};
use crate::{paths, setup};
use anyhow::{Result, bail};
use std::process::Command;

pub fn run(cargo_args: &[String]) -> Result<()> {
    if !crate::run::is_root() {
        bail!(
            "the kernel tests load BPF programs and create network namespaces: run \
             `cargo xtask test` as root"
        );
    }
    setup::run()?;
    build::run()?;

    step("format");
    status(
        Command::new(cargo())
            .current_dir(paths::workspace())
            .args(["fmt", "--all", "--", "--check"]),
    )?;

    step("lints");
    status(
        Command::new(cargo())
            .current_dir(paths::workspace())
            .env("PALISADE_EBPF_OBJECT", paths::ebpf_object())
            .args([
                "clippy",
                "--release",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
    )?;

    step("tests");
    status(
        Command::new(cargo())
            .current_dir(paths::workspace())
            .env("PALISADE_EBPF_OBJECT", paths::ebpf_object())
            .env("PALISADE_AGENT_BIN", paths::release_bin("palisade-agent"))
            .env("PALISADE_CTL_BIN", paths::release_bin("palisadectl"))
            .env("PALISADE_NETPROBE", paths::release_bin("palisade-netprobe"))
            .env("PALISADE_HELM", paths::helm())
            .args(["test", "--release", "--workspace"])
            .args(cargo_args),
    )?;
    Ok(())
}
