//! TLS for every connection the bridge and the pusher open: to the source database (through
//! mysql_async) and to the broker (`amqps://`, through lapin).
//!
//! Both binaries read the same `[*.tls]` options (`mode`, `ca_file`, `cert_file`, `key_file`),
//! so they live here once: [`TlsConfig`] parses and checks them when the configuration loads
//! (files are read then, so a connection never fails on a missing file), [`database`] turns them
//! into mysql_async options and explains the failures a user can meet, and [`broker`] opens
//! lapin connections with the same verification choices.
//!
//! Everything uses rustls with the ring provider; the public roots bundled with webpki-roots
//! are trusted unless a CA file replaces them.

pub mod broker;
mod client_certificate;
pub mod database;
mod diagnosis;
mod mode;
mod options;
mod verifier;

pub use mode::TlsMode;
pub use options::{ModeChoice, TlsConfig, TlsConfigError};
