//! Ports as manifests write them: protocols, port numbers and Kubernetes'
//! `IntOrString` ports (a number or a named port). Shared by Pod container ports and
//! NetworkPolicy ports.

use super::names;
use crate::model::{PortRef, Protocol};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// `protocol`, which Kubernetes defaults to TCP and matches case-sensitively.
pub(crate) fn protocol(written: Option<&str>) -> Result<Protocol, String> {
    match written {
        None | Some("TCP") => Ok(Protocol::Tcp),
        Some("UDP") => Ok(Protocol::Udp),
        Some("SCTP") => Ok(Protocol::Sctp),
        Some(other) => Err(format!(
            "unsupported protocol {other:?}: must be \"TCP\", \"UDP\" or \"SCTP\""
        )),
    }
}

/// A port number: 1-65535.
pub(crate) fn port_number(number: i64) -> Result<u16, String> {
    u16::try_from(number)
        .ok()
        .filter(|&port| port != 0)
        .ok_or_else(|| format!("invalid port {number}: must be between 1 and 65535"))
}

/// Kubernetes' `IntOrString` as a port: `80` or `http`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IntOrString {
    Int(i64),
    String(String),
}

/// A policy port: a number (1-65535) or a container port name. A string of digits is
/// refused: in YAML `"80"` is a string, and the API server would take it as a port
/// name and reject it, so say what to write instead.
pub(crate) fn port_ref(port: &IntOrString) -> Result<PortRef, String> {
    match port {
        IntOrString::Int(number) => port_number(*number).map(PortRef::Number),
        IntOrString::String(text)
            if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Err(format!(
                "port {text:?} is a quoted number, which Kubernetes reads as a port name; \
                 write it unquoted (port: {text}) or use a container port name"
            ))
        }
        IntOrString::String(name) => names::port_name(name).map(|()| PortRef::Name(name.clone())),
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntOrStringVisitor;

        impl Visitor<'_> for IntOrStringVisitor {
            type Value = IntOrString;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or a port name")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                // Anything beyond i64 is out of every port range; keep it visible.
                Ok(IntOrString::Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_string()))
            }
        }

        deserializer.deserialize_any(IntOrStringVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_default_to_tcp_and_are_case_sensitive() {
        assert_eq!(protocol(None), Ok(Protocol::Tcp));
        assert_eq!(protocol(Some("SCTP")), Ok(Protocol::Sctp));
        assert!(protocol(Some("tcp")).unwrap_err().contains("\"tcp\""));
        assert!(protocol(Some("ICMP")).is_err());
    }

    #[test]
    fn port_numbers_are_1_to_65535() {
        assert_eq!(port_number(1), Ok(1));
        assert_eq!(port_number(65535), Ok(65535));
        for bad in [0, -1, 65536, i64::MAX] {
            assert!(port_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_refs() {
        assert_eq!(port_ref(&IntOrString::Int(80)), Ok(PortRef::Number(80)));
        assert_eq!(
            port_ref(&IntOrString::String("serve-80-tcp".into())),
            Ok(PortRef::Name("serve-80-tcp".into()))
        );
        let quoted = port_ref(&IntOrString::String("80".into())).unwrap_err();
        assert!(quoted.contains("port: 80"), "{quoted}");
        assert!(port_ref(&IntOrString::String("Web".into())).is_err());
        assert!(port_ref(&IntOrString::Int(70000)).is_err());
    }

    #[test]
    fn int_or_string_reads_both_and_nothing_else() {
        let read = |yaml: &str| serde_norway::from_str::<IntOrString>(yaml);
        assert_eq!(read("80").unwrap(), IntOrString::Int(80));
        assert_eq!(read("-3").unwrap(), IntOrString::Int(-3));
        assert_eq!(read("\"80\"").unwrap(), IntOrString::String("80".into()));
        assert_eq!(read("http").unwrap(), IntOrString::String("http".into()));
        assert!(read("[1]").is_err());
        assert!(read("1.5").is_err());
    }
}
