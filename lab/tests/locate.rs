//! Finding the netprobe binary without being told where it is, as other
//! packages' tests do.

use palisade_lab::{Lab, NETPROBE_ENV, PodSpec, netprobe_path};
use std::path::Path;

#[test]
fn netprobe_is_found_next_to_the_test_binary() -> anyhow::Result<()> {
    let found = netprobe_path()?;
    let built = Path::new(env!("CARGO_BIN_EXE_palisade-netprobe"));
    if std::env::var_os(NETPROBE_ENV).is_none() {
        assert_eq!(found.canonicalize()?, built.canonicalize()?);
    }
    assert!(found.is_file(), "{}", found.display());
    Ok(())
}

#[test]
fn a_default_lab_runs_the_found_netprobe() -> anyhow::Result<()> {
    let mut lab = Lab::new("palisade-lab-test")?;
    assert_eq!(lab.netprobe(), netprobe_path()?);
    let pod = lab.add_pod(PodSpec::ipv4("web", "10.90.0.2".parse()?))?;
    lab.serve(&pod, &[80], &[])?;
    lab.cleanup()
}
