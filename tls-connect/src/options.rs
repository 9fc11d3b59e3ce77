//! The `[source.tls]`, `[database.tls]` and `[broker.tls]` sections: parsed with the rest of a
//! configuration, then resolved against the host or URL they secure. Resolving picks the mode
//! (the configured one, or the default), reads the CA, certificate and key files and checks
//! that they hold what they should, so that a connection made hours later cannot fail on a
//! file that was missing from the start.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::TlsMode;

/// A `[*.tls]` option that cannot be used, named by its full key (`source.tls.ca_file`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("key `{key}`: {message}")]
pub struct TlsConfigError {
    pub key: String,
    pub message: String,
}

/// Why a connection uses the mode it uses (said in the start-up log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeChoice {
    /// `mode` is set in the file.
    Configured,
    /// `mode` is not set: verify_identity (or, for the broker, what the URL's scheme says).
    Default,
    /// `mode` is not set and the host is a loopback address: disabled.
    LoopbackDefault,
}

/// One `[*.tls]` section. [`TlsConfig::default`] is plaintext (mode disabled, no files); the
/// binaries resolve the section when their configuration loads.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    mode: Option<TlsMode>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    cert_file: Option<PathBuf>,
    #[serde(default)]
    key_file: Option<PathBuf>,
    #[serde(skip)]
    resolved: Option<Arc<Resolved>>,
}

/// What resolving found; shared by every clone of the configuration.
struct Resolved {
    key: String,
    mode: TlsMode,
    choice: ModeChoice,
    ca: Option<CaFile>,
    identity: Option<Identity>,
    /// verify_ca only: the name the server's certificate carries, learned from the server's
    /// first handshake (see [`crate::database`]).
    learned_name: Mutex<Option<String>>,
}

/// The CA certificates of `ca_file`: they replace the bundled public roots.
pub(crate) struct CaFile {
    pub(crate) path: PathBuf,
    pub(crate) pem: Vec<u8>,
    pub(crate) certs: Vec<CertificateDer<'static>>,
}

/// `cert_file` and `key_file`: the client certificate shown to servers that ask for one.
pub(crate) struct Identity {
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
    pub(crate) certs: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

impl TlsConfig {
    /// A section with the given mode and no files, as if read from a file (for callers that
    /// build configurations in code).
    pub fn with_mode(mode: TlsMode) -> TlsConfig {
        TlsConfig {
            mode: Some(mode),
            ..TlsConfig::default()
        }
    }

    /// Resolves a database connection's section: `key` is its name in the file
    /// (`source.tls`), `host` the server it secures, `base` the directory relative file
    /// names start from. Without `mode`, a loopback host is `disabled`, any other
    /// `verify_identity`.
    pub fn resolve_database(
        &mut self,
        key: &str,
        host: &str,
        base: &Path,
    ) -> Result<(), TlsConfigError> {
        let (mode, choice) = match self.mode {
            Some(mode) => (mode, ModeChoice::Configured),
            None if is_loopback(host) => (TlsMode::Disabled, ModeChoice::LoopbackDefault),
            None => (TlsMode::VerifyIdentity, ModeChoice::Default),
        };
        self.resolve(key, mode, choice, base)
    }

    /// Resolves a broker connection's section. The URL's scheme says whether TLS is used:
    /// `amqp://` is plaintext (no option may be set), `amqps://` is TLS with `mode` (default
    /// `verify_identity`; `disabled` is refused).
    pub fn resolve_broker(
        &mut self,
        key: &str,
        amqps: bool,
        base: &Path,
    ) -> Result<(), TlsConfigError> {
        let invalid = |field: &str, message: String| TlsConfigError {
            key: format!("{key}.{field}"),
            message,
        };
        let (mode, choice) =
            match (amqps, self.mode) {
                (false, None | Some(TlsMode::Disabled)) => (TlsMode::Disabled, ModeChoice::Default),
                (false, Some(mode)) => {
                    return Err(invalid(
                        "mode",
                        format!(
                        "is {mode}, but the broker URL is amqp:// (plaintext): use an amqps:// \
                         URL (RabbitMQ's TLS port is usually 5671) or remove the mode"
                    ),
                    ))
                }
                (true, Some(TlsMode::Disabled)) => return Err(invalid(
                    "mode",
                    "is disabled, but an amqps:// broker URL always uses TLS: use an amqp:// URL \
                     for plaintext, or set mode to required, verify_ca or verify_identity"
                        .into(),
                )),
                (true, Some(mode)) => (mode, ModeChoice::Configured),
                (true, None) => (TlsMode::VerifyIdentity, ModeChoice::Default),
            };
        self.resolve(key, mode, choice, base)
    }

    fn resolve(
        &mut self,
        key: &str,
        mode: TlsMode,
        choice: ModeChoice,
        base: &Path,
    ) -> Result<(), TlsConfigError> {
        let invalid = |field: &str, message: String| TlsConfigError {
            key: format!("{key}.{field}"),
            message,
        };
        let files = [
            ("ca_file", &self.ca_file),
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
        ];
        if !mode.encrypts() {
            if let Some((field, _)) = files.iter().find(|(_, f)| f.is_some()) {
                let why = match choice {
                    ModeChoice::LoopbackDefault => {
                        " (the default for a loopback host; set mode to use TLS there)"
                    }
                    _ => "",
                };
                return Err(invalid(
                    field,
                    format!(
                        "is set, but the connection does not use TLS: mode is disabled{why}; \
                         set {key}.mode, or remove {field}"
                    ),
                ));
            }
        }
        if mode == TlsMode::Required && self.ca_file.is_some() {
            return Err(invalid(
                "ca_file",
                "is only used to verify the server's certificate, which mode = \"required\" \
                 does not do: set mode = \"verify_ca\" or \"verify_identity\", or remove ca_file"
                    .into(),
            ));
        }
        let ca = match &self.ca_file {
            None => None,
            Some(path) => {
                let path = base.join(path);
                let pem = read(&path).map_err(|m| invalid("ca_file", m))?;
                let certs = certificates(&pem)
                    .map_err(|m| invalid("ca_file", format!("{}: {m}", path.display())))?;
                Some(CaFile { path, pem, certs })
            }
        };
        let identity = match (&self.cert_file, &self.key_file) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "key_file",
                    format!(
                    "must be set with {key}.cert_file: the private key of the client certificate"
                ),
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "cert_file",
                    format!("must be set with {key}.key_file: the client certificate of that key"),
                ))
            }
            (Some(cert), Some(key_path)) => {
                let cert = base.join(cert);
                let key_path = base.join(key_path);
                let cert_pem = read(&cert).map_err(|m| invalid("cert_file", m))?;
                let certs = certificates(&cert_pem)
                    .map_err(|m| invalid("cert_file", format!("{}: {m}", cert.display())))?;
                let key_pem = read(&key_path).map_err(|m| invalid("key_file", m))?;
                let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                    invalid(
                        "key_file",
                        format!(
                            "{}: no private key in PEM form (PKCS#8 \"PRIVATE KEY\", PKCS#1 \
                             \"RSA PRIVATE KEY\" or SEC1 \"EC PRIVATE KEY\"): {e}",
                            key_path.display()
                        ),
                    )
                })?;
                Some(Identity {
                    cert_pem,
                    key_pem,
                    certs,
                    key: private,
                })
            }
        };
        self.resolved = Some(Arc::new(Resolved {
            key: key.to_string(),
            mode,
            choice,
            ca,
            identity,
            learned_name: Mutex::new(None),
        }));
        Ok(())
    }

    /// The mode in use (the configured one before resolving).
    pub fn mode(&self) -> TlsMode {
        match &self.resolved {
            Some(r) => r.mode,
            None => self.mode.unwrap_or(TlsMode::Disabled),
        }
    }

    /// Why [`TlsConfig::mode`] is what it is.
    pub fn choice(&self) -> ModeChoice {
        match &self.resolved {
            Some(r) => r.choice,
            None if self.mode.is_some() => ModeChoice::Configured,
            None => ModeChoice::Default,
        }
    }

    /// The section's name in the file (`source.tls`), for messages.
    pub fn key(&self) -> &str {
        self.resolved.as_ref().map_or("tls", |r| r.key.as_str())
    }

    /// The mode and where it comes from, for the start-up log: `verify_identity (the
    /// default)`, `disabled (the default for a loopback host)`, `verify_ca (configured)`.
    pub fn describe(&self) -> String {
        let why = match self.choice() {
            ModeChoice::Configured => "configured",
            ModeChoice::Default => "the default",
            ModeChoice::LoopbackDefault => "the default for a loopback host",
        };
        let trust = match (self.mode().verifies(), self.ca()) {
            (false, _) => String::new(),
            (true, Some(ca)) => format!(", trusting the CA file {}", ca.path.display()),
            (true, None) => ", trusting the bundled public roots".to_string(),
        };
        let client = if self.identity().is_some() {
            ", with a client certificate"
        } else {
            ""
        };
        format!("{} ({why}){trust}{client}", self.mode())
    }

    pub(crate) fn ca(&self) -> Option<&CaFile> {
        self.resolved.as_ref().and_then(|r| r.ca.as_ref())
    }

    pub(crate) fn identity(&self) -> Option<&Identity> {
        self.resolved.as_ref().and_then(|r| r.identity.as_ref())
    }

    /// The certificate name learned in verify_ca mode, if any.
    pub(crate) fn learned_name(&self) -> Option<String> {
        let resolved = self.resolved.as_ref()?;
        resolved.learned_name.lock().ok()?.clone()
    }

    /// Remembers the name later connections check the certificate against (verify_ca).
    pub(crate) fn learn_name(&self, name: String) {
        if let Some(resolved) = &self.resolved {
            if let Ok(mut learned) = resolved.learned_name.lock() {
                *learned = Some(name);
            }
        }
    }
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("mode", &self.mode())
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl PartialEq for TlsConfig {
    fn eq(&self, other: &Self) -> bool {
        self.mode() == other.mode()
            && self.ca_file == other.ca_file
            && self.cert_file == other.cert_file
            && self.key_file == other.key_file
    }
}

impl Eq for TlsConfig {}

/// `localhost`, 127.0.0.0/8 and ::1: a connection that never leaves the machine.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err(
            "holds no certificate: expected PEM blocks \"-----BEGIN CERTIFICATE-----\"".into(),
        );
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> TlsConfig {
        toml::from_str(text).expect("a [*.tls] section")
    }

    #[test]
    fn the_default_mode_is_verify_identity_except_on_loopback() {
        let base = Path::new(".");
        let mut remote = TlsConfig::default();
        remote
            .resolve_database("source.tls", "db.example.com", base)
            .unwrap();
        assert_eq!(remote.mode(), TlsMode::VerifyIdentity);
        assert_eq!(remote.choice(), ModeChoice::Default);
        for host in ["127.0.0.1", "localhost", "::1", "127.0.0.2"] {
            let mut local = TlsConfig::default();
            local.resolve_database("source.tls", host, base).unwrap();
            assert_eq!(local.mode(), TlsMode::Disabled, "{host}");
            assert_eq!(local.choice(), ModeChoice::LoopbackDefault);
            assert!(
                local.describe().contains("loopback"),
                "{}",
                local.describe()
            );
        }
        let mut configured = section("mode = \"required\"");
        configured
            .resolve_database("source.tls", "127.0.0.1", base)
            .unwrap();
        assert_eq!(configured.mode(), TlsMode::Required);
    }

    #[test]
    fn files_without_tls_and_half_identities_are_refused_with_their_key() {
        let base = Path::new(".");
        let err = section("ca_file = \"ca.pem\"")
            .resolve_database("source.tls", "127.0.0.1", base)
            .unwrap_err();
        assert_eq!(err.key, "source.tls.ca_file");
        assert!(err.to_string().contains("loopback"), "{err}");
        let err = section("mode = \"required\"\nca_file = \"ca.pem\"")
            .resolve_database("database.tls", "db", base)
            .unwrap_err();
        assert_eq!(err.key, "database.tls.ca_file");
        let err = section("cert_file = \"c.pem\"")
            .resolve_database("source.tls", "db", base)
            .unwrap_err();
        assert_eq!(err.key, "source.tls.key_file");
    }

    #[test]
    fn missing_or_empty_files_are_refused_when_the_config_loads() {
        let dir = std::env::temp_dir().join(format!("tls-connect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("empty.pem"), "not a certificate\n").unwrap();
        let err = section("ca_file = \"missing.pem\"")
            .resolve_database("source.tls", "db", &dir)
            .unwrap_err();
        assert!(err.message.contains("cannot read"), "{err}");
        assert!(err.message.contains("missing.pem"), "{err}");
        let err = section("ca_file = \"empty.pem\"")
            .resolve_database("source.tls", "db", &dir)
            .unwrap_err();
        assert!(err.message.contains("holds no certificate"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_broker_scheme_decides_whether_tls_is_used() {
        let base = Path::new(".");
        let mut plain = TlsConfig::default();
        plain.resolve_broker("broker.tls", false, base).unwrap();
        assert_eq!(plain.mode(), TlsMode::Disabled);
        let mut tls = TlsConfig::default();
        tls.resolve_broker("broker.tls", true, base).unwrap();
        assert_eq!(tls.mode(), TlsMode::VerifyIdentity);
        let err = section("mode = \"verify_ca\"")
            .resolve_broker("broker.tls", false, base)
            .unwrap_err();
        assert!(err.message.contains("amqps://"), "{err}");
        let err = section("mode = \"disabled\"")
            .resolve_broker("broker.tls", true, base)
            .unwrap_err();
        assert!(err.message.contains("amqp://"), "{err}");
        let err = section("ca_file = \"ca.pem\"")
            .resolve_broker("broker.tls", false, base)
            .unwrap_err();
        assert_eq!(err.key, "broker.tls.ca_file");
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "localhost",
            "LOCALHOST.",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["db.example.com", "10.0.0.1", "localhost.example.com", "::2"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
