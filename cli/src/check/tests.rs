//! `check` end to end, short of the process: a manifests directory on disk, parsed
//! flags, and the printed output, for every mode, side and explanation.

use super::args::CheckArgs;
use super::load::load;
use super::simulate::Simulator;
use clap::Parser;
use palisade_policy::evaluate::{ClusterEvaluator, Endpoint};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
apiVersion: v1
kind: Namespace
metadata: {name: sandbox}
---
apiVersion: v1
kind: Node
metadata: {name: node-1}
status:
  addresses: [{type: InternalIP, address: 192.168.1.1}]
---
apiVersion: v1
kind: Pod
metadata: {name: frontend, namespace: shop, labels: {app: frontend}}
spec:
  nodeName: node-1
  containers: [{name: web, ports: [{name: http, containerPort: 8080}]}]
status:
  podIPs: [{ip: 10.90.0.11}, {ip: "fd00:90::11"}]
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec:
  nodeName: node-1
  containers: [{name: postgres, ports: [{name: postgres, containerPort: 5432}]}]
status:
  podIPs: [{ip: 10.90.0.13}, {ip: "fd00:90::13"}]
---
apiVersion: v1
kind: Pod
metadata: {name: runner, namespace: sandbox, labels: {app: runner}}
spec: {nodeName: node-1}
status: {podIP: 10.90.0.21}
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: kube-system}
spec: {nodeName: node-1, hostNetwork: true}
status: {podIP: 192.168.1.1}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: frontend-public, namespace: shop}
spec:
  podSelector: {matchLabels: {app: frontend}}
  ingress:
    - ports: [{port: http}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-frontend, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: nobody}}}]
    - from: [{podSelector: {matchLabels: {app: frontend}}}]
      ports: [{port: 5432}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: runner-egress, namespace: sandbox}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to: [{namespaceSelector: {matchLabels: {team: shop}}, podSelector: {matchLabels: {app: frontend}}}]
      ports: [{port: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  selector: {app: frontend}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: database, namespace: shop}
spec:
  clusterIP: 10.96.0.20
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: shop}
spec:
  clusterIP: 10.96.0.30
  selector: {app: nobody}
  ports: [{port: 80}]
"#;

#[derive(Debug, Parser)]
struct TestCli {
    #[command(flatten)]
    check: CheckArgs,
}

/// A manifests directory holding [`MANIFESTS`].
fn manifests() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("all.yaml"), MANIFESTS).unwrap();
    dir
}

/// Runs `check` with `args` against `dir`: the output, or the error as printed.
fn run_in(dir: &Path, args: &[&str]) -> Result<String, String> {
    let dir = dir.to_str().unwrap();
    let argv = ["check", "--manifests", dir]
        .into_iter()
        .chain(args.iter().copied());
    let cli = TestCli::try_parse_from(argv).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    super::run(&cli.check, &mut out).map_err(|e| crate::message(&e))?;
    Ok(String::from_utf8(out).unwrap())
}

fn run(args: &[&str]) -> Result<String, String> {
    run_in(manifests().path(), args)
}

fn json_of(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    let out = run(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert_eq!(out.lines().count(), 1, "{out}");
    serde_json::from_str(&out).unwrap()
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn json_has_exactly_the_contract_fields() {
    // Denied at both ends, so decided_by has entries of both sides.
    let v = json_of(&[
        "--from",
        "sandbox/runner",
        "--to",
        "shop/db",
        "--port",
        "5432",
    ]);
    assert_eq!(
        keys(&v),
        BTreeSet::from([
            "from",
            "to",
            "port",
            "protocol",
            "verdict",
            "ingress",
            "egress",
            "decided_by"
        ])
    );
    assert_eq!(v["from"], "sandbox/runner");
    assert_eq!(v["to"], "shop/db");
    assert_eq!(v["port"], 5432);
    assert_eq!(v["protocol"], "TCP");
    for field in ["verdict", "ingress", "egress"] {
        assert!(
            ["allow", "deny", "audit-deny"].contains(&v[field].as_str().unwrap()),
            "{field}: {v}"
        );
    }
    let decided_by = v["decided_by"].as_array().unwrap();
    assert!(!decided_by.is_empty());
    for entry in decided_by {
        assert_eq!(
            keys(entry),
            BTreeSet::from([
                "side",
                "tier",
                "kind",
                "namespace",
                "name",
                "rule",
                "action"
            ]),
            "{entry}"
        );
        assert!(["ingress", "egress"].contains(&entry["side"].as_str().unwrap()));
        for field in ["tier", "kind", "name", "action"] {
            assert!(entry[field].is_string(), "{field}: {entry}");
        }
        assert!(entry["namespace"].is_string() || entry["namespace"].is_null());
        assert!(entry["rule"].is_u64() || entry["rule"].is_null());
    }
}

#[test]
fn an_isolated_pod_lists_the_policies_that_isolate_it() {
    let v = json_of(&[
        "--from",
        "sandbox/runner",
        "--to",
        "shop/db",
        "--port",
        "5432",
    ]);
    let deny = |side: &str, namespace: &str, name: &str| {
        json!({"side": side, "tier": "networkpolicy", "kind": "NetworkPolicy",
               "namespace": namespace, "name": name, "rule": null, "action": "Deny"})
    };
    assert_eq!(
        v,
        json!({
            "from": "sandbox/runner", "to": "shop/db", "port": 5432, "protocol": "TCP",
            "verdict": "deny", "ingress": "deny", "egress": "deny",
            "decided_by": [
                deny("egress", "sandbox", "runner-egress"),
                deny("ingress", "shop", "db-from-frontend"),
                deny("ingress", "shop", "default-deny-ingress"),
            ]
        })
    );
}

#[test]
fn an_allow_names_the_rule_on_each_enforced_side() {
    let v = json_of(&[
        "--from",
        "shop/frontend",
        "--to",
        "shop/db",
        "--port",
        "5432",
    ]);
    assert_eq!(
        v,
        json!({
            "from": "shop/frontend", "to": "shop/db", "port": 5432, "protocol": "TCP",
            "verdict": "allow", "ingress": "allow", "egress": "allow",
            "decided_by": [{"side": "ingress", "tier": "networkpolicy", "kind": "NetworkPolicy",
                            "namespace": "shop", "name": "db-from-frontend", "rule": 1,
                            "action": "Allow"}]
        })
    );
    // Named port, resolved on the destination, allows egress from the sandbox.
    let v = json_of(&[
        "--from",
        "sandbox/runner",
        "--to",
        "shop/frontend",
        "--port",
        "8080",
    ]);
    assert_eq!(v["verdict"], "allow");
    let sides: Vec<(&str, &str, u64)> = v["decided_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["side"].as_str().unwrap(),
                e["name"].as_str().unwrap(),
                e["rule"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sides,
        [
            ("egress", "runner-egress", 0),
            ("ingress", "frontend-public", 0)
        ]
    );
}

#[test]
fn addresses_stand_for_pods_and_externals_are_not_enforced() {
    // A pod's address is that pod; `from` echoes what was written.
    let v = json_of(&[
        "--from",
        "ip:10.90.0.11",
        "--to",
        "shop/db",
        "--port",
        "5432",
    ]);
    assert_eq!(v["from"], "ip:10.90.0.11");
    assert_eq!(v["verdict"], "allow");
    assert_eq!(v["decided_by"][0]["name"], "db-from-frontend");

    let v = json_of(&[
        "--from",
        "ip:203.0.113.7",
        "--to",
        "shop/frontend",
        "--port",
        "8080",
    ]);
    assert_eq!(
        (&v["verdict"], &v["egress"]),
        (&json!("allow"), &json!("allow"))
    );
    assert_eq!(v["decided_by"].as_array().unwrap().len(), 1);

    let v = json_of(&[
        "--from",
        "shop/db",
        "--to",
        "ip:203.0.113.7",
        "--port",
        "443",
    ]);
    assert_eq!(v["verdict"], "allow");
    assert_eq!(v["decided_by"], json!([]));

    let v = json_of(&[
        "--from",
        "sandbox/runner",
        "--to",
        "ip:203.0.113.7",
        "--port",
        "443",
    ]);
    assert_eq!(
        (&v["verdict"], &v["ingress"]),
        (&json!("deny"), &json!("allow"))
    );
}

#[test]
fn own_node_host_network_and_loopback_always_pass() {
    for (from, to) in [
        ("kube-system/agent", "shop/db"),
        ("ip:192.168.1.1", "shop/db"),
        ("shop/db", "shop/db"),
        ("ip:10.90.0.13", "shop/db"),
    ] {
        let v = json_of(&["--from", from, "--to", to, "--port", "9999"]);
        assert_eq!(v["verdict"], "allow", "{from} -> {to}: {v}");
        assert_eq!(v["decided_by"], json!([]), "{from} -> {to}: {v}");
    }
}

#[test]
fn family_chooses_the_addresses() {
    let out = run(&[
        "--from",
        "shop/frontend",
        "--to",
        "shop/db",
        "--port",
        "5432",
        "--family",
        "6",
    ])
    .unwrap();
    assert!(
        out.starts_with("shop/frontend (fd00:90::11) -> shop/db (fd00:90::13), TCP/5432: allow"),
        "{out}"
    );
    let error = run(&[
        "--from",
        "sandbox/runner",
        "--to",
        "shop/db",
        "--port",
        "5432",
        "--family",
        "6",
    ])
    .unwrap_err();
    assert_eq!(error, "pod sandbox/runner has no IPv6 address");
    let error = run(&[
        "--from",
        "shop/frontend",
        "--to",
        "ip:fd00::1",
        "--port",
        "80",
        "--family",
        "4",
    ])
    .unwrap_err();
    assert!(error.contains("fd00::1 is not an IPv4 address"), "{error}");
}

#[test]
fn human_output_explains_each_side() {
    let out = run(&[
        "--from",
        "sandbox/runner",
        "--to",
        "shop/db",
        "--port",
        "5432",
    ])
    .unwrap();
    let expected = "\
sandbox/runner (10.90.0.21) -> shop/db (10.90.0.13), TCP/5432: deny

Egress at sandbox/runner: deny. sandbox/runner is isolated for egress by NetworkPolicy \
sandbox/runner-egress (tier networkpolicy), and none of its egress rules allows TCP/5432 to \
10.90.0.13 (pod shop/db).

Ingress at shop/db: deny. shop/db is isolated for ingress by NetworkPolicy shop/db-from-frontend \
(tier networkpolicy) and NetworkPolicy shop/default-deny-ingress (tier networkpolicy), and none \
of their ingress rules allows TCP/5432 from 10.90.0.21 (pod sandbox/runner).
";
    assert_eq!(out, expected);

    let out = run(&[
        "--from",
        "ip:203.0.113.7",
        "--to",
        "shop/frontend",
        "--port",
        "8080",
    ])
    .unwrap();
    assert!(out.contains("Egress at 203.0.113.7: allow. 203.0.113.7 is outside the cluster"));
    assert!(out.contains(
        "Ingress at shop/frontend: allow. Decided by ingress rule 0 of NetworkPolicy \
         shop/frontend-public (tier networkpolicy, action Allow)."
    ));
    let out = run(&[
        "--from",
        "shop/db",
        "--to",
        "ip:192.168.1.1",
        "--port",
        "22",
    ])
    .unwrap();
    assert!(out.contains("Egress at shop/db: allow. No policy isolates shop/db for egress"));
    assert!(
        out.contains("Ingress at 192.168.1.1: allow. 192.168.1.1 is an address of node node-1")
    );
    let out = run(&[
        "--from",
        "kube-system/agent",
        "--to",
        "shop/db",
        "--port",
        "1",
    ])
    .unwrap();
    assert!(
        out.contains("uses its node's network (hostNetwork)"),
        "{out}"
    );
    assert!(out.contains("192.168.1.1 (host-network pod kube-system/agent) is shop/db's own node"));
}

#[test]
fn probes_print_one_json_line_each_in_order() {
    let dir = manifests();
    let probes = dir.path().join("probes.jsonl");
    let lines = [
        r#"{"from":"shop/frontend","to":"shop/db","port":5432,"protocol":"TCP","expect":"allow"}"#,
        "",
        r#"{"from":"sandbox/runner","to":"shop/db","port":5432,"protocol":"tcp"}"#,
        r#"{"from":"ip:203.0.113.7","to":"shop/frontend","port":8080,"protocol":"UDP"}"#,
        r#"{"from":"shop/frontend","to":"shop/db","port":5432,"dst_ip":"fd00:90::13"}"#,
    ];
    std::fs::write(&probes, lines.join("\n")).unwrap();
    let out = run_in(dir.path(), &["--probes", probes.to_str().unwrap()]).unwrap();
    let results: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(&str, &str, &str)> = results
        .iter()
        .map(|v| {
            (
                v["from"].as_str().unwrap(),
                v["protocol"].as_str().unwrap(),
                v["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("shop/frontend", "TCP", "allow"),
            ("sandbox/runner", "TCP", "deny"),
            ("ip:203.0.113.7", "UDP", "deny"),
            ("shop/frontend", "TCP", "allow"),
        ]
    );
}

#[test]
fn probes_that_name_missing_things_fail_without_output() {
    let dir = manifests();
    let probes = dir.path().join("probes.json.txt");
    let lines = [
        r#"{"from":"shop/frontend","to":"shop/db","port":5432}"#,
        r#"{"from":"shop/frontnd","to":"shop/db","port":5432}"#,
        r#"{"from":"shop/frontend","to":"shop/db","port":5432,"dst_ip":"10.90.0.11"}"#,
    ];
    std::fs::write(&probes, lines.join("\n")).unwrap();
    let file = probes.to_str().unwrap();
    let error = run_in(dir.path(), &["--probes", file]).unwrap_err();
    assert_eq!(
        error,
        format!(
            "2 bad probes in {file}:\n  line 2 of {file}: unknown pod \"shop/frontnd\" (did you \
             mean shop/frontend?)\n  line 3 of {file}: dst_ip 10.90.0.11 is not an address of \
             shop/db (its addresses: 10.90.0.13, fd00:90::13)"
        )
    );
    let error = run_in(dir.path(), &["--probes", "/nonexistent/probes"]).unwrap_err();
    assert!(
        error.starts_with("cannot read probes file /nonexistent/probes: "),
        "{error}"
    );
}

#[test]
fn matrix_covers_every_pod_pair() {
    let out = run(&["--matrix", "--port", "5432"]).unwrap();
    let expected = "\
Reachability for TCP/5432 over IPv4 (rows: from, columns: to; . allow, X deny, A audit-deny):

                    1 2 3 4
1 kube-system/agent . . . .
2 sandbox/runner    . . X X
3 shop/db           . . . X
4 shop/frontend     . . . .

13 of 16 flows pass.
";
    assert_eq!(out, expected);
    let v: Value =
        serde_json::from_str(&run(&["--matrix", "--port", "8080", "--output", "json"]).unwrap())
            .unwrap();
    assert_eq!(v["pods"][3], "shop/frontend");
    assert_eq!(v["verdicts"][1][3], "allow");
    assert_eq!(v["verdicts"][2][3], "allow");
    assert_eq!(v["verdicts"][1][2], "deny");
    let out = run(&["--matrix", "--port", "5432", "--family", "6"]).unwrap();
    assert!(
        out.contains("Left out (no IPv6 address): kube-system/agent, sandbox/runner."),
        "{out}"
    );
}

#[test]
fn bad_input_is_named() {
    let error = run(&["--from", "shop/dbb", "--to", "shop/db", "--port", "1"]).unwrap_err();
    assert_eq!(error, "unknown pod \"shop/dbb\" (did you mean shop/db?)");
    let error = run(&["--from", "shop/db", "--to", "10.0.0.1", "--port", "1"]).unwrap_err();
    assert!(
        error.contains("\"10.0.0.1\" is an address: write ip:10.0.0.1"),
        "{error}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]\n",
    )
    .unwrap();
    let error = run_in(dir.path(), &["--matrix", "--port", "80"]).unwrap_err();
    assert!(
        error.starts_with(&format!(
            "the manifests in {} are not valid:\nbad.yaml: document 1 (NetworkPolicy x/p): \
             spec.ingress[0].from[0].ipBlock.cidr: ",
            dir.path().display()
        )),
        "{error}"
    );
    let error = run_in(&dir.path().join("missing"), &["--matrix", "--port", "80"]).unwrap_err();
    assert!(
        error.starts_with("cannot read manifests directory"),
        "{error}"
    );
}

/// Without chosen addresses, `check` decides exactly as the library's `flow` does.
#[test]
fn agrees_with_the_library_flow_for_pod_pairs() {
    let dir = manifests();
    let loaded = load(dir.path()).unwrap();
    let simulator = Simulator::new(&loaded.cluster, &loaded.compiled);
    let evaluator = ClusterEvaluator::new(&loaded.compiled);
    let service = |protocol, port| super::protocol::Service { protocol, port };
    for from in loaded.cluster.pods.values() {
        for to in loaded.cluster.pods.values() {
            if from.object_ref() == to.object_ref() {
                continue; // loopback: the kernel passes it before any lookup
            }
            for (protocol, port) in [
                (super::protocol::IpProtocol::TCP, 5432),
                (super::protocol::IpProtocol::TCP, 8080),
                (super::protocol::IpProtocol::UDP, 8080),
                (super::protocol::IpProtocol::ICMP, 0),
            ] {
                let end = |pod| super::endpoint::End::Pod { pod, address: None };
                let ours = simulator
                    .check(end(from), end(to), service(protocol, port), None)
                    .unwrap();
                let theirs = evaluator
                    .flow(
                        Endpoint::Pod(from),
                        Endpoint::Pod(to),
                        protocol.number(),
                        port,
                        None,
                    )
                    .unwrap();
                let what = format!(
                    "{}/{} -> {}/{} {protocol}/{port}",
                    from.namespace, from.name, to.namespace, to.name
                );
                assert_eq!(ours.verdict, theirs.verdict, "{what}");
                assert_eq!((ours.src, ours.dst), (theirs.src, theirs.dst), "{what}");
                assert_eq!(
                    ours.egress.verdict,
                    theirs
                        .egress
                        .map_or(palisade_policy::compile::tables::Verdict::Allow, |d| d
                            .verdict),
                    "{what}"
                );
                assert_eq!(
                    ours.ingress.verdict,
                    theirs
                        .ingress
                        .map_or(palisade_policy::compile::tables::Verdict::Allow, |d| d
                            .verdict),
                    "{what}"
                );
            }
        }
    }
}

#[test]
fn a_service_address_is_decided_per_backend_at_its_target_port() {
    // Service port 80 -> frontend's named port http (8080), which frontend-public
    // opens and runner-egress allows.
    let v = json_of(&[
        "--from",
        "sandbox/runner",
        "--to",
        "ip:10.96.0.10",
        "--port",
        "80",
    ]);
    assert_eq!(v["verdict"], "allow", "{v}");
    assert_eq!(v["port"], 80);
    let service = &v["service"];
    assert_eq!(service["name"], "shop/web");
    let backends = service["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 1, "{v}");
    assert_eq!(backends[0]["pod"], "shop/frontend");
    assert_eq!(backends[0]["port"], 8080);
    assert_eq!(backends[0]["address"], "10.90.0.11");
    assert_eq!(backends[0]["verdict"], "allow");
    // The same flow straight to the backend decides the same.
    let direct = json_of(&[
        "--from",
        "sandbox/runner",
        "--to",
        "shop/frontend",
        "--port",
        "8080",
    ]);
    assert_eq!(direct["verdict"], backends[0]["verdict"]);
    assert_eq!(direct["decided_by"], backends[0]["decided_by"]);

    // The database Service: runner's egress allowlist does not reach db.
    let v = json_of(&[
        "--from",
        "sandbox/runner",
        "--to",
        "ip:10.96.0.20",
        "--port",
        "5432",
    ]);
    assert_eq!(v["verdict"], "deny", "{v}");
    assert_eq!(v["egress"], "deny");
    assert_eq!(v["decided_by"], v["service"]["backends"][0]["decided_by"]);

    // A port the Service does not expose is no Service flow: the address is external.
    let v = json_of(&[
        "--from",
        "shop/frontend",
        "--to",
        "ip:10.96.0.20",
        "--port",
        "80",
    ]);
    assert!(v.get("service").is_none(), "{v}");

    // Without backends the source refuses it.
    let v = json_of(&[
        "--from",
        "shop/frontend",
        "--to",
        "ip:10.96.0.30",
        "--port",
        "80",
    ]);
    assert_eq!(v["verdict"], "deny", "{v}");
    assert_eq!(v["egress"], "deny");
    assert_eq!(v["service"]["backends"], json!([]));
    let text = run(&[
        "--from",
        "shop/frontend",
        "--to",
        "ip:10.96.0.30",
        "--port",
        "80",
    ])
    .unwrap();
    assert!(text.contains("Service shop/empty"), "{text}");
    assert!(text.contains("refused at the source"), "{text}");
}
