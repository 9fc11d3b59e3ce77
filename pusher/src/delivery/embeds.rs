//! The `[[table.embed]]` fields of a plain call's object (a 2.1.1 Session's `location`: the
//! Location with only the EVSE and the connector used), read from the source database and put
//! into the body before the request is checked and sent. Only whole objects (PUT, POST) carry
//! them: a PATCH sends what changed in the row, and the row does not hold the embedded object.

use change_message::RowChange;
use serde_json::Value;

use super::{CallResult, Shared};
use crate::composite;
use crate::mapping::{MappingError, Method, PlannedRequest, TableMapping};
use crate::metrics::FailureClass;
use crate::source_db::DbError;

impl Shared {
    /// `rendered` with the embedded objects of the partner's version filled in. `Err` with
    /// what the call comes to when the database cannot be read now (the call waits for it).
    pub(super) async fn with_embeds(
        &self,
        mapping: &TableMapping,
        net: &RowChange,
        rendered: Result<PlannedRequest, MappingError>,
    ) -> Result<Result<PlannedRequest, MappingError>, CallResult> {
        let version = self.partner.version;
        let mut plan = match rendered {
            Ok(plan) if matches!(plan.method, Method::Put | Method::Post) => plan,
            other => return Ok(other),
        };
        let embeds: Vec<_> = mapping
            .embeds
            .iter()
            .filter(|e| e.applies_to(version))
            .collect();
        if embeds.is_empty() {
            return Ok(Ok(plan));
        }
        let rejected = |reason: String| MappingError::Rejected {
            table: mapping.qualified_name(),
            reason,
        };
        let Some(db) = self.source_db.as_deref() else {
            return Ok(Err(rejected(
                "an embedded object needs [database] in the pusher configuration".into(),
            )));
        };
        let Some(row) = net.latest_image() else {
            return Ok(Err(rejected("the change carries no row image".into())));
        };
        if let Err(result) = self
            .replica_caught_up(db, [net.source.gtid.as_deref()])
            .await
        {
            return match result {
                CallResult::Parked { reason } => Ok(Err(rejected(reason))),
                other => Err(other),
            };
        }
        let config = &self.partner.mapping;
        for embed in embeds {
            let read = match composite::read_embedded(db, config, embed, row).await {
                Ok(read) => read,
                Err(e @ (DbError::Unavailable { .. } | DbError::Tls { .. })) => {
                    self.metrics.failed(FailureClass::Database);
                    return Err(CallResult::WaitDatabase {
                        reason: e.to_string(),
                    });
                }
                Err(e @ (DbError::Schema { .. } | DbError::Unwaitable { .. })) => {
                    return Ok(Err(rejected(e.to_string())))
                }
            };
            self.metrics.database_read();
            let Some((root, node)) = read else {
                return Ok(Err(rejected(format!(
                    "`{}` embeds the Location of `{}` that this row names, and the database \
                     holds no such row",
                    embed.field, embed.table
                ))));
            };
            let object = match composite::render_embedded(config, root, &node, version) {
                Ok(object) => object,
                Err(e) => return Ok(Err(e)),
            };
            if let Some(Value::Object(body)) = &mut plan.body {
                body.insert(embed.field.clone(), object);
            }
        }
        Ok(Ok(plan))
    }
}
