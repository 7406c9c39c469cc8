//! Raw sections → the typed [`Config`]: every value interpolated, parsed
//! with ConfigParser's spellings (`getint`, `getfloat`, `getboolean`) and
//! checked, the first bad one refused with one line naming it.

use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

use super::error::{ConfigError, ConfigWarning};
use super::interpolate::interpolate;
use super::model::*;
use super::raw::{DEFAULT_SECTION, RawConfig};
use super::section::{SinkConfigs, SinkOptions};
use crate::catalogue::ProxyKind;
use crate::names::{check_name, check_path};

/// The options each section config reads itself knows; anything else the
/// user sets is warned about and ignored. Group sections take any name; a
/// sink's own section knows its [`super::SinkSection::OPTIONS`].
pub const KNOWN_OPTIONS: &[(&str, &[&str])] = &[
    ("paths", &["base-dir"]),
    (
        "pull",
        &[
            "loglevel",
            "socket-dir",
            "servers",
            "retries",
            "timeout",
            "interval",
            "pull-timeout",
            "pull-interval",
            "buffer-limit",
            "dst-dir",
            "tmp-dst-dir",
            "workers",
            "queue-size",
            "master-worker-limit",
        ],
    ),
    (
        "process",
        &[
            "loglevel",
            "src-dir",
            "workers",
            "frontend-metrics",
            "backend-metrics",
            "server-metrics",
            "exclude-frontends",
            "exclude-backends",
            "aggr-server-metrics",
            "per-process-metrics",
            "calculate-percentages",
            "liveness-check-interval",
            "local",
        ],
    ),
    (
        "graphite",
        &[
            "enabled",
            "server",
            "port",
            "retries",
            "interval",
            "connect-timeout",
            "write-timeout",
            "timeout",
            "delay",
            "backoff",
            "namespace",
            "prefix-hostname",
            "fqdn",
            "queue-size",
            "replay-bytes",
            "group-namespace",
            "group-namespace-double-writes",
        ],
    ),
    ("kafka", super::kafka::OPTIONS),
    ("central", super::central::OPTIONS),
];

/// The sections holding `group = regex` lines.
pub const GROUP_SECTIONS: [&str; 3] = ["frontend-groups", "backend-groups", "server-groups"];

/// Sections we know of but do not implement yet.
const NOT_IMPLEMENTED_SECTIONS: &[&str] = &[];

/// The most processing threads `[process] workers` and `[central] workers`
/// may ask for: each is a thread holding a snapshot in memory, and a number
/// beyond what the system can start made the command panic at start
/// ("failed to spawn thread"). Far above any useful value (the cores).
pub const MAX_WORKERS: i64 = 1024;

/// Typed, interpolating reads of one section, each value read with
/// ConfigParser's spellings and refused in one line naming section,
/// option, value and reason.
pub struct Reader<'a> {
    pub(super) raw: &'a RawConfig,
    pub(super) section: &'static str,
}

impl Reader<'_> {
    /// The section's name.
    pub fn section(&self) -> &'static str {
        self.section
    }

    /// The interpolated value, `None` when neither the section nor
    /// `[DEFAULT]` sets it.
    pub fn optional(&self, option: &str) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.raw.raw_get(self.section, option) else {
            return Ok(None);
        };
        interpolate(self.raw, self.section, value)
            .map(|v| Some(v.trim().to_owned()))
            .map_err(|error| ConfigError::Interpolation {
                section: self.section.to_owned(),
                option: option.to_owned(),
                value: value.to_owned(),
                reason: error.to_string(),
            })
    }

    /// The interpolated value; refused when it has none.
    pub fn string(&self, option: &str) -> Result<String, ConfigError> {
        self.optional(option)?.ok_or_else(|| {
            ConfigError::invalid(
                self.section,
                option,
                "",
                "no value (and no built-in default)",
            )
        })
    }

    /// The one-line refusal of `value` of `option` for `reason`.
    pub fn invalid(&self, option: &str, value: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::invalid(self.section, option, value, reason)
    }

    /// An integer (Python's `int()`).
    pub fn int(&self, option: &str) -> Result<i64, ConfigError> {
        let value = self.string(option)?;
        parse_python_int(&value).ok_or_else(|| self.invalid(option, &value, int_error(&value)))
    }

    /// An integer of at least `min`.
    pub fn int_at_least(&self, option: &str, min: i64) -> Result<i64, ConfigError> {
        let n = self.int(option)?;
        if n < min {
            return Err(self.invalid(option, &n.to_string(), format!("must be at least {min}")));
        }
        Ok(n)
    }

    /// A count of at least `min`.
    pub fn count(&self, option: &str, min: i64) -> Result<usize, ConfigError> {
        let n = self.int_at_least(option, min)?;
        usize::try_from(n).map_err(|_| self.invalid(option, &n.to_string(), "too large"))
    }

    /// A count from `min` to `max`; above, "too large (at most MAX: why)".
    pub fn count_between(
        &self,
        option: &str,
        min: i64,
        max: i64,
        why: &str,
    ) -> Result<usize, ConfigError> {
        let n = self.count(option, min)?;
        if n as u64 > max.unsigned_abs() {
            return Err(self.invalid(
                option,
                &n.to_string(),
                format!("too large (at most {max}: {why})"),
            ));
        }
        Ok(n)
    }

    /// `workers`: from 1 to `MAX_WORKERS` (1024).
    pub fn workers(&self) -> Result<usize, ConfigError> {
        self.count_between("workers", 1, MAX_WORKERS, "each worker is a thread")
    }

    /// A number (Python's `float()`).
    pub fn float(&self, option: &str) -> Result<f64, ConfigError> {
        let value = self.string(option)?;
        parse_python_float(&value).ok_or_else(|| self.invalid(option, &value, "not a number"))
    }

    /// A finite, non-negative number of seconds.
    pub fn seconds(&self, option: &str) -> Result<Duration, ConfigError> {
        let value = self.string(option)?;
        let secs = parse_python_float(&value)
            .ok_or_else(|| self.invalid(option, &value, "not a number of seconds"))?;
        Duration::try_from_secs_f64(secs).map_err(|_| {
            let reason = if secs.is_finite() && secs > 0.0 {
                "too large"
            } else {
                "must be a finite, non-negative number of seconds"
            };
            self.invalid(option, &value, reason)
        })
    }

    /// A boolean (`ConfigParser.getboolean`'s spellings).
    pub fn boolean(&self, option: &str) -> Result<bool, ConfigError> {
        let value = self.string(option)?;
        parse_python_bool(&value).ok_or_else(|| {
            self.invalid(
                option,
                &value,
                "not a boolean (use 1/yes/true/on or 0/no/false/off)",
            )
        })
    }

    /// A boolean, `None` when not set.
    pub fn optional_boolean(&self, option: &str) -> Result<Option<bool>, ConfigError> {
        match self.optional(option)? {
            None => Ok(None),
            Some(_) => self.boolean(option).map(Some),
        }
    }

    /// A number of retries: `-1` (forever), 0 or more.
    pub fn retries(&self, option: &str) -> Result<Retries, ConfigError> {
        match self.int(option)? {
            -1 => Ok(Retries::Forever),
            n if n > i64::from(u32::MAX) => Err(self.invalid(
                option,
                &n.to_string(),
                format!("too large (at most {})", u32::MAX),
            )),
            n => u32::try_from(n).map(Retries::Times).map_err(|_| {
                self.invalid(option, &n.to_string(), "must be -1 (forever), 0 or more")
            }),
        }
    }

    /// `loglevel`: a Python logging level name.
    pub fn loglevel(&self) -> Result<LogLevel, ConfigError> {
        let value = self.string("loglevel")?;
        parse_loglevel(&value).ok_or_else(|| {
            self.invalid(
                "loglevel",
                &value,
                "not a log level (debug, info, warning, error, critical)",
            )
        })
    }

    /// A non-empty path.
    pub fn path(&self, option: &str) -> Result<PathBuf, ConfigError> {
        let value = self.string(option)?;
        if value.is_empty() {
            return Err(self.invalid(option, &value, "empty path"));
        }
        Ok(PathBuf::from(value))
    }

    /// A path, `None` when not set or empty.
    pub fn optional_path(&self, option: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self
            .optional(option)?
            .filter(|v| !v.is_empty())
            .map(PathBuf::from))
    }
}

/// Python's `int()` on a stripped string: optional sign, decimal digits,
/// single underscores between digits.
pub fn parse_python_int(value: &str) -> Option<i64> {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    value.replace('_', "").parse().ok()
}

/// Why [`parse_python_int`] refused `value`: "too large" for digits that
/// are an integer beyond 64 bits, else "not an integer".
fn int_error(value: &str) -> &'static str {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    let is_integer = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__");
    match (is_integer, value.starts_with('-')) {
        (true, false) => "too large",
        (true, true) => "too large a negative number",
        (false, _) => "not an integer",
    }
}

/// Python's `float()`: decimal and exponent forms, `inf`, `nan`.
pub fn parse_python_float(value: &str) -> Option<f64> {
    if value.is_empty() || value.contains("__") || value.starts_with('_') || value.ends_with('_') {
        return None;
    }
    value.replace('_', "").parse().ok()
}

/// `ConfigParser.getboolean`'s spellings, case-insensitive.
pub fn parse_python_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Python logging level names the original accepted.
fn parse_loglevel(value: &str) -> Option<LogLevel> {
    match value.to_ascii_lowercase().as_str() {
        "debug" => Some(LogLevel::Debug),
        "info" => Some(LogLevel::Info),
        "warning" | "warn" => Some(LogLevel::Warning),
        "error" => Some(LogLevel::Error),
        "critical" | "fatal" => Some(LogLevel::Critical),
        _ => None,
    }
}

/// The original's `liveness-check-interval` default: a configuration that
/// leaves it there is not told that it is ignored (README, "Where we differ").
const ORIGINAL_LIVENESS_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Builds and validates the typed configuration; `sinks` are the sinks'
/// sections, each read when declared.
pub fn build(
    raw: &RawConfig,
    sinks: &[SinkOptions],
) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
    let mut warnings = unknown_options(raw, sinks);
    let paths = PathsConfig {
        base_dir: Reader {
            raw,
            section: "paths",
        }
        .path("base-dir")?,
    };
    let pull = build_pull(&Reader {
        raw,
        section: "pull",
    })?;
    let process = build_process(&Reader {
        raw,
        section: "process",
    })?;
    let graphite = build_graphite(&Reader {
        raw,
        section: "graphite",
    })?;
    if process.liveness_check_interval != ORIGINAL_LIVENESS_CHECK_INTERVAL {
        warnings.push(ConfigWarning {
            location: "[process] liveness-check-interval".to_owned(),
            message: format!(
                "ignored: the supervisor checks its children every {} ms and restarts a dead one",
                super::LIVENESS_INTERVAL.as_millis()
            ),
        });
    }
    let kafka = if raw.user_declared("kafka") {
        Some(super::kafka::build(&Reader {
            raw,
            section: "kafka",
        })?)
    } else {
        None
    };
    let mut own = SinkConfigs::new(sinks);
    for section in own.own().collect::<Vec<_>>() {
        if raw.user_declared(section.name()) {
            let value = section.read(&Reader {
                raw,
                section: section.name(),
            })?;
            own.push(section.name(), value);
        }
    }
    let central = if raw.user_declared("central") {
        Some(super::central::build(&Reader {
            raw,
            section: "central",
        })?)
    } else {
        None
    };
    let groups = build_groups(raw)?;
    check_groups_have_namespace(&groups, &graphite)?;
    check_some_sink(&process, &graphite, &own, kafka.as_ref())?;
    let config = Config {
        paths,
        pull,
        process,
        graphite,
        kafka,
        sinks: own,
        central,
        groups,
    };
    Ok((config, warnings))
}

fn build_pull(r: &Reader<'_>) -> Result<PullConfig, ConfigError> {
    let servers = match r.optional("servers")? {
        None => Vec::new(),
        Some(list) => parse_servers(r, &list)?,
    };
    let socket_dir = r.optional_path("socket-dir")?;
    if socket_dir.is_none() && servers.is_empty() {
        return Err(r.invalid(
            "socket-dir",
            "",
            "empty, and no 'servers' are set either: there is nothing to pull",
        ));
    }
    let pull_interval = r.int_at_least("pull-interval", 1)?;
    let pull_timeout = r.seconds("pull-timeout")?;
    Ok(PullConfig {
        loglevel: r.loglevel()?,
        socket_dir,
        servers,
        retries: r.retries("retries")?,
        timeout: r.seconds("timeout")?,
        interval: r.seconds("interval")?,
        pull_timeout: (!pull_timeout.is_zero()).then_some(pull_timeout),
        pull_interval: Duration::from_secs(pull_interval.unsigned_abs()),
        buffer_limit: r.count("buffer-limit", 1)?,
        dst_dir: r.path("dst-dir")?,
        tmp_dst_dir: r.path("tmp-dst-dir")?,
        workers: r.count("workers", 1)?,
        queue_size: r.count("queue-size", 1)?,
        master_worker_limit: master_worker_limit(r)?,
    })
}

/// `master-worker-limit`: HAProxy never had more than 64 processes; the
/// bound is there against a master that lists thousands.
fn master_worker_limit(r: &Reader<'_>) -> Result<usize, ConfigError> {
    const MAX: usize = 4096;
    let limit = r.count("master-worker-limit", 1)?;
    if limit > MAX {
        return Err(r.invalid(
            "master-worker-limit",
            &limit.to_string(),
            format!("must be at most {MAX}"),
        ));
    }
    Ok(limit)
}

/// `servers`: comma-separated `unix:///path`, `tcp://host:port`,
/// `master:///path` and `http(s)://[user:pass@]host[:port]/path` URLs.
/// Errors quote the list with any credentials replaced by `***`.
fn parse_servers(r: &Reader<'_>, list: &str) -> Result<Vec<StatsEndpoint>, ConfigError> {
    let shown = super::stats_url::redact(list);
    let mut servers = Vec::new();
    for entry in list.split(',').map(str::trim) {
        let bad = |reason: &str| {
            let entry = super::stats_url::redact(entry);
            r.invalid("servers", &shown, format!("'{entry}': {reason}"))
        };
        if entry.is_empty() {
            return Err(bad("empty entry"));
        }
        if let Some(path) = entry.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(bad("a unix socket needs an absolute path (unix:///path)"));
            }
            servers.push(StatsEndpoint::Unix(PathBuf::from(path)));
        } else if let Some(path) = entry.strip_prefix("master://") {
            if !path.starts_with('/') {
                return Err(bad(
                    "a master CLI socket needs an absolute path (master:///path)",
                ));
            }
            servers.push(StatsEndpoint::Master(PathBuf::from(path)));
        } else if entry.starts_with("http://") || entry.starts_with("https://") {
            let url = super::stats_url::parse(entry).map_err(|e| bad(&e.to_string()))?;
            servers.push(StatsEndpoint::Http(url));
        } else if let Some(address) = entry.strip_prefix("tcp://") {
            let address = address.trim_end_matches('/');
            let Some((host, port)) = address.rsplit_once(':') else {
                return Err(bad("port is not set (tcp://host:port)"));
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(bad("host is not set (tcp://host:port)"));
            }
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("port is not a number from 1 to 65535"))?;
            servers.push(StatsEndpoint::Tcp {
                host: host.to_owned(),
                port,
            });
        } else {
            return Err(bad(
                "only unix://, tcp://, master:// and http(s):// servers are supported",
            ));
        }
    }
    Ok(servers)
}

fn build_process(r: &Reader<'_>) -> Result<ProcessConfig, ConfigError> {
    Ok(ProcessConfig {
        loglevel: r.loglevel()?,
        src_dir: r.path("src-dir")?,
        workers: r.workers()?,
        frontend_metrics: metric_selection(r, ProxyKind::Frontend)?,
        backend_metrics: metric_selection(r, ProxyKind::Backend)?,
        server_metrics: metric_selection(r, ProxyKind::Server)?,
        exclude_frontends: r.optional_path("exclude-frontends")?,
        exclude_backends: r.optional_path("exclude-backends")?,
        aggr_server_metrics: r.boolean("aggr-server-metrics")?,
        per_process_metrics: r.boolean("per-process-metrics")?,
        calculate_percentages: r.boolean("calculate-percentages")?,
        local: r.boolean("local")?,
        liveness_check_interval: r.seconds("liveness-check-interval")?,
    })
}

/// A `*-metrics` option: space-separated names, each valid for its kind.
fn metric_selection(r: &Reader<'_>, kind: ProxyKind) -> Result<MetricSelection, ConfigError> {
    let option = kind.metrics_option();
    let Some(list) = r.optional(option)? else {
        return Ok(MetricSelection {
            metrics: kind.all_metrics().to_vec(),
            explicit: false,
        });
    };
    let mut metrics = Vec::new();
    for name in list.split_whitespace() {
        let metric = kind.metric(name).ok_or_else(|| {
            r.invalid(
                option,
                &list,
                format!("'{name}' is not a valid metric name here"),
            )
        })?;
        if !metrics.contains(&metric) {
            metrics.push(metric);
        }
    }
    if metrics.is_empty() {
        return Err(r.invalid(option, &list, "empty list of metrics"));
    }
    Ok(MetricSelection {
        metrics,
        explicit: true,
    })
}

fn build_graphite(r: &Reader<'_>) -> Result<GraphiteConfig, ConfigError> {
    let port_value = r.string("port")?;
    let port = parse_python_int(&port_value)
        .ok_or_else(|| r.invalid("port", &port_value, int_error(&port_value)))?;
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| r.invalid("port", &port_value, "not a port number (1-65535)"))?;
    let backoff = r.float("backoff")?;
    if !(backoff.is_finite() && backoff > 0.0) {
        return Err(r.invalid("backoff", &backoff.to_string(), "must be a positive number"));
    }
    let namespace = r.string("namespace")?;
    if let Err(error) = check_path(&namespace) {
        return Err(r.invalid("namespace", &namespace, error.to_string()));
    }
    let group_namespace = match r.optional("group-namespace")? {
        None => None,
        Some(ns) => match check_path(&ns) {
            Ok(()) => Some(ns),
            Err(error) => return Err(r.invalid("group-namespace", &ns, error.to_string())),
        },
    };
    let server = r.string("server")?;
    if server.is_empty() || server.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(r.invalid(
            "server",
            &server,
            "must be a host name or address, non-empty and without blanks",
        ));
    }
    Ok(GraphiteConfig {
        enabled: r.boolean("enabled")?,
        server,
        port,
        retries: r.retries("retries")?,
        interval: r.seconds("interval")?,
        connect_timeout: r.seconds("connect-timeout")?,
        write_timeout: r.seconds("write-timeout")?,
        delay: r.seconds("delay")?,
        backoff,
        namespace,
        prefix_hostname: r.boolean("prefix-hostname")?,
        fqdn: r.boolean("fqdn")?,
        queue_size: r.count("queue-size", 1)?,
        replay_bytes: r.count("replay-bytes", 0)?,
        group_namespace_double_writes: r
            .optional_boolean("group-namespace-double-writes")?
            .unwrap_or(false),
        group_namespace,
    })
}

/// Group sections: every option the user wrote in the section itself is a
/// group (the keys inherited from `[DEFAULT]` are not groups).
fn build_groups(raw: &RawConfig) -> Result<Groups, ConfigError> {
    let mut groups = Groups::default();
    for (section, target) in GROUP_SECTIONS.into_iter().zip([
        &mut groups.frontend,
        &mut groups.backend,
        &mut groups.server,
    ]) {
        for (name, value) in raw.user_options(section) {
            // A group name is written as given (never sanitised): one the
            // rule refuses is refused here, so that the user sees what his
            // metrics would be called.
            if let Err(error) = check_name(name) {
                return Err(ConfigError::invalid(
                    section,
                    name,
                    value,
                    format!("the group name {error}"),
                ));
            }
            let pattern =
                interpolate(raw, section, value).map_err(|error| ConfigError::Interpolation {
                    section: section.to_owned(),
                    option: name.to_owned(),
                    value: value.to_owned(),
                    reason: error.to_string(),
                })?;
            let pattern = pattern.trim();
            let pattern = Regex::new(pattern).map_err(|error| {
                ConfigError::invalid(
                    section,
                    name,
                    pattern,
                    format!("not a valid regex: {}", one_line(&error.to_string())),
                )
            })?;
            target.push(Group {
                name: name.to_owned(),
                pattern,
            });
        }
    }
    Ok(groups)
}

/// Group sections and `group-namespace` only make sense together (the
/// original refused either one alone).
fn check_groups_have_namespace(
    groups: &Groups,
    graphite: &GraphiteConfig,
) -> Result<(), ConfigError> {
    match (&graphite.group_namespace, groups.is_empty()) {
        (Some(ns), true) => Err(ConfigError::Inconsistent(format!(
            "[graphite] group-namespace = '{ns}' is set but no [frontend-groups], [backend-groups] or [server-groups] section declares a group"
        ))),
        (None, false) => Err(ConfigError::Inconsistent(
            "group sections are set but [graphite] group-namespace is not".to_owned(),
        )),
        _ => Ok(()),
    }
}

/// Every snapshot is deleted once the enabled sinks have it: with none, it
/// would be deleted unsent. An edge (`local = false`) has one sink only,
/// the snapshots topic.
fn check_some_sink(
    process: &ProcessConfig,
    graphite: &GraphiteConfig,
    own: &SinkConfigs,
    kafka: Option<&KafkaConfig>,
) -> Result<(), ConfigError> {
    let publishes = kafka.is_some_and(|kafka| kafka.snapshots_topic.is_some());
    if !process.local {
        if publishes {
            return Ok(());
        }
        return Err(ConfigError::Inconsistent(
            "[process] local = false and no [kafka] snapshots-topic: nothing would process or publish the snapshots, and every one would be deleted unsent".to_owned(),
        ));
    }
    if graphite.enabled || own.any_declared() || kafka.is_some() {
        return Ok(());
    }
    let others: Vec<String> = own
        .sections()
        .iter()
        .filter(|sink| !matches!(sink, SinkOptions::Graphite))
        .map(|sink| format!("[{}]", sink.name()))
        .collect();
    Err(ConfigError::Inconsistent(format!(
        "[graphite] enabled = false and none of {}: no sink is left, and every snapshot would be deleted unsent",
        others.join(", ")
    )))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Options the user set that nothing reads, and the one the original read
/// but never used.
/// Whether `option` is one of `known`, or one passed on to librdkafka.
fn known_option(section: &str, known: &[&str], option: &str) -> bool {
    known.contains(&option)
        || (section == "kafka" && option.starts_with(super::kafka::LIBRDKAFKA_PREFIX))
}

fn unknown_options(raw: &RawConfig, sinks: &[SinkOptions]) -> Vec<ConfigWarning> {
    let mut warnings = Vec::new();
    for (section, options) in &raw.user {
        if section == DEFAULT_SECTION || GROUP_SECTIONS.contains(&section.as_str()) {
            continue;
        }
        if NOT_IMPLEMENTED_SECTIONS.contains(&section.as_str()) {
            warnings.push(ConfigWarning {
                location: format!("[{section}]"),
                message: "not implemented yet; ignored".to_owned(),
            });
            continue;
        }
        let own = sinks.iter().find_map(|sink| match sink {
            SinkOptions::Own(own) if own.name() == section => Some(
                own.options()
                    .iter()
                    .map(|option| option.name)
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        });
        let known = KNOWN_OPTIONS
            .iter()
            .find(|(name, _)| name == section)
            .map(|(_, known)| known.to_vec())
            .or(own);
        let Some(known) = known else {
            warnings.push(ConfigWarning {
                location: format!("[{section}]"),
                message: "unknown section; ignored".to_owned(),
            });
            continue;
        };
        for option in options.keys() {
            if section == "graphite" && option == "timeout" {
                warnings.push(ConfigWarning {
                    location: "[graphite] timeout".to_owned(),
                    message: "ignored, as by the original: connect-timeout and write-timeout (default 1.0) apply".to_owned(),
                });
            } else if !known_option(section, &known, option) {
                let hint = known
                    .iter()
                    .find(|k| k.replace('-', "_") == option.replace('-', "_"))
                    .map(|k| format!(" (did you mean '{k}'?)"))
                    .unwrap_or_default();
                warnings.push(ConfigWarning {
                    location: format!("[{section}] {option}"),
                    message: format!("unknown option; ignored{hint}"),
                });
            }
        }
    }
    warnings
}
