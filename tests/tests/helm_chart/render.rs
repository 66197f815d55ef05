//! Running the real helm on the chart and parsing what it prints: `helm lint`,
//! `helm template` (multi-document YAML into JSON values) and a template run that
//! must fail.

use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The Kubernetes version the chart is rendered for (its minimum, Chart.yaml).
const KUBE_VERSION: &str = "1.33.0";
const RELEASE: &str = "palisade";
const NAMESPACE: &str = "palisade-system";

/// `$PALISADE_HELM`; a missing tool is a failure naming it, never a skip.
pub fn helm() -> PathBuf {
    let Some(path) = std::env::var_os("PALISADE_HELM") else {
        panic!(
            "PALISADE_HELM is not set: the chart tests need the real helm. Run them through \
             `cargo xtask test`, or run `cargo xtask setup` and set \
             PALISADE_HELM=$PWD/.tools/helm/helm"
        );
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "PALISADE_HELM={} does not exist: run `cargo xtask setup` (installs helm into .tools/helm/)",
        path.display()
    );
    path
}

pub fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/palisade")
}

/// Every object helm rendered.
pub struct Rendered {
    pub docs: Vec<Value>,
}

impl Rendered {
    pub fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
    }

    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name)
            .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
    }
}

fn run(args: &[&str]) -> Output {
    let helm = helm();
    Command::new(&helm)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", helm.display()))
}

fn set_args(sets: &[&str]) -> Vec<String> {
    sets.iter()
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect()
}

/// `helm lint --strict` with `sets`; panics unless it passes; returns its output.
pub fn lint(sets: &[&str]) -> String {
    let chart = chart_dir();
    let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
    args.extend(["--kube-version", KUBE_VERSION, "--namespace", NAMESPACE]);
    let set = set_args(sets);
    args.extend(set.iter().map(String::as_str));
    let out = run(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "helm lint --strict {sets:?} failed:\n{text}"
    );
    text
}

fn template_args(extra: &[&str], sets: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["template", RELEASE]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(chart_dir().to_string_lossy().into_owned());
    args.extend(
        ["--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
            .iter()
            .map(|s| s.to_string()),
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(set_args(sets));
    args
}

/// `helm template` with `extra` arguments and `sets`, parsed.
pub fn render_with(extra: &[&str], sets: &[&str]) -> Rendered {
    let args = template_args(extra, sets);
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "helm template {sets:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Rendered {
        docs: parse_documents(&String::from_utf8(out.stdout).expect("helm prints UTF-8")),
    }
}

pub fn render(sets: &[&str]) -> Rendered {
    render_with(&[], sets)
}

/// `helm template` that must fail; returns its stderr.
pub fn render_error(sets: &[&str]) -> String {
    let args = template_args(&[], sets);
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        !out.status.success(),
        "helm template {sets:?} succeeded but must fail"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every non-empty document of a multi-document YAML text; panics naming the one that
/// does not parse.
pub fn parse_documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .enumerate()
        .filter_map(|(i, document)| {
            let value = Value::deserialize(document)
                .unwrap_or_else(|e| panic!("document {i} does not parse: {e}\n{text}"));
            (!value.is_null()).then_some(value)
        })
        .collect()
}
