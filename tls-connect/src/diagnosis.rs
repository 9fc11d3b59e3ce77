//! What a failed TLS handshake means for the person who configured it: each rustls error a
//! user can meet, turned into a sentence that names the option to change.

use rustls::{CertificateError, Error};

use crate::verifier::is_name_mismatch;
use crate::TlsConfig;

/// The rustls error inside an I/O error (how tokio-rustls and futures-rustls report a failed
/// handshake), if there is one.
pub(crate) fn rustls_error(error: &std::io::Error) -> Option<&Error> {
    error.get_ref()?.downcast_ref::<Error>()
}

/// The DNS names and IP addresses a certificate carries, when `error` says it does not name
/// the host.
pub(crate) fn presented_names(error: &Error) -> Option<Vec<String>> {
    match error {
        Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            presented, ..
        }) => Some(presented.iter().filter_map(|p| name_of(p)).collect()),
        _ => None,
    }
}

/// `DnsName("db.example.com")` -> `db.example.com`, `IpAddress(10.0.0.5)` -> `10.0.0.5` (how
/// webpki lists a certificate's subjectAltName entries); other kinds of names -> `None`.
fn name_of(presented: &str) -> Option<String> {
    if let Some(rest) = presented.strip_prefix("DnsName(\"") {
        return rest.strip_suffix("\")").map(str::to_string);
    }
    presented
        .strip_prefix("IpAddress(")?
        .strip_suffix(')')
        .map(str::to_string)
}

/// One sentence on a failed handshake with `server` (`the database server 10.0.0.5:3306`),
/// whose section is `tls` (the key it names) and whose host is `host`.
pub(crate) fn explain(error: &Error, server: &str, host: &str, tls: &TlsConfig) -> String {
    let key = tls.key();
    let trusted = match tls.ca() {
        Some(ca) => format!("the CA file {key}.ca_file ({})", ca.path.display()),
        None => "the bundled public roots (no ca_file is set)".to_string(),
    };
    match error {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "the certificate of {server} is not signed by a CA it trusts, {trusted}: set \
             {key}.ca_file to the PEM file of the CA that signed the server's certificate (a \
             managed service publishes its CA bundle; see the README, \"TLS\")"
        ),
        e if is_name_mismatch(e) => {
            let names = match presented_names(e) {
                Some(names) if names.is_empty() => "no DNS name or IP address".to_string(),
                Some(names) => format!("only {}", names.join(", ")),
                None => "other names".to_string(),
            };
            format!(
                "the certificate of {server} is signed by a trusted CA but is not valid for the \
                 host name `{host}` (it names {names}): connect with a host name the certificate \
                 carries, or set {key}.mode = \"verify_ca\" to check the CA only"
            )
        }
        Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => format!(
            "the certificate of {server} is outside its validity period ({error}): renew the \
             server's certificate, or check this machine's clock"
        ),
        Error::InvalidCertificate(other) => format!(
            "the certificate of {server} was refused ({other:?}), checked against {trusted}: fix \
             the server's certificate or {key}.ca_file"
        ),
        Error::AlertReceived(rustls::AlertDescription::CertificateRequired)
            if tls.identity().is_none() =>
        {
            format!(
                "{server} requires a client certificate and none is configured: set \
                 {key}.cert_file and {key}.key_file to a PEM certificate and key signed by a CA \
                 the server trusts"
            )
        }
        Error::AlertReceived(alert) => format!(
            "{server} ended the TLS handshake ({alert:?}): if it requires a client certificate, \
             set {key}.cert_file and {key}.key_file to one its CA signed; otherwise compare the \
             server's TLS versions and ciphers with TLS 1.2/1.3"
        ),
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => format!(
            "{server} did not answer in TLS ({error}): is the port its TLS port, and is TLS on \
             there?"
        ),
        other => format!("TLS with {server} failed ({other}): check {key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webpki_name_listings_give_the_names() {
        assert_eq!(
            name_of("DnsName(\"db.example.com\")").as_deref(),
            Some("db.example.com")
        );
        assert_eq!(name_of("IpAddress(10.0.0.5)").as_deref(), Some("10.0.0.5"));
        assert_eq!(name_of("UniformResourceIdentifier(\"x\")"), None);
    }
}
