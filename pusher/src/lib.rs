//! The pusher: drains partner queues and delivers each change to the partner's OCPI API,
//! acking a message only after the partner confirmed it.
//!
//! - [`config`]: the TOML configuration, one `[[partner]]` each;
//! - [`topology`]: the partner queues, parking queues and exchanges, declared idempotently;
//! - [`supervisor`]: the process: broker session, presence, which partners this pusher owns;
//! - [`presence`] and [`assignment`]: who is alive, and the fair split of partners among them;
//! - [`delivery`]: one partner's consume-push-ack loop, pauses and probes;
//! - [`lanes`]: per-record order, concurrency across records, coalescing;
//! - [`composite`], [`source_db`] and [`tree_clock`]: Location trees read whole from the source
//!   database, never sent older than what the partner holds;
//! - [`source_time_zone`]: the zone DATETIME values are read in, from the server when asked;
//! - [`ack_window`]: unacked deliveries and their gathered acks;
//! - [`mapping`] and [`ocpi`]: from a change to an OCPI call, and the call itself;
//! - [`parking`]: what cannot be delivered, kept with its reason;
//! - [`parked`]: `pusher parked list|replay|discard`, what an operator does with it;
//! - [`cdr_ledger`]: the guard that keeps a CDR from being POSTed twice;
//! - [`status`]: the `partners` listing and `pusher status`;
//! - [`metrics`] and [`http_endpoints`]: Prometheus metrics, health and readiness over HTTP;
//! - [`sync_request`]: `pusher sync`, adding (or re-syncing) a partner through the bridge.

pub mod ack_window;
pub mod assignment;
pub mod backlog;
pub mod broker_links;
pub mod cdr_ledger;
pub mod composite;
pub mod config;
pub mod delivery;
pub mod disk_work;
pub mod http_endpoints;
pub mod lanes;
pub mod management;
pub mod mapping;
pub mod metrics;
pub mod ocpi;
pub mod parked;
pub mod parking;
pub mod presence;
pub mod senders;
pub mod source_db;
pub mod source_time_zone;
pub mod status;
pub mod supervisor;
pub mod sync_request;
pub mod topology;
pub mod tree_clock;
