//! Whether a topic a producer sends to exists, asked of the broker's
//! metadata: once at start by every Kafka sink (the metrics topic, the
//! snapshots topic), so that a missing topic is one line saying so rather
//! than a backlog filling in silence; and again by the metrics sink while
//! it holds lines, to hand messages over only when they can be delivered.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;

/// How long the check at start may wait for the brokers.
pub const START_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// What the broker says of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicState {
    /// It exists and can be written.
    Found,
    /// The broker answered: it does not exist or cannot be used (its
    /// error code, `UnknownTopicOrPartition` when it is not listed).
    Unusable(RDKafkaErrorCode),
    /// No broker answered.
    Unreachable(String),
}

impl TopicState {
    /// The state of `topic` in a metadata answer.
    pub fn of(topic: &str, answer: Result<Metadata, KafkaError>) -> TopicState {
        let metadata = match answer {
            Ok(metadata) => metadata,
            Err(error) => return TopicState::Unreachable(error.to_string()),
        };
        match metadata.topics().iter().find(|t| t.name() == topic) {
            Some(found) => match found.error() {
                None => TopicState::Found,
                Some(error) => TopicState::Unusable(RDKafkaErrorCode::from(error)),
            },
            None => TopicState::Unusable(RDKafkaErrorCode::UnknownTopicOrPartition),
        }
    }

    /// Asks the broker (blocking: librdkafka's call waits up to `timeout`).
    pub fn ask(producer: &FutureProducer, topic: &str, timeout: Duration) -> TopicState {
        TopicState::of(
            topic,
            producer.client().fetch_metadata(Some(topic), timeout),
        )
    }

    /// Why nothing can be delivered, `None` when the topic is found: the
    /// reason `check` and the status file show.
    pub fn blocker(&self, topic: &str) -> Option<String> {
        match self {
            TopicState::Found => None,
            TopicState::Unusable(code) => Some(format!(
                "topic {topic} does not exist or cannot be used ({code})"
            )),
            TopicState::Unreachable(error) => Some(format!("brokers unreachable ({error})")),
        }
    }
}

/// Why a sink cannot deliver, shared between its writer task (which
/// learns it) and its actor (which reports it in its health).
#[derive(Debug, Default)]
pub struct Blocker(std::sync::Mutex<Option<String>>);

impl Blocker {
    /// The reason last set.
    pub fn get(&self) -> Option<String> {
        match self.0.lock() {
            Ok(reason) => reason.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Sets it, `None`: delivering again.
    pub fn set(&self, reason: Option<String>) {
        match self.0.lock() {
            Ok(mut held) => *held = reason,
            Err(poisoned) => *poisoned.into_inner() = reason,
        }
    }
}

/// A topic a sink sends to, as its log lines name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicRole {
    /// `snapshots topic`, `metrics topic`.
    pub what: &'static str,
    /// The option naming it: `[kafka] snapshots-topic`.
    pub option: &'static str,
    /// What waits until it can be written: `snapshots wait in src-dir`.
    pub meanwhile: &'static str,
}

/// Says in one line, off the event loop, whether `topic` can be written:
/// the operator creates a missing one (SPEC §5, §7), and until then what
/// the sink is given waits.
pub fn check_at_start(producer: FutureProducer, topic: String, role: TopicRole) {
    tokio::task::spawn_blocking(move || {
        let TopicRole {
            what,
            option,
            meanwhile,
        } = role;
        match TopicState::ask(&producer, &topic, START_CHECK_TIMEOUT) {
            TopicState::Found => tracing::info!(topic, "{what} found"),
            TopicState::Unusable(error) => tracing::error!(
                topic,
                error = %error,
                "the {what} does not exist or cannot be used: create it ({option}); {meanwhile}"
            ),
            TopicState::Unreachable(error) => tracing::warn!(
                topic,
                error,
                "cannot check that the {what} exists (brokers unreachable?); {meanwhile}"
            ),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_found_topic_has_no_blocker() {
        assert_eq!(TopicState::Found.blocker("t"), None);
        let missing = TopicState::Unusable(RDKafkaErrorCode::UnknownTopicOrPartition);
        let text = missing.blocker("t").expect("blocked");
        assert!(text.starts_with("topic t does not exist"), "{text}");
        let down = TopicState::Unreachable("timed out".into());
        assert_eq!(
            down.blocker("t").as_deref(),
            Some("brokers unreachable (timed out)")
        );
        assert_eq!(
            TopicState::of(
                "t",
                Err(KafkaError::MetadataFetch(
                    RDKafkaErrorCode::BrokerTransportFailure
                ))
            ),
            TopicState::Unreachable(
                KafkaError::MetadataFetch(RDKafkaErrorCode::BrokerTransportFailure).to_string()
            )
        );
    }
}
