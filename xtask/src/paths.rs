//! Where things are: the workspace, the project-local tools folder, build outputs.

use std::path::PathBuf;

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Project-local tools (bpf-linker, its LLVM link), never committed.
pub fn tools() -> PathBuf {
    workspace().join(".tools")
}

/// The real helm the chart tests run (`cargo xtask setup` installs it).
pub fn helm() -> PathBuf {
    tools().join("helm/helm")
}

pub fn ebpf_crate() -> PathBuf {
    workspace().join("ebpf")
}

/// The kernel object `cargo xtask build` produces.
pub fn ebpf_object() -> PathBuf {
    ebpf_crate().join("target/bpfel-unknown-none/release/palisade")
}

pub fn release_bin(name: &str) -> PathBuf {
    workspace().join("target/release").join(name)
}

/// Debian's rustc-web: a compiler whose library source is installed, so that
/// `-Z build-std=core` works for the bpfel target (rustup cannot add rust-src here).
pub const EBPF_CARGO: &str = "/usr/bin/cargo";
pub const EBPF_RUSTC: &str = "/usr/bin/rustc";
pub const EBPF_RUST_SRC: &str = "/usr/lib/rustlib/src/rust/library";
