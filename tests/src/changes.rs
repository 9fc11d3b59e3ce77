//! Change messages built by hand, for pusher tests that need no database: the same JSON the
//! bridge publishes, for rows of the example schema (`config/ocpi-example/schema.sql`).

use std::collections::BTreeMap;

use change_message::{Message, Operation, Row, RowChange, Source, CONTRACT_VERSION};
use serde_json::{json, Value};

use crate::{OcpiPartner, RecordedRequest};

fn row(v: &Value) -> Row {
    v.as_object().cloned().unwrap_or_default()
}

/// A change of `ocpi.<table>` with key columns `key_columns` taken from the row images;
/// `changed` is computed from `before` and `after`.
pub fn change(
    table: &str,
    op: Operation,
    seq: u64,
    key_columns: &[&str],
    before: Option<Value>,
    after: Option<Value>,
) -> RowChange {
    let image = after
        .as_ref()
        .or(before.as_ref())
        .map(row)
        .unwrap_or_default();
    let mut key = Row::new();
    for c in key_columns {
        key.insert(c.to_string(), image.get(*c).cloned().unwrap_or(Value::Null));
    }
    let changed = match (op, &before, &after) {
        (Operation::Update, Some(b), Some(a)) => {
            let (b, a) = (row(b), row(a));
            a.iter()
                .filter(|(k, v)| b.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .collect()
        }
        _ => Vec::new(),
    };
    RowChange {
        version: CONTRACT_VERSION,
        id: format!("binlog.000001:{seq}:0"),
        seq,
        op,
        database: "ocpi".into(),
        table: table.into(),
        key,
        after: after.as_ref().map(row),
        before: before.as_ref().map(row),
        changed,
        binary_columns: Vec::new(),
        merged: 1,
        source: Source {
            server_id: 1,
            file: "binlog.000001".into(),
            pos: seq,
            row: 0,
            gtid: None,
            tx_index: 0,
            commit_time: "2026-02-01T12:00:00Z".into(),
        },
        snapshot: None,
        too_large: None,
    }
}

/// A row of `ocpi.tariffs`; `version` goes into the price and into `last_updated` (seconds), so
/// later versions are newer.
pub fn tariff_row(id: &str, version: u32) -> Value {
    json!({
        "country_code": "NL", "party_id": "EXA", "id": id, "currency": "EUR",
        "type": "REGULAR", "tariff_alt_text": null, "tariff_alt_url": null,
        "elements": format!("[{{\"price_components\":[{{\"type\":\"ENERGY\",\"price\":{version}.0,\"step_size\":1}}]}}]"),
        "start_date_time": null, "end_date_time": null, "deleted": 0,
        "last_updated": last_updated(version),
    })
}

/// `2026-02-01T12:00:00.000` plus `version` seconds (a DATETIME(3) as the bridge writes it).
pub fn last_updated(version: u32) -> String {
    let total = 12 * 3600 + version;
    format!(
        "2026-02-{:02}T{:02}:{:02}:{:02}.000",
        1 + total / 86_400,
        (total % 86_400) / 3600,
        (total % 3600) / 60,
        total % 60
    )
}

/// Insert of tariff `id` at `version`.
pub fn tariff_insert(id: &str, version: u32, seq: u64) -> Message {
    Message::Change(change(
        "tariffs",
        Operation::Insert,
        seq,
        &["country_code", "party_id", "id"],
        None,
        Some(tariff_row(id, version)),
    ))
}

/// Update of tariff `id` from `version - 1` to `version`.
pub fn tariff_update(id: &str, version: u32, seq: u64) -> Message {
    Message::Change(change(
        "tariffs",
        Operation::Update,
        seq,
        &["country_code", "party_id", "id"],
        Some(tariff_row(id, version.saturating_sub(1))),
        Some(tariff_row(id, version)),
    ))
}

/// A row of `ocpi.cdrs` for CDR `id` (country NL, party EXA): `ocpi_object` holds a whole OCPI
/// 2.2.1 CDR as JSON text (MariaDB's JSON is text), `last_updated` is [`last_updated`]`(version)`.
pub fn cdr_row(id: &str, version: u32) -> Value {
    let at = last_updated(version);
    let object = json!({
        "country_code": "NL", "party_id": "EXA", "id": id,
        "start_date_time": "2026-02-01T10:00:00Z", "end_date_time": "2026-02-01T11:00:00Z",
        "session_id": format!("S-{id}"),
        "cdr_token": {
            "country_code": "DE", "party_id": "PRT", "uid": "0123456789",
            "type": "RFID", "contract_id": "DE-PRT-C12345678-9"
        },
        "auth_method": "WHITELIST",
        "cdr_location": {
            "id": "LOC1", "name": "Stationsplein", "address": "Stationsplein 1",
            "city": "Utrecht", "postal_code": "3511 ED", "country": "NLD",
            "coordinates": { "latitude": "52.089400", "longitude": "5.110200" },
            "evse_uid": "EVSE1", "evse_id": "NL*EXA*E1", "connector_id": "1",
            "connector_standard": "IEC_62196_T2", "connector_format": "SOCKET",
            "connector_power_type": "AC_3_PHASE"
        },
        "currency": "EUR",
        "charging_periods": [{
            "start_date_time": "2026-02-01T10:00:00Z",
            "dimensions": [{ "type": "ENERGY", "volume": 12.5 }]
        }],
        "total_cost": { "excl_vat": 4.5 },
        "total_energy": 12.5,
        "total_time": 1.0,
        "credit": false,
        "last_updated": format!("{}Z", at),
    });
    json!({
        "country_code": "NL", "party_id": "EXA", "id": id, "session_id": format!("S-{id}"),
        "start_date_time": "2026-02-01T10:00:00.000", "end_date_time": "2026-02-01T11:00:00.000",
        "currency": "EUR", "total_energy": "12.5000", "total_cost_excl_vat": "4.5000",
        "credit": 0, "credit_reference_id": null,
        "ocpi_object": object.to_string(),
        "last_updated": at,
    })
}

/// Insert of CDR `id` (see [`cdr_row`]; `last_updated` at version 1).
pub fn cdr_insert(id: &str, seq: u64) -> Message {
    Message::Change(change(
        "cdrs",
        Operation::Insert,
        seq,
        &["country_code", "party_id", "id"],
        None,
        Some(cdr_row(id, 1)),
    ))
}

/// The integer `id` key and `version` column of a captured change (its newest image), as the
/// capture tests' writers number their rows; panics on a change without both.
pub fn id_and_version(change: &RowChange) -> (i64, i64) {
    let id = change.key.get("id").and_then(Value::as_i64);
    let version = change
        .latest_image()
        .and_then(|row| row.get("version"))
        .and_then(Value::as_i64);
    match (id, version) {
        (Some(id), Some(version)) => (id, version),
        _ => panic!("change without an integer id and version: {change:?}"),
    }
}

/// The version a tariff object or PUT body carries: [`tariff_row`] puts it into the price of
/// its first component.
pub fn tariff_version(body: &Value) -> Option<u32> {
    let price = body["elements"][0]["price_components"][0]["price"].as_f64()?;
    Some(price as u32)
}

/// The tariff PUTs among `requests`, in arrival order.
pub fn tariff_puts(requests: &[RecordedRequest]) -> Vec<&RecordedRequest> {
    requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/tariffs/"))
        .collect()
}

/// Per tariff id, the versions of its PUTs in arrival order.
pub fn versions_per_tariff(requests: &[RecordedRequest]) -> BTreeMap<String, Vec<u32>> {
    let mut seen: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for r in tariff_puts(requests) {
        let id = r.path.rsplit('/').next().unwrap_or_default().to_string();
        let version = r
            .body
            .as_ref()
            .and_then(tariff_version)
            .unwrap_or_else(|| panic!("a tariff PUT without a readable version: {r:?}"));
        seen.entry(id).or_default().push(version);
    }
    seen
}

/// The version of tariff `NL/EXA/id` the partner holds.
pub fn stored_tariff_version(partner: &OcpiPartner, id: &str) -> Option<u32> {
    partner
        .object("tariffs", &["NL", "EXA", id])
        .as_ref()
        .and_then(tariff_version)
}
