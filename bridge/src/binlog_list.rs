//! `SHOW BINARY LOGS`: the server's binlog files and their sizes. The lag (how far the reader
//! is behind the end) and the headroom (how far the checkpoint is from the oldest file the
//! server keeps) are both measured on this list, read by one query here.

use mysql_async::prelude::Queryable;

/// A file of `SHOW BINARY LOGS`: name and size in bytes.
pub type BinlogFile = (String, u64);

/// The server's binlog files, oldest first. The error says which grant is missing.
pub async fn show_binary_logs(conn: &mut mysql_async::Conn) -> Result<Vec<BinlogFile>, String> {
    let rows: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.map_err(|e| {
        format!(
            "SHOW BINARY LOGS failed: {e}; the bridge's user needs REPLICATION CLIENT (BINLOG \
             MONITOR on MariaDB)"
        )
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|row| Some((row.get::<String, _>(0)?, row.get::<u64, _>(1)?)))
        .collect())
}

/// What the measurements' tests write their lists and positions with.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::BinlogFile;
    use crate::metrics::Position;

    pub(crate) fn files(list: &[(&str, u64)]) -> Vec<BinlogFile> {
        list.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    pub(crate) fn at(file: &str, pos: u64) -> Position {
        Position {
            file: file.into(),
            pos,
            gtid: None,
        }
    }
}
