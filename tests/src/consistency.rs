//! Does a partner hold what the database holds? The records of the example schema
//! (`config/ocpi-example/schema.sql`) read from the database, compared with the objects an OCPI
//! partner double holds, through the example mapping written out independently
//! ([`crate::example_mapping`]). One implementation for the end-to-end tests and the demo's
//! final consistency check.
//!
//! The rules are those of a real receiver of the example mapping:
//! - tariffs, tokens, sessions and connectors are compared whole;
//! - an EVSE is compared without its connectors and a Location without its EVSEs, their
//!   `last_updated` being the newest of their own and their children's (the receiver bumps a
//!   parent's `last_updated` when a child changes);
//! - a soft-deleted tariff must be absent (it was DELETEd); an EVSE REMOVED, a token not valid
//!   or a session INVALID are held like that (OCPI removes them that way), so the partner may
//!   also hold them after their row was deleted: that is not an extra object;
//! - each CDR is POSTed exactly once, as its `ocpi_object` column holds it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mysql_async::prelude::Queryable;
use serde_json::Value;

use crate::example_mapping::{
    expected_object, last_updated_of, row_last_updated, same, without, Row, TableSpec, ALL_TABLES,
    CONNECTORS, EVSES, LOCATIONS, SESSIONS, TARIFFS, TOKENS,
};
use crate::mariadb::MariaDb;
use crate::ocpi_partner::{key, OcpiPartner, PartnerState};

/// The records of the example tables, as one consistent picture to compare partners with.
#[derive(Debug, Clone, Default)]
pub struct DatabaseRows {
    /// Rows per table name, in key order.
    tables: BTreeMap<&'static str, Vec<Row>>,
    /// The `ocpi_object` of every CDR row (text that is not JSON as a string).
    pub cdrs: Vec<Value>,
}

impl DatabaseRows {
    /// Reads `database` through the `mariadb` client of a test server (blocking).
    pub fn from_mariadb(db: &MariaDb, database: &str) -> DatabaseRows {
        let text_rows = |sql: &str| -> Vec<Vec<Option<String>>> {
            db.query_rows(sql)
                .into_iter()
                .map(|row| {
                    row.into_iter()
                        .map(|v| (v != "NULL").then_some(v))
                        .collect()
                })
                .collect()
        };
        let mut rows = DatabaseRows::default();
        for spec in ALL_TABLES {
            let values = text_rows(&spec.select_sql(database, None));
            rows.tables.insert(spec.table, spec.rows_from(values));
        }
        rows.cdrs = text_rows(&cdr_sql(database))
            .into_iter()
            .map(|r| cdr_object(r.into_iter().next().flatten()))
            .collect();
        rows
    }

    /// Reads `database` over a connection (the text protocol: values as the server prints
    /// them, like the `mariadb` client). Use one transaction for a consistent picture.
    pub async fn load(
        conn: &mut mysql_async::Conn,
        database: &str,
    ) -> Result<DatabaseRows, mysql_async::Error> {
        let mut rows = DatabaseRows::default();
        for spec in ALL_TABLES {
            let values: Vec<mysql_async::Row> = conn.query(spec.select_sql(database, None)).await?;
            rows.tables.insert(
                spec.table,
                spec.rows_from(values.into_iter().map(texts).collect()),
            );
        }
        let cdrs: Vec<mysql_async::Row> = conn.query(cdr_sql(database)).await?;
        rows.cdrs = cdrs
            .into_iter()
            .map(|r| cdr_object(texts(r).into_iter().next().flatten()))
            .collect();
        Ok(rows)
    }

    /// The rows of one table of the mapping.
    pub fn rows(&self, spec: &TableSpec) -> &[Row] {
        self.tables
            .get(spec.table)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Rows in the seven mapped tables (what a sync of all of them reads).
    pub fn record_count(&self) -> usize {
        self.tables.values().map(Vec::len).sum::<usize>() + self.cdrs.len()
    }
}

fn cdr_sql(database: &str) -> String {
    format!("SELECT ocpi_object FROM `{database}`.cdrs ORDER BY country_code, party_id, id")
}

fn cdr_object(text: Option<String>) -> Value {
    let text = text.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// A row of the text protocol as text (NULL as `None`).
fn texts(row: mysql_async::Row) -> Vec<Option<String>> {
    row.unwrap()
        .into_iter()
        .map(|value| match value {
            mysql_async::Value::NULL => None,
            mysql_async::Value::Bytes(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            other => Some(other.as_sql(true).trim_matches('\'').to_string()),
        })
        .collect()
}

/// Per kind of object: how many the database has, and how the partner differs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Records of the database compared.
    pub compared: usize,
    /// Records the partner does not hold.
    pub missing: usize,
    /// Records the partner holds differently.
    pub differing: usize,
    /// Objects the partner holds that the database does not have (or has deleted).
    pub extra: usize,
}

/// The outcome of [`compare`].
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Per kind, parents first: locations, evses, connectors, tariffs, sessions, tokens, cdrs.
    pub counts: Vec<(&'static str, Count)>,
    /// One line (or a few) per difference; empty when the partner equals the database.
    pub diffs: Vec<String>,
}

impl Comparison {
    /// True when the partner holds exactly what the database holds.
    pub fn is_equal(&self) -> bool {
        self.diffs.is_empty()
    }

    fn count(&mut self, kind: &'static str) -> &mut Count {
        let index = match self.counts.iter().position(|(k, _)| *k == kind) {
            Some(i) => i,
            None => {
                self.counts.push((kind, Count::default()));
                self.counts.len() - 1
            }
        };
        &mut self.counts[index].1
    }

    fn compared(&mut self, kind: &'static str) {
        self.count(kind).compared += 1;
    }

    fn missing(&mut self, kind: &'static str, what: String) {
        self.count(kind).missing += 1;
        self.diffs.push(format!("{what}: missing at the partner"));
    }

    fn extra(&mut self, kind: &'static str, what: String, got: &Value) {
        self.count(kind).extra += 1;
        self.diffs.push(format!(
            "{what}: held by the partner, not in the database: {got}"
        ));
    }

    /// Counts and describes a difference unless `got` and `expected` are the same.
    fn differ(&mut self, kind: &'static str, what: String, got: &Value, expected: &Value) {
        if !same(got, expected) {
            self.count(kind).differing += 1;
            self.diffs
                .push(format!("{what}:\n  got      {got}\n  expected {expected}"));
        }
    }

    fn differs(&mut self, kind: &'static str, line: String) {
        self.count(kind).differing += 1;
        self.diffs.push(line);
    }
}

/// How `partner` (speaking OCPI `version`) differs from the database `db`.
pub fn compare(partner: &PartnerState, db: &DatabaseRows, version: &str) -> Comparison {
    let mut cmp = Comparison::default();
    for kind in [
        "locations",
        "evses",
        "connectors",
        "tariffs",
        "sessions",
        "tokens",
        "cdrs",
    ] {
        cmp.count(kind);
    }
    let empty = BTreeMap::new();
    let held = |module: &str| partner.objects.get(module).unwrap_or(&empty);

    // Tariffs: the live ones whole; soft-deleted ones absent.
    let mut keys = BTreeSet::new();
    for row in db.rows(&TARIFFS) {
        let ids = TARIFFS.ids(row);
        let what = format!("tariff {ids:?}");
        cmp.compared("tariffs");
        keys.insert(key(&ids));
        let got = partner.object(TARIFFS.module, &ids);
        match (
            row.get("deleted").and_then(|v| v.as_deref()) == Some("1"),
            got,
        ) {
            (true, None) => {}
            (true, Some(got)) => cmp.extra("tariffs", format!("{what} (soft-deleted)"), got),
            (false, None) => cmp.missing("tariffs", what),
            (false, Some(got)) => cmp.differ(
                "tariffs",
                what,
                got,
                &Value::Object(expected_object(&TARIFFS, version, row)),
            ),
        }
    }
    for (k, got) in held(TARIFFS.module) {
        if !keys.contains(k) {
            cmp.extra("tariffs", format!("tariff {k}"), got);
        }
    }

    // Tokens: whole; a 2.2.1 partner keys them by type, a 2.1.1 one has no type in the URL.
    let mut keys = BTreeSet::new();
    for row in db.rows(&TOKENS) {
        let mut ids = TOKENS.ids(row);
        let token_type = row.get("type").and_then(|v| v.as_deref()).unwrap_or("");
        let key_type = if version == "2.1.1" {
            "RFID"
        } else {
            token_type
        };
        cmp.compared("tokens");
        keys.insert(key(&[ids[0], ids[1], ids[2], key_type]));
        if version != "2.1.1" {
            ids.push(token_type);
        }
        let what = format!("token {ids:?}");
        match partner.object(TOKENS.module, &ids) {
            None => cmp.missing("tokens", what),
            Some(got) => cmp.differ(
                "tokens",
                what,
                got,
                &Value::Object(expected_object(&TOKENS, version, row)),
            ),
        }
    }
    for (k, got) in held(TOKENS.module) {
        if !keys.contains(k) && got.get("valid") != Some(&Value::Bool(false)) {
            cmp.extra("tokens", format!("token {k}"), got);
        }
    }

    // Sessions: whole.
    let mut keys = BTreeSet::new();
    for row in db.rows(&SESSIONS) {
        let ids = SESSIONS.ids(row);
        let what = format!("session {ids:?}");
        cmp.compared("sessions");
        keys.insert(key(&ids));
        match partner.object(SESSIONS.module, &ids) {
            None => cmp.missing("sessions", what),
            Some(got) => cmp.differ(
                "sessions",
                what,
                got,
                &Value::Object(expected_object(&SESSIONS, version, row)),
            ),
        }
    }
    for (k, got) in held(SESSIONS.module) {
        if !keys.contains(k) && got.get("status").and_then(Value::as_str) != Some("INVALID") {
            cmp.extra("sessions", format!("session {k}"), got);
        }
    }

    // Connectors whole; then EVSEs and Locations without their children, last_updated the
    // newest of their own and their children's.
    let mut children: HashMap<String, BTreeSet<String>> = HashMap::new();
    for row in db.rows(&CONNECTORS) {
        let ids = CONNECTORS.ids(row);
        let what = format!("connector {ids:?}");
        cmp.compared("connectors");
        children
            .entry(key(&ids[..4]))
            .or_default()
            .insert(ids[4].to_uppercase());
        match partner.object(CONNECTORS.module, &ids) {
            None => cmp.missing("connectors", what),
            Some(got) => cmp.differ(
                "connectors",
                what,
                got,
                &Value::Object(expected_object(&CONNECTORS, version, row)),
            ),
        }
    }
    for row in db.rows(&EVSES) {
        let ids = EVSES.ids(row);
        let what = format!("EVSE {ids:?}");
        cmp.compared("evses");
        children
            .entry(key(&ids[..3]))
            .or_default()
            .insert(ids[3].to_uppercase());
        let Some(got) = partner.object(EVSES.module, &ids) else {
            cmp.missing("evses", what);
            continue;
        };
        let expected = Value::Object(expected_object(&EVSES, version, row));
        let before = cmp.diffs.len();
        cmp.differ(
            "evses",
            what.clone(),
            &without(got, &["connectors", "last_updated"]),
            &without(&expected, &["last_updated"]),
        );
        let connectors = child_list(got, "connectors");
        if cmp.diffs.len() == before {
            check_newest(
                &mut cmp,
                "evses",
                &what,
                got,
                row,
                &connectors,
                "connectors",
            );
        }
        let expected_children = children.get(&key(&ids)).cloned().unwrap_or_default();
        for (id, connector) in &connectors {
            if !expected_children.contains(id) {
                cmp.extra("connectors", format!("connector {id} of {what}"), connector);
            }
        }
    }
    let mut keys = BTreeSet::new();
    for row in db.rows(&LOCATIONS) {
        let ids = LOCATIONS.ids(row);
        let what = format!("location {ids:?}");
        cmp.compared("locations");
        keys.insert(key(&ids));
        let Some(got) = partner.object(LOCATIONS.module, &ids) else {
            cmp.missing("locations", what);
            continue;
        };
        let expected = Value::Object(expected_object(&LOCATIONS, version, row));
        let before = cmp.diffs.len();
        cmp.differ(
            "locations",
            what.clone(),
            &without(got, &["evses", "last_updated"]),
            &without(&expected, &["last_updated"]),
        );
        let evses = child_list(got, "evses");
        if cmp.diffs.len() == before {
            check_newest(&mut cmp, "locations", &what, got, row, &evses, "EVSEs");
        }
        let expected_children = children.get(&key(&ids)).cloned().unwrap_or_default();
        for (uid, evse) in &evses {
            let removed = evse.get("status").and_then(Value::as_str) == Some("REMOVED");
            if !expected_children.contains(uid) && !removed {
                cmp.extra("evses", format!("EVSE {uid} of {what}"), evse);
            }
        }
    }
    for (k, got) in held(LOCATIONS.module) {
        if !keys.contains(k) {
            cmp.extra("locations", format!("location {k}"), got);
        }
    }

    // CDRs: each POSTed once, as stored.
    let id_of = |cdr: &Value| {
        cdr.get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_uppercase()
    };
    let mut posted: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for cdr in &partner.cdrs {
        posted.entry(id_of(cdr)).or_default().push(cdr);
    }
    for stored in &db.cdrs {
        let id = id_of(stored);
        let what = format!("CDR {id}");
        cmp.compared("cdrs");
        match posted.remove(&id).unwrap_or_default().as_slice() {
            [] => cmp.missing("cdrs", what),
            [got] => cmp.differ("cdrs", what, got, stored),
            more => cmp.differs(
                "cdrs",
                format!(
                    "{what}: POSTed {} times (a CDR must be sent once)",
                    more.len()
                ),
            ),
        }
    }
    for (id, extra) in posted {
        for got in extra {
            cmp.extra("cdrs", format!("CDR {id}"), got);
        }
    }
    cmp
}

/// How what `partner` holds differs from `database` of the test server `db` (empty: equal), by
/// [`compare`] in the partner's version. Reads through the `mariadb` client: blocking (async
/// tests run it in `block_in_place`).
pub fn differences(db: &MariaDb, database: &str, partner: &OcpiPartner) -> Vec<String> {
    let rows = DatabaseRows::from_mariadb(db, database);
    compare(
        &partner.state(true),
        &rows,
        partner.options().version.as_str(),
    )
    .diffs
}

/// The children an object holds in `list`, by their id upper-cased.
fn child_list(parent: &Value, list: &str) -> BTreeMap<String, Value> {
    let field = if list == "evses" { "uid" } else { "id" };
    parent
        .get(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let id = c.get(field).and_then(Value::as_str).unwrap_or_default();
            (id.to_uppercase(), c.clone())
        })
        .collect()
}

/// A parent's `last_updated` must be at least the newest of its row's and its children's:
/// later only when a child was deleted, whose time the receiver keeps (the pusher never sends
/// a tree object older than what the partner holds).
fn check_newest(
    cmp: &mut Comparison,
    kind: &'static str,
    what: &str,
    got: &Value,
    row: &Row,
    children: &BTreeMap<String, Value>,
    children_name: &str,
) {
    let own = row_last_updated(row);
    let newest = children
        .values()
        .filter_map(last_updated_of)
        .fold(own, |newest, at| Some(newest.map_or(at, |n| n.max(at))));
    let held = last_updated_of(got);
    if newest.is_none() || held.is_none() || held < newest {
        cmp.differs(
            kind,
            format!(
                "{what}: last_updated {:?}, expected at least the newest of its own and its \
                 {children_name}' ({newest:?})",
                got.get("last_updated")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(spec: &TableSpec, values: &[(&str, &str)]) -> Row {
        spec.columns
            .iter()
            .map(|c| {
                let value = values
                    .iter()
                    .find(|(k, _)| k == c)
                    .map(|(_, v)| v.to_string());
                (c.to_string(), value)
            })
            .collect()
    }

    fn tariff(id: &str, price: &str, deleted: &str) -> Row {
        let elements = format!(
            r#"[{{"price_components": [{{"type": "ENERGY", "price": {price}, "step_size": 1}}]}}]"#
        );
        row(
            &TARIFFS,
            &[
                ("country_code", "NL"),
                ("party_id", "EXA"),
                ("id", id),
                ("currency", "EUR"),
                ("elements", &elements),
                ("deleted", deleted),
                ("last_updated", "2026-01-05 09:00:00.000"),
            ],
        )
    }

    fn database() -> DatabaseRows {
        let mut db = DatabaseRows::default();
        db.tables.insert(
            TARIFFS.table,
            vec![tariff("T1", "0.35", "0"), tariff("T2", "0.40", "1")],
        );
        db.tables.insert(
            LOCATIONS.table,
            vec![row(
                &LOCATIONS,
                &[
                    ("country_code", "NL"),
                    ("party_id", "EXA"),
                    ("id", "L1"),
                    ("publish", "1"),
                    ("address", "Street 1"),
                    ("city", "Utrecht"),
                    ("country", "NLD"),
                    ("latitude", "52.000000"),
                    ("longitude", "5.000000"),
                    ("time_zone", "Europe/Amsterdam"),
                    ("last_updated", "2026-01-05 09:00:00.000"),
                ],
            )],
        );
        db.tables.insert(
            EVSES.table,
            vec![row(
                &EVSES,
                &[
                    ("country_code", "NL"),
                    ("party_id", "EXA"),
                    ("location_id", "L1"),
                    ("uid", "E1"),
                    ("status", "AVAILABLE"),
                    ("capabilities", ""),
                    ("last_updated", "2026-01-05 09:00:00.000"),
                ],
            )],
        );
        db.tables.insert(
            CONNECTORS.table,
            vec![row(
                &CONNECTORS,
                &[
                    ("country_code", "NL"),
                    ("party_id", "EXA"),
                    ("location_id", "L1"),
                    ("evse_uid", "E1"),
                    ("id", "1"),
                    ("standard", "IEC_62196_T2"),
                    ("format", "SOCKET"),
                    ("power_type", "AC_3_PHASE"),
                    ("max_voltage", "230"),
                    ("max_amperage", "32"),
                    ("last_updated", "2026-01-05 09:00:00.000"),
                ],
            )],
        );
        db.cdrs = vec![json!({"id": "C1", "last_updated": "2026-01-05T09:00:00Z"})];
        db
    }

    /// What a partner holding exactly `database()` holds.
    fn equal_partner(db: &DatabaseRows) -> PartnerState {
        let mut state = PartnerState::default();
        let mut tariffs = BTreeMap::new();
        tariffs.insert(
            "NL/EXA/T1".to_string(),
            Value::Object(expected_object(&TARIFFS, "2.2.1", &db.rows(&TARIFFS)[0])),
        );
        let connector = expected_object(&CONNECTORS, "2.2.1", &db.rows(&CONNECTORS)[0]);
        let mut evse = expected_object(&EVSES, "2.2.1", &db.rows(&EVSES)[0]);
        evse.insert("connectors".into(), json!([connector]));
        let mut location = expected_object(&LOCATIONS, "2.2.1", &db.rows(&LOCATIONS)[0]);
        location.insert("evses".into(), json!([evse]));
        let mut locations = BTreeMap::new();
        locations.insert("NL/EXA/L1".to_string(), Value::Object(location));
        state.objects.insert("tariffs".into(), tariffs);
        state.objects.insert("locations".into(), locations);
        state.cdrs = db.cdrs.clone();
        state
    }

    fn count(cmp: &Comparison, kind: &str) -> Count {
        cmp.counts
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, c)| *c)
            .unwrap_or_default()
    }

    #[test]
    fn a_partner_holding_what_the_database_holds_is_equal() {
        let db = database();
        let cmp = compare(&equal_partner(&db), &db, "2.2.1");
        assert!(cmp.is_equal(), "{:#?}", cmp.diffs);
        assert_eq!(count(&cmp, "tariffs").compared, 2);
        assert_eq!(count(&cmp, "connectors").compared, 1);
        assert_eq!(count(&cmp, "cdrs").compared, 1);
    }

    #[test]
    fn missing_differing_and_extra_records_are_counted_per_kind() {
        let db = database();
        let mut partner = equal_partner(&db);
        let tariffs = partner.objects.get_mut("tariffs").unwrap();
        // T1 with another price; T2 still held although soft-deleted; T9 unknown.
        tariffs.get_mut("NL/EXA/T1").unwrap()["elements"][0]["price_components"][0]["price"] =
            json!(0.99);
        tariffs.insert("NL/EXA/T2".into(), json!({"id": "T2"}));
        tariffs.insert("NL/EXA/T9".into(), json!({"id": "T9"}));
        // The connector missing; an EVSE the database does not have.
        let location = partner
            .objects
            .get_mut("locations")
            .unwrap()
            .get_mut("NL/EXA/L1")
            .unwrap();
        location["evses"][0]["connectors"] = json!([]);
        location["evses"]
            .as_array_mut()
            .unwrap()
            .push(json!({"uid": "E9", "status": "AVAILABLE"}));
        // The CDR POSTed twice.
        partner.cdrs.push(partner.cdrs[0].clone());

        let cmp = compare(&partner, &db, "2.2.1");
        assert!(!cmp.is_equal());
        let tariffs = count(&cmp, "tariffs");
        assert_eq!(
            (tariffs.differing, tariffs.extra, tariffs.missing),
            (1, 2, 0)
        );
        assert_eq!(count(&cmp, "connectors").missing, 1);
        assert_eq!(count(&cmp, "evses").extra, 1);
        assert_eq!(count(&cmp, "cdrs").differing, 1);
        assert!(
            cmp.diffs.iter().any(|d| d.contains("POSTed 2 times")),
            "{:#?}",
            cmp.diffs
        );
    }

    #[test]
    fn a_removed_evse_no_longer_in_the_database_is_not_extra() {
        let db = database();
        let mut partner = equal_partner(&db);
        let location = partner
            .objects
            .get_mut("locations")
            .unwrap()
            .get_mut("NL/EXA/L1")
            .unwrap();
        location["evses"].as_array_mut().unwrap().push(
            json!({"uid": "E2", "status": "REMOVED", "last_updated": "2026-01-05T08:00:00Z"}),
        );
        let cmp = compare(&partner, &db, "2.2.1");
        assert!(cmp.is_equal(), "{:#?}", cmp.diffs);
    }
}
