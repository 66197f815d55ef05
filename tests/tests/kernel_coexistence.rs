//! Other programs attached to the same cgroups are left alone: a cgroup_skb program
//! attached the way systemd or a CNI attaches them (`BPF_PROG_ATTACH`,
//! `BPF_F_ALLOW_MULTI`) at the protected root, and one on a pod's cgroup that drops
//! everything that pod sends, stay attached and in force through the agent's start,
//! a kill -9 and restart, and `palisade-agent cleanup`; palisade's own programs come
//! and go beside them.
//!
//! Needs root; a missing privilege or kernel feature is a failure naming it.

use anyhow::{Result, ensure};
use palisade_lab::foreign_program::{ForeignProgram, SkbDirection, attached_program_ids};
use palisade_lab::harness::agent::{Agent, AgentOptions};
use palisade_lab::harness::dual_stack_lab::dual_stack_lab;
use palisade_lab::harness::manifests::{self, ManifestDir};
use palisade_lab::{Lab, PodHandle, Proto};
use std::fs::File;
use std::time::Duration;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
const NODE: &str = "node-1";

/// No policy: palisade allows everything here, so only the foreign program can
/// block the victim.
fn write_cluster(dir: &ManifestDir, pods: &[&PodHandle]) -> Result<()> {
    dir.write(
        "cluster.yaml",
        &manifests::dual_stack_cluster(NODE, "tenant", pods),
    )
}

fn agent_options<'a>(lab: &'a Lab, dir: &'a ManifestDir) -> AgentOptions<'a> {
    AgentOptions {
        id: lab.id(),
        manifests: dir.path(),
        cgroup_root: lab.cgroup_root(),
        node_name: NODE,
        extra_args: &[],
    }
}

struct Foreign {
    root_egress: ForeignProgram,
    root_ingress: ForeignProgram,
    victim_egress: ForeignProgram,
}

impl Foreign {
    /// Every foreign program is still attached, and the victim's still drops: the
    /// client reaches the server, the victim does not.
    fn check(
        &self,
        lab: &Lab,
        client: &PodHandle,
        victim: &PodHandle,
        server: &PodHandle,
        when: &str,
    ) -> Result<()> {
        for (name, program) in [
            ("root egress", &self.root_egress),
            ("root ingress", &self.root_ingress),
            ("victim egress", &self.victim_egress),
        ] {
            ensure!(
                program.is_attached()?,
                "{when}: the foreign {name} program (id {}) was detached",
                program.id()
            );
        }
        let server_ip = server.ips()[0];
        let ok = lab.probe(client, server_ip, Proto::Tcp, 8080, PROBE_TIMEOUT)?;
        ensure!(ok.allowed(), "{when}: client -> server failed: {ok:?}");
        let blocked = lab.probe(victim, server_ip, Proto::Tcp, 8080, PROBE_TIMEOUT)?;
        ensure!(
            !blocked.allowed(),
            "{when}: the victim's foreign drop-all program is no longer in force: {blocked:?}"
        );
        Ok(())
    }
}

/// How many programs are attached directly at the lab's root for egress.
fn root_egress_programs(lab: &Lab) -> Result<usize> {
    Ok(attached_program_ids(&File::open(lab.cgroup_root())?, SkbDirection::Egress)?.len())
}

#[test]
fn foreign_cgroup_programs_are_left_alone() -> Result<()> {
    let (lab, pods) = dual_stack_lab(
        "pl-coexist",
        &[("client", 10), ("server", 20), ("victim", 30)],
    )?;
    let [client, server, victim] = <[PodHandle; 3]>::try_from(pods).expect("three pods");
    lab.serve(&server, &[8080], &[])?;
    let dir = ManifestDir::new(lab.id())?;
    write_cluster(&dir, &[&client, &server, &victim])?;

    // Attached before the agent, as a node's systemd or CNI would have.
    let foreign = Foreign {
        root_egress: ForeignProgram::pass_all(lab.cgroup_root(), SkbDirection::Egress)?,
        root_ingress: ForeignProgram::pass_all(lab.cgroup_root(), SkbDirection::Ingress)?,
        victim_egress: ForeignProgram::drop_all(victim.cgroup_dir(), SkbDirection::Egress)?,
    };
    foreign.check(&lab, &client, &victim, &server, "before the agent")?;
    ensure!(
        root_egress_programs(&lab)? == 1,
        "unexpected programs at the root before the agent"
    );

    let mut agent = Agent::start(agent_options(&lab, &dir))?;
    agent.wait_ready(READY_TIMEOUT)?;
    ensure!(
        root_egress_programs(&lab)? == 2,
        "the agent's egress program is not beside the foreign one at the root"
    );
    foreign.check(&lab, &client, &victim, &server, "with the agent running")?;

    agent.kill()?;
    agent.restart(agent_options(&lab, &dir))?;
    agent.wait_ready(READY_TIMEOUT)?;
    ensure!(
        root_egress_programs(&lab)? == 2,
        "after a restart the root holds {} egress programs, not the agent's and the foreign one",
        root_egress_programs(&lab)?
    );
    foreign.check(&lab, &client, &victim, &server, "after kill -9 and restart")?;

    agent.kill()?;
    agent.cleanup_pins()?;
    // Detached by the time cleanup returns (it detaches every link before unpinning).
    ensure!(
        root_egress_programs(&lab)? == 1,
        "after cleanup the root still holds {} egress programs",
        root_egress_programs(&lab)?
    );
    foreign.check(
        &lab,
        &client,
        &victim,
        &server,
        "after palisade-agent cleanup",
    )?;

    foreign.root_egress.detach()?;
    foreign.root_ingress.detach()?;
    foreign.victim_egress.detach()?;
    lab.cleanup()
}
