//! Label sets and Kubernetes label selectors (`matchLabels` + `matchExpressions`).

use std::collections::BTreeMap;

/// A set of labels, sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(pub BTreeMap<String, String>);

impl Labels {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The labels every namespace has even when none are declared.
    pub fn for_namespace_name(name: &str) -> Self {
        let mut m = BTreeMap::new();
        m.insert(super::NAMESPACE_NAME_LABEL.to_string(), name.to_string());
        Labels(m)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Labels(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    /// Non-empty for In/NotIn, empty for Exists/DoesNotExist (validated at parse time).
    pub values: Vec<String>,
}

/// A Kubernetes label selector. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<SelectorRequirement>,
}

impl LabelSelector {
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v.as_str()))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    SelectorOperator::In => value.is_some_and(|v| r.values.iter().any(|x| x == v)),
                    SelectorOperator::NotIn => {
                        !value.is_some_and(|v| r.values.iter().any(|x| x == v))
                    }
                    SelectorOperator::Exists => value.is_some(),
                    SelectorOperator::DoesNotExist => value.is_none(),
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (*k, *v)).collect()
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::default().matches(&labels(&[])));
        assert!(LabelSelector::default().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn expressions_follow_kubernetes_semantics() {
        let sel = |op, values: &[&str]| LabelSelector {
            match_labels: Default::default(),
            match_expressions: vec![SelectorRequirement {
                key: "tier".into(),
                operator: op,
                values: values.iter().map(|s| s.to_string()).collect(),
            }],
        };
        let web = labels(&[("tier", "web")]);
        let none = labels(&[]);
        assert!(sel(SelectorOperator::In, &["web", "db"]).matches(&web));
        assert!(!sel(SelectorOperator::In, &["db"]).matches(&web));
        assert!(!sel(SelectorOperator::In, &["web"]).matches(&none));
        assert!(sel(SelectorOperator::NotIn, &["db"]).matches(&web));
        assert!(sel(SelectorOperator::NotIn, &["db"]).matches(&none));
        assert!(!sel(SelectorOperator::NotIn, &["web"]).matches(&web));
        assert!(sel(SelectorOperator::Exists, &[]).matches(&web));
        assert!(!sel(SelectorOperator::Exists, &[]).matches(&none));
        assert!(sel(SelectorOperator::DoesNotExist, &[]).matches(&none));
    }
}
