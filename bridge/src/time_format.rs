//! Epoch times as RFC 3339 text (the day arithmetic lives with the message contract).

use change_message::calendar::civil_from_days;
use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` for milliseconds since the epoch; `fraction_digits` (0..=3)
/// fractional digits are written, never more than the source had.
pub fn rfc3339_utc_millis(millis: i64, fraction_digits: u32) -> String {
    rfc3339_utc_micros(
        millis.div_euclid(1000),
        (millis.rem_euclid(1000) * 1000) as u32,
        fraction_digits.min(3),
    )
}

/// The RFC 3339 text of the last second asked for: every row of a transaction has its
/// transaction's commit time, so the text is written once per transaction, not per row.
#[derive(Debug, Default)]
pub struct SecondsText {
    last: Option<(u32, String)>,
}

impl SecondsText {
    /// `YYYY-MM-DDTHH:MM:SSZ` for `secs` since the epoch.
    pub fn get(&mut self, secs: u32) -> String {
        match &self.last {
            Some((at, text)) if *at == secs => text.clone(),
            _ => {
                let text = rfc3339_utc_millis(i64::from(secs) * 1000, 0);
                self.last = Some((secs, text.clone()));
                text
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` for seconds since the epoch and microseconds;
/// `fraction_digits` (0..=6) fractional digits are written.
pub fn rfc3339_utc_micros(secs: i64, micros: u32, fraction_digits: u32) -> String {
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    push_fraction(&mut text, micros, fraction_digits);
    text.push('Z');
    text
}

/// Appends `.dddddd` cut to `digits` digits (0 to 6) of a microsecond value: the digits a
/// column of that precision holds, never rounded.
pub fn push_fraction(text: &mut String, micros: u32, digits: u32) {
    let digits = digits.min(6);
    if digits > 0 {
        let value = micros.min(999_999) / 10u32.pow(6 - digits);
        text.push('.');
        text.push_str(&format!("{value:0width$}", width = digits as usize));
    }
}

pub fn unix_millis_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn now_rfc3339() -> String {
    rfc3339_utc_millis(unix_millis_now(), 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_text_follows_every_change_of_second() {
        let mut text = SecondsText::default();
        for secs in [
            1_709_210_096u32,
            1_709_210_096,
            1_709_210_097,
            0,
            1_709_210_096,
        ] {
            assert_eq!(
                text.get(secs),
                rfc3339_utc_millis(i64::from(secs) * 1000, 0)
            );
        }
    }

    #[test]
    fn epoch_and_leap_days_format_correctly() {
        assert_eq!(rfc3339_utc_millis(0, 0), "1970-01-01T00:00:00Z");
        // 2024-02-29T12:34:56.789Z
        assert_eq!(
            rfc3339_utc_millis(1_709_210_096_789, 3),
            "2024-02-29T12:34:56.789Z"
        );
        assert_eq!(
            rfc3339_utc_millis(1_709_210_096_789, 2),
            "2024-02-29T12:34:56.78Z"
        );
        assert_eq!(rfc3339_utc_millis(-1_000, 0), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn microseconds_keep_every_digit_asked_for() {
        assert_eq!(
            rfc3339_utc_micros(1_709_251_198, 123_456, 6),
            "2024-02-29T23:59:58.123456Z"
        );
        assert_eq!(
            rfc3339_utc_micros(1_709_251_198, 120_000, 2),
            "2024-02-29T23:59:58.12Z"
        );
        let mut text = String::new();
        push_fraction(&mut text, 5, 6);
        assert_eq!(text, ".000005");
    }

    #[test]
    fn far_dates_are_exact() {
        // 2038-01-19T03:14:08Z, one second past the 32-bit limit
        assert_eq!(
            rfc3339_utc_millis(2_147_483_648_000, 0),
            "2038-01-19T03:14:08Z"
        );
    }
}
