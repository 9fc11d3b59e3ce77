//! Rows read with SQL (the chunks of an initial sync) typed exactly like rows read from the
//! binlog: the table's columns get the same [`ColumnDecoder`]s, worked out from
//! information_schema instead of a table map, and each SQL value becomes the [`Cell`] the
//! binlog reader produces for it. One decoder, one JSON form per type.
//!
//! The connection must use `time_zone = '+00:00'` so TIMESTAMP values arrive in UTC, and
//! `NAMES utf8mb4` so text arrives in UTF-8 whatever the column's character set.

use super::charset::Charset;
use super::decode::{Cell, ColumnDecoder, DecodeError};
use super::table_schema::{ColumnSpec, TableSchema};
use crate::capture_filter::CaptureFilter;
use change_message::calendar::days_from_civil;
use mysql_async::prelude::Queryable;
use mysql_async::Value as SqlValue;
use serde_json::Value;

/// Why a table cannot be read for a sync.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("table {0} does not exist (or the bridge's user cannot see it)")]
    NoTable(String),
    #[error("table {0} has no primary key: its records cannot be told apart or read in key order")]
    NoPrimaryKey(String),
    #[error(
        "table {table}: column `{column}` has type {data_type}, which the bridge does not read"
    )]
    Unsupported {
        table: String,
        column: String,
        data_type: String,
    },
    #[error("reading the layout of table {table}: {source}")]
    Query {
        table: String,
        source: mysql_async::Error,
    },
}

/// Splits `enum('a','b''c')` / `set(...)` into its values.
pub fn parse_value_list(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let inner = column_type[open + 1..].trim_end_matches(')');
    let mut values = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    value.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(next) = chars.next() {
                        value.push(next);
                    }
                }
                other => value.push(other),
            }
        }
        values.push(value);
    }
    values
}

/// The decoder the binlog path would use for a column described by information_schema
/// (`None`: a type or character set the bridge does not read).
pub fn decoder_for(
    data_type: &str,
    column_type: &str,
    precision: Option<u16>,
    charset: Option<&str>,
    is_json: bool,
) -> Option<ColumnDecoder> {
    let unsigned = column_type.to_lowercase().contains("unsigned");
    let fsp = precision.unwrap_or(0);
    let text = || match charset {
        Some(name) => Charset::from_name(name).map(ColumnDecoder::Text),
        None => Some(ColumnDecoder::Text(Charset::Utf8)),
    };
    Some(match data_type {
        "tinyint" => ColumnDecoder::Integer { bits: 8, unsigned },
        "smallint" => ColumnDecoder::Integer { bits: 16, unsigned },
        "mediumint" => ColumnDecoder::Integer { bits: 24, unsigned },
        "int" | "integer" => ColumnDecoder::Integer { bits: 32, unsigned },
        "bigint" => ColumnDecoder::Integer { bits: 64, unsigned },
        "float" | "double" | "real" => ColumnDecoder::Float,
        "decimal" | "numeric" => ColumnDecoder::Decimal,
        "json" => ColumnDecoder::JsonText,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
            if is_json {
                ColumnDecoder::JsonText
            } else {
                text()?
            }
        }
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            ColumnDecoder::Binary
        }
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" => ColumnDecoder::Geometry,
        "enum" => ColumnDecoder::Enum(parse_value_list(column_type)),
        "set" => ColumnDecoder::Set(parse_value_list(column_type)),
        "bit" => ColumnDecoder::Bit,
        "year" => ColumnDecoder::Year,
        "date" => ColumnDecoder::Date,
        "time" => ColumnDecoder::Time { fsp },
        "datetime" => ColumnDecoder::DateTime { fsp },
        "timestamp" => ColumnDecoder::Timestamp { fsp },
        _ => return None,
    })
}

/// Reads a table's layout (columns in order, decoders, primary key in key order) from
/// information_schema; excluded columns are marked as the binlog path marks them.
pub async fn table_layout(
    conn: &mut mysql_async::Conn,
    is_mariadb: bool,
    filter: &CaptureFilter,
    database: &str,
    table: &str,
) -> Result<TableSchema, LayoutError> {
    let name = format!("{database}.{table}");
    let query_err = |source| LayoutError::Query {
        table: name.clone(),
        source,
    };
    let facts =
        crate::schema_catalog::inspect(conn, is_mariadb, &[database.to_string()], Some(table))
            .await
            .map_err(query_err)?;
    let catalog = facts.table(database, table);
    type ColumnRow = (
        String,
        String,
        String,
        Option<u64>,
        Option<String>,
        Option<u64>,
    );
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, DATETIME_PRECISION, CHARACTER_SET_NAME, \
                    (SELECT k.ORDINAL_POSITION FROM information_schema.KEY_COLUMN_USAGE k \
                      WHERE k.TABLE_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME \
                        AND k.COLUMN_NAME = c.COLUMN_NAME AND k.CONSTRAINT_NAME = 'PRIMARY') \
             FROM information_schema.COLUMNS c \
             WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION",
            (database, table),
        )
        .await
        .map_err(query_err)?;
    if rows.is_empty() {
        return Err(LayoutError::NoTable(name));
    }
    let excluded = filter.excluded_columns(database, table);
    let mut columns = Vec::with_capacity(rows.len());
    let mut key: Vec<(u64, usize)> = Vec::new();
    for (index, (column, data_type, column_type, precision, charset, key_position)) in
        rows.into_iter().enumerate()
    {
        let is_json = catalog
            .and_then(|c| c.column(&column))
            .is_some_and(|f| f.is_json);
        let data_type = data_type.to_lowercase();
        let decoder = decoder_for(
            &data_type,
            &column_type,
            precision.map(|p| p.min(6) as u16),
            charset.as_deref(),
            is_json,
        )
        .ok_or_else(|| LayoutError::Unsupported {
            table: name.clone(),
            column: column.clone(),
            data_type: data_type.clone(),
        })?;
        if let Some(position) = key_position {
            key.push((position, index));
        }
        columns.push(ColumnSpec {
            excluded: excluded.is_some_and(|set| set.contains(&column)),
            name: column,
            decoder,
        });
    }
    if key.is_empty() {
        return Err(LayoutError::NoPrimaryKey(name));
    }
    key.sort();
    let binary_columns = columns
        .iter()
        .filter(|c| !c.excluded && c.decoder.is_binary())
        .map(|c| c.name.clone())
        .collect();
    Ok(TableSchema {
        database: database.to_string(),
        table: table.to_string(),
        columns,
        key: key.into_iter().map(|(_, i)| i).collect(),
        binary_columns,
    })
}

fn mismatch(decoder: &ColumnDecoder, found: &'static str) -> DecodeError {
    DecodeError::Mismatch {
        expected: decoder.describe(),
        found,
    }
}

fn sql_kind(value: &SqlValue) -> &'static str {
    match value {
        SqlValue::NULL => "NULL",
        SqlValue::Bytes(_) => "bytes",
        SqlValue::Int(_) => "integer",
        SqlValue::UInt(_) => "unsigned integer",
        SqlValue::Float(_) => "float",
        SqlValue::Double(_) => "double",
        SqlValue::Date(..) => "date",
        SqlValue::Time(..) => "time",
    }
}

fn bytes_text(decoder: &ColumnDecoder, value: SqlValue) -> Result<String, DecodeError> {
    match value {
        SqlValue::Bytes(bytes) => Charset::Utf8.decode(bytes).map_err(DecodeError::from),
        other => Err(mismatch(decoder, sql_kind(&other))),
    }
}

fn integer_of(decoder: &ColumnDecoder, value: &SqlValue) -> Result<u64, DecodeError> {
    match value {
        SqlValue::Int(i) => Ok(*i as u64),
        SqlValue::UInt(u) => Ok(*u),
        SqlValue::Bytes(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|t| {
                t.parse::<u64>()
                    .ok()
                    .or_else(|| t.parse::<i64>().ok().map(|i| i as u64))
            })
            .ok_or_else(|| mismatch(decoder, "bytes")),
        other => Err(mismatch(decoder, sql_kind(other))),
    }
}

/// One SQL value (binary protocol) -> the cell the binlog reader produces for it.
pub fn sql_cell(decoder: &ColumnDecoder, value: SqlValue) -> Result<Cell, DecodeError> {
    if matches!(value, SqlValue::NULL) {
        return Ok(Cell::Null);
    }
    Ok(match decoder {
        ColumnDecoder::Integer { .. } => Cell::Int(integer_of(decoder, &value)?),
        ColumnDecoder::Float => match value {
            SqlValue::Float(f) => Cell::Float(f),
            SqlValue::Double(d) => Cell::Double(d),
            other => return Err(mismatch(decoder, sql_kind(&other))),
        },
        ColumnDecoder::Decimal => Cell::Decimal(bytes_text(decoder, value)?),
        // Over SQL, MySQL's JSON arrives as text, not in its binary storage format; binary
        // strings arrive as their bytes, text in the connection's UTF-8.
        ColumnDecoder::Text(_)
        | ColumnDecoder::Binary
        | ColumnDecoder::Geometry
        | ColumnDecoder::TextOrBinary
        | ColumnDecoder::JsonText
        | ColumnDecoder::MySqlJson => match value {
            SqlValue::Bytes(bytes) => Cell::Utf8(bytes),
            other => return Err(mismatch(decoder, sql_kind(&other))),
        },
        ColumnDecoder::Enum(values) => {
            let text = bytes_text(decoder, value)?;
            let index = values
                .iter()
                .position(|v| *v == text)
                .map(|i| i as u32 + 1)
                .unwrap_or(0);
            Cell::Enum(index)
        }
        ColumnDecoder::Set(values) => {
            let text = bytes_text(decoder, value)?;
            let mut bits = 0u64;
            for member in text.split(',').filter(|m| !m.is_empty()) {
                if let Some(i) = values.iter().position(|v| v == member) {
                    if i < 64 {
                        bits |= 1 << i;
                    }
                }
            }
            Cell::Set(bits)
        }
        ColumnDecoder::Bit => match value {
            SqlValue::Bytes(bytes) => {
                Cell::Bit(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
            }
            other => Cell::Bit(integer_of(decoder, &other)?),
        },
        ColumnDecoder::Year => Cell::Year(integer_of(decoder, &value)? as u16),
        ColumnDecoder::Date => match value {
            SqlValue::Date(year, month, day, ..) => Cell::Date { year, month, day },
            other => return Err(mismatch(decoder, sql_kind(&other))),
        },
        ColumnDecoder::Time { .. } => match value {
            SqlValue::Time(negative, days, hours, minute, second, micros) => Cell::Time {
                negative,
                hours: days * 24 + u32::from(hours),
                minute,
                second,
                micros,
            },
            other => return Err(mismatch(decoder, sql_kind(&other))),
        },
        ColumnDecoder::DateTime { .. } => match value {
            SqlValue::Date(year, month, day, hour, minute, second, micros) => Cell::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
            },
            other => return Err(mismatch(decoder, sql_kind(&other))),
        },
        ColumnDecoder::Timestamp { .. } => match value {
            SqlValue::Date(year, month, day, hour, minute, second, micros) => {
                if year == 0 && month == 0 {
                    // The zero TIMESTAMP is the epoch in the binlog.
                    Cell::Timestamp { secs: 0, micros: 0 }
                } else {
                    let days = days_from_civil(i64::from(year), u32::from(month), u32::from(day));
                    let secs = days * 86_400
                        + i64::from(hour) * 3600
                        + i64::from(minute) * 60
                        + i64::from(second);
                    Cell::Timestamp { secs, micros }
                }
            }
            other => return Err(mismatch(decoder, sql_kind(&other))),
        },
    })
}

/// One SQL value (binary protocol) -> the JSON value the binlog path publishes for it.
pub fn decode_sql(decoder: &ColumnDecoder, value: SqlValue) -> Result<Value, DecodeError> {
    decoder.decode(sql_cell(decoder, value)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enum_and_set_lists_are_parsed_with_quotes() {
        assert_eq!(
            parse_value_list("enum('a','b''c','d,e')"),
            vec!["a", "b'c", "d,e"]
        );
        assert_eq!(parse_value_list("set('x','y')"), vec!["x", "y"]);
    }

    #[test]
    fn sql_values_come_out_as_the_binlog_path_publishes_them() {
        let int = |bits, unsigned| ColumnDecoder::Integer { bits, unsigned };
        assert_eq!(
            decode_sql(&int(32, false), SqlValue::Int(-5)).unwrap(),
            json!(-5)
        );
        assert_eq!(
            decode_sql(&int(64, true), SqlValue::UInt(u64::MAX)).unwrap(),
            json!(18_446_744_073_709_551_615u64)
        );
        assert_eq!(
            decode_sql(&int(8, false), SqlValue::Int(-1)).unwrap(),
            json!(-1)
        );
        assert_eq!(
            decode_sql(&ColumnDecoder::Float, SqlValue::Float(1.1)).unwrap(),
            json!(1.1)
        );
        assert_eq!(
            decode_sql(
                &ColumnDecoder::Decimal,
                SqlValue::Bytes(b"-12.345".to_vec())
            )
            .unwrap(),
            json!("-12.345")
        );
        assert_eq!(
            decode_sql(
                &ColumnDecoder::Binary,
                SqlValue::Bytes(vec![0xDE, 0xAD, 0xBE, 0xEF])
            )
            .unwrap(),
            json!("3q2+7w==")
        );
        assert_eq!(
            decode_sql(
                &ColumnDecoder::JsonText,
                SqlValue::Bytes(br#"{"a":[1,2]}"#.to_vec())
            )
            .unwrap(),
            json!({"a": [1, 2]})
        );
        let e = ColumnDecoder::Enum(vec!["a".into(), "b".into()]);
        assert_eq!(
            decode_sql(&e, SqlValue::Bytes(b"b".to_vec())).unwrap(),
            json!("b")
        );
        let s = ColumnDecoder::Set(vec!["x".into(), "y".into(), "z".into()]);
        assert_eq!(
            decode_sql(&s, SqlValue::Bytes(b"x,z".to_vec())).unwrap(),
            json!("x,z")
        );
        assert_eq!(
            decode_sql(&ColumnDecoder::Bit, SqlValue::Bytes(vec![0x01, 0x05])).unwrap(),
            json!(261)
        );
        assert_eq!(
            decode_sql(&ColumnDecoder::Year, SqlValue::Int(0)).unwrap(),
            json!(0)
        );
        assert_eq!(
            decode_sql(&ColumnDecoder::Year, SqlValue::Int(2024)).unwrap(),
            json!(2024)
        );
        assert_eq!(
            decode_sql(
                &ColumnDecoder::DateTime { fsp: 6 },
                SqlValue::Date(2024, 2, 29, 23, 59, 58, 123_456)
            )
            .unwrap(),
            json!("2024-02-29T23:59:58.123456")
        );
        assert_eq!(
            decode_sql(
                &ColumnDecoder::Timestamp { fsp: 2 },
                SqlValue::Date(2024, 2, 29, 23, 59, 58, 129_000)
            )
            .unwrap(),
            json!("2024-02-29T23:59:58.12Z")
        );
        assert_eq!(
            decode_sql(
                &ColumnDecoder::Time { fsp: 2 },
                SqlValue::Time(false, 1, 2, 3, 4, 450_000)
            )
            .unwrap(),
            json!("26:03:04.45")
        );
        assert_eq!(
            decode_sql(
                &ColumnDecoder::Time { fsp: 6 },
                SqlValue::Time(true, 0, 1, 0, 0, 5)
            )
            .unwrap(),
            json!("-01:00:00.000005")
        );
        assert_eq!(
            decode_sql(&ColumnDecoder::Text(Charset::Utf8), SqlValue::NULL).unwrap(),
            Value::Null
        );
    }
}
