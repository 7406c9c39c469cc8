//! The validated configuration: one typed struct that every part of the
//! program receives. Nothing after start-up looks an option up by name.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

use crate::catalogue::StatMetric;

/// The whole effective configuration (SPEC §2).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[paths]`.
    pub paths: PathsConfig,
    /// `[pull]`.
    pub pull: PullConfig,
    /// `[process]`.
    pub process: ProcessConfig,
    /// `[graphite]`.
    pub graphite: GraphiteConfig,
    /// `[kafka]` (ours): `Some` when the section exists.
    pub kafka: Option<KafkaConfig>,
    /// The sections of the sinks' own (`[local-store]`, `[prometheus]`,
    /// ...), each `Some` when declared; a sink finds its own by type.
    pub sinks: super::SinkConfigs,
    /// `[central]` (ours, SPEC §7): `Some` when the section exists; see
    /// `config::resolve_central` for the defaults.
    pub central: Option<CentralConfig>,
    /// `[frontend-groups]`, `[backend-groups]`, `[server-groups]`.
    pub groups: Groups,
}

impl Config {
    /// Whether raw snapshots go to `[kafka] snapshots-topic`: then pulls
    /// are aligned to the epoch, so that load balancers' slots match.
    pub fn publishes_snapshots(&self) -> bool {
        self.kafka
            .as_ref()
            .is_some_and(|kafka| kafka.snapshots_topic.is_some())
    }
}

/// `[paths]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PathsConfig {
    /// `base-dir`: the root of haproxystats' directory layout.
    pub base_dir: PathBuf,
}

/// Log level names accepted by `loglevel` (Python's logging names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `debug`.
    Debug,
    /// `info`.
    Info,
    /// `warning` (also `warn`).
    Warning,
    /// `error`.
    Error,
    /// `critical` (also `fatal`); logged as error, the most severe tracing level.
    Critical,
}

impl LogLevel {
    /// The name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        }
    }

    /// The tracing level this maps to.
    pub fn tracing_level(self) -> tracing::Level {
        match self {
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Warning => tracing::Level::WARN,
            LogLevel::Error | LogLevel::Critical => tracing::Level::ERROR,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many extra connection attempts follow a failed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// `-1`: retry until it works (or a cycle timeout cancels).
    Forever,
    /// `0` = none, `N` = N extra attempts.
    Times(u32),
}

impl fmt::Display for Retries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retries::Forever => f.write_str("-1"),
            Retries::Times(n) => write!(f, "{n}"),
        }
    }
}

/// One entry of `pull.servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsEndpoint {
    /// `unix:///path/to/socket`.
    Unix(PathBuf),
    /// `tcp://host:port`.
    Tcp {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// `master:///path/to/master.sock`: the master CLI of HAProxy in
    /// master-worker mode (`-W -S`); its current workers are pulled through it.
    Master(PathBuf),
    /// `http[s]://[user:pass@]host[:port]/path`: an HTTP stats page
    /// (`show stat` only).
    Http(super::stats_url::StatsUrl),
}

impl fmt::Display for StatsEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatsEndpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            StatsEndpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            StatsEndpoint::Master(path) => write!(f, "master://{}", path.display()),
            // Without its credentials: this is what logs and `-P` show.
            StatsEndpoint::Http(url) => url.fmt(f),
        }
    }
}

/// `[pull]` (SPEC §3).
#[derive(Debug, Clone, PartialEq)]
pub struct PullConfig {
    /// `loglevel`, inherited from `[DEFAULT]`.
    pub loglevel: LogLevel,
    /// `socket-dir`: every UNIX socket directly in it is pulled. `None` when
    /// set to an empty value (only `servers` are pulled).
    pub socket_dir: Option<PathBuf>,
    /// `servers`: comma-separated `unix://`, `tcp://`, `master://` and
    /// `http(s)://` URLs pulled as well.
    pub servers: Vec<StatsEndpoint>,
    /// `retries`: extra connection attempts per socket.
    pub retries: Retries,
    /// `timeout`: connect timeout per attempt.
    pub timeout: Duration,
    /// `interval`: pause between connection attempts.
    pub interval: Duration,
    /// `pull-timeout`: bound on a whole cycle; `None` for 0 (unbounded).
    pub pull_timeout: Option<Duration>,
    /// `pull-interval`: time between cycle starts.
    pub pull_interval: Duration,
    /// `buffer-limit`: largest reply accepted, in bytes.
    pub buffer_limit: usize,
    /// `dst-dir`: where complete snapshots appear.
    pub dst_dir: PathBuf,
    /// `tmp-dst-dir`: where snapshots are assembled (same filesystem as dst-dir).
    pub tmp_dst_dir: PathBuf,
    /// `workers`: threads writing files.
    pub workers: usize,
    /// `queue-size`: pulling pauses while dst-dir holds this many directories.
    pub queue_size: usize,
    /// `master-worker-limit`: most workers pulled through one master CLI.
    pub master_worker_limit: usize,
}

/// `[process]` (SPEC §4).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessConfig {
    /// `loglevel`, inherited from `[DEFAULT]`.
    pub loglevel: LogLevel,
    /// `src-dir`: the directory watched for snapshots.
    pub src_dir: PathBuf,
    /// `workers`: processors working in parallel.
    pub workers: usize,
    /// `frontend-metrics`: what is emitted per frontend (default: all).
    pub frontend_metrics: MetricSelection,
    /// `backend-metrics`: what is emitted per backend (default: all).
    pub backend_metrics: MetricSelection,
    /// `server-metrics`: what is emitted per server (default: all).
    pub server_metrics: MetricSelection,
    /// `exclude-frontends`: file with one frontend name per line to skip.
    pub exclude_frontends: Option<PathBuf>,
    /// `exclude-backends`: file with one backend name per line to skip.
    pub exclude_backends: Option<PathBuf>,
    /// `aggr-server-metrics`: also emit `P.server.<srv>.<m>` across backends.
    pub aggr_server_metrics: bool,
    /// `per-process-metrics`: also emit daemon metrics per HAProxy process.
    pub per_process_metrics: bool,
    /// `calculate-percentages`: emit the daemon's usage percentages.
    pub calculate_percentages: bool,
    /// `local` (ours): process snapshots here. `false` makes an edge
    /// (SPEC §7): it pulls and publishes raw snapshots, and processes
    /// nothing; it needs `[kafka] snapshots-topic`.
    pub local: bool,
    /// `liveness-check-interval`: how often the original checked its
    /// workers. Validated and printed, never used: the supervisor checks its
    /// children every [`LIVENESS_INTERVAL`](super::LIVENESS_INTERVAL) (README, "Where we
    /// differ"); a value other than the original's 10 s is warned about.
    pub liveness_check_interval: Duration,
}

/// A validated `*-metrics` list: either everything the catalogue has for that
/// kind (the option unset) or the user's selection, in the user's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSelection {
    /// The metrics to emit.
    pub metrics: Vec<StatMetric>,
    /// `true` when the user set the option (printed back by `-P`).
    pub explicit: bool,
}

/// `[graphite]` (SPEC §5).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphiteConfig {
    /// `enabled` (ours): `false` turns the Graphite sink off; another sink
    /// (`[local-store]`) must then be on.
    pub enabled: bool,
    /// `server`: carbon relay host.
    pub server: String,
    /// `port`: carbon relay plaintext port.
    pub port: u16,
    /// `retries`: reconnect attempts per round.
    pub retries: Retries,
    /// `interval`: pause before the first retry of a round.
    pub interval: Duration,
    /// `connect-timeout` (`[graphite] timeout` is ignored, as by the original).
    pub connect_timeout: Duration,
    /// `write-timeout`.
    pub write_timeout: Duration,
    /// `delay`: pause between rounds of retries.
    pub delay: Duration,
    /// `backoff`: factor applied to the interval after each retry.
    pub backoff: f64,
    /// `namespace`: first element of every path.
    pub namespace: String,
    /// `prefix-hostname`: insert the host name after the namespace.
    pub prefix_hostname: bool,
    /// `fqdn`: use the full host name (dots → `_`) rather than the short one.
    pub fqdn: bool,
    /// `queue-size`: lines kept in the backlog while Graphite is unreachable.
    pub queue_size: usize,
    /// `replay-bytes` (ours): bytes already written that are sent again after
    /// a broken connection (at-least-once); also the most memory that takes.
    pub replay_bytes: usize,
    /// `group-namespace`: path element under which grouped names are written.
    pub group_namespace: Option<String>,
    /// `group-namespace-double-writes`: write grouped names under both paths.
    pub group_namespace_double_writes: bool,
}

/// One `name = regex` entry of a `*-groups` section.
#[derive(Debug, Clone)]
pub struct Group {
    /// Group name (ConfigParser lower-cases option names; so do we).
    pub name: String,
    /// Compiled pattern; a name matches when the pattern is found anywhere in it.
    pub pattern: Regex,
}

impl PartialEq for Group {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.pattern.as_str() == other.pattern.as_str()
    }
}

/// The three group sections, each in declaration order (first match wins).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Groups {
    /// `[frontend-groups]`.
    pub frontend: Vec<Group>,
    /// `[backend-groups]`.
    pub backend: Vec<Group>,
    /// `[server-groups]`.
    pub server: Vec<Group>,
}

impl Groups {
    /// `true` when no group section declares a group.
    pub fn is_empty(&self) -> bool {
        self.frontend.is_empty() && self.backend.is_empty() && self.server.is_empty()
    }
}

/// `[kafka]` (ours, SPEC §5): every metric also to Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaConfig {
    /// `brokers`: `host:port[,host:port...]`.
    pub brokers: String,
    /// `topic`.
    pub topic: String,
    /// Whether `topic` was written in a file rather than left to its
    /// default: on `haproxystats central`, where `[kafka]` describes the
    /// input, lines go to Kafka only then (SPEC §5, "Which `[kafka]` means
    /// what").
    pub topic_set: bool,
    /// `format`: `graphite` or `influx`.
    pub format: super::Format,
    /// `key`: the message key; `None` = the host name the Graphite prefix
    /// would use, so that one load balancer's messages keep their order.
    pub key: Option<String>,
    /// `message-max-bytes`: the largest message, key and overhead included.
    pub message_max_bytes: usize,
    /// `compression`.
    pub compression: super::Compression,
    /// `queue-size`: lines kept while the broker is unreachable.
    pub queue_size: usize,
    /// `message-timeout`: how long librdkafka tries one message.
    pub message_timeout: Duration,
    /// `librdkafka.<name> = value`, in file order.
    pub librdkafka: Vec<(String, String)>,
    /// `snapshots-topic`: every published snapshot also goes there, raw
    /// (SPEC §5 "Raw snapshots to Kafka"); `None`: off.
    pub snapshots_topic: Option<String>,
    /// `cluster`: the cluster the load balancer belongs to (a raw
    /// snapshot's `cluster` header; central processing aggregates by it).
    pub cluster: String,
    /// `lb-name`: the load balancer's name in raw snapshots (key and `lb`
    /// header); `None`: the host name the Graphite prefix would use.
    pub lb_name: Option<String>,
    /// `snapshot-fields`: which `show stat` columns raw snapshots carry.
    pub snapshot_fields: super::Fields,
    /// `snapshot-compression`: how raw snapshots' buffers are compressed.
    pub snapshot_compression: super::codec::BufferCodec,
}

/// `[central]` (ours, SPEC §7): `haproxystats central`'s own options. The
/// defaults that depend on `[kafka]` are resolved when central starts
/// (`config::resolve_central`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentralConfig {
    /// `group-id`: the consumer group of stage 1 (default
    /// `haproxystats-central`).
    pub group_id: String,
    /// `partials-topic`; `None`: `<snapshots-topic>.partials`.
    pub partials_topic: Option<String>,
    /// `state-topic` (stage 2); `None`: `<snapshots-topic>.state`.
    pub state_topic: Option<String>,
    /// `workers`: processing threads; `None`: `[process] workers`.
    pub workers: Option<usize>,
    /// `window`: stage 2's window, whole seconds (default 10).
    pub window: u64,
    /// `grace`: how long a window of a caught-up partition waits for LBs
    /// that did not report (default 20 s).
    pub grace: std::time::Duration,
    /// `lb-timeout`: an LB this far behind its cluster's newest window is
    /// no longer expected; `None`: 3 windows.
    pub lb_timeout: Option<std::time::Duration>,
    /// `expected-windows`: windows a cluster without stored state is
    /// watched before its LBs are trusted to be all (default 1).
    pub expected_windows: u64,
    /// `max-clock-skew`: a partial whose `ts` is further ahead of its
    /// message's time is placed by that time; `None`: 2 windows.
    pub max_clock_skew: Option<std::time::Duration>,
    /// `cluster-namespace` (default `clusters`).
    pub cluster_namespace: String,
    /// `partials-compression`: how the partials' buffers are compressed.
    pub partials_compression: super::codec::BufferCodec,
}
