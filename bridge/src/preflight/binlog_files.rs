//! The server's binlog files and GTID state: where the newest file ends, whether the
//! checkpoint's file is still there, and the GTID position replication starts from.

use super::connection::{query_error, variable};
use super::PreflightError;
use mysql_async::prelude::Queryable;

pub(super) struct BinlogFacts {
    pub files: Vec<String>,
    pub end: (String, u64),
    pub gtid_position: Option<String>,
}

pub(super) async fn check(
    conn: &mut mysql_async::Conn,
    is_mariadb: bool,
    checkpoint_file: Option<&str>,
) -> Result<BinlogFacts, PreflightError> {
    let rows: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.map_err(query_error)?;
    let end = rows
        .last()
        .and_then(|row| Some((row.get::<String, _>(0)?, row.get::<u64, _>(1)?)))
        .unwrap_or_default();
    let files: Vec<String> = rows
        .into_iter()
        .filter_map(|row| row.get::<String, _>(0))
        .collect();
    if files.is_empty() {
        return Err(PreflightError::NoBinlogFiles);
    }
    if let Some(file) = checkpoint_file {
        if !files.iter().any(|f| f == file) {
            return Err(PreflightError::BinlogPurged {
                file: file.to_string(),
                oldest: files[0].clone(),
            });
        }
    }
    let gtid_position = if is_mariadb {
        variable(conn, "gtid_binlog_pos").await?
    } else if variable(conn, "gtid_mode").await?.as_deref() == Some("ON") {
        variable(conn, "gtid_executed").await?
    } else {
        None
    };
    Ok(BinlogFacts {
        files,
        end,
        gtid_position,
    })
}
