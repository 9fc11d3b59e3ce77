//! The operators' HTTP endpoints, on the binary's `[metrics] listen` address:
//!
//! - `GET /metrics`: the binary's series, Prometheus text format;
//! - `GET /healthz`: 200 while the process does its work, else 503 with the reason on one line
//!   (a process to restart);
//! - `GET /readyz`: 200 while it is ready to do its job, else 503 with the reason on one line;
//! - whatever routes the binary adds (the bridge's `/status`).
//!
//! The listener is bound before the binary starts working, so a taken address stops it at
//! once with the fix named instead of leaving it running unobserved.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What a binary shows on the endpoints.
pub trait Observed: Send + Sync + 'static {
    /// Every series, in the Prometheus text format.
    fn metrics_text(&self) -> String;
    /// `Err(reason)` when the process should be restarted.
    fn liveness(&self) -> Result<(), String>;
    /// `Err(reason)` while the process cannot do its job.
    fn readiness(&self) -> Result<(), String>;
}

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

type Shared = Arc<dyn Observed>;

/// Serves the endpoints, and `extra` routes, on `listener` for as long as the runtime runs.
pub fn spawn(listener: TcpListener, observed: Shared, extra: Router) {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(observed)
        .merge(extra);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the metrics endpoints stopped");
        }
    });
}

async fn metrics_text(State(observed): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        observed.metrics_text(),
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

async fn healthz(State(observed): State<Shared>) -> (StatusCode, String) {
    verdict(observed.liveness())
}

async fn readyz(State(observed): State<Shared>) -> (StatusCode, String) {
    verdict(observed.readiness())
}
