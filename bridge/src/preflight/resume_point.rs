//! Which server the bridge reached and how it resumes there: its identity (recorded in every
//! checkpoint), the resume plan ([`crate::failover::plan`]) and, for a resume by GTID state,
//! the proof that this server holds every transaction after that state.

use super::connection::{query_error, variable};
use super::PreflightError;
use crate::checkpoint::{Checkpoint, ServerIdentity};
use crate::config::SourceConfig;
use crate::failover::{self, FailoverError, ResumePlan};
use mysql_async::prelude::Queryable;

/// Reads the server's identity once, at connect.
pub(super) async fn identity(
    conn: &mut mysql_async::Conn,
    source: &SourceConfig,
    server_id: u32,
    is_mariadb: bool,
) -> Result<ServerIdentity, PreflightError> {
    let (server_uuid, gtid_domain_id) = if is_mariadb {
        let domain = variable(conn, "gtid_domain_id").await?;
        (None, domain.and_then(|d| d.trim().parse().ok()))
    } else {
        (variable(conn, "server_uuid").await?, None)
    };
    Ok(ServerIdentity {
        server_id,
        server_uuid,
        gtid_domain_id,
        address: format!("{}:{}", source.host, source.port),
    })
}

/// The resume plan, with the containment checks of a GTID resume done.
pub(super) async fn plan(
    conn: &mut mysql_async::Conn,
    source: &SourceConfig,
    checkpoint: Option<&Checkpoint>,
    current: &ServerIdentity,
    is_mariadb: bool,
) -> Result<ResumePlan, PreflightError> {
    let plan = failover::plan(checkpoint, current, &source.start)?;
    if let ResumePlan::Gtid { gtid, previous } = &plan {
        let origin = if previous.is_some() {
            "the checkpoint"
        } else {
            "source.start"
        };
        let wanted = failover::parse_state(is_mariadb, gtid, origin)?;
        let held = if is_mariadb {
            let state = variable(conn, "gtid_binlog_state")
                .await?
                .unwrap_or_default();
            failover::mariadb_containment(&wanted, &state)
        } else {
            let subset: Option<i64> = conn
                .exec_first("SELECT GTID_SUBSET(?, @@GLOBAL.gtid_executed)", (gtid,))
                .await
                .map_err(query_error)?;
            let purged: Option<String> = conn
                .exec_first("SELECT GTID_SUBTRACT(@@GLOBAL.gtid_purged, ?)", (gtid,))
                .await
                .map_err(query_error)?;
            failover::mysql_containment(subset == Some(1), &purged.unwrap_or_default())
        };
        held.map_err(|reason| FailoverError::NotContained {
            current: Box::new(current.clone()),
            gtid: gtid.clone(),
            reason,
        })?;
    }
    Ok(plan)
}
