//! The policy table of one endpoint: which directions are enforced and the rows that
//! decide them. Tables are computed once per distinct input and shared, so ten thousand
//! replicas cost one computation.

use super::encode::{Row, encode_direction};
use super::network_policy::{NetworkPolicies, RuleEvaluator, Selection};
use super::verdict::Outcome;
use crate::model::{ContainerPort, Direction, ObjectRef, Pod};
use std::collections::HashMap;
use std::rc::Rc;

/// An endpoint's rows, per direction; None where the direction is not isolated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct EndpointTable {
    pub ingress: Option<Rc<[Row]>>,
    pub egress: Option<Rc<[Row]>>,
}

impl EndpointTable {
    /// Whether neither direction is enforced (and the table has no rows).
    pub fn is_unenforced(&self) -> bool {
        self.ingress.is_none() && self.egress.is_none()
    }

    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.ingress
            .iter()
            .chain(&self.egress)
            .flat_map(|rows| rows.iter())
    }
}

/// Everything the rows of one direction depend on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct DirectionInput {
    direction: Direction,
    selection: Selection,
    /// The endpoint's container ports on ingress, where named ports resolve on it;
    /// empty on egress, where they resolve on the peer.
    own_ports: Vec<ContainerPort>,
}

/// Computes endpoint tables, memoized by [`DirectionInput`].
pub(crate) struct EndpointTables<'a> {
    policies: &'a NetworkPolicies<'a>,
    rules: RuleEvaluator<'a>,
    memo: HashMap<DirectionInput, Rc<[Row]>>,
}

impl<'a> EndpointTables<'a> {
    pub fn new(policies: &'a NetworkPolicies<'a>, rules: RuleEvaluator<'a>) -> Self {
        Self {
            policies,
            rules,
            memo: HashMap::new(),
        }
    }

    pub fn table(&mut self, pod_ref: &ObjectRef, pod: &Pod) -> EndpointTable {
        EndpointTable {
            ingress: self.direction(pod_ref, pod, Direction::Ingress),
            egress: self.direction(pod_ref, pod, Direction::Egress),
        }
    }

    fn direction(
        &mut self,
        pod_ref: &ObjectRef,
        pod: &Pod,
        direction: Direction,
    ) -> Option<Rc<[Row]>> {
        let selection = self.policies.isolating(&pod_ref.namespace, pod, direction);
        if selection.is_empty() {
            return None;
        }
        let own_ports = match direction {
            Direction::Ingress => pod.ports.clone(),
            Direction::Egress => Vec::new(),
        };
        let input = DirectionInput {
            direction,
            selection,
            own_ports,
        };
        if let Some(rows) = self.memo.get(&input) {
            return Some(rows.clone());
        }
        let verdicts = self
            .rules
            .allowing_rules(&input.selection, direction, pod)
            .map(|allowing| allowing.map(Outcome::of_allowing_rule));
        let rows: Rc<[Row]> = encode_direction(direction, &verdicts).into();
        self.memo.insert(input, rows.clone());
        Some(rows)
    }
}
