//! The bridge's HTTP endpoints for operators, on `[metrics] listen`:
//!
//! - `GET /metrics`: every series of [`crate::metrics`], Prometheus text format;
//! - `GET /healthz`: 200 while the main loop lives (and, when streaming, keeps turning), else
//!   503 with the reason on one line: a process to restart;
//! - `GET /readyz`: 200 while the bridge streams the binlog with the broker connected, else 503
//!   with the reason on one line (waiting for the database, broker lost, stopping, ...);
//! - `GET /status`: the position, lag, checkpoint and initial syncs as JSON, which
//!   `pusher status` shows next to the partners.
//!
//! The listener is bound before the bridge starts working, so a taken address stops it at once
//! with the fix named instead of leaving it running unobserved.

use crate::metrics::BridgeMetrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "cannot listen on {address} (metrics.listen): {source}; choose a free address, or set \
         metrics.listen = \"\" to turn the HTTP endpoints off"
    )]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

/// Binds `address` (`ip:port`; port 0 picks a free one, see `local_addr`).
pub async fn bind(address: &str) -> Result<TcpListener, HttpError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| HttpError::Bind {
            address: address.to_string(),
            source,
        })
}

/// Serves the endpoints on `listener` for as long as the runtime runs.
pub fn spawn(listener: TcpListener, metrics: Arc<BridgeMetrics>) {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .with_state(metrics);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the metrics endpoints stopped");
        }
    });
}

async fn metrics_text(State(metrics): State<Arc<BridgeMetrics>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

fn verdict(result: Result<(), String>) -> (StatusCode, String) {
    match result {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", reason.replace('\n', " ")),
        ),
    }
}

async fn healthz(State(metrics): State<Arc<BridgeMetrics>>) -> (StatusCode, String) {
    verdict(metrics.liveness())
}

async fn readyz(State(metrics): State<Arc<BridgeMetrics>>) -> (StatusCode, String) {
    verdict(metrics.readiness())
}

async fn status(State(metrics): State<Arc<BridgeMetrics>>) -> Response {
    Json(metrics.status()).into_response()
}
