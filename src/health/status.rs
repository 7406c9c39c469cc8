//! The status file: a few `key=value` lines that the supervisor rewrites
//! atomically (temp file in the same directory, then rename) about every
//! [`WRITE_INTERVAL`], and that `haproxystats check` reads.
//!
//! It lives at `<paths.base-dir>/haproxystats.status` ([`status_path`]): no
//! option of its own, so the running process and `check` given the same
//! configuration always agree on it. It is written with mode 0644 so that a
//! monitoring user (nagios, nrpe) can read it.
//!
//! ```text
//! # haproxystats status; rewritten by the supervisor, read by `haproxystats check`
//! pid=4242
//! started_at=1700000000
//! updated_at=1700000123
//! write_interval=1
//! pulling=true
//! queue_depth=0
//! in_flight=1
//! last_pull_ok=1700000120
//! last_process_ok=1700000121
//! child_restarts=0
//! quarantined=0
//! bad_messages=0
//! sinks=graphite,kafka
//! sink.graphite.backlog=0
//! sink.graphite.capacity=100000
//! sink.graphite.dropped_lines=0
//! sink.graphite.last_push_ok=1700000122
//! sink.kafka.backlog=1200
//! sink.kafka.capacity=1000000
//! sink.kafka.dropped_lines=0
//! sink.kafka.last_push_ok=never
//! sink.kafka.cannot_deliver=topic haproxystats.metrics does not exist or cannot be used (Broker: Unknown topic or partition)
//! ```
//!
//! `sinks` lists the enabled sinks, each with five `sink.<name>.*` lines;
//! `cannot_deliver` is empty while the sink can deliver (and may be missing:
//! a file of an older writer).
//! Times are epoch seconds; `never` means "not once since start". Unknown
//! keys are ignored (a newer writer, an older reader); a missing or repeated
//! key, or a value that is not a number, makes the file garbled
//! (`bad_messages`, added with `haproxystats central`, may be missing: 0). No serde:
//! the format is flat, fixed and meant to be read by humans with `cat` too.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;

/// The file's name inside `paths.base-dir`.
pub const STATUS_FILE_NAME: &str = "haproxystats.status";

/// How often the supervisor is expected to rewrite the file; written into it
/// as `write_interval` so that `check` judges staleness by the writer's pace.
pub const WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// Where the status file of a configuration lives:
/// `<paths.base-dir>/haproxystats.status`.
pub fn status_path(config: &Config) -> PathBuf {
    config.paths.base_dir.join(STATUS_FILE_NAME)
}

/// One status record. Counters count since the process started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The writer's process id.
    pub pid: u32,
    /// When the writer started (epoch seconds); "never yet" ages count from it.
    pub started_at: u64,
    /// When this record was written (epoch seconds).
    pub updated_at: u64,
    /// Seconds between two writes (normally [`WRITE_INTERVAL`]).
    pub write_interval: u64,
    /// `true` when this process pulls (`haproxystats`), `false` when it only
    /// processes (`haproxystats process`): then pull age is not judged.
    pub pulling: bool,
    /// Snapshot directories waiting in src-dir (queued, not in flight).
    pub queue_depth: u64,
    /// Snapshot directories being processed.
    pub in_flight: u64,
    /// The last pull cycle whose snapshot was complete (epoch seconds).
    pub last_pull_ok: Option<u64>,
    /// The last snapshot processed and handed to the sinks (epoch seconds).
    pub last_process_ok: Option<u64>,
    /// Child actors restarted by the supervisor.
    pub child_restarts: u64,
    /// Snapshots moved to `<src-dir>.failed/`.
    pub quarantined: u64,
    /// Messages `haproxystats central` skipped as bad (0 elsewhere).
    pub bad_messages: u64,
    /// Each enabled sink, in delivery order.
    pub sinks: Vec<SinkStatus>,
}

/// One sink's line of the status record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkStatus {
    /// `graphite`, `kafka`, `local-store`.
    pub name: String,
    /// Lines waiting in its backlog.
    pub backlog: u64,
    /// Lines its backlog holds before dropping the oldest (0: no backlog).
    pub capacity: u64,
    /// Lines it dropped since start.
    pub dropped_lines: u64,
    /// The last time it delivered lines (epoch seconds).
    pub last_push_ok: Option<u64>,
    /// Why it cannot deliver what it holds (`check`: CRITICAL); `None`
    /// while it can.
    pub cannot_deliver: Option<String>,
}

/// The fields of each sink, after `sink.<name>.`, in the order written.
const SINK_KEYS: [&str; 5] = [
    "backlog",
    "capacity",
    "dropped_lines",
    "last_push_ok",
    "cannot_deliver",
];

/// Why the status file could not be written or read: one line naming it.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Reading failed (most often: it does not exist).
    #[error("cannot read status file {}: {source}", path.display())]
    Read {
        /// The status file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file was read but is not a status record.
    #[error("status file {} is garbled: {reason}", path.display())]
    Garbled {
        /// The status file.
        path: PathBuf,
        /// What is wrong, with the line number when there is one.
        reason: String,
    },
    /// Writing the temp file or renaming it failed.
    #[error("cannot write status file {}: {source}", path.display())]
    Write {
        /// The file that could not be written (the temp file or the target).
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

impl StatusError {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StatusError::Read { .. } => "read",
            StatusError::Garbled { .. } => "garbled",
            StatusError::Write { .. } => "write",
        }
    }

    /// `true` when the file does not exist (the process never ran with this
    /// configuration, or base-dir is wrong).
    pub fn is_missing(&self) -> bool {
        matches!(self, StatusError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// The keys before the sinks', in the order they are written.
const KEYS: [&str; 13] = [
    "pid",
    "started_at",
    "updated_at",
    "write_interval",
    "pulling",
    "queue_depth",
    "in_flight",
    "last_pull_ok",
    "last_process_ok",
    "child_restarts",
    "quarantined",
    "bad_messages",
    "sinks",
];

const NEVER: &str = "never";

impl Status {
    /// A fresh record for a process started at `started_at` (now, in epoch
    /// seconds): nothing done yet, everything zero.
    pub fn starting(pid: u32, started_at: u64, pulling: bool) -> Status {
        Status {
            pid,
            started_at,
            updated_at: started_at,
            write_interval: WRITE_INTERVAL.as_secs(),
            pulling,
            queue_depth: 0,
            in_flight: 0,
            last_pull_ok: None,
            last_process_ok: None,
            child_restarts: 0,
            quarantined: 0,
            bad_messages: 0,
            sinks: Vec::new(),
        }
    }

    /// One line for systemd's `STATUS=` (what `systemctl status` shows),
    /// e.g. `queue 0, in flight 1, last pull 3s ago; graphite: backlog 0
    /// lines, last push 2s ago; kafka: backlog 120 lines, last push 1s ago`;
    /// ages at `now` (epoch seconds).
    pub fn summary(&self, now: u64) -> String {
        let age = |text: &mut String, what: &str, last: Option<u64>| match last {
            Some(at) => {
                let _ = write!(text, ", last {what} {}s ago", now.saturating_sub(at));
            }
            None => {
                let _ = write!(text, ", no {what} yet");
            }
        };
        let mut text = format!("queue {}, in flight {}", self.queue_depth, self.in_flight);
        if self.pulling {
            age(&mut text, "pull", self.last_pull_ok);
        }
        for sink in &self.sinks {
            let _ = write!(text, "; {}: backlog {} lines", sink.name, sink.backlog);
            if let Some(reason) = &sink.cannot_deliver {
                let _ = write!(text, ", cannot deliver: {reason}");
            }
            age(&mut text, "push", sink.last_push_ok);
            if sink.dropped_lines > 0 {
                let _ = write!(text, ", dropped lines {}", sink.dropped_lines);
            }
        }
        text
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let time = |t: Option<u64>| t.map_or_else(|| NEVER.to_owned(), |t| t.to_string());
        let values: [String; 13] = [
            self.pid.to_string(),
            self.started_at.to_string(),
            self.updated_at.to_string(),
            self.write_interval.to_string(),
            self.pulling.to_string(),
            self.queue_depth.to_string(),
            self.in_flight.to_string(),
            time(self.last_pull_ok),
            time(self.last_process_ok),
            self.child_restarts.to_string(),
            self.quarantined.to_string(),
            self.bad_messages.to_string(),
            self.sinks
                .iter()
                .map(|sink| sink.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ];
        let mut text = String::from(
            "# haproxystats status; rewritten by the supervisor, read by `haproxystats check`\n",
        );
        for (key, value) in KEYS.iter().zip(values) {
            let _ = writeln!(text, "{key}={value}");
        }
        for sink in &self.sinks {
            let values = [
                sink.backlog.to_string(),
                sink.capacity.to_string(),
                sink.dropped_lines.to_string(),
                time(sink.last_push_ok),
                sink.cannot_deliver
                    .as_deref()
                    .map(one_line)
                    .unwrap_or_default(),
            ];
            for (field, value) in SINK_KEYS.iter().zip(values) {
                let _ = writeln!(text, "sink.{}.{field}={value}", sink.name);
            }
        }
        text
    }

    /// Parses the file's text; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Status, String> {
        let mut values: HashMap<&str, (usize, &str)> = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("line {number}: expected key=value, got {line:?}"));
            };
            let key = key.trim();
            if values.insert(key, (number, value.trim())).is_some() {
                return Err(format!("line {number}: {key} given twice"));
            }
        }
        let fields = Fields(values);
        let names = fields.get("sinks")?.1;
        let sinks = names
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                let key = |field: &str| format!("sink.{name}.{field}");
                Ok(SinkStatus {
                    name: name.to_owned(),
                    backlog: fields.number(&key("backlog"))?,
                    capacity: fields.number(&key("capacity"))?,
                    dropped_lines: fields.number(&key("dropped_lines"))?,
                    last_push_ok: fields.time(&key("last_push_ok"))?,
                    // Written since issue 24; empty while it can deliver.
                    cannot_deliver: fields
                        .optional_text(&key("cannot_deliver"))
                        .filter(|reason| !reason.is_empty()),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Status {
            pid: fields.number("pid")?,
            started_at: fields.number("started_at")?,
            updated_at: fields.number("updated_at")?,
            write_interval: fields.number("write_interval")?,
            pulling: fields.flag("pulling")?,
            queue_depth: fields.number("queue_depth")?,
            in_flight: fields.number("in_flight")?,
            last_pull_ok: fields.time("last_pull_ok")?,
            last_process_ok: fields.time("last_process_ok")?,
            child_restarts: fields.number("child_restarts")?,
            quarantined: fields.number("quarantined")?,
            // Written since central; a file of an older writer has none.
            bad_messages: fields.optional_number("bad_messages")?.unwrap_or(0),
            sinks,
        })
    }

    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<Status, StatusError> {
        let text = std::fs::read_to_string(path).map_err(|source| StatusError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Status::parse(&text).map_err(|reason| StatusError::Garbled {
            path: path.to_path_buf(),
            reason,
        })
    }
}

/// The values found in a file, by key, with their line numbers.
struct Fields<'a>(HashMap<&'a str, (usize, &'a str)>);

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Result<(usize, &'a str), String> {
        self.0
            .get(key)
            .copied()
            .ok_or_else(|| format!("{key} is missing"))
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<T, String> {
        let (line, value) = self.get(key)?;
        value
            .parse()
            .map_err(|_| format!("line {line}: {key} = {value:?} is not a number"))
    }

    fn optional_number(&self, key: &str) -> Result<Option<u64>, String> {
        if self.0.contains_key(key) {
            self.number(key).map(Some)
        } else {
            Ok(None)
        }
    }

    fn optional_text(&self, key: &str) -> Option<String> {
        self.0.get(key).map(|(_, value)| (*value).to_owned())
    }

    fn time(&self, key: &str) -> Result<Option<u64>, String> {
        match self.get(key)? {
            (_, NEVER) => Ok(None),
            _ => self.number(key).map(Some),
        }
    }

    fn flag(&self, key: &str) -> Result<bool, String> {
        match self.get(key)? {
            (_, "true") => Ok(true),
            (_, "false") => Ok(false),
            (line, value) => Err(format!(
                "line {line}: {key} = {value:?} is not true or false"
            )),
        }
    }
}

/// A value on one line of the file: line breaks and other control
/// characters become blanks.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Writes the status file atomically: the text goes to a temp file in the
/// same directory, which is then renamed over the file, so a reader sees the
/// old record or the new one, never half of one. No fsync: after a crash an
/// old or empty record only makes `check` report the process as down, which
/// it then is.
#[derive(Debug, Clone)]
pub struct StatusWriter {
    path: PathBuf,
    temp: PathBuf,
}

impl StatusWriter {
    /// A writer for the file at `path` (see [`status_path`]). The temp file is
    /// `.<name>.<pid>.tmp` beside it, so two processes never share one.
    pub fn new(path: PathBuf) -> StatusWriter {
        let name = path
            .file_name()
            .map_or_else(|| STATUS_FILE_NAME.into(), |name| name.to_string_lossy());
        let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        StatusWriter { path, temp }
    }

    /// The status file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file with `status`. Blocking (a small write and a
    /// rename): call it off the event loop or accept a few microseconds.
    pub fn write(&self, status: &Status) -> Result<(), StatusError> {
        let write_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StatusError::Write { path, source }
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&self.temp)
            .map_err(write_error(&self.temp))?;
        file.write_all(status.to_text().as_bytes())
            .map_err(write_error(&self.temp))?;
        drop(file);
        std::fs::rename(&self.temp, &self.path).map_err(|source| {
            let _ = std::fs::remove_file(&self.temp);
            StatusError::Write {
                path: self.path.clone(),
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        Status {
            pid: 4242,
            started_at: 1_700_000_000,
            updated_at: 1_700_000_123,
            write_interval: 1,
            pulling: true,
            queue_depth: 3,
            in_flight: 1,
            last_pull_ok: Some(1_700_000_120),
            last_process_ok: Some(1_700_000_121),
            child_restarts: 2,
            quarantined: 1,
            bad_messages: 0,
            sinks: vec![
                SinkStatus {
                    name: "graphite".into(),
                    backlog: 17,
                    capacity: 1000,
                    dropped_lines: 5,
                    last_push_ok: None,
                    cannot_deliver: None,
                },
                SinkStatus {
                    name: "kafka".into(),
                    backlog: 0,
                    capacity: 500,
                    dropped_lines: 0,
                    last_push_ok: Some(1_700_000_122),
                    cannot_deliver: None,
                },
            ],
        }
    }

    #[test]
    fn text_round_trips() {
        let status = sample();
        assert_eq!(Status::parse(&status.to_text()), Ok(status));
        let starting = Status::starting(1, 10, false);
        assert_eq!(Status::parse(&starting.to_text()), Ok(starting));
    }

    #[test]
    fn text_is_one_key_per_line_with_never_for_missing_times() {
        let text = sample().to_text();
        assert!(text.starts_with("# "), "{text}");
        assert!(text.contains("\npid=4242\n"), "{text}");
        assert!(text.contains("\npulling=true\n"), "{text}");
        assert!(text.contains("\nsinks=graphite,kafka\n"), "{text}");
        assert!(
            text.contains("\nsink.graphite.last_push_ok=never\n"),
            "{text}"
        );
        assert!(text.contains("\nsink.kafka.capacity=500\n"), "{text}");
        assert_eq!(text.lines().count(), 1 + KEYS.len() + 2 * SINK_KEYS.len());
    }

    #[test]
    fn a_sink_that_cannot_deliver_says_why_in_one_line() {
        let mut status = sample();
        status.sinks[1].backlog = 40;
        status.sinks[1].cannot_deliver = Some("topic m does not exist\n(x)".into());
        let text = status.to_text();
        assert!(
            text.contains("\nsink.kafka.cannot_deliver=topic m does not exist (x)\n"),
            "{text}"
        );
        assert!(text.contains("\nsink.graphite.cannot_deliver=\n"), "{text}");
        let read = Status::parse(&text).expect("parsed");
        assert_eq!(
            read.sinks[1].cannot_deliver.as_deref(),
            Some("topic m does not exist (x)")
        );
        assert_eq!(read.sinks[0].cannot_deliver, None);
        assert!(
            read.summary(1_700_000_125)
                .contains("kafka: backlog 40 lines, cannot deliver: topic m does not exist (x)"),
            "{}",
            read.summary(1_700_000_125)
        );
        // An older writer's file has no such line: the sink can deliver.
        let older = sample()
            .to_text()
            .replace("sink.kafka.cannot_deliver=\n", "");
        assert_eq!(Status::parse(&older), Ok(sample()));
    }

    #[test]
    fn unknown_keys_blank_lines_and_spaces_are_tolerated() {
        let text = sample()
            .to_text()
            .replace("pid=4242", "  pid = 4242 ")
            .replace("pulling=true\n", "pulling=true\n\nfuture_key=whatever\n");
        assert_eq!(Status::parse(&text), Ok(sample()));
    }

    #[test]
    fn garbled_text_says_what_and_where() {
        let text = sample().to_text();
        let cases = [
            (text.replace("\npid=4242\n", "\n"), "pid is missing"),
            (
                text.replace("queue_depth=3", "queue_depth=x"),
                "line 7: queue_depth = \"x\" is not a number",
            ),
            (
                text.replace("pulling=true", "pulling=yes"),
                "pulling = \"yes\" is not true or false",
            ),
            (
                text.replace("in_flight=1", "in_flight"),
                "line 8: expected key=value",
            ),
            (format!("{text}pid=1\n"), "pid given twice"),
            (
                text.replace("last_pull_ok=1700000120", "last_pull_ok="),
                "last_pull_ok = \"\" is not a number",
            ),
            (String::new(), "sinks is missing"),
            (
                text.replace("sink.kafka.backlog=0\n", ""),
                "sink.kafka.backlog is missing",
            ),
            (
                text.replace(
                    "sink.graphite.dropped_lines=5",
                    "sink.graphite.dropped_lines=-1",
                ),
                "sink.graphite.dropped_lines = \"-1\" is not a number",
            ),
        ];
        for (text, expected) in cases {
            match Status::parse(&text) {
                Ok(status) => panic!("parsed {status:?} from {text:?}"),
                Err(reason) => assert!(reason.contains(expected), "{reason:?} vs {expected:?}"),
            }
        }
    }

    #[test]
    fn writer_replaces_the_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(STATUS_FILE_NAME);
        let writer = StatusWriter::new(path.clone());
        let mut status = sample();
        writer.write(&status).expect("first write");
        status.queue_depth = 99;
        writer.write(&status).expect("second write");
        assert_eq!(Status::read(&path).expect("read back"), status);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, [STATUS_FILE_NAME]);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(
            mode & 0o044,
            0o044,
            "readable by group and others: {mode:o}"
        );
    }

    #[test]
    fn errors_name_the_file_in_one_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("nope.status");
        let error = Status::read(&missing).expect_err("missing");
        assert!(error.is_missing());
        assert_eq!(error.kind(), "read");
        let message = error.to_string();
        assert!(message.contains(&*missing.to_string_lossy()), "{message}");
        assert_eq!(message.lines().count(), 1);

        let garbled = dir.path().join("garbled.status");
        std::fs::write(&garbled, "hello\n").expect("write");
        let error = Status::read(&garbled).expect_err("garbled");
        assert!(!error.is_missing());
        assert_eq!(error.kind(), "garbled");
        let message = error.to_string();
        assert!(message.contains(&*garbled.to_string_lossy()), "{message}");
        assert_eq!(message.lines().count(), 1);

        let writer = StatusWriter::new(dir.path().join("no-such-dir").join("x.status"));
        let error = writer.write(&sample()).expect_err("no dir");
        assert_eq!(error.kind(), "write");
        assert!(error.to_string().contains("no-such-dir"), "{error}");
    }

    #[test]
    fn summary_is_one_short_line_for_systemctl_status() {
        let status = sample();
        assert_eq!(
            status.summary(1_700_000_125),
            "queue 3, in flight 1, last pull 5s ago; graphite: backlog 17 lines, no push yet, \
             dropped lines 5; kafka: backlog 0 lines, last push 3s ago"
        );
        let processing = Status::starting(1, 10, false);
        assert_eq!(processing.summary(20), "queue 0, in flight 0");
    }

    #[test]
    fn path_is_under_base_dir() {
        let mut config = Config::defaults();
        config.paths.base_dir = PathBuf::from("/srv/hs");
        assert_eq!(
            status_path(&config),
            PathBuf::from("/srv/hs/haproxystats.status")
        );
    }
}
