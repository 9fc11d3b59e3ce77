//! Broker connections: `amqp://` as before, `amqps://` through rustls with the section's
//! verification choice, CA file and client certificate.
//!
//! lapin's own TLS setup trusts the bundled roots plus extra CA certificates and always checks
//! the host name; to offer `required` and `verify_ca` as for the database, an `amqps://`
//! connection is made here: lapin is handed a function that opens the TCP connection and does
//! the TLS handshake with our rustls configuration. lapin calls it again for every reconnect.

use std::sync::Arc;
use std::time::Duration;

use lapin::tcp::{AMQPUriTcpExt, RustlsConnector, TLSConfig};
use lapin::types::ShortString;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties, ErrorKind};
use rustls::{ClientConfig, RootCertStore};

use crate::client_certificate::{self, NoCertificate};
use crate::diagnosis;
use crate::verifier::ModeVerifier;
use crate::TlsConfig;

/// Checks a broker URL (from the file or the environment alike): `Ok(true)` for `amqps://`,
/// `Ok(false)` for `amqp://`, else what is wrong with it.
pub fn check_url(url: &str) -> Result<bool, String> {
    if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
        return Err(
            "must be an AMQP URL: amqp://user:password@host:5672/%2f, or amqps://… for TLS".into(),
        );
    }
    let uri: AMQPUri = url
        .parse()
        .map_err(|e: String| format!("is not a valid AMQP URL: {e}"))?;
    if uri.authority.host.is_empty() {
        return Err("names no host".into());
    }
    Ok(uri.scheme == AMQPScheme::AMQPS)
}

/// The user a connection to `url` logs in as: the URL's user, percent-decoded, or "guest"
/// when it names none (lapin's default). It is what the broker checks the `user_id` property
/// of a publish against, so publishers set it and consumers compare it. `None` for a URL that
/// does not parse ([`check_url`] says why), and for a certificate login
/// (`?auth_mechanism=external`), where the broker takes the user from the certificate.
pub fn login_user(url: &str) -> Option<String> {
    let uri: AMQPUri = url.parse().ok()?;
    if uri.query.auth_mechanism == Some(lapin::uri::SASLMechanism::External) {
        return None;
    }
    Some(uri.authority.userinfo.username)
}

/// How long a close waits for the broker's answer.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Closes `connection` without waiting long for the broker's close-ok: a dead broker never
/// answers, and a command that has done its work must not hang on the goodbye. After
/// [`CLOSE_WAIT`] the connection is dropped instead (the broker sees the socket close).
/// Calls `on_change(Some(reason))` when the broker blocks `connection` (a disk or memory alarm:
/// it stops reading from connections that publish) and `on_change(None)` when it unblocks it,
/// until the connection is gone. Other events are logged.
pub fn watch_blocked(connection: &Connection, on_change: impl Fn(Option<String>) + Send + 'static) {
    use futures_lite::StreamExt;
    let mut events = connection.events_listener();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                lapin::Event::ConnectionBlocked(reason) => on_change(Some(reason)),
                lapin::Event::ConnectionUnblocked => on_change(None),
                lapin::Event::Error(error) => tracing::warn!(%error, "broker connection error"),
                _ => {}
            }
        }
    });
}

pub async fn close(connection: &Connection, reason: &str) {
    let close = connection.close(200, ShortString::from(reason));
    if tokio::time::timeout(CLOSE_WAIT, close).await.is_err() {
        tracing::debug!(
            reason,
            "the broker did not answer the close within 2 s; dropping the connection"
        );
    }
}

/// Closes `channel` as [`close`] closes a connection: at most [`CLOSE_WAIT`] for the answer.
pub async fn close_channel(channel: &lapin::Channel, reason: &str) {
    let close = channel.close(200, ShortString::from(reason));
    if tokio::time::timeout(CLOSE_WAIT, close).await.is_err() {
        tracing::debug!(
            reason,
            "the broker did not answer a channel close within 2 s; dropping the channel"
        );
    }
}

/// Opens a connection to `url` with `properties`; `amqps://` URLs use `tls` (resolved with
/// [`TlsConfig::resolve_broker`]).
pub async fn connect(
    url: &str,
    properties: ConnectionProperties,
    tls: &TlsConfig,
) -> lapin::Result<Connection> {
    let uri: AMQPUri = url
        .parse()
        .map_err(|e: String| lapin::Error::from(std::io::Error::other(e)))?;
    if uri.scheme != AMQPScheme::AMQPS || !tls.mode().encrypts() {
        return Connection::connect_uri(uri, properties).await;
    }
    let server = format!("{}:{}", uri.authority.host, uri.authority.port);
    let config =
        client_config(tls, &server).map_err(|e| lapin::Error::from(std::io::Error::other(e)))?;
    let connector = RustlsConnector::from(Arc::new(config));
    let runtime = lapin::runtime::default_runtime()?;
    let connection = Connection::connector(
        uri,
        runtime,
        async move |uri: AMQPUri, runtime| {
            let mut plain = uri.clone();
            plain.scheme = AMQPScheme::AMQP;
            let stream = plain
                .connect_with_config_async(TLSConfig::default(), &runtime)
                .await?;
            Ok(stream.into_rustls(&connector, &uri.authority.host).await?)
        },
        properties,
    )
    .await?;
    client_certificate::connected(&server);
    Ok(connection)
}

/// A blocking connection to the broker at `host:port`, in TLS with `tls` when it encrypts: for
/// the short exchanges made outside lapin (reading the broker's greeting). `timeout` bounds
/// the TCP connect and every read.
pub fn blocking_stream(
    addr: std::net::SocketAddr,
    host: &str,
    timeout: std::time::Duration,
    tls: &TlsConfig,
) -> std::io::Result<BlockingStream> {
    let tcp = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    tcp.set_read_timeout(Some(timeout))?;
    if !tls.mode().encrypts() {
        return Ok(BlockingStream::Plain(tcp));
    }
    let config =
        client_config(tls, &format!("{host}:{}", addr.port())).map_err(std::io::Error::other)?;
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(std::io::Error::other)?;
    let connection =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    Ok(BlockingStream::Tls(Box::new(rustls::StreamOwned::new(
        connection, tcp,
    ))))
}

/// See [`blocking_stream`].
pub enum BlockingStream {
    Plain(std::net::TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>),
}

impl std::io::Read for BlockingStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            BlockingStream::Plain(s) => s.read(buf),
            BlockingStream::Tls(s) => s.read(buf),
        }
    }
}

impl std::io::Write for BlockingStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            BlockingStream::Plain(s) => s.write(buf),
            BlockingStream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            BlockingStream::Plain(s) => s.flush(),
            BlockingStream::Tls(s) => s.flush(),
        }
    }
}

/// `server` (`host:port`) is recorded when it asks for a client certificate and `tls` has none.
fn client_config(tls: &TlsConfig, server: &str) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match tls.ca() {
        Some(ca) => {
            for cert in &ca.certs {
                roots.add(cert.clone())?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let verifier = ModeVerifier::new(tls.mode(), roots, provider.clone())?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    Ok(match tls.identity() {
        Some(identity) => {
            builder.with_client_auth_cert(identity.certs.clone(), identity.key.clone_key())?
        }
        None => builder.with_client_cert_resolver(Arc::new(NoCertificate {
            server: server.to_string(),
        })),
    })
}

/// When `error` is a failed TLS handshake with the broker at `url`, what is wrong and which
/// option of `tls` fixes it; `None` for every other error.
pub fn problem(error: &lapin::Error, tls: &TlsConfig, url: &str) -> Option<String> {
    let ErrorKind::IOError(io) = error.kind() else {
        return None;
    };
    let uri: AMQPUri = url.parse().ok()?;
    let host = uri.authority.host;
    let port = uri.authority.port;
    let server = format!("the broker {host}:{port}");
    match diagnosis::rustls_error(io) {
        Some(rustls_error) => Some(diagnosis::explain(rustls_error, &server, &host, tls)),
        None => missing_client_certificate(io, tls, &host, port),
    }
}

/// When `error` ended a connection to the broker at `host:port` that asked for a client
/// certificate `tls` does not have: a broker that requires one closes such connections right
/// after the handshake (see `client_certificate`). What to set; `None` otherwise.
pub fn missing_client_certificate(
    error: &std::io::Error,
    tls: &TlsConfig,
    host: &str,
    port: u16,
) -> Option<String> {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let closed = matches!(
        error.kind(),
        ConnectionReset | ConnectionAborted | UnexpectedEof | BrokenPipe
    );
    if !closed
        || tls.identity().is_some()
        || !client_certificate::was_asked(&format!("{host}:{port}"))
    {
        return None;
    }
    let key = tls.key();
    Some(format!(
        "the broker {host}:{port} asked for a client certificate in the TLS handshake and closed \
         the connection when none was shown ({error}): it requires one (RabbitMQ \
         ssl_options.fail_if_no_peer_cert = true). Set {key}.cert_file and {key}.key_file to a \
         PEM certificate and key signed by a CA the broker trusts (its ssl_options.cacertfile)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_whatever_their_origin() {
        assert_eq!(
            check_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            Ok(false)
        );
        assert_eq!(check_url("amqps://u:p@broker.example.com/%2f"), Ok(true));
        assert!(check_url("http://broker:5672").is_err());
        assert!(check_url("amqp://u:p@host:notaport/%2f").is_err());
    }

    #[test]
    fn the_login_user_is_the_urls_user_decoded_or_guest() {
        assert_eq!(
            login_user("amqp://cdc%2Dbridge:secret@127.0.0.1:5672/%2f").as_deref(),
            Some("cdc-bridge")
        );
        assert_eq!(
            login_user("amqp://127.0.0.1:5672/%2f").as_deref(),
            Some("guest")
        );
        assert_eq!(login_user("amqp://u:p@host:notaport/%2f"), None);
        assert_eq!(
            login_user("amqps://broker.example.com/%2f?auth_mechanism=external"),
            None
        );
    }

    #[test]
    fn a_reset_after_a_certificate_request_without_a_certificate_names_cert_file_and_key_file() {
        use rustls::client::ResolvesClientCert as _;
        use std::io::{Error, ErrorKind};
        let mut tls = TlsConfig::with_mode(crate::TlsMode::VerifyCa);
        tls.resolve_broker("broker.tls", true, std::path::Path::new("."))
            .unwrap();
        let (host, port) = ("certs.example.com", 5671);
        let reset = Error::from(ErrorKind::ConnectionReset);
        assert_eq!(missing_client_certificate(&reset, &tls, host, port), None);
        let asked = NoCertificate {
            server: format!("{host}:{port}"),
        };
        assert!(asked.resolve(&[], &[]).is_none());
        let text = missing_client_certificate(&reset, &tls, host, port).unwrap();
        assert!(
            text.contains("broker.tls.cert_file") && text.contains("broker.tls.key_file"),
            "{text}"
        );
        let refused = Error::from(ErrorKind::ConnectionRefused);
        assert_eq!(missing_client_certificate(&refused, &tls, host, port), None);
        client_certificate::connected(&format!("{host}:{port}"));
        assert_eq!(missing_client_certificate(&reset, &tls, host, port), None);
    }

    #[test]
    fn every_mode_builds_a_client_configuration() {
        for mode in [
            crate::TlsMode::Required,
            crate::TlsMode::VerifyCa,
            crate::TlsMode::VerifyIdentity,
        ] {
            let mut tls = TlsConfig::with_mode(mode);
            tls.resolve_broker("broker.tls", true, std::path::Path::new("."))
                .unwrap();
            client_config(&tls, "broker.example.com:5671").unwrap();
        }
    }
}
