//! The agent's HTTP endpoints: `/healthz` (the process is serving), `/readyz` (200 only
//! once the manifests on disk are fully applied) and `/status` (JSON, see
//! [`crate::status::Status`]).

use crate::status::Shared;
use anyhow::{Context, Result};
use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use std::net::SocketAddr;

pub async fn serve(addr: SocketAddr, shared: Shared) -> Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding --health-addr {addr}"))?;
    tracing::info!(%addr, "health endpoints listening");
    axum::serve(listener, app).await.context("health server")
}

async fn readyz(State(shared): State<Shared>) -> (StatusCode, String) {
    let status = shared.status.read().expect("status lock").clone();
    if status.ready {
        (StatusCode::OK, "ready\n".into())
    } else {
        let why = status
            .last_error
            .unwrap_or_else(|| "manifests not applied yet".into());
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
    }
}

async fn status(State(shared): State<Shared>) -> Json<crate::status::Status> {
    Json(shared.status.read().expect("status lock").clone())
}
