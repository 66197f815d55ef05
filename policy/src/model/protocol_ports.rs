//! A protocol and an inclusive range of its destination ports: how palisade's own
//! policy kinds (TrustBoundary shared services, EgressPolicy rules and socket
//! controls) name ports. Named ports are not part of these kinds.

use super::Protocol;
use std::fmt;

/// `protocol` ports `first..=last`; every port of the protocol is `0..=65535`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolPorts {
    pub protocol: Protocol,
    pub first: u16,
    pub last: u16,
}

impl ProtocolPorts {
    /// Every port of `protocol`.
    pub const fn all(protocol: Protocol) -> Self {
        Self {
            protocol,
            first: 0,
            last: u16::MAX,
        }
    }

    /// One port of `protocol`.
    pub const fn single(protocol: Protocol, port: u16) -> Self {
        Self {
            protocol,
            first: port,
            last: port,
        }
    }

    /// Whether a flow of IP protocol `protocol` (its number) to `port` is in the set.
    pub fn contains(&self, protocol: u8, port: u16) -> bool {
        self.protocol.number() == protocol && (self.first..=self.last).contains(&port)
    }
}

/// `TCP/443`, `UDP/1000-2000`, `SCTP/*`.
impl fmt::Display for ProtocolPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.first, self.last) {
            (0, u16::MAX) => write!(f, "{}/*", self.protocol),
            (first, last) if first == last => write!(f, "{}/{first}", self.protocol),
            (first, last) => write!(f, "{}/{first}-{last}", self.protocol),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_its_protocol_and_range_only() {
        let ports = ProtocolPorts {
            protocol: Protocol::Tcp,
            first: 8000,
            last: 8100,
        };
        assert!(ports.contains(6, 8000) && ports.contains(6, 8100));
        assert!(!ports.contains(6, 7999) && !ports.contains(17, 8050));
        assert!(ProtocolPorts::all(Protocol::Udp).contains(17, 0));
        assert_eq!(ports.to_string(), "TCP/8000-8100");
        assert_eq!(
            ProtocolPorts::single(Protocol::Udp, 53).to_string(),
            "UDP/53"
        );
        assert_eq!(ProtocolPorts::all(Protocol::Sctp).to_string(), "SCTP/*");
    }
}
