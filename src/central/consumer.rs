//! The consumer of the snapshots topic: librdkafka's consumer in the group
//! `[central] group-id`, polled on a thread of its own (a poll blocks, and
//! rebalance callbacks run inside it), talking to Central through two
//! channels: [`Event`]s out (messages, assignments, revocations, in the
//! order they happened), [`Command`]s in (pause, resume, commit, stop).
//!
//! Back-pressure: events go into a bounded channel. What does not fit is
//! held here, in order, and the assignment is paused until Central took it
//! all — besides when Central asks for a pause (a sink's backlog is full,
//! too many snapshots in flight). Kafka is the buffer.
//!
//! Commits are made only for partitions in the current assignment, so a
//! commit decided before a revocation never lands after it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::windows::ClusterState;
use crate::config::CentralSettings;

/// How long one poll waits for a message: also how soon a command (a
/// resume) is seen, which the processors may be waiting for.
const POLL: Duration = Duration::from_millis(20);

/// Bytes librdkafka fetches ahead per consumer (its default is 64 MiB):
/// what is fetched but not handed over is memory, and a pause drops it.
const PREFETCH_KBYTES: &str = "16384";

/// Bytes fetched per partition per request (librdkafka's default is 1 MiB,
/// one raw snapshot part: a partition would give one part per round trip).
const PARTITION_FETCH_BYTES: &str = "8388608";

/// How long the broker may hold a fetch waiting for data (librdkafka's
/// default is 500 ms). tansu 0.6.0 holds every fetch that long even with
/// data to give, which capped central at ~6 snapshots a second on
/// `benches/central_throughput.rs` whatever the CPU; on Kafka it only
/// matters when the topic is idle (a few more empty fetches a second).
const FETCH_WAIT_MS: &str = "50";

/// One message, copied out of librdkafka.
#[derive(Debug, Clone)]
pub struct Received {
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The message's timestamp (create or append time), epoch ms.
    pub timestamp_ms: Option<i64>,
    /// Every header, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The value; `None` for a message without one.
    pub value: Option<Vec<u8>>,
}

impl Received {
    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_slice())
    }
}

/// The state topic read to its end ([`super::state::read_all`]).
pub type Restored = BTreeMap<String, ClusterState>;

/// Reads the state at each assignment, on the consumer's thread, before
/// any message of the new assignment is handed over.
pub type RestoreFn = Arc<dyn Fn() -> Result<Restored, String> + Send + Sync>;

/// What a consumer does besides consuming.
#[derive(Clone, Default)]
pub struct ConsumerOptions {
    /// Read this state at each assignment (stage 2).
    pub restore: Option<RestoreFn>,
    /// Say when a partition reaches or leaves its high watermark (stage 2:
    /// wall-clock rules apply only there).
    pub track_caught_up: bool,
}

/// What the consumer tells Central, in the order it happened.
#[derive(Debug)]
pub enum Event {
    /// These partitions are ours now; with the state read for them when
    /// the consumer restores one.
    Assigned {
        /// The partitions.
        partitions: Vec<i32>,
        /// The state read at the assignment.
        restored: Option<Restored>,
    },
    /// A partition reached (`true`) or left its high watermark.
    CaughtUp {
        /// The partition.
        partition: i32,
        /// At the high watermark.
        caught_up: bool,
    },
    /// These partitions are ours no more: drop their work, commit nothing
    /// for them.
    Revoked(Vec<i32>),
    /// A message.
    Message(Received),
}

/// What Central tells the consumer.
#[derive(Debug)]
pub enum Command {
    /// Stop fetching (a sink's backlog is full, or enough is in flight).
    Pause,
    /// Fetch again.
    Resume,
    /// Commit these (partition, next offset) pairs, for the partitions
    /// still assigned.
    Commit(Vec<(i32, i64)>),
    /// Leave the group and end; answered once done.
    Stop(std_mpsc::Sender<()>),
}

/// Why the consumer could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// librdkafka refused the configuration or the subscription.
    #[error("cannot consume {topic}: {source}")]
    Kafka {
        /// The snapshots topic.
        topic: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The thread could not be started.
    #[error("cannot start the consumer thread: {0}")]
    Thread(std::io::Error),
}

/// Events waiting for room in the channel, shared with the rebalance
/// callbacks (they run inside `poll`, on the consumer's thread).
#[derive(Default)]
struct Outbox {
    held: VecDeque<Event>,
    /// The assignment changed: a pause must be applied to it again.
    reassigned: bool,
    /// The state could not be read at an assignment: the thread ends (a
    /// new consumer tries again after a backoff).
    failed: Option<String>,
}

struct CentralContext {
    outbox: Mutex<Outbox>,
    restore: Option<RestoreFn>,
    /// For the log: central has two consumers.
    topic: String,
}

/// Attempts at reading the state at one assignment.
const RESTORE_ATTEMPTS: u32 = 3;

impl CentralContext {
    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        // A panic while holding it would have ended the thread: the data
        // is a queue, still usable.
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ClientContext for CentralContext {}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

impl ConsumerContext for CentralContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = partitions(tpl);
            tracing::info!(topic = %self.topic, partitions = ?revoked, "partitions revoked");
            let mut outbox = self.outbox();
            // Not handed over yet: never will be.
            outbox.held.retain(
                |event| !matches!(event, Event::Message(m) if revoked.contains(&m.partition)),
            );
            outbox.held.push_back(Event::Revoked(revoked));
            outbox.reassigned = true;
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let assigned = partitions(tpl);
            tracing::info!(topic = %self.topic, partitions = ?assigned, "partitions assigned");
            let mut restored = None;
            if let Some(restore) = &self.restore {
                let mut error = String::new();
                for attempt in 1..=RESTORE_ATTEMPTS {
                    match restore() {
                        Ok(state) => {
                            restored = Some(state);
                            break;
                        }
                        Err(why) => {
                            tracing::warn!(attempt, error = %why, "cannot read the state");
                            error = why;
                        }
                    }
                }
                if restored.is_none() {
                    self.outbox().failed = Some(error);
                    return;
                }
            }
            let mut outbox = self.outbox();
            outbox.held.push_back(Event::Assigned {
                partitions: assigned,
                restored,
            });
            outbox.reassigned = true;
        }
    }
}

/// The running consumer thread.
pub struct ConsumerHandle {
    commands: std_mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl ConsumerHandle {
    /// `false` once the thread ended (it panicked, or Central went away).
    pub fn alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Hands `command` to the thread (lost if it ended: then so did its
    /// assignment).
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// Leaves the group and waits, on a blocking thread, at most `timeout`.
    pub async fn stop(mut self, timeout: Duration) {
        let (done, finished) = std_mpsc::channel();
        self.send(Command::Stop(done));
        let thread = self.thread.take();
        let waited = tokio::task::spawn_blocking(move || {
            if finished.recv_timeout(timeout).is_ok()
                && let Some(thread) = thread
            {
                let _ = thread.join();
            }
        });
        let _ = waited.await;
    }
}

impl Drop for ConsumerHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // Not waited for: the thread leaves the group by itself.
            let (done, _) = std_mpsc::channel();
            self.send(Command::Stop(done));
        }
    }
}

/// The consumer's librdkafka configuration in consumer group `group`:
/// brokers and the user's `librdkafka.<name>` options, then what central's
/// delivery guarantee needs, which no option may change (commits are ours,
/// after delivery).
pub fn client_config(settings: &CentralSettings, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.kafka.brokers)
        .set("queued.max.messages.kbytes", PREFETCH_KBYTES)
        .set("max.partition.fetch.bytes", PARTITION_FETCH_BYTES)
        .set("fetch.wait.max.ms", FETCH_WAIT_MS);
    for (name, value) in &settings.kafka.librdkafka {
        config.set(name, value);
    }
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    config
}

/// Subscribes to `topic` in consumer group `group` and starts polling on a
/// new thread; events go to `events` (bounded: its capacity is the
/// back-pressure).
pub fn start(
    settings: &CentralSettings,
    group: &str,
    topic: &str,
    options: ConsumerOptions,
    events: mpsc::Sender<Event>,
) -> Result<ConsumerHandle, ConsumerError> {
    let topic = topic.to_owned();
    let kafka = |source| ConsumerError::Kafka {
        topic: topic.clone(),
        source,
    };
    let context = CentralContext {
        outbox: Mutex::new(Outbox::default()),
        restore: options.restore,
        topic: topic.clone(),
    };
    let consumer: BaseConsumer<CentralContext> = client_config(settings, group)
        .create_with_context(context)
        .map_err(kafka)?;
    consumer.subscribe(&[&topic]).map_err(kafka)?;
    let (commands, orders) = std_mpsc::channel();
    let consumer = Arc::new(consumer);
    let thread = std::thread::Builder::new()
        .name("central-consumer".into())
        .spawn(move || {
            let mut caught_up = options.track_caught_up.then(CaughtUp::default);
            poll_loop(&consumer, &topic, &orders, &events, caught_up.as_mut())
        })
        .map_err(ConsumerError::Thread)?;
    Ok(ConsumerHandle {
        commands,
        thread: Some(thread),
    })
}

/// How old a high watermark may be before it is asked for again.
const WATERMARK_AGE: Duration = Duration::from_secs(1);

/// Per partition, whether it was at its high watermark when last looked,
/// and the high watermark last heard (asked for at most once a
/// [`WATERMARK_AGE`]: each is a round trip to the broker).
#[derive(Default)]
struct CaughtUp {
    at_end: BTreeMap<i32, bool>,
    high: BTreeMap<i32, (i64, std::time::Instant)>,
}

impl CaughtUp {
    fn high(
        &mut self,
        consumer: &BaseConsumer<CentralContext>,
        topic: &str,
        partition: i32,
        next: i64,
    ) -> Option<i64> {
        match self.high.get(&partition) {
            // Behind a watermark already heard: behind (it only grows).
            Some((high, _)) if next < *high => return Some(*high),
            Some((high, at)) if at.elapsed() < WATERMARK_AGE => return Some(*high),
            _ => {}
        }
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, WATERMARK_AGE)
            .ok()?;
        self.high
            .insert(partition, (high, std::time::Instant::now()));
        Some(high)
    }

    /// `partition`, whose next offset is `next`, is or is not at its high
    /// watermark: an event when that changed.
    fn look(
        &mut self,
        consumer: &BaseConsumer<CentralContext>,
        topic: &str,
        partition: i32,
        next: i64,
    ) -> Option<Event> {
        let at_end = next >= self.high(consumer, topic, partition, next)?;
        (self.at_end.insert(partition, at_end) != Some(at_end)).then_some(Event::CaughtUp {
            partition,
            caught_up: at_end,
        })
    }

    /// Nothing came in a poll: every partition behind is looked at again.
    fn idle(&mut self, consumer: &BaseConsumer<CentralContext>, topic: &str) -> Vec<Event> {
        let Ok(positions) = consumer.position() else {
            return Vec::new();
        };
        positions
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(next) if self.at_end.get(&e.partition()) != Some(&true) => {
                    self.look(consumer, topic, e.partition(), next)
                }
                _ => None,
            })
            .collect()
    }
}

fn poll_loop(
    consumer: &BaseConsumer<CentralContext>,
    topic: &str,
    orders: &std_mpsc::Receiver<Command>,
    events: &mpsc::Sender<Event>,
    mut caught_up: Option<&mut CaughtUp>,
) {
    let mut asked_to_pause = false;
    let mut paused = false;
    loop {
        loop {
            match orders.try_recv() {
                Ok(Command::Pause) => asked_to_pause = true,
                Ok(Command::Resume) => asked_to_pause = false,
                Ok(Command::Commit(offsets)) => commit(consumer, &offsets),
                Ok(Command::Stop(done)) => {
                    // Unsubscribing revokes the assignment; dropping the
                    // consumer then leaves the group.
                    consumer.unsubscribe();
                    let _ = done.send(());
                    return;
                }
                Err(std_mpsc::TryRecvError::Empty) => break,
                Err(std_mpsc::TryRecvError::Disconnected) => return,
            }
        }
        let (backed_up, reassigned) = {
            let mut outbox = consumer.context().outbox();
            if let Some(why) = outbox.failed.take() {
                tracing::error!(error = %why, "cannot read the state at an assignment; the consumer stops and is restarted");
                return;
            }
            while let Some(event) = outbox.held.pop_front() {
                match events.try_send(event) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(event)) => {
                        outbox.held.push_front(event);
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            (
                !outbox.held.is_empty(),
                std::mem::take(&mut outbox.reassigned),
            )
        };
        let pause = asked_to_pause || backed_up;
        if pause != paused || (pause && reassigned) {
            set_paused(consumer, pause);
            paused = pause;
        }
        match consumer.poll(POLL) {
            Some(Ok(message)) => {
                let turned = caught_up.as_deref_mut().and_then(|c| {
                    c.look(consumer, topic, message.partition(), message.offset() + 1)
                });
                let received = Received {
                    partition: message.partition(),
                    offset: message.offset(),
                    timestamp_ms: message.timestamp().to_millis(),
                    headers: message
                        .headers()
                        .map(|headers| {
                            headers
                                .iter()
                                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    value: message.payload().map(<[u8]>::to_vec),
                };
                let mut outbox = consumer.context().outbox();
                outbox.held.push_back(Event::Message(received));
                // After the message: it is the one that reached the end.
                outbox.held.extend(turned);
            }
            Some(Err(error)) => {
                tracing::warn!(error = %error, "kafka consumer error");
            }
            None => {
                if let Some(c) = caught_up.as_deref_mut() {
                    let turned = c.idle(consumer, topic);
                    consumer.context().outbox().held.extend(turned);
                }
            }
        }
    }
}

fn set_paused(consumer: &BaseConsumer<CentralContext>, pause: bool) {
    let assignment = match consumer.assignment() {
        Ok(assignment) => assignment,
        Err(error) => {
            tracing::warn!(error = %error, "cannot read the assignment to pause or resume it");
            return;
        }
    };
    let done = if pause {
        consumer.pause(&assignment)
    } else {
        consumer.resume(&assignment)
    };
    match done {
        Ok(()) => tracing::debug!(pause, "consumption paused or resumed"),
        Err(error) => tracing::warn!(error = %error, pause, "cannot pause or resume"),
    }
}

fn commit(consumer: &BaseConsumer<CentralContext>, offsets: &[(i32, i64)]) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let mut tpl = TopicPartitionList::new();
    for element in assignment.elements() {
        if let Some((_, offset)) = offsets.iter().find(|(p, _)| *p == element.partition()) {
            let _ = tpl.add_partition_offset(
                element.topic(),
                element.partition(),
                Offset::Offset(*offset),
            );
        }
    }
    if tpl.count() == 0 {
        return;
    }
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => tracing::debug!(offsets = ?offsets, "offsets committed"),
        // Committed again with the next one: offsets only grow.
        Err(error) => {
            tracing::warn!(error = %error, "cannot commit offsets; trying with the next commit")
        }
    }
}
