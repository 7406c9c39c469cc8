//! The restart policy of a supervisor's children, the daemon's Supervisor's
//! and Central's alike: a capped exponential backoff between restarts, and a
//! restart intensity (OTP's "more than `max` restarts within `window`")
//! beyond which the supervisor gives up and the process exits non-zero, so
//! that systemd restarts the whole unit instead of us looping on a child
//! that cannot live.
//!
//! [`Restarts`] decides, with no actor and no clock of its own: which
//! children are dead, when one is started again, when to give up.
//! [`super::children`] carries its decisions out for both supervisors.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
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

/// Whether a child is alive, as its supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Running.
    Alive,
    /// Its mailbox or thread is gone: it panicked or stopped.
    Dead,
    /// Not running: waiting for its restart, or not configured.
    NotRunning,
}

/// What to do about a child that died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterDeath {
    /// Start it again once `after` has passed ([`Restarts::due`]).
    Restart {
        /// The backoff.
        after: Duration,
        /// Restarts since start, this one included.
        restarts: u64,
    },
    /// It is already waiting for its restart: nothing more to do.
    AlreadyWaiting,
    /// One restart too many: stop, and exit 1.
    GiveUp(IntensityExceeded),
}

/// The restart decisions for the children of one supervisor, each known
/// by its kind `K`.
#[derive(Debug, Clone)]
pub struct Restarts<K> {
    tracker: RestartTracker,
    /// Children that died and wait for their backoff to pass.
    waiting: HashSet<K>,
}

impl<K: Copy + Eq + Hash> Restarts<K> {
    /// No restart yet, within `limit`.
    pub fn new(limit: RestartLimit) -> Restarts<K> {
        Restarts {
            tracker: RestartTracker::new(limit),
            waiting: HashSet::new(),
        }
    }

    /// Of `children` (each with its [`Liveness`]), the ones that died and
    /// are not already waiting for their restart, in the order given.
    pub fn dead(&self, children: impl IntoIterator<Item = (K, Liveness)>) -> Vec<K> {
        children
            .into_iter()
            .filter(|(child, liveness)| {
                *liveness == Liveness::Dead && !self.waiting.contains(child)
            })
            .map(|(child, _)| child)
            .collect()
    }

    /// `child` died (found dead, or could not start) at `now`.
    pub fn died(&mut self, child: K, now: Instant) -> AfterDeath {
        if !self.waiting.insert(child) {
            return AfterDeath::AlreadyWaiting;
        }
        match self.tracker.record(now) {
            Ok(after) => AfterDeath::Restart {
                after,
                restarts: self.tracker.total(),
            },
            Err(exceeded) => AfterDeath::GiveUp(exceeded),
        }
    }

    /// `child`'s backoff has passed: whether to start it now (not while the
    /// supervisor is `stopping`). Either way it no longer waits, so that a
    /// start that fails is one more death.
    pub fn due(&mut self, child: K, stopping: bool) -> bool {
        self.waiting.remove(&child) && !stopping
    }

    /// Restarts since start, the one that gave up included: the
    /// `ChildRestarts` self metric.
    pub fn total(&self) -> u64 {
        self.tracker.total()
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

    /// Two kinds of children, as a supervisor names them.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    enum Kid {
        A,
        B,
    }

    fn limit(max: usize, window_secs: u64) -> RestartLimit {
        RestartLimit {
            max,
            window: Duration::from_secs(window_secs),
        }
    }

    /// `kid` dies at `at` and is restarted: its backoff.
    fn restarted(restarts: &mut Restarts<Kid>, kid: Kid, at: Instant) -> Duration {
        let after = match restarts.died(kid, at) {
            AfterDeath::Restart { after, .. } => after,
            other => panic!("{kid:?} not restarted: {other:?}"),
        };
        assert!(restarts.due(kid, false));
        after
    }

    #[test]
    fn only_a_running_child_whose_mailbox_closed_is_dead() {
        let restarts = Restarts::new(limit(5, 60));
        let found = restarts.dead([(Kid::A, Liveness::Alive), (Kid::B, Liveness::NotRunning)]);
        assert!(found.is_empty());
        let found = restarts.dead([(Kid::B, Liveness::Dead), (Kid::A, Liveness::Dead)]);
        assert_eq!(found, [Kid::B, Kid::A], "in the order given");
    }

    #[test]
    fn a_crash_restarts_the_child_after_the_first_backoff() {
        let mut restarts = Restarts::new(limit(5, 60));
        assert_eq!(
            restarts.died(Kid::A, Instant::now()),
            AfterDeath::Restart {
                after: BASE_BACKOFF,
                restarts: 1
            }
        );
        assert_eq!(restarts.total(), 1);
        assert!(
            restarts.due(Kid::A, false),
            "started once its backoff passed"
        );
    }

    #[test]
    fn a_child_waiting_for_its_restart_is_neither_dead_again_nor_counted_twice() {
        let mut restarts = Restarts::new(limit(5, 60));
        let t0 = Instant::now();
        assert!(matches!(
            restarts.died(Kid::A, t0),
            AfterDeath::Restart { .. }
        ));
        assert!(restarts.dead([(Kid::A, Liveness::Dead)]).is_empty());
        assert_eq!(restarts.died(Kid::A, t0), AfterDeath::AlreadyWaiting);
        assert_eq!(restarts.total(), 1);
        // Once started again, a new death counts.
        assert!(restarts.due(Kid::A, false));
        assert_eq!(restarts.dead([(Kid::A, Liveness::Dead)]), [Kid::A]);
    }

    #[test]
    fn the_backoff_grows_with_each_restart_in_the_window_whichever_child() {
        let mut restarts = Restarts::new(limit(10, 60));
        let t0 = Instant::now();
        let ms: Vec<u128> = [Kid::A, Kid::B, Kid::A, Kid::B]
            .into_iter()
            .zip(0..)
            .map(|(kid, i)| restarted(&mut restarts, kid, t0 + Duration::from_secs(i)))
            .map(|after| after.as_millis())
            .collect();
        assert_eq!(ms, [100, 200, 400, 800]);
        assert_eq!(restarts.total(), 4);
    }

    #[test]
    fn restarts_out_of_the_window_start_the_backoff_over() {
        let mut restarts = Restarts::new(limit(3, 10));
        let t0 = Instant::now();
        for i in 0..3 {
            restarted(&mut restarts, Kid::A, t0 + Duration::from_secs(i));
        }
        assert_eq!(
            restarts.died(Kid::A, t0 + Duration::from_secs(30)),
            AfterDeath::Restart {
                after: BASE_BACKOFF,
                restarts: 4
            },
            "the first three are forgotten: neither fatal nor a longer wait"
        );
    }

    #[test]
    fn one_restart_more_than_the_limit_in_the_window_gives_up() {
        let mut restarts = Restarts::new(limit(2, 60));
        let t0 = Instant::now();
        for i in 0..2 {
            restarted(&mut restarts, Kid::A, t0 + Duration::from_secs(i));
        }
        assert_eq!(
            restarts.died(Kid::B, t0 + Duration::from_secs(2)),
            AfterDeath::GiveUp(IntensityExceeded {
                restarts: 3,
                max: 2,
                window: Duration::from_secs(60),
            })
        );
        assert_eq!(restarts.total(), 3, "the last one counts too");
    }

    #[test]
    fn a_restart_due_while_stopping_does_not_start_the_child() {
        let mut restarts = Restarts::new(limit(5, 60));
        assert!(matches!(
            restarts.died(Kid::A, Instant::now()),
            AfterDeath::Restart { .. }
        ));
        assert!(!restarts.due(Kid::A, true));
        assert!(!restarts.due(Kid::A, false), "due once only");
    }
}
