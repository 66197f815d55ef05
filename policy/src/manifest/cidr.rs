//! CIDRs as policies write them: parsed non-strictly, as the API server accepts them
//! (host bits may be set: `10.0.1.1/4` is the network `0.0.0.0/4`), and `except`
//! entries, which must lie strictly inside their CIDR. Shared by NetworkPolicy
//! `ipBlock`, cluster policy `networks` and EgressPolicy `cidr`.

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

/// An `except` entry: of the same family as `cidr` and strictly inside it.
pub(crate) fn strictly_inside(entry: Cidr, cidr: Cidr) -> Result<(), String> {
    let (inner, outer) = (entry.network(), cidr.network());
    let same_family = matches!(
        (inner, outer),
        (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
    );
    if !same_family {
        return Err(format!(
            "except entry {entry} is not of the same IP family as cidr {cidr}"
        ));
    }
    if !(outer.contains(&inner) && inner.prefix_len() > outer.prefix_len()) {
        return Err(format!(
            "except entry {entry} must be a strict subset of cidr {cidr}"
        ));
    }
    Ok(())
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
