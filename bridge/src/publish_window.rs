//! How much the publisher may have awaiting the broker's confirms: at most
//! `broker.confirm_window` messages and `broker.confirm_window_bytes` bytes of bodies, so that
//! a run of large rows cannot take memory in proportion to the message count (1,000 rows of
//! 15 MiB would be 15 GB). One message is always allowed, however large: the window never
//! stops a message that fits `broker.max_message_bytes`.

/// Messages and body bytes unconfirmed, against their bounds.
#[derive(Debug)]
pub struct ConfirmWindow {
    max_messages: usize,
    max_bytes: usize,
    messages: usize,
    bytes: usize,
}

impl ConfirmWindow {
    pub fn new(max_messages: usize, max_bytes: usize) -> ConfirmWindow {
        ConfirmWindow {
            max_messages,
            max_bytes,
            messages: 0,
            bytes: 0,
        }
    }

    /// May one more message be published now?
    pub fn has_room(&self) -> bool {
        self.messages == 0 || (self.messages < self.max_messages && self.bytes < self.max_bytes)
    }

    /// A message of `bytes` was handed to the broker.
    pub fn sent(&mut self, bytes: usize) {
        self.messages += 1;
        self.bytes += bytes;
    }

    /// The broker confirmed a message of `bytes`.
    pub fn confirmed(&mut self, bytes: usize) {
        self.messages = self.messages.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }

    pub fn messages(&self) -> usize {
        self.messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_closes_at_the_message_bound_and_opens_as_confirms_arrive() {
        let mut window = ConfirmWindow::new(3, 1_000_000);
        for _ in 0..2 {
            window.sent(10);
        }
        assert!(window.has_room());
        window.sent(10);
        assert!(!window.has_room(), "three messages are the bound");
        window.confirmed(10);
        assert!(window.has_room());
    }

    #[test]
    fn the_window_closes_at_the_byte_bound_and_opens_as_confirms_arrive() {
        let mut window = ConfirmWindow::new(1000, 1000);
        window.sent(10);
        window.sent(990);
        assert!(!window.has_room(), "1000 bytes are the bound");
        window.confirmed(10);
        assert!(window.has_room(), "990 bytes leave room");
        window.confirmed(990);
        assert_eq!(window.messages(), 0);
    }

    #[test]
    fn one_message_larger_than_the_byte_bound_is_still_published_alone() {
        let mut window = ConfirmWindow::new(1000, 100);
        assert!(window.has_room());
        window.sent(5000);
        assert!(!window.has_room());
        window.confirmed(5000);
        assert!(window.has_room());
    }
}
