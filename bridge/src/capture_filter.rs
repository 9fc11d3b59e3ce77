//! Which tables and columns the bridge captures. Decided once per table map, so the cost per row
//! is a hash lookup.

use crate::config::CaptureConfig;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Default)]
pub struct CaptureFilter {
    databases: HashSet<String>,
    include_tables: HashSet<(String, String)>,
    exclude_tables: HashSet<(String, String)>,
    exclude_columns: HashMap<(String, String), HashSet<String>>,
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
    /// (or that list is empty) and it is not listed in `exclude_tables`.
    pub fn captures_table(&self, database: &str, table: &str) -> bool {
        if !self.databases.contains(database) {
            return false;
        }
        let key = (database.to_string(), table.to_string());
        if self.exclude_tables.contains(&key) {
            return false;
        }
        self.include_tables.is_empty() || self.include_tables.contains(&key)
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
        })
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
