//! What the Kafka sink is started with (SPEC §5). The librdkafka
//! configuration it makes of `[kafka]` ([`client_config`]: `acks=all` and
//! the idempotent producer always, then the user's `librdkafka.<name>`
//! options, which may override ours) is the configuration's, which checks
//! it at start.

use rdkafka::ClientConfig;

use super::format::PathLayout;
use crate::config::KafkaConfig;
pub use crate::config::{Compression, RECORD_OVERHEAD, client_config};
pub use crate::sink::paths::Lines;

/// The Kafka sink's settings: `[kafka]` and what the rest of the
/// configuration decides for it.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSettings {
    /// `[kafka]`.
    pub config: KafkaConfig,
    /// Where the Graphite path puts what (for `influx`).
    pub layout: PathLayout,
    /// Message key: `[kafka] key`, else the host name the Graphite prefix
    /// would use; one load balancer's messages keep their order on one
    /// partition.
    pub key: String,
}

impl KafkaSettings {
    /// `[kafka]`, for lines laid out as `layout` says; the load balancer
    /// (the default key) is `layout.host`.
    pub fn new(kafka: &KafkaConfig, layout: PathLayout) -> Self {
        KafkaSettings {
            config: kafka.clone(),
            key: kafka.key.clone().unwrap_or_else(|| layout.host.clone()),
            layout,
        }
    }

    /// The most payload bytes one message carries.
    pub fn max_payload(&self) -> usize {
        self.config
            .message_max_bytes
            .saturating_sub(RECORD_OVERHEAD + self.key.len())
            .max(1)
    }

    /// The producer's librdkafka configuration.
    pub fn client_config(&self) -> ClientConfig {
        client_config(&self.config)
    }
}

/// A producer to replace `producer` with after a message failed with
/// `error`, when the producer itself is done for: a fatal error, or the
/// broker no longer taking its producer id (after a message timed out in an
/// outage, the idempotent producer's epoch is fenced, and every later
/// message fails the same way). Only a new producer, with a new id, delivers
/// again. `None` when the producer is fine (or a new one cannot be made:
/// logged).
pub fn renewed_after(
    producer: &rdkafka::producer::FutureProducer,
    config: &ClientConfig,
    error: Option<rdkafka::types::RDKafkaErrorCode>,
) -> Option<rdkafka::producer::FutureProducer> {
    use rdkafka::producer::Producer as _;
    use rdkafka::types::RDKafkaErrorCode as Code;
    let why = match producer.client().fatal_error() {
        Some((code, reason)) => format!("{code}: {reason}"),
        None => match error {
            Some(
                code @ (Code::ProducerFenced
                | Code::InvalidProducerEpoch
                | Code::UnknownProducerId
                | Code::OutOfOrderSequenceNumber
                | Code::InvalidProducerIdMapping),
            ) => code.to_string(),
            _ => return None,
        },
    };
    tracing::warn!(
        error = why,
        "the kafka producer cannot deliver any more; starting a new one"
    );
    match config.create() {
        Ok(renewed) => Some(renewed),
        Err(error) => {
            tracing::error!(error = %error, "cannot create a new kafka producer; trying again on the next failure");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sink::kafka::format::Format;

    fn settings() -> KafkaSettings {
        KafkaSettings {
            config: KafkaConfig {
                brokers: "127.0.0.1:1".into(),
                topic: "haproxystats.metrics".into(),
                topic_set: true,
                format: Format::Graphite,
                key: None,
                message_max_bytes: 1_000_000,
                compression: Compression::Zstd,
                queue_size: 1000,
                message_timeout: Duration::from_secs(300),
                librdkafka: Vec::new(),
                snapshots_topic: None,
                cluster: "default".into(),
                lb_name: None,
                snapshot_fields: crate::raw::Fields::Engine,
                snapshot_compression: crate::raw::BufferCodec::SNAPSHOTS_DEFAULT,
            },
            layout: PathLayout {
                prefix: "ns.lb1.haproxy".into(),
                host: "lb1".into(),
                group_namespace: None,
                lb_in_path: false,
                cluster_namespace: None,
            },
            key: "lb1".into(),
        }
    }

    #[test]
    fn ours_come_first_and_the_users_options_after_them() {
        let mut s = settings();
        s.config.librdkafka = vec![
            ("linger.ms".into(), "50".into()),
            ("acks".into(), "1".into()),
        ];
        let config = s.client_config();
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("compression.type"), Some("zstd"));
        assert_eq!(config.get("message.timeout.ms"), Some("300000"));
        assert_eq!(config.get("linger.ms"), Some("50"));
        // The user's word is the last (SPEC §5: "after ours").
        assert_eq!(config.get("acks"), Some("1"));
    }

    #[test]
    fn a_payload_leaves_room_for_the_key_and_the_record() {
        let s = settings();
        assert_eq!(s.max_payload(), 1_000_000 - RECORD_OVERHEAD - 3);
        for compression in Compression::ALL {
            assert_eq!(Compression::parse(compression.name()), Some(compression));
        }
        assert_eq!(Compression::parse("brotli"), None);
    }
}
