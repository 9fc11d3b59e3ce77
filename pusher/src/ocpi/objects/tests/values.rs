// Why this file exists: the tests of the value rules: enum values per version, string lengths
// and characters, DateTime syntax.

use super::*;

// ---- enums

#[test]
fn a_token_type_2_1_1_does_not_know_is_refused() {
    let mut token = token_211();
    token["type"] = json!("APP_USER");
    assert_eq!(
        violations(whole(V211, ObjectKind::Token, &token)),
        [r#"type: one of RFID, OTHER (OCPI 2.1.1), found "APP_USER""#]
    );
    let mut token = token_221();
    token["type"] = json!("APP_USER");
    assert!(whole(V221, ObjectKind::Token, &token).is_ok());
}

#[test]
fn enum_values_added_in_2_3_0_are_refused_in_2_2_1() {
    let mut token = token_221();
    token["type"] = json!("EMAID");
    assert_eq!(
        violations(whole(V221, ObjectKind::Token, &token)),
        [r#"type: one of AD_HOC_USER, APP_USER, OTHER, RFID (OCPI 2.2.1), found "EMAID""#]
    );
    let mut connector = connector_221("1");
    connector["standard"] = json!("MCS");
    assert_eq!(
        violations(whole(V221, ObjectKind::Connector, &connector)).len(),
        1
    );
    assert!(whole(V230, ObjectKind::Connector, &connector).is_ok());
}

#[test]
fn an_open_enum_of_2_3_0_is_still_checked_against_its_listed_values() {
    let mut connector = connector_230("1");
    connector["standard"] = json!("X_CUSTOM_PLUG");
    let rules = violations(whole(V230, ObjectKind::Connector, &connector));
    assert_eq!(rules.len(), 1);
    assert!(
        rules[0].starts_with("standard: one of CHADEMO, CHAOJI, "),
        "{rules:?}"
    );
    assert!(
        rules[0].ends_with(r#"TESLA_S (OCPI 2.3.0), found "X_CUSTOM_PLUG""#),
        "{rules:?}"
    );
}

#[test]
fn an_enum_value_inside_an_array_is_named_by_its_index() {
    let mut evse = evse_221();
    evse["capabilities"] = json!(["RFID_READER", "rfid_reader"]);
    let rules = violations(whole(V221, ObjectKind::Evse, &evse));
    assert_eq!(rules.len(), 1);
    assert!(
        rules[0].starts_with("capabilities[1]: one of "),
        "{rules:?}"
    );
}

#[test]
fn tax_included_knows_n_a() {
    let mut tariff = tariff_230();
    tariff["tax_included"] = json!("N/A");
    assert!(whole(V230, ObjectKind::Tariff, &tariff).is_ok());
    tariff["tax_included"] = json!(true);
    assert_eq!(
        violations(whole(V230, ObjectKind::Tariff, &tariff)),
        ["tax_included: a string (TaxIncluded), found a boolean"]
    );
}

// ---- lengths

#[test]
fn an_id_of_37_characters_is_refused_where_the_spec_allows_36() {
    let id = "L".repeat(37);
    for (version, object, body) in [
        (V221, ObjectKind::Location, location_221()),
        (V230, ObjectKind::Session, session_230()),
        (V211, ObjectKind::Tariff, tariff_211()),
    ] {
        let mut body = body;
        body["id"] = json!(id);
        assert_eq!(
            violations(whole(version, object, &body)),
            ["id: at most 36 characters, found 37"],
            "{version} {object}"
        );
    }
    let mut evse = evse_221();
    evse["uid"] = json!("E".repeat(40));
    assert_eq!(
        violations(whole(V221, ObjectKind::Evse, &evse)),
        ["uid: at most 36 characters, found 40"]
    );
}

#[test]
fn a_cdr_id_may_have_39_characters_but_not_40() {
    for (version, cdr) in [(V221, cdr_221()), (V230, cdr_230())] {
        let mut cdr = cdr;
        cdr["id"] = json!("C".repeat(39));
        assert!(whole(version, ObjectKind::Cdr, &cdr).is_ok(), "{version}");
        cdr["id"] = json!("C".repeat(40));
        assert_eq!(
            violations(whole(version, ObjectKind::Cdr, &cdr)),
            ["id: at most 39 characters, found 40"],
            "{version}"
        );
    }
}

#[test]
fn a_2_1_1_cdr_id_is_a_ci_string_of_36_and_its_location_id_a_string_of_39() {
    let mut cdr = cdr_211();
    cdr["id"] = json!("C".repeat(37));
    cdr["location"]["id"] = json!("L".repeat(39));
    assert_eq!(
        violations(whole(V211, ObjectKind::Cdr, &cdr)),
        ["id: at most 36 characters, found 37"]
    );
}

#[test]
fn short_codes_have_their_lengths() {
    let mut location = location_221();
    location["country_code"] = json!("NLD");
    location["party_id"] = json!("CPOX");
    location["country"] = json!("NEDERLAND");
    assert_eq!(
        violations(whole(V221, ObjectKind::Location, &location)),
        [
            "country_code: at most 2 characters, found 3",
            "party_id: at most 3 characters, found 4",
            "country: at most 3 characters, found 9",
        ]
    );
    let mut session = session_221();
    session["currency"] = json!("EURO");
    assert_eq!(
        violations(whole(V221, ObjectKind::Session, &session)),
        ["currency: at most 3 characters, found 4"]
    );
}

#[test]
fn an_address_longer_than_45_characters_is_valid_only_from_2_3_0() {
    let long = location_230()["address"].clone();
    let mut location = location_221();
    location["address"] = long;
    assert_eq!(
        violations(whole(V221, ObjectKind::Location, &location)),
        ["address: at most 45 characters, found 63"]
    );
}

#[test]
fn lengths_count_characters_not_bytes_and_strings_may_be_utf8() {
    let mut location = location_221();
    location["address"] = json!("Ä".repeat(45));
    location["city"] = json!("Düsseldorf");
    assert!(whole(V221, ObjectKind::Location, &location).is_ok());
}

#[test]
fn a_ci_string_must_be_printable_ascii_and_a_string_free_of_control_characters() {
    let mut evse = evse_221();
    evse["uid"] = json!("EVSÉ-1");
    evse["physical_reference"] = json!("P\n1");
    assert_eq!(
        violations(whole(V221, ObjectKind::Evse, &evse)),
        [
            "uid: printable ASCII (CiString), found U+00C9 at character 4",
            "physical_reference: no control characters, found U+000A at character 2",
        ]
    );
}

// ---- DateTime

#[test]
fn a_date_time_must_be_utc_with_a_z() {
    for (found, rule) in [
        (
            "2020-01-01 10:00",
            r#"an RFC 3339 UTC date-time ending in Z, found "2020-01-01 10:00""#,
        ),
        (
            "2026-03-01T08:00:00",
            r#"an RFC 3339 UTC date-time ending in Z, found "2026-03-01T08:00:00""#,
        ),
        (
            "2026-03-01T08:00:00+00:00",
            r#"an RFC 3339 UTC date-time ending in Z, found "2026-03-01T08:00:00+00:00""#,
        ),
        (
            "yesterday",
            r#"an RFC 3339 UTC date-time ending in Z, found "yesterday""#,
        ),
        (
            "2026-02-29T08:00:00Z",
            r#"an RFC 3339 UTC date-time ending in Z, found "2026-02-29T08:00:00Z""#,
        ),
        (
            "2026-03-01T24:00:00Z",
            r#"an RFC 3339 UTC date-time ending in Z, found "2026-03-01T24:00:00Z""#,
        ),
        (
            "2026-03-01T08:00:00.Z",
            r#"an RFC 3339 UTC date-time ending in Z, found "2026-03-01T08:00:00.Z""#,
        ),
        (
            "2026-03-01t08:00:00z",
            r#"an RFC 3339 UTC date-time ending in Z, found "2026-03-01t08:00:00z""#,
        ),
    ] {
        for version in VERSIONS {
            let mut connector = examples(version)[2].1.clone();
            connector["last_updated"] = json!(found);
            assert_eq!(
                violations(whole(version, ObjectKind::Connector, &connector)),
                [format!("last_updated: {rule}")],
                "{version} {found}"
            );
        }
    }
}

#[test]
fn a_date_time_may_have_fractional_seconds_within_25_characters() {
    for found in [
        "2026-03-01T08:00:00.1Z",
        "2026-03-01T08:00:00.123Z",
        "2026-03-01T08:00:00.1234Z",
        "2024-02-29T23:59:59Z",
    ] {
        let mut connector = connector_221("1");
        connector["last_updated"] = json!(found);
        assert!(
            whole(V221, ObjectKind::Connector, &connector).is_ok(),
            "{found}"
        );
    }
    let mut connector = connector_221("1");
    connector["last_updated"] = json!("2026-03-01T08:00:00.123456Z");
    assert_eq!(
        violations(whole(V221, ObjectKind::Connector, &connector)),
        ["last_updated: at most 25 characters (DateTime), found 27"]
    );
}

#[test]
fn a_date_time_is_a_string() {
    let mut session = session_221();
    session["start_date_time"] = json!(1_772_352_000);
    assert_eq!(
        violations(whole(V221, ObjectKind::Session, &session)),
        ["start_date_time: a date-time string, found a number"]
    );
}
