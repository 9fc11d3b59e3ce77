//! One row change to one planned OCPI request. The rules are in the module documentation.

use std::collections::HashSet;

use change_message::{Operation, Row, RowChange};
use serde_json::{Map, Value};

use super::config::{Body, FieldMapping, FieldSource, TableMapping, UpdateMode};
use super::convert::{convert, instant, LocalTime};
use super::{MappingError, Method, ObjectKind, OcpiVersion, PlannedRequest};

/// Plans the OCPI request for `change` under `mapping`, for a partner speaking `version`.
///
/// `snapshot` marks a change that stands for a full current state rather than a transition
/// (the initial sync of a new partner): it is sent as a full `PUT` (CDRs: `POST`), whatever
/// its operation and the mapping's `update` mode, because the partner may not hold the object.
///
/// See the [module documentation](super) for every rule and decision.
pub fn render(
    mapping: &TableMapping,
    change: &RowChange,
    version: OcpiVersion,
    snapshot: bool,
) -> Result<PlannedRequest, MappingError> {
    if mapping.database != change.database || mapping.table != change.table {
        return Err(MappingError::WrongTable {
            mapping: mapping.qualified_name(),
            change: format!("{}.{}", change.database, change.table),
        });
    }
    let view = ChangeView {
        op: change.op,
        before: change.before.as_ref(),
        after: change.after.as_ref(),
        changed: &change.changed,
        commit_time: &change.source.commit_time,
    };
    Ctx::new(mapping, version, view).plan(snapshot)
}

/// Plans the full `PUT` of a row read from the database as it is now (a composite object's
/// row): what [`render`] plans for a snapshot row, without building a change around the row.
pub fn render_current(
    mapping: &TableMapping,
    row: &Row,
    version: OcpiVersion,
) -> Result<PlannedRequest, MappingError> {
    let view = ChangeView {
        op: Operation::Insert,
        before: None,
        after: Some(row),
        changed: &[],
        commit_time: "",
    };
    Ctx::new(mapping, version, view).plan(true)
}

/// What rendering reads of a change.
struct ChangeView<'a> {
    op: Operation,
    before: Option<&'a Row>,
    after: Option<&'a Row>,
    changed: &'a [String],
    commit_time: &'a str,
}

struct Ctx<'a> {
    m: &'a TableMapping,
    version: OcpiVersion,
    change: ChangeView<'a>,
    object: ObjectKind,
}

impl<'a> Ctx<'a> {
    fn new(m: &'a TableMapping, version: OcpiVersion, change: ChangeView<'a>) -> Ctx<'a> {
        Ctx {
            m,
            version,
            change,
            object: m.object(),
        }
    }

    fn plan(&self, snapshot: bool) -> Result<PlannedRequest, MappingError> {
        match self.change.op {
            Operation::Delete => self.delete(),
            Operation::Insert | Operation::Update => self.upsert(snapshot),
        }
    }

    /// `database.table`, for errors.
    fn table(&self) -> String {
        self.m.qualified_name()
    }

    /// How this change's DATETIME values are read: in the source's zone, written by the
    /// change's commit (a row read from the database as it is now: by now).
    fn local_time(&self) -> LocalTime<'a> {
        let written_by = match instant(self.change.commit_time) {
            Some(at) => at.secs(),
            None => unix_now(),
        };
        LocalTime {
            zone: &self.m.time_zone,
            written_by: Some(written_by),
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Which fields of the object to render.
enum Select<'s> {
    All,
    /// Top-level fields with a changed source column, plus `last_updated`.
    Changed(&'s HashSet<&'s str>),
}

impl Ctx<'_> {
    fn image(&self, which: &'static str) -> Result<&Row, MappingError> {
        let image = match which {
            "before" => self.change.before,
            _ => self.change.after,
        };
        image.ok_or_else(|| MappingError::MissingImage {
            table: self.table(),
            op: self.change.op.as_str(),
            image: which,
        })
    }

    fn rejected(&self, reason: impl Into<String>) -> MappingError {
        MappingError::Rejected {
            table: self.table(),
            reason: reason.into(),
        }
    }

    fn nothing(&self, reason: impl Into<String>) -> MappingError {
        MappingError::NothingToSend {
            table: self.table(),
            reason: reason.into(),
        }
    }

    fn delete(&self) -> Result<PlannedRequest, MappingError> {
        match self.object {
            ObjectKind::Cdr => {
                return Err(self.rejected(
                    "a CDR cannot be removed in OCPI: it is immutable and is corrected by a \
                     credit CDR (a new row with credit = true and credit_reference_id = the \
                     original id)",
                ))
            }
            ObjectKind::Location | ObjectKind::Connector => {
                return Err(self.rejected(format!(
                    "OCPI has no removal of a {} (Locations, EVSEs and Connectors are never \
                     deleted; only an EVSE is marked REMOVED): unpublish a Location with \
                     publish = false, or update its EVSEs to REMOVED",
                    self.object
                )))
            }
            _ => {}
        }
        let before = self.image("before")?;
        self.ids(before)?;
        if self.soft_deleted(before)? {
            return Err(self.nothing(
                "the row was already soft-deleted: its removal was sent with the soft delete",
            ));
        }
        self.removal(before, true)
    }

    fn upsert(&self, snapshot: bool) -> Result<PlannedRequest, MappingError> {
        let after = self.image("after")?;
        // The URL ids first: without them no request can be addressed.
        self.ids(after)?;
        let op = self.change.op;
        if self.object == ObjectKind::Cdr {
            if op == Operation::Update && !snapshot {
                return Err(self.rejected(
                    "a CDR is immutable once sent: an update of a CDR row is not pushed; \
                     correct a CDR with a credit CDR (a new row with credit = true and \
                     credit_reference_id = the original id) and, if needed, a new CDR",
                ));
            }
            let body = self.object_body(after, Select::All)?;
            return self.request(Method::Post, after, Some(body), false);
        }
        let removed = self.soft_deleted(after)?;
        if snapshot || op == Operation::Insert {
            // The partner may not hold the object: send all of it.
            if removed && self.object == ObjectKind::Tariff {
                if snapshot {
                    // The partner may hold it: a re-synced partner, or a live change that
                    // reached it before this row. A partner that does not hold it refuses the
                    // DELETE, which the pusher takes as done for a snapshot row.
                    return self.removal(after, false);
                }
                return Err(self.nothing(
                    "a Tariff that is already soft-deleted: the partner never had it, there is \
                     nothing to delete",
                ));
            }
            let mut body = self.object_body(after, Select::All)?;
            if removed {
                self.apply_removal_value(&mut body, true);
            }
            return self.request(Method::Put, after, Some(body), true);
        }
        let was_removed = match self.change.before {
            Some(before) => self.soft_deleted(before)?,
            None => false,
        };
        match (was_removed, removed) {
            (false, true) if self.object == ObjectKind::Tariff => self.removal(after, false),
            (true, true) if self.object == ObjectKind::Tariff => {
                Err(self
                    .nothing("the Tariff row stays soft-deleted: the partner deleted it already"))
            }
            (true, false) if self.object == ObjectKind::Tariff => {
                // Revived: the partner deleted it; create it again.
                let body = self.object_body(after, Select::All)?;
                self.request(Method::Put, after, Some(body), true)
            }
            (was_removed, removed) => {
                let changed: HashSet<&str> =
                    self.change.changed.iter().map(String::as_str).collect();
                let (method, select) = match self.m.update {
                    UpdateMode::Put => (Method::Put, Select::All),
                    // Revived: every field may differ from what the partner holds.
                    UpdateMode::Patch if was_removed && !removed => (Method::Patch, Select::All),
                    UpdateMode::Patch => (Method::Patch, Select::Changed(&changed)),
                };
                let mut body = match (&self.m.body, &select) {
                    (Body::Column { .. }, Select::Changed(_)) => self.column_patch(after)?,
                    _ => self.object_body(after, select)?,
                };
                if removed {
                    // Removed now (EVSE REMOVED, token valid = false, ...): the removal value
                    // goes with every other field the change moved, which the partner would
                    // otherwise never get.
                    let newly = !was_removed;
                    self.apply_removal_value(&mut body, method == Method::Put || newly);
                }
                self.request(method, after, Some(body), true)
            }
        }
    }

    /// The removal of an object the partner holds (module documentation, "Removal").
    fn removal(&self, image: &Row, delete_event: bool) -> Result<PlannedRequest, MappingError> {
        if self.object == ObjectKind::Tariff {
            return self.request(Method::Delete, image, None, true);
        }
        let Some((key, value)) = removal_value(self.object) else {
            return Err(self.rejected(format!("OCPI has no removal of a {}", self.object)));
        };
        let mut last_updated = self.last_updated(image)?;
        if delete_event {
            let commit = self.change.commit_time;
            if let (Value::String(lu), Some(commit_at)) = (&last_updated, instant(commit)) {
                if instant(lu).is_none_or(|lu_at| lu_at < commit_at) {
                    last_updated = Value::String(commit.to_string());
                }
            }
        }
        let mut body = Map::new();
        body.insert(key.to_string(), value);
        body.insert("last_updated".to_string(), last_updated);
        self.request(Method::Patch, image, Some(Value::Object(body)), true)
    }

    /// Sets the removal value (EVSE status REMOVED, ...) in a full object (`full`), or in a
    /// patch that carries the field.
    fn apply_removal_value(&self, body: &mut Value, full: bool) {
        let Some((key, value)) = removal_value(self.object) else {
            return;
        };
        if let Value::Object(map) = body {
            if full || map.contains_key(key) {
                map.insert(key.to_string(), value);
            }
        }
    }

    fn request(
        &self,
        method: Method,
        image: &Row,
        body: Option<Value>,
        ids_in_url: bool,
    ) -> Result<PlannedRequest, MappingError> {
        let ids = self.ids(image)?;
        let query = if self.object == ObjectKind::Token && self.version.has_221_transport() {
            match self.token_type(image)? {
                Some(t) if !t.eq_ignore_ascii_case("RFID") => vec![("type".to_string(), t)],
                _ => Vec::new(),
            }
        } else {
            Vec::new()
        };
        Ok(PlannedRequest {
            method,
            module: self.m.module,
            object: self.object,
            record_id: format!("{}/{}", self.m.module, ids.join("/")),
            path_ids: if ids_in_url { ids } else { Vec::new() },
            query,
            body,
        })
    }

    fn ids(&self, image: &Row) -> Result<Vec<String>, MappingError> {
        self.m
            .path
            .iter()
            .map(|column| {
                let value = image
                    .get(column)
                    .ok_or_else(|| MappingError::MissingColumn {
                        table: self.table(),
                        column: column.clone(),
                        needed_by: "path".into(),
                    })?;
                match value {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    Value::Null => Err(MappingError::NullValue {
                        table: self.table(),
                        column: column.clone(),
                        needed_by: "path".into(),
                    }),
                    other => Err(MappingError::BadValue {
                        table: self.table(),
                        column: column.clone(),
                        target: "an id in the URL path".into(),
                        problem: "ids are text or numbers".into(),
                        value: excerpt(other),
                    }),
                }
            })
            .collect()
    }

    fn soft_deleted(&self, image: &Row) -> Result<bool, MappingError> {
        let Some(sd) = &self.m.soft_delete else {
            return Ok(false);
        };
        let value = image
            .get(&sd.column)
            .ok_or_else(|| MappingError::MissingColumn {
                table: self.table(),
                column: sd.column.clone(),
                needed_by: "soft_delete".into(),
            })?;
        Ok(sd.matches(value))
    }

    /// The Token's type, for the 2.2.1 `?type=` parameter.
    fn token_type(&self, image: &Row) -> Result<Option<String>, MappingError> {
        let (value, column) = match &self.m.body {
            Body::Column { column, .. } => (
                self.column_object(image, column)?.remove("type"),
                column.clone(),
            ),
            Body::Fields(fields) => {
                let Some(field) = fields
                    .iter()
                    .find(|f| f.applies_to(self.version) && f.path == ["type"])
                else {
                    return Ok(None);
                };
                (
                    self.field_value(image, field)?,
                    field.column().unwrap_or("type").to_string(),
                )
            }
        };
        match value {
            Some(Value::String(t)) => Ok(Some(t)),
            None | Some(Value::Null) => Err(MappingError::NullValue {
                table: self.table(),
                column,
                needed_by: "the Token type (?type= query parameter)".into(),
            }),
            Some(other) => Err(MappingError::BadValue {
                table: self.table(),
                column,
                target: "the Token type (?type= query parameter)".into(),
                problem: "a TokenType is text".into(),
                value: excerpt(&other),
            }),
        }
    }

    fn last_updated(&self, image: &Row) -> Result<Value, MappingError> {
        let (value, column) = match &self.m.body {
            Body::Column { column, .. } => (
                self.column_object(image, column)?.remove("last_updated"),
                column.clone(),
            ),
            Body::Fields(fields) => {
                // Validation guarantees a top-level last_updated for every version.
                let field = fields
                    .iter()
                    .find(|f| f.applies_to(self.version) && f.path == ["last_updated"]);
                match field {
                    Some(field) => (
                        self.field_value(image, field)?,
                        field.column().unwrap_or("last_updated").to_string(),
                    ),
                    None => (None, "last_updated".to_string()),
                }
            }
        };
        match value {
            Some(v) if !v.is_null() => Ok(v),
            _ => Err(MappingError::NullValue {
                table: self.table(),
                column,
                needed_by: "OCPI field `last_updated`".into(),
            }),
        }
    }

    /// The OCPI object (or the changed part of it) from the row.
    fn object_body(&self, image: &Row, select: Select) -> Result<Value, MappingError> {
        let fields = match &self.m.body {
            Body::Column { column, .. } => {
                return Ok(Value::Object(self.column_object(image, column)?))
            }
            Body::Fields(fields) => fields,
        };
        let applicable: Vec<&FieldMapping> = fields
            .iter()
            .filter(|f| f.applies_to(self.version))
            .collect();
        let groups: Option<HashSet<&str>> = match select {
            Select::All => None,
            Select::Changed(changed) => Some(
                applicable
                    .iter()
                    .filter(|f| f.column().is_some_and(|c| changed.contains(c)))
                    .map(|f| f.path[0].as_str())
                    .chain(std::iter::once("last_updated"))
                    .collect(),
            ),
        };
        let mut out = Map::new();
        for field in applicable {
            if let Some(groups) = &groups {
                if !groups.contains(field.path[0].as_str()) {
                    continue;
                }
            }
            if let Some(value) = self.field_value(image, field)? {
                insert_at(&mut out, &field.path, value);
            }
        }
        Ok(Value::Object(out))
    }

    /// PATCH of a JSON body column: the top-level keys whose values differ from the previous
    /// image, plus last_updated. Without a readable previous object: the whole object.
    fn column_patch(&self, after: &Row) -> Result<Value, MappingError> {
        let Body::Column { column, .. } = &self.m.body else {
            return self.object_body(after, Select::All);
        };
        let new = self.column_object(after, column)?;
        let old = match self.change.before {
            Some(before) => self.column_object(before, column).ok(),
            None => None,
        };
        let Some(old) = old else {
            return Ok(Value::Object(new));
        };
        let mut out = Map::new();
        for (k, v) in &new {
            if k == "last_updated" || old.get(k) != Some(v) {
                out.insert(k.clone(), v.clone());
            }
        }
        if !out.contains_key("last_updated") {
            return Err(MappingError::NullValue {
                table: self.table(),
                column: column.clone(),
                needed_by: "OCPI field `last_updated` (a PATCH must carry it; the object in \
                            the body column has none)"
                    .into(),
            });
        }
        Ok(Value::Object(out))
    }

    fn column_object(&self, image: &Row, column: &str) -> Result<Map<String, Value>, MappingError> {
        let value = image
            .get(column)
            .ok_or_else(|| MappingError::MissingColumn {
                table: self.table(),
                column: column.to_string(),
                needed_by: "body_column".into(),
            })?;
        let bad = |problem: String| MappingError::BadValue {
            table: self.table(),
            column: column.to_string(),
            target: format!("the {} object (body_column)", self.object),
            problem,
            value: excerpt(value),
        };
        match value {
            Value::Object(map) => Ok(map.clone()),
            // MariaDB's JSON is LONGTEXT: the value may arrive as its text.
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(_) => Err(bad("the JSON is not an object".into())),
                Err(e) => Err(bad(format!("not JSON text: {e}"))),
            },
            Value::Null => Err(MappingError::NullValue {
                table: self.table(),
                column: column.to_string(),
                needed_by: "body_column".into(),
            }),
            _ => Err(bad("not a JSON object".into())),
        }
    }

    /// One field's value; `None` for a NULL column (the field is left out).
    fn field_value(
        &self,
        image: &Row,
        field: &FieldMapping,
    ) -> Result<Option<Value>, MappingError> {
        match &field.source {
            FieldSource::Value(v) => Ok(Some(v.clone())),
            FieldSource::Column {
                column,
                conversion,
                pointer,
            } => {
                let value = image
                    .get(column)
                    .ok_or_else(|| MappingError::MissingColumn {
                        table: self.table(),
                        column: column.clone(),
                        needed_by: format!("OCPI field `{}`", field.name),
                    })?;
                if value.is_null() {
                    return Ok(field.default_for(self.version).cloned());
                }
                let value = match conversion {
                    None => value.clone(),
                    Some(c) => convert(value, *c, self.local_time()).map_err(|problem| {
                        MappingError::BadValue {
                            table: self.table(),
                            column: column.clone(),
                            target: format!("OCPI field `{}` (as {c})", field.name),
                            problem,
                            value: excerpt(value),
                        }
                    })?,
                };
                let value = match pointer {
                    None => value,
                    Some(p) => match value.pointer(p) {
                        Some(member) if !member.is_null() => member.clone(),
                        _ => return Ok(field.default_for(self.version).cloned()),
                    },
                };
                Ok(Some(translated(field.values_for(self.version), value)))
            }
        }
    }
}

/// A text value translated by a field's `values` (those for the partner's version); other
/// values as they are.
fn translated(values: &[(String, Value)], value: Value) -> Value {
    if let Value::String(text) = &value {
        if let Some((_, to)) = values.iter().find(|(from, _)| from == text) {
            return to.clone();
        }
    }
    value
}

/// The field and value that mark an object removed, for the objects OCPI removes by a field.
fn removal_value(object: ObjectKind) -> Option<(&'static str, Value)> {
    match object {
        ObjectKind::Evse => Some(("status", Value::from("REMOVED"))),
        ObjectKind::Token => Some(("valid", Value::Bool(false))),
        ObjectKind::Session => Some(("status", Value::from("INVALID"))),
        ObjectKind::Location | ObjectKind::Connector | ObjectKind::Tariff | ObjectKind::Cdr => None,
    }
}

fn insert_at(map: &mut Map<String, Value>, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            map.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = map
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(inner) = entry {
                insert_at(inner, rest, value);
            }
        }
    }
}

fn excerpt(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 80 {
        text
    } else {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    }
}
