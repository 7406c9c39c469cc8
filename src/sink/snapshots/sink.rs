//! The SnapshotsSink actor: each snapshot directory handed over is encoded
//! ([`crate::raw::encode`]) and sent as its parts, keyed by the load
//! balancer, to `snapshots-topic`; it is acknowledged once the broker
//! confirmed every part (`acks=all`, idempotent producer), so the snapshot
//! stays in src-dir until then. One snapshot at a time, oldest first: the
//! pipeline hands over at most `workers`, so what waits here is a few paths.
//!
//! A part the broker did not take (outage, `message-timeout`) sends every
//! part again after [`RETRY_AFTER`] (kept, not encoded again): a consumer may see a part
//! twice and keys parts by (lb, ts, part). A snapshot that cannot be
//! encoded (nothing readable in it) is logged, counted (`BadSnapshots`) and
//! acknowledged: there is nothing to keep it for.
//!
//! A part the broker refuses for its size would be refused again forever:
//! the snapshot is encoded again in parts under half that size, and so are
//! the later ones (logged once); when its parts cannot get that small, the
//! encoder refuses it and it is counted as bad like an unencodable one.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use std::future::Future;
use tokio::sync::{mpsc, oneshot};

use super::SnapshotsSettings;
use super::headers::headers;
use crate::log_limit::LogLimit;
use crate::sink::kafka::refusal;
use crate::sink::kafka::settings::{RECORD_OVERHEAD, client_config, renewed_after};
use crate::sink::kafka::topic::{Blocker, TopicRole, check_at_start};
use crate::sink::messages::{SendLinesAcked, SinkHealth};
use crate::sink::writer_shell::{
    Accept, Command, FlushWaiters, SharedCounters, WriterSink, WriterTask,
};

/// How long after a failed send the snapshot is sent again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Room left in a message for its headers (seven short ones) beside the
/// record overhead and the key.
const HEADERS_ROOM: usize = 512;

/// The snapshots topic in the log lines of the check at start.
const TOPIC_ROLE: TopicRole = TopicRole {
    what: "snapshots topic",
    option: "[kafka] snapshots-topic",
    meanwhile: "snapshots wait in src-dir meanwhile",
};

/// The SnapshotsSink actor: the [`WriterSink`] of a [`SnapshotsWriter`].
pub type SnapshotsSink = WriterSink<SnapshotsWriter>;

/// What the SnapshotsSink's task shares with its actor.
#[derive(Debug, Default)]
pub struct Counters {
    waiting: AtomicU64,
    published: AtomicU64,
    parts_sent: AtomicU64,
    send_errors: AtomicU64,
    bad: AtomicU64,
    last_delivery: AtomicU64,
    /// The last send error while a snapshot waits to be sent again.
    cannot_deliver: Blocker,
}

/// A snapshot to publish.
#[derive(Debug)]
pub struct Job {
    dir: PathBuf,
    ts: u64,
    written: oneshot::Sender<()>,
}

impl Accept<Counters> for Job {
    /// Counted as waiting from the moment it is handed over.
    fn accept(message: SendLinesAcked, counters: &Counters) -> Job {
        counters.waiting.fetch_add(1, Ordering::Relaxed);
        Job {
            // Only the daemon hands over snapshots; a message without a
            // directory is encoded from nothing and counted as bad.
            dir: message.of.dir().map(PathBuf::from).unwrap_or_default(),
            ts: message.ts,
            written: message.written,
        }
    }
}

/// Its health says all.
impl SharedCounters for Counters {
    type Stats = ();

    fn read(&self) {}
}

impl WriterTask for SnapshotsWriter {
    type Settings = SnapshotsSettings;
    type Batch = Job;
    type Shared = Counters;

    /// librdkafka connects in the background.
    fn start(settings: &SnapshotsSettings, counters: &Arc<Counters>) -> Option<Self> {
        // `[kafka]`'s librdkafka configuration, without Kafka-level
        // compression (the parts are zstd-compressed Arrow already; SPEC §5).
        let mut client_config = client_config(&settings.kafka);
        client_config.set("compression.type", "none");
        let producer: FutureProducer = match client_config.create() {
            Ok(producer) => producer,
            Err(error) => {
                tracing::error!(error = %error, "cannot create the kafka producer for raw snapshots");
                return None;
            }
        };
        check_at_start(producer.clone(), settings.topic.clone(), TOPIC_ROLE);
        Some(SnapshotsWriter {
            settings: Arc::new(settings.clone()),
            producer,
            counters: Arc::clone(counters),
            queue: VecDeque::new(),
            flush_waiters: FlushWaiters::default(),
            error_log: LogLimit::default(),
            encoded: None,
            client_config,
            max_bytes: None,
            size_refusal_logged: false,
        })
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command<Job>>) {
        let mut current: Option<Publishing> = None;
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            if self.queue.is_empty() {
                self.flush_waiters.answer_all();
            }
            let due = retry_at.is_none_or(|at| at <= tokio::time::Instant::now());
            if current.is_none() && due {
                retry_at = None;
                if let Some(job) = self.queue.front() {
                    current = Some(Box::pin(publish(
                        self.producer.clone(),
                        Arc::clone(&self.settings),
                        job.dir.clone(),
                        job.ts,
                        self.encoded.take(),
                        self.max_bytes.unwrap_or_else(|| max_bytes(&self.settings)),
                    )));
                }
            }
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Batch(job)) => self.queue.push_back(job),
                    Some(Command::Flush(waiter)) => self.flush_waiters.push(waiter),
                    None => return,
                },
                outcome = async {
                    match current.as_mut() {
                        Some(publishing) => publishing.await,
                        None => std::future::pending().await,
                    }
                } => {
                    current = None;
                    if let Some(again) = self.ended(outcome) {
                        retry_at = Some(tokio::time::Instant::now() + again);
                    }
                }
                () = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)), if retry_at.is_some() && current.is_none() => {}
            }
        }
    }

    /// Its backlog counts snapshots, not lines; a snapshot that cannot be
    /// encoded counts as dropped.
    fn health(settings: &SnapshotsSettings, c: &Counters) -> SinkHealth {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let health = SinkHealth::of_backlog(
            load(&c.waiting),
            settings.queue_size,
            load(&c.bad),
            Some(load(&c.last_delivery)).filter(|t| *t > 0),
        );
        SinkHealth {
            cannot_deliver: c.cannot_deliver.get().filter(|_| load(&c.waiting) > 0),
            metrics: vec![
                ("SnapshotsWaiting", load(&c.waiting)),
                ("SnapshotsPublished", load(&c.published)),
                ("SnapshotPartsSent", load(&c.parts_sent)),
                ("SnapshotSendErrors", load(&c.send_errors)),
                ("BadSnapshots", load(&c.bad)),
            ],
            ..health
        }
    }
}

/// A snapshot's parts, kept while it is sent again: a long outage must
/// not encode the same snapshot over and over.
type Parts = Arc<Vec<Vec<u8>>>;

/// How publishing one snapshot ended.
enum Outcome {
    /// The broker has every part.
    Published { parts: usize },
    /// Not every part was taken: send them all again later.
    Retry(String, Option<rdkafka::types::RDKafkaErrorCode>, Parts),
    /// It cannot be encoded: nothing to send.
    Bad(String),
}

type Publishing = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// The queue of snapshots and the one being published, owned by one task:
/// the SnapshotsSink's [`WriterTask`].
pub struct SnapshotsWriter {
    settings: Arc<SnapshotsSettings>,
    producer: FutureProducer,
    counters: Arc<Counters>,
    queue: VecDeque<Job>,
    flush_waiters: FlushWaiters,
    error_log: LogLimit,
    /// The parts of the snapshot at the front, once encoded.
    encoded: Option<Parts>,
    /// For a new producer after a fatal error.
    client_config: rdkafka::ClientConfig,
    /// The limit parts are encoded under, once a part was refused for its
    /// size; `None`: `message-max-bytes` less the room for the record.
    max_bytes: Option<usize>,
    size_refusal_logged: bool,
}

impl SnapshotsWriter {
    /// Acknowledges the snapshot at the front, or says when to try it again.
    fn ended(&mut self, outcome: Outcome) -> Option<Duration> {
        let c = &self.counters;
        match outcome {
            Outcome::Published { parts } => {
                c.published.fetch_add(1, Ordering::Relaxed);
                c.parts_sent.fetch_add(parts as u64, Ordering::Relaxed);
                c.last_delivery
                    .store(crate::common::unix_now(), Ordering::Relaxed);
                c.cannot_deliver.set(None);
                self.error_log.reset();
            }
            Outcome::Bad(error) => {
                c.bad.fetch_add(1, Ordering::Relaxed);
                let dir = self.queue.front().map(|job| job.dir.display().to_string());
                tracing::error!(
                    dir,
                    error,
                    "snapshot cannot be encoded for the snapshots topic; skipped"
                );
            }
            Outcome::Retry(error, code, parts) if refusal::is_too_large(code) => {
                c.send_errors.fetch_add(1, Ordering::Relaxed);
                let largest = parts.iter().map(Vec::len).max().unwrap_or(0);
                let limit = self.max_bytes.unwrap_or_else(|| max_bytes(&self.settings));
                let lowered = refusal::lowered_limit(limit, largest);
                self.max_bytes = Some(lowered);
                if let Some(renewed) = renewed_after(&self.producer, &self.client_config, code) {
                    self.producer = renewed;
                }
                if !self.size_refusal_logged {
                    self.size_refusal_logged = true;
                    tracing::warn!(topic = %self.settings.topic, error, part_bytes = largest, "a snapshot part refused for its size (the topic's max.message.bytes below message-max-bytes?): snapshots encoded in parts under {lowered} bytes from now on; said once");
                }
                // Encoded again under the new limit, at once.
                return Some(Duration::ZERO);
            }
            Outcome::Retry(error, code, parts) => {
                self.encoded = Some(parts);
                c.cannot_deliver
                    .set(Some(format!("snapshot not taken by the broker: {error}")));
                if let Some(renewed) = renewed_after(&self.producer, &self.client_config, code) {
                    self.producer = renewed;
                }
                c.send_errors.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = self.error_log.allow(std::time::Instant::now()) {
                    let dir = self.queue.front().map(|job| job.dir.display().to_string());
                    tracing::warn!(dir, error, suppressed, topic = %self.settings.topic, "snapshot not taken by the broker; sending it again");
                }
                return Some(RETRY_AFTER);
            }
        }
        if let Some(job) = self.queue.pop_front() {
            c.waiting.fetch_sub(1, Ordering::Relaxed);
            let _ = job.written.send(());
        }
        None
    }
}

/// Encodes the snapshot in `dir` (unless its parts are at hand) and sends
/// its parts; resolves once the broker confirmed all of them or one failed.
async fn publish(
    producer: FutureProducer,
    settings: Arc<SnapshotsSettings>,
    dir: PathBuf,
    ts: u64,
    encoded: Option<Parts>,
    max_bytes: usize,
) -> Outcome {
    let encoded = match encoded {
        Some(parts) => parts,
        None => match encode(&settings, dir, max_bytes).await {
            Ok(parts) => parts,
            Err(error) => return Outcome::Bad(error),
        },
    };
    let parts = encoded.len();
    let sends = encoded.iter().enumerate().map(|(part, payload)| {
        let mut message_headers = OwnedHeaders::new();
        for (key, value) in headers(
            &settings.lb,
            &settings.cluster,
            ts,
            settings.interval,
            part,
            parts,
        ) {
            message_headers = message_headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        let record = FutureRecord::to(&settings.topic)
            .key(settings.lb.as_bytes())
            .payload(payload.as_slice())
            .headers(message_headers);
        producer.send(record, Timeout::After(settings.kafka.message_timeout))
    });
    let failed = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .find_map(|delivered| delivered.err().map(|(error, _)| error));
    match failed {
        Some(error) => Outcome::Retry(error.to_string(), error.rdkafka_error_code(), encoded),
        None => Outcome::Published { parts },
    }
}

/// The most bytes a part is encoded under: `message-max-bytes` less the
/// record, its headers and key.
fn max_bytes(settings: &SnapshotsSettings) -> usize {
    settings
        .kafka
        .message_max_bytes
        .saturating_sub(RECORD_OVERHEAD + HEADERS_ROOM + settings.lb.len())
        .max(1)
}

/// The parts of the snapshot in `dir`, each under `max_bytes`, encoded off
/// the event loop; its warnings logged.
async fn encode(
    settings: &SnapshotsSettings,
    dir: PathBuf,
    max_bytes: usize,
) -> Result<Parts, String> {
    let (fields, codec) = (settings.fields, settings.codec);
    let encoded = tokio::task::spawn_blocking(move || {
        crate::raw::encode_with(&dir, max_bytes, fields, codec)
    })
    .await;
    let encoded = match encoded {
        Ok(Ok(encoded)) => encoded,
        Ok(Err(error)) => return Err(error.to_string()),
        Err(error) => return Err(format!("encoding failed: {error}")),
    };
    for warning in &encoded.warnings {
        tracing::warn!("{warning}");
    }
    Ok(Arc::new(encoded.parts))
}
