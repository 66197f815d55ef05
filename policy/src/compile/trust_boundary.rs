//! TrustBoundaries mapped onto the admin tier: each zone of each boundary becomes one
//! admin-tier [`ClusterPolicy`] of kind [`ClusterPolicyKind::TrustBoundary`], named
//! after the boundary, so the compiler has one evaluation model for the whole tier.
//!
//! The policy of a zone selects the zone's namespaces and has, in each direction, the
//! rules [`TrustBoundary`] lists: Pass for the zone's own pods, Pass for each shared
//! service that applies to the direction (its pods, on its ports), Deny for every other
//! pod. Zones are those of the namespaces the cluster has (declared, or holding pods).

use crate::model::{
    Cluster, ClusterPeer, ClusterPolicy, ClusterPolicyKind, ClusterPort, ClusterRule, Direction,
    ISOLATION_RULE_NAME, LabelSelector, NAMESPACE_NAME_LABEL, ProtocolPorts, RuleAction,
    SelectorOperator, SelectorRequirement, SharedService, Subject, TrustBoundary, ZONE_RULE_NAME,
    Zone,
};
use std::collections::BTreeSet;

/// The admin-tier policies of every TrustBoundary of `cluster`: one per zone, by
/// boundary name, then zone.
pub(crate) fn expand(cluster: &Cluster) -> Vec<ClusterPolicy> {
    let namespaces: BTreeSet<&str> = cluster
        .namespaces
        .keys()
        .map(String::as_str)
        .chain(cluster.pods.keys().map(|pod| pod.namespace.as_str()))
        .collect();
    let mut policies = Vec::new();
    for boundary in cluster.trust_boundaries.values() {
        let zones: BTreeSet<Zone> = namespaces
            .iter()
            .filter_map(|namespace| {
                boundary.zone_of(namespace, &cluster.namespace_labels(namespace))
            })
            .collect();
        policies.extend(zones.iter().map(|zone| zone_policy(boundary, zone)));
    }
    policies
}

/// The admin-tier policy of one zone of `boundary`.
fn zone_policy(boundary: &TrustBoundary, zone: &Zone) -> ClusterPolicy {
    let zone_namespaces = zone_selector(boundary, zone);
    let rules = |direction: Direction| -> Vec<ClusterRule> {
        let mut rules = vec![ClusterRule {
            name: ZONE_RULE_NAME.to_string(),
            action: RuleAction::Pass,
            peers: vec![ClusterPeer::Namespaces(zone_namespaces.clone())],
            ports: Vec::new(),
        }];
        rules.extend(boundary.services(direction).map(service_rule));
        rules.push(ClusterRule {
            name: ISOLATION_RULE_NAME.to_string(),
            action: RuleAction::Deny,
            peers: vec![ClusterPeer::Namespaces(LabelSelector::default())],
            ports: Vec::new(),
        });
        rules
    };
    let kind = ClusterPolicyKind::TrustBoundary;
    ClusterPolicy {
        kind,
        name: boundary.name.clone(),
        tier: kind.tier(),
        priority: boundary.priority,
        subject: Subject::Namespaces(zone_namespaces.clone()),
        ingress: rules(Direction::Ingress),
        egress: rules(Direction::Egress),
    }
}

/// The namespaces of `zone`: the boundary's selector, narrowed to the zone.
fn zone_selector(boundary: &TrustBoundary, zone: &Zone) -> LabelSelector {
    let requirement = |key: &str, operator, values: &[&str]| SelectorRequirement {
        key: key.to_string(),
        operator,
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    let mut selector = boundary.namespace_selector.clone();
    let narrowing = &mut selector.match_expressions;
    match (zone, boundary.zone_label.as_deref()) {
        (Zone::Labelled(value), Some(key)) => {
            narrowing.push(requirement(key, SelectorOperator::In, &[value]));
        }
        (Zone::Namespace(namespace), zone_label) => {
            if let Some(key) = zone_label {
                narrowing.push(requirement(key, SelectorOperator::DoesNotExist, &[]));
            }
            narrowing.push(requirement(
                NAMESPACE_NAME_LABEL,
                SelectorOperator::In,
                &[namespace],
            ));
        }
        // A labelled zone exists only for a boundary with a zone label.
        (Zone::Labelled(_), None) => {}
    }
    selector
}

/// The Pass rule of a shared service.
fn service_rule(service: &SharedService) -> ClusterRule {
    ClusterRule {
        name: service.name.clone(),
        action: RuleAction::Pass,
        peers: vec![ClusterPeer::Pods {
            namespace_selector: service.namespace_selector.clone(),
            pod_selector: service.pod_selector.clone(),
        }],
        ports: service.ports.iter().map(cluster_port).collect(),
    }
}

fn cluster_port(ports: &ProtocolPorts) -> ClusterPort {
    if ports.first == ports.last {
        ClusterPort::Number {
            protocol: ports.protocol,
            port: ports.first,
        }
    } else {
        ClusterPort::Range {
            protocol: ports.protocol,
            first: ports.first,
            last: ports.last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, Namespace, Protocol, SharedServiceDirection};

    fn cluster(namespaces: &[(&str, &[(&str, &str)])], boundary: TrustBoundary) -> Cluster {
        let mut cluster = Cluster::default();
        for (name, extra) in namespaces {
            let mut labels = Labels::for_namespace_name(name);
            labels
                .0
                .extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            let namespace = Namespace {
                name: name.to_string(),
                labels,
            };
            cluster.namespaces.insert(name.to_string(), namespace);
        }
        cluster
            .trust_boundaries
            .insert(boundary.name.clone(), boundary);
        cluster
    }

    fn boundary(zone_label: Option<&str>) -> TrustBoundary {
        TrustBoundary {
            name: "tenants".into(),
            priority: 7,
            namespace_selector: LabelSelector {
                match_labels: [("kind".to_string(), "tenant".to_string())].into(),
                match_expressions: Vec::new(),
            },
            zone_label: zone_label.map(str::to_string),
            shared_services: vec![SharedService {
                name: "dns".into(),
                namespace_selector: LabelSelector::default(),
                pod_selector: LabelSelector::default(),
                ports: vec![
                    ProtocolPorts::single(Protocol::Udp, 53),
                    ProtocolPorts {
                        protocol: Protocol::Tcp,
                        first: 53,
                        last: 54,
                    },
                ],
                direction: SharedServiceDirection::ToService,
            }],
        }
    }

    const NAMESPACES: &[(&str, &[(&str, &str)])] = &[
        ("a1", &[("kind", "tenant"), ("tenant", "a")]),
        ("a2", &[("kind", "tenant"), ("tenant", "a")]),
        ("loner", &[("kind", "tenant")]),
        ("kube-system", &[]),
    ];

    #[test]
    fn one_admin_policy_per_zone() {
        let policies = expand(&cluster(NAMESPACES, boundary(Some("tenant"))));
        assert_eq!(policies.len(), 2, "zone a and the loner");
        let labels = |name: &str| {
            let (_, extra) = NAMESPACES.iter().find(|(n, _)| *n == name).unwrap();
            let mut labels = Labels::for_namespace_name(name);
            labels
                .0
                .extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            labels
        };
        let Subject::Namespaces(zone_a) = &policies[0].subject else {
            panic!("namespaces subject")
        };
        assert!(zone_a.matches(&labels("a1")) && zone_a.matches(&labels("a2")));
        assert!(!zone_a.matches(&labels("loner")) && !zone_a.matches(&labels("kube-system")));
        let Subject::Namespaces(loner) = &policies[1].subject else {
            panic!("namespaces subject")
        };
        assert!(loner.matches(&labels("loner")) && !loner.matches(&labels("a1")));
        for policy in &policies {
            assert_eq!(
                (policy.kind, policy.name.as_str(), policy.priority),
                (ClusterPolicyKind::TrustBoundary, "tenants", 7)
            );
        }
    }

    #[test]
    fn rules_pass_the_zone_and_services_and_deny_other_pods() {
        let policies = expand(&cluster(NAMESPACES, boundary(None)));
        assert_eq!(policies.len(), 3, "every tenant namespace is a zone");
        let names = |rules: &[ClusterRule]| -> Vec<(String, RuleAction)> {
            rules.iter().map(|r| (r.name.clone(), r.action)).collect()
        };
        let pass = |name: &str| (name.to_string(), RuleAction::Pass);
        let deny = (ISOLATION_RULE_NAME.to_string(), RuleAction::Deny);
        assert_eq!(
            names(&policies[0].egress),
            [pass(ZONE_RULE_NAME), pass("dns"), deny.clone()]
        );
        assert_eq!(names(&policies[0].ingress), [pass(ZONE_RULE_NAME), deny]);
        assert_eq!(
            policies[0].egress[1].ports,
            [
                ClusterPort::Number {
                    protocol: Protocol::Udp,
                    port: 53
                },
                ClusterPort::Range {
                    protocol: Protocol::Tcp,
                    first: 53,
                    last: 54
                },
            ]
        );
        assert_eq!(
            policies[0].egress[2].peers,
            [ClusterPeer::Namespaces(LabelSelector::default())]
        );
    }
}
