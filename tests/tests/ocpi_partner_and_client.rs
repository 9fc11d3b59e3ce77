//! The OCPI client and discovery of the pusher against the in-process OCPI partner double: the
//! happy paths of every module, the headers per version, and every way the partner can
//! misbehave. No external servers needed.

use std::time::Duration;

use pusher::ocpi::{
    discover, join_url, ClientConfig, DiscoveryError, Endpoints, Method, OcpiClient, OcpiVersion,
    Outcome, TokenEncoding,
};
use serde_json::{json, Value};
use system_tests::ocpi_partner::examples;
use system_tests::{Mode, OcpiPartner, PartnerOptions, PartnerVersion};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

fn config_for(partner: &OcpiPartner) -> ClientConfig {
    let options = partner.options();
    ClientConfig {
        version: match options.version {
            PartnerVersion::V211 => OcpiVersion::V211,
            PartnerVersion::V221 => OcpiVersion::V221,
            PartnerVersion::V230 => panic!("the pusher's OCPI client speaks 2.1.1 and 2.2.1 only"),
        },
        token: options.token.clone(),
        token_encoding: if options.expect_base64_token {
            TokenEncoding::Base64
        } else {
            TokenEncoding::Plain
        },
        from_country_code: "NL".into(),
        from_party_id: "CPO".into(),
        to_country_code: "DE".into(),
        to_party_id: "MSP".into(),
        timeout: WAIT,
        connect_timeout: Duration::from_secs(5),
        idle_connections: 16,
    }
}

fn client_for(partner: &OcpiPartner) -> OcpiClient {
    OcpiClient::new(config_for(partner)).expect("a valid client configuration")
}

async fn started(options: PartnerOptions) -> (OcpiPartner, OcpiClient, Endpoints) {
    let partner = OcpiPartner::start(options).await;
    let client = client_for(&partner);
    let wanted = client.version();
    let endpoints = discover(&client, &partner.versions_url(), wanted, false)
        .await
        .unwrap_or_else(|e| panic!("discovery against the partner double failed: {e}"));
    (partner, client, endpoints)
}

fn location(id: &str, last_updated: &str) -> Value {
    json!({
        "country_code": "NL", "party_id": "CPO", "id": id, "publish": true,
        "address": "Main street 1", "city": "Utrecht", "country": "NLD",
        "coordinates": {"latitude": "52.0907", "longitude": "5.1214"},
        "time_zone": "Europe/Amsterdam", "last_updated": last_updated,
    })
}

fn evse(uid: &str, status: &str, last_updated: &str) -> Value {
    json!({
        "uid": uid, "status": status,
        "connectors": [connector("1", last_updated)],
        "last_updated": last_updated,
    })
}

fn connector(id: &str, last_updated: &str) -> Value {
    json!({
        "id": id, "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE",
        "max_voltage": 230, "max_amperage": 32, "last_updated": last_updated,
    })
}

fn cdr(id: &str) -> Value {
    examples::cdr(PartnerVersion::V221, id)
}

fn url(endpoints: &Endpoints, module: &str, ids: &[&str]) -> String {
    join_url(endpoints.require(module).expect("module discovered"), ids)
}

fn assert_transient(outcome: &Outcome, needle: &str) {
    match outcome {
        Outcome::Transient { reason, .. } => {
            assert!(reason.contains(needle), "expected {needle:?} in {reason:?}")
        }
        other => panic!("expected a transient failure mentioning {needle:?}, got {other:?}"),
    }
}

fn assert_rejected(outcome: &Outcome, needle: &str) {
    match outcome {
        Outcome::Rejected { reason } => {
            assert!(reason.contains(needle), "expected {needle:?} in {reason:?}")
        }
        other => panic!("expected a rejection mentioning {needle:?}, got {other:?}"),
    }
}

fn assert_partner_level(outcome: &Outcome, needle: &str) {
    match outcome {
        Outcome::PartnerLevel { reason } => {
            assert!(reason.contains(needle), "expected {needle:?} in {reason:?}")
        }
        other => panic!("expected a partner-level failure mentioning {needle:?}, got {other:?}"),
    }
}

fn assert_success(outcome: &Outcome) {
    assert!(outcome.is_success(), "expected success, got {outcome:?}");
}

// ---- discovery -------------------------------------------------------------------------------

#[tokio::test]
async fn discovery_of_a_221_partner_keeps_only_its_receiver_endpoints() {
    let (partner, _client, endpoints) = started(PartnerOptions::v221()).await;
    assert_eq!(endpoints.version, OcpiVersion::V221);
    assert_eq!(endpoints.by_module.len(), 5, "{:?}", endpoints.by_module);
    for module in ["locations", "sessions", "cdrs", "tariffs", "tokens"] {
        assert_eq!(
            endpoints.url(module),
            Some(partner.module_url(module).as_str())
        );
    }
    assert_eq!(
        endpoints.url("credentials"),
        None,
        "credentials is a SENDER endpoint"
    );
    let requests = partner.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/ocpi/versions");
    assert_eq!(requests[1].path, "/ocpi/2.2.1/details");
}

#[tokio::test]
async fn discovery_of_a_211_partner_keeps_all_endpoints() {
    let (partner, _client, endpoints) = started(PartnerOptions::v211()).await;
    assert_eq!(endpoints.version, OcpiVersion::V211);
    assert_eq!(
        endpoints.url("locations"),
        Some(partner.module_url("locations").as_str())
    );
    assert!(endpoints.url("credentials").is_some());
}

#[tokio::test]
async fn discovery_of_a_missing_version_names_the_offered_one_and_the_setting() {
    let partner = OcpiPartner::start(PartnerOptions::v211()).await;
    let mut config = config_for(&partner);
    config.version = OcpiVersion::V221;
    let client = OcpiClient::new(config).unwrap();
    let err = discover(&client, &partner.versions_url(), OcpiVersion::V221, false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DiscoveryError::VersionNotOffered { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("partner does not offer version 2.2.1"),
        "{text}"
    );
    assert!(text.contains("set ocpi_version = \"2.1.1\""), "{text}");
    assert!(text.contains(&partner.versions_url()), "{text}");
}

#[tokio::test]
async fn discovery_with_a_wrong_token_is_a_partner_level_error_pointing_at_the_token() {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let mut config = config_for(&partner);
    config.token = "not-the-token".into();
    let client = OcpiClient::new(config).unwrap();
    let err = discover(&client, &partner.versions_url(), OcpiVersion::V221, false)
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(text.contains("token_encoding"), "{text}");
}

#[tokio::test]
async fn discovery_against_a_partner_that_is_down_is_transient() {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    partner.go_down().await;
    let client = client_for(&partner);
    let err = discover(&client, &partner.versions_url(), OcpiVersion::V221, false)
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("could not connect"), "{err}");
}

#[tokio::test]
async fn discovery_of_a_garbage_answer_says_it_is_not_an_envelope() {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    partner.set_mode_for(Mode::Garbage, 1);
    let client = client_for(&partner);
    let err = discover(&client, &partner.versions_url(), OcpiVersion::V221, false)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("body is not an OCPI envelope"),
        "{err}"
    );
}

// ---- headers and tokens ----------------------------------------------------------------------

#[tokio::test]
async fn v221_requests_carry_base64_token_ids_and_routing_headers() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    partner.clear_requests();
    let correlation = Uuid::new_v4();
    let target = url(&endpoints, "locations", &["NL", "CPO", "LOC1"]);
    let body = location("LOC1", "2024-05-01T10:00:00Z");
    for _ in 0..2 {
        let out = client
            .send(Method::PUT, &target, Some(&body), Some(correlation))
            .await;
        assert_success(&out);
    }
    let requests = partner.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some("Token cGFydG5lci10b2tlbi0yMjE="),
            "base64 of partner-token-221"
        );
        assert_eq!(
            request.header("x-correlation-id"),
            Some(correlation.to_string().as_str())
        );
        assert_eq!(request.header("ocpi-from-country-code"), Some("NL"));
        assert_eq!(request.header("ocpi-from-party-id"), Some("CPO"));
        assert_eq!(request.header("ocpi-to-country-code"), Some("DE"));
        assert_eq!(request.header("ocpi-to-party-id"), Some("MSP"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.body.as_ref(), Some(&body));
    }
    let first = requests[0].header("x-request-id").unwrap();
    let second = requests[1].header("x-request-id").unwrap();
    Uuid::parse_str(first).expect("X-Request-ID is a UUID");
    assert_ne!(first, second, "a new X-Request-ID per request");
}

#[tokio::test]
async fn v211_requests_carry_the_plain_token_and_none_of_the_221_headers() {
    let (partner, client, endpoints) = started(PartnerOptions::v211()).await;
    let target = url(&endpoints, "sessions", &["NL", "CPO", "S1"]);
    let out = client
        .send(
            Method::PUT,
            &target,
            Some(&examples::session(
                PartnerVersion::V211,
                "S1",
                "2024-05-01T10:00:00Z",
            )),
            None,
        )
        .await;
    assert_success(&out);
    for request in partner.requests() {
        assert_eq!(
            request.header("authorization"),
            Some("Token partner-token-211")
        );
        for name in [
            "x-request-id",
            "x-correlation-id",
            "ocpi-from-party-id",
            "ocpi-to-party-id",
        ] {
            assert_eq!(
                request.header(name),
                None,
                "{name} in {} {}",
                request.method,
                request.path
            );
        }
    }
}

#[tokio::test]
async fn discovery_gets_send_no_routing_headers_but_module_requests_do() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    let target = url(&endpoints, "tariffs", &["NL", "CPO", "T1"]);
    let body = examples::tariff(PartnerVersion::V221, "T1", "2024-05-01T10:00:00Z");
    assert_success(&client.send(Method::PUT, &target, Some(&body), None).await);
    let requests = partner.requests();
    assert_eq!(requests.len(), 3);
    for discovery_get in &requests[..2] {
        assert!(discovery_get.header("x-request-id").is_some());
        assert_eq!(discovery_get.header("ocpi-to-party-id"), None);
    }
    assert_eq!(requests[2].header("ocpi-to-party-id"), Some("MSP"));
}

#[tokio::test]
async fn token_encoding_mismatch_is_a_partner_level_failure() {
    let (partner, _client, endpoints) = started(PartnerOptions::v221()).await;
    let mut config = config_for(&partner);
    config.token_encoding = TokenEncoding::Plain;
    let plain = OcpiClient::new(config).unwrap();
    let target = url(&endpoints, "locations", &["NL", "CPO", "LOC1"]);
    let out = plain
        .send(
            Method::PUT,
            &target,
            Some(&location("LOC1", "2024-05-01T10:00:00Z")),
            None,
        )
        .await;
    assert_partner_level(&out, "HTTP 401");
    assert_eq!(partner.object("locations", &["NL", "CPO", "LOC1"]), None);
}

#[tokio::test]
async fn a_221_partner_rejects_requests_without_the_221_headers() {
    let (partner, _client, endpoints) = started(PartnerOptions::v221()).await;
    let mut config = config_for(&partner);
    config.version = OcpiVersion::V211; // sends none of the 2.2.1 headers
    let old = OcpiClient::new(config).unwrap();
    let target = url(&endpoints, "locations", &["NL", "CPO", "LOC1"]);
    let out = old
        .send(
            Method::PUT,
            &target,
            Some(&location("LOC1", "2024-05-01T10:00:00Z")),
            None,
        )
        .await;
    assert_rejected(&out, "missing header x-request-id");
}

// ---- modules ---------------------------------------------------------------------------------

#[tokio::test]
async fn locations_are_stored_at_three_depths_and_children_bump_the_parent() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    let loc_url = url(&endpoints, "locations", &["NL", "CPO", "LOC1"]);
    let evse_url = url(&endpoints, "locations", &["NL", "CPO", "LOC1", "NL*CPO*E1"]);
    let conn_url = url(
        &endpoints,
        "locations",
        &["NL", "CPO", "LOC1", "NL*CPO*E1", "2"],
    );

    let out = client
        .send(
            Method::PUT,
            &loc_url,
            Some(&location("LOC1", "2024-05-01T10:00:00Z")),
            None,
        )
        .await;
    assert_success(&out);
    let out = client
        .send(
            Method::PUT,
            &evse_url,
            Some(&evse("NL*CPO*E1", "AVAILABLE", "2024-05-01T10:01:00Z")),
            None,
        )
        .await;
    assert_success(&out);
    let out = client
        .send(
            Method::PUT,
            &conn_url,
            Some(&connector("2", "2024-05-01T10:02:00Z")),
            None,
        )
        .await;
    assert_success(&out);
    let out = client
        .send(
            Method::PATCH,
            &evse_url,
            Some(&json!({"status": "CHARGING", "last_updated": "2024-05-01T10:03:00Z"})),
            None,
        )
        .await;
    assert_success(&out);

    let evse = partner
        .object("locations", &["nl", "cpo", "loc1", "nl*cpo*e1"])
        .expect("EVSE stored (ids compared case-insensitively)");
    assert_eq!(evse["status"], "CHARGING");
    assert_eq!(evse["connectors"].as_array().unwrap().len(), 2);
    let connector = partner
        .object("locations", &["NL", "CPO", "LOC1", "NL*CPO*E1", "2"])
        .unwrap();
    assert_eq!(connector["last_updated"], "2024-05-01T10:02:00Z");
    let location = partner.object("locations", &["NL", "CPO", "LOC1"]).unwrap();
    assert_eq!(location["last_updated"], "2024-05-01T10:03:00Z");
    assert_eq!(location["city"], "Utrecht");
    assert_eq!(partner.objects("locations").len(), 1);
    // The EVSE uid went into the URL readable, not as %2A.
    assert!(partner
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/locations/NL/CPO/LOC1/NL*CPO*E1/2")));
}

#[tokio::test]
async fn ids_with_slashes_and_non_ascii_stay_one_path_segment() {
    // A CiString is printable ASCII: a strict partner refuses this id whatever the URL says, so
    // the encoding of the URL is checked against a partner without object rules.
    let id = "LOC/1 é?#";
    let (strict, client, endpoints) = started(PartnerOptions::v221()).await;
    let target = url(&endpoints, "locations", &["NL", "CPO", id]);
    let body = location(id, "2024-05-01T10:00:00Z");
    let out = client.send(Method::PUT, &target, Some(&body), None).await;
    assert_rejected(&out, "id: CiString allows printable ASCII only");
    assert!(strict.objects("locations").is_empty());

    let lenient = PartnerOptions {
        object_rules: false,
        ..PartnerOptions::v221()
    };
    let (partner, client, endpoints) = started(lenient).await;
    let target = url(&endpoints, "locations", &["NL", "CPO", id]);
    let out = client.send(Method::PUT, &target, Some(&body), None).await;
    assert_success(&out);
    assert!(partner.object("locations", &["NL", "CPO", id]).is_some());
}

#[tokio::test]
async fn an_evse_for_an_unknown_location_is_rejected_with_2003() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    let target = url(&endpoints, "locations", &["NL", "CPO", "NOPE", "E1"]);
    let out = client
        .send(
            Method::PUT,
            &target,
            Some(&evse("E1", "AVAILABLE", "2024-05-01T10:00:00Z")),
            None,
        )
        .await;
    assert_rejected(&out, "OCPI status_code 2003");
    assert!(partner.objects("locations").is_empty());
}

#[tokio::test]
async fn an_older_state_after_a_newer_one_is_rejected_as_older_than_stored() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    let target = url(&endpoints, "locations", &["NL", "CPO", "LOC1"]);
    let newer = location("LOC1", "2024-05-01T10:00:00.500Z");
    let older = location("LOC1", "2024-05-01T10:00:00Z");
    assert_success(&client.send(Method::PUT, &target, Some(&newer), None).await);
    let out = client.send(Method::PUT, &target, Some(&older), None).await;
    assert_rejected(&out, "older than stored");
    assert_eq!(
        partner.object("locations", &["NL", "CPO", "LOC1"]).unwrap()["last_updated"],
        "2024-05-01T10:00:00.500Z"
    );
    // Resending the same state is fine (idempotent PUT).
    assert_success(&client.send(Method::PUT, &target, Some(&newer), None).await);
    // With the check off, the older state overwrites silently, as lenient receivers do.
    partner.set_reject_older(false);
    assert_success(&client.send(Method::PUT, &target, Some(&older), None).await);
    assert_eq!(
        partner.object("locations", &["NL", "CPO", "LOC1"]).unwrap()["last_updated"],
        "2024-05-01T10:00:00Z"
    );
}

#[tokio::test]
async fn a_location_put_older_than_its_last_evse_update_is_rejected() {
    let (_partner, client, endpoints) = started(PartnerOptions::v221()).await;
    let loc_url = url(&endpoints, "locations", &["NL", "CPO", "LOC1"]);
    let evse_url = url(&endpoints, "locations", &["NL", "CPO", "LOC1", "E1"]);
    let loc = location("LOC1", "2024-05-01T10:00:00Z");
    assert_success(&client.send(Method::PUT, &loc_url, Some(&loc), None).await);
    let e = evse("E1", "AVAILABLE", "2024-05-01T11:00:00Z");
    assert_success(&client.send(Method::PUT, &evse_url, Some(&e), None).await);
    let mut later_loc = location("LOC1", "2024-05-01T10:30:00Z");
    later_loc["city"] = "Amersfoort".into();
    let out = client
        .send(Method::PUT, &loc_url, Some(&later_loc), None)
        .await;
    assert_rejected(&out, "older than stored");
}

#[tokio::test]
async fn patch_without_last_updated_is_rejected_with_2001() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    let target = url(&endpoints, "locations", &["NL", "CPO", "LOC1"]);
    assert_success(
        &client
            .send(
                Method::PUT,
                &target,
                Some(&location("LOC1", "2024-05-01T10:00:00Z")),
                None,
            )
            .await,
    );
    let out = client
        .send(
            Method::PATCH,
            &target,
            Some(&json!({"city": "Delft"})),
            None,
        )
        .await;
    assert_rejected(&out, "last_updated is required");
    assert_eq!(
        partner.object("locations", &["NL", "CPO", "LOC1"]).unwrap()["city"],
        "Utrecht"
    );
}

#[tokio::test]
async fn session_patch_appends_charging_periods() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    let target = url(&endpoints, "sessions", &["NL", "CPO", "S1"]);
    let period = |start: &str| json!({"start_date_time": start, "dimensions": [{"type": "ENERGY", "volume": 1.0}]});
    let mut session = examples::session(PartnerVersion::V221, "S1", "2024-05-01T10:00:00Z");
    session["charging_periods"] = json!([period("2024-05-01T10:00:00Z")]);
    assert_success(
        &client
            .send(Method::PUT, &target, Some(&session), None)
            .await,
    );
    let patch = json!({"charging_periods": [period("2024-05-01T10:15:00Z")], "kwh": 2.0, "last_updated": "2024-05-01T10:15:00Z"});
    assert_success(
        &client
            .send(Method::PATCH, &target, Some(&patch), None)
            .await,
    );
    let stored = partner.object("sessions", &["NL", "CPO", "S1"]).unwrap();
    assert_eq!(stored["charging_periods"].as_array().unwrap().len(), 2);
    assert_eq!(stored["kwh"], 2.0);
}

#[tokio::test]
async fn cdr_post_returns_the_location_and_duplicates_are_visible() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    let cdrs_url = endpoints.require("cdrs").unwrap().to_string();
    let body = cdr("CDR-1");
    let out = client
        .send(Method::POST, &cdrs_url, Some(&body), None)
        .await;
    let expected_location = format!("{}/CDR-1", partner.module_url("cdrs"));
    assert_eq!(
        out,
        Outcome::Success {
            status_code: Some(1000),
            location: Some(expected_location.clone())
        }
    );
    // The Location names the CDR: a GET there (a module request) finds it.
    assert_success(
        &client
            .send(Method::GET, &expected_location, None, None)
            .await,
    );
    // A redelivered CDR becomes a duplicate at the partner: visible to tests.
    assert_success(
        &client
            .send(Method::POST, &cdrs_url, Some(&body), None)
            .await,
    );
    assert_eq!(partner.cdrs().len(), 2);
    assert_eq!(partner.object("cdrs", &["cdr-1"]), Some(body));
}

#[tokio::test]
async fn cdr_post_without_location_header_is_still_a_success() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    partner.set_mode_for(Mode::NoLocationHeader, 1);
    let out = client
        .send(
            Method::POST,
            endpoints.require("cdrs").unwrap(),
            Some(&cdr("CDR-2")),
            None,
        )
        .await;
    assert_eq!(
        out,
        Outcome::Success {
            status_code: Some(1000),
            location: None
        }
    );
    assert_eq!(partner.cdrs().len(), 1);
}

#[tokio::test]
async fn tariffs_are_put_and_deleted() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    let target = url(&endpoints, "tariffs", &["NL", "CPO", "T1"]);
    let tariff = examples::tariff(PartnerVersion::V221, "T1", "2024-05-01T10:00:00Z");
    assert_success(&client.send(Method::PUT, &target, Some(&tariff), None).await);
    assert!(partner.object("tariffs", &["NL", "CPO", "T1"]).is_some());
    assert_success(&client.send(Method::DELETE, &target, None, None).await);
    assert!(partner.object("tariffs", &["NL", "CPO", "T1"]).is_none());
    // 2.2.1 tariffs have no PATCH.
    let out = client
        .send(
            Method::PATCH,
            &target,
            Some(&json!({"last_updated": "2024-05-01T11:00:00Z"})),
            None,
        )
        .await;
    assert_rejected(&out, "HTTP 405");
}

#[tokio::test]
async fn tokens_are_stored_per_type() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    let base = url(&endpoints, "tokens", &["DE", "MSP", "TOK1"]);
    let token =
        |kind: &str| examples::token(PartnerVersion::V221, "TOK1", kind, "2024-05-01T10:00:00Z");
    assert_success(
        &client
            .send(Method::PUT, &base, Some(&token("RFID")), None)
            .await,
    );
    let app_user = format!("{base}?type=APP_USER");
    assert_success(
        &client
            .send(Method::PUT, &app_user, Some(&token("APP_USER")), None)
            .await,
    );
    let patch = json!({"valid": false, "last_updated": "2024-05-01T11:00:00Z"});
    assert_success(
        &client
            .send(Method::PATCH, &app_user, Some(&patch), None)
            .await,
    );
    assert_eq!(
        partner.object("tokens", &["DE", "MSP", "TOK1"]).unwrap()["valid"],
        true
    );
    assert_eq!(
        partner
            .object("tokens", &["DE", "MSP", "TOK1", "APP_USER"])
            .unwrap()["valid"],
        false
    );
    let wrong_type = client
        .send(Method::PUT, &base, Some(&token("APP_USER")), None)
        .await;
    assert_rejected(&wrong_type, "does not match ?type=RFID");
}

#[tokio::test]
async fn trailing_slash_endpoints_get_no_double_slash_and_a_cdr_post_follows_the_307() {
    let mut options = PartnerOptions::v221();
    options.trailing_slash_urls = true;
    let (partner, client, endpoints) = started(options).await;
    let cdrs_url = endpoints.require("cdrs").unwrap();
    assert!(cdrs_url.ends_with("/cdrs/"), "{cdrs_url}");

    let loc_url = url(&endpoints, "locations", &["NL", "CPO", "LOC1"]);
    assert_success(
        &client
            .send(
                Method::PUT,
                &loc_url,
                Some(&location("LOC1", "2024-05-01T10:00:00Z")),
                None,
            )
            .await,
    );
    // POST to the endpoint without its slash: the partner redirects with 307, the client
    // follows with the same method and body.
    partner.clear_requests();
    let body = cdr("CDR-3");
    let out = client
        .send(
            Method::POST,
            cdrs_url.trim_end_matches('/'),
            Some(&body),
            None,
        )
        .await;
    assert_success(&out);
    let requests = partner.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[1].method, "POST");
    assert!(requests[1].path.ends_with("/cdrs/"));
    assert_eq!(requests[1].body.as_ref(), Some(&body));
    assert_eq!(partner.cdrs(), vec![body]);
    for request in partner.requests() {
        assert!(!request.path.contains("//"), "{}", request.path);
    }
}

// ---- misbehaviour ----------------------------------------------------------------------------

/// Sends one location PUT and returns the outcome.
async fn put_location(client: &OcpiClient, endpoints: &Endpoints, id: &str) -> Outcome {
    let target = url(endpoints, "locations", &["NL", "CPO", id]);
    client
        .send(
            Method::PUT,
            &target,
            Some(&location(id, "2024-05-01T10:00:00Z")),
            None,
        )
        .await
}

#[tokio::test]
async fn http_500_html_page_is_transient_and_not_applied() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    partner.set_mode_for(Mode::Http(500), 1);
    let out = put_location(&client, &endpoints, "LOC1").await;
    assert_transient(&out, "HTTP 500");
    assert_transient(&out, "body is not an OCPI envelope");
    assert!(partner.objects("locations").is_empty());
    // The mode was for one request: the retry goes through.
    assert_success(&put_location(&client, &endpoints, "LOC1").await);
}

#[tokio::test]
async fn http_401_and_403_are_partner_level() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    for status in [401, 403] {
        partner.set_mode_for(Mode::Http(status), 1);
        let out = put_location(&client, &endpoints, "LOC1").await;
        assert_partner_level(&out, &format!("HTTP {status}"));
    }
}

#[tokio::test]
async fn http_404_and_422_framework_bodies_are_rejected_and_named_as_not_envelopes() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    partner.set_mode_for(Mode::Http(404), 1);
    assert_rejected(&put_location(&client, &endpoints, "LOC1").await, "HTTP 404");
    partner.set_mode_for(Mode::Http(422), 1);
    let out = put_location(&client, &endpoints, "LOC1").await;
    assert_rejected(&out, "body is not an OCPI envelope");
    assert_rejected(&out, "field required");
    partner.set_mode_for(
        Mode::HttpEnvelope {
            http: 400,
            ocpi: 2001,
        },
        1,
    );
    assert_rejected(
        &put_location(&client, &endpoints, "LOC1").await,
        "OCPI status_code 2001",
    );
}

#[tokio::test]
async fn ocpi_error_codes_in_http_200_are_classified_by_the_code() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    partner.set_mode_for(Mode::Ocpi(2001), 1);
    assert_rejected(&put_location(&client, &endpoints, "LOC1").await, "2001");
    partner.set_mode_for(Mode::Ocpi(3000), 1);
    assert_transient(&put_location(&client, &endpoints, "LOC1").await, "3000");
    partner.set_mode_for(Mode::Ocpi(3001), 1);
    assert_partner_level(&put_location(&client, &endpoints, "LOC1").await, "3001");
    partner.set_mode_for(Mode::Ocpi(4002), 1);
    assert_transient(&put_location(&client, &endpoints, "LOC1").await, "4002");
    assert!(partner.objects("locations").is_empty());
}

#[tokio::test]
async fn a_slow_partner_times_out_as_transient_although_it_applied_the_change() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    let mut config = config_for(&partner);
    config.timeout = Duration::from_millis(300);
    let impatient = OcpiClient::new(config).unwrap();
    partner.set_mode_for(Mode::Slow(Duration::from_secs(60)), 1);
    let out = put_location(&impatient, &endpoints, "LOC1").await;
    assert_transient(&out, "timeout");
    // The partner applied it before answering late: a resend must be harmless (PUT is).
    assert!(partner
        .object("locations", &["NL", "CPO", "LOC1"])
        .is_some());
    assert_success(&put_location(&client, &endpoints, "LOC1").await);
}

#[tokio::test]
async fn a_dropped_connection_is_transient_and_the_client_recovers() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    partner.set_mode_for(Mode::DropConnection, 1);
    let out = put_location(&client, &endpoints, "LOC1").await;
    assert_transient(&out, "connection failed");
    assert!(partner.objects("locations").is_empty());
    assert_success(&put_location(&client, &endpoints, "LOC1").await);
}

#[tokio::test]
async fn garbage_and_huge_bodies_in_http_200_are_transient_not_success() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    partner.set_mode_for(Mode::Garbage, 1);
    assert_transient(
        &put_location(&client, &endpoints, "LOC1").await,
        "body is not an OCPI envelope",
    );
    partner.set_mode_for(Mode::HugeBody(20 * 1024 * 1024), 1);
    assert_transient(
        &put_location(&client, &endpoints, "LOC1").await,
        "larger than 1048576 bytes",
    );
    // Just under the limit is read and is a success envelope.
    partner.set_mode_for(Mode::HugeBody(1024 * 1024 - 100), 1);
    assert_success(&put_location(&client, &endpoints, "LOC1").await);
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    partner.set_mode_for(
        Mode::TooManyRequests {
            retry_after_secs: 7,
        },
        1,
    );
    match put_location(&client, &endpoints, "LOC1").await {
        Outcome::Transient {
            reason,
            retry_after,
        } => {
            assert!(reason.contains("HTTP 429"), "{reason}");
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
        }
        other => panic!("expected transient, got {other:?}"),
    }
}

#[tokio::test]
async fn redirects_307_and_308_are_followed_with_method_and_body() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    for (status, id) in [(307, "LOC7"), (308, "LOC8")] {
        partner.clear_requests();
        partner.set_mode_for(Mode::Redirect(status), 1);
        assert_success(&put_location(&client, &endpoints, id).await);
        let requests = partner.requests();
        assert_eq!(requests.len(), 2, "{status}: {requests:?}");
        assert_eq!(requests[1].method, "PUT");
        assert!(requests[1].path.starts_with("/redirected/"));
        assert_eq!(requests[1].body, requests[0].body);
        assert!(partner.object("locations", &["NL", "CPO", id]).is_some());
    }
}

#[tokio::test]
async fn redirects_that_would_turn_a_put_into_a_get_are_not_followed() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    for status in [301, 302, 303] {
        partner.clear_requests();
        partner.set_mode_for(Mode::Redirect(status), 1);
        let out = put_location(&client, &endpoints, "LOC1").await;
        assert_partner_level(&out, &format!("HTTP {status}"));
        assert_eq!(partner.requests().len(), 1, "{status}: not followed");
    }
    assert!(partner.objects("locations").is_empty());
}

#[tokio::test]
async fn a_redirect_loop_ends_after_five_redirects_as_partner_level() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    partner.clear_requests();
    partner.set_mode(Mode::RedirectLoop);
    let out = put_location(&client, &endpoints, "LOC1").await;
    assert_partner_level(&out, "redirects");
    assert_eq!(partner.requests().len(), 6, "the request and 5 redirects");
    partner.clear_mode();
    assert_success(&put_location(&client, &endpoints, "LOC1").await);
}

#[tokio::test]
async fn set_mode_lasts_until_cleared_and_set_mode_for_counts_requests() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    partner.set_mode(Mode::Ocpi(3000));
    for _ in 0..3 {
        assert_transient(&put_location(&client, &endpoints, "LOC1").await, "3000");
    }
    partner.clear_mode();
    assert_success(&put_location(&client, &endpoints, "LOC1").await);
    partner.set_mode_for(Mode::Http(503), 2);
    assert_transient(&put_location(&client, &endpoints, "LOC1").await, "HTTP 503");
    assert_transient(&put_location(&client, &endpoints, "LOC1").await, "HTTP 503");
    assert_success(&put_location(&client, &endpoints, "LOC1").await);
}

#[tokio::test]
async fn a_partner_that_goes_down_refuses_connections_and_comes_back_with_its_state() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    assert_success(&put_location(&client, &endpoints, "LOC1").await);
    partner.go_down().await;
    assert!(!partner.is_up());
    // Also the pooled keep-alive connection is gone: the next request cannot reach the partner.
    let out = put_location(&client, &endpoints, "LOC2").await;
    assert!(matches!(out, Outcome::Transient { .. }), "{out:?}");
    let out = put_location(&client, &endpoints, "LOC2").await;
    assert_transient(&out, "could not connect");
    partner.come_back().await;
    assert_success(&put_location(&client, &endpoints, "LOC2").await);
    assert_eq!(partner.objects("locations").len(), 2);
}

#[tokio::test]
async fn wait_for_requests_returns_once_enough_arrived() {
    let (partner, client, endpoints) = started(PartnerOptions::v221()).await;
    let pushing = async {
        for i in 0..3 {
            put_location(&client, &endpoints, &format!("LOC{i}")).await;
        }
    };
    let (_, requests) = tokio::join!(pushing, partner.wait_for_requests(5, WAIT));
    assert!(requests.len() >= 5);
}
