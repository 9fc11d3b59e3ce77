// Why this file exists: the unit tests of the pre-send check: every valid example passes, and
// each rule, broken once, is reported with its exact path and rule.

mod alloc_count;
mod examples;
mod structure;
mod values;

use serde_json::{json, Value};

use super::*;
use examples::*;

const V211: OcpiVersion = OcpiVersion::V211;
const V221: OcpiVersion = OcpiVersion::V221;
const V230: OcpiVersion = OcpiVersion::V230;
const VERSIONS: [OcpiVersion; 3] = [V211, V221, V230];

fn whole(version: OcpiVersion, object: ObjectKind, body: &Value) -> Result<(), Invalid> {
    check(version, object, body, Completeness::Whole)
}

fn patch(version: OcpiVersion, object: ObjectKind, body: &Value) -> Result<(), Invalid> {
    check(version, object, body, Completeness::Patch)
}

/// The violations as `path: rule` lines, for exact comparison.
fn violations(result: Result<(), Invalid>) -> Vec<String> {
    match result {
        Ok(()) => Vec::new(),
        Err(e) => e
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.path, v.rule))
            .collect(),
    }
}

fn examples(version: OcpiVersion) -> [(ObjectKind, Value); 7] {
    match version {
        OcpiVersion::V211 => [
            (ObjectKind::Location, location_211()),
            (ObjectKind::Evse, evse_211()),
            (ObjectKind::Connector, connector_211("1")),
            (ObjectKind::Session, session_211()),
            (ObjectKind::Cdr, cdr_211()),
            (ObjectKind::Tariff, tariff_211()),
            (ObjectKind::Token, token_211()),
        ],
        OcpiVersion::V221 => [
            (ObjectKind::Location, location_221()),
            (ObjectKind::Evse, evse_221()),
            (ObjectKind::Connector, connector_221("1")),
            (ObjectKind::Session, session_221()),
            (ObjectKind::Cdr, cdr_221()),
            (ObjectKind::Tariff, tariff_221()),
            (ObjectKind::Token, token_221()),
        ],
        OcpiVersion::V230 => [
            (ObjectKind::Location, location_230()),
            (ObjectKind::Evse, evse_230()),
            (ObjectKind::Connector, connector_230("1")),
            (ObjectKind::Session, session_230()),
            (ObjectKind::Cdr, cdr_230()),
            (ObjectKind::Tariff, tariff_230()),
            (ObjectKind::Token, token_230()),
        ],
    }
}

// ---- valid objects pass

#[test]
fn every_complete_example_of_every_version_is_valid() {
    for version in VERSIONS {
        for (object, body) in examples(version) {
            assert_eq!(
                violations(whole(version, object, &body)),
                Vec::<String>::new(),
                "{version} {object}"
            );
        }
    }
}

#[test]
fn every_example_is_valid_as_a_patch_too() {
    for version in VERSIONS {
        for (object, body) in examples(version) {
            assert!(patch(version, object, &body).is_ok(), "{version} {object}");
        }
    }
}

#[test]
fn a_minimal_object_with_only_the_required_fields_is_valid() {
    let connector = json!({"id": "1", "standard": "CHADEMO", "format": "CABLE",
        "power_type": "DC", "max_voltage": 500, "max_amperage": 125, "last_updated": T});
    let evse = json!({"uid": "E1", "status": "CHARGING", "connectors": [connector],
        "last_updated": T});
    assert!(whole(V221, ObjectKind::Evse, &evse).is_ok());
    assert!(whole(V230, ObjectKind::Evse, &evse).is_ok());
}

// ---- reporting

#[test]
fn a_violation_displays_its_field_and_rule() {
    let v = Violation {
        path: "evses[0].connectors".into(),
        rule: "required (1..*), missing".into(),
    };
    assert_eq!(
        v.to_string(),
        "field `evses[0].connectors`: required (1..*), missing"
    );
}

#[test]
fn violations_are_capped_at_ten_in_document_order_and_summarised() {
    let body = json!({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8, "i": 9,
                      "j": 10, "k": 11, "l": 12});
    let err = whole(V221, ObjectKind::Evse, &body).unwrap_err();
    assert_eq!(err.violations.len(), MAX_VIOLATIONS);
    assert_eq!(err.violations[0].path, "a");
    assert_eq!(err.violations[9].path, "j");
    assert_eq!(
        err.to_string(),
        "OCPI 2.2.1 EVSE is not valid: field `a`: not a field of OCPI 2.2.1 EVSE; \
         field `b`: not a field of OCPI 2.2.1 EVSE; field `c`: not a field of OCPI 2.2.1 EVSE; \
         ... (and 7 more)"
    );
}

#[test]
fn a_long_found_value_is_cut_in_the_rule() {
    let mut token = token_211();
    token["type"] = json!("X".repeat(100));
    let rules = violations(whole(V211, ObjectKind::Token, &token));
    assert_eq!(
        rules,
        [format!(
            "type: one of RFID, OTHER (OCPI 2.1.1), found \"{}\"...",
            "X".repeat(40)
        )]
    );
}

// ---- fields() and the tables

#[test]
fn fields_lists_the_top_level_fields_and_what_is_required() {
    let evse = fields(V221, ObjectKind::Evse);
    let connectors = evse
        .iter()
        .find(|f| f.name == "connectors")
        .expect("connectors");
    assert!(connectors.required);
    assert_eq!(connectors.cardinality, Cardinality::NonEmptyList);
    let names = |v, o| fields(v, o).iter().map(|f| f.name).collect::<Vec<_>>();
    assert!(names(V211, ObjectKind::Connector).contains(&"voltage"));
    assert!(!names(V211, ObjectKind::Connector).contains(&"max_voltage"));
    assert!(names(V230, ObjectKind::Location).contains(&"help_phone"));
    let required = |v, o| {
        fields(v, o)
            .iter()
            .filter(|f| f.required)
            .map(|f| f.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        required(V211, ObjectKind::Session),
        [
            "id",
            "start_datetime",
            "kwh",
            "auth_id",
            "auth_method",
            "location",
            "currency",
            "status",
            "last_updated"
        ]
    );
    assert!(required(V230, ObjectKind::Tariff).contains(&"tax_included"));
    assert!(!required(V221, ObjectKind::Tariff).contains(&"tax_included"));
}

#[test]
fn every_table_is_consistent() {
    // The engine tracks present fields in a u64; required means card. 1 or +; names are unique.
    fn visit(def: &'static ObjectDef, seen: &mut Vec<*const ObjectDef>) {
        if seen.iter().any(|d| std::ptr::eq(*d, def)) {
            return;
        }
        seen.push(def);
        assert!(def.fields.len() <= 64, "{}", def.name);
        for (i, f) in def.fields.iter().enumerate() {
            let required = matches!(f.cardinality, Cardinality::One | Cardinality::NonEmptyList);
            assert_eq!(f.required, required, "{}.{}", def.name, f.name);
            assert!(
                !def.fields[..i].iter().any(|g| g.name == f.name),
                "{}.{}",
                def.name,
                f.name
            );
            if let FieldKind::Object(nested) = f.kind {
                visit(nested, seen);
            }
        }
        for name in def.exactly_one_of {
            assert!(
                def.fields.iter().any(|f| f.name == *name && !f.required),
                "{}",
                def.name
            );
        }
    }
    for version in VERSIONS {
        for (object, _) in examples(version) {
            let mut seen = Vec::new();
            visit(super::definition(version, object), &mut seen);
            assert!(fields(version, object)
                .iter()
                .any(|f| f.name == "last_updated" && f.required));
        }
    }
}

// ---- cost

#[test]
fn a_valid_2_2_1_evse_with_two_connectors_is_checked_without_allocating() {
    let evse = evse_221();
    let allocations = alloc_count::during(|| {
        assert!(check(V221, ObjectKind::Evse, &evse, Completeness::Whole).is_ok());
    });
    assert_eq!(allocations, 0);
    let location = location_230();
    let allocations = alloc_count::during(|| {
        assert!(check(V230, ObjectKind::Location, &location, Completeness::Whole).is_ok());
    });
    assert_eq!(allocations, 0);
    // The counter does count: describing a violation allocates.
    let allocations = alloc_count::during(|| {
        assert!(check(V221, ObjectKind::Evse, &json!({}), Completeness::Whole).is_err());
    });
    assert!(allocations > 0);
}
