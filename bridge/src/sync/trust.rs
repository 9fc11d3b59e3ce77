//! Who may start a sync, and of what into where. A sync publishes every row of the tables it
//! names into the queue it names, so both ends are checked: the request's broker user (the
//! `user_id` property, which the broker refuses on a publish from another user) against
//! `sync.requesters`, the queue against `sync.queue_prefix` (partner queues only), the tables
//! against the capture filter. The queue and the tables are checked again when the signal row
//! comes back through the binlog: anyone who may INSERT into the signal table could otherwise
//! start a sync of anything into any queue. Pure checks, no I/O.

use super::tracker::Signal;
use crate::capture_filter::CaptureFilter;

/// The suffix of the pusher's parking queues (`<queue_prefix><partner>.parked`).
const PARKING_SUFFIX: &str = ".parked";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error(
        "queue `{queue}` is not a partner queue: syncs may only target queues whose name starts \
         with `{prefix}` (sync.queue_prefix in the bridge's config, which must match the \
         pusher's broker.queue_prefix); name the partner's queue, or change sync.queue_prefix"
    )]
    QueueOutsidePrefix { queue: String, prefix: String },
    #[error(
        "queue `{queue}` is a parking queue, not a partner queue: name the partner's queue \
         (without `.parked`)"
    )]
    ParkingQueue { queue: String },
    #[error(
        "the request carries no user_id: only requests published with the user_id property set \
         to the publishing broker user are served (`pusher sync` and `bridge sync` set it); \
         allowed users: {allowed} (sync.requesters in the bridge's config)"
    )]
    NoUserId { allowed: String },
    #[error(
        "broker user `{user}` may not request syncs: allowed users are {allowed}; add `{user}` \
         to sync.requesters in the bridge's config to allow it"
    )]
    UserNotAllowed { user: String, allowed: String },
    #[error(
        "table {table} is not captured by this bridge (see [capture] in its config): only \
         captured tables can be synced"
    )]
    NotCaptured { table: String },
    #[error("the sync names no table")]
    NoTables,
}

fn names(allowed: &[String]) -> String {
    if allowed.is_empty() {
        return "none".into();
    }
    allowed
        .iter()
        .map(|u| format!("`{u}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A sync may only target a partner queue: a name that starts with `prefix` (and is more than
/// it), and not a parking queue.
pub fn check_queue(prefix: &str, queue: &str) -> Result<(), TrustError> {
    if !queue.starts_with(prefix) || queue.len() == prefix.len() {
        return Err(TrustError::QueueOutsidePrefix {
            queue: queue.to_string(),
            prefix: prefix.to_string(),
        });
    }
    if queue.ends_with(PARKING_SUFFIX) {
        return Err(TrustError::ParkingQueue {
            queue: queue.to_string(),
        });
    }
    Ok(())
}

/// The request's `user_id` must be one of `allowed` (the broker made sure it is the user that
/// published it).
pub fn check_requester(allowed: &[String], user_id: Option<&str>) -> Result<(), TrustError> {
    match user_id {
        None | Some("") => Err(TrustError::NoUserId {
            allowed: names(allowed),
        }),
        Some(user) if allowed.iter().any(|a| a == user) => Ok(()),
        Some(user) => Err(TrustError::UserNotAllowed {
            user: user.to_string(),
            allowed: names(allowed),
        }),
    }
}

/// Every table (`database.table`) must be captured (the filter leaves the signal table out).
pub fn check_tables(filter: &CaptureFilter, tables: &[String]) -> Result<(), TrustError> {
    if tables.is_empty() {
        return Err(TrustError::NoTables);
    }
    for entry in tables {
        let (database, table) = entry.split_once('.').unwrap_or(("", entry));
        if !filter.captures_table(database, table) {
            return Err(TrustError::NotCaptured {
                table: entry.clone(),
            });
        }
    }
    Ok(())
}

/// A signal row read back from the binlog: a start must name a partner queue and captured
/// tables, a cancel a partner queue. Watermarks are matched against the bridge's own attempts
/// anyway.
pub fn check_signal(
    prefix: &str,
    filter: &CaptureFilter,
    signal: &Signal,
) -> Result<(), TrustError> {
    match signal {
        Signal::Start { queue, tables, .. } => {
            check_queue(prefix, queue)?;
            check_tables(filter, tables)
        }
        Signal::Cancel { queue } => check_queue(prefix, queue),
        Signal::Low { .. } | Signal::High { .. } | Signal::Other => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CaptureConfig;

    fn filter() -> CaptureFilter {
        let config: CaptureConfig = toml::from_str(
            r#"databases = ["app"]
               exclude_tables = ["app.secrets"]"#,
        )
        .unwrap();
        let mut filter = CaptureFilter::new(&config);
        filter.exclude_table("app", "cdc_signal");
        filter
    }

    #[test]
    fn only_partner_queues_may_be_targeted() {
        assert_eq!(check_queue("ocpi.", "ocpi.partner-b"), Ok(()));
        for queue in [
            "cdc.changes.sync-requests",
            "ocpi",
            "ocpi.",
            "OCPI.b",
            "x.ocpi.b",
        ] {
            assert!(
                matches!(
                    check_queue("ocpi.", queue),
                    Err(TrustError::QueueOutsidePrefix { .. })
                ),
                "{queue}"
            );
        }
        let err = check_queue("ocpi.", "ocpi.partner-b.parked").unwrap_err();
        assert!(matches!(err, TrustError::ParkingQueue { .. }));
        let text = check_queue("ocpi.", "audit").unwrap_err().to_string();
        assert!(
            text.contains("`audit`") && text.contains("sync.queue_prefix"),
            "{text}"
        );
    }

    #[test]
    fn only_listed_broker_users_may_request_syncs() {
        let allowed = vec!["cdc".to_string(), "ops".to_string()];
        assert_eq!(check_requester(&allowed, Some("ops")), Ok(()));
        let text = check_requester(&allowed, Some("intruder"))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("`intruder`") && text.contains("sync.requesters"),
            "{text}"
        );
        for missing in [None, Some("")] {
            assert!(matches!(
                check_requester(&allowed, missing),
                Err(TrustError::NoUserId { .. })
            ));
        }
        assert!(check_requester(&[], Some("cdc")).is_err());
    }

    #[test]
    fn a_signal_row_is_checked_like_a_request() {
        let filter = filter();
        let start = |queue: &str, tables: &[&str]| Signal::Start {
            sync_id: "s".into(),
            queue: queue.into(),
            tables: tables.iter().map(|t| t.to_string()).collect(),
            requested_at: String::new(),
        };
        assert_eq!(
            check_signal("ocpi.", &filter, &start("ocpi.b", &["app.locations"])),
            Ok(())
        );
        assert!(matches!(
            check_signal("ocpi.", &filter, &start("audit", &["app.locations"])),
            Err(TrustError::QueueOutsidePrefix { .. })
        ));
        for table in ["app.secrets", "app.cdc_signal", "mysql.user", "nodot"] {
            assert_eq!(
                check_signal("ocpi.", &filter, &start("ocpi.b", &["app.t", table])),
                Err(TrustError::NotCaptured {
                    table: table.into()
                }),
                "{table}"
            );
        }
        assert_eq!(
            check_signal("ocpi.", &filter, &start("ocpi.b", &[])),
            Err(TrustError::NoTables)
        );
        assert!(check_signal(
            "ocpi.",
            &filter,
            &Signal::Cancel {
                queue: "audit".into()
            }
        )
        .is_err());
        assert_eq!(
            check_signal(
                "ocpi.",
                &filter,
                &Signal::High {
                    attempt: "a".into()
                }
            ),
            Ok(())
        );
    }
}
