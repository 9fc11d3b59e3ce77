//! Reads the row images of a rows event column by column: which columns an image holds (a
//! MINIMAL image leaves some out), which are NULL, and each value's bytes, parsed by
//! mysql_common into a [`Cell`]. Knowing the column of every byte is what lets an error name
//! the column, and a column the image lacks is reported, never filled in.

use super::decode::{binary_json_cell, Cell, DecodeError};
use super::table_schema::WireColumn;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;
use mysql_common::value::Value as SqlValue;

/// One image: a cell per column of the table, `None` where the image does not hold the column.
pub type Image = Vec<Option<Cell>>;

/// A value that could not be read, with the index of its column.
#[derive(Debug)]
pub struct CellError {
    pub column: usize,
    pub error: DecodeError,
}

/// The columns an image holds, from the event's column bitmap (bit i of byte i/8, lowest first).
pub fn present_columns(bitmap: &[u8], count: usize) -> Vec<bool> {
    (0..count)
        .map(|i| bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
        .collect()
}

fn malformed(column: usize, what: impl Into<String>) -> CellError {
    CellError {
        column,
        error: DecodeError::Malformed(what.into()),
    }
}

/// Reads one image from `buf`.
pub fn read_image<'a>(
    buf: &mut ParseBuf<'a>,
    columns: &'a [WireColumn],
    present: &[bool],
) -> Result<Image, CellError> {
    let held = present.iter().filter(|p| **p).count();
    let nulls = buf
        .checked_eat(held.div_ceil(8))
        .ok_or_else(|| malformed(0, "the NULL bitmap runs past the event"))?;
    let mut image = Vec::with_capacity(columns.len());
    let mut slot = 0usize;
    for (index, column) in columns.iter().enumerate() {
        if !present.get(index).copied().unwrap_or(false) {
            image.push(None);
            continue;
        }
        let is_null = nulls[slot / 8] & (1 << (slot % 8)) != 0;
        slot += 1;
        if is_null {
            image.push(Some(Cell::Null));
            continue;
        }
        image.push(Some(read_cell(buf, column).map_err(|error| CellError {
            column: index,
            error,
        })?));
    }
    Ok(image)
}

fn mismatch(value: &SqlValue) -> DecodeError {
    let found = match value {
        SqlValue::NULL => "NULL",
        SqlValue::Bytes(_) => "bytes",
        SqlValue::Int(_) => "integer",
        SqlValue::UInt(_) => "unsigned integer",
        SqlValue::Float(_) => "float",
        SqlValue::Double(_) => "double",
        SqlValue::Date(..) => "date",
        SqlValue::Time(..) => "time",
    };
    DecodeError::Mismatch {
        expected: "the column's binlog type",
        found,
    }
}

fn text_number<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// TIME2: 3 bytes of sign-offset `hours << 12 | minute << 6 | second`, then the fraction in
/// (fsp + 1) / 2 bytes, big-endian, with negative values stored as the complement. Decoded
/// here from the documented layout (the library mishandles negative values with one or two
/// fractional digits).
fn time2(buf: &mut ParseBuf<'_>, fsp: u8) -> Result<Cell, DecodeError> {
    let frac_len = usize::from(fsp.min(6)).div_ceil(2);
    let bytes = buf
        .checked_eat(3 + frac_len)
        .ok_or_else(|| DecodeError::Malformed("a TIME value runs past the event".into()))?;
    let be = |b: &[u8]| b.iter().fold(0i64, |acc, &x| (acc << 8) | i64::from(x));
    let packed: i64 = match frac_len {
        0 => (be(&bytes[..3]) - 0x80_0000) << 24,
        1 | 2 => {
            let mut int_part = be(&bytes[..3]) - 0x80_0000;
            let mut frac = be(&bytes[3..]);
            let (range, scale) = if frac_len == 1 {
                (0x100, 10_000)
            } else {
                (0x1_0000, 100)
            };
            if int_part < 0 && frac > 0 {
                int_part += 1;
                frac -= range;
            }
            (int_part << 24) + frac * scale
        }
        _ => be(bytes) - 0x8000_0000_0000,
    };
    let negative = packed < 0;
    let magnitude = packed.unsigned_abs();
    let hms = magnitude >> 24;
    Ok(Cell::Time {
        negative,
        hours: ((hms >> 12) % (1 << 10)) as u32,
        minute: ((hms >> 6) % (1 << 6)) as u8,
        second: (hms % (1 << 6)) as u8,
        micros: (magnitude % (1 << 24)) as u32,
    })
}

fn read_cell<'a>(buf: &mut ParseBuf<'a>, column: &'a WireColumn) -> Result<Cell, DecodeError> {
    use ColumnType::*;
    match column.column_type {
        MYSQL_TYPE_TIME2 => return time2(buf, column.meta.first().copied().unwrap_or(0)),
        MYSQL_TYPE_JSON => return read_json(buf),
        _ => {}
    }
    let ctx = (
        column.column_type,
        column.meta.as_slice(),
        column.unsigned,
        false,
    );
    let value = buf
        .parse::<BinlogValue<'_>>(ctx)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let value = match value {
        BinlogValue::Value(value) => value,
        BinlogValue::Jsonb(_) | BinlogValue::JsonDiff(_) => {
            // JSON columns never get here (see `read_json`).
            return Err(DecodeError::Malformed(
                "a JSON value where the column map says otherwise".into(),
            ));
        }
    };
    let cell = match (column.column_type, value) {
        (
            MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG,
            SqlValue::Int(i),
        ) => Cell::Int(i as u64),
        (
            MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG,
            SqlValue::UInt(u),
        ) => Cell::Int(u),
        (MYSQL_TYPE_FLOAT, SqlValue::Float(f)) => Cell::Float(f),
        (MYSQL_TYPE_DOUBLE, SqlValue::Double(d)) => Cell::Double(d),
        (MYSQL_TYPE_NEWDECIMAL, SqlValue::Bytes(b)) => Cell::Decimal(
            String::from_utf8(b).map_err(|_| DecodeError::Malformed("DECIMAL digits".into()))?,
        ),
        (MYSQL_TYPE_TIMESTAMP, SqlValue::Int(secs)) => Cell::Timestamp { secs, micros: 0 },
        (MYSQL_TYPE_TIMESTAMP2, SqlValue::Bytes(b)) => {
            // "<seconds>" or "<seconds>.<6 digits>"
            let text = std::str::from_utf8(&b).unwrap_or_default();
            let (secs, micros) = text.split_once('.').unwrap_or((text, "0"));
            match (secs.parse::<i64>(), micros.parse::<u32>()) {
                (Ok(secs), Ok(micros)) => Cell::Timestamp {
                    // The four stored bytes are unsigned seconds.
                    secs: if secs < 0 { secs + (1 << 32) } else { secs },
                    micros,
                },
                _ => return Err(DecodeError::Malformed(format!("TIMESTAMP {text:?}"))),
            }
        }
        (MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2, SqlValue::Date(y, mo, d, h, mi, s, us)) => {
            Cell::DateTime {
                year: y,
                month: mo,
                day: d,
                hour: h,
                minute: mi,
                second: s,
                micros: us,
            }
        }
        (MYSQL_TYPE_NEWDATE | MYSQL_TYPE_DATE, SqlValue::Date(y, mo, d, ..)) => Cell::Date {
            year: y,
            month: mo,
            day: d,
        },
        (MYSQL_TYPE_TIME, SqlValue::Time(negative, days, h, mi, s, us)) => Cell::Time {
            negative,
            hours: days * 24 + u32::from(h),
            minute: mi,
            second: s,
            micros: us,
        },
        (MYSQL_TYPE_YEAR, SqlValue::Bytes(b)) => {
            // The library writes 1900 + the stored byte; the byte 0 is the year 0000.
            let year: u16 = text_number(&b).ok_or_else(|| DecodeError::Malformed("YEAR".into()))?;
            Cell::Year(if year == 1900 { 0 } else { year })
        }
        (MYSQL_TYPE_BIT, SqlValue::Bytes(b)) => {
            Cell::Bit(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
        }
        (MYSQL_TYPE_ENUM, SqlValue::Int(i)) => Cell::Enum(i as u32),
        (MYSQL_TYPE_SET, SqlValue::Bytes(b)) => Cell::Set(
            b.iter()
                .rev()
                .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
        ),
        (MYSQL_TYPE_STRING, SqlValue::Bytes(mut b)) if column.binary_length.is_some() => {
            // Trailing zero bytes of a BINARY(n) value are not in the binlog.
            let n = column.binary_length.unwrap_or(0);
            if b.len() < n {
                b.resize(n, 0);
            }
            Cell::Bytes(b)
        }
        (
            MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_BLOB
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_GEOMETRY
            | MYSQL_TYPE_VECTOR,
            SqlValue::Bytes(b),
        ) => Cell::Bytes(b),
        (_, other) => return Err(mismatch(&other)),
    };
    Ok(cell)
}

/// JSON columns are read here rather than through the library's value: a 4-byte length, then
/// MySQL's binary JSON, decoded into a JSON value.
pub fn read_json(buf: &mut ParseBuf<'_>) -> Result<Cell, DecodeError> {
    let len = buf
        .checked_eat(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| DecodeError::Malformed("a JSON length runs past the event".into()))?;
    let bytes = buf
        .checked_eat(len)
        .ok_or_else(|| DecodeError::Malformed("a JSON value runs past the event".into()))?;
    binary_json_cell(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(column_type: ColumnType, meta: &[u8], unsigned: bool) -> WireColumn {
        WireColumn {
            column_type,
            meta: meta.to_vec(),
            unsigned,
            binary_length: None,
        }
    }

    #[test]
    fn images_follow_the_column_and_null_bitmaps() {
        use ColumnType::*;
        let columns = [
            wire(MYSQL_TYPE_LONG, &[], false),
            wire(MYSQL_TYPE_VARCHAR, &[20, 0], false),
            wire(MYSQL_TYPE_TINY, &[], true),
        ];
        // All three present; the second is NULL.
        let data = [0b010, 0xFB, 0xFF, 0xFF, 0xFF, 0xFF];
        let mut buf = ParseBuf(&data);
        let image = read_image(&mut buf, &columns, &[true, true, true]).unwrap();
        assert_eq!(
            image,
            vec![
                Some(Cell::Int((-5i64) as u64)),
                Some(Cell::Null),
                Some(Cell::Int(255))
            ]
        );
        assert!(buf.is_empty());
        // A MINIMAL image: only the first column.
        let data = [0b0, 7, 0, 0, 0];
        let image = read_image(&mut ParseBuf(&data), &columns, &[true, false, false]).unwrap();
        assert_eq!(image, vec![Some(Cell::Int(7)), None, None]);
    }

    #[test]
    fn a_value_past_the_event_names_its_column() {
        let columns = [
            wire(ColumnType::MYSQL_TYPE_LONG, &[], false),
            wire(ColumnType::MYSQL_TYPE_LONGLONG, &[], false),
        ];
        let data = [0, 1, 0, 0, 0, 9, 9];
        let err = read_image(&mut ParseBuf(&data), &columns, &[true, true]).unwrap_err();
        assert_eq!(err.column, 1);
    }

    #[test]
    fn time2_reads_negative_values_at_every_precision() {
        // '-00:00:01.5' as TIME(1): packed -(1 << 24 | 500 000) stores its floor, -2, as
        // 0x800000 - 2 and the fraction -50 (units of 10 000 µs) as the byte 0xCE.
        let cell = time2(&mut ParseBuf(&[0x7F, 0xFF, 0xFE, 0xCE]), 1).unwrap();
        assert_eq!(
            cell,
            Cell::Time {
                negative: true,
                hours: 0,
                minute: 0,
                second: 1,
                micros: 500_000
            }
        );
        // '-838:59:59' as TIME(0)
        let v = (838i64 << 12) | (59 << 6) | 59;
        let stored = (0x80_0000 - v) as u32;
        let b = stored.to_be_bytes();
        let cell = time2(&mut ParseBuf(&b[1..]), 0).unwrap();
        assert_eq!(
            cell,
            Cell::Time {
                negative: true,
                hours: 838,
                minute: 59,
                second: 59,
                micros: 0
            }
        );
        // '12:34:56.000007' as TIME(6): 6 bytes, offset 0x800000000000.
        let packed = (((12i64 << 12) | (34 << 6) | 56) << 24) + 7;
        let stored = (packed + 0x8000_0000_0000) as u64;
        let b = stored.to_be_bytes();
        let cell = time2(&mut ParseBuf(&b[2..]), 6).unwrap();
        assert_eq!(
            cell,
            Cell::Time {
                negative: false,
                hours: 12,
                minute: 34,
                second: 56,
                micros: 7
            }
        );
    }
}
