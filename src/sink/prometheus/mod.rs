//! The Prometheus endpoint sink (`[prometheus]`): the latest processed
//! snapshot, served in the Prometheus text exposition format.
//!
//! - [`config`]: its section, `[prometheus]`.
//! - [`fields`]: each metric's name, type (HAProxy's cumulative fields are
//!   counters) and help (HAProxy's own descriptions) (pure).
//! - [`series`]: a snapshot's Graphite lines as series (name, labels,
//!   value): the one mapping the page and remote write share (pure).
//! - [`exposition`]: those series as the page's text (pure).
//! - [`served`]: the latest snapshot per load balancer, cluster or node.
//! - [`server`]: the HTTP server, bounded against clients that hold
//!   connections or never read.
//! - [`slots`]: which connection to close for a new one (pure).
//! - [`sink`]: the PrometheusSink actor.
//!
//! The series come from the very lines Graphite gets, read back as the
//! Kafka sink's `influx` reads them (src/sink/paths.rs): both carry the
//! same values by construction.

pub mod config;
pub mod exposition;
pub mod fields;
pub mod series;
pub mod served;
pub mod server;
pub mod sink;
pub mod slots;

use std::net::TcpListener;
use std::sync::Arc;

use crate::config::Config;
use crate::sink::paths::PathLayout;

/// The endpoint's address could not be listened on at start.
#[derive(Debug, thiserror::Error)]
#[error("[prometheus] listen = '{listen}': cannot listen on it: {source}")]
pub struct BindError {
    /// The option's value.
    pub listen: String,
    /// Why (the last address tried).
    pub source: std::io::Error,
}

/// What every start of the sink shares: the socket, bound once, and the
/// latest snapshots, which outlive a crash.
#[derive(Debug)]
pub struct Settings {
    /// Bound and listening, non-blocking.
    pub listener: TcpListener,
    /// The URL path of the page.
    pub path: String,
    /// Where the lines' paths put what.
    pub layout: PathLayout,
    /// The latest snapshots.
    pub served: Arc<served::Served>,
    /// The server's timeouts and connection slots.
    pub limits: server::Limits,
}

/// The sink `[prometheus]` configures, if there is the section; its
/// address is bound here, before anything starts, so that a port in use
/// stops the command with one line.
pub fn spec(config: &Config, naming: &super::Naming<'_>) -> super::Started {
    let Some(prometheus) = config.sinks.get::<self::config::PrometheusSection>() else {
        return Ok(None);
    };
    let listener = bind(&prometheus.addresses).map_err(|source| super::StartError {
        source: Box::new(BindError {
            listen: prometheus.listen.clone(),
            source,
        }),
    })?;
    let settings = Arc::new(Settings {
        listener,
        path: prometheus.path.clone(),
        layout: PathLayout::new(config, naming.prefix, naming.host, naming.lines),
        served: Arc::default(),
        limits: server::Limits {
            header_timeout: server::HEADER_TIMEOUT,
            write_timeout: prometheus.write_timeout,
            max_connections: prometheus.max_connections,
        },
    });
    tracing::info!(listen = %prometheus.listen, path = %prometheus.path, "prometheus: serving the latest snapshot");
    Ok(Some(super::SinkSpec::new("prometheus", move || {
        sink::PrometheusSink::new(Arc::clone(&settings))
    })))
}

/// The first of `addresses` that can be listened on.
fn bind(addresses: &[std::net::SocketAddr]) -> std::io::Result<TcpListener> {
    let mut last = std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address");
    for address in addresses {
        match TcpListener::bind(address) {
            Ok(listener) => {
                listener.set_nonblocking(true)?;
                return Ok(listener);
            }
            Err(error) => last = error,
        }
    }
    Err(last)
}
