//! A TCP relay between network namespaces: it listens in one (the test's own, or a lab
//! namespace) and forwards each connection to an address as seen from another. The
//! Kubernetes-mode tests use it both ways for an agent that runs in a pod's network
//! namespace and cgroup: the agent reaches the API-server double (on the test's
//! loopback) through the node's bridge address, so its own API traffic crosses the
//! cgroup programs like a real agent pod's does (loopback traffic would pass them
//! untouched), and the test reaches the agent's health and metrics endpoints on the
//! pod's address.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub struct Relay {
    /// Where to connect to reach the target.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

/// Moves the calling thread into the network namespace `netns` (/run/netns/<netns>).
fn enter_netns(netns: &str) -> Result<()> {
    let target = File::open(format!("/run/netns/{netns}"))
        .with_context(|| format!("opening netns {netns}"))?;
    // SAFETY: setns on this thread with a valid namespace fd.
    if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("setns into netns {netns}"));
    }
    Ok(())
}

/// Runs `f` with the calling thread in the network namespace `netns`, then returns
/// the thread to the one it was in.
fn in_netns<T>(netns: &str, f: impl FnOnce() -> std::io::Result<T>) -> Result<T> {
    let home = File::open("/proc/thread-self/ns/net").context("opening this thread's netns")?;
    enter_netns(netns)?;
    let result = f();
    // SAFETY: as above; returning home is required before anything else runs here.
    if unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        panic!(
            "cannot return to the test's netns: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(result?)
}

impl Relay {
    /// Listens on `listen` (port 0 picks one) in `listen_netns` (the test's own if
    /// `None`) and forwards to `target` as seen from `target_netns`.
    pub fn start(
        listen_netns: Option<&str>,
        listen: SocketAddr,
        target_netns: Option<&str>,
        target: SocketAddr,
    ) -> Result<Relay> {
        let listener = match listen_netns {
            Some(netns) => in_netns(netns, || TcpListener::bind(listen))?,
            None => TcpListener::bind(listen)?,
        };
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (stop, streams) = (stop.clone(), streams.clone());
            let target_netns = target_netns.map(str::to_string);
            thread::spawn(move || {
                // The relay's connections are made from this thread: it lives in the
                // target's namespace.
                if let Some(netns) = target_netns
                    && let Err(e) = enter_netns(&netns)
                {
                    eprintln!("relay to {target}: {e:#}");
                    return;
                }
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((inside, _)) => {
                            let _ = relay(inside, target, &streams);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(10));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Ok(Relay {
            addr,
            stop,
            streams,
            acceptor: Some(acceptor),
        })
    }
}

/// Connects to `target` and copies both ways until either side closes.
fn relay(inside: TcpStream, target: SocketAddr, streams: &Mutex<Vec<TcpStream>>) -> Result<()> {
    inside.set_nonblocking(false)?;
    let outside = TcpStream::connect(target)?;
    {
        let mut held = streams.lock().expect("streams lock");
        held.push(inside.try_clone()?);
        held.push(outside.try_clone()?);
    }
    for (from, to) in [
        (inside.try_clone()?, outside.try_clone()?),
        (outside, inside),
    ] {
        thread::spawn(move || copy_until_closed(from, to));
    }
    Ok(())
}

fn copy_until_closed(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for stream in self.streams.lock().expect("streams lock").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}
