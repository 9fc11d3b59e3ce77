//! The signal table: a small table in the source database that the bridge writes to and then
//! reads back from the binlog. Its rows put sync requests and chunk watermarks at exact points
//! of the change stream. They are never published.

use super::tracker::Signal;
use crate::source::SignalRow;
use mysql_async::prelude::Queryable;
use serde_json::Value;

/// Row kinds.
pub const KIND_START: &str = "sync-start";
pub const KIND_CANCEL: &str = "sync-cancel";
pub const KIND_LOW: &str = "low";
pub const KIND_HIGH: &str = "high";

/// `database`.`table`, quoted.
pub fn quoted(database: &str, table: &str) -> String {
    format!("{}.{}", ident(database), ident(table))
}

/// A quoted identifier.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The statement that creates the signal table (also in the README for operators who do not
/// grant CREATE).
pub fn create_statement(database: &str, table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n  \
           id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,\n  \
           kind VARCHAR(16) NOT NULL,\n  \
           sync_id VARCHAR(64) NOT NULL,\n  \
           attempt VARCHAR(64) NOT NULL DEFAULT '',\n  \
           queue VARCHAR(255) NOT NULL DEFAULT '',\n  \
           detail TEXT NOT NULL,\n  \
           created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),\n  \
           KEY created_at (created_at)\n\
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        quoted(database, table)
    )
}

/// The GRANT the bridge's user needs on the signal table.
pub fn grant_statement(database: &str, table: &str, user: &str) -> String {
    format!(
        "GRANT SELECT, INSERT, DELETE, CREATE ON {} TO '{user}'@'<host>'",
        quoted(database, table)
    )
}

/// Inserts one signal row (autocommit: committed when this returns).
pub async fn insert(
    conn: &mut mysql_async::Conn,
    (database, table): (&str, &str),
    kind: &str,
    sync_id: &str,
    attempt: &str,
    queue: &str,
    detail: &str,
) -> Result<(), mysql_async::Error> {
    conn.exec_drop(
        format!(
            "INSERT INTO {} (kind, sync_id, attempt, queue, detail) VALUES (?, ?, ?, ?, ?)",
            quoted(database, table)
        ),
        (kind, sync_id, attempt, queue, detail),
    )
    .await
}

/// Deletes rows older than `retention_secs` (the binlog keeps what the bridge reads).
pub async fn clean_up(
    conn: &mut mysql_async::Conn,
    database: &str,
    table: &str,
    retention_secs: u64,
) -> Result<u64, mysql_async::Error> {
    conn.exec_drop(
        format!(
            "DELETE FROM {} WHERE created_at < NOW(3) - INTERVAL ? SECOND LIMIT 10000",
            quoted(database, table)
        ),
        (retention_secs,),
    )
    .await?;
    Ok(conn.affected_rows())
}

fn text(row: &SignalRow, column: &str) -> String {
    match row.row.get(column) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Reads a signal row (inserted rows only reach here).
pub fn parse(row: &SignalRow) -> Signal {
    let kind = text(row, "kind");
    match kind.as_str() {
        KIND_START => {
            let detail = text(row, "detail");
            let parsed: Option<Value> = serde_json::from_str(&detail).ok();
            let tables = parsed
                .as_ref()
                .and_then(|d| d.get("tables"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let requested_at = parsed
                .as_ref()
                .and_then(|d| d.get("requested_at"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            Signal::Start {
                sync_id: text(row, "sync_id"),
                queue: text(row, "queue"),
                tables,
                requested_at,
            }
        }
        KIND_CANCEL => Signal::Cancel {
            queue: text(row, "queue"),
        },
        KIND_LOW => Signal::Low {
            attempt: text(row, "attempt"),
        },
        KIND_HIGH => Signal::High {
            attempt: text(row, "attempt"),
        },
        _ => Signal::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn signal(v: Value) -> SignalRow {
        SignalRow {
            row: v.as_object().cloned().unwrap(),
            file: Arc::from("binlog.000001"),
            pos: 4,
            gtid: None,
            commit_time: 0,
        }
    }

    #[test]
    fn signal_rows_are_read_by_kind() {
        let start = signal(
            json!({"id": 1, "kind": "sync-start", "sync_id": "s1", "attempt": "",
            "queue": "ocpi.b", "detail": r#"{"tables":["app.t","app.u"],"requested_at":"x"}"#}),
        );
        assert_eq!(
            parse(&start),
            Signal::Start {
                sync_id: "s1".into(),
                queue: "ocpi.b".into(),
                tables: vec!["app.t".into(), "app.u".into()],
                requested_at: "x".into()
            }
        );
        let high = signal(json!({"kind": "high", "sync_id": "s1", "attempt": "a1"}));
        assert_eq!(
            parse(&high),
            Signal::High {
                attempt: "a1".into()
            }
        );
        assert_eq!(parse(&signal(json!({"kind": "probe"}))), Signal::Other);
    }

    #[test]
    fn the_grant_names_the_table_and_user() {
        assert_eq!(
            grant_statement("app", "cdc_signal", "cdc"),
            "GRANT SELECT, INSERT, DELETE, CREATE ON `app`.`cdc_signal` TO 'cdc'@'<host>'"
        );
        assert!(create_statement("app", "cdc_signal")
            .starts_with("CREATE TABLE IF NOT EXISTS `app`.`cdc_signal`"));
    }
}
