//! The policy decision for a new flow of a resolved endpoint, shared by the packet
//! programs and the socket hooks: not isolated -> allowed; the node itself -> its own
//! rows or allowed; anyone else -> the peer's table, else the table for every peer,
//! else denied (fail closed). With enforcement switched off on the node, a denial
//! becomes an audit-deny (reported, passed), counted `allowed_enforcement_off`.

use palisade_abi::{
    EndpointInfo, RULE_REF_DEFAULT, direction, endpoint_flags, reason, reserved, verdict,
};

use crate::lookup;

pub struct Decision {
    /// `palisade_abi::verdict`.
    pub verdict: u8,
    pub rule_ref: u32,
    /// `palisade_abi::reason` to count.
    pub reason: u32,
    /// `reserved::ANY` when the direction is not isolated (no lookup was made).
    pub peer_identity: u32,
    /// Policy denies, passed only because enforcement is switched off.
    pub switched_off: bool,
}

#[inline(always)]
pub fn decide_flow(
    slot: u32,
    ep: &EndpointInfo,
    remote: [u8; 16],
    flow_dir: u8,
    protocol: u8,
    port: u16,
) -> Decision {
    let enforced = if flow_dir == direction::EGRESS {
        endpoint_flags::ENFORCE_EGRESS
    } else {
        endpoint_flags::ENFORCE_INGRESS
    };
    if ep.flags & enforced == 0 {
        return Decision {
            verdict: verdict::ALLOW,
            rule_ref: RULE_REF_DEFAULT,
            reason: reason::ALLOWED_NOT_ISOLATED,
            peer_identity: reserved::ANY,
            switched_off: false,
        };
    }
    let peer_identity = lookup::identity_of(slot, remote);
    let host = peer_identity == reserved::HOST;
    let entry = if host {
        // The node itself: allowed unless its own table says otherwise (cluster
        // policies may deny egress to nodes); never the table for every peer.
        lookup::peer_verdict(slot, ep.policy_id, peer_identity, flow_dir, protocol, port)
    } else {
        lookup::policy_verdict(slot, ep.policy_id, peer_identity, flow_dir, protocol, port)
    };
    let (v, rule_ref, why) = match entry {
        Some(v) if v.verdict == verdict::ALLOW => {
            let why = if v.rule_ref != RULE_REF_DEFAULT {
                reason::ALLOWED_POLICY
            } else if host {
                reason::ALLOWED_ALWAYS
            } else {
                reason::ALLOWED_NOT_ISOLATED
            };
            (verdict::ALLOW, v.rule_ref, why)
        }
        Some(v) if v.verdict == verdict::AUDIT_DENY => {
            (verdict::AUDIT_DENY, v.rule_ref, reason::AUDIT_DENIED)
        }
        Some(v) => (verdict::DENY, v.rule_ref, reason::DENIED_POLICY),
        None if host => (verdict::ALLOW, RULE_REF_DEFAULT, reason::ALLOWED_ALWAYS),
        None => (verdict::DENY, RULE_REF_DEFAULT, reason::DENIED_NO_ENTRY),
    };
    if v == verdict::DENY && crate::maps::enforcement_off() {
        return Decision {
            verdict: verdict::AUDIT_DENY,
            rule_ref,
            reason: reason::ALLOWED_ENFORCEMENT_OFF,
            peer_identity,
            switched_off: true,
        };
    }
    Decision {
        verdict: v,
        rule_ref,
        reason: why,
        peer_identity,
        switched_off: false,
    }
}
