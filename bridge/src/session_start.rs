//! Where a replication session starts, as the start-up checks planned it
//! ([`crate::failover::plan`]): the checkpoint's position on its own server, a GTID state on
//! another (or from `source.start`), or `source.start`'s end or start; with the `seq` its
//! first change gets and the GTID state there. Logs which, so an operator can tell a resume by
//! position from one by GTID.

use crate::checkpoint::Checkpoint;
use crate::config::{Config, StartPoint};
use crate::failover::ResumePlan;
use crate::preflight::{PreflightError, ServerFacts};
use crate::source::gtid::GtidState;
use crate::source::StartAt;

/// Where the session starts, the `seq` of its first change and the GTID state there, as the
/// start-up checks planned it ([`crate::failover::plan`]).
pub fn start_of(
    config: &Config,
    facts: &ServerFacts,
    checkpoint: Option<&Checkpoint>,
    path: &std::path::Path,
) -> Result<(StartAt, u64, Option<GtidState>), PreflightError> {
    let checkpoint_gtid = || {
        checkpoint
            .and_then(|cp| cp.gtid.as_deref())
            .and_then(|g| parse_gtid_state(facts.is_mariadb, g))
    };
    let first_seq = || {
        let first_seq = crate::checkpoint::first_seq_of_new_lineage();
        tracing::info!(first_seq, "no checkpoint: numbering changes from the time now in microseconds, above every seq an earlier run of this bridge gave (README \"Message contract\")");
        first_seq
    };
    let next_seq = checkpoint.map(|cp| cp.next_seq);
    Ok(match &facts.resume {
        ResumePlan::Position {
            file,
            pos,
            unidentified,
        } => {
            if *unidentified {
                tracing::info!(server = %facts.identity, "the checkpoint does not say which server it belongs to (written by an older version): taken as this server's; the next checkpoint records it");
            }
            let next_seq = next_seq.unwrap_or_default();
            tracing::info!(%file, pos, next_seq, "resuming from checkpoint {}", path.display());
            let start = StartAt::Position {
                file: file.clone(),
                pos: *pos,
            };
            (start, next_seq, checkpoint_gtid())
        }
        ResumePlan::Gtid { gtid, previous } => {
            let state = crate::failover::parse_state(facts.is_mariadb, gtid, "the checkpoint")?;
            let next_seq = match (previous, next_seq) {
                (Some(previous), Some(next_seq)) => {
                    tracing::warn!(%previous, current = %facts.identity, %gtid, next_seq, "resuming by GTID on another server than the checkpoint's (failover): its file and position are not used; this server holds every transaction after the GTID state");
                    next_seq
                }
                _ => {
                    tracing::warn!(%gtid, "no checkpoint: starting by GTID after {gtid} (source.start = {{ gtid = ... }})");
                    first_seq()
                }
            };
            (StartAt::Gtid(state.clone()), next_seq, Some(state))
        }
        ResumePlan::Fresh => {
            let start = match config.source.start {
                StartPoint::End | StartPoint::Gtid(_) => {
                    let (file, pos) = facts.binlog_end.clone();
                    tracing::warn!(checkpoint = %path.display(), %file, pos, "no checkpoint: starting at the CURRENT END of the binlog (source.start = \"end\"); changes made before now are not captured");
                    StartAt::Position { file, pos }
                }
                StartPoint::Start => {
                    tracing::warn!(checkpoint = %path.display(), oldest = %facts.binlog_files[0], "no checkpoint: starting at the OLDEST binlog the server has (source.start = \"start\")");
                    StartAt::OldestBinlog
                }
            };
            // From the end: the server's state now. From the start: the GTID list (or
            // previous-GTIDs) event that opens the first binlog file supplies it.
            let gtid = match start {
                StartAt::Position { .. } => facts
                    .gtid_position
                    .as_deref()
                    .and_then(|g| parse_gtid_state(facts.is_mariadb, g)),
                _ => None,
            };
            (start, first_seq(), gtid)
        }
    })
}

fn parse_gtid_state(is_mariadb: bool, text: &str) -> Option<GtidState> {
    let parsed = if is_mariadb {
        GtidState::parse_mariadb(text)
    } else {
        GtidState::parse_mysql(text)
    };
    match parsed {
        Ok(state) => Some(state),
        Err(error) => {
            tracing::warn!(%error, "GTID state not tracked; checkpoints keep file and position only");
            None
        }
    }
}
