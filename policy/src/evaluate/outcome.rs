//! What a decision reports besides its verdict, and how the verdicts of the two ends of
//! a flow combine.

use crate::compile::tables::Verdict;
use palisade_abi::reason;

/// Why a new flow was passed or dropped at one end, as the kernel counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// A policy entry allowed it.
    AllowedPolicy,
    /// No policy tier decides about the flow: the direction is not isolated for the
    /// endpoint, or not for this peer and port.
    AllowedNotIsolated,
    /// The peer is the endpoint's own node, and no cluster policy denies it.
    AllowedHost,
    /// A policy entry denied it.
    DeniedPolicy,
    /// No policy entry matched at all (fail closed).
    DeniedNoEntry,
    /// A policy entry denied it in audit mode: reported and passed.
    AuditDenied,
}

impl Reason {
    /// The `palisade_abi::reason` counter index.
    pub const fn abi(self) -> u32 {
        match self {
            Reason::AllowedPolicy => reason::ALLOWED_POLICY,
            Reason::AllowedNotIsolated => reason::ALLOWED_NOT_ISOLATED,
            Reason::AllowedHost => reason::ALLOWED_ALWAYS,
            Reason::DeniedPolicy => reason::DENIED_POLICY,
            Reason::DeniedNoEntry => reason::DENIED_NO_ENTRY,
            Reason::AuditDenied => reason::AUDIT_DENIED,
        }
    }

    /// The reason a policy entry with `verdict` gives.
    pub const fn of_entry(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Allow => Reason::AllowedPolicy,
            Verdict::Deny => Reason::DeniedPolicy,
            Verdict::AuditDeny => Reason::AuditDenied,
        }
    }

    /// The reason a policy entry with `verdict` gives, where an allow that cites no rule
    /// is a default: the own node's allowance if the peer is the own node (`host`), else
    /// no tier deciding about the flow.
    pub const fn of_row(verdict: Verdict, cites_rule: bool, host: bool) -> Self {
        match (verdict, cites_rule, host) {
            (Verdict::Allow, false, true) => Reason::AllowedHost,
            (Verdict::Allow, false, false) => Reason::AllowedNotIsolated,
            _ => Self::of_entry(verdict),
        }
    }
}

/// The verdict of a flow both of whose ends decided: `Deny` if either denies, else
/// `AuditDeny` if either audit-denies (the flow passes but is reported), else `Allow`.
pub const fn strictest(a: Verdict, b: Verdict) -> Verdict {
    const fn severity(v: Verdict) -> u8 {
        match v {
            Verdict::Allow => 0,
            Verdict::AuditDeny => 1,
            Verdict::Deny => 2,
        }
    }
    if severity(a) >= severity(b) { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_beats_audit_deny_beats_allow() {
        use Verdict::*;
        assert_eq!(strictest(Allow, Allow), Allow);
        assert_eq!(strictest(Allow, AuditDeny), AuditDeny);
        assert_eq!(strictest(AuditDeny, Allow), AuditDeny);
        assert_eq!(strictest(AuditDeny, Deny), Deny);
        assert_eq!(strictest(Deny, Allow), Deny);
    }
}
