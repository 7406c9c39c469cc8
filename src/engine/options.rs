//! [`EngineOptions`]: everything the engine needs from the configuration,
//! resolved once (prefix, metric lists, groups, exclusion files).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use regex::Regex;

use crate::catalogue::{ProxyKind, StatMetric};
use crate::config::{Config, Group, MetricSelection};

use super::format::sanitize_name;

/// Errors building [`EngineOptions`].
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// An `exclude-frontends` / `exclude-backends` file could not be read.
    #[error("cannot read {option} file {path}: {source}")]
    ExcludeFile {
        /// The option naming the file.
        option: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// One group of a `*-groups` section: a name and the regex searched anywhere
/// in the (sanitised) frontend, backend or server name.
#[derive(Debug, Clone)]
pub struct GroupRule {
    /// Group name, the path element under the group namespace.
    pub name: String,
    /// Pattern; a name matches when the pattern is found anywhere in it.
    pub pattern: Regex,
}

/// Resolved options of the engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Path prefix `P`: namespace, optional hostname, `haproxy` (SPEC §4).
    pub prefix: String,
    /// Metrics emitted per frontend.
    pub frontend_metrics: Vec<StatMetric>,
    /// Metrics emitted per backend.
    pub backend_metrics: Vec<StatMetric>,
    /// Metrics emitted per server (and per server name with `aggr_server_metrics`).
    pub server_metrics: Vec<StatMetric>,
    /// Emit `P.server.<srv>.<m>` across backends.
    pub aggr_server_metrics: bool,
    /// Emit daemon metrics per HAProxy process.
    pub per_process_metrics: bool,
    /// Emit the daemon usage percentages.
    pub calculate_percentages: bool,
    /// Sanitised frontend names to skip.
    pub exclude_frontends: HashSet<String>,
    /// Sanitised backend names to skip (their servers too).
    pub exclude_backends: HashSet<String>,
    /// `graphite.group-namespace`; groups apply only when it is set.
    pub group_namespace: Option<String>,
    /// Write grouped names under both the group path and `P`.
    pub group_double_writes: bool,
    /// `[frontend-groups]`, in declaration order.
    pub frontend_groups: Vec<GroupRule>,
    /// `[backend-groups]`, in declaration order.
    pub backend_groups: Vec<GroupRule>,
    /// `[server-groups]`, in declaration order (used by `P.server.*`).
    pub server_groups: Vec<GroupRule>,
    /// How many `show stat` files are parsed at once (threads).
    pub parallelism: usize,
    /// Rows per parsed Arrow batch (bounds memory per thread).
    pub batch_rows: usize,
}

/// The host name as the Graphite prefix writes it (`fqdn`: dots → `_`,
/// else the short name), whether or not `prefix-hostname` puts it there:
/// the Kafka sink's `host` tag and default key are this too.
pub fn prefix_host(graphite: &crate::config::GraphiteConfig, hostname: &str) -> String {
    if graphite.fqdn {
        hostname.replace('.', "_")
    } else {
        hostname.split('.').next().unwrap_or("").to_string()
    }
}

impl EngineOptions {
    /// Resolves the options from the configuration; `hostname` is the host
    /// name as returned by `gethostname` (used with `prefix-hostname`).
    ///
    /// Exclusion files are read here, once; a missing one is an error.
    pub fn from_config(config: &Config, hostname: &str) -> Result<Self, OptionsError> {
        let g = &config.graphite;
        let p = &config.process;
        let mut parts: Vec<String> = vec![g.namespace.clone()];
        if g.prefix_hostname {
            parts.push(prefix_host(g, hostname));
        }
        parts.push("haproxy".to_string());
        let exclude_frontends = match &p.exclude_frontends {
            Some(path) => read_exclude_file("exclude-frontends", path)?,
            None => HashSet::new(),
        };
        let exclude_backends = match &p.exclude_backends {
            Some(path) => read_exclude_file("exclude-backends", path)?,
            None => HashSet::new(),
        };
        let groups = |list: &[Group]| -> Vec<GroupRule> {
            list.iter()
                .map(|gr| GroupRule {
                    name: gr.name.clone(),
                    pattern: gr.pattern.clone(),
                })
                .collect()
        };
        let with_groups = g.group_namespace.is_some();
        let parallelism = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Ok(EngineOptions {
            prefix: parts.join("."),
            frontend_metrics: emitted_metrics(ProxyKind::Frontend, &p.frontend_metrics),
            backend_metrics: emitted_metrics(ProxyKind::Backend, &p.backend_metrics),
            server_metrics: emitted_metrics(ProxyKind::Server, &p.server_metrics),
            aggr_server_metrics: p.aggr_server_metrics,
            per_process_metrics: p.per_process_metrics,
            calculate_percentages: p.calculate_percentages,
            exclude_frontends,
            exclude_backends,
            group_namespace: g.group_namespace.clone(),
            group_double_writes: with_groups && g.group_namespace_double_writes,
            frontend_groups: if with_groups {
                groups(&config.groups.frontend)
            } else {
                Vec::new()
            },
            backend_groups: if with_groups {
                groups(&config.groups.backend)
            } else {
                Vec::new()
            },
            server_groups: if with_groups {
                groups(&config.groups.server)
            } else {
                Vec::new()
            },
            parallelism,
            batch_rows: 256,
        })
    }

    /// Options with every default of SPEC §4 and the given prefix: all
    /// metrics, no groups, no exclusions, no optional outputs.
    pub fn with_prefix(prefix: &str) -> Self {
        let all = |k: ProxyKind| k.all_metrics().to_vec();
        EngineOptions {
            prefix: prefix.to_string(),
            frontend_metrics: all(ProxyKind::Frontend),
            backend_metrics: all(ProxyKind::Backend),
            server_metrics: all(ProxyKind::Server),
            aggr_server_metrics: false,
            per_process_metrics: false,
            calculate_percentages: false,
            exclude_frontends: HashSet::new(),
            exclude_backends: HashSet::new(),
            group_namespace: None,
            group_double_writes: false,
            frontend_groups: Vec::new(),
            backend_groups: Vec::new(),
            server_groups: Vec::new(),
            parallelism: 1,
            batch_rows: 256,
        }
    }

    /// The path prefixes a name of `kind` is written under (`P`, or
    /// `P.<group-namespace>.<group>`, or both with double writes).
    pub(crate) fn paths_for(&self, rules: &[GroupRule], name: &str) -> Vec<String> {
        let group = rules.iter().find(|r| r.pattern.is_match(name));
        match (group, &self.group_namespace) {
            (Some(rule), Some(ns)) => {
                let grouped = format!("{}.{}.{}", self.prefix, ns, rule.name);
                if self.group_double_writes {
                    vec![grouped, self.prefix.clone()]
                } else {
                    vec![grouped]
                }
            }
            _ => vec![self.prefix.clone()],
        }
    }
}

/// The metrics emitted for a kind: the user's selection (with the catalogue's
/// aggregation) followed by the mean metrics of the kind the selection does not
/// name — the original always emitted the means whatever `*-metrics` said.
impl EngineOptions {
    /// The server metrics to aggregate: `server_metrics` first (what
    /// `P.backend.<be>.server.<srv>.*` carries), then, with
    /// `aggr-server-metrics`, every other server metric of the catalogue,
    /// because the original's `P.server.<srv>.*` always carried all of them
    /// whatever `server-metrics` selected — dashboards built on it must keep
    /// their paths.
    pub fn server_aggregated_metrics(&self) -> Vec<StatMetric> {
        let mut metrics = self.server_metrics.clone();
        if self.aggr_server_metrics {
            for m in ProxyKind::Server.all_metrics() {
                if !metrics.iter().any(|s| s.name == m.name) {
                    metrics.push(*m);
                }
            }
        }
        metrics
    }
}

fn emitted_metrics(kind: ProxyKind, selection: &MetricSelection) -> Vec<StatMetric> {
    let mut out = selection.metrics.clone();
    for m in kind.all_metrics() {
        if m.aggregation != crate::catalogue::Aggregation::Sum
            && !out.iter().any(|s| s.name == m.name)
        {
            out.push(*m);
        }
    }
    out
}

/// Reads an exclusion file: one name per line, surrounding white space
/// stripped, `#` comment lines skipped, names sanitised like proxy names.
fn read_exclude_file(option: &'static str, path: &Path) -> Result<HashSet<String>, OptionsError> {
    let bytes = std::fs::read(path).map_err(|source| OptionsError::ExcludeFile {
        option,
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_exclude_list(&String::from_utf8_lossy(&bytes)))
}

/// Parses the content of an exclusion file (see [`EngineOptions::from_config`]).
pub(crate) fn parse_exclude_list(text: &str) -> HashSet<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| sanitize_name(l.trim()))
        .filter(|l| !l.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusion_lists_skip_comments_and_sanitise() {
        let set = parse_exclude_list("# c\n  a.b  \n\n  # x\nc d\n");
        let mut v: Vec<_> = set.into_iter().collect();
        v.sort();
        assert_eq!(v, vec!["a_b".to_string(), "c_d".to_string()]);
    }

    #[test]
    fn group_paths_first_match_wins() {
        let mut o = EngineOptions::with_prefix("ns.haproxy");
        o.group_namespace = Some("g".into());
        o.backend_groups = vec![
            GroupRule {
                name: "one".into(),
                pattern: Regex::new("be").unwrap(),
            },
            GroupRule {
                name: "two".into(),
                pattern: Regex::new("b").unwrap(),
            },
        ];
        assert_eq!(
            o.paths_for(&o.backend_groups, "xbey"),
            vec!["ns.haproxy.g.one"]
        );
        assert_eq!(o.paths_for(&o.backend_groups, "zz"), vec!["ns.haproxy"]);
        o.group_double_writes = true;
        assert_eq!(
            o.paths_for(&o.backend_groups, "b"),
            vec!["ns.haproxy.g.two", "ns.haproxy"]
        );
    }
}
