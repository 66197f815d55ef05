//! The pure core of the controller: from what should be published ([`Desired`]), what
//! the API server has ([`Published`]) and the policy objects' state, the plan of one
//! reconcile: objects to apply (content changed) and to delete (gone), status updates
//! of TrustBoundaries and EgressPolicies, and rejection Events. No I/O: the driver
//! (`controller`) carries the plan out.
//!
//! An object whose content hash equals the server's is never rewritten; a changed one
//! gets the server's generation plus one. So a restarted controller, whose first
//! reconcile computes the same hashes, writes nothing.

use crate::objects::{ObjectKey, Rejection};
use crate::policy_status::{Progress, policy_status};
use crate::publication::{Desired, OBJECT_BUDGET};
use palisade_crds::definitions::{GROUP, VERSION};
use palisade_crds::publication::{
    CLUSTER_TABLE_KIND, ClusterTableSpec, NODE_POLICY_KIND, NodePolicySpec,
};
use palisade_crds::status::{ACCEPTED, PolicyStatus};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// A publication kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PublicationKind {
    ClusterTable,
    NodePolicy,
}

impl PublicationKind {
    pub fn kind(self) -> &'static str {
        match self {
            PublicationKind::ClusterTable => CLUSTER_TABLE_KIND,
            PublicationKind::NodePolicy => NODE_POLICY_KIND,
        }
    }
}

/// A publication object as the server has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishedObject {
    pub generation: i64,
    pub content_hash: String,
    /// Table shards: the shard count they were written with.
    pub shards: Option<u32>,
    /// NodePolicy: `status.appliedGeneration`, written by the node's agent.
    pub applied_generation: Option<i64>,
}

/// Every publication object on the server, by kind and name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    pub tables: BTreeMap<String, PublishedObject>,
    pub nodes: BTreeMap<String, PublishedObject>,
}

/// A TrustBoundary or EgressPolicy as reconcile sees it.
#[derive(Clone, Debug)]
pub struct PolicyObject {
    pub key: ObjectKey,
    pub uid: String,
    pub generation: i64,
    pub rejection: Option<Rejection>,
    /// Its status as the server has it.
    pub status: PolicyStatus,
}

/// Per policy: the generation being programmed and, per target node, the NodePolicy
/// generation that first carried it. Kept between reconciles (in memory; after a
/// restart the current NodePolicy generations are the requirement).
#[derive(Clone, Debug, Default)]
pub struct ProgrammedTracker {
    policies: BTreeMap<ObjectKey, Carried>,
}

#[derive(Clone, Debug, Default)]
struct Carried {
    generation: i64,
    required: BTreeMap<String, i64>,
}

/// One object to apply (server-side apply of the whole object).
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedWrite {
    pub kind: PublicationKind,
    pub name: String,
    pub body: Value,
    /// Bytes of `body` as JSON.
    pub size: usize,
    pub generation: i64,
    pub content_hash: String,
}

/// An object over [`OBJECT_BUDGET`]: not written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Oversize {
    pub kind: PublicationKind,
    pub name: String,
    pub size: usize,
}

/// A status to write to a TrustBoundary or EgressPolicy.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    pub key: ObjectKey,
    pub status: PolicyStatus,
}

/// A rejection to report as a Kubernetes Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectionEvent {
    pub key: ObjectKey,
    pub uid: String,
    pub generation: i64,
    pub message: String,
}

/// What one reconcile does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub writes: Vec<PlannedWrite>,
    pub deletes: Vec<(PublicationKind, String)>,
    pub oversize: Vec<Oversize>,
    /// Objects whose content is unchanged, per kind.
    pub unchanged: BTreeMap<PublicationKind, usize>,
    pub statuses: Vec<StatusUpdate>,
    pub events: Vec<RejectionEvent>,
}

/// Plans one reconcile. `now` (RFC 3339) stamps condition transitions.
pub fn reconcile(
    desired: &Desired,
    published: &Published,
    policies: &[PolicyObject],
    tracker: &mut ProgrammedTracker,
    now: &str,
) -> Plan {
    let mut plan = Plan::default();
    for (name, shard) in &desired.tables {
        let spec = |generation| ClusterTableSpec {
            table: shard.table.to_string(),
            shard: shard.shard,
            shards: shard.shards,
            generation,
            content_hash: shard.content_hash.clone(),
            entries: shard.entries.clone(),
        };
        let server = published.tables.get(name);
        // The shard count is part of what agents read: a resharded table is rewritten.
        let same = server.is_some_and(|s| {
            s.content_hash == shard.content_hash && s.shards == Some(shard.shards)
        });
        plan_object(
            &mut plan,
            PublicationKind::ClusterTable,
            name,
            server,
            same,
            &shard.content_hash,
            |generation| serde_json::to_value(spec(generation)),
        );
    }
    // NodePolicy generations after this plan, for Programmed.
    let mut node_generations: BTreeMap<&str, i64> = BTreeMap::new();
    for (name, node) in &desired.nodes {
        let server = published.nodes.get(name);
        let same = server.is_some_and(|s| s.content_hash == node.content_hash);
        let generation = plan_object(
            &mut plan,
            PublicationKind::NodePolicy,
            name,
            server,
            same,
            &node.content_hash,
            |generation| {
                serde_json::to_value(NodePolicySpec {
                    generation,
                    content_hash: node.content_hash.clone(),
                    content: node.content.clone(),
                })
            },
        );
        node_generations.insert(name, generation);
    }
    for name in published.tables.keys() {
        if !desired.tables.contains_key(name) {
            plan.deletes
                .push((PublicationKind::ClusterTable, name.clone()));
        }
    }
    for name in published.nodes.keys() {
        if !desired.nodes.contains_key(name) {
            plan.deletes
                .push((PublicationKind::NodePolicy, name.clone()));
        }
    }

    let targets = policy_targets(desired);
    let live: BTreeSet<&ObjectKey> = policies.iter().map(|p| &p.key).collect();
    tracker.policies.retain(|key, _| live.contains(key));
    for policy in policies {
        let progress = match &policy.rejection {
            Some(_) => Progress {
                programmed: 0,
                targets: 0,
            },
            None => {
                let nodes = targets.get(&policy.key).cloned().unwrap_or_default();
                let carried = tracker.policies.entry(policy.key.clone()).or_default();
                if carried.generation != policy.generation {
                    carried.generation = policy.generation;
                    carried.required.clear();
                }
                carried
                    .required
                    .retain(|node, _| nodes.contains(node.as_str()));
                for node in &nodes {
                    // i64::MAX: the node's new content could not be written (over
                    // budget), so no applied generation counts until it is.
                    let generation = node_generations.get(node).copied().unwrap_or(i64::MAX);
                    let required = carried
                        .required
                        .entry(node.to_string())
                        .or_insert(generation);
                    if *required == i64::MAX {
                        *required = generation;
                    }
                }
                let programmed = carried
                    .required
                    .iter()
                    .filter(|(node, required)| {
                        published
                            .nodes
                            .get(*node)
                            .and_then(|n| n.applied_generation)
                            .is_some_and(|applied| applied >= **required)
                    })
                    .count();
                Progress {
                    programmed,
                    targets: nodes.len(),
                }
            }
        };
        let status = policy_status(
            policy.generation,
            policy.rejection.as_ref(),
            progress,
            &policy.status,
            now,
        );
        if let Some(rejection) = &policy.rejection {
            let reported = policy.status.conditions.iter().any(|c| {
                c.type_ == ACCEPTED
                    && c.status == "False"
                    && c.message == rejection.message
                    && c.observed_generation == Some(policy.generation)
            });
            if !reported {
                plan.events.push(RejectionEvent {
                    key: policy.key.clone(),
                    uid: policy.uid.clone(),
                    generation: policy.generation,
                    message: rejection.message.clone(),
                });
            }
        }
        if status != policy.status {
            plan.statuses.push(StatusUpdate {
                key: policy.key.clone(),
                status,
            });
        }
    }
    plan
}

/// Plans one object; returns its generation after the plan (`i64::MAX` when it is
/// over budget and not written).
fn plan_object(
    plan: &mut Plan,
    kind: PublicationKind,
    name: &str,
    server: Option<&PublishedObject>,
    same: bool,
    content_hash: &str,
    spec: impl FnOnce(i64) -> serde_json::Result<Value>,
) -> i64 {
    let current = server.map_or(0, |s| s.generation);
    if same {
        *plan.unchanged.entry(kind).or_default() += 1;
        return current;
    }
    let generation = current + 1;
    let body = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": kind.kind(),
        "metadata": {"name": name},
        "spec": spec(generation).expect("publication specs serialize"),
    });
    let size = serde_json::to_vec(&body).map_or(usize::MAX, |b| b.len());
    if size > OBJECT_BUDGET {
        plan.oversize.push(Oversize {
            kind,
            name: name.to_string(),
            size,
        });
        // Not written: nothing the node applies carries this content.
        return i64::MAX;
    }
    plan.writes.push(PlannedWrite {
        kind,
        name: name.to_string(),
        body,
        size,
        generation,
        content_hash: content_hash.to_string(),
    });
    generation
}

/// Per TrustBoundary and EgressPolicy, the nodes whose NodePolicy cites its rules.
fn policy_targets(desired: &Desired) -> BTreeMap<ObjectKey, BTreeSet<&str>> {
    let mut targets: BTreeMap<ObjectKey, BTreeSet<&str>> = BTreeMap::new();
    for (node, content) in &desired.nodes {
        for rule in content.content.rules.values() {
            let kind = match rule.kind.as_str() {
                "TrustBoundary" => "TrustBoundary",
                "EgressPolicy" => "EgressPolicy",
                _ => continue,
            };
            let key = ObjectKey {
                kind,
                namespace: rule.namespace.clone(),
                name: rule.name.clone(),
            };
            targets.entry(key).or_default().insert(node.as_str());
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publication::{NodeContent, desired};
    use palisade_crds::publication::NodePolicyContent;
    use palisade_policy::compile::tables::RuleInfo;
    use palisade_policy::model::Direction;

    fn egress_policy_rule() -> RuleInfo {
        RuleInfo {
            tier: "egress".into(),
            kind: "EgressPolicy".into(),
            namespace: "x".into(),
            name: "p".into(),
            direction: Direction::Egress,
            rule: 0,
            action: "Allow".into(),
            rule_name: String::new(),
        }
    }

    fn node_citing(rule: bool, hash: &str) -> NodeContent {
        let mut content = NodePolicyContent::default();
        if rule {
            content.rules.insert(0, egress_policy_rule());
        }
        NodeContent {
            content_hash: hash.into(),
            content,
        }
    }

    fn policy(generation: i64, status: PolicyStatus) -> PolicyObject {
        PolicyObject {
            key: ObjectKey {
                kind: "EgressPolicy",
                namespace: "x".into(),
                name: "p".into(),
            },
            uid: "u".into(),
            generation,
            rejection: None,
            status,
        }
    }

    fn published_as(plan: &Plan, applied: Option<i64>) -> Published {
        let mut published = Published::default();
        for write in &plan.writes {
            let object = PublishedObject {
                generation: write.generation,
                content_hash: write.content_hash.clone(),
                shards: write.body["spec"]["shards"].as_u64().map(|s| s as u32),
                applied_generation: applied,
            };
            match write.kind {
                PublicationKind::ClusterTable => {
                    published.tables.insert(write.name.clone(), object)
                }
                PublicationKind::NodePolicy => published.nodes.insert(write.name.clone(), object),
            };
        }
        published
    }

    #[test]
    fn first_publication_writes_everything_then_nothing() {
        let mut wanted = desired(&Default::default(), &BTreeMap::new());
        wanted.nodes.insert("n1".into(), node_citing(false, "h1"));
        let mut tracker = ProgrammedTracker::default();
        let plan = reconcile(&wanted, &Published::default(), &[], &mut tracker, "t");
        assert_eq!(plan.writes.len(), 4);
        assert!(plan.writes.iter().all(|w| w.generation == 1));
        let published = published_as(&plan, None);
        let again = reconcile(&wanted, &published, &[], &mut tracker, "t");
        assert!(
            again.writes.is_empty() && again.deletes.is_empty(),
            "{again:?}"
        );
        assert_eq!(again.unchanged[&PublicationKind::NodePolicy], 1);
        assert_eq!(again.unchanged[&PublicationKind::ClusterTable], 3);
    }

    #[test]
    fn changed_content_bumps_the_generation_and_gone_nodes_are_deleted() {
        let mut wanted = Desired::default();
        wanted.nodes.insert("n1".into(), node_citing(false, "h2"));
        let mut published = Published::default();
        for node in ["n1", "n2"] {
            published.nodes.insert(
                node.into(),
                PublishedObject {
                    generation: 4,
                    content_hash: "h1".into(),
                    ..Default::default()
                },
            );
        }
        let plan = reconcile(&wanted, &published, &[], &mut Default::default(), "t");
        assert_eq!(plan.writes.len(), 1);
        assert_eq!(plan.writes[0].generation, 5);
        assert_eq!(plan.writes[0].body["spec"]["contentHash"], "h2");
        assert_eq!(
            plan.deletes,
            vec![(PublicationKind::NodePolicy, "n2".to_string())]
        );
    }

    #[test]
    fn programmed_follows_the_agents_applied_generation() {
        let mut wanted = Desired::default();
        wanted.nodes.insert("n1".into(), node_citing(true, "h1"));
        wanted.nodes.insert("n2".into(), node_citing(false, "h2"));
        let mut tracker = ProgrammedTracker::default();
        let plan = reconcile(
            &wanted,
            &Published::default(),
            &[policy(1, PolicyStatus::default())],
            &mut tracker,
            "t",
        );
        let status = plan.statuses[0].status.clone();
        assert_eq!(status.target_nodes, Some(1));
        assert_eq!(status.programmed_nodes, Some(0));
        assert_eq!(status.conditions[1].status, "False");
        // The agent of n1 applies generation 1.
        let published = published_as(&plan, Some(1));
        let plan = reconcile(&wanted, &published, &[policy(1, status)], &mut tracker, "t");
        let status = &plan.statuses[0].status;
        assert_eq!(status.programmed_nodes, Some(1));
        assert_eq!(status.conditions[1].status, "True");
        // A new policy generation that changes n1's content needs generation 2 there.
        wanted.nodes.insert("n1".into(), node_citing(true, "h1b"));
        let plan = reconcile(
            &wanted,
            &published,
            &[policy(2, status.clone())],
            &mut tracker,
            "t",
        );
        assert_eq!(plan.writes[0].generation, 2);
        assert_eq!(plan.statuses[0].status.conditions[1].status, "False");
    }

    #[test]
    fn a_rejection_is_reported_once() {
        let mut rejected = policy(2, PolicyStatus::default());
        rejected.rejection = Some(Rejection {
            field: Some("spec.egress".into()),
            message: "spec.egress: bad".into(),
        });
        let mut tracker = ProgrammedTracker::default();
        let plan = reconcile(
            &Desired::default(),
            &Published::default(),
            &[rejected.clone()],
            &mut tracker,
            "t",
        );
        assert_eq!(plan.events.len(), 1);
        rejected.status = plan.statuses[0].status.clone();
        let plan = reconcile(
            &Desired::default(),
            &Published::default(),
            &[rejected],
            &mut tracker,
            "t",
        );
        assert!(
            plan.events.is_empty() && plan.statuses.is_empty(),
            "{plan:?}"
        );
    }

    #[test]
    fn oversize_objects_are_refused_not_truncated() {
        let mut wanted = Desired::default();
        let mut node = node_citing(false, "h");
        node.content.host_addresses = vec!["10.0.0.1".parse().unwrap(); 120_000];
        wanted.nodes.insert("n1".into(), node);
        let plan = reconcile(
            &wanted,
            &Published::default(),
            &[],
            &mut Default::default(),
            "t",
        );
        assert!(plan.writes.is_empty());
        assert_eq!(plan.oversize.len(), 1);
        assert!(plan.oversize[0].size > OBJECT_BUDGET);
    }
}
