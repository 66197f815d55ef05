//! Serde plumbing shared by the wire types (the `#[derive(Deserialize)]` mirrors of the
//! Kubernetes JSON): typed reads of a YAML value that report the full field path, and
//! `null` read as "absent", as Kubernetes' Go decoding does.

use super::error::{FieldError, FieldPath};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};
use serde_norway::Value;

/// Deserializes `value`, found at `at` in its document, into `T`. On failure the error
/// names the field that failed, from the document root.
pub(crate) fn deserialize_at<T: DeserializeOwned>(
    value: &Value,
    at: &FieldPath,
) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let relative = err.path().to_string();
        // serde_path_to_error prints the root as ".".
        let field = at.join(if relative == "." { "" } else { &relative });
        describe(field, &err.inner().to_string())
    })
}

/// A policy document whose content is all under `spec`: the envelope shared by
/// NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy, EgressPolicy and
/// TrustBoundary. Unknown top-level fields are errors; `apiVersion` and `kind` were
/// checked by the dispatcher, `metadata` is read by [`ObjectMeta::read`], and `status`
/// is ignored.
///
/// [`ObjectMeta::read`]: super::metadata::ObjectMeta::read
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpecDocument<S> {
    #[serde(rename = "apiVersion", default)]
    _api_version: IgnoredAny,
    #[serde(rename = "kind", default)]
    _kind: IgnoredAny,
    /// Read by [`ObjectMeta::read`], which accepts every metadata field.
    ///
    /// [`ObjectMeta::read`]: super::metadata::ObjectMeta::read
    #[serde(rename = "metadata", default)]
    _metadata: IgnoredAny,
    /// `None` when absent or `null`; every such kind requires it.
    pub(crate) spec: Option<S>,
    /// Written by the cluster, never by the policy's author.
    #[serde(rename = "status", default)]
    _status: IgnoredAny,
}

/// Reads `document` (found at `at`) as a [`SpecDocument`] and returns its spec; a
/// missing spec is the only error, reported at `spec`.
pub(crate) fn required_spec<S: DeserializeOwned>(
    document: &Value,
    at: &FieldPath,
) -> Result<S, Vec<FieldError>> {
    let wire: SpecDocument<S> = deserialize_at(document, at).map_err(|e| vec![e])?;
    wire.spec.ok_or_else(|| {
        vec![FieldError::at(
            &at.field("spec"),
            "required field is missing",
        )]
    })
}

/// Rewords serde's messages about a missing or unknown field so that the path names the
/// field and the message says what is wrong with it (a missing field's path points at
/// the enclosing object).
fn describe(field: FieldPath, message: &str) -> FieldError {
    if let Some(name) = quoted_after(message, "missing field ") {
        return FieldError::at(&field.field(name), "required field is missing");
    }
    // For an unknown field the path already ends with the field's name.
    if quoted_after(message, "unknown field ").is_some() {
        let known = message
            .split_once(", expected ")
            .map(|(_, expected)| format!(" (expected {expected})"))
            .unwrap_or_default();
        return FieldError::at(&field, format!("unknown field{known}"));
    }
    FieldError::at(&field, message)
}

/// `name` out of a serde message `<prefix>` followed by a backquoted name.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split_once('`').map(|(name, _)| name)
}

/// `deserialize_with` for fields that Kubernetes treats the same whether absent or
/// `null`: both give `T::default()`. Use together with `#[serde(default)]`.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A short name for the type of a YAML value, for messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Outer {
        inner: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Inner {
        #[allow(dead_code)] // only its presence and type are tested
        required_name: String,
        #[serde(default, deserialize_with = "nullable")]
        labels: BTreeMap<String, String>,
    }

    fn read(yaml: &str) -> Result<Outer, FieldError> {
        let value: Value = serde_norway::from_str(yaml).unwrap();
        deserialize_at(&value, &FieldPath::root().field("spec"))
    }

    #[test]
    fn type_errors_name_the_field() {
        let err = read("inner: [{requiredName: a}, {requiredName: [1]}]").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("spec.inner[1].requiredName"));
        assert!(err.message.contains("expected a string"), "{err:?}");
    }

    #[test]
    fn missing_fields_are_named() {
        let err = read("inner: [{labels: {}}]").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("spec.inner[0].requiredName"));
        assert_eq!(err.message, "required field is missing");
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = read("inner: [{requiredName: a, extra: 1}]").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("spec.inner[0].extra"));
        assert!(
            err.message.starts_with("unknown field (expected"),
            "{err:?}"
        );
    }

    #[test]
    fn null_reads_as_absent() {
        let outer = read("inner: [{requiredName: a, labels: null}]").unwrap();
        assert!(outer.inner[0].labels.is_empty());
    }
}
