//! CIDRs as policies write them: parsed non-strictly, as the API server accepts them
//! (host bits may be set: `10.0.1.1/4` is the network `0.0.0.0/4`). Shared by
//! NetworkPolicy `ipBlock` and cluster policy `networks`.

use crate::model::Cidr;
use ipnet::IpNet;
use std::net::IpAddr;

/// A CIDR as written, host bits allowed (`10.0.1.1/4`).
pub(crate) fn parse_cidr(written: &str) -> Result<Cidr, String> {
    let invalid = |why: String| format!("invalid CIDR {written:?}: {why}");
    let Some((address, prefix)) = written.split_once('/') else {
        return Err(invalid(
            "expected an address and a prefix length, like 10.0.0.0/8".to_string(),
        ));
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| invalid(format!("{address:?} is not an IP address")))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| invalid(format!("prefix length {prefix:?} is not a number")))?;
    IpNet::new(address, prefix).map(Cidr).map_err(|_| {
        let max = if address.is_ipv4() { 32 } else { 128 };
        invalid(format!("prefix length {prefix} is longer than {max}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_written() {
        assert_eq!(parse_cidr("10.0.1.1/4").unwrap().to_string(), "10.0.1.1/4");
        assert_eq!(parse_cidr("::/0").unwrap().to_string(), "::/0");
        for (bad, why) in [
            ("10.0.0.0", "expected an address and a prefix length"),
            ("10.0.0/8", "is not an IP address"),
            ("10.0.0.0/x", "is not a number"),
            ("10.0.0.0/33", "longer than 32"),
        ] {
            let message = parse_cidr(bad).unwrap_err();
            assert!(message.contains(why), "{bad}: {message}");
        }
    }
}
