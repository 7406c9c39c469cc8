//! The actor of a sink whose work is one task (Graphite, Kafka, raw
//! snapshots): [`WriterSink`] starts the sink's [`WriterTask`] on its
//! arbiter and hands it, over an unbounded channel, every batch and every
//! flush; it answers health, flush and (in test builds) the injected crash
//! itself, from what the task shares with it. A sink writes only its task.
//!
//! The channel is unbounded on purpose: the bound is the task's backlog,
//! applied as soon as a batch arrives (a full one drops the oldest lines,
//! counted), and the sender is never kept waiting.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};

use super::chunks::SharedLines;
use super::messages::{Flush, GetSinkHealth, SendLines, SendLinesAcked, SinkHealth};

/// What the shell hands the task.
#[derive(Debug)]
pub enum Command<B> {
    /// A batch handed over ([`Accept::accept`]).
    Batch(B),
    /// Answer once nothing is pending.
    Flush(oneshot::Sender<()>),
}

/// A sink's task: it owns the connection or producer, the backlog and the
/// acknowledgements, and runs until the actor stops.
pub trait WriterTask: Sized + 'static {
    /// What the sink is started with, again after each crash.
    type Settings: Clone + Send + Unpin + 'static;
    /// A batch as the task takes it.
    type Batch: Accept<Self::Shared>;
    /// What the task and the actor share: the counters health and stats
    /// read.
    type Shared: SharedCounters;

    /// The task of a started actor; `None` when it cannot start (a
    /// producer librdkafka cannot make, logged): the actor stops and the
    /// Supervisor starts it again.
    fn start(settings: &Self::Settings, shared: &Arc<Self::Shared>) -> Option<Self>;

    /// Works until `commands` closes, the actor with it.
    fn run(
        self,
        commands: mpsc::UnboundedReceiver<Command<Self::Batch>>,
    ) -> impl Future<Output = ()>;

    /// The sink's health, every second; its `backlog` is also what a
    /// [`Flush`] answers as not delivered yet.
    fn health(settings: &Self::Settings, shared: &Self::Shared) -> SinkHealth;
}

/// A batch as a task takes it, made of the message that hands it over.
pub trait Accept<S>: Send + Sized + 'static {
    /// `message` handed over (counted in `shared` when the task counts
    /// what waits from the moment it is handed over).
    fn accept(message: SendLinesAcked, shared: &S) -> Self;
}

/// What a task shares with its actor.
pub trait SharedCounters: Default + Send + Sync + 'static {
    /// The sink's own counters, beyond its health ([`GetStats`]).
    type Stats: Send + 'static;

    /// Them, now (tests, benchmarks).
    fn read(&self) -> Self::Stats;
}

/// Ask a sink for its own counters, `S` ([`SharedCounters::Stats`]).
pub struct GetStats<S>(PhantomData<fn() -> S>);

impl<S> GetStats<S> {
    /// The message.
    pub const fn new() -> GetStats<S> {
        GetStats(PhantomData)
    }
}

impl<S> Default for GetStats<S> {
    fn default() -> Self {
        GetStats::new()
    }
}

impl<S> std::fmt::Debug for GetStats<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GetStats")
    }
}

impl<S: 'static> Message for GetStats<S> {
    type Result = S;
}

/// A batch of lines: what a task of lines takes.
#[derive(Debug)]
pub struct LinesBatch {
    /// The lines.
    pub lines: SharedLines,
    /// Answered once they are delivered or dropped; `None` for
    /// [`SendLines`].
    pub written: Option<oneshot::Sender<()>>,
}

/// A snapshot's lines, acknowledged on `written`.
impl<S> Accept<S> for LinesBatch {
    fn accept(message: SendLinesAcked, _: &S) -> LinesBatch {
        LinesBatch {
            lines: message.lines,
            written: Some(message.written),
        }
    }
}

/// The flushes waiting for a task to have nothing pending.
#[derive(Debug, Default)]
pub struct FlushWaiters(Vec<oneshot::Sender<()>>);

impl FlushWaiters {
    /// One more flush waits.
    pub fn push(&mut self, waiter: oneshot::Sender<()>) {
        self.0.push(waiter);
    }

    /// Nothing is pending: every flush is answered.
    pub fn answer_all(&mut self) {
        for waiter in self.0.drain(..) {
            // A flush whose caller gave up has nobody to answer.
            let _ = waiter.send(());
        }
    }
}

/// The actor of a sink that is one [`WriterTask`].
pub struct WriterSink<W: WriterTask> {
    settings: W::Settings,
    shared: Arc<W::Shared>,
    commands: Option<mpsc::UnboundedSender<Command<W::Batch>>>,
}

impl<W: WriterTask> WriterSink<W> {
    /// A sink for `settings`; its task starts with the actor.
    pub fn new(settings: W::Settings) -> WriterSink<W> {
        WriterSink {
            settings,
            shared: Arc::default(),
            commands: None,
        }
    }

    fn send(&self, command: Command<W::Batch>) {
        if let Some(commands) = &self.commands {
            // The task lives as long as this actor's context; a send error
            // means both are stopping.
            let _ = commands.send(command);
        }
    }
}

impl<W: WriterTask> Actor for WriterSink<W> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(task) = W::start(&self.settings, &self.shared) else {
            ctx.stop();
            return;
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        self.commands = Some(sender);
        ctx.spawn(task.run(receiver).into_actor(self));
    }
}

impl<W: WriterTask> Handler<SendLinesAcked> for WriterSink<W> {
    type Result = ();

    fn handle(&mut self, message: SendLinesAcked, _: &mut Context<Self>) {
        if self.commands.is_some() {
            let batch = W::Batch::accept(message, &self.shared);
            self.send(Command::Batch(batch));
        }
    }
}

impl<W: WriterTask<Batch = LinesBatch>> Handler<SendLines> for WriterSink<W> {
    type Result = ();

    fn handle(&mut self, SendLines(lines): SendLines, _: &mut Context<Self>) {
        self.send(Command::Batch(LinesBatch {
            lines: lines.into(),
            written: None,
        }));
    }
}

impl<W: WriterTask> Handler<Flush> for WriterSink<W> {
    type Result = ResponseFuture<u64>;

    fn handle(&mut self, flush: Flush, _: &mut Context<Self>) -> Self::Result {
        let (done, flushed) = oneshot::channel();
        self.send(Command::Flush(done));
        let (settings, shared) = (self.settings.clone(), Arc::clone(&self.shared));
        flush.answer(flushed, move || W::health(&settings, &shared).backlog)
    }
}

impl<W: WriterTask> Handler<GetSinkHealth> for WriterSink<W> {
    type Result = SinkHealth;

    fn handle(&mut self, _: GetSinkHealth, _: &mut Context<Self>) -> SinkHealth {
        W::health(&self.settings, &self.shared)
    }
}

/// The stats of a sink's [`SharedCounters`].
type Stats<W> = <<W as WriterTask>::Shared as SharedCounters>::Stats;

impl<W: WriterTask> Handler<GetStats<Stats<W>>> for WriterSink<W>
where
    Stats<W>: actix::dev::MessageResponse<Self, GetStats<Stats<W>>>,
{
    type Result = Stats<W>;

    fn handle(&mut self, _: GetStats<Stats<W>>, _: &mut Context<Self>) -> Stats<W> {
        self.shared.read()
    }
}

#[cfg(any(test, feature = "fault-injection"))]
impl<W: WriterTask> Handler<crate::common::Crash> for WriterSink<W> {
    type Result = ();

    fn handle(&mut self, _: crate::common::Crash, _: &mut Context<Self>) {
        panic!("injected crash of {}", std::any::type_name::<W>());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;
    use crate::sink::messages::LinesOf;
    use crate::sink::running::RunningSink;

    /// A task that writes a batch for each permit of its gate.
    struct Gated {
        gate: Arc<Semaphore>,
        waiting: Arc<Waiting>,
    }

    #[derive(Debug, Default)]
    struct Waiting(AtomicU64);

    #[derive(Clone)]
    struct GateSettings {
        gate: Arc<Semaphore>,
        can_start: bool,
    }

    impl WriterTask for Gated {
        type Settings = GateSettings;
        type Batch = LinesBatch;
        type Shared = Waiting;

        fn start(settings: &GateSettings, waiting: &Arc<Waiting>) -> Option<Self> {
            settings.can_start.then(|| Gated {
                gate: Arc::clone(&settings.gate),
                waiting: Arc::clone(waiting),
            })
        }

        async fn run(self, mut commands: mpsc::UnboundedReceiver<Command<LinesBatch>>) {
            let mut queue = VecDeque::new();
            let mut flushes = FlushWaiters::default();
            loop {
                if queue.is_empty() {
                    flushes.answer_all();
                }
                tokio::select! {
                    command = commands.recv() => match command {
                        Some(Command::Batch(batch)) => {
                            self.waiting.0.fetch_add(1, Ordering::Relaxed);
                            queue.push_back(batch);
                        }
                        Some(Command::Flush(waiter)) => flushes.push(waiter),
                        None => return,
                    },
                    Ok(permit) = self.gate.acquire(), if !queue.is_empty() => {
                        permit.forget();
                        let written = queue.pop_front().and_then(|batch: LinesBatch| batch.written);
                        self.waiting.0.fetch_sub(1, Ordering::Relaxed);
                        if let Some(written) = written {
                            let _ = written.send(());
                        }
                    }
                }
            }
        }

        fn health(_: &GateSettings, waiting: &Waiting) -> SinkHealth {
            SinkHealth {
                metrics: vec![("GatedWaiting", waiting.read())],
                ..SinkHealth::of_backlog(waiting.read(), 0, 0, None)
            }
        }
    }

    impl SharedCounters for Waiting {
        type Stats = u64;

        fn read(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    fn settings(can_start: bool) -> GateSettings {
        GateSettings {
            gate: Arc::new(Semaphore::new(0)),
            can_start,
        }
    }

    fn sink(can_start: bool) -> (RunningSink, Arc<Semaphore>) {
        let settings = settings(can_start);
        let gate = Arc::clone(&settings.gate);
        (RunningSink::start(WriterSink::<Gated>::new(settings)), gate)
    }

    fn send(sink: &RunningSink) -> oneshot::Receiver<()> {
        let (written, acknowledged) = oneshot::channel();
        sink.send(SendLinesAcked {
            of: LinesOf::Own,
            ts: 1,
            lines: SharedLines::from(b"a 1 1\n".to_vec()),
            written,
        });
        acknowledged
    }

    async fn until(what: &str, condition: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[actix_rt::test]
    async fn a_batch_is_acknowledged_once_its_task_wrote_it_and_not_within_200ms_before() {
        let (sink, gate) = sink(true);
        let mut acknowledged = send(&sink);
        let early = tokio::time::timeout(Duration::from_millis(200), &mut acknowledged).await;
        assert!(early.is_err(), "acknowledged before it was written");
        // The task took it within those 200 ms.
        assert_eq!(sink.health().await.map(|h| h.backlog), Some(1));
        gate.add_permits(1);
        let answer = tokio::time::timeout(Duration::from_secs(10), acknowledged).await;
        assert!(matches!(answer, Ok(Ok(()))), "{answer:?}");
        let health = sink.health().await.expect("health");
        assert_eq!(
            (health.backlog, health.metrics),
            (0, vec![("GatedWaiting", 0)])
        );
    }

    #[actix_rt::test]
    async fn a_flush_answers_what_is_left_at_its_timeout_and_nothing_once_written() {
        let (sink, gate) = sink(true);
        let _first = send(&sink);
        let _second = send(&sink);
        assert_eq!(sink.flush(Duration::from_millis(50)).await, 2);
        let flushed = sink.flush(Duration::from_secs(10));
        gate.add_permits(2);
        assert_eq!(flushed.await, 0);
    }

    #[actix_rt::test]
    async fn a_crash_closes_the_mailbox_and_drops_what_it_held_unanswered() {
        let (sink, _gate) = sink(true);
        let held = send(&sink);
        sink.crash();
        until("the sink is gone", || !sink.alive()).await;
        let answer = tokio::time::timeout(Duration::from_secs(10), held).await;
        assert!(matches!(answer, Ok(Err(_))), "{answer:?}");
        assert_eq!(sink.flush(Duration::from_secs(1)).await, u64::MAX);
    }

    #[actix_rt::test]
    async fn a_task_that_cannot_start_stops_its_actor() {
        let (sink, _gate) = sink(false);
        until("the sink is stopped", || !sink.alive()).await;
    }

    #[actix_rt::test]
    async fn lines_without_an_answer_are_written_and_its_stats_read_from_what_it_shares() {
        let settings = settings(true);
        let gate = Arc::clone(&settings.gate);
        let sink = WriterSink::<Gated>::new(settings).start();
        sink.do_send(SendLines(b"a 1 1\n".to_vec()));
        let (written, acknowledged) = oneshot::channel();
        sink.do_send(SendLinesAcked {
            of: LinesOf::Own,
            ts: 1,
            lines: SharedLines::from(b"b 1 1\n".to_vec()),
            written,
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while sink.send(GetStats::<u64>::new()).await.ok() != Some(2) {
            assert!(tokio::time::Instant::now() < deadline, "never 2 waiting");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        gate.add_permits(2);
        let answer = tokio::time::timeout(Duration::from_secs(10), acknowledged).await;
        assert!(matches!(answer, Ok(Ok(()))), "{answer:?}");
        assert_eq!(sink.send(GetStats::<u64>::new()).await.ok(), Some(0));
    }
}
