//! Object rules of a schema-validating OCPI receiver, so the double refuses what a strict real
//! partner refuses. The object tables of each version are data (one file per version, written
//! from that version's object and type tables); this file holds the vocabulary they are written
//! in and the checker that walks a JSON body against them.
//!
//! What is checked: required fields (card. `1` and `+`) present and not null, `+` lists not
//! empty, JSON types, enum values of the version, string lengths (in characters), printable
//! text (ASCII for CiString, and for every string in 2.1.1), DateTime as RFC 3339 in UTC with a
//! trailing `Z` (fractions allowed), int digits (`int(5)`), and unknown fields when the version
//! refuses them. A PATCH body is checked field by field (each present field fully, nested
//! objects whole); the caller re-checks the merged object as a whole.
//!
//! Deliberately not checked: semantic rules across fields beyond a few named in the tables
//! (see each [`Schema::check`]), ISO code lists (country, currency, language are checked by
//! length only), URL syntax, the `string(25)` length of DateTime (microseconds would exceed it,
//! and receivers accept them), and the OpenEnum values of 2.3.0 (any string: the 2.3.0 text
//! leaves room for values it does not list).

mod v211;
mod v221;
mod v230;

use std::fmt;

use serde_json::{Map, Value};

use super::{parse_rfc3339, PartnerVersion};

/// The type of a field, as the object tables name it.
#[derive(Clone, Copy)]
pub(crate) enum Ty {
    /// `string(n)`: case-sensitive printable text of at most n characters (0: no limit).
    Str(usize),
    /// `CiString(n)`: printable ASCII of at most n characters (0: no limit).
    CiStr(usize),
    /// `int`, or `int(n)` with at most n digits (0: no limit).
    Int(u32),
    /// `number` (decimal).
    Num,
    /// `boolean`.
    Bool,
    /// `DateTime`.
    DateTime,
    /// `URL`: a string(255).
    Url,
    /// An enum: exactly one of these values.
    Enum(&'static [&'static str]),
    /// A 2.3.0 OpenEnum: these are the known values, any string is allowed.
    OpenEnum(&'static [&'static str]),
    /// A class or object.
    Obj(&'static Schema),
}

/// Cardinality: `1`, `?`, `*` and `+`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Card {
    One,
    Opt,
    Many,
    AtLeastOne,
}

impl Card {
    fn required(self) -> bool {
        matches!(self, Card::One | Card::AtLeastOne)
    }

    fn symbol(self) -> &'static str {
        match self {
            Card::One => "1",
            Card::Opt => "?",
            Card::Many => "*",
            Card::AtLeastOne => "+",
        }
    }
}

/// One row of an object table.
pub(crate) struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub card: Card,
}

/// `1`: required, one value.
pub(crate) const fn one(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        card: Card::One,
    }
}

/// `?`: optional, one value.
pub(crate) const fn opt(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        card: Card::Opt,
    }
}

/// `*`: optional list.
pub(crate) const fn many(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        card: Card::Many,
    }
}

/// `+`: required list of at least one.
pub(crate) const fn at_least_one(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        card: Card::AtLeastOne,
    }
}

/// An object or class table.
pub(crate) struct Schema {
    /// Its name in the specification ("EVSE", "CdrToken", ...).
    pub name: &'static str,
    pub fields: &'static [Field],
    /// A rule across fields the table states in words (checked on whole objects only).
    pub check: Option<CrossFieldRule>,
}

/// A rule across the fields of one object.
pub(crate) type CrossFieldRule = fn(&Map<String, Value>) -> Result<(), Violation>;

impl Schema {
    fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// The objects a receiver of one version is sent, and how strict that version is.
pub(crate) struct VersionRules {
    pub location: &'static Schema,
    pub evse: &'static Schema,
    pub connector: &'static Schema,
    pub session: &'static Schema,
    pub cdr: &'static Schema,
    pub tariff: &'static Schema,
    pub token: &'static Schema,
    /// Refuse fields the table does not name (schema validators with
    /// additionalProperties=false; 2.3.0 forbids refusing them).
    pub refuse_unknown_fields: bool,
    /// Every string is printable ASCII (2.1.1), not only CiStrings.
    pub ascii_strings: bool,
}

/// The rules of a version.
pub(crate) fn for_version(version: PartnerVersion) -> &'static VersionRules {
    match version {
        PartnerVersion::V211 => &v211::RULES,
        PartnerVersion::V221 => &v221::RULES,
        PartnerVersion::V230 => &v230::RULES,
    }
}

/// One step of the way to a value inside a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Field(String),
    Index(usize),
}

/// Why an object is refused: where, and which rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// From the body's top level to the offending value.
    pub path: Vec<Step>,
    /// The rule, in words ("field required (card. +)").
    pub rule: String,
    /// The error type a web framework would name: "value_error.missing", "type_error", ...
    pub kind: &'static str,
}

impl Violation {
    pub(crate) fn new(path: &[Step], kind: &'static str, rule: impl Into<String>) -> Self {
        Violation {
            path: path.to_vec(),
            rule: rule.into(),
            kind,
        }
    }

    /// "evses[0].connectors" (the body itself: "body").
    pub(crate) fn location(&self) -> String {
        let mut out = String::new();
        for step in &self.path {
            match step {
                Step::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        if out.is_empty() {
            out.push_str("body");
        }
        out
    }

    /// The path as a web framework's `loc`: `["body", "evses", 0, "connectors"]`.
    pub(crate) fn loc(&self) -> Vec<Value> {
        std::iter::once(Value::from("body"))
            .chain(self.path.iter().map(|step| match step {
                Step::Field(name) => Value::from(name.as_str()),
                Step::Index(i) => Value::from(*i),
            }))
            .collect()
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location(), self.rule)
    }
}

/// Checks a whole object (PUT, POST, or the result of a PATCH).
pub(crate) fn check_whole(
    rules: &VersionRules,
    schema: &Schema,
    body: &Map<String, Value>,
) -> Result<(), Violation> {
    Checker { rules }.object(schema, body, &mut Vec::new(), true)
}

/// Checks the fields a PATCH sends, each fully; required fields may be absent.
pub(crate) fn check_patch(
    rules: &VersionRules,
    schema: &Schema,
    body: &Map<String, Value>,
) -> Result<(), Violation> {
    Checker { rules }.object(schema, body, &mut Vec::new(), false)
}

struct Checker<'a> {
    rules: &'a VersionRules,
}

impl Checker<'_> {
    fn object(
        &self,
        schema: &Schema,
        map: &Map<String, Value>,
        path: &mut Vec<Step>,
        whole: bool,
    ) -> Result<(), Violation> {
        if self.rules.refuse_unknown_fields {
            if let Some(unknown) = map.keys().find(|k| schema.field(k).is_none()) {
                path.push(Step::Field(unknown.clone()));
                return Err(Violation::new(
                    path,
                    "value_error.extra",
                    format!("extra field not permitted in {}", schema.name),
                ));
            }
        }
        for field in schema.fields {
            path.push(Step::Field(field.name.to_string()));
            match map.get(field.name) {
                None if whole && field.card.required() => {
                    return Err(Violation::new(
                        path,
                        "value_error.missing",
                        format!(
                            "field required (card. {}) in {}",
                            field.card.symbol(),
                            schema.name
                        ),
                    ))
                }
                None => {}
                Some(Value::Null) if field.card.required() => {
                    return Err(Violation::new(
                        path,
                        "type_error.none.not_allowed",
                        format!(
                            "none is not an allowed value (card. {})",
                            field.card.symbol()
                        ),
                    ))
                }
                Some(Value::Null) => {}
                Some(value) => self.field(field, value, path)?,
            }
            path.pop();
        }
        if whole {
            if let Some(check) = schema.check {
                check(map).map_err(|mut v| {
                    let mut full = path.clone();
                    full.append(&mut v.path);
                    v.path = full;
                    v
                })?;
            }
        }
        Ok(())
    }

    fn field(&self, field: &Field, value: &Value, path: &mut Vec<Step>) -> Result<(), Violation> {
        match field.card {
            Card::One | Card::Opt => self.value(field.ty, value, path),
            Card::Many | Card::AtLeastOne => {
                let Value::Array(items) = value else {
                    return Err(Violation::new(
                        path,
                        "type_error.list",
                        format!("value is not a valid list (card. {})", field.card.symbol()),
                    ));
                };
                if field.card == Card::AtLeastOne && items.is_empty() {
                    return Err(Violation::new(
                        path,
                        "value_error.list.min_items",
                        "ensure this value has at least 1 items (card. +)",
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    path.push(Step::Index(i));
                    self.value(field.ty, item, path)?;
                    path.pop();
                }
                Ok(())
            }
        }
    }

    fn value(&self, ty: Ty, value: &Value, path: &mut Vec<Step>) -> Result<(), Violation> {
        let wrong = |expected: &str| {
            Violation::new(
                path,
                "type_error",
                format!("value is not a valid {expected}: {}", short(value)),
            )
        };
        match ty {
            Ty::Str(max) => self.text(value, max, self.rules.ascii_strings, "string", path),
            Ty::CiStr(max) => self.text(value, max, true, "CiString", path),
            Ty::Url => self.text(value, 255, true, "URL", path),
            Ty::Int(digits) => {
                let n = value
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| value.as_u64().map(i128::from))
                    .ok_or_else(|| wrong("int"))?;
                if digits > 0 && n.unsigned_abs() >= 10u128.pow(digits) {
                    return Err(Violation::new(
                        path,
                        "value_error.number.too_large",
                        format!("int({digits}) has at most {digits} digits: {n}"),
                    ));
                }
                Ok(())
            }
            Ty::Num => value
                .is_number()
                .then_some(())
                .ok_or_else(|| wrong("number")),
            Ty::Bool => value
                .is_boolean()
                .then_some(())
                .ok_or_else(|| wrong("boolean")),
            Ty::DateTime => {
                let text = value.as_str().ok_or_else(|| wrong("DateTime"))?;
                if utc_date_time(text) {
                    Ok(())
                } else {
                    Err(Violation::new(
                        path,
                        "value_error.datetime",
                        format!(
                            "{text:?} is not a DateTime in UTC with a trailing Z \
                             (YYYY-MM-DDThh:mm:ss[.fff]Z)"
                        ),
                    ))
                }
            }
            Ty::Enum(values) => {
                let text = value.as_str().ok_or_else(|| wrong("enum string"))?;
                if values.contains(&text) {
                    Ok(())
                } else {
                    Err(Violation::new(
                        path,
                        "type_error.enum",
                        format!(
                            "value {text:?} is not permitted here: one of {}",
                            values.join(", ")
                        ),
                    ))
                }
            }
            Ty::OpenEnum(known) if !value.is_string() => Err(Violation::new(
                path,
                "type_error.str",
                format!(
                    "value is not a valid OpenEnum string (known values: {}): {}",
                    known.join(", "),
                    short(value)
                ),
            )),
            Ty::OpenEnum(_) => self.text(value, 0, true, "OpenEnum", path),
            Ty::Obj(schema) => {
                let Value::Object(map) = value else {
                    return Err(wrong(schema.name));
                };
                self.object(schema, map, path, true)
            }
        }
    }

    fn text(
        &self,
        value: &Value,
        max: usize,
        ascii: bool,
        what: &str,
        path: &[Step],
    ) -> Result<(), Violation> {
        let Some(text) = value.as_str() else {
            return Err(Violation::new(
                path,
                "type_error.str",
                format!("value is not a valid {what}: {}", short(value)),
            ));
        };
        let printable = |c: char| {
            if ascii {
                (' '..='~').contains(&c)
            } else {
                !c.is_control()
            }
        };
        if let Some(bad) = text.chars().find(|c| !printable(*c)) {
            let allowed = if ascii {
                "printable ASCII"
            } else {
                "printable characters"
            };
            return Err(Violation::new(
                path,
                "value_error.str.charset",
                format!("{what} allows {allowed} only, found {bad:?}"),
            ));
        }
        let length = text.chars().count();
        if max > 0 && length > max {
            return Err(Violation::new(
                path,
                "value_error.any_str.max_length",
                format!("{what}({max}) has at most {max} characters, found {length}"),
            ));
        }
        Ok(())
    }
}

/// `YYYY-MM-DDThh:mm:ss[.f+]Z`, a real date and time.
pub(crate) fn utc_date_time(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 20 || b.get(10) != Some(&b'T') || b.last() != Some(&b'Z') {
        return false;
    }
    let fraction = &b[19..b.len() - 1];
    let fraction_ok = fraction.is_empty()
        || (fraction.len() >= 2
            && fraction[0] == b'.'
            && fraction[1..].iter().all(u8::is_ascii_digit));
    fraction_ok && parse_rfc3339(text).is_some()
}

/// A value as a short text for a message.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// For a [`Schema::check`]: a violation at a field of the object checked.
pub(crate) fn at_field(field: &str, kind: &'static str, rule: impl Into<String>) -> Violation {
    Violation::new(&[Step::Field(field.to_string())], kind, rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_utc_date_times_with_a_trailing_z_pass() {
        for good in [
            "2015-06-29T20:39:09Z",
            "2016-12-29T17:45:09.2Z",
            "2018-01-01T01:08:01.123456Z",
        ] {
            assert!(utc_date_time(good), "{good}");
        }
        for bad in [
            "2015-06-29T20:39:09",
            "2015-06-29T20:39:09+00:00",
            "2015-06-29T20:39:09z",
            "2015-06-29 20:39:09Z",
            "2015-06-29T20:39:09.Z",
            "2015-13-29T20:39:09Z",
            "2015-06-29T20:39Z",
        ] {
            assert!(!utc_date_time(bad), "{bad}");
        }
    }
}
