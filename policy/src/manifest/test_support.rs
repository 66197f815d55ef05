//! Helpers the per-kind parser tests share: parse a file that must hold one object,
//! and check the exact errors of one that must not parse.

use super::{Object, parse_documents};

/// Parses `text` as the file `file`, which must hold exactly one valid object.
pub(crate) fn parse_one(file: &str, text: &str) -> Object {
    match parse_documents(file, text) {
        Ok(mut objects) if objects.len() == 1 => objects.remove(0),
        Ok(objects) => panic!("not one object: {objects:?}"),
        Err(errors) => panic!("{errors}"),
    }
}

/// Every error, as printed, of `text` parsed as the file `file`, which must be invalid.
pub(crate) fn errors(file: &str, text: &str) -> Vec<String> {
    parse_documents(file, text)
        .expect_err("the object is invalid")
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Asserts that `text`, parsed as the file `file`, fails with exactly the `expected`
/// errors, in order: each one in the first document, whose object prints as `object`
/// (`Kind name` or `Kind namespace/name`), at its field and starting with its message.
pub(crate) fn assert_errors(file: &str, text: &str, object: &str, expected: &[(&str, &str)]) {
    let errors = errors(file, text);
    assert_eq!(errors.len(), expected.len(), "{text}\n  got: {errors:#?}");
    for (error, (field, message)) in errors.iter().zip(expected) {
        let prefix = format!("{file}: document 1 ({object}): {field}: {message}");
        assert!(
            error.starts_with(&prefix),
            "{text}\n  expected: {prefix}\n  got: {error}"
        );
    }
}
