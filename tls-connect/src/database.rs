//! TLS for the connections to the source database (mysql_async with rustls).
//!
//! [`apply`] puts a section's choices into a connection's options: with any mode but
//! `disabled` the connection is TLS or nothing (mysql_async never falls back to plaintext).
//! `verify_ca` needs one step more: mysql_async's switch for ignoring the certificate's names
//! has no effect with the rustls in use, so the name is learned instead. The first connection
//! is made as `verify_identity`; when it fails only because the certificate names another host
//! (the chain is good: webpki checks the name last), [`connect`] remembers a name the
//! certificate carries and connects again, checking the certificate against that name. Every
//! later connection of the process (every clone of the configuration) does the same check, so
//! a certificate is accepted only if a trusted CA signed it, and no credential is sent before
//! that is known. A certificate without subjectAltName names cannot be checked this way
//! (rustls reads no common name): [`problem`] says so.
//!
//! [`problem`] explains the failures that are configuration problems, never worth waiting
//! for: a server that requires TLS while the mode is `disabled` (error 3159), a server without
//! TLS, a certificate that is not trusted or not valid for the host.

use std::borrow::Cow;

use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, OptsBuilder, SslOpts};

use crate::diagnosis;
use crate::{TlsConfig, TlsMode};

/// `ER_SECURE_TRANSPORT_REQUIRED`: the server has `require_secure_transport=ON`.
const SECURE_TRANSPORT_REQUIRED: u16 = 3159;

/// The connection options with the section's TLS choices.
pub fn apply(builder: OptsBuilder, tls: &TlsConfig) -> OptsBuilder {
    builder.ssl_opts(ssl_opts(tls))
}

fn ssl_opts(tls: &TlsConfig) -> Option<SslOpts> {
    let mode = tls.mode();
    if !mode.encrypts() {
        return None;
    }
    let mut opts = SslOpts::default();
    if let Some(identity) = tls.identity() {
        opts = opts.with_client_identity(Some(ClientIdentity::new(
            identity.cert_pem.clone().into(),
            identity.key_pem.clone().into(),
        )));
    }
    match mode {
        TlsMode::Required => opts = opts.with_danger_accept_invalid_certs(true),
        TlsMode::VerifyCa | TlsMode::VerifyIdentity => {
            if let Some(ca) = tls.ca() {
                opts = opts
                    .with_root_certs(vec![ca.pem.clone().into()])
                    .with_disable_built_in_roots(true);
            }
            if mode == TlsMode::VerifyCa {
                if let Some(name) = tls.learned_name() {
                    opts = opts.with_danger_tls_hostname_override(Some(Cow::Owned(name)));
                }
            }
        }
        TlsMode::Disabled => {}
    }
    Some(opts)
}

/// Connects with the options `opts` builds (called again after a verify_ca name is learned).
pub async fn connect(
    opts: impl Fn() -> mysql_async::Opts,
    tls: &TlsConfig,
) -> Result<mysql_async::Conn, mysql_async::Error> {
    match mysql_async::Conn::new(opts()).await {
        Err(error) if learn_name(tls, &error) => mysql_async::Conn::new(opts()).await,
        other => other,
    }
}

/// In verify_ca mode, when `error` is only a certificate naming another host: remembers a
/// name it carries and returns true (connect again). False otherwise.
pub fn learn_name(tls: &TlsConfig, error: &mysql_async::Error) -> bool {
    if tls.mode() != TlsMode::VerifyCa || tls.learned_name().is_some() {
        return false;
    }
    let Some(names) = tls_error(error).and_then(diagnosis::presented_names) else {
        return false;
    };
    let Some(name) = names.iter().find_map(|n| usable_name(n)) else {
        return false;
    };
    tracing::info!(
        certificate_name = %name,
        "{}: verify_ca: the server's certificate chains to a trusted CA; connections check it \
         against the name it carries",
        tls.key()
    );
    tls.learn_name(name);
    true
}

/// A name rustls accepts as a server name: a wildcard `*.example.com` becomes a name it covers.
fn usable_name(name: &str) -> Option<String> {
    let name = match name.strip_prefix("*.") {
        Some(rest) => format!("any.{rest}"),
        None => name.to_string(),
    };
    rustls::pki_types::ServerName::try_from(name.as_str())
        .is_ok()
        .then_some(name)
}

/// The rustls error of a failed handshake inside a mysql_async error.
fn tls_error(error: &mysql_async::Error) -> Option<&rustls::Error> {
    use mysql_async::{IoError, TlsError};
    match error {
        mysql_async::Error::Io(IoError::Tls(TlsError::Tls(e))) => Some(e),
        mysql_async::Error::Io(IoError::Io(e)) => diagnosis::rustls_error(e),
        _ => None,
    }
}

/// When `error` comes from the TLS settings (or their absence), what is wrong and which option
/// of `tls` fixes it; `None` for every other error. `address` is `host:port`, `host` the name
/// connected to.
pub fn problem(
    error: &mysql_async::Error,
    tls: &TlsConfig,
    address: &str,
    host: &str,
) -> Option<String> {
    let key = tls.key();
    let server = format!("the database server {address}");
    if let mysql_async::Error::Server(e) = error {
        let insecure = e.code == SECURE_TRANSPORT_REQUIRED
            || e.message.contains("require_secure_transport")
            || e.message
                .to_ascii_lowercase()
                .contains("insecure transport");
        if insecure {
            return Some(format!(
                "{server} requires TLS (require_secure_transport=ON: \"{}\") but {key}.mode is {}: \
                 set {key}.mode = \"verify_identity\" (with {key}.ca_file when the server's CA is \
                 not a public one; see the README, \"TLS\")",
                e.message,
                tls.describe()
            ));
        }
        return None;
    }
    if let mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) = error {
        return Some(format!(
            "{server} does not offer TLS, but {key}.mode is {}: turn TLS on in the server \
             (ssl_cert and ssl_key) or, on a trusted network only, set {key}.mode = \"disabled\"",
            tls.mode()
        ));
    }
    if let mysql_async::Error::Io(mysql_async::IoError::Tls(
        mysql_async::TlsError::InvalidDnsName(_),
    )) = error
    {
        return Some(format!(
            "`{host}` cannot be checked against a certificate (not a valid DNS name or IP \
             address): fix the host, or set {key}.mode = \"required\""
        ));
    }
    let rustls_error = tls_error(error)?;
    if tls.mode() == TlsMode::VerifyCa {
        if let Some(names) = diagnosis::presented_names(rustls_error) {
            if names.iter().all(|n| usable_name(n).is_none()) {
                return Some(format!(
                    "the certificate of {server} carries no subjectAltName name to check it \
                     against, which {key}.mode = \"verify_ca\" needs here (only subjectAltName \
                     names are read, never the common name): give the server a certificate with \
                     a subjectAltName, or set {key}.mode = \"required\" (encrypted, unverified)"
                ));
            }
        }
    }
    Some(diagnosis::explain(rustls_error, &server, host, tls))
}

/// [`problem`], and one more case: MariaDB answers a plaintext login on a server with
/// `require_secure_transport=ON` with "Access denied" (1045), as it does for a user created
/// `REQUIRE SSL`, never with 3159. When that happens with TLS disabled, one more connection is
/// made to the same address with TLS (encrypted, unverified): if the server accepts the same
/// user there, it wants TLS, and the answer says so. `opts` are the refused connection's.
pub async fn diagnose(
    error: &mysql_async::Error,
    opts: mysql_async::Opts,
    tls: &TlsConfig,
    address: &str,
    host: &str,
) -> Option<String> {
    if let Some(problem) = problem(error, tls, address, host) {
        return Some(problem);
    }
    let mysql_async::Error::Server(refusal) = error else {
        return None;
    };
    if refusal.code != 1045 || tls.mode().encrypts() {
        return None;
    }
    let probe = OptsBuilder::from_opts(opts)
        .ssl_opts(SslOpts::default().with_danger_accept_invalid_certs(true));
    let connect = mysql_async::Conn::new(probe);
    let mut conn = tokio::time::timeout(PROBE_TIMEOUT, connect)
        .await
        .ok()?
        .ok()?;
    let secure_transport: Option<String> = conn
        .query_first("SELECT IF(@@GLOBAL.require_secure_transport, 'ON', 'OFF')")
        .await
        .ok()
        .flatten();
    let _ = conn.disconnect().await;
    let why = match secure_transport.as_deref() {
        Some("ON") => "the server has require_secure_transport=ON",
        _ => "the user is created with REQUIRE SSL",
    };
    let key = tls.key();
    Some(format!(
        "the database server {address} requires TLS: it refused the plaintext login (\"{}\") but \
         accepts the same user over TLS ({why}), and {key}.mode is {}: set {key}.mode = \
         \"verify_identity\" (with {key}.ca_file when the server's CA is not a public one; see \
         the README, \"TLS\")",
        refusal.message,
        tls.describe()
    ))
}

/// What else than a wrong password can make a server answer "Access denied" with these
/// settings, as a clause to append to that message (empty when nothing).
pub fn access_denied_hint(tls: &TlsConfig) -> String {
    let key = tls.key();
    if !tls.mode().encrypts() {
        format!(
            "; a user created REQUIRE SSL or REQUIRE X509 is refused the same way over plaintext \
             ({key}.mode is {})",
            tls.describe()
        )
    } else if tls.identity().is_none() {
        format!(
            "; a user created REQUIRE X509 (or REQUIRE SUBJECT/ISSUER) also needs a client \
             certificate: {key}.cert_file and {key}.key_file"
        )
    } else {
        "; for a user created REQUIRE SUBJECT or ISSUER, check that the client certificate \
         (cert_file) is the one it names"
            .to_string()
    }
}

/// How long the TLS probe of [`diagnose`] may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn disabled_sets_no_tls_and_other_modes_require_it() {
        let mut tls = TlsConfig::default();
        tls.resolve_database("source.tls", "127.0.0.1", Path::new("."))
            .unwrap();
        assert!(ssl_opts(&tls).is_none());
        let mut tls = TlsConfig::with_mode(TlsMode::Required);
        tls.resolve_database("source.tls", "db", Path::new("."))
            .unwrap();
        let opts = ssl_opts(&tls).expect("TLS");
        assert!(opts.accept_invalid_certs());
        let mut tls = TlsConfig::default();
        tls.resolve_database("source.tls", "db.example.com", Path::new("."))
            .unwrap();
        let opts = ssl_opts(&tls).expect("TLS");
        assert!(!opts.accept_invalid_certs());
        assert!(!opts.disable_built_in_roots());
        assert_eq!(opts.tls_hostname_override(), None);
    }

    #[test]
    fn wildcard_names_become_a_name_they_cover() {
        assert_eq!(
            usable_name("*.example.com").as_deref(),
            Some("any.example.com")
        );
        assert_eq!(usable_name("10.0.0.5").as_deref(), Some("10.0.0.5"));
        assert_eq!(usable_name("db.internal").as_deref(), Some("db.internal"));
        assert_eq!(usable_name("not a name"), None);
    }

    #[test]
    fn secure_transport_errors_name_the_section() {
        let mut tls = TlsConfig::default();
        tls.resolve_database("source.tls", "127.0.0.1", Path::new("."))
            .unwrap();
        let error = mysql_async::Error::Server(mysql_async::ServerError {
            code: 3159,
            message: "Connections using insecure transport are prohibited while \
                      --require_secure_transport=ON."
                .into(),
            state: "08004".into(),
        });
        let text = problem(&error, &tls, "127.0.0.1:3306", "127.0.0.1").expect("a TLS problem");
        assert!(text.contains("source.tls.mode"), "{text}");
        assert!(text.contains("requires TLS"), "{text}");
        let other = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1045,
            message: "Access denied".into(),
            state: "28000".into(),
        });
        assert!(problem(&other, &tls, "127.0.0.1:3306", "127.0.0.1").is_none());
    }
}
