//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Every write records which manager set which fields: an Update operation
//! (create, PUT, merge/JSON/strategic patch) takes the fields it changed
//! from everyone else; an Apply takes the fields of its configuration,
//! conflicts (409) with other managers that own one of them with a different
//! value unless forced, and removes the fields it applied before and no
//! longer applies when nobody else owns them. Entries are per manager,
//! operation and subresource, stored in the object in `FieldsV1` form.

use serde_json::{Map, Value, json};

use crate::fieldset::{self, FieldSet};
use crate::merge::merge_with_lists;
use crate::resource::ResourceType;
use crate::status::ApiError;

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagerEntry {
    pub manager: String,
    /// "Apply" or "Update".
    pub operation: String,
    pub api_version: String,
    pub time: String,
    /// "" for the main resource, "status" for the status subresource.
    pub subresource: String,
    pub fields: FieldSet,
}

impl ManagerEntry {
    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

/// Reads the entries of `metadata.managedFields` (unreadable ones are dropped).
pub fn read(object: &Value) -> Vec<ManagerEntry> {
    let Some(entries) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| {
            Some(ManagerEntry {
                manager: e.get("manager")?.as_str()?.to_string(),
                operation: e.get("operation")?.as_str()?.to_string(),
                api_version: e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                time: e
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                fields: e
                    .get("fieldsV1")
                    .map(fieldset::from_fields_v1)
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Writes `entries` into `metadata.managedFields` (removing it when empty).
pub fn write(object: &mut Value, entries: &[ManagerEntry]) {
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        metadata.remove("managedFields");
        return;
    }
    let rendered = entries
        .iter()
        .map(|e| {
            let mut entry = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fieldset::to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                entry["subresource"] = json!(e.subresource);
            }
            entry
        })
        .collect();
    metadata.insert("managedFields".into(), Value::Array(rendered));
}

/// The object without managedFields timestamps, to tell a no-op write.
pub fn without_times(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(entries) = copy
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    {
        for e in entries {
            if let Some(m) = e.as_object_mut() {
                m.remove("time");
            }
        }
    }
    copy
}

/// Drops fields that no longer exist from every entry and drops empty entries.
fn prune(entries: &mut Vec<ManagerEntry>, object: &Value, resource: &ResourceType) {
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| fieldset::get(object, p, resource).is_some());
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// Who is writing: the manager name and the subresource ("" or "status").
pub struct Writer<'a> {
    pub manager: &'a str,
    pub subresource: &'a str,
    pub api_version: &'a str,
    pub now: &'a str,
}

/// Records an Update-operation write that turned `old` into `new`: fields
/// whose value changed belong to the writer from now on. `base` are the
/// entries before the write. Writes the result into `new`.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    mut base: Vec<ManagerEntry>,
    writer: &Writer<'_>,
    resource: &ResourceType,
) {
    let changed: FieldSet = fieldset::leaves(new, resource)
        .into_iter()
        .filter(|p| {
            old.and_then(|o| fieldset::get(o, p, resource)) != fieldset::get(new, p, resource)
        })
        .collect();
    if !changed.is_empty() {
        for e in base.iter_mut() {
            e.fields.retain(|p| !changed.contains(p));
        }
        match base
            .iter_mut()
            .find(|e| e.is(writer.manager, "Update", writer.subresource))
        {
            Some(e) => {
                e.fields.extend(changed);
                e.time = writer.now.to_string();
                e.api_version = writer.api_version.to_string();
            }
            None => base.push(ManagerEntry {
                manager: writer.manager.to_string(),
                operation: "Update".into(),
                api_version: writer.api_version.to_string(),
                time: writer.now.to_string(),
                subresource: writer.subresource.to_string(),
                fields: changed,
            }),
        }
    }
    prune(&mut base, new, resource);
    write(new, &base);
}

/// Server-side apply of `config` over `live` (None: the object is created).
/// `config` holds only what this writer may set (the caller strips status
/// from main-resource applies and everything but status from `/status`).
/// Returns the new object with its managedFields, or a 409 naming every
/// conflicting field and manager.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    force: bool,
    writer: &Writer<'_>,
    resource: &ResourceType,
) -> Result<Value, ApiError> {
    let applied = fieldset::leaves(config, resource);
    let mut entries = live.map(read).unwrap_or_default();
    let empty = Value::Object(Map::new());
    let live_value = live.unwrap_or(&empty);

    let mut conflicts: Vec<(String, String, fieldset::FieldPath)> = Vec::new();
    for e in entries.iter().filter(|e| e.manager != writer.manager) {
        for p in e.fields.intersection(&applied) {
            if fieldset::get(live_value, p, resource) != fieldset::get(config, p, resource) {
                conflicts.push((e.manager.clone(), e.api_version.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(&conflicts, resource, config));
    }
    if force {
        for e in entries.iter_mut().filter(|e| e.manager != writer.manager) {
            e.fields.retain(|p| !applied.contains(p));
        }
    }

    let mut object = live_value.clone();
    let previous = entries
        .iter()
        .find(|e| e.is(writer.manager, "Apply", writer.subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for p in previous.difference(&applied) {
        let owned_elsewhere = entries
            .iter()
            .any(|e| !e.is(writer.manager, "Apply", writer.subresource) && e.fields.contains(p));
        if !owned_elsewhere {
            fieldset::remove(&mut object, p, resource);
        }
    }
    merge_with_lists(&mut object, config, resource, "", false);

    entries.retain(|e| !e.is(writer.manager, "Apply", writer.subresource));
    if !applied.is_empty() {
        entries.push(ManagerEntry {
            manager: writer.manager.to_string(),
            operation: "Apply".into(),
            api_version: writer.api_version.to_string(),
            time: writer.now.to_string(),
            subresource: writer.subresource.to_string(),
            fields: applied,
        });
    }
    prune(&mut entries, &object, resource);
    // Keep the previous timestamp of an entry whose fields did not change, so
    // that a repeated identical apply is a no-op as on the real server.
    if let Some(old) = live {
        for before in read(old) {
            if let Some(e) = entries.iter_mut().find(|e| {
                e.is(&before.manager, &before.operation, &before.subresource)
                    && e.fields == before.fields
            }) {
                e.time = before.time;
            }
        }
    }
    write(&mut object, &entries);
    Ok(object)
}

fn conflict_error(
    conflicts: &[(String, String, fieldset::FieldPath)],
    resource: &ResourceType,
    config: &Value,
) -> ApiError {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|(m, v, p)| format!("conflict with \"{m}\" using {v}: {}", fieldset::display(p)))
        .collect();
    let message = if lines.len() == 1 {
        format!("Apply failed with 1 conflict: {}", lines[0])
    } else {
        format!(
            "Apply failed with {} conflicts: {}",
            lines.len(),
            lines.join("\n")
        )
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, v, p)| {
            json!({
                "type": "FieldManagerConflict",
                "message": format!("conflict with \"{m}\" using {v}"),
                "field": fieldset::display(p),
            })
        })
        .collect();
    let name = config
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    ApiError::new(409, "Conflict", message).with_details(json!({
        "name": name,
        "group": resource.group,
        "kind": resource.plural,
        "causes": causes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Registry;

    fn writer<'a>(manager: &'a str) -> Writer<'a> {
        Writer {
            manager,
            subresource: "",
            api_version: "v1",
            now: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn apply_conflicts_force_and_removal() {
        let registry = Registry::with_defaults();
        let svc = registry.find("", "services").unwrap();
        let a = json!({"metadata": {"name": "s", "labels": {"x": "1", "y": "2"}}, "spec": {"type": "ClusterIP"}});
        let obj = apply(None, &a, false, &writer("alice"), svc).unwrap();
        // Same value from another manager: shared ownership, no conflict.
        let b = json!({"metadata": {"name": "s"}, "spec": {"type": "ClusterIP"}});
        let obj = apply(Some(&obj), &b, false, &writer("bob"), svc).unwrap();
        // Different value: conflict naming the field and the owners.
        let c = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort"}});
        let err = apply(Some(&obj), &c, false, &writer("carol"), svc).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(err.message.contains(".spec.type"), "{}", err.message);
        assert!(err.message.contains("alice") && err.message.contains("bob"));
        let obj = apply(Some(&obj), &c, true, &writer("carol"), svc).unwrap();
        assert_eq!(obj["spec"]["type"], "NodePort");
        // Alice drops label y: removed since nobody else owns it.
        let a2 = json!({"metadata": {"name": "s", "labels": {"x": "1"}}});
        let obj = apply(Some(&obj), &a2, false, &writer("alice"), svc).unwrap();
        assert_eq!(obj["metadata"]["labels"], json!({"x": "1"}));
        assert_eq!(obj["spec"]["type"], "NodePort");
        let mut managers: Vec<_> = read(&obj).into_iter().map(|e| e.manager).collect();
        managers.sort();
        assert_eq!(managers, vec!["alice", "carol"]);
    }

    #[test]
    fn update_takes_changed_fields() {
        let registry = Registry::with_defaults();
        let svc = registry.find("", "services").unwrap();
        let a = json!({"metadata": {"name": "s"}, "spec": {"type": "ClusterIP"}});
        let obj = apply(None, &a, false, &writer("alice"), svc).unwrap();
        let mut updated = obj.clone();
        updated["spec"]["type"] = json!("NodePort");
        record_update(Some(&obj), &mut updated, read(&obj), &writer("edit"), svc);
        let entries = read(&updated);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].manager, "edit");
        // Alice re-applying her value now conflicts with the updater.
        assert_eq!(
            apply(Some(&updated), &a, false, &writer("alice"), svc)
                .unwrap_err()
                .code,
            409
        );
    }
}
