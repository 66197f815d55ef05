//! Ports as palisade's own kinds write them (TrustBoundary shared services, EgressPolicy
//! rules and bind ports): `{protocol, port, endPort}` as in NetworkPolicy, numbers
//! only. Absent `port`: every port of the protocol; `endPort` extends `port` to a
//! range.

use super::error::{FieldPath, Problems};
use super::ports;
use crate::model::{Protocol, ProtocolPorts};
use serde::Deserialize;

/// Most entries a `ports` list may have.
pub(crate) const MAX_PORTS: usize = 100;

/// One `ports` entry as written.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = super::admission::port_range_rules))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PortRangeWire {
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<super::admission::ProtocolName>")
    )]
    protocol: Option<String>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<super::admission::PortNumber>")
    )]
    port: Option<i64>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<super::admission::PortNumber>")
    )]
    end_port: Option<i64>,
}

/// A `ports` list found at `at`; entries with problems are left out.
pub(crate) fn port_ranges(
    written: &[PortRangeWire],
    at: &FieldPath,
    problems: &mut Problems,
) -> Vec<ProtocolPorts> {
    if written.len() > MAX_PORTS {
        problems.add(
            at,
            format!(
                "may not list more than {MAX_PORTS} ports (lists {})",
                written.len()
            ),
        );
    }
    written
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| port_range(entry, &at.index(i), problems))
        .collect()
}

fn port_range(
    wire: &PortRangeWire,
    at: &FieldPath,
    problems: &mut Problems,
) -> Option<ProtocolPorts> {
    let protocol = problems.check(
        &at.field("protocol"),
        ports::protocol(wire.protocol.as_deref()),
    );
    let first = wire
        .port
        .map(|port| problems.check(&at.field("port"), ports::port_number(port)));
    let end_at = at.field("endPort");
    let last = match (wire.end_port, wire.port) {
        (None, _) => None,
        (Some(_), None) => {
            problems.add(&end_at, "may not be specified when port is not specified");
            return None;
        }
        (Some(end), Some(start)) if end < start => {
            problems.add(
                &end_at,
                format!("endPort {end} must be greater than or equal to port {start}"),
            );
            return None;
        }
        (Some(end), Some(_)) => Some(problems.check(&end_at, ports::port_number(end))?),
    };
    let protocol: Protocol = protocol?;
    Some(match first {
        None => ProtocolPorts::all(protocol),
        Some(first) => {
            let first = first?;
            ProtocolPorts {
                protocol,
                first,
                last: last.unwrap_or(first),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::wire::deserialize_at;
    use serde_norway::Value;

    fn read(yaml: &str) -> Result<Vec<ProtocolPorts>, Vec<String>> {
        let value: Value = serde_norway::from_str(yaml).unwrap();
        let at = FieldPath::root().field("ports");
        let wire: Vec<PortRangeWire> =
            deserialize_at(&value, &at).map_err(|e| vec![format!("{e:?}")])?;
        let mut problems = Problems::new();
        let ports = port_ranges(&wire, &at, &mut problems);
        problems.finish(ports).map_err(|errors| {
            errors
                .into_iter()
                .map(|e| format!("{}: {}", e.field.unwrap_or_default(), e.message))
                .collect()
        })
    }

    #[test]
    fn ports_ranges_and_whole_protocols() {
        assert_eq!(
            read("[{port: 443}, {protocol: UDP, port: 1000, endPort: 2000}, {protocol: SCTP}]")
                .unwrap(),
            [
                ProtocolPorts::single(Protocol::Tcp, 443),
                ProtocolPorts {
                    protocol: Protocol::Udp,
                    first: 1000,
                    last: 2000
                },
                ProtocolPorts::all(Protocol::Sctp),
            ]
        );
    }

    #[test]
    fn bad_entries_name_their_field() {
        assert_eq!(
            read(
                "[{port: 0}, {port: 80, endPort: 79}, {endPort: 80}, {protocol: tcp, port: 1}, \
                  {port: 1, endPort: 65536}]"
            )
            .unwrap_err(),
            [
                "ports[0].port: invalid port 0: must be between 1 and 65535",
                "ports[1].endPort: endPort 79 must be greater than or equal to port 80",
                "ports[2].endPort: may not be specified when port is not specified",
                "ports[3].protocol: unsupported protocol \"tcp\": must be \"TCP\", \"UDP\" or \"SCTP\"",
                "ports[4].endPort: invalid port 65536: must be between 1 and 65535",
            ]
        );
        assert!(read("[{port: http}]").is_err());
    }
}
