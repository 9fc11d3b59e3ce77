//! Which brokers asked for a client certificate this process could not show.
//!
//! In TLS 1.3 the client finishes its side of the handshake before the server has checked the
//! client's certificate; a broker that requires one (RabbitMQ `ssl_options.fail_if_no_peer_cert
//! = true`) then ends the connection, and the client usually sees no alert, only a connection
//! reset. To say what is wrong, a connection without a client certificate records the server
//! that sent a certificate request; a failure right after it, with none configured, is named
//! for what it is. A successful connection clears the record, so a broker that asks but does
//! not require a certificate is never blamed for a later reset.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

static ASKED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// The client side without a certificate: sends none, and remembers that `server` asked.
#[derive(Debug)]
pub(crate) struct NoCertificate {
    pub(crate) server: String,
}

impl ResolvesClientCert for NoCertificate {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        if let Ok(mut asked) = ASKED.lock() {
            asked
                .get_or_insert_with(HashSet::new)
                .insert(self.server.clone());
        }
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// True when `server` (`host:port`) asked for a client certificate on the last attempt.
pub(crate) fn was_asked(server: &str) -> bool {
    ASKED
        .lock()
        .map(|asked| asked.as_ref().is_some_and(|a| a.contains(server)))
        .unwrap_or(false)
}

/// A connection to `server` succeeded: whatever it asked was enough.
pub(crate) fn connected(server: &str) {
    if let Ok(mut asked) = ASKED.lock() {
        if let Some(asked) = asked.as_mut() {
            asked.remove(server);
        }
    }
}
