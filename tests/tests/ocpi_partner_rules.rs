//! The partner double as strict as the OCPI specification: its object rules per version, the
//! two styles of refusal, 404 for unknown parents, what a Location or EVSE PUT drops, the
//! versions it offers. The tests talk HTTP to the double directly (no pusher, database or
//! broker), with the headers a correct sender of that version sends.

use reqwest::Method;
use serde_json::{json, Value};
use system_tests::ocpi_partner::examples::{self, charging_period};
use system_tests::ocpi_partner::{DroppedChild, Rejection};
use system_tests::{OcpiPartner, PartnerOptions, PartnerVersion};
use uuid::Uuid;

const VERSIONS: [PartnerVersion; 3] = [
    PartnerVersion::V211,
    PartnerVersion::V221,
    PartnerVersion::V230,
];

fn options(version: PartnerVersion) -> PartnerOptions {
    match version {
        PartnerVersion::V211 => PartnerOptions::v211(),
        PartnerVersion::V221 => PartnerOptions::v221(),
        PartnerVersion::V230 => PartnerOptions::v230(),
    }
}

/// A running double and an HTTP client that sends what a correct sender of its version sends.
struct Peer {
    partner: OcpiPartner,
    http: reqwest::Client,
}

/// An answer: the HTTP status and the body as JSON (`Null` when it was not JSON).
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn ocpi_status(&self) -> Option<u64> {
        self.body.get("status_code").and_then(Value::as_u64)
    }

    fn message(&self) -> &str {
        self.body["status_message"].as_str().unwrap_or_default()
    }

    #[track_caller]
    fn assert_accepted(&self) {
        assert!(
            matches!(self.status, 200 | 201) && self.ocpi_status() == Some(1000),
            "expected acceptance, got {self:?}"
        );
    }

    /// HTTP 400, OCPI 2001, and a status_message containing every needle.
    #[track_caller]
    fn assert_refused_2001(&self, needles: &[&str]) {
        assert_eq!(self.status, 400, "{self:?}");
        assert_eq!(self.ocpi_status(), Some(2001), "{self:?}");
        for needle in needles {
            assert!(
                self.message().contains(needle),
                "expected {needle:?} in {:?}",
                self.message()
            );
        }
    }
}

impl Peer {
    async fn start(options: PartnerOptions) -> Peer {
        Peer {
            partner: OcpiPartner::start(options).await,
            http: reqwest::Client::new(),
        }
    }

    async fn of(version: PartnerVersion) -> Peer {
        Peer::start(options(version)).await
    }

    fn version(&self) -> PartnerVersion {
        self.partner.options().version
    }

    /// `{module endpoint}/{ids...}` (ids are plain ASCII here: no encoding needed).
    fn url(&self, module: &str, ids: &[&str]) -> String {
        let mut url = self.partner.module_url(module);
        for id in ids {
            url.push('/');
            url.push_str(id);
        }
        url
    }

    async fn send(&self, method: Method, url: &str, body: Option<&Value>) -> Answer {
        let options = self.partner.options();
        let token = if options.expect_base64_token {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(&options.token)
        } else {
            options.token.clone()
        };
        let mut request = self
            .http
            .request(method, url)
            .header("Authorization", format!("Token {token}"));
        if options.version != PartnerVersion::V211 {
            request = request
                .header("X-Request-ID", Uuid::new_v4().to_string())
                .header("X-Correlation-ID", Uuid::new_v4().to_string())
                .header("OCPI-from-country-code", "NL")
                .header("OCPI-from-party-id", "CPO")
                .header("OCPI-to-country-code", "DE")
                .header("OCPI-to-party-id", "MSP");
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the double answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("a body");
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn put(&self, module: &str, ids: &[&str], body: &Value) -> Answer {
        self.send(Method::PUT, &self.url(module, ids), Some(body))
            .await
    }

    async fn patch(&self, module: &str, ids: &[&str], body: &Value) -> Answer {
        self.send(Method::PATCH, &self.url(module, ids), Some(body))
            .await
    }

    /// PUTs the example Location "LOC1" with these EVSEs.
    async fn put_location_with(&self, evses: &[Value], last_updated: &str) -> Answer {
        let mut location = examples::location(self.version(), "LOC1", last_updated);
        location["evses"] = Value::Array(evses.to_vec());
        self.put("locations", &["NL", "CPO", "LOC1"], &location)
            .await
    }
}

const T0: &str = "2024-05-01T10:00:00Z";
const T1: &str = "2024-05-01T10:01:00Z";
const T2: &str = "2024-05-01T10:02:00Z";

// ---- valid objects ---------------------------------------------------------------------------

#[tokio::test]
async fn every_module_accepts_a_valid_object_in_each_version() {
    for version in VERSIONS {
        let peer = Peer::of(version).await;
        let v = version;
        let what = |step: &str| format!("{} {step}", v.as_str());
        let loc = ["NL", "CPO", "LOC1"];
        let answer = peer
            .put("locations", &loc, &examples::location(v, "LOC1", T0))
            .await;
        assert_eq!(answer.status, 201, "{}: {answer:?}", what("location PUT"));
        answer.assert_accepted();
        peer.put(
            "locations",
            &["NL", "CPO", "LOC1", "E1"],
            &examples::evse(v, "E1", "AVAILABLE", T1),
        )
        .await
        .assert_accepted();
        peer.put(
            "locations",
            &["NL", "CPO", "LOC1", "E1", "2"],
            &examples::connector(v, "2", T1),
        )
        .await
        .assert_accepted();
        peer.patch(
            "locations",
            &["NL", "CPO", "LOC1", "E1"],
            &json!({"status": "CHARGING", "last_updated": T2}),
        )
        .await
        .assert_accepted();
        peer.put(
            "sessions",
            &["NL", "CPO", "S1"],
            &examples::session(v, "S1", T1),
        )
        .await
        .assert_accepted();
        peer.patch(
            "sessions",
            &["NL", "CPO", "S1"],
            &json!({"kwh": 3.0, "charging_periods": [charging_period(T1, 3.0)], "last_updated": T2}),
        )
        .await
        .assert_accepted();
        let answer = peer
            .send(
                Method::POST,
                &peer.partner.module_url("cdrs"),
                Some(&examples::cdr(v, "CDR1")),
            )
            .await;
        assert_eq!(answer.status, 201, "{}: {answer:?}", what("CDR POST"));
        peer.put(
            "tariffs",
            &["NL", "CPO", "T1"],
            &examples::tariff(v, "T1", T0),
        )
        .await
        .assert_accepted();
        peer.put(
            "tokens",
            &["DE", "MSP", "TOK1"],
            &examples::token(v, "TOK1", "RFID", T0),
        )
        .await
        .assert_accepted();

        let evse = peer
            .partner
            .object("locations", &["NL", "CPO", "LOC1", "E1"])
            .unwrap_or_else(|| panic!("{}", what("EVSE stored")));
        assert_eq!(evse["status"], "CHARGING");
        assert_eq!(evse["connectors"].as_array().map(Vec::len), Some(2));
        let counts = peer.partner.state(false).counts;
        for (kind, expected) in [
            ("locations", 1),
            ("evses", 1),
            ("connectors", 2),
            ("sessions", 1),
            ("cdrs", 1),
            ("tariffs", 1),
            ("tokens", 1),
        ] {
            assert_eq!(counts[kind], expected, "{}", what(kind));
        }
        assert!(peer.partner.dropped_children().is_empty());
        for request in peer.partner.requests() {
            assert_eq!(request.refusal, None, "{} {}", request.method, request.path);
        }
    }
}

#[tokio::test]
async fn without_object_rules_incomplete_objects_are_accepted() {
    let peer = Peer::start(PartnerOptions {
        object_rules: false,
        ..PartnerOptions::v221()
    })
    .await;
    peer.put_location_with(&[], T0).await.assert_accepted();
    peer.put(
        "locations",
        &["NL", "CPO", "LOC1", "E1"],
        &json!({"uid": "E1", "last_updated": T1}),
    )
    .await
    .assert_accepted();
}

// ---- composite objects -----------------------------------------------------------------------

#[tokio::test]
async fn an_evse_put_without_connectors_is_refused_with_400_and_2001_naming_connectors() {
    for version in VERSIONS {
        let peer = Peer::of(version).await;
        peer.put_location_with(&[], T0).await.assert_accepted();
        let mut evse = examples::evse(version, "E1", "AVAILABLE", T1);
        evse.as_object_mut().map(|e| e.remove("connectors"));
        let answer = peer
            .put("locations", &["NL", "CPO", "LOC1", "E1"], &evse)
            .await;
        answer.assert_refused_2001(&["connectors", "field required", version.as_str()]);

        evse["connectors"] = json!([]);
        let answer = peer
            .put("locations", &["NL", "CPO", "LOC1", "E1"], &evse)
            .await;
        answer.assert_refused_2001(&["connectors", "at least 1"]);
        assert_eq!(
            peer.partner
                .object("locations", &["NL", "CPO", "LOC1", "E1"]),
            None,
            "{}: nothing stored",
            version.as_str()
        );
    }
}

#[tokio::test]
async fn an_evse_put_without_connectors_is_refused_with_a_422_framework_body_when_so_configured() {
    let peer = Peer::start(PartnerOptions {
        rejection: Rejection::Http422,
        ..PartnerOptions::v221()
    })
    .await;
    peer.put_location_with(&[], T0).await.assert_accepted();
    let mut evse = examples::evse(PartnerVersion::V221, "E1", "AVAILABLE", T1);
    evse.as_object_mut().map(|e| e.remove("connectors"));
    let answer = peer
        .put("locations", &["NL", "CPO", "LOC1", "E1"], &evse)
        .await;
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.ocpi_status(), None, "no OCPI envelope: {answer:?}");
    let detail = &answer.body["detail"][0];
    assert_eq!(detail["loc"], json!(["body", "connectors"]));
    assert_eq!(detail["type"], "value_error.missing");
    assert!(detail["msg"]
        .as_str()
        .is_some_and(|m| m.contains("field required")));

    // Nested: the location of the offending value inside the body.
    let mut location = examples::location(PartnerVersion::V221, "LOC1", T2);
    location["evses"] = json!([evse]);
    let answer = peer
        .put("locations", &["NL", "CPO", "LOC1"], &location)
        .await;
    assert_eq!(answer.status, 422);
    assert_eq!(
        answer.body["detail"][0]["loc"],
        json!(["body", "evses", 0, "connectors"])
    );
    let last = peer.partner.requests().pop().expect("requests recorded");
    assert_eq!(last.http_status, Some(422));
    assert!(
        last.refusal
            .as_deref()
            .is_some_and(|r| r.contains("evses[0].connectors")),
        "{:?}",
        last.refusal
    );
}

#[tokio::test]
async fn an_evse_put_for_an_unknown_location_is_404_with_2003() {
    for version in VERSIONS {
        let peer = Peer::of(version).await;
        let answer = peer
            .put(
                "locations",
                &["NL", "CPO", "NOPE", "E1"],
                &examples::evse(version, "E1", "AVAILABLE", T0),
            )
            .await;
        assert_eq!(answer.status, 404, "{answer:?}");
        assert_eq!(answer.ocpi_status(), Some(2003));
        assert_eq!(answer.message(), "Unknown Location");
        let patch = peer
            .patch(
                "locations",
                &["NL", "CPO", "NOPE", "E1"],
                &json!({"status": "CHARGING", "last_updated": T1}),
            )
            .await;
        assert_eq!((patch.status, patch.ocpi_status()), (404, Some(2003)));
        assert!(peer.partner.objects("locations").is_empty());
    }
}

#[tokio::test]
async fn a_connector_put_or_evse_patch_for_an_unknown_evse_is_404_with_2003() {
    let peer = Peer::of(PartnerVersion::V221).await;
    peer.put_location_with(&[], T0).await.assert_accepted();
    let answer = peer
        .put(
            "locations",
            &["NL", "CPO", "LOC1", "E9", "1"],
            &examples::connector(PartnerVersion::V221, "1", T1),
        )
        .await;
    assert_eq!(answer.status, 404, "{answer:?}");
    assert_eq!(answer.ocpi_status(), Some(2003));
    assert_eq!(answer.message(), "Unknown EVSE");
    let answer = peer
        .patch(
            "locations",
            &["NL", "CPO", "LOC1", "E9"],
            &json!({"status": "CHARGING", "last_updated": T1}),
        )
        .await;
    assert_eq!((answer.status, answer.ocpi_status()), (404, Some(2003)));
    assert_eq!(answer.message(), "Unknown EVSE");
}

#[tokio::test]
async fn the_http_status_of_an_unknown_parent_is_configurable() {
    let peer = Peer::start(PartnerOptions {
        unknown_parent_status: 200,
        ..PartnerOptions::v221()
    })
    .await;
    let answer = peer
        .put(
            "locations",
            &["NL", "CPO", "NOPE", "E1"],
            &examples::evse(PartnerVersion::V221, "E1", "AVAILABLE", T0),
        )
        .await;
    assert_eq!((answer.status, answer.ocpi_status()), (200, Some(2003)));
}

#[tokio::test]
async fn a_location_put_without_evses_drops_the_evses_it_held_and_dropped_children_names_them() {
    for version in VERSIONS {
        let peer = Peer::of(version).await;
        let evses = [
            examples::evse(version, "E1", "AVAILABLE", T0),
            examples::evse(version, "E2", "AVAILABLE", T0),
        ];
        peer.put_location_with(&evses, T0).await.assert_accepted();
        // The same Location again, without `evses`: the whole Location is replaced.
        let location = examples::location(version, "LOC1", T1);
        peer.put("locations", &["NL", "CPO", "LOC1"], &location)
            .await
            .assert_accepted();
        let held = peer
            .partner
            .object("locations", &["NL", "CPO", "LOC1"])
            .expect("Location stored");
        assert!(held.get("evses").is_none(), "{held}");
        let seq = peer.partner.requests().last().expect("recorded").seq;
        let dropped = |uid: &str| DroppedChild {
            request_seq: seq,
            location: "NL/CPO/LOC1".into(),
            evse_uid: uid.into(),
            connector_id: None,
        };
        assert_eq!(
            peer.partner.dropped_children(),
            vec![dropped("E1"), dropped("E2")],
            "{}",
            version.as_str()
        );
    }
}

#[tokio::test]
async fn an_evse_put_with_fewer_connectors_drops_the_missing_ones() {
    let v = PartnerVersion::V221;
    let peer = Peer::of(v).await;
    let mut evse = examples::evse(v, "E1", "AVAILABLE", T0);
    evse["connectors"] = json!([
        examples::connector(v, "1", T0),
        examples::connector(v, "2", T0)
    ]);
    peer.put_location_with(&[evse.clone()], T0)
        .await
        .assert_accepted();
    evse["connectors"] = json!([examples::connector(v, "2", T1)]);
    evse["last_updated"] = json!(T1);
    peer.put("locations", &["NL", "CPO", "LOC1", "E1"], &evse)
        .await
        .assert_accepted();
    let seq = peer.partner.requests().last().expect("recorded").seq;
    assert_eq!(
        peer.partner.dropped_children(),
        vec![DroppedChild {
            request_seq: seq,
            location: "NL/CPO/LOC1".into(),
            evse_uid: "E1".into(),
            connector_id: Some("1".into()),
        }]
    );
    // Adding a connector drops nothing.
    peer.put(
        "locations",
        &["NL", "CPO", "LOC1", "E1", "3"],
        &examples::connector(v, "3", T2),
    )
    .await
    .assert_accepted();
    assert_eq!(peer.partner.dropped_children().len(), 1);
}

// ---- rules of one version --------------------------------------------------------------------

#[tokio::test]
async fn a_211_token_of_type_app_user_is_refused() {
    let peer = Peer::of(PartnerVersion::V211).await;
    let token = examples::token(PartnerVersion::V211, "TOK1", "APP_USER", T0);
    let url = format!(
        "{}?type=APP_USER",
        peer.url("tokens", &["DE", "MSP", "TOK1"])
    );
    let answer = peer.send(Method::PUT, &url, Some(&token)).await;
    answer.assert_refused_2001(&["type", "\"APP_USER\" is not permitted", "OTHER, RFID"]);
    let other = examples::token(PartnerVersion::V211, "TOK1", "OTHER", T0);
    let url = format!("{}?type=OTHER", peer.url("tokens", &["DE", "MSP", "TOK1"]));
    peer.send(Method::PUT, &url, Some(&other))
        .await
        .assert_accepted();
}

#[tokio::test]
async fn a_211_session_without_auth_id_or_location_is_refused() {
    let peer = Peer::of(PartnerVersion::V211).await;
    for field in ["auth_id", "location"] {
        let mut session = examples::session(PartnerVersion::V211, "S1", T0);
        session.as_object_mut().map(|s| s.remove(field));
        let answer = peer.put("sessions", &["NL", "CPO", "S1"], &session).await;
        answer.assert_refused_2001(&[&format!("{field}: field required")]);
    }
    // The 2.2.1 way of naming them is no 2.1.1 field.
    let mut session = examples::session(PartnerVersion::V211, "S1", T0);
    session["location_id"] = json!("LOC1");
    let answer = peer.put("sessions", &["NL", "CPO", "S1"], &session).await;
    answer.assert_refused_2001(&["location_id: extra field not permitted"]);
}

#[tokio::test]
async fn a_230_tariff_without_tax_included_is_refused() {
    let v = PartnerVersion::V230;
    let peer = Peer::of(v).await;
    let mut tariff = examples::tariff(v, "T1", T0);
    tariff.as_object_mut().map(|t| t.remove("tax_included"));
    let answer = peer.put("tariffs", &["NL", "CPO", "T1"], &tariff).await;
    answer.assert_refused_2001(&["tax_included: field required"]);
    // It is an enum (YES, NO, N/A), not a boolean.
    tariff["tax_included"] = json!(false);
    let answer = peer.put("tariffs", &["NL", "CPO", "T1"], &tariff).await;
    answer.assert_refused_2001(&["tax_included"]);
    tariff["tax_included"] = json!("N/A");
    peer.put("tariffs", &["NL", "CPO", "T1"], &tariff)
        .await
        .assert_accepted();
}

#[tokio::test]
async fn each_version_refuses_the_price_shape_of_the_other() {
    let session_with = |version, cost: Value| {
        let mut session = examples::session(version, "S1", T0);
        session["total_cost"] = cost;
        session
    };
    let v221 = Peer::of(PartnerVersion::V221).await;
    let answer = v221
        .put(
            "sessions",
            &["NL", "CPO", "S1"],
            &session_with(PartnerVersion::V221, json!({"before_taxes": 1.0})),
        )
        .await;
    answer.assert_refused_2001(&["total_cost"]);
    let v230 = Peer::of(PartnerVersion::V230).await;
    let answer = v230
        .put(
            "sessions",
            &["NL", "CPO", "S1"],
            &session_with(PartnerVersion::V230, json!({"excl_vat": 1.0})),
        )
        .await;
    answer.assert_refused_2001(&["total_cost.before_taxes: field required"]);
    let tax_without_amount = json!({"before_taxes": 1.0, "taxes": [{"name": "VAT"}]});
    let answer = v230
        .put(
            "sessions",
            &["NL", "CPO", "S1"],
            &session_with(PartnerVersion::V230, tax_without_amount),
        )
        .await;
    answer.assert_refused_2001(&["total_cost.taxes[0].amount: field required"]);
}

#[tokio::test]
async fn a_221_object_with_an_unknown_field_is_refused_and_a_230_one_accepted() {
    for (version, accepted) in [(PartnerVersion::V221, false), (PartnerVersion::V230, true)] {
        let peer = Peer::of(version).await;
        let mut location = examples::location(version, "LOC1", T0);
        location["x_vendor_rating"] = json!(5);
        let answer = peer
            .put("locations", &["NL", "CPO", "LOC1"], &location)
            .await;
        if accepted {
            answer.assert_accepted();
        } else {
            answer.assert_refused_2001(&["x_vendor_rating: extra field not permitted"]);
        }
    }
}

#[tokio::test]
async fn a_date_time_with_an_offset_instead_of_z_is_refused() {
    for version in VERSIONS {
        let peer = Peer::of(version).await;
        let location = examples::location(version, "LOC1", "2024-05-01T10:00:00+00:00");
        let answer = peer
            .put("locations", &["NL", "CPO", "LOC1"], &location)
            .await;
        answer.assert_refused_2001(&["last_updated", "trailing Z"]);
    }
    let peer = Peer::of(PartnerVersion::V221).await;
    let location = examples::location(PartnerVersion::V221, "LOC1", "2024-05-01T10:00:00.123Z");
    peer.put("locations", &["NL", "CPO", "LOC1"], &location)
        .await
        .assert_accepted();
}

#[tokio::test]
async fn strings_longer_than_their_table_allows_are_refused() {
    let v = PartnerVersion::V221;
    let peer = Peer::of(v).await;
    let long_id = "L".repeat(37);
    let location = examples::location(v, &long_id, T0);
    let answer = peer
        .put("locations", &["NL", "CPO", &long_id], &location)
        .await;
    answer.assert_refused_2001(&["id: CiString(36) has at most 36 characters, found 37"]);
    let mut tariff = examples::tariff(v, "T1", T0);
    tariff["currency"] = json!("EURO");
    let answer = peer.put("tariffs", &["NL", "CPO", "T1"], &tariff).await;
    answer.assert_refused_2001(&["currency: string(3)"]);
}

// ---- PATCH -----------------------------------------------------------------------------------

#[tokio::test]
async fn a_patch_field_that_breaks_a_rule_is_refused_and_nothing_changes() {
    let v = PartnerVersion::V221;
    let peer = Peer::of(v).await;
    peer.put_location_with(&[examples::evse(v, "E1", "AVAILABLE", T0)], T0)
        .await
        .assert_accepted();
    let evse = ["NL", "CPO", "LOC1", "E1"];
    for (patch, needle) in [
        (
            json!({"connectors": [], "last_updated": T1}),
            "connectors: ensure this value has at least 1 items",
        ),
        (
            json!({"status": "BROKEN", "last_updated": T1}),
            "status: value \"BROKEN\"",
        ),
        (
            json!({"status": null, "last_updated": T1}),
            "status: none is not an allowed value",
        ),
        (
            json!({"connectors": [{"id": "9", "last_updated": T1}], "last_updated": T1}),
            "connectors[0].standard: field required",
        ),
    ] {
        peer.patch("locations", &evse, &patch)
            .await
            .assert_refused_2001(&[needle]);
    }
    let held = peer.partner.object("locations", &evse).expect("EVSE held");
    assert_eq!(held["status"], "AVAILABLE");
    assert_eq!(held["connectors"].as_array().map(Vec::len), Some(1));
    assert!(peer.partner.dropped_children().is_empty());
}

#[tokio::test]
async fn a_patch_that_would_leave_the_object_invalid_is_refused() {
    let v = PartnerVersion::V221;
    let peer = Peer::of(v).await;
    peer.put_location_with(&[examples::evse(v, "E1", "AVAILABLE", T0)], T0)
        .await
        .assert_accepted();
    // Every field is valid by itself, but the EVSE left behind would no longer be E1.
    let answer = peer
        .patch(
            "locations",
            &["NL", "CPO", "LOC1", "E1"],
            &json!({"uid": "E2", "last_updated": T1}),
        )
        .await;
    assert_eq!(answer.ocpi_status(), Some(2001), "{answer:?}");
    assert!(answer.message().contains("uid"), "{answer:?}");
    assert!(peer
        .partner
        .object("locations", &["NL", "CPO", "LOC1", "E1"])
        .is_some());

    // 2.1.1: Hours is a choice of regular_hours and twentyfourseven; a PATCH of opening_times
    // carrying both leaves no valid Location.
    let peer = Peer::of(PartnerVersion::V211).await;
    peer.put(
        "locations",
        &["NL", "CPO", "LOC1"],
        &examples::location(PartnerVersion::V211, "LOC1", T0),
    )
    .await
    .assert_accepted();
    let both = json!({"opening_times": {
        "twentyfourseven": true,
        "regular_hours": [{"weekday": 1, "period_begin": "08:00", "period_end": "20:00"}],
    }});
    let answer = peer.patch("locations", &["NL", "CPO", "LOC1"], &both).await;
    answer.assert_refused_2001(&["opening_times.twentyfourseven", "not both"]);
}

#[tokio::test]
async fn a_patch_needs_last_updated_in_221_and_230_but_not_in_211() {
    for version in VERSIONS {
        let peer = Peer::of(version).await;
        peer.put(
            "sessions",
            &["NL", "CPO", "S1"],
            &examples::session(version, "S1", T0),
        )
        .await
        .assert_accepted();
        let answer = peer
            .patch("sessions", &["NL", "CPO", "S1"], &json!({"kwh": 2.0}))
            .await;
        if version == PartnerVersion::V211 {
            answer.assert_accepted();
            let held = peer
                .partner
                .object("sessions", &["NL", "CPO", "S1"])
                .expect("held");
            assert_eq!(held["last_updated"], T0, "kept from the stored Session");
        } else {
            assert_eq!(answer.ocpi_status(), Some(2001), "{answer:?}");
            assert!(answer.message().contains("last_updated is required"));
        }
    }
}

// ---- versions --------------------------------------------------------------------------------

#[tokio::test]
async fn offered_versions_are_listed_with_their_details_and_only_the_own_version_serves_modules() {
    let peer = Peer::start(PartnerOptions {
        offered_versions: vec![PartnerVersion::V211, PartnerVersion::V230],
        ..PartnerOptions::v221()
    })
    .await;
    let versions = peer
        .send(Method::GET, &peer.partner.versions_url(), None)
        .await;
    versions.assert_accepted();
    let listed: Vec<&str> = versions.body["data"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|v| v["version"].as_str())
        .collect();
    assert_eq!(listed, ["2.1.1", "2.3.0", "2.2.1"]);

    let details_url = |version: &str| {
        versions.body["data"]
            .as_array()
            .and_then(|list| list.iter().find(|v| v["version"] == version))
            .and_then(|v| v["url"].as_str())
            .expect("a details URL")
            .to_string()
    };
    let details = peer.send(Method::GET, &details_url("2.3.0"), None).await;
    details.assert_accepted();
    let receiver = details.body["data"]["endpoints"]
        .as_array()
        .and_then(|list| {
            list.iter()
                .find(|e| e["identifier"] == "locations" && e["role"] == "RECEIVER")
        })
        .expect("a 2.3.0 RECEIVER endpoint for locations")
        .clone();
    let other_url = format!("{}/NL/CPO/LOC1", receiver["url"].as_str().unwrap_or(""));
    assert!(other_url.contains("/ocpi/2.3.0/"), "{other_url}");
    let location = examples::location(PartnerVersion::V230, "LOC1", T0);
    let answer = peer.send(Method::PUT, &other_url, Some(&location)).await;
    assert_eq!(answer.status, 404, "{answer:?}");

    let details_211 = peer.send(Method::GET, &details_url("2.1.1"), None).await;
    let endpoints = details_211.body["data"]["endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!endpoints.is_empty());
    assert!(endpoints.iter().all(|e| e.get("role").is_none()));

    peer.put_location_with(&[], T0).await.assert_accepted();
}

#[tokio::test]
async fn a_230_partner_publishes_roles_and_requires_the_221_headers() {
    let peer = Peer::of(PartnerVersion::V230).await;
    let versions = peer
        .send(Method::GET, &peer.partner.versions_url(), None)
        .await;
    assert_eq!(versions.body["data"][0]["version"], "2.3.0");
    let details_url = versions.body["data"][0]["url"].as_str().unwrap_or_default();
    let details = peer.send(Method::GET, details_url, None).await;
    let endpoints = details.body["data"]["endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(endpoints
        .iter()
        .any(|e| e["identifier"] == "tariffs" && e["role"] == "RECEIVER"));

    let url = peer.url("locations", &["NL", "CPO", "LOC1"]);
    let location = examples::location(PartnerVersion::V230, "LOC1", T0);
    let token = base64_token(&peer);
    let answer = reqwest::Client::new()
        .put(&url)
        .header("Authorization", format!("Token {token}"))
        .json(&location)
        .send()
        .await
        .expect("an answer");
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    assert_eq!(body["status_code"], 2001);
    assert!(body["status_message"]
        .as_str()
        .is_some_and(|m| m.contains("missing header x-request-id")));
}

fn base64_token(peer: &Peer) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(&peer.partner.options().token)
}

// ---- the request log -------------------------------------------------------------------------

#[tokio::test]
async fn refused_requests_are_recorded_with_their_reason() {
    let peer = Peer::of(PartnerVersion::V221).await;
    peer.put_location_with(&[], T0).await.assert_accepted();
    let mut evse = examples::evse(PartnerVersion::V221, "E1", "AVAILABLE", T1);
    evse.as_object_mut().map(|e| e.remove("connectors"));
    peer.put("locations", &["NL", "CPO", "LOC1", "E1"], &evse)
        .await
        .assert_refused_2001(&["connectors"]);
    peer.put(
        "locations",
        &["NL", "CPO", "NOPE", "E1"],
        &examples::evse(PartnerVersion::V221, "E1", "AVAILABLE", T1),
    )
    .await;
    let requests = peer.partner.requests();
    let [accepted, refused, unknown] = &requests[requests.len() - 3..] else {
        panic!("three requests expected: {requests:?}");
    };
    assert_eq!(
        (accepted.http_status, accepted.ocpi_status),
        (Some(201), Some(1000))
    );
    assert_eq!(accepted.refusal, None);
    assert_eq!(
        (refused.http_status, refused.ocpi_status),
        (Some(400), Some(2001))
    );
    let reason = refused.refusal.as_deref().unwrap_or_default();
    assert!(
        reason.contains("EVSE") && reason.contains("connectors: field required"),
        "{reason}"
    );
    assert_eq!(unknown.http_status, Some(404));
    assert_eq!(
        unknown.refusal.as_deref(),
        Some("OCPI 2003: Unknown Location")
    );
    assert!(refused.seq < unknown.seq);
}
