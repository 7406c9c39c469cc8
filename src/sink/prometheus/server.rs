//! The HTTP side of the endpoint: `GET <path>` answers the page of
//! [`Served`]; anything else 404 (another path) or 405 (another method).
//! HTTP/1 only (what Prometheus scrapes with), on the sink's own runtime.
//!
//! Bounded against clients that hold connections (issue 24):
//! - a request head must arrive whole within [`Limits::header_timeout`]
//!   (hyper's `header_read_timeout`; it also ends a keep-alive connection
//!   that asks nothing more for that long);
//! - an answer must be written whole within [`Limits::write_timeout`] of
//!   its first byte ([`Guarded`], around the socket): a client that does
//!   not read is dropped, with a reset so that the kernel drops what it
//!   still held of the page;
//! - at most [`Limits::max_connections`] at once; when all are taken a new
//!   connection takes the slot of the one idle the longest (src/sink/
//!   prometheus/slots.rs), so that a scrape is served however many
//!   connections others keep open;
//! - every answer is written from the one shared buffer of the page
//!   ([`Served::page`]): hyper queues it by reference (its vectored-write
//!   strategy, which [`Guarded`] keeps), so a connection holds no copy;
//! - a request head larger than [`MAX_HEAD`] ends its connection.
//!
//! hyper does all of this but the write deadline and the slots: those are
//! the socket wrapper and the accept loop here.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::convert::Infallible;
use std::io::IoSlice;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::Sleep;

use super::served::Served;
use super::slots::{Activity, ConnectionId, Slots};

/// The exposition format's content type.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A client that sends no whole request head within this is disconnected.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest request head read (hyper's read buffer; its default, about
/// 400 KB, held by each of hundreds of connections, would be 100 MB).
/// Prometheus' is a few hundred bytes.
pub const MAX_HEAD: usize = 16 * 1024;

/// How long and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// For a whole request head.
    pub header_timeout: Duration,
    /// For a whole answer, from its first byte.
    pub write_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// What the server shares with the sink.
#[derive(Debug)]
pub struct Endpoint {
    /// The URL path of the page.
    pub path: String,
    /// The latest snapshots.
    pub served: Arc<Served>,
    /// The timeouts and the number of slots.
    pub limits: Limits,
    /// Pages served since start.
    pub scrapes: AtomicU64,
    /// Connections closed to give their slot to a new one, since start.
    pub shed: AtomicU64,
    /// Connections dropped for not reading an answer in time, since start.
    pub write_timeouts: AtomicU64,
}

impl Endpoint {
    /// Serves `served` at `path`.
    pub fn new(path: String, served: Arc<Served>, limits: Limits) -> Endpoint {
        Endpoint {
            path,
            served,
            limits,
            scrapes: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            write_timeouts: AtomicU64::new(0),
        }
    }
}

/// The connections of one accept loop: their slots, and how to close each.
struct Connections {
    slots: Slots,
    /// Tells a connection's task that its slot was given away, and what
    /// the connection was doing.
    close: HashMap<ConnectionId, oneshot::Sender<Activity>>,
}

type Shared = Rc<RefCell<Connections>>;

/// Accepts connections on `listener` until dropped, each served on a task
/// of its own (on this thread: the sink's arbiter).
pub async fn serve(listener: TcpListener, endpoint: Arc<Endpoint>) {
    let connections: Shared = Rc::new(RefCell::new(Connections {
        slots: Slots::new(endpoint.limits.max_connections),
        close: HashMap::new(),
    }));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // EMFILE and the like: wait a little rather than spin.
                tracing::warn!(error = %error, "prometheus: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (id, closing) = connections.borrow_mut().slots.open();
        if let Some((closing, activity)) = closing {
            endpoint.shed.fetch_add(1, Ordering::Relaxed);
            // Its task may already be ending: then nobody hears this.
            if let Some(close) = connections.borrow_mut().close.remove(&closing) {
                let _ = close.send(activity);
            }
        }
        let (close, closed) = oneshot::channel();
        connections.borrow_mut().close.insert(id, close);
        tokio::task::spawn_local(connection(
            stream,
            id,
            closed,
            Rc::clone(&connections),
            Arc::clone(&endpoint),
        ));
    }
}

/// Serves one connection until it ends or its slot is given away.
async fn connection(
    stream: TcpStream,
    id: ConnectionId,
    closed: oneshot::Receiver<Activity>,
    connections: Shared,
    endpoint: Arc<Endpoint>,
) {
    let reset = Rc::new(Cell::new(false));
    let io = Guarded {
        stream,
        write_timeout: endpoint.limits.write_timeout,
        deadline: None,
        reset: Rc::clone(&reset),
        answered: {
            let connections = Rc::clone(&connections);
            Box::new(move || connections.borrow_mut().slots.set(id, Activity::Idle))
        },
    };
    let service = hyper::service::service_fn(|request| {
        connections.borrow_mut().slots.set(id, Activity::Busy);
        let answer = answer(&endpoint, &request);
        async move { Ok::<_, Infallible>(answer) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(endpoint.limits.header_timeout)
        .max_buf_size(MAX_HEAD);
    let served = builder.serve_connection(TokioIo::new(io), service);
    tokio::select! {
        served = served => match served {
            Err(error) if is_write_timeout(&error) => {
                endpoint.write_timeouts.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::debug!(error = %error, "prometheus: connection ended with an error");
            }
            Ok(()) => {}
        },
        // Its slot went to a new connection: closed as it is, at once. In
        // the middle of an answer, with a reset (what is unsent goes).
        activity = closed => reset.set(activity == Ok(Activity::Busy)),
    }
    let mut connections = connections.borrow_mut();
    connections.slots.close(id);
    connections.close.remove(&id);
}

fn is_write_timeout(error: &hyper::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
}

fn answer(endpoint: &Endpoint, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != endpoint.path {
        return status(StatusCode::NOT_FOUND, "not found\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return status(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    endpoint.scrapes.fetch_add(1, Ordering::Relaxed);
    let mut response = Response::new(Full::new(endpoint.served.page()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
    response
}

fn status(code: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = code;
    response
}

/// The socket of a connection, with a deadline on each answer: from the
/// first byte written to the flush that ends it (hyper flushes the socket
/// once its buffer is written out). Past it, writing fails (`TimedOut`) and
/// the socket is reset when dropped.
struct Guarded {
    stream: TcpStream,
    write_timeout: Duration,
    /// Running while an answer is written.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Close with a reset rather than a FIN.
    reset: Rc<Cell<bool>>,
    /// Called when an answer is written whole.
    answered: Box<dyn FnMut()>,
}

impl Guarded {
    /// `written` (a poll of the socket's write), failing once the answer's
    /// deadline passed.
    fn deadline<T>(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if written.is_ready() {
            return written;
        }
        let Some(deadline) = self.deadline.as_mut() else {
            return written;
        };
        ready!(deadline.as_mut().poll(cx));
        self.reset.set(true);
        let timeout = self.write_timeout;
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the answer was not read within {timeout:?}"),
        )))
    }

    /// The first write of an answer starts its deadline.
    fn start(&mut self) {
        if self.deadline.is_none() {
            let timeout = self.write_timeout;
            self.deadline = Some(Box::pin(tokio::time::sleep(timeout)));
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.start();
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.deadline(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.start();
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.deadline(cx, written)
    }

    /// Kept: without it hyper copies each answer into a buffer of its own.
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
        if self.deadline.take().is_some() {
            (self.answered)();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if self.reset.get() {
            // Nothing to do if it fails: the socket closes either way.
            let _ = self.stream.set_zero_linger();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::sink::paths::PathLayout;
    use crate::sink::prometheus::exposition::convert;

    const SCRAPE: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n";

    /// An endpoint serving a page of `backends` series, on a port of its
    /// own, with `limits`.
    async fn endpoint(backends: usize, limits: Limits) -> (std::net::SocketAddr, Arc<Endpoint>) {
        let lines: String = (0..backends)
            .map(|b| format!("ns.lb1.haproxy.backend.backend_number_{b}.scur {b} 10\n"))
            .collect();
        let served = Arc::new(Served::default());
        let converted = convert(&[lines.as_bytes()], &PathLayout::test_node(), None);
        served.replace(None, 10, converted.exposition);
        let endpoint = Arc::new(Endpoint::new("/metrics".into(), served, limits));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::task::spawn_local(serve(listener, Arc::clone(&endpoint)));
        (addr, endpoint)
    }

    fn limits(max_connections: usize) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            max_connections,
        }
    }

    /// One scrape on a connection of its own: the status line and the
    /// body's length.
    async fn scrape(addr: std::net::SocketAddr) -> (String, usize) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await
            .expect("request");
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut reply))
            .await
            .expect("answered in time")
            .expect("read");
        let text = String::from_utf8_lossy(&reply);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (head.lines().next().unwrap_or("").to_owned(), body.len())
    }

    /// Whether the peer closed `stream` (end of stream or reset), reading
    /// and dropping what it sent, for at most `within`.
    async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
        let mut buf = vec![0; 1 << 16];
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// `HEAD /metrics` on `stream`, kept open: the answer's head.
    async fn head(stream: &mut tokio::net::TcpStream) -> String {
        stream
            .write_all(b"HEAD /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .expect("request");
        let mut head = Vec::new();
        let mut byte = [0];
        while !head.ends_with(b"\r\n\r\n") {
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await;
            assert!(matches!(read, Ok(Ok(1))), "{read:?} after {head:?}");
            head.push(byte[0]);
        }
        String::from_utf8_lossy(&head).into_owned()
    }

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[actix_rt::test]
    async fn a_client_that_does_not_read_is_dropped_at_the_write_timeout_and_others_are_served() {
        // A page far larger than what the kernel buffers for a client that
        // does not read.
        let (addr, endpoint) = endpoint(120_000, limits(8)).await;
        let (status, page_len) = scrape(addr).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(page_len > 8_000_000, "{page_len}");
        let mut stuck = Vec::new();
        for _ in 0..4 {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.write_all(SCRAPE).await.expect("request");
            stuck.push(stream);
        }
        // While they do not read, scrapes are answered whole.
        assert_eq!(scrape(addr).await.1, page_len);
        let started = Instant::now();
        wait_for("the clients that do not read to be dropped", || {
            endpoint.write_timeouts.load(Ordering::Relaxed) == 4
        })
        .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        // Reset: what they read now is a part of the page, then the end.
        for mut stream in stuck {
            assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
        }
        assert_eq!(endpoint.shed.load(Ordering::Relaxed), 0);
        assert_eq!(scrape(addr).await.1, page_len);
    }

    #[actix_rt::test]
    async fn a_connection_that_sends_no_whole_request_head_is_closed_at_the_header_timeout() {
        let (addr, _) = endpoint(10, limits(8)).await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut partial = tokio::net::TcpStream::connect(addr).await.expect("connect");
        partial
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .expect("write");
        let started = Instant::now();
        assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
        assert!(closed_within(&mut partial, Duration::from_secs(5)).await);
        assert!(started.elapsed() >= Duration::from_millis(900));
    }

    #[actix_rt::test]
    async fn a_request_head_larger_than_the_bound_ends_its_connection_at_once() {
        let (addr, _) = endpoint(10, limits(8)).await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let header = format!("X-Padding: {}\r\n", "a".repeat(MAX_HEAD));
        // Written until the server stops reading (it may reset meanwhile).
        let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\n").await;
        let _ = stream.write_all(header.as_bytes()).await;
        let started = Instant::now();
        assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
        // Not the header timeout's doing.
        assert!(started.elapsed() < Duration::from_millis(900));
        assert_eq!(scrape(addr).await.0, "HTTP/1.1 200 OK");
    }

    #[actix_rt::test]
    async fn when_every_slot_is_taken_a_scrape_takes_the_slot_idle_the_longest() {
        let (addr, endpoint) = endpoint(10, limits(4)).await;
        let connect = || async { tokio::net::TcpStream::connect(addr).await.expect("connect") };
        let mut kept = connect().await;
        let mut idle = vec![connect().await, connect().await, connect().await];
        // The first one asks, and stays open (keep-alive): it is now the
        // one idle the shortest, although the oldest.
        assert!(head(&mut kept).await.starts_with("HTTP/1.1 200"));
        // Each scrape takes a slot; a new idle connection takes its slot
        // back once it is answered.
        let mut newer = Vec::new();
        for round in 0..3 {
            assert_eq!(scrape(addr).await.0, "HTTP/1.1 200 OK", "round {round}");
            newer.push(connect().await);
        }
        for (n, mut stream) in idle.drain(..).enumerate() {
            assert!(
                closed_within(&mut stream, Duration::from_secs(5)).await,
                "idle connection {n}"
            );
        }
        assert_eq!(endpoint.shed.load(Ordering::Relaxed), 3);
        assert!(head(&mut kept).await.starts_with("HTTP/1.1 200"));
        // Far more idle connections than slots: a scrape is still
        // answered.
        let mut flood = Vec::new();
        for _ in 0..50 {
            flood.push(connect().await);
        }
        assert_eq!(scrape(addr).await.0, "HTTP/1.1 200 OK");
        assert!(endpoint.shed.load(Ordering::Relaxed) >= 50);
        drop(newer);
    }
}
