//! Turns a request's method, path and query string into what it asks for:
//! a discovery document or a verb on a resource (with namespace, name and
//! subresource), following the URL layout of the real server
//! (`/api/v1/namespaces/{ns}/pods/{name}/status`, `/apis/{group}/{version}/...`).

use std::collections::HashMap;

use http::Method;

use crate::resource::ResourceKey;
use crate::status::ApiError;

/// The Kubernetes verb of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
    Discovery,
}

impl Verb {
    /// Whether the verb writes.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Self::Create | Self::Update | Self::Patch | Self::Delete | Self::DeleteCollection
        )
    }
}

/// What a path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/version`
    Version,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`
    Resources {
        group: String,
        version: String,
    },
    Resource(ResourceRef),
}

/// A resource (collection or object) in a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRef {
    pub key: ResourceKey,
    /// "" for cluster-scoped paths and all-namespace collections.
    pub namespace: String,
    pub name: Option<String>,
    /// "" or "status".
    pub subresource: String,
}

/// Parses a path (without query string).
pub fn parse_path(path: &str) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => return Ok(Target::Version),
        ["api"] => return Ok(Target::CoreVersions),
        ["apis"] => return Ok(Target::Groups),
        ["apis", group] => return Ok(Target::Group(group.to_string())),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(not_found()),
    };
    let resource = |plural: &str, namespace: &str, name: Option<&str>, sub: Option<&str>| {
        Target::Resource(ResourceRef {
            key: ResourceKey::new(group, version, plural),
            namespace: namespace.to_string(),
            name: name.map(str::to_string),
            subresource: sub.unwrap_or_default().to_string(),
        })
    };
    Ok(match rest {
        [] => Target::Resources {
            group: group.into(),
            version: version.into(),
        },
        ["namespaces", ns, plural, tail @ ..] if *plural != "status" && *plural != "finalize" => {
            match tail {
                [] => resource(plural, ns, None, None),
                [name] => resource(plural, ns, Some(name), None),
                [name, sub] => resource(plural, ns, Some(name), Some(sub)),
                _ => return Err(not_found()),
            }
        }
        [plural] => resource(plural, "", None, None),
        [plural, name] => resource(plural, "", Some(name), None),
        [plural, name, sub] => resource(plural, "", Some(name), Some(sub)),
        _ => return Err(not_found()),
    })
}

/// The verb of a method on a resource path.
pub fn verb(method: &Method, target: &ResourceRef, query: &Query) -> Result<Verb, ApiError> {
    let named = target.name.is_some();
    Ok(match (method.as_str(), named) {
        ("GET", true) => Verb::Get,
        ("GET", false) if query.flag("watch") => Verb::Watch,
        ("GET", false) => Verb::List,
        ("POST", false) => Verb::Create,
        ("PUT", true) => Verb::Update,
        ("PATCH", true) => Verb::Patch,
        ("DELETE", true) => Verb::Delete,
        ("DELETE", false) => Verb::DeleteCollection,
        (m, _) => {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({m})"
            )));
        }
    })
}

/// The query parameters of a request.
#[derive(Clone, Debug, Default)]
pub struct Query {
    params: HashMap<String, String>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        let params = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
        Self { params }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// A boolean parameter: "true" or "1".
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true") | Some("1"))
    }

    pub fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid {name}: \"{v}\"")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let r = |p: &str| match parse_path(p).unwrap() {
            Target::Resource(r) => r,
            other => panic!("{other:?}"),
        };
        let pod = r("/api/v1/namespaces/ns/pods/a/status");
        assert_eq!(pod.key, ResourceKey::new("", "v1", "pods"));
        assert_eq!(
            (
                pod.namespace.as_str(),
                pod.name.as_deref(),
                pod.subresource.as_str()
            ),
            ("ns", Some("a"), "status")
        );
        let ns = r("/api/v1/namespaces/ns");
        assert_eq!(
            (ns.key.plural.as_str(), ns.name.as_deref()),
            ("namespaces", Some("ns"))
        );
        let ns_status = r("/api/v1/namespaces/ns/status");
        assert_eq!(ns_status.subresource, "status");
        let all = r("/apis/palisade.dev/v1alpha1/trustboundaries");
        assert_eq!((all.namespace.as_str(), all.name), ("", None));
        assert_eq!(parse_path("/apis").unwrap(), Target::Groups);
        assert!(parse_path("/nope").is_err());
    }
}
