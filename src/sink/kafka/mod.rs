//! The Kafka sink (SPEC §5), built in parts:
//!
//! - [`format`]: message values from a snapshot's lines, `graphite` or
//!   `influx`, never splitting a line, under `message-max-bytes` (pure).
//!
//! The producer actor (rdkafka, delivery reports as acknowledgements) and
//! the `[kafka]` section come with issue 13; until then `[kafka]` is
//! accepted with a warning and ignored.

pub mod format;
