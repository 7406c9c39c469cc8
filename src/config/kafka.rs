//! `[kafka]` (ours, SPEC §5): read and checked at start, so that a bad
//! broker list, format or librdkafka option stops the command with one line
//! (exit 2) instead of a sink that can never deliver.

use super::build::Reader;
use super::error::ConfigError;
use super::model::KafkaConfig;
use crate::names::check_name;
use crate::raw::Fields;
use crate::sink::kafka::format::Format;
use crate::sink::kafka::settings::{Compression, RECORD_OVERHEAD, client_config};

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
];

/// Options passed to librdkafka unchanged start with this.
pub const LIBRDKAFKA_PREFIX: &str = "librdkafka.";

/// librdkafka's own ceiling for `message.max.bytes`.
const MESSAGE_MAX_BYTES_LIMIT: i64 = 1_000_000_000;

pub(super) fn build(r: &Reader<'_>) -> Result<KafkaConfig, ConfigError> {
    let brokers = r.string("brokers")?;
    check_brokers(&brokers).map_err(|reason| r.invalid("brokers", &brokers, reason))?;
    let topic = r.string("topic")?;
    check_topic(&topic).map_err(|reason| r.invalid("topic", &topic, reason))?;
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
    let config = KafkaConfig {
        brokers,
        topic,
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

/// Kafka's rule for topic names.
pub(super) fn check_topic(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() || topic.len() > 249 || !topic.bytes().all(is_topic_byte) {
        return Err("not a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -)");
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
    use super::check_brokers;

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
