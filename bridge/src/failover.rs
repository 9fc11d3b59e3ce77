//! How the bridge resumes when the server it is pointed at may not be the one its checkpoint
//! was written against (a failover, a DNS or VIP move): a binlog file and position only mean
//! something on the server that wrote them, a GTID state means the same on every server of the
//! replication topology. The decision is a pure function of the checkpoint and the server's
//! identity; the checks that the new server holds everything after the GTID state compare
//! states read from it.

use crate::checkpoint::{Checkpoint, ServerIdentity};
use crate::config::StartPoint;
use crate::source::gtid::GtidState;

/// Where the next replication session starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumePlan {
    /// The checkpoint's own server: its file and position. `unidentified` when the
    /// checkpoint predates server identities (taken as this server).
    Position {
        file: String,
        pos: u64,
        unidentified: bool,
    },
    /// By GTID state: the checkpoint's on another server (`previous`), or `source.start =
    /// { gtid = ... }` without a checkpoint (`previous` is None).
    Gtid {
        gtid: String,
        previous: Option<ServerIdentity>,
    },
    /// No checkpoint: `source.start` says `end` or `start`.
    Fresh,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FailoverError {
    #[error(
        "the checkpoint was written against another server, {previous}, and the bridge is now \
         pointed at {current}; its binlog file and position ({file}:{pos}) mean nothing here and \
         it records no GTID state to resume from. The bridge stops rather than read another \
         server's positions. Choose one: (1) point source.host / source.port back at the old \
         server, if it still runs; (2) if the servers use GTIDs, find the GTID state of the old \
         server at {file}:{pos} (e.g. SELECT BINLOG_GTID_POS('{file}', {pos}) on MariaDB) and \
         set source.start = {{ gtid = \"...\" }}, then move the checkpoint file away (its next \
         sequence number was {next_seq}); (3) move the checkpoint file away, set \
         source.start = \"end\", start the bridge and re-sync every partner \
         (`pusher sync <partner>`). If this is the same server reached under a new address, set \
         \"address\" in the checkpoint's \"server\" to \"{current_address}\""
    )]
    AnotherServerWithoutGtid {
        previous: Box<ServerIdentity>,
        current: Box<ServerIdentity>,
        current_address: String,
        file: String,
        pos: u64,
        next_seq: u64,
    },
    #[error(
        "cannot resume by GTID on {current}: {reason}. The server lacks transactions the \
         partners already received or that the bridge has still to publish, so resuming here \
         would lose or invent changes. Point the bridge at a server that holds every \
         transaction of GTID state {gtid} (the most advanced replica), or move the checkpoint \
         away, set source.start = \"end\" and re-sync every partner (`pusher sync <partner>`)"
    )]
    NotContained {
        current: Box<ServerIdentity>,
        gtid: String,
        reason: String,
    },
    #[error(
        "the GTID state {gtid:?} (from {origin}) is not one this server understands: {reason}; \
         set source.start = {{ gtid = \"...\" }} in the server's own notation (MariaDB \
         @@gtid_binlog_pos, MySQL @@gtid_executed)"
    )]
    BadGtid {
        gtid: String,
        origin: &'static str,
        reason: String,
    },
}

/// Decides how to resume, from the checkpoint (if any), the server now connected, and
/// `source.start`.
pub fn plan(
    checkpoint: Option<&Checkpoint>,
    current: &ServerIdentity,
    start: &StartPoint,
) -> Result<ResumePlan, FailoverError> {
    let Some(cp) = checkpoint else {
        return Ok(match start {
            StartPoint::Gtid(gtid) => ResumePlan::Gtid {
                gtid: gtid.clone(),
                previous: None,
            },
            StartPoint::End | StartPoint::Start => ResumePlan::Fresh,
        });
    };
    let position = |unidentified| ResumePlan::Position {
        file: cp.file.clone(),
        pos: cp.pos,
        unidentified,
    };
    let previous = match &cp.server {
        None => return Ok(position(true)),
        Some(previous) if previous.is_same_server(current) => return Ok(position(false)),
        Some(previous) => previous,
    };
    match cp.gtid.as_deref().map(str::trim) {
        Some(gtid) if !gtid.is_empty() => Ok(ResumePlan::Gtid {
            gtid: gtid.to_string(),
            previous: Some(previous.clone()),
        }),
        _ => Err(FailoverError::AnotherServerWithoutGtid {
            previous: Box::new(previous.clone()),
            current: Box::new(current.clone()),
            current_address: current.address.clone(),
            file: cp.file.clone(),
            pos: cp.pos,
            next_seq: cp.next_seq,
        }),
    }
}

/// Parses a GTID state in the notation of the server (`is_mariadb`).
pub fn parse_state(
    is_mariadb: bool,
    gtid: &str,
    origin: &'static str,
) -> Result<GtidState, FailoverError> {
    let parsed = if is_mariadb {
        GtidState::parse_mariadb(gtid)
    } else {
        GtidState::parse_mysql(gtid)
    };
    parsed.map_err(|e| FailoverError::BadGtid {
        gtid: gtid.to_string(),
        origin,
        reason: e.to_string(),
    })
}

/// MariaDB: every domain of `wanted` must be in the server's `@@gtid_binlog_state` (the last
/// GTID of each domain and server id its binlog holds), from the same originating server, with
/// a sequence number at least as high: the server then wrote (or replicated) that transaction
/// and everything before it in the domain. Returns why not.
pub fn mariadb_containment(wanted: &GtidState, binlog_state: &str) -> Result<(), String> {
    let GtidState::MariaDb(wanted) = wanted else {
        return Err("the GTID state is MySQL's, the server is MariaDB".into());
    };
    let mut held: Vec<(u32, u32, u64)> = Vec::new();
    for item in binlog_state
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let parts: Vec<&str> = item.split('-').collect();
        match parts.as_slice() {
            [d, s, n] => match (d.parse(), s.parse(), n.parse()) {
                (Ok(d), Ok(s), Ok(n)) => held.push((d, s, n)),
                _ => {
                    return Err(format!(
                        "@@gtid_binlog_state {binlog_state:?} is unreadable"
                    ))
                }
            },
            _ => {
                return Err(format!(
                    "@@gtid_binlog_state {binlog_state:?} is unreadable"
                ))
            }
        }
    }
    for (&domain, &(server, seq)) in wanted {
        let newest = held
            .iter()
            .filter(|&&(d, s, _)| d == domain && s == server)
            .map(|&(_, _, n)| n)
            .max();
        match newest {
            Some(n) if n >= seq => {}
            Some(n) => {
                return Err(format!(
                    "its binlog holds GTID {domain}-{server}-{n} at most, older than \
                     {domain}-{server}-{seq} of the checkpoint (@@gtid_binlog_state \
                     {binlog_state:?}): the replica had not applied everything"
                ))
            }
            None => {
                return Err(format!(
                    "its binlog holds no transaction of domain {domain} from server {server} \
                     (@@gtid_binlog_state {binlog_state:?}): it is not part of the old \
                     server's replication topology, or its binlog does not log the replicated \
                     transactions (log_slave_updates=ON)"
                ))
            }
        }
    }
    Ok(())
}

/// MySQL: the server's answers to `GTID_SUBSET(<state>, @@gtid_executed)` and
/// `GTID_SUBTRACT(<state>... @@gtid_purged)` (the purged transactions the state does not
/// hold, which the server can no longer send).
pub fn mysql_containment(subset: bool, purged_not_held: &str) -> Result<(), String> {
    if !subset {
        return Err("the checkpoint's GTID set is not a subset of its @@gtid_executed".into());
    }
    if !purged_not_held.trim().is_empty() {
        return Err(format!(
            "it has purged transactions after the checkpoint from its binlog ({}), so it cannot \
             send them",
            purged_not_held.trim()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(server_id: u32, address: &str) -> ServerIdentity {
        ServerIdentity {
            server_id,
            server_uuid: None,
            gtid_domain_id: Some(0),
            address: address.into(),
        }
    }

    fn checkpoint(server: Option<ServerIdentity>, gtid: Option<&str>) -> Checkpoint {
        Checkpoint {
            file: "binlog.000003".into(),
            pos: 1234,
            gtid: gtid.map(str::to_string),
            next_seq: 500,
            saved_at: String::new(),
            sync: None,
            server,
        }
    }

    #[test]
    fn the_same_server_resumes_from_file_and_position() {
        let here = identity(1, "db:3306");
        let cp = checkpoint(Some(here.clone()), Some("0-1-9"));
        assert_eq!(
            plan(Some(&cp), &here, &StartPoint::End).unwrap(),
            ResumePlan::Position {
                file: "binlog.000003".into(),
                pos: 1234,
                unidentified: false
            }
        );
    }

    #[test]
    fn a_checkpoint_without_identity_is_taken_as_this_server() {
        let cp = checkpoint(None, None);
        let plan = plan(Some(&cp), &identity(7, "db:3306"), &StartPoint::End).unwrap();
        assert!(
            matches!(
                plan,
                ResumePlan::Position {
                    unidentified: true,
                    ..
                }
            ),
            "{plan:?}"
        );
    }

    #[test]
    fn another_server_resumes_by_the_checkpoints_gtid_state() {
        let old = identity(1, "db:3306");
        let cp = checkpoint(Some(old.clone()), Some("0-1-9"));
        // A promoted replica behind the same address (VIP move): another server_id.
        assert_eq!(
            plan(Some(&cp), &identity(2, "db:3306"), &StartPoint::End).unwrap(),
            ResumePlan::Gtid {
                gtid: "0-1-9".into(),
                previous: Some(old.clone())
            }
        );
        // The default server_id on an unrelated machine: another address.
        assert!(matches!(
            plan(Some(&cp), &identity(1, "other:3306"), &StartPoint::End).unwrap(),
            ResumePlan::Gtid { .. }
        ));
    }

    #[test]
    fn mysql_servers_are_told_apart_by_uuid() {
        let mut old = identity(1, "db:3306");
        old.server_uuid = Some("3E11FA47-71CA-11E1-9E33-C80AA9429562".into());
        let mut moved = old.clone();
        moved.server_uuid = Some("3e11fa47-71ca-11e1-9e33-c80aa9429562".into());
        moved.address = "db.internal:3306".into();
        assert!(old.is_same_server(&moved));
        moved.server_uuid = Some("4a6f7b2c-0d1e-11ee-8c90-0242ac120002".into());
        assert!(!old.is_same_server(&moved));
    }

    #[test]
    fn another_server_without_gtid_state_stops_naming_the_choices() {
        let cp = checkpoint(Some(identity(1, "old:3306")), None);
        let err = plan(Some(&cp), &identity(2, "new:3306"), &StartPoint::End).unwrap_err();
        let text = err.to_string();
        for needle in [
            "old:3306",
            "new:3306",
            "binlog.000003:1234",
            "source.host",
            "source.start = { gtid",
            "BINLOG_GTID_POS('binlog.000003', 1234)",
            "re-sync",
            "500",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from: {text}");
        }
    }

    #[test]
    fn without_checkpoint_source_start_decides() {
        let here = identity(1, "db:3306");
        assert_eq!(
            plan(None, &here, &StartPoint::Start).unwrap(),
            ResumePlan::Fresh
        );
        assert_eq!(
            plan(None, &here, &StartPoint::Gtid("0-1-5".into())).unwrap(),
            ResumePlan::Gtid {
                gtid: "0-1-5".into(),
                previous: None
            }
        );
    }

    #[test]
    fn mariadb_containment_needs_every_domain_from_the_same_server_as_far() {
        let wanted = GtidState::parse_mariadb("0-1-100,1-5-7").unwrap();
        assert_eq!(
            mariadb_containment(&wanted, "0-1-150,0-2-160,1-5-7"),
            Ok(())
        );
        let behind = mariadb_containment(&wanted, "0-1-99,1-5-7").unwrap_err();
        assert!(behind.contains("0-1-99"), "{behind}");
        let foreign = mariadb_containment(&wanted, "0-2-300,1-5-7").unwrap_err();
        assert!(foreign.contains("log_slave_updates"), "{foreign}");
        let missing_domain = mariadb_containment(&wanted, "0-1-100").unwrap_err();
        assert!(missing_domain.contains("domain 1"), "{missing_domain}");
    }

    #[test]
    fn mysql_containment_needs_a_subset_and_nothing_purged_after_it() {
        assert_eq!(mysql_containment(true, ""), Ok(()));
        assert!(mysql_containment(false, "").is_err());
        let purged =
            mysql_containment(true, "3e11fa47-71ca-11e1-9e33-c80aa9429562:101-120").unwrap_err();
        assert!(purged.contains("101-120"), "{purged}");
    }
}
