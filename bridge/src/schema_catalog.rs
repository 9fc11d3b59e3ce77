//! Facts about captured tables that the binlog does not carry: which LONGTEXT holds MariaDB
//! JSON, each text column's character set (when the binlog names a collation the bridge does
//! not know), which string columns the bridge cannot decode.
//! Read from information_schema at start, and again for a table the bridge meets later.

use crate::source::charset::Charset;
use mysql_async::prelude::Queryable;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnFacts {
    pub data_type: String,
    /// `None` for non-character columns; `binary` never appears here (the server reports NULL).
    pub charset: Option<String>,
    pub is_json: bool,
}

impl ColumnFacts {
    pub fn is_text(&self) -> bool {
        self.charset.is_some()
    }

    /// Why the binlog reader could not decode this column's values, if it could not: text in a
    /// character set the bridge does not read (a start-up refusal naming the column beats a
    /// stop in the middle of the night).
    pub fn unreadable_reason(&self) -> Option<String> {
        match self.data_type.as_str() {
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum"
            | "set" => match self.charset.as_deref() {
                None => None,
                Some(name) if Charset::from_name(name).is_some() => None,
                Some(other) => Some(format!(
                    "character set {other} cannot be decoded by the bridge (it reads {}); convert \
                     the column (ALTER TABLE ... CONVERT TO CHARACTER SET utf8mb4) or exclude \
                     the table",
                    Charset::SUPPORTED
                )),
            },
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableCatalog {
    pub columns: Vec<(String, ColumnFacts)>,
    pub has_primary_key: bool,
}

impl TableCatalog {
    pub fn column(&self, name: &str) -> Option<&ColumnFacts> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, f)| f)
    }
}

#[derive(Debug, Clone, Default)]
pub struct SchemaCatalog {
    pub tables: HashMap<(String, String), TableCatalog>,
}

impl SchemaCatalog {
    pub fn table(&self, database: &str, table: &str) -> Option<&TableCatalog> {
        self.tables.get(&(database.to_string(), table.to_string()))
    }
}

/// Extracts the column name from MariaDB's JSON check clause ``json_valid(`doc`)``.
fn json_check_column(clause: &str) -> Option<String> {
    let inner = clause
        .trim()
        .strip_prefix("json_valid(")?
        .strip_suffix(')')?;
    Some(inner.trim().trim_matches('`').to_string())
}

/// Reads the catalog of the base tables in `databases` (optionally just one table).
pub async fn inspect(
    conn: &mut mysql_async::Conn,
    is_mariadb: bool,
    databases: &[String],
    only_table: Option<&str>,
) -> Result<SchemaCatalog, mysql_async::Error> {
    let mut catalog = SchemaCatalog::default();
    for database in databases {
        let rows: Vec<(String, String, String, Option<String>, String)> = conn
            .exec(
                "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.CHARACTER_SET_NAME, c.COLUMN_KEY \
                 FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
                   ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
                 WHERE c.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE' \
                   AND (? IS NULL OR c.TABLE_NAME = ?) \
                 ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION",
                (database, only_table, only_table),
            )
            .await?;
        for (table, column, data_type, charset, column_key) in rows {
            let entry = catalog.tables.entry((database.clone(), table)).or_default();
            if column_key == "PRI" {
                entry.has_primary_key = true;
            }
            entry.columns.push((
                column,
                ColumnFacts {
                    is_json: data_type == "json",
                    data_type,
                    charset,
                },
            ));
        }
        if is_mariadb {
            let checks: Vec<(String, String)> = conn
                .exec(
                    "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
                     WHERE CONSTRAINT_SCHEMA = ? AND (? IS NULL OR TABLE_NAME = ?)",
                    (database, only_table, only_table),
                )
                .await?;
            for (table, clause) in checks {
                let Some(column) = json_check_column(&clause) else {
                    continue;
                };
                if let Some(entry) = catalog.tables.get_mut(&(database.clone(), table)) {
                    for (name, facts) in entry.columns.iter_mut() {
                        if *name == column && facts.data_type == "longtext" {
                            facts.is_json = true;
                        }
                    }
                }
            }
        }
    }
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_check_clause_names_its_column() {
        assert_eq!(
            json_check_column("json_valid(`doc`)").as_deref(),
            Some("doc")
        );
        assert_eq!(json_check_column("`a` > 0"), None);
    }

    #[test]
    fn only_charsets_the_bridge_cannot_decode_are_unreadable() {
        let col = |t: &str, cs: Option<&str>| ColumnFacts {
            data_type: t.into(),
            charset: cs.map(Into::into),
            is_json: false,
        };
        assert!(col("varchar", Some("latin1")).unreadable_reason().is_none());
        assert!(col("varchar", Some("gbk")).unreadable_reason().is_some());
        assert!(col("varbinary", None).unreadable_reason().is_none());
        assert!(col("varchar", Some("utf8mb4"))
            .unreadable_reason()
            .is_none());
        assert!(col("blob", None).unreadable_reason().is_none());
        assert!(col("int", None).unreadable_reason().is_none());
    }
}
