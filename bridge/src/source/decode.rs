//! Finishes the job the binlog reader leaves undone: raw cells become faithfully typed JSON
//! values (sign applied, ENUM/SET named, text told from binary, temporal values as ISO-8601).

use super::mysql_json;
use crate::time_format::{push_fraction, rfc3339_utc_millis};
use base64::Engine;
use mysql_cdc::events::row_events::mysql_value::MySqlValue;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnDecoder {
    Integer {
        bits: u32,
        unsigned: bool,
    },
    Float,
    Decimal,
    /// Character data in a UTF-8 compatible charset.
    Text,
    /// BLOB, BINARY, GEOMETRY: published as base64.
    Binary,
    /// A BLOB-family column the catalog does not know: text when the bytes are UTF-8.
    TextOrBinary,
    /// MariaDB's JSON (LONGTEXT with a json_valid check): text parsed into JSON.
    JsonText,
    /// MySQL 8's binary JSON.
    MySqlJson,
    Enum(Vec<String>),
    Set(Vec<String>),
    Bit,
    Year,
    Date,
    Time {
        fsp: u16,
    },
    DateTime {
        fsp: u16,
    },
    Timestamp {
        fsp: u16,
    },
}

/// Why one cell could not be turned into a value. Always fatal for a captured table: skipping
/// it would publish a record with a wrong or missing value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("the bytes are not valid UTF-8 text")]
    NotUtf8,
    #[error("the text is not valid JSON: {0}")]
    BadJsonText(String),
    #[error("MySQL binary JSON could not be decoded: {0}")]
    BadBinaryJson(String),
    #[error("ENUM index {index} is outside the {count} values the binlog metadata lists")]
    EnumOutOfRange { index: u32, count: usize },
    #[error("the binlog reader returned a {found} value for a column declared as {expected}")]
    Mismatch {
        expected: &'static str,
        found: &'static str,
    },
}

fn value_kind(value: &MySqlValue) -> &'static str {
    match value {
        MySqlValue::TinyInt(_)
        | MySqlValue::SmallInt(_)
        | MySqlValue::MediumInt(_)
        | MySqlValue::Int(_)
        | MySqlValue::BigInt(_) => "integer",
        MySqlValue::Float(_) | MySqlValue::Double(_) => "float",
        MySqlValue::Decimal(_) => "decimal",
        MySqlValue::String(_) => "string",
        MySqlValue::Bit(_) => "bit",
        MySqlValue::Enum(_) => "enum",
        MySqlValue::Set(_) => "set",
        MySqlValue::Blob(_) => "blob",
        MySqlValue::Year(_) => "year",
        MySqlValue::Date(_) => "date",
        MySqlValue::Time(_) => "time",
        MySqlValue::DateTime(_) => "datetime",
        MySqlValue::Timestamp(_) => "timestamp",
    }
}

fn base64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Sign-extends a raw unsigned cell of `bits` width when the column is signed.
fn integer(raw: u64, bits: u32, unsigned: bool) -> Value {
    if unsigned || bits == 0 {
        return Value::from(raw);
    }
    let shift = 64 - bits;
    Value::from(((raw << shift) as i64) >> shift)
}

fn date_text(year: u32, month: u32, day: u32) -> String {
    format!("{year:04}-{month:02}-{day:02}")
}

impl ColumnDecoder {
    pub fn is_binary(&self) -> bool {
        matches!(self, ColumnDecoder::Binary)
    }

    pub fn describe(&self) -> &'static str {
        match self {
            ColumnDecoder::Integer { .. } => "integer",
            ColumnDecoder::Float => "float",
            ColumnDecoder::Decimal => "decimal",
            ColumnDecoder::Text => "text",
            ColumnDecoder::Binary => "binary",
            ColumnDecoder::TextOrBinary => "blob",
            ColumnDecoder::JsonText | ColumnDecoder::MySqlJson => "json",
            ColumnDecoder::Enum(_) => "enum",
            ColumnDecoder::Set(_) => "set",
            ColumnDecoder::Bit => "bit",
            ColumnDecoder::Year => "year",
            ColumnDecoder::Date => "date",
            ColumnDecoder::Time { .. } => "time",
            ColumnDecoder::DateTime { .. } => "datetime",
            ColumnDecoder::Timestamp { .. } => "timestamp",
        }
    }

    pub fn decode(&self, value: MySqlValue) -> Result<Value, DecodeError> {
        let mismatch = |value: &MySqlValue| DecodeError::Mismatch {
            expected: self.describe(),
            found: value_kind(value),
        };
        Ok(match (self, value) {
            (ColumnDecoder::Integer { bits, unsigned }, v) => {
                let raw = match v {
                    MySqlValue::TinyInt(x) => u64::from(x),
                    MySqlValue::SmallInt(x) => u64::from(x),
                    MySqlValue::MediumInt(x) => u64::from(x),
                    MySqlValue::Int(x) => u64::from(x),
                    MySqlValue::BigInt(x) => x,
                    other => return Err(mismatch(&other)),
                };
                integer(raw, *bits, *unsigned)
            }
            (ColumnDecoder::Float, MySqlValue::Float(x)) => {
                // Through the shortest decimal text of the f32, so 1.1 stays 1.1 and does not
                // become 1.100000023841858.
                let text = x.to_string();
                text.parse::<f64>()
                    .ok()
                    .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
                    .unwrap_or(Value::Null)
            }
            (ColumnDecoder::Float, MySqlValue::Double(x)) => serde_json::Number::from_f64(x)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            (ColumnDecoder::Decimal, MySqlValue::Decimal(text)) => Value::String(text),
            (ColumnDecoder::Text, MySqlValue::String(text)) => Value::String(text),
            (ColumnDecoder::Text, MySqlValue::Blob(bytes)) => {
                Value::String(String::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8)?)
            }
            (ColumnDecoder::Binary, MySqlValue::Blob(bytes)) => base64(&bytes),
            (ColumnDecoder::Binary, MySqlValue::String(text)) => base64(text.as_bytes()),
            (ColumnDecoder::TextOrBinary, MySqlValue::Blob(bytes)) => {
                match String::from_utf8(bytes) {
                    Ok(text) => Value::String(text),
                    Err(e) => base64(e.as_bytes()),
                }
            }
            (ColumnDecoder::JsonText, MySqlValue::Blob(bytes)) => {
                let text = String::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8)?;
                serde_json::from_str(&text).map_err(|e| DecodeError::BadJsonText(e.to_string()))?
            }
            (ColumnDecoder::MySqlJson, MySqlValue::Blob(bytes)) => {
                mysql_json::decode(&bytes).map_err(|e| DecodeError::BadBinaryJson(e.to_string()))?
            }
            (ColumnDecoder::Enum(values), MySqlValue::Enum(index)) => {
                // Index 0 is the empty string MySQL stores for an invalid value in non-strict mode.
                if index == 0 {
                    Value::String(String::new())
                } else {
                    values
                        .get(index as usize - 1)
                        .cloned()
                        .map(Value::String)
                        .ok_or(DecodeError::EnumOutOfRange {
                            index,
                            count: values.len(),
                        })?
                }
            }
            (ColumnDecoder::Set(values), MySqlValue::Set(bits)) => {
                let members: Vec<&str> = values
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i < 64 && bits & (1u64 << i) != 0)
                    .map(|(_, v)| v.as_str())
                    .collect();
                Value::String(members.join(","))
            }
            (ColumnDecoder::Bit, MySqlValue::Bit(bits)) => {
                // The reader hands the bits most significant first (BIT(n) has n <= 64).
                let number = bits
                    .iter()
                    .fold(0u64, |acc, &bit| (acc << 1) | u64::from(bit));
                Value::from(number)
            }
            (ColumnDecoder::Year, MySqlValue::Year(year)) => {
                // YEAR stores 0 for the year 0000, which the reader turns into 1900 (1900 itself
                // is outside YEAR's 1901..2155 range, so the mapping back is unambiguous).
                Value::from(if year == 1900 { 0 } else { year })
            }
            (ColumnDecoder::Date, MySqlValue::Date(d)) => Value::String(date_text(
                u32::from(d.year),
                u32::from(d.month),
                u32::from(d.day),
            )),
            (ColumnDecoder::Time { fsp }, MySqlValue::Time(time)) => {
                let mut text = format!("{:02}:{:02}:{:02}", time.hour, time.minute, time.second);
                push_fraction(&mut text, time.millis, u32::from(*fsp));
                Value::String(text)
            }
            (ColumnDecoder::DateTime { fsp }, MySqlValue::DateTime(dt)) => {
                let mut text = format!(
                    "{}T{:02}:{:02}:{:02}",
                    date_text(u32::from(dt.year), u32::from(dt.month), u32::from(dt.day)),
                    dt.hour,
                    dt.minute,
                    dt.second
                );
                push_fraction(&mut text, dt.millis, u32::from(*fsp));
                Value::String(text)
            }
            (ColumnDecoder::Timestamp { fsp }, MySqlValue::Timestamp(millis)) => {
                Value::String(rfc3339_utc_millis(millis as i64, u32::from(*fsp)))
            }
            (_, other) => return Err(mismatch(&other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_cdc::events::row_events::mysql_value::{Date, DateTime, Time};
    use serde_json::json;

    fn int(bits: u32, unsigned: bool) -> ColumnDecoder {
        ColumnDecoder::Integer { bits, unsigned }
    }

    #[test]
    fn signed_integers_are_sign_extended_and_unsigned_kept() {
        assert_eq!(
            int(8, false).decode(MySqlValue::TinyInt(0xFF)).unwrap(),
            json!(-1)
        );
        assert_eq!(
            int(8, true).decode(MySqlValue::TinyInt(0xFF)).unwrap(),
            json!(255)
        );
        assert_eq!(
            int(32, false)
                .decode(MySqlValue::Int(4_294_967_291))
                .unwrap(),
            json!(-5)
        );
        assert_eq!(
            int(24, false)
                .decode(MySqlValue::MediumInt(0x80_0000))
                .unwrap(),
            json!(-8_388_608)
        );
        assert_eq!(
            int(64, true).decode(MySqlValue::BigInt(u64::MAX)).unwrap(),
            json!(18_446_744_073_709_551_615u64)
        );
        assert_eq!(
            int(64, false)
                .decode(MySqlValue::BigInt(1u64 << 63))
                .unwrap(),
            json!(i64::MIN)
        );
    }

    #[test]
    fn enum_and_set_become_their_strings() {
        let e = ColumnDecoder::Enum(vec!["a".into(), "b".into()]);
        assert_eq!(e.decode(MySqlValue::Enum(2)).unwrap(), json!("b"));
        assert_eq!(e.decode(MySqlValue::Enum(0)).unwrap(), json!(""));
        assert!(e.decode(MySqlValue::Enum(3)).is_err());
        let s = ColumnDecoder::Set(vec!["x".into(), "y".into(), "z".into()]);
        assert_eq!(s.decode(MySqlValue::Set(0b101)).unwrap(), json!("x,z"));
        assert_eq!(s.decode(MySqlValue::Set(0)).unwrap(), json!(""));
    }

    #[test]
    fn temporal_values_keep_only_the_fraction_the_column_has() {
        let dt = ColumnDecoder::DateTime { fsp: 6 };
        let value = MySqlValue::DateTime(DateTime {
            year: 2024,
            month: 2,
            day: 29,
            hour: 23,
            minute: 59,
            second: 58,
            millis: 123,
        });
        assert_eq!(dt.decode(value).unwrap(), json!("2024-02-29T23:59:58.123"));
        let t = ColumnDecoder::Time { fsp: 0 };
        let value = MySqlValue::Time(Time {
            hour: 838,
            minute: 59,
            second: 59,
            millis: 0,
        });
        assert_eq!(t.decode(value).unwrap(), json!("838:59:59"));
        let ts = ColumnDecoder::Timestamp { fsp: 2 };
        assert_eq!(
            ts.decode(MySqlValue::Timestamp(1_709_251_198_129)).unwrap(),
            json!("2024-02-29T23:59:58.12Z")
        );
        let d = ColumnDecoder::Date;
        let value = MySqlValue::Date(Date {
            year: 0,
            month: 0,
            day: 0,
        });
        assert_eq!(d.decode(value).unwrap(), json!("0000-00-00"));
    }

    #[test]
    fn text_binary_and_json_are_told_apart() {
        assert_eq!(
            ColumnDecoder::Binary
                .decode(MySqlValue::Blob(vec![0xDE, 0xAD, 0xBE, 0xEF]))
                .unwrap(),
            json!("3q2+7w==")
        );
        assert_eq!(
            ColumnDecoder::Text
                .decode(MySqlValue::Blob("héllo 🚗".as_bytes().to_vec()))
                .unwrap(),
            json!("héllo 🚗")
        );
        assert_eq!(
            ColumnDecoder::Text.decode(MySqlValue::Blob(vec![0xE9])),
            Err(DecodeError::NotUtf8)
        );
        assert_eq!(
            ColumnDecoder::JsonText
                .decode(MySqlValue::Blob(br#"{"a":[1,2]}"#.to_vec()))
                .unwrap(),
            json!({"a": [1, 2]})
        );
    }

    #[test]
    fn bits_and_years_are_numbers() {
        // BIT(4) b'0101' = 5, most significant bit first
        assert_eq!(
            ColumnDecoder::Bit
                .decode(MySqlValue::Bit(vec![false, true, false, true]))
                .unwrap(),
            json!(5)
        );
        assert_eq!(
            ColumnDecoder::Year.decode(MySqlValue::Year(2024)).unwrap(),
            json!(2024)
        );
        assert_eq!(
            ColumnDecoder::Year.decode(MySqlValue::Year(1900)).unwrap(),
            json!(0)
        );
    }

    #[test]
    fn floats_keep_their_short_decimal_form() {
        assert_eq!(
            ColumnDecoder::Float.decode(MySqlValue::Float(1.1)).unwrap(),
            json!(1.1)
        );
        assert_eq!(
            ColumnDecoder::Float
                .decode(MySqlValue::Double(-2.5e-10))
                .unwrap(),
            json!(-2.5e-10)
        );
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_an_error_not_a_guess() {
        assert!(matches!(
            ColumnDecoder::Date.decode(MySqlValue::Int(3)),
            Err(DecodeError::Mismatch { .. })
        ));
    }
}
