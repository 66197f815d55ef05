//! `cargo xtask build`: the kernel programs (Debian's rustc-web, `-Z build-std=core`,
//! bpf-linker), then the release binaries that embed them.

use crate::run::{self, status, step};
use crate::{paths, setup};
use anyhow::{Context, Result, bail};
use std::process::Command;

/// The user-space binaries and the packages that hold them.
pub const BINARIES: &[(&str, &str)] = &[
    ("palisade-agent", "palisade-agent"),
    ("palisade-controller", "palisade-controller"),
    ("palisadectl", "palisadectl"),
    ("palisade-lab", "palisade-netprobe"),
    ("palisade-bench", "palisade-bench"),
];

pub fn run() -> Result<()> {
    build_ebpf()?;
    build_binaries()
}

pub fn build_ebpf() -> Result<()> {
    step("kernel programs (ebpf/)");
    if !setup::bpf_linker().exists() {
        bail!("bpf-linker is missing: run `cargo xtask setup` first");
    }
    let mut cmd = Command::new(paths::EBPF_CARGO);
    for var in run::CARGO_ENV_TO_CLEAR {
        cmd.env_remove(var);
    }
    let path = format!(
        "{}:/usr/bin:{}",
        paths::tools().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    status(
        cmd.current_dir(paths::ebpf_crate())
            .env("PATH", path)
            .env("RUSTC", paths::EBPF_RUSTC)
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTFLAGS", "-C debuginfo=2 -C link-arg=--btf")
            .args([
                "build",
                "--release",
                "--locked",
                "--target",
                "bpfel-unknown-none",
            ])
            .args(["-Z", "build-std=core"]),
    )
    .context("building the kernel programs")?;
    let object = paths::ebpf_object();
    if !object.is_file() {
        bail!("the eBPF build did not produce {}", object.display());
    }
    eprintln!("    {}", object.display());
    Ok(())
}

fn build_binaries() -> Result<()> {
    step("user-space binaries (release)");
    let mut cmd = Command::new(cargo());
    cmd.current_dir(paths::workspace())
        .env("PALISADE_EBPF_OBJECT", paths::ebpf_object())
        .args(["build", "--release"]);
    for (package, _) in BINARIES {
        cmd.args(["-p", package]);
    }
    status(&mut cmd).context("building the binaries")?;
    for (_, bin) in BINARIES {
        eprintln!("    {}", paths::release_bin(bin).display());
    }
    Ok(())
}

/// The cargo that runs xtask (rustup's, for host builds).
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}
