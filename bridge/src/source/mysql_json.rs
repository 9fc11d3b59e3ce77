//! Decoder for MySQL 8's binary JSON format.
//!
//! Row-based binlog events do not carry JSON columns as text: they carry the
//! server's internal binary encoding (described in MySQL's
//! `sql-common/json_binary.h`), which is laid out for in-place lookups rather
//! than for streaming. Consumers of our change messages should never need to
//! know about it, so the bridge turns it back into ordinary JSON here.
//!
//! The format, as far as this decoder relies on it (integers little-endian):
//!
//! ```text
//! doc          ::= type value
//! object       ::= count size key-entry* value-entry* key* value*
//! array        ::= count size value-entry* value*
//! count, size  ::= u16 (small) | u32 (large)
//! key-entry    ::= key-offset (u16 | u32) key-length (u16)
//! value-entry  ::= type (offset-or-inlined-value: u16 | u32)
//! string       ::= var-length utf8mb4-bytes
//! opaque       ::= field-type (u8) var-length bytes
//! var-length   ::= 7 bits per byte, least significant group first,
//!                  high bit set on every byte except the last
//! ```
//!
//! Offsets are relative to the first byte of the enclosing container's
//! `count` field, and `size` covers the whole container including its header.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use mysql_common::binlog::jsonb;
use mysql_common::io::ParseBuf;
use serde_json::{Map, Number, Value};
use std::fmt::Write as _;

/// MySQL itself refuses documents nested deeper than this, so anything deeper
/// is corruption or hostile input, and bounding it bounds our recursion.
const MAX_DEPTH: usize = 100;

#[cfg(test)]
const TYPE_SMALL_OBJECT: u8 = 0x00;
#[cfg(test)]
const TYPE_LARGE_OBJECT: u8 = 0x01;
#[cfg(test)]
const TYPE_SMALL_ARRAY: u8 = 0x02;
#[cfg(test)]
const TYPE_LARGE_ARRAY: u8 = 0x03;
#[cfg(test)]
const TYPE_LITERAL: u8 = 0x04;
#[cfg(test)]
const TYPE_INT16: u8 = 0x05;
#[cfg(test)]
const TYPE_UINT16: u8 = 0x06;
#[cfg(test)]
const TYPE_INT32: u8 = 0x07;
#[cfg(test)]
const TYPE_UINT32: u8 = 0x08;
#[cfg(test)]
const TYPE_INT64: u8 = 0x09;
#[cfg(test)]
const TYPE_UINT64: u8 = 0x0a;
#[cfg(test)]
const TYPE_DOUBLE: u8 = 0x0b;
#[cfg(test)]
const TYPE_STRING: u8 = 0x0c;
#[cfg(test)]
const TYPE_OPAQUE: u8 = 0x0f;

#[cfg(test)]
const LITERAL_NULL: u8 = 0x00;
#[cfg(test)]
const LITERAL_TRUE: u8 = 0x01;
#[cfg(test)]
const LITERAL_FALSE: u8 = 0x02;

// MySQL `enum_field_types` values that opaque values can carry and that we
// render specially.
const FIELD_TIMESTAMP: u8 = 7;
const FIELD_DATE: u8 = 10;
const FIELD_TIME: u8 = 11;
const FIELD_DATETIME: u8 = 12;
const FIELD_NEWDECIMAL: u8 = 246;

/// Packed decimals store nine decimal digits per four-byte word; a partial
/// group of `n` digits takes `DIG2BYTES[n]` bytes.
const DIGITS_PER_WORD: usize = 9;
const DIG2BYTES: [usize; DIGITS_PER_WORD + 1] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// Why a JSON column value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonDecodeError {
    #[error("malformed binary JSON: {0}")]
    Malformed(String),
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str },
    #[error("a double is NaN or infinite, which JSON cannot represent")]
    NonFiniteDouble,
    #[error("document nests deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error(
        "document expands to more values than its {len} bytes can hold; value offsets overlap"
    )]
    TooManyValues { len: usize },
    #[error("invalid DECIMAL opaque value at offset {offset}: {reason}")]
    InvalidDecimal { offset: usize, reason: String },
    #[error("invalid {kind} opaque value at offset {offset}: {reason}")]
    InvalidTemporal {
        kind: &'static str,
        offset: usize,
        reason: String,
    },
}

type Result<T> = std::result::Result<T, JsonDecodeError>;

/// Decodes one MySQL 8 binary JSON document (the bytes of a JSON column in a rows event).
/// mysql_common reads the format (a lazy view over the bytes, each offset checked); this walks
/// it into ordinary JSON.
///
/// Scalars MySQL can hold but JSON cannot express become strings, so that no
/// precision or meaning is silently lost on the way to consumers:
///
/// * DECIMAL becomes its exact digits, e.g. `"-123.4500"` (a float would round).
/// * DATE, TIME, DATETIME and TIMESTAMP become ISO-8601 strings such as
///   `"2024-02-29"`, `"13:45:07.123456"` and `"2024-02-29T13:45:07"`;
///   microseconds appear only when non-zero. TIMESTAMP carries no zone
///   because MySQL stores none in the document.
/// * Any other opaque MySQL type (BLOB, BIT, GEOMETRY, YEAR, ...) becomes
///   `"base64:<standard base64 of the raw bytes>"`, because we cannot know
///   how a consumer wants them rendered but must not drop them.
///
/// An empty slice decodes to JSON null: MySQL logs a zero-length value for a
/// JSON column in some cases.
///
/// Malformed input yields an error: nesting is limited to 100 levels, and the number of
/// produced values is bounded by the document length so overlapping offsets cannot make the
/// output explode.
pub fn decode(bytes: &[u8]) -> std::result::Result<Value, JsonDecodeError> {
    let mut buf = ParseBuf(bytes);
    let value: jsonb::Value<'_> = buf
        .parse(())
        .map_err(|e| JsonDecodeError::Malformed(e.to_string()))?;
    let mut budget = bytes.len().max(1);
    walk(value, 0, &mut budget, bytes.len())
}

fn malformed(e: std::io::Error) -> JsonDecodeError {
    JsonDecodeError::Malformed(e.to_string())
}

fn text(bytes: &[u8], what: &'static str) -> Result<String> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| JsonDecodeError::InvalidUtf8 { what })
}

fn walk(value: jsonb::Value<'_>, depth: usize, budget: &mut usize, len: usize) -> Result<Value> {
    // Every value in a well-formed document owns at least one byte (a type byte or a value
    // entry), so a document can never legitimately produce more values than it has bytes.
    *budget = budget
        .checked_sub(1)
        .ok_or(JsonDecodeError::TooManyValues { len })?;
    let container_depth = depth + 1;
    let deep = || JsonDecodeError::TooDeep { limit: MAX_DEPTH };
    use jsonb::Value as J;
    Ok(match value {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(b),
        J::I16(x) => x.into(),
        J::U16(x) => x.into(),
        J::I32(x) => x.into(),
        J::U32(x) => x.into(),
        J::I64(x) => x.into(),
        J::U64(x) => x.into(),
        J::F64(x) => Number::from_f64(x)
            .map(Value::Number)
            .ok_or(JsonDecodeError::NonFiniteDouble)?,
        J::String(s) => Value::String(text(s.str_raw(), "string")?),
        J::SmallArray(array) => {
            if container_depth > MAX_DEPTH {
                return Err(deep());
            }
            let mut items = Vec::with_capacity(array.element_count() as usize);
            for item in array.iter() {
                items.push(walk(
                    item.map_err(malformed)?,
                    container_depth,
                    budget,
                    len,
                )?);
            }
            Value::Array(items)
        }
        J::LargeArray(array) => {
            if container_depth > MAX_DEPTH {
                return Err(deep());
            }
            let mut items = Vec::with_capacity(array.element_count() as usize);
            for item in array.iter() {
                items.push(walk(
                    item.map_err(malformed)?,
                    container_depth,
                    budget,
                    len,
                )?);
            }
            Value::Array(items)
        }
        J::SmallObject(object) => {
            if container_depth > MAX_DEPTH {
                return Err(deep());
            }
            let mut map = Map::with_capacity(object.element_count() as usize);
            for entry in object.iter() {
                let (key, value) = entry.map_err(malformed)?;
                let key = text(key.value_raw(), "object key")?;
                map.insert(key, walk(value, container_depth, budget, len)?);
            }
            Value::Object(map)
        }
        J::LargeObject(object) => {
            if container_depth > MAX_DEPTH {
                return Err(deep());
            }
            let mut map = Map::with_capacity(object.element_count() as usize);
            for entry in object.iter() {
                let (key, value) = entry.map_err(malformed)?;
                let key = text(key.value_raw(), "object key")?;
                map.insert(key, walk(value, container_depth, budget, len)?);
            }
            Value::Object(map)
        }
        J::Opaque(value) => opaque(value.value_type() as u8, value.data_raw(), 0)?,
    })
}

fn opaque(field_type: u8, data: &[u8], offset: usize) -> Result<Value> {
    let temporal_error = |kind: &'static str| {
        move |reason: String| JsonDecodeError::InvalidTemporal {
            kind,
            offset,
            reason,
        }
    };
    let text = match field_type {
        FIELD_NEWDECIMAL => decode_decimal(data)
            .map_err(|reason| JsonDecodeError::InvalidDecimal { offset, reason })?,
        FIELD_DATE => decode_temporal(Temporal::Date, data).map_err(temporal_error("DATE"))?,
        FIELD_TIME => decode_temporal(Temporal::Time, data).map_err(temporal_error("TIME"))?,
        FIELD_DATETIME => {
            decode_temporal(Temporal::DateTime, data).map_err(temporal_error("DATETIME"))?
        }
        FIELD_TIMESTAMP => {
            decode_temporal(Temporal::DateTime, data).map_err(temporal_error("TIMESTAMP"))?
        }
        _ => format!("base64:{}", STANDARD.encode(data)),
    };
    Ok(Value::String(text))
}

/// Renders MySQL's packed binary DECIMAL, prefixed by the precision and scale
/// bytes the JSON format adds because the packed form does not record them.
///
/// The packed form splits the integer part (right-aligned) and the fraction
/// (left-aligned) into groups of nine digits, each a big-endian word, with a
/// shorter leading/trailing group for leftover digits. The top bit of the
/// first byte is inverted, and negative numbers have every byte inverted, so
/// that the bytes compare like the numbers.
fn decode_decimal(data: &[u8]) -> std::result::Result<String, String> {
    let [precision, scale, packed @ ..] = data else {
        return Err(format!(
            "expected precision and scale bytes, found {} bytes",
            data.len()
        ));
    };
    let (precision, scale) = (usize::from(*precision), usize::from(*scale));
    if scale > precision {
        return Err(format!("scale {scale} exceeds precision {precision}"));
    }
    let int_digits = precision - scale;

    // Digit width of every group, in storage order.
    let mut groups = Vec::new();
    if int_digits % DIGITS_PER_WORD > 0 {
        groups.push(int_digits % DIGITS_PER_WORD);
    }
    groups.extend(std::iter::repeat_n(
        DIGITS_PER_WORD,
        int_digits / DIGITS_PER_WORD,
    ));
    let int_groups = groups.len();
    groups.extend(std::iter::repeat_n(
        DIGITS_PER_WORD,
        scale / DIGITS_PER_WORD,
    ));
    if scale % DIGITS_PER_WORD > 0 {
        groups.push(scale % DIGITS_PER_WORD);
    }

    let expected: usize = groups.iter().map(|&digits| DIG2BYTES[digits]).sum();
    if packed.len() != expected {
        return Err(format!(
            "DECIMAL({precision},{scale}) packs into {expected} bytes, found {}",
            packed.len()
        ));
    }

    let negative = packed.first().is_some_and(|b| b & 0x80 == 0);
    let mask = if negative { 0xff } else { 0x00 };
    let mut bytes: Vec<u8> = packed.iter().map(|b| b ^ mask).collect();
    if let Some(first) = bytes.first_mut() {
        *first ^= 0x80;
    }

    let mut int_part = String::with_capacity(int_digits);
    let mut frac_part = String::with_capacity(scale);
    let mut rest = bytes.as_slice();
    for (index, &digits) in groups.iter().enumerate() {
        let (word, tail) = rest
            .split_at_checked(DIG2BYTES[digits])
            .ok_or_else(|| format!("group {index} runs past the packed bytes"))?;
        rest = tail;
        let value = word.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        if value >= 10u32.pow(u32::try_from(digits).unwrap_or(u32::MAX)) {
            return Err(format!(
                "group {index} holds {value}, more than {digits} digits"
            ));
        }
        let target = if index < int_groups {
            &mut int_part
        } else {
            &mut frac_part
        };
        // Writing to a String cannot fail.
        let _ = write!(target, "{value:0digits$}");
    }

    let int_part = int_part.trim_start_matches('0');
    let int_part = if int_part.is_empty() { "0" } else { int_part };
    let is_zero = int_part == "0" && frac_part.bytes().all(|b| b == b'0');
    let sign = if negative && !is_zero { "-" } else { "" };
    if frac_part.is_empty() {
        Ok(format!("{sign}{int_part}"))
    } else {
        Ok(format!("{sign}{int_part}.{frac_part}"))
    }
}

#[derive(Clone, Copy)]
enum Temporal {
    Date,
    Time,
    DateTime,
}

/// Renders MySQL's in-memory "packed longlong" temporal form, which the JSON
/// format stores as 8 little-endian bytes:
///
/// * datetime: `((((year * 13 + month) << 5 | day) << 17 | hour << 12 | minute << 6 | second) << 24) + microseconds`
///   (a DATE is the same with a zero time of day);
/// * time: `((hours << 12 | minute << 6 | second) << 24) + microseconds`,
///   negated as a whole for negative durations.
fn decode_temporal(kind: Temporal, data: &[u8]) -> std::result::Result<String, String> {
    let packed: [u8; 8] = data
        .try_into()
        .map_err(|_| format!("expected 8 bytes, found {}", data.len()))?;
    let packed = i64::from_le_bytes(packed);
    let magnitude = packed.unsigned_abs();
    let micros = magnitude % (1 << 24);
    let whole = magnitude >> 24;
    if micros > 999_999 {
        return Err(format!("microseconds {micros} out of range"));
    }
    let fraction = if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    };

    if matches!(kind, Temporal::Time) {
        let sign = if packed < 0 { "-" } else { "" };
        let hour = (whole >> 12) % (1 << 10);
        let minute = (whole >> 6) % (1 << 6);
        let second = whole % (1 << 6);
        return Ok(format!("{sign}{hour:02}:{minute:02}:{second:02}{fraction}"));
    }

    if packed < 0 {
        return Err("negative packed value".to_owned());
    }
    let ymd = whole >> 17;
    let hms = whole % (1 << 17);
    let day = ymd % (1 << 5);
    let year_month = ymd >> 5;
    let month = year_month % 13;
    let year = year_month / 13;
    let date = format!("{year:04}-{month:02}-{day:02}");
    if matches!(kind, Temporal::Date) {
        return Ok(date);
    }
    let hour = hms >> 12;
    let minute = (hms >> 6) % (1 << 6);
    let second = hms % (1 << 6);
    Ok(format!(
        "{date}T{hour:02}:{minute:02}:{second:02}{fraction}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // ---- document builders, written from the format description ----

    /// A JSON value to encode, with an explicit choice of small/large format
    /// for every container so tests can exercise both.
    #[derive(Clone)]
    enum J {
        Null,
        True,
        False,
        I16(i16),
        U16(u16),
        I32(i32),
        U32(u32),
        I64(i64),
        U64(u64),
        F64(f64),
        Str(String),
        Opaque(u8, Vec<u8>),
        Array(bool, Vec<J>),
        Object(bool, Vec<(String, J)>),
    }

    fn s(text: &str) -> J {
        J::Str(text.to_owned())
    }

    fn arr(items: Vec<J>) -> J {
        J::Array(false, items)
    }

    fn large_arr(items: Vec<J>) -> J {
        J::Array(true, items)
    }

    fn obj(members: Vec<(&str, J)>) -> J {
        J::Object(
            false,
            members
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    }

    fn large_obj(members: Vec<(&str, J)>) -> J {
        J::Object(
            true,
            members
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    }

    fn le(value: usize, width: usize) -> Vec<u8> {
        value.to_le_bytes()[..width].to_vec()
    }

    fn var_len(mut len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let low = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out.push(low);
                return out;
            }
            out.push(low | 0x80);
        }
    }

    /// Returns the type byte and the value bytes.
    fn encode(value: &J) -> (u8, Vec<u8>) {
        match value {
            J::Null => (TYPE_LITERAL, vec![LITERAL_NULL]),
            J::True => (TYPE_LITERAL, vec![LITERAL_TRUE]),
            J::False => (TYPE_LITERAL, vec![LITERAL_FALSE]),
            J::I16(v) => (TYPE_INT16, v.to_le_bytes().to_vec()),
            J::U16(v) => (TYPE_UINT16, v.to_le_bytes().to_vec()),
            J::I32(v) => (TYPE_INT32, v.to_le_bytes().to_vec()),
            J::U32(v) => (TYPE_UINT32, v.to_le_bytes().to_vec()),
            J::I64(v) => (TYPE_INT64, v.to_le_bytes().to_vec()),
            J::U64(v) => (TYPE_UINT64, v.to_le_bytes().to_vec()),
            J::F64(v) => (TYPE_DOUBLE, v.to_le_bytes().to_vec()),
            J::Str(text) => {
                let mut out = var_len(text.len());
                out.extend_from_slice(text.as_bytes());
                (TYPE_STRING, out)
            }
            J::Opaque(field_type, data) => {
                let mut out = vec![*field_type];
                out.extend(var_len(data.len()));
                out.extend_from_slice(data);
                (TYPE_OPAQUE, out)
            }
            J::Array(large, items) => {
                let ty = if *large {
                    TYPE_LARGE_ARRAY
                } else {
                    TYPE_SMALL_ARRAY
                };
                (ty, encode_container(*large, None, items))
            }
            J::Object(large, members) => {
                let ty = if *large {
                    TYPE_LARGE_OBJECT
                } else {
                    TYPE_SMALL_OBJECT
                };
                let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
                let values: Vec<J> = members.iter().map(|(_, v)| v.clone()).collect();
                (ty, encode_container(*large, Some(&keys), &values))
            }
        }
    }

    fn encode_container(large: bool, keys: Option<&[&str]>, values: &[J]) -> Vec<u8> {
        let width = if large { 4 } else { 2 };
        let n = values.len();
        let key_entries_len = keys.map_or(0, |_| n * (width + 2));
        let header = 2 * width + key_entries_len + n * (1 + width);
        let mut key_entries = Vec::new();
        let mut value_entries = Vec::new();
        let mut tail = Vec::new();
        for key in keys.unwrap_or(&[]) {
            key_entries.extend(le(header + tail.len(), width));
            key_entries.extend(le(key.len(), 2));
            tail.extend_from_slice(key.as_bytes());
        }
        for value in values {
            let (ty, bytes) = encode(value);
            let inlined = matches!(ty, TYPE_LITERAL | TYPE_INT16 | TYPE_UINT16)
                || (large && matches!(ty, TYPE_INT32 | TYPE_UINT32));
            value_entries.push(ty);
            if inlined {
                let mut field = bytes;
                field.resize(width, 0);
                value_entries.extend(field);
            } else {
                value_entries.extend(le(header + tail.len(), width));
                tail.extend(bytes);
            }
        }
        let mut out = le(n, width);
        out.extend(le(header + tail.len(), width));
        out.extend(key_entries);
        out.extend(value_entries);
        out.extend(tail);
        out
    }

    fn doc(value: &J) -> Vec<u8> {
        let (ty, bytes) = encode(value);
        let mut out = vec![ty];
        out.extend(bytes);
        out
    }

    /// Packs `text` (e.g. "-123.45") as a JSON DECIMAL opaque payload:
    /// precision, scale, then MySQL's packed binary decimal.
    fn decimal_payload(text: &str, precision: u8, scale: u8) -> Vec<u8> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int_text, frac_text) = digits.split_once('.').unwrap_or((digits, ""));
        let int_len = usize::from(precision - scale);
        let scale = usize::from(scale);
        let int_text = format!("{int_text:0>int_len$}");
        let frac_text = format!("{frac_text:0<scale$}");
        assert_eq!(
            int_text.len(),
            int_len,
            "integer part too long for precision"
        );
        assert_eq!(frac_text.len(), scale, "fraction too long for scale");

        let mut groups: Vec<&str> = Vec::new();
        let lead = int_len % 9;
        groups.push(&int_text[..lead]);
        groups.extend(
            int_text.as_bytes()[lead..]
                .chunks(9)
                .map(|c| std::str::from_utf8(c).unwrap()),
        );
        groups.extend(
            frac_text
                .as_bytes()
                .chunks(9)
                .map(|c| std::str::from_utf8(c).unwrap()),
        );

        let mut packed = Vec::new();
        for group in groups.into_iter().filter(|g| !g.is_empty()) {
            let value: u32 = group.parse().unwrap();
            let bytes = DIG2BYTES[group.len()];
            packed.extend_from_slice(&value.to_be_bytes()[4 - bytes..]);
        }
        packed[0] ^= 0x80;
        if negative {
            for b in &mut packed {
                *b ^= 0xff;
            }
        }
        let mut out = vec![precision, scale as u8];
        out.extend(packed);
        out
    }

    fn decimal(text: &str, precision: u8, scale: u8) -> J {
        J::Opaque(FIELD_NEWDECIMAL, decimal_payload(text, precision, scale))
    }

    fn packed_datetime(y: i64, mo: i64, d: i64, h: i64, mi: i64, sec: i64, us: i64) -> Vec<u8> {
        let ymd = ((y * 13 + mo) << 5) | d;
        let hms = (h << 12) | (mi << 6) | sec;
        ((((ymd << 17) | hms) << 24) + us).to_le_bytes().to_vec()
    }

    fn packed_time(negative: bool, h: i64, mi: i64, sec: i64, us: i64) -> Vec<u8> {
        let packed = ((((h << 12) | (mi << 6) | sec) << 24) + us) * if negative { -1 } else { 1 };
        packed.to_le_bytes().to_vec()
    }

    fn ok(bytes: &[u8]) -> Value {
        decode(bytes).unwrap_or_else(|e| panic!("decode failed: {e}"))
    }

    fn err(bytes: &[u8]) -> JsonDecodeError {
        match decode(bytes) {
            Ok(v) => panic!("expected an error, decoded {v}"),
            Err(e) => e,
        }
    }

    // ---- scalars ----

    #[test]
    fn empty_input_decodes_to_null() {
        assert_eq!(ok(&[]), Value::Null);
    }

    #[test]
    fn literals_decode_to_null_true_false() {
        assert_eq!(ok(&[0x04, 0x00]), Value::Null);
        assert_eq!(ok(&[0x04, 0x01]), json!(true));
        assert_eq!(ok(&[0x04, 0x02]), json!(false));
        assert_eq!(ok(&doc(&J::True)), json!(true));
    }

    #[test]
    fn unknown_literal_is_rejected() {
        let e = err(&[0x04, 0x03]);
        assert!(matches!(e, JsonDecodeError::Malformed(_)));
    }

    #[test]
    fn sixteen_bit_integers_keep_sign_and_range() {
        assert_eq!(ok(&[0x05, 0x00, 0x80]), json!(-32768));
        assert_eq!(ok(&doc(&J::I16(32767))), json!(32767));
        assert_eq!(ok(&[0x06, 0xff, 0xff]), json!(65535));
    }

    #[test]
    fn thirty_two_bit_integers_keep_sign_and_range() {
        assert_eq!(ok(&doc(&J::I32(i32::MIN))), json!(i32::MIN));
        assert_eq!(ok(&doc(&J::U32(u32::MAX))), json!(u32::MAX));
    }

    #[test]
    fn sixty_four_bit_integers_keep_full_range() {
        assert_eq!(ok(&doc(&J::I64(i64::MIN))), json!(i64::MIN));
        assert_eq!(ok(&doc(&J::I64(-1))), json!(-1));
        assert_eq!(ok(&doc(&J::U64(u64::MAX))), json!(u64::MAX));
    }

    #[test]
    fn double_is_little_endian_ieee754() {
        let mut bytes = vec![0x0b];
        bytes.extend(3.25f64.to_le_bytes());
        assert_eq!(ok(&bytes), json!(3.25));
        assert_eq!(ok(&doc(&J::F64(-1.5e300))), json!(-1.5e300));
    }

    #[test]
    fn non_finite_double_is_rejected() {
        let e = err(&doc(&J::F64(f64::NAN)));
        assert_eq!(e, JsonDecodeError::NonFiniteDouble);
    }

    #[test]
    fn short_string_has_one_byte_length() {
        assert_eq!(ok(&[0x0c, 0x02, b'h', b'i']), json!("hi"));
        assert_eq!(ok(&doc(&s(""))), json!(""));
    }

    #[test]
    fn unicode_string_keeps_multibyte_characters() {
        let text = "héllo ✓ 😀 日本";
        assert_eq!(ok(&doc(&s(text))), json!(text));
    }

    #[test]
    fn long_string_length_prefix_uses_seven_bits_per_byte() {
        let text = "x".repeat(200);
        let bytes = doc(&s(&text));
        // 200 = 0b1_1001000 -> low group 0x48 with the continuation bit, then 0x01.
        assert_eq!(&bytes[..3], &[0x0c, 0xc8, 0x01]);
        assert_eq!(ok(&bytes), json!(text));

        let text = "é".repeat(10_000); // 20,000 bytes: a three-byte prefix
        let bytes = doc(&s(&text));
        assert_eq!(&bytes[1..4], &[0xa0, 0x9c, 0x01]);
        assert_eq!(ok(&bytes), json!(text));
    }

    #[test]
    fn length_prefix_longer_than_32_bits_is_rejected() {
        let e = err(&[0x0c, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(matches!(e, JsonDecodeError::Malformed(_)));
        let e = err(&[0x0c, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        assert!(matches!(e, JsonDecodeError::Malformed(_)));
    }

    #[test]
    fn invalid_utf8_string_is_rejected() {
        let e = err(&[0x0c, 0x02, 0xc3, 0x28]);
        assert_eq!(e, JsonDecodeError::InvalidUtf8 { what: "string" });
    }

    // ---- containers ----

    #[test]
    fn small_object_matches_hand_assembled_layout() {
        // {"a": 1}: count 1, size 12, key entry (offset 11, length 1),
        // value entry (int16 inlined: 1), then the key bytes.
        let bytes = [
            0x00, // small object
            0x01, 0x00, // count
            0x0c, 0x00, // size
            0x0b, 0x00, 0x01, 0x00, // key entry
            0x05, 0x01, 0x00, // value entry: int16 1, inlined
            b'a',
        ];
        assert_eq!(ok(&bytes), json!({"a": 1}));
        assert_eq!(doc(&obj(vec![("a", J::I16(1))])), bytes);
    }

    #[test]
    fn large_object_offsets_are_four_bytes() {
        // {"k": "v"} in the large format: every count/size/offset is 4 bytes.
        let bytes = [
            0x01, // large object
            0x01, 0x00, 0x00, 0x00, // count
            0x16, 0x00, 0x00, 0x00, // size 22
            0x13, 0x00, 0x00, 0x00, 0x01, 0x00, // key entry: offset 19, length 1
            0x0c, 0x14, 0x00, 0x00, 0x00, // value entry: string at offset 20
            b'k', // key
            0x01, b'v', // string value
        ];
        assert_eq!(ok(&bytes), json!({"k": "v"}));
        assert_eq!(doc(&large_obj(vec![("k", s("v"))])), bytes);
    }

    #[test]
    fn large_array_inlines_int32_and_uint32() {
        let bytes = [
            0x03, // large array
            0x02, 0x00, 0x00, 0x00, // count
            0x12, 0x00, 0x00, 0x00, // size 18: header only, both values inlined
            0x07, 0xfb, 0xff, 0xff, 0xff, // int32 -5 inlined
            0x08, 0xff, 0xff, 0xff, 0xff, // uint32 4294967295 inlined
        ];
        assert_eq!(ok(&bytes), json!([-5, 4_294_967_295u64]));
        assert_eq!(doc(&large_arr(vec![J::I32(-5), J::U32(u32::MAX)])), bytes);
    }

    #[test]
    fn small_array_stores_int32_out_of_line() {
        let bytes = [
            0x02, // small array
            0x01, 0x00, // count
            0x0b, 0x00, // size 11
            0x07, 0x07, 0x00, // int32 at offset 7
            0x00, 0x00, 0x01, 0x00, // 65536
        ];
        assert_eq!(ok(&bytes), json!([65536]));
        assert_eq!(doc(&arr(vec![J::I32(65536)])), bytes);
    }

    #[test]
    fn small_containers_inline_literals_and_16_bit_integers() {
        let value = arr(vec![J::Null, J::True, J::False, J::I16(-7), J::U16(65535)]);
        let bytes = doc(&value);
        // Header only: 2 + 2 + 5 entries * 3 bytes, no out-of-line data.
        assert_eq!(bytes.len(), 1 + 4 + 15);
        assert_eq!(ok(&bytes), json!([null, true, false, -7, 65535]));
    }

    #[test]
    fn object_keys_keep_document_order() {
        let value = obj(vec![
            ("zeta", J::I16(1)),
            ("alpha", J::I16(2)),
            ("mid", J::I16(3)),
        ]);
        let decoded = ok(&doc(&value));
        let keys: Vec<&String> = decoded.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["zeta", "alpha", "mid"]);
    }

    #[test]
    fn nested_objects_and_arrays_decode_recursively() {
        let value = obj(vec![
            ("id", J::I64(9_000_000_000)),
            ("tags", arr(vec![s("a"), s("ü"), J::Null])),
            (
                "owner",
                obj(vec![
                    ("name", s("Zoë")),
                    ("scores", arr(vec![J::F64(0.5), J::U64(7)])),
                ]),
            ),
            ("empty_obj", obj(vec![])),
            ("empty_arr", arr(vec![])),
        ]);
        assert_eq!(
            ok(&doc(&value)),
            json!({
                "id": 9_000_000_000i64,
                "tags": ["a", "ü", null],
                "owner": {"name": "Zoë", "scores": [0.5, 7]},
                "empty_obj": {},
                "empty_arr": []
            })
        );
    }

    #[test]
    fn small_and_large_containers_mix_in_one_document() {
        let value = large_obj(vec![
            ("small", arr(vec![J::I32(1), s("x")])),
            (
                "large",
                large_arr(vec![J::I32(-1), obj(vec![("k", J::True)])]),
            ),
        ]);
        assert_eq!(
            ok(&doc(&value)),
            json!({"small": [1, "x"], "large": [-1, {"k": true}]})
        );
    }

    #[test]
    fn large_format_handles_containers_beyond_64_kib() {
        let big = "y".repeat(70_000);
        let value = large_obj(vec![("big", s(&big)), ("after", J::I32(42))]);
        assert_eq!(ok(&doc(&value)), json!({"big": big, "after": 42}));
    }

    #[test]
    fn depth_limit_allows_100_levels_and_rejects_101() {
        let nest = |levels: usize| {
            let mut value = J::True;
            for _ in 0..levels {
                value = arr(vec![value]);
            }
            doc(&value)
        };
        assert!(decode(&nest(100)).is_ok());
        let e = err(&nest(101));
        assert_eq!(e, JsonDecodeError::TooDeep { limit: 100 });
        assert_eq!(e.to_string(), "document nests deeper than 100 levels");
    }

    #[test]
    fn self_referencing_container_is_rejected_instead_of_looping() {
        // An array whose only entry points back at the array itself: the offset check refuses
        // it (an entry's value must lie after the entries).
        let bytes = [0x02, 0x01, 0x00, 0x07, 0x00, 0x02, 0x00, 0x00];
        assert!(matches!(err(&bytes), JsonDecodeError::Malformed(_)));
    }

    #[test]
    fn shared_offsets_cannot_blow_up_output() {
        // 40 nested arrays whose two entries both point at the next array:
        // 2^40 values from 400 bytes unless the decoder bounds its work.
        let levels = 40;
        let mut bytes = vec![0x02];
        for level in 0..levels {
            let size = 10 * (levels - level);
            bytes.extend(le(2, 2));
            bytes.extend(le(size, 2));
            if level + 1 == levels {
                bytes.extend([0x04, 0x00, 0x00, 0x04, 0x00, 0x00]);
            } else {
                bytes.extend([0x02, 0x0a, 0x00, 0x02, 0x0a, 0x00]);
            }
        }
        assert_eq!(
            err(&bytes),
            JsonDecodeError::TooManyValues { len: bytes.len() }
        );
    }

    // ---- opaque values ----

    #[test]
    fn decimal_matches_documented_packed_bytes() {
        // MySQL's decimal2bin documentation: 1234567890.1234 as DECIMAL(14,4)
        // packs to 81 0D FB 38 D2 04 D2, and its negation inverts every byte.
        let positive = [14, 4, 0x81, 0x0d, 0xfb, 0x38, 0xd2, 0x04, 0xd2];
        assert_eq!(
            ok(&doc(&J::Opaque(246, positive.to_vec()))),
            json!("1234567890.1234")
        );
        let negative = [14, 4, 0x7e, 0xf2, 0x04, 0xc7, 0x2d, 0xfb, 0x2d];
        assert_eq!(
            ok(&doc(&J::Opaque(246, negative.to_vec()))),
            json!("-1234567890.1234")
        );
        assert_eq!(decimal_payload("1234567890.1234", 14, 4), positive);
        assert_eq!(decimal_payload("-1234567890.1234", 14, 4), negative);
    }

    #[test]
    fn decimal_negative_with_scale_keeps_trailing_zeros() {
        assert_eq!(ok(&doc(&decimal("-123.45", 7, 4))), json!("-123.4500"));
    }

    #[test]
    fn decimal_positive_integer_without_scale() {
        assert_eq!(ok(&doc(&decimal("42", 5, 0))), json!("42"));
        assert_eq!(ok(&doc(&decimal("-9", 1, 0))), json!("-9"));
    }

    #[test]
    fn decimal_spanning_several_nine_digit_groups() {
        let text = "12345678901234567890.123456789012";
        assert_eq!(ok(&doc(&decimal(text, 32, 12))), json!(text));
        let text = "-0.000000000000000000000000000001";
        assert_eq!(ok(&doc(&decimal(text, 65, 30))), json!(text));
    }

    #[test]
    fn decimal_zero_has_no_sign_and_keeps_scale() {
        assert_eq!(ok(&doc(&decimal("0", 10, 2))), json!("0.00"));
    }

    #[test]
    fn decimal_inside_object() {
        let value = obj(vec![("price", decimal("19.99", 10, 2))]);
        assert_eq!(ok(&doc(&value)), json!({"price": "19.99"}));
    }

    #[test]
    fn decimal_with_wrong_length_is_rejected() {
        let mut payload = decimal_payload("1.5", 5, 1);
        payload.pop();
        let e = err(&doc(&J::Opaque(246, payload)));
        assert!(matches!(e, JsonDecodeError::InvalidDecimal { .. }), "{e}");
        assert!(e.to_string().contains("DECIMAL(5,1) packs into"), "{e}");
    }

    #[test]
    fn decimal_with_scale_above_precision_is_rejected() {
        let e = err(&doc(&J::Opaque(246, vec![2, 3, 0x80, 0x00, 0x00])));
        assert!(e.to_string().contains("scale 3 exceeds precision 2"), "{e}");
    }

    #[test]
    fn decimal_group_with_too_many_digits_is_rejected() {
        // DECIMAL(2,0) has one 1-byte group; 0x80 ^ 0xe4 = 100 > 99.
        let e = err(&doc(&J::Opaque(246, vec![2, 0, 0xe4])));
        assert!(e.to_string().contains("more than 2 digits"), "{e}");
    }

    #[test]
    fn date_opaque_renders_iso_date() {
        let value = J::Opaque(FIELD_DATE, packed_datetime(2024, 2, 29, 0, 0, 0, 0));
        assert_eq!(ok(&doc(&value)), json!("2024-02-29"));
    }

    #[test]
    fn time_opaque_renders_microseconds_only_when_present() {
        let value = J::Opaque(FIELD_TIME, packed_time(false, 13, 45, 7, 123_456));
        assert_eq!(ok(&doc(&value)), json!("13:45:07.123456"));
        let value = J::Opaque(FIELD_TIME, packed_time(false, 8, 0, 5, 0));
        assert_eq!(ok(&doc(&value)), json!("08:00:05"));
    }

    #[test]
    fn negative_time_opaque_keeps_sign_and_large_hours() {
        let value = J::Opaque(FIELD_TIME, packed_time(true, 838, 59, 59, 0));
        assert_eq!(ok(&doc(&value)), json!("-838:59:59"));
        let value = J::Opaque(FIELD_TIME, packed_time(true, 0, 0, 1, 500_000));
        assert_eq!(ok(&doc(&value)), json!("-00:00:01.500000"));
    }

    #[test]
    fn datetime_opaque_renders_iso_datetime() {
        let value = J::Opaque(
            FIELD_DATETIME,
            packed_datetime(2024, 2, 29, 13, 45, 7, 123_456),
        );
        assert_eq!(ok(&doc(&value)), json!("2024-02-29T13:45:07.123456"));
        let value = J::Opaque(FIELD_DATETIME, packed_datetime(1999, 12, 31, 23, 59, 59, 0));
        assert_eq!(ok(&doc(&value)), json!("1999-12-31T23:59:59"));
    }

    #[test]
    fn timestamp_opaque_renders_like_datetime() {
        let value = J::Opaque(FIELD_TIMESTAMP, packed_datetime(2038, 1, 19, 3, 14, 7, 42));
        assert_eq!(ok(&doc(&value)), json!("2038-01-19T03:14:07.000042"));
    }

    #[test]
    fn temporal_opaque_with_wrong_length_is_rejected() {
        let e = err(&doc(&J::Opaque(FIELD_DATETIME, vec![0; 5])));
        assert_eq!(
            e,
            JsonDecodeError::InvalidTemporal {
                kind: "DATETIME",
                offset: 0,
                reason: "expected 8 bytes, found 5".to_owned()
            }
        );
    }

    #[test]
    fn temporal_opaque_with_microseconds_overflow_is_rejected() {
        let e = err(&doc(&J::Opaque(
            FIELD_TIME,
            packed_time(false, 1, 0, 0, 1_000_000),
        )));
        assert!(
            e.to_string().contains("microseconds 1000000 out of range"),
            "{e}"
        );
    }

    #[test]
    fn other_opaque_types_become_prefixed_base64() {
        // 252 = MYSQL_TYPE_BLOB
        let value = arr(vec![J::Opaque(252, vec![0x00, 0x01, 0x02, 0xff])]);
        assert_eq!(ok(&doc(&value)), json!(["base64:AAEC/w=="]));
        assert_eq!(ok(&doc(&J::Opaque(16, vec![]))), json!("base64:"));
    }

    // ---- malformed input ----

    #[test]
    fn truncated_scalar_is_rejected() {
        let e = err(&[0x09, 1, 2, 3]);
        assert!(e.to_string().contains("enough data"), "{e}");
    }

    #[test]
    fn truncated_string_is_rejected() {
        let e = err(&[0x0c, 0x05, b'a', b'b']);
        assert!(matches!(e, JsonDecodeError::Malformed(_)));
    }

    #[test]
    fn container_size_past_document_end_is_rejected() {
        let mut bytes = doc(&arr(vec![s("abc")]));
        bytes.pop();
        assert!(matches!(err(&bytes), JsonDecodeError::Malformed(_)));
    }

    #[test]
    fn value_offset_outside_its_container_is_rejected() {
        // Outer array of 2 entries; the first is a small array whose declared
        // size is too short to reach its own string value, which lies in the
        // outer array's bytes.
        let bytes = [
            0x02, // outer small array
            0x02, 0x00, 0x13, 0x00, // count 2, size 19
            0x02, 0x0a, 0x00, // entry: inner array at offset 10
            0x0c, 0x11, 0x00, // entry: string at offset 17
            0x01, 0x00, 0x07, 0x00, // inner: count 1, size 7
            0x0c, 0x07, 0x00, // inner entry: string at inner offset 7 (outside)
            0x01, b'z', // string shared region
        ];
        let e = err(&bytes);
        assert!(matches!(e, JsonDecodeError::Malformed(_)), "{e}");
    }

    #[test]
    fn header_larger_than_declared_size_is_rejected() {
        // Claims 1000 entries in a 4-byte array.
        let bytes = [0x02, 0xe8, 0x03, 0x04, 0x00];
        assert!(matches!(err(&bytes), JsonDecodeError::Malformed(_)));
    }

    #[test]
    fn unknown_top_level_type_is_rejected() {
        let e = err(&[0x1f, 0x00]);
        assert!(matches!(e, JsonDecodeError::Malformed(_)));
    }

    #[test]
    fn unknown_type_inside_array_reports_its_entry() {
        let mut bytes = doc(&arr(vec![J::True, J::I16(5)]));
        bytes[8] = 0x0d; // second entry's type byte
        assert!(matches!(err(&bytes), JsonDecodeError::Malformed(_)));
    }

    #[test]
    fn invalid_utf8_key_is_rejected() {
        let mut bytes = doc(&obj(vec![("k", J::True)]));
        let last = bytes.len() - 1;
        bytes[last] = 0xff;
        assert!(matches!(
            err(&bytes),
            JsonDecodeError::InvalidUtf8 {
                what: "object key",
                ..
            }
        ));
    }

    #[test]
    fn every_proper_prefix_of_a_document_fails_cleanly() {
        let bytes = doc(&obj(vec![
            ("a", arr(vec![J::I64(1), s("two"), decimal("3.5", 4, 1)])),
            (
                "b",
                J::Opaque(FIELD_DATE, packed_datetime(2020, 1, 1, 0, 0, 0, 0)),
            ),
        ]));
        assert!(decode(&bytes).is_ok());
        for len in 1..bytes.len() {
            assert!(
                decode(&bytes[..len]).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic generator keeps this test dependency-free.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 48) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(first) = bytes.first_mut() {
                *first %= 0x10;
            }
            let _ = decode(&bytes);
        }
    }
}
