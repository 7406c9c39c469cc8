//! The Kafka sink (SPEC §5):
//!
//! - [`format`]: message values from a snapshot's lines, `graphite` or
//!   `influx`, never splitting a line, under `message-max-bytes` (pure).
//! - [`settings`]: `[kafka]` as the sink uses it, and the librdkafka
//!   configuration made of it (`acks=all`, idempotent, the user's
//!   `librdkafka.*` last).
//! - [`sink`]: the KafkaSink actor: backlog, messages, delivery reports as
//!   acknowledgements.
//! - [`topic`]: whether a topic exists, asked at start by every Kafka sink
//!   (this one and the snapshots sink) and while lines wait.
//! - [`refusal`]: what to do with a message the broker refuses for its
//!   size (pure).

pub mod format;
pub mod refusal;
pub mod settings;
pub mod sink;
pub mod topic;

use crate::config::Config;

/// The sink `[kafka]` configures, if there is the section.
pub fn spec(config: &Config, naming: &super::Naming<'_>) -> super::Started {
    let Some(kafka) = config.kafka.as_ref() else {
        return Ok(None);
    };
    let layout =
        crate::sink::paths::PathLayout::new(config, naming.prefix, naming.host, naming.lines);
    let settings = settings::KafkaSettings::new(kafka, layout);
    Ok(Some(super::SinkSpec::new("kafka", move || {
        sink::KafkaSink::new(settings.clone())
    })))
}
