//! How to read each column of a captured table, worked out once per table map event from the
//! binlog's own metadata (binlog_row_metadata=FULL: names, signedness, character sets, ENUM/SET
//! values, primary key) and the catalog facts the binlog lacks (which LONGTEXT holds MariaDB
//! JSON; the character set of a collation the binlog names by a number we do not know).

use super::charset::Charset;
use super::decode::ColumnDecoder;
use super::table_map::{is_character, is_numeric, TableMap};
use crate::capture_filter::CaptureFilter;
use crate::schema_catalog::TableCatalog;
use mysql_common::collations::{Collation, CollationId};
use mysql_common::constants::ColumnType;

/// The collation id of binary strings (BINARY, VARBINARY, BLOB).
const BINARY_COLLATION: u16 = 63;

#[derive(Debug)]
pub struct ColumnSpec {
    pub name: String,
    pub decoder: ColumnDecoder,
    /// Left out of messages (`capture.exclude_columns`); still decoded because the binlog
    /// carries it, but never published.
    pub excluded: bool,
}

/// What the row-image reader needs to find one column's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireColumn {
    pub column_type: ColumnType,
    pub meta: Vec<u8>,
    pub unsigned: bool,
    /// BINARY(n): the binlog drops trailing zero bytes, which the value has (n bytes).
    pub binary_length: Option<usize>,
}

/// The byte length of a CHAR/BINARY column from its metadata (real type, length byte).
fn fixed_length(meta: &[u8]) -> Option<usize> {
    let (byte0, byte1) = (usize::from(*meta.first()?), usize::from(*meta.get(1)?));
    Some(byte1 | (((byte0 & 0x30) ^ 0x30) << 4))
}

#[derive(Debug)]
pub struct TableSchema {
    pub database: String,
    pub table: String,
    pub columns: Vec<ColumnSpec>,
    /// Indexes of the primary-key columns, in key order.
    pub key: Vec<usize>,
    /// Names of published columns whose values are base64 text.
    pub binary_columns: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "table {database}.{table}: the binlog carries no column names; set \
         binlog_row_metadata=FULL on the server (MySQL 8.0.1+, MariaDB 10.5+) and restart the bridge"
    )]
    NoColumnNames { database: String, table: String },
    #[error(
        "table {database}.{table} has no primary key, so its records cannot be told apart: add a \
         primary key (then re-sync the partners for it), leave the table out with \
         capture.exclude_tables = [\"{database}.{table}\"], or set capture.on_keyless_table = \
         \"skip\" to leave every keyless table out with a warning"
    )]
    NoPrimaryKey { database: String, table: String },
    #[error(
        "table {database}.{table}: primary-key column `{column}` is listed in \
         capture.exclude_columns; key columns identify records and cannot be left out"
    )]
    KeyColumnExcluded {
        database: String,
        table: String,
        column: String,
    },
    #[error(
        "table {database}.{table}: column `{column}` has a type (binlog type code {code}) this \
         bridge cannot read; leave the table out with capture.exclude_tables = \
         [\"{database}.{table}\"] or change the column's type"
    )]
    UnsupportedType {
        database: String,
        table: String,
        column: String,
        code: u8,
    },
    #[error(
        "table {database}.{table}: column `{column}` is in character set {charset}, which this \
         bridge cannot decode (it reads {supported}); convert the column (ALTER TABLE ... \
         CONVERT TO CHARACTER SET utf8mb4) or leave the table out"
    )]
    UndecodableCharset {
        database: String,
        table: String,
        column: String,
        charset: String,
        supported: &'static str,
    },
    #[error("{0}")]
    BadMap(#[from] super::table_map::BadTableMap),
}

/// The character set of a collation id, by mysql_common's table of the servers' collations.
fn collation_charset(id: u16) -> Option<String> {
    let collation = Collation::resolve(CollationId::from(id));
    (collation.id() != CollationId::UNKNOWN_COLLATION_ID).then(|| collation.charset().to_string())
}

fn le_uint(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

impl TableSchema {
    pub fn from_table_map(
        map: &TableMap,
        filter: &CaptureFilter,
        catalog: Option<&TableCatalog>,
    ) -> Result<(TableSchema, Vec<WireColumn>), SchemaError> {
        use ColumnType::*;
        let database = map.database.clone();
        let table = map.table.clone();
        let meta = &map.optional;
        let names = meta
            .names
            .clone()
            .filter(|names| names.len() == map.columns.len())
            .ok_or_else(|| SchemaError::NoColumnNames {
                database: database.clone(),
                table: table.clone(),
            })?;
        let excluded = filter.excluded_columns(&database, &table);

        let mut numeric_index = 0usize;
        let mut character_index = 0usize;
        let mut enum_index = 0usize;
        let mut set_index = 0usize;
        let mut columns = Vec::with_capacity(names.len());
        let mut wire = Vec::with_capacity(names.len());
        for (column, name) in map.columns.iter().zip(names) {
            let facts = catalog.and_then(|c| c.column(&name));
            let unsupported = || SchemaError::UnsupportedType {
                database: database.clone(),
                table: table.clone(),
                column: name.clone(),
                code: column.raw_type,
            };
            let Some(column_type) = column.column_type else {
                return Err(unsupported());
            };
            let unsigned = if is_numeric(Some(column_type)) {
                numeric_index += 1;
                meta.unsigned
                    .as_ref()
                    .and_then(|flags| flags.get(numeric_index - 1).copied())
                    .unwrap_or(false)
            } else {
                false
            };
            let collation = if is_character(Some(column_type)) {
                character_index += 1;
                meta.collations
                    .as_ref()
                    .and_then(|c| c.get(character_index - 1).copied())
            } else {
                None
            };
            let text = |collation: Option<u16>| -> Result<ColumnDecoder, SchemaError> {
                let charset = collation
                    .and_then(collation_charset)
                    .or_else(|| facts.and_then(|f| f.charset.clone()));
                let Some(charset) = charset else {
                    // Neither the binlog nor the catalog knows (a column dropped since): keep
                    // text as text, anything else as base64.
                    return Ok(ColumnDecoder::TextOrBinary);
                };
                Charset::from_name(&charset)
                    .map(ColumnDecoder::Text)
                    .ok_or_else(|| SchemaError::UndecodableCharset {
                        database: database.clone(),
                        table: table.clone(),
                        column: name.clone(),
                        charset,
                        supported: Charset::SUPPORTED,
                    })
            };
            let fsp = u16::from(column.meta.first().copied().unwrap_or(0)).min(6);
            let decoder = match column_type {
                MYSQL_TYPE_TINY => ColumnDecoder::Integer { bits: 8, unsigned },
                MYSQL_TYPE_SHORT => ColumnDecoder::Integer { bits: 16, unsigned },
                MYSQL_TYPE_INT24 => ColumnDecoder::Integer { bits: 24, unsigned },
                MYSQL_TYPE_LONG => ColumnDecoder::Integer { bits: 32, unsigned },
                MYSQL_TYPE_LONGLONG => ColumnDecoder::Integer { bits: 64, unsigned },
                MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => ColumnDecoder::Float,
                MYSQL_TYPE_NEWDECIMAL => ColumnDecoder::Decimal,
                MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_STRING => match collation {
                    Some(BINARY_COLLATION) => ColumnDecoder::Binary,
                    Some(_) => text(collation)?,
                    None => match facts {
                        Some(f) if !f.is_text() => ColumnDecoder::Binary,
                        _ => text(None)?,
                    },
                },
                MYSQL_TYPE_TINY_BLOB
                | MYSQL_TYPE_MEDIUM_BLOB
                | MYSQL_TYPE_LONG_BLOB
                | MYSQL_TYPE_BLOB => {
                    if facts.is_some_and(|f| f.is_json) {
                        ColumnDecoder::JsonText
                    } else {
                        match collation {
                            Some(BINARY_COLLATION) => ColumnDecoder::Binary,
                            Some(_) => text(collation)?,
                            None => match facts {
                                Some(f) if f.is_text() => text(None)?,
                                Some(_) => ColumnDecoder::Binary,
                                None => ColumnDecoder::TextOrBinary,
                            },
                        }
                    }
                }
                MYSQL_TYPE_JSON => ColumnDecoder::MySqlJson,
                MYSQL_TYPE_GEOMETRY => ColumnDecoder::Geometry,
                MYSQL_TYPE_VECTOR => ColumnDecoder::Binary,
                MYSQL_TYPE_ENUM => {
                    enum_index += 1;
                    ColumnDecoder::Enum(
                        meta.enum_values
                            .get(enum_index - 1)
                            .cloned()
                            .unwrap_or_default(),
                    )
                }
                MYSQL_TYPE_SET => {
                    set_index += 1;
                    ColumnDecoder::Set(
                        meta.set_values
                            .get(set_index - 1)
                            .cloned()
                            .unwrap_or_default(),
                    )
                }
                MYSQL_TYPE_BIT => ColumnDecoder::Bit,
                MYSQL_TYPE_YEAR => ColumnDecoder::Year,
                MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => ColumnDecoder::Date,
                MYSQL_TYPE_TIME => ColumnDecoder::Time { fsp: 0 },
                MYSQL_TYPE_TIME2 => ColumnDecoder::Time { fsp },
                MYSQL_TYPE_DATETIME => ColumnDecoder::DateTime { fsp: 0 },
                MYSQL_TYPE_DATETIME2 => ColumnDecoder::DateTime { fsp },
                MYSQL_TYPE_TIMESTAMP => ColumnDecoder::Timestamp { fsp: 0 },
                MYSQL_TYPE_TIMESTAMP2 => ColumnDecoder::Timestamp { fsp },
                _ => return Err(unsupported()),
            };
            // An ENUM stored in more than 2 bytes or a SET in more than 8 cannot exist; a map
            // that says so is not one this reader understands.
            let sane = match column_type {
                MYSQL_TYPE_ENUM => matches!(column.meta.get(1), Some(1 | 2)),
                MYSQL_TYPE_SET => matches!(column.meta.get(1), Some(1..=8)),
                MYSQL_TYPE_BIT => le_uint(column.meta.get(..2).unwrap_or(&[])) > 0,
                _ => true,
            };
            if !sane {
                return Err(unsupported());
            }
            let is_excluded = excluded.is_some_and(|set| set.contains(&name));
            let binary_length = (column_type == MYSQL_TYPE_STRING
                && decoder == ColumnDecoder::Binary)
                .then(|| fixed_length(&column.meta))
                .flatten();
            columns.push(ColumnSpec {
                name,
                decoder,
                excluded: is_excluded,
            });
            wire.push(WireColumn {
                column_type,
                meta: column.meta.clone(),
                unsigned,
                binary_length,
            });
        }

        let key = meta.primary_key.clone();
        if key.is_empty() || key.iter().any(|&i| i >= columns.len()) {
            return Err(SchemaError::NoPrimaryKey { database, table });
        }
        if let Some(&i) = key.iter().find(|&&i| columns[i].excluded) {
            return Err(SchemaError::KeyColumnExcluded {
                database,
                table,
                column: columns[i].name.clone(),
            });
        }
        let binary_columns = columns
            .iter()
            .filter(|c| !c.excluded && c.decoder.is_binary())
            .map(|c| c.name.clone())
            .collect();
        Ok((
            TableSchema {
                database,
                table,
                columns,
                key,
                binary_columns,
            },
            wire,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::table_map::{MapColumn, OptionalMeta};

    fn col(column_type: ColumnType, meta: &[u8]) -> MapColumn {
        MapColumn {
            column_type: Some(column_type),
            raw_type: column_type as u8,
            meta: meta.to_vec(),
        }
    }

    fn map(columns: Vec<MapColumn>, optional: OptionalMeta) -> TableMap {
        TableMap {
            table_id: 1,
            database: "app".into(),
            table: "t".into(),
            columns,
            optional,
        }
    }

    #[test]
    fn binary_collation_and_charsets_pick_the_decoder() {
        use ColumnType::*;
        let m = map(
            vec![
                col(MYSQL_TYPE_STRING, &[0xFE, 16]),
                col(MYSQL_TYPE_VARCHAR, &[40, 0]),
                col(MYSQL_TYPE_BLOB, &[2]),
                col(MYSQL_TYPE_TIME2, &[6]),
                col(MYSQL_TYPE_LONG, &[]),
            ],
            OptionalMeta {
                names: Some(vec![
                    "id".into(),
                    "n".into(),
                    "b".into(),
                    "t".into(),
                    "u".into(),
                ]),
                unsigned: Some(vec![true]),
                collations: Some(vec![63, 8, 63]),
                primary_key: vec![0],
                ..OptionalMeta::default()
            },
        );
        let (schema, wire) =
            TableSchema::from_table_map(&m, &CaptureFilter::default(), None).unwrap();
        let decoders: Vec<&ColumnDecoder> = schema.columns.iter().map(|c| &c.decoder).collect();
        assert_eq!(decoders[0], &ColumnDecoder::Binary);
        assert_eq!(
            decoders[1],
            &ColumnDecoder::Text(Charset::from_name("latin1").unwrap())
        );
        assert_eq!(decoders[2], &ColumnDecoder::Binary);
        assert_eq!(decoders[3], &ColumnDecoder::Time { fsp: 6 });
        assert_eq!(
            decoders[4],
            &ColumnDecoder::Integer {
                bits: 32,
                unsigned: true
            }
        );
        assert!(wire[4].unsigned);
        assert_eq!(wire[0].binary_length, Some(16));
        assert_eq!(wire[1].binary_length, None);
        assert_eq!(
            schema.binary_columns,
            vec!["id".to_string(), "b".to_string()]
        );
    }

    #[test]
    fn unknown_types_and_charsets_are_refused_naming_the_column() {
        let mut unknown = col(ColumnType::MYSQL_TYPE_LONG, &[]);
        unknown.column_type = None;
        unknown.raw_type = 242;
        let m = map(
            vec![col(ColumnType::MYSQL_TYPE_LONG, &[]), unknown],
            OptionalMeta {
                names: Some(vec!["id".into(), "odd".into()]),
                primary_key: vec![0],
                ..OptionalMeta::default()
            },
        );
        let err = TableSchema::from_table_map(&m, &CaptureFilter::default(), None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("app.t") && text.contains("`odd`") && text.contains("242"),
            "{text}"
        );

        // gbk_chinese_ci (28)
        let m = map(
            vec![
                col(ColumnType::MYSQL_TYPE_LONG, &[]),
                col(ColumnType::MYSQL_TYPE_VARCHAR, &[40, 0]),
            ],
            OptionalMeta {
                names: Some(vec!["id".into(), "name".into()]),
                collations: Some(vec![28]),
                primary_key: vec![0],
                ..OptionalMeta::default()
            },
        );
        let text = TableSchema::from_table_map(&m, &CaptureFilter::default(), None)
            .unwrap_err()
            .to_string();
        assert!(text.contains("`name`") && text.contains("gbk"), "{text}");
    }
}
