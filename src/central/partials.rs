//! The partials topic (SPEC §7): each snapshot's partial aggregate, its
//! message values keyed by cluster so that stage 2 finds a cluster's
//! partials on one partition, with headers `lb`, `cluster`, `ts`, `part`,
//! `parts`, `format`. Sent by an idempotent `acks=all` producer (the
//! Kafka sink's settings, [`crate::sink::kafka::settings::client_config`]);
//! a snapshot's offsets are done only once the broker has every message.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use super::process::PARTIAL_FORMAT;

/// Which snapshot a partial is of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialOf {
    /// The load balancer.
    pub lb: String,
    /// Its cluster: the message key.
    pub cluster: String,
    /// The snapshot's timestamp.
    pub ts: u64,
    /// The raw snapshot's reference time, ms: the timestamp of each of the
    /// partial's messages, so that stage 2 sees when the edge published,
    /// not when stage 1 processed it (later during a catch-up).
    pub reference_ms: u64,
}

/// The headers of message `part` of `parts` of a partial.
pub fn headers(of: &PartialOf, part: usize, parts: usize) -> Vec<(&'static str, String)> {
    vec![
        ("lb", of.lb.clone()),
        ("cluster", of.cluster.clone()),
        ("ts", of.ts.to_string()),
        ("part", part.to_string()),
        ("parts", parts.to_string()),
        ("format", PARTIAL_FORMAT.to_owned()),
    ]
}

/// Message `part` of `parts` of a partial.
fn record<'a>(
    topic: &'a str,
    of: &'a PartialOf,
    part: usize,
    parts: usize,
    value: &'a [u8],
) -> FutureRecord<'a, [u8], [u8]> {
    let mut message_headers = OwnedHeaders::new();
    for (key, text) in headers(of, part, parts) {
        message_headers = message_headers.insert(Header {
            key,
            value: Some(text.as_bytes()),
        });
    }
    FutureRecord::to(topic)
        .key(of.cluster.as_bytes())
        .payload(value)
        .headers(message_headers)
        .timestamp(i64::try_from(of.reference_ms).unwrap_or(i64::MAX))
}

/// Sends every value of a partial to `topic`; `Ok` once the broker
/// confirmed all of them, else the first error (the caller sends them all
/// again: the idempotent producer and stage 2's merge make copies harmless).
pub async fn publish(
    producer: FutureProducer,
    topic: Arc<str>,
    of: Arc<PartialOf>,
    values: Arc<Vec<Vec<u8>>>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let parts = values.len();
    let sends = values.iter().enumerate().map(|(part, value)| {
        let record = record(&topic, &of, part, parts, value);
        producer.send(record, Timeout::After(timeout))
    });
    futures_util::future::join_all(sends)
        .await
        .into_iter()
        .find_map(|delivered| delivered.err().map(|(error, _)| error))
        .map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_of_spec_7_in_decimal_keyed_by_cluster() {
        let of = PartialOf {
            lb: "lb-1".into(),
            cluster: "eu".into(),
            ts: 1_700_000_010,
            reference_ms: 1_700_000_010_250,
        };
        assert_eq!(
            headers(&of, 1, 2),
            [
                ("lb", "lb-1".to_owned()),
                ("cluster", "eu".to_owned()),
                ("ts", "1700000010".to_owned()),
                ("part", "1".to_owned()),
                ("parts", "2".to_owned()),
                ("format", "partial-ipc/1".to_owned()),
            ]
        );
    }

    #[test]
    fn each_message_has_the_raw_snapshots_reference_time_as_its_timestamp() {
        let of = PartialOf {
            lb: "lb-1".into(),
            cluster: "eu".into(),
            ts: 1_700_000_010,
            reference_ms: 1_700_000_010_250,
        };
        let record = record("partials", &of, 0, 1, b"x");
        assert_eq!(record.timestamp, Some(1_700_000_010_250));
        assert_eq!(record.key, Some(&b"eu"[..]));
    }
}
