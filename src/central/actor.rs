//! The Central actor: the root of `haproxystats central`'s tree (SPEC §7,
//! stage 1). It owns the consumer thread, the processor pool and the sinks
//! (the same [`SinkSlot`]s as the daemon's Supervisor), restarts the ones
//! that die, and drives each message from the snapshots topic to a commit:
//!
//! 1. the consumer hands a message over ([`Event`]); its offset is in
//!    flight ([`Offsets`]); its headers are checked ([`bad::part_of`]);
//! 2. the assembler waits for the rest of its snapshot ([`Assembler`]);
//! 3. a whole snapshot is decoded and processed on a processor thread;
//! 4. its lines go to every sink, its partial to the partials topic;
//! 5. once every sink and the broker acknowledged, its offsets are done,
//!    and a commit tick commits what is done.
//!
//! A bad message is logged and counted ([`BadMessages`]) and done at once.
//! Sinks with a full backlog, or too many snapshots in flight, pause the
//! consumer: Kafka is the buffer.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use tokio::sync::{mpsc, oneshot};

mod stage2;

pub use stage2::Stage2Stats;

use super::assembler::{Abandoned, Assembler, Part, Snapshot};
use super::bad::{self, BadMessage, BadMessages, MessageAt};
use super::clocks::{self, ClockSkews};
use super::consumer::{self, Command, ConsumerHandle, Event, Received};
use super::offsets::{Epoch, Offsets};
use super::partials::{self, PartialOf};
use super::processor::{CentralProcessor, Done, ProcessParts, ProcessorSettings};
use crate::common::unix_now;
use crate::config::CentralSettings;
use crate::health::{Reporter, SinkStatus, WRITE_INTERVAL};
use crate::sink::chunk_pool::ChunkPool;
use crate::sink::chunks::{LineChunks, SharedLines};
use crate::sink::messages::{LinesOf, SendLinesAcked};
use crate::sink::slot::{ask_health, keep_health};
use crate::sink::{SinkSlot, SinkSpec};
use crate::supervisor::restart::{RestartLimit, RestartTracker};

/// How often the children are checked (as the daemon's Supervisor does).
pub const LIVENESS_INTERVAL: Duration = crate::config::LIVENESS_INTERVAL;

/// How often what is done is committed.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(200);

/// Snapshots in flight (processing or delivering) per processor beyond
/// which the consumer pauses: enough to keep every processor busy while
/// the sinks confirm, bounded so that memory is too.
pub const IN_FLIGHT_PER_WORKER: usize = 4;

/// Events the consumer may hand over before it holds them and pauses.
const EVENTS_CAPACITY: usize = 256;

/// Wait before a partial that failed is sent again.
const PARTIAL_RETRY: Duration = Duration::from_secs(1);

/// Everything Central is started with.
pub struct CentralStart {
    /// `[central]` and `[kafka]`, resolved.
    pub settings: CentralSettings,
    /// The processors' settings (engine options, namespace).
    pub processing: ProcessorSettings,
    /// `<namespace>[.<host>]`: self metrics go under `<this>.haproxystats.`.
    pub self_prefix: String,
    /// How often the self metrics are sent (`[pull] pull-interval`).
    pub self_metrics_interval: Duration,
    /// The sinks of lines ([`crate::sink::line_sinks`]).
    pub sinks: Vec<SinkSpec>,
    /// How long a stop waits for in-flight snapshots and the sinks.
    pub shutdown_timeout: Duration,
    /// Restart intensity beyond which Central gives up (exit 1).
    pub restart_limit: RestartLimit,
    /// Where Central reports that it gave up.
    pub fatal: mpsc::UnboundedSender<String>,
    /// The status file and systemd notifications, when wanted.
    pub health: Option<Reporter>,
}

/// Central's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, MessageResponse)]
pub struct CentralStats {
    /// Snapshots processed and acknowledged by every sink and the broker.
    pub processed: u64,
    /// Messages skipped as bad.
    pub bad_messages: u64,
    /// Children restarted (consumer, sinks).
    pub child_restarts: u64,
    /// Snapshots processing or delivering now.
    pub in_flight: u64,
    /// Snapshots waiting for parts.
    pub assembling: u64,
    /// `true` while the consumer is paused.
    pub paused: bool,
    /// Stage 2's windows open now.
    pub open_windows: u64,
    /// Stage 2's counters.
    pub stage2: Stage2Stats,
}

/// Ask for [`CentralStats`].
#[derive(Debug, Message)]
#[rtype(result = "CentralStats")]
pub struct GetCentralStats;

/// Stop consuming, finish in-flight snapshots, commit, flush the sinks.
/// Answers the lines the sinks did not confirm.
#[derive(Debug, Message)]
#[rtype(result = "u64")]
pub struct StopCentral;

/// An event of the consumer of one generation.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct FromConsumer {
    generation: u64,
    event: Event,
}

/// Where lines in flight come from, and what their acknowledgement does.
enum Origin {
    /// A snapshot (stage 1): its offsets are done once every sink and the
    /// broker (its partial) acknowledged.
    Snapshot {
        partition: i32,
        epoch: Epoch,
        offsets: Vec<i64>,
        snapshot: Arc<Snapshot>,
        /// Its reference time, ms ([`clocks::reference_ms`]).
        reference_ms: u64,
    },
    /// A cluster's window (stage 2): acknowledged, it goes to the windows.
    Window { cluster: String, window: u64 },
}

/// Lines between dispatch and done: a snapshot's or a window's.
struct InFlight {
    origin: Origin,
    /// The sinks' `lb` (local-store directory, influx host).
    lb: String,
    /// The sinks' timestamp.
    ts: u64,
    /// Acknowledgements still owed (sinks, and the broker for the partial).
    waiting: usize,
    /// Its lines, kept to hand to a restarted sink that lost them, or to a
    /// sink that could not take them yet.
    lines: Option<SharedLines>,
    /// How many lines.
    line_count: u64,
    /// Per sink: its lines are counted in [`Central::owed`].
    owes: Vec<bool>,
}

/// A partial ready to send: which snapshot, its message values.
type ReadyPartial = (Arc<PartialOf>, Arc<Vec<Vec<u8>>>);

/// The root of central's tree.
pub struct Central {
    settings: Arc<CentralSettings>,
    self_prefix: String,
    self_metrics_interval: Duration,
    consumer: Option<ConsumerHandle>,
    /// Events of older consumers are ignored.
    generation: u64,
    consumer_restarting: bool,
    processors: Addr<CentralProcessor>,
    max_in_flight: usize,
    sinks: Vec<SinkSlot>,
    /// Per sink: lines handed to it and not acknowledged yet.
    owed: Vec<u64>,
    /// A sink is full (said in the log once, until it drains).
    sink_full: bool,
    /// Per sink: snapshots (ids) whose lines it cannot take yet without
    /// going past its `queue-size`, in order: the sink would drop lines,
    /// while held here they only pause the consumer (Kafka is the buffer).
    held: Vec<VecDeque<u64>>,
    producer: FutureProducer,
    producer_config: ClientConfig,
    partials_topic: Arc<str>,
    assembler: Assembler,
    offsets: Offsets,
    bad: BadMessages,
    in_flight: HashMap<u64, InFlight>,
    next_id: u64,
    paused: bool,
    draining: bool,
    busy: tokio::sync::watch::Sender<usize>,
    restarting: std::collections::HashSet<&'static str>,
    restarts: RestartTracker,
    fatal: mpsc::UnboundedSender<String>,
    stats: CentralStats,
    shutdown_timeout: Duration,
    health: Option<Reporter>,
    stage2: stage2::Stage2,
    /// Per partition of the snapshots topic, how far behind the last
    /// message read was, ms.
    lag_ms: std::collections::BTreeMap<i32, u64>,
    /// Per partition, the partials of snapshots in dispatch order, sent in
    /// that order (`None` until processed): stage 2 reads an LB's later
    /// window as "it reported", so an LB's partials must not overtake each
    /// other.
    partial_order:
        std::collections::BTreeMap<i32, std::collections::BTreeMap<u64, Option<ReadyPartial>>>,
    /// Per LB of a snapshot that decoded, its reference time minus its
    /// `ts`: its clock's skew (plus the pull and publish time).
    skews: ClockSkews,
}

/// Why Central could not start.
#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    /// No sink of lines is enabled: every snapshot would be committed unsent.
    #[error("no sink of lines: enable {enable} for central's lines")]
    NoSink {
        /// What enables one ([`crate::sink::enabling_lines`]).
        enable: String,
    },
    /// The partials producer could not be made.
    #[error("cannot create the producer of {topic}: {source}")]
    Producer {
        /// The partials topic.
        topic: String,
        /// librdkafka's error.
        source: rdkafka::error::KafkaError,
    },
}

impl Central {
    /// Builds Central; its children start when it starts.
    pub fn new(start: CentralStart) -> Result<Central, CentralError> {
        if start.sinks.is_empty() {
            return Err(CentralError::NoSink {
                enable: crate::sink::enabling_lines(),
            });
        }
        let settings = Arc::new(start.settings);
        let windows = settings.windows;
        let producer_config = crate::sink::kafka::settings::client_config(&settings.kafka);
        let producer = producer_config
            .create()
            .map_err(|source| CentralError::Producer {
                topic: settings.partials_topic.clone(),
                source,
            })?;
        let workers = settings.workers.max(1);
        let chunks = Arc::new(ChunkPool::new());
        let processing = start.processing;
        let processors = SyncArbiter::start(workers, move || {
            CentralProcessor::new(processing.clone(), Arc::clone(&chunks))
        });
        Ok(Central {
            partials_topic: Arc::from(settings.partials_topic.as_str()),
            settings,
            self_prefix: start.self_prefix,
            self_metrics_interval: start.self_metrics_interval,
            consumer: None,
            generation: 0,
            consumer_restarting: false,
            processors,
            max_in_flight: workers * IN_FLIGHT_PER_WORKER,
            owed: vec![0; start.sinks.len()],
            sink_full: false,
            held: vec![VecDeque::new(); start.sinks.len()],
            sinks: start.sinks.into_iter().map(SinkSlot::new).collect(),
            producer,
            producer_config,
            assembler: Assembler::new(),
            offsets: Offsets::new(),
            bad: BadMessages::default(),
            in_flight: HashMap::new(),
            next_id: 0,
            paused: false,
            draining: false,
            busy: tokio::sync::watch::channel(0).0,
            restarting: std::collections::HashSet::new(),
            restarts: RestartTracker::new(start.restart_limit),
            fatal: start.fatal,
            stats: CentralStats::default(),
            shutdown_timeout: start.shutdown_timeout,
            health: start.health,
            stage2: stage2::Stage2::new(windows),
            lag_ms: std::collections::BTreeMap::new(),
            partial_order: std::collections::BTreeMap::new(),
            skews: ClockSkews::default(),
        })
    }

    /// Starts a consumer of a new generation; what the last one held is
    /// forgotten (its partitions are read again from the committed offsets).
    fn start_consumer(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        self.assembler.clear();
        self.offsets.clear();
        self.partial_order.clear();
        let (events, receiver) = mpsc::channel(EVENTS_CAPACITY);
        match consumer::start(
            &self.settings,
            &self.settings.group_id,
            &self.settings.snapshots_topic,
            consumer::ConsumerOptions::default(),
            events,
        ) {
            Ok(handle) => {
                // Both consumers follow one pause state: a new one starts
                // where the other is.
                if self.paused {
                    handle.send(Command::Pause);
                }
                self.consumer = Some(handle);
            }
            Err(error) => {
                // Counted as a crash: retried with backoff, fatal at last.
                tracing::error!(error = %error, "cannot start the consumer");
                self.consumer = None;
                self.child_died("consumer", ctx);
                return;
            }
        }
        let generation = self.generation;
        forward(receiver, ctx.address(), move |event| FromConsumer {
            generation,
            event,
        });
        tracing::info!(
            topic = %self.settings.snapshots_topic,
            group = %self.settings.group_id,
            "consuming"
        );
    }

    fn on_message(&mut self, message: Received, ctx: &mut Context<Self>) {
        if self.draining {
            // Not in flight: the next owner reads it from the commit.
            return;
        }
        let Some(epoch) = self.offsets.received(message.partition, message.offset) else {
            return;
        };
        let header = bad::part_of(
            bad::FORMAT,
            |name| message.header(name),
            message.value.as_ref().is_some_and(|v| !v.is_empty()),
            unix_now(),
        );
        let header = match header {
            Ok(header) => header,
            Err(why) => {
                self.bad_done(message.partition, epoch, &[message.offset], &why);
                return;
            }
        };
        tracing::debug!(
            partition = message.partition,
            offset = message.offset,
            lb = %header.lb,
            ts = header.ts,
            part = header.part,
            parts = header.parts,
            "part received"
        );
        let now_ms = unix_now().saturating_mul(1000);
        let reference_ms = clocks::reference_ms(message.timestamp_ms, now_ms);
        if message.timestamp_ms.is_some() {
            self.lag_ms
                .insert(message.partition, now_ms.saturating_sub(reference_ms));
        }
        let outcome = self.assembler.add(Part {
            partition: message.partition,
            offset: message.offset,
            timestamp_ms: message.timestamp_ms,
            header,
            value: message.value.unwrap_or_default(),
        });
        for Abandoned {
            partition,
            offsets,
            why,
        } in outcome.abandoned
        {
            if let Some(epoch) = self.offsets.epoch(partition) {
                self.bad_done(partition, epoch, &offsets, &why);
            }
        }
        if let Some(snapshot) = outcome.complete {
            self.dispatch(epoch, Arc::new(snapshot), reference_ms, ctx);
        }
    }

    fn bad_done(&mut self, partition: i32, epoch: Epoch, offsets: &[i64], why: &BadMessage) {
        let at = MessageAt {
            topic: &self.settings.snapshots_topic,
            partition,
            offsets,
        };
        self.bad.record(&at, why);
        self.stats.bad_messages = self.bad.total();
        self.offsets.done(partition, epoch, offsets);
    }

    fn dispatch(
        &mut self,
        epoch: Epoch,
        snapshot: Arc<Snapshot>,
        reference_ms: u64,
        ctx: &mut Context<Self>,
    ) {
        self.next_id += 1;
        let id = self.next_id;
        self.in_flight.insert(
            id,
            InFlight {
                origin: Origin::Snapshot {
                    partition: snapshot.partition,
                    epoch,
                    offsets: snapshot.offsets.clone(),
                    snapshot: Arc::clone(&snapshot),
                    reference_ms,
                },
                lb: snapshot.lb.clone(),
                ts: snapshot.ts,
                waiting: 0,
                lines: None,
                line_count: 0,
                owes: Vec::new(),
            },
        );
        self.busy.send_replace(self.in_flight.len());
        self.partial_order
            .entry(snapshot.partition)
            .or_default()
            .insert(id, None);
        self.process(id, snapshot, ctx);
        self.update_pause();
    }

    fn process(&mut self, id: u64, snapshot: Arc<Snapshot>, ctx: &mut Context<Self>) {
        let request = self.processors.send(ProcessParts(snapshot));
        ctx.spawn(request.into_actor(self).map(move |reply, central, ctx| {
            match reply {
                Ok(Ok(done)) => central.deliver(id, done, ctx),
                Ok(Err(why)) => {
                    if let Some(InFlight {
                        origin: Origin::Snapshot { partition, epoch, offsets, .. },
                        ..
                    }) = central.in_flight.remove(&id)
                    {
                        central.partial_ready(partition, id, None, ctx);
                        central.bad_done(partition, epoch, &offsets, &why);
                        central.busy.send_replace(central.in_flight.len());
                    }
                }
                Err(mailbox) => {
                    // A processor thread died with it: the snapshot is fine.
                    tracing::error!(error = %mailbox, "processor did not answer; processing the snapshot again");
                    if let Some(InFlight { origin: Origin::Snapshot { snapshot, .. }, .. }) = central.in_flight.get(&id) {
                        let snapshot = Arc::clone(snapshot);
                        central.process(id, snapshot, ctx);
                    }
                }
            }
            central.update_pause();
        }));
    }

    /// The lines to every sink, the partial to the broker; each answer
    /// comes back to [`Self::acked`].
    fn deliver(&mut self, id: u64, done: Done, ctx: &mut Context<Self>) {
        let Done { lines, processed } = done;
        for warning in &processed.report.warnings {
            tracing::warn!("{warning}");
        }
        let Some(InFlight {
            origin:
                Origin::Snapshot {
                    snapshot,
                    reference_ms,
                    ..
                },
            ..
        }) = self.in_flight.get(&id)
        else {
            return;
        };
        let (snapshot, reference_ms) = (Arc::clone(snapshot), *reference_ms);
        // Decoded: its LB is one (a garbage message's `lb` header is not).
        self.skews
            .record(&snapshot.lb, snapshot.ts, reference_ms, unix_now());
        tracing::debug!(
            lb = %snapshot.lb,
            ts = snapshot.ts,
            lines = processed.report.lines,
            "snapshot processed"
        );
        let with_partial = !processed.partial.is_empty();
        self.hand_lines(
            id,
            lines,
            processed.report.lines,
            usize::from(with_partial),
            ctx,
        );
        let ready = with_partial.then(|| {
            let of = Arc::new(PartialOf {
                lb: snapshot.lb.clone(),
                cluster: snapshot.cluster.clone(),
                ts: snapshot.ts,
                reference_ms,
            });
            (of, Arc::new(processed.partial))
        });
        self.partial_ready(snapshot.partition, id, ready, ctx);
    }

    /// Snapshot `id`'s partial is ready (`None`: it has none): sends every
    /// partial of the partition whose earlier ones all went.
    fn partial_ready(
        &mut self,
        partition: i32,
        id: u64,
        ready: Option<ReadyPartial>,
        ctx: &mut Context<Self>,
    ) {
        let Some(queue) = self.partial_order.get_mut(&partition) else {
            // Revoked since: nothing to keep in order with; its lines and
            // partial still finish (copies are harmless to stage 2).
            if let Some((of, values)) = ready {
                self.send_partial(id, of, values, ctx);
            }
            return;
        };
        match ready {
            Some(ready) => {
                queue.insert(id, Some(ready));
            }
            None => {
                queue.remove(&id);
            }
        }
        let mut sendable = Vec::new();
        while let Some(entry) = queue.first_entry() {
            if entry.get().is_none() {
                break;
            }
            let (id, ready) = entry.remove_entry();
            sendable.extend(ready.map(|r| (id, r)));
        }
        for (id, (of, values)) in sendable {
            self.send_partial(id, of, values, ctx);
        }
    }

    /// Hands `id`'s `count` lines to every sink (or holds them for the
    /// ones that cannot take them yet); it is done once every sink and
    /// `others` more answers acknowledged.
    fn hand_lines(
        &mut self,
        id: u64,
        lines: LineChunks,
        count: usize,
        others: usize,
        ctx: &mut Context<Self>,
    ) {
        let sinks = self.sinks.len();
        let Some(work) = self.in_flight.get_mut(&id) else {
            return;
        };
        work.lines = Some(SharedLines::from(lines));
        work.line_count = count as u64;
        work.owes = vec![false; sinks];
        work.waiting = sinks + others;
        let count = work.line_count;
        for sink in 0..sinks {
            let queued = self.held.get(sink).is_some_and(|h| !h.is_empty());
            if !queued && self.can_take(sink, count) {
                self.first_hand(id, sink, ctx);
            } else if let Some(held) = self.held.get_mut(sink) {
                held.push_back(id);
            }
        }
    }

    /// Sink `sink` can take `lines` more without going past its capacity
    /// (or has nothing owed: a snapshot bigger than its queue-size goes
    /// alone, as in the daemon).
    fn can_take(&self, sink: usize, lines: u64) -> bool {
        let Some(slot) = self.sinks.get(sink) else {
            return true;
        };
        let owed = self.owed.get(sink).copied().unwrap_or(0);
        // Its last reported backlog counts too: it holds self metrics
        // besides the snapshots owed.
        let held = owed.max(slot.health.backlog);
        slot.health.capacity == 0 || owed == 0 || held + lines <= slot.health.capacity
    }

    /// Hands snapshot `id`'s lines to sink `sink` the first time, counting
    /// them as owed by it.
    fn first_hand(&mut self, id: u64, sink: usize, ctx: &mut Context<Self>) {
        let Some(work) = self.in_flight.get_mut(&id) else {
            return;
        };
        let (Some(lines), Some(owes)) = (work.lines.clone(), work.owes.get_mut(sink)) else {
            return;
        };
        *owes = true;
        if let Some(owed) = self.owed.get_mut(sink) {
            *owed += work.line_count;
        }
        self.hand_to_sink(id, sink, lines, ctx);
    }

    /// Sink `sink` confirmed snapshot `id`: its lines are no longer owed,
    /// and held snapshots go to it as far as its capacity allows.
    fn sink_acked(&mut self, id: u64, sink: usize, ctx: &mut Context<Self>) {
        if let Some(work) = self.in_flight.get_mut(&id)
            && let Some(owes) = work.owes.get_mut(sink)
            && *owes
        {
            *owes = false;
            if let Some(owed) = self.owed.get_mut(sink) {
                *owed = owed.saturating_sub(work.line_count);
            }
        }
        self.acked(id, ctx);
        self.release_held(sink, ctx);
    }

    /// Hands sink `sink` the snapshots held for it, in order, as far as its
    /// capacity allows.
    fn release_held(&mut self, sink: usize, ctx: &mut Context<Self>) {
        while let Some(&next) = self.held.get(sink).and_then(VecDeque::front) {
            let count = self.in_flight.get(&next).map(|w| w.line_count);
            match count {
                Some(count) if !self.can_take(sink, count) => break,
                Some(_) => {
                    self.held.get_mut(sink).map(VecDeque::pop_front);
                    self.first_hand(next, sink, ctx);
                }
                None => {
                    self.held.get_mut(sink).map(VecDeque::pop_front);
                }
            }
        }
        self.update_pause();
    }

    fn hand_to_sink(&mut self, id: u64, sink: usize, lines: SharedLines, ctx: &mut Context<Self>) {
        let Some(work) = self.in_flight.get(&id) else {
            return;
        };
        let (lb, ts) = (work.lb.clone(), work.ts);
        let cluster = match &work.origin {
            Origin::Snapshot { snapshot, .. } => Some(snapshot.cluster.clone()),
            Origin::Window { .. } => None,
        };
        let Some(slot) = self.sinks.get_mut(sink) else {
            return;
        };
        let (written, acknowledged) = oneshot::channel();
        slot.hand_over(SendLinesAcked {
            of: LinesOf::Central { lb, cluster },
            ts,
            lines,
            written,
        });
        ctx.spawn(
            acknowledged
                .into_actor(self)
                .map(move |ack, central, ctx| match ack {
                    Ok(()) => central.sink_acked(id, sink, ctx),
                    Err(_) => {
                        // The sink died holding them: the same lines go to
                        // the restarted one (they wait in its slot).
                        let Some(work) = central.in_flight.get(&id) else {
                            return;
                        };
                        if let Some(lines) = work.lines.clone() {
                            tracing::warn!(lb = %work.lb, ts = work.ts, "sink died before confirming lines; handing them over again");
                            central.hand_to_sink(id, sink, lines, ctx);
                        }
                    }
                }),
        );
    }

    fn send_partial(
        &mut self,
        id: u64,
        of: Arc<PartialOf>,
        values: Arc<Vec<Vec<u8>>>,
        ctx: &mut Context<Self>,
    ) {
        let sending = partials::publish(
            self.producer.clone(),
            Arc::clone(&self.partials_topic),
            Arc::clone(&of),
            Arc::clone(&values),
            self.settings.kafka.message_timeout,
        );
        ctx.spawn(sending.into_actor(self).map(move |sent, central, ctx| match sent {
            Ok(()) => central.acked(id, ctx),
            Err(error) => {
                tracing::warn!(error = %error, lb = %of.lb, ts = of.ts, "partial not delivered; sending it again");
                if let Some(renewed) = crate::sink::kafka::settings::renewed_after(
                    &central.producer,
                    &central.producer_config,
                    error.rdkafka_error_code(),
                ) {
                    central.producer = renewed;
                }
                ctx.run_later(PARTIAL_RETRY, move |central, ctx| {
                    if central.in_flight.contains_key(&id) {
                        central.send_partial(id, of, values, ctx);
                    }
                });
            }
        }));
    }

    fn acked(&mut self, id: u64, ctx: &mut Context<Self>) {
        let Some(work) = self.in_flight.get_mut(&id) else {
            return;
        };
        work.waiting = work.waiting.saturating_sub(1);
        if work.waiting > 0 {
            return;
        }
        let Some(InFlight { origin, lb, ts, .. }) = self.in_flight.remove(&id) else {
            return;
        };
        match origin {
            Origin::Snapshot {
                partition,
                epoch,
                offsets,
                ..
            } => {
                tracing::debug!(%lb, ts, partition, ?offsets, "snapshot delivered");
                self.offsets.done(partition, epoch, &offsets);
                self.stats.processed += 1;
                if let Some(health) = &mut self.health {
                    health.status_mut().last_process_ok = Some(unix_now());
                }
            }
            Origin::Window { cluster, window } => self.window_acked(cluster, window, ctx),
        }
        self.busy.send_replace(self.in_flight.len());
        self.update_pause();
    }

    /// Pauses the consumer while a sink's backlog is full or enough is in
    /// flight; resumes once neither holds.
    fn update_pause(&mut self) {
        let full = self.sinks.iter().enumerate().find_map(|(i, slot)| {
            let held = self.held.get(i).is_some_and(|h| !h.is_empty());
            (held || slot.backlog_full()).then_some(slot)
        });
        // Said once per episode, whatever paused the consumer first.
        match full {
            Some(slot) if !self.sink_full => {
                tracing::warn!(
                    sink = slot.spec.name(),
                    backlog = slot.health.backlog,
                    capacity = slot.health.capacity,
                    "sink backlog full; consumption paused until it drains"
                );
                self.sink_full = true;
            }
            None if self.sink_full => {
                tracing::info!("sink backlogs drained; consumption goes on");
                self.sink_full = false;
            }
            _ => {}
        }
        // Hysteresis on the work in flight: a pause drops what librdkafka
        // had fetched ahead, and a resume fetches it again, so pausing and
        // resuming at every snapshot would leave the processors waiting on
        // the broker (measured: 1 snapshot in 7 s of a 5-per-second stream).
        // Snapshots only: a cluster's windows are small, bounded by the
        // sinks' backlogs, and come in bursts when several close at once,
        // which would pause stage 1 for nothing.
        let snapshots = self
            .in_flight
            .values()
            .filter(|work| matches!(work.origin, Origin::Snapshot { .. }))
            .count();
        let busy = if self.paused {
            snapshots > self.max_in_flight / 2
        } else {
            snapshots >= self.max_in_flight
        };
        let pause = self.draining || full.is_some() || busy;
        if pause == self.paused {
            return;
        }
        self.paused = pause;
        self.stats.paused = pause;
        if full.is_none() {
            tracing::debug!(
                in_flight = self.in_flight.len(),
                pause,
                "consumption paused or resumed"
            );
        }
        for consumer in [&self.consumer, &self.stage2.consumer]
            .into_iter()
            .flatten()
        {
            consumer.send(if pause {
                Command::Pause
            } else {
                Command::Resume
            });
        }
    }

    fn commit(&mut self) {
        self.commit_merged();
        let commits = self.offsets.take_commits();
        if commits.is_empty() {
            return;
        }
        if let Some(consumer) = &self.consumer {
            consumer.send(Command::Commit(commits));
        }
    }

    fn health_tick(&mut self, ctx: &mut Context<Self>) {
        let sinks: Vec<SinkStatus> = self.sinks.iter().map(SinkSlot::status).collect();
        let (in_flight, assembling) = (self.in_flight.len() as u64, self.assembler.open() as u64);
        let stats = self.stats;
        if let Some(health) = &mut self.health {
            let status = health.status_mut();
            status.queue_depth = assembling;
            status.in_flight = in_flight;
            status.child_restarts = stats.child_restarts;
            status.bad_messages = stats.bad_messages;
            status.sinks = sinks;
            health.tick(unix_now());
        }
        self.ask_sinks(ctx);
    }

    fn ask_sinks(&mut self, ctx: &mut Context<Self>) {
        ctx.spawn(
            ask_health(&self.sinks)
                .into_actor(self)
                .map(|answers, central, _| {
                    keep_health(&mut central.sinks, answers);
                    central.update_pause();
                }),
        );
    }

    /// Central's self metrics and the sinks', to every sink (unacknowledged:
    /// no offset waits for them).
    fn send_self_metrics(&mut self, ctx: &mut Context<Self>) {
        let ts = unix_now();
        let mut text = String::new();
        let prefix = self.self_prefix.clone();
        let merged = self.stage2.stats;
        let lag = |lags: &std::collections::BTreeMap<i32, u64>| {
            lags.values().copied().max().unwrap_or(0) / 1000
        };
        let own = [
            ("BadMessages", self.stats.bad_messages),
            ("SnapshotsProcessed", self.stats.processed),
            ("ChildRestarts", self.stats.child_restarts),
            ("SnapshotsInFlight", self.in_flight.len() as u64),
            ("SnapshotsLagSeconds", lag(&self.lag_ms)),
            ("PartialsLagSeconds", lag(&self.stage2.lag_ms)),
            ("OpenWindows", self.stage2.windows.open_windows() as u64),
            ("WindowsEmitted", merged.windows_emitted),
            ("WindowsClosedAllReported", merged.closed_all_reported),
            ("WindowsClosedGrace", merged.closed_grace),
            ("WindowEmitDelayMs", merged.emit_delay_ms),
            ("LateSnapshots", merged.late),
            ("ReplayedPartials", merged.replayed),
            ("SkewedPartials", merged.skewed),
            ("DroppedWindows", merged.dropped),
        ];
        let skews = self.skews.current(ts, self.settings.windows.lb_timeout);
        for (lb, skew) in skews {
            let _ = writeln!(text, "{prefix}.haproxystats.ClockSkewMs.{lb} {skew} {ts}");
        }
        let sinks = self
            .sinks
            .iter()
            .flat_map(|slot| slot.health.metrics.iter().copied());
        for (name, value) in own.into_iter().chain(sinks) {
            let _ = writeln!(text, "{prefix}.haproxystats.{name} {value} {ts}");
        }
        let count = text.lines().count() as u64;
        let lines = SharedLines::from(text.into_bytes());
        for i in 0..self.sinks.len() {
            let Some(slot) = self.sinks.get_mut(i) else {
                continue;
            };
            // A sink owed all it can hold would make room for these by
            // dropping snapshot lines: they are left out (gauges, sent again
            // next interval).
            let capacity = slot.health.capacity;
            let held = self
                .owed
                .get(i)
                .copied()
                .unwrap_or(0)
                .max(slot.health.backlog);
            if capacity > 0 && held + count > capacity {
                continue;
            }
            let (written, answered) = oneshot::channel();
            slot.hand_over(SendLinesAcked {
                of: LinesOf::Own,
                ts,
                lines: lines.clone(),
                written,
            });
            // Owed until the sink answers (or dies), so that snapshot lines
            // never find its backlog fuller than Central counts it.
            if let Some(owed) = self.owed.get_mut(i) {
                *owed += count;
            }
            ctx.spawn(answered.into_actor(self).map(move |_, central, ctx| {
                if let Some(owed) = central.owed.get_mut(i) {
                    *owed = owed.saturating_sub(count);
                }
                central.release_held(i, ctx);
            }));
        }
    }

    fn check_children(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        if !self.consumer_restarting && self.consumer.as_ref().is_some_and(|c| !c.alive()) {
            self.consumer = None;
            self.child_died("consumer", ctx);
        }
        if !self.stage2.restarting && self.stage2.consumer.as_ref().is_some_and(|c| !c.alive()) {
            self.stage2.consumer = None;
            self.child_died("merge-consumer", ctx);
        }
        let dead: Vec<&'static str> = self
            .sinks
            .iter()
            .filter(|slot| slot.running.is_some() && !slot.alive())
            .map(|slot| slot.spec.name())
            .collect();
        for name in dead {
            if let Some(slot) = self.sinks.iter_mut().find(|s| s.spec.name() == name) {
                slot.running = None;
            }
            self.child_died(name, ctx);
        }
    }

    /// Restarts `child` after the backoff, or gives up (fatal) when it is
    /// one restart too many.
    fn child_died(&mut self, child: &'static str, ctx: &mut Context<Self>) {
        if !self.restarting.insert(child) {
            return;
        }
        self.stats.child_restarts += 1;
        if child == "consumer" {
            self.consumer_restarting = true;
        }
        if child == "merge-consumer" {
            self.stage2.restarting = true;
        }
        match self.restarts.record(Instant::now()) {
            Ok(delay) => {
                tracing::error!(
                    child,
                    restart_in_ms = delay.as_millis() as u64,
                    "child died; restarting it"
                );
                ctx.run_later(delay, move |central, ctx| {
                    central.restarting.remove(child);
                    if central.draining {
                        return;
                    }
                    if child == "consumer" {
                        central.consumer_restarting = false;
                        central.start_consumer(ctx);
                    } else if child == "merge-consumer" {
                        central.stage2.restarting = false;
                        central.start_merge_consumer(ctx);
                    } else if let Some(slot) =
                        central.sinks.iter_mut().find(|s| s.spec.name() == child)
                    {
                        slot.start();
                    }
                    tracing::info!(child, "child restarted");
                });
            }
            Err(exceeded) => {
                tracing::error!(child, "{exceeded}");
                let _ = self.fatal.send(exceeded.to_string());
                self.draining = true;
            }
        }
    }
}

/// Hands a consumer's events to Central, wrapped by `wrap`, one at a time:
/// `send`, not `do_send`, so that the bounded channel, not the mailbox,
/// takes what Central cannot yet.
fn forward<M>(
    mut receiver: mpsc::Receiver<Event>,
    central: Addr<Central>,
    wrap: impl Fn(Event) -> M + 'static,
) where
    M: Message<Result = ()> + Send + 'static,
    Central: Handler<M>,
{
    actix::spawn(async move {
        while let Some(event) = receiver.recv().await {
            if central.send(wrap(event)).await.is_err() {
                break;
            }
        }
    });
}

impl Actor for Central {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for slot in &mut self.sinks {
            slot.start();
        }
        self.ask_sinks(ctx);
        self.start_consumer(ctx);
        self.start_merge_consumer(ctx);
        if let Some(health) = &mut self.health {
            health.ready(unix_now());
        }
        ctx.run_interval(stage2::TICK, |central, ctx| central.tick_windows(ctx));
        ctx.run_interval(WRITE_INTERVAL, |central, ctx| central.health_tick(ctx));
        ctx.run_interval(LIVENESS_INTERVAL, |central, ctx| {
            central.check_children(ctx)
        });
        ctx.run_interval(COMMIT_INTERVAL, |central, _| central.commit());
        ctx.run_interval(self.self_metrics_interval, |central, ctx| {
            central.send_self_metrics(ctx)
        });
    }
}

impl Handler<FromConsumer> for Central {
    type Result = ();

    fn handle(&mut self, message: FromConsumer, ctx: &mut Context<Self>) {
        if message.generation != self.generation {
            return;
        }
        match message.event {
            Event::Assigned { partitions, .. } => {
                for partition in partitions {
                    self.offsets.assign(partition);
                }
                // The consumer thread pauses a new assignment itself when
                // asked to be paused.
                self.update_pause();
            }
            Event::Revoked(partitions) => {
                for partition in partitions {
                    self.partial_order.remove(&partition);
                    self.offsets.revoke(partition);
                    self.assembler.revoke(partition);
                }
            }
            Event::Message(received) => self.on_message(received, ctx),
            Event::CaughtUp { .. } => {}
        }
        self.stats.assembling = self.assembler.open() as u64;
    }
}

impl Handler<GetCentralStats> for Central {
    type Result = CentralStats;

    fn handle(&mut self, _: GetCentralStats, _: &mut Context<Self>) -> CentralStats {
        CentralStats {
            in_flight: self.in_flight.len() as u64,
            assembling: self.assembler.open() as u64,
            open_windows: self.stage2.windows.open_windows() as u64,
            stage2: self.stage2.stats,
            ..self.stats
        }
    }
}

impl Handler<StopCentral> for Central {
    type Result = ResponseActFuture<Self, u64>;

    fn handle(&mut self, _: StopCentral, _: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        self.update_pause();
        if let Some(health) = &mut self.health {
            health.stopping(unix_now());
        }
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        let mut busy = self.busy.subscribe();
        let in_flight_done = async move {
            let _ = tokio::time::timeout_at(deadline, busy.wait_for(|n| *n == 0)).await;
        };
        Box::pin(in_flight_done.into_actor(self).then(move |(), central, _| {
            central.commit();
            for slot in &mut central.sinks {
                if !slot.alive() {
                    slot.start();
                }
            }
            let left = move || deadline.saturating_duration_since(tokio::time::Instant::now());
            let flushes: Vec<_> = central
                .sinks
                .iter()
                .filter_map(|slot| slot.running.as_ref().map(|sink| sink.flush(left())))
                .collect();
            let consumer = central.consumer.take();
            let merge_consumer = central.stage2.consumer.take();
            async move {
                let unsent = futures_util::future::join_all(flushes)
                    .await
                    .into_iter()
                    .fold(0u64, u64::saturating_add);
                // After the last commit (commands are handled in order).
                for consumer in [consumer, merge_consumer].into_iter().flatten() {
                    consumer.stop(left().max(Duration::from_secs(1))).await;
                }
                unsent
            }
            .into_actor(central)
        }))
    }
}
