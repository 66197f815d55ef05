//! `cargo xtask bench`: builds everything and runs the benchmarks. Benchmarks report
//! numbers and ratios to a baseline of the same run; they assert nothing.

use crate::run::{status, step};
use crate::{build, paths, setup};
use anyhow::Result;
use std::process::Command;

pub fn run() -> Result<()> {
    setup::run()?;
    build::run()?;
    step("datapath per-packet cost (BPF_PROG_TEST_RUN)");
    status(Command::new(paths::release_bin("palisade-bench")).arg("datapath"))?;
    step("policy compiler at cluster scale");
    status(Command::new(paths::release_bin("palisade-bench")).arg("compile"))
}
