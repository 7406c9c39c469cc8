//! Stage 2 inside Central (SPEC §7): a second consumer, in the group
//! `<group-id>-merge`, on the partials topic; its messages go, reassembled,
//! into the window state machine ([`Windows`]), whose outputs this module
//! carries out: a closed window is merged on a processor thread and its
//! lines go to the same sinks as stage 1's, in the cluster's order
//! ([`crate::central::delivery`]); once acknowledged, the
//! cluster's state goes to the state topic; once stored, the offsets it
//! covers are committed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::mpsc;

use super::{Batch, Central, EVENTS_CAPACITY};
use crate::central::assembler::{Abandoned, Assembler, Part};
use crate::central::bad::{self, BadMessage, MessageAt};
use crate::central::clocks;
use crate::central::consumer::{self, Command, ConsumerHandle, ConsumerOptions, Event, Received};
use crate::central::delivery::WorkId;
use crate::central::process::PARTIAL_FORMAT;
use crate::central::processor::{MergeWindow, PartialMessage, cluster_path};
use crate::central::state;
use crate::central::windows::{ClusterState, Emission, Input, Output, PartialIn, Windows};
use crate::common::unix_now;
use crate::log_limit::LogLimit;
use crate::sink::chunks::SharedLines;

/// How long reading the state topic at an assignment may take.
const STATE_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Wait before a state that failed is stored again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// How often the wall clock is given to the windows (grace).
pub(super) const TICK: Duration = Duration::from_secs(1);

/// Stage 2's counters, sent as Central's self metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stage2Stats {
    /// Windows emitted and acknowledged.
    pub windows_emitted: u64,
    /// Windows closed because every active LB reported.
    pub closed_all_reported: u64,
    /// Windows closed by grace.
    pub closed_grace: u64,
    /// Partials of windows already emitted.
    pub late: u64,
    /// Partials of windows `≤ H` read again after a restart or rebalance.
    pub replayed: u64,
    /// Partials whose `ts` was more than `max-clock-skew` ahead of their
    /// reference time, placed by the reference time.
    pub skewed: u64,
    /// Open windows dropped at a revocation.
    pub dropped: u64,
    /// The last emitted window's delay after its end, ms.
    pub emit_delay_ms: u64,
}

/// Stage 2's part of Central.
pub(super) struct Stage2 {
    pub(super) windows: Windows<Arc<PartialMessage>>,
    assembler: Assembler,
    pub(super) consumer: Option<ConsumerHandle>,
    generation: u64,
    pub(super) stats: Stage2Stats,
    /// Per partition, how far behind the last message read was, ms.
    pub(super) lag_ms: BTreeMap<i32, u64>,
    /// The warning about skewed partials: anyone who can write to the
    /// topic can send many.
    skewed_log: LogLimit,
}

impl Stage2 {
    pub(super) fn new(windows: crate::central::windows::WindowSettings) -> Stage2 {
        Stage2 {
            windows: Windows::new(windows),
            assembler: Assembler::new(),
            consumer: None,
            generation: 0,
            stats: Stage2Stats::default(),
            lag_ms: BTreeMap::new(),
            skewed_log: LogLimit::default(),
        }
    }
}

/// An event of stage 2's consumer of one generation.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct FromMergeConsumer {
    generation: u64,
    event: Event,
}

impl Central {
    /// The consumer group of stage 2.
    fn merge_group(&self) -> String {
        format!("{}-merge", self.settings.group_id)
    }

    /// Starts stage 2's consumer of a new generation; what the last one
    /// held is forgotten (read again from the committed offsets).
    pub(super) fn start_merge_consumer(&mut self, ctx: &mut Context<Self>) {
        let stage2 = &mut self.stage2;
        stage2.generation += 1;
        stage2.assembler.clear();
        stage2.windows = Windows::new(*stage2.windows.settings());
        stage2.lag_ms.clear();
        let outputs = self.delivery.merge_consumer_replaced();
        self.carry_out(outputs, ctx);
        let (events, receiver) = mpsc::channel(EVENTS_CAPACITY);
        let client = crate::central::consumer::client_config(&self.settings, "unused");
        let state_topic = self.settings.state_topic.clone();
        let settings = *self.stage2.windows.settings();
        let restore: consumer::RestoreFn = Arc::new(move || {
            if let Some(failure) = injected_state_read_failure() {
                return Err(failure);
            }
            state::read_all(&client, &state_topic, STATE_READ_TIMEOUT, &settings)
                .map_err(|e| e.to_string())
        });
        let options = ConsumerOptions {
            restore: Some(restore),
            track_caught_up: true,
        };
        let group = self.merge_group();
        match consumer::start(
            &self.settings,
            &group,
            &self.settings.partials_topic,
            options,
            events,
        ) {
            Ok(handle) => {
                if self.delivery.paused() {
                    handle.send(Command::Pause);
                }
                self.stage2.consumer = Some(handle);
            }
            Err(error) => {
                tracing::error!(error = %error, "cannot start the consumer of the partials");
                self.stage2.consumer = None;
                super::child_died(self, super::ChildKind::MergeConsumer, ctx);
                return;
            }
        }
        let generation = self.stage2.generation;
        super::forward(receiver, ctx.address(), move |event| FromMergeConsumer {
            generation,
            event,
        });
        tracing::info!(topic = %self.settings.partials_topic, %group, "merging partials");
    }

    fn on_partial_message(&mut self, message: Received, ctx: &mut Context<Self>) {
        let now_ms = unix_now().saturating_mul(1000);
        let reference_ms = clocks::reference_ms(message.timestamp_ms, now_ms);
        if message.timestamp_ms.is_some() {
            self.stage2
                .lag_ms
                .insert(message.partition, now_ms.saturating_sub(reference_ms));
        }
        let header = bad::part_of(
            PARTIAL_FORMAT,
            |name| message.header(name),
            message.value.as_ref().is_some_and(|v| !v.is_empty()),
            unix_now(),
        );
        let header = match header {
            Ok(header) => header,
            Err(why) => {
                self.skip_partials(message.partition, vec![message.offset], &why, ctx);
                return;
            }
        };
        let (partition, offset) = (message.partition, message.offset);
        let outcome = self.stage2.assembler.add(Part {
            partition,
            offset,
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
            self.skip_partials(partition, offsets, &why, ctx);
        }
        let input = match outcome.complete {
            Some(partial) => Input::Partial(PartialIn {
                partition: partial.partition,
                offsets: partial.offsets,
                cluster: partial.cluster,
                lb: partial.lb.clone(),
                ts: partial.ts,
                reference: reference_ms / 1000,
                now_ms,
                payload: Arc::new(PartialMessage {
                    lb: partial.lb,
                    ts: partial.ts,
                    parts: partial.parts,
                }),
            }),
            None => Input::Part { partition, offset },
        };
        let outputs = self.stage2.windows.handle(input);
        self.apply(outputs, ctx);
    }

    fn skip_partials(
        &mut self,
        partition: i32,
        offsets: Vec<i64>,
        why: &BadMessage,
        ctx: &mut Context<Self>,
    ) {
        let at = MessageAt {
            topic: &self.settings.partials_topic,
            partition,
            offsets: &offsets,
        };
        self.bad.record(&at, why);
        self.stats.bad_messages = self.bad.total();
        let outputs = self
            .stage2
            .windows
            .handle(Input::Skipped { partition, offsets });
        self.apply(outputs, ctx);
    }

    /// Carries out what the windows decided.
    pub(super) fn apply(
        &mut self,
        outputs: Vec<Output<Arc<PartialMessage>>>,
        ctx: &mut Context<Self>,
    ) {
        for output in outputs {
            match output {
                Output::Emit(emission) => self.emit_window(emission, ctx),
                Output::Store { cluster, state } => self.store_state(cluster, state, ctx),
                Output::Late {
                    cluster,
                    lb,
                    window,
                } => {
                    self.stage2.stats.late += 1;
                    tracing::info!(%cluster, %lb, window, "late partial: its window was emitted already; its per-LB lines went out");
                }
                Output::Skewed {
                    cluster,
                    lb,
                    ahead,
                    window,
                } => {
                    self.stage2.stats.skewed += 1;
                    if let Some(suppressed) = self.stage2.skewed_log.allow(Instant::now()) {
                        let most = self.stage2.windows.settings().max_clock_skew;
                        tracing::warn!(%cluster, %lb, ahead_s = ahead, max_clock_skew_s = most, window, similar_lines_suppressed = suppressed, "partial's ts is ahead of its message's time by more than max-clock-skew (a clock far off, or a forged ts): placed in the window of the message's time; its per-LB lines went out as they are");
                    }
                }
                Output::Replayed { .. } => self.stage2.stats.replayed += 1,
                Output::Dropped { cluster, windows } => {
                    self.stage2.stats.dropped += windows as u64;
                    tracing::info!(%cluster, windows, "partition revoked: open windows dropped, their next owner emits them");
                }
            }
        }
    }

    fn emit_window(&mut self, emission: Emission<Arc<PartialMessage>>, ctx: &mut Context<Self>) {
        match emission.reason {
            crate::central::windows::Close::AllReported => {
                self.stage2.stats.closed_all_reported += 1
            }
            crate::central::windows::Close::Grace => self.stage2.stats.closed_grace += 1,
        }
        let end_ms = emission
            .window
            .saturating_add(self.stage2.windows.settings().window)
            .saturating_mul(1000);
        self.stage2.stats.emit_delay_ms = (unix_now().saturating_mul(1000)).saturating_sub(end_ms);
        let id = self
            .delivery
            .window_emitted(emission.cluster.clone(), emission.window);
        self.busy.send_replace(self.delivery.in_flight());
        self.merge(id, Arc::new(emission), ctx);
    }

    fn merge(
        &mut self,
        id: WorkId,
        emission: Arc<Emission<Arc<PartialMessage>>>,
        ctx: &mut Context<Self>,
    ) {
        let request = self
            .processors
            .send(MergeWindow(Emission::clone(&emission)));
        ctx.spawn(request.into_actor(self).map(move |reply, central, ctx| {
            let outputs = match reply {
                Ok(Ok(merged)) => {
                    for unreadable in &merged.unreadable {
                        tracing::warn!(cluster = %emission.cluster, window = emission.window, "unreadable partial left out of its window: {unreadable}");
                    }
                    tracing::debug!(cluster = %emission.cluster, window = emission.window, reporting = merged.reporting, expected = emission.expected, "window merged");
                    let path = cluster_path("", &central.settings.cluster_namespace, &emission.cluster);
                    let batch = Batch {
                        lines: SharedLines::from(merged.lines),
                        // `<cluster-namespace>.<cluster>`, as an LB's name is.
                        lb: path.trim_start_matches('.').to_owned(),
                        cluster: None,
                        ts: emission.window,
                    };
                    central.delivery.merged(id, batch, merged.line_count as u64)
                }
                Ok(Err(why)) => {
                    // Nothing to send: the window is given up, as a bad
                    // snapshot is, so that its offsets do not stall.
                    tracing::error!(cluster = %emission.cluster, window = emission.window, error = %why, "window cannot be merged; skipped");
                    central.delivery.merge_failed(id)
                }
                Err(mailbox) => {
                    tracing::error!(error = %mailbox, "processor did not answer; merging the window again");
                    central.merge(id, emission, ctx);
                    return;
                }
            };
            central.carry_out(outputs, ctx);
        }));
    }

    /// Every sink has window `window` of `cluster`.
    pub(super) fn window_acked(&mut self, cluster: String, window: u64, ctx: &mut Context<Self>) {
        self.stage2.stats.windows_emitted += 1;
        let outputs = self.stage2.windows.handle(Input::Acked { cluster, window });
        self.apply(outputs, ctx);
    }

    fn store_state(&mut self, cluster: String, state: ClusterState, ctx: &mut Context<Self>) {
        let producer = self.producer.clone();
        let topic = self.settings.state_topic.clone();
        let timeout = self.settings.kafka.message_timeout;
        let generation = self.stage2.generation;
        let storing = async move {
            let stored = state::store(&producer, &topic, &cluster, &state, timeout).await;
            (cluster, state, stored)
        };
        ctx.spawn(
            storing
                .into_actor(self)
                .map(move |(cluster, state, stored), central, ctx| {
                    if central.stage2.generation != generation {
                        return;
                    }
                    match stored {
                        Ok(()) => {
                            let window = state.emitted;
                            let outputs =
                                central.stage2.windows.handle(Input::Stored { cluster, window });
                            central.apply(outputs, ctx);
                        }
                        Err(error) => {
                            tracing::warn!(%cluster, error = %error, "state not stored; storing it again");
                            ctx.run_later(STORE_RETRY, move |central, ctx| {
                                if central.stage2.generation == generation {
                                    central.store_state(cluster, state, ctx);
                                }
                            });
                        }
                    }
                }),
        );
    }

    /// The wall clock, for grace.
    pub(super) fn tick_windows(&mut self, ctx: &mut Context<Self>) {
        let now_ms = unix_now().saturating_mul(1000);
        let outputs = self.stage2.windows.handle(Input::Tick { now_ms });
        self.apply(outputs, ctx);
    }

    /// Commits what stage 2 has done.
    pub(super) fn commit_merged(&mut self) {
        let commits = self.stage2.windows.take_commits();
        if commits.is_empty() {
            return;
        }
        if let Some(consumer) = &self.stage2.consumer {
            consumer.send(Command::Commit(commits));
        }
    }
}

impl Handler<FromMergeConsumer> for Central {
    type Result = ();

    fn handle(&mut self, message: FromMergeConsumer, ctx: &mut Context<Self>) {
        if message.generation != self.stage2.generation {
            return;
        }
        let input = match message.event {
            Event::Assigned {
                partitions,
                restored,
            } => {
                let restored = restored.unwrap_or_default();
                tracing::info!(partitions = ?partitions, clusters = restored.len(), "partials partitions assigned; state read");
                for partition in partitions {
                    let outputs = self.stage2.windows.handle(Input::Assigned {
                        partition,
                        restored: restored.clone(),
                    });
                    self.apply(outputs, ctx);
                }
                // The consumer thread pauses a new assignment itself when
                // asked to be paused.
                return;
            }
            Event::Revoked(partitions) => {
                for partition in partitions {
                    self.stage2.assembler.revoke(partition);
                    self.stage2.lag_ms.remove(&partition);
                    let outputs = self.stage2.windows.handle(Input::Revoked { partition });
                    self.apply(outputs, ctx);
                }
                return;
            }
            Event::CaughtUp {
                partition,
                caught_up,
            } => {
                if caught_up {
                    self.stage2.lag_ms.insert(partition, 0);
                }
                Input::CaughtUp {
                    partition,
                    caught_up,
                }
            }
            Event::Message(received) => {
                self.on_partial_message(received, ctx);
                return;
            }
        };
        let outputs = self.stage2.windows.handle(input);
        self.apply(outputs, ctx);
    }
}

/// Fault injection (the `fault-injection` feature: tests and soaks, never a
/// release): the first `HAPROXYSTATS_FAIL_STATE_READS` reads of the state
/// topic fail, so that a test sees the merge consumer give up and Central
/// restart it with backoff, as actors.md says. A broker that serves the
/// partials and not the state topic is not something tansu can be made into.
#[cfg(feature = "fault-injection")]
fn injected_state_read_failure() -> Option<String> {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static LEFT: OnceLock<AtomicU64> = OnceLock::new();
    let left = LEFT.get_or_init(|| {
        let failures = std::env::var("HAPROXYSTATS_FAIL_STATE_READS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        AtomicU64::new(failures)
    });
    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
        .then(|| "the state topic cannot be read (fault injection)".to_owned())
}

/// Without the `fault-injection` feature no read is made to fail.
#[cfg(not(feature = "fault-injection"))]
fn injected_state_read_failure() -> Option<String> {
    None
}
