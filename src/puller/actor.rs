//! The Puller actor: runs one [`cycle`](super::cycle) per beat, never two at
//! once, and on [`StopPulling`] cancels what is pending and waits until the
//! cycle in progress has cleaned up after itself.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use tokio::sync::watch;

use super::cycle::{self, CycleOutcome, CycleSettings, FailureSummary, Source, WorkerNotice};
use super::schedule::Beat;
use super::snapshot;
use crate::config::{PullConfig, StatsEndpoint};
use crate::log_limit::LogLimit;

/// Stop starting cycles; cancel the one in progress (its tmp dir is removed)
/// and resolve once it has ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopPulling;

/// Ask for the puller's counters.
#[derive(Debug, Message)]
#[rtype(result = "PullerStats")]
pub struct GetPullerStats;

/// What the puller has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, MessageResponse)]
pub struct PullerStats {
    /// Snapshots published into dst-dir.
    pub published: u64,
    /// Cycles that failed (a socket failed, no socket, a filesystem error).
    pub failed: u64,
    /// Cycles not started because dst-dir held queue-size directories.
    pub suspended: u64,
    /// Beats skipped because a cycle overran the interval.
    pub skipped_beats: u64,
    /// Epoch seconds of the last published snapshot.
    pub last_published: Option<u64>,
}

/// Pulls a snapshot of every stats socket on every beat (SPEC §3).
pub struct Puller {
    socket_dir: Option<PathBuf>,
    servers: Vec<StatsEndpoint>,
    queue_size: usize,
    settings: Arc<CycleSettings>,
    beat: Beat,
    stats: PullerStats,
    /// `true` cancels the cycle in progress.
    shutdown: watch::Sender<bool>,
    /// `true` while a cycle runs; [`StopPulling`] waits for `false`.
    busy: watch::Sender<bool>,
    stopping: bool,
    /// Beats on multiples of the interval since the epoch, the snapshot
    /// named by its beat ([`Puller::aligned_to_the_epoch`]).
    aligned: bool,
    /// What a master's list of workers made us say, one limit per master:
    /// an odd list stays odd every cycle.
    worker_notices: HashMap<String, LogLimit>,
}

impl Puller {
    /// A puller for `[pull]`, beating from now.
    pub fn new(pull: &PullConfig) -> Puller {
        let now = epoch_now();
        Puller {
            socket_dir: pull.socket_dir.clone(),
            servers: pull.servers.clone(),
            queue_size: pull.queue_size,
            settings: Arc::new(CycleSettings::from_config(pull)),
            beat: Beat::new(now, pull.pull_interval),
            stats: PullerStats::default(),
            shutdown: watch::channel(false).0,
            busy: watch::channel(false).0,
            stopping: false,
            aligned: false,
            worker_notices: HashMap::new(),
        }
    }

    /// Beats when `ts % pull-interval == 0`, and names each snapshot by its
    /// beat, so that every load balancer's snapshot of a slot carries the
    /// same `ts` (raw snapshots for central processing, SPEC §5).
    pub fn aligned_to_the_epoch(mut self, interval: Duration) -> Puller {
        self.beat = Beat::new(Duration::ZERO, interval);
        self.aligned = true;
        self
    }

    fn schedule_after(&mut self, served: Duration, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        let now = epoch_now();
        let next = self.beat.after(served, now);
        if next.skipped > 0 {
            self.stats.skipped_beats += next.skipped;
            tracing::warn!(
                skipped = next.skipped,
                "pull cycle overran pull-interval; skipping beats instead of stacking cycles"
            );
        }
        let wait = next.at.saturating_sub(now);
        ctx.run_later(wait, move |puller, ctx| puller.beat(next.at, ctx));
    }

    /// Serves the beat at `at`: checks the queue, finds the sockets, runs
    /// one cycle, then schedules the next beat.
    fn beat(&mut self, at: Duration, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        // Timers fire a little late, never early: the beat's second is the
        // slot's, unless the event loop stalled past it.
        let ts = if self.aligned {
            at.as_secs()
        } else {
            epoch_now().as_secs()
        };
        let dst_dir = self.settings.dst_dir.clone();
        let socket_dir = self.socket_dir.clone();
        let servers = self.servers.clone();
        let queue_size = self.queue_size;
        let settings = Arc::clone(&self.settings);
        let shutdown = self.shutdown.subscribe();
        self.busy.send_replace(true);
        let work = async move {
            // A puller restarted within the second of its predecessor's last
            // cycle must not publish that timestamp again (the rename would
            // fail, or overwrite a snapshot not yet processed).
            let queued = tokio::task::spawn_blocking(move || {
                let taken = dst_dir.join(ts.to_string()).exists();
                snapshot::queued(&dst_dir).map(|queued| (queued, taken))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|listed| listed.map_err(|e| e.to_string()));
            match queued {
                Ok((_, true)) => return BeatOutcome::AlreadyPublished,
                Ok((queued, false)) if queued >= queue_size => {
                    return BeatOutcome::Suspended { queued };
                }
                Ok(_) => {}
                Err(error) => return BeatOutcome::NotStarted(error),
            }
            let discovered = tokio::task::spawn_blocking(move || {
                cycle::discover(socket_dir.as_deref(), &servers)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|found| found.map_err(|e| e.to_string()));
            let sources: Vec<Source> = match discovered {
                Ok(sources) => sources,
                Err(error) => return BeatOutcome::NotStarted(error),
            };
            let report = cycle::run(sources, settings, ts, shutdown).await;
            BeatOutcome::Ran(report.outcome, report.notices)
        };
        ctx.spawn(work.into_actor(self).map(move |beat, puller, ctx| {
            puller.record(ts, beat);
            puller.busy.send_replace(false);
            puller.schedule_after(at, ctx);
        }));
    }

    /// One warning per odd master now and then (`LogLimit`), saying how
    /// many were held back.
    fn record_notices(&mut self, ts: u64, notices: Vec<WorkerNotice>) {
        let now = std::time::Instant::now();
        for notice in notices {
            let limit = self
                .worker_notices
                .entry(notice.master.clone())
                .or_default();
            if let Some(held_back) = limit.allow(now) {
                tracing::warn!(
                    ts,
                    master = %notice.master,
                    held_back,
                    "master CLI's list of workers: {}",
                    notice.text
                );
            }
        }
    }

    fn record(&mut self, ts: u64, mut beat: BeatOutcome) {
        if let BeatOutcome::Ran(_, notices) = &mut beat {
            self.record_notices(ts, std::mem::take(notices));
        }
        match beat {
            BeatOutcome::AlreadyPublished => {
                self.stats.skipped_beats += 1;
                tracing::warn!(
                    ts,
                    "a snapshot of this second is already in dst-dir (a restarted puller?); beat skipped"
                );
            }
            BeatOutcome::Suspended { queued } => {
                self.stats.suspended += 1;
                tracing::warn!(
                    queued,
                    queue_size = self.queue_size,
                    dst_dir = %self.settings.dst_dir.display(),
                    "dst-dir holds queue-size directories or more; pulling suspended until the processing half catches up"
                );
            }
            BeatOutcome::NotStarted(error) => {
                self.stats.failed += 1;
                tracing::error!(ts, error = %error, "pull cycle could not start");
            }
            BeatOutcome::Ran(
                CycleOutcome::Published {
                    dir,
                    sources,
                    bytes,
                },
                _,
            ) => {
                self.stats.published += 1;
                self.stats.last_published = Some(ts);
                tracing::info!(ts, sources, bytes, dir = %dir.display(), "snapshot published");
            }
            BeatOutcome::Ran(CycleOutcome::NoSources, _) => {
                self.stats.failed += 1;
                tracing::error!(
                    ts,
                    socket_dir = %self.socket_dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default(),
                    "pull cycle failed: no stats socket found and no servers configured"
                );
            }
            BeatOutcome::Ran(CycleOutcome::Failed { failures }, _) => {
                self.stats.failed += 1;
                let summary = FailureSummary::of(&failures);
                tracing::error!(
                    ts,
                    failed_sockets = %summary.sources,
                    errors = %summary.errors,
                    "pull cycle failed; nothing published"
                );
            }
            BeatOutcome::Ran(CycleOutcome::Io(error), _) => {
                self.stats.failed += 1;
                tracing::error!(ts, error = %error, "pull cycle failed; nothing published");
            }
        }
    }
}

/// What happened on one beat.
enum BeatOutcome {
    AlreadyPublished,
    Suspended { queued: usize },
    NotStarted(String),
    Ran(CycleOutcome, Vec<WorkerNotice>),
}

fn epoch_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

impl Actor for Puller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(
            socket_dir = %self.socket_dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default(),
            servers = self.servers.len(),
            "puller started"
        );
        for server in &self.servers {
            if let StatsEndpoint::Http(url) = server {
                tracing::warn!(
                    server = %url,
                    "an HTTP stats page has no 'show info': no daemon metrics from this source, only its show stat"
                );
            }
        }
        let tmp_dst_dir = self.settings.tmp_dst_dir.clone();
        let cleared = async move {
            tokio::task::spawn_blocking(move || snapshot::clear_leftovers(&tmp_dst_dir)).await
        };
        ctx.spawn(cleared.into_actor(self).map(|cleared, puller, ctx| {
            match cleared {
                Ok(Ok(0)) => {}
                Ok(Ok(removed)) => tracing::warn!(
                    removed,
                    "removed partial snapshots a previous run left in tmp-dst-dir"
                ),
                Ok(Err(error)) => {
                    tracing::error!(error = %error, "cannot clear tmp-dst-dir of partial snapshots")
                }
                Err(error) => tracing::error!(error = %error, "clearing tmp-dst-dir failed"),
            }
            let now = epoch_now();
            if puller.aligned {
                let first = puller.beat.first_at_or_after(now);
                let wait = first.saturating_sub(now);
                ctx.run_later(wait, move |puller, ctx| puller.beat(first, ctx));
            } else {
                puller.beat(now, ctx);
            }
        }));
    }
}

impl Handler<StopPulling> for Puller {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopPulling, _: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        self.shutdown.send_replace(true);
        let mut busy = self.busy.subscribe();
        Box::pin(async move {
            // An error means the puller is gone, and with it any cycle.
            let _ = busy.wait_for(|running| !*running).await;
        })
    }
}

impl Handler<GetPullerStats> for Puller {
    type Result = PullerStats;

    fn handle(&mut self, _: GetPullerStats, _: &mut Context<Self>) -> PullerStats {
        self.stats
    }
}

#[cfg(any(test, feature = "fault-injection"))]
impl Handler<crate::common::Crash> for Puller {
    type Result = ();

    fn handle(&mut self, _: crate::common::Crash, _: &mut Context<Self>) {
        panic!("injected puller crash");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A puller restarted within the second of its predecessor's last
    /// cycle skips that second instead of publishing it twice.
    #[actix_rt::test]
    async fn a_second_already_published_is_skipped_not_pulled_again() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut config = Config::defaults();
        config.pull.socket_dir = Some(root.path().join("sockets"));
        config.pull.dst_dir = root.path().join("incoming");
        config.pull.tmp_dst_dir = root.path().join("incoming.tmp");
        std::fs::create_dir_all(root.path().join("sockets")).expect("sockets");
        // Make the next few seconds look taken.
        let now = epoch_now().as_secs();
        for ts in now..now + 3 {
            std::fs::create_dir_all(config.pull.dst_dir.join(ts.to_string())).expect("taken");
        }
        let puller = Puller::new(&config.pull).start();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stats = puller.send(GetPullerStats).await.expect("stats");
        assert_eq!(stats.skipped_beats, 1, "{stats:?}");
        // Not a failed cycle: nothing was attempted (no socket is found in
        // `sockets`, which would have counted as failed).
        assert_eq!(stats.failed, 0, "{stats:?}");
    }
}
