//! Which nodes of an emulated cluster run an agent: one per node its pods name, or
//! one (named by the caller) for all if none names a node, as standalone mode puts
//! such pods on the agent's own node. A mix would make every agent enforce the pods
//! that name no node as its own, so it is an error.

use anyhow::{Result, bail};
use std::collections::BTreeSet;

/// The nodes of `pods` (each `(ns/name, node)`, the pods an agent enforces), in order
/// of name; `[default_node]` when none names one.
pub fn agent_nodes<'a>(
    pods: impl IntoIterator<Item = (String, Option<&'a str>)>,
    default_node: &str,
) -> Result<Vec<String>> {
    let mut named = BTreeSet::new();
    let mut unnamed = None;
    for (pod, node) in pods {
        match node {
            Some(node) => {
                named.insert(node.to_string());
            }
            None => unnamed = unnamed.or(Some(pod)),
        }
    }
    match unnamed {
        Some(pod) if !named.is_empty() => bail!(
            "pod {pod} names no node while others do: every agent would enforce it as its \
             own; this harness needs all pods or none to name their node"
        ),
        _ if named.is_empty() => Ok(vec![default_node.to_string()]),
        _ => Ok(named.into_iter().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_agent_per_named_node_or_one_for_all() {
        let pods = [
            ("a/x".to_string(), Some("n2")),
            ("a/y".to_string(), Some("n1")),
        ];
        assert_eq!(agent_nodes(pods, "d").unwrap(), ["n1", "n2"]);
        assert_eq!(
            agent_nodes([("a/x".to_string(), None)], "d").unwrap(),
            ["d"]
        );
        let mixed = [("a/x".to_string(), Some("n1")), ("a/y".to_string(), None)];
        assert!(
            agent_nodes(mixed, "d")
                .unwrap_err()
                .to_string()
                .contains("a/y")
        );
    }
}
