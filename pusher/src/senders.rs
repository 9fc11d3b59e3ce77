//! Who published a message: the broker refuses a publish whose `user_id` property differs from
//! the user its connection logged in as, so a message carrying `user_id` X was published by a
//! connection logged in as X. The pusher pushes change messages only from the users of
//! `broker.bridge_users` (and of `broker.pusher_users`, whose replays of parked messages come back
//! into partner queues), and hears presence announcements only from `broker.pusher_users`.
//!
//! Parking and replaying publish a message again under the pusher's own user; the user who
//! first published it travels in [`HEADER_PUBLISHED_BY`], so a replay never turns a refused
//! message into an accepted one. That header is believed only on a message a pusher user
//! published: anyone else's is judged by its own `user_id`.

use lapin::types::AMQPValue;
use lapin::types::LongString;
#[cfg(test)]
use lapin::types::{FieldTable, ShortString};
use lapin::BasicProperties;

/// Header of a parked or replayed message: the broker user who first published it (its
/// `user_id` then), when it carried one.
pub const HEADER_PUBLISHED_BY: &str = "x-published-by";

/// The broker users this pusher trusts, resolved from `[broker]` (see `config/pusher.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Senders {
    /// The user this pusher logs in as (from `broker.url`): what it publishes with.
    own: String,
    /// `broker.bridge_users`.
    bridges: Vec<String>,
    /// `broker.pusher_users`, the own user always among them.
    pushers: Vec<String>,
}

/// Why a message is not taken from its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `user_id`: the publisher is unknown.
    Anonymous,
    /// Published by a user none of the options names.
    Unexpected(String),
}

impl Senders {
    /// `bridges` empty means the pusher's own user (the local defaults: both log in as guest);
    /// the own user is always one of the pusher users.
    pub fn new(own: &str, bridges: &[String], pushers: &[String]) -> Senders {
        let mut bridges = bridges.to_vec();
        if bridges.is_empty() {
            bridges.push(own.to_string());
        }
        let mut pushers = pushers.to_vec();
        if !pushers.iter().any(|p| p == own) {
            pushers.push(own.to_string());
        }
        Senders {
            own: own.to_string(),
            bridges,
            pushers,
        }
    }

    /// The user this pusher publishes as (its `user_id`).
    pub fn own(&self) -> &str {
        &self.own
    }

    /// The bridge users, as configured or defaulted.
    pub fn bridges(&self) -> &[String] {
        &self.bridges
    }

    /// The pusher users, the own user included.
    pub fn pushers(&self) -> &[String] {
        &self.pushers
    }

    /// Whether a message of a partner queue may be pushed: published by a bridge user, or by a
    /// pusher user (a replay) whose first publisher ([`HEADER_PUBLISHED_BY`]) is one of either.
    pub fn change(&self, properties: &BasicProperties) -> Result<(), Refusal> {
        let user = user_of(properties).ok_or(Refusal::Anonymous)?;
        let known = |name: &str| {
            self.bridges.iter().any(|b| b == name) || self.pushers.iter().any(|p| p == name)
        };
        if self.pushers.iter().any(|p| p == user) {
            // Checked first: with one user for bridge and pushers (the defaults), a replayed
            // message must still be judged by who first published it.
            if let Some(first) = first_publisher(properties) {
                return if known(&first) {
                    Ok(())
                } else {
                    Err(Refusal::Unexpected(first))
                };
            }
            return Ok(());
        }
        if self.bridges.iter().any(|b| b == user) {
            Ok(())
        } else {
            Err(Refusal::Unexpected(user.to_string()))
        }
    }

    /// Whether a presence announcement counts: published by a pusher user.
    pub fn presence(&self, properties: &BasicProperties) -> Result<(), Refusal> {
        let user = user_of(properties).ok_or(Refusal::Anonymous)?;
        if self.pushers.iter().any(|p| p == user) {
            Ok(())
        } else {
            Err(Refusal::Unexpected(user.to_string()))
        }
    }

    /// The park reason of a change message refused for its sender: who sent it and which
    /// option would accept it.
    pub fn change_reason(&self, refusal: &Refusal) -> String {
        match refusal {
            Refusal::Anonymous => format!(
                "not pushed: the message carries no user_id, so the broker user who published it \
                 is unknown (the bridge sets it on every change; a bridge older than the pusher \
                 does not: upgrade it, then replay). Accepted: broker.bridge_users {:?}, \
                 broker.pusher_users {:?}",
                self.bridges, self.pushers
            ),
            Refusal::Unexpected(user) => format!(
                "not pushed: published by broker user `{user}`, which is not in \
                 broker.bridge_users {:?} (nor broker.pusher_users {:?}); if `{user}` is the user \
                 the bridge logs in as, add it to broker.bridge_users in the pusher's \
                 configuration and replay, otherwise discard it and find out who publishes \
                 into the partner queues",
                self.bridges, self.pushers
            ),
        }
    }
}

impl Refusal {
    /// The sender as logs show it.
    pub fn user(&self) -> &str {
        match self {
            Refusal::Anonymous => "(no user_id)",
            Refusal::Unexpected(user) => user,
        }
    }
}

/// The `user_id` a message carries.
pub fn user_of(properties: &BasicProperties) -> Option<&str> {
    properties.user_id().as_ref().map(|u| u.as_str())
}

/// The user who first published a message, from [`HEADER_PUBLISHED_BY`].
pub fn first_publisher(properties: &BasicProperties) -> Option<String> {
    properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(HEADER_PUBLISHED_BY))
        .and_then(|v| match v {
            AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
            _ => None,
        })
}

/// Before a message is published again under this pusher's user (parked, replayed): the
/// [`HEADER_PUBLISHED_BY`] value to add so that who first published it stays known (its
/// `user_id`); `None` when it has the header already, or no `user_id` to keep.
pub fn published_by(original: &BasicProperties) -> Option<AMQPValue> {
    let has_header = original
        .headers()
        .as_ref()
        .is_some_and(|h| h.contains_key(HEADER_PUBLISHED_BY));
    if has_header {
        return None;
    }
    user_of(original).map(|user| AMQPValue::LongString(LongString::from(user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(user: Option<&str>, first: Option<&str>) -> BasicProperties {
        let mut props = BasicProperties::default();
        if let Some(user) = user {
            props = props.with_user_id(ShortString::from(user));
        }
        if let Some(first) = first {
            let mut headers = FieldTable::default();
            headers.insert(
                ShortString::from(HEADER_PUBLISHED_BY),
                AMQPValue::LongString(LongString::from(first)),
            );
            props = props.with_headers(headers);
        }
        props
    }

    fn separate() -> Senders {
        Senders::new("cdc-pusher", &["cdc-bridge".into()], &[])
    }

    #[test]
    fn by_default_only_the_pushers_own_user_is_a_bridge_user() {
        let senders = Senders::new("guest", &[], &[]);
        assert_eq!(senders.bridges(), ["guest".to_string()]);
        assert_eq!(senders.pushers(), ["guest".to_string()]);
        assert_eq!(senders.change(&from(Some("guest"), None)), Ok(()));
        assert_eq!(
            senders.change(&from(Some("mallory"), None)),
            Err(Refusal::Unexpected("mallory".into()))
        );
    }

    #[test]
    fn a_change_without_user_id_is_refused_as_anonymous() {
        assert_eq!(
            separate().change(&from(None, None)),
            Err(Refusal::Anonymous)
        );
        assert_eq!(
            separate().presence(&from(None, None)),
            Err(Refusal::Anonymous)
        );
    }

    #[test]
    fn changes_come_from_bridge_users_and_replays_from_pusher_users() {
        let senders = separate();
        assert_eq!(senders.change(&from(Some("cdc-bridge"), None)), Ok(()));
        // A replay of a change the bridge published, parked by a pusher.
        assert_eq!(
            senders.change(&from(Some("cdc-pusher"), Some("cdc-bridge"))),
            Ok(())
        );
        // A replay of a message parked before user ids existed.
        assert_eq!(senders.change(&from(Some("cdc-pusher"), None)), Ok(()));
    }

    #[test]
    fn a_replay_does_not_launder_a_message_from_an_unexpected_user() {
        assert_eq!(
            separate().change(&from(Some("cdc-pusher"), Some("mallory"))),
            Err(Refusal::Unexpected("mallory".into()))
        );
    }

    #[test]
    fn with_one_user_for_bridge_and_pusher_a_replay_is_still_judged_by_its_first_publisher() {
        let senders = Senders::new("guest", &[], &[]);
        assert_eq!(
            senders.change(&from(Some("guest"), Some("mallory"))),
            Err(Refusal::Unexpected("mallory".into()))
        );
        assert_eq!(senders.change(&from(Some("guest"), Some("guest"))), Ok(()));
    }

    #[test]
    fn the_published_by_header_of_anyone_else_is_not_believed() {
        assert_eq!(
            separate().change(&from(Some("mallory"), Some("cdc-bridge"))),
            Err(Refusal::Unexpected("mallory".into()))
        );
    }

    #[test]
    fn republishing_keeps_the_first_publisher_and_never_overwrites_it() {
        let value = published_by(&from(Some("cdc-bridge"), None));
        assert_eq!(
            value,
            Some(AMQPValue::LongString(LongString::from("cdc-bridge")))
        );
        // Parked again by another pusher user: the header it has stays.
        assert_eq!(
            published_by(&from(Some("pusher-b"), Some("cdc-bridge"))),
            None
        );
        assert_eq!(published_by(&from(None, None)), None);
    }

    #[test]
    fn presence_counts_only_from_pusher_users() {
        let senders = Senders::new("cdc-pusher", &["cdc-bridge".into()], &["pusher-b".into()]);
        assert_eq!(senders.presence(&from(Some("cdc-pusher"), None)), Ok(()));
        assert_eq!(senders.presence(&from(Some("pusher-b"), None)), Ok(()));
        assert_eq!(
            senders.presence(&from(Some("cdc-bridge"), None)),
            Err(Refusal::Unexpected("cdc-bridge".into()))
        );
    }

    #[test]
    fn the_park_reason_names_the_sender_and_the_option() {
        let reason = separate().change_reason(&Refusal::Unexpected("mallory".into()));
        assert!(reason.contains("`mallory`"), "{reason}");
        assert!(reason.contains("broker.bridge_users"), "{reason}");
        assert!(reason.contains("cdc-bridge"), "{reason}");
    }
}
