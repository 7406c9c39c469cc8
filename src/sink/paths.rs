//! Graphite lines read back as points: a kind, labels and a metric. The
//! sinks that are not Graphite (Kafka's `influx`, Prometheus) derive what
//! they write from the very lines Graphite gets, through this one reading,
//! so that every sink carries the same values by construction.
//!
//! Names from HAProxy never hold a `.` (the engine replaces it), so below
//! the prefix every path component is one name or one keyword (SPEC §4):
//!
//! - `daemon.<Key>`, `daemon.process.<id>.<Key>`
//! - `frontend.<fe>.<m>`, `backend.<be>.<m>`, `backend.<be>.server.<srv>.<m>`,
//!   `server.<srv>.<m>` (`aggr-server-metrics`)
//! - `<group-namespace>.<group>.` before any of those but `daemon`
//! - `haproxystats.<Name>`: our own metrics
//!
//! Central processing (SPEC §7) puts many load balancers' lines under one
//! namespace: `<namespace>.<lb>.haproxy.…`, its own `<namespace>[.<host>].
//! haproxystats.…`, and the clusters' `<namespace>.<cluster-namespace>.
//! <cluster>.haproxy.…`.
//!
//! Pure.

/// Where the Graphite path of a line puts what: the parts of the path the
/// configuration decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathLayout {
    /// `P` of SPEC §4 without its trailing dot (`namespace[.host].haproxy`);
    /// in central processing the namespace alone.
    pub prefix: String,
    /// The `host` label: the load balancer, whether or not the path names it.
    pub host: String,
    /// `[graphite] group-namespace`, when groups are written under it.
    pub group_namespace: Option<String>,
    /// Central processing (SPEC §7): lines of many load balancers, each
    /// under `<prefix>.<lb>.haproxy.`, labelled with their own `lb`; `host`
    /// is then central's, for its own `<prefix>.<host>.haproxystats.` lines.
    pub lb_in_path: bool,
    /// With [`PathLayout::lb_in_path`], `[central] cluster-namespace`: the
    /// clusters' lines are under `<prefix>.<cluster-namespace>.<cluster>.
    /// haproxy.` and labelled `cluster` instead of `host`.
    pub cluster_namespace: Option<String>,
}

/// Whose lines a sink gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// One load balancer's, under `<prefix>.` (the daemon).
    OneHost,
    /// Many load balancers', each under `<prefix>.<lb>.haproxy.`, and the
    /// clusters' (central; `prefix` is the namespace).
    PerLoadBalancer,
}

impl PathLayout {
    /// The layout of the lines a sink gets: under `prefix` (the engine's
    /// `P`, or central's namespace), of load balancer `host` (the host name
    /// the prefix uses).
    pub fn new(config: &crate::config::Config, prefix: &str, host: &str, lines: Lines) -> Self {
        let central = lines == Lines::PerLoadBalancer;
        PathLayout {
            prefix: prefix.to_owned(),
            host: host.to_owned(),
            group_namespace: config.graphite.group_namespace.clone(),
            lb_in_path: central,
            cluster_namespace: central.then(|| {
                config.central.as_ref().map_or_else(
                    || crate::config::DEFAULT_CLUSTER_NAMESPACE.to_owned(),
                    |c| c.cluster_namespace.clone(),
                )
            }),
        }
    }
}

#[cfg(test)]
impl PathLayout {
    /// A node's: `ns.lb1.haproxy`, host `lb1`, groups under
    /// `loadbalancers`.
    pub(crate) fn test_node() -> Self {
        PathLayout {
            prefix: "ns.lb1.haproxy".into(),
            host: "lb1".into(),
            group_namespace: Some("loadbalancers".into()),
            lb_in_path: false,
            cluster_namespace: None,
        }
    }

    /// Central's: namespace `ns`, host `central`, clusters under
    /// `clusters`.
    pub(crate) fn test_central() -> Self {
        PathLayout {
            prefix: "ns".into(),
            host: "central".into(),
            group_namespace: None,
            lb_in_path: true,
            cluster_namespace: Some("clusters".into()),
        }
    }
}

/// What a line is about, the part of the path before the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `daemon.…`: `show info`, aggregated.
    Daemon,
    /// `frontend.<fe>.…`.
    Frontend,
    /// `backend.<be>.…`.
    Backend,
    /// `backend.<be>.server.<srv>.…` and `server.<srv>.…`.
    Server,
    /// `haproxystats.…`: our own metrics.
    SelfMetrics,
}

/// One Graphite line read back.
#[derive(Debug, PartialEq, Eq)]
pub struct Point<'a> {
    /// What the metric is of.
    pub kind: Kind,
    /// `host` or `cluster` first, then `group`, `process`, `frontend`,
    /// `backend`, `server` as the path has them; never an empty value.
    pub labels: Vec<(&'static str, &'a str)>,
    /// The last path component, as the engine wrote it.
    pub metric: &'a str,
    /// The value as written (a finite number).
    pub value: &'a str,
    /// Epoch seconds, as written (digits only).
    pub timestamp: &'a str,
}

/// `path value timestamp` → a point, or `None` when the path is not one
/// the engine writes under `layout` or the value is no finite number.
pub fn read_point<'a>(line: &'a str, layout: &'a PathLayout) -> Option<Point<'a>> {
    let mut fields = line.split(' ');
    let (path, value, timestamp) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some()
        || !value.parse::<f64>().is_ok_and(f64::is_finite)
        || timestamp.is_empty()
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let rest = path
        .strip_prefix(layout.prefix.as_str())?
        .strip_prefix('.')?;
    let (origin, rest) = if layout.lb_in_path {
        origin_of(rest, layout)
    } else {
        (("host", layout.host.as_str()), rest)
    };
    let mut parts: Vec<&str> = rest.split('.').collect();
    let mut labels = vec![origin];
    if let Some(namespace) = &layout.group_namespace
        && parts.first() == Some(&namespace.as_str())
        && parts.len() > 3
    {
        labels.push(("group", parts[1]));
        parts.drain(..2);
    }
    let (kind, metric) = match parts.as_slice() {
        ["daemon", "process", id, key] => {
            labels.push(("process", id));
            (Kind::Daemon, *key)
        }
        ["daemon", key] => (Kind::Daemon, *key),
        ["frontend", name, metric] => {
            labels.push(("frontend", name));
            (Kind::Frontend, *metric)
        }
        ["backend", backend, "server", server, metric] => {
            labels.push(("backend", backend));
            labels.push(("server", server));
            (Kind::Server, *metric)
        }
        ["backend", name, metric] => {
            labels.push(("backend", name));
            (Kind::Backend, *metric)
        }
        ["server", name, metric] => {
            labels.push(("server", name));
            (Kind::Server, *metric)
        }
        ["haproxystats", metric] => (Kind::SelfMetrics, *metric),
        _ => return None,
    };
    if labels.iter().any(|(_, v)| v.is_empty()) || metric.is_empty() {
        return None;
    }
    Some(Point {
        kind,
        labels,
        metric,
        value,
        timestamp,
    })
}

/// With [`PathLayout::lb_in_path`], whose lines these are (the path after
/// the prefix) and the rest of the path: a load balancer's
/// (`<lb>.haproxy.…`), a cluster's (`<cluster-namespace>.<cluster>.
/// haproxy.…`), central's own (`<host>.haproxystats.…`), or, without a host
/// part (`haproxystats.…`), central's host's.
fn origin_of<'a>(rest: &'a str, layout: &'a PathLayout) -> ((&'static str, &'a str), &'a str) {
    if let Some((lb, tail)) = rest.split_once('.') {
        if let Some(tail) = tail.strip_prefix("haproxy.") {
            return (("host", lb), tail);
        }
        if tail.starts_with("haproxystats.") {
            return (("host", lb), tail);
        }
    }
    if let Some(namespace) = &layout.cluster_namespace
        && let Some(tail) = rest
            .strip_prefix(namespace.as_str())
            .and_then(|t| t.strip_prefix('.'))
        && let Some((cluster, tail)) = tail.split_once('.')
        && let Some(tail) = tail.strip_prefix("haproxy.")
    {
        return (("cluster", cluster), tail);
    }
    (("host", layout.host.as_str()), rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn central() -> PathLayout {
        PathLayout {
            prefix: "ns".into(),
            host: "central1".into(),
            group_namespace: None,
            lb_in_path: true,
            cluster_namespace: Some("dc.clusters".into()),
        }
    }

    fn labels_of(line: &str, layout: &PathLayout) -> Option<(Kind, Vec<(&'static str, String)>)> {
        read_point(line, layout).map(|p| {
            (
                p.kind,
                p.labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            )
        })
    }

    #[test]
    fn central_tells_load_balancers_clusters_and_its_own_lines_apart() {
        let layout = central();
        let host = |v: &str| vec![("host", v.to_owned())];
        assert_eq!(
            labels_of("ns.lb1.haproxy.daemon.Tasks 1 10", &layout),
            Some((Kind::Daemon, host("lb1")))
        );
        assert_eq!(
            labels_of("ns.central1.haproxystats.BadMessages 1 10", &layout),
            Some((Kind::SelfMetrics, host("central1")))
        );
        assert_eq!(
            labels_of("ns.haproxystats.BadMessages 1 10", &layout),
            Some((Kind::SelfMetrics, host("central1")))
        );
        assert_eq!(
            labels_of(
                "ns.dc.clusters.c1.haproxy.frontend.fe.req_tot 7 10",
                &layout
            ),
            Some((
                Kind::Frontend,
                vec![("cluster", "c1".to_owned()), ("frontend", "fe".to_owned())]
            ))
        );
        assert_eq!(
            labels_of(
                "ns.dc.clusters.c1.haproxy.haproxystats.LoadBalancersReporting 2 10",
                &layout
            ),
            Some((Kind::SelfMetrics, vec![("cluster", "c1".to_owned())]))
        );
        // A load balancer named like the cluster namespace's first part is
        // still a load balancer.
        assert_eq!(
            labels_of("ns.dc.haproxy.daemon.Tasks 1 10", &layout),
            Some((Kind::Daemon, host("dc")))
        );
        assert_eq!(
            labels_of("ns.other.c1.haproxy.daemon.Tasks 1 10", &layout),
            None
        );
    }

    #[test]
    fn without_central_the_cluster_namespace_means_nothing() {
        let layout = PathLayout {
            prefix: "ns.lb1.haproxy".into(),
            host: "lb1".into(),
            group_namespace: None,
            lb_in_path: false,
            cluster_namespace: None,
        };
        let point = read_point("ns.lb1.haproxy.backend.be.server.s1.scur 3 10", &layout);
        assert_eq!(
            point,
            Some(Point {
                kind: Kind::Server,
                labels: vec![("host", "lb1"), ("backend", "be"), ("server", "s1")],
                metric: "scur",
                value: "3",
                timestamp: "10",
            })
        );
    }
}
