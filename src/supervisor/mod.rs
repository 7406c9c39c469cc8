//! The Supervisor actor: the root of the tree. It owns the children —
//! Puller, DirWatcher, the Processor pool and the sinks the configuration
//! enables (a list: [`crate::sink::configured`]) —
//! restarts the ones that die, and drives each snapshot directory from
//! `src-dir` to the sinks:
//!
//! 1. the DirWatcher reports a directory (inotify), or a rescan of src-dir
//!    finds it (at start, whenever the watch is re-established, and every
//!    [`SAFETY_RESCAN_INTERVAL`]); it is queued oldest first unless already
//!    queued or in flight;
//! 2. a Processor runs the engine on it (at most `workers` at once);
//! 3. its lines, plus the supervisor's own self metrics, go to the sinks;
//! 4. only once every sink confirmed them is the directory removed: renamed
//!    into `<src-dir>.trash/`, then deleted there. An unusable one is quarantined in
//!    `<src-dir>.failed/`; one whose processor panicked is retried once, then
//!    quarantined, so a poison snapshot cannot loop forever.
//!
//! Which snapshot is where, and what comes next, is decided by the
//! [`pipeline`] state machine (no actor, no I/O); this actor feeds it the
//! answers of the children and carries out the [`Action`]s it returns.
//!
//! Nothing is deleted before its lines are handed over, so a crash at any
//! point leaves the directory in `src-dir`, processed again after restart
//! (at-least-once; see actors.md).
//!
//! Supervision: Puller, DirWatcher and every sink each run on an arbiter
//! (thread) of their own; a panic there ends that actor and closes its
//! mailbox. Every [`LIVENESS_INTERVAL`] the supervisor looks at each child's
//! mailbox and restarts a dead child after a backoff; too many restarts in
//! a window and it reports a fatal error, on which the command exits
//! non-zero for systemd to restart the unit: the loop of [`children`], on
//! the decisions of [`restart`], which Central's supervision shares.
//! Processors run on a `SyncArbiter` and catch their own panics.
//!
//! Shared with Central: [`children`] (the supervision loop), [`restart`]
//! (its policy) and [`self_metrics`] (their text).

pub mod children;
pub mod pipeline;
pub mod restart;
pub mod self_metrics;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};

#[cfg(any(test, feature = "fault-injection"))]
use crate::common::Crash;
use crate::common::unix_now;
use crate::config::{LIVENESS_INTERVAL, PullConfig};
use crate::engine::EngineOptions;
use crate::health::SinkStatus;
use crate::health::{Reporter, WRITE_INTERVAL};
use crate::processor::actor::{ProcessFailure, ProcessSnapshot, Processed, Processor};
use crate::processor::{quarantine, trash};
use crate::puller::actor::{GetPullerStats, Puller, StopPulling};
use crate::sink::chunk_pool::ChunkPool;
use crate::sink::chunks::{LineChunks, SharedLines};
use crate::sink::messages::{LinesOf, SendLinesAcked};
use crate::sink::slot::WhenFull;
use crate::sink::{SinkSlot, SinkSpec};
use crate::watcher::{DirWatcher, WatchEvent};
pub use children::ChildKind;
use children::{Supervises, Supervision, check_children};
use pipeline::{Action, Pipeline, SinkId, SinkSet};
use restart::{Liveness, RestartLimit};
use self_metrics::SelfMetrics;

/// How often src-dir is listed even though the watcher reports every new
/// directory: a last line of defence against a lost event.
pub const SAFETY_RESCAN_INTERVAL: Duration = Duration::from_secs(30);

/// Why a symbolic link in src-dir is quarantined.
const LINK_REASON: &str = "a symbolic link in src-dir: never followed (a snapshot is a directory the puller renames into src-dir)";

/// Everything the supervisor is started with.
pub struct SupervisorSettings {
    /// Snapshot directories appear here (`[process] src-dir`).
    pub src_dir: PathBuf,
    /// Processors working at once.
    pub workers: usize,
    /// Engine options, shared by every processor.
    pub engine: Arc<EngineOptions>,
    /// `[pull]`, when this process pulls too.
    pub pull: Option<PullConfig>,
    /// Pull on multiples of the interval since the epoch (raw snapshots
    /// are published).
    pub align_pulls: bool,
    /// `[process] local`: `false` on an edge, which processes nothing and
    /// hands each snapshot directory to its sinks as it is.
    pub local: bool,
    /// The sinks, in delivery order ([`crate::sink::configured`]); every
    /// snapshot waits for each of them before it is removed.
    pub sinks: Vec<SinkSpec>,
    /// How long shutdown waits for in-flight snapshots and the sinks.
    pub shutdown_timeout: Duration,
    /// Restart intensity beyond which the supervisor gives up.
    pub restart_limit: RestartLimit,
    /// Where the supervisor reports that it gave up (the command exits 1).
    pub fatal: mpsc::UnboundedSender<String>,
    /// The status file and systemd notifications, when wanted.
    pub health: Option<Reporter>,
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
    /// Children restarted after they died.
    pub child_restarts: u64,
    /// Directories waiting (queued, not in flight).
    pub queued: u64,
    /// Directories being processed.
    pub in_flight: u64,
}

/// A child actor on an arbiter of its own.
struct Child<A: Actor<Context = Context<A>> + Send> {
    addr: Addr<A>,
    arbiter: Arbiter,
}

impl<A: Actor<Context = Context<A>> + Send> Child<A> {
    fn start(actor: A) -> Child<A> {
        let arbiter = Arbiter::new();
        let addr = A::start_in_arbiter(&arbiter.handle(), move |_| actor);
        Child { addr, arbiter }
    }

    fn liveness(child: Option<&Self>) -> Liveness {
        match child {
            None => Liveness::NotRunning,
            Some(child) if child.addr.connected() => Liveness::Alive,
            Some(_) => Liveness::Dead,
        }
    }
}

impl<A: Actor<Context = Context<A>> + Send> Drop for Child<A> {
    fn drop(&mut self) {
        self.arbiter.stop();
    }
}

/// The root of the actor tree.
pub struct Supervisor {
    src_dir: PathBuf,
    workers: usize,
    engine: Arc<EngineOptions>,
    pull: Option<PullConfig>,
    align_pulls: bool,
    local: bool,
    puller: Option<Child<Puller>>,
    watcher: Option<Child<DirWatcher>>,
    /// The sinks; a snapshot's [`SinkId`] is its place here.
    sinks: Vec<SinkSlot>,
    processors: Addr<Processor>,
    /// Which snapshot is where; decides what happens next.
    pipeline: Pipeline,
    /// The lines of processed snapshots until the pipeline delivers them.
    processed_lines: std::collections::HashMap<PathBuf, Lines>,
    /// Snapshots between dispatch and removal/quarantine; shutdown waits for 0.
    busy: tokio::sync::watch::Sender<usize>,
    /// Symbolic links that could not be quarantined, reported once.
    links_reported: HashSet<PathBuf>,
    /// When its children are restarted, and whether it gives up.
    supervision: Supervision,
    stats: SupervisorStats,
    shutdown_timeout: Duration,
    health: Option<Reporter>,
    /// The puller's latest answer, for the status file.
    last_pull_ok: Option<u64>,
}

impl Supervisor {
    /// Builds the supervisor; children start when it starts.
    pub fn new(settings: SupervisorSettings) -> Supervisor {
        let workers = settings.workers.max(1);
        let engine = Arc::clone(&settings.engine);
        // Line chunks go round: from the Processors to the sinks, and back
        // once the last sink is done with them.
        let chunks = Arc::new(ChunkPool::new());
        let processors = SyncArbiter::start(workers, move || {
            Processor::new(Arc::clone(&engine), Arc::clone(&chunks))
        });
        let mut specs = settings.sinks;
        if specs.len() > SinkId::MAX {
            tracing::error!(
                sinks = specs.len(),
                "more sinks than a snapshot can wait for; the last ones are not started"
            );
            specs.truncate(SinkId::MAX);
        }
        let every_sink = SinkSet::first(specs.len());
        // A pull waits for no sink: a full backlog drops its oldest lines.
        let sinks = specs
            .into_iter()
            .map(|spec| SinkSlot::new(spec, WhenFull::DropOldest))
            .collect();
        Supervisor {
            src_dir: settings.src_dir,
            workers,
            engine: settings.engine,
            pull: settings.pull,
            align_pulls: settings.align_pulls,
            local: settings.local,
            puller: None,
            watcher: None,
            sinks,
            processors,
            pipeline: if settings.local {
                Pipeline::new(workers, every_sink)
            } else {
                Pipeline::without_processing(workers, every_sink)
            },
            processed_lines: std::collections::HashMap::new(),
            busy: tokio::sync::watch::channel(0).0,
            links_reported: HashSet::new(),
            supervision: Supervision::new(settings.restart_limit, settings.fatal),
            stats: SupervisorStats::default(),
            shutdown_timeout: settings.shutdown_timeout,
            health: settings.health,
            last_pull_ok: None,
        }
    }

    /// Every [`WRITE_INTERVAL`]: the status file, `STATUS=` and the systemd
    /// watchdog ping. Runs on the supervisor's own context, so a stalled
    /// event loop stops the pings and systemd restarts the unit.
    fn health_tick(&mut self, ctx: &mut Context<Self>) {
        let now = unix_now();
        let queued = self.pipeline.queued() as u64;
        let in_flight = self.pipeline.in_flight() as u64;
        let stats = self.stats;
        let last_pull_ok = self.last_pull_ok;
        let sinks: Vec<SinkStatus> = self.sinks.iter().map(SinkSlot::status).collect();
        if let Some(health) = &mut self.health {
            let status = health.status_mut();
            status.queue_depth = queued;
            status.in_flight = in_flight;
            status.last_pull_ok = last_pull_ok;
            status.child_restarts = stats.child_restarts;
            status.quarantined = stats.quarantined;
            status.sinks = sinks;
            health.tick(now);
        }
        self.ask_children(ctx);
    }

    /// Asks the sinks and the puller how they are, for the next tick and
    /// the next snapshot's self metrics; a slow answer delays nothing.
    fn ask_children(&mut self, ctx: &mut Context<Self>) {
        let sinks = crate::sink::slot::ask_health(&self.sinks);
        let puller = self.puller.as_ref().map(|c| c.addr.send(GetPullerStats));
        let ask = async move {
            let sinks = sinks.await;
            let puller = match puller {
                Some(request) => tokio::time::timeout(WRITE_INTERVAL, request)
                    .await
                    .ok()
                    .and_then(Result::ok),
                None => None,
            };
            (sinks, puller)
        };
        ctx.spawn(ask.into_actor(self).map(|(sinks, puller), supervisor, _| {
            crate::sink::slot::keep_health(&mut supervisor.sinks, sinks);
            if let Some(published) = puller.and_then(|p| p.last_published) {
                supervisor.last_pull_ok = Some(published);
            }
        }));
    }

    /// Queues every directory of src-dir not already known, oldest first;
    /// a symbolic link found there is quarantined itself, never followed.
    fn rescan(&mut self, ctx: &mut Context<Self>) {
        if self.pipeline.draining() {
            return;
        }
        let src_dir = self.src_dir.clone();
        let scan = async move {
            tokio::task::spawn_blocking(move || {
                let found = quarantine::pending(&src_dir)?;
                let links: Vec<(PathBuf, std::io::Result<PathBuf>)> = found
                    .links
                    .into_iter()
                    .map(|link| {
                        let moved = quarantine::quarantine(&src_dir, &link, LINK_REASON);
                        (link, moved)
                    })
                    .collect();
                Ok::<_, std::io::Error>((found.snapshots, links))
            })
            .await
        };
        ctx.spawn(scan.into_actor(self).map(|found, supervisor, ctx| {
            match found {
                Ok(Ok((dirs, links))) => {
                    for dir in dirs {
                        supervisor.found(dir, ctx);
                    }
                    for (link, moved) in links {
                        supervisor.link_quarantined(&link, moved);
                    }
                }
                Ok(Err(error)) => {
                    tracing::error!(src_dir = %supervisor.src_dir.display(), error = %error, "cannot list src-dir");
                }
                Err(error) => tracing::error!(error = %error, "src-dir scan task failed"),
            }
        }));
    }

    fn link_quarantined(&mut self, link: &std::path::Path, moved: std::io::Result<PathBuf>) {
        match moved {
            Ok(to) => {
                self.stats.quarantined += 1;
                tracing::warn!(link = %link.display(), quarantined = %to.display(), "{LINK_REASON}");
            }
            // Left in place, it is found again by every rescan: say it once.
            Err(error) => {
                if self.links_reported.insert(link.to_path_buf()) {
                    tracing::warn!(link = %link.display(), error = %error, "{LINK_REASON}; it cannot be moved to the quarantine and is left in place");
                }
            }
        }
    }

    /// A directory in src-dir, from the watcher or a rescan.
    fn found(&mut self, dir: PathBuf, ctx: &mut Context<Self>) {
        let actions = self.pipeline.found(dir);
        self.carry_out(actions, ctx);
    }

    /// Does what the pipeline decided. `lines` are those of the snapshot
    /// just processed, for the `Deliver` that follows its processing.
    fn carry_out(&mut self, actions: Vec<Action>, ctx: &mut Context<Self>) {
        for action in actions {
            match action {
                Action::Process(dir) => self.process(dir, ctx),
                Action::Deliver { dir, sinks } => match self.processed_lines.remove(&dir) {
                    Some(lines) => self.deliver(dir, sinks, lines, ctx),
                    // An edge: the sinks read the directory. Handing it
                    // over is its processing, for the status file and
                    // `check` (which would otherwise see none, ever).
                    None if !self.local => {
                        if let Some(health) = &mut self.health {
                            health.status_mut().last_process_ok = Some(unix_now());
                        }
                        let ts = dir
                            .file_name()
                            .and_then(|name| name.to_str())
                            .and_then(|name| name.parse().ok())
                            .unwrap_or(0);
                        let lines = LineChunks::default();
                        self.deliver(dir, sinks, Lines { ts, lines }, ctx);
                    }
                    // Only a processed snapshot is delivered, its lines
                    // kept until then; were they not, processing again
                    // finds them.
                    None => {
                        tracing::error!(dir = %dir.display(), "no lines to deliver; processing the snapshot again");
                        for sink in sinks.iter() {
                            let again = self.pipeline.sink_lost(sink, &dir);
                            self.carry_out(again, ctx);
                        }
                    }
                },
                Action::Remove(dir) => self.remove(dir, ctx),
                Action::Quarantine { dir, reason } => self.quarantine(dir, reason, ctx),
            }
        }
        self.busy.send_replace(self.pipeline.busy());
    }

    fn process(&mut self, dir: PathBuf, ctx: &mut Context<Self>) {
        let request = self.processors.send(ProcessSnapshot { dir: dir.clone() });
        ctx.spawn(request.into_actor(self).map(move |reply, supervisor, ctx| {
            match reply {
                Ok(Ok(processed)) => supervisor.processed(processed, ctx),
                Ok(Err(failure)) => supervisor.failed(&dir, failure, ctx),
                Err(mailbox) => {
                    // The pool lost the message (a processor thread died):
                    // the directory is still there; try it again.
                    tracing::error!(dir = %dir.display(), error = %mailbox, "processor did not answer; requeued");
                    let actions = supervisor.pipeline.processor_lost(&dir);
                    supervisor.carry_out(actions, ctx);
                }
            }
        }));
    }

    fn processed(&mut self, processed: Processed, ctx: &mut Context<Self>) {
        let Processed { dir, lines, report } = processed;
        for warning in &report.warnings {
            tracing::warn!(dir = %dir.display(), "{warning}");
        }
        let ts = u64::try_from(report.timestamp).unwrap_or(0);
        self.stats.processed += 1;
        if let Some(health) = &mut self.health {
            health.status_mut().last_process_ok = Some(unix_now());
        }
        tracing::info!(
            dir = %dir.display(),
            lines = report.lines,
            warnings = report.warnings.len(),
            seconds = report.timings.total.as_secs_f64(),
            "snapshot processed"
        );
        // Delivered when the pipeline says so: at once, or after the older
        // snapshots still processing.
        self.processed_lines
            .insert(dir.clone(), Lines { ts, lines });
        let actions = self.pipeline.processed(&dir);
        self.carry_out(actions, ctx);
    }

    /// Hands the lines, plus the self metrics, to `sinks`; each
    /// acknowledgement (or loss) goes back to the pipeline.
    fn deliver(&mut self, dir: PathBuf, sinks: SinkSet, lines: Lines, ctx: &mut Context<Self>) {
        let Lines { ts, mut lines } = lines;
        // An edge sends no lines, its own neither.
        if self.local {
            let queued = self.pipeline.queued() as u64;
            let mut own = SelfMetrics::new(&self.engine.prefix, ts);
            own.add_all([
                ("QueueDepth", queued),
                ("ProcessorPanics", self.stats.processor_panics),
                ("ChildRestarts", self.stats.child_restarts),
                ("QuarantinedSnapshots", self.stats.quarantined),
            ]);
            own.add_sinks(&self.sinks);
            lines.push_chunk(own.into_bytes());
        }
        // One set of chunks for every sink; each goes back to the pool once
        // the last sink lets go of it.
        let lines = SharedLines::from(lines);
        for sink in sinks.iter() {
            let Some(slot) = self.sinks.get_mut(sink.index()) else {
                continue;
            };
            let (written, acknowledged) = oneshot::channel();
            slot.hand_over(SendLinesAcked {
                of: LinesOf::Snapshot(dir.clone()),
                ts,
                lines: lines.clone(),
                written,
            });
            self.await_ack(sink, dir.clone(), acknowledged, ctx);
        }
    }

    /// `ack` is answered once the sink is done with the snapshot, or
    /// dropped when the sink died holding it.
    fn await_ack(
        &mut self,
        sink: SinkId,
        dir: PathBuf,
        ack: oneshot::Receiver<()>,
        ctx: &mut Context<Self>,
    ) {
        ctx.spawn(ack.into_actor(self).map(move |ack, supervisor, ctx| {
            let actions = match ack {
                Ok(()) => supervisor.pipeline.acked(sink, &dir),
                Err(_) => {
                    let name = supervisor
                        .sinks
                        .get(sink.index())
                        .map_or("?", |slot| slot.spec.name());
                    tracing::warn!(sink = name, dir = %dir.display(), "sink died before confirming this snapshot; processing it again");
                    supervisor.pipeline.sink_lost(sink, &dir)
                }
            };
            supervisor.carry_out(actions, ctx);
        }));
    }

    /// Moves the snapshot out of src-dir in one rename, then deletes it
    /// ([`trash`]): a crash never leaves a partial snapshot to reprocess.
    fn remove(&mut self, dir: PathBuf, ctx: &mut Context<Self>) {
        let src_dir = self.src_dir.clone();
        let target = dir.clone();
        let removal = async move {
            tokio::task::spawn_blocking(move || trash::remove_snapshot(&src_dir, &target)).await
        };
        ctx.spawn(removal.into_actor(self).map(move |removed, supervisor, ctx| {
            match removed {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(dir = %dir.display(), error = %error, "cannot remove processed snapshot; it will be processed again");
                }
                Err(error) => tracing::error!(error = %error, "removal task failed"),
            }
            supervisor.pipeline.removal_ended(&dir);
            supervisor.carry_out(Vec::new(), ctx);
        }));
    }

    /// Deletes what a crash left half-deleted in the trash, before anything else.
    fn empty_trash(&mut self, ctx: &mut Context<Self>) {
        let src_dir = self.src_dir.clone();
        let emptying =
            async move { tokio::task::spawn_blocking(move || trash::empty_trash(&src_dir)).await };
        ctx.spawn(emptying.into_actor(self).map(|emptied, supervisor, _| {
            let trash = trash::trash_dir(&supervisor.src_dir);
            match emptied {
                Ok(Ok(0)) => {}
                Ok(Ok(removed)) => tracing::info!(trash = %trash.display(), removed, "finished deleting snapshots a stop interrupted"),
                Ok(Err(error)) => tracing::error!(trash = %trash.display(), error = %error, "cannot empty the trash of processed snapshots"),
                Err(error) => tracing::error!(error = %error, "trash task failed"),
            }
        }));
    }

    fn failed(&mut self, dir: &Path, failure: ProcessFailure, ctx: &mut Context<Self>) {
        let reason = failure.to_string();
        let actions = match failure {
            ProcessFailure::Unusable(_) => self.pipeline.unusable(dir, reason),
            ProcessFailure::Panicked { .. } => {
                self.stats.processor_panics += 1;
                let actions = self.pipeline.panicked(dir, reason.clone());
                if self.pipeline.stage(dir) != Some(pipeline::Stage::Quarantining) {
                    tracing::error!(dir = %dir.display(), error = %reason, "processor panicked; retrying the snapshot once");
                }
                actions
            }
        };
        self.carry_out(actions, ctx);
    }

    fn quarantine(&mut self, dir: PathBuf, reason: String, ctx: &mut Context<Self>) {
        let src_dir = self.src_dir.clone();
        let target = dir.clone();
        let why = reason.clone();
        let moving = async move {
            tokio::task::spawn_blocking(move || quarantine::quarantine(&src_dir, &target, &why))
                .await
        };
        ctx.spawn(moving.into_actor(self).map(move |moved, supervisor, ctx| {
            supervisor.stats.quarantined += 1;
            match moved {
                Ok(Ok(to)) => tracing::error!(dir = %dir.display(), quarantined = %to.display(), reason = %reason, "snapshot unusable; quarantined"),
                Ok(Err(error)) => tracing::error!(dir = %dir.display(), reason = %reason, error = %error, "snapshot unusable and cannot be quarantined; left in place"),
                Err(error) => tracing::error!(error = %error, "quarantine task failed"),
            }
            supervisor.pipeline.quarantine_ended(&dir);
            supervisor.carry_out(Vec::new(), ctx);
        }));
    }
}

/// The lines of the snapshot just processed, on their way to the sinks.
struct Lines {
    /// The snapshot's timestamp (local-store's directory name).
    ts: u64,
    lines: LineChunks,
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.empty_trash(ctx);
        for slot in &mut self.sinks {
            slot.start();
        }
        // The first snapshots' self metrics need the sinks' answers.
        self.ask_children(ctx);
        self.start_own(ChildKind::Watcher, ctx);
        self.start_own(ChildKind::Puller, ctx);
        tracing::info!(
            src_dir = %self.src_dir.display(),
            workers = self.workers,
            pulling = self.puller.is_some(),
            "supervisor started"
        );
        ctx.run_interval(SAFETY_RESCAN_INTERVAL, |supervisor, ctx| {
            supervisor.rescan(ctx)
        });
        if let Some(health) = &mut self.health {
            health.ready(unix_now());
        }
        ctx.run_interval(WRITE_INTERVAL, |supervisor, ctx| {
            supervisor.health_tick(ctx)
        });
        ctx.run_interval(LIVENESS_INTERVAL, check_children);
    }
}

impl Supervises for Supervisor {
    fn supervision(&mut self) -> &mut Supervision {
        &mut self.supervision
    }

    fn sinks(&mut self) -> &mut [SinkSlot] {
        &mut self.sinks
    }

    fn own_children(&self) -> Vec<(ChildKind, Liveness)> {
        vec![
            (ChildKind::Puller, Child::liveness(self.puller.as_ref())),
            (ChildKind::Watcher, Child::liveness(self.watcher.as_ref())),
        ]
    }

    fn let_go(&mut self, kind: ChildKind) {
        match kind {
            ChildKind::Puller => self.puller = None,
            ChildKind::Watcher => self.watcher = None,
            // Central's, and the sinks (the loop's own).
            ChildKind::Consumer | ChildKind::MergeConsumer | ChildKind::Sink(_) => {}
        }
    }

    fn start_own(&mut self, kind: ChildKind, ctx: &mut Context<Self>) {
        match kind {
            ChildKind::Puller => {
                if let Some(pull) = &self.pull {
                    let mut puller = Puller::new(pull);
                    if self.align_pulls {
                        puller = puller.aligned_to_the_epoch(pull.pull_interval);
                    }
                    self.puller = Some(Child::start(puller));
                }
            }
            ChildKind::Watcher => {
                let watcher = DirWatcher::new(self.src_dir.clone(), ctx.address().recipient());
                self.watcher = Some(Child::start(watcher));
            }
            ChildKind::Consumer | ChildKind::MergeConsumer | ChildKind::Sink(_) => {}
        }
    }

    fn draining(&self) -> bool {
        self.pipeline.draining()
    }

    fn count_restarts(&mut self, total: u64) {
        self.stats.child_restarts = total;
    }

    fn drain(&mut self, ctx: &mut Context<Self>) {
        let actions = self.pipeline.drain();
        self.carry_out(actions, ctx);
    }
}

impl Handler<WatchEvent> for Supervisor {
    type Result = ();

    fn handle(&mut self, event: WatchEvent, ctx: &mut Context<Self>) {
        match event {
            WatchEvent::Appeared(dir) => self.found(dir, ctx),
            WatchEvent::Rescan { reason } => {
                tracing::debug!(reason, "rescanning src-dir");
                self.rescan(ctx);
            }
        }
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, u64>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let actions = self.pipeline.drain();
        self.carry_out(actions, ctx);
        if let Some(health) = &mut self.health {
            health.stopping(unix_now());
        }
        self.watcher = None;
        let puller = self.puller.take();
        let timeout = self.shutdown_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut busy = self.busy.subscribe();
        let stop_then_drain = async move {
            if let Some(puller) = &puller {
                let _ = tokio::time::timeout_at(deadline, puller.addr.send(StopPulling)).await;
            }
            drop(puller);
            let in_flight_done = async move {
                let _ = busy.wait_for(|snapshots| *snapshots == 0).await;
            };
            let _ = tokio::time::timeout_at(deadline, in_flight_done).await;
        };
        Box::pin(
            stop_then_drain
                .into_actor(self)
                .then(move |(), supervisor, _| {
                    // A sink that was being restarted holds nothing; what it
                    // would have sent waits in `pending` and goes to a fresh one.
                    for slot in &mut supervisor.sinks {
                        if !slot.alive() {
                            slot.start();
                        }
                    }
                    let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
                    // Every sink at once.
                    let flushes: Vec<_> = supervisor
                        .sinks
                        .iter()
                        .filter_map(|slot| slot.running.as_ref().map(|sink| sink.flush(left())))
                        .collect();
                    async move {
                        futures_util::future::join_all(flushes)
                            .await
                            .into_iter()
                            .fold(0u64, u64::saturating_add)
                    }
                    .into_actor(supervisor)
                }),
        )
    }
}

impl Handler<GetSupervisorStats> for Supervisor {
    type Result = SupervisorStats;

    fn handle(&mut self, _: GetSupervisorStats, _: &mut Context<Self>) -> SupervisorStats {
        SupervisorStats {
            queued: self.pipeline.queued() as u64,
            in_flight: self.pipeline.in_flight() as u64,
            ..self.stats
        }
    }
}

/// Which children are alive (test and fault-injection builds only).
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug, Message)]
#[rtype(result = "Vec<(ChildKind, bool)>")]
pub struct ChildrenAlive;

#[cfg(any(test, feature = "fault-injection"))]
impl Handler<ChildrenAlive> for Supervisor {
    type Result = Vec<(ChildKind, bool)>;

    fn handle(&mut self, _: ChildrenAlive, _: &mut Context<Self>) -> Self::Result {
        let sinks = self
            .sinks
            .iter()
            .map(|slot| (ChildKind::Sink(slot.spec.name()), slot.alive()));
        [
            (
                ChildKind::Puller,
                Child::liveness(self.puller.as_ref()) == Liveness::Alive,
            ),
            (
                ChildKind::Watcher,
                Child::liveness(self.watcher.as_ref()) == Liveness::Alive,
            ),
        ]
        .into_iter()
        .chain(sinks)
        .collect()
    }
}

/// Sends [`Crash`] to one child (test and fault-injection builds only).
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct CrashChild(pub ChildKind);

#[cfg(any(test, feature = "fault-injection"))]
impl Handler<CrashChild> for Supervisor {
    type Result = bool;

    fn handle(&mut self, CrashChild(kind): CrashChild, _: &mut Context<Self>) -> bool {
        match kind {
            ChildKind::Puller => self
                .puller
                .as_ref()
                .map(|c| c.addr.do_send(Crash))
                .is_some(),
            ChildKind::Watcher => self
                .watcher
                .as_ref()
                .map(|c| c.addr.do_send(Crash))
                .is_some(),
            ChildKind::Sink(name) => self
                .sinks
                .iter()
                .find(|slot| slot.spec.name() == name)
                .and_then(|slot| slot.running.as_ref())
                .map(crate::sink::RunningSink::crash)
                .is_some(),
            // Central's: not here.
            ChildKind::Consumer | ChildKind::MergeConsumer => false,
        }
    }
}

#[cfg(test)]
mod tests;
