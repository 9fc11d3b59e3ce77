//! Checks made before reading the binlog, so that a server set up wrong is refused at start
//! with the fix spelled out, instead of failing (or, worse, silently losing changes) later.
//! One module per phase, run in order by [`run`].

mod binlog_files;
mod captured_tables;
mod connection;
mod error;
mod grants;
mod resume_point;
mod server_settings;
mod signal_table;
pub mod time_zone;

pub use captured_tables::Cascade;
pub use connection::{connect, connection_opts};
pub use error::PreflightError;
pub use signal_table::signal_table;

use crate::capture_filter::CaptureFilter;
use crate::checkpoint::{Checkpoint, ServerIdentity};
use crate::config::SourceConfig;
use crate::failover::ResumePlan;
use crate::schema_catalog::SchemaCatalog;
use connection::variable;

/// What the start-up checks learned about the server.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub version: String,
    pub is_mariadb: bool,
    pub server_id: u32,
    pub binlog_files: Vec<String>,
    /// The newest binlog file and its size: where the server writes its next event. Read with
    /// `SHOW BINARY LOGS`, which every supported server answers (MySQL 8.4 dropped
    /// `SHOW MASTER STATUS`).
    pub binlog_end: (String, u64),
    /// The server's current GTID state (MariaDB `gtid_binlog_pos`, MySQL `gtid_executed` when
    /// `gtid_mode` is on), read just before replication starts.
    pub gtid_position: Option<String>,
    /// Which server this is, as the checkpoint records it.
    pub identity: ServerIdentity,
    /// Where replication starts: the checkpoint's position on its own server, a GTID state
    /// (checked to be held by this server), or `source.start`.
    pub resume: ResumePlan,
}

/// Runs every check; returns the server facts and the catalog of captured tables.
pub async fn run(
    source: &SourceConfig,
    filter: &CaptureFilter,
    checkpoint: Option<&Checkpoint>,
) -> Result<(ServerFacts, SchemaCatalog), PreflightError> {
    let mut conn = connect(source).await?;
    let version = variable(&mut conn, "version").await?.unwrap_or_default();
    let is_mariadb = version.to_lowercase().contains("mariadb");
    let server_id = server_settings::check(&mut conn, source).await?;
    time_zone::warn_unless_utc(&mut conn).await?;
    grants::check(&mut conn, source).await?;
    let identity = resume_point::identity(&mut conn, source, server_id, is_mariadb).await?;
    let resume = resume_point::plan(&mut conn, source, checkpoint, &identity, is_mariadb).await?;
    // Only a position on this server's own binlog must still be there.
    let own_file = match &resume {
        ResumePlan::Position { file, .. } => Some(file.as_str()),
        ResumePlan::Gtid { .. } | ResumePlan::Fresh => None,
    };
    let binlog = binlog_files::check(&mut conn, is_mariadb, own_file).await?;
    let catalog = captured_tables::check(&mut conn, source, filter, is_mariadb).await?;
    let _ = conn.disconnect().await;
    Ok((
        ServerFacts {
            version,
            is_mariadb,
            server_id,
            binlog_files: binlog.files,
            binlog_end: binlog.end,
            gtid_position: binlog.gtid_position,
            identity,
            resume,
        },
        catalog,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_how_to_fix_them() {
        let e = PreflightError::WrongSetting {
            variable: "binlog_format",
            actual: "MIXED".into(),
            expected: "ROW",
        };
        let text = e.to_string();
        assert!(text.contains("binlog_format=ROW"), "{text}");
        let text = PreflightError::BinlogPurged {
            file: "binlog.000001".into(),
            oldest: "binlog.000004".into(),
        }
        .to_string();
        assert!(
            text.contains("purged") && text.contains("initial sync"),
            "{text}"
        );
        let text = PreflightError::CascadingForeignKeys {
            keys: "  app.evses.fk_location (ON DELETE CASCADE from app.locations)".into(),
            names: "\"app.evses.fk_location\"".into(),
        }
        .to_string();
        assert!(
            text.contains("capture.acknowledged_cascades") && text.contains("app.evses"),
            "{text}"
        );
    }
}
