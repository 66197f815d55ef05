//! Removing everything a lab created: its processes, its network namespaces
//! and its cgroups, in that order.

use super::Lab;
use crate::{cgroup2, topology};
use anyhow::Result;
use std::io::ErrorKind;

impl Lab {
    /// Tears the lab down now and reports every problem doing so (dropping a
    /// lab does the same but can only print them).
    pub fn cleanup(mut self) -> Result<()> {
        let problems = self.tear_down();
        if problems.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = problems
            .iter()
            .map(|problem| format!("{problem:#}"))
            .collect();
        anyhow::bail!(
            "cleaning up lab {} failed:\n  {}",
            self.id,
            list.join("\n  ")
        );
    }

    /// Kills and reaps the lab's processes (and anything else left in its
    /// cgroups), deletes its network namespaces, then removes its cgroups
    /// deepest first. Keeps going after failures and returns them all. Runs
    /// once; later calls do nothing.
    fn tear_down(&mut self) -> Vec<anyhow::Error> {
        if self.torn_down {
            return Vec::new();
        }
        self.torn_down = true;
        let mut problems = self.processes.kill_and_reap_all();
        if self.cgroup_root_created {
            // Processes the lab did not start itself, e.g. ones a spawned
            // program forked or a caller moved into a pod cgroup.
            if let Err(error) = cgroup2::kill_all_processes(&self.cgroup_root) {
                let gone = error
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == ErrorKind::NotFound);
                if !gone {
                    problems.push(error);
                }
            }
        }
        while let Some(netns) = self.netns_created.pop() {
            if let Err(error) = topology::delete_netns(&netns) {
                problems.push(error);
            }
        }
        if self.cgroup_root_created {
            problems.extend(cgroup2::remove_tree(&self.cgroup_root));
        }
        if problems.is_empty() {
            // Kept otherwise, so that a later sweep retries what failed.
            super::stale::remove_claim(&self.id);
        }
        problems
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for problem in self.tear_down() {
            eprintln!("palisade-lab: cleaning up lab {}: {problem:#}", self.id);
        }
    }
}
