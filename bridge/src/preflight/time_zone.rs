//! The server's time zone. DATETIME values carry no zone: the binlog holds them as the
//! application wrote them, in the server's (or its session's) local time, and the bridge
//! publishes them as they are. Consumers that read them as UTC (the pusher's `datetime`
//! conversion does) are off by the zone's offset, and by another hour across a DST change,
//! when `last_updated` can even go back. TIMESTAMP values are UTC in the binlog and are not
//! affected. The check warns; it does not refuse, since a server in UTC may still hold
//! DATETIME values written in local time by the application itself.

use super::connection::variable;
use super::PreflightError;

/// Zone names that mean UTC all year.
const UTC_NAMES: [&str; 8] = [
    "UTC",
    "+00:00",
    "-00:00",
    "GMT",
    "ETC/UTC",
    "ETC/GMT",
    "UNIVERSAL",
    "ZULU",
];

/// The server's effective global time zone: `time_zone`, or the system's when it is `SYSTEM`.
pub(super) async fn server_time_zone(
    conn: &mut mysql_async::Conn,
) -> Result<String, PreflightError> {
    let zone = variable(conn, "time_zone").await?.unwrap_or_default();
    if zone.eq_ignore_ascii_case("SYSTEM") {
        let system = variable(conn, "system_time_zone")
            .await?
            .unwrap_or_default();
        return Ok(system);
    }
    Ok(zone)
}

/// Whether `zone` (a name or an offset as the server reports it) is UTC all year.
pub fn is_utc(zone: &str) -> bool {
    let zone = zone.trim();
    UTC_NAMES.iter().any(|utc| zone.eq_ignore_ascii_case(utc))
}

/// Logs a warning, once per start, when the server's time zone is not UTC.
pub(super) async fn warn_unless_utc(conn: &mut mysql_async::Conn) -> Result<(), PreflightError> {
    let zone = server_time_zone(conn).await?;
    if !zone.is_empty() && !is_utc(&zone) {
        tracing::warn!(
            time_zone = %zone,
            "the database server's time zone is {zone}, not UTC: DATETIME values are published \
             as written, in that zone; set the pushers' [source] time_zone to the zone the \
             application writes them in (an IANA name such as Europe/Amsterdam, not an \
             abbreviation), or to \"server\" to read it from this server, or OCPI last_updated is \
             off by its offset; or run the server with \
             time_zone = '+00:00' (README \"Time zones\")"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_names_and_zero_offsets_are_utc() {
        for zone in ["UTC", "utc", "+00:00", "-00:00", "GMT", "Etc/UTC", " UTC "] {
            assert!(is_utc(zone), "{zone}");
        }
    }

    #[test]
    fn local_zones_and_offsets_are_not_utc() {
        for zone in [
            "Europe/Amsterdam",
            "CET",
            "CEST",
            "+01:00",
            "Europe/London",
            "BST",
        ] {
            assert!(!is_utc(zone), "{zone}");
        }
    }
}
