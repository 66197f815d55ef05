//! The resource types the double serves: group, version, plural name, kind,
//! scope, status subresource, the field selectors the real server accepts for
//! them and the associative lists server-side apply merges by key. Built-in
//! Kubernetes types and palisade's CRDs are registered by default; a test can
//! register any other custom resource.

use std::collections::BTreeMap;

/// Whether objects live in a namespace or at cluster scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// An associative list ("x-kubernetes-list-type: map"): items are merged by
/// the values of `keys`, by server-side apply and by strategic merge patch.
/// `path` is the dotted path of the list from the object root, naming only
/// fields (list items in between are implied): `spec.containers.ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListMap {
    pub path: String,
    pub keys: Vec<String>,
}

/// One served resource type.
#[derive(Clone, Debug)]
pub struct ResourceType {
    /// API group, "" for the core group.
    pub group: String,
    pub version: String,
    /// Plural lower-case name used in URLs, for example "pods".
    pub plural: String,
    pub kind: String,
    pub scope: Scope,
    /// Writes to the main resource leave status alone; `/status` changes only status.
    pub status_subresource: bool,
    /// Custom resources refuse strategic merge patch (415) like the real server.
    pub custom: bool,
    /// Field selector labels accepted besides metadata.name and metadata.namespace.
    pub field_selectors: Vec<String>,
    /// Associative lists (merge keys) for apply and strategic merge patch.
    pub list_maps: Vec<ListMap>,
}

impl ResourceType {
    /// A resource type with no extra field selectors and only atomic lists.
    pub fn new(group: &str, version: &str, plural: &str, kind: &str, scope: Scope) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            scope,
            status_subresource: false,
            custom: false,
            field_selectors: Vec::new(),
            list_maps: Vec::new(),
        }
    }

    /// A custom resource (CRD) with a status subresource.
    pub fn custom(group: &str, version: &str, plural: &str, kind: &str, scope: Scope) -> Self {
        let mut r = Self::new(group, version, plural, kind, scope);
        r.custom = true;
        r.status_subresource = true;
        r
    }

    /// The kind a CustomResourceDefinition object defines (its first served version),
    /// as the API server would serve it once the CRD is created; `None` if the object
    /// lacks a field that says so.
    pub fn from_crd(crd: &serde_json::Value) -> Option<Self> {
        let spec = &crd["spec"];
        let version = spec["versions"]
            .as_array()?
            .iter()
            .find(|v| v["served"].as_bool().unwrap_or(true))?;
        let scope = match spec["scope"].as_str()? {
            "Cluster" => Scope::Cluster,
            _ => Scope::Namespaced,
        };
        let mut r = Self::custom(
            spec["group"].as_str()?,
            version["name"].as_str()?,
            spec["names"]["plural"].as_str()?,
            spec["names"]["kind"].as_str()?,
            scope,
        );
        r.status_subresource = version["subresources"].get("status").is_some();
        Some(r)
    }

    pub fn with_status(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    pub fn with_field_selectors(mut self, fields: &[&str]) -> Self {
        self.field_selectors
            .extend(fields.iter().map(|f| f.to_string()));
        self
    }

    pub fn with_list_map(mut self, path: &str, keys: &[&str]) -> Self {
        self.list_maps.push(ListMap {
            path: path.into(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
        });
        self
    }

    /// "v1" or "group/version", as in an object's apiVersion.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// The key resources are looked up by: "group/version/plural".
    pub fn key(&self) -> ResourceKey {
        ResourceKey::new(&self.group, &self.version, &self.plural)
    }

    /// The merge keys of the list at `path` (dotted field names), if it is associative.
    pub fn list_map_keys(&self, path: &str) -> Option<&[String]> {
        self.list_maps
            .iter()
            .find(|m| m.path == path)
            .map(|m| m.keys.as_slice())
    }

    /// Whether `field` may be used in a field selector.
    pub fn field_selectable(&self, field: &str) -> bool {
        field == "metadata.name"
            || field == "metadata.namespace"
            || self.field_selectors.iter().any(|f| f == field)
    }
}

/// Group, version and plural: what identifies a resource type in a URL.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    pub group: String,
    pub version: String,
    pub plural: String,
}

impl ResourceKey {
    pub fn new(group: &str, version: &str, plural: &str) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
        }
    }
}

impl std::fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}/{}", self.version, self.plural)
        } else {
            write!(f, "{}/{}/{}", self.group, self.version, self.plural)
        }
    }
}

/// All served resource types, by key.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    types: BTreeMap<ResourceKey, ResourceType>,
}

impl Registry {
    /// The built-in types and CRDs palisade uses.
    pub fn with_defaults() -> Self {
        let mut r = Self::default();
        for t in default_types() {
            r.register(t);
        }
        r
    }

    /// Adds or replaces a resource type.
    pub fn register(&mut self, t: ResourceType) {
        self.types.insert(t.key(), t);
    }

    pub fn get(&self, key: &ResourceKey) -> Option<&ResourceType> {
        self.types.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ResourceType> {
        self.types.values()
    }

    /// Finds a type by group and plural (any version), for convenience APIs.
    pub fn find(&self, group: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .values()
            .find(|t| t.group == group && t.plural == plural)
    }
}

fn conditions(t: ResourceType) -> ResourceType {
    t.with_list_map("status.conditions", &["type"])
}

fn default_types() -> Vec<ResourceType> {
    use Scope::{Cluster, Namespaced};
    vec![
        ResourceType::new("", "v1", "namespaces", "Namespace", Cluster)
            .with_status()
            .with_field_selectors(&["status.phase"]),
        conditions(
            ResourceType::new("", "v1", "pods", "Pod", Namespaced)
                .with_status()
                .with_field_selectors(&[
                    "spec.nodeName",
                    "spec.restartPolicy",
                    "spec.schedulerName",
                    "spec.serviceAccountName",
                    "spec.hostNetwork",
                    "status.phase",
                    "status.podIP",
                    "status.nominatedNodeName",
                ])
                .with_list_map("spec.containers", &["name"])
                .with_list_map("spec.initContainers", &["name"])
                .with_list_map("spec.containers.ports", &["containerPort", "protocol"])
                .with_list_map("status.podIPs", &["ip"])
                .with_list_map("spec.readinessGates", &["conditionType"]),
        ),
        conditions(
            ResourceType::new("", "v1", "nodes", "Node", Cluster)
                .with_status()
                .with_field_selectors(&["spec.unschedulable"])
                .with_list_map("status.addresses", &["type"]),
        ),
        ResourceType::new("", "v1", "services", "Service", Namespaced)
            .with_status()
            .with_field_selectors(&["spec.clusterIP", "spec.type"])
            .with_list_map("spec.ports", &["port", "protocol"]),
        ResourceType::new("", "v1", "events", "Event", Namespaced).with_field_selectors(&[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]),
        ResourceType::new("events.k8s.io", "v1", "events", "Event", Namespaced),
        ResourceType::new(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            Namespaced,
        ),
        ResourceType::new(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            Namespaced,
        ),
        conditions(ResourceType::custom(
            "policy.networking.k8s.io",
            "v1alpha1",
            "adminnetworkpolicies",
            "AdminNetworkPolicy",
            Cluster,
        )),
        conditions(ResourceType::custom(
            "policy.networking.k8s.io",
            "v1alpha1",
            "baselineadminnetworkpolicies",
            "BaselineAdminNetworkPolicy",
            Cluster,
        )),
        conditions(ResourceType::custom(
            "palisade.dev",
            "v1alpha1",
            "trustboundaries",
            "TrustBoundary",
            Namespaced,
        )),
        conditions(ResourceType::custom(
            "palisade.dev",
            "v1alpha1",
            "egresspolicies",
            "EgressPolicy",
            Namespaced,
        )),
        ResourceType::new("coordination.k8s.io", "v1", "leases", "Lease", Namespaced),
    ]
}
