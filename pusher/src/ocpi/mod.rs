//! OCPI transport: talking to a partner's OCPI API.
//!
//! - [`classify`]: what an answer means (success, transient, rejected, partner-level);
//! - [`client`]: one HTTP client per partner, with the headers of its OCPI version;
//! - [`discovery`]: from the partner's versions URL to its module endpoint URLs;
//! - [`objects`]: the pre-send check of a body against the OCPI object definitions of its version.

pub mod classify;
pub mod client;
pub mod discovery;
pub mod objects;

use std::fmt;
use std::str::FromStr;

pub use classify::{classify, refused_as_unknown, Outcome};
pub use client::{join_url, ClientConfig, OcpiClient, OcpiError, TokenEncoding};
pub use discovery::{discover, DiscoveryError, Endpoints};
/// The HTTP method type [`OcpiClient::send`] takes.
pub use reqwest::Method;

/// The OCPI versions this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OcpiVersion {
    /// OCPI 2.1.1: plain token, no request/correlation ids, no routing headers, no roles.
    V211,
    /// OCPI 2.2.1: request/correlation ids, routing headers, SENDER/RECEIVER roles.
    V221,
    /// OCPI 2.3.0: the transport of 2.2.1 (same headers and roles); new object fields (taxes in
    /// every price, parking, ...).
    V230,
}

impl OcpiVersion {
    /// Every version, oldest first.
    pub const ALL: [OcpiVersion; 3] = [OcpiVersion::V211, OcpiVersion::V221, OcpiVersion::V230];

    /// The version string as OCPI writes it: "2.1.1", "2.2.1" or "2.3.0".
    pub fn as_str(self) -> &'static str {
        match self {
            OcpiVersion::V211 => "2.1.1",
            OcpiVersion::V221 => "2.2.1",
            OcpiVersion::V230 => "2.3.0",
        }
    }

    /// True for 2.2.1 and later: request and correlation ids, the four routing headers,
    /// SENDER/RECEIVER endpoint roles, objects that carry `country_code` and `party_id`.
    pub fn has_221_transport(self) -> bool {
        self != OcpiVersion::V211
    }
}

impl fmt::Display for OcpiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OcpiVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "2.1.1" => Ok(OcpiVersion::V211),
            "2.2.1" => Ok(OcpiVersion::V221),
            "2.3.0" => Ok(OcpiVersion::V230),
            other => Err(format!(
                "unsupported OCPI version {other:?}: use \"2.1.1\", \"2.2.1\" or \"2.3.0\""
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_through_their_ocpi_strings() {
        for v in OcpiVersion::ALL {
            assert_eq!(v.as_str().parse::<OcpiVersion>().unwrap(), v);
            assert_eq!(v.to_string(), v.as_str());
        }
        let err = "2.2".parse::<OcpiVersion>().unwrap_err();
        assert!(err.contains("\"2.2\"") && err.contains("2.2.1"), "{err}");
    }
}
