//! Tests against the shipped example mapping (config/ocpi-example/mapping.toml) and schema.

use std::collections::{BTreeMap, BTreeSet};

use change_message::{Operation, Row, RowChange, Source, CONTRACT_VERSION};
use serde_json::{json, Value};

use super::*;

const MAPPING: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../config/ocpi-example/mapping.toml"
);
const SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../config/ocpi-example/schema.sql"
);

const V211: OcpiVersion = OcpiVersion::V211;
const V221: OcpiVersion = OcpiVersion::V221;

fn config() -> MappingConfig {
    MappingConfig::load(MAPPING).unwrap_or_else(|e| panic!("{e}"))
}

/// The shipped mapping of `ocpi.<table>` as a row mapping: the tables of the Location tree
/// without their `[[table.children]]`, Locations and EVSEs with `update = "patch"`, which is how
/// a mapping without a source database sends them. `render` never reads the children links (a
/// tree's objects are composed in `crate::composite`), so these tests show what one row renders.
fn mapping(table: &str) -> TableMapping {
    let mut m = config()
        .get("ocpi", table)
        .unwrap_or_else(|| panic!("no mapping for ocpi.{table}"))
        .clone();
    if m.module == Module::Locations {
        m.children.clear();
        if m.object() != ObjectKind::Connector {
            m.update = UpdateMode::Patch;
        }
    }
    m
}

fn row(v: Value) -> Row {
    v.as_object().cloned().expect("a JSON object")
}

fn change(
    op: Operation,
    table: &str,
    before: Option<Value>,
    after: Option<Value>,
    changed: &[&str],
) -> RowChange {
    RowChange {
        version: CONTRACT_VERSION,
        id: "binlog.000001:100:0:x".into(),
        seq: 7,
        op,
        database: "ocpi".into(),
        table: table.into(),
        key: Row::new(),
        after: after.map(row),
        before: before.map(row),
        changed: changed.iter().map(|s| s.to_string()).collect(),
        binary_columns: vec![],
        merged: 1,
        source: Source {
            server_id: 1,
            file: "binlog.000001".into(),
            pos: 100,
            row: 0,
            gtid: None,
            tx_index: 0,
            commit_time: "2026-02-01T12:00:00Z".into(),
        },
        snapshot: None,
        too_large: None,
    }
}

fn insert(table: &str, after: Value) -> RowChange {
    change(Operation::Insert, table, None, Some(after), &[])
}

fn update(table: &str, before: Value, after: Value) -> RowChange {
    let (b, a) = (row(before.clone()), row(after.clone()));
    let changed: Vec<&str> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.as_str())
        .collect();
    change(
        Operation::Update,
        table,
        Some(before),
        Some(after),
        &changed,
    )
}

fn delete(table: &str, before: Value) -> RowChange {
    change(Operation::Delete, table, Some(before), None, &[])
}

fn with(mut base: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

fn plan(table: &str, c: &RowChange, version: OcpiVersion) -> PlannedRequest {
    render(&mapping(table), c, version, false).unwrap_or_else(|e| panic!("{e}"))
}

fn plan_err(table: &str, c: &RowChange, version: OcpiVersion) -> MappingError {
    match render(&mapping(table), c, version, false) {
        Ok(p) => panic!("expected an error, got {p}"),
        Err(e) => e,
    }
}

fn ids(p: &PlannedRequest) -> Vec<&str> {
    p.path_ids.iter().map(String::as_str).collect()
}

// ---- rows as the bridge publishes them (DECIMAL as text, DATETIME without zone, JSON as
// JSON or, on MariaDB without metadata, as text, SET as comma-joined text) ----

fn location_row() -> Value {
    json!({"country_code": "NL", "party_id": "EXA", "id": "LOC1", "publish": 1,
           "name": "Stationsplein", "address": "Stationsplein 1", "city": "Utrecht",
           "postal_code": "3511 ED", "state": null, "country": "NLD",
           "latitude": "52.089444", "longitude": "5.110278", "parking_type": "PARKING_LOT",
           "operator_name": "Example Charging", "time_zone": "Europe/Amsterdam",
           "opening_times": "{\"twentyfourseven\": true}", "charging_when_closed": 1,
           "last_updated": "2026-01-05T09:00:00.000"})
}

fn evse_row() -> Value {
    json!({"country_code": "NL", "party_id": "EXA", "location_id": "LOC1", "uid": "EVSE1",
           "evse_id": "NL*EXA*E1", "status": "AVAILABLE",
           "capabilities": "RFID_READER,REMOTE_START_STOP_CAPABLE", "floor_level": "0",
           "latitude": "52.089500", "longitude": "5.110300", "physical_reference": "1",
           "parking_restrictions": null, "last_updated": "2026-01-05T09:00:00.000"})
}

fn connector_row() -> Value {
    json!({"country_code": "NL", "party_id": "EXA", "location_id": "LOC1", "evse_uid": "EVSE1",
           "id": "1", "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE",
           "max_voltage": 230, "max_amperage": 32, "max_electric_power": 22000,
           "tariff_ids": ["TARIFF_AC"], "terms_and_conditions": null,
           "last_updated": "2026-01-05T09:00:00.000"})
}

fn tariff_row() -> Value {
    json!({"country_code": "NL", "party_id": "EXA", "id": "TARIFF_AC", "currency": "EUR",
           "type": "REGULAR", "tariff_alt_text": [{"language": "en", "text": "0.35 EUR/kWh"}],
           "tariff_alt_url": null,
           "elements": "[{\"price_components\": [{\"type\": \"ENERGY\", \"price\": 0.35, \"vat\": 21.0, \"step_size\": 1}]}]",
           "start_date_time": null, "end_date_time": null, "deleted": 0,
           "last_updated": "2026-01-05T09:00:00.000"})
}

fn session_row() -> Value {
    json!({"country_code": "NL", "party_id": "EXA", "id": "SES1",
           "start_date_time": "2026-01-05T10:00:00.000", "end_date_time": null,
           "kwh": "12.3400",
           "cdr_token": {"country_code": "DE", "party_id": "MSP", "uid": "04A1B2C3D4E5F6",
                         "type": "RFID", "contract_id": "DE-MSP-C12345678-9"},
           "auth_method": "WHITELIST", "authorization_reference": null, "location_id": "LOC1",
           "evse_uid": "EVSE1", "connector_id": "1", "meter_id": null, "currency": "EUR",
           "total_cost_excl_vat": "4.3750", "total_cost_incl_vat": "5.2938", "status": "ACTIVE",
           "last_updated": "2026-01-05T10:30:00.250"})
}

fn cdr_object() -> Value {
    json!({"country_code": "NL", "party_id": "EXA", "id": "CDR1",
           "start_date_time": "2026-01-05T10:00:00Z", "end_date_time": "2026-01-05T10:45:00Z",
           "currency": "EUR", "total_cost": {"excl_vat": 4.375}, "total_energy": 12.5,
           "total_time": 0.75, "last_updated": "2026-01-05T10:46:00Z"})
}

fn cdr_row() -> Value {
    json!({"country_code": "NL", "party_id": "EXA", "id": "CDR1", "session_id": "SES1",
           "start_date_time": "2026-01-05T10:00:00.000", "end_date_time": "2026-01-05T10:45:00.000",
           "currency": "EUR", "total_energy": "12.5000", "total_cost_excl_vat": "4.3750",
           "credit": 0, "credit_reference_id": null, "ocpi_object": cdr_object(),
           "last_updated": "2026-01-05T10:46:00.000"})
}

fn token_row(uid: &str, ty: &str) -> Value {
    json!({"country_code": "DE", "party_id": "MSP", "uid": uid, "type": ty,
           "contract_id": "DE-MSP-C12345678-9", "visual_number": null, "issuer": "Example MSP",
           "group_id": null, "valid": 1, "whitelist": "ALLOWED", "language": "de",
           "default_profile_type": null, "last_updated": "2026-01-05T09:00:00.000"})
}

// ---- the shipped files ------------------------------------------------------------------------

#[test]
fn shipped_mapping_covers_the_seven_tables() {
    let c = config();
    let got: Vec<(String, ObjectKind, UpdateMode)> = c
        .tables
        .iter()
        .map(|t| (t.qualified_name(), t.object(), t.update))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "ocpi.locations".into(),
                ObjectKind::Location,
                UpdateMode::Put
            ),
            ("ocpi.evses".into(), ObjectKind::Evse, UpdateMode::Put),
            (
                "ocpi.connectors".into(),
                ObjectKind::Connector,
                UpdateMode::Put
            ),
            ("ocpi.tariffs".into(), ObjectKind::Tariff, UpdateMode::Put),
            (
                "ocpi.sessions".into(),
                ObjectKind::Session,
                UpdateMode::Patch
            ),
            ("ocpi.cdrs".into(), ObjectKind::Cdr, UpdateMode::Put),
            ("ocpi.tokens".into(), ObjectKind::Token, UpdateMode::Put),
        ]
    );
    assert_eq!(
        c.get("ocpi", "cdrs").unwrap().body,
        Body::Column {
            column: "ocpi_object".into(),
            version: V221
        }
    );
    assert!(c.get("ocpi", "nope").is_none());
    let ch = insert("evses", evse_row());
    assert_eq!(c.for_change(&ch).unwrap().table, "evses");
}

/// Column names of each CREATE TABLE in the schema, read crudely: the first word of every line
/// inside the parentheses, minus key and constraint lines.
fn schema_tables(sql: &str) -> (String, BTreeMap<String, (BTreeSet<String>, bool)>) {
    let mut database = String::new();
    let mut tables = BTreeMap::new();
    let mut current: Option<(String, BTreeSet<String>, bool)> = None;
    for line in sql.lines() {
        let line = line.split("--").next().unwrap().trim();
        let upper = line.to_ascii_uppercase();
        if let Some(rest) = upper.strip_prefix("USE ") {
            database = rest.trim_end_matches(';').trim().to_ascii_lowercase();
            continue;
        }
        if upper.starts_with("CREATE TABLE") {
            let name = line.split_whitespace().nth(2).unwrap();
            let name = name.trim_matches(|c| c == '`' || c == '(').to_string();
            current = Some((name, BTreeSet::new(), false));
            continue;
        }
        let Some((_, columns, has_pk)) = current.as_mut() else {
            continue;
        };
        if line.starts_with(')') {
            let (name, columns, has_pk) = current.take().unwrap();
            tables.insert(name, (columns, has_pk));
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        match first.to_ascii_uppercase().as_str() {
            "" => {}
            "PRIMARY" => *has_pk = true,
            "KEY" | "UNIQUE" | "INDEX" | "CONSTRAINT" | "CHECK" | "FOREIGN" | "REFERENCES" => {}
            _ if first.starts_with('\'') => {} // continuation of an ENUM/SET list
            _ if line.starts_with(|c: char| c.is_ascii_lowercase() || c == '`') => {
                columns.insert(first.trim_matches('`').to_string());
            }
            _ => {}
        }
    }
    (database, tables)
}

#[test]
fn shipped_schema_and_mapping_agree() {
    let sql = std::fs::read_to_string(SCHEMA).unwrap();
    let (database, tables) = schema_tables(&sql);
    assert_eq!(database, "ocpi");
    assert_eq!(
        tables.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "cdrs",
            "connectors",
            "evses",
            "locations",
            "sessions",
            "tariffs",
            "tokens"
        ]
    );
    for (name, (columns, has_pk)) in &tables {
        assert!(*has_pk, "table {name} has no PRIMARY KEY");
        assert!(columns.contains("last_updated"), "{name}: {columns:?}");
        assert!(!columns.contains("PRIMARY"), "{name}: {columns:?}");
    }
    assert!(tables["evses"].0.contains("capabilities"));
    assert!(tables["cdrs"].0.contains("ocpi_object"));

    let c = config();
    assert_eq!(c.tables.len(), tables.len(), "every schema table is mapped");
    for t in &c.tables {
        assert_eq!(t.database, database, "{}", t.qualified_name());
        let (columns, _) = tables
            .get(&t.table)
            .unwrap_or_else(|| panic!("{} is not in schema.sql", t.qualified_name()));
        for column in t.columns() {
            assert!(
                columns.contains(column),
                "{}: mapping.toml names column `{column}`, which schema.sql does not have",
                t.qualified_name()
            );
        }
    }

    // Seeds insert into known tables and name known columns.
    let mut seeded = BTreeSet::new();
    for stmt in sql.split("INSERT INTO ").skip(1) {
        let (name, rest) = stmt.split_once('(').unwrap();
        let name = name.trim();
        let cols = rest.split_once(')').unwrap().0;
        for col in cols.split(',') {
            let col = col.trim();
            assert!(
                tables[name].0.contains(col),
                "seed of {name}: unknown column {col}"
            );
        }
        seeded.insert(name.to_string());
    }
    assert_eq!(seeded.len(), tables.len(), "every table has seed rows");
}

// ---- locations --------------------------------------------------------------------------------

#[test]
fn location_insert_is_a_put_of_the_whole_location_with_conversions() {
    let p = plan("locations", &insert("locations", location_row()), V221);
    assert_eq!(p.method, Method::Put);
    assert_eq!(p.module, Module::Locations);
    assert_eq!(p.object, ObjectKind::Location);
    assert_eq!(ids(&p), ["NL", "EXA", "LOC1"]);
    assert!(p.query.is_empty());
    assert_eq!(p.record_id, "locations/NL/EXA/LOC1");
    assert_eq!(
        p.body.unwrap(),
        json!({"country_code": "NL", "party_id": "EXA", "id": "LOC1", "publish": true,
               "name": "Stationsplein", "address": "Stationsplein 1", "city": "Utrecht",
               "postal_code": "3511 ED", "country": "NLD",
               "coordinates": {"latitude": "52.089444", "longitude": "5.110278"},
               "parking_type": "PARKING_LOT", "operator": {"name": "Example Charging"},
               "time_zone": "Europe/Amsterdam", "opening_times": {"twentyfourseven": true},
               "charging_when_closed": true, "last_updated": "2026-01-05T09:00:00.000Z"})
    );
}

#[test]
fn location_body_keeps_the_mapping_order() {
    let p = plan("locations", &insert("locations", location_row()), V221);
    let text = p.body.unwrap().to_string();
    assert!(
        text.starts_with(r#"{"country_code":"NL","party_id":"EXA","id":"LOC1","publish":true"#),
        "{text}"
    );
}

#[test]
fn location_for_211_has_no_country_code_party_id_or_publish() {
    let p = plan("locations", &insert("locations", location_row()), V211);
    assert_eq!(ids(&p), ["NL", "EXA", "LOC1"], "ids stay in the URL");
    let body = p.body.unwrap();
    for absent in [
        "country_code",
        "party_id",
        "publish",
        "state",
        "parking_type",
    ] {
        assert!(body.get(absent).is_none(), "{absent} in {body}");
    }
    assert_eq!(body["type"], "PARKING_LOT");
}

#[test]
fn location_update_patches_changed_fields_and_whole_nested_objects() {
    let before = location_row();
    let after = with(
        before.clone(),
        json!({"name": "Centraal", "longitude": "5.110300",
               "last_updated": "2026-01-06T08:00:00.000"}),
    );
    let p = plan("locations", &update("locations", before, after), V221);
    assert_eq!(p.method, Method::Patch);
    assert_eq!(ids(&p), ["NL", "EXA", "LOC1"]);
    assert_eq!(
        p.body.unwrap(),
        json!({"name": "Centraal",
               "coordinates": {"latitude": "52.089444", "longitude": "5.110300"},
               "last_updated": "2026-01-06T08:00:00.000Z"})
    );
}

#[test]
fn patch_with_no_mapped_change_still_sends_last_updated() {
    let before = location_row();
    let mut c = update("locations", before.clone(), before);
    c.changed = vec!["some_unmapped_column".into()];
    let p = plan("locations", &c, V221);
    assert_eq!(p.method, Method::Patch);
    assert_eq!(
        p.body.unwrap(),
        json!({"last_updated": "2026-01-05T09:00:00.000Z"})
    );
}

#[test]
fn patch_leaves_out_fields_of_other_versions() {
    let before = location_row();
    let after = with(
        before.clone(),
        json!({"publish": 0, "city": "Utrecht-Zuid"}),
    );
    let c = update("locations", before, after);
    assert_eq!(
        plan("locations", &c, V221).body.unwrap(),
        json!({"publish": false, "city": "Utrecht-Zuid",
               "last_updated": "2026-01-05T09:00:00.000Z"})
    );
    assert_eq!(
        plan("locations", &c, V211).body.unwrap(),
        json!({"city": "Utrecht-Zuid", "last_updated": "2026-01-05T09:00:00.000Z"})
    );
}

#[test]
fn location_and_connector_deletes_are_rejected() {
    let e = plan_err("locations", &delete("locations", location_row()), V221);
    assert!(e.is_rejected(), "{e}");
    assert!(e.to_string().contains("publish"), "{e}");
    let e = plan_err("connectors", &delete("connectors", connector_row()), V221);
    assert!(e.is_rejected(), "{e}");
    assert!(e.to_string().contains("Connector"), "{e}");
}

#[test]
fn evse_insert_is_a_put_at_the_evse_url() {
    let p = plan("evses", &insert("evses", evse_row()), V221);
    assert_eq!(p.method, Method::Put);
    assert_eq!(p.object, ObjectKind::Evse);
    assert_eq!(ids(&p), ["NL", "EXA", "LOC1", "EVSE1"]);
    assert_eq!(p.record_id, "locations/NL/EXA/LOC1/EVSE1");
    assert_eq!(
        p.body.unwrap(),
        json!({"uid": "EVSE1", "evse_id": "NL*EXA*E1", "status": "AVAILABLE",
               "capabilities": ["RFID_READER", "REMOTE_START_STOP_CAPABLE"],
               "floor_level": "0",
               "coordinates": {"latitude": "52.089500", "longitude": "5.110300"},
               "physical_reference": "1", "last_updated": "2026-01-05T09:00:00.000Z"})
    );
}

#[test]
fn evse_status_update_is_a_patch_of_status_and_last_updated() {
    let before = evse_row();
    let after = with(
        before.clone(),
        json!({"status": "CHARGING", "last_updated": "2026-01-05T11:00:00.123"}),
    );
    let p = plan("evses", &update("evses", before, after), V221);
    assert_eq!(p.method, Method::Patch);
    assert_eq!(ids(&p), ["NL", "EXA", "LOC1", "EVSE1"]);
    assert_eq!(
        p.body.unwrap(),
        json!({"status": "CHARGING", "last_updated": "2026-01-05T11:00:00.123Z"})
    );
}

#[test]
fn evse_soft_delete_is_a_patch_to_removed() {
    let before = evse_row();
    let after = with(
        before.clone(),
        json!({"status": "REMOVED", "evse_id": null, "last_updated": "2026-01-07T00:00:00.000"}),
    );
    let p = plan("evses", &update("evses", before, after), V221);
    assert_eq!(p.method, Method::Patch);
    assert_eq!(ids(&p), ["NL", "EXA", "LOC1", "EVSE1"]);
    assert_eq!(
        p.body.unwrap(),
        json!({"status": "REMOVED", "last_updated": "2026-01-07T00:00:00.000Z"})
    );
}

#[test]
fn evse_removed_together_with_other_changes_sends_them_with_the_removal() {
    let before = evse_row();
    let after = with(
        before.clone(),
        json!({"status": "REMOVED", "floor_level": "-2", "last_updated": "2026-01-07T00:00:00.000"}),
    );
    let p = plan("evses", &update("evses", before, after), V221);
    assert_eq!(p.method, Method::Patch);
    let body = p.body.unwrap();
    assert_eq!(body["status"], "REMOVED");
    assert_eq!(body["floor_level"], "-2");
}

#[test]
fn evse_delete_event_is_a_patch_to_removed_dated_at_the_commit() {
    let p = plan("evses", &delete("evses", evse_row()), V221);
    assert_eq!(p.method, Method::Patch);
    assert_eq!(ids(&p), ["NL", "EXA", "LOC1", "EVSE1"]);
    // The row's last_updated (2026-01-05) is older than the commit (2026-02-01).
    assert_eq!(
        p.body.unwrap(),
        json!({"status": "REMOVED", "last_updated": "2026-02-01T12:00:00Z"})
    );
    // A row stamped after the commit's whole second keeps its own time.
    let before = with(
        evse_row(),
        json!({"last_updated": "2026-02-01T12:00:00.400"}),
    );
    let p = plan("evses", &delete("evses", before), V221);
    assert_eq!(p.body.unwrap()["last_updated"], "2026-02-01T12:00:00.400Z");
}

#[test]
fn evse_inserted_already_removed_is_put_whole_with_status_removed() {
    let row = with(evse_row(), json!({"status": "REMOVED"}));
    let p = plan("evses", &insert("evses", row), V221);
    assert_eq!(p.method, Method::Put);
    let body = p.body.unwrap();
    assert_eq!(body["status"], "REMOVED");
    assert_eq!(body["uid"], "EVSE1");
}

#[test]
fn evse_revived_from_removed_sends_every_field() {
    let before = with(evse_row(), json!({"status": "REMOVED"}));
    let after = with(
        evse_row(),
        json!({"last_updated": "2026-01-08T00:00:00.000"}),
    );
    let p = plan("evses", &update("evses", before, after), V221);
    assert_eq!(p.method, Method::Patch);
    let body = p.body.unwrap();
    assert_eq!(body["status"], "AVAILABLE");
    assert_eq!(body["evse_id"], "NL*EXA*E1");
    assert_eq!(body["coordinates"]["latitude"], "52.089500");
}

#[test]
fn evse_update_while_removed_keeps_status_removed() {
    let before = with(evse_row(), json!({"status": "REMOVED"}));
    let after = with(
        before.clone(),
        json!({"evse_id": "NL*EXA*E9", "last_updated": "2026-01-09T00:00:00.000"}),
    );
    let p = plan("evses", &update("evses", before, after), V221);
    assert_eq!(p.method, Method::Patch);
    assert_eq!(
        p.body.unwrap(),
        json!({"evse_id": "NL*EXA*E9", "last_updated": "2026-01-09T00:00:00.000Z"})
    );
}

#[test]
fn connector_insert_and_update_are_puts_with_version_names() {
    let p = plan("connectors", &insert("connectors", connector_row()), V221);
    assert_eq!(p.method, Method::Put);
    assert_eq!(p.object, ObjectKind::Connector);
    assert_eq!(ids(&p), ["NL", "EXA", "LOC1", "EVSE1", "1"]);
    assert_eq!(
        p.body.unwrap(),
        json!({"id": "1", "standard": "IEC_62196_T2", "format": "SOCKET",
               "power_type": "AC_3_PHASE", "max_voltage": 230, "max_amperage": 32,
               "max_electric_power": 22000, "tariff_ids": ["TARIFF_AC"],
               "last_updated": "2026-01-05T09:00:00.000Z"})
    );

    let before = connector_row();
    let after = with(before.clone(), json!({"max_amperage": 16}));
    let p = plan("connectors", &update("connectors", before, after), V211);
    assert_eq!(p.method, Method::Put, "update = put sends the whole object");
    assert_eq!(
        p.body.unwrap(),
        json!({"id": "1", "standard": "IEC_62196_T2", "format": "SOCKET",
               "power_type": "AC_3_PHASE", "voltage": 230, "amperage": 16,
               "last_updated": "2026-01-05T09:00:00.000Z"})
    );
}

// ---- tariffs ----------------------------------------------------------------------------------

#[test]
fn tariff_insert_and_update_are_puts() {
    let p = plan("tariffs", &insert("tariffs", tariff_row()), V221);
    assert_eq!(p.method, Method::Put);
    assert_eq!(p.module, Module::Tariffs);
    assert_eq!(ids(&p), ["NL", "EXA", "TARIFF_AC"]);
    let body = p.body.unwrap();
    assert_eq!(
        body["elements"],
        json!([{"price_components": [{"type": "ENERGY", "price": 0.35, "vat": 21.0,
                                      "step_size": 1}]}]),
        "JSON text became JSON"
    );
    assert_eq!(body["tariff_alt_text"][0]["text"], "0.35 EUR/kWh");
    assert!(body.get("start_date_time").is_none(), "NULL is left out");

    let before = tariff_row();
    let after = with(before.clone(), json!({"currency": "USD"}));
    let p = plan("tariffs", &update("tariffs", before, after), V221);
    assert_eq!(p.method, Method::Put);
    assert_eq!(p.body.as_ref().unwrap()["currency"], "USD");
    assert_eq!(p.body.as_ref().unwrap()["id"], "TARIFF_AC");
}

#[test]
fn tariff_soft_delete_and_delete_event_are_deletes() {
    let before = tariff_row();
    let after = with(before.clone(), json!({"deleted": 1}));
    let p = plan("tariffs", &update("tariffs", before, after), V221);
    assert_eq!(p.method, Method::Delete);
    assert_eq!(ids(&p), ["NL", "EXA", "TARIFF_AC"]);
    assert!(p.body.is_none());

    let p = plan("tariffs", &delete("tariffs", tariff_row()), V211);
    assert_eq!(p.method, Method::Delete);
    assert_eq!(ids(&p), ["NL", "EXA", "TARIFF_AC"]);
    assert!(p.body.is_none());
}

#[test]
fn tariff_removal_edge_cases() {
    let deleted = with(tariff_row(), json!({"deleted": 1}));
    // Hard delete of a row already soft-deleted: the DELETE went out before.
    let e = plan_err("tariffs", &delete("tariffs", deleted.clone()), V221);
    assert!(e.is_nothing_to_send(), "{e}");
    // Inserted already deleted: the partner never had it.
    let e = plan_err("tariffs", &insert("tariffs", deleted.clone()), V221);
    assert!(e.is_nothing_to_send(), "{e}");
    // Updated while deleted.
    let after = with(deleted.clone(), json!({"currency": "USD"}));
    let e = plan_err("tariffs", &update("tariffs", deleted.clone(), after), V221);
    assert!(e.is_nothing_to_send(), "{e}");
    // Revived: PUT it again.
    let p = plan("tariffs", &update("tariffs", deleted, tariff_row()), V221);
    assert_eq!(p.method, Method::Put);
    assert_eq!(p.body.unwrap()["id"], "TARIFF_AC");
}

// ---- sessions ---------------------------------------------------------------------------------

#[test]
fn session_insert_converts_decimal_datetime_and_nested_cost() {
    let p = plan("sessions", &insert("sessions", session_row()), V221);
    assert_eq!(p.method, Method::Put);
    assert_eq!(ids(&p), ["NL", "EXA", "SES1"]);
    assert_eq!(
        p.body.unwrap(),
        json!({"country_code": "NL", "party_id": "EXA", "id": "SES1",
               "start_date_time": "2026-01-05T10:00:00.000Z", "kwh": 12.34,
               "cdr_token": {"country_code": "DE", "party_id": "MSP", "uid": "04A1B2C3D4E5F6",
                             "type": "RFID", "contract_id": "DE-MSP-C12345678-9"},
               "auth_method": "WHITELIST", "location_id": "LOC1", "evse_uid": "EVSE1",
               "connector_id": "1", "currency": "EUR",
               "total_cost": {"excl_vat": 4.375, "incl_vat": 5.2938},
               "status": "ACTIVE", "last_updated": "2026-01-05T10:30:00.250Z"})
    );
}

#[test]
fn session_for_211_uses_its_field_names() {
    let p = plan("sessions", &insert("sessions", session_row()), V211);
    let body = p.body.unwrap();
    assert_eq!(body["start_datetime"], "2026-01-05T10:00:00.000Z");
    assert_eq!(body["total_cost"], json!(4.375));
    for absent in [
        "start_date_time",
        "country_code",
        "cdr_token",
        "location_id",
    ] {
        assert!(body.get(absent).is_none(), "{absent} in {body}");
    }
    // 2.1.1 `auth_id` is the token's contract id, taken from the cdr_token JSON by pointer.
    assert_eq!(body["auth_id"], "DE-MSP-C12345678-9");
    // The Location is embedded by the delivery (read from the database), not by `render`.
    assert!(body.get("location").is_none(), "{body}");
}

#[test]
fn values_for_limits_a_translation_to_its_versions() {
    let row = with(
        session_row(),
        json!({"auth_method": "COMMAND", "status": "RESERVATION"}),
    );
    let body = plan("sessions", &insert("sessions", row.clone()), V211)
        .body
        .unwrap();
    assert_eq!(body["auth_method"], "AUTH_REQUEST");
    assert_eq!(body["status"], "PENDING");
    let body = plan("sessions", &insert("sessions", row), V221)
        .body
        .unwrap();
    assert_eq!(body["auth_method"], "COMMAND");
    assert_eq!(body["status"], "RESERVATION");

    let app = insert("tokens", token_row("app-1", "APP_USER"));
    assert_eq!(plan("tokens", &app, V211).body.unwrap()["type"], "OTHER");
    assert_eq!(plan("tokens", &app, V221).body.unwrap()["type"], "APP_USER");
}

#[test]
fn a_pointer_member_that_is_missing_counts_as_null() {
    let row = with(
        session_row(),
        json!({"cdr_token": {"uid": "X", "type": "RFID"}}),
    );
    let body = plan("sessions", &insert("sessions", row), V211)
        .body
        .unwrap();
    assert!(body.get("auth_id").is_none(), "{body}");
}

#[test]
fn session_update_patches_kwh_and_cost() {
    let before = session_row();
    let after = with(
        before.clone(),
        json!({"kwh": "15.0000", "total_cost_incl_vat": "6.0000",
               "last_updated": "2026-01-05T10:35:00.000"}),
    );
    let p = plan("sessions", &update("sessions", before, after), V221);
    assert_eq!(p.method, Method::Patch);
    assert_eq!(
        p.body.unwrap(),
        json!({"kwh": 15.0, "total_cost": {"excl_vat": 4.375, "incl_vat": 6.0},
               "last_updated": "2026-01-05T10:35:00.000Z"})
    );
}

#[test]
fn session_delete_is_a_patch_to_invalid() {
    let p = plan("sessions", &delete("sessions", session_row()), V221);
    assert_eq!(p.method, Method::Patch);
    assert_eq!(ids(&p), ["NL", "EXA", "SES1"]);
    assert_eq!(
        p.body.unwrap(),
        json!({"status": "INVALID", "last_updated": "2026-02-01T12:00:00Z"})
    );
}

// ---- cdrs -------------------------------------------------------------------------------------

#[test]
fn cdr_insert_is_a_post_of_the_stored_object_without_ids() {
    let p = plan("cdrs", &insert("cdrs", cdr_row()), V221);
    assert_eq!(p.method, Method::Post);
    assert_eq!(p.module, Module::Cdrs);
    assert_eq!(p.object, ObjectKind::Cdr);
    assert!(p.path_ids.is_empty());
    assert_eq!(p.record_id, "cdrs/NL/EXA/CDR1");
    assert_eq!(p.body.unwrap(), cdr_object());

    // MariaDB's JSON arrives as text when the bridge cannot tell it is JSON.
    let row = with(cdr_row(), json!({"ocpi_object": cdr_object().to_string()}));
    let p = plan("cdrs", &insert("cdrs", row), V211);
    assert_eq!(
        p.body.unwrap(),
        cdr_object(),
        "sent as stored, whatever the version"
    );
}

#[test]
fn cdr_update_and_delete_are_rejected() {
    let before = cdr_row();
    let after = with(before.clone(), json!({"total_energy": "13.0000"}));
    let e = plan_err("cdrs", &update("cdrs", before, after), V221);
    assert!(e.is_rejected(), "{e}");
    assert!(e.to_string().contains("credit CDR"), "{e}");
    let e = plan_err("cdrs", &delete("cdrs", cdr_row()), V221);
    assert!(e.is_rejected(), "{e}");
    assert!(e.to_string().contains("credit CDR"), "{e}");
}

#[test]
fn cdr_body_column_must_hold_an_object() {
    let row = with(cdr_row(), json!({"ocpi_object": "not json"}));
    let e = plan_err("cdrs", &insert("cdrs", row), V221);
    assert!(matches!(e, MappingError::BadValue { .. }), "{e}");
    assert!(e.to_string().contains("ocpi_object"), "{e}");
    let row = with(cdr_row(), json!({"ocpi_object": null}));
    let e = plan_err("cdrs", &insert("cdrs", row), V221);
    assert!(matches!(e, MappingError::NullValue { .. }), "{e}");
}

// ---- tokens -----------------------------------------------------------------------------------

#[test]
fn token_put_adds_type_query_unless_rfid() {
    let p = plan("tokens", &insert("tokens", token_row("04A1", "RFID")), V221);
    assert_eq!(p.method, Method::Put);
    assert_eq!(ids(&p), ["DE", "MSP", "04A1"]);
    assert!(p.query.is_empty());
    let body = p.body.unwrap();
    assert_eq!(body["valid"], json!(true));
    assert_eq!(body["contract_id"], "DE-MSP-C12345678-9");

    let p = plan(
        "tokens",
        &insert("tokens", token_row("app-1", "APP_USER")),
        V221,
    );
    assert_eq!(p.query, vec![("type".to_string(), "APP_USER".to_string())]);
    assert_eq!(
        p.to_string(),
        "PUT tokens/DE/MSP/app-1?type=APP_USER (Token tokens/DE/MSP/app-1)"
    );

    // OCPI 2.1.1 has no ?type= and no contract_id.
    let p = plan(
        "tokens",
        &insert("tokens", token_row("app-1", "APP_USER")),
        V211,
    );
    assert!(p.query.is_empty());
    let body = p.body.unwrap();
    assert_eq!(body["auth_id"], "DE-MSP-C12345678-9");
    assert!(body.get("contract_id").is_none());
}

#[test]
fn token_update_is_a_put_and_delete_is_a_patch_to_invalid() {
    let before = token_row("app-1", "APP_USER");
    let after = with(
        before.clone(),
        json!({"valid": 0, "last_updated": "2026-01-10T00:00:00.000"}),
    );
    let p = plan("tokens", &update("tokens", before, after), V221);
    assert_eq!(p.method, Method::Put);
    assert_eq!(p.body.unwrap()["valid"], json!(false));
    assert_eq!(p.query, vec![("type".to_string(), "APP_USER".to_string())]);

    let p = plan(
        "tokens",
        &delete("tokens", token_row("app-1", "APP_USER")),
        V221,
    );
    assert_eq!(p.method, Method::Patch);
    assert_eq!(ids(&p), ["DE", "MSP", "app-1"]);
    assert_eq!(p.query, vec![("type".to_string(), "APP_USER".to_string())]);
    assert_eq!(
        p.body.unwrap(),
        json!({"valid": false, "last_updated": "2026-02-01T12:00:00Z"})
    );
}

#[test]
fn token_soft_delete_column_gives_a_patch_to_invalid() {
    let text = r#"
[[table]]
table = "ocpi.tokens"
module = "tokens"
path = "/{country_code}/{party_id}/{uid}"
update = "patch"
[table.fields]
uid = "uid"
type = "type"
valid = { column = "valid", as = "bool" }
last_updated = { column = "last_updated", as = "datetime" }
[table.soft_delete]
column = "valid"
value = false
"#;
    let c = MappingConfig::parse(text, "inline.toml").unwrap();
    let m = c.get("ocpi", "tokens").unwrap();
    let before = token_row("04A1", "RFID");
    let after = with(before.clone(), json!({"valid": 0}));
    let p = render(m, &update("tokens", before, after), V221, false).unwrap();
    assert_eq!(p.method, Method::Patch);
    assert!(p.query.is_empty());
    assert_eq!(
        p.body.unwrap(),
        json!({"valid": false, "last_updated": "2026-01-05T09:00:00.000Z"})
    );
}

// ---- snapshots --------------------------------------------------------------------------------

#[test]
fn snapshot_sends_full_objects_whatever_the_operation() {
    let before = evse_row();
    let after = with(before.clone(), json!({"status": "CHARGING"}));
    let c = update("evses", before, after);
    let p = render(&mapping("evses"), &c, V221, true).unwrap();
    assert_eq!(p.method, Method::Put);
    assert_eq!(p.body.unwrap()["uid"], "EVSE1");

    let removed = with(evse_row(), json!({"status": "REMOVED"}));
    let c = update("evses", removed.clone(), removed);
    let p = render(&mapping("evses"), &c, V221, true).unwrap();
    assert_eq!(p.method, Method::Put);
    assert_eq!(p.body.unwrap()["status"], "REMOVED");

    // A soft-deleted Tariff: the partner may hold it (a re-sync, or a live change that reached
    // it before this row), so it is deleted there.
    let deleted = with(tariff_row(), json!({"deleted": 1}));
    let p = render(
        &mapping("tariffs"),
        &update("tariffs", deleted.clone(), deleted),
        V221,
        true,
    )
    .unwrap();
    assert_eq!(p.method, Method::Delete);

    let c = update("cdrs", cdr_row(), cdr_row());
    let p = render(&mapping("cdrs"), &c, V221, true).unwrap();
    assert_eq!(p.method, Method::Post);
}

// ---- errors -----------------------------------------------------------------------------------

#[test]
fn missing_path_column_is_named() {
    let mut row = evse_row();
    row.as_object_mut().unwrap().remove("uid");
    let e = plan_err("evses", &insert("evses", row), V221);
    assert_eq!(
        e.to_string(),
        "column `uid` needed by path is absent from the row image of `ocpi.evses`"
    );
}

#[test]
fn missing_field_column_null_path_and_missing_image_are_named() {
    let mut row = session_row();
    row.as_object_mut().unwrap().remove("kwh");
    let e = plan_err("sessions", &insert("sessions", row), V221);
    assert_eq!(
        e.to_string(),
        "column `kwh` needed by OCPI field `kwh` is absent from the row image of `ocpi.sessions`"
    );

    let row = with(session_row(), json!({"id": null}));
    let e = plan_err("sessions", &insert("sessions", row), V221);
    assert!(matches!(e, MappingError::NullValue { .. }), "{e}");
    assert!(e.to_string().contains("`id` needed by path is NULL"), "{e}");

    let c = change(
        Operation::Update,
        "sessions",
        Some(session_row()),
        None,
        &["kwh"],
    );
    let e = plan_err("sessions", &c, V221);
    assert_eq!(
        e.to_string(),
        "update change of `ocpi.sessions` carries no `after` row image"
    );

    let mut row = tariff_row();
    row.as_object_mut().unwrap().remove("deleted");
    let e = plan_err("tariffs", &insert("tariffs", row), V221);
    assert!(
        e.to_string().contains("`deleted` needed by soft_delete"),
        "{e}"
    );
}

#[test]
fn unreadable_values_are_named_with_field_and_conversion() {
    let row = with(session_row(), json!({"kwh": "twelve"}));
    let e = plan_err("sessions", &insert("sessions", row), V221);
    let text = e.to_string();
    assert!(text.contains("column `kwh`"), "{text}");
    assert!(text.contains("OCPI field `kwh` (as number)"), "{text}");
    assert!(text.contains("\"twelve\""), "{text}");

    let row = with(
        location_row(),
        json!({"last_updated": "0000-00-00T00:00:00"}),
    );
    let e = plan_err("locations", &insert("locations", row), V221);
    assert!(e.to_string().contains("(as datetime)"), "{e}");
}

#[test]
fn token_without_type_value_is_an_error() {
    let row = with(token_row("x", "RFID"), json!({"type": null}));
    let e = plan_err("tokens", &insert("tokens", row), V221);
    assert!(e.to_string().contains("?type="), "{e}");
}

#[test]
fn a_change_of_another_table_is_refused() {
    let e = plan_err("evses", &insert("connectors", connector_row()), V221);
    assert_eq!(
        e,
        MappingError::WrongTable {
            mapping: "ocpi.evses".into(),
            change: "ocpi.connectors".into()
        }
    );
}

// ---- configuration errors ---------------------------------------------------------------------

const MINIMAL: &str = r#"
[[table]]
table = "db.t"
module = "sessions"
path = "/{cc}/{pid}/{id}"
[table.fields]
id = "id"
last_updated = { column = "lu", as = "datetime" }
"#;

fn config_error(text: &str) -> String {
    match MappingConfig::parse(text, "test.toml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn minimal_mapping_defaults_to_put() {
    let c = MappingConfig::parse(MINIMAL, "test.toml").unwrap();
    assert_eq!(c.tables[0].update, UpdateMode::Put);
    assert_eq!(c.tables[0].path, ["cc", "pid", "id"]);
    assert_eq!(c.origin, "test.toml");
}

#[test]
fn unknown_keys_are_errors_naming_file_and_key() {
    let e = config_error(&MINIMAL.replace("module =", "modul = \"x\"\nmodule ="));
    assert!(e.starts_with("mapping file test.toml:"), "{e}");
    assert!(e.contains("modul"), "{e}");

    let e = config_error(&MINIMAL.replace("as = \"datetime\"", "as = \"datetime\", colum = 1"));
    assert!(e.contains("test.toml") && e.contains("colum"), "{e}");

    let e = config_error(&MINIMAL.replace("as = \"datetime\"", "as = \"date\""));
    assert!(e.contains("date") && e.contains("datetime"), "{e}");

    let e = config_error(&MINIMAL.replace("\"sessions\"", "\"session\""));
    assert!(e.contains("session") && e.contains("sessions"), "{e}");

    let e = config_error(&format!(
        "{MINIMAL}\n[table.soft_delete]\ncolumn = \"d\"\nvalue = 1\nextra = 2\n"
    ));
    assert!(e.contains("extra"), "{e}");

    let e = config_error("[[table]]\ntable = \"db.t\"\n");
    assert!(e.contains("test.toml") && e.contains("module"), "{e}");

    let e = config_error("");
    assert!(e.contains("no [[table]]"), "{e}");

    let e = MappingConfig::load("/nonexistent/mapping.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/mapping.toml"), "{e}");
}

#[test]
fn invalid_mappings_are_explained() {
    let cases: &[(&str, &str, &str)] = &[
        ("table = \"db.t\"", "table = \"t\"", "key `table`"),
        (
            "path = \"/{cc}/{pid}/{id}\"",
            "path = \"/{cc}/{id}\"",
            "key `path`",
        ),
        (
            "path = \"/{cc}/{pid}/{id}\"",
            "path = \"{cc}/{pid}/{id}\"",
            "start with '/'",
        ),
        (
            "path = \"/{cc}/{pid}/{id}\"",
            "path = \"/{cc}/x/{id}\"",
            "placeholder",
        ),
        (
            "path = \"/{cc}/{pid}/{id}\"",
            "path = \"/{cc}/{}/{id}\"",
            "empty",
        ),
        (
            "id = \"id\"",
            "id = { column = \"id\", value = 1 }",
            "not both",
        ),
        ("id = \"id\"", "id = { as = \"string\" }", "fields.\"id\""),
        (
            "id = \"id\"",
            "id = { value = 1, as = \"string\" }",
            "fields.\"id\".as",
        ),
        (
            "id = \"id\"",
            "id = { column = \"id\", versions = [] }",
            "versions",
        ),
        (
            "id = \"id\"",
            "id = { column = \"id\", versions = [\"2.2\"] }",
            "2.2.1",
        ),
        ("id = \"id\"", "\"a.\" = \"id\"", "not an OCPI field name"),
        (
            "id = \"id\"",
            "a = \"x\"\n\"a.b\" = \"y\"",
            "clashes with field \"a\"",
        ),
        (
            "last_updated = { column = \"lu\", as = \"datetime\" }",
            "",
            "last_updated",
        ),
        (
            "last_updated = { column = \"lu\", as = \"datetime\" }",
            "last_updated = { column = \"lu\", versions = [\"2.2.1\"] }",
            "missing for OCPI 2.1.1",
        ),
        (
            "[table.fields]",
            "body_column = \"j\"\n[table.fields]",
            "not both",
        ),
        (
            "[table.fields]",
            "body_version = \"2.2.1\"\n[table.fields]",
            "only with body_column",
        ),
        (
            "id = \"id\"",
            "id = { column = \"id\", pointer = \"/a\" }",
            "needs `as = \"json\"`",
        ),
        (
            "id = \"id\"",
            "id = { column = \"id\", as = \"json\", pointer = \"a\" }",
            "a pointer names a member",
        ),
        (
            "id = \"id\"",
            "id = { column = \"id\", values_for = [\"2.1.1\"] }",
            "give `values` too",
        ),
    ];
    for (from, to, want) in cases {
        let text = MINIMAL.replace(from, to);
        assert_ne!(text, MINIMAL, "{from}");
        let e = config_error(&text);
        assert!(e.contains(want), "{to:?}: {e}");
        assert!(e.contains("test.toml"), "{e}");
    }

    // A body column without the version its objects are written for.
    let body_column = "[[table]]\ntable = \"db.t\"\nmodule = \"cdrs\"\npath = \"/{a}/{b}/{c}\"\n\
                       body_column = \"j\"\n";
    let e = config_error(body_column);
    assert!(e.contains("body_version") && e.contains("missing"), "{e}");
    let e = config_error(&format!("{body_column}body_version = \"2.2\"\n"));
    assert!(e.contains("body_version"), "{e}");

    // Both fields and body column missing.
    let e =
        config_error("[[table]]\ntable = \"db.t\"\nmodule = \"cdrs\"\npath = \"/{a}/{b}/{c}\"\n");
    assert!(e.contains("key `fields`: missing"), "{e}");
}

#[test]
fn fields_of_disjoint_versions_may_nest() {
    let text = MINIMAL.replace(
        "id = \"id\"",
        "\"total_cost.excl_vat\" = { column = \"c\", versions = [\"2.2.1\"] }\n\
         total_cost = { column = \"c\", versions = [\"2.1.1\"] }",
    );
    MappingConfig::parse(&text, "test.toml").unwrap();
}

#[test]
fn module_rules_are_enforced_at_load() {
    let tariff_patch = MINIMAL
        .replace("\"sessions\"", "\"tariffs\"")
        .replace("path =", "update = \"patch\"\npath =");
    assert!(config_error(&tariff_patch).contains("no PATCH"));

    let cdr_update = MINIMAL
        .replace("\"sessions\"", "\"cdrs\"")
        .replace("path =", "update = \"put\"\npath =");
    assert!(config_error(&cdr_update).contains("credit CDRs"));

    let soft = "\n[table.soft_delete]\ncolumn = \"d\"\nvalue = 1\n";
    let cdr_soft = format!("{}{soft}", MINIMAL.replace("\"sessions\"", "\"cdrs\""));
    assert!(config_error(&cdr_soft).contains("credit CDR"));

    let location_soft = format!("{}{soft}", MINIMAL.replace("\"sessions\"", "\"locations\""));
    assert!(config_error(&location_soft).contains("no removal of a Location"));

    let connector_soft = format!(
        "{}{soft}",
        MINIMAL
            .replace("\"sessions\"", "\"locations\"")
            .replace("{id}\"", "{l}/{e}/{id}\"")
    );
    assert!(config_error(&connector_soft).contains("no removal of a Connector"));

    let deep = MINIMAL
        .replace("\"sessions\"", "\"locations\"")
        .replace("{id}\"", "{a}/{b}/{c}/{id}\"");
    assert!(config_error(&deep).contains("3, 4 or 5 placeholders"));

    let token_without_type = MINIMAL.replace("\"sessions\"", "\"tokens\"");
    assert!(config_error(&token_without_type).contains("fields.type"));

    let twice = format!("{MINIMAL}{MINIMAL}");
    assert!(config_error(&twice).contains("mapped twice"));

    let array_value = format!("{MINIMAL}\n[table.soft_delete]\ncolumn = \"d\"\nvalue = [1]\n");
    assert!(config_error(&array_value).contains("soft_delete.value"));
}

#[test]
fn soft_delete_values_match_tinyint_and_bool() {
    let sd = SoftDelete {
        column: "d".into(),
        value: json!(true),
    };
    assert!(sd.matches(&json!(1)) && sd.matches(&json!(true)));
    assert!(!sd.matches(&json!(0)) && !sd.matches(&json!(null)));
    let sd = SoftDelete {
        column: "d".into(),
        value: json!(1),
    };
    assert!(sd.matches(&json!(1)) && sd.matches(&json!(true)) && sd.matches(&json!("1")));
    assert!(!sd.matches(&json!(0)) && !sd.matches(&json!("x")));
}

#[test]
fn constants_and_methods() {
    let text = MINIMAL.replace(
        "id = \"id\"",
        "id = \"id\"\npublish = { value = true }\n\"a.b\" = { value = [1, \"x\"] }",
    );
    let c = MappingConfig::parse(&text, "test.toml").unwrap();
    let m = &c.tables[0];
    let row = json!({"cc": "NL", "pid": "EXA", "id": 5, "lu": "2026-01-01T00:00:00"});
    let mut ch = insert("t", row);
    ch.database = "db".into();
    let p = render(m, &ch, V221, false).unwrap();
    assert_eq!(
        ids(&p),
        ["NL", "EXA", "5"],
        "numbers in the path become text"
    );
    assert_eq!(
        p.body.unwrap(),
        json!({"id": 5, "publish": true, "a": {"b": [1, "x"]},
               "last_updated": "2026-01-01T00:00:00Z"})
    );
    assert_eq!(reqwest::Method::from(Method::Patch), reqwest::Method::PATCH);
    assert_eq!(Module::Cdrs.identifier(), "cdrs");
}

#[test]
fn a_2_1_1_location_gets_its_required_type_and_postal_code_from_defaults_and_translations() {
    let mut row = location_row();
    row["parking_type"] = Value::Null;
    row["postal_code"] = Value::Null;
    let body = plan("locations", &insert("locations", row.clone()), V211)
        .body
        .unwrap();
    assert_eq!(body["type"], "UNKNOWN");
    assert_eq!(body["postal_code"], "");
    // The default is for 2.1.1 only: 2.2.1 leaves an optional NULL out.
    let body = plan("locations", &insert("locations", row.clone()), V221)
        .body
        .unwrap();
    assert!(body.get("postal_code").is_none(), "{body}");
    // A 2.2.1 ParkingType 2.1.1 lacks becomes OTHER; the others are the same words.
    row["parking_type"] = json!("ALONG_MOTORWAY");
    let body = plan("locations", &insert("locations", row.clone()), V211)
        .body
        .unwrap();
    assert_eq!(body["type"], "OTHER");
    row["parking_type"] = json!("PARKING_LOT");
    let body = plan("locations", &insert("locations", row), V211)
        .body
        .unwrap();
    assert_eq!(body["type"], "PARKING_LOT");
}

#[test]
fn defaults_and_translations_need_a_column() {
    let text = r#"
[[table]]
table = "ocpi.tokens"
module = "tokens"
path = "/{country_code}/{party_id}/{uid}"
[table.fields]
type = { value = "RFID", default = "OTHER" }
last_updated = { column = "last_updated", as = "datetime" }
"#;
    let err = MappingConfig::parse(text, "m").unwrap_err().to_string();
    assert!(
        err.contains("`default`, `values` and `pointer` apply to a column"),
        "{err}"
    );
    let text = text.replace(
        "type = { value = \"RFID\", default = \"OTHER\" }",
        "type = { column = \"type\", default_for = [\"2.1.1\"] }",
    );
    let err = MappingConfig::parse(&text, "m").unwrap_err().to_string();
    assert!(
        err.contains("default_for") && err.contains("give `default` too"),
        "{err}"
    );
}
