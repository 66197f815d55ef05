//! The kernel object (`ebpf/`), embedded at build time by `build.rs`.

use anyhow::Result;

#[cfg(palisade_ebpf_embedded)]
static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("PALISADE_EBPF_OBJECT_PATH"));

/// The ELF bytes of palisade's kernel programs.
pub fn bytes() -> Result<&'static [u8]> {
    #[cfg(palisade_ebpf_embedded)]
    {
        Ok(OBJECT)
    }
    #[cfg(not(palisade_ebpf_embedded))]
    {
        anyhow::bail!(
            "this palisade-agent was built without its kernel programs \
             (ebpf/target/bpfel-unknown-none/release/palisade was missing at build time); \
             build it with `cargo xtask build`"
        )
    }
}
