//! The `palisade-controller run` binary against the double: it publishes, serves
//! `/metrics`, `/healthz` and `/readyz` on the addresses given, and on SIGTERM stops
//! and releases its lease.

use crate::support::*;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Kills the child (by its pid) if the test fails before it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// `GET path` over HTTP/1.0: (status code, body), or None while nothing listens.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let code = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Some((code, body))
}

async fn wait_for_http(addr: SocketAddr, path: &str, code: u16) -> String {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some((got, body)) = get(addr, path).await
            && got == code
        {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} did not answer {code}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_publishes_serves_its_endpoints_and_releases_the_lease_on_sigterm() {
    let double = double().await;
    seed(&double);
    let dir = std::env::temp_dir().join(format!("palisade-controller-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: d, cluster: {{server: \"{}\"}}}}]\n\
             users: [{{name: u, user: {{}}}}]\n\
             contexts: [{{name: c, context: {{cluster: d, user: u, namespace: default}}}}]\n\
             current-context: c\n",
            double.url()
        ),
    )
    .unwrap();
    let metrics = free_addr();
    let health = free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_palisade-controller"))
        .args([
            "run",
            "--log-json",
            "--identity",
            "bin",
            "--lease-duration",
            "2",
        ])
        .args(["--lease-retry-ms", "200", "--debounce-ms", "50"])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--metrics-addr")
        .arg(metrics.to_string())
        .arg("--health-addr")
        .arg(health.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the controller binary starts");
    let mut process = Process(child);

    assert_eq!(wait_for_http(health, "/healthz", 200).await, "ok");
    wait_for_http(health, "/readyz", 200).await;
    converged(&double).await;
    let text = wait_for_http(metrics, "/metrics", 200).await;
    assert!(text.contains("palisade_controller_leader 1"), "{text}");
    assert!(
        text.contains("palisade_controller_objects_written_total"),
        "{text}"
    );
    let lease = double
        .get(
            "coordination.k8s.io",
            "leases",
            "palisade-system",
            "palisade-controller",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "bin");

    // SIGTERM, by the child's pid.
    let pid = process.0.id() as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::task::spawn_blocking(move || {
        let status = process.0.wait();
        (status, process)
    })
    .await
    .unwrap()
    .0
    .unwrap();
    assert!(status.success(), "{status:?}");
    let lease = double
        .get(
            "coordination.k8s.io",
            "leases",
            "palisade-system",
            "palisade-controller",
        )
        .unwrap();
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "released: {lease}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
