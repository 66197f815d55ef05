//! Cgroup links: attach and pin a new one, or swap the program behind an existing
//! pinned link in place (`BPF_LINK_UPDATE`), so a restarted or upgraded agent never
//! opens a window with no program attached.
//!
//! aya 0.14 has no public API for `BPF_LINK_UPDATE` nor for the fd of a pinned link,
//! so both syscalls are made here directly.

use anyhow::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_LINK_DETACH: libc::c_long = 34;

/// `union bpf_attr` for BPF_OBJ_GET.
#[repr(C)]
#[derive(Default)]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// `union bpf_attr` for BPF_LINK_DETACH.
#[repr(C)]
#[derive(Default)]
struct LinkDetachAttr {
    link_fd: u32,
}

/// `union bpf_attr` for BPF_LINK_UPDATE.
#[repr(C)]
#[derive(Default)]
struct LinkUpdateAttr {
    link_fd: u32,
    new_prog_fd: u32,
    flags: u32,
    old_prog_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a properly laid out prefix of `union bpf_attr` and its size is
    // passed along; the kernel checks the rest.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Opens a pinned BPF object.
pub fn open_pinned(path: &Path) -> Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())?;
    let mut attr = ObjGetAttr {
        pathname: c.as_ptr() as u64,
        ..Default::default()
    };
    let fd = bpf(BPF_OBJ_GET, &mut attr)
        .with_context(|| format!("opening pinned object {}", path.display()))?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Replaces the program of the pinned link at `pin` with `program`, atomically.
pub fn replace_program(pin: &Path, program: BorrowedFd<'_>) -> Result<()> {
    let link = open_pinned(pin)?;
    let mut attr = LinkUpdateAttr {
        link_fd: link.as_raw_fd() as u32,
        new_prog_fd: program.as_raw_fd() as u32,
        ..Default::default()
    };
    bpf(BPF_LINK_UPDATE, &mut attr)
        .with_context(|| format!("BPF_LINK_UPDATE on {}", pin.display()))?;
    Ok(())
}

/// Detaches the pinned link at `pin` from its hook at once (`BPF_LINK_DETACH`; the
/// link stays, defunct, until its pin goes). Unpinning alone detaches too, but the
/// kernel finishes that from a work queue after the last reference is dropped, so the
/// program may still run for a moment after the unpin returns.
pub fn detach_pinned(pin: &Path) -> Result<()> {
    let link = open_pinned(pin)?;
    let mut attr = LinkDetachAttr {
        link_fd: link.as_raw_fd() as u32,
    };
    bpf(BPF_LINK_DETACH, &mut attr)
        .with_context(|| format!("BPF_LINK_DETACH on {}", pin.display()))?;
    Ok(())
}
