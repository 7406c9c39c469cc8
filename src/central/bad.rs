//! Bad messages (SPEC §7, issue 14 item 5): what central cannot use, and
//! the one place where each is logged and counted ([`BadMessages::record`]).
//! A bad message is skipped and its offset counts as done at once, so that
//! it is committed past: a poison message never blocks its partition, and
//! since nothing panics on it, it never crash-loops the consumer either.
//!
//! [`part_of`] classifies a message by its headers, before anything else
//! looks at it; what only decoding finds (garbage, a truncated stream, a
//! missing `pxname`) comes back from `raw::decode` as a [`RawError`], and
//! a snapshot whose parts never all arrived from the assembler.

use std::collections::BTreeMap;
use std::fmt;

use crate::raw::RawError;

/// How far ahead of central's clock a snapshot's `ts` may be: an edge
/// whose clock is an hour fast (or a `ts` that is no timestamp at all)
/// would write points into Graphite's future, where they hide real ones.
pub const MAX_FUTURE_SECS: u64 = 3600;

/// How old a snapshot's `ts` may be: a week, longer than any topic
/// retention an operator keeps raw snapshots for; anything older is a
/// replayed or forged message, not a late one.
pub const MAX_AGE_SECS: u64 = 7 * 24 * 3600;

/// The only `format` header central reads.
pub const FORMAT: &str = crate::raw::FORMAT;

/// The most parts one snapshot may claim: at the smallest useful message
/// (a few KiB) that is far beyond any load balancer; a bigger number is a
/// broken header, and would make the assembler wait for parts forever.
pub const MAX_PARTS: usize = 10_000;

/// The headers of one raw snapshot message, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHeader {
    /// `lb`: the load balancer (a Graphite path element).
    pub lb: String,
    /// `cluster`.
    pub cluster: String,
    /// `ts`: the snapshot's timestamp, epoch seconds.
    pub ts: u64,
    /// `part`: 0-based, below `parts`.
    pub part: usize,
    /// `parts`: how many messages the snapshot has.
    pub parts: usize,
}

/// Why a message is skipped.
#[derive(Debug, thiserror::Error)]
pub enum BadMessage {
    /// The message has no value (a tombstone or an empty record).
    #[error("no value")]
    NoValue,
    /// A header SPEC §5 requires is not there.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header that is not what SPEC §5 says it is.
    #[error("header {name} = {value:?}: {reason}")]
    BadHeader {
        /// The header.
        name: &'static str,
        /// Its value, lossily as text.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A `format` central does not read on this topic.
    #[error("unknown format {found:?} (central reads {expected} on this topic)")]
    UnknownFormat {
        /// The header.
        found: String,
        /// The topic's format: [`FORMAT`] on the snapshots topic,
        /// `partial-ipc/1` on the partials topic.
        expected: &'static str,
    },
    /// `ts` too far ahead of central's clock.
    #[error("ts {ts} is {ahead} s ahead of this host's clock (at most {MAX_FUTURE_SECS} s)")]
    FarFuture {
        /// The header.
        ts: u64,
        /// Seconds ahead.
        ahead: u64,
    },
    /// `ts` too far in the past.
    #[error("ts {ts} is {age} s old (at most {MAX_AGE_SECS} s)")]
    FarPast {
        /// The header.
        ts: u64,
        /// Seconds old.
        age: u64,
    },
    /// Some part of the snapshot never arrived.
    #[error("missing part: {have} of {parts} parts of snapshot {ts} arrived, {why}")]
    MissingPart {
        /// The snapshot's `ts`.
        ts: u64,
        /// Parts that arrived.
        have: usize,
        /// Parts it has.
        parts: usize,
        /// Why no more are waited for.
        why: &'static str,
    },
    /// The parts do not decode (garbage, truncated, no `pxname`/`svname`,
    /// parts of different snapshots).
    #[error("cannot decode: {0}")]
    Decode(#[from] RawError),
    /// The engine found nothing usable in the decoded snapshot.
    #[error("nothing usable: {0}")]
    Unprocessable(String),
    /// Processing it panicked (caught): a bug, but never a crash loop.
    #[error("processing panicked: {0}")]
    Panicked(String),
}

impl BadMessage {
    /// A short, stable name of the kind (logs, per-kind counts).
    pub fn kind(&self) -> &'static str {
        match self {
            BadMessage::NoValue => "no_value",
            BadMessage::MissingHeader(_) => "missing_header",
            BadMessage::BadHeader { .. } => "bad_header",
            BadMessage::UnknownFormat { .. } => "unknown_format",
            BadMessage::FarFuture { .. } => "far_future",
            BadMessage::FarPast { .. } => "far_past",
            BadMessage::MissingPart { .. } => "missing_part",
            BadMessage::Decode(_) => "decode",
            BadMessage::Unprocessable(_) => "unprocessable",
            BadMessage::Panicked(_) => "panicked",
        }
    }
}

/// Where a message is: for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAt<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The offsets (one, or every part of a snapshot).
    pub offsets: &'a [i64],
}

impl fmt::Display for MessageAt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@", self.topic, self.partition)?;
        for (i, offset) in self.offsets.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{offset}")?;
        }
        Ok(())
    }
}

/// Reads the headers of one message, checks them against SPEC §5 and
/// central's clock (`now`, epoch seconds). `header(name)` gives a header's
/// value (the first of that name).
pub fn part_of<'h>(
    expected_format: &'static str,
    header: impl Fn(&str) -> Option<&'h [u8]>,
    has_value: bool,
    now: u64,
) -> Result<PartHeader, BadMessage> {
    let text = |name: &'static str| -> Result<&'h str, BadMessage> {
        let value = header(name).ok_or(BadMessage::MissingHeader(name))?;
        std::str::from_utf8(value).map_err(|_| BadMessage::BadHeader {
            name,
            value: String::from_utf8_lossy(value).into_owned(),
            reason: "not UTF-8",
        })
    };
    let number = |name: &'static str| -> Result<u64, BadMessage> {
        let value = text(name)?;
        let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        digits
            .then(|| value.parse().ok())
            .flatten()
            .ok_or_else(|| BadMessage::BadHeader {
                name,
                value: value.to_owned(),
                reason: "not a decimal number",
            })
    };
    let format = text("format")?;
    if format != expected_format {
        return Err(unknown_format(format, expected_format));
    }
    let lb = name(text("lb")?, "lb")?;
    let cluster = name(text("cluster")?, "cluster")?;
    let ts = number("ts")?;
    let parts = number("parts")?;
    let part = number("part")?;
    let bad = |name, value: u64, reason| BadMessage::BadHeader {
        name,
        value: value.to_string(),
        reason,
    };
    if parts == 0 || parts > MAX_PARTS as u64 {
        return Err(bad("parts", parts, "not between 1 and 10000"));
    }
    if part >= parts {
        return Err(bad("part", part, "not below parts"));
    }
    if ts > now.saturating_add(MAX_FUTURE_SECS) {
        return Err(BadMessage::FarFuture {
            ts,
            ahead: ts - now,
        });
    }
    if ts.saturating_add(MAX_AGE_SECS) < now {
        return Err(BadMessage::FarPast { ts, age: now - ts });
    }
    if !has_value {
        return Err(BadMessage::NoValue);
    }
    Ok(PartHeader {
        lb: lb.to_owned(),
        cluster: cluster.to_owned(),
        ts,
        part: part as usize,
        parts: parts as usize,
    })
}

/// A format the topic does not carry, named with the one it does.
fn unknown_format(found: &str, expected: &'static str) -> BadMessage {
    BadMessage::UnknownFormat {
        found: found.to_owned(),
        expected,
    }
}

/// An `lb` or `cluster`: one Graphite path element (central writes it into
/// every path) and a directory name (local-store), by the one name rule
/// ([`crate::names`]) `[kafka]` checks the edge's own with.
fn name<'a>(value: &'a str, header: &'static str) -> Result<&'a str, BadMessage> {
    crate::names::check_name(value)
        .map(|()| value)
        .map_err(|error| BadMessage::BadHeader {
            name: header,
            // A forged header may be long: the log line shows its start.
            value: value.chars().take(SHOWN_NAME_CHARS).collect(),
            reason: error.reason(),
        })
}

/// How much of a refused `lb` or `cluster` the log line shows: a little
/// more than the longest valid name, so that "too long" is seen as such.
const SHOWN_NAME_CHARS: usize = crate::names::MAX_LEN + 8;

/// The bad messages seen since start: logged and counted in one place, so
/// that the log and the `BadMessages` self metric never drift apart.
#[derive(Debug, Default, Clone)]
pub struct BadMessages {
    total: u64,
    by_kind: BTreeMap<&'static str, u64>,
}

impl BadMessages {
    /// Logs `why` in one line with where the message is, and counts it.
    pub fn record(&mut self, at: &MessageAt<'_>, why: &BadMessage) {
        self.total += 1;
        *self.by_kind.entry(why.kind()).or_default() += 1;
        tracing::warn!(
            topic = at.topic,
            partition = at.partition,
            offsets = ?at.offsets,
            kind = why.kind(),
            reason = %why,
            "bad message {at}: skipped and committed past"
        );
    }

    /// Bad messages since start (the `BadMessages` self metric).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bad messages of one kind since start.
    pub fn of_kind(&self, kind: &str) -> u64 {
        self.by_kind.get(kind).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn good() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("lb", b"lb-1".to_vec()),
            ("cluster", b"eu".to_vec()),
            ("ts", NOW.to_string().into_bytes()),
            ("interval", b"10".to_vec()),
            ("part", b"1".to_vec()),
            ("parts", b"3".to_vec()),
            ("format", FORMAT.as_bytes().to_vec()),
        ]
    }

    fn classify(headers: &[(&'static str, Vec<u8>)]) -> Result<PartHeader, BadMessage> {
        classify_as(FORMAT, headers)
    }

    /// As on a topic of format `expected`.
    fn classify_as(
        expected: &'static str,
        headers: &[(&'static str, Vec<u8>)],
    ) -> Result<PartHeader, BadMessage> {
        part_of(
            expected,
            |name| {
                headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.as_slice())
            },
            true,
            NOW,
        )
    }

    fn with(name: &'static str, value: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
        let mut headers = good();
        headers.retain(|(n, _)| *n != name);
        headers.push((name, value.to_vec()));
        headers
    }

    fn kind_of(headers: &[(&'static str, Vec<u8>)]) -> &'static str {
        match classify(headers) {
            Ok(part) => panic!("accepted {part:?}"),
            Err(bad) => bad.kind(),
        }
    }

    #[test]
    fn a_good_part_gives_its_headers() {
        let part = classify(&good()).expect("good");
        assert_eq!(
            part,
            PartHeader {
                lb: "lb-1".into(),
                cluster: "eu".into(),
                ts: NOW,
                part: 1,
                parts: 3
            }
        );
        // The limits themselves are still good.
        assert!(classify(&with("ts", (NOW + MAX_FUTURE_SECS).to_string().as_bytes())).is_ok());
        assert!(classify(&with("ts", (NOW - MAX_AGE_SECS).to_string().as_bytes())).is_ok());
    }

    #[test]
    fn every_missing_header_is_named() {
        for name in ["lb", "cluster", "ts", "part", "parts", "format"] {
            let mut headers = good();
            headers.retain(|(n, _)| *n != name);
            match classify(&headers) {
                Err(BadMessage::MissingHeader(missing)) => assert_eq!(missing, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_unknown_format_is_bad_whatever_else_it_says() {
        assert_eq!(kind_of(&with("format", b"arrow-ipc/2")), "unknown_format");
        assert_eq!(kind_of(&with("format", b"")), "unknown_format");
        let mut headers = with("format", b"csv");
        headers.retain(|(n, _)| *n != "lb");
        assert_eq!(kind_of(&headers), "unknown_format");
    }

    /// Issue 24 item 16: the partials topic's error named the snapshots
    /// topic's format.
    #[test]
    fn an_unknown_format_names_the_format_of_the_topic_it_came_on() {
        let partials = crate::central::process::PARTIAL_FORMAT;
        for (expected, found) in [(FORMAT, "partial-ipc/1"), (partials, FORMAT)] {
            let got = classify_as(expected, &with("format", found.as_bytes()));
            let Err(bad) = got else {
                panic!("{found} accepted where {expected} is read")
            };
            assert_eq!(
                bad.to_string(),
                format!("unknown format {found:?} (central reads {expected} on this topic)")
            );
        }
        assert_eq!(partials, "partial-ipc/1");
    }

    #[test]
    fn headers_that_are_not_what_spec_5_says_are_bad() {
        for (name, value) in [
            ("ts", &b"-5"[..]),
            ("ts", b"12x"),
            ("ts", b"99999999999999999999999"),
            ("part", b"3"),
            ("part", b" 1"),
            ("parts", b"0"),
            ("parts", b"10001"),
            ("lb", b""),
            ("lb", b"a.b"),
            ("lb", b"../x"),
            ("lb", b"a b"),
            ("cluster", b"\xff"),
            // Issue 24 item 7: what reached Graphite, and item 8: what an
            // edge published and central refused.
            ("lb", b"x;evil=1"),
            ("lb", b"a*"),
            ("lb", b"{a,b}"),
            ("lb", b"b[1]"),
            ("lb", "lb\u{200b}".as_bytes()),
            ("lb", "a".repeat(300).as_bytes()),
            ("lb", b"lb/1"),
            ("cluster", b"eu/west"),
            ("cluster", b"c;k=v"),
        ] {
            assert_eq!(
                kind_of(&with(name, value)),
                "bad_header",
                "{name} = {value:?}"
            );
        }
    }

    #[test]
    fn a_refused_name_is_shown_escaped_and_cut() {
        match classify(&with("lb", "lb\u{200b}".as_bytes())) {
            Err(bad) => assert_eq!(
                bad.to_string(),
                "header lb = \"lb\\u{200b}\": must hold only A-Z a-z 0-9 _ - (what Graphite stores as a plain path element)"
            ),
            Ok(part) => panic!("accepted {part:?}"),
        }
        let forged = "a".repeat(1 << 20);
        match classify(&with("cluster", forged.as_bytes())) {
            Err(BadMessage::BadHeader { name, value, .. }) => {
                assert_eq!(name, "cluster");
                assert_eq!(value.len(), SHOWN_NAME_CHARS);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_ts_far_ahead_or_far_behind_the_clock_is_bad() {
        let ahead = (NOW + MAX_FUTURE_SECS + 1).to_string();
        assert_eq!(kind_of(&with("ts", ahead.as_bytes())), "far_future");
        let old = (NOW - MAX_AGE_SECS - 1).to_string();
        assert_eq!(kind_of(&with("ts", old.as_bytes())), "far_past");
        assert_eq!(kind_of(&with("ts", b"0")), "far_past");
    }

    #[test]
    fn a_message_without_value_is_bad() {
        let headers = good();
        let got = part_of(
            FORMAT,
            |name| {
                headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.as_slice())
            },
            false,
            NOW,
        );
        assert!(matches!(got, Err(BadMessage::NoValue)));
    }

    #[test]
    fn every_bad_message_is_counted_by_kind() {
        let mut bad = BadMessages::default();
        let at = MessageAt {
            topic: "t",
            partition: 2,
            offsets: &[7, 8],
        };
        assert_eq!(at.to_string(), "t/2@7,8");
        bad.record(&at, &BadMessage::NoValue);
        bad.record(&at, &BadMessage::MissingHeader("lb"));
        bad.record(&at, &BadMessage::NoValue);
        assert_eq!(bad.total(), 3);
        assert_eq!(bad.of_kind("no_value"), 2);
        assert_eq!(bad.of_kind("missing_header"), 1);
        assert_eq!(bad.of_kind("decode"), 0);
    }
}
