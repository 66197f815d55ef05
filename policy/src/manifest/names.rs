//! Kubernetes' syntax rules for names, label keys and values, and port names
//! (`k8s.io/apimachinery/pkg/util/validation`). Each check returns the message to
//! report, naming the offending text.

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;
const PORT_NAME_MAX: usize = 15;

/// A DNS-1123 label (namespace names): 1-63 of `a-z 0-9 -`, alphanumeric at both ends.
pub(crate) fn dns1123_label(text: &str) -> Result<(), String> {
    if text.len() > DNS1123_LABEL_MAX {
        return Err(format!(
            "{text:?} is longer than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_dns1123_label_body(text) {
        return Err(format!(
            "{text:?} is not a valid DNS-1123 label: use lowercase letters, digits and '-', \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A DNS-1035 label (Service names): a DNS-1123 label that starts with a letter.
pub(crate) fn dns1035_label(text: &str) -> Result<(), String> {
    dns1123_label(text)?;
    if !text.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!(
            "{text:?} is not a valid DNS-1035 label: it must start with a lowercase letter"
        ));
    }
    Ok(())
}

/// A DNS-1123 subdomain (most object names): dot-separated DNS-1123 labels, at most
/// 253 characters in all.
pub(crate) fn dns1123_subdomain(text: &str) -> Result<(), String> {
    if text.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(format!(
            "{text:?} is longer than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    if !text.split('.').all(is_dns1123_label_body) {
        return Err(format!(
            "{text:?} is not a valid DNS-1123 subdomain: use lowercase letters, digits, '-' \
             and '.', each dot-separated part starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn is_dns1123_label_body(text: &str) -> bool {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            is_lower_alnum(*first)
                && is_lower_alnum(*last)
                && bytes.iter().all(|&b| is_lower_alnum(b) || b == b'-')
        }
        _ => false,
    }
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A label key (a "qualified name"): an optional DNS-1123 subdomain prefix and `/`,
/// then a name of 1-63 characters (`A-Z a-z 0-9 - _ .`, alphanumeric at both ends).
pub(crate) fn label_key(text: &str) -> Result<(), String> {
    let (prefix, name) = match text.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, text),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err(format!(
                "invalid label key {text:?}: the prefix before '/' is empty"
            ));
        }
        dns1123_subdomain(prefix)
            .map_err(|why| format!("invalid label key {text:?}: prefix {why}"))?;
    }
    if name.is_empty() {
        return Err(format!(
            "invalid label key {text:?}: the name part is empty"
        ));
    }
    if name.len() > QUALIFIED_NAME_MAX {
        return Err(format!(
            "invalid label key {text:?}: the name part is longer than {QUALIFIED_NAME_MAX} \
             characters"
        ));
    }
    if !is_label_name_body(name) {
        return Err(format!(
            "invalid label key {text:?}: the name part must consist of letters, digits, '-', \
             '_' or '.', starting and ending with a letter or digit (and at most one '/')"
        ));
    }
    Ok(())
}

/// A label value: empty, or up to 63 characters of `A-Z a-z 0-9 - _ .`, alphanumeric
/// at both ends.
pub(crate) fn label_value(text: &str) -> Result<(), String> {
    if text.len() > LABEL_VALUE_MAX {
        return Err(format!(
            "invalid label value {text:?}: longer than {LABEL_VALUE_MAX} characters"
        ));
    }
    if !text.is_empty() && !is_label_name_body(text) {
        return Err(format!(
            "invalid label value {text:?}: must be empty or consist of letters, digits, '-', \
             '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn is_label_name_body(text: &str) -> bool {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// An IANA service name, as a named port: 1-15 of `a-z 0-9 -`, at least one letter, no
/// `-` at either end and no `--`.
pub(crate) fn port_name(text: &str) -> Result<(), String> {
    let problem = if text.is_empty() || text.len() > PORT_NAME_MAX {
        Some(format!("must be 1-{PORT_NAME_MAX} characters long"))
    } else if !text.bytes().all(|b| is_lower_alnum(b) || b == b'-') {
        Some("may contain only lowercase letters, digits and '-'".to_string())
    } else if !text.bytes().any(|b| b.is_ascii_lowercase()) {
        Some("must contain at least one letter".to_string())
    } else if text.starts_with('-') || text.ends_with('-') {
        Some("may not begin or end with '-'".to_string())
    } else if text.contains("--") {
        Some("may not contain '--'".to_string())
    } else {
        None
    };
    match problem {
        Some(why) => Err(format!("invalid port name {text:?}: {why}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for ok in ["x", "kube-system", "a1", "0"] {
            assert!(dns1123_label(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(dns1123_label(bad).is_err(), "{bad}");
        }
        for ok in ["web", "a1", "my-svc"] {
            assert!(dns1035_label(ok).is_ok(), "{ok}");
        }
        for bad in ["1web", "0", "-a", "a.b", "Web", ""] {
            assert!(dns1035_label(bad).is_err(), "{bad}");
        }
        for ok in ["allow-web", "a.b.c", "x"] {
            assert!(dns1123_subdomain(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a..b", ".a", "a.", "Web", "a_b"] {
            assert!(dns1123_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_keys() {
        for ok in [
            "app",
            "kubernetes.io/metadata.name",
            "app.kubernetes.io/name",
            "A_b-c.D",
            "x/y",
        ] {
            assert!(label_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a/b/c",
            "-a",
            "a-",
            "has space",
            "Bad_Prefix/x",
        ] {
            assert!(label_key(bad).is_err(), "{bad}");
        }
        assert!(label_key(&"a".repeat(64)).is_err());
        assert!(label_key(&format!("{}/a", "p".repeat(254))).is_err());
    }

    #[test]
    fn label_values() {
        for ok in ["", "web", "v1.2_3-x", "A"] {
            assert!(label_value(ok).is_ok(), "{ok}");
        }
        for bad in ["-web", "web-", "a b", "a/b", &"a".repeat(64)] {
            assert!(label_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_names_follow_iana_rules() {
        for ok in ["http", "serve-80-tcp", "h2c", "a", "x1-2-3"] {
            assert!(port_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "80",
            "-http",
            "http-",
            "ht--tp",
            "HTTP",
            "web_ui",
            "a23456789012345x",
        ] {
            assert!(port_name(bad).is_err(), "{bad}");
        }
    }
}
