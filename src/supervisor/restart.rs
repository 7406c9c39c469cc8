//! Restart bookkeeping for the supervisor's children: a capped exponential
//! backoff between restarts, and a restart intensity (OTP's "more than
//! `max` restarts within `window`") beyond which the supervisor gives up and
//! the process exits non-zero, so that systemd restarts the whole unit
//! instead of us looping on a child that cannot live.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// First restart delay; doubled for each restart still inside the window.
pub const BASE_BACKOFF: Duration = Duration::from_millis(100);
/// Longest delay between two restarts of the same child.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How many restarts are tolerated in what time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartLimit {
    /// Restarts allowed within `window` (all children together).
    pub max: usize,
    /// The sliding window.
    pub window: Duration,
}

impl Default for RestartLimit {
    /// Five restarts a minute: a child crashing more often than that is not
    /// going to get better by itself.
    fn default() -> Self {
        RestartLimit {
            max: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// The restart history within the window.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    limit: RestartLimit,
    recent: VecDeque<Instant>,
    total: u64,
}

/// The restart intensity was exceeded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{restarts} child restarts within {window:?} (limit {max}): giving up so that the service manager restarts the process"
)]
pub struct IntensityExceeded {
    /// Restarts counted within the window.
    pub restarts: usize,
    /// The limit.
    pub max: usize,
    /// The window.
    pub window: Duration,
}

impl RestartTracker {
    /// A tracker enforcing `limit`.
    pub fn new(limit: RestartLimit) -> RestartTracker {
        RestartTracker {
            limit,
            recent: VecDeque::new(),
            total: 0,
        }
    }

    /// Records a restart at `now`; answers how long to wait before it, or
    /// the error when this restart is one too many.
    pub fn record(&mut self, now: Instant) -> Result<Duration, IntensityExceeded> {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.limit.window)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.total += 1;
        if self.recent.len() > self.limit.max {
            return Err(IntensityExceeded {
                restarts: self.recent.len(),
                max: self.limit.max,
                window: self.limit.window,
            });
        }
        let exponent = u32::try_from(self.recent.len().saturating_sub(1)).unwrap_or(u32::MAX);
        let factor = 2u32.saturating_pow(exponent.min(16));
        Ok(BASE_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF))
    }

    /// Restarts since start.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_the_window_and_is_capped() {
        let mut tracker = RestartTracker::new(RestartLimit {
            max: 10,
            window: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        let delays: Vec<Duration> = (0..8)
            .map(|i| {
                tracker
                    .record(t0 + Duration::from_secs(i))
                    .expect("within limit")
            })
            .collect();
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[1], Duration::from_millis(200));
        assert_eq!(delays[2], Duration::from_millis(400));
        assert_eq!(delays[7], MAX_BACKOFF);
        assert_eq!(tracker.total(), 8);
    }

    #[test]
    fn restarts_outside_the_window_are_forgotten() {
        let mut tracker = RestartTracker::new(RestartLimit {
            max: 2,
            window: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        assert!(tracker.record(t0).is_ok());
        assert!(tracker.record(t0 + Duration::from_secs(1)).is_ok());
        // 20 s later both are out of the window: back to the first delay.
        assert_eq!(
            tracker.record(t0 + Duration::from_secs(20)),
            Ok(BASE_BACKOFF)
        );
    }

    #[test]
    fn one_restart_too_many_within_the_window_is_an_error() {
        let mut tracker = RestartTracker::new(RestartLimit {
            max: 3,
            window: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(tracker.record(t0 + Duration::from_secs(i)).is_ok());
        }
        let error = tracker
            .record(t0 + Duration::from_secs(4))
            .expect_err("4th restart");
        assert_eq!(error.restarts, 4);
    }
}
