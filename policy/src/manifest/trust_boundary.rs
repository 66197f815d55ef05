//! `palisade.dev/v1alpha1` TrustBoundary (cluster-scoped): wire type, validation and
//! conversion to the model's [`TrustBoundary`]. Unknown fields anywhere in the object
//! are errors; `status` is ignored.
//!
//! ```yaml
//! spec:
//!   priority: 1000                # optional, 0..=1000 (default 1000)
//!   namespaceSelector: {...}      # required: the namespaces inside the boundary
//!   zoneLabel: tenant             # optional: namespaces with one value form a zone
//!   sharedServices:               # optional
//!   - name: dns                   # required, a DNS-1123 label, unique
//!     namespaceSelector: {...}    # required
//!     podSelector: {...}          # optional (all pods of those namespaces)
//!     ports: [{protocol: UDP, port: 53}]   # optional (every port)
//!     direction: ToService        # ToService (default) | FromService | Both
//! ```

use super::Object;
use super::admin_network_policy::priority_in_range;
#[cfg(feature = "schema")]
use super::admission;
use super::error::{FieldError, FieldPath, Problems};
use super::metadata::ObjectMeta;
use super::names;
#[cfg(feature = "schema")]
use super::port_ranges::MAX_PORTS;
use super::port_ranges::{PortRangeWire, port_ranges};
use super::selector::{self, LabelSelectorWire};
use super::wire::{nullable, required_spec};
use crate::model::{
    DEFAULT_TRUST_BOUNDARY_PRIORITY, SharedService, SharedServiceDirection, TrustBoundary,
};
use serde::Deserialize;
use serde_norway::Value;

/// Most shared services a boundary may name.
const MAX_SHARED_SERVICES: usize = 100;

const DIRECTIONS: [SharedServiceDirection; 3] = [
    SharedServiceDirection::ToService,
    SharedServiceDirection::FromService,
    SharedServiceDirection::Both,
];

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Spec {
    #[cfg_attr(feature = "schema", schemars(with = "Option<admission::Priority>"))]
    priority: Option<i64>,
    #[cfg_attr(feature = "schema", schemars(required))]
    namespace_selector: Option<LabelSelectorWire>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<admission::LabelKey>"))]
    zone_label: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(
        feature = "schema",
        schemars(
            length(max = MAX_SHARED_SERVICES),
            extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])
        )
    )]
    shared_services: Vec<SharedServiceWire>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SharedServiceWire {
    #[cfg_attr(
        feature = "schema",
        schemars(required, with = "Option<admission::Dns1123Label>")
    )]
    name: Option<String>,
    #[cfg_attr(feature = "schema", schemars(required))]
    namespace_selector: Option<LabelSelectorWire>,
    pod_selector: Option<LabelSelectorWire>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_PORTS)))]
    ports: Vec<PortRangeWire>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<admission::Direction>"))]
    direction: Option<String>,
}

pub(crate) fn trust_boundary(
    document: &Value,
    at: &FieldPath,
    meta: ObjectMeta,
) -> Result<Object, Vec<FieldError>> {
    let spec: Spec = required_spec(document, at)?;
    let spec_at = at.field("spec");
    let mut problems = Problems::new();
    let priority = priority(spec.priority, &spec_at.field("priority"), &mut problems);
    let namespace_selector = selector::required(
        spec.namespace_selector,
        &spec_at.field("namespaceSelector"),
        "required field is missing (write namespaceSelector: {} to put every namespace inside \
         the boundary)",
        &mut problems,
    );
    let zone_label = spec.zone_label.and_then(|label| {
        let valid = names::label_key(&label).map(|()| label);
        problems.check(&spec_at.field("zoneLabel"), valid)
    });
    let shared_services = shared_services(
        spec.shared_services,
        &spec_at.field("sharedServices"),
        &mut problems,
    );
    problems.finish(Object::TrustBoundary(TrustBoundary {
        name: meta.name,
        priority,
        namespace_selector,
        zone_label,
        shared_services,
    }))
}

/// `spec.priority`: 0..=1000 as AdminNetworkPolicy's, default
/// [`DEFAULT_TRUST_BOUNDARY_PRIORITY`].
fn priority(written: Option<i64>, at: &FieldPath, problems: &mut Problems) -> u32 {
    let Some(priority) = written else {
        return DEFAULT_TRUST_BOUNDARY_PRIORITY;
    };
    problems
        .check(at, priority_in_range(priority))
        .unwrap_or(DEFAULT_TRUST_BOUNDARY_PRIORITY)
}

fn shared_services(
    written: Vec<SharedServiceWire>,
    at: &FieldPath,
    problems: &mut Problems,
) -> Vec<SharedService> {
    if written.len() > MAX_SHARED_SERVICES {
        problems.add(
            at,
            format!(
                "may not list more than {MAX_SHARED_SERVICES} services (lists {})",
                written.len()
            ),
        );
    }
    let mut names_seen: Vec<String> = Vec::new();
    let mut services = Vec::with_capacity(written.len());
    for (i, wire) in written.into_iter().enumerate() {
        let at = at.index(i);
        let name_at = at.field("name");
        let name = match wire.name {
            None => {
                problems.add(&name_at, "required field is missing");
                String::new()
            }
            Some(name) => {
                if problems
                    .check(&name_at, names::dns1123_label(&name))
                    .is_some()
                    && names_seen.contains(&name)
                {
                    problems.add(&name_at, format!("duplicate shared service name {name:?}"));
                }
                names_seen.push(name.clone());
                name
            }
        };
        let namespace_selector = selector::required(
            wire.namespace_selector,
            &at.field("namespaceSelector"),
            "required field is missing",
            problems,
        );
        let pod_selector = wire
            .pod_selector
            .map(|wire| selector::convert(wire, &at.field("podSelector"), problems))
            .unwrap_or_default();
        let ports = port_ranges(&wire.ports, &at.field("ports"), problems);
        let direction = match wire.direction.as_deref() {
            None => SharedServiceDirection::ToService,
            Some(written) => problems
                .check(&at.field("direction"), direction(written))
                .unwrap_or(SharedServiceDirection::ToService),
        };
        services.push(SharedService {
            name,
            namespace_selector,
            pod_selector,
            ports,
            direction,
        });
    }
    services
}

fn direction(written: &str) -> Result<SharedServiceDirection, String> {
    DIRECTIONS
        .into_iter()
        .find(|d| d.as_str() == written)
        .ok_or_else(|| {
            format!(
                "unsupported direction {written:?}: must be \"ToService\", \"FromService\" or \
                 \"Both\""
            )
        })
}

#[cfg(test)]
mod tests {
    use crate::manifest::{Object, test_support};
    use crate::model::{
        DEFAULT_TRUST_BOUNDARY_PRIORITY, Protocol, ProtocolPorts, SharedServiceDirection,
        TrustBoundary,
    };

    const HEADER: &str = "apiVersion: palisade.dev/v1alpha1\nkind: TrustBoundary\n\
                          metadata: {name: tenants}\n";

    fn parse(body: &str) -> TrustBoundary {
        match test_support::parse_one("tb.yaml", &format!("{HEADER}{body}")) {
            Object::TrustBoundary(boundary) => boundary,
            other => panic!("not a TrustBoundary: {other:?}"),
        }
    }

    /// Asserts `body` fails with exactly these errors (field: message prefix).
    fn assert_errors(body: &str, expected: &[(&str, &str)]) {
        test_support::assert_errors(
            "tb.yaml",
            &format!("{HEADER}{body}"),
            "TrustBoundary tenants",
            expected,
        );
    }

    #[test]
    fn converts_a_full_boundary() {
        let boundary = parse(
            "spec:
  priority: 50
  namespaceSelector: {matchLabels: {palisade.dev/tenant-namespace: 'true'}}
  zoneLabel: tenant
  sharedServices:
  - name: dns
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
    podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{protocol: UDP, port: 53}, {port: 53}]
  - name: prometheus
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
    direction: FromService
",
        );
        assert_eq!(boundary.priority, 50);
        assert_eq!(boundary.zone_label.as_deref(), Some("tenant"));
        assert_eq!(boundary.shared_services.len(), 2);
        let dns = &boundary.shared_services[0];
        assert_eq!(dns.direction, SharedServiceDirection::ToService);
        assert_eq!(
            dns.ports,
            [
                ProtocolPorts::single(Protocol::Udp, 53),
                ProtocolPorts::single(Protocol::Tcp, 53)
            ]
        );
        let prometheus = &boundary.shared_services[1];
        assert!(prometheus.pod_selector.is_empty() && prometheus.ports.is_empty());
        assert_eq!(prometheus.direction, SharedServiceDirection::FromService);
    }

    #[test]
    fn defaults_priority_and_zones() {
        let boundary = parse("spec: {namespaceSelector: {}}");
        assert_eq!(boundary.priority, DEFAULT_TRUST_BOUNDARY_PRIORITY);
        assert_eq!(boundary.zone_label, None);
        assert!(boundary.shared_services.is_empty());
    }

    #[test]
    fn every_problem_names_its_field() {
        assert_errors("", &[("spec", "required field is missing")]);
        assert_errors(
            "spec: {priority: 1001, zoneLabel: 'bad key'}",
            &[
                (
                    "spec.priority",
                    "invalid priority 1001: must be between 0 and 1000",
                ),
                ("spec.namespaceSelector", "required field is missing"),
                ("spec.zoneLabel", "invalid label key \"bad key\""),
            ],
        );
        assert_errors(
            "spec:
  namespaceSelector: {}
  sharedServices:
  - {name: dns, namespaceSelector: {}, direction: Inbound, ports: [{port: 70000}]}
  - {name: dns, namespaceSelector: {}}
  - {name: Bad_Name}
  - {namespaceSelector: {matchLabels: {a: 'b c'}}}
",
            &[
                ("spec.sharedServices[0].ports[0].port", "invalid port 70000"),
                (
                    "spec.sharedServices[0].direction",
                    "unsupported direction \"Inbound\"",
                ),
                (
                    "spec.sharedServices[1].name",
                    "duplicate shared service name \"dns\"",
                ),
                (
                    "spec.sharedServices[2].name",
                    "\"Bad_Name\" is not a valid DNS-1123 label",
                ),
                (
                    "spec.sharedServices[2].namespaceSelector",
                    "required field is missing",
                ),
                ("spec.sharedServices[3].name", "required field is missing"),
                (
                    "spec.sharedServices[3].namespaceSelector.matchLabels.a",
                    "invalid label value",
                ),
            ],
        );
        assert_errors(
            "spec: {namespaceSelector: {}, zones: tenant}",
            &[("spec.zones", "unknown field")],
        );
    }
}
