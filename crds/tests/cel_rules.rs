//! The CEL rules of the CRDs, evaluated by a real CEL interpreter (with the Kubernetes
//! CIDR library functions, see `support/kube_cel.rs`) on good and bad objects: every
//! bad one is refused with the rule's message at the right field, every good one
//! admitted; and on a corpus of objects, admission and the parser agree.

mod support;

use palisade_policy::manifest::parse_documents;
use serde_json::{Value, json};
use support::kube_cel::{self, Violation};

const BAD_CIDR: &str = "must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32 (host bits may be set)";
const EXCEPT_OUTSIDE: &str =
    "every except entry must be a strict subset of cidr, of the same IP family";
const EXCEPT_ALONE: &str = "except may be specified only with cidr";
const ONE_KIND: &str = "must specify exactly one of cidr, fqdn, or namespaceSelector/podSelector";
const END_BELOW: &str = "endPort must be greater than or equal to port";
const END_ALONE: &str = "endPort may be specified only when port is specified";
const STAR: &str = "'*' is allowed only as the whole first label, as in *.example.com";
const DNS_NAME: &str = "must be a lowercase DNS name: dot-separated labels of 1-63 letters, \
                        digits and '-', not starting or ending with '-', and no trailing dot";
const WILDCARD_DOMAIN: &str =
    "a wildcard needs a domain of at least two labels, as in *.example.com";

fn egress_policy(spec: Value) -> Value {
    json!({
        "apiVersion": "palisade.dev/v1alpha1",
        "kind": "EgressPolicy",
        "metadata": {"name": "p", "namespace": "team-a"},
        "spec": spec,
    })
}

fn trust_boundary(spec: Value) -> Value {
    json!({
        "apiVersion": "palisade.dev/v1alpha1",
        "kind": "TrustBoundary",
        "metadata": {"name": "tenants"},
        "spec": spec,
    })
}

/// An EgressPolicy with one rule to these destinations.
fn to(peers: Value) -> Value {
    egress_policy(json!({"podSelector": {}, "egress": [{"to": peers}]}))
}

fn violations(object: &Value) -> Vec<Violation> {
    let schema = support::object_schema(object["kind"].as_str().unwrap());
    kube_cel::validate(&schema, object)
}

fn violation(path: &str, message: &str) -> Violation {
    Violation {
        path: path.to_string(),
        message: message.to_string(),
    }
}

#[track_caller]
fn assert_refused(object: &Value, expected: &[(&str, &str)]) {
    let expected: Vec<Violation> = expected.iter().map(|(p, m)| violation(p, m)).collect();
    assert_eq!(violations(object), expected, "{}", object["spec"]);
}

#[track_caller]
fn assert_admitted(object: &Value) {
    assert_eq!(violations(object), [], "{}", object["spec"]);
}

#[test]
fn cidrs_are_checked_and_host_bits_are_accepted() {
    for good in [
        "10.0.1.1/4",
        "10.0.0.0/8",
        "0.0.0.0/0",
        "::/0",
        "2001:db8::1/32",
        "192.168.1.7/32",
    ] {
        assert_admitted(&to(json!([{"cidr": good}])));
    }
    for bad in [
        "10.0.0.0/33",
        "10.0.0.0",
        "10.0.0/8",
        "10.0.0.0/x",
        "10.0.0.0/08",
        "10.0.0.0/+8",
        "010.0.0.0/8",
        "::ffff:10.0.0.0/104",
        "fe80::1%eth0/64",
        "2001:db8::/129",
    ] {
        assert_refused(
            &to(json!([{"cidr": bad}])),
            &[("spec.egress[0].to[0].cidr", BAD_CIDR)],
        );
    }
    assert_refused(
        &to(json!([{"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "banana"]}])),
        &[("spec.egress[0].to[0].except[1]", BAD_CIDR)],
    );
}

#[test]
fn except_entries_lie_strictly_inside_their_cidr() {
    for (cidr, except) in [
        ("10.0.1.1/4", "10.1.0.0/16"),
        ("10.0.0.0/8", "10.255.255.255/32"),
        ("10.0.0.0/8", "10.1.2.3/9"),
        ("2001:db8::/32", "2001:db8:1::/48"),
        ("0.0.0.0/0", "192.168.0.0/16"),
    ] {
        assert_admitted(&to(json!([{"cidr": cidr, "except": [except]}])));
    }
    for (cidr, except) in [
        ("10.0.0.0/8", "11.0.0.0/16"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.0.0.0/16", "10.0.0.0/8"),
        ("10.0.0.0/8", "::/0"),
        ("::/0", "10.0.0.0/8"),
        ("10.0.1.1/24", "10.0.2.0/25"),
    ] {
        assert_refused(
            &to(json!([{"cidr": cidr, "except": [except]}])),
            &[("spec.egress[0].to[0].except", EXCEPT_OUTSIDE)],
        );
    }
    assert_refused(
        &to(json!([{"fqdn": "a.example.com", "except": ["10.0.0.0/16"]}])),
        &[("spec.egress[0].to[0].except", EXCEPT_ALONE)],
    );
}

#[test]
fn a_destination_is_exactly_one_kind() {
    assert_admitted(&to(json!([
        {"namespaceSelector": {}, "podSelector": {}},
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"team": "data"}}},
    ])));
    for peer in [
        json!({}),
        json!({"fqdn": "api.github.com", "cidr": "10.0.0.0/8"}),
        json!({"fqdn": "api.github.com", "podSelector": {}}),
        json!({"cidr": "10.0.0.0/8", "namespaceSelector": {}}),
    ] {
        assert_refused(&to(json!([peer])), &[("spec.egress[0].to[0]", ONE_KIND)]);
    }
    assert_refused(
        &to(json!([{"except": ["10.0.0.0/16"]}])),
        &[
            ("spec.egress[0].to[0]", ONE_KIND),
            ("spec.egress[0].to[0].except", EXCEPT_ALONE),
        ],
    );
}

#[test]
fn port_ranges_are_ordered_and_need_a_port() {
    let ports = |ports: Value| {
        egress_policy(json!({
            "podSelector": {},
            "egress": [{"to": [{"fqdn": "a.b"}], "ports": ports}],
            "sockets": {"bindPorts": [{"port": 8000, "endPort": 8000}]},
        }))
    };
    assert_admitted(&ports(json!([
        {"port": 443},
        {"protocol": "UDP", "port": 1000, "endPort": 2000},
        {"protocol": "SCTP"},
    ])));
    assert_refused(
        &ports(json!([{"port": 443}, {"port": 443, "endPort": 80}])),
        &[("spec.egress[0].ports[1].endPort", END_BELOW)],
    );
    assert_refused(
        &ports(json!([{"endPort": 80}])),
        &[("spec.egress[0].ports[0].endPort", END_ALONE)],
    );
    assert_refused(
        &egress_policy(
            json!({"podSelector": {}, "sockets": {"bindPorts": [{"port": 9, "endPort": 8}]}}),
        ),
        &[("spec.sockets.bindPorts[0].endPort", END_BELOW)],
    );
    assert_refused(
        &trust_boundary(json!({
            "namespaceSelector": {},
            "sharedServices": [{"name": "dns", "namespaceSelector": {}, "ports": [{"port": 53, "endPort": 52}]}],
        })),
        &[("spec.sharedServices[0].ports[0].endPort", END_BELOW)],
    );
}

#[test]
fn dns_names_are_exact_or_one_leading_wildcard() {
    for good in [
        "api.github.com",
        "*.pypi.org",
        "localhost",
        "a-1.b2.example",
        "*.a.b.c",
    ] {
        assert_admitted(&to(json!([{"fqdn": good}])));
    }
    let at = "spec.egress[0].to[0].fqdn";
    for (bad, messages) in [
        ("*foo.com", &[STAR, DNS_NAME][..]),
        ("a.*.com", &[STAR, DNS_NAME]),
        ("*.*.example.com", &[STAR, DNS_NAME]),
        ("*", &[STAR, DNS_NAME]),
        ("*.org", &[WILDCARD_DOMAIN]),
        ("API.github.com", &[DNS_NAME]),
        ("api.github.com.", &[DNS_NAME]),
        ("a..b", &[DNS_NAME]),
        ("-a.b", &[DNS_NAME]),
        ("a_b.c", &[DNS_NAME]),
    ] {
        let expected: Vec<(&str, &str)> = messages.iter().map(|m| (at, *m)).collect();
        assert_refused(&to(json!([{"fqdn": bad}])), &expected);
    }
}

/// Parses `object` with palisade's parser (as a YAML file).
fn parser_accepts(object: &Value) -> bool {
    let text = serde_norway::to_string(object).unwrap();
    parse_documents("case.yaml", &text).is_ok()
}

/// On every case whose only problems are ones CEL checks, admission (the CEL rules)
/// and the parser give the same answer.
#[test]
fn admission_and_the_parser_agree() {
    let peers = [
        json!({"cidr": "10.0.1.1/4"}),
        json!({"cidr": "10.0.0.0/33"}),
        json!({"cidr": "1.2.3.4"}),
        json!({"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.0.0/16"]}),
        json!({"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}),
        json!({"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}),
        json!({"cidr": "10.0.0.0/8", "except": ["::/0"]}),
        json!({"cidr": "2001:db8::/32", "except": ["2001:db8:ff00::/40"]}),
        json!({"except": ["10.0.0.0/8"]}),
        json!({"fqdn": "*.pypi.org"}),
        json!({"fqdn": "*foo.com"}),
        json!({"fqdn": "a.*.com"}),
        json!({"fqdn": "*.org"}),
        json!({"fqdn": "pypi.org."}),
        json!({"fqdn": "PyPI.org"}),
        json!({"fqdn": "a.b", "cidr": "10.0.0.0/8"}),
        json!({"podSelector": {}}),
        json!({}),
    ];
    let ports = [
        json!([]),
        json!([{"port": 80, "endPort": 90}]),
        json!([{"port": 90, "endPort": 80}]),
        json!([{"endPort": 80}]),
        json!([{"protocol": "UDP"}]),
    ];
    let mut cases = 0;
    for peer in &peers {
        for port in &ports {
            let object = egress_policy(json!({
                "podSelector": {},
                "egress": [{"to": [peer], "ports": port}],
            }));
            let admitted = violations(&object).is_empty();
            assert_eq!(
                admitted,
                parser_accepts(&object),
                "admission {} but the parser {}: {}",
                if admitted { "accepts" } else { "refuses" },
                if admitted { "refuses" } else { "accepts" },
                object["spec"]
            );
            cases += 1;
        }
    }
    println!("{cases} cases agree");
}
