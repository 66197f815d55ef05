//! The `cgroup/sock_addr` programs and the hook each is attached to (also the name of
//! its link pin, `links/cg<ID>-<hook>`): policy at connect, and the Service
//! translation at connect and sendmsg with its reverse at recvmsg and getpeername;
//! the socket controls at bind and socket creation.

use palisade_abi::program_names;

/// (program name, hook / pin suffix), in attach order.
pub const SOCK_ADDR_HOOKS: [(&str, &str); 8] = [
    (program_names::CONNECT4, "connect4"),
    (program_names::CONNECT6, "connect6"),
    (program_names::SENDMSG4, "sendmsg4"),
    (program_names::SENDMSG6, "sendmsg6"),
    (program_names::RECVMSG4, "recvmsg4"),
    (program_names::RECVMSG6, "recvmsg6"),
    (program_names::GETPEERNAME4, "getpeername4"),
    (program_names::GETPEERNAME6, "getpeername6"),
];

/// Socket controls: allowed local ports at `bind()` (program name, hook / pin suffix).
pub const BIND_HOOKS: [(&str, &str); 2] = [
    (program_names::BIND4, "bind4"),
    (program_names::BIND6, "bind6"),
];

/// Pin suffix of the `cgroup/sock_create` link (raw sockets).
pub const SOCK_CREATE_HOOK: &str = "sock_create";
