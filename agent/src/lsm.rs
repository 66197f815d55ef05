//! Whether BPF LSM is active on this node. Refusing AF_PACKET sockets needs it:
//! `cgroup/sock_create` does not see them (it runs for AF_INET/AF_INET6 only), the LSM
//! cgroup hook `socket_post_create` does. Raw IP sockets and bind ports are enforced
//! by cgroup hooks either way (see `datapath::Datapath::load_lsm`). The active LSMs are listed in securityfs
//! (`/sys/kernel/security/lsm`); when securityfs is not mounted there, it is mounted
//! briefly on a private temporary directory to read the list.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::Path;

/// What start-up found out about BPF LSM.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LsmStatus {
    /// `bpf` is in the active LSM list.
    pub bpf_lsm_active: bool,
    /// The active LSMs, as the kernel lists them.
    pub active: Vec<String>,
}

pub fn detect() -> Result<LsmStatus> {
    let text = match std::fs::read_to_string("/sys/kernel/security/lsm") {
        Ok(text) => text,
        Err(_) => read_via_private_mount()?,
    };
    let active: Vec<String> = text
        .trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    Ok(LsmStatus {
        bpf_lsm_active: active.iter().any(|l| l == "bpf"),
        active,
    })
}

fn read_via_private_mount() -> Result<String> {
    let dir = std::env::temp_dir().join(format!("palisade-securityfs-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = mount_and_read(&dir);
    let _ = std::fs::remove_dir(&dir);
    result
}

fn mount_and_read(dir: &Path) -> Result<String> {
    let target = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())?;
    let fstype = c"securityfs";
    // SAFETY: NUL-terminated strings that outlive the call.
    if unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    } != 0
    {
        bail!(
            "securityfs is not mounted and mounting it failed: {}",
            std::io::Error::last_os_error()
        );
    }
    let text = std::fs::read_to_string(dir.join("lsm")).context("reading the LSM list");
    // SAFETY: as above.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    text
}
