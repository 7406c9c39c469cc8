//! The catalogue of metrics haproxystats knows: which `show info` keys and
//! which `show stat` columns it emits, and how each one is aggregated across
//! HAProxy processes (SPEC §4.1, §4.2).
//!
//! Configuration validates the `*-metrics` options against these lists and the
//! engine aggregates by them, so both always agree on what a name means.

/// How one metric is combined across the rows (processes) that carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregation {
    /// Sum of every row.
    Sum,
    /// Arithmetic mean of every row.
    Mean,
    /// Mean over the rows whose `lbtot` is greater than zero: a response time
    /// of an idle server is 0 and would drag the mean down (haproxystats 0.5.2).
    MeanWhereLbtot,
}

/// One metric of a frontend, backend or server: a `show stat` column name and
/// how it is aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatMetric {
    /// Column name in the `show stat` CSV header, also the last path element.
    pub name: &'static str,
    /// How rows are combined.
    pub aggregation: Aggregation,
}

/// Which kind of proxy row a metric list applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    /// `svname = FRONTEND`.
    Frontend,
    /// `svname = BACKEND`.
    Backend,
    /// `type = 2`.
    Server,
}

impl ProxyKind {
    /// The configuration option that selects metrics of this kind.
    pub fn metrics_option(self) -> &'static str {
        match self {
            ProxyKind::Frontend => "frontend-metrics",
            ProxyKind::Backend => "backend-metrics",
            ProxyKind::Server => "server-metrics",
        }
    }

    /// Every metric of this kind that haproxystats emits by default, in the
    /// order the original lists them.
    pub fn all_metrics(self) -> &'static [StatMetric] {
        match self {
            ProxyKind::Frontend => FRONTEND_METRICS,
            ProxyKind::Backend => BACKEND_METRICS,
            ProxyKind::Server => SERVER_METRICS,
        }
    }

    /// Looks a metric of this kind up by its column name.
    pub fn metric(self, name: &str) -> Option<StatMetric> {
        self.all_metrics().iter().copied().find(|m| m.name == name)
    }
}

const fn sum(name: &'static str) -> StatMetric {
    StatMetric {
        name,
        aggregation: Aggregation::Sum,
    }
}

const fn mean(name: &'static str) -> StatMetric {
    StatMetric {
        name,
        aggregation: Aggregation::Mean,
    }
}

const fn mean_lbtot(name: &'static str) -> StatMetric {
    StatMetric {
        name,
        aggregation: Aggregation::MeanWhereLbtot,
    }
}

/// Frontend metrics (SPEC §4.2), all summed.
pub const FRONTEND_METRICS: &[StatMetric] = &[
    sum("bin"),
    sum("bout"),
    sum("comp_byp"),
    sum("comp_in"),
    sum("comp_out"),
    sum("comp_rsp"),
    sum("conn_rate"),
    sum("conn_rate_max"),
    sum("conn_tot"),
    sum("dcon"),
    sum("dreq"),
    sum("dresp"),
    sum("dses"),
    sum("ereq"),
    sum("hrsp_1xx"),
    sum("hrsp_2xx"),
    sum("hrsp_3xx"),
    sum("hrsp_4xx"),
    sum("hrsp_5xx"),
    sum("hrsp_other"),
    sum("intercepted"),
    sum("rate"),
    sum("rate_lim"),
    sum("rate_max"),
    sum("req_rate"),
    sum("req_rate_max"),
    sum("req_tot"),
    sum("scur"),
    sum("slim"),
    sum("smax"),
    sum("stot"),
];

/// Backend metrics (SPEC §4.2).
pub const BACKEND_METRICS: &[StatMetric] = &[
    sum("bin"),
    sum("bout"),
    sum("chkdown"),
    sum("cli_abrt"),
    sum("comp_byp"),
    sum("comp_in"),
    sum("comp_out"),
    sum("comp_rsp"),
    sum("downtime"),
    sum("dreq"),
    sum("dresp"),
    sum("econ"),
    sum("eresp"),
    sum("hrsp_1xx"),
    sum("hrsp_2xx"),
    sum("hrsp_3xx"),
    sum("hrsp_4xx"),
    sum("hrsp_5xx"),
    sum("hrsp_other"),
    sum("intercepted"),
    sum("lbtot"),
    sum("qcur"),
    sum("qmax"),
    sum("rate"),
    sum("rate_max"),
    sum("req_tot"),
    sum("scur"),
    sum("slim"),
    sum("smax"),
    sum("srv_abrt"),
    sum("stot"),
    sum("wredis"),
    sum("wretr"),
    mean("act"),
    mean("bck"),
    mean("weight"),
    mean_lbtot("ctime"),
    mean_lbtot("qtime"),
    mean_lbtot("rtime"),
    mean_lbtot("ttime"),
];

/// Server metrics (SPEC §4.2), per (backend, server) and, with
/// `aggr-server-metrics`, per server name across backends.
pub const SERVER_METRICS: &[StatMetric] = &[
    sum("bin"),
    sum("bout"),
    sum("chkdown"),
    sum("chkfail"),
    sum("cli_abrt"),
    sum("dresp"),
    sum("econ"),
    sum("eresp"),
    sum("hrsp_1xx"),
    sum("hrsp_2xx"),
    sum("hrsp_3xx"),
    sum("hrsp_4xx"),
    sum("hrsp_5xx"),
    sum("hrsp_other"),
    sum("lbtot"),
    sum("qcur"),
    sum("qmax"),
    sum("rate"),
    sum("rate_max"),
    sum("scur"),
    sum("slim"),
    sum("smax"),
    sum("srv_abrt"),
    sum("stot"),
    sum("wredis"),
    sum("wretr"),
    mean("throttle"),
    mean("weight"),
    mean_lbtot("ctime"),
    mean_lbtot("qtime"),
    mean_lbtot("rtime"),
    mean_lbtot("ttime"),
];

/// `show info` keys summed across processes (SPEC §4.1).
pub const DAEMON_SUM_METRICS: &[&str] = &[
    "CompressBpsIn",
    "CompressBpsOut",
    "CompressBpsRateLim",
    "ConnRate",
    "ConnRateLimit",
    "CumConns",
    "CumReq",
    "CumSslConns",
    "CurrConns",
    "CurrSslConns",
    "Hard_maxconn",
    "MaxConnRate",
    "MaxSessRate",
    "MaxSslConns",
    "MaxSslRate",
    "MaxZlibMemUsage",
    "Maxconn",
    "Maxpipes",
    "Maxsock",
    "Memmax_MB",
    "PipesFree",
    "PipesUsed",
    "Run_queue",
    "SessRate",
    "SessRateLimit",
    "SslBackendKeyRate",
    "SslBackendMaxKeyRate",
    "SslCacheLookups",
    "SslCacheMisses",
    "SslFrontendKeyRate",
    "SslFrontendMaxKeyRate",
    "SslFrontendSessionReuse_pct",
    "SslRate",
    "SslRateLimit",
    "Tasks",
    "Ulimit-n",
    "ZlibMemUsage",
];

/// `show info` keys averaged across processes (SPEC §4.1).
pub const DAEMON_MEAN_METRICS: &[&str] = &["Idle_pct", "Uptime_sec"];

/// Daemon percentages of `calculate-percentages`: (title, numerator, limit).
pub const DAEMON_PERCENTAGES: &[(&str, &str, &str)] = &[
    ("ConnPercentage", "CurrConns", "Maxconn"),
    ("ConnRatePercentage", "ConnRate", "ConnRateLimit"),
    ("SslConnPercentage", "CurrSslConns", "MaxSslConns"),
    ("SslRatePercentage", "SslRate", "SslRateLimit"),
];

/// The `show stat` columns the engine reads under some options (what
/// `engine::columns_read` gives is always among them): every metric of the
/// catalogue (the `*-metrics` options only choose among these; `lbtot`,
/// which the response-time means need, is one), the names `pxname` and
/// `svname`, and `type`, which with `svname` decides a row's kind. Here,
/// beside the lists it is made of, for `[kafka] snapshot-fields` is read
/// with it in the configuration.
pub fn columns_ever_read() -> impl Iterator<Item = &'static str> {
    [ProxyKind::Frontend, ProxyKind::Backend, ProxyKind::Server]
        .into_iter()
        .flat_map(|kind| kind.all_metrics().iter().map(|m| m.name))
        .chain(["pxname", "svname", "type"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn no_list_names_a_metric_twice() {
        for kind in [ProxyKind::Frontend, ProxyKind::Backend, ProxyKind::Server] {
            let names: HashSet<_> = kind.all_metrics().iter().map(|m| m.name).collect();
            assert_eq!(names.len(), kind.all_metrics().len(), "{kind:?}");
        }
        let daemon: HashSet<_> = DAEMON_SUM_METRICS
            .iter()
            .chain(DAEMON_MEAN_METRICS)
            .collect();
        assert_eq!(
            daemon.len(),
            DAEMON_SUM_METRICS.len() + DAEMON_MEAN_METRICS.len()
        );
    }

    #[test]
    fn response_times_are_averaged_over_busy_rows_only() {
        for kind in [ProxyKind::Backend, ProxyKind::Server] {
            for name in ["ctime", "qtime", "rtime", "ttime"] {
                let metric = kind.metric(name);
                assert_eq!(
                    metric.map(|m| m.aggregation),
                    Some(Aggregation::MeanWhereLbtot),
                    "{kind:?} {name}"
                );
            }
        }
        assert_eq!(ProxyKind::Frontend.metric("ctime"), None);
    }
}
