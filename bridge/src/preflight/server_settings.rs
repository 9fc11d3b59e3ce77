//! The server settings row-based capture depends on: binary log on, ROW format, FULL row image
//! and metadata, no event types the reader cannot see, and a server_id other than ours.

use super::connection::variable;
use super::PreflightError;
use crate::config::SourceConfig;

/// Checks the settings; returns the server's own server_id.
pub(super) async fn check(
    conn: &mut mysql_async::Conn,
    source: &SourceConfig,
) -> Result<u32, PreflightError> {
    let log_bin = variable(conn, "log_bin").await?;
    if !matches!(log_bin.as_deref(), Some("ON") | Some("1")) {
        return Err(PreflightError::BinlogOff);
    }
    require(
        "binlog_format",
        variable(conn, "binlog_format").await?,
        "ROW",
    )?;
    require(
        "binlog_row_image",
        variable(conn, "binlog_row_image").await?,
        "FULL",
    )?;
    match variable(conn, "binlog_row_metadata").await? {
        None => return Err(PreflightError::NoRowMetadata),
        value => require("binlog_row_metadata", value, "FULL")?,
    }
    // MySQL 8.0.20+ compressed transactions (binlog_transaction_compression) are decoded.
    // MariaDB: compressed events are a different event type the reader does not know.
    if let Some(value) = variable(conn, "log_bin_compress").await? {
        require("log_bin_compress", Some(value), "OFF")?;
    }
    // MySQL: partial JSON updates are a different rows event the reader does not know.
    if let Some(value) = variable(conn, "binlog_row_value_options").await? {
        if !value.is_empty() {
            return Err(PreflightError::WrongSetting {
                variable: "binlog_row_value_options",
                actual: value,
                expected: "",
            });
        }
    }
    let server_id: u32 = variable(conn, "server_id")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if server_id == source.server_id {
        return Err(PreflightError::ServerIdClash(source.server_id));
    }
    Ok(server_id)
}

fn require(
    variable: &'static str,
    actual: Option<String>,
    expected: &'static str,
) -> Result<(), PreflightError> {
    match actual {
        Some(value) if value.eq_ignore_ascii_case(expected) => Ok(()),
        Some(value) => Err(PreflightError::WrongSetting {
            variable,
            actual: value,
            expected,
        }),
        None => Err(PreflightError::WrongSetting {
            variable,
            actual: "not set".into(),
            expected,
        }),
    }
}
