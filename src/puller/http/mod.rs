//! HTTP stats pages as a source (`servers = http[s]://...`): `GET
//! <path>;csv` gives the `show stat` CSV. There is no `show info` over HTTP,
//! so such a source gives no daemon metrics.
//!
//! - [`StatsUrl`] (in `config::stats_url`): the `servers` entry, parsed;
//!   credentials never shown (pure).
//! - here: the connection (TCP, TLS by OpenSSL with the system's trust
//!   store) and one GET with hyper; the body is read like any reply
//!   ([`client`](super::client)), under the same limits.

use std::io;
use std::sync::OnceLock;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::header::{AUTHORIZATION, CONNECTION, HOST, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use openssl::ssl::{SslConnector, SslMethod};
use tokio::net::TcpStream;
use tokio_util::io::StreamReader;

use super::client::{ReplyBytes, ReplyStream};
pub use crate::config::stats_url::{Credentials, StatsUrl};

/// The page did not give its CSV.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// `stats auth` refused the credentials (or none were given).
    #[error("the stats page answered 401 Unauthorized: wrong or missing user:password")]
    Unauthorized,
    /// Any other status than `200 OK`.
    #[error("the stats page answered {status} {reason}")]
    Status {
        /// The status code.
        status: u16,
        /// Its reason phrase.
        reason: &'static str,
    },
    /// The exchange itself failed (not HTTP, connection closed, ...).
    #[error("HTTP exchange failed: {0}")]
    Exchange(String),
}

/// Keeps an HTTP connection's task running while its body is read, and
/// stops it when dropped (a cancelled pull leaves nothing behind).
pub struct Driver(tokio::task::JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Opens a connection to the page's host: TCP, then TLS for `https://`
/// (server name and certificate checked against the system's trust store,
/// which `SSL_CERT_FILE` / `SSL_CERT_DIR` override as for any OpenSSL client).
pub(crate) async fn connect(url: &StatsUrl) -> io::Result<Box<dyn ReplyStream>> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
    if !url.tls {
        return Ok(Box::new(tcp));
    }
    let connector = connector()?;
    let ssl = connector
        .configure()
        .and_then(|config| config.into_ssl(&url.host))
        .map_err(io::Error::other)?;
    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(io::Error::other)?;
    std::pin::Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| io::Error::other(format!("TLS handshake: {e}")))?;
    Ok(Box::new(stream))
}

/// One connector for the process: it holds the trust store, read once.
fn connector() -> io::Result<&'static SslConnector> {
    static CONNECTOR: OnceLock<Result<SslConnector, String>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            SslConnector::builder(SslMethod::tls_client())
                .map(|builder| builder.build())
                .map_err(|e| format!("cannot set up TLS: {e}"))
        })
        .as_ref()
        .map_err(|e| io::Error::other(e.clone()))
}

/// Sends `GET <path>;csv` on `stream`; answers the body of a `200 OK`.
pub(super) async fn get(
    stream: Box<dyn ReplyStream>,
    url: &StatsUrl,
) -> Result<(ReplyBytes, Driver), HttpError> {
    let exchange = |e: hyper::Error| HttpError::Exchange(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(exchange)?;
    let driver = Driver(tokio::spawn(async move {
        // Its error, if any, is the body's too: reported by the reader.
        let _ = connection.await;
    }));
    let request = request(url)?;
    let response = sender.send_request(request).await.map_err(exchange)?;
    let status = response.status();
    if status == hyper::StatusCode::UNAUTHORIZED {
        return Err(HttpError::Unauthorized);
    }
    if status != hyper::StatusCode::OK {
        return Err(HttpError::Status {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or(""),
        });
    }
    let body = response
        .into_body()
        .into_data_stream()
        .map_err(io::Error::other);
    Ok((Box::new(StreamReader::new(body)), driver))
}

fn request(url: &StatsUrl) -> Result<hyper::Request<Empty<Bytes>>, HttpError> {
    let bad = |e: hyper::http::Error| HttpError::Exchange(format!("cannot build the request: {e}"));
    let mut request = hyper::Request::get(url.csv_path())
        .header(HOST, url.host_port())
        .header(
            USER_AGENT,
            concat!("haproxystats/", env!("CARGO_PKG_VERSION")),
        )
        .header(CONNECTION, "close")
        .body(Empty::new())
        .map_err(bad)?;
    if let Some(credentials) = &url.credentials {
        request
            .headers_mut()
            .insert(AUTHORIZATION, basic_auth(credentials)?);
    }
    Ok(request)
}

fn basic_auth(credentials: &Credentials) -> Result<HeaderValue, HttpError> {
    let pair = format!("{}:{}", credentials.user, credentials.password);
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| HttpError::Exchange("credentials do not fit a header".into()))?;
    // Never printed by hyper's own debug output.
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_asks_for_the_csv_with_basic_auth() {
        let url = crate::config::stats_url::parse("http://admin:s3cret@lb:8404/stats")
            .unwrap_or_else(|e| panic!("{e}"));
        let request = request(&url).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.uri(), "/stats;csv");
        assert_eq!(request.headers()[HOST], "lb:8404");
        // base64("admin:s3cret")
        assert_eq!(request.headers()[AUTHORIZATION], "Basic YWRtaW46czNjcmV0");
        assert!(request.headers()[AUTHORIZATION].is_sensitive());
        assert!(!format!("{request:?}").contains("YWRtaW46czNjcmV0"));
    }
}
