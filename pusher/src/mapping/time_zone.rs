//! The time zone DATETIME values were written in (`[source] time_zone`), and how a zone-less
//! local time becomes an instant.
//!
//! DATETIME columns carry no zone: an application that writes `NOW()` on a server in
//! Europe/Amsterdam stores local time. Turning such a value into OCPI's UTC `DateTime` needs
//! the zone's rules, and two local times need more than the rules:
//! - In the autumn the clocks go back, so the hour before the change happens twice (02:30 in
//!   Amsterdam is first 00:30Z, then 01:30Z). The message says when the change was committed
//!   (`source.commit_time`, UTC), and a value written by the change cannot be later than that:
//!   of the two readings, the later one that is not after the commit (with a second of slack,
//!   as the commit time has whole seconds) is taken. So a `last_updated` set to `NOW()` every
//!   minute through the night of the change never goes back. Values read with no commit time
//!   at hand (a composite object's rows, read from the database) are compared with the time of
//!   reading instead.
//! - In the spring the clocks go forward, so an hour of local times never happens. A value in
//!   that gap was not written by the server's clock; it is read with the offset before the gap
//!   (02:30 becomes 03:30 local), as most libraries do.
//!
//! The zone database is the system's (/usr/share/zoneinfo), with a copy built into the binary
//! for systems without one.

use std::fmt;

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};

/// `[source] time_zone`, resolved.
#[derive(Clone)]
pub struct SourceTimeZone {
    /// As configured ("UTC", "+01:00", "Europe/Amsterdam"), for messages.
    name: String,
    zone: TimeZone,
}

impl SourceTimeZone {
    /// UTC: what DATETIME values are taken as unless configured otherwise.
    pub fn utc() -> SourceTimeZone {
        SourceTimeZone {
            name: "UTC".into(),
            zone: TimeZone::UTC,
        }
    }

    /// Reads "UTC", a fixed offset ("+01:00", "-05:30") or an IANA name ("Europe/Amsterdam").
    /// The error says what is accepted.
    pub fn parse(text: &str) -> Result<SourceTimeZone, String> {
        let text = text.trim();
        let zone = if text.eq_ignore_ascii_case("UTC") || text == "Z" {
            TimeZone::UTC
        } else if let Some(offset) = fixed_offset(text) {
            TimeZone::fixed(offset)
        } else {
            TimeZone::get(text).map_err(|e| {
                format!(
                    "{text:?} is not a time zone ({e}): write \"UTC\", an offset such as \
                     \"+01:00\", or an IANA name such as \"Europe/Amsterdam\""
                )
            })?
        };
        Ok(SourceTimeZone {
            name: text.to_string(),
            zone,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_utc(&self) -> bool {
        self.zone == TimeZone::UTC
    }

    /// The offset from UTC, in seconds, of the local time `local` (whole seconds since the
    /// epoch as if the local time were UTC) in this zone. `written_by` is the instant (Unix
    /// seconds) no later than which the value was written; it picks the reading of a local
    /// time that happens twice (module documentation).
    pub fn offset_seconds(&self, local: i64, written_by: Option<i64>) -> i64 {
        if self.is_utc() {
            return 0;
        }
        let Some(civil) = civil_of(local) else {
            return 0;
        };
        match self.zone.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => seconds(offset),
            AmbiguousOffset::Gap { before, .. } => seconds(before),
            AmbiguousOffset::Fold { before, after } => {
                // `before` is the larger offset (summer time), so its reading is the earlier
                // instant; the later one is taken unless it is after the commit.
                let later = local - seconds(after);
                match written_by {
                    Some(at) if later > at + 1 => seconds(before),
                    _ => seconds(after),
                }
            }
        }
    }
}

impl fmt::Debug for SourceTimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceTimeZone({})", self.name)
    }
}

impl PartialEq for SourceTimeZone {
    fn eq(&self, other: &SourceTimeZone) -> bool {
        self.name == other.name
    }
}

impl Default for SourceTimeZone {
    fn default() -> SourceTimeZone {
        SourceTimeZone::utc()
    }
}

fn seconds(offset: Offset) -> i64 {
    i64::from(offset.seconds())
}

/// "+01:00", "-05:30", "+0100": MySQL's `time_zone` form and RFC 3339's.
fn fixed_offset(text: &str) -> Option<Offset> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = text[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

/// The civil date-time of `local` seconds (a local time counted as if it were UTC).
fn civil_of(local: i64) -> Option<DateTime> {
    let timestamp = jiff::Timestamp::from_second(local).ok()?;
    Some(TimeZone::UTC.to_datetime(timestamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds of a local time written "YYYY-MM-DD HH:MM:SS", counted as if it were UTC.
    fn local(text: &str) -> i64 {
        let civil: DateTime = text.parse().unwrap();
        civil
            .to_zoned_datetime(TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_second()
    }

    #[test]
    fn names_offsets_and_utc_are_read_and_anything_else_is_refused_with_the_forms() {
        assert!(SourceTimeZone::parse("UTC").unwrap().is_utc());
        assert!(SourceTimeZone::parse("+00:00").unwrap().is_utc());
        let plus_one = SourceTimeZone::parse("+01:00").unwrap();
        assert_eq!(
            plus_one.offset_seconds(local("2026-07-01 12:00:00"), None),
            3600
        );
        let minus = SourceTimeZone::parse("-0530").unwrap();
        assert_eq!(minus.offset_seconds(0, None), -(5 * 3600 + 30 * 60));
        let amsterdam = SourceTimeZone::parse("Europe/Amsterdam").unwrap();
        assert_eq!(amsterdam.name(), "Europe/Amsterdam");
        for bad in ["Europe/Atlantis", "+25:00", "CET-ish", ""] {
            let e = SourceTimeZone::parse(bad).unwrap_err();
            assert!(
                e.contains("Europe/Amsterdam") && e.contains("+01:00"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn amsterdam_is_one_hour_ahead_in_winter_and_two_in_summer() {
        let zone = SourceTimeZone::parse("Europe/Amsterdam").unwrap();
        assert_eq!(
            zone.offset_seconds(local("2026-01-15 12:00:00"), None),
            3600
        );
        assert_eq!(
            zone.offset_seconds(local("2026-07-15 12:00:00"), None),
            7200
        );
    }

    #[test]
    fn a_local_time_in_the_autumn_fold_is_read_as_the_latest_reading_not_after_the_commit() {
        // 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00Z; 02:30 local is 00:30Z or 01:30Z.
        let zone = SourceTimeZone::parse("Europe/Amsterdam").unwrap();
        let value = local("2026-10-25 02:30:00");
        let first = local("2026-10-25 00:30:00"); // committed at 00:30Z
        let second = local("2026-10-25 01:30:00"); // committed at 01:30Z
        assert_eq!(zone.offset_seconds(value, Some(first)), 7200);
        assert_eq!(zone.offset_seconds(value, Some(second)), 3600);
        // A commit time with whole seconds, a value with a fraction in the same second.
        assert_eq!(zone.offset_seconds(value, Some(first - 1)), 7200);
        // Long after, or with nothing to compare with: the later reading.
        assert_eq!(zone.offset_seconds(value, Some(second + 86_400)), 3600);
        assert_eq!(zone.offset_seconds(value, None), 3600);
    }

    #[test]
    fn a_local_time_in_the_spring_gap_is_read_with_the_offset_before_it() {
        // 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 never happens.
        let zone = SourceTimeZone::parse("Europe/Amsterdam").unwrap();
        assert_eq!(
            zone.offset_seconds(local("2026-03-29 02:30:00"), None),
            3600
        );
        assert_eq!(
            zone.offset_seconds(local("2026-03-29 03:30:00"), None),
            7200
        );
    }
}
