//! What the API server can check of palisade's own kinds before it stores them: the
//! OpenAPI bounds and the CEL rules (`x-kubernetes-validations`) that the wire types of
//! `trust_boundary`, `egress_policy` and their shared pieces carry into their JSON
//! schemas (feature `schema`; the CRDs are built from them by `palisade-crds`).
//!
//! Each rule mirrors a check of the parser, named next to it, with the same meaning, so
//! an object the API server admits fails the compiler only where admission cannot look
//! (label keys of `matchLabels`, the 253-character limit of a label key's prefix).
//! The schema-only types below stand in for a wire field's `String` or `i64` in the
//! schema (`#[schemars(with = ...)]`); they are never built.
//!
//! CEL needs cost bounds: every string a rule reads has a `maxLength`, and every list
//! around a rule a `maxItems` (the parser's limits, plus `except`'s, which the parser
//! does not bound). CIDR rules use the Kubernetes CEL CIDR library (`isCIDR`, `cidr`,
//! `containsCIDR`, `prefixLength`): Kubernetes 1.33 or later (the library exists since
//! 1.31, and `containsCIDR` compares correctly only since 1.33, kubernetes#130450).

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};
use std::borrow::Cow;

/// The longest CIDR text: an IPv6 address with an embedded IPv4 part (45 characters),
/// `/`, and a 3-digit prefix length.
pub(crate) const MAX_CIDR: usize = 49;
/// Most `except` entries of one CIDR destination (a cost bound for the CEL rule over
/// them; the parser has no limit).
pub(crate) const MAX_EXCEPT: usize = 32;
/// The longest label key: a 253-character DNS subdomain prefix, `/`, a 63-character
/// name.
const MAX_LABEL_KEY: usize = 317;

/// A DNS-1123 label (`names::dns1123_label`).
const DNS1123_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A label key (`names::label_key`): an optional DNS-1123 subdomain prefix and `/`,
/// then a name of 1-63 characters.
const LABEL_KEY_PATTERN: &str = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?\
                                 [A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
/// A label value (`names::label_value`): empty, or 1-63 characters.
const LABEL_VALUE_PATTERN: &str = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";

/// One `x-kubernetes-validations` entry.
fn rule(rule: &str, message: &str) -> Value {
    json!({"rule": rule, "message": message})
}

/// One `x-kubernetes-validations` entry reported at `field_path` (relative to the
/// object the rule is on), for rules that look at several fields.
fn rule_at(rule: &str, message: &str, field_path: &str) -> Value {
    json!({"rule": rule, "message": message, "fieldPath": field_path})
}

/// Appends `rules` to the schema's `x-kubernetes-validations`.
fn add_rules(schema: &mut Schema, rules: impl IntoIterator<Item = Value>) {
    let entry = schema
        .ensure_object()
        .entry("x-kubernetes-validations")
        .or_insert_with(|| json!([]));
    if let Value::Array(list) = entry {
        list.extend(rules);
    }
}

/// Declares a schema-only type: its name and its schema.
macro_rules! schema_type {
    ($(#[$doc:meta])* $name:ident, $schema:expr) => {
        $(#[$doc])*
        pub(crate) enum $name {}

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $schema
            }
        }
    };
}

schema_type!(
    /// A port number (`ports::port_number`): 1..=65535.
    PortNumber,
    json_schema!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535})
);

schema_type!(
    /// `protocol` (`ports::protocol`), case-sensitive; absent is TCP.
    ProtocolName,
    json_schema!({"type": "string", "maxLength": 4, "enum": ["TCP", "UDP", "SCTP"]})
);

schema_type!(
    /// `spec.priority` of a TrustBoundary (`admin_network_policy::priority_in_range`).
    Priority,
    json_schema!({"type": "integer", "format": "int32", "minimum": 0, "maximum": 1000})
);

schema_type!(
    /// `sharedServices[].direction` (`trust_boundary::direction`).
    Direction,
    json_schema!({"type": "string", "maxLength": 11, "enum": ["ToService", "FromService", "Both"]})
);

schema_type!(
    /// `spec.enforcement` of an EgressPolicy (`egress_policy::enforcement`).
    EnforcementName,
    json_schema!({"type": "string", "maxLength": 7, "enum": ["Enforce", "Audit"]})
);

schema_type!(
    /// A DNS-1123 label (`names::dns1123_label`).
    Dns1123Label,
    json_schema!({"type": "string", "minLength": 1, "maxLength": 63, "pattern": DNS1123_LABEL_PATTERN})
);

schema_type!(
    /// A label key (`names::label_key`); the 253-character limit of its prefix is left
    /// to the compiler.
    LabelKey,
    json_schema!({"type": "string", "minLength": 1, "maxLength": MAX_LABEL_KEY, "pattern": LABEL_KEY_PATTERN})
);

schema_type!(
    /// A label value (`names::label_value`).
    LabelValue,
    json_schema!({"type": "string", "maxLength": 63, "pattern": LABEL_VALUE_PATTERN})
);

schema_type!(
    /// A selector requirement's `operator` (`selector::operator`).
    SelectorOperatorName,
    json_schema!({"type": "string", "maxLength": 12, "enum": ["In", "NotIn", "Exists", "DoesNotExist"]})
);

schema_type!(
    /// `matchLabels` (`selector::convert`): values checked here, keys by the compiler (a
    /// CEL rule over map keys would need a bound on their number).
    MatchLabels,
    json_schema!({
        "type": "object",
        "additionalProperties": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE_PATTERN}
    })
);

schema_type!(
    /// A CIDR as `cidr::parse_cidr` reads it: host bits may be set (`10.0.1.1/4`), as
    /// `isCIDR` accepts them.
    CidrText,
    {
        let mut schema = json_schema!({"type": "string", "minLength": 1, "maxLength": MAX_CIDR});
        add_rules(
            &mut schema,
            [rule(
                "isCIDR(self)",
                "must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32 (host bits may be set)",
            )],
        );
        schema
    }
);

/// One DNS label of an FQDN pattern (`fqdn::fqdn_pattern`).
const FQDN_LABEL: &str = "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?";

schema_type!(
    /// An FQDN pattern (`fqdn::fqdn_pattern`): a lowercase DNS name, optionally with one
    /// leading `*.` label, at least two labels after a wildcard, no trailing dot.
    FqdnText,
    {
        let mut schema = json_schema!({"type": "string", "minLength": 1, "maxLength": 253});
        add_rules(
            &mut schema,
            [
                rule(
                    "self.matches('^([*][.])?[^*]*$')",
                    "'*' is allowed only as the whole first label, as in *.example.com",
                ),
                rule(
                    &format!("self.matches('^([*][.])?{FQDN_LABEL}([.]{FQDN_LABEL})*$')"),
                    "must be a lowercase DNS name: dot-separated labels of 1-63 letters, \
                     digits and '-', not starting or ending with '-', and no trailing dot",
                ),
                rule(
                    "!self.startsWith('*.') || self.matches('^[*][.][^.]+[.]')",
                    "a wildcard needs a domain of at least two labels, as in *.example.com",
                ),
            ],
        );
        schema
    }
);

/// A `ports` entry (`port_ranges::port_range`): `endPort` only with `port`, and not
/// below it.
pub(crate) fn port_range_rules(schema: &mut Schema) {
    add_rules(
        schema,
        [
            rule_at(
                "!has(self.endPort) || has(self.port)",
                "endPort may be specified only when port is specified",
                ".endPort",
            ),
            rule_at(
                "!has(self.endPort) || !has(self.port) || self.endPort >= self.port",
                "endPort must be greater than or equal to port",
                ".endPort",
            ),
        ],
    );
}

/// An EgressPolicy destination (`egress_policy::peer`): exactly one kind, `except`
/// only with `cidr`, each `except` strictly inside `cidr` and of its family.
pub(crate) fn egress_peer_rules(schema: &mut Schema) {
    add_rules(
        schema,
        [
            rule(
                "(has(self.cidr) ? 1 : 0) + (has(self.fqdn) ? 1 : 0) + \
                 ((has(self.namespaceSelector) || has(self.podSelector)) ? 1 : 0) == 1",
                "must specify exactly one of cidr, fqdn, or namespaceSelector/podSelector",
            ),
            rule_at(
                "!has(self.except) || has(self.cidr)",
                "except may be specified only with cidr",
                ".except",
            ),
            rule_at(
                "!has(self.except) || !has(self.cidr) || !isCIDR(self.cidr) || \
                 self.except.all(e, !isCIDR(e) || \
                 (cidr(self.cidr).containsCIDR(cidr(e)) && \
                 cidr(e).prefixLength() > cidr(self.cidr).prefixLength()))",
                "every except entry must be a strict subset of cidr, of the same IP family",
                ".except",
            ),
        ],
    );
}
