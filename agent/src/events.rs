//! Flow events: read from the kernel ring buffer, named (pods, policy rules), logged
//! as structured lines, and published to the event stream (`--events-addr`,
//! `GET /events`) that `palisadectl observe` follows.
//!
//! - `record`: what an event says, resolved (the JSON contract of the stream);
//! - `filter`: the stream's query parameters;
//! - `hub`: fan-out to stream clients, with a replay buffer;
//! - `stream`: the HTTP endpoint;
//! - `clock`: kernel timestamps to wall-clock time.

mod clock;
pub mod filter;
pub mod hub;
pub mod record;
pub mod stream;

use crate::status::Shared;
use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use hub::EventHub;
use palisade_abi::FlowEvent;
use record::FlowRecord;
use std::sync::Arc;
use tokio::io::unix::AsyncFd;

pub async fn run(ring: RingBuf<MapData>, shared: Shared, hub: Arc<EventHub>) -> Result<()> {
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
            let time = clock::rfc3339(clock::wall_time(event.timestamp_ns));
            let record = {
                let names = shared.names.read().expect("names lock");
                FlowRecord::resolve(&event, &names, time)
            };
            log(&record);
            hub.publish(record);
        }
        guard.clear_ready();
    }
}

/// One structured log line per event (`event=flow`): denials as warnings, allowed
/// flows (with `--allow-events`) as information.
fn log(r: &FlowRecord) {
    let pod = r.local_name();
    let peer = r.peer_name();
    let local = match r.local.address {
        Some(a) => std::net::SocketAddr::new(a, r.local.port).to_string(),
        None => "-".into(),
    };
    let remote = std::net::SocketAddr::new(r.peer.address, r.peer.port).to_string();
    let rule = describe_rule(r);
    let verdict = r.verdict.as_str();
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                event = "flow",
                verdict,
                direction = %r.direction,
                pod = %pod,
                peer = %peer,
                local = %local,
                remote = %remote,
                protocol = %r.protocol,
                port = r.port,
                identity = r.local.identity,
                peer_identity = r.peer.identity,
                rule = %rule,
                generation = r.generation,
                "flow {verdict}"
            )
        };
    }
    if verdict == "allow" {
        emit!(info);
    } else {
        emit!(warn);
    }
}

/// `networkpolicy/NetworkPolicy ns/name egress[0] Allow`, the isolating policies of a
/// default deny, or what the verdict was when nothing is known.
pub fn describe_rule(r: &FlowRecord) -> String {
    if r.decided_by.is_empty() {
        return match r.verdict.as_str() {
            "allow" => "allowed (no rule needed)".into(),
            _ => "default deny (no rule allows it)".into(),
        };
    }
    r.decided_by
        .iter()
        .map(|d| {
            let name = match &d.namespace {
                Some(ns) => format!("{ns}/{}", d.name),
                None => d.name.clone(),
            };
            match d.rule {
                Some(rule) => format!(
                    "{}/{} {name} {}[{rule}] {}",
                    d.tier, d.kind, d.side, d.action
                ),
                None => format!("{}/{} {name} isolates {}", d.tier, d.kind, d.side),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
