//! The pod identities a NetworkPolicy `Pods` peer selects, memoized per peer: the same
//! selectors recur across many policies (every namespace's "from app=frontend in any
//! namespace"), and matching one against every pod identity is the costly part of
//! evaluating a rule.

use super::identity::Identities;
use crate::model::LabelSelector;
use rustc_hash::FxHashMap;
use std::cell::{OnceCell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;

/// What a `Pods` peer's selection depends on.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct PeerKey<'a> {
    /// The policy's namespace, where the peer has no namespace selector (and only then:
    /// with a selector the result does not depend on it).
    own_namespace: Option<&'a str>,
    namespace_selector: Option<&'a LabelSelector>,
    pod_selector: Option<&'a LabelSelector>,
}

/// Answers "which pod identities does this peer select", each distinct peer once.
pub(crate) struct PodPeers<'a> {
    identities: &'a Identities,
    memo: RefCell<FxHashMap<PeerKey<'a>, Rc<BTreeSet<u32>>>>,
    /// Namespace -> its pod identities, built on first use: a peer without a namespace
    /// selector only looks at its policy's namespace.
    by_namespace: OnceCell<FxHashMap<&'a str, Vec<u32>>>,
}

impl<'a> PodPeers<'a> {
    pub fn new(identities: &'a Identities) -> Self {
        Self {
            identities,
            memo: RefCell::default(),
            by_namespace: OnceCell::new(),
        }
    }

    /// The pod identities in a namespace `namespace_selector` selects (None: the
    /// policy's namespace, `own_namespace`) whose labels `pod_selector` selects (None:
    /// every pod).
    pub fn selected(
        &self,
        own_namespace: &'a str,
        namespace_selector: Option<&'a LabelSelector>,
        pod_selector: Option<&'a LabelSelector>,
    ) -> Rc<BTreeSet<u32>> {
        let key = PeerKey {
            own_namespace: namespace_selector.is_none().then_some(own_namespace),
            namespace_selector,
            pod_selector,
        };
        if let Some(selected) = self.memo.borrow().get(&key) {
            return selected.clone();
        }
        let pods = &self.identities.pods;
        let selects = |id: &u32| {
            pods.get(id).is_some_and(|pod| {
                namespace_selector.is_none_or(|selector| selector.matches(&pod.namespace_labels))
                    && pod_selector.is_none_or(|selector| selector.matches(&pod.labels))
            })
        };
        let selected: Rc<BTreeSet<u32>> = Rc::new(match namespace_selector {
            None => self
                .in_namespace(own_namespace)
                .iter()
                .copied()
                .filter(selects)
                .collect(),
            Some(_) => pods.keys().copied().filter(selects).collect(),
        });
        self.memo.borrow_mut().insert(key, selected.clone());
        selected
    }

    /// The pod identities of `namespace`, ascending.
    fn in_namespace(&self, namespace: &str) -> &[u32] {
        let by_namespace = self.by_namespace.get_or_init(|| {
            let mut by_namespace: FxHashMap<&'a str, Vec<u32>> = FxHashMap::default();
            for (id, pod) in &self.identities.pods {
                by_namespace
                    .entry(pod.namespace.as_str())
                    .or_default()
                    .push(*id);
            }
            by_namespace
        });
        by_namespace.get(namespace).map_or(&[], Vec::as_slice)
    }
}
