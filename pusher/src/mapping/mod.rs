//! From a row change to the OCPI request a partner expects.
//!
//! A mapping file (TOML, see `config/ocpi-example/mapping.toml`) says, per captured table, which
//! OCPI module the rows belong to, which columns form the object's URL, how updates are sent
//! (full `PUT` or `PATCH` of the changed fields) and how the OCPI object is built: either from a
//! JSON column holding the whole object, or field by field from columns and constants.
//! [`MappingConfig::load`] reads and validates it; [`render`] turns one
//! [`change_message::RowChange`] into a [`PlannedRequest`] (method, ids for the URL, query,
//! body), or says why there is nothing to send or why the change cannot be expressed in OCPI.
//!
//! # Rules
//!
//! | change | request |
//! |---|---|
//! | insert | `PUT` of the full object (CDRs: `POST` of the CDR to the bare endpoint) |
//! | update, `update = "put"` | `PUT` of the full object |
//! | update, `update = "patch"` | `PATCH` of the fields whose columns are in `changed`, plus `last_updated` |
//! | update of a CDR | rejected: a CDR is immutable; it is corrected by a credit CDR, a new row |
//! | soft delete (update that sets the soft-delete column) or delete event | the module's removal, below |
//! | snapshot (initial sync of a new partner), any non-delete operation | `PUT` of the full object (CDRs: `POST`) |
//!
//! Removal per module (OCPI deletes almost nothing):
//!
//! | object | removal of an object the partner holds |
//! |---|---|
//! | EVSE | `PATCH {"status": "REMOVED", "last_updated"}` at the EVSE URL, with every other field the same change moved |
//! | Location, Connector | none in OCPI: rejected (and a soft delete on them is refused when the mapping is loaded). Take a Location out with `publish = false` or by removing its EVSEs; a Connector goes away with a PUT of its EVSE, which a row mapping cannot build |
//! | Tariff | `DELETE` at the tariff URL |
//! | Token | `PATCH {"valid": false, "last_updated"}` |
//! | Session | `PATCH {"status": "INVALID", "last_updated"}`: a session row that disappears was not a billable session |
//! | CDR | none: rejected (a CDR is corrected by a credit CDR) |
//!
//! Removals are `PATCH`es (of the removal field, plus any other field the soft delete's update
//! moved, which the partner would otherwise never get); with `update = "put"`, a soft delete
//! is the `PUT` of the whole object with the removal value. A delete event is always the
//! bare removal `PATCH`. When the partner may not hold the object yet (an insert whose row is
//! already soft-deleted, or a snapshot of a soft-deleted row), the full object is `PUT` with the
//! removal applied (EVSE status REMOVED, Token valid false, Session status INVALID). A Tariff
//! inserted already soft-deleted has nothing to send ([`MappingError::NothingToSend`]); a
//! soft-deleted Tariff in a snapshot is a `DELETE` (a re-synced partner may hold it), and the
//! pusher takes the partner's refusal of that `DELETE` as done.
//!
//! Further decisions, each with its reason:
//!
//! - **PATCH unit = top-level OCPI field.** When any column under `coordinates.*` changed, the
//!   whole `coordinates` object is sent: receivers replace nested objects as a whole, and sending
//!   half a GeoLocation would drop the other half.
//! - **PATCH always carries `last_updated`**, also when no mapped column changed (2.2.1 requires
//!   it; 2.1.1 accepts it).
//! - **NULL columns are omitted** from the object (an optional OCPI field is absent rather than
//!   null, which many receivers refuse). OCPI PATCH cannot remove data either: to clear an
//!   optional field at the partner, map the table with `update = "put"`.
//! - **A delete event's `last_updated`** is the later of the row's mapped `last_updated` and
//!   the change's commit time: the row image before a delete carries the time of the previous
//!   state, and receivers may refuse an object not newer than the one they hold.
//! - **Soft delete transitions.** An update that leaves a row soft-deleted sends nothing for a
//!   Tariff (it is deleted at the partner) and a normal update, with the removal value kept, for
//!   the others. An update that clears the soft-delete value (revival) sends every mapped field
//!   (a `PUT` for Tariffs, which the partner deleted). A delete event of a row that was already
//!   soft-deleted sends nothing: its removal went out with the soft delete.
//! - **Tokens `?type=`.** OCPI 2.2.1 addresses a Token by uid and type: `?type=<type>` is added
//!   unless the type is RFID (the default). OCPI 2.1.1 has no such parameter and gets none.
//! - **Versions.** The mapping names OCPI fields itself; a field with `versions = [...]` is only
//!   sent to partners of those versions (2.1.1 has no `country_code`/`party_id` in objects,
//!   `voltage` instead of `max_voltage`, ...), and `values_for` limits a value translation to
//!   some versions (a 2.2.1 `APP_USER` token is a 2.1.1 `OTHER`). A `body_column` object is
//!   sent as stored, so only to partners of its `body_version`. [`coverage`] refuses at start
//!   a mapping that cannot produce a valid object of a partner's version.
//! - **CDR identity.** CDRs are `POST`ed to the bare endpoint: [`PlannedRequest::path_ids`] is
//!   empty, and the CDR mapping's `path` only names the record for [`PlannedRequest::record_id`]
//!   and logs.
//! - **One row, one object.** `render` sees one row: an EVSE row does not contain its
//!   connectors, nor a Location row its EVSEs. Tables linked with `[[table.children]]` (the
//!   example's Location > EVSE > Connector tree) are therefore not sent through `render` alone:
//!   [`crate::composite`] reads the complete object from the database and renders each of its
//!   rows here. An EVSE mapping without such links cannot produce a valid EVSE (it has no
//!   connectors) and is refused at start. `[[table.embed]]` fields (a 2.1.1 Session's
//!   `location`) are also read from the database, by the delivery, after `render`.
//! - **Date-times.** `as = "datetime"` reads DATETIME values (no zone) in the source's time
//!   zone (`[source] time_zone`, UTC unless configured; [`SourceTimeZone`] says how a local
//!   time that happens twice or never is read), keeps the
//!   fractional digits the column has up to milliseconds (OCPI's DateTime is a string(25):
//!   microseconds are cut), and writes RFC 3339 with `Z`.

mod config;
mod convert;
pub mod coverage;
mod embeds;
mod render;
#[cfg(test)]
mod tests;
mod time_zone;

use std::fmt;

use serde::Deserialize;

pub use config::{
    Body, ChildLink, ConfigError, Conversion, FieldMapping, FieldSource, MappingConfig, SoftDelete,
    TableMapping, UpdateMode,
};
pub(crate) use convert::{instant, Instant};
pub use embeds::Embed;
pub use render::{render, render_current};
pub use time_zone::SourceTimeZone;

/// The OCPI version a request is rendered for.
pub use crate::ocpi::OcpiVersion;

/// The OCPI module a table's rows belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Module {
    Locations,
    Sessions,
    Cdrs,
    Tariffs,
    Tokens,
}

impl Module {
    /// The module identifier as OCPI endpoint lists write it ("locations", "cdrs", ...).
    pub fn identifier(self) -> &'static str {
        match self {
            Module::Locations => "locations",
            Module::Sessions => "sessions",
            Module::Cdrs => "cdrs",
            Module::Tariffs => "tariffs",
            Module::Tokens => "tokens",
        }
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.identifier())
    }
}

/// The OCPI object a table's rows are, by module and (for Locations) by URL depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Location,
    Evse,
    Connector,
    Session,
    Cdr,
    Tariff,
    Token,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Location => "Location",
            ObjectKind::Evse => "EVSE",
            ObjectKind::Connector => "Connector",
            ObjectKind::Session => "Session",
            ObjectKind::Cdr => "CDR",
            ObjectKind::Tariff => "Tariff",
            ObjectKind::Token => "Token",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HTTP method of a planned request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Put,
    Patch,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Method> for reqwest::Method {
    fn from(method: Method) -> reqwest::Method {
        match method {
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Post => reqwest::Method::POST,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

/// One OCPI call, ready for the transport: the URL is the partner's endpoint of [`module`]
/// joined with [`path_ids`] (raw values: the caller escapes them), then [`query`].
///
/// [`module`]: PlannedRequest::module
/// [`path_ids`]: PlannedRequest::path_ids
/// [`query`]: PlannedRequest::query
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRequest {
    pub method: Method,
    pub module: Module,
    pub object: ObjectKind,
    /// Values after the module endpoint, in order: `[cc, pid, location_id, evse_uid]`, ...
    /// Empty for a CDR `POST`.
    pub path_ids: Vec<String>,
    /// Query parameters, e.g. `[("type", "APP_USER")]` for a 2.2.1 Token that is not RFID.
    pub query: Vec<(String, String)>,
    /// JSON body; `None` for `DELETE`.
    pub body: Option<serde_json::Value>,
    /// The OCPI object this request is about, `module/cc/pid/id[/...]`, from the mapping's
    /// `path` columns (also for CDRs, whose URL carries no ids): for logs and per-object order.
    pub record_id: String,
}

impl fmt::Display for PlannedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.module)?;
        for id in &self.path_ids {
            write!(f, "/{id}")?;
        }
        for (i, (k, v)) in self.query.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { '?' } else { '&' })?;
        }
        write!(f, " ({} {})", self.object, self.record_id)
    }
}

/// Why a change produced no request.
///
/// [`NothingToSend`](MappingError::NothingToSend) is not a failure: the change needs no call
/// (ack it). [`Rejected`](MappingError::Rejected) means the change has no OCPI expression (park
/// it with the reason). The other variants are a mismatch between the mapping and the data
/// (a column missing from the row, a value the conversion cannot read): park and fix the
/// mapping or the data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingError {
    /// The mapping given is for another table.
    #[error("the mapping of `{mapping}` was given a change of `{change}`")]
    WrongTable { mapping: String, change: String },
    /// The change lacks the row image the operation needs.
    #[error("{op} change of `{table}` carries no `{image}` row image")]
    MissingImage {
        table: String,
        op: &'static str,
        image: &'static str,
    },
    /// A column the mapping reads is not in the row image.
    #[error("column `{column}` needed by {needed_by} is absent from the row image of `{table}`")]
    MissingColumn {
        table: String,
        column: String,
        needed_by: String,
    },
    /// A column that must have a value (URL id, token type, object column) is NULL.
    #[error("column `{column}` needed by {needed_by} is NULL in the row image of `{table}`")]
    NullValue {
        table: String,
        column: String,
        needed_by: String,
    },
    /// A value that the field's conversion cannot read.
    #[error("column `{column}` of `{table}` cannot become {target}: {problem} (value: {value})")]
    BadValue {
        table: String,
        column: String,
        /// What the value was for: "OCPI field `kwh` (as number)", "path", ...
        target: String,
        problem: String,
        value: String,
    },
    /// The change cannot be expressed in OCPI (CDR update, Location removal, ...).
    #[error("`{table}`: change rejected: {reason}")]
    Rejected { table: String, reason: String },
    /// The change needs no request (e.g. a deleted Tariff in a snapshot).
    #[error("`{table}`: nothing to send: {reason}")]
    NothingToSend { table: String, reason: String },
}

impl MappingError {
    /// True when the change simply needs no request: acknowledge it.
    pub fn is_nothing_to_send(&self) -> bool {
        matches!(self, MappingError::NothingToSend { .. })
    }

    /// True when the change has no OCPI expression by design (as opposed to a data or mapping
    /// mismatch).
    pub fn is_rejected(&self) -> bool {
        matches!(self, MappingError::Rejected { .. })
    }
}
