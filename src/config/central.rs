//! `[central]` (ours, SPEC §7): the options of `haproxystats central`. Read
//! and checked at start like every section (one line, exit 2); what depends
//! on `[kafka]` (the snapshots topic the defaults derive from) is resolved
//! by [`resolve`] when the command starts, for `central` needs it and no
//! other command does.

use std::time::Duration;

use super::build::Reader;
use super::error::ConfigError;
use super::kafka::check_topic;
use super::model::{CentralConfig, Config, KafkaConfig};
use crate::names::check_path;

/// The options of `[central]`.
pub const OPTIONS: &[&str] = &[
    "group-id",
    "partials-topic",
    "state-topic",
    "workers",
    "window",
    "grace",
    "lb-timeout",
    "expected-windows",
    "max-clock-skew",
    "cluster-namespace",
    "partials-compression",
];

/// `window` when not set, seconds.
pub const DEFAULT_WINDOW: u64 = 10;

/// `grace` when not set.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(20);

/// `lb-timeout` when not set, in windows.
pub const DEFAULT_LB_TIMEOUT_WINDOWS: u64 = 3;

/// `max-clock-skew` when not set, in windows.
pub const DEFAULT_MAX_CLOCK_SKEW_WINDOWS: u64 = 2;

/// `expected-windows` when not set.
pub const DEFAULT_EXPECTED_WINDOWS: u64 = 1;

/// `cluster-namespace` when not set.
pub const DEFAULT_CLUSTER_NAMESPACE: &str = "clusters";

/// `group-id` when not set.
pub const DEFAULT_GROUP_ID: &str = "haproxystats-central";

/// Suffix of the snapshots topic giving the default `partials-topic`.
pub const PARTIALS_SUFFIX: &str = ".partials";

/// Suffix of the snapshots topic giving the default `state-topic`.
pub const STATE_SUFFIX: &str = ".state";

/// The longest consumer group id we accept: Kafka has no limit, but a
/// group id is a key in the broker's offsets topic and in its logs.
const MAX_GROUP_ID: usize = 255;

pub(super) fn build(r: &Reader<'_>) -> Result<CentralConfig, ConfigError> {
    let group_id = r.optional("group-id")?.unwrap_or_default();
    let group_id = if group_id.is_empty() {
        DEFAULT_GROUP_ID.to_owned()
    } else {
        check_group_id(&group_id).map_err(|reason| r.invalid("group-id", &group_id, reason))?;
        group_id
    };
    let topic = |option: &str| -> Result<Option<String>, ConfigError> {
        let value = r.optional(option)?.unwrap_or_default();
        if value.is_empty() {
            return Ok(None);
        }
        check_topic(&value).map_err(|reason| r.invalid(option, &value, reason))?;
        Ok(Some(value))
    };
    let partials_topic = topic("partials-topic")?;
    let state_topic = topic("state-topic")?;
    if let (Some(partials), Some(state)) = (&partials_topic, &state_topic)
        && partials == state
    {
        return Err(r.invalid(
            "state-topic",
            state,
            "is also `partials-topic`: each needs a topic of its own",
        ));
    }
    let workers = match r.optional("workers")?.filter(|w| !w.is_empty()) {
        None => None,
        Some(_) => Some(r.workers()?),
    };
    let window = match r.optional("window")?.filter(|w| !w.is_empty()) {
        None => DEFAULT_WINDOW,
        Some(_) => r.int_at_least("window", 1)?.unsigned_abs(),
    };
    let grace = match r.optional("grace")?.filter(|g| !g.is_empty()) {
        None => DEFAULT_GRACE,
        Some(_) => r.seconds("grace")?,
    };
    let lb_timeout = match r.optional("lb-timeout")?.filter(|t| !t.is_empty()) {
        None => None,
        Some(_) => Some(r.seconds("lb-timeout")?),
    };
    let expected_windows = match r.optional("expected-windows")?.filter(|e| !e.is_empty()) {
        None => DEFAULT_EXPECTED_WINDOWS,
        Some(_) => r.int_at_least("expected-windows", 0)?.unsigned_abs(),
    };
    let max_clock_skew = match r.optional("max-clock-skew")?.filter(|t| !t.is_empty()) {
        None => None,
        Some(_) => Some(r.seconds("max-clock-skew")?),
    };
    let cluster_namespace = match r.optional("cluster-namespace")?.filter(|n| !n.is_empty()) {
        None => DEFAULT_CLUSTER_NAMESPACE.to_owned(),
        Some(name) => {
            check_path(&name)
                .map_err(|error| r.invalid("cluster-namespace", &name, error.to_string()))?;
            name
        }
    };
    let partials_compression = match r
        .optional("partials-compression")?
        .filter(|c| !c.is_empty())
    {
        None => super::codec::BufferCodec::PARTIALS_DEFAULT,
        Some(text) => super::codec::BufferCodec::parse(&text)
            .map_err(|reason| r.invalid("partials-compression", &text, reason))?,
    };
    Ok(CentralConfig {
        partials_compression,
        group_id,
        partials_topic,
        state_topic,
        workers,
        window,
        grace,
        lb_timeout,
        expected_windows,
        max_clock_skew,
        cluster_namespace,
    })
}

/// A consumer group id: printable, no blanks (it shows in logs and tools).
fn check_group_id(id: &str) -> Result<(), &'static str> {
    if id.len() > MAX_GROUP_ID {
        return Err("too long (at most 255 bytes)");
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not hold blanks or control characters");
    }
    Ok(())
}

/// The options of stage 2's windows (`[central]`), in seconds but
/// `grace`; what they mean for a partial is `central::windows`'s
/// (`WindowSettings::place`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSettings {
    /// `window`: the width of a window, seconds (> 0).
    pub window: u64,
    /// `grace`: how long after its first partial a window of a caught-up
    /// partition is closed without the LBs that did not report, in ms.
    pub grace_ms: u64,
    /// `lb-timeout`: an LB whose newest window is further than this behind
    /// its cluster's newest is no longer expected, seconds.
    pub lb_timeout: u64,
    /// `expected-windows`: windows a cluster with no stored state is watched
    /// before the LBs it saw are trusted to be all of them.
    pub expected_windows: u64,
    /// `max-clock-skew`: how far a partial's `ts` may be ahead of its
    /// reference time and still place it, seconds.
    pub max_clock_skew: u64,
}

/// Everything `haproxystats central` runs with, the defaults resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct CentralSettings {
    /// `[kafka]`: brokers and the librdkafka options of every client.
    pub kafka: KafkaConfig,
    /// `[kafka] snapshots-topic`: what central consumes.
    pub snapshots_topic: String,
    /// `[kafka] topic` when set in a file: central's lines go there too;
    /// `None` (its default left alone): no Kafka sink, `[kafka]` describes
    /// the input only (SPEC §5, "Which `[kafka]` means what").
    pub metrics_topic: Option<String>,
    /// `[central] group-id`.
    pub group_id: String,
    /// `[central] partials-topic`, default `<snapshots-topic>.partials`.
    pub partials_topic: String,
    /// `[central] state-topic`, default `<snapshots-topic>.state` (stage 2).
    pub state_topic: String,
    /// `[central] workers`, default `[process] workers`.
    pub workers: usize,
    /// Stage 2's windows: `window`, `grace`, `lb-timeout`,
    /// `expected-windows`.
    pub windows: WindowSettings,
    /// `[central] cluster-namespace`: cluster lines go under
    /// `<namespace>.<this>.<cluster>.haproxy.`.
    pub cluster_namespace: String,
    /// `[central] partials-compression`.
    pub partials_compression: crate::config::codec::BufferCodec,
}

/// `[central]` with what it takes from `[kafka]` and `[process]`; one line
/// naming what is missing or clashing when central cannot run.
pub fn resolve(config: &Config) -> Result<CentralSettings, ConfigError> {
    let missing = |option: &str, reason: &str| ConfigError::invalid("kafka", option, "", reason);
    let Some(kafka) = config.kafka.clone() else {
        return Err(missing(
            "brokers",
            "haproxystats central needs [kafka] with brokers and snapshots-topic",
        ));
    };
    let Some(snapshots_topic) = kafka.snapshots_topic.clone() else {
        return Err(missing(
            "snapshots-topic",
            "haproxystats central needs the topic the edges publish to",
        ));
    };
    let metrics_topic = kafka.topic_set.then(|| kafka.topic.clone());
    let central = config.central.clone().unwrap_or_default();
    let partials_topic = central
        .partials_topic
        .unwrap_or_else(|| format!("{snapshots_topic}{PARTIALS_SUFFIX}"));
    let state_topic = central
        .state_topic
        .unwrap_or_else(|| format!("{snapshots_topic}{STATE_SUFFIX}"));
    let clash = |option: &str, value: &str, other: &str| {
        ConfigError::invalid(
            "central",
            option,
            value,
            format!("is also {other}: each needs a topic of its own"),
        )
    };
    for (option, value) in [
        ("partials-topic", &partials_topic),
        ("state-topic", &state_topic),
    ] {
        check_topic(value)
            .map_err(|reason| ConfigError::invalid("central", option, value, reason))?;
        if *value == snapshots_topic {
            return Err(clash(option, value, "[kafka] snapshots-topic"));
        }
        if metrics_topic.as_ref() == Some(value) {
            return Err(clash(option, value, "[kafka] topic"));
        }
    }
    if partials_topic == state_topic {
        return Err(clash("state-topic", &state_topic, "partials-topic"));
    }
    let window = central.window;
    let windows = WindowSettings {
        window,
        grace_ms: u64::try_from(central.grace.as_millis()).unwrap_or(u64::MAX),
        lb_timeout: central
            .lb_timeout
            .map_or(window.saturating_mul(DEFAULT_LB_TIMEOUT_WINDOWS), |t| {
                t.as_secs()
            }),
        expected_windows: central.expected_windows,
        max_clock_skew: central
            .max_clock_skew
            .map_or(window.saturating_mul(DEFAULT_MAX_CLOCK_SKEW_WINDOWS), |t| {
                t.as_secs()
            }),
    };
    Ok(CentralSettings {
        windows,
        partials_compression: central.partials_compression,
        cluster_namespace: central.cluster_namespace,
        snapshots_topic,
        metrics_topic,
        group_id: central.group_id,
        partials_topic,
        state_topic,
        workers: central.workers.unwrap_or(config.process.workers).max(1),
        kafka,
    })
}

impl CentralSettings {
    /// The configuration central's line sinks are made from: `config`
    /// without `[kafka]` unless its `topic` is set, for on central
    /// `[kafka]` describes the input; sending every line to a metrics topic
    /// nobody asked for cost ~10× the processing, and stalled central for
    /// good when that topic did not exist.
    pub fn lines_config(&self, config: &Config) -> Config {
        let mut lines = config.clone();
        if self.metrics_topic.is_none() {
            lines.kafka = None;
        }
        lines
    }
}

impl Default for CentralConfig {
    fn default() -> Self {
        CentralConfig {
            partials_compression: super::codec::BufferCodec::PARTIALS_DEFAULT,
            group_id: DEFAULT_GROUP_ID.to_owned(),
            partials_topic: None,
            state_topic: None,
            workers: None,
            window: DEFAULT_WINDOW,
            grace: DEFAULT_GRACE,
            lb_timeout: None,
            expected_windows: DEFAULT_EXPECTED_WINDOWS,
            max_clock_skew: None,
            cluster_namespace: DEFAULT_CLUSTER_NAMESPACE.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn load_str(text: &str) -> Result<crate::config::LoadedConfig, crate::config::ConfigError> {
        crate::config::load_str(text, &crate::sink::options())
    }

    const KAFKA: &str = "[kafka]\nbrokers = k:9092\nsnapshots-topic = snaps\n";

    fn settings(text: &str) -> Result<CentralSettings, String> {
        let config = load_str(text).map_err(|e| e.to_string())?.config;
        resolve(&config).map_err(|e| e.to_string())
    }

    fn error(text: &str) -> String {
        match settings(text) {
            Ok(settings) => panic!("accepted: {settings:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn every_option_has_a_default_derived_from_the_snapshots_topic() {
        let got = settings(&format!("[process]\nworkers = 3\n{KAFKA}")).expect("valid");
        assert_eq!(got.group_id, "haproxystats-central");
        assert_eq!(got.snapshots_topic, "snaps");
        assert_eq!(got.partials_topic, "snaps.partials");
        assert_eq!(got.state_topic, "snaps.state");
        assert_eq!(got.workers, 3);
        assert_eq!(got.kafka.brokers, "k:9092");
        assert_eq!(
            got.windows,
            WindowSettings {
                window: 10,
                grace_ms: 20_000,
                lb_timeout: 30,
                expected_windows: 1,
                max_clock_skew: 20,
            }
        );
        assert_eq!(got.cluster_namespace, "clusters");
    }

    #[test]
    fn lb_timeout_is_three_windows_unless_given() {
        let got = settings(&format!("{KAFKA}[central]\nwindow = 5\ngrace = 7.5\n")).expect("valid");
        assert_eq!(
            (
                got.windows.window,
                got.windows.lb_timeout,
                got.windows.grace_ms
            ),
            (5, 15, 7_500)
        );
        let got = settings(&format!(
            "{KAFKA}[central]\nwindow = 5\nlb-timeout = 60\nexpected-windows = 0\ncluster-namespace = dc.clusters\n"
        ))
        .expect("valid");
        assert_eq!(
            (got.windows.lb_timeout, got.windows.expected_windows),
            (60, 0)
        );
        assert_eq!(got.cluster_namespace, "dc.clusters");
    }

    #[test]
    fn partials_are_lz4_unless_told_and_a_bad_codec_is_one_line() {
        use crate::config::codec::BufferCodec;
        let got = settings(KAFKA).expect("valid");
        assert_eq!(got.partials_compression, BufferCodec::Lz4Frame);
        let got = settings(&format!(
            "{KAFKA}[central]\npartials-compression = zstd:1\n"
        ))
        .expect("valid");
        assert_eq!(got.partials_compression, BufferCodec::Zstd(1));
        let message = error(&format!("{KAFKA}[central]\npartials-compression = gzip\n"));
        assert!(
            message.contains("[central] partials-compression = 'gzip'") && !message.contains('\n'),
            "{message}"
        );
    }

    #[test]
    fn snapshots_are_lz4_unless_told_and_a_bad_codec_is_one_line() {
        use crate::config::codec::BufferCodec;
        let kafka = |extra: &str| {
            crate::config::load_str(&format!("{KAFKA}{extra}"), &crate::sink::options())
                .map(|loaded| loaded.config.kafka.map(|k| k.snapshot_compression))
                .map_err(|e| e.to_string())
        };
        assert_eq!(kafka(""), Ok(Some(BufferCodec::Lz4Frame)));
        assert_eq!(
            kafka("snapshot-compression = none\n"),
            Ok(Some(BufferCodec::None))
        );
        let message = kafka("snapshot-compression = zstd:99\n").expect_err("refused");
        assert!(
            message.contains("[kafka] snapshot-compression = 'zstd:99'") && !message.contains('\n'),
            "{message}"
        );
    }

    #[test]
    fn max_clock_skew_is_two_windows_unless_given() {
        let got = settings(&format!("{KAFKA}[central]\nwindow = 5\n")).expect("valid");
        assert_eq!(got.windows.max_clock_skew, 10);
        let got = settings(&format!("{KAFKA}[central]\nmax-clock-skew = 45\n")).expect("valid");
        assert_eq!(got.windows.max_clock_skew, 45);
        assert!(
            error(&format!("{KAFKA}[central]\nmax-clock-skew = ahead\n"))
                .contains("[central] max-clock-skew = 'ahead'")
        );
    }

    #[test]
    fn the_options_given_win_and_print_back_as_read() {
        let text = format!(
            "{KAFKA}[central]\ngroup-id = g1\npartials-topic = p\nstate-topic = s\nworkers = 2\n"
        );
        let got = settings(&text).expect("valid");
        assert_eq!(
            (got.group_id.as_str(), got.partials_topic.as_str()),
            ("g1", "p")
        );
        assert_eq!((got.state_topic.as_str(), got.workers), ("s", 2));
        let config = load_str(&text).expect("valid").config;
        let again = load_str(&config.to_ini()).expect("printed back").config;
        assert_eq!(again.central, config.central);
    }

    #[test]
    fn bad_values_are_one_line_naming_section_option_and_value() {
        for (text, expected) in [
            ("[central]\ngroup-id = a b\n", "[central] group-id = 'a b'"),
            (
                "[central]\npartials-topic = a/b\n",
                "[central] partials-topic",
            ),
            ("[central]\nstate-topic = x y\n", "[central] state-topic"),
            ("[central]\nworkers = 0\n", "[central] workers = '0'"),
            ("[central]\nwindow = 0\n", "[central] window = '0'"),
            ("[central]\nwindow = 2.5\n", "[central] window = '2.5'"),
            ("[central]\ngrace = -1\n", "[central] grace = '-1'"),
            (
                "[central]\nlb-timeout = soon\n",
                "[central] lb-timeout = 'soon'",
            ),
            (
                "[central]\nexpected-windows = -1\n",
                "[central] expected-windows",
            ),
            (
                "[central]\ncluster-namespace = a b\n",
                "[central] cluster-namespace = 'a b'",
            ),
            (
                "[central]\ncluster-namespace = a..b\n",
                "[central] cluster-namespace",
            ),
            ("[central]\nworkers = many\n", "[central] workers = 'many'"),
            (
                "[central]\npartials-topic = t\nstate-topic = t\n",
                "[central] state-topic = 't'",
            ),
        ] {
            let text = format!("{KAFKA}{text}");
            let got = error(&text);
            assert!(got.contains(expected), "{text:?}: {got}");
            assert_eq!(got.lines().count(), 1, "{got}");
        }
    }

    /// The names of the line sinks central starts with `text`.
    fn line_sinks(text: &str) -> Vec<String> {
        let config = load_str(text).expect("valid").config;
        let settings = resolve(&config).expect("central runs");
        let lines = settings.lines_config(&config);
        crate::sink::line_sinks(
            &lines,
            "ns",
            "central1",
            crate::sink::Lines::PerLoadBalancer,
        )
        .expect("no port to bind")
        .iter()
        .map(|sink| sink.name().to_owned())
        .collect()
    }

    #[test]
    fn kafka_describes_the_input_and_lines_go_to_kafka_only_when_topic_is_set() {
        assert_eq!(line_sinks(KAFKA), ["graphite"]);
        assert_eq!(settings(KAFKA).expect("valid").metrics_topic, None);
        let with_topic = format!("{KAFKA}topic = haproxystats.metrics\n");
        assert_eq!(line_sinks(&with_topic), ["graphite", "kafka"]);
        assert_eq!(
            settings(&with_topic)
                .expect("valid")
                .metrics_topic
                .as_deref(),
            Some("haproxystats.metrics")
        );
        // Set in [DEFAULT] is set too.
        let inherited = format!("[DEFAULT]\ntopic = m\n{KAFKA}");
        assert_eq!(line_sinks(&inherited), ["graphite", "kafka"]);
        // The default topic is nobody's: a partials topic may take its name.
        let text = format!("{KAFKA}[central]\npartials-topic = haproxystats.metrics\n");
        assert_eq!(
            settings(&text).expect("valid").partials_topic,
            "haproxystats.metrics"
        );
    }

    #[test]
    fn workers_are_bounded() {
        let got = settings(&format!("{KAFKA}[central]\nworkers = 1024\n")).expect("valid");
        assert_eq!(got.workers, 1024);
        for text in [
            "[central]\nworkers = 1025\n",
            "[central]\nworkers = 1000000\n",
        ] {
            let got = error(&format!("{KAFKA}{text}"));
            assert!(got.contains("too large (at most 1024"), "{got}");
            assert_eq!(got.lines().count(), 1, "{got}");
        }
    }

    #[test]
    fn central_needs_the_snapshots_topic_and_topics_of_its_own() {
        assert!(error("").contains("[kafka] brokers"));
        assert!(error("[kafka]\nbrokers = k:1\n").contains("[kafka] snapshots-topic"));
        let clash = error(&format!("{KAFKA}[central]\npartials-topic = snaps\n"));
        assert!(clash.contains("snapshots-topic"), "{clash}");
        let clash = error(&format!("{KAFKA}topic = m\n[central]\nstate-topic = m\n"));
        assert!(clash.contains("[kafka] topic"), "{clash}");
        let clash = error(&format!("{KAFKA}[central]\npartials-topic = snaps.state\n"));
        assert!(clash.contains("partials-topic"), "{clash}");
    }
}
