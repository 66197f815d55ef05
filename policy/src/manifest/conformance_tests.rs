//! Parses every policy object of the shared conformance cases
//! (`shared/conformance/cases.json`): each NetworkPolicy, AdminNetworkPolicy and
//! BaselineAdminNetworkPolicy must parse into the object of its kind.

use super::{Object, parse_documents};
use crate::model::Peer;
use serde_json::Value as Json;

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/conformance/cases.json"
);

/// (case id, index in `policies`, the object).
fn policy_objects() -> Vec<(String, usize, Json)> {
    let text = std::fs::read_to_string(CASES).unwrap_or_else(|e| {
        panic!(
            "cannot read the conformance cases at {CASES}: {e} (is shared/ next to the workspace?)"
        )
    });
    let cases: Vec<Json> = serde_json::from_str(&text).expect("cases.json is a JSON array");
    let mut objects = Vec::new();
    for case in cases {
        let id = case["id"]
            .as_str()
            .expect("every case has an id")
            .to_string();
        let policies = case["policies"]
            .as_array()
            .expect("every case has policies");
        for (i, policy) in policies.iter().enumerate() {
            objects.push((id.clone(), i, policy.clone()));
        }
    }
    objects
}

fn parse(id: &str, index: usize, object: &Json) -> Result<Vec<Object>, super::ManifestErrors> {
    let text = serde_json::to_string_pretty(object).expect("JSON serializes");
    parse_documents(&format!("cases.json:{id}:policies[{index}]"), &text)
}

#[test]
fn every_conformance_network_policy_parses() {
    let mut parsed = 0;
    let mut failures = Vec::new();
    for (id, index, object) in policy_objects() {
        if object["kind"] != "NetworkPolicy" {
            continue;
        }
        match parse(&id, index, &object) {
            Ok(objects) if matches!(&objects[..], [Object::NetworkPolicy(_)]) => parsed += 1,
            Ok(objects) => failures.push(format!("{id}[{index}]: parsed as {objects:?}")),
            Err(errors) => failures.push(errors.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "NetworkPolicies that failed:\n{}",
        failures.join("\n")
    );
    assert!(parsed > 0, "no NetworkPolicy found in {CASES}");
}

#[test]
fn every_conformance_cluster_policy_parses() {
    let mut parsed = 0;
    let mut failures = Vec::new();
    for (id, index, object) in policy_objects() {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        if kind == "NetworkPolicy" {
            continue;
        }
        match parse(&id, index, &object) {
            Ok(objects) => match &objects[..] {
                [Object::ClusterPolicy(policy)] if policy.kind.as_str() == kind => parsed += 1,
                _ => failures.push(format!("{id}[{index}]: {kind} parsed as {objects:?}")),
            },
            Err(errors) => failures.push(errors.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "cluster policies that failed:\n{}",
        failures.join("\n")
    );
    assert!(parsed > 0, "no AdminNetworkPolicy found in {CASES}");
}

#[test]
fn the_upstream_cidr_with_host_bits_is_kept_as_written() {
    let (id, index, object) = policy_objects()
        .into_iter()
        .find(|(_, _, o)| o.to_string().contains("10.0.1.1/4"))
        .expect("the cases hold the upstream 10.0.1.1/4 ipBlock");
    let objects = parse(&id, index, &object).unwrap_or_else(|e| panic!("{e}"));
    let [Object::NetworkPolicy(policy)] = &objects[..] else {
        panic!("{objects:?}")
    };
    let cidrs: Vec<String> = policy
        .ingress
        .iter()
        .chain(&policy.egress)
        .flat_map(|rule| &rule.peers)
        .filter_map(|peer| match peer {
            Peer::IpBlock { cidr, .. } => Some(cidr.to_string()),
            Peer::Pods { .. } => None,
        })
        .collect();
    assert!(cidrs.contains(&"10.0.1.1/4".to_string()), "{cidrs:?}");
}
