//! Which events a `GET /events` client wants, from its query parameters. Pure.
//!
//! Parameters (each may repeat, and each value may be a comma-separated list; values
//! of one parameter are alternatives, different parameters must all match):
//! - `namespace=NS`: the local pod or the peer pod is in NS;
//! - `pod=NS/NAME` or `pod=NAME` (any namespace): the local or the peer pod;
//! - `verdict=deny|audit-deny|allow`;
//! - `policy=NAME`, `policy=NS/NAME` or `policy=KIND/NS/NAME` (`KIND/NAME` for
//!   cluster-scoped kinds, case-insensitive kind): a policy in `decided_by`;
//! - `last=N` (at most [`MAX_LAST`]): first replay up to N of the most recent matching
//!   events the agent still holds, then follow.
//!
//! Anything else is refused with a message naming the parameter.

use super::record::FlowRecord;
use thiserror::Error;

/// Most events a client may ask to replay.
pub const MAX_LAST: usize = 10_000;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub namespaces: Vec<String>,
    /// (namespace if given, name).
    pub pods: Vec<(Option<String>, String)>,
    pub verdicts: Vec<String>,
    /// (kind if given, namespace if given, name).
    pub policies: Vec<(Option<String>, Option<String>, String)>,
    pub last: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("query parameter {param}={value:?}: {why}")]
pub struct FilterError {
    pub param: String,
    pub value: String,
    pub why: String,
}

const VERDICTS: [&str; 3] = ["deny", "audit-deny", "allow"];

impl EventFilter {
    /// Parses decoded query pairs.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, FilterError> {
        let mut filter = Self::default();
        for (param, value) in pairs {
            let bad = |why: &str| FilterError {
                param: param.clone(),
                value: value.clone(),
                why: why.into(),
            };
            if param == "last" {
                let n: usize = value
                    .parse()
                    .map_err(|_| bad("expected a number of events"))?;
                if n > MAX_LAST {
                    return Err(bad(&format!("at most {MAX_LAST}")));
                }
                filter.last = n;
                continue;
            }
            for item in value.split(',').map(str::trim) {
                if item.is_empty() {
                    return Err(bad("empty value"));
                }
                match param.as_str() {
                    "namespace" => filter.namespaces.push(item.into()),
                    "pod" => filter.pods.push(match item.split_once('/') {
                        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                            (Some(ns.into()), name.into())
                        }
                        Some(_) => return Err(bad("expected NAME or NAMESPACE/NAME")),
                        None => (None, item.into()),
                    }),
                    "verdict" => {
                        if !VERDICTS.contains(&item) {
                            return Err(bad("expected deny, audit-deny or allow"));
                        }
                        filter.verdicts.push(item.into());
                    }
                    "policy" => {
                        let parts: Vec<&str> = item.split('/').collect();
                        if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
                            return Err(bad(
                                "expected NAME, NAMESPACE/NAME or KIND/NAMESPACE/NAME",
                            ));
                        }
                        filter.policies.push(match parts[..] {
                            [name] => (None, None, name.into()),
                            [ns_or_kind, name] => (None, Some(ns_or_kind.into()), name.into()),
                            [kind, ns, name] => (Some(kind.into()), Some(ns.into()), name.into()),
                            _ => unreachable!("1 to 3 parts"),
                        });
                    }
                    _ => {
                        return Err(bad(
                            "unknown parameter (known: namespace, pod, verdict, policy, last)",
                        ));
                    }
                }
            }
        }
        Ok(filter)
    }

    pub fn matches(&self, r: &FlowRecord) -> bool {
        let sides = [
            (r.local.namespace.as_deref(), r.local.pod.as_deref()),
            (r.peer.namespace.as_deref(), r.peer.pod.as_deref()),
        ];
        let namespace_ok = self.namespaces.is_empty()
            || self
                .namespaces
                .iter()
                .any(|ns| sides.iter().any(|(n, _)| *n == Some(ns.as_str())));
        let pod_ok = self.pods.is_empty()
            || self.pods.iter().any(|(ns, name)| {
                sides.iter().any(|(n, p)| {
                    *p == Some(name.as_str()) && ns.as_ref().is_none_or(|ns| *n == Some(ns))
                })
            });
        let verdict_ok = self.verdicts.is_empty() || self.verdicts.contains(&r.verdict);
        let policy_ok = self.policies.is_empty()
            || self.policies.iter().any(|(kind, scope, name)| {
                r.decided_by.iter().any(|d| {
                    if d.name != *name {
                        return false;
                    }
                    match (kind, scope) {
                        (None, None) => true,
                        // NS/NAME, or KIND/NAME for a cluster-scoped policy.
                        (None, Some(scope)) => {
                            d.namespace.as_deref() == Some(scope.as_str())
                                || (d.namespace.is_none() && d.kind.eq_ignore_ascii_case(scope))
                        }
                        (Some(kind), Some(ns)) => {
                            d.kind.eq_ignore_ascii_case(kind)
                                && d.namespace.as_deref() == Some(ns.as_str())
                        }
                        (Some(_), None) => false,
                    }
                })
            });
        namespace_ok && pod_ok && verdict_ok && policy_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::record::{DecidedBy, LocalEnd, PeerEnd};

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn record() -> FlowRecord {
        FlowRecord {
            kind: "flow".into(),
            time: "t".into(),
            verdict: "deny".into(),
            direction: "egress".into(),
            protocol: "TCP".into(),
            port: 80,
            local: LocalEnd {
                namespace: Some("tenant".into()),
                pod: Some("client".into()),
                identity: 300,
                cgroup_id: 1,
                address: None,
                port: 0,
            },
            peer: PeerEnd {
                namespace: Some("shop".into()),
                pod: Some("db".into()),
                identity: 301,
                address: "10.0.0.3".parse().unwrap(),
                port: 80,
            },
            decided_by: vec![DecidedBy {
                side: "egress".into(),
                tier: "networkpolicy".into(),
                kind: "NetworkPolicy".into(),
                namespace: Some("tenant".into()),
                name: "fence".into(),
                rule: None,
                action: "Deny".into(),
            }],
            generation: 1,
            socket: None,
        }
    }

    fn ok(list: &[(&str, &str)]) -> bool {
        EventFilter::parse(&pairs(list)).unwrap().matches(&record())
    }

    #[test]
    fn filters_match_either_side_and_combine() {
        assert!(ok(&[]));
        assert!(ok(&[("namespace", "shop")]));
        assert!(ok(&[("namespace", "nope,tenant")]));
        assert!(!ok(&[("namespace", "nope")]));
        assert!(ok(&[("pod", "db")]));
        assert!(ok(&[("pod", "tenant/client")]));
        assert!(!ok(&[("pod", "shop/client")]));
        assert!(ok(&[("verdict", "deny")]));
        assert!(!ok(&[("verdict", "allow"), ("verdict", "audit-deny")]));
        assert!(ok(&[("policy", "fence")]));
        assert!(ok(&[("policy", "tenant/fence")]));
        assert!(ok(&[("policy", "networkpolicy/tenant/fence")]));
        assert!(!ok(&[("policy", "AdminNetworkPolicy/fence")]));
        assert!(!ok(&[("policy", "shop/fence")]));
        assert!(!ok(&[("namespace", "shop"), ("verdict", "allow")]));
    }

    #[test]
    fn bad_parameters_are_named() {
        let err = EventFilter::parse(&pairs(&[("verdict", "maybe")])).unwrap_err();
        assert!(err.to_string().contains("verdict=\"maybe\""), "{err}");
        assert!(EventFilter::parse(&pairs(&[("colour", "red")])).is_err());
        assert!(EventFilter::parse(&pairs(&[("pod", "/x")])).is_err());
        assert!(EventFilter::parse(&pairs(&[("last", "99999999")])).is_err());
        assert_eq!(
            EventFilter::parse(&pairs(&[("last", "5")])).unwrap().last,
            5
        );
    }
}
