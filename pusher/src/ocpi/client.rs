//! The HTTP side of talking to one OCPI partner: headers per version, bounded response reading,
//! and mapping every answer (or the lack of one) to an [`Outcome`].
//!
//! One [`OcpiClient`] per partner wraps one `reqwest::Client`, so connections to the partner are
//! reused. Proxies from the environment are ignored (`HTTP_PROXY` in a container must not
//! silently reroute partner traffic). Redirects: only 307 and 308 are followed (they keep the
//! method and body), at most [`MAX_REDIRECTS`] in a row; a 301/302/303 would turn a PUT or POST
//! into a GET and is returned unfollowed (classified as a partner-level problem). HTTPS uses
//! rustls (ring) with the Mozilla root certificates built in (webpki-roots): the system
//! certificate store is not read, so a partner behind a private CA is not reachable yet.
//!
//! Registration (the credentials handshake that exchanges tokens A, B and C) is out of scope: the
//! client starts from a configured token.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use super::classify::{classify_parsed, parse_envelope, Envelope, Outcome};
use super::OcpiVersion;

/// At most this many bytes of a response body are read; the rest is not downloaded.
pub const MAX_RESPONSE_BODY: usize = 1024 * 1024;

/// At most this many 307/308 redirects are followed for one request.
pub const MAX_REDIRECTS: usize = 5;

/// The `X-Request-ID` header (2.2.x): a new UUID for every request.
pub const X_REQUEST_ID: &str = "x-request-id";
/// The `X-Correlation-ID` header (2.2.x): one UUID kept across a chain of requests.
pub const X_CORRELATION_ID: &str = "x-correlation-id";
/// `OCPI-from-country-code` (2.2.x routing header): our country code.
pub const OCPI_FROM_COUNTRY_CODE: &str = "ocpi-from-country-code";
/// `OCPI-from-party-id` (2.2.x routing header): our party id.
pub const OCPI_FROM_PARTY_ID: &str = "ocpi-from-party-id";
/// `OCPI-to-country-code` (2.2.x routing header): the partner's country code.
pub const OCPI_TO_COUNTRY_CODE: &str = "ocpi-to-country-code";
/// `OCPI-to-party-id` (2.2.x routing header): the partner's party id.
pub const OCPI_TO_PARTY_ID: &str = "ocpi-to-party-id";

/// How the credentials token goes into `Authorization: Token ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEncoding {
    /// Base64 of the token's UTF-8 bytes, as OCPI 2.2.x prescribes.
    Base64,
    /// The token as is, as OCPI 2.1.1 does (and many 2.2 systems expect).
    Plain,
}

/// Everything one partner's client needs. `Debug` prints the token as `***`.
#[derive(Clone)]
pub struct ClientConfig {
    /// The OCPI version spoken with this partner; decides the headers sent.
    pub version: OcpiVersion,
    /// The credentials token (the partner's token C, or the token agreed out of band).
    pub token: String,
    /// How the token is encoded in the `Authorization` header.
    pub token_encoding: TokenEncoding,
    /// Our country code (ISO 3166-1 alpha-2), sent as `OCPI-from-country-code` in 2.2.1.
    pub from_country_code: String,
    /// Our party id (3 characters), sent as `OCPI-from-party-id` in 2.2.1.
    pub from_party_id: String,
    /// The partner's country code, sent as `OCPI-to-country-code` in 2.2.1.
    pub to_country_code: String,
    /// The partner's party id, sent as `OCPI-to-party-id` in 2.2.1.
    pub to_party_id: String,
    /// Limit for one whole request: connect, send, and read the answer.
    pub timeout: Duration,
    /// Limit for establishing the TCP (and TLS, when built in) connection.
    pub connect_timeout: Duration,
    /// Idle connections kept open to the partner: the partner's concurrency, so that every
    /// call in flight finds a warm connection next time instead of a new connect.
    pub idle_connections: usize,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("version", &self.version)
            .field("token", &"***")
            .field("token_encoding", &self.token_encoding)
            .field("from_country_code", &self.from_country_code)
            .field("from_party_id", &self.from_party_id)
            .field("to_country_code", &self.to_country_code)
            .field("to_party_id", &self.to_party_id)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_connections", &self.idle_connections)
            .finish()
    }
}

/// Errors of [`OcpiClient::new`] and [`OcpiClient::get_json`].
#[derive(Debug, thiserror::Error)]
pub enum OcpiError {
    /// The configuration cannot work; the message names the setting and how to fix it.
    #[error("invalid OCPI client configuration: {0}")]
    Config(String),
    /// The request did not end in success; `outcome` says how it failed.
    #[error("{method} {url} failed ({}): {}", outcome.kind(), outcome.reason().unwrap_or("success"))]
    Request {
        /// The HTTP method.
        method: Method,
        /// The URL asked for.
        url: String,
        /// The classified answer (never [`Outcome::Success`]).
        outcome: Outcome,
    },
}

/// An HTTP client for one OCPI partner. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct OcpiClient {
    http: reqwest::Client,
    config: ClientConfig,
    authorization: HeaderValue,
    /// The four routing headers (2.2.1 only; empty for 2.1.1).
    routing: Vec<(HeaderName, HeaderValue)>,
}

impl fmt::Debug for OcpiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OcpiClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OcpiClient {
    /// Builds the client. Fails with a message naming the setting when the configuration cannot
    /// work (empty token, characters that cannot go into a header, malformed party ids in 2.2.1).
    pub fn new(config: ClientConfig) -> Result<Self, OcpiError> {
        if config.token.trim().is_empty() {
            return Err(OcpiError::Config(
                "token is empty: set the partner's credentials token".into(),
            ));
        }
        let encoded = match config.token_encoding {
            TokenEncoding::Base64 => {
                base64::engine::general_purpose::STANDARD.encode(config.token.as_bytes())
            }
            TokenEncoding::Plain => config.token.clone(),
        };
        if config.token_encoding == TokenEncoding::Plain
            && !encoded.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(OcpiError::Config(
                "token contains spaces, control or non-ASCII characters, which cannot be sent \
                 unencoded: use token_encoding = \"base64\" or fix the token"
                    .into(),
            ));
        }
        let mut authorization = HeaderValue::from_str(&format!("Token {encoded}"))
            .map_err(|_| OcpiError::Config("token cannot be sent in a header".into()))?;
        authorization.set_sensitive(true);

        let mut routing = Vec::new();
        if config.version.has_221_transport() {
            for (name, setting, value, len) in [
                (
                    OCPI_FROM_COUNTRY_CODE,
                    "from_country_code",
                    &config.from_country_code,
                    2,
                ),
                (
                    OCPI_FROM_PARTY_ID,
                    "from_party_id",
                    &config.from_party_id,
                    3,
                ),
                (
                    OCPI_TO_COUNTRY_CODE,
                    "to_country_code",
                    &config.to_country_code,
                    2,
                ),
                (OCPI_TO_PARTY_ID, "to_party_id", &config.to_party_id, 3),
            ] {
                if value.chars().count() != len || !value.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    return Err(OcpiError::Config(format!(
                        "{setting} = {value:?} is not {len} letters or digits (OCPI 2.2.1 sends it \
                         in the {name} header): set {setting} to the code agreed with the partner"
                    )));
                }
                let value = HeaderValue::from_str(value).expect("checked: ASCII alphanumeric");
                routing.push((HeaderName::from_static(name), value));
            }
        }

        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(config.idle_connections.max(1))
            .redirect(redirect_policy())
            .user_agent(concat!("ocpi-pusher/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OcpiError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            config,
            authorization,
            routing,
        })
    }

    /// The configuration the client was built from.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The OCPI version this client speaks.
    pub fn version(&self) -> OcpiVersion {
        self.config.version
    }

    /// Builds a module request without sending it: `Authorization`; for 2.2.1 a new
    /// `X-Request-ID`, `X-Correlation-ID` (`correlation_id` or a new one) and the four
    /// `OCPI-from/to-*` routing headers; `Content-Type: application/json` with a body.
    pub fn build_request(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        correlation_id: Option<Uuid>,
    ) -> Result<reqwest::Request, reqwest::Error> {
        self.build(method, url, body, correlation_id, true)
    }

    fn build(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        correlation_id: Option<Uuid>,
        routing_headers: bool,
    ) -> Result<reqwest::Request, reqwest::Error> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, self.authorization.clone());
        if self.config.version.has_221_transport() {
            headers.insert(X_REQUEST_ID, uuid_header(Uuid::new_v4()));
            headers.insert(
                X_CORRELATION_ID,
                uuid_header(correlation_id.unwrap_or_else(Uuid::new_v4)),
            );
            if routing_headers {
                for (name, value) in &self.routing {
                    headers.insert(name.clone(), value.clone());
                }
            }
        }
        let mut builder = self.http.request(method, url).headers(headers);
        if let Some(body) = body {
            // `.json` sets the body as bytes, so a 307/308 redirect can resend it.
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .json(body);
        }
        builder.build()
    }

    /// Sends one module request (PUT, PATCH, POST, DELETE, GET) and classifies the answer.
    ///
    /// Never fails and never panics: connection errors, timeouts and resets become
    /// [`Outcome::Transient`], an unusable URL [`Outcome::PartnerLevel`]; a body larger than
    /// [`MAX_RESPONSE_BODY`] is cut there (and cannot count as a success).
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        correlation_id: Option<Uuid>,
    ) -> Outcome {
        self.exchange(method, url, body, correlation_id, true)
            .await
            .0
    }

    /// GETs a configuration endpoint (versions, version details) and returns the envelope's
    /// `data` (`null` when the envelope has none). No routing headers are sent: they address
    /// module requests. Any answer other than HTTP 2xx with OCPI 1xxx is an error carrying the
    /// classified [`Outcome`].
    pub async fn get_json(&self, url: &str) -> Result<Value, OcpiError> {
        let (outcome, envelope) = self.exchange(Method::GET, url, None, None, false).await;
        if outcome.is_success() {
            Ok(envelope.and_then(|e| e.data).unwrap_or(Value::Null))
        } else {
            Err(OcpiError::Request {
                method: Method::GET,
                url: url.to_string(),
                outcome,
            })
        }
    }

    async fn exchange(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        correlation_id: Option<Uuid>,
        routing_headers: bool,
    ) -> (Outcome, Option<Envelope>) {
        let request = match self.build(method.clone(), url, body, correlation_id, routing_headers) {
            Ok(request) => request,
            Err(e) => {
                return (
                    Outcome::PartnerLevel {
                        reason: format!("cannot build a request for {url:?}: {}", chain(&e)),
                    },
                    None,
                )
            }
        };
        let request_id = request
            .headers()
            .get(X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let response = match self.http.execute(request).await {
            Ok(response) => response,
            Err(e) => {
                let outcome = self.transport_failure(&e);
                tracing::debug!(%method, url, request_id, outcome = %outcome, "OCPI request failed");
                return (outcome, None);
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let (bytes, cut) = match read_limited(response, MAX_RESPONSE_BODY).await {
            Ok(read) => read,
            Err(e) => {
                let outcome = Outcome::Transient {
                    reason: format!(
                        "HTTP {}, reading the response body failed: {}",
                        status.as_u16(),
                        self.error_text(&e)
                    ),
                    retry_after: None,
                };
                tracing::debug!(%method, url, request_id, outcome = %outcome, "OCPI request failed");
                return (outcome, None);
            }
        };
        let envelope = if cut { None } else { parse_envelope(&bytes) };
        let mut outcome = classify_parsed(status.as_u16(), &headers, &bytes, envelope.as_ref());
        if cut {
            outcome = with_note(
                outcome,
                &format!(
                    "the response body is larger than {MAX_RESPONSE_BODY} bytes and was not read \
                     to the end"
                ),
            );
        }
        tracing::debug!(%method, url, request_id, outcome = %outcome, "OCPI request answered");
        (outcome, envelope)
    }

    fn transport_failure(&self, e: &reqwest::Error) -> Outcome {
        if e.is_redirect() {
            return Outcome::PartnerLevel {
                reason: format!(
                    "more than {MAX_REDIRECTS} redirects (or a redirect loop): {}; fix the endpoint URL",
                    chain(e)
                ),
            };
        }
        if e.is_builder() {
            return Outcome::PartnerLevel {
                reason: format!("unusable request: {}", chain(e)),
            };
        }
        Outcome::Transient {
            reason: self.error_text(e),
            retry_after: None,
        }
    }

    /// "no answer within 10s" / "could not connect" / "connection failed" plus the error chain.
    fn error_text(&self, e: &reqwest::Error) -> String {
        let what = if e.is_connect() && e.is_timeout() {
            format!(
                "could not connect within {:?} (connect_timeout)",
                self.config.connect_timeout
            )
        } else if e.is_timeout() {
            format!(
                "no complete answer within {:?} (timeout)",
                self.config.timeout
            )
        } else if e.is_connect() {
            "could not connect".to_string()
        } else {
            "connection failed".to_string()
        };
        format!("{what}: {}", chain(e))
    }
}

/// Follow 307/308 only (method and body kept), at most [`MAX_REDIRECTS`] times.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let status = attempt.status();
        if status != StatusCode::TEMPORARY_REDIRECT && status != StatusCode::PERMANENT_REDIRECT {
            attempt.stop()
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

/// Reads at most `limit` bytes of the body; `true` when more was there (and was not read).
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - out.len();
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return Ok((out, true));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((out, false))
}

/// Adds a note to a failure's reason; a success with a note becomes transient (a body we could
/// not read completely is not a confirmed success).
fn with_note(outcome: Outcome, note: &str) -> Outcome {
    match outcome {
        Outcome::Success { .. } => Outcome::Transient {
            reason: note.to_string(),
            retry_after: None,
        },
        Outcome::Transient {
            reason,
            retry_after,
        } => Outcome::Transient {
            reason: format!("{reason}; {note}"),
            retry_after,
        },
        Outcome::Rejected { reason } => Outcome::Rejected {
            reason: format!("{reason}; {note}"),
        },
        Outcome::PartnerLevel { reason } => Outcome::PartnerLevel {
            reason: format!("{reason}; {note}"),
        },
    }
}

/// An error and its sources, joined with ": " (reqwest's own message is terse: the cause, such
/// as "Connection refused", is only in the sources). Repeated texts are skipped.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

fn uuid_header(id: Uuid) -> HeaderValue {
    HeaderValue::from_str(&id.hyphenated().to_string()).expect("a UUID is a valid header value")
}

/// Joins an endpoint URL and path segments (ids) with single slashes.
///
/// The base may end with '/' (or several); each segment is percent-encoded, so an id holding
/// '/', '?', '#', '%', ' ' or non-ASCII characters stays one path segment. Characters that are
/// common in OCPI ids and legal in a path segment ('*' as in "NL*ABC*E1", '-', '_', '.', '~',
/// ':', '@', '!', '$', '\'', '(', ')', ',') are kept as they are. Without segments the base is
/// returned unchanged, trailing slash included (always use the URL the partner published).
pub fn join_url(base: &str, segments: &[&str]) -> String {
    if segments.is_empty() {
        return base.to_string();
    }
    let mut url = base.trim_end_matches('/').to_string();
    for segment in segments {
        url.push('/');
        url.extend(percent_encoding::utf8_percent_encode(segment, PATH_SEGMENT));
    }
    url
}

/// Everything except unreserved characters and the sub-delimiters that are safe in a path
/// segment. '+', ';', '=' and '&' are encoded too: some servers treat them specially in paths.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'*')
    .remove(b':')
    .remove(b'@')
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b',');

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn config(version: OcpiVersion, encoding: TokenEncoding) -> ClientConfig {
        ClientConfig {
            version,
            token: "secret-token-123".into(),
            token_encoding: encoding,
            from_country_code: "NL".into(),
            from_party_id: "CPO".into(),
            to_country_code: "DE".into(),
            to_party_id: "MSP".into(),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            idle_connections: 4,
        }
    }

    fn header<'a>(request: &'a reqwest::Request, name: &str) -> Option<&'a str> {
        request.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn join_url_never_produces_double_slashes() {
        assert_eq!(
            join_url(
                "https://p.example/ocpi/2.2.1/locations",
                &["NL", "CPO", "LOC1"]
            ),
            "https://p.example/ocpi/2.2.1/locations/NL/CPO/LOC1"
        );
        assert_eq!(
            join_url(
                "https://p.example/ocpi/2.2.1/locations/",
                &["NL", "CPO", "LOC1"]
            ),
            "https://p.example/ocpi/2.2.1/locations/NL/CPO/LOC1"
        );
        assert_eq!(
            join_url("https://p.example/locations//", &["NL"]),
            "https://p.example/locations/NL"
        );
    }

    #[test]
    fn join_url_without_segments_keeps_the_published_url() {
        assert_eq!(
            join_url("https://p.example/cdrs/", &[]),
            "https://p.example/cdrs/"
        );
        assert_eq!(
            join_url("https://p.example/cdrs", &[]),
            "https://p.example/cdrs"
        );
    }

    #[test]
    fn join_url_percent_encodes_each_segment_but_keeps_evse_ids_readable() {
        assert_eq!(
            join_url(
                "http://h/l",
                &["NL*CPO*E1", "a/b", "x y?z#%", "é", "a+b;c=d&e"]
            ),
            "http://h/l/NL*CPO*E1/a%2Fb/x%20y%3Fz%23%25/%C3%A9/a%2Bb%3Bc%3Dd%26e"
        );
        assert_eq!(join_url("http://h/l", &["A-1_b.c~"]), "http://h/l/A-1_b.c~");
    }

    #[test]
    fn v221_request_has_base64_token_request_and_correlation_ids_and_routing_headers() {
        let client = OcpiClient::new(config(OcpiVersion::V221, TokenEncoding::Base64)).unwrap();
        let correlation = Uuid::new_v4();
        let body = serde_json::json!({"id": "LOC1"});
        let request = client
            .build_request(
                Method::PUT,
                "http://127.0.0.1:9/ocpi/2.2.1/locations/NL/CPO/LOC1",
                Some(&body),
                Some(correlation),
            )
            .unwrap();
        assert_eq!(
            header(&request, "authorization"),
            Some("Token c2VjcmV0LXRva2VuLTEyMw==")
        );
        assert!(request.headers()["authorization"].is_sensitive());
        let request_id = header(&request, "x-request-id").unwrap();
        assert_eq!(Uuid::parse_str(request_id).unwrap().get_version_num(), 4);
        assert_eq!(
            header(&request, "x-correlation-id"),
            Some(correlation.to_string().as_str())
        );
        assert_eq!(header(&request, "ocpi-from-country-code"), Some("NL"));
        assert_eq!(header(&request, "ocpi-from-party-id"), Some("CPO"));
        assert_eq!(header(&request, "ocpi-to-country-code"), Some("DE"));
        assert_eq!(header(&request, "ocpi-to-party-id"), Some("MSP"));
        assert_eq!(header(&request, "content-type"), Some("application/json"));
        let sent: Value =
            serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(sent, body);
    }

    #[test]
    fn v221_request_ids_are_new_per_request_and_correlation_id_is_generated_when_absent() {
        let client = OcpiClient::new(config(OcpiVersion::V221, TokenEncoding::Plain)).unwrap();
        let mut seen = HashSet::new();
        for _ in 0..20 {
            let request = client
                .build_request(Method::GET, "http://127.0.0.1:9/x", None, None)
                .unwrap();
            assert!(seen.insert(header(&request, "x-request-id").unwrap().to_string()));
            Uuid::parse_str(header(&request, "x-correlation-id").unwrap()).unwrap();
            assert_eq!(header(&request, "content-type"), None);
            assert_eq!(
                header(&request, "authorization"),
                Some("Token secret-token-123")
            );
        }
    }

    #[test]
    fn v211_request_has_plain_token_and_no_221_headers() {
        let mut cfg = config(OcpiVersion::V211, TokenEncoding::Plain);
        // 2.1.1 sends no routing headers, so party ids are not checked.
        cfg.from_party_id = String::new();
        let client = OcpiClient::new(cfg).unwrap();
        let body = serde_json::json!({"id": "S1"});
        let request = client
            .build_request(Method::PATCH, "http://127.0.0.1:9/s", Some(&body), None)
            .unwrap();
        assert_eq!(
            header(&request, "authorization"),
            Some("Token secret-token-123")
        );
        for name in [
            "x-request-id",
            "x-correlation-id",
            "ocpi-from-country-code",
            "ocpi-from-party-id",
            "ocpi-to-country-code",
            "ocpi-to-party-id",
        ] {
            assert_eq!(header(&request, name), None, "{name}");
        }
        assert_eq!(header(&request, "content-type"), Some("application/json"));
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let cfg = config(OcpiVersion::V221, TokenEncoding::Plain);
        let printed = format!("{cfg:?}");
        assert!(printed.contains("***"), "{printed}");
        assert!(!printed.contains("secret-token-123"), "{printed}");
        let client = OcpiClient::new(cfg).unwrap();
        let printed = format!("{client:?}");
        assert!(!printed.contains("secret-token-123"), "{printed}");
        assert!(!printed.contains("c2VjcmV0LXRva2VuLTEyMw"), "{printed}");
    }

    #[test]
    fn bad_configurations_are_refused_with_the_setting_named() {
        let mut cfg = config(OcpiVersion::V221, TokenEncoding::Base64);
        cfg.token = "  ".into();
        let err = OcpiClient::new(cfg).unwrap_err().to_string();
        assert!(err.contains("token is empty"), "{err}");

        let mut cfg = config(OcpiVersion::V221, TokenEncoding::Plain);
        cfg.token = "has space".into();
        let err = OcpiClient::new(cfg).unwrap_err().to_string();
        assert!(err.contains("token_encoding"), "{err}");

        let mut cfg = config(OcpiVersion::V221, TokenEncoding::Base64);
        cfg.token = "tökén with spaces".into();
        OcpiClient::new(cfg).expect("base64 can carry any token");

        let mut cfg = config(OcpiVersion::V221, TokenEncoding::Base64);
        cfg.to_party_id = "TOOLONG".into();
        let err = OcpiClient::new(cfg).unwrap_err().to_string();
        assert!(err.contains("to_party_id"), "{err}");
        assert!(err.contains("ocpi-to-party-id"), "{err}");
    }

    #[tokio::test]
    async fn connection_refused_is_transient_and_says_so() {
        // Bind, learn the port, close: nothing listens there any more.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = OcpiClient::new(config(OcpiVersion::V221, TokenEncoding::Base64)).unwrap();
        let out = client
            .send(
                Method::PUT,
                &format!("http://127.0.0.1:{port}/x"),
                None,
                None,
            )
            .await;
        match out {
            Outcome::Transient { reason, .. } => {
                assert!(reason.contains("could not connect"), "{reason}")
            }
            other => panic!("expected transient, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unusable_url_is_partner_level_not_a_panic() {
        let client = OcpiClient::new(config(OcpiVersion::V211, TokenEncoding::Plain)).unwrap();
        for url in ["not a url", "ftp://example.invalid/x", ""] {
            let out = client.send(Method::GET, url, None, None).await;
            assert!(
                matches!(out, Outcome::PartnerLevel { .. }),
                "{url}: {out:?}"
            );
        }
    }
}
