//! When a binlog file began, for the binlog headroom ([`crate::binlog_headroom`]).
//!
//! The server purges a binlog file by its age, but no SQL statement tells when a file was
//! written (`SHOW BINARY LOGS` gives names and sizes only). The events inside it do: the
//! format description event that opens every file carries the time the file was started. So
//! this asks for one file from its first byte over a short binlog dump and keeps the first
//! real timestamp (the fake rotate event the server sends before it has none).
//!
//! The dump registers with server id 0, as `mysqlbinlog` does: a server disconnects an
//! earlier replica that registers again with the same id, and 0 is the one id it never takes
//! from another connection, so this cannot disturb the bridge's own stream nor any real
//! replica. It asks not to wait at the end of the binlog (non-blocking), reads at most a few
//! events and closes the connection.

use futures_lite::StreamExt;
use mysql_async::{BinlogStreamRequest, Conn};
use std::time::Duration;

/// The most events read before giving up on finding a timestamp (the second one has it).
const MAX_EVENTS: usize = 8;
/// How long one look may take.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The time (seconds since the epoch) `file` was started, read from its first events over
/// `conn`, which this uses up. The user needs REPLICATION SLAVE, as for the bridge's stream.
pub async fn started_at(conn: Conn, file: &str) -> Result<u32, String> {
    match tokio::time::timeout(TIMEOUT, read_start(conn, file)).await {
        Ok(found) => found,
        Err(_) => Err(format!(
            "reading the first events of binlog file {file} took more than {} s",
            TIMEOUT.as_secs()
        )),
    }
}

async fn read_start(conn: Conn, file: &str) -> Result<u32, String> {
    let request = BinlogStreamRequest::new(0)
        .with_filename(file.as_bytes())
        .with_pos(4u64)
        .with_non_blocking();
    let mut stream = conn
        .get_binlog_stream(request)
        .await
        .map_err(|e| format!("cannot read binlog file {file}: {e}"))?;
    let mut found = None;
    for _ in 0..MAX_EVENTS {
        match stream.next().await {
            Some(Ok(event)) => {
                let timestamp = event.header().timestamp();
                if timestamp != 0 {
                    found = Some(timestamp);
                    break;
                }
            }
            Some(Err(e)) => {
                let _ = stream.close().await;
                return Err(format!("cannot read binlog file {file}: {e}"));
            }
            None => break,
        }
    }
    let _ = stream.close().await;
    found.ok_or_else(|| format!("binlog file {file} has no event with a timestamp"))
}
