//! palisade's publication kinds, `palisade.dev/v1alpha1`, both cluster-scoped, written
//! by the controller and read by the node agents:
//!
//! - `ClusterTable`: one shard of a table every node needs (identities, ip cache,
//!   services), published once for the cluster; named `<table>-<shard>` (`ipcache-007`).
//! - `NodePolicy`: what one node needs beyond the cluster tables (its host addresses,
//!   endpoints, the policy tables they use, the rules those cite); named after the node.
//!   Its status is written by the node's agent: the generation and hash it applied.
//!
//! The Rust types (used by the controller and the agent) and their CRDs. The schemas
//! type the envelope (`table`, `shard`, `generation`, `contentHash`, ...) and leave the
//! compiled content (`entries`, `policyTables`, ...) to the types of
//! `palisade_policy::compile`, marked `x-kubernetes-preserve-unknown-fields`: those are
//! written by the controller only, never by users.

use crate::definitions::{Definition, GROUP, VERSION};
use crate::status::Condition;
use palisade_policy::compile::tables::{EndpointEntry, PolicyTable, RuleInfo};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const CLUSTER_TABLE_KIND: &str = "ClusterTable";
pub const CLUSTER_TABLE_PLURAL: &str = "clustertables";
pub const NODE_POLICY_KIND: &str = "NodePolicy";
pub const NODE_POLICY_PLURAL: &str = "nodepolicies";

/// Table names of [`ClusterTableSpec::table`].
pub const TABLE_IDENTITIES: &str = "identities";
pub const TABLE_IPCACHE: &str = "ipcache";
pub const TABLE_SERVICES: &str = "services";
/// Every cluster table, in the order the controller publishes them.
pub const TABLES: [&str; 3] = [TABLE_IDENTITIES, TABLE_IPCACHE, TABLE_SERVICES];

/// The name of shard `shard` of `table`: `ipcache-007`.
pub fn shard_name(table: &str, shard: u32) -> String {
    format!("{table}-{shard:03}")
}

/// One shard of a cluster table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterTableSpec {
    /// `identities`, `ipcache` or `services`.
    pub table: String,
    /// This shard's number, `0..shards`.
    pub shard: u32,
    /// How many shards the table has now (a power of two). An entry is in shard
    /// `stable_hash(key) % shards`.
    pub shards: u32,
    /// Incremented by the controller each time this shard's content changes.
    pub generation: i64,
    /// sha256 (hex) of the canonical JSON of `entries`.
    pub content_hash: String,
    /// The shard's entries, sorted by key: `{"identity": n, "kind", "labels"}`
    /// (identities), `IpCacheEntry` (ipcache), `ServiceEntry` (services).
    pub entries: Vec<Value>,
}

/// One identity of the `identities` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityEntry {
    pub identity: u32,
    pub kind: String,
    pub labels: Vec<String>,
}

/// What one node needs beyond the cluster tables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePolicySpec {
    /// Incremented by the controller each time this node's content changes.
    pub generation: i64,
    /// sha256 (hex) of the canonical JSON of the content fields below.
    pub content_hash: String,
    #[serde(flatten)]
    pub content: NodePolicyContent,
}

/// The content of a NodePolicy: the node's part of `CompiledCluster`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePolicyContent {
    pub host_addresses: Vec<std::net::IpAddr>,
    pub endpoints: Vec<EndpointEntry>,
    /// Node-local policy id -> its table (the rows and DNS rules); on the wire in the
    /// compact encoding (`compact_tables`).
    #[serde(with = "crate::compact_tables")]
    pub policy_tables: BTreeMap<u32, PolicyTable>,
    /// Rule index (the `rule_ref` of rows) -> the rule, for every rule the tables cite.
    #[serde(deserialize_with = "crate::integer_keys::deserialize")]
    pub rules: BTreeMap<u32, RuleInfo>,
}

/// Written by the node's agent (status subresource).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePolicyStatus {
    /// The spec.generation the agent has in the kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_generation: Option<i64>,
    /// The spec.contentHash the agent has in the kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The two publication CRDs, ClusterTable first.
pub fn publication_definitions() -> Vec<Definition> {
    vec![cluster_tables(), node_policies()]
}

fn preserved(description: &str, type_: &str) -> Value {
    json!({
        "type": type_,
        "description": description,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

fn envelope() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        (
            "generation",
            json!({"type": "integer", "minimum": 0, "description":
                "Incremented by the controller each time the content changes."}),
        ),
        (
            "contentHash",
            json!({"type": "string", "maxLength": 64, "description":
                "sha256 (hex) of the canonical JSON of the content."}),
        ),
    ])
}

fn cluster_tables() -> Definition {
    let mut properties = envelope();
    properties.insert(
        "table",
        json!({"type": "string", "enum": TABLES, "description": "Which table this shard is of."}),
    );
    properties.insert(
        "shard",
        json!({"type": "integer", "minimum": 0, "description": "This shard's number, 0..shards."}),
    );
    properties.insert(
        "shards",
        json!({"type": "integer", "minimum": 1, "description":
            "How many shards the table has (a power of two); an entry is in shard hash(key) % shards."}),
    );
    properties.insert(
        "entries",
        json!({"type": "array", "description": "The shard's entries, sorted by key.",
               "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}),
    );
    Definition {
        file_name: "palisade.dev_clustertables.yaml",
        crd: crd(
            CLUSTER_TABLE_KIND,
            CLUSTER_TABLE_PLURAL,
            "clustertable",
            "One shard of a table every node needs (identities, ip cache, services), \
             published once for the cluster by the palisade controller and read by every \
             node agent. Not written by users.",
            json!({
                "type": "object",
                "required": ["table", "shard", "shards", "generation", "contentHash", "entries"],
                "properties": properties,
            }),
            None,
            vec![
                json!({"name": "Table", "type": "string", "jsonPath": ".spec.table"}),
                json!({"name": "Shard", "type": "integer", "jsonPath": ".spec.shard"}),
                json!({"name": "Generation", "type": "integer", "jsonPath": ".spec.generation"}),
            ],
        ),
    }
}

fn node_policies() -> Definition {
    let mut properties = envelope();
    properties.insert(
        "hostAddresses",
        json!({"type": "array", "items": {"type": "string"}, "description": "The node's own addresses."}),
    );
    properties.insert(
        "endpoints",
        json!({"type": "array", "description": "The pods on this node that palisade enforces.",
               "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}),
    );
    properties.insert(
        "policyTables",
        preserved("Node-local policy id -> the policy table.", "object"),
    );
    properties.insert(
        "rules",
        preserved(
            "Rule index -> the rule, for every rule the tables cite.",
            "object",
        ),
    );
    let status = json!({
        "type": "object",
        "description": "Written by the node's agent: what it has in the kernel.",
        "properties": {
            "appliedGeneration": {"type": "integer", "minimum": 0,
                "description": "The spec.generation the agent applied."},
            "appliedHash": {"type": "string", "maxLength": 64,
                "description": "The spec.contentHash the agent applied."},
            "conditions": {
                "type": "array", "maxItems": 8,
                "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object",
                    "required": ["type", "status", "lastTransitionTime", "reason", "message"],
                    "properties": {
                        "type": {"type": "string", "maxLength": 316},
                        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                        "observedGeneration": {"type": "integer", "minimum": 0},
                        "lastTransitionTime": {"type": "string", "format": "date-time"},
                        "reason": {"type": "string", "minLength": 1, "maxLength": 1024},
                        "message": {"type": "string", "maxLength": 32768},
                    }},
            },
        },
    });
    Definition {
        file_name: "palisade.dev_nodepolicies.yaml",
        crd: crd(
            NODE_POLICY_KIND,
            NODE_POLICY_PLURAL,
            "nodepolicy",
            "What one node needs beyond the cluster tables: its host addresses, the pods \
             palisade enforces there, the policy tables they use and the rules those cite. \
             Written by the palisade controller (spec) and the node's agent (status).",
            json!({
                "type": "object",
                "required": ["generation", "contentHash", "hostAddresses", "endpoints", "policyTables", "rules"],
                "properties": properties,
            }),
            Some(status),
            vec![
                json!({"name": "Generation", "type": "integer", "jsonPath": ".spec.generation"}),
                json!({"name": "Applied", "type": "integer", "jsonPath": ".status.appliedGeneration"}),
            ],
        ),
    }
}

fn crd(
    kind: &str,
    plural: &str,
    singular: &str,
    description: &str,
    spec: Value,
    status: Option<Value>,
    mut columns: Vec<Value>,
) -> Value {
    columns.push(json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}));
    let mut properties = json!({
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": spec,
    });
    let mut version = json!({
        "name": VERSION,
        "served": true,
        "storage": true,
        "additionalPrinterColumns": columns,
    });
    if let Some(status) = status {
        properties["status"] = status;
        version["subresources"] = json!({"status": {}});
    }
    version["schema"] = json!({"openAPIV3Schema": {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": properties,
    }});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{GROUP}")},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": format!("{kind}List"),
                "plural": plural,
                "singular": singular,
                "categories": ["palisade"],
            },
            "scope": "Cluster",
            "versions": [version],
        },
    })
}
