//! The GraphiteSink actor (SPEC §5): one long-lived TCP connection to the
//! carbon relay, a bounded FIFO [`Backlog`] in front of it, reconnects on the
//! [`RetryPolicy`] schedule — and none of it ever blocks the sender: a
//! [`SendLines`] is queued and answered at once.
//!
//! Delivery is at-least-once: plaintext carbon never acknowledges, so bytes
//! the kernel accepted may still sit unread in socket buffers when a
//! connection breaks or stalls. The last `replay-bytes` written (default
//! [`REPLAY_BYTES`]) are kept
//! and sent again, whole lines, in front of the backlog on the next
//! connection. Graphite stores one value per path and timestamp, so a
//! duplicate overwrites the same point; a lost line would be a gap. Lines
//! dropped because the backlog was full are counted and logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::backlog::Backlog;
use super::chunk_pool::ChunkPool;
use super::chunks::LineChunks;
use super::retry::{RetryPolicy, RetryState};
use crate::config::GraphiteConfig;

/// Bytes handed to one `write` call: large enough that a million lines take a
/// few hundred syscalls, small enough to resend cheaply after a broken
/// connection. The Processor's chunks are of this size, so that each is
/// written as it is.
const CHUNK_BYTES: usize = super::chunks::LINE_CHUNK;

/// Default of `[graphite] replay-bytes`: bytes already written that are sent
/// again after a broken connection — more than a socket's send buffer plus
/// the peer's receive buffer hold (4 + 6 MiB at Linux's defaults), so a
/// stalled peer cannot swallow lines unseen.
pub const REPLAY_BYTES: usize = 16 * 1024 * 1024;

/// Where and how the sink connects.
#[derive(Debug, Clone)]
pub struct GraphiteSettings {
    /// Relay host.
    pub host: String,
    /// Relay port.
    pub port: u16,
    /// Bound on one connection attempt.
    pub connect_timeout: Duration,
    /// A write making no progress for this long replaces the connection.
    pub write_timeout: Duration,
    /// Reconnect schedule.
    pub policy: RetryPolicy,
    /// Backlog capacity in lines.
    pub queue_size: usize,
    /// Bytes kept for resending after a broken connection.
    pub replay_bytes: usize,
}

impl GraphiteSettings {
    /// The settings of `[graphite]`.
    pub fn from_config(graphite: &GraphiteConfig) -> GraphiteSettings {
        GraphiteSettings {
            host: graphite.server.clone(),
            port: graphite.port,
            connect_timeout: graphite.connect_timeout,
            write_timeout: graphite.write_timeout,
            policy: RetryPolicy::from_config(graphite),
            queue_size: graphite.queue_size,
            replay_bytes: graphite.replay_bytes,
        }
    }
}

/// Counters shared between the writer and whoever reports on it.
#[derive(Debug, Default)]
pub struct SinkCounters {
    backlog: AtomicU64,
    dropped: AtomicU64,
    sent: AtomicU64,
    reconnects: AtomicU64,
    connected: AtomicBool,
    /// Epoch seconds of the last write a connection accepted (0 = never).
    last_write_ok: AtomicU64,
}

/// A snapshot of the sink's counters (self metrics, status file, logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, MessageResponse)]
pub struct SinkStats {
    /// Lines waiting (backlog plus the chunk being written).
    pub backlog: u64,
    /// Lines dropped because the backlog was full, since start.
    pub dropped: u64,
    /// Lines written to a connection, since start.
    pub sent: u64,
    /// Connections established after the first one.
    pub reconnects: u64,
    /// Whether a connection is up now.
    pub connected: bool,
    /// Epoch seconds of the last write a connection accepted.
    pub last_write_ok: Option<u64>,
}

impl SinkCounters {
    fn stats(&self) -> SinkStats {
        SinkStats {
            backlog: self.backlog.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            last_write_ok: Some(self.last_write_ok.load(Ordering::Relaxed)).filter(|t| *t > 0),
        }
    }
}

/// Queue these newline-terminated lines for Graphite.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SendLines(pub Vec<u8>);

/// Queue these lines and report, on `written`, once every one of them has
/// been written to a connection (handed to the kernel) or dropped by the
/// backlog: only then may the snapshot they came from be deleted. If the
/// sink dies first, `written` is dropped unanswered and the caller keeps
/// the snapshot to process again (at-least-once across restarts).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SendLinesAcked {
    /// Newline-terminated lines.
    pub lines: LineChunks,
    /// Answered once they are written or dropped.
    pub written: oneshot::Sender<()>,
}

/// Resolve once everything queued so far is written, or after `timeout`;
/// answers the lines still waiting (0 = all flushed).
#[derive(Debug, Message)]
#[rtype(result = "u64")]
pub struct Flush {
    /// How long to wait at most.
    pub timeout: Duration,
}

/// Ask for the counters.
#[derive(Debug, Message)]
#[rtype(result = "SinkStats")]
pub struct GetSinkStats;

enum Command {
    Lines(LineChunks, Option<oneshot::Sender<()>>),
    Flush(oneshot::Sender<()>),
}

/// The GraphiteSink actor.
pub struct GraphiteSink {
    settings: GraphiteSettings,
    counters: Arc<SinkCounters>,
    commands: Option<mpsc::UnboundedSender<Command>>,
    chunks: Option<Arc<ChunkPool>>,
}

impl GraphiteSink {
    /// A sink for `settings`; it connects when it has lines to send.
    pub fn new(settings: GraphiteSettings) -> GraphiteSink {
        GraphiteSink {
            settings,
            counters: Arc::new(SinkCounters::default()),
            commands: None,
            chunks: None,
        }
    }

    /// Gives the chunks it no longer needs (sent, and out of the replay
    /// window) back to `pool`, instead of freeing them.
    pub fn recycling(mut self, pool: Arc<ChunkPool>) -> GraphiteSink {
        self.chunks = Some(pool);
        self
    }
}

impl Actor for GraphiteSink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The channel is unbounded on purpose: the bound is the backlog's,
        // applied by the writer as soon as a batch arrives.
        let (sender, receiver) = mpsc::unbounded_channel();
        self.commands = Some(sender);
        let writer = Writer::new(
            self.settings.clone(),
            Arc::clone(&self.counters),
            self.chunks.clone(),
        );
        ctx.spawn(writer.run(receiver).into_actor(self));
    }
}

impl Handler<SendLines> for GraphiteSink {
    type Result = ();

    fn handle(&mut self, SendLines(lines): SendLines, _: &mut Context<Self>) {
        if let Some(commands) = &self.commands {
            // The writer lives as long as this actor's context; a send error
            // means both are stopping.
            let _ = commands.send(Command::Lines(lines.into(), None));
        }
    }
}

impl Handler<SendLinesAcked> for GraphiteSink {
    type Result = ();

    fn handle(&mut self, message: SendLinesAcked, _: &mut Context<Self>) {
        if let Some(commands) = &self.commands {
            let _ = commands.send(Command::Lines(message.lines, Some(message.written)));
        }
    }
}

impl Handler<Flush> for GraphiteSink {
    type Result = ResponseFuture<u64>;

    fn handle(&mut self, flush: Flush, _: &mut Context<Self>) -> Self::Result {
        let (done, flushed) = oneshot::channel();
        if let Some(commands) = &self.commands {
            let _ = commands.send(Command::Flush(done));
        }
        let counters = Arc::clone(&self.counters);
        Box::pin(async move {
            let _ = tokio::time::timeout(flush.timeout, flushed).await;
            counters.backlog.load(Ordering::Relaxed)
        })
    }
}

impl Handler<GetSinkStats> for GraphiteSink {
    type Result = SinkStats;

    fn handle(&mut self, _: GetSinkStats, _: &mut Context<Self>) -> SinkStats {
        self.counters.stats()
    }
}

#[cfg(any(test, feature = "fault-injection"))]
impl Handler<crate::supervisor::Crash> for GraphiteSink {
    type Result = ();

    fn handle(&mut self, _: crate::supervisor::Crash, _: &mut Context<Self>) {
        panic!("injected graphite sink crash");
    }
}

/// The connection and the backlog, owned by one task.
struct Writer {
    settings: GraphiteSettings,
    counters: Arc<SinkCounters>,
    backlog: Backlog,
    /// Bytes taken from the backlog for the current connection.
    inflight: Vec<u8>,
    /// How much of `inflight` the current connection accepted.
    written: usize,
    /// Fully written chunks, oldest first, kept for resending.
    replay: std::collections::VecDeque<Vec<u8>>,
    replay_bytes: usize,
    inflight_lines: u64,
    /// When the current connection last accepted bytes (or got a new chunk).
    last_progress: Instant,
    connection: Option<TcpStream>,
    ever_connected: bool,
    retry: RetryState,
    next_attempt: Instant,
    flush_waiters: Vec<oneshot::Sender<()>>,
    /// Lines ever enqueued (the sequence number of the newest line).
    enqueued: u64,
    /// Lines of `enqueued` written at least once or dropped.
    consumed: u64,
    /// Lines put back in front of the backlog after a broken connection:
    /// already counted in `consumed`, so their next write or drop is not.
    recount_debt: u64,
    /// Acknowledgements waiting for `consumed` to reach their sequence number.
    acks: std::collections::VecDeque<(u64, oneshot::Sender<()>)>,
    /// Where chunks leaving the replay window go (else they are freed).
    chunks: Option<Arc<ChunkPool>>,
}

impl Writer {
    fn new(
        settings: GraphiteSettings,
        counters: Arc<SinkCounters>,
        chunks: Option<Arc<ChunkPool>>,
    ) -> Writer {
        Writer {
            chunks,
            backlog: Backlog::new(settings.queue_size),
            settings,
            counters,
            inflight: Vec::new(),
            written: 0,
            replay: std::collections::VecDeque::new(),
            replay_bytes: 0,
            inflight_lines: 0,
            last_progress: Instant::now(),
            connection: None,
            ever_connected: false,
            retry: RetryState::default(),
            next_attempt: Instant::now(),
            flush_waiters: Vec::new(),
            enqueued: 0,
            consumed: 0,
            recount_debt: 0,
            acks: std::collections::VecDeque::new(),
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            self.refill();
            self.publish_depth();
            if self.inflight.is_empty() && self.backlog.is_empty() {
                for waiter in self.flush_waiters.drain(..) {
                    let _ = waiter.send(());
                }
            }
            let has_data = !self.inflight.is_empty() || !self.backlog.is_empty();
            let writing = self.connection.is_some() && !self.inflight.is_empty();
            let progress_deadline = self.last_progress + self.settings.write_timeout;
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Lines(lines, written)) => self.enqueue(lines, written),
                    Some(Command::Flush(waiter)) => self.flush_waiters.push(waiter),
                    None => return,
                },
                connected = connect_when_due(&self.settings, self.next_attempt),
                    if has_data && self.connection.is_none() => self.on_connect(connected),
                written = write_some(self.connection.as_mut(), &self.inflight[self.written..]),
                    if writing => self.on_write(written),
                () = tokio::time::sleep_until(progress_deadline), if writing => {
                        self.on_broken(&format!(
                            "no write progress for {:?} (write-timeout)",
                            self.settings.write_timeout
                        ));
                    }
            }
        }
    }

    fn enqueue(&mut self, lines: LineChunks, written: Option<oneshot::Sender<()>>) {
        let (mut accepted, mut dropped) = (0, 0);
        for chunk in lines.into_chunks() {
            let pushed = self.backlog.push(chunk);
            accepted += pushed.accepted;
            dropped += pushed.dropped;
        }
        self.enqueued += accepted as u64;
        if let Some(written) = written {
            self.acks.push_back((self.enqueued, written));
        }
        self.count_dropped(dropped);
        self.consume(dropped as u64);
    }

    /// `lines` left the pipeline (written or dropped), oldest first; the
    /// ones re-sent after a broken connection were counted the first time.
    fn consume(&mut self, lines: u64) {
        let recounted = lines.min(self.recount_debt);
        self.recount_debt -= recounted;
        self.consumed += lines - recounted;
        while self
            .acks
            .front()
            .is_some_and(|(seq, _)| *seq <= self.consumed)
        {
            if let Some((_, written)) = self.acks.pop_front() {
                let _ = written.send(());
            }
        }
    }

    fn count_dropped(&mut self, dropped: usize) {
        if dropped > 0 {
            self.counters
                .dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
            tracing::error!(
                dropped,
                dropped_total = self.backlog.dropped_total(),
                queue_size = self.settings.queue_size,
                "graphite backlog full: dropped the oldest lines"
            );
        }
    }

    /// Moves the next chunk of the backlog into `inflight` once the previous
    /// one is fully written. Only while connected: until then every waiting
    /// line is in the backlog, where its capacity applies.
    fn refill(&mut self) {
        if !self.inflight.is_empty() || self.connection.is_none() {
            return;
        }
        // A whole batch no bigger than a chunk (the Processor hands over
        // chunks of this size) is written as it is, without a copy.
        if let Some((bytes, lines)) = self.backlog.take_front_batch(CHUNK_BYTES) {
            self.inflight = bytes;
            self.inflight_lines = lines as u64;
        } else {
            let Some(chunk) = self.backlog.front_chunk(CHUNK_BYTES) else {
                return;
            };
            self.inflight.extend_from_slice(chunk);
            let len = chunk.len();
            self.backlog.consume(len);
            self.inflight_lines = memchr::memchr_iter(b'\n', &self.inflight).count() as u64;
        }
        self.written = 0;
        self.last_progress = Instant::now();
    }

    fn publish_depth(&self) {
        let depth = self.backlog.len() as u64 + self.inflight_lines;
        self.counters.backlog.store(depth, Ordering::Relaxed);
    }

    fn on_connect(&mut self, connected: std::io::Result<TcpStream>) {
        match connected {
            Ok(stream) => {
                if self.ever_connected {
                    self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                self.ever_connected = true;
                self.counters.connected.store(true, Ordering::Relaxed);
                RetryPolicy::reset(&mut self.retry);
                tracing::info!(
                    server = %self.settings.host,
                    port = self.settings.port,
                    backlog = self.backlog.len() as u64 + self.inflight_lines,
                    "connected to graphite"
                );
                self.last_progress = Instant::now();
                self.connection = Some(stream);
            }
            Err(error) => {
                let wait = self.settings.policy.next_wait(&mut self.retry);
                self.next_attempt = Instant::now() + wait;
                tracing::warn!(
                    server = %self.settings.host,
                    port = self.settings.port,
                    error = %error,
                    retry_in = ?wait,
                    backlog = self.backlog.len() as u64 + self.inflight_lines,
                    "cannot connect to graphite"
                );
            }
        }
    }

    fn on_write(&mut self, written: std::io::Result<usize>) {
        match written {
            Ok(0) => self.on_broken("connection closed by peer"),
            Ok(n) => {
                self.written += n;
                self.last_progress = Instant::now();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                self.counters.last_write_ok.store(now, Ordering::Relaxed);
                if self.written >= self.inflight.len() {
                    self.counters
                        .sent
                        .fetch_add(self.inflight_lines, Ordering::Relaxed);
                    self.consume(self.inflight_lines);
                    self.keep_for_replay();
                }
            }
            Err(error) => self.on_broken(&error.to_string()),
        }
    }

    /// Moves the fully written chunk into the replay window, forgetting the
    /// oldest chunks beyond `replay_bytes`.
    fn keep_for_replay(&mut self) {
        let mut chunk = std::mem::take(&mut self.inflight);
        // A chunk is allocated for CHUNK_BYTES but often carries one small
        // snapshot: kept as is, 16 MiB of replay would pin ~100 MiB. A
        // nearly full one is kept as is (shrinking would copy it).
        if chunk.capacity() > 2 * chunk.len() {
            chunk.shrink_to_fit();
        }
        self.replay_bytes += chunk.len();
        self.replay.push_back(chunk);
        while self.replay_bytes > self.settings.replay_bytes {
            match self.replay.pop_front() {
                Some(old) => {
                    self.replay_bytes -= old.len();
                    if let Some(pool) = &self.chunks {
                        pool.give_back(old);
                    }
                }
                None => self.replay_bytes = 0,
            }
        }
        self.inflight_lines = 0;
        self.written = 0;
    }

    fn on_broken(&mut self, reason: &str) {
        self.connection = None;
        self.counters.connected.store(false, Ordering::Relaxed);
        // The in-flight chunk and the replay window go back in front of the
        // backlog, oldest first: the peer may not have read any of it.
        let mut resend = std::mem::take(&mut self.replay);
        self.replay_bytes = 0;
        // The replay window was counted as consumed when written; the
        // in-flight chunk was not, and is consumed when written again.
        let replayed_lines: u64 = resend
            .iter()
            .map(|chunk| memchr::memchr_iter(b'\n', chunk).count() as u64)
            .sum();
        resend.push_back(std::mem::take(&mut self.inflight));
        self.inflight_lines = 0;
        self.written = 0;
        let mut resend_lines = 0;
        let mut dropped = 0;
        for chunk in resend.into_iter().rev() {
            let pushed = self.backlog.push_front(chunk);
            resend_lines += pushed.accepted;
            dropped += pushed.dropped;
        }
        self.count_dropped(dropped);
        // Lines that did not fit back are the oldest: replayed ones first.
        let replayed_back = replayed_lines.saturating_sub(dropped as u64);
        self.recount_debt += replayed_back;
        self.consume((dropped as u64).saturating_sub(replayed_lines));
        // The first reconnect is immediate; the policy paces the following.
        self.next_attempt = Instant::now();
        tracing::warn!(
            server = %self.settings.host,
            port = self.settings.port,
            reason,
            resend_lines,
            "graphite connection lost; reconnecting"
        );
    }
}

async fn connect_when_due(settings: &GraphiteSettings, due: Instant) -> std::io::Result<TcpStream> {
    tokio::time::sleep_until(due).await;
    let connect = TcpStream::connect((settings.host.as_str(), settings.port));
    match tokio::time::timeout(settings.connect_timeout, connect).await {
        Ok(Ok(stream)) => {
            stream.set_nodelay(true)?;
            Ok(stream)
        }
        Ok(Err(error)) => Err(error),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("connect timed out after {:?}", settings.connect_timeout),
        )),
    }
}

/// One `write` call: cancel-safe (if dropped, nothing was written), so a
/// batch arriving mid-write never causes bytes to be sent twice in a row.
async fn write_some(connection: Option<&mut TcpStream>, bytes: &[u8]) -> std::io::Result<usize> {
    match connection {
        Some(stream) => stream.write(bytes).await,
        None => std::future::pending().await,
    }
}
