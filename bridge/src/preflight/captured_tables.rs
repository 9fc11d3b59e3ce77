//! The captured tables themselves: each can be read from the binlog (column types, a primary
//! key to tell records apart), the bridge's user may read it for initial syncs, and no foreign
//! key changes its rows behind the binlog's back (cascades are applied inside the storage
//! engine and never logged as row events).

use super::connection::query_error;
use super::PreflightError;
use crate::capture_filter::CaptureFilter;
use crate::config::SourceConfig;
use crate::schema_catalog::{self, SchemaCatalog};
use mysql_async::prelude::Queryable;

pub(super) async fn check(
    conn: &mut mysql_async::Conn,
    source: &SourceConfig,
    filter: &CaptureFilter,
    is_mariadb: bool,
) -> Result<SchemaCatalog, PreflightError> {
    let databases: Vec<String> = filter.databases().cloned().collect();
    let catalog = schema_catalog::inspect(conn, is_mariadb, &databases, None)
        .await
        .map_err(query_error)?;
    let mut unreadable = Vec::new();
    let mut keyless = Vec::new();
    let mut names: Vec<&(String, String)> = catalog.tables.keys().collect();
    names.sort();
    for (database, table) in names {
        if !filter.captures_table(database, table) {
            continue;
        }
        let Some(info) = catalog.table(database, table) else {
            continue;
        };
        if !info.has_primary_key {
            keyless.push(format!("  {database}.{table}"));
        }
        for (column, facts) in &info.columns {
            if let Some(reason) = facts.unreadable_reason() {
                unreadable.push(format!("  {database}.{table}.{column}: {reason}"));
            }
        }
        let probe = format!("SELECT 1 FROM `{database}`.`{table}` LIMIT 0");
        if let Err(e) = conn.query_drop(probe).await {
            return Err(PreflightError::SelectDenied {
                user: source.user.clone(),
                table: format!("{database}.{table}"),
                message: e.to_string(),
            });
        }
    }
    if !unreadable.is_empty() {
        return Err(PreflightError::UnreadableColumns(unreadable.join("\n")));
    }
    if !keyless.is_empty() {
        if !filter.skips_keyless_tables() {
            return Err(PreflightError::NoPrimaryKey(keyless.join("\n")));
        }
        tracing::warn!(
            tables = %keyless.join(",").replace("  ", ""),
            "captured tables without a primary key are skipped (capture.on_keyless_table = \
             \"skip\"): partners receive none of their changes; add a primary key to capture them"
        );
    }
    check_excluded_columns(&catalog, filter)?;
    check_cascades(conn, filter, &databases).await?;
    Ok(catalog)
}

/// Every `capture.exclude_columns` entry names a column of a captured table: a misspelt entry
/// would otherwise publish the very column it was meant to keep from the partners.
fn check_excluded_columns(
    catalog: &SchemaCatalog,
    filter: &CaptureFilter,
) -> Result<(), PreflightError> {
    let mut unknown: Vec<String> = filter
        .excluded_column_entries()
        .filter(|(database, table, column)| {
            let held = filter.captures_table(database, table)
                && catalog
                    .table(database, table)
                    .is_some_and(|info| info.columns.iter().any(|(name, _)| name == column));
            !held
        })
        .map(|(database, table, column)| {
            let why = match catalog.table(database, table) {
                None => "no such table in the captured databases",
                Some(_) if !filter.captures_table(database, table) => "the table is not captured",
                Some(_) => "the table has no such column",
            };
            format!("  {database}.{table}.{column}: {why}")
        })
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    Err(PreflightError::UnknownExcludedColumns(unknown.join("\n")))
}

/// A foreign key whose ON DELETE / ON UPDATE action changes rows of a captured table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cascade {
    pub database: String,
    pub table: String,
    pub constraint: String,
    pub parent: String,
    pub actions: String,
}

impl Cascade {
    /// How `capture.acknowledged_cascades` names it.
    pub fn name(&self) -> String {
        format!("{}.{}.{}", self.database, self.table, self.constraint)
    }
}

/// The referential actions in one `CONSTRAINT ... FOREIGN KEY` line of `SHOW CREATE TABLE`
/// that write to the child table (`ON DELETE CASCADE`...); `None` when none does.
fn writing_actions(definition: &str) -> Option<String> {
    let upper = definition.to_ascii_uppercase();
    let mut actions = Vec::new();
    for event in ["ON DELETE", "ON UPDATE"] {
        let Some(at) = upper.find(event) else {
            continue;
        };
        let rule = upper[at + event.len()..].trim_start();
        if let Some(action) = ["CASCADE", "SET NULL", "SET DEFAULT"]
            .into_iter()
            .find(|a| rule.starts_with(a))
        {
            actions.push(format!("{event} {action}"));
        }
    }
    (!actions.is_empty()).then(|| actions.join(" "))
}

/// `CONSTRAINT `name` FOREIGN KEY (...) REFERENCES `db`.`parent` (...) ...`: name and parent.
fn constraint_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    let rest = line.strip_prefix("CONSTRAINT ")?;
    let (name, rest) = rest.split_once(" FOREIGN KEY ")?;
    let parent = rest.split_once("REFERENCES ")?.1;
    let parent = parent.split(" (").next().unwrap_or(parent);
    Some((name.replace('`', ""), parent.replace('`', "")))
}

/// Foreign keys are found where the user's SELECT shows them: `KEY_COLUMN_USAGE` names the
/// tables that have any (MariaDB hides `REFERENTIAL_CONSTRAINTS` from a user with SELECT
/// only), and each such table's `SHOW CREATE TABLE` spells out its actions.
async fn check_cascades(
    conn: &mut mysql_async::Conn,
    filter: &CaptureFilter,
    databases: &[String],
) -> Result<(), PreflightError> {
    if databases.is_empty() {
        return Ok(());
    }
    let placeholders = vec!["?"; databases.len()].join(",");
    let sql = format!(
        "SELECT DISTINCT TABLE_SCHEMA, TABLE_NAME FROM information_schema.KEY_COLUMN_USAGE \
         WHERE TABLE_SCHEMA IN ({placeholders}) AND REFERENCED_TABLE_NAME IS NOT NULL \
         ORDER BY TABLE_SCHEMA, TABLE_NAME"
    );
    let children: Vec<(String, String)> = conn
        .exec(sql, databases.to_vec())
        .await
        .map_err(query_error)?;
    let mut refused = Vec::new();
    for (database, table) in children {
        if !filter.captures_table(&database, &table) {
            continue;
        }
        let show = format!("SHOW CREATE TABLE `{database}`.`{table}`");
        let created: Option<(String, String)> =
            conn.query_first(show).await.map_err(query_error)?;
        let Some((_, definition)) = created else {
            continue;
        };
        for line in definition.lines() {
            let Some((constraint, parent)) = constraint_line(line) else {
                continue;
            };
            let Some(actions) = writing_actions(line) else {
                continue;
            };
            let parent = if parent.contains('.') {
                parent
            } else {
                format!("{database}.{parent}")
            };
            let cascade = Cascade {
                database: database.clone(),
                table: table.clone(),
                constraint,
                parent,
                actions,
            };
            if filter.cascade_acknowledged(&cascade.name()) {
                tracing::warn!(
                    foreign_key = %cascade.name(),
                    actions = %cascade.actions,
                    "acknowledged: changes this foreign key makes to a captured table never reach \
                     the binlog as rows, so partners miss them until the table is re-synced \
                     (README \"Foreign keys with cascades\")"
                );
            } else {
                refused.push(cascade);
            }
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = refused
        .iter()
        .map(|c| format!("  {} ({} from {})", c.name(), c.actions, c.parent))
        .collect();
    let names: Vec<String> = refused
        .iter()
        .map(|c| format!("\"{}\"", c.name()))
        .collect();
    Err(PreflightError::CascadingForeignKeys {
        keys: lines.join("\n"),
        names: names.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_actions_that_write_to_the_child_count() {
        let line = |actions: &str| {
            format!(
                "  CONSTRAINT `fk_evses_location` FOREIGN KEY (`location_id`) REFERENCES \
                 `locations` (`id`){actions},"
            )
        };
        assert_eq!(writing_actions(&line("")), None);
        assert_eq!(
            writing_actions(&line(" ON DELETE NO ACTION ON UPDATE RESTRICT")),
            None
        );
        assert_eq!(
            writing_actions(&line(" ON DELETE CASCADE")).as_deref(),
            Some("ON DELETE CASCADE")
        );
        assert_eq!(
            writing_actions(&line(" ON DELETE SET NULL ON UPDATE CASCADE")).as_deref(),
            Some("ON DELETE SET NULL ON UPDATE CASCADE")
        );
        assert_eq!(
            constraint_line(&line(" ON DELETE CASCADE")),
            Some(("fk_evses_location".into(), "locations".into()))
        );
        assert_eq!(
            constraint_line("  CONSTRAINT `f` FOREIGN KEY (`a`) REFERENCES `crm`.`p` (`id`)"),
            Some(("f".into(), "crm.p".into()))
        );
        assert_eq!(constraint_line("  KEY `fk_c` (`pid`),"), None);
    }
}
