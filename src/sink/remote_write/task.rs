//! The remote-write sink's task ([`WriterTask`]): each snapshot handed
//! over becomes its requests ([`super::requests_of`]), queued
//! ([`Queue`]); one request is out at a time, on one kept-alive HTTP/1
//! connection, and what the receiver answers decides what comes next
//! ([`verdict`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::config::RemoteWriteConfig;
use super::queue::{Answered, Queue};
use super::response::{Answer, Rejection, Verdict, first_line, verdict};
use super::wire::{CONTENT_ENCODING as SNAPPY, CONTENT_TYPE as PROTOBUF, VERSION_HEADER};
use crate::common::unix_now;
use crate::sink::chunks::SharedLines;
use crate::sink::messages::{LinesOf, SendLinesAcked, SinkHealth};
use crate::sink::paths::PathLayout;
use crate::sink::writer_shell::{Accept, Command, FlushWaiters, SharedCounters, WriterTask};

/// What the sink is started with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Its section.
    pub config: RemoteWriteConfig,
    /// How its lines' paths read back as series.
    pub layout: PathLayout,
}

/// A snapshot's lines as the task takes them.
#[derive(Debug)]
pub struct Batch {
    lines: SharedLines,
    written: oneshot::Sender<()>,
    /// In central, a load balancer's cluster: its series are labelled so.
    cluster: Option<String>,
}

impl Accept<Counters> for Batch {
    fn accept(message: SendLinesAcked, _: &Counters) -> Batch {
        let cluster = match message.of {
            LinesOf::Central { cluster, .. } => cluster,
            LinesOf::Snapshot(_) | LinesOf::Own => None,
        };
        Batch {
            lines: message.lines,
            written: message.written,
            cluster,
        }
    }
}

/// The sink's own counters ([`SharedCounters`]).
#[derive(Debug, Default)]
pub struct Counters {
    backlog: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    skipped_lines: AtomicU64,
    last_delivery: AtomicU64,
    cannot_deliver: Mutex<Option<String>>,
}

/// [`Counters`], read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteWriteStats {
    /// Samples waiting.
    pub backlog: u64,
    /// Samples dropped because the backlog was full.
    pub dropped: u64,
    /// Requests the receiver rejected for good (4xx but 429).
    pub rejected: u64,
    /// Requests delivered.
    pub requests: u64,
    /// Attempts answered with a retry.
    pub retries: u64,
    /// Lines that are no series (see `requests_of`).
    pub skipped_lines: u64,
    /// When a request was last delivered (epoch seconds; 0: never).
    pub last_delivery: u64,
}

impl SharedCounters for Counters {
    type Stats = RemoteWriteStats;

    fn read(&self) -> RemoteWriteStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RemoteWriteStats {
            backlog: get(&self.backlog),
            dropped: get(&self.dropped),
            rejected: get(&self.rejected),
            requests: get(&self.requests),
            retries: get(&self.retries),
            skipped_lines: get(&self.skipped_lines),
            last_delivery: get(&self.last_delivery),
        }
    }
}

/// The body head kept of an answer: enough for its first line.
const BODY_HEAD: usize = 512;
/// An answer's body is read (so that the connection can be reused) up to
/// this much; a longer one ends the connection.
const BODY_LIMIT: usize = 64 * 1024;
/// Distinct rejection causes logged; more are only counted.
const MAX_CAUSES_LOGGED: usize = 64;

type Connection = SendRequest<Full<Bytes>>;
type Sending = std::pin::Pin<Box<dyn Future<Output = (Option<Connection>, Outcome)>>>;

/// What one attempt gave, owned.
#[derive(Debug)]
enum Outcome {
    Response {
        status: u16,
        retry_after: Option<String>,
        body: Vec<u8>,
    },
    NoResponse(String),
}

/// The task.
pub struct RemoteWriteTask {
    settings: Settings,
    counters: Arc<Counters>,
    queue: Queue<oneshot::Sender<()>>,
    flush: FlushWaiters,
    connection: Option<Connection>,
    sending: Option<Sending>,
    attempt: u32,
    retry_at: Option<Instant>,
    causes_logged: HashSet<(u16, String)>,
}

impl WriterTask for RemoteWriteTask {
    type Settings = Settings;
    type Batch = Batch;
    type Shared = Counters;

    fn start(settings: &Settings, counters: &Arc<Counters>) -> Option<Self> {
        Some(RemoteWriteTask {
            queue: Queue::new(settings.config.queue_size as u64),
            settings: settings.clone(),
            counters: Arc::clone(counters),
            flush: FlushWaiters::default(),
            connection: None,
            sending: None,
            attempt: 0,
            retry_at: None,
            causes_logged: HashSet::new(),
        })
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command<Batch>>) {
        loop {
            self.send_next();
            self.counters
                .backlog
                .store(self.queue.samples(), Ordering::Relaxed);
            self.counters
                .dropped
                .store(self.queue.dropped_samples(), Ordering::Relaxed);
            if self.queue.is_empty() {
                self.flush.answer_all();
            }
            let retry_at = self.retry_at;
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Batch(batch)) => self.enqueue(batch),
                    Some(Command::Flush(waiter)) => self.flush.push(waiter),
                    None => return,
                },
                (connection, outcome) = wait(&mut self.sending), if self.sending.is_some() => {
                    self.sending = None;
                    self.connection = connection;
                    self.on_outcome(outcome);
                }
                () = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    self.retry_at = None;
                }
            }
        }
    }

    fn health(settings: &Settings, counters: &Counters) -> SinkHealth {
        let stats = counters.read();
        let health = SinkHealth::of_backlog(
            stats.backlog,
            settings.config.queue_size,
            stats.dropped,
            (stats.last_delivery > 0).then_some(stats.last_delivery),
        );
        SinkHealth {
            cannot_deliver: counters
                .cannot_deliver
                .lock()
                .map(|c| c.clone())
                .unwrap_or_default(),
            metrics: vec![
                ("RemoteWriteBacklog", stats.backlog),
                ("RemoteWriteDroppedSamples", stats.dropped),
                ("RemoteWriteRejected", stats.rejected),
                ("RemoteWriteRequests", stats.requests),
                ("RemoteWriteRetries", stats.retries),
            ],
            ..health
        }
    }
}

/// The answer of the request out.
async fn wait(sending: &mut Option<Sending>) -> (Option<Connection>, Outcome) {
    match sending {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

impl RemoteWriteTask {
    fn enqueue(&mut self, batch: Batch) {
        let config = &self.settings.config;
        let made = super::requests_of(
            batch.lines.chunks(),
            &self.settings.layout,
            batch.cluster.as_deref(),
            config.max_samples_per_request,
        );
        let due = match made {
            Ok((requests, skipped)) => {
                self.counters
                    .skipped_lines
                    .fetch_add(skipped, Ordering::Relaxed);
                self.queue
                    .push(requests, batch.written, self.sending.is_some())
            }
            Err(error) => {
                // Only past 4 GiB a request, which max-samples-per-request
                // keeps away: nothing to retry, nothing to hold.
                tracing::error!(error = %error, "remote-write: a snapshot could not be encoded; dropped");
                vec![batch.written]
            }
        };
        for ack in due {
            // A sender that is gone (a snapshot the Supervisor gave up on)
            // has nobody to tell.
            let _ = ack.send(());
        }
    }

    /// Starts the front request, if nothing is out or waiting to be retried.
    fn send_next(&mut self) {
        if self.sending.is_some() || self.retry_at.is_some() {
            return;
        }
        let Some(request) = self.queue.next() else {
            return;
        };
        let body = request.body.clone();
        let config = self.settings.config.clone();
        let connection = self.connection.take();
        self.sending = Some(Box::pin(async move {
            match tokio::time::timeout(config.timeout, exchange(connection, &config, body)).await {
                Ok(Ok((connection, outcome))) => (connection, outcome),
                Ok(Err(reason)) => (None, Outcome::NoResponse(reason)),
                Err(_) => (
                    None,
                    Outcome::NoResponse(format!("no answer within {} s", config.timeout.as_secs())),
                ),
            }
        }));
    }

    fn on_outcome(&mut self, outcome: Outcome) {
        self.attempt += 1;
        let answer = match &outcome {
            Outcome::Response {
                status,
                retry_after,
                body,
            } => Answer::Response {
                status: *status,
                retry_after: retry_after.as_deref(),
                body,
            },
            Outcome::NoResponse(_) => Answer::NoResponse,
        };
        let decided = verdict(answer, self.attempt, SystemTime::now());
        match &decided {
            Verdict::Delivered => {
                self.counters.requests.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .last_delivery
                    .store(unix_now(), Ordering::Relaxed);
                self.recovered();
            }
            Verdict::Retry(wait) => {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                let why = match &outcome {
                    Outcome::Response { status, body, .. } => {
                        format!("answered {status}: {}", first_line(body))
                    }
                    Outcome::NoResponse(reason) => reason.clone(),
                };
                self.failing(&why, *wait);
                self.retry_at = Some(Instant::now() + *wait);
            }
            Verdict::Rejected(rejection) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                self.log_rejection(rejection);
                self.recovered();
            }
        }
        if let Answered::Done(done) = self.queue.answered(&decided) {
            self.attempt = 0;
            if let Some(ack) = done {
                let _ = ack.send(());
            }
        }
    }

    /// The receiver cannot take the request now: said once when it starts,
    /// and in the status file until it can.
    fn failing(&mut self, why: &str, wait: Duration) {
        let url = self.settings.config.url.to_string();
        let mut cannot = self
            .counters
            .cannot_deliver
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cannot.is_none() {
            tracing::warn!(url = %url, why = %crate::log_limit::Quoted::new(why.as_bytes()), retry_in_ms = wait.as_millis() as u64,
                "remote-write: the receiver does not take the request; retrying with backoff");
        }
        *cannot = Some(format!("{url}: {why}"));
    }

    fn recovered(&mut self) {
        let mut cannot = self
            .counters
            .cannot_deliver
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cannot.take().is_some() {
            tracing::info!(url = %self.settings.config.url, "remote-write: the receiver takes requests again");
        }
    }

    fn log_rejection(&mut self, rejection: &Rejection) {
        let cause = (rejection.status, rejection.first_line.clone());
        if self.causes_logged.contains(&cause) || self.causes_logged.len() >= MAX_CAUSES_LOGGED {
            return;
        }
        tracing::warn!(
            url = %self.settings.config.url,
            status = rejection.status,
            answer = %crate::log_limit::Quoted::new(rejection.first_line.as_bytes()),
            "remote-write: the receiver rejected a request; not retried, counted in RemoteWriteRejected (logged once per cause)"
        );
        self.causes_logged.insert(cause);
    }
}

/// One request on `connection` (or a new one): the answer's status,
/// `Retry-After` and the start of its body; the connection back when it
/// can be used again.
async fn exchange(
    connection: Option<Connection>,
    config: &RemoteWriteConfig,
    body: Bytes,
) -> Result<(Option<Connection>, Outcome), String> {
    let reused = match connection {
        Some(mut sender) => sender.ready().await.is_ok().then_some(sender),
        None => None,
    };
    let mut sender = match reused {
        Some(sender) => sender,
        None => connect(config).await?,
    };
    let url = &config.url;
    let mut request = hyper::Request::post(url.path.as_str())
        .header(HOST, url.host_port())
        .header(
            USER_AGENT,
            concat!("haproxystats/", env!("CARGO_PKG_VERSION")),
        )
        .header(CONTENT_TYPE, PROTOBUF)
        .header(CONTENT_ENCODING, SNAPPY)
        .header(VERSION_HEADER.0, VERSION_HEADER.1);
    if let Some(credentials) = &url.credentials {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", credentials.user, credentials.password));
        request = request.header(AUTHORIZATION, format!("Basic {token}"));
    }
    for (name, value) in &config.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| format!("cannot make the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("exchange: {e}"))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (whole, body) = match Limited::new(response.into_body(), BODY_LIMIT)
        .collect()
        .await
    {
        Ok(collected) => (true, collected.to_bytes()),
        Err(_) => (false, Bytes::new()),
    };
    let head = body
        .get(..body.len().min(BODY_HEAD))
        .unwrap_or_default()
        .to_vec();
    Ok((
        whole.then_some(sender),
        Outcome::Response {
            status,
            retry_after,
            body: head,
        },
    ))
}

async fn connect(config: &RemoteWriteConfig) -> Result<Connection, String> {
    let stream = crate::puller::http::connect(&config.url)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("exchange: {e}"))?;
    tokio::spawn(async move {
        // Ends with the connection; its error, if any, is the next
        // request's to report.
        let _ = connection.await;
    });
    Ok(sender)
}
