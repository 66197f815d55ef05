//! Publication of policy tables with stable numbers, for the incremental compiler: a
//! table keeps its index in [`CompiledCluster::policy_tables`] as long as some node
//! refers to it, a new table takes a freed index (or a new one at the end), and a
//! table no node refers to any more is emptied and its index freed. Rules are all
//! published (the compiler publishes every rule of every policy), each at the index
//! of its [`RuleId`], so rule references never change either: the rules of a policy
//! added are published at their ids (freed ones reused, see `policy_numbers`), and
//! a rule retired keeps its entry until its id is reused, by then cited by no table.
//!
//! A from-scratch compile numbers tables by first use and publishes only cited rules;
//! the two agree up to numbering (see `canonical`).

use super::Delta;
use crate::compile::endpoint_tables::{EndpointTable, TableKey};
use crate::compile::nodes::publish_table;
use crate::compile::rules::{RuleId, RuleRefs};
use crate::compile::tables::{CompiledCluster, NodeTables, PolicyTable, RuleInfo};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
pub(super) struct Publisher {
    indexes: FxHashMap<TableKey, u32>,
    /// Per published index: its key (None when free) and how many node tables refer
    /// to it.
    slots: Vec<(Option<TableKey>, u32)>,
    free: BTreeSet<u32>,
    rule_refs: RuleRefs,
}

impl Publisher {
    /// The publisher of a from-scratch `compiled`, whose tables `indexes` numbers and
    /// whose rules `rule_refs` numbers.
    pub fn new(
        compiled: &CompiledCluster,
        indexes: FxHashMap<TableKey, u32>,
        rule_refs: &BTreeMap<RuleId, u32>,
    ) -> Self {
        let mut slots: Vec<(Option<TableKey>, u32)> = vec![(None, 0); compiled.policy_tables.len()];
        for (key, index) in &indexes {
            slots[*index as usize].0 = Some(key.clone());
        }
        for node in compiled.nodes.values() {
            for table_ref in &node.policy_tables {
                slots[table_ref.table as usize].1 += 1;
            }
        }
        Self {
            indexes,
            slots,
            free: BTreeSet::new(),
            rule_refs: RuleRefs::new(rule_refs),
        }
    }

    /// The index of `table`, publishing it if it is new; counts one more reference.
    pub fn acquire(
        &mut self,
        table: &EndpointTable,
        compiled: &mut CompiledCluster,
        delta: &mut Delta,
    ) -> u32 {
        let key = table.sharing_key();
        if let Some(index) = self.indexes.get(&key) {
            self.slots[*index as usize].1 += 1;
            return *index;
        }
        let published = publish_table(table, &self.rule_refs);
        let index = match self.free.pop_first() {
            Some(index) => {
                compiled.policy_tables[index as usize] = published;
                self.slots[index as usize] = (Some(key.clone()), 1);
                index
            }
            None => {
                let index = u32::try_from(compiled.policy_tables.len()).unwrap_or(u32::MAX);
                compiled.policy_tables.push(published);
                self.slots.push((Some(key.clone()), 1));
                index
            }
        };
        self.indexes.insert(key, index);
        delta.policy_tables.insert(index);
        index
    }

    /// Publishes `rule` under the published index of `id` (its number), which no
    /// table cites.
    pub fn publish_rule(
        &mut self,
        id: RuleId,
        rule: RuleInfo,
        compiled: &mut CompiledCluster,
        delta: &mut Delta,
    ) {
        let index = id.index();
        let at = index as usize;
        match at.cmp(&compiled.rules.len()) {
            std::cmp::Ordering::Less => compiled.rules[at] = rule,
            std::cmp::Ordering::Equal => compiled.rules.push(rule),
            std::cmp::Ordering::Greater => {
                // Ids are handed out densely after the catalog's; never here.
                debug_assert!(false, "rule id {index} beyond the published rules");
                compiled
                    .rules
                    .resize(at, compiled.rules.last().cloned().unwrap_or(rule.clone()));
                compiled.rules.push(rule);
            }
        }
        self.rule_refs.set(id, index);
        delta.rule_refs.insert(index);
    }

    /// Drops the references of `node`; tables nobody refers to any more are emptied.
    pub fn release(
        &mut self,
        node: &NodeTables,
        compiled: &mut CompiledCluster,
        delta: &mut Delta,
    ) {
        for table_ref in &node.policy_tables {
            let index = table_ref.table;
            let slot = &mut self.slots[index as usize];
            slot.1 -= 1;
            if slot.1 == 0 {
                if let Some(key) = slot.0.take() {
                    self.indexes.remove(&key);
                }
                compiled.policy_tables[index as usize] = PolicyTable::default();
                self.free.insert(index);
                delta.policy_tables.insert(index);
            }
        }
    }
}
