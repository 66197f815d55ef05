//! `palisade-netprobe`: the echo server and connection prober that
//! `palisade-lab` runs inside emulated pods. See [`palisade_lab::netprobe`].

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    palisade_lab::netprobe::run(&args)
}
