//! The event stream on `--events-addr`: `GET /events` answers with newline-delimited
//! JSON (`application/x-ndjson`), one [`FlowRecord`](super::record::FlowRecord) per
//! line, and keeps the response open, following new events until the client goes
//! away. Query parameters filter ([`EventFilter`]); a bad one is a 400 whose body
//! says which. A client that reads too slowly gets a line
//! `{"type": "lost", "events": N}` where it lost N events.

use super::filter::EventFilter;
use super::hub::{EventHub, Published, Subscription};
use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Router, routing::get};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

pub async fn serve(addr: SocketAddr, hub: Arc<EventHub>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding --events-addr {addr}"))?;
    serve_on(listener, hub).await
}

/// Serves on a listener already bound (tests bind port 0).
pub async fn serve_on(listener: tokio::net::TcpListener, hub: Arc<EventHub>) -> Result<()> {
    let app = Router::new().route("/events", get(events)).with_state(hub);
    tracing::info!(addr = %listener.local_addr()?, "event stream listening (GET /events)");
    axum::serve(listener, app)
        .await
        .context("event stream server")
}

async fn events(
    State(hub): State<Arc<EventHub>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let filter = match EventFilter::parse(&pairs) {
        Ok(filter) => filter,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let (subscription, replay) = hub.subscribe(filter.last, |r| filter.matches(r));
    let after = replay.last().map(|e| e.seq).unwrap_or(0);
    let state = Follow {
        replay: replay.into(),
        after,
        subscription,
        filter,
    };
    let body = futures_util::stream::unfold(state, |mut state| async move {
        let line = state.next_line().await?;
        Some((Ok::<_, std::convert::Infallible>(line), state))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response()
}

/// One client's position in the stream.
struct Follow {
    replay: VecDeque<Arc<Published>>,
    /// Last replayed event: live events up to it were replayed already.
    after: u64,
    subscription: Subscription,
    filter: EventFilter,
}

impl Follow {
    /// The next line to send; None when the stream ends (the agent stops).
    async fn next_line(&mut self) -> Option<String> {
        if let Some(event) = self.replay.pop_front() {
            return Some(event.line.clone());
        }
        loop {
            match self.subscription.receiver.recv().await {
                Ok(event) => {
                    if event.seq > self.after && self.filter.matches(&event.record) {
                        return Some(event.line.clone());
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    self.subscription.lost(n);
                    return Some(format!("{{\"type\":\"lost\",\"events\":{n}}}\n"));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
