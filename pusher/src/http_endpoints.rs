//! The pusher's HTTP endpoints for operators, on `[metrics] listen`, served by `ops-endpoints`:
//! `/metrics` (every series of [`crate::metrics`]), `/healthz` (200 while the supervisor
//! lives), `/readyz` (200 while connected to the broker; otherwise the reason).

use crate::metrics::PusherMetrics;
use std::sync::Arc;
use tokio::net::TcpListener;

pub use ops_endpoints::{bind, HttpError};

impl ops_endpoints::Observed for PusherMetrics {
    fn metrics_text(&self) -> String {
        self.render()
    }

    fn liveness(&self) -> Result<(), String> {
        PusherMetrics::liveness(self)
    }

    fn readiness(&self) -> Result<(), String> {
        PusherMetrics::readiness(self)
    }
}

/// Serves the endpoints on `listener` for as long as the runtime runs.
pub fn spawn(listener: TcpListener, metrics: Arc<PusherMetrics>) {
    ops_endpoints::spawn(listener, metrics, axum::Router::new());
}
