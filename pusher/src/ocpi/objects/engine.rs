// Why this file exists: the checking engine, apart from the API and the rule types in mod.rs.
// One walk over the body in document order; a violation's path is a chain of segments on the
// stack, rendered into a String only when a violation is reported, so a valid body costs no
// allocation.

use std::fmt::{self, Write as _};

use serde_json::Value;

use super::{
    Cardinality, Completeness, FieldInfo, FieldKind, ObjectDef, Violation, MAX_VIOLATIONS,
};
use crate::ocpi::OcpiVersion;

/// The violations of `body` against `def`: empty when it is valid.
pub(super) fn walk(
    version: OcpiVersion,
    def: &'static ObjectDef,
    body: &Value,
    completeness: Completeness,
) -> Vec<Violation> {
    let mut checker = Checker {
        version,
        found: Vec::new(),
    };
    let root = Path {
        parent: None,
        seg: Seg::Root,
    };
    match completeness {
        Completeness::Whole => checker.object(def, body, &root, true),
        Completeness::Patch => {
            checker.object(def, body, &root, false);
            let needs_last_updated = version != OcpiVersion::V211;
            if let Some(map) = body.as_object() {
                if needs_last_updated && !map.contains_key("last_updated") {
                    let path = Path {
                        parent: Some(&root),
                        seg: Seg::Field("last_updated"),
                    };
                    checker.report(
                        &path,
                        format_args!("required in a PATCH (OCPI {version}), missing"),
                    );
                }
            }
        }
    }
    checker.found
}

/// Where in the body: a chain of segments on the stack, rendered only for a violation.
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

enum Seg<'a> {
    Root,
    Field(&'a str),
    Index(usize),
}

impl Path<'_> {
    fn render(&self, out: &mut String) {
        if let Some(parent) = self.parent {
            parent.render(out);
        }
        match self.seg {
            Seg::Root => {}
            Seg::Field(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
}

struct Checker {
    version: OcpiVersion,
    found: Vec<Violation>,
}

impl Checker {
    fn full(&self) -> bool {
        self.found.len() >= MAX_VIOLATIONS
    }

    fn report(&mut self, path: &Path<'_>, rule: fmt::Arguments<'_>) {
        if self.full() {
            return;
        }
        let mut rendered = String::new();
        path.render(&mut rendered);
        self.found.push(Violation {
            path: rendered,
            rule: rule.to_string(),
        });
    }

    /// An object or class; `whole`: every required field must be present.
    fn object(&mut self, def: &'static ObjectDef, value: &Value, path: &Path<'_>, whole: bool) {
        let version = self.version;
        let Some(map) = value.as_object() else {
            self.report(
                path,
                format_args!("a JSON object, found {}", describe(value)),
            );
            return;
        };
        // Which fields of `def` are present, by index (tables have at most 64 fields).
        let mut present: u64 = 0;
        // Bodies mostly follow the spec's field order: try the field after the last one first.
        let mut next = 0;
        for (key, item) in map {
            if self.full() {
                return;
            }
            let child = Path {
                parent: Some(path),
                seg: Seg::Field(key),
            };
            let index = match def.fields.get(next) {
                Some(f) if f.name == key => Some(next),
                _ => def.fields.iter().position(|f| f.name == key),
            };
            match index {
                Some(i) => {
                    next = i + 1;
                    present |= 1u64 << i;
                    self.field(&def.fields[i], item, &child);
                }
                None => self.report(
                    &child,
                    format_args!("not a field of OCPI {version} {}", def.name),
                ),
            }
        }
        if !whole {
            return;
        }
        for (i, f) in def.fields.iter().enumerate() {
            if f.required && present & (1u64 << i) == 0 {
                let child = Path {
                    parent: Some(path),
                    seg: Seg::Field(f.name),
                };
                self.report(
                    &child,
                    format_args!("required ({}), missing", f.cardinality.as_str()),
                );
            }
        }
        if let [first, second] = def.exactly_one_of {
            let count =
                usize::from(map.contains_key(*first)) + usize::from(map.contains_key(*second));
            if count != 1 {
                let found = if count == 0 { "none" } else { "both" };
                self.report(
                    path,
                    format_args!(
                        "exactly one of `{first}`, `{second}` (OCPI {version} {}), found {found}",
                        def.name
                    ),
                );
            }
        }
    }

    /// One present field: `null`, the cardinality, then each value.
    fn field(&mut self, f: &FieldInfo, value: &Value, path: &Path<'_>) {
        if value.is_null() {
            if f.required {
                self.report(
                    path,
                    format_args!("required ({}), found null", f.cardinality.as_str()),
                );
            } else {
                self.report(
                    path,
                    format_args!("null is not allowed: leave the field out"),
                );
            }
            return;
        }
        match f.cardinality {
            Cardinality::One | Cardinality::Optional => self.value(f.kind, value, path),
            Cardinality::List | Cardinality::NonEmptyList => {
                let Some(items) = value.as_array() else {
                    self.report(
                        path,
                        format_args!(
                            "an array ({}), found {}",
                            f.cardinality.as_str(),
                            describe(value)
                        ),
                    );
                    return;
                };
                if items.is_empty() && f.cardinality == Cardinality::NonEmptyList {
                    self.report(path, format_args!("at least 1 element"));
                }
                for (i, item) in items.iter().enumerate() {
                    if self.full() {
                        return;
                    }
                    let child = Path {
                        parent: Some(path),
                        seg: Seg::Index(i),
                    };
                    self.value(f.kind, item, &child);
                }
            }
        }
    }

    /// One value of a field (an element, for arrays).
    fn value(&mut self, kind: FieldKind, value: &Value, path: &Path<'_>) {
        let version = self.version;
        match kind {
            FieldKind::Text(max) => self.text(value, path, max, false),
            FieldKind::CiText(max) => self.text(value, path, max, true),
            FieldKind::Url => self.text(value, path, 255, false),
            FieldKind::DateTime => self.date_time(value, path),
            FieldKind::Number => {
                if !value.is_number() {
                    self.report(path, format_args!("a number, found {}", describe(value)));
                }
            }
            FieldKind::Integer(digits) => self.integer(value, path, digits),
            FieldKind::Boolean => {
                if !value.is_boolean() {
                    self.report(path, format_args!("a boolean, found {}", describe(value)));
                }
            }
            FieldKind::Enum(def) => match value.as_str() {
                Some(s) if def.values.contains(&s) => {}
                Some(s) => self.report(
                    path,
                    format_args!(
                        "one of {} (OCPI {version}), found {}",
                        Listed(def.values),
                        Shown(s)
                    ),
                ),
                None => self.report(
                    path,
                    format_args!("a string ({}), found {}", def.name, describe(value)),
                ),
            },
            FieldKind::Object(def) => self.object(def, value, path, true),
        }
    }

    fn text(&mut self, value: &Value, path: &Path<'_>, max: u16, ascii: bool) {
        let Some(s) = value.as_str() else {
            self.report(path, format_args!("a string, found {}", describe(value)));
            return;
        };
        // The first character the type does not allow, and the length in characters. ASCII,
        // the common case, goes by bytes: below space or DEL is what both rules exclude.
        let (bad, count) = if s.is_ascii() {
            let bad = s.bytes().position(|b| b < b' ' || b == 0x7f);
            (bad.map(|i| (i, char::from(s.as_bytes()[i]))), s.len())
        } else if ascii {
            // Not ASCII, so a CiString fails at its first non-ASCII character: no count needed.
            (
                s.chars()
                    .enumerate()
                    .find(|(_, c)| !c.is_ascii() || c.is_ascii_control()),
                0,
            )
        } else {
            (
                s.chars().enumerate().find(|(_, c)| c.is_control()),
                s.chars().count(),
            )
        };
        if let Some((i, c)) = bad {
            let what = if ascii {
                "printable ASCII (CiString)"
            } else {
                "no control characters"
            };
            let code = u32::from(c);
            self.report(
                path,
                format_args!("{what}, found U+{code:04X} at character {}", i + 1),
            );
        } else if max > 0 && count > usize::from(max) {
            self.report(
                path,
                format_args!("at most {max} characters, found {count}"),
            );
        }
    }

    fn integer(&mut self, value: &Value, path: &Path<'_>, digits: u8) {
        let magnitude = match (value.as_i64(), value.as_u64()) {
            (Some(i), _) => i.unsigned_abs(),
            (None, Some(u)) => u,
            _ => {
                self.report(path, format_args!("an integer, found {}", Described(value)));
                return;
            }
        };
        if digits > 0 && magnitude >= 10u64.saturating_pow(u32::from(digits)) {
            self.report(
                path,
                format_args!(
                    "an integer of at most {digits} digits, found {}",
                    Described(value)
                ),
            );
        }
    }

    fn date_time(&mut self, value: &Value, path: &Path<'_>) {
        let Some(s) = value.as_str() else {
            self.report(
                path,
                format_args!("a date-time string, found {}", describe(value)),
            );
            return;
        };
        if !is_utc_date_time(s) {
            self.report(
                path,
                format_args!("an RFC 3339 UTC date-time ending in Z, found {}", Shown(s)),
            );
        } else if s.len() > 25 {
            self.report(
                path,
                format_args!("at most 25 characters (DateTime), found {}", s.len()),
            );
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, with real calendar dates and times.
fn is_utc_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return false;
    }
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0u32, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if seps.iter().any(|&(i, c)| b[i] != c) {
        return false;
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        num(0, 4),
        num(5, 2),
        num(8, 2),
        num(11, 2),
        num(14, 2),
        num(17, 2),
    ) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    // Second 60: RFC 3339 allows a leap second.
    if day == 0 || day > days || hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    match &b[19..b.len() - 1] {
        [] => true,
        [b'.', fraction @ ..] => !fraction.is_empty() && fraction.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// The JSON type of a value, as a violation names it.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value's type, and the number itself when it is one (`a number, 230.5`).
struct Described<'a>(&'a Value);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Number(n) => write!(f, "{n}"),
            other => f.write_str(describe(other)),
        }
    }
}

/// A found string, quoted and cut to a readable length.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 40;
        match self.0.char_indices().nth(MAX) {
            Some((cut, _)) => write!(f, "{:?}...", &self.0[..cut]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// Enum values, comma-separated.
struct Listed(&'static [&'static str]);

impl fmt::Display for Listed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(v)?;
        }
        Ok(())
    }
}
