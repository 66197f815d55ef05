//! DNS name patterns of EgressPolicy rules: an exact name (`api.github.com`) or a
//! wildcard over the names below a domain (`*.pypi.org`).
//!
//! The manifest parser validates the syntax (lowercase DNS names, one optional leading
//! `*.` label, at most 253 characters, labels of at most 63); the model keeps the
//! pattern as written. The datapath resolves allowed names through a DNS proxy (see
//! `docs/crds.md`); [`FqdnPattern::matches`] is the matching it will apply.

use std::fmt;

/// Leading label of a wildcard pattern.
const WILDCARD_PREFIX: &str = "*.";

/// A validated, lowercase DNS name pattern.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FqdnPattern(String);

impl FqdnPattern {
    /// A pattern the manifest parser has validated (`crate::manifest`).
    pub(crate) fn validated(pattern: String) -> Self {
        Self(pattern)
    }

    /// The pattern as written, e.g. `*.pypi.org`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the pattern is `*.` followed by a domain.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with(WILDCARD_PREFIX)
    }

    /// Whether the DNS name `name` (case-insensitive, an optional trailing dot) is one
    /// the pattern allows. An exact pattern matches itself only; `*.pypi.org` matches
    /// every name below `pypi.org` at any depth (`files.pypi.org`, `a.b.pypi.org`),
    /// never `pypi.org` itself.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        match self.0.strip_prefix('*') {
            // `suffix` is `.pypi.org`: something must come before it.
            Some(suffix) => name.len() > suffix.len() && name.ends_with(suffix),
            None => name == self.0,
        }
    }
}

impl fmt::Display for FqdnPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_match_themselves_only() {
        let p = FqdnPattern::validated("api.github.com".into());
        assert!(!p.is_wildcard());
        assert!(p.matches("api.github.com") && p.matches("API.github.com."));
        assert!(!p.matches("x.api.github.com") && !p.matches("github.com"));
    }

    #[test]
    fn wildcards_match_names_below_their_domain() {
        let p = FqdnPattern::validated("*.pypi.org".into());
        assert!(p.is_wildcard());
        assert!(p.matches("files.pypi.org") && p.matches("a.b.pypi.org"));
        assert!(!p.matches("pypi.org") && !p.matches("evilpypi.org") && !p.matches(".pypi.org"));
    }
}
