//! Raw snapshots to Kafka (SPEC §5, `[kafka] snapshots-topic`): every
//! snapshot directory, as Arrow IPC ([`crate::raw`]), for central
//! processing (SPEC §7).
//!
//! - [`headers`]: the message key and headers of each part (pure).
//! - [`sink`]: the SnapshotsSink actor: one snapshot at a time, every part
//!   confirmed by the broker before the snapshot is acknowledged.

pub mod headers;
pub mod sink;

use std::time::Duration;

use crate::config::{Config, KafkaConfig};

/// What the sink needs from the configuration.
#[derive(Debug, Clone)]
pub struct SnapshotsSettings {
    /// `[kafka]`: brokers, librdkafka options, `message-max-bytes`,
    /// `message-timeout`.
    pub kafka: KafkaConfig,
    /// `[kafka] snapshots-topic`.
    pub topic: String,
    /// The load balancer's name: the key and the `lb` header.
    pub lb: String,
    /// `[kafka] cluster`.
    pub cluster: String,
    /// `[kafka] snapshot-fields`: the columns each snapshot carries.
    pub fields: crate::raw::Fields,
    /// `[kafka] snapshot-compression`: how its buffers are compressed.
    pub codec: crate::raw::BufferCodec,
    /// `[pull] pull-interval`: the `interval` header.
    pub interval: Duration,
    /// `[pull] queue-size`: the most snapshots src-dir holds; the sink's
    /// capacity in the status file (its backlog counts snapshots).
    pub queue_size: usize,
}

/// The sink `[kafka] snapshots-topic` configures, if set. The naming's
/// `host` is the host part of the Graphite prefix, the load balancer's
/// name unless `lb-name` says otherwise.
pub fn spec(config: &Config, naming: &super::Naming<'_>) -> super::Started {
    let Some(kafka) = config.kafka.as_ref() else {
        return Ok(None);
    };
    let Some(topic) = kafka.snapshots_topic.clone() else {
        return Ok(None);
    };
    let settings = SnapshotsSettings {
        topic,
        lb: kafka.lb_name_or(naming.host).to_owned(),
        cluster: kafka.cluster.clone(),
        fields: kafka.snapshot_fields,
        codec: kafka.snapshot_compression,
        interval: config.pull.pull_interval,
        queue_size: config.pull.queue_size,
        kafka: kafka.clone(),
    };
    Ok(Some(super::SinkSpec::new("snapshots", move || {
        sink::SnapshotsSink::new(settings.clone())
    })))
}
