//! The bridge's HTTP endpoints for operators, on `[metrics] listen`: `/metrics` (every series of
//! [`crate::metrics`]), `/healthz` (200 while the main loop lives and, when streaming, keeps
//! turning), `/readyz` (200 while the bridge streams the binlog with the broker connected;
//! otherwise the reason: waiting for the database, broker lost, stopping, ...), served by
//! `ops-endpoints`, and `/status`: the position, lag, checkpoint and initial syncs as JSON,
//! which `pusher status` shows next to the partners.

use crate::metrics::BridgeMetrics;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use tokio::net::TcpListener;

pub use ops_endpoints::{bind, HttpError};

impl ops_endpoints::Observed for BridgeMetrics {
    fn metrics_text(&self) -> String {
        self.render()
    }

    fn liveness(&self) -> Result<(), String> {
        BridgeMetrics::liveness(self)
    }

    fn readiness(&self) -> Result<(), String> {
        BridgeMetrics::readiness(self)
    }
}

/// Serves the endpoints on `listener` for as long as the runtime runs.
pub fn spawn(listener: TcpListener, metrics: Arc<BridgeMetrics>) {
    let status = Router::new()
        .route("/status", get(status))
        .with_state(metrics.clone());
    ops_endpoints::spawn(listener, metrics, status);
}

async fn status(State(metrics): State<Arc<BridgeMetrics>>) -> Response {
    Json(metrics.status()).into_response()
}
