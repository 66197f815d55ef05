//! Reads flow events from the kernel ring buffer and turns them into structured log
//! lines (pod names and policy rules resolved).

use crate::status::Shared;
use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use palisade_abi::{FlowEvent, direction, is_v4_mapped, verdict};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tokio::io::unix::AsyncFd;

pub async fn run(ring: RingBuf<MapData>, shared: Shared) -> Result<()> {
    // SAFETY: the ring buffer owns its fd and the AsyncFd owns the ring buffer.
    let mut fd = unsafe { AsyncFd::register(ring)? };
    loop {
        let mut guard = fd.readable_mut().await?;
        let ring = guard.get_inner_mut();
        while let Some(item) = ring.next() {
            if item.len() < std::mem::size_of::<FlowEvent>() {
                continue;
            }
            // SAFETY: the kernel wrote a FlowEvent (checked length); read unaligned.
            let event: FlowEvent =
                unsafe { std::ptr::read_unaligned(item.as_ptr() as *const FlowEvent) };
            log_event(&event, &shared);
        }
        guard.clear_ready();
    }
}

fn log_event(e: &FlowEvent, shared: &Shared) {
    let names = shared.names.read().expect("names lock");
    let pod = names
        .pods_by_cgroup
        .get(&e.cgroup_id)
        .map(|p| p.to_string())
        .unwrap_or_else(|| format!("cgroup:{}", e.cgroup_id));
    let rule = names
        .rules
        .get(&e.generation)
        .and_then(|rules| rules.get(e.rule_ref as usize))
        .map(|r| {
            format!(
                "{}/{} {}/{} {}[{}] {}",
                r.tier,
                r.kind,
                r.namespace,
                r.name,
                r.direction.as_str(),
                r.rule,
                r.action
            )
        })
        .unwrap_or_else(|| "default deny (no rule allows it)".into());
    let dir = if e.direction == direction::EGRESS {
        "egress"
    } else {
        "ingress"
    };
    let verdict = match e.verdict {
        verdict::AUDIT_DENY => "audit-deny",
        verdict::ALLOW => "allow",
        _ => "deny",
    };
    tracing::warn!(
        event = "flow",
        verdict,
        direction = dir,
        pod = %pod,
        local = %format!("{}:{}", addr(&e.local_addr), e.local_port),
        remote = %format!("{}:{}", addr(&e.remote_addr), e.remote_port),
        protocol = e.protocol,
        identity = e.identity,
        peer_identity = e.peer_identity,
        rule = %rule,
        generation = e.generation,
        "flow {verdict}"
    );
}

fn addr(a: &[u8; 16]) -> IpAddr {
    if is_v4_mapped(a) {
        IpAddr::V4(Ipv4Addr::new(a[12], a[13], a[14], a[15]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*a))
    }
}
