//! The verification choices, named as MySQL clients name them (`--ssl-mode`).

use serde::Deserialize;

/// How much of the server's identity a connection checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// No TLS: plaintext on the wire.
    Disabled,
    /// Encrypted, but any certificate is accepted (no protection against an impostor).
    Required,
    /// Encrypted; the certificate must chain to a trusted CA, whatever names it carries.
    VerifyCa,
    /// Encrypted; the certificate must chain to a trusted CA and name the host connected to.
    VerifyIdentity,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Required => "required",
            TlsMode::VerifyCa => "verify_ca",
            TlsMode::VerifyIdentity => "verify_identity",
        }
    }

    /// True unless the connection is plaintext.
    pub fn encrypts(self) -> bool {
        self != TlsMode::Disabled
    }

    /// True when the server's certificate is checked against trusted CAs.
    pub fn verifies(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyIdentity)
    }
}

impl std::fmt::Display for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
