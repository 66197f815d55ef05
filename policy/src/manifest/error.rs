//! Errors of manifest parsing: where a problem is (file, document, object, field) and
//! what it is, plus the field-path bookkeeping the parsers use to say where.

use std::fmt;

/// One problem found in a manifest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The file name as the caller gave it.
    pub file: String,
    /// 1-based number of the YAML document in `file`; 0 when the problem is not about
    /// one document (for example an object defined twice, across files).
    pub document: usize,
    /// The object, e.g. `NetworkPolicy x/allow-web`, once its kind is known.
    pub object: Option<String>,
    /// Dotted path from the document root, e.g. `spec.ingress[0].from[1].ipBlock.cidr`.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.document > 0 {
            write!(f, ": document {}", self.document)?;
        }
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one parse, in input order. Never empty when returned as an
/// error.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl ManifestErrors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ManifestError> {
        self.0.iter()
    }
}

impl IntoIterator for ManifestErrors {
    type Item = ManifestError;
    type IntoIter = std::vec::IntoIter<ManifestError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ManifestErrors {
    type Item = &'a ManifestError;
    type IntoIter = std::slice::Iter<'a, ManifestError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A problem inside one object, before it is placed in a file and document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub field: Option<String>,
    pub message: String,
}

impl FieldError {
    pub fn at(field: &FieldPath, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_option(),
            message: message.into(),
        }
    }
}

/// A dotted field path under construction: `spec`, `.ingress`, `[0]`, ... The empty
/// path is the document root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(String);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(String::new())
    }

    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    pub fn index(&self, index: usize) -> Self {
        FieldPath(format!("{}[{index}]", self.0))
    }

    /// Appends a path written in the same notation (as `serde_path_to_error` prints it).
    pub fn join(&self, relative: &str) -> Self {
        match (
            self.0.is_empty(),
            relative.is_empty(),
            relative.starts_with('['),
        ) {
            (_, true, _) => self.clone(),
            (true, false, _) | (false, false, true) => FieldPath(format!("{}{relative}", self.0)),
            (false, false, false) => FieldPath(format!("{}.{relative}", self.0)),
        }
    }

    pub fn to_option(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.clone())
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Collects the problems of one object while its conversion goes on, so one pass
/// reports all of them, as the API server does.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<FieldError>);

impl Problems {
    pub fn new() -> Self {
        Problems::default()
    }

    pub fn add(&mut self, field: &FieldPath, message: impl Into<String>) {
        self.0.push(FieldError::at(field, message));
    }

    /// Records a failed check and gives back its value if it passed.
    pub fn check<T>(&mut self, field: &FieldPath, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                self.add(field, message);
                None
            }
        }
    }

    /// Every problem recorded, for an object that cannot be converted at all.
    pub fn into_errors(self) -> Vec<FieldError> {
        self.0
    }

    /// `value` if no problem was recorded, else every problem.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(document: usize, object: Option<&str>, field: Option<&str>) -> ManifestError {
        ManifestError {
            file: "policies.yaml".into(),
            document,
            object: object.map(str::to_string),
            field: field.map(str::to_string),
            message: "bad".into(),
        }
    }

    #[test]
    fn display_names_file_document_object_and_field() {
        let full = error(
            2,
            Some("NetworkPolicy x/allow-web"),
            Some("spec.ingress[0].from[1].ipBlock.cidr"),
        );
        assert_eq!(
            full.to_string(),
            "policies.yaml: document 2 (NetworkPolicy x/allow-web): \
             spec.ingress[0].from[1].ipBlock.cidr: bad"
        );
        assert_eq!(
            error(1, None, None).to_string(),
            "policies.yaml: document 1: bad"
        );
        assert_eq!(
            error(0, Some("Pod x/a"), None).to_string(),
            "policies.yaml (Pod x/a): bad"
        );
    }

    #[test]
    fn paths_compose_like_serde_path_to_error_prints_them() {
        let spec = FieldPath::root().field("spec");
        assert_eq!(
            spec.field("ingress").index(0).to_string(),
            "spec.ingress[0]"
        );
        assert_eq!(
            spec.join("ingress[0].from").to_string(),
            "spec.ingress[0].from"
        );
        assert_eq!(spec.index(3).join("[1].a").to_string(), "spec[3][1].a");
        assert_eq!(FieldPath::root().join("kind").to_string(), "kind");
        assert_eq!(FieldPath::root().to_option(), None);
    }
}
