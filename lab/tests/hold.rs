//! Held connections: an established TCP connection keeps making round trips,
//! and reports when the server goes away.

mod common;

use common::{PROBE_TIMEOUT, new_lab, pod_v4, pod_v6};
use palisade_lab::{Outcome, PodSpec};
use std::time::Duration;

#[test]
fn a_held_connection_keeps_echoing() -> anyhow::Result<()> {
    let mut lab = new_lab();
    let client = lab.add_pod(PodSpec::dual_stack("client", pod_v4(2), pod_v6(2)))?;
    let server = lab.add_pod(PodSpec::dual_stack("server", pod_v4(3), pod_v6(3)))?;
    lab.serve(&server, &[8080], &[])?;

    for to in server.ips() {
        let held = lab.hold(&client, to, 8080, PROBE_TIMEOUT)?;
        for round in 0..5 {
            let result = held.next_result(Duration::from_secs(3))?;
            assert_eq!(result.outcome, Outcome::Connected, "round {round} to {to}");
        }
        held.discard_reported();
        assert!(held.next_result(Duration::from_secs(3))?.allowed());
    }
    lab.cleanup()
}

#[test]
fn a_held_connection_reports_its_end() -> anyhow::Result<()> {
    let mut lab = new_lab();
    let client = lab.add_pod(PodSpec::ipv4("client", pod_v4(2)))?;
    let server = lab.add_pod(PodSpec::ipv4("server", pod_v4(3)))?;
    let mut echo = lab.spawn(&server, None, &["serve", "--tcp", "8080"])?;
    let mut ready = String::new();
    let stdout = echo.stdout.take().expect("piped stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ready)?;
    assert_eq!(ready.trim(), "ready");

    let held = lab.hold(&client, pod_v4(3).into(), 8080, PROBE_TIMEOUT)?;
    assert!(held.next_result(Duration::from_secs(3))?.allowed());
    echo.kill()?;
    echo.wait()?;
    held.discard_reported();
    // The server's connection is closed with it; the holder reports that and stops.
    let mut last = held.next_result(Duration::from_secs(3))?;
    while last.allowed() {
        last = held.next_result(Duration::from_secs(3))?;
    }
    assert!(
        matches!(last.outcome, Outcome::OtherError(_) | Outcome::Refused),
        "{last:?}"
    );
    let after = held.next_result(Duration::from_secs(3));
    assert!(after.is_err(), "still reporting after the end: {after:?}");

    // A connection to a port nobody listens on fails at once.
    let refused = lab.hold(&client, pod_v4(3).into(), 8081, PROBE_TIMEOUT)?;
    assert_eq!(
        refused.next_result(Duration::from_secs(3))?.outcome,
        Outcome::Refused
    );
    lab.cleanup()
}
