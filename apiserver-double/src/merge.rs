//! The patch formats of PATCH requests, applied to an object as JSON: JSON
//! merge patch (RFC 7386), JSON patch (RFC 6902) and an approximation of
//! strategic merge patch (maps merged, `null` deletes, associative lists
//! merged by their keys, other lists replaced). Also the merge of an apply
//! configuration into the live object used by server-side apply.

use serde_json::Value;

use crate::fieldset::item_key;
use crate::resource::ResourceType;
use crate::status::ApiError;

/// The body formats of a PATCH, by content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> Result<Self, ApiError> {
        let mime = content_type.split(';').next().unwrap_or("").trim();
        match mime {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

/// Applies a merge, JSON or strategic patch to `target`.
pub fn apply_patch(
    target: &mut Value,
    kind: PatchKind,
    patch: &Value,
    resource: &ResourceType,
) -> Result<(), ApiError> {
    match kind {
        PatchKind::Merge => {
            json_patch::merge(target, patch);
            Ok(())
        }
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(target, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })
        }
        PatchKind::Strategic => {
            if resource.custom {
                return Err(ApiError::unsupported_media_type(
                    "application/strategic-merge-patch+json",
                ));
            }
            merge_with_lists(target, patch, resource, "", true);
            Ok(())
        }
        PatchKind::Apply => Err(ApiError::bad_request("apply is not a patch")),
    }
}

/// Merges `patch` into `target`: maps recursively, associative lists by key,
/// everything else replaced. With `null_deletes`, a null removes the field
/// (patch semantics); otherwise nulls are skipped (apply semantics).
pub fn merge_with_lists(
    target: &mut Value,
    patch: &Value,
    resource: &ResourceType,
    path: &str,
    null_deletes: bool,
) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, pv) in p {
                let child_path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if pv.is_null() {
                    if null_deletes {
                        t.remove(k);
                    }
                    continue;
                }
                match t.get_mut(k) {
                    Some(tv) if tv.is_object() && pv.is_object() => {
                        merge_with_lists(tv, pv, resource, &child_path, null_deletes)
                    }
                    Some(tv) if tv.is_array() && pv.is_array() => {
                        merge_list(tv, pv, resource, &child_path, null_deletes)
                    }
                    _ => {
                        let mut fresh = pv.clone();
                        strip_nulls(&mut fresh);
                        t.insert(k.clone(), fresh);
                    }
                }
            }
        }
        (target, patch) => {
            *target = patch.clone();
            strip_nulls(target);
        }
    }
}

fn merge_list(
    target: &mut Value,
    patch: &Value,
    resource: &ResourceType,
    path: &str,
    null_deletes: bool,
) {
    let keys = resource.list_map_keys(path).map(<[String]>::to_vec);
    let (Some(keys), Some(items), Some(patch_items)) =
        (keys, target.as_array_mut(), patch.as_array())
    else {
        *target = patch.clone();
        return;
    };
    for pitem in patch_items {
        let Some(pkey) = item_key(pitem, &keys) else {
            continue;
        };
        let delete = pitem.get("$patch").and_then(Value::as_str) == Some("delete");
        let pos = items
            .iter()
            .position(|i| item_key(i, &keys).as_deref() == Some(pkey.as_str()));
        match (pos, delete) {
            (Some(pos), true) => {
                items.remove(pos);
            }
            (None, true) => {}
            (Some(pos), false) => {
                merge_with_lists(&mut items[pos], pitem, resource, path, null_deletes)
            }
            (None, false) => {
                let mut fresh = pitem.clone();
                strip_nulls(&mut fresh);
                items.push(fresh);
            }
        }
    }
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Registry;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_conditions_by_type() {
        let registry = Registry::with_defaults();
        let pods = registry.find("", "pods").unwrap();
        let mut pod = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}], "phase": "Running"}});
        let patch = json!({"status": {"conditions": [{"type": "palisade.dev/PolicyProgrammed", "status": "True"}, {"type": "Ready", "status": "True"}]}, "metadata": {"labels": {"a": null}}});
        apply_patch(&mut pod, PatchKind::Strategic, &patch, pods).unwrap();
        assert_eq!(
            pod,
            json!({"metadata": {"labels": {}}, "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "palisade.dev/PolicyProgrammed", "status": "True"}]}})
        );
    }

    #[test]
    fn strategic_merge_is_refused_for_custom_resources() {
        let registry = Registry::with_defaults();
        let tb = registry.find("palisade.dev", "trustboundaries").unwrap();
        let err = apply_patch(&mut json!({}), PatchKind::Strategic, &json!({}), tb).unwrap_err();
        assert_eq!(err.code, 415);
    }

    #[test]
    fn json_patch_test_failure_is_invalid() {
        let registry = Registry::with_defaults();
        let pods = registry.find("", "pods").unwrap();
        let mut pod = json!({"spec": {"nodeName": "a"}});
        let ops = json!([{"op": "test", "path": "/spec/nodeName", "value": "b"}]);
        assert_eq!(
            apply_patch(&mut pod, PatchKind::Json, &ops, pods)
                .unwrap_err()
                .code,
            422
        );
    }
}
