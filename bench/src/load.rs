//! Load generators the throughput benchmark runs inside an emulated pod (this binary's
//! hidden `load` subcommand): each prints one number on stdout.
//!
//! - `rtt ADDR PORT SECONDS`: mean round trip, in microseconds, of 1 byte each way on
//!   one TCP connection to an echo server;
//! - `rate ADDR PORT SECONDS`: new TCP connections per second (connect, one round
//!   trip, close), one after another;
//! - `parallel ADDR PORT SECONDS`: the same from [`PARALLEL_CLIENTS`] threads at once,
//!   each connection closed with a reset (SO_LINGER 0, so no TIME_WAIT exhausts the
//!   ephemeral ports): the rate the machine's CPUs allow rather than the rate one
//!   round trip after another allows, so that per-connection costs (a firewall's rule
//!   walk) show;
//! - `denied ADDR PORT COUNT`: median time, in microseconds, of a `connect()` that
//!   fails with EPERM (palisade's early rejection); any other outcome is an error.

use anyhow::{Context, Result, bail};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub fn run(args: &[String]) -> Result<()> {
    let [kind, addr, port, amount] = args else {
        bail!("usage: palisade-bench load rtt|rate|parallel|denied ADDR PORT SECONDS|COUNT");
    };
    let addr: IpAddr = addr.parse().context("ADDR")?;
    let port: u16 = port.parse().context("PORT")?;
    let target = SocketAddr::new(addr, port);
    let amount: u64 = amount.parse().context("SECONDS|COUNT")?;
    let value = match kind.as_str() {
        "rtt" => round_trip_us(target, Duration::from_secs(amount))?,
        "rate" => connections_per_s(target, Duration::from_secs(amount))?,
        "parallel" => parallel_connections_per_s(target, Duration::from_secs(amount))?,
        "denied" => denied_connect_us(target, amount)?,
        other => bail!("unknown load {other:?}"),
    };
    println!("{value}");
    Ok(())
}

fn connect(target: SocketAddr) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))
        .with_context(|| format!("connecting to {target}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    Ok(stream)
}

fn exchange(stream: &mut TcpStream) -> Result<()> {
    let mut byte = [0u8; 1];
    stream.write_all(b"x")?;
    stream.read_exact(&mut byte).context("reading the echo")?;
    Ok(())
}

fn round_trip_us(target: SocketAddr, duration: Duration) -> Result<f64> {
    let mut stream = connect(target)?;
    for _ in 0..100 {
        exchange(&mut stream)?;
    }
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < duration {
        exchange(&mut stream)?;
        count += 1;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / count as f64)
}

fn connections_per_s(target: SocketAddr, duration: Duration) -> Result<f64> {
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < duration {
        let mut stream = connect(target)?;
        exchange(&mut stream)?;
        drop(stream);
        count += 1;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// Client threads of `parallel`.
pub const PARALLEL_CLIENTS: usize = 8;

fn parallel_connections_per_s(target: SocketAddr, duration: Duration) -> Result<f64> {
    let started = Instant::now();
    let counts = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..PARALLEL_CLIENTS)
            .map(|_| {
                scope.spawn(move || -> Result<u64> {
                    let mut count = 0u64;
                    while started.elapsed() < duration {
                        let mut stream = connect(target)?;
                        exchange(&mut stream)?;
                        close_with_reset(&stream)?;
                        drop(stream);
                        count += 1;
                    }
                    Ok(count)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a client thread panicked"))?
            })
            .collect::<Result<Vec<u64>>>()
    })?;
    Ok(counts.iter().sum::<u64>() as f64 / started.elapsed().as_secs_f64())
}

/// SO_LINGER with a zero timeout: `close()` sends a reset and leaves no TIME_WAIT.
fn close_with_reset(stream: &TcpStream) -> Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a linger struct of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        bail!("setsockopt(SO_LINGER): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

fn denied_connect_us(target: SocketAddr, count: u64) -> Result<f64> {
    let mut samples = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let started = Instant::now();
        match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                samples.push(started.elapsed().as_secs_f64() * 1e6)
            }
            Err(e) => bail!("connect to {target} failed with {e}, not EPERM"),
            Ok(_) => bail!("connect to {target} succeeded; it should be denied"),
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
}
