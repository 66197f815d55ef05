//! Load generators the throughput benchmark runs inside an emulated pod (this binary's
//! hidden `load` subcommand): each prints one number on stdout.
//!
//! - `rtt ADDR PORT SECONDS`: mean round trip, in microseconds, of 1 byte each way on
//!   one TCP connection to an echo server;
//! - `rate ADDR PORT SECONDS`: new TCP connections per second (connect, one round
//!   trip, close), one after another;
//! - `denied ADDR PORT COUNT`: median time, in microseconds, of a `connect()` that
//!   fails with EPERM (palisade's early rejection); any other outcome is an error.

use anyhow::{Context, Result, bail};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub fn run(args: &[String]) -> Result<()> {
    let [kind, addr, port, amount] = args else {
        bail!("usage: palisade-bench load rtt|rate|denied ADDR PORT SECONDS|COUNT");
    };
    let addr: IpAddr = addr.parse().context("ADDR")?;
    let port: u16 = port.parse().context("PORT")?;
    let target = SocketAddr::new(addr, port);
    let amount: u64 = amount.parse().context("SECONDS|COUNT")?;
    let value = match kind.as_str() {
        "rtt" => round_trip_us(target, Duration::from_secs(amount))?,
        "rate" => connections_per_s(target, Duration::from_secs(amount))?,
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
