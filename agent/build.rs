//! Embeds the kernel object built by `cargo xtask build` when it exists.
//!
//! `cargo check`/`clippy` on the host crates must not need the eBPF toolchain, so a
//! missing object is not a build error: the agent then refuses to start with a
//! message saying how to build it (`cargo xtask build`).

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(palisade_ebpf_embedded)");
    println!("cargo::rerun-if-env-changed=PALISADE_EBPF_OBJECT");
    let object = std::env::var_os("PALISADE_EBPF_OBJECT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
                .join("../ebpf/target/bpfel-unknown-none/release/palisade")
        });
    println!("cargo::rerun-if-changed={}", object.display());
    if object.is_file() {
        println!("cargo::rustc-cfg=palisade_ebpf_embedded");
        println!(
            "cargo::rustc-env=PALISADE_EBPF_OBJECT_PATH={}",
            object.display()
        );
    }
}
