//! Composite OCPI objects: an EVSE with all its Connectors, a Location with all its EVSEs.
//!
//! OCPI requires an EVSE to carry its connectors (1..*), and a Location PUT replaces the whole
//! Location, EVSEs included. Rows of `evses` and `connectors` tables are records of their own in
//! the binlog, so no single change message holds a valid object. For the tables the mapping
//! links with `[[table.children]]`, a change is therefore only the signal of *which* object
//! changed: the pusher reads that object's current state with its children from the source
//! database ([`crate::source_db`]) and PUTs it whole.
//!
//! What a change of each table sends (its *target*):
//!
//! | change of | target | request |
//! |---|---|---|
//! | a table with children (Location, EVSE) | its own object | PUT of the object with every child row the database holds |
//! | a leaf with a parent (Connector) | the parent (its EVSE) | PUT of the parent: a new, changed or removed connector is the EVSE's new connector list |
//!
//! When the partner does not hold the target's parent (HTTP 404, or OCPI 2003 unknown
//! location, e.g. a partner in its initial sync), the root object (the Location) is PUT instead,
//! with its whole tree. A target gone from the database sends nothing for a child's change (the
//! object's own delete follows); the object's own delete event goes through the mapping's
//! removal (an EVSE: PATCH status REMOVED).
//!
//! Invariants this keeps (each has a test):
//! - a PUT carries every child the database holds at the time of the read: it never drops a
//!   child the database still has, and an EVSE is never sent without its connectors;
//! - all changes of one Location tree share one lane, and each call reads the database after
//!   the changes it covers were committed, so the states one partner receives of any object of
//!   the tree (children inside a parent's PUT included) only move forward in time;
//! - `last_updated` of a composite object is the newest of the tree's rows (and, when the
//!   call covers a delete, of that delete's commit time: the deleted row may have held the
//!   newest value), so a receiver that refuses an older `last_updated` accepts every push that
//!   carries a newer state.

use std::future::Future;
use std::pin::Pin;

use change_message::Row;
use serde_json::Value;

use crate::mapping::{
    self, Embed, MappingConfig, MappingError, Method, Module, OcpiVersion, PlannedRequest,
    TableMapping,
};
use crate::source_db::{same_id, DbError, Select, SourceDb};

/// The object a change makes the pusher PUT: a mapped table and the values of its path columns.
#[derive(Debug, Clone)]
pub struct Target<'m> {
    pub mapping: &'m TableMapping,
    /// Path column -> value, for every column of `mapping.path`.
    pub ids: Row,
}

impl Target<'_> {
    /// The object's identity, `module/value/value/...` in path order: the lane record of every
    /// change that targets it. A Location's key is also its tree's lane key.
    pub fn key(&self) -> String {
        key_of(self.mapping, &self.ids)
    }

    fn id_values(&self) -> Vec<Value> {
        self.mapping
            .path
            .iter()
            .map(|c| self.ids.get(c).cloned().unwrap_or(Value::Null))
            .collect()
    }
}

/// `module/v1/v2/...` from the values of `mapping.path` in `row`.
pub fn key_of(mapping: &TableMapping, row: &Row) -> String {
    let mut key = String::from(mapping.module.identifier());
    for column in &mapping.path {
        key.push('/');
        match row.get(column) {
            Some(Value::String(s)) => key.push_str(s),
            Some(other) => key.push_str(&other.to_string()),
            None => {}
        }
    }
    key
}

/// The target of a change of `mapping`'s table whose newest row image is `image`.
pub fn target_of<'m>(
    config: &'m MappingConfig,
    mapping: &'m TableMapping,
    image: &Row,
) -> Result<Target<'m>, MappingError> {
    let own = path_values(mapping, image)?;
    if mapping.children.is_empty() {
        if let Some(parent) = parent_target(config, mapping, &own) {
            return Ok(parent);
        }
    }
    Ok(Target { mapping, ids: own })
}

/// The root of the tree `target` belongs to (a Location).
pub fn root_of<'m>(config: &'m MappingConfig, target: &Target<'m>) -> Target<'m> {
    let mut current = target.clone();
    while let Some(parent) = parent_target(config, current.mapping, &current.ids) {
        current = parent;
    }
    current
}

fn parent_target<'m>(
    config: &'m MappingConfig,
    child: &TableMapping,
    child_ids: &Row,
) -> Option<Target<'m>> {
    let (parent, link) = config.parent_of(child)?;
    let mut ids = Row::new();
    for (child_column, parent_column) in &link.join {
        if parent.path.contains(parent_column) {
            let value = child_ids.get(child_column).cloned().unwrap_or(Value::Null);
            ids.insert(parent_column.clone(), value);
        }
    }
    Some(Target {
        mapping: parent,
        ids,
    })
}

fn path_values(mapping: &TableMapping, image: &Row) -> Result<Row, MappingError> {
    let mut ids = Row::new();
    for column in &mapping.path {
        match image.get(column) {
            None => {
                return Err(MappingError::MissingColumn {
                    table: mapping.qualified_name(),
                    column: column.clone(),
                    needed_by: "path".into(),
                })
            }
            Some(Value::Null) => {
                return Err(MappingError::NullValue {
                    table: mapping.qualified_name(),
                    column: column.clone(),
                    needed_by: "path".into(),
                })
            }
            Some(value) => {
                ids.insert(column.clone(), value.clone());
            }
        }
    }
    Ok(ids)
}

/// An object's row with its children's rows, as the database holds them now.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub row: Row,
    /// Per `[[table.children]]` link, in mapping order: the child field and its rows in path
    /// order.
    pub children: Vec<(String, Vec<Node>)>,
}

/// Reads `target` with every descendant: one SELECT per level of the tree (a Location: its
/// row, its EVSEs, the connectors of all of them), each level's SELECT shared with the reads of
/// other calls that wait at the same time ([`SourceDb::select_gathered`]). `None` when the row
/// is not there.
pub async fn read(
    db: &SourceDb,
    config: &MappingConfig,
    target: &Target<'_>,
) -> Result<Option<Node>, DbError> {
    let columns = read_columns(target.mapping);
    let filter: Vec<&str> = target.mapping.path.iter().map(String::as_str).collect();
    let rows = db
        .select_gathered(&Select {
            database: &target.mapping.database,
            table: &target.mapping.table,
            columns: &columns,
            filter: &filter,
            keys: &[target.id_values()],
            order_by: &[],
        })
        .await?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let mut nodes = vec![Node {
        row,
        children: Vec::new(),
    }];
    fill_children(db, config, target.mapping, &mut nodes).await?;
    Ok(nodes.pop())
}

type FillFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DbError>> + Send + 'a>>;

/// Reads the children of every node (all of one table) with one SELECT per link, then theirs.
fn fill_children<'a>(
    db: &'a SourceDb,
    config: &'a MappingConfig,
    mapping: &'a TableMapping,
    nodes: &'a mut [Node],
) -> FillFuture<'a> {
    Box::pin(async move {
        for link in &mapping.children {
            let Some(child) = config.by_name(&link.table) else {
                continue;
            };
            let keys: Vec<Vec<Value>> = nodes
                .iter()
                .map(|n| {
                    link.join
                        .iter()
                        .map(|(_, pc)| n.row.get(pc).cloned().unwrap_or(Value::Null))
                        .collect()
                })
                .collect();
            let columns = read_columns(child);
            let filter: Vec<&str> = link.join.iter().map(|(cc, _)| cc.as_str()).collect();
            let order: Vec<&str> = child.path.iter().map(String::as_str).collect();
            let rows = db
                .select_gathered(&Select {
                    database: &child.database,
                    table: &child.table,
                    columns: &columns,
                    filter: &filter,
                    keys: &keys,
                    order_by: &order,
                })
                .await?;
            let mut kids: Vec<Node> = rows
                .into_iter()
                .map(|row| Node {
                    row,
                    children: Vec::new(),
                })
                .collect();
            fill_children(db, config, child, &mut kids).await?;
            let mut lists: Vec<Vec<Node>> = vec![Vec::new(); nodes.len()];
            for kid in kids {
                let parent = keys.iter().position(|key| {
                    link.join
                        .iter()
                        .zip(key)
                        .all(|((cc, _), v)| same_id(kid.row.get(cc), v))
                });
                if let Some(i) = parent {
                    lists[i].push(kid);
                }
            }
            for (node, list) in nodes.iter_mut().zip(lists) {
                node.children.push((link.field.clone(), list));
            }
        }
        Ok(())
    })
}

/// Reads the object an `[[table.embed]]` puts into the object of `row` (a 2.1.1 Session's
/// Location): the embedded root with its tree, each child table that the embed restricts
/// holding only the rows that match `row` (the EVSE and the connector used). `None` when the
/// database has no such root.
pub async fn read_embedded<'m>(
    db: &SourceDb,
    config: &'m MappingConfig,
    embed: &Embed,
    row: &Row,
) -> Result<Option<(&'m TableMapping, Node)>, DbError> {
    let Some(root) = config.by_name(&embed.table) else {
        return Ok(None);
    };
    let mut ids = Row::new();
    for (root_column, row_column) in &embed.join {
        ids.insert(
            root_column.clone(),
            row.get(row_column).cloned().unwrap_or(Value::Null),
        );
    }
    let target = Target { mapping: root, ids };
    let Some(mut node) = read(db, config, &target).await? else {
        return Ok(None);
    };
    keep_only(config, root, &mut node, embed, row);
    Ok(Some((root, node)))
}

/// Drops the children of `node` (and below) that `embed` does not keep for `row`.
fn keep_only(
    config: &MappingConfig,
    mapping: &TableMapping,
    node: &mut Node,
    embed: &Embed,
    row: &Row,
) {
    for (link, (_, kids)) in mapping.children.iter().zip(node.children.iter_mut()) {
        if let Some(pairs) = embed.only_for(&link.table) {
            kids.retain(|kid| {
                pairs.iter().all(|(child_column, row_column)| {
                    row.get(row_column)
                        .is_some_and(|v| same_id(kid.row.get(child_column), v))
                })
            });
        }
        if let Some(child) = config.by_name(&link.table) {
            for kid in kids.iter_mut() {
                keep_only(config, child, kid, embed, row);
            }
        }
    }
}

/// The embedded object of a [`read_embedded`] read, as partners of `version` get it: the
/// tree rendered as a PUT of the root would carry it.
pub fn render_embedded(
    config: &MappingConfig,
    root: &TableMapping,
    node: &Node,
    version: OcpiVersion,
) -> Result<Value, MappingError> {
    nest(config, root, node, version).map(|(body, _)| body)
}

/// The columns read for a table: every column its mapping reads (path included).
fn read_columns(mapping: &TableMapping) -> Vec<&str> {
    mapping.columns()
}

/// Whether an object of `mapping` with these children can exist in OCPI: an EVSE needs at
/// least one connector. An EVSE whose rows hold none yet (its connectors are inserted in a
/// later transaction) is sent with its first connector; until then it is left out.
fn complete(mapping: &TableMapping, node: &Node) -> bool {
    mapping
        .children
        .iter()
        .zip(&node.children)
        .all(|(link, (_, kids))| link.field != "connectors" || !kids.is_empty())
}

/// The PUT of `node` (the target's object) with its children nested, for a partner of
/// `version`. `floor`, when given (the commit time of a covered delete), is the oldest
/// `last_updated` the object may carry.
pub fn plan_put(
    config: &MappingConfig,
    mapping: &TableMapping,
    node: &Node,
    version: OcpiVersion,
    floor: Option<&str>,
) -> Result<PlannedRequest, MappingError> {
    if !complete(mapping, node) {
        return Err(MappingError::NothingToSend {
            table: mapping.qualified_name(),
            reason: format!(
                "{} {} has no connector in the database yet (OCPI requires at least one): it \
                 is sent with its first connector",
                mapping.object(),
                key_of(mapping, &node.row)
            ),
        });
    }
    let mut plan = full_object(mapping, &node.row, version)?;
    let own = plan.body.take().unwrap_or(Value::Null);
    let (mut body, newest) = nest_into(config, mapping, node, own, version)?;
    let newest = match (newest, floor) {
        (Some(n), Some(f)) if later(f, &n) => Some(f.to_string()),
        (n, None) => n,
        (Some(n), Some(_)) => Some(n),
        (None, f) => f.map(str::to_string),
    };
    if let (Some(newest), Value::Object(map)) = (newest, &mut body) {
        map.insert("last_updated".into(), Value::String(newest));
    }
    plan.body = Some(body);
    Ok(plan)
}

/// The object of `node` with its children under their fields, each object's `last_updated`
/// the newest of its own row's and its descendants' (a receiver takes a child's change into its
/// parent's `last_updated`, and pull clients select on it); also that newest value.
fn nest(
    config: &MappingConfig,
    mapping: &TableMapping,
    node: &Node,
    version: OcpiVersion,
) -> Result<(Value, Option<String>), MappingError> {
    let body = full_object(mapping, &node.row, version)?
        .body
        .unwrap_or(Value::Null);
    nest_into(config, mapping, node, body, version)
}

/// [`nest`] with the node's own object already rendered (`body`).
fn nest_into(
    config: &MappingConfig,
    mapping: &TableMapping,
    node: &Node,
    mut body: Value,
    version: OcpiVersion,
) -> Result<(Value, Option<String>), MappingError> {
    let mut newest = body
        .get("last_updated")
        .and_then(Value::as_str)
        .map(str::to_string);
    for (link, (field, kids)) in mapping.children.iter().zip(&node.children) {
        let Some(child) = config.by_name(&link.table) else {
            continue;
        };
        let mut list = Vec::with_capacity(kids.len());
        for kid in kids.iter().filter(|kid| complete(child, kid)) {
            let (kid_body, kid_newest) = nest(config, child, kid, version)?;
            if let Some(k) = kid_newest {
                if newest.as_deref().is_none_or(|n| later(&k, n)) {
                    newest = Some(k);
                }
            }
            list.push(kid_body);
        }
        if let Value::Object(map) = &mut body {
            map.insert(field.clone(), Value::Array(list));
        }
    }
    if let (Some(n), Value::Object(map)) = (&newest, &mut body) {
        map.insert("last_updated".into(), Value::String(n.clone()));
    }
    Ok((body, newest))
}

fn later(a: &str, b: &str) -> bool {
    match (mapping::instant(a), mapping::instant(b)) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

/// The whole object of one row as a PUT carries it (a soft-deleted EVSE with status REMOVED).
fn full_object(
    mapping: &TableMapping,
    row: &Row,
    version: OcpiVersion,
) -> Result<PlannedRequest, MappingError> {
    let plan = mapping::render_current(mapping, row, version)?;
    if plan.method != Method::Put || mapping.module != Module::Locations {
        return Err(MappingError::Rejected {
            table: mapping.qualified_name(),
            reason: format!(
                "a composite object is sent as a PUT, but this row renders as {}",
                plan.method
            ),
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests;
