//! The KafkaSink actor (SPEC §5): lines wait in a bounded FIFO
//! [`Backlog`] (drop-oldest, counted, as Graphite's), are cut into messages
//! of whole lines under `message-max-bytes`, written in the configured
//! format, keyed by the load balancer, and handed to librdkafka's
//! idempotent producer (`acks=all`). A batch is acknowledged — its
//! snapshot may be deleted — once the broker confirmed every message that
//! carries its lines (delivery reports), or the backlog dropped them.
//!
//! Only a bounded amount is in librdkafka's hands at once
//! ([`IN_FLIGHT_BYTES`]), and nothing new while the broker does not answer
//! a metadata request (asked every [`PROBE_INTERVAL`] while lines are
//! pending): the rest waits in the backlog, where `queue-size` applies;
//! otherwise a broker outage would pile everything up inside librdkafka,
//! out of reach of the drop-oldest rule. A message librdkafka
//! gives up on (after `message-timeout`) is counted as a delivery error and
//! sent again: at-least-once, duplicates allowed (Graphite and InfluxDB
//! keep one value per series and timestamp). A message refused for its
//! size is not sent again as it is: it is split, or dropped when it is one
//! line ([`super::refusal`]), counted and logged once per cause.
//!
//! At start the sink says in one line whether its topic exists
//! ([`super::topic`]); while it holds lines it cannot hand over (topic
//! missing, brokers unreachable), its health says why, for the status file
//! and `check` (CRITICAL).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::sync::mpsc;

use super::format::{Format, split_lines, to_influx};
use super::refusal::{self, TooLarge};
use super::settings::KafkaSettings;
use super::topic::{Blocker, TopicRole, TopicState, check_at_start};
use crate::log_limit::LogLimit;
use crate::sink::acks::LineAcks;
use crate::sink::backlog::Backlog;
use crate::sink::messages::SinkHealth;
use crate::sink::writer_shell::{
    Command, FlushWaiters, GetStats, LinesBatch, SharedCounters, WriterSink, WriterTask,
};

/// Payload bytes handed to librdkafka and not yet confirmed, at most (one
/// message may go beyond): enough to keep a local broker busy, small
/// enough that an outage leaves the lines in the backlog.
pub const IN_FLIGHT_BYTES: usize = 8 * 1024 * 1024;

/// How long to wait before handing a message to librdkafka again after it
/// refused one (its own queue full, or an error creating the message).
const REFUSED_RETRY: Duration = Duration::from_millis(200);

/// How often the broker is asked for the topic's metadata while lines are
/// pending, and how long an answer may take.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The metrics topic in the log lines of the check at start.
const TOPIC_ROLE: TopicRole = TopicRole {
    what: "metrics topic",
    option: "[kafka] topic",
    meanwhile: "lines wait in the backlog meanwhile",
};

/// Ask for the counters ([`KafkaStats`]).
pub type GetKafkaStats = GetStats<KafkaStats>;

/// The message asking for the counters, as a value: `sink.send(GetKafkaStats)`.
#[allow(non_upper_case_globals)]
pub const GetKafkaStats: GetKafkaStats = GetStats::new();

/// The KafkaSink actor: the [`WriterSink`] of a [`KafkaWriter`].
pub type KafkaSink = WriterSink<KafkaWriter>;

/// The sink's counters (self metrics `Kafka*`, the status file, logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, MessageResponse)]
pub struct KafkaStats {
    /// Lines not yet confirmed by the broker (waiting or in flight).
    pub backlog: u64,
    /// Lines dropped because the backlog was full, since start.
    pub dropped: u64,
    /// Messages librdkafka reported as not delivered, since start.
    pub delivery_errors: u64,
    /// Messages the broker confirmed, since start.
    pub messages_sent: u64,
    /// Lines the broker confirmed, since start.
    pub lines_sent: u64,
    /// Messages refused for their size and split in two, since start.
    pub split: u64,
    /// Epoch seconds of the last confirmed message.
    pub last_delivery: Option<u64>,
}

/// What the KafkaSink's task shares with its actor.
#[derive(Debug, Default)]
pub struct Counters {
    backlog: AtomicU64,
    dropped: AtomicU64,
    delivery_errors: AtomicU64,
    messages_sent: AtomicU64,
    lines_sent: AtomicU64,
    split: AtomicU64,
    last_delivery: AtomicU64,
    /// Why the last metadata request says nothing can be handed over.
    cannot_deliver: Blocker,
}

impl SharedCounters for Counters {
    type Stats = KafkaStats;

    fn read(&self) -> KafkaStats {
        self.stats()
    }
}

impl Counters {
    fn stats(&self) -> KafkaStats {
        KafkaStats {
            backlog: self.backlog.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            delivery_errors: self.delivery_errors.load(Ordering::Relaxed),
            messages_sent: self.messages_sent.load(Ordering::Relaxed),
            lines_sent: self.lines_sent.load(Ordering::Relaxed),
            split: self.split.load(Ordering::Relaxed),
            last_delivery: Some(self.last_delivery.load(Ordering::Relaxed)).filter(|t| *t > 0),
        }
    }

    /// Why lines wait and cannot be handed over; `None` while nothing waits
    /// (a sink with nothing to deliver is not failing to deliver it).
    fn cannot_deliver(&self) -> Option<String> {
        if self.backlog.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.cannot_deliver.get()
    }
}

impl WriterTask for KafkaWriter {
    type Settings = KafkaSettings;
    type Batch = LinesBatch;
    type Shared = Counters;

    /// librdkafka connects in the background, so a broker unreachable at
    /// start is no error (the backlog fills).
    fn start(settings: &KafkaSettings, counters: &Arc<Counters>) -> Option<Self> {
        let producer: FutureProducer = match settings.client_config().create() {
            Ok(producer) => producer,
            Err(error) => {
                // The configuration was checked at start; this is librdkafka
                // failing to start threads or the like: the supervisor sees
                // the sink stop and restarts it.
                tracing::error!(error = %error, "cannot create the kafka producer");
                return None;
            }
        };
        check_at_start(producer.clone(), settings.config.topic.clone(), TOPIC_ROLE);
        Some(KafkaWriter::new(
            settings.clone(),
            producer,
            Arc::clone(counters),
        ))
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command<LinesBatch>>) {
        loop {
            self.hand_over();
            self.publish_depth();
            if self.nothing_pending() {
                self.flush_waiters.answer_all();
            }
            let paused_until = self.paused_until;
            let may_probe = self.probe.is_none() && !self.nothing_pending();
            let next_probe = self.next_probe;
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Batch(batch)) => self.enqueue(batch),
                    Some(Command::Flush(waiter)) => self.flush_waiters.push(waiter),
                    None => return,
                },
                Some((outgoing, report)) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.on_report(outgoing, report);
                }
                () = sleep_until(paused_until), if paused_until.is_some() => {
                    self.paused_until = None;
                }
                () = tokio::time::sleep_until(next_probe), if may_probe => self.start_probe(),
                answer = wait_for(&mut self.probe), if self.probe.is_some() => {
                    self.probe = None;
                    self.on_probe(answer);
                }
            }
        }
    }

    fn health(settings: &KafkaSettings, counters: &Counters) -> SinkHealth {
        let stats = counters.stats();
        let health = SinkHealth::of_backlog(
            stats.backlog,
            settings.config.queue_size,
            stats.dropped,
            stats.last_delivery,
        );
        SinkHealth {
            cannot_deliver: counters.cannot_deliver(),
            metrics: vec![
                ("KafkaBacklog", stats.backlog),
                ("KafkaDroppedLines", stats.dropped),
                ("KafkaDeliveryErrors", stats.delivery_errors),
                ("KafkaMessagesSent", stats.messages_sent),
                ("KafkaMessagesSplit", stats.split),
            ],
            ..health
        }
    }
}

/// One message value and the lines it completes: a chunk cut into several
/// messages counts its lines with its last message, so that they are
/// acknowledged only once every part is delivered.
struct Outgoing {
    payload: Vec<u8>,
    lines: u64,
}

/// The backlog, what librdkafka holds, and the acknowledgements, owned by
/// one task: the KafkaSink's [`WriterTask`].
pub struct KafkaWriter {
    settings: KafkaSettings,
    producer: FutureProducer,
    counters: Arc<Counters>,
    backlog: Backlog,
    /// Messages to hand to librdkafka before the backlog: refused ones and
    /// those it gave up on.
    again: VecDeque<Outgoing>,
    /// Handed to librdkafka, in order; each with its delivery report.
    in_flight: FuturesOrdered<InFlight>,
    in_flight_bytes: usize,
    in_flight_lines: u64,
    /// No message is handed over before this (after a refusal).
    paused_until: Option<tokio::time::Instant>,
    /// Whether the last metadata request was answered: new messages are
    /// handed over only then.
    reachable: bool,
    /// The metadata request under way.
    probe: Option<tokio::task::JoinHandle<TopicState>>,
    next_probe: tokio::time::Instant,
    flush_waiters: FlushWaiters,
    /// Each batch's acknowledgement, answered once its lines are
    /// delivered or dropped.
    acks: LineAcks,
    error_log: LogLimit,
    /// The most payload bytes a message is cut to: the settings', lowered
    /// after a message was refused for its size.
    max_payload: usize,
    /// The refusals for size already logged, once each.
    logged_refusals: Vec<&'static str>,
}

type InFlight = std::pin::Pin<Box<dyn Future<Output = (Outgoing, Result<(), Undelivered>)> + Send>>;

impl KafkaWriter {
    fn new(
        settings: KafkaSettings,
        producer: FutureProducer,
        counters: Arc<Counters>,
    ) -> KafkaWriter {
        KafkaWriter {
            backlog: Backlog::new(settings.config.queue_size),
            max_payload: settings.max_payload(),
            settings,
            producer,
            counters,
            again: VecDeque::new(),
            in_flight: FuturesOrdered::new(),
            in_flight_bytes: 0,
            in_flight_lines: 0,
            paused_until: None,
            reachable: false,
            probe: None,
            next_probe: tokio::time::Instant::now(),
            flush_waiters: FlushWaiters::default(),
            acks: LineAcks::default(),
            error_log: LogLimit::default(),
            logged_refusals: Vec::new(),
        }
    }

    fn nothing_pending(&self) -> bool {
        self.backlog.is_empty() && self.again.is_empty() && self.in_flight.is_empty()
    }

    fn enqueue(&mut self, batch: LinesBatch) {
        let dropped = self
            .acks
            .queue(&mut self.backlog, batch.lines, batch.written);
        if dropped > 0 {
            self.counters
                .dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
            tracing::warn!(
                dropped_lines = dropped,
                queue_size = self.settings.config.queue_size,
                "kafka backlog full: dropped the oldest lines"
            );
        }
    }

    /// Hands messages to librdkafka while the in-flight budget allows.
    fn hand_over(&mut self) {
        while self.reachable
            && self.paused_until.is_none()
            && self.in_flight_bytes < IN_FLIGHT_BYTES
        {
            let Some(outgoing) = self.again.pop_front().or_else(|| self.next_from_backlog()) else {
                return;
            };
            let record = FutureRecord::to(&self.settings.config.topic)
                .key(self.settings.key.as_bytes())
                .payload(outgoing.payload.as_slice());
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.in_flight_bytes += outgoing.payload.len();
                    self.in_flight_lines += outgoing.lines;
                    self.in_flight
                        .push_back(Box::pin(report(outgoing, delivery)));
                }
                Err((KafkaError::MessageProduction(code), _))
                    if refusal::is_too_large(Some(code)) =>
                {
                    self.too_large(outgoing, &code.to_string());
                }
                Err((error, _)) => {
                    if !matches!(
                        error,
                        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
                    ) {
                        self.log_error(
                            "kafka producer refused a message; retrying",
                            &error.to_string(),
                        );
                    }
                    self.again.push_front(outgoing);
                    self.paused_until = Some(tokio::time::Instant::now() + REFUSED_RETRY);
                }
            }
        }
    }

    /// The next messages cut from the backlog's oldest lines.
    fn next_from_backlog(&mut self) -> Option<Outgoing> {
        let max = self.max_payload;
        let chunk = self.backlog.front_chunk(max)?.to_vec();
        self.backlog.consume(chunk.len());
        let lines = memchr::memchr_iter(b'\n', &chunk).count() as u64;
        let formatted = match self.settings.config.format {
            Format::Graphite => chunk,
            Format::Influx => {
                let mut out = Vec::with_capacity(chunk.len());
                let count = to_influx(&chunk, &self.settings.layout, &mut out);
                if count.skipped > 0 {
                    self.log_error(
                        "lines outside the graphite path layout not sent to kafka",
                        &format!("{} lines", count.skipped),
                    );
                }
                out
            }
        };
        let split = split_lines(&formatted, max);
        if split.oversized_lines > 0 {
            self.counters
                .dropped
                .fetch_add(split.oversized_lines, Ordering::Relaxed);
            self.log_error(
                "lines longer than message-max-bytes dropped",
                &format!("{} lines", split.oversized_lines),
            );
        }
        let mut messages: VecDeque<Outgoing> = split
            .messages
            .into_iter()
            .map(|payload| Outgoing {
                payload: payload.to_vec(),
                lines: 0,
            })
            .collect();
        match messages.back_mut() {
            Some(last) => last.lines = lines,
            // Nothing sendable: the lines are done with.
            None => {
                self.acks.left(lines);
                return self.next_from_backlog();
            }
        }
        let first = messages.pop_front();
        for rest in messages.into_iter().rev() {
            self.again.push_front(rest);
        }
        first
    }

    fn on_report(&mut self, outgoing: Outgoing, report: Result<(), Undelivered>) {
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(outgoing.payload.len());
        self.in_flight_lines = self.in_flight_lines.saturating_sub(outgoing.lines);
        match report {
            Ok(()) => {
                self.counters.messages_sent.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .lines_sent
                    .fetch_add(outgoing.lines, Ordering::Relaxed);
                self.counters
                    .last_delivery
                    .store(crate::common::unix_now(), Ordering::Relaxed);
                self.acks.left(outgoing.lines);
            }
            Err(error) if refusal::is_too_large(error.1) => {
                self.counters
                    .delivery_errors
                    .fetch_add(1, Ordering::Relaxed);
                self.too_large(outgoing, &error.0);
            }
            Err(error) => {
                self.counters
                    .delivery_errors
                    .fetch_add(1, Ordering::Relaxed);
                self.log_error("kafka message not delivered; sending it again", &error.0);
                self.again.push_back(outgoing);
                let config = self.settings.client_config();
                if let Some(renewed) =
                    super::settings::renewed_after(&self.producer, &config, error.1)
                {
                    self.producer = renewed;
                }
            }
        }
    }

    /// A message refused for its size: split in two and sent again, or
    /// dropped when it is one line; later messages are cut no larger than
    /// half of it. Never sent again as it is: it would be refused forever.
    fn too_large(&mut self, outgoing: Outgoing, error: &str) {
        match refusal::split(&outgoing.payload) {
            TooLarge::Split(first, second) => {
                // Not on a single line's refusal: the lines around it, as
                // long, would all be dropped as longer than the limit.
                self.max_payload = refusal::lowered_limit(self.max_payload, outgoing.payload.len());
                self.counters.split.fetch_add(1, Ordering::Relaxed);
                self.log_refusal(
                    "split",
                    error,
                    &format!(
                        "kafka message of {} bytes refused for its size (the broker's or the topic's limit is below message-max-bytes?): split in two, and messages cut under {} bytes from now on",
                        outgoing.payload.len(),
                        self.max_payload
                    ),
                );
                let (first, second) = (first.to_vec(), second.to_vec());
                // The last part completes the lines, as when it was cut.
                self.again.push_front(Outgoing {
                    payload: second,
                    lines: outgoing.lines,
                });
                self.again.push_front(Outgoing {
                    payload: first,
                    lines: 0,
                });
            }
            TooLarge::Drop => {
                let lines = memchr::memchr_iter(b'\n', &outgoing.payload).count().max(1);
                self.counters
                    .dropped
                    .fetch_add(lines as u64, Ordering::Relaxed);
                self.log_refusal(
                    "drop",
                    error,
                    &format!(
                        "a line of {} bytes refused for its size by kafka: dropped (counted in KafkaDroppedLines); lower message-max-bytes or raise the topic's max.message.bytes",
                        outgoing.payload.len()
                    ),
                );
                self.acks.left(outgoing.lines);
            }
        }
    }

    /// Logs a refusal for size once per `cause` (each message refused
    /// would otherwise say the same).
    fn log_refusal(&mut self, cause: &'static str, error: &str, what: &str) {
        if self.logged_refusals.contains(&cause) {
            return;
        }
        self.logged_refusals.push(cause);
        tracing::warn!(
            brokers = %self.settings.config.brokers,
            topic = %self.settings.config.topic,
            error,
            "{what}; said once"
        );
    }

    /// Asks the broker for the topic's metadata, off the event loop
    /// (librdkafka's call blocks).
    fn start_probe(&mut self) {
        let producer = self.producer.clone();
        let topic = self.settings.config.topic.clone();
        self.next_probe = tokio::time::Instant::now() + PROBE_INTERVAL;
        self.probe = Some(tokio::task::spawn_blocking(move || {
            TopicState::ask(&producer, &topic, PROBE_INTERVAL)
        }));
    }

    fn on_probe(&mut self, answer: TopicState) {
        let blocker = answer.blocker(&self.settings.config.topic);
        self.counters.cannot_deliver.set(blocker.clone());
        match blocker {
            None => {
                if !self.reachable {
                    tracing::info!(
                        brokers = %self.settings.config.brokers,
                        topic = %self.settings.config.topic,
                        backlog = self.counters.backlog.load(Ordering::Relaxed),
                        "kafka reachable"
                    );
                    self.error_log.reset();
                }
                self.reachable = true;
            }
            Some(error) => {
                if self.reachable || self.error_log.allow(std::time::Instant::now()).is_some() {
                    tracing::warn!(
                        brokers = %self.settings.config.brokers,
                        topic = %self.settings.config.topic,
                        error = %error,
                        backlog = self.counters.backlog.load(Ordering::Relaxed),
                        "kafka cannot take lines; they wait in the backlog"
                    );
                }
                self.reachable = false;
            }
        }
    }

    fn log_error(&mut self, what: &str, error: &str) {
        if let Some(suppressed) = self.error_log.allow(std::time::Instant::now()) {
            tracing::warn!(
                brokers = %self.settings.config.brokers,
                topic = %self.settings.config.topic,
                error,
                similar_lines_suppressed = suppressed,
                "{what}"
            );
        }
    }

    fn publish_depth(&self) {
        let waiting: u64 = self.again.iter().map(|o| o.lines).sum();
        let depth = self.backlog.len() as u64 + waiting + self.in_flight_lines;
        self.counters.backlog.store(depth, Ordering::Relaxed);
    }
}

/// Why a message was not delivered, and librdkafka's code for it.
type Undelivered = (String, Option<RDKafkaErrorCode>);

async fn report(
    outgoing: Outgoing,
    delivery: DeliveryFuture,
) -> (Outgoing, Result<(), Undelivered>) {
    let result = match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, _))) => Err((error.to_string(), error.rdkafka_error_code())),
        Err(_) => Err(("the producer went away before reporting".to_owned(), None)),
    };
    (outgoing, result)
}

/// The answer of the metadata request under way (pending when there is none).
async fn wait_for(probe: &mut Option<tokio::task::JoinHandle<TopicState>>) -> TopicState {
    match probe {
        Some(handle) => handle.await.unwrap_or_else(|error| {
            TopicState::Unreachable(format!("metadata request failed: {error}"))
        }),
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
