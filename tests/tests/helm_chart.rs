//! The Helm chart (`charts/palisade/`) through the real helm binary: `helm lint
//! --strict` and `helm template` for the default values and every documented value
//! set, with assertions on what is rendered: every document parses, kinds and names,
//! the agent's least-privilege securityContext, the exact RBAC of each component (the
//! controller cannot read Secrets), the own-node admission policy, the uninstall
//! hook's order, the CRDs equal to the generated ones, and a schema that rejects
//! unknown keys. No cluster is needed.
//!
//! helm: `$PALISADE_HELM` (`cargo xtask test` sets it to `.tools/helm/helm`, which
//! `cargo xtask setup` installs). Missing, the tests fail naming it.

#[path = "helm_chart/admission.rs"]
mod admission;
#[path = "helm_chart/render.rs"]
mod render;

use admission::{Decision, admit};
use render::{Rendered, helm, lint, render, render_error};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Every documented value set (charts/palisade/README.md, "Value sets"): name and
/// `--set` arguments.
const VALUE_SETS: &[(&str, &[&str])] = &[
    ("defaults", &[]),
    ("serviceMonitor", &["metrics.serviceMonitor.enabled=true"]),
    ("unknownEndpointAllow", &["agent.unknownEndpoint=allow"]),
    (
        "customImages",
        &[
            "image.registry=registry.example.com:5000",
            "image.tag=1.2.3",
            "controller.image.repository=mirror/palisade-controller",
            "agent.image.repository=mirror/palisade-agent",
            "cleanup.kubectlImage=registry.example.com:5000/kubectl:v1.33.9",
            "cleanup.pauseImage=registry.example.com:5000/pause:3.10",
            "imagePullSecrets[0].name=regcred",
        ],
    ),
    ("events", &["agent.events.enabled=true"]),
    (
        "minimal",
        &[
            "admissionPolicy.enabled=false",
            "cleanup.enabled=false",
            "controller.podDisruptionBudget.enabled=false",
        ],
    ),
    ("fullnameOverride", &["fullnameOverride=fence"]),
];

const NAMESPACE: &str = "palisade-system";
const AGENT_SA: &str = "system:serviceaccount:palisade-system:palisade-agent";

fn sets(name: &str) -> &'static [&'static str] {
    VALUE_SETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no value set {name}"))
        .1
}

#[test]
fn helm_is_the_pinned_version() {
    let out = std::process::Command::new(helm())
        .args(["version", "--short"])
        .output()
        .expect("helm runs");
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(version.starts_with("v4."), "helm {version}");
}

#[test]
fn lint_is_clean_for_every_value_set() {
    for (name, set) in VALUE_SETS {
        let output = lint(set);
        for line in output.lines() {
            assert!(
                !line.contains("[WARNING]") && !line.contains("[ERROR]"),
                "value set {name}: helm lint --strict: {line}\n{output}"
            );
        }
    }
}

#[test]
fn every_value_set_renders_objects_that_parse() {
    for (name, set) in VALUE_SETS {
        let rendered = render(set);
        assert!(
            !rendered.docs.is_empty(),
            "value set {name}: nothing rendered"
        );
        for doc in &rendered.docs {
            let what = format!("value set {name}: {doc}");
            assert!(doc["apiVersion"].is_string(), "no apiVersion: {what}");
            assert!(doc["kind"].is_string(), "no kind: {what}");
            let object = doc["metadata"]["name"].as_str().expect(&what);
            assert!(object.len() <= 63, "name over 63 characters: {what}");
            assert_eq!(
                doc["metadata"]["labels"]["app.kubernetes.io/name"], "palisade",
                "{what}"
            );
            let cluster_scoped = [
                "ClusterRole",
                "ClusterRoleBinding",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicyBinding",
            ];
            if !cluster_scoped.contains(&doc["kind"].as_str().unwrap()) {
                assert_eq!(doc["metadata"]["namespace"], NAMESPACE, "{what}");
            }
        }
    }
}

#[test]
fn defaults_render_exactly_these_objects() {
    let rendered = render(&[]);
    let objects: BTreeSet<(String, String)> = rendered
        .docs
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("ServiceAccount", "palisade-controller"),
        ("ServiceAccount", "palisade-agent"),
        ("ClusterRole", "palisade-controller"),
        ("ClusterRoleBinding", "palisade-controller"),
        ("Role", "palisade-controller"),
        ("RoleBinding", "palisade-controller"),
        ("ClusterRole", "palisade-agent"),
        ("ClusterRoleBinding", "palisade-agent"),
        ("Deployment", "palisade-controller"),
        ("PodDisruptionBudget", "palisade-controller"),
        ("DaemonSet", "palisade-agent"),
        ("Service", "palisade-controller-metrics"),
        ("Service", "palisade-agent-metrics"),
        ("ValidatingAdmissionPolicy", "palisade-agent-own-node"),
        (
            "ValidatingAdmissionPolicyBinding",
            "palisade-agent-own-node",
        ),
        ("ServiceAccount", "palisade-cleanup"),
        ("Role", "palisade-cleanup"),
        ("RoleBinding", "palisade-cleanup"),
        ("DaemonSet", "palisade-cleanup"),
        ("Job", "palisade-cleanup"),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    assert_eq!(objects, expected);
    assert_eq!(rendered.docs.len(), expected.len(), "duplicate objects");
    // No Secret, no ConfigMap, no CRD outside crds/, nothing privileged anywhere.
    for doc in &rendered.docs {
        let text = doc.to_string();
        assert!(!text.contains("\"privileged\":true"), "{text}");
        assert!(!text.contains("\"hostNetwork\":true"), "{text}");
    }
}

#[test]
fn agent_daemonset_is_least_privilege() {
    let rendered = render(&[]);
    let ds = rendered.get("DaemonSet", "palisade-agent");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["containers"].as_array().unwrap().len(), 1);
    assert!(pod.get("initContainers").is_none());
    let agent = &pod["containers"][0];
    assert_eq!(
        agent["securityContext"],
        json!({
            "privileged": false,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": false,
            "capabilities": {"add": ["BPF", "NET_ADMIN", "PERFMON"], "drop": ["ALL"]},
        })
    );
    assert_eq!(
        pod["securityContext"],
        json!({"seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(pod["hostNetwork"], false);
    assert_eq!(pod["hostPID"], false);
    assert_eq!(pod["hostIPC"], false);
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["tolerations"], json!([{"operator": "Exists"}]));
    assert_eq!(pod["serviceAccountName"], "palisade-agent");
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(
        pod["volumes"],
        json!([
            {"name": "bpffs", "hostPath": {"path": "/sys/fs/bpf", "type": "Directory"}},
            {"name": "cgroup", "hostPath": {"path": "/sys/fs/cgroup", "type": "Directory"}},
        ])
    );
    assert_eq!(
        agent["volumeMounts"],
        json!([
            {"name": "bpffs", "mountPath": "/sys/fs/bpf", "mountPropagation": "HostToContainer"},
            {"name": "cgroup", "mountPath": "/sys/fs/cgroup", "readOnly": true},
        ])
    );
    assert_eq!(
        agent["args"],
        json!([
            "kubernetes",
            "--node-name=$(PALISADE_NODE_NAME)",
            "--cgroup-root=/sys/fs/cgroup",
            "--pin-path=/sys/fs/bpf/palisade",
            "--health-addr=0.0.0.0:9876",
            "--metrics-addr=0.0.0.0:9877",
            "--unknown-endpoint=deny",
            "--log-json",
        ])
    );
    assert_eq!(
        agent["env"],
        json!([
            {"name": "PALISADE_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "PALISADE_POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        ])
    );
    assert_eq!(agent["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(agent["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(
        container_ports(agent),
        json!({"health": 9876, "metrics": 9877})
    );
}

#[test]
fn controller_deployment_leader_elects_and_is_locked_down() {
    let rendered = render(&[]);
    let deployment = rendered.get("Deployment", "palisade-controller");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    let controller = &pod["containers"][0];
    assert_eq!(
        controller["args"],
        json!([
            "run",
            "--metrics-addr=0.0.0.0:9090",
            "--health-addr=0.0.0.0:9091",
            "--lease-name=palisade-controller",
            "--lease-namespace=palisade-system",
            "--lease-duration=15",
            "--lease-retry-ms=2000",
            "--debounce-ms=75",
            "--log-json",
        ])
    );
    assert_eq!(
        controller["env"],
        json!([{"name": "PALISADE_IDENTITY", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])
    );
    assert_eq!(
        controller["securityContext"],
        json!({
            "allowPrivilegeEscalation": false,
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]},
        })
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"],
        json!({"type": "RuntimeDefault"})
    );
    assert_eq!(pod["serviceAccountName"], "palisade-controller");
    assert_eq!(controller["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(controller["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(
        container_ports(controller),
        json!({"health": 9091, "metrics": 9090})
    );
    let pdb = rendered.get("PodDisruptionBudget", "palisade-controller");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"], deployment["spec"]["selector"],
        "the PDB covers the controller pods"
    );
}

/// One RBAC grant, flattened: (apiGroup, resource, verb, resourceName or "").
type Grant = (String, String, String, String);

fn grants(role: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        let names: Vec<String> = match rule["resourceNames"].as_array() {
            Some(names) => names.iter().map(|n| n.as_str().unwrap().into()).collect(),
            None => vec![String::new()],
        };
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    for name in &names {
                        out.insert((
                            group.as_str().unwrap().into(),
                            resource.as_str().unwrap().into(),
                            verb.as_str().unwrap().into(),
                            name.clone(),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// An expected rule: (apiGroup, resources, verbs, resourceNames; empty: any name).
type Rule<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);

/// Every rule of `rules` expanded into grants.
fn expected_grants(rules: &[Rule]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for (group, resources, verbs, names) in rules {
        let names: Vec<&str> = if names.is_empty() {
            vec![""]
        } else {
            names.to_vec()
        };
        for resource in *resources {
            for verb in *verbs {
                for name in &names {
                    out.insert((
                        group.to_string(),
                        resource.to_string(),
                        verb.to_string(),
                        name.to_string(),
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn rbac_grants_exactly_what_each_component_uses() {
    let rendered = render(&[]);
    let watch = &["list", "watch"][..];
    assert_eq!(
        grants(rendered.get("ClusterRole", "palisade-controller")),
        expected_grants(&[
            ("", &["namespaces", "nodes", "pods", "services"], watch, &[]),
            ("discovery.k8s.io", &["endpointslices"], watch, &[]),
            ("networking.k8s.io", &["networkpolicies"], watch, &[]),
            (
                "policy.networking.k8s.io",
                &["adminnetworkpolicies", "baselineadminnetworkpolicies"],
                watch,
                &[]
            ),
            (
                "palisade.dev",
                &["trustboundaries", "egresspolicies"],
                watch,
                &[]
            ),
            (
                "palisade.dev",
                &["trustboundaries/status", "egresspolicies/status"],
                &["patch"],
                &[]
            ),
            (
                "palisade.dev",
                &["clustertables", "nodepolicies"],
                &["list", "watch", "create", "patch", "delete"],
                &[]
            ),
            ("events.k8s.io", &["events"], &["create"], &[]),
        ])
    );
    assert_eq!(
        grants(rendered.get("Role", "palisade-controller")),
        expected_grants(&[
            ("coordination.k8s.io", &["leases"], &["create"], &[]),
            (
                "coordination.k8s.io",
                &["leases"],
                &["get", "update"],
                &["palisade-controller"]
            ),
        ])
    );
    assert_eq!(
        grants(rendered.get("ClusterRole", "palisade-agent")),
        expected_grants(&[
            (
                "palisade.dev",
                &["nodepolicies", "clustertables"],
                watch,
                &[]
            ),
            ("palisade.dev", &["nodepolicies/status"], &["patch"], &[]),
            ("", &["pods"], watch, &[]),
            ("", &["pods/status"], &["patch"], &[]),
            ("", &["nodes"], watch, &[]),
        ])
    );
    assert_eq!(
        grants(rendered.get("Role", "palisade-cleanup")),
        expected_grants(&[
            (
                "apps",
                &["daemonsets"],
                &["get", "list", "watch"],
                &["palisade-agent", "palisade-cleanup"]
            ),
            ("apps", &["daemonsets"], &["delete"], &["palisade-agent"]),
            ("apps", &["daemonsets"], &["patch"], &["palisade-cleanup"]),
        ])
    );
    // Nobody reads Secrets, nobody holds a wildcard.
    for role in rendered
        .docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
    {
        for (group, resource, verb, _) in grants(role) {
            let who = role["metadata"]["name"].as_str().unwrap();
            assert_ne!(resource, "secrets", "{who} may {verb} secrets");
            assert!(
                group != "*" && resource != "*" && verb != "*",
                "{who} holds a wildcard ({group}/{resource} {verb})"
            );
        }
    }
    // Each binding binds its role to its own service account.
    for (kind, role_kind, name) in [
        ("ClusterRoleBinding", "ClusterRole", "palisade-controller"),
        ("ClusterRoleBinding", "ClusterRole", "palisade-agent"),
        ("RoleBinding", "Role", "palisade-controller"),
        ("RoleBinding", "Role", "palisade-cleanup"),
    ] {
        let binding = rendered.get(kind, name);
        assert_eq!(
            binding["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name})
        );
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}])
        );
    }
}

/// The controller's ClusterRole follows its code: every kind it watches
/// (`objects::MODEL_KINDS`, plus the publication kinds) can be listed and watched, the
/// status of the kinds it reports on patched, the publication kinds applied.
#[test]
fn controller_rbac_covers_every_kind_its_code_watches() {
    use palisade_controller::objects::MODEL_KINDS;
    use palisade_crds::definitions::GROUP;
    use palisade_crds::publication::{CLUSTER_TABLE_PLURAL, NODE_POLICY_PLURAL};
    let rendered = render(&[]);
    let granted = grants(rendered.get("ClusterRole", "palisade-controller"));
    let has = |group: &str, resource: &str, verb: &str| {
        granted.contains(&(group.into(), resource.into(), verb.into(), String::new()))
    };
    let watched = MODEL_KINDS
        .iter()
        .map(|k| (k.group, k.plural))
        .chain([(GROUP, CLUSTER_TABLE_PLURAL), (GROUP, NODE_POLICY_PLURAL)]);
    for (group, plural) in watched {
        for verb in ["list", "watch"] {
            assert!(
                has(group, plural, verb),
                "controller may not {verb} {group}/{plural}"
            );
        }
    }
    for plural in [CLUSTER_TABLE_PLURAL, NODE_POLICY_PLURAL] {
        for verb in ["create", "patch", "delete"] {
            assert!(
                has(GROUP, plural, verb),
                "controller may not {verb} {plural}"
            );
        }
    }
    for kind in MODEL_KINDS.iter().filter(|k| k.group == GROUP) {
        assert!(
            has(GROUP, &format!("{}/status", kind.plural), "patch"),
            "controller may not write {}/status",
            kind.plural
        );
    }
    // And nothing else: every list/watch grant is a watched kind.
    let watched: BTreeSet<(String, String)> = MODEL_KINDS
        .iter()
        .map(|k| (k.group.to_string(), k.plural.to_string()))
        .chain([
            (GROUP.to_string(), CLUSTER_TABLE_PLURAL.to_string()),
            (GROUP.to_string(), NODE_POLICY_PLURAL.to_string()),
        ])
        .collect();
    for (group, resource, verb, _) in &granted {
        if verb == "list" || verb == "watch" {
            assert!(
                watched.contains(&(group.clone(), resource.clone())),
                "controller may {verb} {group}/{resource}, which it does not watch"
            );
        }
    }
}

#[test]
fn admission_policy_keys_agent_writes_on_the_token_node_name() {
    let rendered = render(&[]);
    let policy = rendered.get("ValidatingAdmissionPolicy", "palisade-agent-own-node");
    assert_eq!(policy["apiVersion"], "admissionregistration.k8s.io/v1");
    let spec = &policy["spec"];
    assert_eq!(spec["failurePolicy"], "Fail");
    assert_eq!(
        spec["matchConstraints"]["resourceRules"],
        json!([
            {"apiGroups": ["palisade.dev"], "apiVersions": ["*"], "operations": ["UPDATE"], "resources": ["nodepolicies/status"]},
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["pods/status"]},
        ])
    );
    assert_eq!(
        spec["matchConditions"],
        json!([{"name": "is-palisade-agent", "expression": format!("request.userInfo.username == '{AGENT_SA}'")}])
    );
    let node_name = spec["variables"][0]["expression"].as_str().unwrap();
    assert!(
        node_name.contains("request.userInfo.extra['authentication.kubernetes.io/node-name'][0]"),
        "{node_name}"
    );
    let validations: Vec<&str> = spec["validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["expression"].as_str().unwrap())
        .collect();
    assert!(validations.contains(&"variables.nodeName != ''"));
    assert!(validations.contains(&"variables.isPod || object.metadata.name == variables.nodeName"));
    assert!(validations.contains(
        &"!variables.isPod || (has(object.spec.nodeName) && object.spec.nodeName == variables.nodeName)"
    ));
    for v in spec["validations"].as_array().unwrap() {
        assert_eq!(v["reason"], "Forbidden", "{v}");
        assert!(
            v["message"].is_string() || v["messageExpression"].is_string(),
            "{v}"
        );
    }
    let binding = rendered.get(
        "ValidatingAdmissionPolicyBinding",
        "palisade-agent-own-node",
    );
    assert_eq!(
        binding["spec"],
        json!({"policyName": "palisade-agent-own-node", "validationActions": ["Deny"]})
    );
    // The policy names the agent's service account also under another name.
    let renamed = render(sets("fullnameOverride"));
    let policy = renamed.get("ValidatingAdmissionPolicy", "fence-agent-own-node");
    assert_eq!(
        policy["spec"]["matchConditions"][0]["expression"],
        "request.userInfo.username == 'system:serviceaccount:palisade-system:fence-agent'"
    );
    let ds = renamed.get("DaemonSet", "fence-agent");
    assert_eq!(
        ds["spec"]["template"]["spec"]["serviceAccountName"],
        "fence-agent"
    );
}

/// An admission request for a status write by `user`, whose token carries `node`.
fn status_request(user: &str, node: Option<&str>, resource: &str) -> Value {
    let extra = match node {
        Some(node) => json!({"authentication.kubernetes.io/node-name": [node]}),
        None => json!({}),
    };
    json!({
        "userInfo": {"username": user, "extra": extra},
        "resource": {"group": "", "version": "v1", "resource": resource},
        "subResource": "status",
        "operation": "UPDATE",
    })
}

fn node_policy(node: &str) -> Value {
    json!({
        "apiVersion": "palisade.dev/v1alpha1",
        "kind": "NodePolicy",
        "metadata": {"name": node, "labels": {"a": "b"}},
        "status": {"appliedGeneration": 3},
    })
}

fn pod(node: &str, conditions: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"nodeName": node, "containers": [{"name": "web", "image": "web"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.7",
            "podIPs": [{"ip": "10.0.0.7"}],
            "hostIP": "192.168.0.4",
            "conditions": conditions,
            "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0}],
        },
    })
}

#[test]
fn admission_policy_admits_an_agent_only_on_its_own_node() {
    let rendered = render(&[]);
    let policy = rendered.get("ValidatingAdmissionPolicy", "palisade-agent-own-node");
    let agent_on = |node| status_request(AGENT_SA, Some(node), "nodepolicies");
    let denied = |decision: Decision, says: &str| match decision {
        Decision::Denied(message) => assert!(message.contains(says), "{message}"),
        other => panic!("expected a denial saying {says:?}, got {other:?}"),
    };
    let status = |object: &Value, applied: i64| {
        let mut changed = object.clone();
        changed["status"]["appliedGeneration"] = json!(applied);
        changed
    };

    // NodePolicy status: its own node only.
    let own = node_policy("node-a");
    assert_eq!(
        admit(policy, &agent_on("node-a"), &status(&own, 4), &own),
        Decision::Allowed
    );
    let other = node_policy("node-b");
    denied(
        admit(policy, &agent_on("node-a"), &status(&other, 4), &other),
        "on node node-a may write the status of NodePolicy node-a only, not node-b",
    );
    // A token without the node claim (not bound to a pod, or an old API server).
    denied(
        admit(
            policy,
            &status_request(AGENT_SA, None, "nodepolicies"),
            &status(&own, 4),
            &own,
        ),
        "carries no node name",
    );
    // Labels cannot be changed through status.
    let mut relabelled = status(&own, 4);
    relabelled["metadata"]["labels"]["a"] = json!("c");
    denied(
        admit(policy, &agent_on("node-a"), &relabelled, &own),
        "may not change labels",
    );
    // Someone else (the controller, a user) is not this policy's business.
    assert_eq!(
        admit(
            policy,
            &status_request(
                "system:serviceaccount:palisade-system:palisade-controller",
                None,
                "nodepolicies"
            ),
            &status(&other, 4),
            &other,
        ),
        Decision::NotMatched
    );

    // Pods: only its own node's, and only palisade.dev/ conditions.
    let pod_request = status_request(AGENT_SA, Some("node-a"), "pods");
    let ready = json!({"type": "Ready", "status": "False"});
    let programmed = json!({"type": "palisade.dev/PolicyProgrammed", "status": "True"});
    let before = pod("node-a", json!([ready]));
    let after = pod("node-a", json!([ready, programmed]));
    assert_eq!(
        admit(policy, &pod_request, &after, &before),
        Decision::Allowed
    );
    assert_eq!(
        admit(policy, &pod_request, &before, &after),
        Decision::Allowed,
        "removing its own condition"
    );
    let before_elsewhere = pod("node-b", json!([ready]));
    let after_elsewhere = pod("node-b", json!([ready, programmed]));
    denied(
        admit(policy, &pod_request, &after_elsewhere, &before_elsewhere),
        "own node's pods only, not of pod shop/web-1",
    );
    let forged_ready = pod(
        "node-a",
        json!([{"type": "Ready", "status": "True"}, programmed]),
    );
    denied(
        admit(policy, &pod_request, &forged_ready, &after),
        "may add or change only palisade.dev/ pod conditions",
    );
    let dropped_ready = pod("node-a", json!([programmed]));
    denied(
        admit(policy, &pod_request, &dropped_ready, &after),
        "may remove only palisade.dev/ pod conditions",
    );
    let mut moved = after.clone();
    moved["status"]["podIP"] = json!("10.0.0.99");
    denied(admit(policy, &pod_request, &moved, &before), "status.podIP");
    let mut relabelled = after.clone();
    relabelled["metadata"]["labels"]["app"] = json!("db");
    denied(
        admit(policy, &pod_request, &relabelled, &before),
        "may not change labels",
    );
}

#[test]
fn uninstall_hook_stops_the_agents_then_cleans_every_node() {
    let rendered = render(&[]);
    let hook = |kind: &str| {
        let doc = rendered.get(kind, "palisade-cleanup");
        let annotations = &doc["metadata"]["annotations"];
        assert_eq!(annotations["helm.sh/hook"], "pre-delete", "{kind}");
        assert_eq!(
            annotations["helm.sh/hook-delete-policy"],
            "before-hook-creation,hook-succeeded"
        );
        let weight: i32 = annotations["helm.sh/hook-weight"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        (doc, weight)
    };
    let (_, sa) = hook("ServiceAccount");
    let (_, role) = hook("Role");
    let (_, binding) = hook("RoleBinding");
    let (ds, ds_weight) = hook("DaemonSet");
    let (job, job_weight) = hook("Job");
    assert!(sa < ds_weight && role < ds_weight && binding < ds_weight);
    assert!(
        ds_weight < job_weight,
        "the DaemonSet exists before the Job runs"
    );

    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["palisade.dev/cleanup-parked"], "parked");
    assert_eq!(pod["tolerations"], json!([{"operator": "Exists"}]));
    assert_eq!(pod["automountServiceAccountToken"], false);
    let cleanup = &pod["initContainers"][0];
    assert_eq!(
        cleanup["args"],
        json!(["cleanup", "--pin-path=/sys/fs/bpf/palisade"])
    );
    assert_eq!(
        cleanup["image"],
        "ghcr.io/palisade-dev/palisade-agent:0.1.0"
    );
    assert_eq!(
        cleanup["securityContext"]["capabilities"],
        json!({"drop": ["ALL"]}),
        "unlinking pins needs no capability"
    );
    assert_eq!(pod["containers"][0]["image"], "registry.k8s.io/pause:3.10");

    let job_pod = &job["spec"]["template"]["spec"];
    assert_eq!(job_pod["serviceAccountName"], "palisade-cleanup");
    let steps: Vec<&Value> = job_pod["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(job_pod["containers"].as_array().unwrap())
        .collect();
    let args: Vec<Value> = steps.iter().map(|c| c["args"].clone()).collect();
    assert_eq!(
        args,
        vec![
            json!([
                "delete",
                "daemonset/palisade-agent",
                "--namespace=palisade-system",
                "--cascade=foreground",
                "--ignore-not-found",
                "--wait",
                "--timeout=5m"
            ]),
            json!([
                "patch",
                "daemonset/palisade-cleanup",
                "--namespace=palisade-system",
                "--type=json",
                "--patch=[{\"op\":\"remove\",\"path\":\"/spec/template/spec/nodeSelector/palisade.dev~1cleanup-parked\"}]"
            ]),
            json!([
                "rollout",
                "status",
                "daemonset/palisade-cleanup",
                "--namespace=palisade-system",
                "--timeout=5m"
            ]),
        ]
    );
    for step in steps {
        assert_eq!(step["command"], json!(["kubectl"]));
        assert_eq!(step["image"], "registry.k8s.io/kubectl:v1.33.9");
    }
    // Disabled: no hook at all.
    let minimal = render(sets("minimal"));
    assert!(
        minimal
            .docs
            .iter()
            .all(|d| d["metadata"]["annotations"]["helm.sh/hook"].is_null())
    );
    assert!(
        minimal
            .find("ValidatingAdmissionPolicy", "palisade-agent-own-node")
            .is_none()
    );
    assert!(
        minimal
            .find("PodDisruptionBudget", "palisade-controller")
            .is_none()
    );
}

#[test]
fn value_sets_change_what_they_say() {
    let monitored = render(sets("serviceMonitor"));
    for (component, service) in [
        ("palisade-controller", "palisade-controller-metrics"),
        ("palisade-agent", "palisade-agent-metrics"),
    ] {
        let monitor = monitored.get("ServiceMonitor", component);
        assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(
            monitor["spec"]["endpoints"],
            json!([{"port": "metrics", "path": "/metrics", "interval": "30s"}])
        );
        let svc = monitored.get("Service", service);
        for (key, value) in monitor["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
        {
            assert_eq!(&svc["metadata"]["labels"][key], value, "{service} selected");
        }
    }
    assert!(
        render(&[])
            .find("ServiceMonitor", "palisade-agent")
            .is_none()
    );

    let allow = render(sets("unknownEndpointAllow"));
    let args = agent_args(&allow);
    assert!(args.contains(&"--unknown-endpoint=allow".to_string()));
    assert!(!args.contains(&"--unknown-endpoint=deny".to_string()));

    let custom = render(sets("customImages"));
    let ds = custom.get("DaemonSet", "palisade-agent");
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com:5000/mirror/palisade-agent:1.2.3"
    );
    assert_eq!(
        ds["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "regcred"}])
    );
    let deployment = custom.get("Deployment", "palisade-controller");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com:5000/mirror/palisade-controller:1.2.3"
    );
    let cleanup = custom.get("DaemonSet", "palisade-cleanup");
    assert_eq!(
        cleanup["spec"]["template"]["spec"]["initContainers"][0]["image"],
        "registry.example.com:5000/mirror/palisade-agent:1.2.3"
    );
    assert_eq!(
        cleanup["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com:5000/pause:3.10"
    );

    let events = render(sets("events"));
    assert!(agent_args(&events).contains(&"--events-addr=0.0.0.0:9878".to_string()));
    let ds = events.get("DaemonSet", "palisade-agent");
    assert_eq!(
        container_ports(&ds["spec"]["template"]["spec"]["containers"][0]),
        json!({"health": 9876, "metrics": 9877, "events": 9878})
    );
    assert!(
        !agent_args(&render(&[]))
            .iter()
            .any(|a| a.starts_with("--events-addr"))
    );
}

#[test]
fn metrics_services_reach_the_metrics_ports() {
    let rendered = render(&[]);
    for (service, workload_kind, workload) in [
        (
            "palisade-controller-metrics",
            "Deployment",
            "palisade-controller",
        ),
        ("palisade-agent-metrics", "DaemonSet", "palisade-agent"),
    ] {
        let svc = rendered.get("Service", service);
        let pod = &rendered.get(workload_kind, workload)["spec"]["template"];
        for (key, value) in svc["spec"]["selector"].as_object().unwrap() {
            assert_eq!(
                &pod["metadata"]["labels"][key], value,
                "{service} selects {workload}"
            );
        }
        let port = &svc["spec"]["ports"][0];
        assert_eq!(port["targetPort"], "metrics");
        assert_eq!(
            port["port"],
            container_ports(&pod["spec"]["containers"][0])["metrics"]
        );
    }
}

#[test]
fn chart_crds_equal_the_generated_ones() {
    let dir = render::chart_dir().join("crds");
    if let Err(message) = palisade_crds::files::check(&dir) {
        panic!("{message}");
    }
    let rendered = render::render_with(&["--include-crds"], &[]);
    let mut from_helm: Vec<Value> = rendered
        .docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .cloned()
        .collect();
    let mut generated: Vec<Value> = palisade_crds::files::expected()
        .into_iter()
        .flat_map(|(_, text)| render::parse_documents(&text))
        .collect();
    let by_name = |d: &Value| d["metadata"]["name"].as_str().unwrap().to_string();
    from_helm.sort_by_key(by_name);
    generated.sort_by_key(by_name);
    assert_eq!(from_helm.len(), 4);
    assert_eq!(from_helm, generated);
}

#[test]
fn schema_rejects_unknown_keys_and_bad_values() {
    for (set, expected) in [
        ("agent.bogus=1", "additional properties 'bogus' not allowed"),
        ("bogus=1", "additional properties 'bogus' not allowed"),
        (
            "controller.image.tag=1.0",
            "additional properties 'tag' not allowed",
        ),
        (
            "metrics.serviceMonitor.enable=true",
            "additional properties 'enable' not allowed",
        ),
        (
            "agent.unknownEndpoint=maybe",
            "value must be one of 'deny', 'allow'",
        ),
        ("controller.replicas=0", "minimum"),
    ] {
        let stderr = render_error(&[set]);
        assert!(
            stderr.contains(expected),
            "--set {set}: expected {expected:?} in helm's error:\n{stderr}"
        );
    }
}

fn agent_args(rendered: &Rendered) -> Vec<String> {
    let ds = rendered.get("DaemonSet", "palisade-agent");
    ds["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// A container's ports as `{name: containerPort}`.
fn container_ports(container: &Value) -> Value {
    let mut ports = serde_json::Map::new();
    for port in container["ports"].as_array().unwrap() {
        assert_eq!(port["protocol"], "TCP");
        ports.insert(
            port["name"].as_str().unwrap().to_string(),
            port["containerPort"].clone(),
        );
    }
    Value::Object(ports)
}

/// Dotted paths of every leaf of `value` (maps are walked, anything else is a leaf).
fn leaf_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value.as_object() {
        Some(map) if !map.is_empty() => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaf_paths(child, &path, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

/// Dotted paths of every property the schema names.
fn schema_paths(schema: &Value, prefix: &str, out: &mut Vec<String>) {
    for (key, child) in schema["properties"].as_object().into_iter().flatten() {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        out.push(path.clone());
        schema_paths(child, &path, out);
    }
}

#[test]
fn every_value_is_in_the_schema_and_documented() {
    let dir = render::chart_dir();
    let values_text = std::fs::read_to_string(dir.join("values.yaml")).unwrap();
    let values = render::parse_documents(&values_text).remove(0);
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("values.schema.json")).unwrap())
            .unwrap();
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let documented = |path: &str| {
        // The path itself, or a map it is part of (`controller.resources`).
        let parts: Vec<&str> = path.split('.').collect();
        (1..=parts.len()).any(|n| readme.contains(&format!("| `{}` |", parts[..n].join("."))))
    };
    let mut leaves = Vec::new();
    leaf_paths(&values, "", &mut leaves);
    for path in &leaves {
        assert!(documented(path), "value {path} is not in README.md's table");
        // Walk the schema down the path until a free-form object.
        let mut node = &schema;
        for part in path.split('.') {
            match node["properties"].get(part) {
                Some(child) => node = child,
                None => {
                    assert!(
                        node["additionalProperties"] != false,
                        "value {path}: the schema has no {part:?}"
                    );
                    break;
                }
            }
        }
    }
    let mut properties = Vec::new();
    schema_paths(&schema, "", &mut properties);
    for path in &properties {
        // Itself, a map it is part of, or (an object) its own properties.
        assert!(
            documented(path) || readme.contains(&format!("| `{path}.")),
            "schema property {path} is not in README.md's table"
        );
    }
}
