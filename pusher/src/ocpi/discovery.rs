//! Endpoint discovery: from a partner's versions URL to the URL of each module we push to.
//!
//! `GET {versions_url}` answers `data: [{version, url}]`; the wanted version's `url` answers
//! `data: {version, endpoints: [{identifier, role, url}]}`. OCPI 2.2.1 endpoints carry a role:
//! a pusher sends to the partner's RECEIVER endpoints only. 2.1.1 endpoints have no role, so all
//! are kept.
//!
//! Version matching is exact ("2.2.1" is not "2.2", "2.1.1" is not "2.1"): the protocols differ
//! in fields and headers, so guessing would produce requests the partner rejects later and less
//! clearly. When the wanted version is missing, the error names what the partner offers and the
//! setting to change.

use std::collections::HashMap;

use serde_json::Value;

use super::client::{OcpiClient, OcpiError};
use super::{OcpiVersion, Outcome};

/// The module endpoints of one partner for one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The version the endpoints belong to.
    pub version: OcpiVersion,
    /// The version details URL they were read from.
    pub details_url: String,
    /// Module identifier (lower-case, e.g. "locations", "cdrs") to the endpoint URL, exactly as
    /// the partner published it (trailing slash included). For 2.2.1: RECEIVER endpoints only.
    pub by_module: HashMap<String, String>,
}

impl Endpoints {
    /// The endpoint URL of a module, when the partner has one.
    pub fn url(&self, module: &str) -> Option<&str> {
        self.by_module
            .get(&module.trim().to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The endpoint URL of a module, or an error saying the partner has none and what it has.
    pub fn require(&self, module: &str) -> Result<&str, DiscoveryError> {
        self.url(module).ok_or_else(|| {
            let mut listed: Vec<&str> = self.by_module.keys().map(String::as_str).collect();
            listed.sort_unstable();
            DiscoveryError::ModuleMissing {
                url: self.details_url.clone(),
                module: module.to_string(),
                role: receiver_word(self.version),
                listed: listed.join(", "),
            }
        })
    }
}

fn receiver_word(version: OcpiVersion) -> &'static str {
    match version {
        OcpiVersion::V221 | OcpiVersion::V230 => "RECEIVER ",
        OcpiVersion::V211 => "",
    }
}

/// Why discovery failed: which URL, what was wrong, what to do.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// A GET did not succeed (unreachable, refused, not an OCPI answer, error status).
    #[error("OCPI discovery: reading the {what} at {url} failed: {source}; {hint}")]
    Request {
        /// "versions list" or "version details".
        what: &'static str,
        /// The URL asked for.
        url: String,
        /// The failure, with its classified outcome.
        source: Box<OcpiError>,
        /// What to check.
        hint: &'static str,
    },
    /// The answer was an OCPI success but its data is not what the spec says.
    #[error("OCPI discovery: the {what} at {url} is malformed: {problem}")]
    Malformed {
        /// "versions list" or "version details".
        what: &'static str,
        /// The URL asked for.
        url: String,
        /// What is wrong, in words.
        problem: String,
    },
    /// The partner does not list the wanted version.
    #[error("OCPI discovery: partner does not offer version {wanted} (its versions list at {url} offers {offered}): {fix}")]
    VersionNotOffered {
        /// The versions URL.
        url: String,
        /// The version we asked for.
        wanted: OcpiVersion,
        /// What the partner lists, comma-separated ("nothing" when empty).
        offered: String,
        /// What to change.
        fix: String,
    },
    /// The version details list no endpoint we could push to.
    #[error("OCPI discovery: the version details at {url} list no {role}endpoints{detail}")]
    NoEndpoints {
        /// The version details URL.
        url: String,
        /// "RECEIVER " for 2.2.1, empty for 2.1.1.
        role: &'static str,
        /// More about what was there.
        detail: String,
    },
    /// Behind an `https://` versions URL, the partner lists a plain `http://` URL: every
    /// request to it would carry the token unencrypted.
    #[error("OCPI discovery: the partner's versions URL {versions_url} is https://, but it lists {what} at {url}, plain http:// (the token would travel unencrypted); ask the partner to fix its {what}, or set allow_http_endpoints = true for this partner if that is intended")]
    PlainHttp {
        versions_url: String,
        /// "version details URL" or "the <module> endpoint".
        what: String,
        url: String,
    },
    /// A module we need is not among the partner's endpoints.
    #[error("OCPI discovery: the partner publishes no {role}endpoint for module {module:?} (version details at {url} list: {listed}); ask the partner to enable it or stop pushing that module to it")]
    ModuleMissing {
        /// The version details URL.
        url: String,
        /// The module asked for.
        module: String,
        /// "RECEIVER " for 2.2.1, empty for 2.1.1.
        role: &'static str,
        /// The modules that are there.
        listed: String,
    },
}

impl DiscoveryError {
    /// True when trying again later may succeed (network trouble, partner overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            DiscoveryError::Request { source, .. } => matches!(
                **source,
                OcpiError::Request {
                    outcome: Outcome::Transient { .. },
                    ..
                }
            ),
            _ => false,
        }
    }
}

/// Finds the partner's module endpoints for `wanted`, starting from its versions URL.
///
/// Behind an `https://` versions URL, a plain `http://` details URL or endpoint is refused
/// unless `allow_http` ([`DiscoveryError::PlainHttp`]).
pub async fn discover(
    client: &OcpiClient,
    versions_url: &str,
    wanted: OcpiVersion,
    allow_http: bool,
) -> Result<Endpoints, DiscoveryError> {
    const VERSIONS: &str = "versions list";
    const DETAILS: &str = "version details";
    let versions = client
        .get_json(versions_url)
        .await
        .map_err(|e| request_error(VERSIONS, versions_url, e))?;
    let details_url = pick_version(versions_url, &versions, wanted)?;
    if !allow_http {
        refuse_plain_http(versions_url, "version details URL", &details_url)?;
    }
    let details = client
        .get_json(&details_url)
        .await
        .map_err(|e| request_error(DETAILS, &details_url, e))?;
    let by_module = parse_endpoints(&details_url, &details, wanted)?;
    if !allow_http {
        let mut modules: Vec<(&String, &String)> = by_module.iter().collect();
        modules.sort();
        for (module, url) in modules {
            refuse_plain_http(versions_url, &format!("the {module} endpoint"), url)?;
        }
    }
    Ok(Endpoints {
        version: wanted,
        details_url,
        by_module,
    })
}

/// [`DiscoveryError::PlainHttp`] when `url` is `http://` behind an `https://` versions URL.
fn refuse_plain_http(versions_url: &str, what: &str, url: &str) -> Result<(), DiscoveryError> {
    let scheme = |u: &str| reqwest::Url::parse(u).map(|p| p.scheme().to_string()).ok();
    if scheme(versions_url).as_deref() == Some("https") && scheme(url).as_deref() == Some("http") {
        return Err(DiscoveryError::PlainHttp {
            versions_url: versions_url.to_string(),
            what: what.to_string(),
            url: url.to_string(),
        });
    }
    Ok(())
}

fn request_error(what: &'static str, url: &str, source: OcpiError) -> DiscoveryError {
    let hint = match &source {
        OcpiError::Request {
            outcome: Outcome::PartnerLevel { .. },
            ..
        } => "check the partner's token and token_encoding (and the URL)",
        OcpiError::Request {
            outcome: Outcome::Transient { .. },
            ..
        } => "the partner is unreachable or failing: discovery can be retried later; if it persists, check the URL and the network",
        _ => "check that the URL is the partner's OCPI versions URL",
    };
    DiscoveryError::Request {
        what,
        url: url.to_string(),
        source: Box::new(source),
        hint,
    }
}

/// The version details URL of `wanted` in a versions list (`data` of the versions endpoint).
pub fn pick_version(
    versions_url: &str,
    data: &Value,
    wanted: OcpiVersion,
) -> Result<String, DiscoveryError> {
    const WHAT: &str = "versions list";
    let malformed = |problem: String| DiscoveryError::Malformed {
        what: WHAT,
        url: versions_url.to_string(),
        problem,
    };
    let Value::Array(entries) = data else {
        return Err(malformed(format!(
            "data should be a list of {{version, url}} but is {}",
            json_kind(data)
        )));
    };
    let mut offered = Vec::new();
    for entry in entries {
        let Some(version) = entry.get("version").and_then(Value::as_str) else {
            continue;
        };
        let version = version.trim();
        if version != wanted.as_str() {
            offered.push(version.to_string());
            continue;
        }
        let url = entry
            .get("url")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("");
        check_absolute_url(url)
            .map_err(|why| malformed(format!("the url of version {wanted} is {url:?}: {why}")))?;
        return Ok(url.to_string());
    }
    let fix = match offered.iter().find_map(|v| v.parse::<OcpiVersion>().ok()) {
        Some(other) => format!("set ocpi_version = \"{other}\" for this partner"),
        None => "this pusher speaks OCPI 2.1.1, 2.2.1 and 2.3.0 only, matched exactly (\"2.2\" is \
                 not \"2.2.1\"): ask the partner to offer one of them"
            .to_string(),
    };
    Err(DiscoveryError::VersionNotOffered {
        url: versions_url.to_string(),
        wanted,
        offered: if offered.is_empty() {
            "nothing".to_string()
        } else {
            offered.join(", ")
        },
        fix,
    })
}

/// Module identifier to URL from version details (`data` of the version details endpoint):
/// RECEIVER endpoints only for 2.2.1, all for 2.1.1. The first entry of a module wins.
pub fn parse_endpoints(
    details_url: &str,
    data: &Value,
    version: OcpiVersion,
) -> Result<HashMap<String, String>, DiscoveryError> {
    const WHAT: &str = "version details";
    let malformed = |problem: String| DiscoveryError::Malformed {
        what: WHAT,
        url: details_url.to_string(),
        problem,
    };
    let Some(endpoints) = data.get("endpoints") else {
        return Err(malformed(format!(
            "data should be an object {{version, endpoints}} but {}",
            match data {
                Value::Object(_) => "has no \"endpoints\"".to_string(),
                other => format!("is {}", json_kind(other)),
            }
        )));
    };
    let Value::Array(endpoints) = endpoints else {
        return Err(malformed(format!(
            "\"endpoints\" should be a list but is {}",
            json_kind(endpoints)
        )));
    };
    match data.get("version").and_then(Value::as_str).map(str::trim) {
        Some(v) if v == version.as_str() => {}
        other => tracing::warn!(
            url = details_url,
            expected = version.as_str(),
            found = ?other,
            "OCPI version details name another version than the one they were listed for; using them anyway"
        ),
    }
    let mut by_module = HashMap::new();
    let mut without_role = 0usize;
    let mut other_roles = Vec::new();
    for endpoint in endpoints {
        let Some(identifier) = endpoint.get("identifier").and_then(Value::as_str) else {
            continue;
        };
        let identifier = identifier.trim().to_ascii_lowercase();
        if version.has_221_transport() {
            match endpoint.get("role").and_then(Value::as_str).map(str::trim) {
                Some(role) if role.eq_ignore_ascii_case("RECEIVER") => {}
                Some(role) => {
                    other_roles.push(format!("{identifier} ({role})"));
                    continue;
                }
                None => {
                    without_role += 1;
                    continue;
                }
            }
        }
        let url = endpoint
            .get("url")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("");
        check_absolute_url(url).map_err(|why| {
            malformed(format!(
                "the url of module {identifier:?} is {url:?}: {why}"
            ))
        })?;
        if by_module.contains_key(&identifier) {
            tracing::warn!(
                url = details_url,
                module = identifier,
                "OCPI version details list a module twice; using the first"
            );
            continue;
        }
        by_module.insert(identifier, url.to_string());
    }
    if by_module.is_empty() {
        let mut detail = String::new();
        if !other_roles.is_empty() {
            detail.push_str(&format!(
                " (only other roles: {}: the partner does not receive pushes for these modules)",
                other_roles.join(", ")
            ));
        }
        if without_role > 0 {
            detail.push_str(&format!(
                " ({without_role} endpoints have no role, as in OCPI 2.1.1: if the partner \
                 really speaks 2.1.1, set ocpi_version = \"2.1.1\")"
            ));
        }
        if endpoints.is_empty() {
            detail.push_str(" (the list is empty)");
        }
        return Err(DiscoveryError::NoEndpoints {
            url: details_url.to_string(),
            role: receiver_word(version),
            detail,
        });
    }
    Ok(by_module)
}

fn check_absolute_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("missing or empty".to_string());
    }
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(()),
        Ok(parsed) => Err(format!("scheme {:?} is not http or https", parsed.scheme())),
        Err(e) => Err(format!("not an absolute URL ({e})")),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VERSIONS_URL: &str = "https://p.example/ocpi/versions";
    const DETAILS_URL: &str = "https://p.example/ocpi/2.2.1";

    #[test]
    fn plain_http_behind_an_https_versions_url_is_refused_and_named() {
        let err = refuse_plain_http(VERSIONS_URL, "the locations endpoint", "http://p.example/l")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("http://p.example/l")
                && err.contains("locations endpoint")
                && err.contains("allow_http_endpoints = true"),
            "{err}"
        );
        assert!(refuse_plain_http(VERSIONS_URL, "x", "https://p.example/l").is_ok());
        // A partner reached over plain HTTP from the start (a test system) is not a downgrade.
        assert!(refuse_plain_http("http://p.example/v", "x", "http://p.example/l").is_ok());
    }

    #[test]
    fn picks_the_exact_version_url() {
        let data = json!([
            {"version": "2.1.1", "url": "https://p.example/ocpi/2.1.1"},
            {"version": "2.2", "url": "https://p.example/ocpi/2.2"},
            {"version": "2.2.1", "url": "https://p.example/ocpi/2.2.1/"},
        ]);
        assert_eq!(
            pick_version(VERSIONS_URL, &data, OcpiVersion::V221).unwrap(),
            "https://p.example/ocpi/2.2.1/"
        );
        assert_eq!(
            pick_version(VERSIONS_URL, &data, OcpiVersion::V211).unwrap(),
            "https://p.example/ocpi/2.1.1"
        );
    }

    #[test]
    fn missing_version_names_what_is_offered_and_the_setting_to_change() {
        let data = json!([{"version": "2.1.1", "url": "https://p.example/ocpi/2.1.1"}]);
        let err = pick_version(VERSIONS_URL, &data, OcpiVersion::V221)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("partner does not offer version 2.2.1"),
            "{err}"
        );
        assert!(err.contains("offers 2.1.1"), "{err}");
        assert!(err.contains("set ocpi_version = \"2.1.1\""), "{err}");
        assert!(err.contains(VERSIONS_URL), "{err}");
    }

    #[test]
    fn the_configured_version_is_picked_from_several_and_a_missing_one_is_named() {
        let data = json!([
            {"version": "2.1.1", "url": "https://p.example/ocpi/2.1.1"},
            {"version": "2.2.1", "url": "https://p.example/ocpi/2.2.1"},
            {"version": "2.3.0", "url": "https://p.example/ocpi/2.3.0"}
        ]);
        for (wanted, url) in [
            (OcpiVersion::V211, "https://p.example/ocpi/2.1.1"),
            (OcpiVersion::V221, "https://p.example/ocpi/2.2.1"),
            (OcpiVersion::V230, "https://p.example/ocpi/2.3.0"),
        ] {
            assert_eq!(pick_version(VERSIONS_URL, &data, wanted).unwrap(), url);
        }
        let only_221 = json!([{"version": "2.2.1", "url": "https://p.example/ocpi/2.2.1"}]);
        let err = pick_version(VERSIONS_URL, &only_221, OcpiVersion::V230)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not offer version 2.3.0"), "{err}");
        assert!(err.contains("set ocpi_version = \"2.2.1\""), "{err}");
    }

    #[test]
    fn version_2_2_is_not_taken_for_2_2_1() {
        let data = json!([{"version": "2.2", "url": "https://p.example/ocpi/2.2"}]);
        let err = pick_version(VERSIONS_URL, &data, OcpiVersion::V221)
            .unwrap_err()
            .to_string();
        assert!(err.contains("offers 2.2)"), "{err}");
        assert!(err.contains("2.1.1, 2.2.1 and 2.3.0 only"), "{err}");
        let err = pick_version(VERSIONS_URL, &json!([]), OcpiVersion::V221)
            .unwrap_err()
            .to_string();
        assert!(err.contains("offers nothing"), "{err}");
    }

    #[test]
    fn malformed_versions_lists_are_named() {
        let err = pick_version(VERSIONS_URL, &json!({"versions": []}), OcpiVersion::V221)
            .unwrap_err()
            .to_string();
        assert!(err.contains("should be a list"), "{err}");
        assert!(err.contains("an object"), "{err}");
        let data = json!([{"version": "2.2.1", "url": "/ocpi/2.2.1"}]);
        let err = pick_version(VERSIONS_URL, &data, OcpiVersion::V221)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an absolute URL"), "{err}");
        let data = json!([{"version": "2.2.1"}]);
        let err = pick_version(VERSIONS_URL, &data, OcpiVersion::V221)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing or empty"), "{err}");
    }

    #[test]
    fn v221_keeps_only_receiver_endpoints() {
        let data = json!({
            "version": "2.2.1",
            "endpoints": [
                {"identifier": "credentials", "role": "SENDER", "url": "https://p.example/s/credentials"},
                {"identifier": "locations", "role": "SENDER", "url": "https://p.example/s/locations"},
                {"identifier": "locations", "role": "RECEIVER", "url": "https://p.example/r/locations/"},
                {"identifier": "tokens", "role": "SENDER", "url": "https://p.example/s/tokens"},
                {"identifier": "CDRs", "role": "receiver", "url": "https://p.example/r/cdrs"},
            ]
        });
        let map = parse_endpoints(DETAILS_URL, &data, OcpiVersion::V221).unwrap();
        assert_eq!(map.len(), 2, "{map:?}");
        assert_eq!(map["locations"], "https://p.example/r/locations/");
        assert_eq!(map["cdrs"], "https://p.example/r/cdrs");
    }

    #[test]
    fn v211_keeps_all_endpoints() {
        let data = json!({
            "version": "2.1.1",
            "endpoints": [
                {"identifier": "credentials", "url": "https://p.example/credentials"},
                {"identifier": "locations", "url": "https://p.example/locations"},
            ]
        });
        let map = parse_endpoints(DETAILS_URL, &data, OcpiVersion::V211).unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map["locations"], "https://p.example/locations");
    }

    #[test]
    fn v221_details_without_roles_suggest_2_1_1() {
        let data = json!({
            "version": "2.2.1",
            "endpoints": [{"identifier": "locations", "url": "https://p.example/locations"}]
        });
        let err = parse_endpoints(DETAILS_URL, &data, OcpiVersion::V221)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no RECEIVER endpoints"), "{err}");
        assert!(err.contains("ocpi_version = \"2.1.1\""), "{err}");
    }

    #[test]
    fn v221_details_with_only_sender_endpoints_say_so() {
        let data = json!({
            "version": "2.2.1",
            "endpoints": [{"identifier": "tokens", "role": "SENDER", "url": "https://p.example/tokens"}]
        });
        let err = parse_endpoints(DETAILS_URL, &data, OcpiVersion::V221)
            .unwrap_err()
            .to_string();
        assert!(err.contains("tokens (SENDER)"), "{err}");
    }

    #[test]
    fn malformed_details_are_named() {
        let err = parse_endpoints(DETAILS_URL, &json!([]), OcpiVersion::V221)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a list"), "{err}");
        let err = parse_endpoints(DETAILS_URL, &json!({"endpoints": {}}), OcpiVersion::V221)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"endpoints\" should be a list"), "{err}");
        let data = json!({"endpoints": [{"identifier": "cdrs", "role": "RECEIVER", "url": "ftp://x/cdrs"}]});
        let err = parse_endpoints(DETAILS_URL, &data, OcpiVersion::V221)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"cdrs\"") && err.contains("ftp"), "{err}");
    }

    #[test]
    fn require_names_the_missing_module_and_what_exists() {
        let endpoints = Endpoints {
            version: OcpiVersion::V221,
            details_url: DETAILS_URL.into(),
            by_module: HashMap::from([
                ("locations".to_string(), "https://p.example/l".to_string()),
                ("sessions".to_string(), "https://p.example/s".to_string()),
            ]),
        };
        assert_eq!(endpoints.url("Locations"), Some("https://p.example/l"));
        let err = endpoints.require("cdrs").unwrap_err().to_string();
        assert!(
            err.contains("no RECEIVER endpoint for module \"cdrs\""),
            "{err}"
        );
        assert!(err.contains("locations, sessions"), "{err}");
    }
}
