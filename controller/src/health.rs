//! The HTTP endpoints: `/metrics` (Prometheus text) on the metrics address, `/healthz`
//! and `/readyz` on the health address. Ready once every watch has synced and, on the
//! leader, the first publication is done.

use crate::metrics::Metrics;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What `/readyz` and the tests read; written by the controller and the elector.
#[derive(Debug, Default)]
pub struct Readiness {
    pub caches_synced: AtomicBool,
    pub leader: AtomicBool,
    pub published: AtomicBool,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.caches_synced.load(Ordering::SeqCst)
            && (!self.leader.load(Ordering::SeqCst) || self.published.load(Ordering::SeqCst))
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }
}

pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.encode(),
                )
            }
        }),
    )
}

pub fn health_router(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move {
                    if readiness.is_ready() {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        )
}

/// Serves `router` on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, router: Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router).await
}
