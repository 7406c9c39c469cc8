//! The topics central writes (SPEC §7): `[central] partials-topic` and
//! `state-topic` are created through the admin API when missing, with as
//! many partitions as the snapshots topic (the state topic compacted: it
//! keeps the last record per cluster). Never fatal: what cannot be done is
//! said in one line each, and the partials then wait in the producer until
//! an operator creates the topic.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

use crate::config::CentralSettings;

/// How long the broker has to answer each request.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`ensure`] found or did for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicState {
    /// It was there.
    Exists,
    /// It was missing and is now created with this many partitions.
    Created(i32),
    /// It is missing and could not be created (the reason).
    Missing(String),
}

/// The partitions of `topic` (`None` when it does not exist).
fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Option<i32>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), ADMIN_TIMEOUT)
        .map_err(|e| format!("cannot read the metadata of {topic}: {e}"))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len() as i32))
}

/// Creates the partials and state topics if they are missing; returns
/// what happened to each (partials first), logged one line each. Blocks
/// (metadata requests): run it before the actors start.
pub async fn ensure(
    settings: &CentralSettings,
    client: &ClientConfig,
) -> Vec<(String, TopicState)> {
    let topics = [
        (settings.partials_topic.clone(), false),
        (settings.state_topic.clone(), true),
    ];
    let consumer: BaseConsumer = match client.create() {
        Ok(c) => c,
        Err(e) => return missing_all(&topics, format!("cannot make a Kafka client: {e}")),
    };
    let snapshots = &settings.snapshots_topic;
    let count = match partitions(&consumer, snapshots) {
        Ok(Some(n)) => n,
        Ok(None) => {
            return missing_all(
                &topics,
                format!("the snapshots topic {snapshots} does not exist"),
            );
        }
        Err(e) => return missing_all(&topics, e),
    };
    let admin: AdminClient<DefaultClientContext> = match client.create() {
        Ok(a) => a,
        Err(e) => return missing_all(&topics, format!("cannot make an admin client: {e}")),
    };
    let mut states = Vec::new();
    for (topic, compacted) in topics {
        let state = match partitions(&consumer, &topic) {
            Ok(Some(_)) => TopicState::Exists,
            Err(e) => TopicState::Missing(e),
            Ok(None) => create(&admin, &topic, count, compacted).await,
        };
        log(&topic, &state);
        states.push((topic, state));
    }
    states
}

async fn create(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    partitions: i32,
    compacted: bool,
) -> TopicState {
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    if compacted {
        new = new.set("cleanup.policy", "compact");
    }
    let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    match admin.create_topics([&new], &options).await {
        Ok(results) => match results.into_iter().next() {
            Some(Ok(_)) | Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {
                TopicState::Created(partitions)
            }
            Some(Err((_, code))) => TopicState::Missing(format!("the broker refused: {code}")),
            None => TopicState::Missing("the broker did not answer".into()),
        },
        Err(e) => TopicState::Missing(format!("cannot create it: {e}")),
    }
}

fn missing_all(topics: &[(String, bool)], reason: String) -> Vec<(String, TopicState)> {
    topics
        .iter()
        .map(|(topic, _)| {
            let state = TopicState::Missing(reason.clone());
            log(topic, &state);
            (topic.clone(), state)
        })
        .collect()
}

fn log(topic: &str, state: &TopicState) {
    match state {
        TopicState::Exists => {}
        TopicState::Created(partitions) => {
            tracing::info!(topic, partitions, "created the topic (it was missing)");
        }
        TopicState::Missing(reason) => {
            tracing::warn!(topic, reason = %reason, "topic missing and not created: create it (see README, When you outgrow one machine)");
        }
    }
}
