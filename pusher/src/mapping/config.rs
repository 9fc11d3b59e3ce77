//! The mapping file: parsing (strict: unknown keys are errors) and validation.
//!
//! Every error names the file, the `[[table]]` entry and the key, and says what to write instead.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::embeds::{self, Embed, RawEmbed};
use super::{Module, ObjectKind, OcpiVersion, SourceTimeZone};

/// All table mappings of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingConfig {
    /// Where the mapping was read from (for messages).
    pub origin: String,
    pub tables: Vec<TableMapping>,
}

/// How one table's rows become OCPI objects.
#[derive(Debug, Clone, PartialEq)]
pub struct TableMapping {
    /// Database of the table, as in change messages.
    pub database: String,
    /// Table name, as in change messages.
    pub table: String,
    pub module: Module,
    /// Columns whose values form the object's URL after the module endpoint, in order
    /// (`country_code`, `party_id`, then the object ids). For CDRs: the record's identity only.
    pub path: Vec<String>,
    pub update: UpdateMode,
    pub body: Body,
    pub soft_delete: Option<SoftDelete>,
    /// Child tables whose rows are part of this table's OCPI object (a Location's EVSEs, an
    /// EVSE's Connectors), in file order. See [`ChildLink`].
    pub children: Vec<ChildLink>,
    /// Tree objects read from the source database into this table's object (a 2.1.1
    /// Session's `location`). See [`Embed`].
    pub embeds: Vec<Embed>,
    /// The zone DATETIME values of the table are written in: the pusher's `[source]
    /// time_zone`, set on every table by [`MappingConfig::set_time_zone`] (UTC until then).
    pub time_zone: SourceTimeZone,
}

/// A child table whose rows belong inside the parent's object: `[[table.children]]`.
///
/// A PUT of the parent carries every child row the database holds, each as the child table's
/// mapping renders it, as a list under `field` (an EVSE's `connectors`, a Location's `evses`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChildLink {
    /// `database.table` of the child rows; mapped in the same file.
    pub table: String,
    /// The parent's OCPI field holding the children: `evses` or `connectors`.
    pub field: String,
    /// How a child row names its parent: (child column, parent column) pairs.
    pub join: Vec<(String, String)>,
}

/// How updates are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateMode {
    /// The full object (replaces the partner's copy).
    Put,
    /// The changed fields plus `last_updated`.
    Patch,
}

/// Where the OCPI object comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A JSON column holding the whole object, sent as is to partners of `version` (the one
    /// OCPI version its objects are written for: `body_version`); a partner of another version
    /// is refused at start.
    Column {
        column: String,
        version: OcpiVersion,
    },
    /// Field by field, in file order.
    Fields(Vec<FieldMapping>),
}

/// One OCPI field of the object.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMapping {
    /// The field's name as written in the file, dots for nesting: `coordinates.latitude`.
    pub name: String,
    /// `name` split at the dots.
    pub path: Vec<String>,
    pub source: FieldSource,
    /// The OCPI versions the field is sent to; `None`: all.
    pub versions: Option<Vec<OcpiVersion>>,
    /// Sent when the column is NULL (`default = ...`); without it a NULL leaves the field out.
    pub default: Option<Value>,
    /// The versions `default` applies to (`default_for = [...]`); `None`: all.
    pub default_for: Option<Vec<OcpiVersion>>,
    /// Text values translated after the conversion (`values = { FROM = "TO" }`), e.g. a
    /// 2.2.1 ParkingType to a 2.1.1 LocationType; values not listed are sent as they are.
    pub values: Vec<(String, Value)>,
    /// The versions `values` applies to (`values_for = [...]`); `None`: all.
    pub values_for: Option<Vec<OcpiVersion>>,
}

impl FieldMapping {
    /// The value sent for a NULL column to partners of `version`, if any.
    pub fn default_for(&self, version: OcpiVersion) -> Option<&Value> {
        let applies = self
            .default_for
            .as_ref()
            .is_none_or(|v| v.contains(&version));
        self.default.as_ref().filter(|_| applies)
    }

    /// The `values` translation for partners of `version` (empty when it does not apply).
    pub fn values_for(&self, version: OcpiVersion) -> &[(String, Value)] {
        match &self.values_for {
            Some(versions) if !versions.contains(&version) => &[],
            _ => &self.values,
        }
    }

    /// Whether the field is sent to partners of `version`.
    pub fn applies_to(&self, version: OcpiVersion) -> bool {
        self.versions.as_ref().is_none_or(|v| v.contains(&version))
    }

    /// The column the field reads, if any.
    pub fn column(&self) -> Option<&str> {
        match &self.source {
            FieldSource::Column { column, .. } => Some(column),
            FieldSource::Value(_) => None,
        }
    }
}

/// Where a field's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldSource {
    /// A column of the row, optionally converted; with `pointer` (`pointer = "/contract_id"`),
    /// the member of the converted JSON value it points to (RFC 6901; a missing member counts
    /// as NULL).
    Column {
        column: String,
        conversion: Option<Conversion>,
        pointer: Option<String>,
    },
    /// A constant.
    Value(Value),
}

/// How a column value becomes an OCPI value (`as = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conversion {
    /// Text: numbers in their decimal form (DECIMAL digits kept), booleans as true/false.
    String,
    /// A JSON number: DECIMAL text parsed, numbers as they are.
    Number,
    /// A whole JSON number; DECIMAL text with a zero fraction ("11000.00") accepted.
    Integer,
    /// true/false from a boolean, a 0/non-zero integer (TINYINT), or "0"/"1"/"true"/"false".
    Bool,
    /// A JSON value: text parsed as JSON, JSON values as they are.
    Json,
    /// RFC 3339 UTC with `Z`: DATETIME (taken as UTC), TIMESTAMP, DATE, or text with an offset.
    Datetime,
    /// A JSON array of strings from a SET value ("A,B" -> ["A","B"]); arrays as they are.
    List,
}

impl Conversion {
    pub fn as_str(self) -> &'static str {
        match self {
            Conversion::String => "string",
            Conversion::Number => "number",
            Conversion::Integer => "integer",
            Conversion::Bool => "bool",
            Conversion::Json => "json",
            Conversion::Datetime => "datetime",
            Conversion::List => "list",
        }
    }
}

impl fmt::Display for Conversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A soft-delete column: when the row's value equals `value`, the row is removed.
#[derive(Debug, Clone, PartialEq)]
pub struct SoftDelete {
    pub column: String,
    /// Compared with the column's JSON value; a boolean also matches the TINYINT 1/0.
    pub value: Value,
}

impl SoftDelete {
    /// Whether a column value means "deleted".
    pub fn matches(&self, actual: &Value) -> bool {
        if actual == &self.value {
            return true;
        }
        match (&self.value, actual) {
            (Value::Bool(b), Value::Number(n)) | (Value::Number(n), Value::Bool(b)) => {
                n.as_i64() == Some(i64::from(*b))
            }
            (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
            // DECIMAL and BIT-as-text columns arrive as strings.
            (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) => {
                s.trim().parse::<f64>().ok() == n.as_f64()
            }
            _ => false,
        }
    }
}

/// Why a mapping file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("mapping file {file}: cannot read it: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or a key or value of the wrong kind; the message names line, column and key.
    #[error("mapping file {file}: {message}")]
    Parse { file: String, message: String },
    /// Parsed, but not a usable mapping.
    #[error("mapping file {file}: {entry}: key `{key}`: {problem}")]
    Invalid {
        file: String,
        /// `[[table]] #2 (ocpi.evses)`.
        entry: String,
        key: String,
        problem: String,
    },
}

impl MappingConfig {
    /// Reads every table's DATETIME values in `zone` (the pusher's `[source] time_zone`).
    pub fn set_time_zone(&mut self, zone: &SourceTimeZone) {
        for table in &mut self.tables {
            table.time_zone = zone.clone();
        }
    }

    /// Reads and validates a mapping file.
    pub fn load(path: impl AsRef<Path>) -> Result<MappingConfig, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        MappingConfig::parse(&text, &file)
    }

    /// Parses and validates mapping text; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<MappingConfig, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        if raw.table.is_empty() {
            return Err(ConfigError::Invalid {
                file: origin.to_string(),
                entry: "file".into(),
                key: "table".into(),
                problem: "no [[table]] entries: the file maps nothing".into(),
            });
        }
        let mut tables = Vec::with_capacity(raw.table.len());
        let mut seen = HashSet::new();
        for (index, raw_table) in raw.table.into_iter().enumerate() {
            let entry = format!("[[table]] #{} ({})", index + 1, raw_table.table);
            let invalid = |key: &str, problem: String| ConfigError::Invalid {
                file: origin.to_string(),
                entry: entry.clone(),
                key: key.to_string(),
                problem,
            };
            let mapping = validate(raw_table, &invalid)?;
            if !seen.insert(mapping.qualified_name()) {
                return Err(invalid(
                    "table",
                    format!(
                        "`{}` is mapped twice: keep one [[table]] per table",
                        mapping.qualified_name()
                    ),
                ));
            }
            tables.push(mapping);
        }
        let config = MappingConfig {
            origin: origin.to_string(),
            tables,
        };
        config.check_trees()?;
        embeds::check(&config)?;
        Ok(config)
    }

    /// The `[[table.children]]` links: each names a table of this file, one level down in
    /// OCPI's Location > EVSE > Connector tree, under the field OCPI gives it, with a parent
    /// of its own at most once; the tables of a tree are always sent whole (no `update =
    /// "patch"`).
    fn check_trees(&self) -> Result<(), ConfigError> {
        let mut has_parent: HashSet<String> = HashSet::new();
        for (index, parent) in self.tables.iter().enumerate() {
            let entry = format!("[[table]] #{} ({})", index + 1, parent.qualified_name());
            let invalid = |key: String, problem: String| ConfigError::Invalid {
                file: self.origin.clone(),
                entry: entry.clone(),
                key,
                problem,
            };
            for (i, link) in parent.children.iter().enumerate() {
                let key = |k: &str| format!("children[{i}].{k}");
                let Some(child) = self
                    .tables
                    .iter()
                    .find(|t| t.qualified_name() == link.table)
                else {
                    return Err(invalid(
                        key("table"),
                        format!(
                            "`{}` is not mapped in this file: add a [[table]] for it",
                            link.table
                        ),
                    ));
                };
                let expected = match parent.object() {
                    ObjectKind::Location => Some((ObjectKind::Evse, "evses")),
                    ObjectKind::Evse => Some((ObjectKind::Connector, "connectors")),
                    _ => None,
                };
                let Some((kind, field)) = expected else {
                    return Err(invalid(
                        key("table"),
                        format!(
                            "a {} has no child objects in OCPI: only a Location holds EVSEs \
                             and an EVSE holds Connectors",
                            parent.object()
                        ),
                    ));
                };
                if child.object() != kind {
                    return Err(invalid(
                        key("table"),
                        format!(
                            "`{}` maps {}s; a {}'s children are {kind}s",
                            link.table,
                            child.object(),
                            parent.object()
                        ),
                    ));
                }
                if link.field != field {
                    return Err(invalid(
                        key("field"),
                        format!(
                            "{:?}: OCPI keeps a {}'s {kind}s in `{field}`",
                            link.field,
                            parent.object()
                        ),
                    ));
                }
                if let Some((column, _)) = link.join.iter().find(|(c, _)| !child.path.contains(c)) {
                    return Err(invalid(
                        key("join"),
                        format!(
                            "`{column}` is not one of `{}`'s path columns: a child names its \
                             parent with columns of its own identity",
                            link.table
                        ),
                    ));
                }
                if let Some(missing) = parent
                    .path
                    .iter()
                    .find(|p| !link.join.iter().any(|(_, pc)| pc == *p))
                {
                    return Err(invalid(
                        key("join"),
                        format!(
                            "the parent's path column `{missing}` is not joined: map the child \
                             column that holds it, e.g. {{ ..., some_column = \"{missing}\" }}"
                        ),
                    ));
                }
                if !has_parent.insert(child.qualified_name()) {
                    return Err(invalid(
                        key("table"),
                        format!("`{}` is already the child of another table", link.table),
                    ));
                }
            }
        }
        for (index, table) in self.tables.iter().enumerate() {
            let in_tree =
                !table.children.is_empty() || has_parent.contains(&table.qualified_name());
            if in_tree && table.update == UpdateMode::Patch {
                return Err(ConfigError::Invalid {
                    file: self.origin.clone(),
                    entry: format!("[[table]] #{} ({})", index + 1, table.qualified_name()),
                    key: "update".into(),
                    problem: "\"patch\" cannot be used in a Location > EVSE > Connector tree: \
                              its changes are sent as a PUT of the complete object read from the \
                              database (see [[table.children]]); remove the key"
                        .into(),
                });
            }
        }
        Ok(())
    }

    /// The table whose object holds `child`'s rows, and the link between them.
    pub fn parent_of(&self, child: &TableMapping) -> Option<(&TableMapping, &ChildLink)> {
        self.tables.iter().find_map(|parent| {
            parent
                .children
                .iter()
                .find(|link| names_table(&link.table, &child.database, &child.table))
                .map(|link| (parent, link))
        })
    }

    /// `database.table` of `root` and of every table below it in its tree.
    pub fn tree_of<'a>(&'a self, root: &'a TableMapping) -> Vec<&'a str> {
        let mut names: Vec<&str> = Vec::new();
        let mut todo = vec![root];
        while let Some(table) = todo.pop() {
            for link in &table.children {
                if let Some(child) = self.by_name(&link.table) {
                    if !names.contains(&link.table.as_str()) {
                        names.push(&link.table);
                        todo.push(child);
                    }
                }
            }
        }
        names
    }

    /// Whether the table is part of a composite tree (has a parent or children).
    pub fn in_tree(&self, table: &TableMapping) -> bool {
        !table.children.is_empty() || self.parent_of(table).is_some()
    }

    /// The mapping of a `database.table` name.
    pub fn by_name(&self, qualified: &str) -> Option<&TableMapping> {
        self.tables
            .iter()
            .find(|t| names_table(qualified, &t.database, &t.table))
    }

    /// The mapping of `database.table`, if the file has one.
    pub fn get(&self, database: &str, table: &str) -> Option<&TableMapping> {
        self.tables
            .iter()
            .find(|t| t.database == database && t.table == table)
    }

    /// The mapping of the change's table, if the file has one.
    pub fn for_change(&self, change: &change_message::RowChange) -> Option<&TableMapping> {
        self.get(&change.database, &change.table)
    }
}

impl TableMapping {
    /// `database.table`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.database, self.table)
    }

    /// Which OCPI object the rows are.
    pub fn object(&self) -> ObjectKind {
        object_kind(self.module, self.path.len())
    }

    /// Every column the mapping reads (path, body column or field columns, soft-delete
    /// column), once each, in file order.
    pub fn columns(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self.path.iter().map(String::as_str).collect();
        match &self.body {
            Body::Column { column, .. } => all.push(column),
            Body::Fields(fields) => all.extend(fields.iter().filter_map(FieldMapping::column)),
        }
        if let Some(sd) = &self.soft_delete {
            all.push(&sd.column);
        }
        for embed in &self.embeds {
            all.extend(embed.join.iter().map(|(_, row_column)| row_column.as_str()));
            for (_, pairs) in &embed.only {
                all.extend(pairs.iter().map(|(_, row_column)| row_column.as_str()));
            }
        }
        let mut out: Vec<&str> = Vec::with_capacity(all.len());
        for c in all {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }

    /// The fields sent to partners of `version` (all of them for a body column: `None`).
    pub fn fields_for(&self, version: OcpiVersion) -> Option<Vec<&FieldMapping>> {
        match &self.body {
            Body::Column { .. } => None,
            Body::Fields(fields) => Some(fields.iter().filter(|f| f.applies_to(version)).collect()),
        }
    }
}

fn object_kind(module: Module, depth: usize) -> ObjectKind {
    match module {
        Module::Locations => match depth {
            0..=3 => ObjectKind::Location,
            4 => ObjectKind::Evse,
            _ => ObjectKind::Connector,
        },
        Module::Sessions => ObjectKind::Session,
        Module::Cdrs => ObjectKind::Cdr,
        Module::Tariffs => ObjectKind::Tariff,
        Module::Tokens => ObjectKind::Token,
    }
}

// ---- raw file layout -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    table: Vec<RawTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    table: String,
    module: Module,
    path: String,
    #[serde(default)]
    update: Option<UpdateMode>,
    #[serde(default)]
    body_column: Option<String>,
    #[serde(default)]
    body_version: Option<String>,
    #[serde(default)]
    fields: Option<RawFields>,
    #[serde(default)]
    soft_delete: Option<RawSoftDelete>,
    #[serde(default)]
    children: Vec<RawChild>,
    #[serde(default)]
    embed: Vec<RawEmbed>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChild {
    table: String,
    field: String,
    join: toml::value::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSoftDelete {
    column: String,
    value: toml::Value,
}

/// `[table.fields]` in file order.
struct RawFields(Vec<(String, RawField)>);

impl<'de> Deserialize<'de> for RawFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = RawFields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of OCPI field = column name or { column = ..., as = ... }")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFields, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, RawField>()? {
                    out.push((k, v));
                }
                Ok(RawFields(out))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// `uid = "uid"` or `status = { column = "status", as = "string" }` or `publish = { value = true }`.
enum RawField {
    Column(String),
    Spec(Box<RawFieldSpec>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFieldSpec {
    #[serde(default)]
    column: Option<String>,
    #[serde(default)]
    value: Option<toml::Value>,
    #[serde(default, rename = "as")]
    conversion: Option<Conversion>,
    #[serde(default)]
    versions: Option<Vec<String>>,
    #[serde(default)]
    default: Option<toml::Value>,
    #[serde(default)]
    default_for: Option<Vec<String>>,
    #[serde(default)]
    values: Option<toml::value::Table>,
    #[serde(default)]
    values_for: Option<Vec<String>>,
    #[serde(default)]
    pointer: Option<String>,
}

impl<'de> Deserialize<'de> for RawField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = RawField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a column name (\"uid\") or a table ({ column = \"...\", as = \"...\", \
                     versions = [...] } or { value = ... })",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawField, E> {
                Ok(RawField::Column(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawField, A::Error> {
                RawFieldSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|spec| RawField::Spec(Box::new(spec)))
            }
        }
        deserializer.deserialize_any(FieldVisitor)
    }
}

// ---- validation ------------------------------------------------------------------------------

const VERSIONS: [OcpiVersion; 3] = OcpiVersion::ALL;

fn validate(
    raw: RawTable,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<TableMapping, ConfigError> {
    let (database, table) = match raw.table.split_once('.') {
        Some((d, t)) if !d.is_empty() && !t.is_empty() && !t.contains('.') => {
            (d.to_string(), t.to_string())
        }
        _ => {
            return Err(invalid(
                "table",
                format!(
                    "{:?} is not `database.table` (as in the change messages' database and \
                     table)",
                    raw.table
                ),
            ))
        }
    };
    let module = raw.module;
    let path = parse_path(&raw.path).map_err(|p| invalid("path", p))?;
    let depth_ok = match module {
        Module::Locations => (3..=5).contains(&path.len()),
        _ => path.len() == 3,
    };
    if !depth_ok {
        let wanted = match module {
            Module::Locations => {
                "3, 4 or 5 placeholders: /{cc}/{pid}/{location_id} (Location), \
                 .../{evse_uid} (EVSE) or .../{evse_uid}/{connector_id} (Connector)"
            }
            Module::Cdrs => {
                "3 placeholders /{country_code}/{party_id}/{id}: the CDR's identity (CDRs are \
                 POSTed without ids in the URL; the path names the record in logs)"
            }
            _ => "3 placeholders: /{country_code}/{party_id}/{id}",
        };
        return Err(invalid(
            "path",
            format!(
                "{:?} has {} placeholder(s); module {module} needs {wanted}",
                raw.path,
                path.len()
            ),
        ));
    }
    let object = object_kind(module, path.len());

    let update = match (module, raw.update) {
        (Module::Cdrs, Some(_)) => {
            return Err(invalid(
                "update",
                "CDRs are never updated (a CDR is immutable; corrections are credit CDRs, new \
                 rows): remove the key"
                    .into(),
            ))
        }
        (Module::Tariffs, Some(UpdateMode::Patch)) => {
            return Err(invalid(
                "update",
                "OCPI 2.2.1 and 2.3.0 Tariffs have no PATCH: use \"put\"".into(),
            ))
        }
        (_, Some(mode)) => mode,
        (_, None) => UpdateMode::Put,
    };

    if raw.body_version.is_some() && raw.body_column.is_none() {
        return Err(invalid(
            "body_version",
            "only with body_column: a [table.fields] mapping is rendered for each partner's \
             version (limit a field with `versions = [...]`)"
                .into(),
        ));
    }
    let body = match (raw.body_column, raw.fields) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "body_column",
                "give either body_column (a JSON column holding the whole object) or \
                 [table.fields], not both"
                    .into(),
            ))
        }
        (None, None) => {
            return Err(invalid(
                "fields",
                "missing: give body_column (a JSON column holding the whole object) or a \
                 [table.fields] table"
                    .into(),
            ))
        }
        (Some(column), None) => {
            check_column_name(&column).map_err(|p| invalid("body_column", p))?;
            let version = raw
                .body_version
                .ok_or_else(|| {
                    invalid(
                        "body_version",
                        "missing: name the OCPI version the objects in body_column are written                          for (\"2.1.1\", \"2.2.1\" or \"2.3.0\"); they are sent as they are, so \
                         only to partners of that version"
                            .into(),
                    )
                })?
                .parse::<OcpiVersion>()
                .map_err(|p| invalid("body_version", p))?;
            Body::Column { column, version }
        }
        (None, Some(fields)) => Body::Fields(validate_fields(fields, object, invalid)?),
    };

    let soft_delete = match raw.soft_delete {
        None => None,
        Some(sd) => {
            match object {
                ObjectKind::Cdr => {
                    return Err(invalid(
                        "soft_delete",
                        "a CDR cannot be removed in OCPI (it is corrected by a credit CDR): \
                         remove [table.soft_delete]"
                            .into(),
                    ))
                }
                ObjectKind::Location | ObjectKind::Connector => {
                    return Err(invalid(
                        "soft_delete",
                        format!(
                            "OCPI has no removal of a {object} (only EVSEs are removed, by \
                             status REMOVED): remove [table.soft_delete]; unpublish a Location \
                             with publish = false"
                        ),
                    ))
                }
                _ => {}
            }
            check_column_name(&sd.column).map_err(|p| invalid("soft_delete.column", p))?;
            let value = toml_to_json(sd.value);
            if value.is_array() || value.is_object() {
                return Err(invalid(
                    "soft_delete.value",
                    "must be a single value (number, string or boolean)".into(),
                ));
            }
            Some(SoftDelete {
                column: sd.column,
                value,
            })
        }
    };

    let embeds = embeds::validate(raw.embed, object, invalid)?;
    let children = raw
        .children
        .into_iter()
        .enumerate()
        .map(|(i, child)| {
            let key = |k: &str| format!("children[{i}].{k}");
            let join = embeds::column_pairs(
                child.join,
                &key("join"),
                "a path column of this (the parent) table",
                invalid,
            )?;
            Ok(ChildLink {
                table: child.table,
                field: child.field,
                join,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    Ok(TableMapping {
        database,
        table,
        module,
        path,
        update,
        body,
        soft_delete,
        children,
        embeds,
        time_zone: SourceTimeZone::utc(),
    })
}

fn parse_path(path: &str) -> Result<Vec<String>, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!(
            "{path:?} must start with '/': e.g. \"/{{country_code}}/{{party_id}}/{{id}}\""
        ));
    };
    let mut columns = Vec::new();
    for segment in rest.split('/') {
        let Some(column) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            return Err(format!(
                "segment {segment:?} of {path:?} is not a {{column}} placeholder: every segment \
                 names the column whose value goes there"
            ));
        };
        check_column_name(column)
            .map_err(|p| format!("placeholder {segment:?} of {path:?}: {p}"))?;
        columns.push(column.to_string());
    }
    Ok(columns)
}

pub(super) fn check_column_name(column: &str) -> Result<(), String> {
    if column.trim().is_empty() {
        return Err("the column name is empty".into());
    }
    if column.contains(['{', '}', '/']) || column.trim() != column {
        return Err(format!("{column:?} is not a column name"));
    }
    Ok(())
}

fn validate_fields(
    raw: RawFields,
    object: ObjectKind,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<FieldMapping>, ConfigError> {
    let mut fields: Vec<FieldMapping> = Vec::with_capacity(raw.0.len());
    for (name, raw_field) in raw.0 {
        let key = format!("fields.\"{name}\"");
        let path: Vec<String> = name.split('.').map(str::to_string).collect();
        if path
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(invalid(
                &key,
                "not an OCPI field name: dot-separated names without blanks, e.g. \
                 \"coordinates.latitude\""
                    .into(),
            ));
        }
        let (source, versions, default, default_for, values, values_for) = match raw_field {
            RawField::Column(column) => {
                check_column_name(&column).map_err(|p| invalid(&key, p))?;
                (
                    FieldSource::Column {
                        column,
                        conversion: None,
                        pointer: None,
                    },
                    None,
                    None,
                    None,
                    Vec::new(),
                    None,
                )
            }
            RawField::Spec(spec) => {
                if spec.column.is_none()
                    && (spec.default.is_some() || spec.values.is_some() || spec.pointer.is_some())
                {
                    return Err(invalid(
                        &key,
                        "`default`, `values` and `pointer` apply to a column's value: give \
                         `column`"
                            .into(),
                    ));
                }
                if let Some(pointer) = &spec.pointer {
                    if !pointer.starts_with('/') || spec.conversion != Some(Conversion::Json) {
                        return Err(invalid(
                            &format!("{key}.pointer"),
                            format!(
                                "{pointer:?}: a pointer names a member of a JSON column's \
                                 value, like \"/contract_id\", and needs `as = \"json\"`"
                            ),
                        ));
                    }
                }
                if spec.default_for.is_some() && spec.default.is_none() {
                    return Err(invalid(
                        &format!("{key}.default_for"),
                        "names the versions `default` applies to: give `default` too".into(),
                    ));
                }
                let default = spec.default.map(toml_to_json);
                let default_for = match spec.default_for {
                    None => None,
                    Some(list) => Some(
                        list.iter()
                            .map(|v| v.parse::<OcpiVersion>())
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|p| invalid(&format!("{key}.default_for"), p))?,
                    ),
                };
                if spec.values_for.is_some() && spec.values.is_none() {
                    return Err(invalid(
                        &format!("{key}.values_for"),
                        "names the versions `values` applies to: give `values` too".into(),
                    ));
                }
                let values_for = match spec.values_for {
                    None => None,
                    Some(list) => Some(
                        list.iter()
                            .map(|v| v.parse::<OcpiVersion>())
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|p| invalid(&format!("{key}.values_for"), p))?,
                    ),
                };
                let values: Vec<(String, Value)> = spec
                    .values
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(from, to)| (from, toml_to_json(to)))
                    .collect();
                let source = match (spec.column, spec.value, spec.conversion) {
                    (Some(_), Some(_), _) => {
                        return Err(invalid(&key, "give `column` or `value`, not both".into()))
                    }
                    (None, None, _) => {
                        return Err(invalid(
                            &key,
                            "give `column = \"...\"` (a column of the row) or `value = ...` \
                             (a constant)"
                                .into(),
                        ))
                    }
                    (None, Some(_), Some(_)) => {
                        return Err(invalid(
                            &format!("{key}.as"),
                            "`as` converts column values; write the constant `value` as \
                             the JSON type it must have"
                                .into(),
                        ))
                    }
                    (Some(column), None, conversion) => {
                        check_column_name(&column)
                            .map_err(|p| invalid(&format!("{key}.column"), p))?;
                        FieldSource::Column {
                            column,
                            conversion,
                            pointer: spec.pointer,
                        }
                    }
                    (None, Some(value), None) => FieldSource::Value(toml_to_json(value)),
                };
                let versions = match spec.versions {
                    None => None,
                    Some(list) => {
                        if list.is_empty() {
                            return Err(invalid(
                                &format!("{key}.versions"),
                                "empty: list the OCPI versions the field is sent to, e.g. \
                                 [\"2.2.1\"], or remove the key to send it to all"
                                    .into(),
                            ));
                        }
                        let mut parsed = Vec::with_capacity(list.len());
                        for v in list {
                            parsed.push(
                                v.parse::<OcpiVersion>()
                                    .map_err(|p| invalid(&format!("{key}.versions"), p))?,
                            );
                        }
                        Some(parsed)
                    }
                };
                (source, versions, default, default_for, values, values_for)
            }
        };
        let field = FieldMapping {
            name,
            path,
            source,
            versions,
            default,
            default_for,
            values,
            values_for,
        };
        for other in &fields {
            let (short, long) = if other.path.len() <= field.path.len() {
                (&other.path, &field.path)
            } else {
                (&field.path, &other.path)
            };
            let nested = long.starts_with(short);
            let shared = VERSIONS
                .iter()
                .any(|v| other.applies_to(*v) && field.applies_to(*v));
            if nested && shared {
                return Err(invalid(
                    &key,
                    format!(
                        "clashes with field \"{}\": one would overwrite the other in the same \
                         object (give them disjoint `versions` if they are for different OCPI \
                         versions)",
                        other.name
                    ),
                ));
            }
        }
        fields.push(field);
    }

    for version in VERSIONS {
        let has = |name: &str| {
            fields
                .iter()
                .any(|f| f.applies_to(version) && f.path.len() == 1 && f.path[0] == name)
        };
        if !has("last_updated") {
            return Err(invalid(
                "fields.last_updated",
                format!(
                    "missing for OCPI {version}: every OCPI object and every PATCH carries \
                     last_updated; map it, e.g. last_updated = {{ column = \"last_updated\", \
                     as = \"datetime\" }}"
                ),
            ));
        }
        if object == ObjectKind::Token && version.has_221_transport() && !has("type") {
            return Err(invalid(
                "fields.type",
                format!(
                    "missing for OCPI {version}: a Token is addressed by uid and type \
                     (?type=...); map its type"
                ),
            ));
        }
    }
    Ok(fields)
}

/// TOML constants as JSON; TOML date-times become their RFC 3339 text.
pub(crate) fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

/// Whether `qualified` (`database.table`) is `database`.`table`, without building the name.
fn names_table(qualified: &str, database: &str, table: &str) -> bool {
    qualified.len() == database.len() + 1 + table.len()
        && qualified.starts_with(database)
        && qualified.as_bytes()[database.len()] == b'.'
        && qualified.ends_with(table)
}
