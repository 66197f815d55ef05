//! `palisadectl check`: the what-if simulator. Loads and compiles the manifests once,
//! then decides one flow (`--from`/`--to`), every probe of a file (`--probes`) or the
//! whole pod x pod matrix (`--matrix`), and prints each verdict with the rules behind
//! it.
//!
//! Modules, one job each: `args` (command line), `protocol` (protocols and ports),
//! `endpoint` (parsing and resolving the ends), `load` (manifests to compiled tables),
//! `simulate` (deciding a flow and why), `query` (a flow as the user names it),
//! `probes` (probes files), `matrix` (the matrix), `output` (JSON and text).

pub mod args;
mod endpoint;
mod load;
mod matrix;
mod output;
mod probes;
mod protocol;
mod query;
mod simulate;

#[cfg(test)]
mod tests;

use anyhow::Result;
use args::{CheckArgs, Mode, OutputFormat};
use query::Query;
use simulate::Simulator;
use std::io::Write;

pub fn run(args: &CheckArgs, out: &mut impl Write) -> Result<()> {
    let mode = args.mode()?;
    let format = args.output_format();
    let loaded = load::load(&args.manifests)?;
    let simulator = Simulator::new(&loaded.cluster, &loaded.compiled);
    match mode {
        Mode::Single(flow) => {
            let query = Query {
                from: flow.from,
                to: flow.to,
                service: flow.service,
                dst_ip: None,
            };
            let outcome = query.decide(&simulator, args.family)?;
            match format {
                OutputFormat::Json => writeln!(out, "{}", output::json_line(&query, &outcome))?,
                OutputFormat::Human => {
                    writeln!(out, "{}", output::human(&outcome, simulator.index()))?
                }
            }
        }
        Mode::Probes(path) => {
            let file = path.display().to_string();
            let text = probes::read_text(&path)?;
            let probes = probes::parse(&file, &text)?;
            let outcomes = probes::decide_all(&file, &probes, &simulator, args.family)?;
            for (i, (probe, outcome)) in probes.iter().zip(&outcomes).enumerate() {
                match format {
                    OutputFormat::Json => {
                        writeln!(out, "{}", output::json_line(&probe.query, outcome))?
                    }
                    OutputFormat::Human => {
                        if i > 0 {
                            writeln!(out)?;
                        }
                        writeln!(out, "{}", output::human(outcome, simulator.index()))?
                    }
                }
            }
        }
        Mode::Matrix(service) => {
            let matrix = matrix::decide(&simulator, service, args.family)?;
            match format {
                OutputFormat::Json => writeln!(out, "{}", matrix.json())?,
                OutputFormat::Human => write!(out, "{}", matrix.human())?,
            }
        }
    }
    Ok(())
}
