//! One flow to check as the user names it (from the command line or a probes line),
//! and deciding it: resolve both ends, then simulate.

use super::endpoint::{EndpointArg, EndpointError};
use super::protocol::Service;
use super::simulate::{AddressError, Outcome, Simulator};
use palisade_policy::evaluate::IpFamily;
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub from: EndpointArg,
    pub to: EndpointArg,
    pub service: Service,
    /// The destination address to use (a probe's `dst_ip`): one of the destination's.
    pub dst_ip: Option<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Address(#[from] AddressError),
}

impl Query {
    /// Decides the flow; `family` is `--family`.
    pub fn decide<'a>(
        &self,
        simulator: &Simulator<'a>,
        family: Option<IpFamily>,
    ) -> Result<Outcome<'a>, QueryError> {
        let index = simulator.index();
        let from = index.resolve(&self.from.spec)?;
        let mut to = index.resolve(&self.to.spec)?;
        if let Some(dst_ip) = self.dst_ip {
            to = index.at_address(to, dst_ip)?;
        }
        Ok(simulator.check(from, to, self.service, family)?)
    }
}
