//! The pod x pod reachability matrix for one protocol and port: every pod that has an
//! address of the family, to every such pod (a pod to itself is loopback, which always
//! passes).
//!
//! Text: rows are sources, columns destinations, numbered as the rows are; `.` allow,
//! `X` deny, `A` audit-deny. JSON: `{"protocol", "port", "family", "pods": [..],
//! "verdicts": [[..]]}` with `verdicts[i][j]` the verdict from `pods[i]` to `pods[j]`.

use super::endpoint::End;
use super::protocol::Service;
use super::simulate::{AddressError, Simulator};
use palisade_policy::compile::tables::Verdict;
use palisade_policy::evaluate::IpFamily;
use palisade_policy::model::Pod;
use serde::Serialize;
use std::fmt::Write as _;

/// The decided matrix.
pub struct Matrix<'a> {
    pub service: Service,
    pub family: IpFamily,
    /// Rows and columns, by namespace/name.
    pub pods: Vec<&'a Pod>,
    /// Pods left out: no address of the family.
    pub without_address: Vec<&'a Pod>,
    /// `verdicts[from][to]`.
    pub verdicts: Vec<Vec<Verdict>>,
}

/// Decides every pair. The family is `family` if given, else IPv4 if any pod has an
/// IPv4 address, else IPv6.
pub fn decide<'a>(
    simulator: &Simulator<'a>,
    service: Service,
    family: Option<IpFamily>,
) -> Result<Matrix<'a>, AddressError> {
    let all: Vec<&Pod> = simulator.cluster().pods.values().collect();
    let has = |pod: &Pod, family| pod.ips.iter().any(|ip| IpFamily::of(*ip) == family);
    let family = family.unwrap_or_else(|| {
        let only_v6 = all.iter().any(|pod| has(pod, IpFamily::V6))
            && !all.iter().any(|pod| has(pod, IpFamily::V4));
        if only_v6 { IpFamily::V6 } else { IpFamily::V4 }
    });
    let (pods, without_address): (Vec<&Pod>, Vec<&Pod>) =
        all.into_iter().partition(|pod| has(pod, family));
    let end = |pod| End::Pod { pod, address: None };
    let verdicts = pods
        .iter()
        .map(|from| {
            pods.iter()
                .map(|to| {
                    simulator
                        .check(end(from), end(to), service, Some(family))
                        .map(|outcome| outcome.verdict)
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Matrix {
        service,
        family,
        pods,
        without_address,
        verdicts,
    })
}

fn pod_name(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace, pod.name)
}

const fn mark(verdict: Verdict) -> char {
    match verdict {
        Verdict::Allow => '.',
        Verdict::Deny => 'X',
        Verdict::AuditDeny => 'A',
    }
}

impl Matrix<'_> {
    /// The matrix as text (ends with a newline).
    pub fn human(&self) -> String {
        let mut text = format!(
            "Reachability for {} over {} (rows: from, columns: to; . allow, X deny, \
             A audit-deny):\n",
            self.service, self.family
        );
        if self.pods.is_empty() {
            text.push_str("\n(no pods)\n");
        } else {
            let names: Vec<String> = self.pods.iter().map(|pod| pod_name(pod)).collect();
            let number_width = self.pods.len().to_string().len();
            let name_width = names.iter().map(String::len).max().unwrap_or(0);
            let _ = write!(text, "\n{:w$}", "", w = number_width + 1 + name_width);
            for column in 1..=self.pods.len() {
                let _ = write!(text, " {column:>number_width$}");
            }
            text.push('\n');
            for (row, (name, verdicts)) in names.iter().zip(&self.verdicts).enumerate() {
                let _ = write!(text, "{:>number_width$} {name:<name_width$}", row + 1);
                for verdict in verdicts {
                    let _ = write!(text, " {:>number_width$}", mark(*verdict));
                }
                text.push('\n');
            }
            let total = self.pods.len() * self.pods.len();
            let allowed = self
                .verdicts
                .iter()
                .flatten()
                .filter(|v| **v != Verdict::Deny)
                .count();
            let _ = writeln!(text, "\n{allowed} of {total} flows pass.");
        }
        if !self.without_address.is_empty() {
            let names: Vec<String> = self.without_address.iter().map(|p| pod_name(p)).collect();
            let _ = writeln!(
                text,
                "Left out (no {} address): {}.",
                self.family,
                names.join(", ")
            );
        }
        text
    }

    /// The matrix as one line of JSON (no newline).
    pub fn json(&self) -> String {
        #[derive(Serialize)]
        struct MatrixJson {
            protocol: String,
            port: u16,
            family: String,
            pods: Vec<String>,
            verdicts: Vec<Vec<&'static str>>,
        }
        let json = MatrixJson {
            protocol: self.service.protocol.to_string(),
            port: self.service.port,
            family: self.family.to_string(),
            pods: self.pods.iter().map(|pod| pod_name(pod)).collect(),
            verdicts: self
                .verdicts
                .iter()
                .map(|row| row.iter().map(|v| v.as_str()).collect())
                .collect(),
        };
        serde_json::to_string(&json).expect("plain data serializes")
    }
}
