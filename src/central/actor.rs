//! The Central actor: the root of `haproxystats central`'s tree (SPEC §7,
//! stage 1). It owns the consumer thread, the processor pool and the sinks
//! (the same [`SinkSlot`]s as the daemon's Supervisor), restarts the ones
//! that die, and drives each message from the snapshots topic to a commit:
//!
//! 1. the consumer hands a message over ([`Event`]); its offset is in
//!    flight; its headers are checked ([`bad::part_of`]);
//! 2. the assembler waits for the rest of its snapshot ([`Assembler`]);
//! 3. a whole snapshot is decoded and processed on a processor thread;
//! 4. its lines go to every sink, its partial to the partials topic;
//! 5. once every sink and the broker acknowledged, its offsets are done,
//!    and a commit tick commits what is done.
//!
//! What goes where and when (steps 1, 4 and 5, pausing the consumers) is
//! decided by [`Delivery`]; this actor reads, processes, and carries out its
//! [`Output`]s (`Central::carry_out`), as the Supervisor does for the
//! daemon's `Pipeline`. A bad message is logged and counted
//! ([`BadMessages`]) and done at once.

use std::sync::Arc;
use std::time::Duration;

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
use super::delivery::{Delivery, GivenUp, IN_FLIGHT_PER_WORKER, Output, WorkId};
use super::offsets::Epoch;
use super::partials::{self, PartialOf};
use super::processor::{CentralProcessor, Done, ProcessParts, ProcessorSettings};
use crate::common::unix_now;
use crate::config::CentralSettings;
use crate::health::{Reporter, SinkStatus, WRITE_INTERVAL};
use crate::sink::chunk_pool::ChunkPool;
use crate::sink::chunks::SharedLines;
use crate::sink::messages::{LinesOf, SendLinesAcked};
use crate::sink::slot::{WhenFull, ask_health, keep_health};
use crate::sink::{SinkSlot, SinkSpec};
use crate::supervisor::children::{ChildKind, Supervises, Supervision, check_children, child_died};
use crate::supervisor::restart::{Liveness, RestartLimit};
use crate::supervisor::self_metrics::SelfMetrics;

/// How often the children are checked (as the daemon's Supervisor does).
pub const LIVENESS_INTERVAL: Duration = crate::config::LIVENESS_INTERVAL;

/// How often what is done is committed.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(200);

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

/// A piece of work's lines with what the sinks are told of them.
#[derive(Clone)]
struct Batch {
    lines: SharedLines,
    /// The sinks' `lb` (local-store directory, influx host): the LB's, or
    /// `<cluster-namespace>.<cluster>` for a window.
    lb: String,
    /// A snapshot's cluster.
    cluster: Option<String>,
    /// The sinks' timestamp.
    ts: u64,
}

/// A partial ready to send: which snapshot, its message values.
type ReadyPartial = (Arc<PartialOf>, Arc<Vec<Vec<u8>>>);

/// What [`Delivery`] asks Central to do.
type DeliveryOutput = Output<Batch, ReadyPartial>;

/// The root of central's tree.
pub struct Central {
    settings: Arc<CentralSettings>,
    self_prefix: String,
    self_metrics_interval: Duration,
    consumer: Option<ConsumerHandle>,
    /// Events of older consumers are ignored.
    generation: u64,
    processors: Addr<CentralProcessor>,
    sinks: Vec<SinkSlot>,
    /// What goes to the sinks and the broker, what is done, when to pause.
    delivery: Delivery<Batch, ReadyPartial>,
    producer: FutureProducer,
    producer_config: ClientConfig,
    partials_topic: Arc<str>,
    assembler: Assembler,
    bad: BadMessages,
    busy: tokio::sync::watch::Sender<usize>,
    /// When its children are restarted, and whether it gives up.
    supervision: Supervision,
    stats: CentralStats,
    shutdown_timeout: Duration,
    health: Option<Reporter>,
    stage2: stage2::Stage2,
    /// Per partition of the snapshots topic, how far behind the last
    /// message read was, ms.
    lag_ms: std::collections::BTreeMap<i32, u64>,
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
            processors,
            delivery: Delivery::new(start.sinks.len(), workers * IN_FLIGHT_PER_WORKER),
            // Kafka is the buffer: a sink's lines never go past its
            // queue-size, consumption pauses instead.
            sinks: start
                .sinks
                .into_iter()
                .map(|spec| SinkSlot::new(spec, WhenFull::Hold))
                .collect(),
            producer,
            producer_config,
            assembler: Assembler::new(),
            bad: BadMessages::default(),
            busy: tokio::sync::watch::channel(0).0,
            supervision: Supervision::new(start.restart_limit, start.fatal),
            stats: CentralStats::default(),
            shutdown_timeout: start.shutdown_timeout,
            health: start.health,
            stage2: stage2::Stage2::new(windows),
            lag_ms: std::collections::BTreeMap::new(),
            skews: ClockSkews::default(),
        })
    }

    /// Starts a consumer of a new generation; what the last one held is
    /// forgotten (its partitions are read again from the committed offsets).
    fn start_consumer(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        self.assembler.clear();
        let outputs = self.delivery.consumer_replaced();
        self.carry_out(outputs, ctx);
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
                if self.delivery.paused() {
                    handle.send(Command::Pause);
                }
                self.consumer = Some(handle);
            }
            Err(error) => {
                // Counted as a crash: retried with backoff, fatal at last.
                tracing::error!(error = %error, "cannot start the consumer");
                self.consumer = None;
                child_died(self, ChildKind::Consumer, ctx);
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
        if self.delivery.draining() {
            // Not in flight: the next owner reads it from the commit.
            return;
        }
        let Some(epoch) = self.delivery.received(message.partition, message.offset) else {
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
            if let Some(epoch) = self.delivery.epoch(partition) {
                self.bad_done(partition, epoch, &offsets, &why);
            }
        }
        if let Some(snapshot) = outcome.complete {
            self.dispatch(epoch, Arc::new(snapshot), reference_ms, ctx);
        }
    }

    /// Logs and counts a bad message (or a snapshot given up) of the
    /// snapshots topic.
    fn record_bad(&mut self, partition: i32, offsets: &[i64], why: &BadMessage) {
        let at = MessageAt {
            topic: &self.settings.snapshots_topic,
            partition,
            offsets,
        };
        self.bad.record(&at, why);
        self.stats.bad_messages = self.bad.total();
    }

    fn bad_done(&mut self, partition: i32, epoch: Epoch, offsets: &[i64], why: &BadMessage) {
        self.record_bad(partition, offsets, why);
        self.delivery.bad(partition, epoch, offsets);
    }

    fn dispatch(
        &mut self,
        epoch: Epoch,
        snapshot: Arc<Snapshot>,
        reference_ms: u64,
        ctx: &mut Context<Self>,
    ) {
        let (id, outputs) =
            self.delivery
                .dispatched(snapshot.partition, epoch, snapshot.offsets.clone());
        self.carry_out(outputs, ctx);
        self.process(id, snapshot, reference_ms, ctx);
    }

    fn process(
        &mut self,
        id: WorkId,
        snapshot: Arc<Snapshot>,
        reference_ms: u64,
        ctx: &mut Context<Self>,
    ) {
        let request = self.processors.send(ProcessParts(Arc::clone(&snapshot)));
        ctx.spawn(request.into_actor(self).map(move |reply, central, ctx| {
            match reply {
                Ok(Ok(done)) => central.deliver(id, &snapshot, reference_ms, done, ctx),
                Ok(Err(why)) => {
                    let (given_up, outputs) = central.delivery.unprocessable(id);
                    if let Some(GivenUp { partition, offsets }) = given_up {
                        central.record_bad(partition, &offsets, &why);
                    }
                    central.carry_out(outputs, ctx);
                }
                Err(mailbox) => {
                    // A processor thread died with it: the snapshot is fine.
                    tracing::error!(error = %mailbox, "processor did not answer; processing the snapshot again");
                    if central.delivery.in_flight_contains(id) {
                        central.process(id, snapshot, reference_ms, ctx);
                    }
                }
            }
        }));
    }

    /// The lines and the partial of snapshot `id` to [`Delivery`].
    fn deliver(
        &mut self,
        id: WorkId,
        snapshot: &Snapshot,
        reference_ms: u64,
        done: Done,
        ctx: &mut Context<Self>,
    ) {
        let Done { lines, processed } = done;
        for warning in &processed.report.warnings {
            tracing::warn!("{warning}");
        }
        // Decoded: its LB is one (a garbage message's `lb` header is not).
        self.skews
            .record(&snapshot.lb, snapshot.ts, reference_ms, unix_now());
        tracing::debug!(
            lb = %snapshot.lb,
            ts = snapshot.ts,
            lines = processed.report.lines,
            "snapshot processed"
        );
        let partial = (!processed.partial.is_empty()).then(|| {
            let of = Arc::new(PartialOf {
                lb: snapshot.lb.clone(),
                cluster: snapshot.cluster.clone(),
                ts: snapshot.ts,
                reference_ms,
            });
            (of, Arc::new(processed.partial))
        });
        let batch = Batch {
            lines: SharedLines::from(lines),
            lb: snapshot.lb.clone(),
            cluster: Some(snapshot.cluster.clone()),
            ts: snapshot.ts,
        };
        let count = processed.report.lines as u64;
        let outputs = self.delivery.processed(id, batch, count, partial);
        self.carry_out(outputs, ctx);
    }

    /// Does what [`Delivery`] decided.
    fn carry_out(&mut self, outputs: Vec<DeliveryOutput>, ctx: &mut Context<Self>) {
        for output in outputs {
            match output {
                Output::HandLines { id, sink, lines } => self.hand_to_sink(id, sink, lines, ctx),
                // Handed where they are made (`send_self_metrics`).
                Output::HandSelfMetrics { .. } => {}
                Output::SendPartial {
                    id,
                    partial: (of, values),
                } => self.send_partial(id, of, values, ctx),
                Output::SnapshotDelivered { partition, offsets } => {
                    tracing::debug!(partition, ?offsets, "snapshot delivered");
                    self.stats.processed += 1;
                    if let Some(health) = &mut self.health {
                        health.status_mut().last_process_ok = Some(unix_now());
                    }
                }
                Output::WindowDelivered { cluster, window } => {
                    self.window_acked(cluster, window, ctx)
                }
                Output::Pause | Output::Resume => {
                    let pause = matches!(output, Output::Pause);
                    tracing::debug!(
                        in_flight = self.delivery.in_flight(),
                        pause,
                        "consumption paused or resumed"
                    );
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
                Output::SinkFull { sink } => {
                    if let Some(slot) = self.sinks.get(sink) {
                        tracing::warn!(
                            sink = slot.spec.name(),
                            backlog = slot.health.backlog,
                            capacity = slot.health.capacity,
                            "sink backlog full; consumption paused until it drains"
                        );
                    }
                }
                Output::SinksDrained => {
                    tracing::info!("sink backlogs drained; consumption goes on");
                }
            }
        }
        self.busy.send_replace(self.delivery.in_flight());
    }

    /// Hands `batch`, work `id`'s lines, to sink `sink`; its answer goes
    /// back to [`Delivery`].
    fn hand_to_sink(&mut self, id: WorkId, sink: usize, batch: Batch, ctx: &mut Context<Self>) {
        let Some(slot) = self.sinks.get_mut(sink) else {
            return;
        };
        let (lb, ts) = (batch.lb.clone(), batch.ts);
        let (written, acknowledged) = oneshot::channel();
        slot.hand_over(SendLinesAcked {
            of: LinesOf::Central {
                lb: batch.lb,
                cluster: batch.cluster,
            },
            ts,
            lines: batch.lines,
            written,
        });
        ctx.spawn(
            acknowledged
                .into_actor(self)
                .map(move |ack, central, ctx| {
                    let outputs = match ack {
                        Ok(()) => central.delivery.sink_acked(id, sink),
                        Err(_) => {
                            // The sink died holding them: the same lines go
                            // to the restarted one (they wait in its slot).
                            tracing::warn!(%lb, ts, "sink died before confirming lines; handing them over again");
                            central.delivery.sink_lost(id, sink)
                        }
                    };
                    central.carry_out(outputs, ctx);
                }),
        );
    }

    fn send_partial(
        &mut self,
        id: WorkId,
        of: Arc<PartialOf>,
        values: Arc<Vec<Vec<u8>>>,
        ctx: &mut Context<Self>,
    ) {
        let sending = partials::publish(
            self.producer.clone(),
            Arc::clone(&self.partials_topic),
            Arc::clone(&of),
            values,
            self.settings.kafka.message_timeout,
        );
        ctx.spawn(sending.into_actor(self).map(move |sent, central, ctx| match sent {
            Ok(()) => {
                let outputs = central.delivery.partial_acked(id);
                central.carry_out(outputs, ctx);
            }
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
                    let outputs = central.delivery.resend_partial(id);
                    central.carry_out(outputs, ctx);
                });
            }
        }));
    }

    /// Commits what both stages have done.
    fn commit(&mut self) {
        self.commit_merged();
        let commits = self.delivery.commit_tick();
        if commits.is_empty() {
            return;
        }
        if let Some(consumer) = &self.consumer {
            consumer.send(Command::Commit(commits));
        }
    }
    fn health_tick(&mut self, ctx: &mut Context<Self>) {
        let sinks: Vec<SinkStatus> = self.sinks.iter().map(SinkSlot::status).collect();
        let (in_flight, assembling) = (
            self.delivery.in_flight() as u64,
            self.assembler.open() as u64,
        );
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
                .map(|answers, central, ctx| {
                    keep_health(&mut central.sinks, answers);
                    for sink in 0..central.sinks.len() {
                        let Some(health) = central.sinks.get(sink).map(|slot| &slot.health) else {
                            continue;
                        };
                        let (backlog, capacity) = (health.backlog, health.capacity);
                        let outputs = central.delivery.sink_health(sink, backlog, capacity);
                        central.carry_out(outputs, ctx);
                    }
                }),
        );
    }

    /// Central's self metrics and the sinks', to every sink (unacknowledged:
    /// no offset waits for them).
    fn send_self_metrics(&mut self, ctx: &mut Context<Self>) {
        let ts = unix_now();
        let merged = self.stage2.stats;
        let lag = |lags: &std::collections::BTreeMap<i32, u64>| {
            lags.values().copied().max().unwrap_or(0) / 1000
        };
        let mut metrics = SelfMetrics::new(&self.self_prefix, ts);
        for (lb, skew) in self.skews.current(ts, self.settings.windows.lb_timeout) {
            metrics.add_of("ClockSkewMs", &lb, skew);
        }
        metrics.add_all([
            ("BadMessages", self.stats.bad_messages),
            ("SnapshotsProcessed", self.stats.processed),
            ("ChildRestarts", self.stats.child_restarts),
            ("SnapshotsInFlight", self.delivery.in_flight() as u64),
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
        ]);
        metrics.add_sinks(&self.sinks);
        let count = metrics.lines();
        let lines = SharedLines::from(metrics.into_bytes());
        for output in self.delivery.self_metrics(count) {
            let Output::HandSelfMetrics { sink } = output else {
                continue;
            };
            let Some(slot) = self.sinks.get_mut(sink) else {
                continue;
            };
            let (written, answered) = oneshot::channel();
            slot.hand_over(SendLinesAcked {
                of: LinesOf::Own,
                ts,
                lines: lines.clone(),
                written,
            });
            // Answered or dropped (the sink died): no longer owed.
            ctx.spawn(answered.into_actor(self).map(move |_, central, ctx| {
                let outputs = central.delivery.self_metrics_answered(sink, count);
                central.carry_out(outputs, ctx);
            }));
        }
    }
}

impl Supervises for Central {
    fn supervision(&mut self) -> &mut Supervision {
        &mut self.supervision
    }

    fn sinks(&mut self) -> &mut [SinkSlot] {
        &mut self.sinks
    }

    fn own_children(&self) -> Vec<(ChildKind, Liveness)> {
        let liveness = |consumer: &Option<ConsumerHandle>| match consumer {
            None => Liveness::NotRunning,
            Some(consumer) if consumer.alive() => Liveness::Alive,
            Some(_) => Liveness::Dead,
        };
        vec![
            (ChildKind::Consumer, liveness(&self.consumer)),
            (ChildKind::MergeConsumer, liveness(&self.stage2.consumer)),
        ]
    }

    fn let_go(&mut self, child: ChildKind) {
        match child {
            ChildKind::Consumer => self.consumer = None,
            ChildKind::MergeConsumer => self.stage2.consumer = None,
            // The daemon's, and the sinks (the loop's own).
            ChildKind::Puller | ChildKind::Watcher | ChildKind::Sink(_) => {}
        }
    }

    fn start_own(&mut self, child: ChildKind, ctx: &mut Context<Self>) {
        match child {
            ChildKind::Consumer => self.start_consumer(ctx),
            ChildKind::MergeConsumer => self.start_merge_consumer(ctx),
            ChildKind::Puller | ChildKind::Watcher | ChildKind::Sink(_) => {}
        }
    }

    fn draining(&self) -> bool {
        self.delivery.draining()
    }

    fn count_restarts(&mut self, total: u64) {
        self.stats.child_restarts = total;
    }

    fn drain(&mut self, ctx: &mut Context<Self>) {
        let outputs = self.delivery.drain();
        self.carry_out(outputs, ctx);
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
        ctx.run_interval(LIVENESS_INTERVAL, check_children);
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
                // The consumer thread pauses a new assignment itself when
                // asked to be paused.
                for partition in partitions {
                    let outputs = self.delivery.assigned(partition);
                    self.carry_out(outputs, ctx);
                }
            }
            Event::Revoked(partitions) => {
                for partition in partitions {
                    self.assembler.revoke(partition);
                    let outputs = self.delivery.revoked(partition);
                    self.carry_out(outputs, ctx);
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
            in_flight: self.delivery.in_flight() as u64,
            paused: self.delivery.paused(),
            assembling: self.assembler.open() as u64,
            open_windows: self.stage2.windows.open_windows() as u64,
            stage2: self.stage2.stats,
            ..self.stats
        }
    }
}

impl Handler<StopCentral> for Central {
    type Result = ResponseActFuture<Self, u64>;

    fn handle(&mut self, _: StopCentral, ctx: &mut Context<Self>) -> Self::Result {
        let outputs = self.delivery.drain();
        self.carry_out(outputs, ctx);
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
