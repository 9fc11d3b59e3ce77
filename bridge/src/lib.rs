//! The bridge: reads a MySQL/MariaDB binlog as a replica and publishes every captured row change
//! to a RabbitMQ fanout exchange, confirmed, in order, resumable after any crash.
//!
//! Data path: [`source`] (binlog reader thread, decoding) -> [`pipeline`] (sequence numbers,
//! sessions, checkpointing) -> [`dedup`] (coalescing) -> [`publisher`] (confirmed publishing).
//! Initial syncs of new partners ([`sync`]) run inside the same stream. State lives in one
//! place: the checkpoint file ([`checkpoint`]), which carries the sync state too.
//! Operators watch it through [`http_endpoints`] ([`metrics`], [`lag`], [`binlog_headroom`]).

pub mod binlog_headroom;
pub mod binlog_list;
pub mod capture_filter;
pub mod checkpoint;
pub mod config;
pub mod dedup;
pub mod failover;
pub mod http_endpoints;
pub mod lag;
pub mod message_size;
pub mod metrics;
pub mod pipeline;
pub mod preflight;
pub mod publish_refusals;
pub mod publish_window;
pub mod publisher;
pub mod schema_catalog;
pub mod session_start;
pub mod source;
pub mod sync;
pub mod time_format;
