//! A cgroup_skb program that is not palisade's, attached the way systemd (IP
//! accounting and filtering of units) or a CNI attaches them: `BPF_PROG_ATTACH` with
//! `BPF_F_ALLOW_MULTI` on a cgroup. Tests attach one, run the agent through start,
//! restart and cleanup, and check that it stayed attached and in force.
//!
//! The program is two instructions, `r0 = VERDICT; exit`: `pass_all` lets every
//! packet through, `drop_all` drops every one (so its effect is visible with a probe).
//! Detached and closed on drop.

use anyhow::{Context, Result, bail};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_SKB: u32 = 8;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Which direction the program is attached for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkbDirection {
    /// `BPF_CGROUP_INET_INGRESS`.
    Ingress = 0,
    /// `BPF_CGROUP_INET_EGRESS`.
    Egress = 1,
}

/// A foreign program attached to one cgroup.
pub struct ForeignProgram {
    program: OwnedFd,
    cgroup: File,
    direction: SkbDirection,
    id: u32,
    attached: bool,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The first fields of `struct bpf_prog_info`.
#[repr(C)]
#[derive(Default)]
struct ProgInfoHead {
    prog_type: u32,
    id: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, initialised bpf_attr prefix of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            std::mem::size_of::<T>(),
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl ForeignProgram {
    /// Loads a program that passes every packet and attaches it to `cgroup`.
    pub fn pass_all(cgroup: &Path, direction: SkbDirection) -> Result<Self> {
        Self::attach(cgroup, direction, 1)
    }

    /// Loads a program that drops every packet and attaches it to `cgroup`.
    pub fn drop_all(cgroup: &Path, direction: SkbDirection) -> Result<Self> {
        Self::attach(cgroup, direction, 0)
    }

    fn attach(cgroup: &Path, direction: SkbDirection, verdict: u8) -> Result<Self> {
        // mov r0, VERDICT (BPF_ALU64 | BPF_MOV | BPF_K = 0xb7); exit (0x95).
        let insns: [u64; 2] = [0xb7 | (u64::from(verdict) << 32), 0x95];
        let license = b"GPL\0";
        let mut name = [0u8; 16];
        name[..12].copy_from_slice(b"foreign_test");
        let mut load = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_SKB,
            insn_cnt: 2,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name,
            expected_attach_type: direction as u32,
            ..Default::default()
        };
        let fd = bpf(BPF_PROG_LOAD, &mut load).context("loading the foreign cgroup_skb program")?;
        // SAFETY: a new fd the kernel just returned, owned by nobody else.
        let program = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let mut head = ProgInfoHead::default();
        let mut info = InfoAttr {
            bpf_fd: program.as_raw_fd() as u32,
            info_len: std::mem::size_of::<ProgInfoHead>() as u32,
            info: std::ptr::from_mut(&mut head) as u64,
        };
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut info).context("reading the foreign program's id")?;
        let cgroup_dir =
            File::open(cgroup).with_context(|| format!("opening cgroup {}", cgroup.display()))?;
        let mut attach = AttachAttr {
            target_fd: cgroup_dir.as_raw_fd() as u32,
            attach_bpf_fd: program.as_raw_fd() as u32,
            attach_type: direction as u32,
            attach_flags: BPF_F_ALLOW_MULTI,
            ..Default::default()
        };
        bpf(BPF_PROG_ATTACH, &mut attach)
            .with_context(|| format!("attaching the foreign program to {}", cgroup.display()))?;
        Ok(Self {
            program,
            cgroup: cgroup_dir,
            direction,
            id: head.id,
            attached: true,
        })
    }

    /// The program's kernel id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Whether the program is still attached to its cgroup (directly, not inherited).
    pub fn is_attached(&self) -> Result<bool> {
        Ok(attached_program_ids(&self.cgroup, self.direction)?.contains(&self.id))
    }

    /// Detaches the program (also done on drop).
    pub fn detach(mut self) -> Result<()> {
        self.detach_now()
    }

    fn detach_now(&mut self) -> Result<()> {
        if !self.attached {
            return Ok(());
        }
        self.attached = false;
        let mut detach = AttachAttr {
            target_fd: self.cgroup.as_raw_fd() as u32,
            attach_bpf_fd: self.program.as_raw_fd() as u32,
            attach_type: self.direction as u32,
            ..Default::default()
        };
        bpf(BPF_PROG_DETACH, &mut detach).context("detaching the foreign program")?;
        Ok(())
    }
}

impl Drop for ForeignProgram {
    fn drop(&mut self) {
        if let Err(e) = self.detach_now() {
            eprintln!("palisade-lab: {e:#}");
        }
    }
}

/// Ids of the programs attached directly to `cgroup` for `direction` (through
/// `BPF_PROG_ATTACH` or a link).
pub fn attached_program_ids(cgroup: &File, direction: SkbDirection) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut query = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: direction as u32,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    match bpf(BPF_PROG_QUERY, &mut query) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
            bail!("more than {} programs on one cgroup", ids.len())
        }
        Err(e) => return Err(e).context("querying a cgroup's programs"),
    }
    ids.truncate(query.prog_cnt as usize);
    Ok(ids)
}
