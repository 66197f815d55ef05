//! An example's manifests as the agent of a lab must read them: every Pod's
//! `palisade.dev/cgroup-path` annotation pointing at its emulated cgroup, everything
//! else the same in meaning. Each YAML document is read, its Pods' annotation set (or
//! removed, for a Pod the lab does not emulate), and written back; the result is
//! parsed again and must equal the example's cluster with only the cgroup paths
//! changed.

use anyhow::{Context, Result, bail, ensure};
use palisade_manifests::{ManifestFile, ManifestSet};
use palisade_policy::model::{CGROUP_PATH_ANNOTATION, Cluster, ObjectRef};
use serde::Deserialize;
use serde_norway::{Mapping, Value};
use std::path::Path;

/// The namespace of a Pod that names none, as Kubernetes (and palisade) defaults it.
const DEFAULT_NAMESPACE: &str = "default";

/// The manifest files of `dir` (whose cluster is `cluster`), as (relative path, text),
/// with every Pod's cgroup annotation set to `cgroup_path(pod)`, or removed where it
/// gives none.
pub fn rewrite(
    dir: &Path,
    cluster: &Cluster,
    cgroup_path: &dyn Fn(&ObjectRef) -> Option<String>,
) -> Result<Vec<(String, String)>> {
    let set =
        palisade_manifests::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut files = Vec::new();
    for file in &set.files {
        ensure!(
            !file.path.contains('/'),
            "{}/{}: this harness writes one flat manifests directory",
            dir.display(),
            file.path
        );
        let text = rewrite_file(&file.text, cgroup_path)
            .with_context(|| format!("rewriting {}/{}", dir.display(), file.path))?;
        files.push(ManifestFile {
            path: file.path.clone(),
            text,
        });
    }
    let rewritten = ManifestSet::new(files);
    let parsed = rewritten
        .parse()
        .map_err(|errors| anyhow::anyhow!("the rewritten {}:\n{errors}", dir.display()))?;
    let mut expected = cluster.clone();
    for (pod_ref, pod) in &mut expected.pods {
        pod.cgroup_path = cgroup_path(pod_ref);
    }
    ensure!(
        parsed == expected,
        "rewriting the cgroup annotations of {} changed more than them",
        dir.display()
    );
    Ok(rewritten
        .files
        .into_iter()
        .map(|file| (file.path, file.text))
        .collect())
}

/// Every document of `text`, its Pods rewritten, `---`-separated.
fn rewrite_file(text: &str, cgroup_path: &dyn Fn(&ObjectRef) -> Option<String>) -> Result<String> {
    let mut documents = Vec::new();
    for (index, deserializer) in serde_norway::Deserializer::from_str(text).enumerate() {
        let mut value =
            Value::deserialize(deserializer).with_context(|| format!("document {}", index + 1))?;
        if value.is_null() {
            continue;
        }
        rewrite_object(&mut value, cgroup_path)
            .with_context(|| format!("document {}", index + 1))?;
        documents.push(serde_norway::to_string(&value)?);
    }
    Ok(documents.join("---\n"))
}

/// Rewrites a Pod, or every Pod of a List; leaves other objects alone.
fn rewrite_object(
    object: &mut Value,
    cgroup_path: &dyn Fn(&ObjectRef) -> Option<String>,
) -> Result<()> {
    match object["kind"].as_str() {
        Some("Pod") => {}
        Some("List") => {
            if let Some(items) = object.get_mut("items").and_then(Value::as_sequence_mut) {
                for item in items {
                    rewrite_object(item, cgroup_path)?;
                }
            }
            return Ok(());
        }
        _ => return Ok(()),
    }
    let metadata = object
        .get_mut("metadata")
        .and_then(Value::as_mapping_mut)
        .context("a Pod without metadata")?;
    let pod = ObjectRef {
        namespace: metadata
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_string(),
        name: metadata
            .get("name")
            .and_then(Value::as_str)
            .context("a Pod without metadata.name")?
            .to_string(),
    };
    let path = cgroup_path(&pod);
    let annotations = metadata
        .entry(Value::from("annotations"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if annotations.is_null() {
        *annotations = Value::Mapping(Mapping::new());
    }
    let Some(annotations) = annotations.as_mapping_mut() else {
        bail!("Pod {pod}: metadata.annotations is not a mapping");
    };
    match path {
        Some(path) => {
            annotations.insert(Value::from(CGROUP_PATH_ANNOTATION), Value::from(path));
        }
        None => {
            annotations.remove(CGROUP_PATH_ANNOTATION);
        }
    }
    Ok(())
}
