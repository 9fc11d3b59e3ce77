// Why this file exists: the tests of the structure rules: required fields and cardinalities,
// unknown fields (fields of other versions), nested objects, PATCH bodies, JSON types and null.

use super::*;

// ---- EVSE.connectors is 1..* in every version

#[test]
fn an_evse_without_connectors_is_refused_in_every_version() {
    for version in VERSIONS {
        let mut evse = examples(version)[1].1.clone();
        evse.as_object_mut().map(|m| m.remove("connectors"));
        assert_eq!(
            violations(whole(version, ObjectKind::Evse, &evse)),
            ["connectors: required (1..*), missing"],
            "{version}"
        );
    }
}

#[test]
fn an_evse_with_an_empty_connector_list_is_refused_in_every_version() {
    for version in VERSIONS {
        let mut evse = examples(version)[1].1.clone();
        evse["connectors"] = json!([]);
        let err = whole(version, ObjectKind::Evse, &evse).unwrap_err();
        assert_eq!(err.violations.len(), 1, "{version}: {err}");
        assert_eq!(err.violations[0].path, "connectors");
        assert_eq!(err.violations[0].rule, "at least 1 element");
        assert_eq!(
            err.to_string(),
            format!("OCPI {version} EVSE is not valid: field `connectors`: at least 1 element")
        );
    }
}

#[test]
fn a_location_with_an_evse_missing_its_status_names_the_nested_path() {
    let mut location = location_221();
    location["evses"][0]
        .as_object_mut()
        .map(|m| m.remove("status"));
    assert_eq!(
        violations(whole(V221, ObjectKind::Location, &location)),
        ["evses[0].status: required (1), missing"]
    );
    let mut location = location_211();
    location["evses"][0]["connectors"][1]
        .as_object_mut()
        .map(|m| m.remove("voltage"));
    assert_eq!(
        violations(whole(V211, ObjectKind::Location, &location)),
        ["evses[0].connectors[1].voltage: required (1), missing"]
    );
}

// ---- unknown fields, fields of other versions

#[test]
fn a_2_2_1_field_sent_to_a_2_1_1_partner_is_an_unknown_field() {
    let mut connector = connector_211("1");
    connector["max_voltage"] = json!(230);
    assert_eq!(
        violations(whole(V211, ObjectKind::Connector, &connector)),
        ["max_voltage: not a field of OCPI 2.1.1 Connector"]
    );
    let mut location = location_211();
    location["country_code"] = json!("NL");
    location["evses"][0]["connectors"][0]["tariff_ids"] = json!(["AC-STANDARD"]);
    assert_eq!(
        violations(whole(V211, ObjectKind::Location, &location)),
        [
            "evses[0].connectors[0].tariff_ids: not a field of OCPI 2.1.1 Connector",
            "country_code: not a field of OCPI 2.1.1 Location",
        ]
    );
}

#[test]
fn a_2_1_1_connector_has_voltage_and_amperage() {
    assert!(whole(V211, ObjectKind::Connector, &connector_211("1")).is_ok());
    let rules = violations(whole(V221, ObjectKind::Connector, &connector_211("1")));
    assert!(
        rules.contains(&"voltage: not a field of OCPI 2.2.1 Connector".to_string()),
        "{rules:?}"
    );
    assert!(
        rules.contains(&"max_voltage: required (1), missing".to_string()),
        "{rules:?}"
    );
}

#[test]
fn a_2_3_0_field_sent_to_a_2_2_1_partner_is_an_unknown_field() {
    let mut location = location_221();
    location["help_phone"] = json!("+31 30 123 4567");
    location["evses"][0]["parking"] = json!([{"parking_id": "BAY-4"}]);
    assert_eq!(
        violations(whole(V221, ObjectKind::Location, &location)),
        [
            "evses[0].parking: not a field of OCPI 2.2.1 EVSE",
            "help_phone: not a field of OCPI 2.2.1 Location",
        ]
    );
}

#[test]
fn the_environmental_impact_category_is_source_in_2_1_1_and_category_later() {
    let mut location = location_211();
    location["energy_mix"]["environ_impact"] = json!([{"category": "CARBON_DIOXIDE", "amount": 1}]);
    assert_eq!(
        violations(whole(V211, ObjectKind::Location, &location)),
        [
            "energy_mix.environ_impact[0].category: not a field of OCPI 2.1.1 EnvironmentalImpact",
            "energy_mix.environ_impact[0].source: required (1), missing",
        ]
    );
}

// ---- 2.3.0 prices and tariffs

#[test]
fn a_2_3_0_tariff_needs_tax_included() {
    let mut tariff = tariff_230();
    tariff.as_object_mut().map(|m| m.remove("tax_included"));
    assert_eq!(
        violations(whole(V230, ObjectKind::Tariff, &tariff)),
        ["tax_included: required (1), missing"]
    );
    assert_eq!(
        violations(whole(V221, ObjectKind::Tariff, &tariff_230())),
        [
            "min_price.before_taxes: not a field of OCPI 2.2.1 Price",
            "min_price.after_taxes: not a field of OCPI 2.2.1 Price",
            "min_price.excl_vat: required (1), missing",
            "tax_included: not a field of OCPI 2.2.1 Tariff",
        ]
    );
}

#[test]
fn a_2_3_0_price_has_before_taxes_and_taxes() {
    let mut session = session_230();
    session["total_cost"] =
        json!({"before_taxes": 3.57, "taxes": [{"name": "VAT", "amount": 0.75}]});
    assert!(whole(V230, ObjectKind::Session, &session).is_ok());
    session["total_cost"] = json!({"before_taxes": 3.57});
    assert!(whole(V230, ObjectKind::Session, &session).is_ok());
    session["total_cost"] = json!({"before_taxes": 3.57, "taxes": [{"name": "VAT"}]});
    assert_eq!(
        violations(whole(V230, ObjectKind::Session, &session)),
        ["total_cost.taxes[0].amount: required (1), missing"]
    );
}

#[test]
fn a_2_2_1_price_is_refused_in_2_3_0() {
    let mut cdr = cdr_230();
    cdr["total_cost"] = json!({"excl_vat": 3.57, "incl_vat": 4.32});
    assert_eq!(
        violations(whole(V230, ObjectKind::Cdr, &cdr)),
        [
            "total_cost.excl_vat: not a field of OCPI 2.3.0 Price",
            "total_cost.incl_vat: not a field of OCPI 2.3.0 Price",
            "total_cost.before_taxes: required (1), missing",
        ]
    );
}

// ---- 2.1.1 Sessions, Hours

#[test]
fn a_2_1_1_session_needs_auth_id_and_location() {
    let mut session = session_211();
    let map = session.as_object_mut().expect("an object");
    map.remove("auth_id");
    map.remove("location");
    assert_eq!(
        violations(whole(V211, ObjectKind::Session, &session)),
        [
            "auth_id: required (1), missing",
            "location: required (1), missing"
        ]
    );
    // ... and the 2.2.1 way of naming them is not 2.1.1.
    let mut session = session_211();
    session["cdr_token"] = json!({"uid": "012345678"});
    assert_eq!(
        violations(whole(V211, ObjectKind::Session, &session)),
        ["cdr_token: not a field of OCPI 2.1.1 Session"]
    );
}

#[test]
fn a_2_1_1_session_checks_its_embedded_location_whole() {
    let mut session = session_211();
    session["location"]["evses"][0]["connectors"] = json!([]);
    assert_eq!(
        violations(whole(V211, ObjectKind::Session, &session)),
        ["location.evses[0].connectors: at least 1 element"]
    );
}

#[test]
fn a_2_1_1_hours_has_either_regular_hours_or_twentyfourseven() {
    let mut location = location_211();
    location["opening_times"] = json!({"twentyfourseven": true});
    assert!(whole(V211, ObjectKind::Location, &location).is_ok());
    location["opening_times"]["regular_hours"] = json!([]);
    assert_eq!(
        violations(whole(V211, ObjectKind::Location, &location)),
        ["opening_times: exactly one of `regular_hours`, `twentyfourseven` (OCPI 2.1.1 Hours), found both"]
    );
    location["opening_times"] = json!({});
    assert_eq!(
        violations(whole(V211, ObjectKind::Location, &location)),
        ["opening_times: exactly one of `regular_hours`, `twentyfourseven` (OCPI 2.1.1 Hours), found none"]
    );
    // 2.2.1 requires twentyfourseven.
    let mut location = location_221();
    location["opening_times"] = json!({"regular_hours": []});
    assert_eq!(
        violations(whole(V221, ObjectKind::Location, &location)),
        ["opening_times.twentyfourseven: required (1), missing"]
    );
}

// ---- PATCH

#[test]
fn a_patch_with_status_and_last_updated_is_valid() {
    let body = json!({"status": "CHARGING", "last_updated": T});
    for version in VERSIONS {
        assert!(patch(version, ObjectKind::Evse, &body).is_ok(), "{version}");
    }
}

#[test]
fn a_patch_without_last_updated_is_refused_from_2_2_1_but_not_in_2_1_1() {
    let body = json!({"status": "CHARGING"});
    for version in [V221, V230] {
        assert_eq!(
            violations(patch(version, ObjectKind::Evse, &body)),
            [format!(
                "last_updated: required in a PATCH (OCPI {version}), missing"
            )]
        );
    }
    assert!(patch(V211, ObjectKind::Evse, &body).is_ok());
}

#[test]
fn a_patch_with_a_bad_enum_value_is_refused() {
    let body = json!({"status": "BROKEN", "last_updated": T});
    assert_eq!(
        violations(patch(V221, ObjectKind::Evse, &body)),
        [
            r#"status: one of AVAILABLE, BLOCKED, CHARGING, INOPERATIVE, OUTOFORDER, PLANNED, REMOVED, RESERVED, UNKNOWN (OCPI 2.2.1), found "BROKEN""#
        ]
    );
}

#[test]
fn a_patch_checks_nested_objects_whole() {
    let body = json!({"coordinates": {"latitude": "52.1"}, "last_updated": T});
    assert_eq!(
        violations(patch(V221, ObjectKind::Location, &body)),
        ["coordinates.longitude: required (1), missing"]
    );
    let body = json!({"evses": [{"uid": "E2", "status": "PLANNED", "last_updated": T}]});
    assert_eq!(
        violations(patch(V211, ObjectKind::Location, &body)),
        ["evses[0].connectors: required (1..*), missing"]
    );
}

#[test]
fn a_patch_refuses_unknown_fields_and_null() {
    let body = json!({"voltage": 230, "tariff_ids": null, "last_updated": T});
    assert_eq!(
        violations(patch(V221, ObjectKind::Connector, &body)),
        [
            "voltage: not a field of OCPI 2.2.1 Connector",
            "tariff_ids: null is not allowed: leave the field out",
        ]
    );
}

// ---- types, null, the object itself

#[test]
fn null_is_refused_for_required_and_optional_fields() {
    let mut evse = evse_221();
    evse["status"] = Value::Null;
    evse["evse_id"] = Value::Null;
    assert_eq!(
        violations(whole(V221, ObjectKind::Evse, &evse)),
        [
            "evse_id: null is not allowed: leave the field out",
            "status: required (1), found null",
        ]
    );
}

#[test]
fn wrong_json_types_are_named() {
    let mut connector = connector_221("1");
    connector["max_voltage"] = json!(230.5);
    connector["max_amperage"] = json!("32");
    connector["tariff_ids"] = json!("AC-STANDARD");
    assert_eq!(
        violations(whole(V221, ObjectKind::Connector, &connector)),
        [
            "max_voltage: an integer, found 230.5",
            "max_amperage: an integer, found a string",
            "tariff_ids: an array (*), found a string",
        ]
    );
    let mut session = session_221();
    session["kwh"] = json!("12.5");
    session["cdr_token"] = json!([]);
    assert_eq!(
        violations(whole(V221, ObjectKind::Session, &session)),
        [
            "kwh: a number, found a string",
            "cdr_token: a JSON object, found an array"
        ]
    );
}

#[test]
fn an_int_of_n_digits_is_bounded() {
    let mut evse = evse_221();
    evse["images"][0]["width"] = json!(123_456);
    assert_eq!(
        violations(whole(V221, ObjectKind::Evse, &evse)),
        ["images[0].width: an integer of at most 5 digits, found 123456"]
    );
}

#[test]
fn a_body_that_is_not_an_object_is_a_violation_of_the_object_itself() {
    let err = whole(V221, ObjectKind::Tariff, &json!([])).unwrap_err();
    assert_eq!(
        err.violations,
        [Violation {
            path: String::new(),
            rule: "a JSON object, found an array".into()
        }]
    );
    assert_eq!(
        err.to_string(),
        "OCPI 2.2.1 Tariff is not valid: the object: a JSON object, found an array"
    );
}
