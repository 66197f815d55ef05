//! IP protocols as users write them (`TCP`, `udp`, `ICMPv6`, `47`) and the
//! (protocol, port) pair a flow is checked for.

use std::fmt;
use std::str::FromStr;

/// An IP protocol, by its number in the IP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpProtocol(u8);

impl IpProtocol {
    pub const TCP: Self = Self(6);
    pub const UDP: Self = Self(17);
    pub const SCTP: Self = Self(132);
    pub const ICMP: Self = Self(1);
    pub const ICMPV6: Self = Self(58);

    /// Names accepted for protocols (compared ignoring ASCII case), and how they print.
    const NAMED: [(&str, Self); 5] = [
        ("TCP", Self::TCP),
        ("UDP", Self::UDP),
        ("SCTP", Self::SCTP),
        ("ICMP", Self::ICMP),
        ("ICMPv6", Self::ICMPV6),
    ];

    /// The IANA protocol number.
    pub const fn number(self) -> u8 {
        self.0
    }

    /// Whether flows of this protocol have ports the kernel programs read (TCP, UDP
    /// and SCTP); for the others the port is 0.
    pub const fn has_ports(self) -> bool {
        matches!(self.0, 6 | 17 | 132)
    }
}

impl fmt::Display for IpProtocol {
    /// The usual name (`TCP`, `ICMPv6`), or the number for other protocols.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Self::NAMED.iter().find(|(_, protocol)| protocol == self) {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown protocol {0:?}: expected TCP, UDP, SCTP, ICMP, ICMPv6 or an IP protocol number (0-255)"
)]
pub struct ProtocolError(String);

impl FromStr for IpProtocol {
    type Err = ProtocolError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if let Some((_, protocol)) = Self::NAMED
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(trimmed))
        {
            return Ok(*protocol);
        }
        trimmed
            .parse::<u8>()
            .map(Self)
            .map_err(|_| ProtocolError(text.to_string()))
    }
}

/// What a flow is checked for: protocol and destination port (0 for protocols
/// without ports, as the kernel programs see them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Service {
    pub protocol: IpProtocol,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("a port is required for {0}")]
    MissingPort(IpProtocol),
    #[error("{0} has no ports (port {1} given)")]
    PortWithoutPorts(IpProtocol, u64),
    #[error("port {0} is out of range: {1} ports are 1-65535")]
    OutOfRange(u64, IpProtocol),
}

impl Service {
    /// `protocol` with `port`: required (1-65535) for TCP, UDP and SCTP, absent or 0
    /// for the rest.
    pub fn new(protocol: IpProtocol, port: Option<u64>) -> Result<Self, ServiceError> {
        match (protocol.has_ports(), port) {
            (true, None) => Err(ServiceError::MissingPort(protocol)),
            (true, Some(port)) => match u16::try_from(port) {
                Ok(port) if port > 0 => Ok(Self { protocol, port }),
                _ => Err(ServiceError::OutOfRange(port, protocol)),
            },
            (false, None | Some(0)) => Ok(Self { protocol, port: 0 }),
            (false, Some(port)) => Err(ServiceError::PortWithoutPorts(protocol, port)),
        }
    }
}

impl fmt::Display for Service {
    /// `TCP/80`, or just `ICMP` for protocols without ports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.protocol.has_ports() {
            write!(f, "{}/{}", self.protocol, self.port)
        } else {
            write!(f, "{}", self.protocol)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_numbers_work() {
        let parse = |s: &str| s.parse::<IpProtocol>().unwrap();
        assert_eq!(parse("tcp"), IpProtocol::TCP);
        assert_eq!(parse("Udp"), IpProtocol::UDP);
        assert_eq!(parse("SCTP"), IpProtocol::SCTP);
        assert_eq!(parse("icmp"), IpProtocol::ICMP);
        assert_eq!(parse("icmpv6"), IpProtocol::ICMPV6);
        assert_eq!(parse("6"), IpProtocol::TCP);
        assert_eq!(parse("47").number(), 47);
        assert_eq!(parse("47").to_string(), "47");
        assert_eq!(parse("58").to_string(), "ICMPv6");
        for bad in ["", "tcp6", "256", "-1", "http"] {
            let error = bad.parse::<IpProtocol>().unwrap_err().to_string();
            assert!(
                error.contains("expected TCP, UDP, SCTP"),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn ports_only_where_the_protocol_has_them() {
        let tcp80 = Service::new(IpProtocol::TCP, Some(80)).unwrap();
        assert_eq!(tcp80.to_string(), "TCP/80");
        assert_eq!(
            Service::new(IpProtocol::UDP, None),
            Err(ServiceError::MissingPort(IpProtocol::UDP))
        );
        assert!(Service::new(IpProtocol::SCTP, Some(0)).is_err());
        assert!(Service::new(IpProtocol::SCTP, Some(65_536)).is_err());
        let icmp = Service::new(IpProtocol::ICMP, None).unwrap();
        assert_eq!((icmp.port, icmp.to_string()), (0, "ICMP".to_string()));
        assert!(Service::new(IpProtocol::ICMP, Some(0)).is_ok());
        assert_eq!(
            Service::new(IpProtocol::ICMP, Some(8))
                .unwrap_err()
                .to_string(),
            "ICMP has no ports (port 8 given)"
        );
    }
}
