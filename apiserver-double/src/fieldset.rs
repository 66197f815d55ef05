//! Field paths and field sets, the unit of ownership in server-side apply,
//! with the `FieldsV1` encoding the real server writes into
//! `metadata.managedFields` (`f:spec`, `k:{"type":"Ready"}`, `.`).
//!
//! A field set holds leaves: scalars, atomic lists and empty maps. Items of
//! associative lists (see `ResourceType::list_maps`) are addressed by their
//! key fields, so two managers can own different items of one list.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::resource::ResourceType;

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElem {
    /// A map field.
    Field(String),
    /// An item of an associative list, by the canonical JSON of its key fields.
    Key(String),
}

pub type FieldPath = Vec<PathElem>;
pub type FieldSet = BTreeSet<FieldPath>;

/// Top-level and metadata fields the server owns; they never enter a field set.
fn server_owned(path: &[PathElem]) -> bool {
    match path {
        [PathElem::Field(f)] => f == "apiVersion" || f == "kind",
        [PathElem::Field(m), PathElem::Field(f), ..] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "generateName"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "managedFields"
                | "selfLink"
        ),
        _ => false,
    }
}

/// The dotted field-name path of a field path, as `ListMap::path` spells it.
fn schema_path(path: &[PathElem]) -> String {
    let mut out = String::new();
    for elem in path {
        if let PathElem::Field(f) = elem {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(f);
        }
    }
    out
}

/// The key of an associative-list item: the JSON object of its key fields, in
/// the order the resource type lists them. None if the item lacks a key.
pub fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let mut parts = Vec::with_capacity(keys.len());
    for k in keys {
        let v = item.get(k)?;
        parts.push(format!("{}:{}", Value::String(k.clone()), v));
    }
    Some(format!("{{{}}}", parts.join(",")))
}

/// The leaves of `value`, excluding server-owned fields.
pub fn leaves(value: &Value, resource: &ResourceType) -> FieldSet {
    let mut set = FieldSet::new();
    let mut path = Vec::new();
    collect(value, resource, &mut path, &mut set);
    set
}

fn collect(value: &Value, resource: &ResourceType, path: &mut FieldPath, set: &mut FieldSet) {
    if server_owned(path) {
        return;
    }
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(PathElem::Field(k.clone()));
                collect(v, resource, path, set);
                path.pop();
            }
        }
        Value::Array(items) => match resource.list_map_keys(&schema_path(path)) {
            Some(keys) if items.iter().all(|i| item_key(i, keys).is_some()) => {
                for item in items {
                    let key = item_key(item, keys).expect("checked above");
                    path.push(PathElem::Key(key));
                    collect(item, resource, path, set);
                    path.pop();
                }
            }
            _ => {
                set.insert(path.clone());
            }
        },
        _ => {
            if !path.is_empty() {
                set.insert(path.clone());
            }
        }
    }
}

/// The value at `path`, if present.
pub fn get<'a>(value: &'a Value, path: &[PathElem], resource: &ResourceType) -> Option<&'a Value> {
    let mut current = value;
    for (i, elem) in path.iter().enumerate() {
        current = match elem {
            PathElem::Field(f) => current.get(f)?,
            PathElem::Key(key) => {
                let keys = resource.list_map_keys(&schema_path(&path[..i]))?;
                current
                    .as_array()?
                    .iter()
                    .find(|item| item_key(item, keys).as_deref() == Some(key.as_str()))?
            }
        };
    }
    Some(current)
}

/// Removes the leaf at `path` (a map leaf only while it is empty) and prunes
/// maps and list items it leaves empty below the top-level fields. An item of
/// an associative list left with only its key fields is removed too.
pub fn remove(value: &mut Value, path: &[PathElem], resource: &ResourceType) {
    if path.is_empty() {
        return;
    }
    if let Some(Value::Object(m)) = get(value, path, resource)
        && !m.is_empty()
    {
        return;
    }
    remove_rec(value, path, 0, resource);
}

/// Returns true when the container at this level became empty (to prune it).
fn remove_rec(
    current: &mut Value,
    path: &[PathElem],
    depth: usize,
    resource: &ResourceType,
) -> bool {
    let last = depth + 1 == path.len();
    match &path[depth] {
        PathElem::Field(f) => {
            let Some(map) = current.as_object_mut() else {
                return false;
            };
            if last {
                map.remove(f);
            } else if let Some(child) = map.get_mut(f)
                && remove_rec(child, path, depth + 1, resource)
                && depth > 0
            {
                map.remove(f);
            }
        }
        PathElem::Key(key) => {
            let Some(keys) = resource.list_map_keys(&schema_path(&path[..depth])) else {
                return false;
            };
            let keys = keys.to_vec();
            let Some(items) = current.as_array_mut() else {
                return false;
            };
            let Some(pos) = items
                .iter()
                .position(|item| item_key(item, &keys).as_deref() == Some(key.as_str()))
            else {
                return false;
            };
            let drop_item = last || {
                remove_rec(&mut items[pos], path, depth + 1, resource);
                items[pos]
                    .as_object()
                    .is_some_and(|m| m.keys().all(|k| keys.contains(k)))
            };
            if drop_item {
                items.remove(pos);
            }
            return items.is_empty();
        }
    }
    current.as_object().is_some_and(Map::is_empty)
}

/// Encodes a field set as `FieldsV1` JSON.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for elem in path {
            let (name, is_item) = match elem {
                PathElem::Field(f) => (format!("f:{f}"), false),
                PathElem::Key(k) => (format!("k:{k}"), true),
            };
            let child = node
                .entry(name)
                .or_insert_with(|| Value::Object(Map::new()));
            let child = child.as_object_mut().expect("nodes are maps");
            if is_item {
                child
                    .entry(".")
                    .or_insert_with(|| Value::Object(Map::new()));
            }
            node = child;
        }
    }
    Value::Object(root)
}

/// Decodes `FieldsV1` JSON; entries it cannot read (set items `v:`) are skipped.
pub fn from_fields_v1(fields: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    let mut path = Vec::new();
    if let Some(map) = fields.as_object() {
        decode(map, &mut path, &mut set);
    }
    set
}

fn decode(map: &Map<String, Value>, path: &mut FieldPath, set: &mut FieldSet) {
    for (name, child) in map {
        let elem = if let Some(f) = name.strip_prefix("f:") {
            PathElem::Field(f.to_string())
        } else if let Some(k) = name.strip_prefix("k:") {
            PathElem::Key(k.to_string())
        } else {
            continue;
        };
        path.push(elem);
        let children = child.as_object();
        let has_children = children.is_some_and(|m| m.keys().any(|k| k != "."));
        if has_children {
            decode(children.expect("checked"), path, set);
        } else {
            set.insert(path.clone());
        }
        path.pop();
    }
}

/// Renders a path as the real server does in conflict messages: `.spec.x`,
/// `.status.conditions[type="Ready"].status`.
pub fn display(path: &[PathElem]) -> String {
    let mut out = String::new();
    for elem in path {
        match elem {
            PathElem::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            PathElem::Key(k) => {
                let rendered = serde_json::from_str::<Map<String, Value>>(k)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_else(|_| k.clone());
                out.push_str(&format!("[{rendered}]"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Registry;
    use serde_json::json;

    #[test]
    fn leaves_use_list_keys_and_skip_server_fields() {
        let registry = Registry::with_defaults();
        let pods = registry.find("", "pods").unwrap();
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "resourceVersion": "3", "labels": {"app": "x"}},
            "spec": {"nodeName": "n", "tolerations": [{"key": "k"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        });
        let set = leaves(&pod, pods);
        let shown: Vec<String> = set.iter().map(|p| display(p)).collect();
        assert_eq!(
            shown,
            vec![
                ".metadata.labels.app",
                ".spec.nodeName",
                ".spec.tolerations",
                ".status.conditions[type=\"Ready\"].status",
                ".status.conditions[type=\"Ready\"].type",
            ]
        );
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
    }

    #[test]
    fn remove_prunes_items_and_maps() {
        let registry = Registry::with_defaults();
        let pods = registry.find("", "pods").unwrap();
        let mut pod = json!({
            "metadata": {"labels": {"app": "x"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "B", "status": "False"}]}
        });
        let set = leaves(&pod, pods);
        for p in &set {
            if display(p).contains("Ready") || display(p).contains("labels") {
                remove(&mut pod, p, pods);
            }
        }
        assert_eq!(
            pod,
            json!({"metadata": {}, "status": {"conditions": [{"type": "B", "status": "False"}]}})
        );
    }
}
