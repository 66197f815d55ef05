//! DNS name patterns as EgressPolicy rules write them (`fqdn`): a lowercase DNS name
//! (`api.github.com`), optionally with one leading wildcard label (`*.pypi.org`); no
//! other `*`, at most 253 characters, labels of 1-63 letters, digits and `-` that
//! neither start nor end with `-`, at least two labels after a wildcard (`*.org` would
//! allow a whole top-level domain). A trailing dot is refused, to keep one spelling
//! per name.

use crate::model::FqdnPattern;

const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// Validates `written` as an FQDN pattern.
pub(crate) fn fqdn_pattern(written: &str) -> Result<FqdnPattern, String> {
    let invalid = |why: &str| Err(format!("invalid DNS name pattern {written:?}: {why}"));
    if written.is_empty() {
        return invalid("must not be empty");
    }
    if written.len() > MAX_NAME {
        return invalid(&format!("longer than {MAX_NAME} characters"));
    }
    if written.bytes().any(|b| b.is_ascii_uppercase()) {
        return invalid("must be lowercase");
    }
    if written.ends_with('.') {
        return invalid("must not end with '.'");
    }
    let (wildcard, name) = match written.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, written),
    };
    if name.contains('*') {
        return invalid("'*' is allowed only as the whole first label, as in *.example.com");
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return invalid("has an empty label");
        }
        if label.len() > MAX_LABEL {
            return invalid(&format!(
                "label {label:?} is longer than {MAX_LABEL} characters"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return invalid(&format!(
                "label {label:?} may contain only lowercase letters, digits and '-'"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return invalid(&format!("label {label:?} may not start or end with '-'"));
        }
    }
    if wildcard && labels.len() < 2 {
        return invalid("a wildcard needs a domain of at least two labels, as in *.example.com");
    }
    Ok(FqdnPattern::validated(written.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_and_leading_wildcards() {
        for ok in [
            "api.github.com",
            "*.pypi.org",
            "localhost",
            "a-1.b2.example",
            "x.y",
        ] {
            assert_eq!(fqdn_pattern(ok).unwrap().as_str(), ok);
        }
        let longest = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert!(fqdn_pattern(&longest).is_ok());
    }

    #[test]
    fn refuses_everything_else_saying_why() {
        for (bad, why) in [
            ("", "empty"),
            ("API.github.com", "lowercase"),
            ("api.github.com.", "end with"),
            ("*.*.pypi.org", "'*' is allowed only"),
            ("files*.pypi.org", "'*' is allowed only"),
            ("*pypi.org", "'*' is allowed only"),
            ("*", "'*' is allowed only"),
            ("*.org", "at least two labels"),
            ("a..b", "empty label"),
            (".a.b", "empty label"),
            ("-a.b", "start or end"),
            ("a_b.c", "only lowercase letters"),
            ("10.0.0.1/8", "only lowercase letters"),
        ] {
            let message = fqdn_pattern(bad).unwrap_err();
            assert!(message.contains(why), "{bad:?}: {message}");
        }
        assert!(
            fqdn_pattern(&format!("{}.com", "a".repeat(64)))
                .unwrap_err()
                .contains("longer than 63")
        );
        assert!(
            fqdn_pattern(&"a.".repeat(127))
                .unwrap_err()
                .contains("longer than 253")
        );
    }
}
