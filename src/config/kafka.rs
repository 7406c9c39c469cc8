//! `[kafka]` (ours, SPEC §5): read and checked at start, so that a bad
//! broker list, format or librdkafka option stops the command with one line
//! (exit 2) instead of a sink that can never deliver. Its values
//! ([`Format`], [`Compression`]) and the librdkafka configuration made of
//! it ([`client_config`]) live here too: the check needs them, and the
//! Kafka sinks and central import them from here.

use std::fmt;

use rdkafka::ClientConfig;

use super::build::Reader;
use super::error::ConfigError;
use super::fields::Fields;
use super::model::KafkaConfig;
use crate::names::check_name;

/// The options of `[kafka]` besides `librdkafka.<name>`.
pub const OPTIONS: &[&str] = &[
    "brokers",
    "topic",
    "format",
    "key",
    "message-max-bytes",
    "compression",
    "queue-size",
    "message-timeout",
    "snapshots-topic",
    "cluster",
    "lb-name",
    "snapshot-fields",
    "snapshot-compression",
];

/// Options passed to librdkafka unchanged start with this.
pub const LIBRDKAFKA_PREFIX: &str = "librdkafka.";

/// librdkafka's own ceiling for `message.max.bytes`.
const MESSAGE_MAX_BYTES_LIMIT: i64 = 1_000_000_000;

/// The longest Kafka topic name (Kafka's `Topic.MAX_NAME_LENGTH`).
const MAX_TOPIC_LEN: usize = 249;

/// How lines are written into message values (`[kafka] format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Graphite plaintext lines, unchanged.
    #[default]
    Graphite,
    /// InfluxDB line protocol.
    Influx,
}

impl Format {
    /// The spelling in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Format::Graphite => "graphite",
            Format::Influx => "influx",
        }
    }

    /// Parses the configuration's spelling.
    pub fn parse(value: &str) -> Option<Format> {
        match value {
            "graphite" => Some(Format::Graphite),
            "influx" => Some(Format::Influx),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `[kafka] compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard (the default).
    #[default]
    Zstd,
}

impl Compression {
    /// Every value, for error messages and tests.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The spelling in the configuration and in librdkafka's
    /// `compression.type`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Parses the configuration's spelling.
    pub fn parse(value: &str) -> Option<Compression> {
        Compression::ALL.into_iter().find(|c| c.name() == value)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Room kept in a message for its key and Kafka's record overhead, so that
/// a payload cut at `message-max-bytes` minus this still passes the
/// producer's and the broker's limit of `message-max-bytes`.
pub const RECORD_OVERHEAD: usize = 1024;

/// librdkafka's configuration for `[kafka]`: ours first, the user's
/// `librdkafka.<name>` options after them (they win).
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", kafka.compression.name())
        .set("message.max.bytes", kafka.message_max_bytes.to_string())
        .set(
            "message.timeout.ms",
            kafka.message_timeout.as_millis().max(1).to_string(),
        );
    for (name, value) in &kafka.librdkafka {
        config.set(name, value);
    }
    config
}

pub(super) fn build(r: &Reader<'_>) -> Result<KafkaConfig, ConfigError> {
    let brokers = r.string("brokers")?;
    check_brokers(&brokers).map_err(|reason| r.invalid("brokers", &brokers, reason))?;
    let topic = r.string("topic")?;
    check_topic(&topic).map_err(|reason| r.invalid("topic", &topic, reason))?;
    // Written in a file (here or in [DEFAULT]), not the built-in default:
    // only then does `haproxystats central` send its lines to Kafka.
    let topic_set = ["kafka", super::raw::DEFAULT_SECTION]
        .iter()
        .any(|section| {
            r.raw
                .user
                .get(*section)
                .is_some_and(|options| options.contains_key("topic"))
        });
    let snapshots_topic = r.string("snapshots-topic")?;
    if !snapshots_topic.is_empty() {
        check_topic(&snapshots_topic)
            .map_err(|reason| r.invalid("snapshots-topic", &snapshots_topic, reason))?;
        if snapshots_topic == topic {
            return Err(r.invalid(
                "snapshots-topic",
                &snapshots_topic,
                "is also `topic`: raw snapshots and metric lines need a topic each",
            ));
        }
    }
    // Central refuses a header that breaks the name rule: an edge whose
    // names it would refuse stops here instead of publishing for nothing.
    let cluster = r.string("cluster")?;
    check_name(&cluster).map_err(|error| r.invalid("cluster", &cluster, error.to_string()))?;
    let lb_name = r.string("lb-name")?;
    if !lb_name.is_empty() {
        check_name(&lb_name).map_err(|error| r.invalid("lb-name", &lb_name, error.to_string()))?;
    }
    let snapshot_fields = choice(
        r,
        "snapshot-fields",
        "a choice of fields",
        &Fields::ALL.map(Fields::name),
        Fields::parse,
    )?;
    let compression_text = r.string("snapshot-compression")?;
    let snapshot_compression = super::codec::BufferCodec::parse(&compression_text)
        .map_err(|reason| r.invalid("snapshot-compression", &compression_text, reason))?;
    let format_value = r.string("format")?;
    let format = Format::parse(&format_value)
        .ok_or_else(|| r.invalid("format", &format_value, "not a format (graphite, influx)"))?;
    let key = r.string("key")?;
    let key = (!key.is_empty()).then_some(key);
    let message_max_bytes = r.int_at_least("message-max-bytes", 2 * RECORD_OVERHEAD as i64)?;
    if message_max_bytes > MESSAGE_MAX_BYTES_LIMIT {
        return Err(r.invalid(
            "message-max-bytes",
            &message_max_bytes.to_string(),
            format!("too large (at most {MESSAGE_MAX_BYTES_LIMIT}, librdkafka's limit)"),
        ));
    }
    let names: Vec<&str> = Compression::ALL.iter().map(|c| c.name()).collect();
    let compression = choice(
        r,
        "compression",
        "a compression",
        &names,
        Compression::parse,
    )?;
    let message_timeout = r.seconds("message-timeout")?;
    if message_timeout.as_millis() < 1 {
        return Err(r.invalid(
            "message-timeout",
            &r.string("message-timeout")?,
            "must be at least 0.001 seconds",
        ));
    }
    let mut librdkafka = Vec::new();
    let declared = r.raw.user.get(r.section).into_iter().flat_map(|o| o.keys());
    for option in declared {
        if let Some(name) = option.strip_prefix(LIBRDKAFKA_PREFIX) {
            librdkafka.push((name.to_owned(), r.string(option)?));
        }
    }
    if let Err(refused) = check_message_limits(message_max_bytes, &librdkafka) {
        return Err(r.invalid(&refused.option, &refused.value, refused.reason));
    }
    let config = KafkaConfig {
        brokers,
        topic,
        topic_set,
        format,
        key,
        message_max_bytes: usize::try_from(message_max_bytes).unwrap_or(usize::MAX),
        compression,
        queue_size: r.count("queue-size", 1)?,
        message_timeout,
        librdkafka,
        snapshots_topic: (!snapshots_topic.is_empty()).then_some(snapshots_topic),
        cluster,
        lb_name: (!lb_name.is_empty()).then_some(lb_name),
        snapshot_fields,
        snapshot_compression,
    };
    // librdkafka checks every property when a client is made (nothing
    // connects yet): an unknown name or a bad value is refused here.
    client_config(&config)
        .create::<rdkafka::producer::BaseProducer>()
        .map_err(|error| {
            ConfigError::invalid(
                r.section,
                "librdkafka.*",
                "",
                format!("librdkafka refuses the configuration: {error}"),
            )
        })?;
    Ok(config)
}

impl KafkaConfig {
    /// The load balancer's name in raw snapshots (key and `lb` header):
    /// `lb-name`, else `host`, the host part of the Graphite prefix.
    pub fn lb_name_or<'a>(&'a self, host: &'a str) -> &'a str {
        self.lb_name.as_deref().unwrap_or(host)
    }

    /// Checks the name [`KafkaConfig::lb_name_or`] gives when `lb-name` is
    /// not set (a set one was checked with the file): central would refuse
    /// every snapshot of a host name that breaks the name rule, so an edge
    /// stops at start instead, naming the option that fixes it.
    pub fn check_lb_name(&self, host: &str) -> Result<(), ConfigError> {
        if self.lb_name.is_some() {
            return Ok(());
        }
        check_name(host).map_err(|error| {
            ConfigError::invalid(
                "kafka",
                "lb-name",
                "",
                format!("not set, and the host name '{host}' of the Graphite prefix {error}: set lb-name"),
            )
        })
    }
}

/// The value of `option`, one of `names` as `parse` reads them; else
/// "not WHAT (names)".
fn choice<T>(
    r: &Reader<'_>,
    option: &str,
    what: &str,
    names: &[&str],
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, ConfigError> {
    let value = r.string(option)?;
    parse(&value)
        .ok_or_else(|| r.invalid(option, &value, format!("not {what} ({})", names.join(", "))))
}

/// Kafka's rule for topic names (its `Topic.validate`): 1 to 249 of
/// `[a-zA-Z0-9._-]`, and not `.` or `..` (a broker stores a topic in a
/// directory of that name).
pub(super) fn check_topic(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN || !topic.bytes().all(is_topic_byte) {
        return Err("not a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -)");
    }
    if topic == "." || topic == ".." {
        return Err("not a Kafka topic name ('.' and '..' are not allowed)");
    }
    Ok(())
}

/// `message-max-bytes`, or the `librdkafka.<name>` option, that would
/// make every message of that size impossible to send or to read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LimitRefused {
    option: String,
    value: String,
    reason: String,
}

/// One librdkafka property that bounds a message.
struct MessageLimit {
    name: &'static str,
    /// Bytes per unit of its value.
    unit: i64,
    /// librdkafka's default, when it is below what we accept: it then
    /// bounds `message-max-bytes` unless the user raises it.
    default: Option<i64>,
    /// What happens to a message above it.
    consequence: &'static str,
}

/// librdkafka's properties that bound one message: the producer refuses a
/// message above `message.max.bytes` (the sink would try it forever), its
/// queue never has room for one above `queue.buffering.max.kbytes` (the
/// same), a consumer cannot fetch one above `receive.message.max.bytes`
/// (central would never get past it).
const MESSAGE_LIMITS: [MessageLimit; 3] = [
    MessageLimit {
        name: "message.max.bytes",
        unit: 1,
        default: None,
        consequence: "librdkafka would refuse every message above it",
    },
    MessageLimit {
        name: "queue.buffering.max.kbytes",
        unit: 1024,
        default: None,
        consequence: "librdkafka's producer queue could never hold such a message",
    },
    MessageLimit {
        name: "receive.message.max.bytes",
        unit: 1,
        default: Some(100_000_000),
        consequence: "a consumer (haproxystats central) could not fetch such a message",
    },
];

/// Checks `message-max-bytes` against librdkafka's bounds of one message
/// ([`MESSAGE_LIMITS`]), the user's `librdkafka.*` overrides or their
/// defaults. A value that is not a number is left to librdkafka, which
/// refuses it when the client is made.
fn check_message_limits(
    message_max_bytes: i64,
    librdkafka: &[(String, String)],
) -> Result<(), LimitRefused> {
    for limit in MESSAGE_LIMITS {
        // The last one given wins, as in librdkafka.
        let given = librdkafka.iter().rev().find(|(n, _)| n == limit.name);
        let refused = match given {
            Some((_, value)) => match value.trim().parse::<i64>() {
                Ok(bound) if bound.saturating_mul(limit.unit) < message_max_bytes => LimitRefused {
                    option: format!("{LIBRDKAFKA_PREFIX}{}", limit.name),
                    value: value.clone(),
                    reason: format!(
                        "below message-max-bytes = {message_max_bytes}: {}; \
                             change message-max-bytes instead, messages are cut under it",
                        limit.consequence
                    ),
                },
                _ => continue,
            },
            None => match limit.default {
                Some(bound) if bound < message_max_bytes => LimitRefused {
                    option: "message-max-bytes".to_owned(),
                    value: message_max_bytes.to_string(),
                    reason: format!(
                        "above librdkafka's {} ({bound} by default): {}; \
                         lower it or raise librdkafka.{}",
                        limit.name, limit.consequence, limit.name
                    ),
                },
                _ => continue,
            },
        };
        return Err(refused);
    }
    Ok(())
}

fn is_topic_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// `host:port[,host:port...]`, each port a number.
fn check_brokers(brokers: &str) -> Result<(), String> {
    if brokers.is_empty() {
        return Err("empty: name at least one broker as host:port".to_owned());
    }
    for broker in brokers.split(',').map(str::trim) {
        let Some((host, port)) = broker.rsplit_once(':') else {
            return Err(format!("'{broker}' is not host:port"));
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(format!("'{broker}' has no usable host"));
        }
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("'{broker}' has no port number (1-65535)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Format, check_brokers, check_message_limits, check_topic};

    #[test]
    fn formats_are_spelt_as_in_the_configuration() {
        for format in [Format::Graphite, Format::Influx] {
            assert_eq!(Format::parse(format.name()), Some(format));
        }
        assert_eq!(Format::parse("json"), None);
    }

    #[test]
    fn topic_names_follow_kafkas_rule() {
        for good in [
            "t",
            "haproxystats.metrics",
            "a_b-c.D9",
            "...",
            &"x".repeat(249),
        ] {
            assert_eq!(check_topic(good), Ok(()), "{good:?}");
        }
        for bad in [".", "..", "", "a b", "a/b", "a:b", "é", &"x".repeat(250)] {
            assert!(check_topic(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn librdkafka_overrides_must_leave_room_for_a_message() {
        let options = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(check_message_limits(1_000_000, &[]), Ok(()));
        let fits = options(&[
            ("message.max.bytes", "1000000"),
            ("queue.buffering.max.kbytes", "977"),
            ("receive.message.max.bytes", "2000000"),
            ("linger.ms", "5"),
        ]);
        assert_eq!(check_message_limits(1_000_000, &fits), Ok(()));
        for (name, value) in [
            ("message.max.bytes", "1000"),
            ("message.max.bytes", "999999"),
            ("queue.buffering.max.kbytes", "976"),
            ("receive.message.max.bytes", "65536"),
        ] {
            let refused =
                check_message_limits(1_000_000, &options(&[(name, value)])).expect_err(name);
            assert_eq!(refused.option, format!("librdkafka.{name}"));
            assert_eq!(refused.value, value);
            assert!(
                refused.reason.contains("below message-max-bytes = 1000000"),
                "{refused:?}"
            );
        }
        // The last one wins, as in librdkafka; a non-number is librdkafka's to refuse.
        let later = options(&[
            ("message.max.bytes", "1000"),
            ("message.max.bytes", "2000000"),
        ]);
        assert_eq!(check_message_limits(1_000_000, &later), Ok(()));
        let word = options(&[("message.max.bytes", "lots")]);
        assert_eq!(check_message_limits(1_000_000, &word), Ok(()));
        // A default that bounds us: refused unless the user raises it.
        let refused = check_message_limits(200_000_000, &[]).expect_err("above the default");
        assert_eq!(refused.option, "message-max-bytes");
        assert!(
            refused.reason.contains("receive.message.max.bytes"),
            "{refused:?}"
        );
        let raised = options(&[("receive.message.max.bytes", "300000000")]);
        assert_eq!(check_message_limits(200_000_000, &raised), Ok(()));
    }

    #[test]
    fn brokers_are_host_port_lists() {
        assert_eq!(check_brokers("127.0.0.1:9092"), Ok(()));
        assert_eq!(check_brokers("a:1, b:2,[::1]:9092"), Ok(()));
        for bad in [
            "",
            "host",
            ":9092",
            "host:",
            "host:0",
            "host:99999",
            "a b:1",
        ] {
            assert!(check_brokers(bad).is_err(), "{bad:?}");
        }
    }
}
