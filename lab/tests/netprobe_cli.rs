//! The netprobe command line: bad arguments are rejected with usage and a
//! non-zero exit code, before any network activity.

use std::process::Command;

fn netprobe(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_palisade-netprobe"))
        .args(args)
        .output()
        .expect("running palisade-netprobe")
}

#[test]
fn bad_arguments_exit_with_usage() {
    for args in [
        &[][..],
        &["serve"][..],
        &["connect", "--proto", "tcp", "--addr", "10.90.0.2"][..],
        &[
            "connect",
            "--proto",
            "sctp",
            "--addr",
            "10.90.0.2",
            "--port",
            "1",
        ][..],
        &[
            "hold",
            "--proto",
            "udp",
            "--addr",
            "10.90.0.2",
            "--port",
            "1",
        ][..],
    ] {
        let output = netprobe(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert!(output.stdout.is_empty(), "{args:?} printed a result");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("usage: palisade-netprobe"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn ports_must_be_numbers() {
    let output = netprobe(&["serve", "--tcp", "8080", "--tcp", "http"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid --tcp \"http\""), "{stderr}");
}
