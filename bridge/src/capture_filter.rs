//! Which tables and columns the bridge captures, and what it does with captured tables it
//! cannot follow (no primary key, acknowledged cascades). Decided once per table map, so the
//! cost per row is a hash lookup.

use crate::config::{CaptureConfig, KeylessTablePolicy};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Default)]
pub struct CaptureFilter {
    databases: HashSet<String>,
    include_tables: HashSet<(String, String)>,
    exclude_tables: HashSet<(String, String)>,
    exclude_columns: HashMap<(String, String), HashSet<String>>,
    skip_keyless: bool,
    acknowledged_cascades: HashSet<String>,
    include_online_schema_change_tables: bool,
}

/// The suffixes online schema change tools give their shadow tables (`_name_suffix`):
/// gh-ost's ghost, changelog and cut-over tables, pt-online-schema-change's new and old copies.
const SHADOW_SUFFIXES: [&str; 5] = ["_gho", "_ghc", "_del", "_new", "_old"];

/// A shadow table of an online schema change (`_orders_gho`): a copy being built from the
/// original, whose own rows are not changes of any record.
pub fn is_online_schema_change_table(table: &str) -> bool {
    table.starts_with('_')
        && SHADOW_SUFFIXES
            .iter()
            .any(|suffix| table.len() > suffix.len() + 1 && table.ends_with(suffix))
}

fn split2(entry: &str) -> (String, String) {
    let mut parts = entry.splitn(2, '.');
    let db = parts.next().unwrap_or_default().to_string();
    let table = parts.next().unwrap_or_default().to_string();
    (db, table)
}

impl CaptureFilter {
    pub fn new(config: &CaptureConfig) -> CaptureFilter {
        let mut exclude_columns: HashMap<(String, String), HashSet<String>> = HashMap::new();
        for entry in &config.exclude_columns {
            let mut parts = entry.splitn(3, '.');
            let db = parts.next().unwrap_or_default().to_string();
            let table = parts.next().unwrap_or_default().to_string();
            let column = parts.next().unwrap_or_default().to_string();
            exclude_columns
                .entry((db, table))
                .or_default()
                .insert(column);
        }
        CaptureFilter {
            databases: config.databases.iter().cloned().collect(),
            include_tables: config.include_tables.iter().map(|e| split2(e)).collect(),
            exclude_tables: config.exclude_tables.iter().map(|e| split2(e)).collect(),
            exclude_columns,
            skip_keyless: config.on_keyless_table == KeylessTablePolicy::Skip,
            acknowledged_cascades: config.acknowledged_cascades.iter().cloned().collect(),
            include_online_schema_change_tables: config.include_online_schema_change_tables,
        }
    }

    /// Leaves one more table out (the bridge's own signal table).
    pub fn exclude_table(&mut self, database: &str, table: &str) {
        self.exclude_tables
            .insert((database.to_string(), table.to_string()));
    }

    pub fn databases(&self) -> impl Iterator<Item = &String> {
        self.databases.iter()
    }

    /// A table is captured when its database is configured, it is listed in `include_tables`
    /// (or that list is empty) and it is not listed in `exclude_tables`; shadow tables of
    /// online schema changes are left out unless configured otherwise.
    pub fn captures_table(&self, database: &str, table: &str) -> bool {
        if !self.databases.contains(database) {
            return false;
        }
        if !self.include_online_schema_change_tables && is_online_schema_change_table(table) {
            return false;
        }
        let key = (database.to_string(), table.to_string());
        if self.exclude_tables.contains(&key) {
            return false;
        }
        self.include_tables.is_empty() || self.include_tables.contains(&key)
    }

    /// `capture.on_keyless_table = "skip"`: captured tables without a primary key are left out.
    pub fn skips_keyless_tables(&self) -> bool {
        self.skip_keyless
    }

    /// Whether the operator acknowledged the foreign key `database.table.constraint`.
    pub fn cascade_acknowledged(&self, name: &str) -> bool {
        self.acknowledged_cascades.contains(name)
    }

    /// Every `capture.exclude_columns` entry as (database, table, column).
    pub fn excluded_column_entries(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.exclude_columns
            .iter()
            .flat_map(|((database, table), columns)| {
                columns
                    .iter()
                    .map(move |column| (database.as_str(), table.as_str(), column.as_str()))
            })
    }

    pub fn excluded_columns(&self, database: &str, table: &str) -> Option<&HashSet<String>> {
        self.exclude_columns
            .get(&(database.to_string(), table.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str], columns: &[&str]) -> CaptureFilter {
        CaptureFilter::new(&CaptureConfig {
            databases: vec!["app".into(), "crm".into()],
            include_tables: include.iter().map(|s| s.to_string()).collect(),
            exclude_tables: exclude.iter().map(|s| s.to_string()).collect(),
            exclude_columns: columns.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }

    #[test]
    fn shadow_tables_of_online_schema_changes_are_left_out_by_default() {
        let f = filter(&[], &[], &[]);
        for shadow in [
            "_tariffs_gho",
            "_tariffs_ghc",
            "_tariffs_del",
            "_cdrs_new",
            "_cdrs_old",
        ] {
            assert!(!f.captures_table("app", shadow), "{shadow}");
        }
        for table in ["tariffs", "cdrs_new", "_gho", "tariffs_old", "_private"] {
            assert!(f.captures_table("app", table), "{table}");
        }
        let all = CaptureFilter::new(&CaptureConfig {
            databases: vec!["app".into()],
            include_online_schema_change_tables: true,
            ..Default::default()
        });
        assert!(all.captures_table("app", "_tariffs_gho"));
    }

    #[test]
    fn every_table_of_a_configured_database_is_captured_by_default() {
        let f = filter(&[], &[], &[]);
        assert!(f.captures_table("app", "locations"));
        assert!(f.captures_table("crm", "anything"));
        assert!(!f.captures_table("mysql", "user"));
    }

    #[test]
    fn include_list_restricts_and_exclude_list_wins() {
        let f = filter(&["app.locations", "app.evses"], &["app.evses"], &[]);
        assert!(f.captures_table("app", "locations"));
        assert!(!f.captures_table("app", "evses"));
        assert!(!f.captures_table("app", "tariffs"));
    }

    #[test]
    fn excluded_columns_are_per_table() {
        let f = filter(&[], &[], &["app.users.password_hash"]);
        assert!(f
            .excluded_columns("app", "users")
            .unwrap()
            .contains("password_hash"));
        assert!(f.excluded_columns("app", "locations").is_none());
    }
}
