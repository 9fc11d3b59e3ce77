//! The privileges a replica needs (REPLICATION SLAVE to read the binlog, REPLICATION CLIENT or
//! its MariaDB names to read positions), and another replica registered with our server_id.

use super::connection::query_error;
use super::PreflightError;
use crate::config::SourceConfig;
use mysql_async::prelude::Queryable;

pub(super) async fn check(
    conn: &mut mysql_async::Conn,
    source: &SourceConfig,
) -> Result<(), PreflightError> {
    let grants: Vec<String> = conn.query("SHOW GRANTS").await.map_err(query_error)?;
    if !has_global_privilege(&grants, &["REPLICATION SLAVE"]) {
        return Err(PreflightError::MissingGrant {
            user: source.user.clone(),
            missing: "REPLICATION SLAVE",
        });
    }
    if !has_global_privilege(
        &grants,
        &[
            "REPLICATION CLIENT",
            "BINLOG MONITOR",
            "SUPER",
            "REPLICA MONITOR",
        ],
    ) {
        return Err(PreflightError::MissingGrant {
            user: source.user.clone(),
            missing: "REPLICATION CLIENT",
        });
    }
    warn_of_server_id_twin(conn, source).await;
    Ok(())
}

/// Another replica registered with our id: the server disconnects one of the two whenever
/// the other connects. Only a warning: the registration of this bridge's own previous
/// connection (a crash a moment ago, a reconnect) lingers until the server notices it is gone.
/// (SHOW SLAVE HOSTS needs REPLICATION MASTER ADMIN on MariaDB; skipped when not allowed.)
async fn warn_of_server_id_twin(conn: &mut mysql_async::Conn, source: &SourceConfig) {
    let Ok(rows) = conn.query::<mysql_async::Row, _>("SHOW SLAVE HOSTS").await else {
        return;
    };
    for row in rows {
        let id: Option<u32> = row.get(0);
        if id == Some(source.server_id) {
            tracing::warn!(
                server_id = source.server_id,
                "a replica with this bridge's source.server_id is registered on the server; \
                 unless it is this bridge's own previous connection, give one of them \
                 another id, or they will keep disconnecting each other"
            );
        }
    }
}

/// True when any grant line gives the privilege globally.
fn has_global_privilege(grants: &[String], names: &[&str]) -> bool {
    grants.iter().any(|line| {
        let upper = line.to_uppercase();
        let global = upper.contains(" ON *.* ");
        global && (upper.contains("ALL PRIVILEGES") || names.iter().any(|n| upper.contains(n)))
    })
}

pub(super) fn is_denied(error: &mysql_async::Error) -> bool {
    // 1142 table command denied, 1143 column denied, 1044 database denied, 1227 needs privilege
    matches!(error, mysql_async::Error::Server(e) if matches!(e.code, 1142 | 1143 | 1044 | 1227))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_read_globally_only() {
        let grants = vec![
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `cdc`@`%`".to_string(),
            "GRANT SELECT ON `app`.* TO `cdc`@`%`".to_string(),
        ];
        assert!(has_global_privilege(&grants, &["REPLICATION SLAVE"]));
        assert!(has_global_privilege(&grants, &["REPLICATION CLIENT"]));
        let local_only = vec!["GRANT ALL PRIVILEGES ON `app`.* TO `cdc`@`%`".to_string()];
        assert!(!has_global_privilege(&local_only, &["REPLICATION SLAVE"]));
        let root = vec!["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`".to_string()];
        assert!(has_global_privilege(&root, &["REPLICATION SLAVE"]));
    }
}
