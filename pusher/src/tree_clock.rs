//! The newest `last_updated` a partner holds for each object of a Location tree, as far as
//! this pusher sent it.
//!
//! A receiver keeps an object's `last_updated` as the newest of the object's and its
//! children's, and may refuse a state older than the one it holds (ocpi/ocpi issue 281). A
//! composite object's `last_updated` is the newest of its rows as the database holds them now:
//! after a child was deleted that can be older than what the partner holds (the deleted row was
//! the newest, and the binlog dates the delete to the second only). The pusher therefore
//! remembers what it sent, per object and for the object's ancestors (which the receiver
//! bumps), and never sends a tree object older than that: it sends the remembered value
//! instead, which a receiver takes (not older than what it holds).
//!
//! The memory is this process's: a pusher that starts (after a restart or a hand-over) knows
//! nothing of what an earlier one sent. It is bounded: the oldest entries are forgotten first.

use std::collections::{HashMap, VecDeque};

use crate::mapping;

/// Objects remembered per partner.
pub const REMEMBERED_OBJECTS: usize = 100_000;

#[derive(Debug)]
pub struct TreeClock {
    newest: HashMap<String, String>,
    /// Keys in the order they were first remembered, for forgetting the oldest.
    order: VecDeque<String>,
    capacity: usize,
}

impl TreeClock {
    pub fn new(capacity: usize) -> TreeClock {
        TreeClock {
            newest: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// The newest `last_updated` sent for the object `key` (or inside it), if remembered.
    pub fn floor(&self, key: &str) -> Option<&str> {
        self.newest.get(key).map(String::as_str)
    }

    /// `last_updated` went out for each of `keys` (an object and its ancestors).
    pub fn sent(&mut self, keys: &[String], last_updated: &str) {
        let Some(at) = mapping::instant(last_updated) else {
            return;
        };
        for key in keys {
            match self.newest.get_mut(key) {
                Some(held) => {
                    if mapping::instant(held).is_none_or(|h| at > h) {
                        *held = last_updated.to_string();
                    }
                }
                None => {
                    if self.order.len() >= self.capacity {
                        if let Some(oldest) = self.order.pop_front() {
                            self.newest.remove(&oldest);
                        }
                    }
                    self.order.push_back(key.clone());
                    self.newest.insert(key.clone(), last_updated.to_string());
                }
            }
        }
    }

    /// The later of `computed` and the remembered value for `key`: what an object's
    /// `last_updated` must be so that the partner does not find it older than what it holds.
    pub fn at_least(&self, key: &str, computed: &str) -> Option<String> {
        let floor = self.floor(key)?;
        match (mapping::instant(floor), mapping::instant(computed)) {
            (Some(f), Some(c)) if f > c => Some(floor.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_older_than_one_sent_is_raised_to_it_and_newer_ones_are_left_alone() {
        let mut clock = TreeClock::new(10);
        let keys = [
            "locations/NL/EXA/L1/E1".to_string(),
            "locations/NL/EXA/L1".to_string(),
        ];
        clock.sent(&keys, "2026-03-01T10:00:00.900Z");
        clock.sent(&keys[..1], "2026-03-01T10:00:00.100Z");
        assert_eq!(
            clock.at_least("locations/NL/EXA/L1", "2026-03-01T10:00:00.500Z"),
            Some("2026-03-01T10:00:00.900Z".into())
        );
        assert_eq!(
            clock.at_least("locations/NL/EXA/L1/E1", "2026-03-01T10:00:01Z"),
            None
        );
        assert_eq!(
            clock.at_least("locations/NL/EXA/L2", "2026-03-01T10:00:00Z"),
            None
        );
    }

    #[test]
    fn the_oldest_objects_are_forgotten_first() {
        let mut clock = TreeClock::new(2);
        for key in ["a", "b", "c"] {
            clock.sent(&[key.to_string()], "2026-03-01T10:00:00Z");
        }
        assert_eq!(clock.floor("a"), None);
        assert!(clock.floor("b").is_some() && clock.floor("c").is_some());
    }
}
