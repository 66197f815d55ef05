//! Shared by the schema tests: the generated schemas, the repository's example
//! documents of palisade's kinds, and a Kubernetes-style CEL rule evaluator.

#![allow(dead_code)] // each test file uses its own part

pub mod kube_cel;

use palisade_crds::definitions::definitions;
use serde::Deserialize;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crds/ is in the repository")
        .to_path_buf()
}

/// The `openAPIV3Schema` of the CRD of `kind` (TrustBoundary or EgressPolicy).
pub fn object_schema(kind: &str) -> Value {
    definitions()
        .into_iter()
        .map(|d| d.crd)
        .find(|crd| crd["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"))["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        .clone()
}

/// A document of one of palisade's kinds, and where it was found.
pub struct Example {
    pub origin: String,
    pub kind: String,
    pub object: Value,
}

/// Every TrustBoundary and EgressPolicy in `examples/**/*.yaml` and in the YAML
/// blocks of `docs/*.md`.
pub fn examples() -> Vec<Example> {
    let root = repo_root();
    let mut found = Vec::new();
    let mut yaml_files = Vec::new();
    walk(&root.join("examples"), &mut yaml_files);
    yaml_files.sort();
    for path in yaml_files {
        let text = fs::read_to_string(&path).unwrap();
        collect(&text, &relative(&root, &path), &mut found);
    }
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    for path in docs {
        let text = fs::read_to_string(&path).unwrap();
        for (i, block) in yaml_blocks(&text).into_iter().enumerate() {
            let origin = format!("{} (yaml block {})", relative(&root, &path), i + 1);
            collect(&block, &origin, &mut found);
        }
    }
    found
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap().display().to_string()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// The contents of the ```yaml fenced blocks of a Markdown text.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start().starts_with("```yaml") => current = Some(String::new()),
            Some(block) if line.trim_start().starts_with("```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn collect(text: &str, origin: &str, found: &mut Vec<Example>) {
    for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let Ok(yaml) = serde_norway::Value::deserialize(document) else {
            continue;
        };
        let Ok(object) = serde_json::to_value(&yaml) else {
            continue;
        };
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        if object["apiVersion"] == "palisade.dev/v1alpha1"
            && (kind == "TrustBoundary" || kind == "EgressPolicy")
        {
            found.push(Example {
                origin: format!("{origin} document {}", i + 1),
                kind,
                object,
            });
        }
    }
}

/// `object` as the API server sees it after pruning: `null` values of fields that are
/// not nullable (none of palisade's are) removed.
pub fn without_nulls(object: &Value) -> Value {
    match object {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}
