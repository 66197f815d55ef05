//! The harness of the end-to-end tests: the API-server double seeded with a small
//! cluster, controllers run against it, and the checks the tests share (what the
//! double holds against what `compile()` gives for the same objects). Waits poll with
//! a generous deadline: a hang guard, not a timing assertion.

use palisade_apiserver_double::{ApiServerDouble, Options, ResourceType};
use palisade_controller::controller::{self, Settings};
use palisade_controller::health::Readiness;
use palisade_controller::leader::LeaseSettings;
use palisade_controller::metrics::Metrics;
use palisade_controller::objects::MODEL_KINDS;
use palisade_controller::publication::{canonical_content_hash, desired};
use palisade_crds::publication::{NODE_POLICY_PLURAL, NodePolicyContent};
use palisade_policy::manifest::{build_cluster, parse_json_object};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const GROUP: &str = "palisade.dev";
pub const DEADLINE: Duration = Duration::from_secs(60);

pub async fn double() -> ApiServerDouble {
    let options = Options {
        bookmark_interval: Duration::from_millis(100),
        ..Options::default()
    };
    let double = ApiServerDouble::start_with(options)
        .await
        .expect("double starts");
    for definition in palisade_crds::publication::publication_definitions() {
        double.register(ResourceType::from_crd(&definition.crd).expect("a publication CRD"));
    }
    double
}

/// Namespaces x and palisade-system, three nodes, pods web-1 (n1), web-2 (n2),
/// db-1 (n3), a NetworkPolicy letting web reach db and an EgressPolicy for web.
pub fn seed(double: &ApiServerDouble) {
    for ns in ["x", "palisade-system", "default"] {
        insert(
            double,
            "",
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"team": ns}}}),
        );
    }
    for (i, node) in ["n1", "n2", "n3"].iter().enumerate() {
        insert(
            double,
            "",
            "nodes",
            json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node},
            "status": {"addresses": [{"type": "InternalIP", "address": format!("192.168.0.{}", i + 1)}]}}),
        );
    }
    insert(double, "", "pods", pod("web-1", "n1", "10.0.1.1", "web"));
    insert(double, "", "pods", pod("web-2", "n2", "10.0.2.1", "web"));
    insert(double, "", "pods", pod("db-1", "n3", "10.0.3.1", "db"));
    insert(
        double,
        "networking.k8s.io",
        "networkpolicies",
        json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "db", "namespace": "x"},
        "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                              "ports": [{"protocol": "TCP", "port": 5432}]}]}}),
    );
    insert(
        double,
        GROUP,
        "egresspolicies",
        egress_policy("egress", "10.0.0.0/8"),
    );
}

pub fn pod(name: &str, node: &str, ip: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "x", "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})
}

pub fn egress_policy(name: &str, cidr: &str) -> Value {
    json!({"apiVersion": "palisade.dev/v1alpha1", "kind": "EgressPolicy",
        "metadata": {"name": name, "namespace": "x"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                 "egress": [{"to": [{"cidr": cidr}]}]}})
}

pub fn insert(double: &ApiServerDouble, group: &str, plural: &str, object: Value) {
    double.insert(group, plural, object).expect("seeded");
}

/// A running controller replica.
pub struct Replica {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Replica {
    pub fn start(double: &ApiServerDouble, identity: &str) -> Replica {
        let mut settings = Settings::new(LeaseSettings {
            name: "palisade-controller".into(),
            namespace: "palisade-system".into(),
            identity: identity.into(),
            duration: Duration::from_secs(2),
            retry: Duration::from_millis(200),
        });
        settings.debounce = Duration::from_millis(50);
        settings.retry = Duration::from_millis(200);
        let metrics = Arc::new(Metrics::new());
        let readiness = Arc::new(Readiness::default());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(controller::run(
            double.client(),
            settings,
            metrics.clone(),
            readiness.clone(),
            stop_rx,
        ));
        Replica {
            metrics,
            readiness,
            stop,
            task,
        }
    }

    /// SIGTERM: stop and release the lease.
    pub async fn shut_down(self) {
        self.stop.send_replace(true);
        self.task.await.expect("controller ends");
    }

    /// A crash: the task is gone, the lease stays until it expires.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    tokio::time::timeout(DEADLINE, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not {what} within {DEADLINE:?}"));
}

/// What `compile()` gives for the objects the double holds: content hash by object
/// name (`ClusterTable/ipcache-000`, `NodePolicy/n1`); NodePolicies by canonical
/// content hash, since the controller's incremental compiler numbers rules its own way.
pub fn expected(double: &ApiServerDouble) -> BTreeMap<String, String> {
    let mut objects = Vec::new();
    for kind in MODEL_KINDS {
        for mut value in double.list(kind.group, kind.plural) {
            value["apiVersion"] = json!(kind.api_version());
            value["kind"] = json!(kind.kind);
            let source = format!("kube:{}/{}", kind.kind, value["metadata"]["name"]);
            if let Ok(object) = parse_json_object(&source, &value) {
                objects.push((source, object));
            }
        }
    }
    let cluster = build_cluster(objects).expect("cluster");
    let compiled = palisade_policy::compile::compile(&cluster);
    let wanted = desired(&compiled, &BTreeMap::new());
    let tables = wanted
        .tables
        .iter()
        .map(|(name, shard)| (format!("ClusterTable/{name}"), shard.content_hash.clone()));
    let nodes = wanted.nodes.iter().map(|(name, node)| {
        (
            format!("NodePolicy/{name}"),
            canonical_content_hash(&node.content),
        )
    });
    tables.chain(nodes).collect()
}

/// What the double holds, comparable with [`expected`].
pub fn canonical(double: &ApiServerDouble) -> BTreeMap<String, String> {
    let tables = double
        .list(GROUP, "clustertables")
        .into_iter()
        .map(|value| {
            let name = value["metadata"]["name"].as_str().unwrap().to_string();
            let hash = value["spec"]["contentHash"].as_str().unwrap_or("");
            (format!("ClusterTable/{name}"), hash.to_string())
        });
    let nodes = double
        .list(GROUP, NODE_POLICY_PLURAL)
        .into_iter()
        .map(|value| {
            let name = value["metadata"]["name"].as_str().unwrap().to_string();
            // The content fields sit beside generation and contentHash in the spec.
            let content: NodePolicyContent =
                serde_json::from_value(value["spec"].clone()).expect("a NodePolicy spec");
            (
                format!("NodePolicy/{name}"),
                canonical_content_hash(&content),
            )
        });
    tables.chain(nodes).collect()
}

/// What the double holds: content hash and stored writes by object name.
pub fn published(double: &ApiServerDouble) -> BTreeMap<String, (String, u64)> {
    let mut out = BTreeMap::new();
    for (kind, plural) in [
        ("ClusterTable", "clustertables"),
        ("NodePolicy", NODE_POLICY_PLURAL),
    ] {
        for value in double.list(GROUP, plural) {
            let name = value["metadata"]["name"].as_str().unwrap().to_string();
            let hash = value["spec"]["contentHash"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let writes = double.stored_writes(GROUP, plural, "", &name);
            out.insert(format!("{kind}/{name}"), (hash, writes));
        }
    }
    out
}

pub fn hashes(published: &BTreeMap<String, (String, u64)>) -> BTreeMap<String, String> {
    published
        .iter()
        .map(|(name, (hash, _))| (name.clone(), hash.clone()))
        .collect()
}

/// Waits until the double holds exactly what `compile()` gives.
pub async fn converged(double: &ApiServerDouble) {
    wait_until("published as compile() gives", || {
        canonical(double) == expected(double)
    })
    .await;
}

/// Objects whose content changed between two snapshots were written exactly once;
/// the others not at all. Returns the names written.
pub fn only_changed_rewritten(
    before: &BTreeMap<String, (String, u64)>,
    after: &BTreeMap<String, (String, u64)>,
) -> Vec<String> {
    let mut written = Vec::new();
    for (name, (hash, writes)) in after {
        match before.get(name) {
            Some((old_hash, old_writes)) if old_hash == hash => {
                assert_eq!(writes, old_writes, "{name} unchanged but rewritten")
            }
            Some((_, old_writes)) => {
                assert_eq!(*writes, old_writes + 1, "{name} changed: written once");
                written.push(name.clone());
            }
            None => written.push(name.clone()),
        }
    }
    written
}

/// The status of a policy object.
pub fn status(double: &ApiServerDouble, plural: &str, namespace: &str, name: &str) -> Value {
    double
        .get(GROUP, plural, namespace, name)
        .map(|v| v["status"].clone())
        .unwrap_or(Value::Null)
}

pub fn condition(status: &Value, type_: &str) -> Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}

/// A simulated agent: every NodePolicy's status says its spec.generation is applied.
pub fn agents_apply_all(double: &ApiServerDouble) {
    for value in double.list(GROUP, NODE_POLICY_PLURAL) {
        let name = value["metadata"]["name"].as_str().unwrap();
        double
            .patch_status(
                GROUP,
                NODE_POLICY_PLURAL,
                "",
                name,
                json!({"status": {"appliedGeneration": value["spec"]["generation"],
                                  "appliedHash": value["spec"]["contentHash"]}}),
            )
            .expect("status written");
    }
}
