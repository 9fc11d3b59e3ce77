//! What the bridge and the pusher share to be observed by operators: the Prometheus text
//! format ([`exposition`]), the recent rate of a counter ([`rate`]), and the HTTP server that
//! serves `/metrics`, `/healthz` and `/readyz` ([`server`]). Each binary keeps its own series
//! and its own idea of health; this crate only knows how to show them.

pub mod exposition;
pub mod rate;
pub mod server;

pub use exposition::{escape_label_value, Exposition, Kind};
pub use rate::{unix_secs_now, Rate};
pub use server::{bind, spawn, HttpError, Observed};
