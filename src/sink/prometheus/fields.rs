//! What each metric is to Prometheus: its name, whether it is a counter
//! or a gauge, and its `# HELP`.
//!
//! For HAProxy's own fields the type and the help are HAProxy's: a counter
//! is a field whose nature is `C` (cumulative) in `show stat typed` /
//! `show info typed`, and the help is its description in `show stat typed
//! desc` / `show info typed desc` (HAProxy 2.6; tests/prometheus.rs checks
//! both tables against the real HAProxy). Everything else (our percentiles
//! and percentages, `TotalServers`, our own metrics) is a gauge.
//!
//! Names: `haproxystats_<kind>_<metric>` with the metric in snake case
//! (`CurrConns` → `curr_conns`), `_total` after a counter's, so that
//! `promtool check metrics` finds nothing to say. Three metrics carry a
//! unit abbreviation Prometheus asks to spell as a base unit: their values
//! are converted (see [`UNITS`]); every other value is Graphite's as is.
//!
//! Pure.

use crate::sink::paths::Kind;

/// How Prometheus is told to read a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// Only goes up, but for a restart: HAProxy's cumulative fields.
    Counter,
    /// Anything else.
    Gauge,
}

impl MetricType {
    /// The spelling in `# TYPE`.
    pub fn name(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
        }
    }
}

/// One field of HAProxy's, or one metric of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// As in the Graphite path (HAProxy's spelling).
    pub name: &'static str,
    /// Counter or gauge.
    pub metric_type: MetricType,
    /// `# HELP`.
    pub help: &'static str,
}

const fn counter(name: &'static str, help: &'static str) -> Field {
    Field {
        name,
        metric_type: MetricType::Counter,
        help,
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Field {
    Field {
        name,
        metric_type: MetricType::Gauge,
        help,
    }
}

/// `show stat` columns haproxystats writes (frontends, backends, servers).
pub const STAT_FIELDS: &[Field] = &[
    gauge(
        "act",
        "Total number of active UP servers with a non-zero weight",
    ),
    gauge(
        "bck",
        "Total number of backup UP servers with a non-zero weight",
    ),
    counter("bin", "Total number of request bytes since process started"),
    counter(
        "bout",
        "Total number of response bytes since process started",
    ),
    counter(
        "chkdown",
        "Total number of failed checks causing UP to DOWN server transitions, per server/backend, since the worker process started",
    ),
    counter(
        "chkfail",
        "Total number of failed individual health checks per server/backend, since the worker process started",
    ),
    counter(
        "cli_abrt",
        "Total number of requests or connections aborted by the client since the worker process started",
    ),
    counter(
        "comp_byp",
        "Total number of bytes that bypassed HTTP compression for this object since the worker process started (CPU/memory/bandwidth limitation)",
    ),
    counter(
        "comp_in",
        "Total number of bytes submitted to the HTTP compressor for this object since the worker process started",
    ),
    counter(
        "comp_out",
        "Total number of bytes emitted by the HTTP compressor for this object since the worker process started",
    ),
    counter(
        "comp_rsp",
        "Total number of HTTP responses that were compressed for this object since the worker process started",
    ),
    gauge(
        "conn_rate",
        "Number of new connections accepted over the last second on the frontend for this worker process",
    ),
    gauge(
        "conn_rate_max",
        "Highest value of connections per second observed since the worker process started",
    ),
    counter(
        "conn_tot",
        "Total number of new connections accepted on this frontend since the worker process started",
    ),
    gauge(
        "ctime",
        "Time spent waiting for a connection to complete, in milliseconds, averaged over the 1024 last requests (backend/server)",
    ),
    counter(
        "dcon",
        "Total number of incoming connections blocked on a listener/frontend by a tcp-request connection rule since the worker process started",
    ),
    counter(
        "downtime",
        "Total time spent in DOWN state, for server or backend",
    ),
    counter(
        "dreq",
        "Total number of denied requests since process started",
    ),
    counter(
        "dresp",
        "Total number of denied responses since process started",
    ),
    counter(
        "dses",
        "Total number of incoming sessions blocked on a listener/frontend by a tcp-request connection rule since the worker process started",
    ),
    counter(
        "econ",
        "Total number of failed connections to server since the worker process started",
    ),
    counter(
        "ereq",
        "Total number of invalid requests since process started",
    ),
    counter(
        "eresp",
        "Total number of invalid responses since the worker process started",
    ),
    counter(
        "hrsp_1xx",
        "Total number of HTTP responses with status 100-199 returned by this object since the worker process started",
    ),
    counter(
        "hrsp_2xx",
        "Total number of HTTP responses with status 200-299 returned by this object since the worker process started",
    ),
    counter(
        "hrsp_3xx",
        "Total number of HTTP responses with status 300-399 returned by this object since the worker process started",
    ),
    counter(
        "hrsp_4xx",
        "Total number of HTTP responses with status 400-499 returned by this object since the worker process started",
    ),
    counter(
        "hrsp_5xx",
        "Total number of HTTP responses with status 500-599 returned by this object since the worker process started",
    ),
    counter(
        "hrsp_other",
        "Total number of HTTP responses with status <100, >599 returned by this object since the worker process started (error -1 included)",
    ),
    counter(
        "intercepted",
        "Total number of HTTP requests intercepted on the frontend (redirects/stats/services) since the worker process started",
    ),
    counter(
        "lbtot",
        "Total number of requests routed by load balancing since the worker process started (ignores queue pop and stickiness)",
    ),
    gauge("qcur", "Number of current queued connections"),
    gauge(
        "qmax",
        "Highest value of queued connections encountered since process started",
    ),
    gauge(
        "qtime",
        "Time spent in the queue, in milliseconds, averaged over the 1024 last requests (backend/server)",
    ),
    gauge(
        "rate",
        "Total number of sessions processed by this object over the last second (sessions for listeners/frontends, requests for backends/servers)",
    ),
    gauge(
        "rate_lim",
        "Limit on the number of sessions accepted in a second (frontend only, 'rate-limit sessions' setting)",
    ),
    gauge(
        "rate_max",
        "Highest value of sessions per second observed since the worker process started",
    ),
    gauge(
        "req_rate",
        "Number of HTTP requests processed over the last second on this object",
    ),
    gauge(
        "req_rate_max",
        "Highest value of http requests observed since the worker process started",
    ),
    counter(
        "req_tot",
        "Total number of HTTP requests processed by this object since the worker process started",
    ),
    gauge(
        "rtime",
        "Time spent waiting for a server response, in milliseconds, averaged over the 1024 last requests (backend/server)",
    ),
    gauge(
        "scur",
        "Number of current sessions on the frontend, backend or server",
    ),
    gauge(
        "slim",
        "Frontend/listener/server's maxconn, backend's fullconn",
    ),
    gauge(
        "smax",
        "Highest value of current sessions encountered since process started",
    ),
    counter(
        "srv_abrt",
        "Total number of requests or connections aborted by the server since the worker process started",
    ),
    counter("stot", "Total number of sessions since process started"),
    gauge(
        "throttle",
        "Throttling ratio applied to a server's maxconn and weight during the slowstart period (0 to 100%)",
    ),
    gauge(
        "ttime",
        "Total request+response time (request+queue+connect+response+processing), in milliseconds, averaged over the 1024 last requests (backend/server)",
    ),
    gauge(
        "weight",
        "Server's effective weight, or sum of active servers' effective weights for a backend",
    ),
    counter(
        "wredis",
        "Total number of server redispatches due to connection failures since the worker process started",
    ),
    counter(
        "wretr",
        "Total number of server connection retries since the worker process started",
    ),
];

/// `show info` keys haproxystats writes (`daemon`).
pub const INFO_FIELDS: &[Field] = &[
    gauge(
        "CompressBpsIn",
        "Number of bytes submitted to the HTTP compressor in this worker process over the last second",
    ),
    gauge(
        "CompressBpsOut",
        "Number of bytes emitted by the HTTP compressor in this worker process over the last second",
    ),
    gauge(
        "CompressBpsRateLim",
        "Limit of CompressBpsOut beyond which HTTP compression is automatically disabled",
    ),
    gauge(
        "ConnRate",
        "Number of front connections created on this worker process over the last second",
    ),
    gauge(
        "ConnRateLimit",
        "Hard limit for ConnRate (global.maxconnrate)",
    ),
    counter(
        "CumConns",
        "Total number of connections on this worker process since started",
    ),
    counter(
        "CumReq",
        "Total number of requests on this worker process since started",
    ),
    counter(
        "CumSslConns",
        "Total number of SSL endpoints on this worker process since started (front+back)",
    ),
    gauge(
        "CurrConns",
        "Current number of connections on this worker process",
    ),
    gauge(
        "CurrSslConns",
        "Current number of SSL endpoints on this worker process (front+back)",
    ),
    gauge(
        "Hard_maxconn",
        "Hard limit on the number of per-process connections (imposed by Memmax_MB or Ulimit-n)",
    ),
    gauge(
        "Idle_pct",
        "Percentage of last second spent waiting in the current worker thread",
    ),
    gauge(
        "Maxconn",
        "Hard limit on the number of per-process connections (configured or imposed by Ulimit-n)",
    ),
    gauge(
        "MaxConnRate",
        "Highest ConnRate reached on this worker process since started (in connections per second)",
    ),
    gauge(
        "Maxpipes",
        "Hard limit on the number of pipes for splicing, 0=unlimited",
    ),
    gauge(
        "MaxSessRate",
        "Highest SessRate reached on this worker process since started (in sessions per second)",
    ),
    gauge("Maxsock", "Hard limit on the number of per-process sockets"),
    gauge(
        "MaxSslConns",
        "Hard limit on the number of per-process SSL endpoints (front+back), 0=unlimited",
    ),
    gauge(
        "MaxSslRate",
        "Highest SslRate reached on this worker process since started (in connections per second)",
    ),
    gauge(
        "MaxZlibMemUsage",
        "Limit on the amount of memory used by HTTP compression above which it is automatically disabled (in bytes, see global.maxzlibmem)",
    ),
    gauge(
        "Memmax_MB",
        "Worker process's hard limit on memory usage in MB (-m on command line)",
    ),
    gauge(
        "PipesFree",
        "Current number of allocated and available pipes in this worker process",
    ),
    gauge(
        "PipesUsed",
        "Current number of pipes in use in this worker process",
    ),
    gauge(
        "Run_queue",
        "Total number of active tasks+tasklets in the current worker process",
    ),
    gauge(
        "SessRate",
        "Number of sessions created on this worker process over the last second",
    ),
    gauge(
        "SessRateLimit",
        "Hard limit for SessRate (global.maxsessrate)",
    ),
    gauge(
        "SslBackendKeyRate",
        "Number of SSL keys created on backends in this worker process over the last second",
    ),
    gauge(
        "SslBackendMaxKeyRate",
        "Highest SslBackendKeyRate reached on this worker process since started (in SSL keys per second)",
    ),
    counter(
        "SslCacheLookups",
        "Total number of SSL session ID lookups in the SSL session cache on this worker since started",
    ),
    counter(
        "SslCacheMisses",
        "Total number of SSL session ID lookups that didn't find a session in the SSL session cache on this worker since started",
    ),
    gauge(
        "SslFrontendKeyRate",
        "Number of SSL keys created on frontends in this worker process over the last second",
    ),
    gauge(
        "SslFrontendMaxKeyRate",
        "Highest SslFrontendKeyRate reached on this worker process since started (in SSL keys per second)",
    ),
    gauge(
        "SslFrontendSessionReuse_pct",
        "Percent of frontend SSL connections which did not require a new key",
    ),
    gauge(
        "SslRate",
        "Number of SSL connections created on this worker process over the last second",
    ),
    gauge("SslRateLimit", "Hard limit for SslRate (global.maxsslrate)"),
    gauge(
        "Tasks",
        "Total number of tasks in the current worker process (active + sleeping)",
    ),
    gauge(
        "Ulimit-n",
        "Hard limit on the number of per-process file descriptors",
    ),
    gauge(
        "Uptime_sec",
        "How long ago this worker process was started (seconds)",
    ),
    gauge(
        "ZlibMemUsage",
        "Amount of memory currently used by HTTP compression on the current worker process (in bytes)",
    ),
];

/// What haproxystats computes for the daemon (SPEC §4.1).
pub const DAEMON_FIELDS: &[Field] = &[
    gauge(
        "CpuUsagePct",
        "100 - Idle_pct: percentage of the last second the worker was busy",
    ),
    gauge(
        "25PercentileCpuUsagePct",
        "25th percentile (nearest rank) of CpuUsagePct across the processes",
    ),
    gauge(
        "50PercentileCpuUsagePct",
        "50th percentile (nearest rank) of CpuUsagePct across the processes",
    ),
    gauge(
        "75PercentileCpuUsagePct",
        "75th percentile (nearest rank) of CpuUsagePct across the processes",
    ),
    gauge(
        "95PercentileCpuUsagePct",
        "95th percentile (nearest rank) of CpuUsagePct across the processes",
    ),
    gauge(
        "99PercentileCpuUsagePct",
        "99th percentile (nearest rank) of CpuUsagePct across the processes",
    ),
    gauge(
        "StdCpuUsagePct",
        "Sample standard deviation of CpuUsagePct across the processes",
    ),
    gauge("ConnPercentage", "CurrConns as a percentage of Maxconn"),
    gauge(
        "ConnRatePercentage",
        "ConnRate as a percentage of ConnRateLimit",
    ),
    gauge(
        "SslConnPercentage",
        "CurrSslConns as a percentage of MaxSslConns",
    ),
    gauge(
        "SslRatePercentage",
        "SslRate as a percentage of SslRateLimit",
    ),
];

/// What haproxystats computes for a backend.
pub const BACKEND_FIELDS: &[Field] = &[gauge(
    "TotalServers",
    "Number of distinct servers of the backend",
)];

/// A metric whose Graphite name holds a unit abbreviation: Prometheus
/// wants base units spelt out (promtool: "metric names should not contain
/// abbreviated units"), so the name says the base unit and the value is
/// converted to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    /// The Graphite name.
    pub graphite: &'static str,
    /// The metric part of the Prometheus name.
    pub name: &'static str,
    /// Graphite's value times this is Prometheus'.
    pub scale: f64,
}

/// The metrics [`Unit`] renames.
pub const UNITS: &[Unit] = &[
    Unit {
        graphite: "Memmax_MB",
        name: "memmax_bytes",
        scale: 1024.0 * 1024.0,
    },
    Unit {
        graphite: "Uptime_sec",
        name: "uptime_seconds",
        scale: 1.0,
    },
    Unit {
        graphite: "WindowEmitDelayMs",
        name: "window_emit_delay_seconds",
        scale: 0.001,
    },
];

/// A metric family: the name, type and help of every series of one
/// (kind, metric).
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// `haproxystats_<kind>_<metric>[_total]`.
    pub name: String,
    /// Counter or gauge.
    pub metric_type: MetricType,
    /// `# HELP`, unescaped.
    pub help: String,
    /// A value to convert (see [`Unit`]); `None`: Graphite's value as is.
    pub scale: Option<f64>,
}

/// The family of `metric` (as in a Graphite path) of `kind`.
pub fn family(kind: Kind, metric: &str) -> Family {
    let (kind_name, tables): (&str, &[&[Field]]) = match kind {
        Kind::Daemon => ("daemon", &[INFO_FIELDS, DAEMON_FIELDS]),
        Kind::Frontend => ("frontend", &[STAT_FIELDS]),
        Kind::Backend => ("backend", &[STAT_FIELDS, BACKEND_FIELDS]),
        Kind::Server => ("server", &[STAT_FIELDS]),
        Kind::SelfMetrics => ("self", &[]),
    };
    let field = tables
        .iter()
        .flat_map(|t| t.iter())
        .find(|f| f.name == metric);
    let (metric_type, help) = match (field, kind) {
        (Some(field), _) => (field.metric_type, field.help.to_owned()),
        (None, Kind::SelfMetrics) => (
            MetricType::Gauge,
            format!("haproxystats' own {metric} (haproxystats.{metric} in Graphite)"),
        ),
        (None, _) => (
            MetricType::Gauge,
            format!("{metric} of the {kind_name} as haproxystats writes it to Graphite"),
        ),
    };
    let unit = UNITS.iter().find(|u| u.graphite == metric);
    let base = unit.map_or_else(|| snake_case(metric), |u| u.name.to_owned());
    let suffix = match metric_type {
        MetricType::Counter => "_total",
        MetricType::Gauge => "",
    };
    Family {
        name: format!("haproxystats_{kind_name}_{base}{suffix}"),
        metric_type,
        help,
        scale: unit.filter(|u| u.scale != 1.0).map(|u| u.scale),
    }
}

/// `CurrConns` → `curr_conns`, `25PercentileCpuUsagePct` →
/// `25_percentile_cpu_usage_pct`, `WallClockTimeHAProxy` →
/// `wall_clock_time_haproxy`, `Ulimit-n` → `ulimit_n`: a `_` before a
/// capital that follows a small letter or a digit, everything in small
/// letters, anything but `[a-z0-9_]` as `_`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous: Option<char> = None;
    for c in name.chars() {
        if c.is_ascii_uppercase()
            && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
        {
            out.push('_');
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.push('_');
        }
        previous = Some(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{
        DAEMON_MEAN_METRICS, DAEMON_PERCENTAGES, DAEMON_SUM_METRICS, ProxyKind,
    };

    /// Units promtool's lint calls abbreviated (client_golang's promlint).
    const ABBREVIATIONS: &[&str] = &[
        "s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d",
    ];

    fn every_family() -> Vec<(Kind, &'static str)> {
        let mut all = Vec::new();
        for (kind, proxy) in [
            (Kind::Frontend, ProxyKind::Frontend),
            (Kind::Backend, ProxyKind::Backend),
            (Kind::Server, ProxyKind::Server),
        ] {
            all.extend(proxy.all_metrics().iter().map(|m| (kind, m.name)));
        }
        all.push((Kind::Backend, "TotalServers"));
        all.extend(DAEMON_SUM_METRICS.iter().map(|m| (Kind::Daemon, *m)));
        all.extend(DAEMON_MEAN_METRICS.iter().map(|m| (Kind::Daemon, *m)));
        all.extend(DAEMON_FIELDS.iter().map(|f| (Kind::Daemon, f.name)));
        all
    }

    #[test]
    fn every_metric_haproxystats_writes_has_its_haproxy_type_and_help() {
        for (kind, metric) in every_family() {
            let family = family(kind, metric);
            assert!(
                !family.help.contains("as haproxystats writes it"),
                "{kind:?} {metric} is missing from the tables"
            );
        }
        let names: Vec<&str> = DAEMON_PERCENTAGES.iter().map(|p| p.0).collect();
        for name in names {
            assert!(DAEMON_FIELDS.iter().any(|f| f.name == name), "{name}");
        }
    }

    #[test]
    fn haproxys_cumulative_fields_are_counters_and_the_rest_gauges() {
        for metric in [
            "stot",
            "bin",
            "bout",
            "req_tot",
            "hrsp_2xx",
            "hrsp_other",
            "econ",
            "lbtot",
        ] {
            let f = family(Kind::Backend, metric);
            assert_eq!(f.metric_type, MetricType::Counter, "{metric}");
            assert_eq!(f.name, format!("haproxystats_backend_{metric}_total"));
        }
        for metric in ["scur", "qcur", "rate", "rtime", "weight", "smax"] {
            let f = family(Kind::Server, metric);
            assert_eq!(f.metric_type, MetricType::Gauge, "{metric}");
            assert_eq!(f.name, format!("haproxystats_server_{metric}"));
        }
        assert_eq!(
            family(Kind::Daemon, "CumReq").name,
            "haproxystats_daemon_cum_req_total"
        );
        assert_eq!(
            family(Kind::SelfMetrics, "GraphiteBacklog"),
            Family {
                name: "haproxystats_self_graphite_backlog".into(),
                metric_type: MetricType::Gauge,
                help:
                    "haproxystats' own GraphiteBacklog (haproxystats.GraphiteBacklog in Graphite)"
                        .into(),
                scale: None,
            }
        );
    }

    #[test]
    fn names_are_snake_case_without_abbreviated_units() {
        let mut all = every_family();
        all.extend(
            [
                "WallClockTimeHAProxy",
                "TotalWallClockTime",
                "MetricsHAProxy",
                "WindowEmitDelayMs",
                "SnapshotsLagSeconds",
            ]
            .map(|m| (Kind::SelfMetrics, m)),
        );
        for (kind, metric) in all {
            let family = family(kind, metric);
            let name = &family.name;
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert!(
                !name.split('_').any(|token| ABBREVIATIONS.contains(&token)),
                "{name}"
            );
            assert_eq!(
                name.ends_with("_total"),
                family.metric_type == MetricType::Counter,
                "{name}"
            );
        }
        assert_eq!(snake_case("CurrConns"), "curr_conns");
        assert_eq!(
            snake_case("25PercentileCpuUsagePct"),
            "25_percentile_cpu_usage_pct"
        );
        assert_eq!(
            snake_case("WallClockTimeHAProxy"),
            "wall_clock_time_haproxy"
        );
        assert_eq!(snake_case("Ulimit-n"), "ulimit_n");
        assert_eq!(
            snake_case("SslFrontendSessionReuse_pct"),
            "ssl_frontend_session_reuse_pct"
        );
        assert_eq!(snake_case("hrsp_5xx"), "hrsp_5xx");
    }

    #[test]
    fn unit_abbreviations_become_base_units_with_their_values_converted() {
        let memmax = family(Kind::Daemon, "Memmax_MB");
        assert_eq!(memmax.name, "haproxystats_daemon_memmax_bytes");
        assert_eq!(memmax.scale, Some(1048576.0));
        let uptime = family(Kind::Daemon, "Uptime_sec");
        assert_eq!(uptime.name, "haproxystats_daemon_uptime_seconds");
        assert_eq!(uptime.scale, None);
        let delay = family(Kind::SelfMetrics, "WindowEmitDelayMs");
        assert_eq!(delay.name, "haproxystats_self_window_emit_delay_seconds");
        assert_eq!(delay.scale, Some(0.001));
    }
}
