//! DDL statements that change a table's rows without writing a row event for them: TRUNCATE,
//! DROP TABLE / DATABASE, RENAME TABLE, `ALTER TABLE ... RENAME`, partition drops and exchanges,
//! tablespace discards, MariaDB's `CREATE OR REPLACE TABLE`. DDL is always logged as a
//! statement, so a replica that only reads row events would pass over these as a plain
//! transaction end and the partners would keep rows the database no longer has. This module
//! reads such a statement and says which tables it touches; the reader decides what that means
//! for the tables it captures.

use crate::capture_filter::{is_online_schema_change_table, CaptureFilter};

/// What one statement does to one table (or database), as far as the rows are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The table's rows changed wholesale (emptied, dropped, replaced, swapped in or out).
    Reset {
        table: (String, String),
        statement: &'static str,
    },
    /// A whole database dropped.
    DatabaseDropped(String),
    /// The table now lives under another name.
    Renamed {
        from: (String, String),
        to: (String, String),
    },
}

/// The effects of `sql` (run with `default_database` selected) on table contents; empty for
/// every statement that leaves rows alone or logs them as row events.
pub fn effects(sql: &str, default_database: &str) -> Vec<Effect> {
    let tokens = tokenize(sql);
    let mut p = Parser {
        tokens: &tokens,
        at: 0,
        default_database,
    };
    p.statement().unwrap_or_default()
}

/// The effects that change captured tables without row events, described for the operator
/// (`TRUNCATE of captured table app.tariffs`). The cut-over of an online schema change (the
/// captured table renamed away and its shadow copy renamed to its name, in one statement) is
/// not one: the copy holds the same records, built from the original and its changes.
pub fn unseen_changes(effects: &[Effect], filter: &CaptureFilter) -> Vec<String> {
    let captured = |(database, table): &(String, String)| filter.captures_table(database, table);
    let shadow = |(_, table): &(String, String)| is_online_schema_change_table(table);
    let mut unseen = Vec::new();
    for effect in effects {
        match effect {
            Effect::Reset { table, statement } if captured(table) => unseen.push(format!(
                "{statement} of captured table {}.{}",
                table.0, table.1
            )),
            Effect::DatabaseDropped(database) if filter.databases().any(|d| d == database) => {
                unseen.push(format!("DROP DATABASE of captured database {database}"))
            }
            Effect::Renamed { from, to } if captured(from) => {
                let replaced_by_copy = effects.iter().any(|other| {
                    matches!(other, Effect::Renamed { from: copy, to: name }
                        if name == from && shadow(copy) && !captured(copy))
                });
                if !replaced_by_copy {
                    unseen.push(format!(
                        "RENAME of captured table {}.{} to {}.{}",
                        from.0, from.1, to.0, to.1
                    ));
                }
            }
            Effect::Renamed { from, to } if captured(to) && !shadow(from) => unseen.push(format!(
                "RENAME of table {}.{} to captured name {}.{}",
                from.0, from.1, to.0, to.1
            )),
            _ => {}
        }
    }
    unseen
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A bare word (keyword or identifier).
    Word(String),
    /// A `quoted` identifier: never a keyword.
    Quoted(String),
    Punct(char),
    /// A string literal (its text does not matter here).
    Literal,
}

/// Splits a statement into tokens, leaving out comments and whitespace.
fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('*') {
            i = find_from(&chars, i + 2, &['*', '/']).map_or(chars.len(), |end| end + 2);
        } else if c == '#' || (c == '-' && next == Some('-')) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '`' || c == '"' || c == '\'' {
            let (text, end) = quoted(&chars, i);
            tokens.push(if c == '`' {
                Token::Quoted(text)
            } else {
                Token::Literal
            });
            i = end;
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    tokens
}

fn find_from(chars: &[char], from: usize, pattern: &[char]) -> Option<usize> {
    (from..chars.len()).find(|&i| chars[i..].starts_with(pattern))
}

/// A quoted token starting at `start`: its text (doubled quotes undone) and the index after it.
fn quoted(chars: &[char], start: usize) -> (String, usize) {
    let quote = chars[start];
    let mut text = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == quote {
            if chars.get(i + 1) == Some(&quote) {
                text.push(quote);
                i += 2;
                continue;
            }
            return (text, i + 1);
        }
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        if let Some(&c) = chars.get(i) {
            text.push(c);
        }
        i += 1;
    }
    (text, i)
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    default_database: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    /// Whether the next token is the keyword `word` (consumed when it is).
    fn eat(&mut self, word: &str) -> bool {
        let hit = matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word));
        if hit {
            self.at += 1;
        }
        hit
    }

    fn eat_punct(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(&Token::Punct(c));
        if hit {
            self.at += 1;
        }
        hit
    }

    fn eat_all(&mut self, words: &[&str]) -> bool {
        let start = self.at;
        if words.iter().all(|w| self.eat(w)) {
            return true;
        }
        self.at = start;
        false
    }

    fn identifier(&mut self) -> Option<String> {
        let text = match self.peek()? {
            Token::Word(w) | Token::Quoted(w) => w.clone(),
            _ => return None,
        };
        self.at += 1;
        Some(text)
    }

    /// `name` or `database.name`.
    fn table_name(&mut self) -> Option<(String, String)> {
        let first = self.identifier()?;
        if self.eat_punct('.') {
            let table = self.identifier()?;
            return Some((first, table));
        }
        Some((self.default_database.to_string(), first))
    }

    /// `a, b, c`.
    fn table_list(&mut self) -> Vec<(String, String)> {
        let mut tables = Vec::new();
        while let Some(table) = self.table_name() {
            tables.push(table);
            if !self.eat_punct(',') {
                break;
            }
        }
        tables
    }

    fn statement(&mut self) -> Option<Vec<Effect>> {
        let reset = |statement: &'static str, tables: Vec<(String, String)>| {
            tables
                .into_iter()
                .map(|table| Effect::Reset { table, statement })
                .collect()
        };
        if self.eat("truncate") {
            self.eat("table");
            return Some(reset("TRUNCATE", self.table_name().into_iter().collect()));
        }
        if self.eat("drop") {
            if self.eat("temporary") {
                return None;
            }
            if self.eat("database") || self.eat("schema") {
                self.eat_all(&["if", "exists"]);
                return Some(vec![Effect::DatabaseDropped(self.identifier()?)]);
            }
            if !self.eat("table") {
                return None;
            }
            self.eat_all(&["if", "exists"]);
            return Some(reset("DROP TABLE", self.table_list()));
        }
        if self.eat("rename") {
            if !self.eat("table") {
                return None;
            }
            return Some(self.rename_pairs());
        }
        if self.eat("create") {
            if !self.eat_all(&["or", "replace"]) {
                return None;
            }
            if !self.eat("table") {
                return None;
            }
            return Some(reset(
                "CREATE OR REPLACE TABLE",
                self.table_name().into_iter().collect(),
            ));
        }
        if self.eat("alter") {
            self.eat("online");
            self.eat("ignore");
            if !self.eat("table") {
                return None;
            }
            self.eat_all(&["if", "exists"]);
            let table = self.table_name()?;
            return Some(self.alter_clauses(table));
        }
        None
    }

    /// `a TO b, c TO d` of RENAME TABLE.
    fn rename_pairs(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        while let Some(from) = self.table_name() {
            // MariaDB: `RENAME TABLE [IF EXISTS] a [WAIT n | NOWAIT] TO b`.
            if self.eat("wait") {
                self.at += 1;
            }
            self.eat("nowait");
            if !self.eat("to") {
                break;
            }
            let Some(to) = self.table_name() else { break };
            effects.push(Effect::Renamed { from, to });
            if !self.eat_punct(',') {
                break;
            }
        }
        effects
    }

    /// The clauses of `ALTER TABLE table ...` that move rows without row events.
    fn alter_clauses(&mut self, table: (String, String)) -> Vec<Effect> {
        let mut effects = Vec::new();
        let mut depth = 0usize;
        let mut clause_start = true;
        while let Some(token) = self.peek().cloned() {
            self.at += 1;
            match token {
                Token::Punct('(') => depth += 1,
                Token::Punct(')') => depth = depth.saturating_sub(1),
                Token::Punct(',') if depth == 0 => {
                    clause_start = true;
                    continue;
                }
                Token::Word(word) if depth == 0 && clause_start => {
                    self.alter_clause(&word, &table, &mut effects);
                }
                _ => {}
            }
            clause_start = false;
        }
        effects
    }

    fn alter_clause(&mut self, word: &str, table: &(String, String), out: &mut Vec<Effect>) {
        let word = word.to_ascii_lowercase();
        let reset = |statement| Effect::Reset {
            table: table.clone(),
            statement,
        };
        match word.as_str() {
            "rename" => {
                let follows = |p: &Parser, w: &str| matches!(p.peek(), Some(Token::Word(x)) if x.eq_ignore_ascii_case(w));
                if ["column", "index", "key", "constraint"]
                    .iter()
                    .any(|w| follows(self, w))
                {
                    return;
                }
                if !self.eat("to") {
                    self.eat("as");
                }
                if let Some(to) = self.table_name() {
                    out.push(Effect::Renamed {
                        from: table.clone(),
                        to,
                    });
                }
            }
            "drop" | "truncate" if self.eat("partition") => out.push(reset(if word == "drop" {
                "ALTER TABLE ... DROP PARTITION"
            } else {
                "ALTER TABLE ... TRUNCATE PARTITION"
            })),
            "exchange" if self.eat("partition") => {
                out.push(reset("ALTER TABLE ... EXCHANGE PARTITION"));
                // `EXCHANGE PARTITION p WITH TABLE other`: the other table's rows move too.
                self.identifier();
                if self.eat_all(&["with", "table"]) {
                    if let Some(other) = self.table_name() {
                        out.push(Effect::Reset {
                            table: other,
                            statement: "ALTER TABLE ... EXCHANGE PARTITION",
                        });
                    }
                }
            }
            "discard" | "import" if self.eat("tablespace") => {
                out.push(reset(if word == "discard" {
                    "ALTER TABLE ... DISCARD TABLESPACE"
                } else {
                    "ALTER TABLE ... IMPORT TABLESPACE"
                }))
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(db: &str, table: &str) -> (String, String) {
        (db.to_string(), table.to_string())
    }

    fn reset(db: &str, table: &str, statement: &'static str) -> Effect {
        Effect::Reset {
            table: t(db, table),
            statement,
        }
    }

    #[test]
    fn truncate_and_drop_name_their_tables() {
        assert_eq!(
            effects("TRUNCATE TABLE tariffs", "app"),
            vec![reset("app", "tariffs", "TRUNCATE")]
        );
        assert_eq!(
            effects("truncate `shop`.`items`", "app"),
            vec![reset("shop", "items", "TRUNCATE")]
        );
        assert_eq!(
            effects(
                "DROP TABLE IF EXISTS `a`,`other`.`b` /* generated by server */",
                "app"
            ),
            vec![
                reset("app", "a", "DROP TABLE"),
                reset("other", "b", "DROP TABLE")
            ]
        );
        assert_eq!(
            effects("DROP TEMPORARY TABLE IF EXISTS scratch", "app"),
            vec![]
        );
        assert_eq!(
            effects("DROP DATABASE IF EXISTS `app`", "x"),
            vec![Effect::DatabaseDropped("app".into())]
        );
        assert_eq!(
            effects("/* cleanup */ CREATE OR REPLACE TABLE t (id INT)", "app"),
            vec![reset("app", "t", "CREATE OR REPLACE TABLE")]
        );
    }

    #[test]
    fn renames_are_read_pair_by_pair() {
        assert_eq!(
            effects(
                "rename /* gh-ost */ table `app`.`t` to `app`.`_t_del`, `app`.`_t_gho` to `app`.`t`",
                "x"
            ),
            vec![
                Effect::Renamed {
                    from: t("app", "t"),
                    to: t("app", "_t_del")
                },
                Effect::Renamed {
                    from: t("app", "_t_gho"),
                    to: t("app", "t")
                },
            ]
        );
        assert_eq!(
            effects("ALTER TABLE tariffs RENAME TO old_tariffs", "app"),
            vec![Effect::Renamed {
                from: t("app", "tariffs"),
                to: t("app", "old_tariffs")
            }]
        );
    }

    #[test]
    fn alter_table_moves_rows_only_with_some_clauses() {
        assert_eq!(
            effects(
                "ALTER TABLE t ADD COLUMN note TEXT, RENAME COLUMN a TO b, RENAME INDEX i TO j",
                "app"
            ),
            vec![]
        );
        assert_eq!(
            effects(
                "ALTER TABLE t ADD COLUMN `partition` INT, DROP COLUMN x",
                "app"
            ),
            vec![]
        );
        assert_eq!(
            effects("ALTER TABLE sessions DROP PARTITION p2019, p2020", "app"),
            vec![reset("app", "sessions", "ALTER TABLE ... DROP PARTITION")]
        );
        assert_eq!(
            effects(
                "ALTER TABLE e EXCHANGE PARTITION p0 WITH TABLE e2 WITHOUT VALIDATION",
                "app"
            ),
            vec![
                reset("app", "e", "ALTER TABLE ... EXCHANGE PARTITION"),
                reset("app", "e2", "ALTER TABLE ... EXCHANGE PARTITION")
            ]
        );
        assert_eq!(
            effects(
                "ALTER TABLE t COMMENT 'drop partition', ENGINE=InnoDB",
                "app"
            ),
            vec![]
        );
    }

    fn app_filter() -> CaptureFilter {
        CaptureFilter::new(&crate::config::CaptureConfig {
            databases: vec!["app".into()],
            exclude_tables: vec!["app.audit".into()],
            ..Default::default()
        })
    }

    #[test]
    fn only_changes_to_captured_tables_are_unseen_changes() {
        let f = app_filter();
        let unseen = |sql: &str| unseen_changes(&effects(sql, "app"), &f);
        assert_eq!(
            unseen("TRUNCATE tariffs"),
            vec!["TRUNCATE of captured table app.tariffs"]
        );
        assert!(unseen("TRUNCATE audit").is_empty());
        assert!(unseen("DROP TABLE other.tariffs").is_empty());
        assert_eq!(
            unseen("DROP DATABASE app"),
            vec!["DROP DATABASE of captured database app"]
        );
        assert_eq!(
            unseen("RENAME TABLE tariffs TO tariffs_2024"),
            vec!["RENAME of captured table app.tariffs to app.tariffs_2024"]
        );
        assert_eq!(
            unseen("RENAME TABLE other.t TO app.t"),
            vec!["RENAME of table other.t to captured name app.t"]
        );
        assert!(unseen("RENAME TABLE app.t TO other.t, other.t2 TO other.t3").len() == 1);
    }

    #[test]
    fn the_cut_over_of_an_online_schema_change_is_no_unseen_change() {
        let f = app_filter();
        let unseen = |sql: &str| unseen_changes(&effects(sql, "app"), &f);
        // gh-ost and pt-online-schema-change swap the shadow copy in with one RENAME.
        assert!(
            unseen("RENAME TABLE `app`.`t` TO `app`.`_t_del`, `app`.`_t_gho` TO `app`.`t`")
                .is_empty()
        );
        assert!(unseen("RENAME TABLE t TO _t_old, _t_new TO t").is_empty());
        assert!(unseen("DROP TABLE IF EXISTS `_t_old`").is_empty());
        // Renaming the captured table away alone leaves partners with its records.
        assert_eq!(unseen("RENAME TABLE t TO _t_old").len(), 1);
        // A table that is not a shadow copy swapped in brings records nobody saw.
        assert_eq!(unseen("RENAME TABLE t TO t_prev, t_next TO t").len(), 2);
    }

    #[test]
    fn other_statements_have_no_effect() {
        for sql in [
            "BEGIN",
            "COMMIT",
            "CREATE TABLE t (id INT PRIMARY KEY)",
            "CREATE INDEX i ON t (a)",
            "DROP INDEX i ON t",
            "DROP VIEW v",
            "INSERT INTO t VALUES (1)",
            "GRANT SELECT ON app.* TO 'x'@'%'",
        ] {
            assert_eq!(effects(sql, "app"), vec![], "{sql}");
        }
    }
}
