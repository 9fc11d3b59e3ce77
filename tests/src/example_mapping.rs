//! The example mapping (`config/ocpi-example/mapping.toml`) written out a second time, by hand
//! and independently of the pusher: which OCPI object a row of the example schema becomes for a
//! partner of each version. The end-to-end tests and the demo's consistency check compare what
//! partners hold with this, so a mapping bug in the pusher cannot hide behind its own code.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::ocpi_partner::parse_rfc3339;

/// A row: column name to its text as the database prints it (NULL as `None`).
pub type Row = BTreeMap<String, Option<String>>;

/// How a column's text becomes a JSON value (the mapping's `as`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv {
    /// Text as is.
    Text,
    /// DECIMAL digits as text (`as = "string"`).
    Str,
    /// `as = "number"`.
    Number,
    /// `as = "integer"`.
    Integer,
    /// `as = "bool"` (TINYINT 0/1).
    Bool,
    /// `as = "json"`.
    Json,
    /// `as = "datetime"` (DATETIME taken as UTC).
    Datetime,
    /// `as = "list"` (SET text).
    List,
    /// A 2.2.1 ParkingType as a 2.1.1 LocationType: ALONG_MOTORWAY and ON_DRIVEWAY become
    /// OTHER, NULL becomes UNKNOWN (2.1.1 requires a type).
    LocationType,
    /// Text; NULL becomes "" for 2.1.1, which requires the field (a Location's postal_code).
    TextRequiredIn211,
    /// A TokenType as 2.1.1 knows it: AD_HOC_USER and APP_USER become OTHER.
    TokenType211,
    /// An AuthMethod as 2.1.1 knows it: COMMAND becomes AUTH_REQUEST.
    AuthMethod211,
    /// A SessionStatus as 2.1.1 knows it: RESERVATION becomes PENDING.
    SessionStatus211,
    /// The `contract_id` member of a CdrToken JSON column (2.1.1 `auth_id`).
    ContractIdOfToken,
}

/// The OCPI versions a field is sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Only {
    All,
    /// 2.2.1 and 2.3.0 (`versions = ["2.2.1", "2.3.0"]`).
    V221,
    /// 2.2.1 alone (its Price fields).
    Exactly221,
    /// 2.3.0 alone (its Price fields).
    V230,
    V211,
}

/// One OCPI field: (field, column, conversion, versions).
pub type Field = (&'static str, &'static str, Conv, Only);

/// One `[[table]]` of the example mapping.
#[derive(Debug)]
pub struct TableSpec {
    /// The table in database `ocpi`.
    pub table: &'static str,
    pub module: &'static str,
    /// Columns that fill the URL's ids, in order.
    pub path: &'static [&'static str],
    /// Every column read (fields, ids and the soft-delete flag).
    pub columns: &'static [&'static str],
    pub fields: &'static [Field],
}

impl TableSpec {
    /// `SELECT <columns> FROM <database>.<table> [WHERE filter] ORDER BY <path>`.
    pub fn select_sql(&self, database: &str, filter: Option<&str>) -> String {
        format!(
            "SELECT {} FROM `{database}`.{}{} ORDER BY {}",
            self.columns.join(", "),
            self.table,
            filter.map(|f| format!(" WHERE {f}")).unwrap_or_default(),
            self.path.join(", ")
        )
    }

    /// Rows as the query of [`TableSpec::select_sql`] returned them (values in column order).
    pub fn rows_from(&self, values: Vec<Vec<Option<String>>>) -> Vec<Row> {
        values
            .into_iter()
            .map(|row| {
                self.columns
                    .iter()
                    .map(|c| c.to_string())
                    .zip(row.into_iter().chain(std::iter::repeat(None)))
                    .collect()
            })
            .collect()
    }

    /// The row's URL ids (path columns); a NULL key column (impossible in the schema) is "".
    pub fn ids<'r>(&self, row: &'r Row) -> Vec<&'r str> {
        self.path
            .iter()
            .map(|c| row.get(*c).and_then(|v| v.as_deref()).unwrap_or(""))
            .collect()
    }
}

use Conv::*;
use Only::*;

pub const LOCATIONS: TableSpec = TableSpec {
    table: "locations",
    module: "locations",
    path: &["country_code", "party_id", "id"],
    columns: &[
        "country_code",
        "party_id",
        "id",
        "publish",
        "name",
        "address",
        "city",
        "postal_code",
        "state",
        "country",
        "latitude",
        "longitude",
        "parking_type",
        "operator_name",
        "time_zone",
        "opening_times",
        "charging_when_closed",
        "last_updated",
    ],
    fields: &[
        ("country_code", "country_code", Text, V221),
        ("party_id", "party_id", Text, V221),
        ("id", "id", Text, All),
        ("type", "parking_type", LocationType, V211),
        ("publish", "publish", Bool, V221),
        ("name", "name", Text, All),
        ("address", "address", Text, All),
        ("city", "city", Text, All),
        ("postal_code", "postal_code", TextRequiredIn211, All),
        ("state", "state", Text, V221),
        ("country", "country", Text, All),
        ("coordinates.latitude", "latitude", Str, All),
        ("coordinates.longitude", "longitude", Str, All),
        ("parking_type", "parking_type", Text, V221),
        ("operator.name", "operator_name", Text, All),
        ("time_zone", "time_zone", Text, All),
        ("opening_times", "opening_times", Json, All),
        ("charging_when_closed", "charging_when_closed", Bool, All),
        ("last_updated", "last_updated", Datetime, All),
    ],
};

pub const EVSES: TableSpec = TableSpec {
    table: "evses",
    module: "locations",
    path: &["country_code", "party_id", "location_id", "uid"],
    columns: &[
        "country_code",
        "party_id",
        "location_id",
        "uid",
        "evse_id",
        "status",
        "capabilities",
        "floor_level",
        "latitude",
        "longitude",
        "physical_reference",
        "parking_restrictions",
        "last_updated",
    ],
    fields: &[
        ("uid", "uid", Text, All),
        ("evse_id", "evse_id", Text, All),
        ("status", "status", Text, All),
        ("capabilities", "capabilities", List, All),
        ("floor_level", "floor_level", Text, All),
        ("coordinates.latitude", "latitude", Str, All),
        ("coordinates.longitude", "longitude", Str, All),
        ("physical_reference", "physical_reference", Text, All),
        ("parking_restrictions", "parking_restrictions", Json, V221),
        ("last_updated", "last_updated", Datetime, All),
    ],
};

pub const CONNECTORS: TableSpec = TableSpec {
    table: "connectors",
    module: "locations",
    path: &["country_code", "party_id", "location_id", "evse_uid", "id"],
    columns: &[
        "country_code",
        "party_id",
        "location_id",
        "evse_uid",
        "id",
        "standard",
        "format",
        "power_type",
        "max_voltage",
        "max_amperage",
        "max_electric_power",
        "tariff_ids",
        "terms_and_conditions",
        "last_updated",
    ],
    fields: &[
        ("id", "id", Text, All),
        ("standard", "standard", Text, All),
        ("format", "format", Text, All),
        ("power_type", "power_type", Text, All),
        ("max_voltage", "max_voltage", Integer, V221),
        ("max_amperage", "max_amperage", Integer, V221),
        ("max_electric_power", "max_electric_power", Integer, V221),
        ("voltage", "max_voltage", Integer, V211),
        ("amperage", "max_amperage", Integer, V211),
        ("tariff_ids", "tariff_ids", Json, V221),
        ("terms_and_conditions", "terms_and_conditions", Text, All),
        ("last_updated", "last_updated", Datetime, All),
    ],
};

pub const TARIFFS: TableSpec = TableSpec {
    table: "tariffs",
    module: "tariffs",
    path: &["country_code", "party_id", "id"],
    columns: &[
        "country_code",
        "party_id",
        "id",
        "currency",
        "type",
        "tariff_alt_text",
        "tariff_alt_url",
        "elements",
        "start_date_time",
        "end_date_time",
        "deleted",
        "last_updated",
    ],
    fields: &[
        ("country_code", "country_code", Text, V221),
        ("party_id", "party_id", Text, V221),
        ("id", "id", Text, All),
        ("currency", "currency", Text, All),
        ("type", "type", Text, V221),
        ("tariff_alt_text", "tariff_alt_text", Json, All),
        ("tariff_alt_url", "tariff_alt_url", Text, All),
        ("elements", "elements", Json, All),
        ("start_date_time", "start_date_time", Datetime, V221),
        ("end_date_time", "end_date_time", Datetime, V221),
        ("last_updated", "last_updated", Datetime, All),
    ],
};

pub const SESSIONS: TableSpec = TableSpec {
    table: "sessions",
    module: "sessions",
    path: &["country_code", "party_id", "id"],
    columns: &[
        "country_code",
        "party_id",
        "id",
        "start_date_time",
        "end_date_time",
        "kwh",
        "cdr_token",
        "auth_method",
        "authorization_reference",
        "location_id",
        "evse_uid",
        "connector_id",
        "meter_id",
        "currency",
        "total_cost_excl_vat",
        "total_cost_incl_vat",
        "status",
        "last_updated",
    ],
    fields: &[
        ("country_code", "country_code", Text, V221),
        ("party_id", "party_id", Text, V221),
        ("id", "id", Text, All),
        ("start_date_time", "start_date_time", Datetime, V221),
        ("end_date_time", "end_date_time", Datetime, V221),
        ("start_datetime", "start_date_time", Datetime, V211),
        ("end_datetime", "end_date_time", Datetime, V211),
        ("kwh", "kwh", Number, All),
        ("cdr_token", "cdr_token", Json, V221),
        ("auth_method", "auth_method", Text, V221),
        ("auth_method", "auth_method", AuthMethod211, V211),
        ("auth_id", "cdr_token", ContractIdOfToken, V211),
        (
            "authorization_reference",
            "authorization_reference",
            Text,
            V221,
        ),
        ("location_id", "location_id", Text, V221),
        ("evse_uid", "evse_uid", Text, V221),
        ("connector_id", "connector_id", Text, V221),
        ("meter_id", "meter_id", Text, All),
        ("currency", "currency", Text, All),
        (
            "total_cost.excl_vat",
            "total_cost_excl_vat",
            Number,
            Exactly221,
        ),
        (
            "total_cost.incl_vat",
            "total_cost_incl_vat",
            Number,
            Exactly221,
        ),
        (
            "total_cost.before_taxes",
            "total_cost_excl_vat",
            Number,
            V230,
        ),
        ("total_cost", "total_cost_excl_vat", Number, V211),
        ("status", "status", Text, V221),
        ("status", "status", SessionStatus211, V211),
        ("last_updated", "last_updated", Datetime, All),
    ],
};

pub const TOKENS: TableSpec = TableSpec {
    table: "tokens",
    module: "tokens",
    path: &["country_code", "party_id", "uid"],
    columns: &[
        "country_code",
        "party_id",
        "uid",
        "type",
        "contract_id",
        "visual_number",
        "issuer",
        "group_id",
        "valid",
        "whitelist",
        "language",
        "default_profile_type",
        "last_updated",
    ],
    fields: &[
        ("country_code", "country_code", Text, V221),
        ("party_id", "party_id", Text, V221),
        ("uid", "uid", Text, All),
        ("type", "type", Text, V221),
        ("type", "type", TokenType211, V211),
        ("contract_id", "contract_id", Text, V221),
        ("auth_id", "contract_id", Text, V211),
        ("visual_number", "visual_number", Text, All),
        ("issuer", "issuer", Text, All),
        ("group_id", "group_id", Text, V221),
        ("valid", "valid", Bool, All),
        ("whitelist", "whitelist", Text, All),
        ("language", "language", Text, All),
        ("default_profile_type", "default_profile_type", Text, V221),
        ("last_updated", "last_updated", Datetime, All),
    ],
};

/// The example tables sent field by field, parents before children (CDRs are sent as their
/// `ocpi_object` column and have no spec).
pub const ALL_TABLES: [&TableSpec; 6] = [
    &LOCATIONS,
    &EVSES,
    &CONNECTORS,
    &TARIFFS,
    &SESSIONS,
    &TOKENS,
];

/// True when a field of these versions is sent to a partner of `version`.
pub fn applies(only: Only, version: &str) -> bool {
    match only {
        All => true,
        V221 => version == "2.2.1" || version == "2.3.0",
        Exactly221 => version == "2.2.1",
        V230 => version == "2.3.0",
        V211 => version == "2.1.1",
    }
}

/// A column's text (as the database prints it) as the mapping converts it. Text that does not
/// convert (which the schema's column types rule out) becomes a marker string, so it shows up
/// as a difference instead of stopping a consistency check.
pub fn convert(text: &str, conv: Conv) -> Value {
    let unreadable = || Value::String(format!("<{conv:?} unreadable: {text}>"));
    match conv {
        Text | Str | TextRequiredIn211 => Value::String(text.to_string()),
        TokenType211 => Value::from(match text {
            "AD_HOC_USER" | "APP_USER" => "OTHER",
            other => other,
        }),
        AuthMethod211 => Value::from(match text {
            "COMMAND" => "AUTH_REQUEST",
            other => other,
        }),
        SessionStatus211 => Value::from(match text {
            "RESERVATION" => "PENDING",
            other => other,
        }),
        ContractIdOfToken => serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|token| token.get("contract_id").cloned())
            .unwrap_or_else(unreadable),
        LocationType => Value::from(match text {
            "ALONG_MOTORWAY" | "ON_DRIVEWAY" => "OTHER",
            other => other,
        }),
        Number => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(unreadable),
        Integer => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| unreadable()),
        Bool => Value::Bool(text != "0"),
        Json => serde_json::from_str(text).unwrap_or_else(|_| unreadable()),
        Datetime => Value::String(format!("{}Z", text.replacen(' ', "T", 1))),
        List => Value::Array(
            text.split(',')
                .filter(|m| !m.is_empty())
                .map(|m| Value::String(m.to_string()))
                .collect(),
        ),
    }
}

/// The OCPI object the mapping makes of `row` for a partner of `version` (NULLs left out).
pub fn expected_object(spec: &TableSpec, version: &str, row: &Row) -> Map<String, Value> {
    let mut object = Map::new();
    for (field, column, conv, only) in spec.fields {
        if !applies(*only, version) {
            continue;
        }
        let value = match (row.get(*column), conv) {
            (Some(Some(text)), _) => convert(text, *conv),
            (_, LocationType) => Value::from("UNKNOWN"),
            (_, TextRequiredIn211) if version == "2.1.1" => Value::from(""),
            _ => continue,
        };
        match field.split_once('.') {
            None => {
                object.insert(field.to_string(), value);
            }
            Some((outer, inner)) => {
                let nested = object
                    .entry(outer.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(nested) = nested.as_object_mut() {
                    nested.insert(inner.to_string(), value);
                }
            }
        }
    }
    object
}

/// The top-level fields a PATCH carries when `changed` columns changed: every field fed by a
/// changed column (a nested field's whole top-level object), plus `last_updated`.
pub fn patch_fields(spec: &TableSpec, version: &str, changed: &[&str]) -> BTreeSet<String> {
    let mut fields: BTreeSet<String> = spec
        .fields
        .iter()
        .filter(|(_, column, _, only)| applies(*only, version) && changed.contains(column))
        .map(|(field, ..)| field.split('.').next().unwrap_or(field).to_string())
        .collect();
    fields.insert("last_updated".into());
    fields
}

/// Values made comparable: date-times as instants ("...Z" and "+00:00" alike), numbers as f64
/// (DECIMAL text converted to 12.5 and 12.50 alike), recursively.
pub fn normalize(value: &Value) -> Value {
    match value {
        Value::String(s) if s.len() >= 19 => match parse_rfc3339(s) {
            Some(at) => Value::String(format!("instant:{at}")),
            None => value.clone(),
        },
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| value.clone()),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
        }
        _ => value.clone(),
    }
}

/// True when the two are equal once [`normalize`]d.
pub fn same(got: &Value, expected: &Value) -> bool {
    normalize(got) == normalize(expected)
}

/// The object without these top-level fields (a non-object stays as it is).
pub fn without(object: &Value, fields: &[&str]) -> Value {
    match object.as_object() {
        Some(map) => {
            let mut map = map.clone();
            for f in fields {
                map.remove(*f);
            }
            Value::Object(map)
        }
        None => object.clone(),
    }
}

/// The instant of an object's `last_updated`, when it has a readable one.
pub fn last_updated_of(object: &Value) -> Option<i128> {
    object
        .get("last_updated")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
}

/// The instant of a row's `last_updated` column, when it has a readable one.
pub fn row_last_updated(row: &Row) -> Option<i128> {
    row.get("last_updated")
        .and_then(|v| v.as_deref())
        .and_then(parse_rfc3339)
}
