//! The start-up coverage check on the shipped example mapping and on broken variants of it.

use super::check;
use crate::mapping::{MappingConfig, OcpiVersion};

const MAPPING: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../config/ocpi-example/mapping.toml"
);

const V211: OcpiVersion = OcpiVersion::V211;
const V221: OcpiVersion = OcpiVersion::V221;
const V230: OcpiVersion = OcpiVersion::V230;

fn example_text() -> String {
    std::fs::read_to_string(MAPPING).unwrap_or_else(|e| panic!("{MAPPING}: {e}"))
}

fn parsed(text: &str) -> MappingConfig {
    MappingConfig::parse(text, "test mapping").unwrap_or_else(|e| panic!("{e}"))
}

fn problem(config: &MappingConfig, table: &str, version: OcpiVersion) -> String {
    let mapping = config
        .by_name(table)
        .unwrap_or_else(|| panic!("{table} not mapped"));
    match check(mapping, version) {
        Ok(()) => panic!("{table} passed for {version}"),
        Err(problem) => problem,
    }
}

#[test]
fn the_example_mapping_covers_every_module_for_every_version_but_stored_cdrs() {
    let config = parsed(&example_text());
    for table in &config.tables {
        for version in OcpiVersion::ALL {
            let cdr_of_other_version = table.table == "cdrs" && version != V221;
            match check(table, version) {
                Ok(()) => assert!(
                    !cdr_of_other_version,
                    "{} passed for {version}",
                    table.table
                ),
                Err(problem) => assert!(
                    cdr_of_other_version,
                    "{} for {version}: {problem}",
                    table.qualified_name()
                ),
            }
        }
    }
}

#[test]
fn a_body_column_written_for_2_2_1_is_refused_for_2_1_1_and_2_3_0_partners() {
    let config = parsed(&example_text());
    for version in [V211, V230] {
        let p = problem(&config, "ocpi.cdrs", version);
        assert!(
            p.contains("body_column") && p.contains("2.2.1") && p.contains(version.as_str()),
            "{p}"
        );
        assert!(p.contains("modules"), "the fix is named: {p}");
    }
}

#[test]
fn a_required_field_left_unmapped_is_refused_naming_it() {
    let text = example_text().replace("currency = \"currency\"\n", "");
    let config = parsed(&text);
    let p = problem(&config, "ocpi.tariffs", V221);
    assert!(p.contains("requires `currency`"), "{p}");
}

#[test]
fn a_field_the_version_does_not_define_is_refused() {
    let text = example_text().replace(
        "meter_id = \"meter_id\"",
        "meter_id = \"meter_id\"\nconnector_id_211 = { column = \"connector_id\" }",
    );
    let config = parsed(&text);
    let p = problem(&config, "ocpi.sessions", V221);
    assert!(p.contains("`connector_id_211` is not part of"), "{p}");
}

#[test]
fn a_nested_object_missing_a_required_field_is_refused() {
    let text = example_text();
    let longitude = text
        .lines()
        .find(|l| l.starts_with("\"coordinates.longitude\""))
        .expect("the example maps coordinates.longitude");
    let config = parsed(&text.replace(&format!("{longitude}\n"), ""));
    let p = problem(&config, "ocpi.locations", V221);
    assert!(p.contains("`coordinates.longitude`"), "{p}");
}

#[test]
fn an_evse_without_its_connectors_linked_is_refused() {
    let text = example_text();
    let start = text
        .find("[[table.children]]\ntable = \"ocpi.connectors\"")
        .expect("the example links the connectors");
    let end = start
        + text[start..]
            .find("\n\n")
            .expect("a blank line after the link");
    let unlinked = format!("{}{}", &text[..start], &text[end..]);
    // The sessions' embedded Location keeps one connector: without the link it has none.
    let unlinked = unlinked.replace(", \"ocpi.connectors\" = { id = \"connector_id\" }", "");
    let config = parsed(&unlinked);
    let p = problem(&config, "ocpi.evses", V221);
    assert!(p.contains("requires `connectors` (1..*)"), "{p}");
}
