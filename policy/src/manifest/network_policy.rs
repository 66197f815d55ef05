//! `networking.k8s.io/v1` NetworkPolicy: wire types, validation as the API server does
//! it (`ValidateNetworkPolicySpec`), defaulting, and conversion to the model. Unknown
//! fields anywhere in the object are errors; `status` is ignored.

use super::Object;
use super::cidr::{parse_cidr, strictly_inside};
use super::error::{FieldError, FieldPath, Problems};
use super::metadata::ObjectMeta;
use super::ports::{self, IntOrString};
use super::selector::{self, LabelSelectorWire};
use super::wire::{nullable, required_spec};
use crate::model::{Direction, NetworkPolicy, Peer, PolicyRule, PortSpec, Protocol};
use serde::Deserialize;
use serde_norway::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    /// Required by the API; `null` is treated as missing.
    pod_selector: Option<LabelSelectorWire>,
    #[serde(default, deserialize_with = "nullable")]
    policy_types: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    ingress: Vec<IngressRule>,
    #[serde(default, deserialize_with = "nullable")]
    egress: Vec<EgressRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngressRule {
    #[serde(default, deserialize_with = "nullable")]
    from: Vec<PeerWire>,
    #[serde(default, deserialize_with = "nullable")]
    ports: Vec<PortWire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EgressRule {
    #[serde(default, deserialize_with = "nullable")]
    to: Vec<PeerWire>,
    #[serde(default, deserialize_with = "nullable")]
    ports: Vec<PortWire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PeerWire {
    pod_selector: Option<LabelSelectorWire>,
    namespace_selector: Option<LabelSelectorWire>,
    ip_block: Option<IpBlockWire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IpBlockWire {
    cidr: String,
    #[serde(default, deserialize_with = "nullable")]
    except: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PortWire {
    protocol: Option<String>,
    port: Option<IntOrString>,
    end_port: Option<i64>,
}

pub(crate) fn network_policy(
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
    let policy_types = policy_types(
        &spec.policy_types,
        !spec.egress.is_empty(),
        &spec_at.field("policyTypes"),
        &mut problems,
    );
    let ingress_at = spec_at.field("ingress");
    let ingress = spec
        .ingress
        .into_iter()
        .enumerate()
        .map(|(i, r)| rule(r.from, "from", r.ports, &ingress_at.index(i), &mut problems))
        .collect();
    let egress_at = spec_at.field("egress");
    let egress = spec
        .egress
        .into_iter()
        .enumerate()
        .map(|(i, r)| rule(r.to, "to", r.ports, &egress_at.index(i), &mut problems))
        .collect();

    problems.finish(Object::NetworkPolicy(NetworkPolicy {
        namespace: meta.namespace.expect("NetworkPolicy is a namespaced kind"),
        name: meta.name,
        pod_selector,
        policy_types,
        ingress,
        egress,
    }))
}

/// `policyTypes`, defaulted when absent or empty exactly as Kubernetes'
/// `SetDefaults_NetworkPolicy` does: Ingress always, plus Egress if the policy has at
/// least one egress rule (`len(spec.Egress) != 0`; so `egress: []` does not add it).
/// The result is in canonical order, Ingress before Egress.
fn policy_types(
    written: &[String],
    has_egress_rules: bool,
    at: &FieldPath,
    problems: &mut Problems,
) -> Vec<Direction> {
    if written.is_empty() {
        let mut defaulted = vec![Direction::Ingress];
        if has_egress_rules {
            defaulted.push(Direction::Egress);
        }
        return defaulted;
    }
    if written.len() > 2 {
        problems.add(at, "may not list more than two policy types");
    }
    let mut directions = Vec::new();
    for (i, text) in written.iter().enumerate() {
        let direction = match text.as_str() {
            "Ingress" => Direction::Ingress,
            "Egress" => Direction::Egress,
            other => {
                problems.add(
                    &at.index(i),
                    format!("unsupported policy type {other:?}: must be \"Ingress\" or \"Egress\""),
                );
                continue;
            }
        };
        if !directions.contains(&direction) {
            directions.push(direction);
        }
    }
    directions.sort();
    directions
}

/// One ingress (`from`) or egress (`to`) rule at `at`.
fn rule(
    peers: Vec<PeerWire>,
    peers_field: &str,
    ports: Vec<PortWire>,
    at: &FieldPath,
    problems: &mut Problems,
) -> PolicyRule {
    let peers_at = at.field(peers_field);
    let ports_at = at.field("ports");
    PolicyRule {
        peers: peers
            .into_iter()
            .enumerate()
            .filter_map(|(i, p)| peer(p, &peers_at.index(i), problems))
            .collect(),
        ports: ports
            .iter()
            .enumerate()
            .map(|(i, p)| port(p, &ports_at.index(i), problems))
            .collect(),
    }
}

fn peer(wire: PeerWire, at: &FieldPath, problems: &mut Problems) -> Option<Peer> {
    let selectors =
        usize::from(wire.pod_selector.is_some()) + usize::from(wire.namespace_selector.is_some());
    match wire.ip_block {
        Some(_) if selectors > 0 => {
            problems.add(
                at,
                "ipBlock may not be combined with podSelector or namespaceSelector in one peer",
            );
            None
        }
        Some(block) => ip_block(block, &at.field("ipBlock"), problems),
        None if selectors == 0 => {
            problems.add(at, "must specify podSelector, namespaceSelector or ipBlock");
            None
        }
        None => Some(Peer::Pods {
            namespace_selector: wire
                .namespace_selector
                .map(|s| selector::convert(s, &at.field("namespaceSelector"), problems)),
            pod_selector: wire
                .pod_selector
                .map(|s| selector::convert(s, &at.field("podSelector"), problems)),
        }),
    }
}

/// `ipBlock`: `cidr` parsed as written (host bits allowed, as the API server allows
/// them); each `except` entry must be of the same family and strictly inside `cidr`.
fn ip_block(wire: IpBlockWire, at: &FieldPath, problems: &mut Problems) -> Option<Peer> {
    let cidr = problems.check(&at.field("cidr"), parse_cidr(&wire.cidr));
    let except_at = at.field("except");
    let mut except = Vec::new();
    for (i, written) in wire.except.iter().enumerate() {
        let field = except_at.index(i);
        let Some(entry) = problems.check(&field, parse_cidr(written)) else {
            continue;
        };
        if let Some(cidr) = cidr {
            problems.check(&field, strictly_inside(entry, cidr));
        }
        except.push(entry);
    }
    Some(Peer::IpBlock {
        cidr: cidr?,
        except,
    })
}

/// One entry of `ports`. Meaningful only if no problem was recorded.
fn port(wire: &PortWire, at: &FieldPath, problems: &mut Problems) -> PortSpec {
    let protocol = problems
        .check(
            &at.field("protocol"),
            ports::protocol(wire.protocol.as_deref()),
        )
        .unwrap_or(Protocol::Tcp);
    let port = wire
        .port
        .as_ref()
        .and_then(|port| problems.check(&at.field("port"), ports::port_ref(port)));
    let end_port = wire
        .end_port
        .and_then(|end| problems.check(&at.field("endPort"), end_port(end, wire.port.as_ref())));
    PortSpec {
        protocol,
        port,
        end_port,
    }
}

/// `endPort`: a port number, allowed only after a numeric `port` and not below it.
fn end_port(end: i64, start: Option<&IntOrString>) -> Result<u16, String> {
    match start {
        None => Err("may not be specified when port is not specified".to_string()),
        Some(IntOrString::String(_)) => {
            Err("may not be specified when port is not a number".to_string())
        }
        Some(IntOrString::Int(start)) if end < *start => Err(format!(
            "endPort {end} must be greater than or equal to port {start}"
        )),
        Some(IntOrString::Int(_)) => ports::port_number(end),
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::{Object, parse_documents, test_support};
    use crate::model::{
        Cidr, Direction, LabelSelector, NetworkPolicy, Peer, PolicyRule, PortRef, PortSpec,
        Protocol,
    };

    const HEADER: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                          metadata: {name: allow-web, namespace: x}\n";

    /// Parses a policy whose `spec` (and anything after it) is `body`.
    fn parse(body: &str) -> NetworkPolicy {
        match test_support::parse_one("policies.yaml", &format!("{HEADER}{body}")) {
            Object::NetworkPolicy(policy) => policy,
            other => panic!("not a NetworkPolicy: {other:?}"),
        }
    }

    /// Every error of a policy whose `spec` (and anything after it) is `body`.
    fn errors(body: &str) -> Vec<String> {
        test_support::errors("policies.yaml", &format!("{HEADER}{body}"))
    }

    /// Asserts `body` fails with exactly one error, at `field`, whose message starts
    /// with `message`.
    fn assert_error(body: &str, field: &str, message: &str) {
        test_support::assert_errors(
            "policies.yaml",
            &format!("{HEADER}{body}"),
            "NetworkPolicy x/allow-web",
            &[(field, message)],
        );
    }

    fn cidr(text: &str) -> Cidr {
        Cidr(text.parse().unwrap())
    }

    fn tcp(port: u16) -> PortSpec {
        PortSpec {
            protocol: Protocol::Tcp,
            port: Some(PortRef::Number(port)),
            end_port: None,
        }
    }

    #[test]
    fn converts_a_full_policy() {
        let policy = parse(
            "spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress, Ingress]
  ingress:
  - from:
    - podSelector: {matchLabels: {role: client}}
    - namespaceSelector: {matchLabels: {team: a}}
      podSelector: {}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports:
    - port: 80
    - {protocol: UDP, port: dns}
    - {protocol: SCTP, port: 1000, endPort: 2000}
    - protocol: TCP
  egress:
  - {}
status: {conditions: []}
",
        );
        let app_web = LabelSelector {
            match_labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(policy.namespace, "x");
        assert_eq!(policy.name, "allow-web");
        assert_eq!(policy.pod_selector, app_web);
        assert_eq!(policy.policy_types, [Direction::Ingress, Direction::Egress]);
        let rule = &policy.ingress[0];
        assert_eq!(rule.peers.len(), 3);
        assert!(matches!(
            &rule.peers[0],
            Peer::Pods { namespace_selector: None, pod_selector: Some(s) }
                if s.match_labels.get("role").map(String::as_str) == Some("client")
        ));
        assert!(matches!(
            &rule.peers[1],
            Peer::Pods { namespace_selector: Some(ns), pod_selector: Some(pods) }
                if ns.match_labels.len() == 1 && pods.is_empty()
        ));
        assert_eq!(
            rule.peers[2],
            Peer::IpBlock {
                cidr: cidr("10.0.0.0/8"),
                except: vec![cidr("10.1.0.0/16")],
            }
        );
        assert_eq!(
            rule.ports,
            [
                tcp(80),
                PortSpec {
                    protocol: Protocol::Udp,
                    port: Some(PortRef::Name("dns".into())),
                    end_port: None,
                },
                PortSpec {
                    protocol: Protocol::Sctp,
                    port: Some(PortRef::Number(1000)),
                    end_port: Some(2000),
                },
                PortSpec {
                    protocol: Protocol::Tcp,
                    port: None,
                    end_port: None,
                },
            ]
        );
        assert_eq!(policy.egress, [PolicyRule::default()]);
    }

    #[test]
    fn cidr_with_host_bits_is_accepted_as_written() {
        let policy = parse(
            "spec:\n  podSelector: {}\n  egress:\n  - to:\n    - ipBlock: \
             {cidr: 10.0.1.1/4, except: [10.0.1.2/32]}",
        );
        let Peer::IpBlock {
            cidr: written,
            except,
        } = &policy.egress[0].peers[0]
        else {
            panic!("not an ipBlock")
        };
        assert_eq!(written.to_string(), "10.0.1.1/4");
        assert_eq!(written.network().to_string(), "0.0.0.0/4");
        assert_eq!(except, &[cidr("10.0.1.2/32")]);
        // IPv6 too.
        parse(
            "spec:\n  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {cidr: '::/0', except: ['fd00::/8']}}]",
        );
    }

    #[test]
    fn policy_types_default_as_kubernetes_defaults_them() {
        let types = |spec: &str| parse(&format!("spec:\n  podSelector: {{}}\n{spec}")).policy_types;
        use Direction::{Egress, Ingress};
        assert_eq!(types(""), [Ingress]);
        assert_eq!(types("  ingress: [{}]"), [Ingress]);
        assert_eq!(types("  egress: [{}]"), [Ingress, Egress]);
        assert_eq!(
            types("  policyTypes: []\n  egress: [{}]"),
            [Ingress, Egress]
        );
        assert_eq!(
            types("  policyTypes: null\n  egress: [{}]"),
            [Ingress, Egress]
        );
        // Kubernetes adds Egress only for a non-empty `egress` (`len(spec.Egress) != 0`).
        assert_eq!(types("  egress: []"), [Ingress]);
        assert_eq!(types("  policyTypes: [Egress]"), [Egress]);
        assert_eq!(types("  policyTypes: [Egress, Ingress]"), [Ingress, Egress]);
        assert_eq!(types("  policyTypes: [Ingress, Ingress]"), [Ingress]);
    }

    #[test]
    fn absent_null_and_empty_rules() {
        for spec in ["", "  ingress: null", "  ingress: []"] {
            let policy = parse(&format!("spec:\n  podSelector: {{}}\n{spec}"));
            assert!(policy.ingress.is_empty(), "{spec}");
        }
        let policy = parse(
            "spec:\n  podSelector: {}\n  ingress:\n  - from: []\n    ports: []\n  \
             - from: null\n    ports: null\n  - {}",
        );
        assert_eq!(policy.ingress, vec![PolicyRule::default(); 3]);
    }

    #[test]
    fn pod_selector_is_required() {
        assert_error(
            "spec: {ingress: []}",
            "spec.podSelector",
            "required field is missing",
        );
        assert_error(
            "spec: {podSelector: null}",
            "spec.podSelector",
            "required field is missing",
        );
        assert_error("metadata2: {}", "metadata2", "unknown field");
        assert_error("spec: null", "spec", "required field is missing");
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_path() {
        assert_error(
            "spec:\n  podSelector: {}\n  ingress:\n  - from:\n    - ipblock: {cidr: 10.0.0.0/8}",
            "spec.ingress[0].from[0].ipblock",
            "unknown field (expected one of `podSelector`, `namespaceSelector`, `ipBlock`)",
        );
        assert_error(
            "spec: {podSelector: {matchLabels: {a: b}, matchLabel: {}}}",
            "spec.podSelector.matchLabel",
            "unknown field",
        );
        assert_error(
            "spec: {podSelector: {}, egress: [{to: [], port: [80]}]}",
            "spec.egress[0].port",
            "unknown field",
        );
        assert_error(
            "spec: {podSelector: {}, ingres: []}",
            "spec.ingres",
            "unknown field",
        );
        assert_error(
            "spec: {podSelector: {}}\nextra: 1",
            "extra",
            "unknown field",
        );
    }

    #[test]
    fn metadata_fields_and_status_are_accepted() {
        let yaml = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  \
                    name: p\n  namespace: x\n  uid: 6a1c-77\n  resourceVersion: '9'\n  generation: 2\n  \
                    creationTimestamp: '2024-01-01T00:00:00Z'\n  annotations: {a: b}\n  \
                    managedFields: [{manager: kubectl, fieldsV1: {f:spec: {}}}]\n\
                    spec: {podSelector: {}}\nstatus: {anything: [goes]}";
        if let Err(errors) = parse_documents("p.yaml", yaml) {
            panic!("{errors}");
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        assert_error(
            "spec: {podSelector: {}, ingress: {from: []}}",
            "spec.ingress",
            "invalid type: map, expected a sequence",
        );
        assert_error(
            "spec: {podSelector: {}, ingress: [{ports: [{port: [80]}]}]}",
            "spec.ingress[0].ports[0].port",
            "invalid type: sequence, expected a port number or a port name",
        );
    }

    #[test]
    fn policy_type_errors() {
        assert_error(
            "spec: {podSelector: {}, policyTypes: [Ingress, ingress]}",
            "spec.policyTypes[1]",
            "unsupported policy type \"ingress\"",
        );
        assert_error(
            "spec: {podSelector: {}, policyTypes: [Ingress, Egress, Ingress]}",
            "spec.policyTypes",
            "may not list more than two policy types",
        );
    }

    #[test]
    fn peer_errors() {
        assert_error(
            "spec: {podSelector: {}, ingress: [{from: [{podSelector: {}}, {}]}]}",
            "spec.ingress[0].from[1]",
            "must specify podSelector, namespaceSelector or ipBlock",
        );
        assert_error(
            "spec: {podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}, \
             namespaceSelector: {}}]}]}",
            "spec.egress[0].to[0]",
            "ipBlock may not be combined with podSelector or namespaceSelector",
        );
        assert_error(
            "spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: \
             {matchExpressions: [{key: team, operator: In, values: []}]}}]}]}",
            "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values",
            "must be non-empty when operator is In",
        );
        assert_error(
            "spec: {podSelector: {matchLabels: {'a/b/c': x}}}",
            "spec.podSelector.matchLabels.a/b/c",
            "invalid label key \"a/b/c\"",
        );
        assert_error(
            "spec: {podSelector: {matchLabels: {app: 'web server'}}}",
            "spec.podSelector.matchLabels.app",
            "invalid label value \"web server\"",
        );
        assert_error(
            "spec: {podSelector: {}, egress: [{to: [{podSelector: \
             {matchExpressions: [{key: tier, operator: Exists, values: [web]}]}}]}]}",
            "spec.egress[0].to[0].podSelector.matchExpressions[0].values",
            "must be empty when operator is Exists",
        );
        assert_error(
            "spec: {podSelector: {matchExpressions: [{key: tier, operator: Equals, values: [a]}]}}",
            "spec.podSelector.matchExpressions[0].operator",
            "unsupported operator \"Equals\": must be In, NotIn, Exists or DoesNotExist",
        );
        assert_error(
            "spec: {podSelector: {matchExpressions: [{operator: Exists}]}}",
            "spec.podSelector.matchExpressions[0].key",
            "required field is missing",
        );
    }

    #[test]
    fn ip_block_errors() {
        let peer = |block: &str| {
            format!(
                "spec:\n  podSelector: {{}}\n  ingress:\n  - from:\n    - podSelector: {{}}\n    \
                 - ipBlock: {block}"
            )
        };
        let at = "spec.ingress[0].from[1].ipBlock";
        assert_error(
            &peer("{cidr: 10.0.0.0/33}"),
            &format!("{at}.cidr"),
            "invalid CIDR \"10.0.0.0/33\": prefix length 33 is longer than 32",
        );
        assert_error(
            &peer("{cidr: 10.0.0.0}"),
            &format!("{at}.cidr"),
            "invalid CIDR \"10.0.0.0\": expected an address and a prefix length",
        );
        assert_error(
            &peer("{except: []}"),
            &format!("{at}.cidr"),
            "required field is missing",
        );
        assert_error(
            &peer("{cidr: 10.0.0.0/8, except: [10.0.0.0/8]}"),
            &format!("{at}.except[0]"),
            "except entry 10.0.0.0/8 must be a strict subset of cidr 10.0.0.0/8",
        );
        assert_error(
            &peer("{cidr: 10.0.0.0/8, except: [10.1.0.0/16, 11.0.0.0/16]}"),
            &format!("{at}.except[1]"),
            "except entry 11.0.0.0/16 must be a strict subset of cidr 10.0.0.0/8",
        );
        assert_error(
            &peer("{cidr: 10.0.0.0/8, except: ['fd00::/64']}"),
            &format!("{at}.except[0]"),
            "except entry fd00::/64 is not of the same IP family as cidr 10.0.0.0/8",
        );
        assert_error(
            &peer("{cidr: 10.0.0.0/8, except: [bogus]}"),
            &format!("{at}.except[0]"),
            "invalid CIDR \"bogus\"",
        );
        assert_error(
            &peer("{cidr: 10.0.0.300/8}"),
            &format!("{at}.cidr"),
            "invalid CIDR \"10.0.0.300/8\": \"10.0.0.300\" is not an IP address",
        );
        assert_error(
            &peer("{cidr: 10.0.0.0/x}"),
            &format!("{at}.cidr"),
            "invalid CIDR \"10.0.0.0/x\": prefix length \"x\" is not a number",
        );
        assert_error(
            &peer("{cidr: 'fd00::/129'}"),
            &format!("{at}.cidr"),
            "invalid CIDR \"fd00::/129\": prefix length 129 is longer than 128",
        );
        // Host bits in `except` are fine too; only the network counts.
        parse(&peer("{cidr: 10.0.1.1/4, except: [10.0.1.2/24]}"));
    }

    #[test]
    fn port_errors() {
        let ports =
            |entry: &str| format!("spec: {{podSelector: {{}}, egress: [{{ports: [{entry}]}}]}}");
        let at = "spec.egress[0].ports[0]";
        let cases = [
            (
                "{protocol: ICMP}",
                "protocol",
                "unsupported protocol \"ICMP\"",
            ),
            (
                "{protocol: tcp, port: 80}",
                "protocol",
                "unsupported protocol \"tcp\"",
            ),
            (
                "{port: 0}",
                "port",
                "invalid port 0: must be between 1 and 65535",
            ),
            ("{port: 65536}", "port", "invalid port 65536"),
            ("{port: '80'}", "port", "port \"80\" is a quoted number"),
            ("{port: Web}", "port", "invalid port name \"Web\""),
            (
                "{port: web--ui}",
                "port",
                "invalid port name \"web--ui\": may not contain '--'",
            ),
            ("{port: a-very-long-port-name}", "port", "invalid port name"),
            (
                "{endPort: 90}",
                "endPort",
                "may not be specified when port is not specified",
            ),
            (
                "{port: http, endPort: 90}",
                "endPort",
                "may not be specified when port is not a number",
            ),
            (
                "{port: 90, endPort: 80}",
                "endPort",
                "endPort 80 must be greater than or equal to port 90",
            ),
            (
                "{port: 90, endPort: 65536}",
                "endPort",
                "invalid port 65536",
            ),
            (
                "{port: 80, endPort: '90'}",
                "endPort",
                "invalid type: string \"90\"",
            ),
        ];
        for (entry, field, message) in cases {
            assert_error(&ports(entry), &format!("{at}.{field}"), message);
        }
        let policy = parse(&ports("{port: 80, endPort: 80}"));
        assert_eq!(policy.egress[0].ports[0].end_port, Some(80));
    }

    #[test]
    fn every_problem_of_a_policy_is_reported() {
        let errors = errors(
            "spec:\n  podSelector: {matchLabels: {'-x': y}}\n  policyTypes: [Sideways]\n  \
             ingress:\n  - from: [{}]\n    ports: [{port: 0}]\n  egress:\n  - to: \
             [{ipBlock: {cidr: nope}}]",
        );
        let fields: Vec<&str> = errors
            .iter()
            .map(|e| e.split(": ").nth(2).unwrap_or_default())
            .collect();
        assert_eq!(
            fields,
            [
                "spec.podSelector.matchLabels.-x",
                "spec.policyTypes[0]",
                "spec.ingress[0].from[0]",
                "spec.ingress[0].ports[0].port",
                "spec.egress[0].to[0].ipBlock.cidr",
            ]
        );
    }
}
