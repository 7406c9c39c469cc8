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
        let mut message_headers = OwnedHeaders::new();
        for (key, text) in headers(&of, part, parts) {
            message_headers = message_headers.insert(Header {
                key,
                value: Some(text.as_bytes()),
            });
        }
        let record = FutureRecord::to(&topic)
            .key(of.cluster.as_bytes())
            .payload(value.as_slice())
            .headers(message_headers);
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
}
