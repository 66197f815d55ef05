//! A compiled cluster with every index resolved: rule references to the rules they
//! cite, node table references to the tables' contents. Two compiles of one cluster
//! state are equivalent for the datapath iff their canonical forms are equal, however
//! they numbered published tables and rules (the incremental compiler keeps numbers
//! stable where a from-scratch compile renumbers).

use crate::compile::tables::{
    CompiledCluster, EndpointEntry, IdentityInfo, IpCacheEntry, PolicyRow, PortRangeEntry,
    RuleInfo, ServiceEntry,
};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalCluster {
    pub identities: BTreeMap<u32, IdentityInfo>,
    pub ipcache: Vec<IpCacheEntry>,
    pub nodes: BTreeMap<String, CanonicalNode>,
    pub services: Vec<ServiceEntry>,
}

/// A node's tables with its policy tables inlined, by policy id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalNode {
    pub host_addresses: Vec<IpAddr>,
    pub endpoints: Vec<EndpointEntry>,
    pub tables: BTreeMap<u32, CanonicalTable>,
}

/// A policy table whose rows and DNS name rules carry the rule they cite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalTable {
    pub rows: Vec<(PolicyRow, Option<RuleInfo>)>,
    pub fqdn_rules: Vec<(String, Vec<PortRangeEntry>, Option<RuleInfo>)>,
}

/// The canonical form of `compiled`.
pub fn canonical(compiled: &CompiledCluster) -> CanonicalCluster {
    let rule = |rule_ref: Option<u32>| {
        rule_ref.and_then(|index| compiled.rules.get(index as usize).cloned())
    };
    let nodes = compiled
        .nodes
        .iter()
        .map(|(name, node)| {
            let tables = compiled
                .node_tables(node)
                .map(|(policy_id, table)| {
                    let mut rows: Vec<_> = table
                        .rows
                        .iter()
                        .map(|row| {
                            let cited = rule(row.rule_ref);
                            (
                                PolicyRow {
                                    rule_ref: None,
                                    ..*row
                                },
                                cited,
                            )
                        })
                        .collect();
                    rows.sort();
                    let mut fqdn_rules: Vec<_> = table
                        .fqdn_rules
                        .iter()
                        .map(|r| (r.pattern.clone(), r.ports.clone(), rule(r.rule_ref)))
                        .collect();
                    fqdn_rules.sort();
                    (policy_id, CanonicalTable { rows, fqdn_rules })
                })
                .collect();
            let canonical = CanonicalNode {
                host_addresses: node.host_addresses.clone(),
                endpoints: node.endpoints.clone(),
                tables,
            };
            (name.clone(), canonical)
        })
        .collect();
    CanonicalCluster {
        identities: compiled.identities.clone(),
        ipcache: compiled.ipcache.clone(),
        nodes,
        services: compiled.services.clone(),
    }
}
