//! The Supervisor actor: owns the children (Puller, Processor pool,
//! GraphiteSink, LocalStoreSink), keeps the queue of snapshot directories and
//! drives each one from `src-dir` to the sinks exactly once per success:
//!
//! 1. a directory is found in `src-dir` (rescan every [`RESCAN_INTERVAL`],
//!    oldest first) and queued unless already queued or in flight;
//! 2. a Processor runs the engine on it (at most `workers` at once);
//! 3. its lines, plus the supervisor's own self metrics, go to the sinks;
//! 4. only then is the directory removed. An unusable one is quarantined in
//!    `<src-dir>.failed/`; one whose processor panicked is retried once, then
//!    quarantined, so a poison snapshot cannot loop forever.
//!
//! Nothing is deleted before its lines are handed over, so a crash at any
//! point leaves the directory in `src-dir`, processed again after restart
//! (at-least-once; see actors.md).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::engine::EngineOptions;
use crate::processor::actor::{ProcessFailure, ProcessSnapshot, Processed, Processor};
use crate::processor::quarantine;
use crate::puller::actor::{Puller, StopPulling};
use crate::sink::graphite::{Flush, GetSinkStats, GraphiteSink, SendLines, SinkStats};
use crate::sink::local_store::{LocalStoreSink, StoreLines};

/// How often `src-dir` is scanned for new snapshots.
pub const RESCAN_INTERVAL: Duration = Duration::from_millis(500);

/// Everything the supervisor is started with.
pub struct SupervisorSettings {
    /// Snapshot directories appear here (`[process] src-dir`).
    pub src_dir: PathBuf,
    /// Processors working at once.
    pub workers: usize,
    /// Engine options, shared by every processor.
    pub engine: Arc<EngineOptions>,
    /// The puller, when this process pulls too.
    pub puller: Option<Puller>,
    /// The Graphite sink.
    pub graphite: GraphiteSink,
    /// `[local-store] dir`, when enabled.
    pub local_store: Option<PathBuf>,
    /// How long shutdown waits for in-flight snapshots and the sinks.
    pub shutdown_timeout: Duration,
}

/// Drain and stop: stop pulling, finish in-flight snapshots, flush the sinks
/// (bounded by the shutdown timeout). Answers the lines left unsent.
#[derive(Debug, Message)]
#[rtype(result = "u64")]
pub struct Shutdown;

/// Ask for the supervisor's counters.
#[derive(Debug, Message)]
#[rtype(result = "SupervisorStats")]
pub struct GetSupervisorStats;

/// What the supervisor has done since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, MessageResponse)]
pub struct SupervisorStats {
    /// Snapshots processed and handed to the sinks.
    pub processed: u64,
    /// Snapshots moved to the quarantine.
    pub quarantined: u64,
    /// Processor panics caught.
    pub processor_panics: u64,
    /// Directories waiting (queued, not in flight).
    pub queued: u64,
    /// Directories being processed.
    pub in_flight: u64,
}

/// The root of the actor tree.
pub struct Supervisor {
    src_dir: PathBuf,
    workers: usize,
    engine: Arc<EngineOptions>,
    puller: Option<Addr<Puller>>,
    pending_puller: Option<Puller>,
    graphite: Addr<GraphiteSink>,
    local_store: Option<Addr<LocalStoreSink>>,
    processors: Addr<Processor>,
    queue: VecDeque<PathBuf>,
    known: HashSet<PathBuf>,
    in_flight: usize,
    /// Snapshots between dispatch and removal/quarantine; shutdown waits for 0.
    busy: tokio::sync::watch::Sender<usize>,
    panics_by_dir: HashMap<PathBuf, u32>,
    stats: SupervisorStats,
    draining: bool,
    shutdown_timeout: Duration,
}

impl Supervisor {
    /// Builds the supervisor; children start when it starts.
    pub fn new(settings: SupervisorSettings) -> Supervisor {
        let workers = settings.workers.max(1);
        let engine = Arc::clone(&settings.engine);
        let processors = SyncArbiter::start(workers, move || Processor::new(Arc::clone(&engine)));
        let local_store = settings
            .local_store
            .map(|dir| SyncArbiter::start(1, move || LocalStoreSink::new(dir.clone())));
        Supervisor {
            src_dir: settings.src_dir,
            workers,
            engine: settings.engine,
            puller: None,
            pending_puller: settings.puller,
            graphite: settings.graphite.start(),
            local_store,
            processors,
            queue: VecDeque::new(),
            known: HashSet::new(),
            in_flight: 0,
            busy: tokio::sync::watch::channel(0).0,
            panics_by_dir: HashMap::new(),
            stats: SupervisorStats::default(),
            draining: false,
            shutdown_timeout: settings.shutdown_timeout,
        }
    }

    /// Queues every directory of src-dir not already known, oldest first.
    fn rescan(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        let src_dir = self.src_dir.clone();
        let scan =
            async move { tokio::task::spawn_blocking(move || quarantine::pending(&src_dir)).await };
        ctx.spawn(scan.into_actor(self).map(|found, supervisor, ctx| {
            match found {
                Ok(Ok(dirs)) => {
                    for dir in dirs {
                        if supervisor.known.insert(dir.clone()) {
                            tracing::debug!(dir = %dir.display(), "snapshot queued");
                            supervisor.queue.push_back(dir);
                        }
                    }
                }
                Ok(Err(error)) => {
                    tracing::error!(src_dir = %supervisor.src_dir.display(), error = %error, "cannot list src-dir");
                }
                Err(error) => tracing::error!(error = %error, "src-dir scan task failed"),
            }
            supervisor.dispatch(ctx);
        }));
    }

    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        while !self.draining && self.in_flight < self.workers {
            let Some(dir) = self.queue.pop_front() else {
                return;
            };
            self.in_flight += 1;
            self.busy.send_modify(|n| *n += 1);
            let request = self.processors.send(ProcessSnapshot { dir: dir.clone() });
            ctx.spawn(request.into_actor(self).map(move |reply, supervisor, ctx| {
                supervisor.in_flight -= 1;
                match reply {
                    Ok(Ok(processed)) => supervisor.deliver(processed, ctx),
                    Ok(Err(failure)) => supervisor.failed(dir, failure, ctx),
                    Err(mailbox) => {
                        // The pool lost the message (a processor thread died):
                        // the directory is still there; try it again.
                        tracing::error!(dir = %dir.display(), error = %mailbox, "processor did not answer; requeued");
                        supervisor.queue.push_front(dir);
                        supervisor.done();
                    }
                }
                supervisor.dispatch(ctx);
            }));
        }
    }

    /// Hands the lines to the sinks, then removes the directory.
    fn deliver(&mut self, processed: Processed, ctx: &mut Context<Self>) {
        let Processed {
            dir,
            mut lines,
            report,
        } = processed;
        for warning in &report.warnings {
            tracing::warn!(dir = %dir.display(), "{warning}");
        }
        let ts = u64::try_from(report.timestamp).unwrap_or(0);
        let graphite = self.graphite.clone();
        let local_store = self.local_store.clone();
        let prefix = self.engine.prefix.clone();
        let counters = self.stats;
        let queued = self.queue.len() as u64;
        let work = async move {
            let sink = graphite.send(GetSinkStats).await.unwrap_or_default();
            append_self_metrics(&mut lines, &prefix, ts, &sink, &counters, queued);
            if let Some(store) = local_store {
                store.do_send(StoreLines {
                    ts,
                    lines: lines.clone(),
                });
            }
            graphite.do_send(SendLines(lines));
        };
        self.stats.processed += 1;
        self.panics_by_dir.remove(&dir);
        tracing::info!(
            dir = %dir.display(),
            lines = report.lines,
            warnings = report.warnings.len(),
            seconds = report.timings.total.as_secs_f64(),
            "snapshot processed"
        );
        ctx.spawn(work.into_actor(self).map(move |(), supervisor, ctx| {
            supervisor.remove(dir, ctx);
        }));
    }

    fn remove(&mut self, dir: PathBuf, ctx: &mut Context<Self>) {
        let target = dir.clone();
        let removal = async move {
            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&target)).await
        };
        ctx.spawn(removal.into_actor(self).map(move |removed, supervisor, _| {
            match removed {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(dir = %dir.display(), error = %error, "cannot remove processed snapshot; it will be processed again");
                }
                Err(error) => tracing::error!(error = %error, "removal task failed"),
            }
            supervisor.known.remove(&dir);
            supervisor.done();
        }));
    }

    fn failed(&mut self, dir: PathBuf, failure: ProcessFailure, ctx: &mut Context<Self>) {
        let reason = match &failure {
            ProcessFailure::Unusable(error) => error.to_string(),
            ProcessFailure::Panicked { .. } => {
                self.stats.processor_panics += 1;
                let panics = self.panics_by_dir.entry(dir.clone()).or_insert(0);
                *panics += 1;
                if *panics < 2 {
                    tracing::error!(dir = %dir.display(), error = %failure, "processor panicked; retrying the snapshot once");
                    self.queue.push_front(dir);
                    self.done();
                    return;
                }
                failure.to_string()
            }
        };
        self.panics_by_dir.remove(&dir);
        let src_dir = self.src_dir.clone();
        let target = dir.clone();
        let why = reason.clone();
        let moving = async move {
            tokio::task::spawn_blocking(move || quarantine::quarantine(&src_dir, &target, &why))
                .await
        };
        ctx.spawn(moving.into_actor(self).map(move |moved, supervisor, _| {
            supervisor.stats.quarantined += 1;
            match moved {
                Ok(Ok(to)) => tracing::error!(dir = %dir.display(), quarantined = %to.display(), reason = %reason, "snapshot unusable; quarantined"),
                Ok(Err(error)) => tracing::error!(dir = %dir.display(), reason = %reason, error = %error, "snapshot unusable and cannot be quarantined; left in place"),
                Err(error) => tracing::error!(error = %error, "quarantine task failed"),
            }
            supervisor.known.remove(&dir);
            supervisor.done();
        }));
    }
}

impl Supervisor {
    /// One snapshot left the pipeline (removed, quarantined or requeued).
    fn done(&mut self) {
        self.busy.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Appends the supervisor's and the sink's self metrics (SPEC §4.4, ours).
fn append_self_metrics(
    lines: &mut Vec<u8>,
    prefix: &str,
    ts: u64,
    sink: &SinkStats,
    stats: &SupervisorStats,
    queued: u64,
) {
    let mut text = String::new();
    for (name, value) in [
        ("GraphiteBacklog", sink.backlog),
        ("GraphiteDroppedLines", sink.dropped),
        ("GraphiteReconnects", sink.reconnects),
        ("QueueDepth", queued),
        ("ProcessorPanics", stats.processor_panics),
        ("QuarantinedSnapshots", stats.quarantined),
    ] {
        let _ = writeln!(text, "{prefix}.haproxystats.{name} {value} {ts}");
    }
    lines.extend_from_slice(text.as_bytes());
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(puller) = self.pending_puller.take() {
            self.puller = Some(puller.start());
        }
        tracing::info!(
            src_dir = %self.src_dir.display(),
            workers = self.workers,
            pulling = self.puller.is_some(),
            "supervisor started"
        );
        self.rescan(ctx);
        ctx.run_interval(RESCAN_INTERVAL, |supervisor, ctx| supervisor.rescan(ctx));
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, u64>;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        let puller = self.puller.take();
        let graphite = self.graphite.clone();
        let timeout = self.shutdown_timeout;
        let stop_puller = async move {
            if let Some(puller) = puller {
                let _ = puller.send(StopPulling).await;
            }
        };
        Box::pin(stop_puller.into_actor(self).then(move |(), supervisor, _| {
            let mut busy = supervisor.busy.subscribe();
            let in_flight_done = async move {
                let _ = busy.wait_for(|snapshots| *snapshots == 0).await;
            };
            async move {
                let deadline = tokio::time::Instant::now() + timeout;
                let _ = tokio::time::timeout_at(deadline, in_flight_done).await;
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                graphite
                    .send(Flush { timeout: remaining })
                    .await
                    .unwrap_or(u64::MAX)
            }
            .into_actor(supervisor)
        }))
    }
}

impl Handler<GetSupervisorStats> for Supervisor {
    type Result = SupervisorStats;

    fn handle(&mut self, _: GetSupervisorStats, _: &mut Context<Self>) -> SupervisorStats {
        SupervisorStats {
            queued: self.queue.len() as u64,
            in_flight: self.in_flight as u64,
            ..self.stats
        }
    }
}
