//! Column values (as the change message types them) to OCPI JSON values.

use change_message::calendar::{civil_from_days, days_from_civil};
use serde_json::{Number, Value};

use super::{Conversion, SourceTimeZone};

/// Where a zone-less date-time is read: the source's zone, and the instant (Unix seconds) by
/// which the value was written, if known (see [`SourceTimeZone::offset_seconds`]).
#[derive(Clone, Copy)]
pub(crate) struct LocalTime<'a> {
    pub zone: &'a SourceTimeZone,
    pub written_by: Option<i64>,
}

/// Converts a non-null column value. The error is the problem, in words.
pub(crate) fn convert(
    value: &Value,
    conversion: Conversion,
    local: LocalTime<'_>,
) -> Result<Value, String> {
    match conversion {
        Conversion::String => match value {
            Value::String(_) => Ok(value.clone()),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err("a JSON array or object is not text".into()),
        },
        Conversion::Number => match value {
            Value::Number(_) => Ok(value.clone()),
            Value::String(s) => parse_number(s).map(Value::Number),
            _ => Err("not a number".into()),
        },
        Conversion::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value.clone()),
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => {
                    Ok(Value::from(f as i64))
                }
                _ => Err("not a whole number".into()),
            },
            Value::String(s) => parse_integer(s).map(Value::Number),
            _ => Err("not a whole number".into()),
        },
        Conversion::Bool => match value {
            Value::Bool(_) => Ok(value.clone()),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(0), _) => Ok(Value::Bool(false)),
                (Some(_), _) | (_, Some(_)) => Ok(Value::Bool(true)),
                _ => Err("a boolean column holds whole numbers (0 = false)".into()),
            },
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "0" | "false" => Ok(Value::Bool(false)),
                "1" | "true" => Ok(Value::Bool(true)),
                _ => Err("text that is not 0, 1, true or false".into()),
            },
            _ => Err("not a boolean".into()),
        },
        Conversion::Json => match value {
            Value::String(s) => serde_json::from_str(s).map_err(|e| format!("not JSON text: {e}")),
            _ => Ok(value.clone()),
        },
        Conversion::Datetime => match value {
            Value::String(s) => to_rfc3339_utc(s, local),
            _ => Err("a date-time is text (DATETIME, TIMESTAMP or DATE)".into()),
        },
        Conversion::List => match value {
            Value::String(s) => Ok(Value::Array(
                s.split(',')
                    .filter(|m| !m.is_empty())
                    .map(|m| Value::String(m.to_string()))
                    .collect(),
            )),
            Value::Array(_) => Ok(value.clone()),
            _ => Err("a list is SET text (\"A,B\") or a JSON array".into()),
        },
    }
}

fn parse_number(s: &str) -> Result<Number, String> {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Ok(Number::from(i));
    }
    if let Ok(u) = t.parse::<u64>() {
        return Ok(Number::from(u));
    }
    let is_decimal = !t.is_empty()
        && t.trim_start_matches(['-', '+']).chars().all(|c| {
            c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+'
        });
    match t.parse::<f64>() {
        Ok(f) if is_decimal => Number::from_f64(f).ok_or_else(|| "not a finite number".into()),
        _ => Err("text that is not a decimal number".into()),
    }
}

fn parse_integer(s: &str) -> Result<Number, String> {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Ok(Number::from(i));
    }
    if let Ok(u) = t.parse::<u64>() {
        return Ok(Number::from(u));
    }
    // DECIMAL text with a zero fraction: "11000.00".
    if let Some((whole, fraction)) = t.split_once('.') {
        if !fraction.is_empty() && fraction.chars().all(|c| c == '0') {
            if let Ok(i) = whole.parse::<i64>() {
                return Ok(Number::from(i));
            }
            if let Ok(u) = whole.parse::<u64>() {
                return Ok(Number::from(u));
            }
        }
        if fraction.chars().all(|c| c.is_ascii_digit()) && !fraction.is_empty() {
            return Err("has a fraction: not a whole number".into());
        }
    }
    Err("text that is not a whole number".into())
}

/// A point in time read from the text forms the change message uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Instant {
    /// Seconds since 1970-01-01T00:00:00Z.
    secs: i64,
    nanos: u32,
}

impl Instant {
    /// Whole seconds since the epoch.
    pub(crate) fn secs(self) -> i64 {
        self.secs
    }

    /// The same instant as a [`std::time::SystemTime`], to the nanosecond.
    pub(crate) fn to_system_time(self) -> std::time::SystemTime {
        let since = std::time::Duration::new(self.secs.unsigned_abs(), 0);
        let base = if self.secs >= 0 {
            std::time::UNIX_EPOCH + since
        } else {
            std::time::UNIX_EPOCH - since
        };
        base + std::time::Duration::from_nanos(u64::from(self.nanos))
    }
}

struct Parsed {
    date: (i64, u32, u32),
    time: (u32, u32, u32),
    /// Fraction digits as written (never invented, never rounded).
    fraction: String,
    /// Offset east of UTC in minutes; `None`: no zone written (taken as UTC).
    offset_minutes: Option<i32>,
}

fn parse_datetime(s: &str) -> Result<Parsed, String> {
    let s = s.trim();
    let bad = || "not a date-time: expected YYYY-MM-DD[(T| )HH:MM:SS[.fff]][Z|±HH:MM]".to_string();
    if !s.is_ascii() || s.len() < 10 {
        return Err(bad());
    }
    let (date_part, rest) = s.split_at(10);
    let d: Vec<&str> = date_part.split('-').collect();
    if d.len() != 3 || d[0].len() != 4 || d[1].len() != 2 || d[2].len() != 2 {
        return Err(bad());
    }
    let year: i64 = d[0].parse().map_err(|_| bad())?;
    let month: u32 = d[1].parse().map_err(|_| bad())?;
    let day: u32 = d[2].parse().map_err(|_| bad())?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(format!("{date_part} is not a calendar date"));
    }
    let mut parsed = Parsed {
        date: (year, month, day),
        time: (0, 0, 0),
        fraction: String::new(),
        offset_minutes: None,
    };
    if rest.is_empty() {
        return Ok(parsed);
    }
    let rest = rest
        .strip_prefix('T')
        .or_else(|| rest.strip_prefix('t'))
        .or_else(|| rest.strip_prefix(' '))
        .ok_or_else(bad)?;
    if rest.len() < 8 {
        return Err(bad());
    }
    let (hms, mut rest) = rest.split_at(8);
    let t: Vec<&str> = hms.split(':').collect();
    if t.len() != 3 || t.iter().any(|p| p.len() != 2) {
        return Err(bad());
    }
    let hour: u32 = t[0].parse().map_err(|_| bad())?;
    let minute: u32 = t[1].parse().map_err(|_| bad())?;
    let second: u32 = t[2].parse().map_err(|_| bad())?;
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!("{hms} is not a time of day"));
    }
    parsed.time = (hour, minute, second);
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err(bad());
        }
        parsed.fraction = frac[..digits].to_string();
        rest = &frac[digits..];
    }
    match rest {
        "" => {}
        "Z" | "z" => parsed.offset_minutes = Some(0),
        zone => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad()),
            };
            let z = &zone[1..];
            let (h, m) = match (z.len(), z.split_once(':')) {
                (5, Some((h, m))) => (h, m),
                (4, None) => z.split_at(2),
                _ => return Err(bad()),
            };
            let h: i32 = h.parse().map_err(|_| bad())?;
            let m: i32 = m.parse().map_err(|_| bad())?;
            if h > 23 || m > 59 {
                return Err(bad());
            }
            parsed.offset_minutes = Some(sign * (h * 60 + m));
        }
    }
    Ok(parsed)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

fn utc_seconds(p: &Parsed) -> i64 {
    let (y, mo, d) = p.date;
    let (h, mi, s) = p.time;
    days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s)
        - i64::from(p.offset_minutes.unwrap_or(0)) * 60
}

/// RFC 3339 in UTC with `Z`, the form OCPI asks for. Zone-less values (DATETIME) are read in
/// `local`'s zone; fraction digits are kept as written, up to milliseconds: OCPI's DateTime is a
/// string(25), which a DATETIME(6) value (27 characters) would break, so further digits are
/// cut (never rounded up: a time is never sent later than it was).
pub(crate) fn to_rfc3339_utc(s: &str, local: LocalTime<'_>) -> Result<Value, String> {
    let p = parse_datetime(s)?;
    let mut secs = utc_seconds(&p);
    if p.offset_minutes.is_none() {
        secs -= local.zone.offset_seconds(secs, local.written_by);
    }
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    if !(0..=9999).contains(&y) {
        return Err("outside the years 0000-9999".into());
    }
    let sod = secs.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if !p.fraction.is_empty() {
        out.push('.');
        out.push_str(&p.fraction[..p.fraction.len().min(3)]);
    }
    out.push('Z');
    Ok(Value::String(out))
}

/// The instant a date-time text names, for comparing (zone-less taken as UTC).
pub(crate) fn instant(s: &str) -> Option<Instant> {
    let p = parse_datetime(s).ok()?;
    let mut nanos_text = p.fraction.clone();
    while nanos_text.len() < 9 {
        nanos_text.push('0');
    }
    Some(Instant {
        secs: utc_seconds(&p),
        nanos: nanos_text.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_instant_becomes_the_same_system_time_with_its_offset_and_fraction() {
        let t = instant("2026-03-29T03:30:00.25+02:00")
            .unwrap()
            .to_system_time();
        let since = t.duration_since(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(since.as_secs(), 1_774_747_800);
        assert_eq!(since.subsec_millis(), 250);
        let before = instant("1969-12-31T23:59:59Z").unwrap().to_system_time();
        assert_eq!(
            std::time::UNIX_EPOCH
                .duration_since(before)
                .unwrap()
                .as_secs(),
            1
        );
    }

    fn c(v: Value, conv: Conversion) -> Result<Value, String> {
        let utc = SourceTimeZone::utc();
        let local = LocalTime {
            zone: &utc,
            written_by: None,
        };
        convert(&v, conv, local)
    }

    #[test]
    fn datetimes_become_utc_with_z_keeping_their_digits() {
        let cases = [
            ("2024-02-29T23:59:58.123", "2024-02-29T23:59:58.123Z"),
            ("2024-02-29T23:59:58", "2024-02-29T23:59:58Z"),
            ("2024-02-29 23:59:58.5", "2024-02-29T23:59:58.5Z"),
            ("2024-02-29T23:59:58.129Z", "2024-02-29T23:59:58.129Z"),
            ("2024-02-29T23:59:58+00:00", "2024-02-29T23:59:58Z"),
            ("2024-03-01T01:30:00+02:00", "2024-02-29T23:30:00Z"),
            ("2023-12-31T23:30:00.25-01:00", "2024-01-01T00:30:00.25Z"),
            ("2024-02-29", "2024-02-29T00:00:00Z"),
            // DATETIME(6): cut to milliseconds, OCPI's string(25).
            ("2024-02-29 23:59:58.999999", "2024-02-29T23:59:58.999Z"),
        ];
        for (input, want) in cases {
            assert_eq!(
                c(json!(input), Conversion::Datetime).unwrap(),
                json!(want),
                "{input}"
            );
        }
        for bad in [
            "0000-00-00 00:00:00",
            "2023-02-29T00:00:00",
            "2024-02-29T24:00:00",
            "yesterday",
            "2024-02-29T23:59",
            "2024-02-29T23:59:58+2",
        ] {
            assert!(c(json!(bad), Conversion::Datetime).is_err(), "{bad}");
        }
        assert!(c(json!(17), Conversion::Datetime).is_err());
    }

    #[test]
    fn datetimes_are_read_in_the_source_zone_and_values_with_an_offset_keep_theirs() {
        let amsterdam = SourceTimeZone::parse("Europe/Amsterdam").unwrap();
        let local = LocalTime {
            zone: &amsterdam,
            written_by: None,
        };
        let read = |s: &str| convert(&json!(s), Conversion::Datetime, local).unwrap();
        assert_eq!(
            read("2026-01-15T12:00:00.250"),
            json!("2026-01-15T11:00:00.250Z")
        );
        assert_eq!(read("2026-07-15 12:00:00"), json!("2026-07-15T10:00:00Z"));
        // TIMESTAMP values arrive in UTC with Z: no zone applies.
        assert_eq!(read("2026-07-15T12:00:00Z"), json!("2026-07-15T12:00:00Z"));
        // A day boundary moves with the offset.
        assert_eq!(read("2026-01-01T00:30:00"), json!("2025-12-31T23:30:00Z"));
    }

    #[test]
    fn instants_compare_across_forms() {
        let a = instant("2026-11-21T14:23:03Z").unwrap();
        let b = instant("2026-11-21T14:23:03.500").unwrap();
        let c = instant("2026-11-21T16:23:03.4+02:00").unwrap();
        assert!(a < b);
        assert!(c < b && a < c);
        assert!(instant("garbage").is_none());
    }

    #[test]
    fn numbers_from_decimal_text() {
        assert_eq!(
            c(json!("12.3400"), Conversion::Number).unwrap(),
            json!(12.34)
        );
        assert_eq!(c(json!("-7"), Conversion::Number).unwrap(), json!(-7));
        assert_eq!(c(json!(3.5), Conversion::Number).unwrap(), json!(3.5));
        assert!(c(json!("12,5"), Conversion::Number).is_err());
        assert!(c(json!("inf"), Conversion::Number).is_err());
        assert!(c(json!(true), Conversion::Number).is_err());
    }

    #[test]
    fn integers_refuse_fractions() {
        assert_eq!(
            c(json!("11000.00"), Conversion::Integer).unwrap(),
            json!(11000)
        );
        assert_eq!(c(json!("230"), Conversion::Integer).unwrap(), json!(230));
        assert_eq!(c(json!(230.0), Conversion::Integer).unwrap(), json!(230));
        assert_eq!(
            c(json!(18446744073709551615u64), Conversion::Integer).unwrap(),
            json!(18446744073709551615u64)
        );
        assert!(c(json!("11.5"), Conversion::Integer).is_err());
        assert!(c(json!(11.5), Conversion::Integer).is_err());
    }

    #[test]
    fn booleans_from_tinyint_and_text() {
        assert_eq!(c(json!(0), Conversion::Bool).unwrap(), json!(false));
        assert_eq!(c(json!(1), Conversion::Bool).unwrap(), json!(true));
        assert_eq!(c(json!("TRUE"), Conversion::Bool).unwrap(), json!(true));
        assert_eq!(c(json!(false), Conversion::Bool).unwrap(), json!(false));
        assert!(c(json!("yes"), Conversion::Bool).is_err());
        assert!(c(json!(0.5), Conversion::Bool).is_err());
    }

    #[test]
    fn strings_json_and_lists() {
        assert_eq!(
            c(json!("51.047599"), Conversion::String).unwrap(),
            json!("51.047599")
        );
        assert_eq!(c(json!(22), Conversion::String).unwrap(), json!("22"));
        assert!(c(json!([1]), Conversion::String).is_err());
        assert_eq!(
            c(json!(r#"{"twentyfourseven":true}"#), Conversion::Json).unwrap(),
            json!({"twentyfourseven": true})
        );
        assert_eq!(c(json!(["a"]), Conversion::Json).unwrap(), json!(["a"]));
        assert!(c(json!("{nope"), Conversion::Json).is_err());
        assert_eq!(
            c(json!("RESERVABLE,RFID_READER"), Conversion::List).unwrap(),
            json!(["RESERVABLE", "RFID_READER"])
        );
        assert_eq!(c(json!(""), Conversion::List).unwrap(), json!([]));
        assert!(c(json!(5), Conversion::List).is_err());
    }
}
