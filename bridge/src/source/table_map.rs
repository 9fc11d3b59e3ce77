//! The facts a table map event carries about its table: column types and their metadata (read
//! through mysql_common) and the optional metadata of `binlog_row_metadata=FULL` (column names,
//! signedness, character sets, ENUM/SET values, primary key), which this module reads itself
//! from the event's bytes so that each field is counted exactly as the server writes it.

use mysql_common::binlog::events::TableMapEvent;
use mysql_common::constants::ColumnType;

/// One column as the table map describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapColumn {
    /// The real type (ENUM and SET recovered from behind STRING); `None` for a type code this
    /// bridge does not know (refused when the table is captured).
    pub column_type: Option<ColumnType>,
    /// The type byte as written in the event.
    pub raw_type: u8,
    /// The column's metadata bytes (precision, length, pack length...); empty when unknown.
    pub meta: Vec<u8>,
}

/// Optional metadata, field by field as the server wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionalMeta {
    pub names: Option<Vec<String>>,
    /// One flag per numeric column, in column order: set means UNSIGNED.
    pub unsigned: Option<Vec<bool>>,
    /// One collation id per character column, in column order.
    pub collations: Option<Vec<u16>>,
    pub enum_values: Vec<Vec<String>>,
    pub set_values: Vec<Vec<String>>,
    /// Primary-key column indexes in key order.
    pub primary_key: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMap {
    pub table_id: u64,
    pub database: String,
    pub table: String,
    pub columns: Vec<MapColumn>,
    pub optional: OptionalMeta,
}

/// A table map the reader cannot make sense of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table map of {database}.{table}: {reason}")]
pub struct BadTableMap {
    pub database: String,
    pub table: String,
    pub reason: String,
}

/// Numeric columns in the sense of the SIGNEDNESS field: YEAR is one (seen on MariaDB 10.11:
/// a YEAR column takes a flag, and counting it wrong shifts every later column's sign).
pub fn is_numeric(column_type: Option<ColumnType>) -> bool {
    use ColumnType::*;
    let Some(column_type) = column_type else {
        return false;
    };
    matches!(
        column_type,
        MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_NEWDECIMAL
            | MYSQL_TYPE_FLOAT
            | MYSQL_TYPE_DOUBLE
            | MYSQL_TYPE_YEAR
    )
}

/// Character columns in the sense of the charset fields.
pub fn is_character(column_type: Option<ColumnType>) -> bool {
    use ColumnType::*;
    let Some(column_type) = column_type else {
        return false;
    };
    matches!(
        column_type,
        MYSQL_TYPE_STRING
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_BLOB
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
    )
}

/// A cursor over the optional metadata bytes.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// A length-encoded integer of the client/server protocol.
    fn lenenc(&mut self) -> Option<u64> {
        let first = self.u8()?;
        let width = match first {
            0..=0xFA => return Some(u64::from(first)),
            0xFC => 2,
            0xFD => 3,
            0xFE => 8,
            _ => return None,
        };
        let bytes = self.take(width)?;
        Some(
            bytes
                .iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        )
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.lenenc()?).ok()?;
        self.take(len)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Reads the string lists of SET_STR_VALUE / ENUM_STR_VALUE.
fn value_lists(mut v: Bytes<'_>) -> Option<Vec<Vec<String>>> {
    let mut lists = Vec::new();
    while !v.is_empty() {
        let count = v.lenenc()?;
        let mut values = Vec::new();
        for _ in 0..count {
            values.push(v.string()?);
        }
        lists.push(values);
    }
    Some(lists)
}

/// Expands DEFAULT_CHARSET (a default, then `(index, collation)` pairs for the character columns
/// that differ) to one collation per character column.
fn default_charsets(mut v: Bytes<'_>, count: usize) -> Option<Vec<u16>> {
    let default = u16::try_from(v.lenenc()?).ok()?;
    let mut out = vec![default; count];
    while !v.is_empty() {
        let index = usize::try_from(v.lenenc()?).ok()?;
        let collation = u16::try_from(v.lenenc()?).ok()?;
        *out.get_mut(index)? = collation;
    }
    Some(out)
}

fn column_charsets(mut v: Bytes<'_>) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    while !v.is_empty() {
        out.push(u16::try_from(v.lenenc()?).ok()?);
    }
    Some(out)
}

/// Parses the optional metadata fields (type, length, value) that follow the null bitmap.
pub fn parse_optional(data: &[u8], columns: &[MapColumn]) -> Result<OptionalMeta, String> {
    let numeric = columns.iter().filter(|c| is_numeric(c.column_type)).count();
    let character = columns
        .iter()
        .filter(|c| is_character(c.column_type))
        .count();
    let mut meta = OptionalMeta::default();
    let mut rest = Bytes(data);
    while !rest.is_empty() {
        let kind = rest.u8().ok_or("truncated field type")?;
        let len = rest
            .lenenc()
            .and_then(|l| usize::try_from(l).ok())
            .ok_or("truncated field length")?;
        let value = rest.take(len).ok_or("a field runs past the event")?;
        let bad = |what: &str| format!("malformed {what} field");
        match kind {
            1 => {
                if value.len() < numeric.div_ceil(8) {
                    return Err(bad("SIGNEDNESS"));
                }
                let flags = (0..numeric)
                    .map(|i| value[i / 8] & (0x80 >> (i % 8)) != 0)
                    .collect();
                meta.unsigned = Some(flags);
            }
            2 => {
                meta.collations =
                    Some(default_charsets(Bytes(value), character).ok_or(bad("DEFAULT_CHARSET"))?)
            }
            3 => {
                meta.collations = Some(column_charsets(Bytes(value)).ok_or(bad("COLUMN_CHARSET"))?)
            }
            4 => {
                let mut v = Bytes(value);
                let mut names = Vec::new();
                while !v.is_empty() {
                    names.push(v.string().ok_or(bad("COLUMN_NAME"))?);
                }
                meta.names = Some(names);
            }
            5 => meta.set_values = value_lists(Bytes(value)).ok_or(bad("SET_STR_VALUE"))?,
            6 => meta.enum_values = value_lists(Bytes(value)).ok_or(bad("ENUM_STR_VALUE"))?,
            8 => {
                let mut v = Bytes(value);
                while !v.is_empty() {
                    let index = v.lenenc().ok_or(bad("SIMPLE_PRIMARY_KEY"))?;
                    meta.primary_key.push(index as usize);
                }
            }
            9 => {
                let mut v = Bytes(value);
                while !v.is_empty() {
                    let index = v.lenenc().ok_or(bad("PRIMARY_KEY_WITH_PREFIX"))?;
                    v.lenenc().ok_or(bad("PRIMARY_KEY_WITH_PREFIX"))?;
                    meta.primary_key.push(index as usize);
                }
            }
            // Geometry types, ENUM/SET charsets, visibility, vector dimensions, and fields of
            // later servers: nothing the values depend on.
            _ => {}
        }
    }
    Ok(meta)
}

/// Skips the fixed part of a table map event's bytes and returns its optional metadata.
fn optional_bytes(data: &[u8], column_count: usize) -> Option<&[u8]> {
    let mut b = Bytes(data);
    b.take(8)?; // table id, flags
    let db_len = usize::from(b.u8()?);
    b.take(db_len + 1)?;
    let table_len = usize::from(b.u8()?);
    b.take(table_len + 1)?;
    let count = usize::try_from(b.lenenc()?).ok()?;
    if count != column_count {
        return None;
    }
    b.take(count)?;
    let meta_len = usize::try_from(b.lenenc()?).ok()?;
    b.take(meta_len)?;
    b.take(count.div_ceil(8))?;
    Some(b.0)
}

impl TableMap {
    /// `data` is the event's body as received (mysql_common's `Event::data`).
    pub fn read(event: &TableMapEvent<'_>, data: &[u8]) -> Result<TableMap, BadTableMap> {
        let database = event.database_name().into_owned();
        let table = event.table_name().into_owned();
        let bad = |reason: String| BadTableMap {
            database: database.clone(),
            table: table.clone(),
            reason,
        };
        let count = event.columns_count() as usize;
        let mut columns = Vec::with_capacity(count);
        for i in 0..count {
            let raw_type = match event.get_raw_column_type(i) {
                Ok(Some(t)) => t as u8,
                Ok(None) => return Err(bad(format!("column {} has no type", i + 1))),
                Err(unknown) => unknown.0,
            };
            let column_type = event.get_column_type(i).ok().flatten();
            // After a column of unknown type the metadata of the others cannot be located; the
            // unknown column is what gets reported.
            let meta = match (
                column_type,
                columns.iter().all(|c: &MapColumn| c.column_type.is_some()),
            ) {
                (Some(_), true) => event
                    .get_column_metadata(i)
                    .ok_or_else(|| bad(format!("column {} has no readable metadata", i + 1)))?
                    .to_vec(),
                _ => Vec::new(),
            };
            columns.push(MapColumn {
                column_type,
                raw_type,
                meta,
            });
        }
        let optional = optional_bytes(data, count)
            .ok_or_else(|| bad("the event is shorter than its columns".into()))
            .and_then(|bytes| parse_optional(bytes, &columns).map_err(bad))?;
        Ok(TableMap {
            table_id: event.table_id(),
            database,
            table,
            columns,
            optional,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ColumnType::*;

    fn col(column_type: ColumnType) -> MapColumn {
        MapColumn {
            column_type: Some(column_type),
            raw_type: column_type as u8,
            meta: Vec::new(),
        }
    }

    fn field(kind: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![kind, value.len() as u8];
        out.extend_from_slice(value);
        out
    }

    #[test]
    fn optional_metadata_fields_are_counted_per_kind_of_column() {
        // id INT UNSIGNED, y YEAR, n VARCHAR latin1, e ENUM('a','b'), d DOUBLE
        let columns = [
            col(MYSQL_TYPE_LONG),
            col(MYSQL_TYPE_YEAR),
            col(MYSQL_TYPE_VARCHAR),
            col(MYSQL_TYPE_ENUM),
            col(MYSQL_TYPE_DOUBLE),
        ];
        let mut data = Vec::new();
        // Three numeric columns (YEAR is one): the first two are unsigned.
        data.extend(field(1, &[0b1100_0000]));
        // Default collation 45 (utf8mb4), the first character column 8 (latin1).
        data.extend(field(2, &[45, 0, 8]));
        data.extend(field(4, b"\x02id\x01y\x01n\x01e\x01d"));
        data.extend(field(6, b"\x02\x01a\x01b"));
        data.extend(field(8, &[0]));
        let meta = parse_optional(&data, &columns).unwrap();
        assert_eq!(meta.unsigned, Some(vec![true, true, false]));
        assert_eq!(meta.collations, Some(vec![8]));
        assert_eq!(
            meta.names,
            Some(vec![
                "id".into(),
                "y".into(),
                "n".into(),
                "e".into(),
                "d".into()
            ])
        );
        assert_eq!(
            meta.enum_values,
            vec![vec!["a".to_string(), "b".to_string()]]
        );
        assert_eq!(meta.primary_key, vec![0]);
    }

    #[test]
    fn truncated_fields_are_errors_not_guesses() {
        let columns = [col(MYSQL_TYPE_LONG)];
        assert!(parse_optional(&[4, 5, 2, b'i'], &columns).is_err());
        assert!(parse_optional(&[1, 0], &columns).is_err());
        assert_eq!(
            parse_optional(&field(3, &[0xFC, 0xFF, 0x00]), &[col(MYSQL_TYPE_BLOB)])
                .unwrap()
                .collations,
            Some(vec![255])
        );
    }
}
