//! Whether a table's mapping can produce a valid OCPI object for a partner's version at all,
//! checked when the pusher starts.
//!
//! The pre-send check ([`crate::ocpi::objects::check_request`]) parks each object that breaks
//! the rules. A mapping that leaves a required field unmapped, maps a field the version does not
//! define, or sends a `body_column` object written for another version would park *every*
//! object of the table: that is a configuration mistake, refused at start with the table, the
//! field and the fix named, before anything is consumed.
//!
//! What a mapping provides for a field: a `[table.fields]` entry for the version (nested
//! entries, `coordinates.latitude`, provide the nested object and must provide its required
//! fields too), a `[[table.children]]` field (`evses`, `connectors`) or a `[[table.embed]]`
//! field for the version. Whether a column holds a value in every row cannot be known here: a
//! NULL in a required field is the pre-send check's to catch.

use super::{Body, FieldMapping, TableMapping};
use crate::ocpi::objects::{self, Cardinality, FieldInfo, FieldKind};
use crate::ocpi::OcpiVersion;

/// `Ok` when `table`'s mapping can produce valid objects for partners of `version`; else
/// what is wrong and how to fix it.
pub fn check(table: &TableMapping, version: OcpiVersion) -> Result<(), String> {
    let object = table.object();
    let fields = match &table.body {
        Body::Column {
            column,
            version: written_for,
        } => {
            if *written_for == version {
                return Ok(());
            }
            return Err(format!(
                "`{}` sends the objects of its body_column `{column}` as they are, and they are \
                 written for OCPI {written_for} (body_version); a partner of OCPI {version} \
                 needs {version} {object}s: map the object field by field ([table.fields], \
                 with `versions = [...]` where versions differ), or leave the {} module out of \
                 the partner's `modules`",
                table.qualified_name(),
                table.module.identifier()
            ));
        }
        Body::Fields(fields) => fields,
    };
    let mapped: Vec<&FieldMapping> = fields.iter().filter(|f| f.applies_to(version)).collect();
    let mut top: Vec<&str> = mapped.iter().map(|f| f.path[0].as_str()).collect();
    top.extend(table.children.iter().map(|link| link.field.as_str()));
    top.extend(
        table
            .embeds
            .iter()
            .filter(|e| e.applies_to(version))
            .map(|e| e.field.as_str()),
    );
    let what = format!("OCPI {version} {object} (`{}`)", table.qualified_name());
    check_level(objects::fields(version, object), &top, "", &what)?;
    for field in &mapped {
        check_nested(objects::fields(version, object), field, &mapped, &what)?;
    }
    Ok(())
}

/// The names given at one level are fields of the definition, and every required field of
/// the definition is given. `prefix` is the dotted path of the level (`""` at the top).
fn check_level(
    def: &'static [FieldInfo],
    given: &[&str],
    prefix: &str,
    what: &str,
) -> Result<(), String> {
    if let Some(unknown) = given.iter().find(|g| !def.iter().any(|f| f.name == **g)) {
        return Err(format!(
            "field `{prefix}{unknown}` is not part of {}: a receiver refuses it; give it \
             `versions = [...]` without this version, or fix its name (the fields are: {})",
            what,
            def.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(missing) = def.iter().find(|f| f.required && !given.contains(&f.name)) {
        return Err(format!(
            "{} requires `{prefix}{}` ({}), which the mapping does not map for this version: \
             add it to [table.fields] (a column, a `value`, or a `default` for NULLs)",
            what,
            missing.name,
            missing.cardinality.as_str()
        ));
    }
    Ok(())
}

/// For a nested field (`coordinates.latitude`): each level above it is a single object of the
/// version, and the fields given at that level cover its required fields.
fn check_nested(
    def: &'static [FieldInfo],
    field: &FieldMapping,
    mapped: &[&FieldMapping],
    what: &str,
) -> Result<(), String> {
    let mut level = def;
    for depth in 1..field.path.len() {
        let name = &field.path[depth - 1];
        let prefix = field.path[..depth].join(".");
        let Some(info) = level.iter().find(|f| f.name == name) else {
            return Ok(()); // reported as unknown at its own level
        };
        let FieldKind::Object(inner) = info.kind else {
            return Err(format!(
                "field `{}`: `{prefix}` is not an object in {}, so it has no field `{}`",
                field.name, what, field.path[depth]
            ));
        };
        if matches!(
            info.cardinality,
            Cardinality::List | Cardinality::NonEmptyList
        ) {
            return Err(format!(
                "field `{}`: `{prefix}` is a list in {}: map the whole list from a JSON column \
                 (`{prefix} = {{ column = \"...\", as = \"json\" }}`)",
                field.name, what
            ));
        }
        let given: Vec<&str> = mapped
            .iter()
            .filter(|f| f.path.len() > depth && f.path[..depth] == field.path[..depth])
            .map(|f| f.path[depth].as_str())
            .collect();
        check_level(inner.fields, &given, &format!("{prefix}."), what)?;
        level = inner.fields;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
