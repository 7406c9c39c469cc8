//! The GraphiteSink actor (SPEC §5): one long-lived TCP connection to the
//! carbon relay, a bounded FIFO [`Backlog`] in front of it, reconnects on the
//! [`RetryPolicy`] schedule — and none of it ever blocks the sender: a
//! batch handed over is queued at once (the actor is a [`WriterSink`]).
//!
//! Delivery is at-least-once, confirmed as far as plaintext carbon allows:
//! a line counts as delivered (its snapshot may be deleted) once the peer's
//! TCP stack acknowledged it and the connection showed signs of life after
//! that ([`super::confirm`]: more acknowledgements, or nothing outstanding
//! and an open receive window). What a connection did not confirm when it
//! breaks, stalls or the process stops is written again on the next
//! connection, or stays in src-dir for the next start. Confirmed lines are
//! kept (the last `replay-bytes`, default [`REPLAY_BYTES`]) and written
//! again too if the connection then stalls. Graphite stores one value per
//! path and timestamp, so a duplicate overwrites the same point; a lost
//! line would be a gap. Lines dropped because the backlog was full are
//! counted and logged.
//!
//! A connection that breaks before confirming anything is followed by the
//! reconnect schedule's wait, and every connection after a broken one may
//! hold at first only what the peer's receive window takes, doubling with
//! each confirmation: a peer that resets every few kilobytes still gets
//! every line, a little per connection, and a few connections per second.
//! Repeated log lines are rate-limited ([`crate::log_limit`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::acks::LineAcks;
use super::backlog::Backlog;
use super::confirm::{Confirmation, Reading, Verdict};
use super::messages::SinkHealth;
use super::retry::{RetryPolicy, RetryState};
use super::tcp_state;
use super::writer_shell::{
    Command, FlushWaiters, GetStats, LinesBatch, SharedCounters, WriterSink, WriterTask,
};
use crate::config::{Config, GraphiteConfig};
use crate::log_limit::LogLimit;

/// Bytes handed to one `write` call: large enough that a million lines take a
/// few hundred syscalls, small enough to resend cheaply after a broken
/// connection. The Processor's chunks are of this size, so that each is
/// written as it is.
const CHUNK_BYTES: usize = super::chunks::LINE_CHUNK;

/// Default of `[graphite] replay-bytes`: confirmed bytes kept to write
/// again if the connection stalls after confirming them — more than a
/// peer's receive buffer holds (6 MiB at Linux's defaults).
pub const REPLAY_BYTES: usize = 16 * 1024 * 1024;

/// The GraphiteSink actor: the [`WriterSink`] of a [`GraphiteWriter`].
pub type GraphiteSink = WriterSink<GraphiteWriter>;

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
    /// Confirmed bytes kept for writing again after a stall.
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

/// The sink `[graphite]` configures, unless `enabled = false`.
pub fn spec(config: &Config, _: &super::Naming<'_>) -> super::Started {
    if !config.graphite.enabled {
        return Ok(None);
    }
    let settings = GraphiteSettings::from_config(&config.graphite);
    Ok(Some(super::SinkSpec::new("graphite", move || {
        GraphiteSink::new(settings.clone())
    })))
}

/// Counters shared between the writer and whoever reports on it.
#[derive(Debug, Default)]
pub struct SinkCounters {
    backlog: AtomicU64,
    dropped: AtomicU64,
    sent: AtomicU64,
    reconnects: AtomicU64,
    connected: AtomicBool,
    /// Epoch seconds of the last confirmed delivery (0 = never).
    last_delivery: AtomicU64,
}

/// A snapshot of the sink's counters (self metrics, status file, logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, MessageResponse)]
pub struct SinkStats {
    /// Lines not yet confirmed delivered (waiting, being written, written).
    pub backlog: u64,
    /// Lines dropped because the backlog was full, since start.
    pub dropped: u64,
    /// Lines confirmed delivered, since start.
    pub sent: u64,
    /// Connections established after the first one.
    pub reconnects: u64,
    /// Whether a connection is up now.
    pub connected: bool,
    /// Epoch seconds of the last confirmed delivery.
    pub last_delivery: Option<u64>,
}

impl SharedCounters for SinkCounters {
    type Stats = SinkStats;

    fn read(&self) -> SinkStats {
        self.stats()
    }
}

impl SinkCounters {
    fn stats(&self) -> SinkStats {
        SinkStats {
            backlog: self.backlog.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            last_delivery: Some(self.last_delivery.load(Ordering::Relaxed)).filter(|t| *t > 0),
        }
    }
}

/// Ask for the counters ([`SinkStats`]).
pub type GetSinkStats = GetStats<SinkStats>;

/// The message asking for the counters, as a value: `sink.send(GetSinkStats)`.
#[allow(non_upper_case_globals)]
pub const GetSinkStats: GetSinkStats = GetStats::new();

impl WriterTask for GraphiteWriter {
    type Settings = GraphiteSettings;
    type Batch = LinesBatch;
    type Shared = SinkCounters;

    fn start(settings: &GraphiteSettings, counters: &Arc<SinkCounters>) -> Option<Self> {
        Some(GraphiteWriter::new(settings.clone(), Arc::clone(counters)))
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command<LinesBatch>>) {
        let mut tick = tokio::time::interval(CONFIRM_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.refill();
            self.publish_depth();
            if self.nothing_unconfirmed() {
                self.flush_waiters.answer_all();
            }
            let has_data = !self.nothing_unconfirmed();
            let allowance = self.connection.as_ref().map_or(0, Connection::allowance);
            let writing = self.current.is_some() && allowance > 0;
            let watching = self.connection.is_some() && has_data;
            let write_deadline = self.last_write_progress + self.settings.write_timeout;
            let pending = self.current.as_ref().map_or(&[][..], |current| {
                let rest = &current.bytes[self.current_written..];
                &rest[..rest
                    .len()
                    .min(usize::try_from(allowance).unwrap_or(usize::MAX))]
            });
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Batch(batch)) => self.enqueue(batch),
                    Some(Command::Flush(waiter)) => self.flush_waiters.push(waiter),
                    None => return,
                },
                connected = connect_when_due(&self.settings, self.next_attempt),
                    if has_data && self.connection.is_none() => self.on_connect(connected),
                written = write_some(self.connection.as_mut().map(|c| &mut c.stream), pending),
                    if writing => self.on_write(written),
                () = tokio::time::sleep_until(write_deadline), if writing => {
                    self.on_broken(
                        &format!("no write progress for {:?} (write-timeout)", self.settings.write_timeout),
                        true,
                    );
                }
                _ = tick.tick(), if watching => self.on_tick(),
            }
        }
    }

    fn health(settings: &GraphiteSettings, counters: &SinkCounters) -> SinkHealth {
        let stats = counters.stats();
        let health = SinkHealth::of_backlog(
            stats.backlog,
            settings.queue_size,
            stats.dropped,
            stats.last_delivery,
        );
        SinkHealth {
            metrics: vec![
                ("GraphiteBacklog", stats.backlog),
                ("GraphiteDroppedLines", stats.dropped),
                ("GraphiteReconnects", stats.reconnects),
            ],
            ..health
        }
    }
}

/// How often a connection with unconfirmed bytes is looked at
/// ([`tcp_state::read`]): the delay between the peer's acknowledgement and
/// the snapshot's deletion, beyond the settle time.
const CONFIRM_TICK: Duration = Duration::from_millis(50);

/// What a connection that follows a broken one may have unconfirmed before
/// the first confirmation, at least (the peer's receive window, if larger);
/// it doubles with every confirmation. A peer that breaks every connection thus gets
/// a little at a time, and every connection confirms what it took.
const PROBE_BYTES: u64 = 64 * 1024;

/// Lines on their way to Graphite, in the order they are written.
struct Outgoing {
    bytes: Bytes,
    lines: u64,
    /// Whether confirming these lines counts them towards acknowledgements
    /// (`false` for lines resent after a stall: counted the first time).
    fresh: bool,
}

impl Outgoing {
    fn fresh(bytes: Bytes, lines: u64) -> Outgoing {
        Outgoing {
            bytes,
            lines,
            fresh: true,
        }
    }
}

/// One connection and what the peer's TCP stack says of it.
struct Connection {
    stream: TcpStream,
    /// Bytes written to it so far.
    written: u64,
    /// Offset of the first byte of the oldest unconfirmed chunk.
    unconfirmed_from: u64,
    /// Offset up to which the last tick confirmed.
    confirmed: u64,
    confirmation: Confirmation,
    /// Bytes that may be unconfirmed at once (`None`: no limit).
    budget: Option<u64>,
}

impl Connection {
    /// Bytes that may be written now without exceeding the budget.
    fn allowance(&self) -> u64 {
        match self.budget {
            None => u64::MAX,
            Some(budget) => budget.saturating_sub(self.written - self.confirmation.confirmed()),
        }
    }
}

/// The connection, the backlog and everything unconfirmed, owned by one
/// task: the GraphiteSink's [`WriterTask`].
pub struct GraphiteWriter {
    settings: GraphiteSettings,
    counters: Arc<SinkCounters>,
    backlog: Backlog,
    /// Lines of a broken connection to write again, before the backlog.
    resend: VecDeque<Outgoing>,
    /// The chunk being written and how much of it the connection took.
    current: Option<Outgoing>,
    current_written: usize,
    /// Chunks written on this connection, not yet confirmed, with the
    /// connection offset where each ends.
    sent: VecDeque<(Outgoing, u64)>,
    /// Confirmed chunks, newest last, kept to write again if the connection
    /// stalls after all (at most `replay_bytes`).
    replay: VecDeque<Bytes>,
    replay_bytes: usize,
    connection: Option<Connection>,
    /// Whether the next connection starts with a budget: the last one broke.
    careful: bool,
    /// When the chunk being written last made progress.
    last_write_progress: Instant,
    ever_connected: bool,
    retry: RetryState,
    next_attempt: Instant,
    flush_waiters: FlushWaiters,
    /// Each batch's acknowledgement, answered once its lines are
    /// confirmed or dropped.
    acks: LineAcks,
    lost_log: LogLimit,
    connect_failed_log: LogLimit,
    connect_log: LogLimit,
}

impl GraphiteWriter {
    fn new(settings: GraphiteSettings, counters: Arc<SinkCounters>) -> GraphiteWriter {
        GraphiteWriter {
            backlog: Backlog::new(settings.queue_size),
            settings,
            counters,
            resend: VecDeque::new(),
            current: None,
            current_written: 0,
            sent: VecDeque::new(),
            replay: VecDeque::new(),
            replay_bytes: 0,
            connection: None,
            careful: false,
            last_write_progress: Instant::now(),
            ever_connected: false,
            retry: RetryState::default(),
            next_attempt: Instant::now(),
            flush_waiters: FlushWaiters::default(),
            acks: LineAcks::default(),
            lost_log: LogLimit::default(),
            connect_failed_log: LogLimit::default(),
            connect_log: LogLimit::default(),
        }
    }

    /// Nothing waits, nothing is being written, everything written is confirmed.
    fn nothing_unconfirmed(&self) -> bool {
        self.backlog.is_empty()
            && self.resend.is_empty()
            && self.current.is_none()
            && self.sent.is_empty()
    }

    fn enqueue(&mut self, batch: LinesBatch) {
        let dropped = self
            .acks
            .queue(&mut self.backlog, batch.lines, batch.written);
        self.count_dropped(dropped);
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

    /// Takes the next chunk to write once the previous one is written:
    /// lines to resend first, then the backlog. Only while connected: until
    /// then every waiting line is in the backlog, where its capacity applies.
    fn refill(&mut self) {
        if self.current.is_some() || self.connection.is_none() {
            return;
        }
        if let Some(again) = self.resend.pop_front() {
            self.current = Some(again);
        } else if let Some((bytes, lines)) = self.backlog.take_front_batch(CHUNK_BYTES) {
            // A whole batch no bigger than a chunk (the Processor hands over
            // chunks of this size) is written as it is, without a copy.
            self.current = Some(Outgoing::fresh(bytes, lines as u64));
        } else if let Some(chunk) = self.backlog.front_chunk(CHUNK_BYTES) {
            let bytes = Bytes::copy_from_slice(chunk);
            self.backlog.consume(bytes.len());
            let lines = memchr::memchr_iter(b'\n', &bytes).count() as u64;
            self.current = Some(Outgoing::fresh(bytes, lines));
        } else {
            return;
        }
        self.current_written = 0;
        self.last_write_progress = Instant::now();
    }

    /// Lines not yet confirmed: waiting, being written, or written.
    fn publish_depth(&self) {
        let waiting = |o: &Outgoing| if o.fresh { o.lines } else { 0 };
        let depth = self.backlog.len() as u64
            + self.resend.iter().map(waiting).sum::<u64>()
            + self.current.as_ref().map_or(0, waiting)
            + self.sent.iter().map(|(o, _)| waiting(o)).sum::<u64>();
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
                // After a broken connection, the new one may hold at first
                // what the peer's window takes: a peer that does not read
                // then shows it (a closed window) instead of swallowing more.
                let budget = self.careful.then(|| {
                    tcp_state::read(&stream)
                        .ok()
                        .and_then(|state| state.window)
                        .map_or(PROBE_BYTES, |window| window.max(PROBE_BYTES))
                });
                if let Some(suppressed) = self.connect_log.allow(std::time::Instant::now()) {
                    tracing::info!(
                        server = %self.settings.host,
                        port = self.settings.port,
                        backlog = self.counters.backlog.load(Ordering::Relaxed),
                        similar_lines_suppressed = suppressed,
                        "connected to graphite"
                    );
                }
                let now = Instant::now();
                self.last_write_progress = now;
                self.connection = Some(Connection {
                    stream,
                    written: 0,
                    unconfirmed_from: 0,
                    confirmed: 0,
                    confirmation: Confirmation::new(now.into_std(), self.settings.write_timeout),
                    budget,
                });
            }
            Err(error) => {
                let wait = self.settings.policy.next_wait(&mut self.retry);
                self.next_attempt = Instant::now() + wait;
                if let Some(suppressed) = self.connect_failed_log.allow(std::time::Instant::now()) {
                    tracing::warn!(
                        server = %self.settings.host,
                        port = self.settings.port,
                        error = %error,
                        retry_in = ?wait,
                        backlog = self.counters.backlog.load(Ordering::Relaxed),
                        similar_lines_suppressed = suppressed,
                        "cannot connect to graphite"
                    );
                }
            }
        }
    }

    fn on_write(&mut self, written: std::io::Result<usize>) {
        match written {
            Ok(0) => self.on_broken("connection closed by peer", false),
            Ok(n) => {
                self.current_written += n;
                self.last_write_progress = Instant::now();
                if let Some(connection) = &mut self.connection {
                    connection.written += n as u64;
                }
                let done = self
                    .current
                    .as_ref()
                    .is_some_and(|current| self.current_written >= current.bytes.len());
                if done && let Some(current) = self.current.take() {
                    let end = self.connection.as_ref().map_or(0, |c| c.written);
                    self.sent.push_back((current, end));
                    self.current_written = 0;
                }
            }
            Err(error) => self.on_broken(&error.to_string(), false),
        }
    }

    /// Asks the kernel how far the peer got, confirms what is delivered,
    /// and replaces a connection that stalled or that the peer closed.
    fn on_tick(&mut self) {
        let Some(connection) = &mut self.connection else {
            return;
        };
        let state = match tcp_state::read(&connection.stream) {
            Ok(state) => state,
            Err(error) => {
                return self.on_broken(
                    &format!("cannot read the connection's state: {error}"),
                    false,
                );
            }
        };
        let verdict = connection.confirmation.observe(
            Instant::now().into_std(),
            Reading {
                written: connection.written,
                unacked: state.unacked,
                rtt: state.rtt,
                window: state.window,
            },
        );
        match verdict {
            Verdict::Stalled { for_ } => self.on_broken(
                &format!(
                    "nothing acknowledged for {for_:?} (write-timeout): the peer stopped reading"
                ),
                true,
            ),
            Verdict::Alive { confirmed } => {
                self.confirm(confirmed);
                if !state.established {
                    self.on_broken("connection closed by peer", false);
                }
            }
        }
    }

    /// Every chunk that ends at or before connection offset `confirmed` is
    /// delivered: its lines are counted, its bytes kept for a replay.
    fn confirm(&mut self, confirmed: u64) {
        while self.sent.front().is_some_and(|(_, end)| *end <= confirmed) {
            let Some((chunk, end)) = self.sent.pop_front() else {
                break;
            };
            if let Some(connection) = &mut self.connection {
                connection.unconfirmed_from = end;
            }
            self.delivered(chunk);
        }
        let progress = self.connection.as_mut().is_some_and(|connection| {
            let grew = confirmed > connection.confirmed;
            connection.confirmed = confirmed;
            grew
        });
        if progress {
            // The peer is reading: the reconnect schedule starts over, the
            // logs say the next failure at once, the budget grows.
            RetryPolicy::reset(&mut self.retry);
            self.lost_log.reset();
            self.connect_failed_log.reset();
            if let Some(connection) = &mut self.connection {
                connection.budget = connection
                    .budget
                    .map(|budget| budget.saturating_mul(2))
                    .filter(|budget| {
                        *budget < self.settings.replay_bytes.max(CHUNK_BYTES) as u64 * 4
                    });
            }
        }
    }

    /// `chunk` reached the peer: acknowledge its lines, keep its bytes in
    /// the replay window, forgetting the oldest beyond `replay_bytes`. A
    /// replayed chunk is not kept again: each is replayed at most once, so
    /// a peer that keeps breaking connections is not sent the same window
    /// over and over instead of new lines.
    fn delivered(&mut self, chunk: Outgoing) {
        if !chunk.fresh {
            return;
        }
        self.counters.sent.fetch_add(chunk.lines, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.counters.last_delivery.store(now, Ordering::Relaxed);
        self.acks.left(chunk.lines);
        let mut bytes = chunk.bytes;
        // A chunk is allocated for CHUNK_BYTES but often carries one small
        // snapshot: kept as is, 16 MiB of replay would pin ~100 MiB. A
        // small one is copied, and the chunk goes back to the pool; a
        // nearly full one is kept as is.
        if bytes.len() < CHUNK_BYTES / 2 {
            bytes = Bytes::copy_from_slice(&bytes);
        }
        self.replay_bytes += bytes.len();
        self.replay.push_back(bytes);
        while self.replay_bytes > self.settings.replay_bytes {
            match self.replay.pop_front() {
                // Dropped: back to the pool once no other sink holds it.
                Some(old) => self.replay_bytes -= old.len(),
                None => self.replay_bytes = 0,
            }
        }
    }

    /// The connection is gone. What it did not confirm is written again on
    /// the next one, from the first unconfirmed line; after a stall, the
    /// replay window too (the peer may have stopped reading before it).
    fn on_broken(&mut self, reason: &str, stalled: bool) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        self.counters.connected.store(false, Ordering::Relaxed);
        let confirmed = if stalled {
            connection.unconfirmed_from
        } else {
            connection.confirmation.confirmed()
        };
        let made_progress = confirmed > 0;
        // The written chunks, then the partly written one, oldest first.
        let mut again: VecDeque<Outgoing> = self.sent.drain(..).map(|(chunk, _)| chunk).collect();
        if let Some(current) = self.current.take() {
            again.push_back(current);
        }
        self.current_written = 0;
        // The oldest may be confirmed in part: its whole lines up to the
        // confirmed offset are delivered.
        if let Some(first) = again.front_mut() {
            let done = usize::try_from(confirmed.saturating_sub(connection.unconfirmed_from))
                .unwrap_or(usize::MAX)
                .min(first.bytes.len());
            if let Some(newline) = memchr::memrchr(b'\n', &first.bytes[..done]) {
                let rest = first.bytes.split_off(newline + 1);
                let head = std::mem::replace(&mut first.bytes, rest);
                let lines = memchr::memchr_iter(b'\n', &head).count() as u64;
                first.lines -= lines.min(first.lines);
                let fresh = first.fresh;
                self.delivered(Outgoing {
                    bytes: head,
                    lines,
                    fresh,
                });
            }
        }
        // A replayed chunk this connection did not confirm either is given
        // up: it was confirmed once already.
        again.retain(|chunk| chunk.fresh);
        // Confirmed is not always delivered: a peer that stalls may still
        // have taken the last lines into its buffer, and one that is
        // shutting down reads and drops them (carbon-c-relay on SIGTERM
        // keeps reading for about two seconds). So after any broken
        // connection the last `replay-bytes` of confirmed lines go again,
        // once; Graphite keeps one value per path and timestamp.
        let mut replayed = 0;
        for bytes in self.replay.drain(..).rev() {
            replayed += memchr::memchr_iter(b'\n', &bytes).count() as u64;
            again.push_front(Outgoing {
                bytes,
                lines: 0,
                fresh: false,
            });
        }
        self.replay_bytes = 0;
        let unconfirmed: u64 = again.iter().filter(|o| o.fresh).map(|o| o.lines).sum();
        for chunk in again.into_iter().rev() {
            self.resend.push_front(chunk);
        }
        self.careful = true;
        // A connection that delivered something is replaced at once; one
        // that broke before delivering anything waits as a failed connect.
        let wait = if made_progress {
            Duration::ZERO
        } else {
            self.settings.policy.next_wait(&mut self.retry)
        };
        self.next_attempt = Instant::now() + wait;
        if let Some(suppressed) = self.lost_log.allow(std::time::Instant::now()) {
            tracing::warn!(
                server = %self.settings.host,
                port = self.settings.port,
                reason,
                unconfirmed_lines = unconfirmed,
                replayed_lines = replayed,
                retry_in = ?wait,
                similar_lines_suppressed = suppressed,
                "graphite connection lost; writing what it did not confirm again"
            );
        }
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
