//! Tests of reading manifest directories, on temporary directories.

use super::*;
use crate::read::{Limits, read_files};
use std::fs;
use std::path::PathBuf;
use tempfile::TempDir;

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\n";
const POLICY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                      metadata: {name: deny, namespace: x}\nspec: {podSelector: {}}\n";

/// A temporary directory holding `files` (relative path, content).
fn dir_with(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        write(&dir, path, text);
    }
    dir
}

fn write(dir: &TempDir, relative: &str, text: &str) -> PathBuf {
    let path = dir.path().join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    path
}

fn paths(set: &ManifestSet) -> Vec<&str> {
    set.files.iter().map(|f| f.path.as_str()).collect()
}

#[test]
fn reads_manifest_files_recursively_in_path_order() {
    let dir = dir_with(&[
        ("b.yaml", POD),
        ("a.yml", POLICY),
        ("sub/c.json", "{}"),
        ("sub/deeper/a.YAML", ""),
        ("readme.txt", "not a manifest"),
        ("sub/notes", "not a manifest"),
    ]);
    let set = read_dir(dir.path()).unwrap();
    assert_eq!(
        paths(&set),
        ["a.yml", "b.yaml", "sub/c.json", "sub/deeper/a.YAML"]
    );
    assert_eq!(set.files[1].text, POD);
}

#[test]
fn hidden_entries_are_skipped() {
    let dir = dir_with(&[
        ("pod.yaml", POD),
        (".hidden.yaml", POD),
        (".git/config.yaml", POD),
        ("sub/.swap.yaml", POD),
    ]);
    assert_eq!(paths(&read_dir(dir.path()).unwrap()), ["pod.yaml"]);
}

#[cfg(unix)]
#[test]
fn a_configmap_volume_is_read_once_through_its_top_level_symlinks() {
    use std::os::unix::fs::symlink;
    let dir = dir_with(&[
        ("..2024_01_01_00_00_00.123/pods.yaml", POD),
        ("..2024_01_01_00_00_00.123/policies.yaml", POLICY),
    ]);
    symlink("..2024_01_01_00_00_00.123", dir.path().join("..data")).unwrap();
    symlink("..data/pods.yaml", dir.path().join("pods.yaml")).unwrap();
    symlink("..data/policies.yaml", dir.path().join("policies.yaml")).unwrap();
    let set = read_dir(dir.path()).unwrap();
    assert_eq!(paths(&set), ["pods.yaml", "policies.yaml"]);
    assert_eq!(set.files[0].text, POD);
    let cluster = set.parse().unwrap();
    assert_eq!((cluster.pods.len(), cluster.network_policies.len()), (1, 1));
}

#[cfg(unix)]
#[test]
fn symlinked_directories_are_followed_and_loops_end() {
    use std::os::unix::fs::symlink;
    let shared = dir_with(&[("base/pod.yaml", POD)]);
    let dir = dir_with(&[("sub/policy.yaml", POLICY)]);
    symlink(shared.path().join("base"), dir.path().join("base")).unwrap();
    symlink("..", dir.path().join("sub/loop")).unwrap();
    assert_eq!(
        paths(&read_dir(dir.path()).unwrap()),
        ["base/pod.yaml", "sub/policy.yaml"]
    );
}

#[test]
fn an_oversized_file_is_refused_by_name() {
    let dir = dir_with(&[("ok.yaml", POD)]);
    let big = write(&dir, "big.yaml", "");
    fs::File::options()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(MAX_FILE_BYTES + 1)
        .unwrap();
    let err = read_dir(dir.path()).unwrap_err();
    assert!(
        matches!(&err, ReadError::FileTooLarge { path, .. } if *path == big),
        "{err:?}"
    );
    assert!(err.to_string().contains("big.yaml"), "{err}");
    assert!(err.to_string().contains("4 MiB"), "{err}");
}

#[test]
fn a_set_over_the_total_limit_is_refused_naming_the_file_that_crossed_it() {
    let dir = dir_with(&[("a.yaml", "12345"), ("b.yaml", "12345"), ("c.yaml", "1")]);
    let limits = Limits {
        file_bytes: 5,
        total_bytes: 10,
    };
    let err = read_files(dir.path(), limits).unwrap_err();
    assert!(
        matches!(&err, ReadError::TotalTooLarge { path, .. } if path.ends_with("c.yaml")),
        "{err:?}"
    );
    let err = read_files(
        dir.path(),
        Limits {
            file_bytes: 4,
            total_bytes: 100,
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, ReadError::FileTooLarge { path, .. } if path.ends_with("a.yaml")),
        "{err:?}"
    );
}

#[test]
fn hash_is_stable_and_changes_with_any_file() {
    let dir = dir_with(&[("a.yaml", POD), ("sub/b.yaml", POLICY)]);
    let first = read_dir(dir.path()).unwrap().hash;
    assert_eq!(first.len(), 64);
    assert_eq!(read_dir(dir.path()).unwrap().hash, first);

    write(&dir, "sub/b.yaml", &format!("{POLICY}# edited\n"));
    let edited = read_dir(dir.path()).unwrap().hash;
    assert_ne!(edited, first);

    write(&dir, "sub/b.yaml", POLICY);
    assert_eq!(read_dir(dir.path()).unwrap().hash, first);

    fs::rename(dir.path().join("a.yaml"), dir.path().join("c.yaml")).unwrap();
    assert_ne!(read_dir(dir.path()).unwrap().hash, first);

    // Files that are not manifests do not count.
    fs::rename(dir.path().join("c.yaml"), dir.path().join("a.yaml")).unwrap();
    write(&dir, "notes.txt", "hello");
    assert_eq!(read_dir(dir.path()).unwrap().hash, first);
}

#[test]
fn parse_errors_name_the_file() {
    let dir = dir_with(&[
        ("ok.yaml", POD),
        (
            "sub/bad.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
             metadata: {name: p, namespace: x}\nspec: {podSelector: {}, ingress: [{from: [{}]}]}",
        ),
        ("worse.yaml", "kind: [unclosed"),
    ]);
    let errors = read_dir(dir.path()).unwrap().parse().unwrap_err();
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(
        texts[0],
        "sub/bad.yaml: document 1 (NetworkPolicy x/p): spec.ingress[0].from[0]: \
         must specify podSelector, namespaceSelector or ipBlock"
    );
    assert!(
        texts[1].starts_with("worse.yaml: document 1: invalid YAML"),
        "{texts:?}"
    );
}

#[test]
fn duplicates_across_files_name_both() {
    let dir = dir_with(&[("a.yaml", POD), ("b/again.yaml", POD)]);
    let errors = read_dir(dir.path()).unwrap().parse().unwrap_err();
    assert_eq!(
        errors.to_string(),
        "b/again.yaml (Pod x/a): Pod x/a is defined more than once: also in a.yaml"
    );
}

#[test]
fn an_empty_directory_is_an_empty_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let set = read_dir(dir.path()).unwrap();
    assert!(set.files.is_empty());
    assert_eq!(set.parse().unwrap(), Cluster::default());
}

#[test]
fn a_missing_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = read_dir(&missing).unwrap_err();
    assert!(
        matches!(&err, ReadError::Dir { path, .. } if *path == missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("nope"), "{err}");

    let file = write(&dir, "file.yaml", POD);
    assert!(matches!(read_dir(&file), Err(ReadError::Dir { .. })));
}

#[test]
fn non_utf8_content_is_an_error_naming_the_file() {
    let dir = dir_with(&[("ok.yaml", POD)]);
    let path = dir.path().join("latin1.yaml");
    fs::write(&path, b"kind: Pod\nname: caf\xe9\n").unwrap();
    let err = read_dir(dir.path()).unwrap_err();
    assert!(
        matches!(&err, ReadError::NotUtf8 { path: p } if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("latin1.yaml"), "{err}");
}

#[cfg(unix)]
#[test]
fn a_dangling_manifest_symlink_is_an_error_naming_it() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    symlink("gone.yaml", dir.path().join("pods.yaml")).unwrap();
    symlink("gone", dir.path().join("not-a-manifest")).unwrap();
    let err = read_dir(dir.path()).unwrap_err();
    assert!(
        matches!(&err, ReadError::File { path, .. } if path.ends_with("pods.yaml")),
        "{err:?}"
    );
}

#[test]
fn sets_built_in_memory_are_ordered_like_read_ones() {
    let file = |path: &str| ManifestFile {
        path: path.into(),
        text: String::new(),
    };
    let set = ManifestSet::new(vec![file("b.yaml"), file("a.yaml")]);
    assert_eq!(paths(&set), ["a.yaml", "b.yaml"]);
    assert_eq!(
        set.hash,
        ManifestSet::new(vec![file("a.yaml"), file("b.yaml")]).hash
    );
}
