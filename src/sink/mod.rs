//! The sinks (SPEC §5): where processed lines go.
//!
//! - [`configured`]: the one list of sinks, the ones a configuration enables.
//! - [`messages`]: what the Supervisor and every sink say to each other.
//! - [`running`]: a configured sink ([`SinkSpec`]) and a started one
//!   ([`RunningSink`]), whatever its kind.
//! - [`chunks`]: a snapshot's lines in chunks of whole lines, as handed over,
//!   then shared by every sink ([`chunks::SharedLines`]).
//! - [`chunk_pool`]: chunks every sink is done with, for the Processors to
//!   fill again.
//! - [`backlog`]: the bounded FIFO in front of a network sink; drops oldest (pure).
//! - [`retry`]: the reconnect schedule (pure).
//! - [`confirm`]: which written bytes count as delivered (pure).
//! - [`tcp_state`]: the kernel's view of a connection (`SIOCOUTQ`, `TCP_INFO`).
//! - [`graphite`]: the GraphiteSink actor: one connection, backlog, reconnects.
//! - [`local_store`]: `dir/<ts>/stats`, written atomically (debugging).
//! - [`kafka`]: the KafkaSink: formats, settings, the producer actor.
//! - [`snapshots`]: raw snapshots to Kafka, for central processing.
//! - [`prometheus`]: the latest snapshot served to Prometheus.
//! - [`paths`]: Graphite lines read back as kind, labels and metric, for
//!   the sinks that are not Graphite.
//!
//! Every sink takes the same [`chunks::SharedLines`] and acknowledges each
//! snapshot once it is done with it; the Supervisor removes a snapshot once
//! every enabled sink did (src/supervisor/pipeline.rs).
//!
//! Adding a sink: a folder (or file) here with an actor handling
//! [`messages`] and a `spec` function, its section in src/config/, and one
//! line in [`configured`]. The Supervisor, the status file, `check` and the
//! self metrics take it from there.

pub mod backlog;
pub mod chunk_pool;
pub mod chunks;
pub mod confirm;
pub mod graphite;
pub mod kafka;
pub mod local_store;
pub mod messages;
pub mod paths;
pub mod prometheus;
pub mod remote_write;
pub mod retry;
pub mod running;
pub mod slot;
pub mod snapshots;
pub mod tcp_state;

pub use running::{RunningSink, SinkSpec};
pub use slot::SinkSlot;

use crate::config::Config;
pub use paths::Lines;

/// The sinks `config` enables, in delivery order. `prefix` is the metric
/// path prefix of the lines (`<namespace>.<host>`), `host` the host name as
/// it appears there: sinks that key or tag by them take them from here.
/// An edge (`[process] local = false`) makes no lines: only the sinks of
/// raw snapshots are its.
/// A sink that cannot start (its port in use) is an error: the command
/// stops before anything starts.
pub fn configured(
    config: &Config,
    prefix: &str,
    host: &str,
) -> Result<Vec<SinkSpec>, prometheus::BindError> {
    let raw = snapshots::spec(config, host);
    if !config.process.local {
        return Ok(raw.into_iter().collect());
    }
    let mut sinks = line_sinks(config, prefix, host, Lines::OneHost)?;
    sinks.extend(raw);
    Ok(sinks)
}

/// The sinks of metric lines `config` enables, in delivery order: every
/// sink but the one of raw snapshots. Central processing (SPEC §7) sends
/// its lines to these, never raw snapshots back to the topic they came from,
/// with `lines` = [`Lines::PerLoadBalancer`] and `prefix` = the namespace.
pub fn line_sinks(
    config: &Config,
    prefix: &str,
    host: &str,
    lines: Lines,
) -> Result<Vec<SinkSpec>, prometheus::BindError> {
    Ok([
        graphite::spec(config),
        local_store::spec(config),
        kafka::spec(config, prefix, host, lines),
        prometheus::spec(config, prefix, host, lines)?,
    ]
    .into_iter()
    .flatten()
    .collect())
}
