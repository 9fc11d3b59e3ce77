//! The recent rate of a counter, and the wall clock in whole seconds.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The recent rate of a counter, from samples taken about once a second and averaged over
/// `window`: smooth enough to read, recent enough to show a stall within seconds.
#[derive(Debug)]
pub struct Rate {
    window: Duration,
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    pub fn new(window: Duration) -> Rate {
        Rate {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Records the counter's value at `now`; returns the rate per second over the window.
    pub fn observe(&mut self, now: Instant, count: u64) -> f64 {
        self.samples.push_back((now, count));
        while self.samples.len() > 2
            && self
                .samples
                .front()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) > self.window)
        {
            self.samples.pop_front();
        }
        let Some(&(first_at, first)) = self.samples.front() else {
            return 0.0;
        };
        let secs = now.saturating_duration_since(first_at).as_secs_f64();
        if secs < 0.001 {
            return 0.0;
        }
        count.saturating_sub(first) as f64 / secs
    }
}

pub fn unix_secs_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_the_counter_s_slope_over_the_window() {
        let mut rate = Rate::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(rate.observe(t0, 100), 0.0);
        for s in 1..=20u64 {
            let r = rate.observe(t0 + Duration::from_secs(s), 100 + 50 * s);
            assert!((r - 50.0).abs() < 1e-9, "second {s}: {r}");
        }
        // Stopped: the rate falls to zero once the window holds no movement.
        let r = rate.observe(t0 + Duration::from_secs(40), 1100);
        assert!(r < 50.0 / 2.0, "{r}");
        let r = rate.observe(t0 + Duration::from_secs(41), 1100);
        assert_eq!(r, 0.0);
    }
}
