//! Where a named port resolves: on the pod that receives the traffic. On ingress that
//! is the local endpoint, whatever the peer; on egress it is the peer, and only if the
//! peer is a pod (a name never resolves on a node or an external address).

use super::identity::PodIdentity;
use crate::model::{Direction, Pod, Protocol};

/// The pod a named port resolves on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Receiver<'p> {
    /// Ingress: the local endpoint.
    Local(&'p Pod),
    /// Egress: the peer's pod identity, if the peer is a pod.
    Peer(Option<&'p PodIdentity>),
}

impl<'p> Receiver<'p> {
    /// The receiver of traffic of `local` in `direction` with a peer whose pod
    /// identity (if any) is `peer`.
    pub fn of(direction: Direction, local: &'p Pod, peer: Option<&'p PodIdentity>) -> Self {
        match direction {
            Direction::Ingress => Receiver::Local(local),
            Direction::Egress => Receiver::Peer(peer),
        }
    }

    /// The receiver's number for the port `name` of `protocol`.
    pub fn named_port(self, name: &str, protocol: Protocol) -> Option<u16> {
        match self {
            Receiver::Local(pod) => pod.named_port(name, protocol),
            Receiver::Peer(peer) => peer?.named_port(name, protocol),
        }
    }
}
