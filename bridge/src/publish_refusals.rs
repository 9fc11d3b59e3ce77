//! How long the bridge keeps publishing a window the broker refuses (`basic.nack`).
//!
//! RabbitMQ nacks a publish when a queue it routes to will not take it: a queue with a length
//! limit and `overflow = reject-publish` that is full, most often the queue of a partner that
//! has been offline for a while. Publishing the window again is right while the queue drains
//! (its pusher consumes); it is wrong forever. A streak of refusals without any confirm in
//! between is retried with a growing pause, and once it has lasted `limit` the bridge stops
//! with the reason instead (the checkpoint stays before the refused message: nothing is lost).
//!
//! Free of I/O: the publisher asks it what to do after each refusal and tells it of progress.

use std::time::{Duration, Instant};

/// The pause before the first retry; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// What to do after a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Publish the window again after this pause (`attempt` refusals so far in the streak).
    RetryAfter { pause: Duration, attempt: u32 },
    /// The streak has lasted at least the limit: stop.
    GiveUp { lasted: Duration, attempts: u32 },
}

/// Refusals since the last confirmed publish.
#[derive(Debug)]
pub struct RefusalStreak {
    limit: Duration,
    since: Option<Instant>,
    attempts: u32,
}

impl RefusalStreak {
    /// A streak that gives up once it has lasted `limit` (`broker.refused_publish_timeout_secs`).
    pub fn new(limit: Duration) -> RefusalStreak {
        RefusalStreak {
            limit,
            since: None,
            attempts: 0,
        }
    }

    /// The broker confirmed a publish: the streak, if any, is over.
    pub fn progressed(&mut self) {
        self.since = None;
        self.attempts = 0;
    }

    /// The broker refused a publish at `now`.
    pub fn refused(&mut self, now: Instant) -> Verdict {
        let since = *self.since.get_or_insert(now);
        self.attempts += 1;
        let lasted = now.saturating_duration_since(since);
        if lasted >= self.limit {
            return Verdict::GiveUp {
                lasted,
                attempts: self.attempts,
            };
        }
        let doubling = FIRST_PAUSE.saturating_mul(1 << (self.attempts - 1).min(16));
        let pause = doubling.min(MAX_PAUSE).min(self.limit - lasted);
        Verdict::RetryAfter {
            pause,
            attempt: self.attempts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_with_a_growing_pause_then_gives_up_once_the_streak_lasted_the_limit() {
        let mut streak = RefusalStreak::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let pauses: Vec<Duration> = (0..5)
            .map(|i| match streak.refused(t0 + Duration::from_secs(i)) {
                Verdict::RetryAfter { pause, .. } => pause,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            pauses,
            [500, 1000, 2000, 4000, 8000].map(Duration::from_millis)
        );
        assert_eq!(
            streak.refused(t0 + Duration::from_secs(20)),
            Verdict::RetryAfter {
                pause: Duration::from_secs(10),
                attempt: 6
            }
        );
        assert_eq!(
            streak.refused(t0 + Duration::from_secs(30)),
            Verdict::GiveUp {
                lasted: Duration::from_secs(30),
                attempts: 7
            }
        );
    }

    #[test]
    fn the_last_pause_ends_at_the_limit() {
        let mut streak = RefusalStreak::new(Duration::from_secs(3));
        let t0 = Instant::now();
        streak.refused(t0);
        assert_eq!(
            streak.refused(t0 + Duration::from_millis(2500)),
            Verdict::RetryAfter {
                pause: Duration::from_millis(500),
                attempt: 2
            }
        );
    }

    #[test]
    fn a_confirm_in_between_starts_a_new_streak() {
        let mut streak = RefusalStreak::new(Duration::from_secs(5));
        let t0 = Instant::now();
        streak.refused(t0);
        streak.refused(t0 + Duration::from_secs(4));
        streak.progressed();
        assert_eq!(
            streak.refused(t0 + Duration::from_secs(6)),
            Verdict::RetryAfter {
                pause: FIRST_PAUSE,
                attempt: 1
            }
        );
    }
}
