//! The unacked deliveries of one consuming phase, and when their acks go out.
//!
//! Acking each message on its own costs the broker a frame per message, which made the broker
//! spend three times its raw consume cost per pushed message. Settled messages are therefore
//! gathered for a few milliseconds and the settled *head* of the window (every delivery up to
//! the first one still being worked on) is acked with one `multiple` ack. A settled message
//! behind one still in flight cannot join that ack; it is acked on its own once it waited
//! [`STRAGGLER_AFTER`], or at once when settled messages would crowd the prefetch window.
//!
//! Generic over the ack handle so the rules are tested without a broker.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long settled messages are gathered before their acks go out.
pub const GATHER: Duration = Duration::from_millis(5);
/// ... unless this many are gathered.
pub const GATHER_MAX: usize = 64;
/// A settled message behind an unsettled one waits at most this long for its ack.
pub const STRAGGLER_AFTER: Duration = Duration::from_millis(100);

struct Entry<A> {
    received: Instant,
    handle: A,
    settled_at: Option<Instant>,
}

/// Acks to send now: one for the settled head (with `multiple`), single ones for the rest.
pub struct DueAcks<A> {
    pub head: Option<A>,
    pub singles: Vec<A>,
}

impl<A> DueAcks<A> {
    pub fn is_empty(&self) -> bool {
        self.head.is_none() && self.singles.is_empty()
    }
}

pub struct AckWindow<A> {
    /// By delivery tag, so the first is the oldest.
    entries: BTreeMap<u64, Entry<A>>,
    settled: usize,
    /// Settled messages past this many are acked at once, gap or not.
    crowd_limit: usize,
    due: Option<Instant>,
}

impl<A> AckWindow<A> {
    /// `prefetch`: the consumer's window; a quarter of it may wait settled behind a gap.
    pub fn new(prefetch: usize) -> AckWindow<A> {
        AckWindow {
            entries: BTreeMap::new(),
            settled: 0,
            crowd_limit: (prefetch / 4).max(1),
            due: None,
        }
    }

    pub fn insert(&mut self, tag: u64, handle: A, now: Instant) {
        self.entries.insert(
            tag,
            Entry {
                received: now,
                handle,
                settled_at: None,
            },
        );
    }

    /// Unacked deliveries, settled or not.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// When the oldest unacked delivery arrived.
    pub fn oldest_received(&self) -> Option<Instant> {
        self.entries.first_key_value().map(|(_, e)| e.received)
    }

    /// Marks deliveries as done (delivered, parked, nothing to send): they may be acked.
    pub fn settle(&mut self, tags: &[u64], now: Instant) {
        for tag in tags {
            if let Some(entry) = self.entries.get_mut(tag) {
                if entry.settled_at.is_none() {
                    entry.settled_at = Some(now);
                    self.settled += 1;
                }
            }
        }
        if self.settled > 0 {
            let due = if self.settled >= GATHER_MAX {
                now
            } else {
                now + GATHER
            };
            self.due = Some(self.due.map_or(due, |at| at.min(due)));
        }
    }

    /// When [`take_due`](Self::take_due) should be called next.
    pub fn next_due(&self) -> Option<Instant> {
        self.due
    }

    /// Removes and returns the acks to send now; `everything` takes every settled delivery
    /// (the phase ends).
    pub fn take_due(&mut self, now: Instant, everything: bool) -> DueAcks<A> {
        self.due = None;
        let mut due = DueAcks {
            head: None,
            singles: Vec::new(),
        };
        if self.settled == 0 {
            return due;
        }
        while let Some(entry) = self.entries.first_entry() {
            if entry.get().settled_at.is_none() {
                break;
            }
            due.head = Some(entry.remove().handle);
            self.settled -= 1;
        }
        if self.settled == 0 {
            return due;
        }
        let crowded = self.settled >= self.crowd_limit;
        let singles: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.settled_at.is_some_and(|at| {
                    everything || crowded || now.saturating_duration_since(at) >= STRAGGLER_AFTER
                })
            })
            .map(|(tag, _)| *tag)
            .collect();
        for tag in singles {
            if let Some(entry) = self.entries.remove(&tag) {
                self.settled -= 1;
                due.singles.push(entry.handle);
            }
        }
        if self.settled > 0 {
            self.due = Some(now + STRAGGLER_AFTER);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(tags: std::ops::RangeInclusive<u64>, now: Instant) -> AckWindow<u64> {
        let mut w = AckWindow::new(500);
        for tag in tags {
            w.insert(tag, tag, now);
        }
        w
    }

    #[test]
    fn the_settled_head_goes_out_as_one_multiple_ack_for_its_last_tag() {
        let now = Instant::now();
        let mut w = window(1..=10, now);
        w.settle(&[1, 2, 3, 4], now);
        assert_eq!(w.next_due(), Some(now + GATHER));
        let due = w.take_due(now + GATHER, false);
        assert_eq!(due.head, Some(4));
        assert!(due.singles.is_empty());
        assert_eq!(w.len(), 6);
        assert_eq!(w.next_due(), None);
    }

    #[test]
    fn nothing_is_due_while_nothing_is_settled() {
        let now = Instant::now();
        let mut w = window(1..=3, now);
        assert_eq!(w.next_due(), None);
        assert!(w.take_due(now, true).is_empty());
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn a_settled_message_behind_a_gap_waits_then_is_acked_alone() {
        let now = Instant::now();
        let mut w = window(1..=5, now);
        w.settle(&[1, 3, 4], now);
        let due = w.take_due(now + GATHER, false);
        assert_eq!(due.head, Some(1));
        assert!(due.singles.is_empty(), "3 and 4 wait behind 2");
        assert_eq!(w.next_due(), Some(now + GATHER + STRAGGLER_AFTER));
        // 2 settles in time: 2, 3 and 4 become the head.
        w.settle(&[2], now + Duration::from_millis(20));
        let due = w.take_due(now + Duration::from_millis(25), false);
        assert_eq!(due.head, Some(4));
        assert!(due.singles.is_empty());
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn a_straggler_is_acked_alone_once_it_waited_long_enough() {
        let now = Instant::now();
        let mut w = window(1..=5, now);
        w.settle(&[3], now);
        assert!(w.take_due(now + GATHER, false).is_empty());
        let due = w.take_due(now + STRAGGLER_AFTER, false);
        assert_eq!(due.head, None);
        assert_eq!(due.singles, vec![3]);
        assert_eq!(w.len(), 4);
        assert_eq!(w.next_due(), None);
    }

    #[test]
    fn the_end_of_a_phase_takes_every_settled_message() {
        let now = Instant::now();
        let mut w = window(1..=6, now);
        w.settle(&[2, 4, 5], now);
        let due = w.take_due(now, true);
        assert_eq!(due.head, None);
        assert_eq!(due.singles, vec![2, 4, 5]);
        assert_eq!(w.len(), 3, "the unsettled stay: the broker gets them back");
    }

    #[test]
    fn settled_messages_never_crowd_the_prefetch_window() {
        let now = Instant::now();
        let mut w: AckWindow<u64> = AckWindow::new(8);
        for tag in 1..=8 {
            w.insert(tag, tag, now);
        }
        w.settle(&[2], now);
        assert!(w.take_due(now, false).is_empty(), "one straggler may wait");
        w.settle(&[3], now);
        let due = w.take_due(now, false);
        assert_eq!(due.singles, vec![2, 3], "two of a window of 8 is a quarter");
    }

    #[test]
    fn many_settled_messages_are_due_at_once() {
        let now = Instant::now();
        let mut w = window(1..=100, now);
        let tags: Vec<u64> = (1..=GATHER_MAX as u64).collect();
        w.settle(&tags, now);
        assert_eq!(w.next_due(), Some(now));
    }

    #[test]
    fn settling_twice_or_an_unknown_tag_changes_nothing() {
        let now = Instant::now();
        let mut w = window(1..=2, now);
        w.settle(&[1, 1, 7], now);
        let due = w.take_due(now, false);
        assert_eq!(due.head, Some(1));
        assert_eq!(w.len(), 1);
        assert!(w.take_due(now, true).is_empty());
    }

    #[test]
    fn the_oldest_unacked_delivery_is_known() {
        let now = Instant::now();
        let mut w: AckWindow<u64> = AckWindow::new(10);
        assert_eq!(w.oldest_received(), None);
        w.insert(5, 5, now);
        w.insert(6, 6, now + Duration::from_secs(1));
        assert_eq!(w.oldest_received(), Some(now));
    }
}
