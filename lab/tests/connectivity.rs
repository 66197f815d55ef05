//! Traffic between pods, from child cgroups, and between the node and pods,
//! over IPv4 and IPv6, with no BPF attached: everything the network allows
//! must connect, closed ports must be refused.

mod common;

use common::{NODE_V4, NODE_V6, PROBE_TIMEOUT, new_lab, new_lab_with_node_addrs, pod_v4, pod_v6};
use palisade_lab::{Outcome, PodSpec, ProbeOrigin, ProbeSpec, Proto};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

#[test]
fn pods_reach_each_other_over_tcp_and_udp_on_both_families() -> anyhow::Result<()> {
    let mut lab = new_lab();
    let client = lab.add_pod(PodSpec::dual_stack("client", pod_v4(2), pod_v6(2)))?;
    let server = lab.add_pod(PodSpec::dual_stack("server", pod_v4(3), pod_v6(3)))?;
    lab.serve(&server, &[8080], &[5353])?;

    let mut specs = Vec::new();
    for to in server.ips() {
        specs.push(ProbeSpec::new(&client, to, Proto::Tcp, 8080).with_timeout(PROBE_TIMEOUT));
        specs.push(ProbeSpec::new(&client, to, Proto::Udp, 5353).with_timeout(PROBE_TIMEOUT));
    }
    let results = lab.probe_all(&specs)?;
    for (spec, result) in specs.iter().zip(&results) {
        assert_eq!(result.outcome, Outcome::Connected, "{spec}");
    }
    lab.cleanup()
}

#[test]
fn closed_ports_are_refused() -> anyhow::Result<()> {
    let mut lab = new_lab();
    let client = lab.add_pod(PodSpec::dual_stack("client", pod_v4(2), pod_v6(2)))?;
    let server = lab.add_pod(PodSpec::dual_stack("server", pod_v4(3), pod_v6(3)))?;
    lab.serve(&server, &[8080], &[5353])?;

    for to in server.ips() {
        for (proto, closed_port) in [(Proto::Tcp, 8081), (Proto::Udp, 5354)] {
            let result = lab.probe(&client, to, proto, closed_port, PROBE_TIMEOUT)?;
            assert_eq!(
                result.outcome,
                Outcome::Refused,
                "{proto} {to}:{closed_port}"
            );
        }
    }
    lab.cleanup()
}

#[test]
fn batch_results_come_back_in_order() -> anyhow::Result<()> {
    let mut lab = new_lab();
    let client = lab.add_pod(PodSpec::ipv4("client", pod_v4(2)))?;
    let server = lab.add_pod(PodSpec::ipv4("server", pod_v4(3)))?;
    lab.serve(&server, &[7000, 7002, 7004, 7006, 7008], &[])?;

    // Even ports are open, odd ones closed; more probes than run at once.
    let ports: Vec<u16> = (7000..7010).chain(7000..7010).collect();
    let to = IpAddr::V4(pod_v4(3));
    let specs: Vec<ProbeSpec> = ports
        .iter()
        .map(|&port| ProbeSpec::new(&client, to, Proto::Tcp, port).with_timeout(PROBE_TIMEOUT))
        .collect();
    let results = lab.probe_all(&specs)?;
    assert_eq!(results.len(), ports.len());
    for (port, result) in ports.iter().zip(&results) {
        let expected = if port % 2 == 0 {
            Outcome::Connected
        } else {
            Outcome::Refused
        };
        assert_eq!(result.outcome, expected, "port {port}");
    }
    lab.cleanup()
}

#[test]
fn probes_from_a_child_cgroup_connect() -> anyhow::Result<()> {
    let mut lab = new_lab();
    let client = lab.add_pod(PodSpec::dual_stack("client", pod_v4(2), pod_v6(2)))?;
    let server = lab.add_pod(PodSpec::dual_stack("server", pod_v4(3), pod_v6(3)))?;
    lab.serve(&server, &[8080], &[5353])?;
    let child = lab.add_child_cgroup(&client, "sidecar")?;
    assert!(child.starts_with(client.cgroup_dir()));

    for to in server.ips() {
        let tcp = lab.probe_from_cgroup(&client, &child, to, Proto::Tcp, 8080, PROBE_TIMEOUT)?;
        assert!(tcp.allowed(), "tcp to {to}: {tcp:?}");
        let origin = ProbeOrigin::PodCgroup(client.clone(), child.clone());
        let spec = ProbeSpec::new(&client, to, Proto::Udp, 5353)
            .from_origin(origin)
            .with_timeout(PROBE_TIMEOUT);
        let udp = lab.probe_all(&[spec])?;
        assert!(udp[0].allowed(), "udp to {to}: {udp:?}");
    }
    lab.cleanup()
}

#[test]
fn node_and_pods_reach_each_other_when_the_node_has_addresses() -> anyhow::Result<()> {
    let mut lab = new_lab_with_node_addrs();
    let pod = lab.add_pod(PodSpec::dual_stack("web", pod_v4(2), pod_v6(2)))?;
    lab.serve(&pod, &[80], &[53])?;
    lab.serve_in_node(&[10250], &[])?;

    for to in pod.ips() {
        for (proto, port) in [(Proto::Tcp, 80), (Proto::Udp, 53)] {
            let result = lab.probe_from_node(to, proto, port, PROBE_TIMEOUT)?;
            assert!(result.allowed(), "node -> {proto} {to}:{port}: {result:?}");
        }
    }
    for node in [IpAddr::V4(NODE_V4), IpAddr::V6(NODE_V6)] {
        let result = lab.probe(&pod, node, Proto::Tcp, 10250, PROBE_TIMEOUT)?;
        assert!(result.allowed(), "pod -> node {node}: {result:?}");
    }
    lab.cleanup()
}

#[test]
fn node_addresses_set_later_route_existing_pods() -> anyhow::Result<()> {
    let mut lab = new_lab();
    let pod = lab.add_pod(PodSpec::ipv4("web", pod_v4(2)))?;
    // Outside the pod network: without a default route there is no way there,
    // so no packet is even sent.
    let elsewhere = IpAddr::V4(Ipv4Addr::new(10, 91, 0, 1));
    let before = lab.probe(&pod, elsewhere, Proto::Tcp, 80, PROBE_TIMEOUT)?;
    assert_eq!(before.outcome, Outcome::Unreachable);

    lab.set_node_addrs(Some(NODE_V4), None)?;
    assert_eq!(lab.node_ipv4(), Some(NODE_V4));
    lab.serve_in_node(&[10250], &[])?;
    let to_node = lab.probe(&pod, IpAddr::V4(NODE_V4), Proto::Tcp, 10250, PROBE_TIMEOUT)?;
    assert!(to_node.allowed(), "{to_node:?}");
    assert!(
        lab.set_node_addrs(Some(NODE_V4), None).is_err(),
        "node IPv4 set twice"
    );
    lab.cleanup()
}

#[test]
fn further_node_addresses_answer_from_the_address_asked() -> anyhow::Result<()> {
    let mut lab = new_lab_with_node_addrs();
    let pod = lab.add_pod(PodSpec::ipv4("web", pod_v4(2)))?;
    // Two "nodes" outside the pod network, both in the one node namespace.
    let nodes = [
        IpAddr::V4(Ipv4Addr::new(172, 18, 0, 2)),
        IpAddr::V4(Ipv4Addr::new(172, 18, 0, 3)),
    ];
    for node in nodes {
        lab.add_node_address(node)?;
        lab.serve_in_node_at(node, &[36363], &[34345])?;
    }
    assert_eq!(lab.extra_node_addresses(), &nodes);
    assert!(
        lab.add_node_address(nodes[0]).is_err(),
        "node address added twice"
    );
    assert!(
        lab.add_node_address(IpAddr::V4(pod_v4(2))).is_err(),
        "a pod's address became a node address"
    );
    let mut specs = Vec::new();
    for node in nodes {
        specs.push(ProbeSpec::new(&pod, node, Proto::Tcp, 36363).with_timeout(PROBE_TIMEOUT));
        // A connected UDP socket takes only replies from the address it sent to.
        specs.push(ProbeSpec::new(&pod, node, Proto::Udp, 34345).with_timeout(PROBE_TIMEOUT));
    }
    let results = lab.probe_all(&specs)?;
    for (spec, result) in specs.iter().zip(&results) {
        assert_eq!(result.outcome, Outcome::Connected, "{spec}");
    }
    lab.cleanup()
}

#[test]
fn a_further_node_address_needs_a_route_from_the_pods() {
    let mut lab = new_lab();
    let error = lab
        .add_node_address(IpAddr::V4(Ipv4Addr::new(172, 18, 0, 2)))
        .expect_err("no node IPv4 address to route via");
    assert!(error.to_string().contains("set_node_addrs"), "{error:#}");
}

#[test]
fn probes_to_a_missing_host_time_out() -> anyhow::Result<()> {
    let mut lab = new_lab();
    let client = lab.add_pod(PodSpec::dual_stack("client", pod_v4(2), pod_v6(2)))?;
    let timeout = Duration::from_millis(300);
    // In the pod network, but no pod has these addresses: nobody answers
    // neighbour discovery, so nothing comes back.
    for to in [IpAddr::V4(pod_v4(99)), IpAddr::V6(pod_v6(99))] {
        for proto in [Proto::Tcp, Proto::Udp] {
            let result = lab.probe(&client, to, proto, 80, timeout)?;
            assert_eq!(result.outcome, Outcome::TimedOut, "{proto} {to}");
            assert!(result.elapsed >= timeout, "{proto} {to}: {result:?}");
            assert!(result.elapsed < timeout * 3, "{proto} {to}: {result:?}");
        }
    }
    lab.cleanup()
}

#[test]
fn a_server_that_cannot_start_fails_serve_with_its_stderr() -> anyhow::Result<()> {
    let mut lab = new_lab();
    let server = lab.add_pod(PodSpec::ipv4("server", pod_v4(3)))?;
    let error = lab
        .serve(&server, &[8080, 8080], &[])
        .expect_err("two listeners on one port");
    let message = format!("{error:#}");
    assert!(message.contains("exited before it was ready"), "{message}");
    assert!(message.contains("TCP port 8080"), "{message}");
    assert!(message.contains("Address already in use"), "{message}");
    // The pod is still usable.
    lab.serve(&server, &[8080], &[])?;
    lab.cleanup()
}
