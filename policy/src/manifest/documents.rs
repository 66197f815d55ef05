//! Splits a YAML stream (`---`-separated documents; JSON is YAML too) into one value per
//! document.

use serde::Deserialize;
use serde_norway::Value;

/// One document of a stream, numbered from 1.
#[derive(Debug)]
pub(crate) struct Document {
    pub number: usize,
    /// The document's content (`Value::Null` for an empty document), or why it is not
    /// valid YAML.
    pub content: Result<Value, String>,
}

/// Every document of `text`, in order. A document that is not valid YAML ends the list:
/// after a syntax error the parser cannot tell where the next document starts.
pub(crate) fn split(text: &str) -> Vec<Document> {
    // Some editors start UTF-8 files with a byte order mark; it is not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut documents = Vec::new();
    for (index, deserializer) in serde_norway::Deserializer::from_str(text).enumerate() {
        let content = Value::deserialize(deserializer).and_then(|mut value| {
            // `<<: *anchor` merge keys, which Kubernetes' YAML reader also honours.
            value.apply_merge()?;
            Ok(value)
        });
        let failed = content.is_err();
        documents.push(Document {
            number: index + 1,
            content: content.map_err(|e| format!("invalid YAML: {e}")),
        });
        if failed {
            break;
        }
    }
    documents
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(text: &str) -> Vec<Result<Value, String>> {
        split(text).into_iter().map(|d| d.content).collect()
    }

    #[test]
    fn splits_on_document_markers_and_numbers_from_one() {
        let docs = split("a: 1\n---\nb: 2\n---\n# only a comment\n---\n");
        let numbers: Vec<_> = docs.iter().map(|d| d.number).collect();
        assert_eq!(numbers, [1, 2, 3, 4]);
        assert_eq!(docs[0].content.as_ref().unwrap()["a"], Value::from(1));
        assert_eq!(docs[1].content.as_ref().unwrap()["b"], Value::from(2));
        assert_eq!(docs[2].content.as_ref().unwrap(), &Value::Null);
        assert_eq!(docs[3].content.as_ref().unwrap(), &Value::Null);
    }

    #[test]
    fn a_leading_marker_does_not_add_a_document() {
        assert_eq!(split("---\na: 1\n---\nb: 2\n").len(), 2);
        assert_eq!(contents(""), [Ok(Value::Null)]);
    }

    #[test]
    fn reads_json() {
        let docs = contents("{\n\t\"kind\": \"Pod\",\n\t\"items\": [1, 2]\n}\n");
        assert_eq!(docs[0].as_ref().unwrap()["kind"], Value::from("Pod"));
    }

    #[test]
    fn ignores_a_byte_order_mark() {
        let docs = contents("\u{feff}a: 1\n---\nb: 2\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].as_ref().unwrap()["a"], Value::from(1));
    }

    #[test]
    fn applies_merge_keys() {
        let docs = contents("base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n");
        assert_eq!(docs[0].as_ref().unwrap()["derived"]["x"], Value::from(1));
    }

    #[test]
    fn stops_at_the_first_syntax_error() {
        let docs = split("a: 1\n---\nb: [unclosed\n---\nc: 3\n");
        assert_eq!(docs.len(), 2);
        let error = docs[1].content.as_ref().unwrap_err();
        assert!(error.starts_with("invalid YAML: "), "{error}");
        assert!(error.contains("line 3"), "{error}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let docs = contents("a: 1\na: 2\n");
        assert!(
            docs[0].as_ref().unwrap_err().contains("duplicate"),
            "{docs:?}"
        );
    }
}
