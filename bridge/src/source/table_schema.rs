//! How to read each column of a captured table, worked out once per table map event from the
//! binlog's own metadata (binlog_row_metadata=FULL) and the catalog facts the binlog lacks
//! (which text columns are binary, which hold MariaDB JSON).

use super::decode::ColumnDecoder;
use crate::capture_filter::CaptureFilter;
use crate::schema_catalog::TableCatalog;
use mysql_cdc::events::table_map_event::TableMapEvent;

// Column type codes of the binlog protocol (mysql_cdc keeps its own enum private).
pub(crate) mod type_code {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}
use type_code as t;

#[derive(Debug)]
pub struct ColumnSpec {
    pub name: String,
    pub decoder: ColumnDecoder,
    /// Left out of messages (`capture.exclude_columns`); still decoded because the binlog
    /// carries it, but never published.
    pub excluded: bool,
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
         primary key, or leave the table out with capture.exclude_tables = [\"{database}.{table}\"]"
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
        "table {database}.{table}: column type code {code} of column `{column}` is not supported"
    )]
    UnsupportedType {
        database: String,
        table: String,
        column: String,
        code: u8,
    },
}

/// CHAR columns hide ENUM and SET (and long CHAR lengths) in their metadata; this recovers the
/// real type the same way the server does.
pub(crate) fn real_type(code: u8, metadata: u16) -> u8 {
    if code == t::STRING && metadata >= 256 {
        let byte0 = (metadata >> 8) as u8;
        if (byte0 & 0x30) != 0x30 {
            return byte0 | 0x30; // a long CHAR
        }
        if byte0 == t::ENUM || byte0 == t::SET {
            return byte0;
        }
    }
    code
}

fn is_numeric(code: u8) -> bool {
    matches!(
        code,
        t::TINY
            | t::SHORT
            | t::INT24
            | t::LONG
            | t::LONGLONG
            | t::FLOAT
            | t::DOUBLE
            | t::NEWDECIMAL
    )
}

impl TableSchema {
    pub fn from_table_map(
        map: &TableMapEvent,
        filter: &CaptureFilter,
        catalog: Option<&TableCatalog>,
    ) -> Result<TableSchema, SchemaError> {
        let database = map.database_name.clone();
        let table = map.table_name.clone();
        let metadata = map.table_metadata.as_ref();
        let names = metadata
            .and_then(|m| m.column_names.clone())
            .filter(|names| names.len() == map.column_types.len())
            .ok_or_else(|| SchemaError::NoColumnNames {
                database: database.clone(),
                table: table.clone(),
            })?;
        let signedness = metadata
            .and_then(|m| m.signedness.clone())
            .unwrap_or_default();
        let enum_values = metadata
            .and_then(|m| m.enum_string_values.clone())
            .unwrap_or_default();
        let set_values = metadata
            .and_then(|m| m.set_string_values.clone())
            .unwrap_or_default();
        let excluded = filter.excluded_columns(&database, &table);

        let mut numeric_index = 0usize;
        let mut enum_index = 0usize;
        let mut set_index = 0usize;
        let mut columns = Vec::with_capacity(names.len());
        for (i, name) in names.into_iter().enumerate() {
            let meta = map.column_metadata.get(i).copied().unwrap_or(0);
            let code = real_type(map.column_types[i], meta);
            let facts = catalog.and_then(|c| c.column(&name));
            let decoder = match code {
                t::TINY | t::SHORT | t::INT24 | t::LONG | t::LONGLONG => {
                    // The SIGNEDNESS bitmap has one bit per numeric column: set means UNSIGNED.
                    let unsigned = signedness.get(numeric_index).copied().unwrap_or(false);
                    let bits = match code {
                        t::TINY => 8,
                        t::SHORT => 16,
                        t::INT24 => 24,
                        t::LONG => 32,
                        _ => 64,
                    };
                    ColumnDecoder::Integer { bits, unsigned }
                }
                t::FLOAT | t::DOUBLE => ColumnDecoder::Float,
                t::NEWDECIMAL | t::DECIMAL => ColumnDecoder::Decimal,
                t::VARCHAR | t::VAR_STRING | t::STRING => ColumnDecoder::Text,
                t::TINY_BLOB | t::MEDIUM_BLOB | t::LONG_BLOB | t::BLOB => {
                    if facts.is_some_and(|f| f.is_json) {
                        ColumnDecoder::JsonText
                    } else if facts.is_some_and(|f| f.is_text()) {
                        ColumnDecoder::Text
                    } else if facts.is_some() {
                        ColumnDecoder::Binary
                    } else {
                        // A column the catalog does not know (dropped since this binlog was
                        // written): keep text as text, anything else as base64.
                        ColumnDecoder::TextOrBinary
                    }
                }
                t::JSON => ColumnDecoder::MySqlJson,
                t::GEOMETRY => ColumnDecoder::Binary,
                t::ENUM => {
                    let values = enum_values.get(enum_index).cloned().unwrap_or_default();
                    enum_index += 1;
                    ColumnDecoder::Enum(values)
                }
                t::SET => {
                    let values = set_values.get(set_index).cloned().unwrap_or_default();
                    set_index += 1;
                    ColumnDecoder::Set(values)
                }
                t::BIT => ColumnDecoder::Bit,
                t::YEAR => ColumnDecoder::Year,
                t::DATE => ColumnDecoder::Date,
                t::TIME => ColumnDecoder::Time { fsp: 0 },
                t::TIME2 => ColumnDecoder::Time { fsp: meta },
                t::DATETIME => ColumnDecoder::DateTime { fsp: 0 },
                t::DATETIME2 => ColumnDecoder::DateTime { fsp: meta },
                t::TIMESTAMP => ColumnDecoder::Timestamp { fsp: 0 },
                t::TIMESTAMP2 => ColumnDecoder::Timestamp { fsp: meta },
                other => {
                    return Err(SchemaError::UnsupportedType {
                        database,
                        table,
                        column: name,
                        code: other,
                    })
                }
            };
            if is_numeric(code) {
                numeric_index += 1;
            }
            let is_excluded = excluded.is_some_and(|set| set.contains(&name));
            columns.push(ColumnSpec {
                name,
                decoder,
                excluded: is_excluded,
            });
        }

        let key: Vec<usize> = match metadata {
            Some(m) => match (&m.simple_primary_keys, &m.primary_keys_with_prefix) {
                (Some(simple), _) if !simple.is_empty() => {
                    simple.iter().map(|&i| i as usize).collect()
                }
                (_, Some(prefixed)) if !prefixed.is_empty() => {
                    prefixed.iter().map(|&(i, _)| i as usize).collect()
                }
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
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
        Ok(TableSchema {
            database,
            table,
            columns,
            key,
            binary_columns,
        })
    }

    /// Published names of the columns of a given kind, for error messages that must name the
    /// column when the binlog reader cannot say which one failed.
    pub fn columns_matching(&self, pred: impl Fn(&ColumnDecoder) -> bool) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| pred(&c.decoder))
            .map(|c| c.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_and_set_hide_behind_char_metadata() {
        // enum('Low','Medium','High'): type STRING, metadata 0xF701
        assert_eq!(real_type(t::STRING, 63233), t::ENUM);
        // set('Green','Yellow','Red'): type STRING, metadata 0xF801
        assert_eq!(real_type(t::STRING, 63489), t::SET);
        // char(200) utf8mb4
        assert_eq!(real_type(t::STRING, 52768), t::STRING);
        assert_eq!(real_type(t::VARCHAR, 400), t::VARCHAR);
    }
}
