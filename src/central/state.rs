//! Stage 2's state topic (SPEC §7): per cluster (the key), the highest
//! window emitted and acknowledged (`H`) and the LBs expected, written
//! before the offsets it covers are committed; read to its end when stage 2
//! gets partitions, the last record of each key winning (as compaction
//! keeps it). A record with a window more than `max-clock-skew` and a
//! window ahead of the reader's clock is refused (issue 24 item 5: `H = 2^64 - 1` would
//! make every later partial a replay and silence the cluster): one line
//! with its offset, and the record is ignored, as if it were not there.
//!
//! A record's value is text, one field per line, so that an operator can
//! read it with any console consumer:
//!
//! ```text
//! haproxystats-state/1
//! emitted 1700000000
//! lb lb-1 1700000000
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::windows::{ClusterState, WindowSettings};

/// How long the state topic must stay quiet past its high watermarks for
/// its end to be reached.
const QUIET: Duration = Duration::from_millis(500);

/// The first line of every record.
pub const STATE_FORMAT: &str = "haproxystats-state/1";

/// Why the state topic could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The broker refused or did not answer.
    #[error("cannot read the state topic {topic}: {source}")]
    Kafka {
        /// The state topic.
        topic: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// It was not read to its end in time.
    #[error("cannot read the state topic {topic} to its end within {timeout:?}")]
    Timeout {
        /// The state topic.
        topic: String,
        /// How long was waited.
        timeout: Duration,
    },
}

/// Why a record is not a state.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadState {
    /// The first line is not [`STATE_FORMAT`].
    #[error("not a {STATE_FORMAT} record")]
    Format,
    /// A line is not `emitted N` or `lb NAME N`.
    #[error("line {line}: {text:?} is not `emitted <window>` or `lb <name> <window>`")]
    Line {
        /// 1-based.
        line: usize,
        /// The line.
        text: String,
    },
    /// No `emitted` line.
    #[error("no `emitted` line")]
    NoEmitted,
    /// A window no central can have reached yet: we place no partial
    /// further ahead of our clock than `max-clock-skew`.
    #[error(
        "{what} {window} is {ahead} s ahead of this host's clock (at most max-clock-skew + window = {most} s)"
    )]
    Ahead {
        /// `emitted`, or `lb <name>`.
        what: String,
        /// The window stored.
        window: u64,
        /// Seconds ahead of the clock.
        ahead: u64,
        /// `max-clock-skew + window`.
        most: u64,
    },
}

/// `state` as read at `now` (epoch seconds): refused when a window in it is
/// more than `max-clock-skew` ahead of `now`, where no partial placed by
/// [`WindowSettings::place`] can be, plus a window: the central that
/// stored it may have a clock a little ahead of ours.
pub fn check_not_ahead(
    state: &ClusterState,
    now: u64,
    settings: &WindowSettings,
) -> Result<(), BadState> {
    let most = settings.max_clock_skew.saturating_add(settings.window);
    let windows = std::iter::once(("emitted".to_owned(), state.emitted))
        .chain(state.lbs.iter().map(|(lb, w)| (format!("lb {lb}"), *w)));
    for (what, window) in windows {
        let ahead = window.saturating_sub(now);
        if ahead > most {
            return Err(BadState::Ahead {
                what,
                window,
                ahead,
                most,
            });
        }
    }
    Ok(())
}

/// The value of `state`'s record.
pub fn encode(state: &ClusterState) -> String {
    let mut text = format!("{STATE_FORMAT}\nemitted {}\n", state.emitted);
    for (lb, window) in &state.lbs {
        text.push_str(&format!("lb {lb} {window}\n"));
    }
    text
}

/// A record's value read back.
pub fn decode(value: &[u8]) -> Result<ClusterState, BadState> {
    let text = std::str::from_utf8(value).map_err(|_| BadState::Format)?;
    let mut lines = text.lines();
    if lines.next() != Some(STATE_FORMAT) {
        return Err(BadState::Format);
    }
    let mut emitted = None;
    let mut lbs = BTreeMap::new();
    for (i, line) in lines.enumerate() {
        let bad = || BadState::Line {
            line: i + 2,
            text: line.to_owned(),
        };
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["emitted", window] => emitted = Some(window.parse().map_err(|_| bad())?),
            ["lb", name, window] if !name.is_empty() => {
                lbs.insert((*name).to_owned(), window.parse().map_err(|_| bad())?);
            }
            [""] => {}
            _ => return Err(bad()),
        }
    }
    Ok(ClusterState {
        emitted: emitted.ok_or(BadState::NoEmitted)?,
        lbs,
    })
}

/// Reads `topic` from its beginning to its end (the high watermark of
/// every partition when the read started): per key, its last readable
/// record. Unreadable records, and records with a window too far ahead of
/// this host's clock ([`check_not_ahead`]), are logged, one line each, and
/// skipped.
pub fn read_all(
    client: &ClientConfig,
    topic: &str,
    timeout: Duration,
    settings: &WindowSettings,
) -> Result<BTreeMap<String, ClusterState>, StateError> {
    let kafka = |source| StateError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    let mut config = client.clone();
    // No group: nothing is committed, every reader reads it all.
    config
        .set("group.id", "haproxystats-state-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config.create().map_err(kafka)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Timeout::After(timeout))
        .map_err(kafka)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Timeout::After(timeout))
            .map_err(kafka)?;
        if high > low {
            ends.insert(partition, high);
        }
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(low))
            .map_err(kafka)?;
    }
    let mut states = BTreeMap::new();
    consumer.assign(&assignment).map_err(kafka)?;
    let deadline = Instant::now() + timeout;
    // Past the high watermarks, on until the topic is quiet: tansu 0.6.0's
    // watermark can stay behind the last records of a batch, and a state
    // read short of its end would rebuild a window from incomplete input.
    let mut quiet_since = None::<Instant>;
    while !ends.is_empty() || quiet_since.is_none_or(|at| at.elapsed() < QUIET) {
        if Instant::now() >= deadline {
            return Err(StateError::Timeout {
                topic: topic.to_owned(),
                timeout,
            });
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            if ends.is_empty() {
                quiet_since.get_or_insert_with(Instant::now);
            }
            continue;
        };
        quiet_since = None;
        let message = message.map_err(kafka)?;
        let (partition, offset) = (message.partition(), message.offset());
        if ends.get(&partition).is_some_and(|end| offset + 1 >= *end) {
            ends.remove(&partition);
        }
        let key = message
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .filter(|k| !k.is_empty());
        let Some(key) = key else {
            tracing::warn!(
                topic,
                partition,
                offset,
                "state record without a cluster key; skipped"
            );
            continue;
        };
        let now = crate::common::unix_now();
        let read = message.payload().map(|value| {
            decode(value).and_then(|state| {
                check_not_ahead(&state, now, settings)?;
                Ok(state)
            })
        });
        match read {
            Some(Ok(state)) => {
                states.insert(key.to_owned(), state);
            }
            Some(Err(error @ BadState::Ahead { .. })) => {
                tracing::error!(topic, partition, offset, cluster = key, %error, "state record refused: ignored, the cluster's state is what came before it");
            }
            Some(Err(error)) => {
                tracing::warn!(topic, partition, offset, cluster = key, %error, "unreadable state record; skipped");
            }
            // A tombstone: the cluster's state is deleted.
            None => {
                states.remove(key);
            }
        }
    }
    Ok(states)
}

/// Writes `state` of `cluster`; `Ok` once the broker has it.
pub async fn store(
    producer: &FutureProducer,
    topic: &str,
    cluster: &str,
    state: &ClusterState,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let value = encode(state);
    let record = FutureRecord::to(topic).key(cluster).payload(&value);
    producer
        .send(record, Timeout::After(timeout))
        .await
        .map(|_| ())
        .map_err(|(error, _)| error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_reads_back_as_written() {
        let state = ClusterState {
            emitted: 1_700_000_010,
            lbs: [
                ("lb-1".to_owned(), 1_700_000_010),
                ("lb-2".to_owned(), 1_699_999_990),
            ]
            .into(),
        };
        let text = encode(&state);
        assert_eq!(
            text,
            "haproxystats-state/1\nemitted 1700000010\nlb lb-1 1700000010\nlb lb-2 1699999990\n"
        );
        assert_eq!(decode(text.as_bytes()), Ok(state));
    }

    #[test]
    fn bad_records_say_what_is_wrong() {
        assert_eq!(decode(b"garbage"), Err(BadState::Format));
        assert_eq!(decode(&[0xff, 0xfe]), Err(BadState::Format));
        assert_eq!(
            decode(b"haproxystats-state/1\nlb a 1\n"),
            Err(BadState::NoEmitted)
        );
        let got = decode(b"haproxystats-state/1\nemitted x\n");
        assert!(
            matches!(got, Err(BadState::Line { line: 2, .. })),
            "{got:?}"
        );
        let got = decode(b"haproxystats-state/1\nemitted 1\nlb a b c\n");
        assert!(
            matches!(got, Err(BadState::Line { line: 3, .. })),
            "{got:?}"
        );
    }

    #[test]
    fn a_state_ahead_of_the_clock_by_more_than_max_clock_skew_is_refused() {
        let now = 1_700_000_005;
        let state = |emitted: u64, lb: u64| ClusterState {
            emitted,
            lbs: [("lb-1".to_owned(), lb)].into(),
        };
        let settings = WindowSettings {
            window: 10,
            grace_ms: 20_000,
            lb_timeout: 30,
            expected_windows: 1,
            max_clock_skew: 20,
        };
        let check = |state| check_not_ahead(&state, now, &settings);
        assert_eq!(check(state(1_700_000_000, 1_700_000_000)), Ok(()));
        // The window of a partial 20 s ahead, stored by a central whose
        // clock is a few seconds ahead of ours.
        assert_eq!(check(state(1_700_000_030, 1_700_000_030)), Ok(()));
        // Issue 24 item 5: H = 2^64 - 1 silenced the cluster.
        let got = check(state(u64::MAX, 1_700_000_000));
        assert_eq!(
            got.map_err(|e| e.to_string()),
            Err(format!(
                "emitted {} is {} s ahead of this host's clock (at most max-clock-skew + window = 30 s)",
                u64::MAX,
                u64::MAX - now
            ))
        );
        assert!(matches!(
            check(state(1_700_000_000, 1_700_000_040)),
            Err(BadState::Ahead { what, ahead: 35, .. }) if what == "lb lb-1"
        ));
    }
}
