//! Start-up checks: everything the agent needs from the kernel and its privileges,
//! each missing piece reported by name before anything is loaded.

use anyhow::{Result, bail};

/// Oldest kernel the programs are written for: BPF links for cgroups (5.7), ring
/// buffers (5.8), bounded loops and `bpf_skb_ancestor_cgroup_id`; 5.15 is the first
/// long-term kernel with all of them.
pub const MIN_KERNEL: (u32, u32) = (5, 15);

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Runs every check; the error lists all that failed.
pub fn check() -> Result<()> {
    let mut missing = Vec::new();
    if let Err(e) = check_kernel() {
        missing.push(e.to_string());
    }
    if let Err(e) = check_capabilities() {
        missing.push(e.to_string());
    }
    if !std::path::Path::new("/proc/self/mountinfo").exists() {
        missing.push("/proc is not mounted".to_string());
    }
    if missing.is_empty() {
        // Feature probes need the privileges checked above.
        missing.extend(check_bpf_features());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        bail!("start-up checks failed:\n  - {}", missing.join("\n  - "))
    }
}

fn check_kernel() -> Result<()> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let (major, minor) = parse_release(release.trim())
        .ok_or_else(|| anyhow::anyhow!("cannot parse kernel release {release:?}"))?;
    if (major, minor) < MIN_KERNEL {
        bail!(
            "kernel {major}.{minor} is too old: palisade needs Linux {}.{} or newer",
            MIN_KERNEL.0,
            MIN_KERNEL.1
        );
    }
    Ok(())
}

/// Probes the program and map types the kernel object uses.
fn check_bpf_features() -> Vec<String> {
    use aya::maps::MapType;
    use aya::programs::ProgramType;
    use aya::sys::{is_map_supported, is_program_supported};
    let mut missing = Vec::new();
    match is_program_supported(ProgramType::CgroupSkb) {
        Ok(true) => {}
        Ok(false) => missing.push("BPF program type cgroup_skb (CONFIG_CGROUP_BPF)".into()),
        Err(e) => missing.push(format!("probing BPF program type cgroup_skb: {e}")),
    }
    for (map, what) in [
        (MapType::LpmTrie, "LPM trie"),
        (MapType::LruHash, "LRU hash"),
        (MapType::RingBuf, "ring buffer"),
        (MapType::PerCpuArray, "per-CPU array"),
    ] {
        match is_map_supported(map) {
            Ok(true) => {}
            Ok(false) => missing.push(format!("BPF map type {what}")),
            Err(e) => missing.push(format!("probing BPF map type {what}: {e}")),
        }
    }
    missing
}

pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn check_capabilities() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or_else(|| anyhow::anyhow!("cannot read CapEff from /proc/self/status"))?;
    let has = |cap: u32| eff & (1u64 << cap) != 0;
    let mut lacking = Vec::new();
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        lacking.push("CAP_BPF (load programs, create maps)");
    }
    if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
        lacking.push("CAP_PERFMON (pointer-reading helpers used by the programs)");
    }
    if !has(CAP_NET_ADMIN) {
        lacking.push("CAP_NET_ADMIN (attach cgroup_skb programs)");
    }
    if lacking.is_empty() {
        Ok(())
    } else {
        bail!(
            "missing capabilities: {} (run as root or grant them)",
            lacking.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_kernel_releases() {
        assert_eq!(super::parse_release("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(super::parse_release("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(super::parse_release("garbage"), None);
    }
}
