//! When to try reconnecting to Graphite (SPEC §5): after a failure, up to
//! `retries` attempts, the first `interval` later, each following one
//! `backoff` times later than the previous; when a round is used up, `delay`
//! before the next round starts over. Pure, so it is tested without sockets.

use std::time::Duration;

use crate::config::{GraphiteConfig, Retries};

/// No single wait exceeds this, whatever backoff does over a long outage.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// The reconnect schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    retries: Retries,
    interval: Duration,
    backoff: f64,
    delay: Duration,
}

/// Where the sink is in its schedule after consecutive failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryState {
    /// Failed attempts in the current round.
    failures_in_round: u32,
}

impl RetryPolicy {
    /// The policy of `[graphite]`.
    pub fn from_config(graphite: &GraphiteConfig) -> RetryPolicy {
        RetryPolicy {
            retries: graphite.retries,
            interval: graphite.interval,
            backoff: graphite.backoff,
            delay: graphite.delay,
        }
    }

    /// A policy from its parts (tests, benchmarks).
    pub fn new(retries: Retries, interval: Duration, backoff: f64, delay: Duration) -> RetryPolicy {
        RetryPolicy {
            retries,
            interval,
            backoff,
            delay,
        }
    }

    /// After a failed attempt (or a connection that broke), how long to wait
    /// before the next attempt; updates `state`. A round is one attempt plus
    /// `retries` more; a used-up round is followed by `delay`.
    pub fn next_wait(&self, state: &mut RetryState) -> Duration {
        state.failures_in_round = state.failures_in_round.saturating_add(1);
        let failures = state.failures_in_round;
        if let Retries::Times(retries) = self.retries
            && failures > retries
        {
            state.failures_in_round = 0;
            return self.delay.min(MAX_WAIT);
        }
        let exponent = i32::try_from(failures - 1).unwrap_or(i32::MAX);
        let secs = self.interval.as_secs_f64() * self.backoff.powi(exponent);
        if secs.is_finite() && secs < MAX_WAIT.as_secs_f64() {
            Duration::from_secs_f64(secs.max(0.0))
        } else {
            MAX_WAIT
        }
    }

    /// A connection worked: the next failure starts a fresh round.
    pub fn reset(state: &mut RetryState) {
        *state = RetryState::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn waits(policy: &RetryPolicy, n: usize) -> Vec<Duration> {
        let mut state = RetryState::default();
        (0..n).map(|_| policy.next_wait(&mut state)).collect()
    }

    #[test]
    fn a_round_backs_off_then_waits_delay_and_starts_over() {
        let policy = RetryPolicy::new(Retries::Times(3), secs(1.0), 2.0, secs(10.0));
        // attempt fails → 1 s → retry 1 fails → 2 s → retry 2 fails → 4 s →
        // retry 3 fails: round used up → 10 s → a new round, same again.
        assert_eq!(
            waits(&policy, 8),
            [1.0, 2.0, 4.0, 10.0, 1.0, 2.0, 4.0, 10.0].map(secs)
        );
    }

    #[test]
    fn zero_retries_waits_delay_between_single_attempts() {
        let policy = RetryPolicy::new(Retries::Times(0), secs(1.0), 2.0, secs(10.0));
        assert_eq!(waits(&policy, 3), [10.0, 10.0, 10.0].map(secs));
    }

    #[test]
    fn forever_keeps_backing_off_up_to_the_cap() {
        let policy = RetryPolicy::new(Retries::Forever, secs(100.0), 2.0, secs(10.0));
        assert_eq!(
            waits(&policy, 4),
            [secs(100.0), secs(200.0), MAX_WAIT, MAX_WAIT]
        );
    }

    #[test]
    fn reset_starts_a_fresh_round() {
        let policy = RetryPolicy::new(Retries::Times(3), secs(1.0), 2.0, secs(10.0));
        let mut state = RetryState::default();
        policy.next_wait(&mut state);
        policy.next_wait(&mut state);
        RetryPolicy::reset(&mut state);
        assert_eq!(policy.next_wait(&mut state), secs(1.0));
    }
}
