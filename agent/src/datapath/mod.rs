//! The kernel side of the agent: loads palisade's programs with their maps pinned
//! (adopting maps a previous agent pinned), attaches the programs at the protected
//! cgroup root through pinned links, and hands out the map handles.
//!
//! Start-up order matters: tables are published (`TableWriter::apply`) before the
//! programs are attached, so the first packet a program sees is decided by the
//! current policy; on restart, the old programs keep running on the old tables until
//! `attach` swaps the new programs in with `BPF_LINK_UPDATE`.
//!
//! The socket controls' LSM program (`lsm_cgroup/socket_post_create`, the only hook
//! that sees AF_PACKET sockets) needs BPF LSM: it is loaded by [`Datapath::load_lsm`]
//! only where BPF LSM is active, and what happened is kept in
//! [`Datapath::packet_socket_control`] for start-up logs and `/status`.

mod links;
pub use links::detach_pinned;
mod sock_hooks;
pub mod tables;
pub mod upgrade;

use crate::ebpf_object;
use crate::pins::PinLayout;
use anyhow::{Context, Result};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::{
    CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, CgroupSockAddr, LsmCgroup,
    links::FdLink,
};
use aya::{Ebpf, EbpfLoader};
use palisade_abi::{map_names, program_names};
use std::os::fd::AsFd;
use std::path::Path;
use tables::TableWriter;

/// aya-log's reader of the programs' log ring buffer.
pub type KernelLogger = aya_log::EbpfLogger<&'static dyn log::Log>;

/// Names of `palisade_abi::reason` codes, by index.
pub const REASON_NAMES: [&str; palisade_abi::reason::COUNT as usize] = [
    "allowed_policy",
    "allowed_conntrack",
    "allowed_not_isolated",
    "allowed_always",
    "unknown_endpoint",
    "denied_policy",
    "denied_no_entry",
    "audit_denied",
    "not_ip",
    "conntrack_insert_failed",
    "event_dropped",
    "denied_fragment",
    "event_rate_limited",
    "allowed_related_icmp",
    "conntrack_created",
    "conntrack_removed",
    "conntrack_miss_established",
    "denied_socket",
    "audit_denied_socket",
    "allowed_enforcement_off",
];

/// The conntrack table, for counting its live entries (see `standalone::conntrack`).
pub type ConntrackMap = aya::maps::HashMap<MapData, palisade_abi::CtKey, palisade_abi::CtValue>;

pub struct Datapath {
    ebpf: Ebpf,
    pub tables: TableWriter,
    /// Taken by the event reader.
    pub events: Option<RingBuf<MapData>>,
    counters: PerCpuArray<MapData, u64>,
    /// aya-log's reader for the programs' log statements; must stay alive.
    pub logger: Option<KernelLogger>,
    /// Taken by whoever watches conntrack occupancy.
    pub conntrack: Option<ConntrackMap>,
    /// How AF_PACKET sockets are refused on this node: `enforced (...)` or
    /// `unavailable: <reason>` (set by [`Datapath::load_lsm`]).
    pub packet_socket_control: String,
    lsm_loaded: bool,
}

/// Pin suffix of the LSM program's link.
const LSM_HOOK_PIN: &str = "lsm-socket_post_create";

/// How a program ended up attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attachment {
    /// A new link was created and pinned.
    Attached,
    /// An existing pinned link now runs the freshly loaded program.
    Replaced,
}

impl Datapath {
    /// Packets per `palisade_abi::reason`, summed over CPUs, by reason name.
    pub fn counters(&self) -> Result<std::collections::BTreeMap<&'static str, u64>> {
        let mut out = std::collections::BTreeMap::new();
        for (index, name) in REASON_NAMES.iter().enumerate() {
            let per_cpu = self
                .counters
                .get(&(index as u32), 0)
                .context("reading PALISADE_COUNTERS")?;
            out.insert(*name, per_cpu.iter().sum());
        }
        Ok(out)
    }

    /// A loaded program by name (`palisade_abi::program_names`), e.g. for
    /// `BPF_PROG_TEST_RUN` in benchmarks.
    pub fn program(&self, name: &str) -> Result<&CgroupSkb> {
        Ok(self
            .ebpf
            .program(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?)
    }

    /// Loads the programs, creating or adopting the pinned maps under `layout`.
    pub fn load(layout: &PinLayout) -> Result<Self> {
        Self::load_with_conntrack(layout, palisade_abi::capacity::CONNTRACK)
    }

    /// [`load`](Self::load), creating the conntrack table with `conntrack_max`
    /// entries. A pinned table is adopted whatever its size (see
    /// [`conntrack_max_entries`](Self::conntrack_max_entries)).
    pub fn load_with_conntrack(layout: &PinLayout, conntrack_max: u32) -> Result<Self> {
        layout.create_dirs()?;
        let object = ebpf_object::bytes()?;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(map_names::CONNTRACK, conntrack_max)
            .default_map_pin_directory(layout.maps_dir())
            .load(object)
            .context(
                "loading palisade's kernel object (needs CAP_BPF, ring buffers, LPM tries \
                 and BPF links: Linux 5.15 or newer)",
            )?;
        let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
            Ok(logger) => Some(logger),
            Err(err) => {
                tracing::warn!(error = %err, "kernel program logs are unavailable");
                None
            }
        };
        for name in [program_names::SKB_EGRESS, program_names::SKB_INGRESS] {
            let program: &mut CgroupSkb = program_mut(&mut ebpf, name)?;
            program
                .load()
                .with_context(|| format!("verifying and loading program {name}"))?;
        }
        for (name, _) in sock_hooks::SOCK_ADDR_HOOKS
            .into_iter()
            .chain(sock_hooks::BIND_HOOKS)
        {
            let program: &mut CgroupSockAddr = program_mut(&mut ebpf, name)?;
            program
                .load()
                .with_context(|| format!("verifying and loading program {name}"))?;
        }
        let program: &mut CgroupSock = program_mut(&mut ebpf, program_names::SOCK_CREATE)?;
        program.load().with_context(|| {
            format!(
                "verifying and loading program {}",
                program_names::SOCK_CREATE
            )
        })?;
        let tables = TableWriter {
            generation: take_map(&mut ebpf, map_names::GENERATION)?,
            config: take_map(&mut ebpf, map_names::NODE_CONFIG)?,
            endpoints: take_map(&mut ebpf, map_names::ENDPOINTS)?,
            local_addrs: take_map(&mut ebpf, map_names::LOCAL_ADDRS)?,
            ipcache: take_map(&mut ebpf, map_names::IPCACHE)?,
            ipcache4: take_map(&mut ebpf, map_names::IPCACHE4)?,
            policy: take_map(&mut ebpf, map_names::POLICY)?,
            endpoint_addrs: take_map(&mut ebpf, map_names::ENDPOINT_ADDRS)?,
            services: take_map(&mut ebpf, map_names::SERVICES)?,
            service_backends: take_map(&mut ebpf, map_names::SERVICE_BACKENDS)?,
            ipcache_hosts: take_map(&mut ebpf, map_names::IPCACHE_HOSTS)?,
            bind_ports: take_map(&mut ebpf, map_names::BIND_PORTS)?,
            shadow: [None, None],
        };
        let events = Some(take_map(&mut ebpf, map_names::EVENTS)?);
        let counters = take_map(&mut ebpf, map_names::COUNTERS)?;
        let mut conntrack: ConntrackMap = take_map(&mut ebpf, map_names::CONNTRACK)?;
        // Before any program of this version sees a packet (see `upgrade`).
        upgrade::adopt_conntrack(layout, &mut conntrack)?;
        let conntrack = Some(conntrack);
        Ok(Self {
            ebpf,
            tables,
            events,
            counters,
            logger,
            conntrack,
            packet_socket_control: "unavailable: BPF LSM not checked".into(),
            lsm_loaded: false,
        })
    }

    /// Start-up of the socket controls, for every mode: finds out whether BPF LSM is
    /// active, loads the AF_PACKET program where it can, and says at start-up what is
    /// and is not enforced on this node (the same goes into `/status`).
    pub fn start_socket_controls(
        &mut self,
    ) -> (
        Option<crate::lsm::LsmStatus>,
        crate::status::SocketControlsStatus,
    ) {
        let lsm = match crate::lsm::detect() {
            Ok(lsm) => {
                if lsm.bpf_lsm_active {
                    tracing::info!(active = %lsm.active.join(","), "BPF LSM is active");
                } else {
                    tracing::warn!(
                        active = %lsm.active.join(","),
                        "BPF LSM is not active on this node (add `bpf` to the kernel's lsm= \
                         list): raw and AF_PACKET socket controls cannot be enforced here"
                    );
                }
                Some(lsm)
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not determine whether BPF LSM is active");
                None
            }
        };
        self.load_lsm(lsm.as_ref().map(|l| l.bpf_lsm_active));
        let socket_controls = crate::status::SocketControlsStatus::new(&self.packet_socket_control);
        if self.packet_socket_control.starts_with("unavailable") {
            tracing::warn!(
                packet_sockets = %socket_controls.packet_sockets,
                "AF_PACKET sockets cannot be refused on this node; raw sockets and bind ports \
                 are enforced"
            );
        } else {
            tracing::info!(packet_sockets = %socket_controls.packet_sockets, "socket controls");
        }
        (lsm, socket_controls)
    }

    /// Loads the LSM program refusing AF_PACKET sockets, if `bpf_lsm_active` (see
    /// `crate::lsm`). Never fails: what happened is in `packet_socket_control`, and
    /// the other programs enforce everything else either way.
    pub fn load_lsm(&mut self, bpf_lsm_active: Option<bool>) {
        self.packet_socket_control = match bpf_lsm_active {
            None => "unavailable: could not determine whether BPF LSM is active".into(),
            Some(false) => "unavailable: BPF LSM is not active on this node (`bpf` is not in \
                            the kernel's lsm= list)"
                .into(),
            Some(true) => match self.try_load_lsm() {
                Ok(()) => {
                    self.lsm_loaded = true;
                    format!("enforced (lsm_cgroup/{})", program_names::LSM_SOCKET_HOOK)
                }
                Err(e) => format!("unavailable: {e:#}"),
            },
        };
    }

    fn try_load_lsm(&mut self) -> Result<()> {
        let btf = aya::Btf::from_sys_fs().context("reading the kernel's BTF")?;
        let program: &mut LsmCgroup =
            program_mut(&mut self.ebpf, program_names::LSM_SOCKET_POST_CREATE)?;
        program
            .load(program_names::LSM_SOCKET_HOOK, &btf)
            .context("loading the BPF_LSM_CGROUP program (Linux 6.0 or newer)")
    }

    /// Attaches every program at `cgroup_root` (id `cgroup_id`), or swaps them into
    /// the links a previous agent pinned there.
    pub fn attach(
        &mut self,
        layout: &PinLayout,
        cgroup_root: &Path,
        cgroup_id: u64,
    ) -> Result<Vec<(&'static str, Attachment)>> {
        let cgroup = std::fs::File::open(cgroup_root)
            .with_context(|| format!("opening cgroup {}", cgroup_root.display()))?;
        let at = |name: &str| format!("attaching {name} to cgroup {}", cgroup_root.display());
        let mut done = Vec::new();
        for (name, attach_type, hook) in [
            (
                program_names::SKB_EGRESS,
                CgroupSkbAttachType::Egress,
                "egress",
            ),
            (
                program_names::SKB_INGRESS,
                CgroupSkbAttachType::Ingress,
                "ingress",
            ),
        ] {
            let program: &mut CgroupSkb = program_mut(&mut self.ebpf, name)?;
            let how =
                replace_or_attach(program, &layout.link(cgroup_id, hook), CgroupSkb::fd, |p| {
                    let id = p
                        .attach(&cgroup, attach_type, CgroupAttachMode::Single)
                        .with_context(|| at(name))?;
                    Ok(p.take_link(id)?.try_into()?)
                })?;
            done.push((hook, how));
        }
        for (name, hook) in sock_hooks::SOCK_ADDR_HOOKS
            .into_iter()
            .chain(sock_hooks::BIND_HOOKS)
        {
            let program: &mut CgroupSockAddr = program_mut(&mut self.ebpf, name)?;
            let pin = layout.link(cgroup_id, hook);
            let how = replace_or_attach(program, &pin, CgroupSockAddr::fd, |p| {
                let id = p
                    .attach(&cgroup, CgroupAttachMode::Single)
                    .with_context(|| at(name))?;
                Ok(p.take_link(id)?.try_into()?)
            })?;
            done.push((hook, how));
        }
        {
            let (name, hook) = (program_names::SOCK_CREATE, sock_hooks::SOCK_CREATE_HOOK);
            let program: &mut CgroupSock = program_mut(&mut self.ebpf, name)?;
            let pin = layout.link(cgroup_id, hook);
            let how = replace_or_attach(program, &pin, CgroupSock::fd, |p| {
                let id = p
                    .attach(&cgroup, CgroupAttachMode::Single)
                    .with_context(|| at(name))?;
                Ok(p.take_link(id)?.try_into()?)
            })?;
            done.push((hook, how));
        }
        if self.lsm_loaded {
            let name = program_names::LSM_SOCKET_POST_CREATE;
            let program: &mut LsmCgroup = program_mut(&mut self.ebpf, name)?;
            let pin = layout.link(cgroup_id, LSM_HOOK_PIN);
            let how = replace_or_attach(program, &pin, LsmCgroup::fd, |p| {
                let id = p.attach(&cgroup).with_context(|| at(name))?;
                Ok(p.take_link(id)?.into())
            })?;
            done.push((LSM_HOOK_PIN, how));
        }
        Ok(done)
    }
}

/// Puts `program` behind the link pinned at `pin`: swaps it into that link
/// (BPF_LINK_UPDATE, no gap) if one is pinned there, else attaches it with `attach` and
/// pins the new link. `fd` is the program type's `fd` method.
fn replace_or_attach<P>(
    program: &mut P,
    pin: &Path,
    fd: fn(&P) -> std::result::Result<&aya::programs::ProgramFd, aya::programs::ProgramError>,
    attach: impl FnOnce(&mut P) -> Result<FdLink>,
) -> Result<Attachment> {
    if pin.exists() {
        links::replace_program(pin, fd(program)?.as_fd())?;
        return Ok(Attachment::Replaced);
    }
    pin_link(attach(program)?, pin)?;
    Ok(Attachment::Attached)
}

fn pin_link(link: FdLink, pin: &Path) -> Result<()> {
    link.pin(pin)
        .with_context(|| format!("pinning link {}", pin.display()))?;
    Ok(())
}

fn program_mut<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} missing from the kernel object"))?;
    Ok(program.try_into()?)
}

fn take_map<T>(ebpf: &mut Ebpf, name: &str) -> Result<T>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .with_context(|| format!("map {name} missing from the kernel object"))?;
    T::try_from(map).with_context(|| format!("map {name} has an unexpected type"))
}
