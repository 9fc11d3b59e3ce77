//! `[[table.embed]]`: an object of a linked tree embedded in another module's object.
//!
//! OCPI 2.1.1 Sessions and CDRs carry the whole Location they happened at, with only the EVSE
//! and the connector used, where 2.2.1 names them by id. No column of a session row holds that
//! object: the pusher reads it from the source database when it sends the session (as it reads
//! composite objects, [`crate::composite`]) and puts it under the embed's field. This module
//! holds the mapping's side: parsing and the checks that the embedded table is the root of a
//! tree in the same file, joined on all of its path columns.

use serde::Deserialize;

use super::config::{check_column_name, ConfigError};
use super::{MappingConfig, ObjectKind, OcpiVersion};

/// One `[[table.embed]]`: which tree object goes under which field, found how.
#[derive(Debug, Clone, PartialEq)]
pub struct Embed {
    /// The top-level OCPI field of this table's object: `location`.
    pub field: String,
    /// `database.table` of the embedded object: the root of a `[[table.children]]` tree.
    pub table: String,
    /// (embedded table's path column, this row's column): how the row names the object.
    pub join: Vec<(String, String)>,
    /// Per child table of the tree: the child rows kept, (child column, this row's column)
    /// pairs that must match (the EVSE and the connector a session used). A child table not
    /// listed keeps all its rows.
    pub only: Vec<(String, Vec<(String, String)>)>,
    /// The OCPI versions the field is sent to; `None`: all.
    pub versions: Option<Vec<OcpiVersion>>,
}

impl Embed {
    /// Whether the field is sent to partners of `version`.
    pub fn applies_to(&self, version: OcpiVersion) -> bool {
        self.versions.as_ref().is_none_or(|v| v.contains(&version))
    }

    /// The pairs that select the rows of `table` kept in the embedded object, if restricted.
    pub fn only_for(&self, table: &str) -> Option<&[(String, String)]> {
        self.only
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, pairs)| pairs.as_slice())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmbed {
    field: String,
    table: String,
    join: toml::value::Table,
    #[serde(default)]
    only: toml::value::Table,
    #[serde(default)]
    versions: Option<Vec<String>>,
}

/// `{ column = "column", ... }` as (key, value) pairs of column names; `what` says in the
/// message what a pair means.
pub(super) fn column_pairs(
    table: toml::value::Table,
    key: &str,
    what: &str,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut pairs = Vec::with_capacity(table.len());
    for (left, right) in table {
        let toml::Value::String(right) = right else {
            return Err(invalid(
                key,
                format!("`{left}` must name {what} as text, e.g. {left} = \"id\""),
            ));
        };
        check_column_name(&left).map_err(|p| invalid(key, p))?;
        check_column_name(&right).map_err(|p| invalid(key, p))?;
        pairs.push((left, right));
    }
    if pairs.is_empty() {
        return Err(invalid(
            key,
            format!("empty: name the columns that match, e.g. {{ id = \"location_id\" }} ({what})"),
        ));
    }
    Ok(pairs)
}

/// The embeds of one `[[table]]`, checked on their own (the tree is checked with the whole
/// file, [`check`]).
pub(super) fn validate(
    raw: Vec<RawEmbed>,
    object: ObjectKind,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<Embed>, ConfigError> {
    let mut embeds = Vec::with_capacity(raw.len());
    for (i, e) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("embed[{i}].{k}");
        if !matches!(object, ObjectKind::Session | ObjectKind::Cdr) {
            return Err(invalid(
                &key("table"),
                format!(
                    "a {object} embeds no Location in OCPI: only Sessions and CDRs (2.1.1 \
                     `location`, 2.2.1 CDR `cdr_location`) do"
                ),
            ));
        }
        if e.field.is_empty() || e.field.contains(['.', ' ']) {
            return Err(invalid(
                &key("field"),
                format!(
                    "{:?}: give a top-level OCPI field, e.g. \"location\"",
                    e.field
                ),
            ));
        }
        let join = column_pairs(e.join, &key("join"), "this table's column", invalid)?;
        let mut only = Vec::with_capacity(e.only.len());
        for (table, pairs) in e.only {
            let toml::Value::Table(pairs) = pairs else {
                return Err(invalid(
                    &key("only"),
                    format!(
                        "`{table}` must map child columns to this table's columns, e.g. \
                         \"{table}\" = {{ uid = \"evse_uid\" }}"
                    ),
                ));
            };
            let pairs = column_pairs(pairs, &key("only"), "this table's column", invalid)?;
            only.push((table, pairs));
        }
        let versions = match e.versions {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(invalid(
                    &key("versions"),
                    "empty: list the OCPI versions the field is sent to, or remove the key".into(),
                ))
            }
            Some(list) => Some(
                list.iter()
                    .map(|v| v.parse::<OcpiVersion>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|p| invalid(&key("versions"), p))?,
            ),
        };
        embeds.push(Embed {
            field: e.field,
            table: e.table,
            join,
            only,
            versions,
        });
    }
    Ok(embeds)
}

/// Every embed names the root of a tree in this file (a Location table with no parent),
/// joined on all of its path columns, and restricts only tables of that tree.
pub(super) fn check(config: &MappingConfig) -> Result<(), ConfigError> {
    for (index, table) in config.tables.iter().enumerate() {
        let invalid = |key: String, problem: String| ConfigError::Invalid {
            file: config.origin.clone(),
            entry: format!("[[table]] #{} ({})", index + 1, table.qualified_name()),
            key,
            problem,
        };
        for (i, embed) in table.embeds.iter().enumerate() {
            let key = |k: &str| format!("embed[{i}].{k}");
            let root = config
                .by_name(&embed.table)
                .filter(|r| r.object() == ObjectKind::Location && config.parent_of(r).is_none());
            let Some(root) = root else {
                return Err(invalid(
                    key("table"),
                    format!(
                        "`{}` is not a Locations table of this file: an embedded Location is \
                         read with its tree, so name the [[table]] of the Locations",
                        embed.table
                    ),
                ));
            };
            if let Some(missing) = root
                .path
                .iter()
                .find(|p| !embed.join.iter().any(|(rc, _)| rc == *p))
            {
                return Err(invalid(
                    key("join"),
                    format!(
                        "`{}`'s path column `{missing}` is not joined: map it to the column of \
                         this table that holds it, e.g. {{ {missing} = \"location_{missing}\" }}",
                        embed.table
                    ),
                ));
            }
            let tree = config.tree_of(root);
            if let Some((t, _)) = embed.only.iter().find(|(t, _)| !tree.contains(&t.as_str())) {
                return Err(invalid(
                    key("only"),
                    format!(
                        "`{t}` is not a child table of `{}`'s tree ([[table.children]])",
                        embed.table
                    ),
                ));
            }
        }
    }
    Ok(())
}
