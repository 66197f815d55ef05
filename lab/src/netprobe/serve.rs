//! `serve`: dual-stack TCP and UDP echo servers. Each socket binds `[::]` with
//! `IPV6_V6ONLY` off, so IPv4 and IPv6 clients both reach it (or, with
//! `--bind`, the one address given, an IPv4 one as `::ffff:a.b.c.d`). Prints
//! `ready` once every socket is bound, then runs until killed.
//!
//! With `--name NAME`, every answer says who answered and whom it saw: a TCP
//! connection starts with the line `NAME CLIENT`, a UDP reply is that line followed
//! by the echo (CLIENT is the client's address and port, IPv4 without the `::ffff:`
//! mapping).

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn6, bind, listen, setsockopt, socket,
    sockopt,
};
use std::convert::Infallible;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::thread;
use std::time::Duration;

use super::args::ServeArgs;

/// Pause after a failed `accept` (e.g. out of file descriptors) before the
/// next one, so a persistent error doesn't spin.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Binds every port, prints `ready` and serves forever; returns only if a
/// port can't be bound.
pub(super) fn serve(args: &ServeArgs) -> Result<Infallible, String> {
    let mut tcp_listeners = Vec::new();
    let address = listen_address(args.bind);
    for &port in &args.tcp_ports {
        let listener =
            tcp_listener(address, port).map_err(|error| format!("TCP port {port}: {error}"))?;
        tcp_listeners.push(listener);
    }
    let mut udp_sockets = Vec::new();
    for &port in &args.udp_ports {
        let socket =
            udp_socket(address, port).map_err(|error| format!("UDP port {port}: {error}"))?;
        udp_sockets.push(socket);
    }
    for listener in tcp_listeners {
        let name = args.name.clone();
        thread::spawn(move || accept_forever(&listener, name.as_deref()));
    }
    for socket in udp_sockets {
        let name = args.name.clone();
        thread::spawn(move || echo_datagrams_forever(&socket, name.as_deref()));
    }
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "ready")
        .and_then(|()| stdout.flush())
        .map_err(|error| format!("printing ready: {error}"))?;
    drop(stdout);
    loop {
        thread::park();
    }
}

/// The IPv6 socket address to bind: `[::]` for every address, an IPv4 address
/// in its IPv4-mapped form.
fn listen_address(bind: Option<IpAddr>) -> Ipv6Addr {
    match bind {
        None => Ipv6Addr::UNSPECIFIED,
        Some(IpAddr::V4(v4)) => v4.to_ipv6_mapped(),
        Some(IpAddr::V6(v6)) => v6,
    }
}

/// A socket bound to `[address]:port`, accepting IPv4 too.
fn dual_stack_socket(kind: SockType, address: Ipv6Addr, port: u16) -> io::Result<OwnedFd> {
    let fd = socket(AddressFamily::Inet6, kind, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::Ipv6V6Only, &false)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    let local = SockaddrIn6::from(SocketAddrV6::new(address, port, 0, 0));
    bind(fd.as_raw_fd(), &local)?;
    Ok(fd)
}

fn tcp_listener(address: Ipv6Addr, port: u16) -> io::Result<TcpListener> {
    let fd = dual_stack_socket(SockType::Stream, address, port)?;
    listen(&fd, Backlog::MAXCONN)?;
    Ok(TcpListener::from(fd))
}

fn udp_socket(address: Ipv6Addr, port: u16) -> io::Result<UdpSocket> {
    dual_stack_socket(SockType::Datagram, address, port).map(UdpSocket::from)
}

/// The line that starts an answer of a named server: `NAME CLIENT\n`.
fn greeting(name: &str, client: SocketAddr) -> String {
    let client = SocketAddr::new(client.ip().to_canonical(), client.port());
    format!("{name} {client}\n")
}

fn accept_forever(listener: &TcpListener, name: Option<&str>) {
    loop {
        match listener.accept() {
            Ok((mut stream, peer)) => {
                if let Some(name) = name
                    && stream.write_all(greeting(name, peer).as_bytes()).is_err()
                {
                    continue;
                }
                thread::spawn(move || echo_stream(stream));
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                eprintln!("accept: {error}");
                thread::sleep(ACCEPT_RETRY_PAUSE);
            }
        }
    }
}

/// Echoes everything a client sends until it closes the connection. Errors
/// (a client reset, a BPF drop turned into EPERM) just end the connection.
fn echo_stream(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    if let Ok(mut reader) = stream.try_clone() {
        let mut writer = stream;
        let _ = io::copy(&mut reader, &mut writer);
    }
}

/// Sends every datagram back to where it came from (after the greeting line of a
/// named server). Errors concern single datagrams and are ignored.
fn echo_datagrams_forever(socket: &UdpSocket, name: Option<&str>) {
    let mut buffer = vec![0u8; 65536];
    loop {
        if let Ok((length, sender)) = socket.recv_from(&mut buffer) {
            let _ = match name {
                Some(name) => {
                    let mut reply = greeting(name, sender).into_bytes();
                    reply.extend_from_slice(&buffer[..length]);
                    socket.send_to(&reply, sender)
                }
                None => socket.send_to(&buffer[..length], sender),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_name_the_client_without_the_v4_mapping() {
        let mapped: SocketAddr = "[::ffff:10.90.0.10]:40000".parse().expect("address");
        assert_eq!(greeting("web-1", mapped), "web-1 10.90.0.10:40000\n");
        let v6: SocketAddr = "[fd00:90::10]:40000".parse().expect("address");
        assert_eq!(greeting("web-1", v6), "web-1 [fd00:90::10]:40000\n");
    }
}
