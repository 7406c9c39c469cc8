//! What the Supervisor and every sink say to each other. Each sink actor
//! handles all of these, which is what lets the Supervisor keep its sinks
//! as one list ([`super::running::RunningSink`]) instead of a field each.

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::chunks::SharedLines;

/// Queue these newline-terminated lines, with no acknowledgement (tests
/// and benchmarks).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SendLines(pub Vec<u8>);

/// Queue the lines of one snapshot and report, on `written`, once every
/// one of them was delivered as the sink defines it, or dropped from its
/// full backlog (counted there): only then may the snapshot be deleted. If
/// the sink dies first, `written` is dropped unanswered and the snapshot is
/// processed again (at-least-once across restarts).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SendLinesAcked {
    /// Whose lines they are.
    pub of: LinesOf,
    /// The snapshot's timestamp (epoch seconds).
    pub ts: u64,
    /// Newline-terminated lines, shared with the other sinks.
    pub lines: SharedLines,
    /// Answered once they are delivered or dropped.
    pub written: oneshot::Sender<()>,
}

/// Whose lines a [`SendLinesAcked`] carries: each sender says what it
/// knows, no more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinesOf {
    /// A snapshot of this node: its directory, in src-dir until every sink
    /// acknowledged it (a sink of raw snapshots reads it).
    Snapshot(PathBuf),
    /// Central processing's, of one load balancer's snapshot or one
    /// cluster's window.
    Central {
        /// The load balancer, or `<cluster-namespace>.<cluster>` for a
        /// window: local-store writes under `<lb>/<ts>`, Prometheus keeps
        /// the latest lines of each.
        lb: String,
        /// The load balancer's cluster, for a snapshot's lines: Prometheus
        /// labels its series with it. `None` for a window's (their paths
        /// name the cluster).
        cluster: Option<String>,
    },
    /// Lines of no snapshot (central's own metrics, a test's).
    Own,
}

impl LinesOf {
    /// The snapshot directory of [`LinesOf::Snapshot`].
    pub fn dir(&self) -> Option<&Path> {
        match self {
            LinesOf::Snapshot(dir) => Some(dir),
            _ => None,
        }
    }

    /// The `lb` of [`LinesOf::Central`].
    pub fn lb(&self) -> Option<&str> {
        match self {
            LinesOf::Central { lb, .. } => Some(lb),
            _ => None,
        }
    }

    /// The `cluster` of [`LinesOf::Central`].
    pub fn cluster(&self) -> Option<&str> {
        match self {
            LinesOf::Central { cluster, .. } => cluster.as_deref(),
            _ => None,
        }
    }
}

/// Resolve once everything queued so far is delivered, or after `timeout`;
/// answers the lines not yet delivered (0 = all delivered).
#[derive(Debug, Message)]
#[rtype(result = "u64")]
pub struct Flush {
    /// How long to wait at most.
    pub timeout: Duration,
}

impl Flush {
    /// A sink's answer: waits until `flushed` fires (its writer emptied
    /// its queue) or the timeout passes, then answers what `left` counts.
    pub fn answer(
        self,
        flushed: oneshot::Receiver<()>,
        left: impl FnOnce() -> u64 + Send + 'static,
    ) -> ResponseFuture<u64> {
        Box::pin(async move {
            let _ = tokio::time::timeout(self.timeout, flushed).await;
            left()
        })
    }
}

/// Ask a sink for its [`SinkHealth`].
#[derive(Debug, Message)]
#[rtype(result = "SinkHealth")]
pub struct GetSinkHealth;

/// What a sink reports about itself every second: its lines in the status
/// file, `STATUS=` and `haproxystats check`, and its self metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, MessageResponse)]
pub struct SinkHealth {
    /// Lines waiting, not yet delivered.
    pub backlog: u64,
    /// How many lines the backlog holds before it drops the oldest (the
    /// sink's `queue-size`; 0 for a sink without a backlog): `check`'s
    /// default thresholds are fractions of it.
    pub capacity: u64,
    /// Lines dropped since start (backlog full, failed writes).
    pub dropped: u64,
    /// When the sink last delivered something (epoch seconds).
    pub last_delivery: Option<u64>,
    /// Why it cannot deliver what it holds right now (its topic does not
    /// exist, its brokers do not answer); `None` while it can, or holds
    /// nothing. The status file shows it and `check` is CRITICAL on it: a
    /// sink that cannot deliver makes central pause, and that must not be
    /// silent.
    pub cannot_deliver: Option<String>,
    /// Self metrics (SPEC §4.4): the last part of the path
    /// (`GraphiteBacklog`) and the value.
    pub metrics: Vec<(&'static str, u64)>,
}

impl SinkHealth {
    /// The health of a sink whose backlog holds `capacity` lines
    /// (`queue-size`): delivering, no self metrics yet.
    pub fn of_backlog(
        backlog: u64,
        capacity: usize,
        dropped: u64,
        last_delivery: Option<u64>,
    ) -> SinkHealth {
        SinkHealth {
            backlog,
            capacity: u64::try_from(capacity).unwrap_or(u64::MAX),
            dropped,
            last_delivery,
            cannot_deliver: None,
            metrics: Vec::new(),
        }
    }
}
