//! Follows the agent's event stream over HTTP/1.1 (hyper): one GET, then the body as
//! it arrives, cut into lines.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

/// An open event stream.
pub struct EventStream {
    body: Incoming,
    pending: Vec<u8>,
    agent: String,
}

/// Connects to `agent` (`ADDR:PORT`) and requests `path`. Errors say what failed and
/// how to fix the usual causes.
pub async fn open(agent: &str, path: &str) -> Result<EventStream> {
    let unreachable = || {
        format!(
            "cannot reach the agent's event stream at {agent} (is palisade-agent running \
             with --events-addr {agent}?)"
        )
    };
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(agent)
        .await
        .with_context(|| format!("--agent {agent}: expected ADDR:PORT"))?
        .collect();
    let mut last_error = None;
    let mut tcp = None;
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(tcp) = tcp else {
        return Err(match last_error {
            Some(e) => anyhow::Error::new(e).context(unreachable()),
            None => anyhow::anyhow!("--agent {agent}: the name has no address"),
        });
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .with_context(unreachable)?;
    tokio::spawn(connection);
    let request = Request::get(path)
        .header(hyper::header::HOST, agent)
        .body(Empty::<Bytes>::new())
        .context("building the request")?;
    let response = sender
        .send_request(request)
        .await
        .with_context(unreachable)?;
    let status = response.status();
    if !status.is_success() {
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
            .unwrap_or_default();
        bail!("the agent at {agent} refused {path} ({status}): {body}");
    }
    Ok(EventStream {
        body: response.into_body(),
        pending: Vec::new(),
        agent: agent.into(),
    })
}

impl EventStream {
    /// The next line (without its newline); an error when the stream ends, since it
    /// only ends when the agent stops.
    pub async fn next_line(&mut self) -> Result<String> {
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Ok(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            match self.body.frame().await {
                Some(frame) => {
                    let frame = frame.with_context(|| {
                        format!("reading the event stream of the agent at {}", self.agent)
                    })?;
                    if let Some(data) = frame.data_ref() {
                        self.pending.extend_from_slice(data);
                    }
                }
                None => bail!(
                    "the agent at {} ended the event stream (it stopped)",
                    self.agent
                ),
            }
        }
    }
}
