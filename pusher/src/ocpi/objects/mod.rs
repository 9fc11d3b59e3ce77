//! Pre-send validation of OCPI objects against the object definitions of the partner's version.
//!
//! A body the mapping rendered is checked before it leaves, so that a mapping mistake (a missing
//! required field, a 2.2.1-only field sent to a 2.1.1 partner, an enum value the version does
//! not know, a date-time without `Z`) parks the change with the field and the rule named,
//! instead of being sent and refused by a schema-validating receiver with a framework's 422.
//!
//! The rules are static tables, one file per version (`v211.rs`, `v221.rs`, `v230.rs`), written from
//! the object and type tables of the specification (field, type, cardinality). The engine
//! (`engine.rs`) walks the body once, in document order, and allocates only to describe a
//! violation.
//!
//! What is checked, per field: presence of required fields (card. `1` and `+`), `null` (never
//! allowed: an optional field is left out, a required one must have a value), the JSON type,
//! arrays for `*` / `+` (and `+` non-empty), enum values of the version, string lengths
//! (`string(n)`, `CiString(n)`, `URL` = 255, `DateTime` = 25), CiString = printable ASCII, no
//! control characters in strings, integers for `int` (and the digit count of `int(n)`),
//! DateTime syntax, the 2.1.1 Hours choice, and unknown fields (a field the version does not
//! define: for us a mapping mistake, although 2.3.0 receivers must ignore unknown fields).
//!
//! DateTime is checked stricter than the spec, which also allows a time without a zone
//! designator: we always send `Z`, so a time without it is a mapping mistake. The spec's
//! string(25) leaves room for at most four fractional digits (`2026-03-01T08:00:00.1234Z`).
//!
//! Deliberately not checked, each for its reason:
//! - cross-field rules written in prose (`publish_allowed_to` only when `publish` is false,
//!   `credit_reference_id` when `credit` is true, `period_end` later than `period_begin`):
//!   they are semantics of the data, not of the mapping, and the prose varies per version;
//! - value formats beyond the type: the latitude/longitude regex, ISO codes being real
//!   country/currency/language codes, `HH:MM` and `YYYY-MM-DD` of tariff restrictions, URL
//!   syntax, IANA time-zone names: these come from the data as stored, and a check would need
//!   tables we would have to keep up to date;
//! - the "4 decimals" of numbers: a JSON number carries no precision we could check reliably;
//! - the 2.1.1 rule that strings are printable ASCII: real 2.1.1 data carries UTF-8 addresses
//!   and names, so 2.1.1 strings get the 2.2.1 rule (printable UTF-8, no control characters).

/// An [`ObjectDef`] with its fields, as a static: `class! { "GeoLocation", [one(..), ..] }`.
macro_rules! class {
    ($name:literal, [$($field:expr),* $(,)?]) => {
        $crate::ocpi::objects::ObjectDef {
            name: $name,
            fields: &[$($field),*],
            exactly_one_of: &[],
        }
    };
}

/// An [`EnumDef`] whose values the spec lists completely.
macro_rules! closed_enum {
    ($name:literal, [$($value:literal),* $(,)?]) => {
        $crate::ocpi::objects::EnumDef { name: $name, values: &[$($value),*], open: false }
    };
}

/// An [`EnumDef`] the spec marks as an open list (2.3.0 OpenEnum): checked against the listed
/// values all the same, see [`EnumDef`].
macro_rules! open_enum {
    ($name:literal, [$($value:literal),* $(,)?]) => {
        $crate::ocpi::objects::EnumDef { name: $name, values: &[$($value),*], open: true }
    };
}

mod engine;
mod v211;
mod v221;
mod v230;

use std::fmt;

use serde_json::Value;

use crate::mapping::{Method, ObjectKind, PlannedRequest};
use crate::ocpi::OcpiVersion;

/// How much of the object the body must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    /// A `PUT` or `POST` body: the whole object, every required field present.
    Whole,
    /// A `PATCH` body: only the fields present are checked (each fully, nested objects whole);
    /// `last_updated` is required in OCPI 2.2.1 and 2.3.0 (2.1.1 does not require it).
    Patch,
}

/// One rule a body breaks, at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where: `evses[0].connectors`, `last_updated`; `""` for the object itself.
    pub path: String,
    /// What: `required (1..*), missing`, `at most 36 characters, found 40`, ...
    pub rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "the object: {}", self.rule)
        } else {
            write!(f, "field `{}`: {}", self.path, self.rule)
        }
    }
}

/// A body that is not a valid OCPI object of its version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("OCPI {version} {object} is not valid: {}", Summary(.violations))]
pub struct Invalid {
    pub version: OcpiVersion,
    pub object: ObjectKind,
    /// The first violations in document order (a missing field at the end of the object that
    /// lacks it); checking stops at [`MAX_VIOLATIONS`]. The message spells out the first three.
    pub violations: Vec<Violation>,
}

/// Checking stops after this many violations: enough to fix a mapping, short enough for a log.
pub const MAX_VIOLATIONS: usize = 10;

/// How many violations the error message spells out before "(and N more)".
const SHOWN_IN_MESSAGE: usize = 3;

struct Summary<'a>(&'a [Violation]);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().take(SHOWN_IN_MESSAGE).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        if self.0.len() > SHOWN_IN_MESSAGE {
            write!(f, "; ... (and {} more)", self.0.len() - SHOWN_IN_MESSAGE)?;
        }
        Ok(())
    }
}

/// How many values a field takes: the spec's "Card." column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    /// `1`: exactly one value, required.
    One,
    /// `?`: at most one value; left out when there is none.
    Optional,
    /// `*`: an array, possibly empty; optional.
    List,
    /// `+`: a non-empty array, required.
    NonEmptyList,
}

impl Cardinality {
    /// The cardinality as violations write it: `1`, `?`, `*`, `1..*`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cardinality::One => "1",
            Cardinality::Optional => "?",
            Cardinality::List => "*",
            Cardinality::NonEmptyList => "1..*",
        }
    }
}

/// The type of a field's value (of each element, for `*` and `+`).
#[derive(Debug, Clone, Copy)]
pub enum FieldKind {
    /// `string(n)`: printable text (no control characters), at most `n` characters; 0: no limit.
    Text(u16),
    /// `CiString(n)`: printable ASCII, at most `n` characters; 0: no limit given.
    CiText(u16),
    /// `URL`: a string(255).
    Url,
    /// `DateTime`: RFC 3339 in UTC ending in `Z`, fractions allowed, at most 25 characters.
    DateTime,
    /// `number`: any JSON number.
    Number,
    /// `int` / `int(n)`: a JSON integer of at most `n` digits; 0: no limit.
    Integer(u8),
    /// `boolean`.
    Boolean,
    /// An enum of the version.
    Enum(&'static EnumDef),
    /// A class or object of the version, checked whole.
    Object(&'static ObjectDef),
}

/// One field of an OCPI object or class in one version.
#[derive(Debug, Clone, Copy)]
pub struct FieldInfo {
    pub name: &'static str,
    /// Card. `1` or `+`.
    pub required: bool,
    pub cardinality: Cardinality,
    pub kind: FieldKind,
}

/// An OCPI object or class in one version: its name as the spec writes it, and its fields.
#[derive(Debug)]
pub struct ObjectDef {
    pub name: &'static str,
    pub fields: &'static [FieldInfo],
    /// A choice: exactly one of these fields must be present (2.1.1 Hours); empty for none.
    pub exactly_one_of: &'static [&'static str],
}

/// An OCPI enum in one version.
///
/// `open` marks the 2.3.0 OpenEnums, whose list the spec leaves open for values it does not
/// name. They are still checked against the listed values: a value outside the list is far
/// more often a mapping mistake than a deliberate extension, and an extension can be added here.
#[derive(Debug)]
pub struct EnumDef {
    pub name: &'static str,
    pub values: &'static [&'static str],
    pub open: bool,
}

// Table-building helpers: one per cardinality, so the tables read like the spec's rows.

pub(crate) const fn one(name: &'static str, kind: FieldKind) -> FieldInfo {
    FieldInfo {
        name,
        required: true,
        cardinality: Cardinality::One,
        kind,
    }
}

pub(crate) const fn opt(name: &'static str, kind: FieldKind) -> FieldInfo {
    FieldInfo {
        name,
        required: false,
        cardinality: Cardinality::Optional,
        kind,
    }
}

pub(crate) const fn many(name: &'static str, kind: FieldKind) -> FieldInfo {
    FieldInfo {
        name,
        required: false,
        cardinality: Cardinality::List,
        kind,
    }
}

pub(crate) const fn some(name: &'static str, kind: FieldKind) -> FieldInfo {
    FieldInfo {
        name,
        required: true,
        cardinality: Cardinality::NonEmptyList,
        kind,
    }
}

/// The definition of `object` in `version`.
fn definition(version: OcpiVersion, object: ObjectKind) -> &'static ObjectDef {
    match version {
        OcpiVersion::V211 => v211::object(object),
        OcpiVersion::V221 => v221::object(object),
        OcpiVersion::V230 => v230::object(object),
    }
}

/// Top-level fields of the object in this version, in the spec's order, and whether each is
/// required (card. `1` or `+`). For the start-up check that a mapping can produce a valid
/// object at all.
pub fn fields(version: OcpiVersion, object: ObjectKind) -> &'static [FieldInfo] {
    definition(version, object).fields
}

/// Checks `body` against the definition of `object` in `version`. No allocation when the body
/// is valid; one pass over the body.
pub fn check(
    version: OcpiVersion,
    object: ObjectKind,
    body: &Value,
    completeness: Completeness,
) -> Result<(), Invalid> {
    let violations = engine::walk(version, definition(version, object), body, completeness);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Invalid {
            version,
            object,
            violations,
        })
    }
}

/// Checks the body of a request about to leave: a `PUT` or `POST` carries the whole object, a
/// `PATCH` the fields it changes; a `DELETE` has no body. Every module's requests go through
/// this before the call, so an object a strict receiver would refuse is parked instead, with
/// the field and the rule named.
pub fn check_request(version: OcpiVersion, request: &PlannedRequest) -> Result<(), Invalid> {
    let Some(body) = &request.body else {
        return Ok(());
    };
    let completeness = match request.method {
        Method::Patch => Completeness::Patch,
        Method::Put | Method::Post | Method::Delete => Completeness::Whole,
    };
    check(version, request.object, body, completeness)
}

#[cfg(test)]
mod tests;
