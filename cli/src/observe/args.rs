//! The command line of `palisadectl observe`, and the request path it makes of it.

use clap::{Args, ValueEnum};

pub const AFTER_HELP: &str = "\
Examples:
  palisadectl observe --agent 127.0.0.1:9877
  palisadectl observe --agent 127.0.0.1:9877 --namespace tenant-a --verdict deny
  palisadectl observe --agent 127.0.0.1:9877 --policy tenant-a/agents --output json --count 1

Filters of one kind are alternatives (--verdict deny --verdict audit-deny); different kinds \
must all match. --namespace and --pod match either end of a flow. The agent serves the \
stream when started with --events-addr ADDR:PORT.

Exit status: 0 after --count events, 1 when the agent cannot be reached, refuses the \
request or ends the stream, 2 for bad usage.";

#[derive(Debug, Args)]
pub struct ObserveArgs {
    /// The agent's event stream: the ADDR:PORT it was started with as --events-addr.
    #[arg(long, value_name = "ADDR:PORT")]
    pub agent: String,

    /// Only flows with a pod of this namespace at either end.
    #[arg(long, value_name = "NS")]
    pub namespace: Vec<String>,

    /// Only flows with this pod at either end (NAME: in any namespace).
    #[arg(long, value_name = "[NS/]NAME")]
    pub pod: Vec<String>,

    /// Only flows with this verdict.
    #[arg(long, value_enum, value_name = "VERDICT")]
    pub verdict: Vec<VerdictArg>,

    /// Only flows this policy decided: NAME, NS/NAME, or KIND/NS/NAME (KIND/NAME for
    /// cluster-scoped kinds).
    #[arg(long, value_name = "POLICY")]
    pub policy: Vec<String>,

    /// First print up to N of the most recent matching events the agent holds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub last: usize,

    /// Stop after N events (default: follow until interrupted).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Output format.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "human")]
    pub output: ObserveFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VerdictArg {
    Deny,
    AuditDeny,
    Allow,
}

impl VerdictArg {
    pub const fn as_str(self) -> &'static str {
        match self {
            VerdictArg::Deny => "deny",
            VerdictArg::AuditDeny => "audit-deny",
            VerdictArg::Allow => "allow",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ObserveFormat {
    /// One readable line per flow.
    Human,
    /// The agent's JSON lines, unchanged.
    Json,
}

impl ObserveArgs {
    /// `/events?...`: the filters as the agent's query parameters.
    pub fn request_path(&self) -> String {
        let mut params: Vec<(&str, &str)> = Vec::new();
        params.extend(self.namespace.iter().map(|v| ("namespace", v.as_str())));
        params.extend(self.pod.iter().map(|v| ("pod", v.as_str())));
        params.extend(self.verdict.iter().map(|v| ("verdict", v.as_str())));
        params.extend(self.policy.iter().map(|v| ("policy", v.as_str())));
        let last = self.last.to_string();
        if self.last > 0 {
            params.push(("last", &last));
        }
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        if query.is_empty() {
            "/events".into()
        } else {
            format!("/events?{}", query.join("&"))
        }
    }
}

/// Query-string encoding: everything but unreserved characters and `/`.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ObserveArgs {
        ObserveArgs {
            agent: "127.0.0.1:1".into(),
            namespace: vec![],
            pod: vec![],
            verdict: vec![],
            policy: vec![],
            last: 0,
            count: None,
            output: ObserveFormat::Human,
        }
    }

    #[test]
    fn filters_become_query_parameters() {
        assert_eq!(args().request_path(), "/events");
        let a = ObserveArgs {
            namespace: vec!["tenant".into()],
            pod: vec!["shop/db".into()],
            verdict: vec![VerdictArg::Deny, VerdictArg::AuditDeny],
            policy: vec!["a b&c".into()],
            last: 5,
            ..args()
        };
        assert_eq!(
            a.request_path(),
            "/events?namespace=tenant&pod=shop/db&verdict=deny&verdict=audit-deny&policy=a%20b%26c&last=5"
        );
    }
}
