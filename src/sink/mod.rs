//! The sinks (SPEC §5): where processed lines go.
//!
//! - [`SINKS`]: the one list of sinks, each with its section; [`options`]
//!   hands their sections to the configuration and the man page,
//!   [`configured`] starts the ones a configuration enables.
//! - [`messages`]: what the Supervisor and every sink say to each other.
//! - [`running`]: a configured sink ([`SinkSpec`]) and a started one
//!   ([`RunningSink`]), whatever its kind.
//! - [`chunks`]: a snapshot's lines in chunks of whole lines, as handed over,
//!   then shared by every sink ([`chunks::SharedLines`]).
//! - [`chunk_pool`]: chunks every sink is done with, for the Processors to
//!   fill again.
//! - [`acks`]: when a batch behind a backlog may be acknowledged (pure).
//! - [`backlog`]: the bounded FIFO in front of a network sink; drops oldest (pure).
//! - [`retry`]: the reconnect schedule (pure).
//! - [`confirm`]: which written bytes count as delivered (pure).
//! - [`tcp_state`]: the kernel's view of a connection (`SIOCOUTQ`, `TCP_INFO`).
//! - [`writer_shell`]: the actor of a sink that is one task (Graphite,
//!   Kafka, raw snapshots): channel, flush, health, crash.
//! - [`graphite`]: the GraphiteSink actor: one connection, backlog, reconnects.
//! - [`local_store`]: `dir/<ts>/stats`, written atomically (debugging).
//! - [`kafka`]: the KafkaSink: formats, settings, the producer actor.
//! - [`snapshots`]: raw snapshots to Kafka, for central processing.
//! - [`prometheus`]: the latest snapshot served to Prometheus.
//! - [`remote_write`]: every snapshot pushed with Prometheus remote write.
//! - [`paths`]: Graphite lines read back as kind, labels and metric, for
//!   the sinks that are not Graphite.
//!
//! Every sink takes the same [`chunks::SharedLines`] and acknowledges each
//! snapshot once it is done with it; the Supervisor removes a snapshot once
//! every enabled sink did (src/supervisor/pipeline.rs).
//!
//! Adding a sink: a folder (or file) here with an actor handling
//! [`messages`], its section as a [`crate::config::SinkSection`] (options,
//! defaults, docs, checks, what `-p` prints) and a `spec` function, and one
//! line in [`SINKS`]. The configuration, `-p`, the man page, the
//! Supervisor, the status file, `check` and the self metrics take it from
//! there (tests/sink_config.rs shows it with a sink of its own).

pub mod acks;
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
pub mod writer_shell;

pub use running::{RunningSink, SinkSpec};
pub use slot::SinkSlot;

use crate::config::{Config, SinkOptions};
pub use paths::Lines;

/// Every sink, in delivery order: the one list. The configuration is read
/// with their sections ([`options`]), `-p` prints them and the man page
/// documents them in this order, [`configured`] starts the enabled ones.
pub const SINKS: &[Sink] = &[
    Sink {
        options: SinkOptions::Graphite,
        takes: Takes::Lines,
        spec: graphite::spec,
        enabled_by: Some("[graphite]"),
    },
    Sink::own(&local_store::LocalStoreSection, local_store::spec),
    Sink {
        options: SinkOptions::Kafka,
        takes: Takes::Lines,
        spec: kafka::spec,
        enabled_by: Some("[kafka] topic"),
    },
    Sink::own(&prometheus::config::PrometheusSection, prometheus::spec),
    Sink::own(
        &remote_write::config::RemoteWriteSection,
        remote_write::spec,
    ),
    Sink {
        options: SinkOptions::Kafka,
        takes: Takes::Snapshots,
        spec: snapshots::spec,
        enabled_by: Some("[kafka] snapshots-topic"),
    },
];

/// One sink of [`SINKS`]: where its options are and how it starts.
pub struct Sink {
    /// Its section.
    pub options: SinkOptions,
    /// What it is handed.
    pub takes: Takes,
    /// Its [`SinkSpec`] when the configuration enables it.
    pub spec: fn(&Config, &Naming<'_>) -> Started,
    /// What enables it, for a message that says none is (`[name]` when `None`).
    pub enabled_by: Option<&'static str>,
}

impl Sink {
    /// A sink of lines with a section of its own, on when declared.
    pub const fn own(
        section: &'static dyn crate::config::Section,
        spec: fn(&Config, &Naming<'_>) -> Started,
    ) -> Sink {
        Sink {
            options: SinkOptions::Own(section),
            takes: Takes::Lines,
            spec,
            enabled_by: None,
        }
    }

    /// What enables it: `[local-store]`, `[kafka] topic`.
    pub fn enabled_by(&self) -> String {
        self.enabled_by
            .map_or_else(|| format!("[{}]", self.options.name()), str::to_owned)
    }
}

/// What a sink is handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// Metric lines ([`messages::SendLinesAcked::lines`]).
    Lines,
    /// Raw snapshot directories ([`messages::LinesOf::Snapshot`]): an
    /// edge's only sink; central never sends raw snapshots back.
    Snapshots,
}

/// Where the lines a sink gets are named: under `prefix`
/// (`<namespace>.<host>`, or central's namespace), of load balancer `host`
/// (the host name as it appears there), laid out as `lines` says.
#[derive(Debug, Clone, Copy)]
pub struct Naming<'a> {
    /// The metric path prefix.
    pub prefix: &'a str,
    /// The host name in it.
    pub host: &'a str,
    /// One load balancer's lines, or many.
    pub lines: Lines,
}

/// A sink's [`Sink::spec`]: `None` when the configuration does not enable it.
pub type Started = Result<Option<SinkSpec>, StartError>;

/// A sink the configuration enables cannot start (its port is in use):
/// the command stops before anything starts, exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct StartError {
    /// Why, in one line naming the section and option.
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// The sinks' sections, in the order of [`SINKS`], for the configuration's
/// reader and printer and the man page.
pub fn options() -> Vec<SinkOptions> {
    let mut options: Vec<SinkOptions> = Vec::with_capacity(SINKS.len());
    for sink in SINKS {
        if !options.iter().any(|o| o.name() == sink.options.name()) {
            options.push(sink.options);
        }
    }
    options
}

/// How to enable a sink of lines, for the message that says none is:
/// "[graphite], [local-store], [kafka] topic or [prometheus]".
pub fn enabling_lines() -> String {
    let all: Vec<String> = SINKS
        .iter()
        .filter(|sink| sink.takes == Takes::Lines)
        .map(Sink::enabled_by)
        .collect();
    match all.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The sinks `config` enables, in delivery order. `prefix` is the metric
/// path prefix of the lines (`<namespace>.<host>`), `host` the host name as
/// it appears there: sinks that key or tag by them take them from here.
/// An edge (`[process] local = false`) makes no lines: only the sinks of
/// raw snapshots are its.
/// A sink that cannot start (its port in use) is an error: the command
/// stops before anything starts.
pub fn configured(config: &Config, prefix: &str, host: &str) -> Result<Vec<SinkSpec>, StartError> {
    let naming = Naming {
        prefix,
        host,
        lines: Lines::OneHost,
    };
    let takes = |sink: &Sink| config.process.local || sink.takes == Takes::Snapshots;
    start(config, &naming, takes)
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
) -> Result<Vec<SinkSpec>, StartError> {
    let naming = Naming {
        prefix,
        host,
        lines,
    };
    start(config, &naming, |sink| sink.takes == Takes::Lines)
}

fn start(
    config: &Config,
    naming: &Naming<'_>,
    wanted: impl Fn(&Sink) -> bool,
) -> Result<Vec<SinkSpec>, StartError> {
    let mut specs = Vec::new();
    for sink in SINKS.iter().filter(|sink| wanted(sink)) {
        specs.extend((sink.spec)(config, naming)?);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sections_follow_the_sinks_each_once() {
        let names: Vec<&str> = options().iter().map(SinkOptions::name).collect();
        assert_eq!(
            names,
            [
                "graphite",
                "local-store",
                "kafka",
                "prometheus",
                "remote-write"
            ]
        );
    }

    #[test]
    fn the_message_without_a_sink_of_lines_names_every_one() {
        assert_eq!(
            enabling_lines(),
            "[graphite], [local-store], [kafka] topic, [prometheus] or [remote-write]"
        );
    }

    #[test]
    fn an_edge_starts_only_the_sinks_of_raw_snapshots() {
        let mut config = crate::config::load_str(
            "[process]\nlocal = false\n[kafka]\nbrokers = k:9092\nsnapshots-topic = raw\n\
             [local-store]\n",
            &options(),
        )
        .expect("valid")
        .config;
        let names = |config: &Config| -> Vec<&'static str> {
            configured(config, "p.h", "h")
                .expect("started")
                .iter()
                .map(SinkSpec::name)
                .collect()
        };
        assert_eq!(names(&config), ["snapshots"]);
        config.process.local = true;
        assert_eq!(
            names(&config),
            ["graphite", "local-store", "kafka", "snapshots"]
        );
    }
}
