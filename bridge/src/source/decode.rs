//! The one set of value decoders: a raw cell, read from the binlog or from a SQL result,
//! becomes a faithfully typed JSON value (sign applied, text decoded by its column's character
//! set, binary as base64, ENUM/SET named, temporal values as ISO-8601 with every fractional
//! digit the column has). Both readers only produce [`Cell`]s; everything about the JSON form
//! lives here, so a column gives the same JSON whichever way it was read.

use super::charset::Charset;
use super::mysql_json;
use crate::time_format::{push_fraction, rfc3339_utc_micros};
use base64::Engine;
use serde_json::Value;

/// A value as a reader hands it over, before it is typed for the column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    /// The two's-complement bits of an integer (the decoder applies the column's sign).
    Int(u64),
    Float(f32),
    Double(f64),
    /// DECIMAL digits, exact.
    Decimal(String),
    /// Bytes as stored: text in its column's character set, or binary data.
    Bytes(Vec<u8>),
    /// Text already converted to UTF-8 (SQL reads: the connection's character set).
    Utf8(Vec<u8>),
    /// A JSON document already decoded (MySQL's binary JSON).
    Json(Value),
    /// ENUM: the 1-based index of the value (0 is the empty value of an invalid insert).
    Enum(u32),
    /// SET: one bit per member.
    Set(u64),
    /// BIT(n) as a number.
    Bit(u64),
    /// YEAR (0 for the year 0000).
    Year(u16),
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    Time {
        negative: bool,
        hours: u32,
        minute: u8,
        second: u8,
        micros: u32,
    },
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
    },
    /// TIMESTAMP as seconds since the epoch (UTC) and microseconds.
    Timestamp {
        secs: i64,
        micros: u32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnDecoder {
    Integer {
        bits: u32,
        unsigned: bool,
    },
    Float,
    Decimal,
    /// Character data, decoded by its column's character set.
    Text(Charset),
    /// BINARY, VARBINARY, BLOB: published as base64.
    Binary,
    /// GEOMETRY: the server stores a 4-byte SRID then the WKB; the WKB is published as base64.
    Geometry,
    /// A BLOB-family column neither the binlog nor the catalog types (dropped since this binlog
    /// was written): text when the bytes are UTF-8, base64 otherwise.
    TextOrBinary,
    /// MariaDB's JSON (LONGTEXT with a json_valid check): text parsed into JSON.
    JsonText,
    /// MySQL 8's JSON: binary in the binlog, text over SQL.
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
    #[error("{0}")]
    NotInCharset(#[from] super::charset::NotInCharset),
    #[error("the text is not valid JSON: {0}")]
    BadJsonText(String),
    #[error("MySQL binary JSON could not be decoded: {0}")]
    BadBinaryJson(String),
    #[error("ENUM index {index} is outside the {count} values the binlog metadata lists")]
    EnumOutOfRange { index: u32, count: usize },
    #[error("the reader returned a {found} value for a column declared as {expected}")]
    Mismatch {
        expected: &'static str,
        found: &'static str,
    },
    #[error("the binlog row image cannot be read: {0}")]
    Malformed(String),
}

impl Cell {
    pub fn kind(&self) -> &'static str {
        match self {
            Cell::Null => "NULL",
            Cell::Int(_) => "integer",
            Cell::Float(_) | Cell::Double(_) => "float",
            Cell::Decimal(_) => "decimal",
            Cell::Bytes(_) => "bytes",
            Cell::Utf8(_) => "text",
            Cell::Json(_) => "json",
            Cell::Enum(_) => "enum",
            Cell::Set(_) => "set",
            Cell::Bit(_) => "bit",
            Cell::Year(_) => "year",
            Cell::Date { .. } => "date",
            Cell::Time { .. } => "time",
            Cell::DateTime { .. } => "datetime",
            Cell::Timestamp { .. } => "timestamp",
        }
    }
}

fn base64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Sign-extends the raw bits of a `bits`-wide integer when the column is signed.
fn integer(raw: u64, bits: u32, unsigned: bool) -> Value {
    let bits = bits.clamp(1, 64);
    let raw = if bits == 64 {
        raw
    } else {
        raw & ((1u64 << bits) - 1)
    };
    if unsigned {
        return Value::from(raw);
    }
    let shift = 64 - bits;
    Value::from(((raw << shift) as i64) >> shift)
}

fn date_text(year: u16, month: u8, day: u8) -> String {
    format!("{year:04}-{month:02}-{day:02}")
}

fn float(x: f32) -> Value {
    // Through the shortest decimal text of the f32, so 1.1 stays 1.1 and does not become
    // 1.100000023841858.
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
        .unwrap_or(Value::Null)
}

fn utf8(bytes: Vec<u8>) -> Result<String, DecodeError> {
    Charset::Utf8.decode(bytes).map_err(DecodeError::from)
}

impl ColumnDecoder {
    pub fn is_binary(&self) -> bool {
        matches!(self, ColumnDecoder::Binary | ColumnDecoder::Geometry)
    }

    pub fn describe(&self) -> &'static str {
        match self {
            ColumnDecoder::Integer { .. } => "integer",
            ColumnDecoder::Float => "float",
            ColumnDecoder::Decimal => "decimal",
            ColumnDecoder::Text(_) => "text",
            ColumnDecoder::Binary => "binary",
            ColumnDecoder::Geometry => "geometry",
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

    pub fn decode(&self, cell: Cell) -> Result<Value, DecodeError> {
        let mismatch = |cell: &Cell| DecodeError::Mismatch {
            expected: self.describe(),
            found: cell.kind(),
        };
        Ok(match (self, cell) {
            (_, Cell::Null) => Value::Null,
            (ColumnDecoder::Integer { bits, unsigned }, Cell::Int(raw)) => {
                integer(raw, *bits, *unsigned)
            }
            (ColumnDecoder::Float, Cell::Float(x)) => float(x),
            (ColumnDecoder::Float, Cell::Double(x)) => serde_json::Number::from_f64(x)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            (ColumnDecoder::Decimal, Cell::Decimal(text)) => Value::String(text),
            (ColumnDecoder::Decimal, Cell::Utf8(bytes)) => Value::String(utf8(bytes)?),
            (ColumnDecoder::Text(charset), Cell::Bytes(bytes)) => {
                Value::String(charset.decode(bytes)?)
            }
            (ColumnDecoder::Text(_), Cell::Utf8(bytes)) => Value::String(utf8(bytes)?),
            (ColumnDecoder::Binary, Cell::Bytes(bytes) | Cell::Utf8(bytes)) => base64(&bytes),
            (ColumnDecoder::Geometry, Cell::Bytes(bytes) | Cell::Utf8(bytes)) => {
                let wkb = bytes.get(4..).ok_or_else(|| {
                    DecodeError::Malformed("a GEOMETRY value shorter than its SRID".into())
                })?;
                base64(wkb)
            }
            (ColumnDecoder::TextOrBinary, Cell::Bytes(bytes) | Cell::Utf8(bytes)) => {
                match String::from_utf8(bytes) {
                    Ok(text) => Value::String(text),
                    Err(e) => base64(e.as_bytes()),
                }
            }
            (
                ColumnDecoder::JsonText | ColumnDecoder::MySqlJson,
                Cell::Bytes(bytes) | Cell::Utf8(bytes),
            ) => {
                let text = utf8(bytes)?;
                serde_json::from_str(&text).map_err(|e| DecodeError::BadJsonText(e.to_string()))?
            }
            (ColumnDecoder::MySqlJson, Cell::Json(value)) => value,
            (ColumnDecoder::Enum(values), Cell::Enum(index)) => {
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
            (ColumnDecoder::Set(values), Cell::Set(bits)) => {
                let members: Vec<&str> = values
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i < 64 && bits & (1u64 << i) != 0)
                    .map(|(_, v)| v.as_str())
                    .collect();
                Value::String(members.join(","))
            }
            (ColumnDecoder::Bit, Cell::Bit(number)) => Value::from(number),
            (ColumnDecoder::Year, Cell::Year(year)) => Value::from(year),
            (ColumnDecoder::Date, Cell::Date { year, month, day }) => {
                Value::String(date_text(year, month, day))
            }
            (
                ColumnDecoder::Time { fsp },
                Cell::Time {
                    negative,
                    hours,
                    minute,
                    second,
                    micros,
                },
            ) => {
                let sign = if negative { "-" } else { "" };
                let mut text = format!("{sign}{hours:02}:{minute:02}:{second:02}");
                push_fraction(&mut text, micros, u32::from(*fsp));
                Value::String(text)
            }
            (
                ColumnDecoder::DateTime { fsp },
                Cell::DateTime {
                    year,
                    month,
                    day,
                    hour,
                    minute,
                    second,
                    micros,
                },
            ) => {
                let mut text = format!(
                    "{}T{hour:02}:{minute:02}:{second:02}",
                    date_text(year, month, day)
                );
                push_fraction(&mut text, micros, u32::from(*fsp));
                Value::String(text)
            }
            (ColumnDecoder::Timestamp { fsp }, Cell::Timestamp { secs, micros }) => {
                Value::String(rfc3339_utc_micros(secs, micros, u32::from(*fsp)))
            }
            (_, other) => return Err(mismatch(&other)),
        })
    }
}

/// MySQL 8's binary JSON bytes as a cell (the binlog form of a JSON column).
pub fn binary_json_cell(bytes: &[u8]) -> Result<Cell, DecodeError> {
    mysql_json::decode(bytes)
        .map(Cell::Json)
        .map_err(|e| DecodeError::BadBinaryJson(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn int(bits: u32, unsigned: bool) -> ColumnDecoder {
        ColumnDecoder::Integer { bits, unsigned }
    }

    #[test]
    fn signed_integers_are_sign_extended_and_unsigned_kept() {
        assert_eq!(int(8, false).decode(Cell::Int(0xFF)).unwrap(), json!(-1));
        assert_eq!(int(8, true).decode(Cell::Int(0xFF)).unwrap(), json!(255));
        assert_eq!(
            int(32, false).decode(Cell::Int(4_294_967_291)).unwrap(),
            json!(-5)
        );
        assert_eq!(
            int(24, false).decode(Cell::Int(0x80_0000)).unwrap(),
            json!(-8_388_608)
        );
        assert_eq!(
            int(64, true).decode(Cell::Int(u64::MAX)).unwrap(),
            json!(18_446_744_073_709_551_615u64)
        );
        assert_eq!(
            int(64, false).decode(Cell::Int(1u64 << 63)).unwrap(),
            json!(i64::MIN)
        );
        // A sign-extended negative (as SQL reads give it) is cut to the column's width first.
        assert_eq!(
            int(16, true).decode(Cell::Int((-1i64) as u64)).unwrap(),
            json!(65535)
        );
    }

    #[test]
    fn enum_and_set_become_their_strings() {
        let e = ColumnDecoder::Enum(vec!["a".into(), "b".into()]);
        assert_eq!(e.decode(Cell::Enum(2)).unwrap(), json!("b"));
        assert_eq!(e.decode(Cell::Enum(0)).unwrap(), json!(""));
        assert!(e.decode(Cell::Enum(3)).is_err());
        let s = ColumnDecoder::Set(vec!["x".into(), "y".into(), "z".into()]);
        assert_eq!(s.decode(Cell::Set(0b101)).unwrap(), json!("x,z"));
        assert_eq!(s.decode(Cell::Set(0)).unwrap(), json!(""));
    }

    #[test]
    fn temporal_values_keep_every_digit_the_column_has() {
        let dt = ColumnDecoder::DateTime { fsp: 6 };
        let value = Cell::DateTime {
            year: 2024,
            month: 2,
            day: 29,
            hour: 23,
            minute: 59,
            second: 58,
            micros: 123_456,
        };
        assert_eq!(
            dt.decode(value).unwrap(),
            json!("2024-02-29T23:59:58.123456")
        );
        let t = ColumnDecoder::Time { fsp: 0 };
        let value = Cell::Time {
            negative: false,
            hours: 838,
            minute: 59,
            second: 59,
            micros: 0,
        };
        assert_eq!(t.decode(value).unwrap(), json!("838:59:59"));
        let t6 = ColumnDecoder::Time { fsp: 6 };
        let value = Cell::Time {
            negative: true,
            hours: 0,
            minute: 0,
            second: 1,
            micros: 500_000,
        };
        assert_eq!(t6.decode(value).unwrap(), json!("-00:00:01.500000"));
        let ts = ColumnDecoder::Timestamp { fsp: 6 };
        assert_eq!(
            ts.decode(Cell::Timestamp {
                secs: 1_709_251_198,
                micros: 129_001
            })
            .unwrap(),
            json!("2024-02-29T23:59:58.129001Z")
        );
        let d = ColumnDecoder::Date;
        let value = Cell::Date {
            year: 0,
            month: 0,
            day: 0,
        };
        assert_eq!(d.decode(value).unwrap(), json!("0000-00-00"));
    }

    #[test]
    fn text_binary_and_json_are_told_apart() {
        assert_eq!(
            ColumnDecoder::Binary
                .decode(Cell::Bytes(vec![0xDE, 0xAD, 0xBE, 0xEF]))
                .unwrap(),
            json!("3q2+7w==")
        );
        assert_eq!(
            ColumnDecoder::Text(Charset::Utf8)
                .decode(Cell::Bytes("héllo 🚗".as_bytes().to_vec()))
                .unwrap(),
            json!("héllo 🚗")
        );
        assert!(matches!(
            ColumnDecoder::Text(Charset::Utf8).decode(Cell::Bytes(vec![0xE9])),
            Err(DecodeError::NotInCharset(_))
        ));
        let latin1 = Charset::from_name("latin1").unwrap();
        assert_eq!(
            ColumnDecoder::Text(latin1)
                .decode(Cell::Bytes(vec![0xE9]))
                .unwrap(),
            json!("é")
        );
        // Over SQL the connection already converted the text to UTF-8.
        assert_eq!(
            ColumnDecoder::Text(latin1)
                .decode(Cell::Utf8("é".as_bytes().to_vec()))
                .unwrap(),
            json!("é")
        );
        assert_eq!(
            ColumnDecoder::JsonText
                .decode(Cell::Bytes(br#"{"a":[1,2]}"#.to_vec()))
                .unwrap(),
            json!({"a": [1, 2]})
        );
    }

    #[test]
    fn geometry_is_its_wkb_without_the_srid() {
        // POINT(1 2), SRID 0: 4 bytes of SRID, then the WKB.
        let mut stored = vec![0, 0, 0, 0, 1, 1, 0, 0, 0];
        stored.extend(1f64.to_le_bytes());
        stored.extend(2f64.to_le_bytes());
        let wkb = base64::engine::general_purpose::STANDARD.encode(&stored[4..]);
        assert_eq!(
            ColumnDecoder::Geometry.decode(Cell::Bytes(stored)).unwrap(),
            json!(wkb)
        );
        assert!(ColumnDecoder::Geometry
            .decode(Cell::Bytes(vec![0]))
            .is_err());
    }

    #[test]
    fn bits_and_years_are_numbers() {
        assert_eq!(ColumnDecoder::Bit.decode(Cell::Bit(5)).unwrap(), json!(5));
        assert_eq!(
            ColumnDecoder::Year.decode(Cell::Year(2024)).unwrap(),
            json!(2024)
        );
        assert_eq!(ColumnDecoder::Year.decode(Cell::Year(0)).unwrap(), json!(0));
    }

    #[test]
    fn floats_keep_their_short_decimal_form() {
        assert_eq!(
            ColumnDecoder::Float.decode(Cell::Float(1.1)).unwrap(),
            json!(1.1)
        );
        assert_eq!(
            ColumnDecoder::Float.decode(Cell::Double(-2.5e-10)).unwrap(),
            json!(-2.5e-10)
        );
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_an_error_not_a_guess() {
        assert!(matches!(
            ColumnDecoder::Date.decode(Cell::Int(3)),
            Err(DecodeError::Mismatch { .. })
        ));
    }
}
