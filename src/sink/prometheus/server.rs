//! The HTTP side of the endpoint: `GET <path>` answers the page of
//! [`Served`]; anything else 404 (another path) or 405 (another method).
//! HTTP/1 only (what Prometheus scrapes with), on the sink's own runtime.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::served::Served;

/// The exposition format's content type.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A client that sends no whole request head within this is disconnected.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; more are closed as they come (a scraper
/// needs one, a few tools beside it).
const MAX_CONNECTIONS: usize = 64;

/// What the server shares with the sink.
#[derive(Debug)]
pub struct Endpoint {
    /// The URL path of the page.
    pub path: String,
    /// The latest snapshots.
    pub served: Arc<Served>,
    /// Pages served since start.
    pub scrapes: AtomicU64,
    /// Connections open now.
    connections: AtomicUsize,
}

impl Endpoint {
    /// Serves `served` at `path`.
    pub fn new(path: String, served: Arc<Served>) -> Endpoint {
        Endpoint {
            path,
            served,
            scrapes: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
        }
    }
}

/// Accepts connections on `listener` until dropped, each served on a task
/// of its own.
pub async fn serve(listener: TcpListener, endpoint: Arc<Endpoint>) {
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
        if endpoint.connections.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            endpoint.connections.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        let endpoint = Arc::clone(&endpoint);
        tokio::task::spawn_local(async move {
            let service = hyper::service::service_fn(|request| {
                let answer = answer(&endpoint, &request);
                async move { Ok::<_, Infallible>(answer) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(error = %error, "prometheus: connection ended with an error");
            }
            endpoint.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

fn answer(endpoint: &Endpoint, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != endpoint.path {
        return status(StatusCode::NOT_FOUND, "not found\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return status(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    endpoint.scrapes.fetch_add(1, Ordering::Relaxed);
    let mut response = Response::new(Full::new(Bytes::from(endpoint.served.page())));
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
