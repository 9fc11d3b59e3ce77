//! What a partner's answer means for the message that caused it.
//!
//! OCPI has two layers of status: the HTTP status and the `status_code` inside the response
//! envelope (`{"data": ..., "status_code": 1000, "status_message": "...", "timestamp": "..."}`).
//! Real receivers mix them up (auth failures as 401, 403 or HTTP 200 with OCPI 3000; validation
//! failures as 400, as 422 with a web framework's own body, or as HTTP 200 with OCPI 2001), so
//! [`classify`] reads both and sorts every answer into one of four [`Outcome`]s.
//!
//! Rules, first match wins:
//!
//! | HTTP status | envelope | outcome |
//! |---|---|---|
//! | 401, 403 | any | [`Outcome::PartnerLevel`] (token or registration problem) |
//! | 408, 429, 5xx | any | [`Outcome::Transient`] (with `Retry-After` when sent) |
//! | 3xx (a redirect that was not followed) | any | [`Outcome::PartnerLevel`] |
//! | other 4xx, 1xx, unknown | 3001, 3002, 3003 or 4001 | [`Outcome::PartnerLevel`] |
//! | other 4xx, 1xx, unknown | otherwise | [`Outcome::Rejected`] |
//! | 2xx | none (not JSON, no `status_code`) | [`Outcome::Transient`], see below |
//! | 2xx | 1xxx | [`Outcome::Success`] |
//! | 2xx | 2xxx | [`Outcome::Rejected`] |
//! | 2xx | 3001, 3002, 3003, 4001 | [`Outcome::PartnerLevel`] |
//! | 2xx | 3000, other 3xxx, 4002, 4003, other 4xxx | [`Outcome::Transient`] |
//! | 2xx | any other code (0, 200, 5000, ...) | [`Outcome::Rejected`] |
//!
//! A 2xx answer without an OCPI envelope is **not** a success (the invariant "ack only after
//! HTTP 2xx and OCPI 1xxx" holds), and it is classified as *transient*, not rejected: such an
//! answer says nothing about our message (it typically comes from a proxy, a maintenance page or
//! a half-deployed partner), and resending the same message may well succeed once the partner
//! is fixed. The reason says "body is not an OCPI envelope" so an operator sees why it retries.
//!
//! Connection errors and timeouts never reach this module: the client maps them to
//! [`Outcome::Transient`] itself.

use std::fmt;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

/// At most this many characters of a response body (or of a `status_message`) go into a reason.
pub const MAX_REASON_BODY_CHARS: usize = 300;

/// What to do with the message after the partner answered (or did not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// HTTP 2xx and OCPI status_code 1xxx: the partner holds the change; ack the message.
    Success {
        /// The envelope's `status_code` (always present for a success classified here; `None`
        /// is kept for callers that build an `Outcome` by other means).
        status_code: Option<u32>,
        /// The `Location` header, when the partner sent a readable one (CDR POST answers).
        location: Option<String>,
    },
    /// Worth retrying the same message later: the partner or the network is in trouble, not
    /// the message. Keep the message unacked and in order, back off, retry.
    Transient {
        /// Human-readable: HTTP status, OCPI status_code and status_message when present.
        reason: String,
        /// How long the partner asked us to wait (`Retry-After`), when it said so.
        retry_after: Option<Duration>,
    },
    /// The partner refused this message; resending the same body will not help. Park it.
    Rejected {
        /// Human-readable: HTTP status, OCPI status_code and status_message when present.
        reason: String,
    },
    /// Nothing will get through to this partner until someone fixes the configuration or the
    /// registration (token, version, endpoints, hub routing). Stop pushing to it and alert;
    /// the message itself is fine.
    PartnerLevel {
        /// Human-readable: HTTP status, OCPI status_code and status_message when present.
        reason: String,
    },
}

impl Outcome {
    /// True for [`Outcome::Success`].
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success { .. })
    }

    /// The reason of a failure; `None` for a success.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Success { .. } => None,
            Outcome::Transient { reason, .. }
            | Outcome::Rejected { reason }
            | Outcome::PartnerLevel { reason } => Some(reason),
        }
    }

    /// A short lower-case name of the class: "success", "transient", "rejected", "partner-level".
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Success { .. } => "success",
            Outcome::Transient { .. } => "transient",
            Outcome::Rejected { .. } => "rejected",
            Outcome::PartnerLevel { .. } => "partner-level",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Success {
                status_code,
                location,
            } => {
                write!(f, "success")?;
                if let Some(code) = status_code {
                    write!(f, " (OCPI status_code {code})")?;
                }
                if let Some(location) = location {
                    write!(f, ", Location {location}")?;
                }
                Ok(())
            }
            Outcome::Transient {
                reason,
                retry_after,
            } => {
                write!(f, "transient failure: {reason}")?;
                if let Some(wait) = retry_after {
                    write!(f, " (partner asks to retry after {}s)", wait.as_secs())?;
                }
                Ok(())
            }
            Outcome::Rejected { reason } => write!(f, "rejected: {reason}"),
            Outcome::PartnerLevel { reason } => write!(f, "partner-level failure: {reason}"),
        }
    }
}

/// The parts of an OCPI response envelope this crate reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// `status_code`, accepted as a JSON integer, an integral float or a string of digits.
    pub status_code: u32,
    /// `status_message`, when it is a string.
    pub status_message: Option<String>,
    /// `data`; `None` when the field is absent.
    pub data: Option<Value>,
}

/// Parses an OCPI response envelope: a JSON object with a readable `status_code`.
///
/// Returns `None` for anything else (empty body, HTML, binary garbage, JSON without
/// `status_code`, a `status_code` that is not a non-negative integer). Never panics.
pub fn parse_envelope(body: &[u8]) -> Option<Envelope> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let Value::Object(mut map) = value else {
        return None;
    };
    let status_code = match map.get("status_code")? {
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => u32::try_from(u).ok()?,
            (None, Some(f)) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
                f as u32
            }
            _ => return None,
        },
        Value::String(s) => s.trim().parse::<u32>().ok()?,
        _ => return None,
    };
    let status_message = match map.get("status_message") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let data = map.remove("data");
    Some(Envelope {
        status_code,
        status_message,
        data,
    })
}

/// Classifies one HTTP answer of a partner. See the module documentation for the rules.
///
/// `headers` are read for `Retry-After` (on transient answers) and `Location` (on success).
/// Never panics, whatever the body holds.
pub fn classify(http_status: u16, headers: &HeaderMap, body: &[u8]) -> Outcome {
    classify_parsed(http_status, headers, body, parse_envelope(body).as_ref())
}

/// [`classify`] with the envelope already parsed (so a caller that needs `data` parses once).
pub(crate) fn classify_parsed(
    http_status: u16,
    headers: &HeaderMap,
    body: &[u8],
    envelope: Option<&Envelope>,
) -> Outcome {
    let reason = || describe(http_status, body, envelope);
    let transient = || Outcome::Transient {
        reason: reason(),
        retry_after: retry_after(headers, SystemTime::now()),
    };
    match http_status {
        401 | 403 => Outcome::PartnerLevel {
            reason: format!(
                "{} (the partner does not accept our credentials token: check token and token_encoding)",
                reason()
            ),
        },
        408 | 429 | 500..=599 => transient(),
        300..=399 => Outcome::PartnerLevel {
            reason: format!(
                "{} (a redirect that was not followed: only 307/308 are, so the method and body \
                 are kept; fix the endpoint URL)",
                reason()
            ),
        },
        200..=299 => match envelope {
            None => transient(),
            Some(env) => match env.status_code {
                1000..=1999 => Outcome::Success {
                    status_code: Some(env.status_code),
                    location: location(headers),
                },
                2000..=2999 => Outcome::Rejected { reason: reason() },
                code if is_partner_level_code(code) => Outcome::PartnerLevel { reason: reason() },
                3000..=4999 => transient(),
                _ => Outcome::Rejected {
                    reason: format!("{} (not a known OCPI status_code range)", reason()),
                },
            },
        },
        _ => match envelope {
            Some(env) if is_partner_level_code(env.status_code) => {
                Outcome::PartnerLevel { reason: reason() }
            }
            _ => Outcome::Rejected { reason: reason() },
        },
    }
}

/// OCPI codes that say the connection to this partner is broken as a whole: 3001 (unable to use
/// the client's API), 3002 (unsupported version), 3003 (no matching endpoints), 4001 (hub:
/// unknown receiver).
fn is_partner_level_code(code: u32) -> bool {
    matches!(code, 3001 | 3002 | 3003 | 4001)
}

/// "HTTP 200, OCPI status_code 2001: message" or "HTTP 422, body is not an OCPI envelope: ...".
/// True when a rejection's reason (as [`classify`] words it) says the partner does not know the
/// object or its parent: HTTP 404, or OCPI 2003 (unknown location). A child pushed before the
/// partner holds its parent is refused so.
pub fn refused_as_unknown(reason: &str) -> bool {
    reason.starts_with("HTTP 404") || reason.contains("OCPI status_code 2003")
}

fn describe(http_status: u16, body: &[u8], envelope: Option<&Envelope>) -> String {
    let mut out = format!("HTTP {http_status}");
    if let Some(phrase) = reqwest::StatusCode::from_u16(http_status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        out.push(' ');
        out.push_str(phrase);
    }
    match envelope {
        Some(env) => {
            out.push_str(&format!(", OCPI status_code {}", env.status_code));
            if let Some(meaning) = ocpi_code_meaning(env.status_code) {
                out.push_str(&format!(" ({meaning})"));
            }
            match env.status_message.as_deref().map(str::trim) {
                Some(msg) if !msg.is_empty() => {
                    out.push_str(": ");
                    out.push_str(&excerpt(msg.as_bytes(), MAX_REASON_BODY_CHARS));
                }
                _ => out.push_str(", no status_message"),
            }
        }
        None if body.iter().all(u8::is_ascii_whitespace) => {
            out.push_str(", body is not an OCPI envelope (empty body)");
        }
        None => {
            out.push_str(", body is not an OCPI envelope: ");
            out.push_str(&excerpt(body, MAX_REASON_BODY_CHARS));
        }
    }
    out
}

fn ocpi_code_meaning(code: u32) -> Option<&'static str> {
    Some(match code {
        1000 => "success",
        2000 => "generic client error",
        2001 => "invalid or missing parameters",
        2002 => "not enough information",
        2003 => "unknown location",
        2004 => "unknown token",
        3000 => "generic server error",
        3001 => "unable to use the client's API",
        3002 => "unsupported version",
        3003 => "no matching endpoints",
        4001 => "hub: unknown receiver",
        4002 => "hub: timeout on forwarded request",
        4003 => "hub: receiving party not connected",
        _ => return None,
    })
}

/// At most `max_chars` characters of `bytes` as text on one line: invalid UTF-8 is replaced,
/// control characters (newlines included) become spaces, runs of whitespace collapse, and
/// "…" marks a cut. Only a prefix of the input is looked at, so a huge body costs nothing.
pub fn excerpt(bytes: &[u8], max_chars: usize) -> String {
    // A char is at most 4 bytes: this prefix always holds max_chars chars when the input does.
    let scan = bytes
        .len()
        .min(max_chars.saturating_mul(4).saturating_add(4));
    let text = String::from_utf8_lossy(&bytes[..scan]);
    let mut out = String::new();
    let mut count = 0;
    let mut last_space = true;
    let mut cut = scan < bytes.len();
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        if count == max_chars {
            cut = true;
            break;
        }
        last_space = c == ' ';
        out.push(c);
        count += 1;
    }
    let trimmed_len = out.trim_end().len();
    out.truncate(trimmed_len);
    if cut {
        out.push('…');
    }
    out
}

/// `Retry-After` as delta-seconds or as an HTTP date (a date in the past means "now": zero).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `Location` header when it is readable text.
fn location(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()?
        .trim();
    (!value.is_empty()).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_objects_are_told_by_404_or_ocpi_2003_from_the_words_classify_uses() {
        let headers = HeaderMap::new();
        let unknown = [
            (
                404,
                &br#"{"status_code": 2003, "status_message": "Unknown Location"}"#[..],
            ),
            (404, &b"<html>not found</html>"[..]),
            (
                200,
                &br#"{"status_code": 2003, "status_message": "Unknown EVSE"}"#[..],
            ),
        ];
        for (http, body) in unknown {
            let Outcome::Rejected { reason } = classify(http, &headers, body) else {
                panic!("not rejected");
            };
            assert!(refused_as_unknown(&reason), "{reason}");
        }
        let Outcome::Rejected { reason } = classify(
            200,
            &headers,
            br#"{"status_code": 2001, "status_message": "connectors missing"}"#,
        ) else {
            panic!("not rejected");
        };
        assert!(!refused_as_unknown(&reason), "{reason}");
    }
    use reqwest::header::{HeaderValue, LOCATION};

    fn no_headers() -> HeaderMap {
        HeaderMap::new()
    }

    fn envelope(code: impl Into<Value>, message: Option<&str>) -> Vec<u8> {
        let mut v = serde_json::json!({
            "data": null,
            "status_code": code.into(),
            "timestamp": "2024-01-01T00:00:00Z",
        });
        if let Some(m) = message {
            v["status_message"] = m.into();
        }
        serde_json::to_vec(&v).unwrap()
    }

    fn reason_of(outcome: &Outcome) -> &str {
        outcome.reason().expect("a failure has a reason")
    }

    #[test]
    fn http_200_with_ocpi_1000_is_success() {
        let out = classify(200, &no_headers(), &envelope(1000, Some("Success")));
        assert_eq!(
            out,
            Outcome::Success {
                status_code: Some(1000),
                location: None
            }
        );
    }

    #[test]
    fn http_201_with_envelope_is_success_and_returns_the_location_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LOCATION,
            HeaderValue::from_static("https://partner.example/ocpi/cdrs/CDR1"),
        );
        let out = classify(201, &headers, &envelope(1000, None));
        assert_eq!(
            out,
            Outcome::Success {
                status_code: Some(1000),
                location: Some("https://partner.example/ocpi/cdrs/CDR1".into())
            }
        );
    }

    #[test]
    fn custom_success_codes_19xx_are_success() {
        assert!(classify(200, &no_headers(), &envelope(1901, None)).is_success());
    }

    #[test]
    fn status_code_given_as_a_string_is_read() {
        let out = classify(200, &no_headers(), &envelope("1000", None));
        assert!(out.is_success(), "{out:?}");
        let out = classify(200, &no_headers(), &envelope(" 2001 ", Some("bad")));
        assert!(matches!(out, Outcome::Rejected { .. }), "{out:?}");
    }

    #[test]
    fn status_code_given_as_an_integral_float_is_read() {
        assert!(classify(200, &no_headers(), br#"{"status_code": 1000.0}"#).is_success());
        let out = classify(200, &no_headers(), br#"{"status_code": 1000.5}"#);
        assert!(matches!(out, Outcome::Transient { .. }), "{out:?}");
    }

    #[test]
    fn http_200_with_ocpi_2001_is_rejected_with_code_and_message_in_the_reason() {
        let out = classify(
            200,
            &no_headers(),
            &envelope(2001, Some("last_updated is required")),
        );
        assert!(matches!(out, Outcome::Rejected { .. }), "{out:?}");
        let reason = reason_of(&out);
        assert!(reason.contains("HTTP 200"), "{reason}");
        assert!(reason.contains("2001"), "{reason}");
        assert!(reason.contains("last_updated is required"), "{reason}");
    }

    #[test]
    fn missing_status_message_is_said_not_invented() {
        let out = classify(200, &no_headers(), &envelope(2003, None));
        let reason = reason_of(&out);
        assert!(matches!(out, Outcome::Rejected { .. }), "{out:?}");
        assert!(reason.contains("2003"), "{reason}");
        assert!(reason.contains("no status_message"), "{reason}");
    }

    #[test]
    fn ocpi_3000_4002_4003_and_custom_39xx_are_transient() {
        for code in [3000, 3999, 4002, 4003, 4000, 4900] {
            let out = classify(200, &no_headers(), &envelope(code, Some("busy")));
            assert!(matches!(out, Outcome::Transient { .. }), "{code}: {out:?}");
            assert!(reason_of(&out).contains(&code.to_string()));
        }
    }

    #[test]
    fn ocpi_3001_3002_3003_4001_are_partner_level() {
        for code in [3001, 3002, 3003, 4001] {
            let out = classify(200, &no_headers(), &envelope(code, None));
            assert!(
                matches!(out, Outcome::PartnerLevel { .. }),
                "{code}: {out:?}"
            );
        }
    }

    #[test]
    fn ocpi_codes_outside_known_ranges_are_rejected_not_success() {
        for code in [0, 200, 999, 5000, 9999] {
            let out = classify(200, &no_headers(), &envelope(code, None));
            assert!(matches!(out, Outcome::Rejected { .. }), "{code}: {out:?}");
        }
    }

    #[test]
    fn http_401_and_403_are_partner_level_with_or_without_envelope() {
        for status in [401, 403] {
            for body in [
                &b""[..],
                b"Unauthorized",
                &envelope(2000, Some("unknown token")),
            ] {
                let out = classify(status, &no_headers(), body);
                assert!(
                    matches!(out, Outcome::PartnerLevel { .. }),
                    "{status}: {out:?}"
                );
                assert!(reason_of(&out).contains(&format!("HTTP {status}")));
            }
        }
    }

    #[test]
    fn http_5xx_408_429_are_transient() {
        for status in [500, 502, 503, 504, 408, 429] {
            let out = classify(status, &no_headers(), b"");
            assert!(
                matches!(out, Outcome::Transient { .. }),
                "{status}: {out:?}"
            );
        }
    }

    #[test]
    fn http_429_with_retry_after_seconds_carries_the_wait() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("17"));
        let out = classify(429, &headers, b"slow down");
        assert_eq!(
            out,
            Outcome::Transient {
                reason: "HTTP 429 Too Many Requests, body is not an OCPI envelope: slow down"
                    .into(),
                retry_after: Some(Duration::from_secs(17)),
            }
        );
    }

    #[test]
    fn retry_after_as_http_date_is_relative_to_now() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&earlier).unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn http_400_404_405_409_410_413_415_422_and_other_4xx_are_rejected() {
        for status in [400, 404, 405, 409, 410, 413, 415, 422, 418, 451] {
            let out = classify(status, &no_headers(), b"<html>nope</html>");
            assert!(matches!(out, Outcome::Rejected { .. }), "{status}: {out:?}");
        }
    }

    #[test]
    fn http_4xx_with_a_registration_envelope_code_is_partner_level() {
        let out = classify(
            404,
            &no_headers(),
            &envelope(4001, Some("unknown receiver")),
        );
        assert!(matches!(out, Outcome::PartnerLevel { .. }), "{out:?}");
    }

    #[test]
    fn http_422_framework_body_is_rejected_and_says_it_is_not_an_envelope() {
        let body = br#"{"detail":[{"loc":["body","last_updated"],"msg":"field required","type":"value_error.missing"}]}"#;
        let out = classify(422, &no_headers(), body);
        assert!(matches!(out, Outcome::Rejected { .. }), "{out:?}");
        let reason = reason_of(&out);
        assert!(reason.contains("HTTP 422"), "{reason}");
        assert!(reason.contains("body is not an OCPI envelope"), "{reason}");
        assert!(reason.contains("field required"), "{reason}");
    }

    #[test]
    fn html_error_page_on_502_is_transient_and_reason_is_one_line() {
        let body = b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\n</body>\n</html>\n";
        let out = classify(502, &no_headers(), body);
        assert!(matches!(out, Outcome::Transient { .. }), "{out:?}");
        let reason = reason_of(&out);
        assert!(reason.contains("body is not an OCPI envelope"), "{reason}");
        assert!(
            reason.contains("<title>502 Bad Gateway</title>"),
            "{reason}"
        );
        assert!(!reason.contains('\n') && !reason.contains('\r'), "{reason}");
    }

    #[test]
    fn http_200_without_envelope_is_transient_not_success() {
        for body in [
            &b""[..],
            b"OK",
            b"<html><body>Maintenance</body></html>",
            br#"{"data": []}"#,
            br#"{"status_code": "ok"}"#,
            br#"[1000]"#,
            b"null",
        ] {
            let out = classify(200, &no_headers(), body);
            assert!(matches!(out, Outcome::Transient { .. }), "{out:?}");
            assert!(
                reason_of(&out).contains("body is not an OCPI envelope"),
                "{out:?}"
            );
        }
    }

    #[test]
    fn empty_body_is_named_as_such() {
        let out = classify(204, &no_headers(), b"");
        assert!(reason_of(&out).ends_with("body is not an OCPI envelope (empty body)"));
    }

    #[test]
    fn unfollowed_redirects_are_partner_level() {
        for status in [301, 302, 303] {
            let out = classify(status, &no_headers(), b"");
            assert!(
                matches!(out, Outcome::PartnerLevel { .. }),
                "{status}: {out:?}"
            );
        }
    }

    #[test]
    fn binary_garbage_and_huge_bodies_do_not_panic_and_reasons_stay_short() {
        let garbage: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 256) as u8).collect();
        let out = classify(200, &no_headers(), &garbage);
        assert!(matches!(out, Outcome::Transient { .. }));
        assert!(reason_of(&out).chars().count() < MAX_REASON_BODY_CHARS + 100);

        let huge = "é".repeat(5_000_000);
        let out = classify(500, &no_headers(), huge.as_bytes());
        let reason = reason_of(&out);
        assert!(
            reason.chars().count() < MAX_REASON_BODY_CHARS + 100,
            "{reason}"
        );
        assert!(reason.ends_with('…'));

        let long_message = "x".repeat(10_000);
        let out = classify(200, &no_headers(), &envelope(2001, Some(&long_message)));
        assert!(reason_of(&out).chars().count() < MAX_REASON_BODY_CHARS + 100);

        // Deeply nested JSON hits serde_json's recursion limit: an error, not a stack overflow.
        let deep = "[".repeat(100_000);
        let out = classify(200, &no_headers(), deep.as_bytes());
        assert!(matches!(out, Outcome::Transient { .. }));
    }

    #[test]
    fn excerpt_cuts_on_char_boundaries() {
        assert_eq!(excerpt("ééé".as_bytes(), 2), "éé…");
        assert_eq!(excerpt("ab".as_bytes(), 2), "ab");
        assert_eq!(excerpt(b"a\n\n  b\tc", 10), "a b c");
        // A multi-byte char cut in the middle by the scan window is replaced, not a panic.
        let s = "€".repeat(500);
        let e = excerpt(&s.as_bytes()[..1201], 300);
        assert_eq!(e.chars().count(), 301);
        assert_eq!(excerpt(&[0xff, 0xfe, b'x'], 10), "\u{fffd}\u{fffd}x");
    }

    #[test]
    fn envelope_data_is_kept_for_the_caller() {
        let env = parse_envelope(br#"{"data":[{"version":"2.2.1"}],"status_code":1000}"#)
            .expect("an envelope");
        assert_eq!(env.status_code, 1000);
        assert_eq!(env.status_message, None);
        assert_eq!(env.data, Some(serde_json::json!([{"version": "2.2.1"}])));
        assert_eq!(parse_envelope(br#"{"status_code":-1}"#), None);
        assert_eq!(parse_envelope(br#"{"status_code":99999999999}"#), None);
    }
}
