//! `[source] time_zone = "server"`: the zone DATETIME values are read in, taken from the source
//! server at start.
//!
//! Why: a DATETIME carries no zone, and a pusher that reads it in the wrong one sends every
//! partner a `last_updated` off by the offset (and by another hour across a DST change). The
//! server knows its zone (`@@global.time_zone`, or `@@system_time_zone` when that is `SYSTEM`),
//! so an operator need not copy it into every pusher's configuration. What the server reports
//! is not always usable: `SYSTEM` shows an abbreviation such as `CET`, which names no rules,
//! and the pusher then refuses to start, saying which name to write. An application that sets
//! its own session zone writes in that one instead: the server cannot know, so such a setup
//! names the zone in the configuration.
//!
//! The pusher does not start delivering before the zone is known: a wrong zone is silent. While
//! the server cannot be reached it tries again, for [`READ_LIMIT`], then stops naming it.

use std::time::Duration;

use crate::config::Config;
use crate::mapping::SourceTimeZone;
use crate::source_db::{DbError, SourceDb};

/// How long the pusher tries to read the server's zone before it gives up.
pub const READ_LIMIT: Duration = Duration::from_secs(120);

/// Why the zone cannot be taken from the server.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error(
        "source.time_zone = \"server\": the source database did not tell its time zone within \
         {} s ({source}); start it, check [database], or write the zone in [source] time_zone",
        READ_LIMIT.as_secs()
    )]
    Unreadable { source: DbError },
    #[error(
        "source.time_zone = \"server\": the server's time zone is {reported:?} ({which}), which \
         names no zone rules ({problem}); write its IANA name in [source] time_zone, such as \
         \"Europe/Amsterdam\", or set the server's time_zone to one"
    )]
    Unusable {
        reported: String,
        which: &'static str,
        problem: String,
    },
}

/// The zone the server reports, from its `time_zone` and `system_time_zone` settings.
pub fn from_settings(time_zone: &str, system: &str) -> Result<SourceTimeZone, ZoneError> {
    let (reported, which) = if time_zone.trim().eq_ignore_ascii_case("SYSTEM") {
        (
            system,
            "@@system_time_zone, as @@global.time_zone is SYSTEM",
        )
    } else {
        (time_zone, "@@global.time_zone")
    };
    SourceTimeZone::parse(reported).map_err(|problem| ZoneError::Unusable {
        reported: reported.to_string(),
        which,
        problem,
    })
}

/// When configured so, reads the server's zone and makes it every mapping's; logs the zone in
/// use either way.
pub async fn resolve(config: &mut Config) -> Result<(), ZoneError> {
    let database = match (&config.database, config.source_time_zone_from_server) {
        (Some(database), true) => database,
        _ => {
            tracing::info!(time_zone = %config.source_time_zone.name(), "source.time_zone: DATETIME values are read in this zone");
            return Ok(());
        }
    };
    let db = SourceDb::new(database);
    let settings = read_settings(&db).await;
    db.close().await;
    let (time_zone, system) = settings.map_err(|source| ZoneError::Unreadable { source })?;
    let zone = from_settings(&time_zone, &system)?;
    tracing::info!(%time_zone, system_time_zone = %system, zone = %zone.name(), "source.time_zone: DATETIME values are read in the source server's zone");
    config.set_source_time_zone(zone);
    Ok(())
}

/// Asks the server, again every few seconds while it cannot answer, for at most [`READ_LIMIT`].
async fn read_settings(db: &SourceDb) -> Result<(String, String), DbError> {
    let deadline = tokio::time::Instant::now() + READ_LIMIT;
    loop {
        let attempt = async { db.session().await?.time_zone_settings().await }.await;
        match attempt {
            Ok(settings) => return Ok(settings),
            Err(e @ (DbError::Tls { .. } | DbError::Schema { .. })) => return Err(e),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "source.time_zone = \"server\": waiting for the source database to tell its time zone");
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_zone_or_an_offset_is_taken_and_system_means_the_system_zone() {
        assert_eq!(
            from_settings("Europe/Amsterdam", "CET").unwrap().name(),
            "Europe/Amsterdam"
        );
        assert_eq!(from_settings("+01:00", "UTC").unwrap().name(), "+01:00");
        assert!(from_settings("SYSTEM", "UTC").unwrap().is_utc());
    }

    #[test]
    fn an_abbreviation_is_refused_naming_the_setting_it_came_from() {
        let error = from_settings("SYSTEM", "CEST").unwrap_err().to_string();
        assert!(error.contains("\"CEST\""), "{error}");
        assert!(error.contains("@@system_time_zone"), "{error}");
        assert!(error.contains("IANA name"), "{error}");
    }
}
