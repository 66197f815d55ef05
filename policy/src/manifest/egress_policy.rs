//! `palisade.dev/v1alpha1` EgressPolicy (namespaced): wire type, validation and
//! conversion to the model's [`EgressPolicy`]. Unknown fields anywhere in the object
//! are errors; `status` is ignored.
//!
//! ```yaml
//! spec:
//!   podSelector: {...}              # required ({}: every pod of the namespace)
//!   enforcement: Enforce            # Enforce (default) | Audit
//!   egress:                         # the allowlist (absent or empty: nothing)
//!   - name: pypi                    # optional
//!     to:                           # required, at least one; each exactly one kind:
//!     - cidr: 203.0.113.0/24        #   addresses (host bits allowed),
//!       except: [203.0.113.128/25]  #   minus these (strictly inside cidr)
//!     - fqdn: "*.pypi.org"          #   DNS names (exact or one leading *.)
//!     - namespaceSelector: {...}    #   pods, as a NetworkPolicy peer
//!       podSelector: {...}
//!     ports: [{protocol: TCP, port: 443, endPort: 443}]   # optional (every port)
//!   sockets:                        # optional socket controls
//!     allowRaw: false               # default false
//!     allowPacket: false            # default false
//!     bindPorts: [{port: 8080}]     # optional (any port)
//! ```

use super::Object;
#[cfg(feature = "schema")]
use super::admission;
use super::cidr::{parse_cidr, strictly_inside};
use super::error::{FieldError, FieldPath, Problems};
use super::fqdn::fqdn_pattern;
use super::metadata::ObjectMeta;
#[cfg(feature = "schema")]
use super::port_ranges::MAX_PORTS;
use super::port_ranges::{PortRangeWire, port_ranges};
use super::selector::{self, LabelSelectorWire};
use super::wire::{nullable, required_spec};
use crate::model::{EgressPeer, EgressPolicy, EgressRule, Enforcement, SocketRules};
use serde::Deserialize;
use serde_norway::Value;

/// Most rules an allowlist may have.
const MAX_RULES: usize = 100;
/// Most destinations a rule may have.
const MAX_PEERS: usize = 100;
/// Longest rule name.
const MAX_RULE_NAME: usize = 100;

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Spec {
    #[cfg_attr(feature = "schema", schemars(required))]
    pod_selector: Option<LabelSelectorWire>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<admission::EnforcementName>")
    )]
    enforcement: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_RULES)))]
    egress: Vec<RuleWire>,
    sockets: Option<SocketsWire>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RuleWire {
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_RULE_NAME)))]
    name: Option<String>,
    #[cfg_attr(feature = "schema", schemars(required, length(min = 1, max = MAX_PEERS)))]
    to: Option<Vec<PeerWire>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_PORTS)))]
    ports: Vec<PortRangeWire>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = admission::egress_peer_rules))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PeerWire {
    #[cfg_attr(feature = "schema", schemars(with = "Option<admission::CidrText>"))]
    cidr: Option<String>,
    #[cfg_attr(
        feature = "schema",
        schemars(
            with = "Option<Vec<admission::CidrText>>",
            length(max = admission::MAX_EXCEPT)
        )
    )]
    except: Option<Vec<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<admission::FqdnText>"))]
    fqdn: Option<String>,
    namespace_selector: Option<LabelSelectorWire>,
    pod_selector: Option<LabelSelectorWire>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SocketsWire {
    allow_raw: Option<bool>,
    allow_packet: Option<bool>,
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_PORTS)))]
    bind_ports: Option<Vec<PortRangeWire>>,
}

pub(crate) fn egress_policy(
    document: &Value,
    at: &FieldPath,
    meta: ObjectMeta,
) -> Result<Object, Vec<FieldError>> {
    let spec: Spec = required_spec(document, at)?;
    let spec_at = at.field("spec");
    let mut problems = Problems::new();
    let pod_selector = selector::required(
        spec.pod_selector,
        &spec_at.field("podSelector"),
        selector::MISSING_POD_SELECTOR,
        &mut problems,
    );
    let enforcement = match spec.enforcement.as_deref() {
        None => Enforcement::default(),
        Some(written) => problems
            .check(&spec_at.field("enforcement"), enforcement(written))
            .unwrap_or_default(),
    };
    let egress = rules(spec.egress, &spec_at.field("egress"), &mut problems);
    let sockets = spec
        .sockets
        .map(|wire| sockets(wire, &spec_at.field("sockets"), &mut problems));
    problems.finish(Object::EgressPolicy(EgressPolicy {
        namespace: meta.namespace.expect("EgressPolicy is a namespaced kind"),
        name: meta.name,
        pod_selector,
        enforcement,
        egress,
        sockets,
    }))
}

fn enforcement(written: &str) -> Result<Enforcement, String> {
    [Enforcement::Enforce, Enforcement::Audit]
        .into_iter()
        .find(|e| e.as_str() == written)
        .ok_or_else(|| {
            format!("unsupported enforcement {written:?}: must be \"Enforce\" or \"Audit\"")
        })
}

fn rules(written: Vec<RuleWire>, at: &FieldPath, problems: &mut Problems) -> Vec<EgressRule> {
    if written.len() > MAX_RULES {
        problems.add(
            at,
            format!(
                "may not have more than {MAX_RULES} rules (has {})",
                written.len()
            ),
        );
    }
    written
        .into_iter()
        .enumerate()
        .map(|(i, wire)| rule(wire, &at.index(i), problems))
        .collect()
}

fn rule(wire: RuleWire, at: &FieldPath, problems: &mut Problems) -> EgressRule {
    let name = wire.name.unwrap_or_default();
    if name.chars().count() > MAX_RULE_NAME {
        problems.add(
            &at.field("name"),
            format!("may not be longer than {MAX_RULE_NAME} characters"),
        );
    }
    let to_at = at.field("to");
    let to = match wire.to {
        None => {
            problems.add(&to_at, "required field is missing");
            Vec::new()
        }
        Some(peers) => {
            if peers.is_empty() {
                problems.add(
                    &to_at,
                    "must list at least one destination (to allow every address, write \
                     cidr: 0.0.0.0/0 and cidr: ::/0)",
                );
            } else if peers.len() > MAX_PEERS {
                problems.add(
                    &to_at,
                    format!(
                        "may not list more than {MAX_PEERS} destinations (lists {})",
                        peers.len()
                    ),
                );
            }
            peers
                .into_iter()
                .enumerate()
                .filter_map(|(i, peer)| self::peer(peer, &to_at.index(i), problems))
                .collect()
        }
    };
    let ports = port_ranges(&wire.ports, &at.field("ports"), problems);
    EgressRule { name, to, ports }
}

/// One destination: exactly one of `cidr`, `fqdn`, or pod selectors.
fn peer(wire: PeerWire, at: &FieldPath, problems: &mut Problems) -> Option<EgressPeer> {
    if wire.except.is_some() && wire.cidr.is_none() {
        problems.add(&at.field("except"), "may be specified only with cidr");
        return None;
    }
    let selects_pods = wire.namespace_selector.is_some() || wire.pod_selector.is_some();
    let kinds = usize::from(wire.cidr.is_some())
        + usize::from(wire.fqdn.is_some())
        + usize::from(selects_pods);
    if kinds != 1 {
        problems.add(
            at,
            "must specify exactly one of cidr, fqdn, or namespaceSelector/podSelector",
        );
        return None;
    }
    if let Some(written) = wire.cidr {
        let cidr = problems.check(&at.field("cidr"), parse_cidr(&written));
        let except_at = at.field("except");
        let mut except = Vec::new();
        for (i, written) in wire.except.unwrap_or_default().iter().enumerate() {
            let field = except_at.index(i);
            let Some(entry) = problems.check(&field, parse_cidr(written)) else {
                continue;
            };
            if let Some(cidr) = cidr {
                problems.check(&field, strictly_inside(entry, cidr));
            }
            except.push(entry);
        }
        return Some(EgressPeer::Cidr {
            cidr: cidr?,
            except,
        });
    }
    if let Some(written) = wire.fqdn {
        return problems
            .check(&at.field("fqdn"), fqdn_pattern(&written))
            .map(EgressPeer::Fqdn);
    }
    Some(EgressPeer::Pods {
        namespace_selector: wire
            .namespace_selector
            .map(|s| selector::convert(s, &at.field("namespaceSelector"), problems)),
        pod_selector: wire
            .pod_selector
            .map(|s| selector::convert(s, &at.field("podSelector"), problems)),
    })
}

fn sockets(wire: SocketsWire, at: &FieldPath, problems: &mut Problems) -> SocketRules {
    SocketRules {
        allow_raw: wire.allow_raw.unwrap_or(false),
        allow_packet: wire.allow_packet.unwrap_or(false),
        bind_ports: wire
            .bind_ports
            .map(|ports| port_ranges(&ports, &at.field("bindPorts"), problems)),
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::{Object, test_support};
    use crate::model::{
        Cidr, EgressPeer, EgressPolicy, Enforcement, Protocol, ProtocolPorts, SocketRules,
    };

    const HEADER: &str = "apiVersion: palisade.dev/v1alpha1\nkind: EgressPolicy\n\
                          metadata: {name: runtime-egress, namespace: team-a}\n";

    fn parse(body: &str) -> EgressPolicy {
        match test_support::parse_one("ep.yaml", &format!("{HEADER}{body}")) {
            Object::EgressPolicy(policy) => policy,
            other => panic!("not an EgressPolicy: {other:?}"),
        }
    }

    /// Asserts `body` fails with exactly these errors (field: message prefix).
    fn assert_errors(body: &str, expected: &[(&str, &str)]) {
        test_support::assert_errors(
            "ep.yaml",
            &format!("{HEADER}{body}"),
            "EgressPolicy team-a/runtime-egress",
            expected,
        );
    }

    #[test]
    fn converts_a_full_policy() {
        let policy = parse(
            "spec:
  podSelector: {matchLabels: {app: runtime}}
  enforcement: Audit
  egress:
  - name: pypi
    to:
    - fqdn: '*.pypi.org'
    - fqdn: pypi.org
    - cidr: 10.0.1.1/16
      except: [10.0.128.0/17]
    ports: [{port: 443}, {protocol: UDP, port: 3000, endPort: 3100}]
  - to: [{namespaceSelector: {matchLabels: {team: data}}, podSelector: {}}, {podSelector: {}}]
  sockets: {allowRaw: true, bindPorts: [{port: 8080}]}
",
        );
        assert_eq!(
            (policy.namespace.as_str(), policy.name.as_str()),
            ("team-a", "runtime-egress")
        );
        assert_eq!(policy.enforcement, Enforcement::Audit);
        let pypi = &policy.egress[0];
        assert_eq!(pypi.name, "pypi");
        assert!(matches!(&pypi.to[0], EgressPeer::Fqdn(p) if p.as_str() == "*.pypi.org"));
        assert_eq!(
            pypi.to[2],
            EgressPeer::Cidr {
                cidr: Cidr("10.0.1.1/16".parse().unwrap()),
                except: vec![Cidr("10.0.128.0/17".parse().unwrap())],
            }
        );
        assert_eq!(
            pypi.ports,
            [
                ProtocolPorts::single(Protocol::Tcp, 443),
                ProtocolPorts {
                    protocol: Protocol::Udp,
                    first: 3000,
                    last: 3100
                }
            ]
        );
        let pods = &policy.egress[1];
        assert!(pods.ports.is_empty());
        assert!(matches!(
            &pods.to[1],
            EgressPeer::Pods {
                namespace_selector: None,
                pod_selector: Some(_)
            }
        ));
        assert_eq!(
            policy.sockets,
            Some(SocketRules {
                allow_raw: true,
                allow_packet: false,
                bind_ports: Some(vec![ProtocolPorts::single(Protocol::Tcp, 8080)]),
            })
        );
    }

    #[test]
    fn defaults_enforce_and_an_empty_allowlist() {
        let policy = parse("spec: {podSelector: {}}");
        assert_eq!(policy.enforcement, Enforcement::Enforce);
        assert!(policy.egress.is_empty() && policy.sockets.is_none());
    }

    #[test]
    fn every_problem_names_its_field() {
        assert_errors("", &[("spec", "required field is missing")]);
        assert_errors(
            "spec: {enforcement: DryRun}",
            &[
                ("spec.podSelector", "required field is missing"),
                ("spec.enforcement", "unsupported enforcement \"DryRun\""),
            ],
        );
        assert_errors(
            "spec:
  podSelector: {}
  egress:
  - {}
  - to: []
  - to:
    - {cidr: 10.0.0.0/33}
    - {cidr: 10.0.0.0/8, except: [11.0.0.0/16, '::/0']}
    - {fqdn: '*.*.example.com'}
    - {fqdn: api.github.com, cidr: 10.0.0.0/8}
    - {except: [10.0.0.0/16]}
    - {}
    ports: [{port: 443, endPort: 80}]
  sockets: {bindPorts: [{port: 0}]}
",
            &[
                ("spec.egress[0].to", "required field is missing"),
                ("spec.egress[1].to", "must list at least one destination"),
                ("spec.egress[2].to[0].cidr", "invalid CIDR \"10.0.0.0/33\""),
                (
                    "spec.egress[2].to[1].except[0]",
                    "except entry 11.0.0.0/16 must be a strict subset",
                ),
                (
                    "spec.egress[2].to[1].except[1]",
                    "except entry ::/0 is not of the same IP family",
                ),
                (
                    "spec.egress[2].to[2].fqdn",
                    "invalid DNS name pattern \"*.*.example.com\"",
                ),
                (
                    "spec.egress[2].to[3]",
                    "must specify exactly one of cidr, fqdn",
                ),
                (
                    "spec.egress[2].to[4].except",
                    "may be specified only with cidr",
                ),
                (
                    "spec.egress[2].to[5]",
                    "must specify exactly one of cidr, fqdn",
                ),
                (
                    "spec.egress[2].ports[0].endPort",
                    "endPort 80 must be greater than or equal",
                ),
                ("spec.sockets.bindPorts[0].port", "invalid port 0"),
            ],
        );
        assert_errors(
            "spec: {podSelector: {}, egress: [{to: [{fqdn: a.b, port: 1}]}]}",
            &[("spec.egress[0].to[0].port", "unknown field")],
        );
        assert_errors(
            "spec: {podSelector: {}, sockets: {allowRaw: 'no'}}",
            &[("spec.sockets.allowRaw", "invalid type")],
        );
    }
}
