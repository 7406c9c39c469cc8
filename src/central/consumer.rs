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

use std::collections::VecDeque;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;

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

/// One message of the snapshots topic, copied out of librdkafka.
#[derive(Debug, Clone)]
pub struct Received {
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
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

/// What the consumer tells Central, in the order it happened.
#[derive(Debug)]
pub enum Event {
    /// These partitions are ours now.
    Assigned(Vec<i32>),
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
}

struct CentralContext {
    outbox: Mutex<Outbox>,
}

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
            tracing::info!(partitions = ?revoked, "partitions revoked");
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
            tracing::info!(partitions = ?assigned, "partitions assigned");
            let mut outbox = self.outbox();
            outbox.held.push_back(Event::Assigned(assigned));
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

/// The consumer's librdkafka configuration: brokers and the user's
/// `librdkafka.<name>` options, then what central's delivery guarantee
/// needs, which no option may change (commits are ours, after delivery).
pub fn client_config(settings: &CentralSettings) -> ClientConfig {
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
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    config
}

/// Subscribes to the snapshots topic and starts polling on a new thread;
/// events go to `events` (bounded: its capacity is the back-pressure).
pub fn start(
    settings: &CentralSettings,
    events: mpsc::Sender<Event>,
) -> Result<ConsumerHandle, ConsumerError> {
    let topic = settings.snapshots_topic.clone();
    let kafka = |source| ConsumerError::Kafka {
        topic: topic.clone(),
        source,
    };
    let context = CentralContext {
        outbox: Mutex::new(Outbox::default()),
    };
    let consumer: BaseConsumer<CentralContext> = client_config(settings)
        .create_with_context(context)
        .map_err(kafka)?;
    consumer.subscribe(&[&topic]).map_err(kafka)?;
    let (commands, orders) = std_mpsc::channel();
    let consumer = Arc::new(consumer);
    let thread = std::thread::Builder::new()
        .name("central-consumer".into())
        .spawn(move || poll_loop(&consumer, &orders, &events))
        .map_err(ConsumerError::Thread)?;
    Ok(ConsumerHandle {
        commands,
        thread: Some(thread),
    })
}

fn poll_loop(
    consumer: &BaseConsumer<CentralContext>,
    orders: &std_mpsc::Receiver<Command>,
    events: &mpsc::Sender<Event>,
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
                let received = Received {
                    partition: message.partition(),
                    offset: message.offset(),
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
                consumer
                    .context()
                    .outbox()
                    .held
                    .push_back(Event::Message(received));
            }
            Some(Err(error)) => {
                tracing::warn!(error = %error, "kafka consumer error");
            }
            None => {}
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
