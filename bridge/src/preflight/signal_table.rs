//! Makes sure the signal table of initial syncs exists and that the bridge may use it.

use super::connection::{connect, query_error};
use super::grants::is_denied;
use super::PreflightError;
use crate::config::SourceConfig;
use mysql_async::prelude::Queryable;

/// Makes sure the signal table of initial syncs exists (creating it when missing) and that the
/// bridge's user may read, insert and delete its rows. The check writes nothing: the probe
/// statements run in a transaction that is rolled back (and so never reaches the binlog).
pub async fn signal_table(
    source: &SourceConfig,
    database: &str,
    table: &str,
) -> Result<(), PreflightError> {
    use crate::sync::signal::{create_statement, grant_statement, quoted};
    let mut conn = connect(source).await?;
    let name = quoted(database, table);
    let grant = grant_statement(database, table, &source.user);
    let exists: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (database, table),
        )
        .await
        .map_err(query_error)?;
    if exists.unwrap_or(0) == 0 {
        if let Err(error) = conn.query_drop(create_statement(database, table)).await {
            // 1049: unknown database.
            if matches!(&error, mysql_async::Error::Server(e) if e.code == 1049) {
                return Err(PreflightError::SignalDatabaseMissing {
                    database: database.to_string(),
                });
            }
            if is_denied(&error) {
                return Err(PreflightError::SignalTableMissing {
                    table: name,
                    user: source.user.clone(),
                    message: error.to_string(),
                    grant,
                    create: create_statement(database, table),
                });
            }
            return Err(query_error(error));
        }
        tracing::info!(table = %name, "created the signal table of initial syncs");
    }
    let probes: [(&'static str, String); 3] = [
        ("read (SELECT)", format!("SELECT id FROM {name} LIMIT 1")),
        (
            "write (INSERT)",
            format!("INSERT INTO {name} (kind, sync_id, detail) VALUES ('probe', '', '')"),
        ),
        (
            "clean up (DELETE)",
            format!("DELETE FROM {name} WHERE id = 0"),
        ),
    ];
    conn.query_drop("START TRANSACTION")
        .await
        .map_err(query_error)?;
    let mut outcome = Ok(());
    for (action, sql) in probes {
        if let Err(error) = conn.query_drop(sql).await {
            outcome = Err(if is_denied(&error) {
                PreflightError::SignalTableDenied {
                    table: name.clone(),
                    user: source.user.clone(),
                    action,
                    message: error.to_string(),
                    grant: grant.clone(),
                }
            } else {
                query_error(error)
            });
            break;
        }
    }
    let _ = conn.query_drop("ROLLBACK").await;
    let _ = conn.disconnect().await;
    outcome
}
