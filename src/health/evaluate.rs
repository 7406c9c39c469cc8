//! What `haproxystats check` makes of a status record: a Nagios state and
//! one status line with perfdata. Pure: the record, the time and the
//! thresholds come in, the verdict goes out.
//!
//! A value alerts when it is *above* its threshold (Nagios' `N` range means
//! "alert outside 0..N"), so `--queue-critical 180` is CRITICAL from 181 on.
//!
//! Judged, worst state wins:
//! - the record's age: older than [`Thresholds::stale_after`] → CRITICAL
//!   "not running or hung", and nothing else is judged (the rest is old news);
//!   dated more than [`FUTURE_TOLERANCE_SECS`] ahead of now → CRITICAL too,
//!   naming the skew (nobody rewrites it: a hung process, or a corrupt file);
//! - queue depth against its limits, and each sink's backlog against its
//!   own ([`BacklogThresholds`]: by default fractions of that sink's
//!   capacity, so Graphite's and Kafka's backlogs are judged each by its size);
//! - the age of the last successful pull (only when the process pulls),
//!   process, and each sink's last push against the age limits; "never
//!   yet" counts from start;
//! - a sink that says it cannot deliver what it holds (its topic does not
//!   exist, its brokers do not answer) → CRITICAL with its reason: its
//!   backlog only fills, and central pauses on a full one.
//!
//! Counters since start (dropped lines, quarantined snapshots, restarts) are
//! reported in perfdata, never judged: a counter that cannot go down would
//! keep the service in alert until the next restart. Graph their rates from
//! the self metrics instead.

use std::fmt;
use std::fmt::Write as _;

use super::status::{SinkStatus, Status, StatusError};
use crate::config::Config;

/// The four Nagios plugin states; the exit code is the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NagiosCode {
    /// 0: all is well.
    Ok,
    /// 1: a threshold is crossed; look soon.
    Warning,
    /// 2: not running, hung, or far behind; act now.
    Critical,
    /// 3: the check itself could not judge (bad configuration or arguments,
    /// unreadable status file).
    Unknown,
}

impl NagiosCode {
    /// The process exit code Nagios expects.
    pub fn exit_code(self) -> u8 {
        match self {
            NagiosCode::Ok => 0,
            NagiosCode::Warning => 1,
            NagiosCode::Critical => 2,
            NagiosCode::Unknown => 3,
        }
    }

    /// The word printed after `HAPROXYSTATS`.
    pub fn label(self) -> &'static str {
        match self {
            NagiosCode::Ok => "OK",
            NagiosCode::Warning => "WARNING",
            NagiosCode::Critical => "CRITICAL",
            NagiosCode::Unknown => "UNKNOWN",
        }
    }

    /// Order for "worst wins" among judged values: OK < WARNING < CRITICAL.
    fn severity(self) -> u8 {
        match self {
            NagiosCode::Ok => 0,
            NagiosCode::Warning => 1,
            NagiosCode::Unknown => 2,
            NagiosCode::Critical => 3,
        }
    }
}

impl fmt::Display for NagiosCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A warning and a critical threshold; a value above one is in that state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Above this: WARNING.
    pub warning: u64,
    /// Above this: CRITICAL.
    pub critical: u64,
}

impl Limits {
    fn judge(self, value: u64) -> NagiosCode {
        if value > self.critical {
            NagiosCode::Critical
        } else if value > self.warning {
            NagiosCode::Warning
        } else {
            NagiosCode::Ok
        }
    }

    /// Refuses limits whose warning is above their critical threshold.
    fn validate(self, name: &str) -> Result<(), String> {
        if self.warning > self.critical {
            return Err(format!(
                "--{name}-warning {} is above --{name}-critical {}",
                self.warning, self.critical
            ));
        }
        Ok(())
    }
}

/// A backlog threshold from the command line: `LINES` for every sink, or
/// `SINK=LINES` for one (`--backlog-warning kafka=500000`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkLimit {
    /// The sink it is for; `None`: every sink.
    pub sink: Option<String>,
    /// The threshold in lines.
    pub lines: u64,
}

impl std::str::FromStr for SinkLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<SinkLimit, String> {
        let (sink, lines) = match text.split_once('=') {
            Some((sink, lines)) if !sink.trim().is_empty() => (Some(sink.trim()), lines),
            Some(_) => return Err(format!("{text:?}: the sink name before `=` is empty")),
            None => (None, text),
        };
        let lines = lines
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: expected LINES or SINK=LINES, LINES a whole number"))?;
        Ok(SinkLimit {
            sink: sink.map(str::to_owned),
            lines,
        })
    }
}

/// The backlog thresholds of every sink. For each of warning and
/// critical, the first that applies: a limit naming the sink, one for every
/// sink, a fraction of the sink's capacity (warning above a tenth,
/// critical above half: when full, the oldest lines are dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BacklogThresholds {
    /// `--backlog-warning`, as given.
    pub warning: Vec<SinkLimit>,
    /// `--backlog-critical`, as given.
    pub critical: Vec<SinkLimit>,
}

impl BacklogThresholds {
    /// The limits of `sink`.
    pub fn limits(&self, sink: &SinkStatus) -> Limits {
        let pick = |given: &[SinkLimit], default: u64| {
            let named = given
                .iter()
                .rev()
                .find(|limit| limit.sink.as_deref() == Some(sink.name.as_str()));
            let every = given.iter().rev().find(|limit| limit.sink.is_none());
            named.or(every).map_or(default, |limit| limit.lines)
        };
        Limits {
            warning: pick(&self.warning, sink.capacity / 10),
            critical: pick(&self.critical, sink.capacity / 2),
        }
    }

    /// Refuses a warning above the critical given for the same sinks.
    fn validate(&self) -> Result<(), String> {
        for warning in &self.warning {
            let critical = self
                .critical
                .iter()
                .rev()
                .find(|critical| critical.sink == warning.sink);
            if let Some(critical) = critical.filter(|c| warning.lines > c.lines) {
                let flag = |name: &str, limit: &SinkLimit| match &limit.sink {
                    Some(sink) => format!("--{name} {sink}={}", limit.lines),
                    None => format!("--{name} {}", limit.lines),
                };
                return Err(format!(
                    "{} is above {}",
                    flag("backlog-warning", warning),
                    flag("backlog-critical", critical)
                ));
            }
        }
        Ok(())
    }
}

/// Everything `check` compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    /// Snapshot directories waiting in src-dir.
    pub queue: Limits,
    /// Lines in each sink's backlog.
    pub backlog: BacklogThresholds,
    /// Seconds since the last successful pull, process and push.
    pub age: Limits,
    /// Seconds after which the status record is stale (CRITICAL); `None`:
    /// [`stale_after_default`] of the record's write interval.
    pub stale_after: Option<u64>,
}

/// The staleness threshold when none is given: three write intervals, but
/// at least [`MIN_STALE_SECS`] (times are whole seconds and a busy host may
/// delay a write by a second or two; the watchdog catches real hangs).
pub fn stale_after_default(write_interval: u64) -> u64 {
    write_interval.saturating_mul(3).max(MIN_STALE_SECS)
}

/// See [`stale_after_default`].
pub const MIN_STALE_SECS: u64 = 10;

impl Thresholds {
    /// Defaults derived from the configuration:
    /// - queue: warning above a tenth of `[pull] queue-size`, critical above
    ///   half of it (at queue-size pulling pauses and data is lost);
    /// - backlog: the same fractions of each sink's capacity, which the
    ///   status file says ([`BacklogThresholds`]);
    /// - ages: warning above 3 × `[pull] pull-interval`, critical above 6 ×;
    /// - staleness: [`stale_after_default`].
    pub fn from_config(config: &Config) -> Thresholds {
        let fractions = |capacity: usize| {
            let capacity = u64::try_from(capacity).unwrap_or(u64::MAX);
            Limits {
                warning: capacity / 10,
                critical: capacity / 2,
            }
        };
        let interval = config.pull.pull_interval.as_secs_f64();
        // Whole seconds, at least one; the cast saturates.
        let times = |n: f64| ((interval * n).ceil() as u64).max(1);
        Thresholds {
            queue: fractions(config.pull.queue_size),
            backlog: BacklogThresholds::default(),
            age: Limits {
                warning: times(3.0),
                critical: times(6.0),
            },
            stale_after: None,
        }
    }

    /// Refuses thresholds whose warning is above their critical; the error
    /// names the flags.
    pub fn validate(&self) -> Result<(), String> {
        self.queue.validate("queue")?;
        self.backlog.validate()?;
        self.age.validate("age")
    }
}

/// The verdict: exit with `code`, print `line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// The state, which is also the exit code.
    pub code: NagiosCode,
    /// `HAPROXYSTATS <STATE> - <what> | <perfdata>`, one line.
    pub line: String,
}

impl CheckOutcome {
    /// An outcome whose line is `HAPROXYSTATS <STATE> - <text>`, perfdata
    /// appended when there is some.
    fn new(code: NagiosCode, text: &str, perfdata: &[String]) -> CheckOutcome {
        let mut line = format!("HAPROXYSTATS {code} - {text}");
        if !perfdata.is_empty() {
            line.push_str(" | ");
            line.push_str(&perfdata.join(" "));
        }
        CheckOutcome { code, line }
    }

    /// UNKNOWN: the check could not judge (the text says why).
    pub fn unknown(text: &str) -> CheckOutcome {
        CheckOutcome::new(NagiosCode::Unknown, &one_line(text), &[])
    }

    /// The status file could not be read: CRITICAL when it does not exist
    /// (haproxystats is not running, or never ran with this configuration),
    /// UNKNOWN otherwise (garbled, unreadable: the check cannot judge).
    pub fn unreadable(error: &StatusError) -> CheckOutcome {
        let text = one_line(&error.to_string());
        if error.is_missing() {
            CheckOutcome::new(
                NagiosCode::Critical,
                &format!("haproxystats not running: {text}"),
                &[],
            )
        } else {
            CheckOutcome::new(NagiosCode::Unknown, &text, &[])
        }
    }
}

/// One judged or reported value and its words in the line.
struct Item {
    code: NagiosCode,
    text: String,
}

/// How far in the future a status record may be dated and still count as
/// written now: the writer's clock second may run ahead of the reader's.
pub const FUTURE_TOLERANCE_SECS: u64 = 2;

/// Judges `status` at `now` (epoch seconds).
pub fn evaluate(status: &Status, now: u64, thresholds: &Thresholds) -> CheckOutcome {
    let status_age = now.saturating_sub(status.updated_at);
    let stale_after = thresholds
        .stale_after
        .unwrap_or_else(|| stale_after_default(status.write_interval));
    // A running supervisor rewrites the record every write interval, so one
    // dated later than now stays so only if nobody rewrites it: the clock
    // stepped back under a hung or stopped process, or the file is corrupt.
    // Taking it for fresh would report a hung daemon healthy.
    let ahead = status.updated_at.saturating_sub(now);
    if ahead > FUTURE_TOLERANCE_SECS {
        return CheckOutcome::new(
            NagiosCode::Critical,
            &format!(
                "status last updated {ahead}s in the future by pid {} (clock stepped back, or a corrupt status file): cannot tell whether haproxystats runs",
                status.pid
            ),
            &[format!("status_age=-{ahead}s;;{stale_after};0")],
        );
    }
    if status_age > stale_after {
        return CheckOutcome::new(
            NagiosCode::Critical,
            &format!(
                "haproxystats not running or hung: status last updated {status_age}s ago by pid {} (stale above {stale_after}s)",
                status.pid
            ),
            &[format!("status_age={status_age}s;;{stale_after};0")],
        );
    }

    let mut items = Vec::new();
    let mut perfdata = Vec::new();
    let counted = |name: &str, value: u64, unit: &str, limits: Limits| {
        let code = limits.judge(value);
        let perf = format!(
            "{name}={value}{unit};{};{};0",
            limits.warning, limits.critical
        );
        (code, annotation(code, limits, unit), perf)
    };

    let (code, note, perf) = counted("queue", status.queue_depth, "", thresholds.queue);
    items.push(Item {
        code,
        text: format!("queue {}{note}", status.queue_depth),
    });
    perfdata.push(perf);

    let age_item = |what: &str, label: &str, last: Option<u64>| {
        let age = now.saturating_sub(last.unwrap_or(status.started_at));
        let (code, note, perf) = counted(&format!("{label}_age"), age, "s", thresholds.age);
        let text = match last {
            Some(_) => format!("last {what} {age}s ago{note}"),
            None => format!("no {what} yet, started {age}s ago{note}"),
        };
        (Item { code, text }, perf)
    };
    let mut judged = Vec::new();
    if status.pulling {
        judged.push(age_item("pull", "pull", status.last_pull_ok));
    }
    judged.push(age_item("process", "process", status.last_process_ok));
    for sink in &status.sinks {
        let limits = thresholds.backlog.limits(sink);
        let (code, note, perf) =
            counted(&format!("{}_backlog", sink.name), sink.backlog, "", limits);
        let text = format!("{} backlog {} lines{note}", sink.name, sink.backlog);
        judged.push((Item { code, text }, perf));
        if let Some(reason) = &sink.cannot_deliver {
            items.push(Item {
                code: NagiosCode::Critical,
                text: format!("{} cannot deliver: {}", sink.name, one_line(reason)),
            });
        }
        judged.push(age_item(
            &format!("{} push", sink.name),
            &format!("{}_push", sink.name),
            sink.last_push_ok,
        ));
    }
    for (item, perf) in judged {
        items.push(item);
        perfdata.push(perf);
    }

    let dropped = status
        .sinks
        .iter()
        .map(|sink| (format!("{} dropped lines", sink.name), sink.dropped_lines));
    let counters = [
        ("quarantined".to_owned(), status.quarantined),
        ("bad messages".to_owned(), status.bad_messages),
        ("child restarts".to_owned(), status.child_restarts),
    ];
    for (text, value) in dropped.chain(counters) {
        if value > 0 {
            items.push(Item {
                code: NagiosCode::Ok,
                text: format!("{text} {value}"),
            });
        }
    }
    perfdata.push(format!("in_flight={};;;0", status.in_flight));
    for sink in &status.sinks {
        perfdata.push(format!(
            "{}_dropped_lines={}c;;;0",
            sink.name, sink.dropped_lines
        ));
    }
    for (name, value) in [
        ("quarantined", status.quarantined),
        ("child_restarts", status.child_restarts),
    ] {
        perfdata.push(format!("{name}={value}c;;;0"));
    }
    perfdata.push(format!("status_age={status_age}s;;{stale_after};0"));

    let code = items
        .iter()
        .map(|item| item.code)
        .max_by_key(|code| code.severity())
        .unwrap_or(NagiosCode::Ok);
    // The values in alert first, worst first: UIs cut long lines.
    items.sort_by_key(|item| std::cmp::Reverse(item.code.severity()));
    let text = items
        .iter()
        .map(|item| item.text.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    CheckOutcome::new(code, &text, &perfdata)
}

/// ` (critical above 180)` for a value in alert, nothing otherwise.
fn annotation(code: NagiosCode, limits: Limits, unit: &str) -> String {
    let mut note = String::new();
    match code {
        NagiosCode::Warning => {
            let _ = write!(note, " (warning above {}{unit})", limits.warning);
        }
        NagiosCode::Critical => {
            let _ = write!(note, " (critical above {}{unit})", limits.critical);
        }
        NagiosCode::Ok | NagiosCode::Unknown => {}
    }
    note
}

/// Nagios reads the first line only; `|` would start perfdata.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ").replace('|', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_001_000;

    fn every(lines: u64) -> SinkLimit {
        SinkLimit { sink: None, lines }
    }

    fn named(sink: &str, lines: u64) -> SinkLimit {
        SinkLimit {
            sink: Some(sink.to_owned()),
            lines,
        }
    }

    fn sink(name: &str, capacity: u64) -> SinkStatus {
        SinkStatus {
            name: name.to_owned(),
            backlog: 0,
            capacity,
            dropped_lines: 0,
            last_push_ok: Some(NOW - 2),
            cannot_deliver: None,
        }
    }

    fn thresholds() -> Thresholds {
        Thresholds {
            queue: Limits {
                warning: 10,
                critical: 100,
            },
            backlog: BacklogThresholds {
                warning: vec![every(1000)],
                critical: vec![every(5000)],
            },
            age: Limits {
                warning: 30,
                critical: 60,
            },
            stale_after: None,
        }
    }

    /// A healthy record written a second ago.
    fn healthy() -> Status {
        Status {
            pid: 77,
            started_at: NOW - 3600,
            updated_at: NOW - 1,
            write_interval: 1,
            pulling: true,
            queue_depth: 0,
            in_flight: 1,
            last_pull_ok: Some(NOW - 3),
            last_process_ok: Some(NOW - 2),
            child_restarts: 0,
            quarantined: 0,
            bad_messages: 0,
            sinks: vec![sink("graphite", 100_000), sink("kafka", 40_000)],
        }
    }

    #[test]
    fn healthy_is_ok_with_every_value_and_perfdata() {
        let outcome = evaluate(&healthy(), NOW, &thresholds());
        assert_eq!(outcome.code, NagiosCode::Ok);
        assert_eq!(
            outcome.line,
            "HAPROXYSTATS OK - queue 0, last pull 3s ago, last process 2s ago, \
             graphite backlog 0 lines, last graphite push 2s ago, \
             kafka backlog 0 lines, last kafka push 2s ago \
             | queue=0;10;100;0 pull_age=3s;30;60;0 process_age=2s;30;60;0 \
             graphite_backlog=0;1000;5000;0 graphite_push_age=2s;30;60;0 \
             kafka_backlog=0;1000;5000;0 kafka_push_age=2s;30;60;0 in_flight=1;;;0 \
             graphite_dropped_lines=0c;;;0 kafka_dropped_lines=0c;;;0 \
             quarantined=0c;;;0 child_restarts=0c;;;0 status_age=1s;;10;0"
        );
    }

    /// (name, change to the healthy record, expected state, text expected in the line)
    type Case = (&'static str, fn(&mut Status), NagiosCode, &'static str);

    #[test]
    fn each_value_is_judged_against_its_thresholds() {
        let cases: &[Case] = &[
            (
                "queue at warning",
                |s| s.queue_depth = 10,
                NagiosCode::Ok,
                "queue 10,",
            ),
            (
                "queue above warning",
                |s| s.queue_depth = 11,
                NagiosCode::Warning,
                "queue 11 (warning above 10)",
            ),
            (
                "queue above critical",
                |s| s.queue_depth = 101,
                NagiosCode::Critical,
                "queue 101 (critical above 100)",
            ),
            (
                "backlog above warning",
                |s| s.sinks[0].backlog = 1001,
                NagiosCode::Warning,
                "graphite backlog 1001 lines (warning above 1000)",
            ),
            (
                "backlog above critical",
                |s| s.sinks[1].backlog = 5001,
                NagiosCode::Critical,
                "kafka backlog 5001 lines (critical above 5000)",
            ),
            (
                "one sink down, the other fine",
                |s| {
                    s.sinks[1].backlog = 3000;
                    s.sinks[1].last_push_ok = Some(NOW - 120);
                },
                NagiosCode::Critical,
                "CRITICAL - last kafka push 120s ago (critical above 60s), \
                 kafka backlog 3000 lines (warning above 1000), queue 0, last pull 3s ago, \
                 last process 2s ago, graphite backlog 0 lines, last graphite push 2s ago",
            ),
            (
                "a sink that cannot deliver, however young its last push",
                |s| {
                    s.sinks[1].backlog = 20;
                    s.sinks[1].cannot_deliver =
                        Some("topic m does not exist or cannot be used".into());
                },
                NagiosCode::Critical,
                "CRITICAL - kafka cannot deliver: topic m does not exist or cannot be used, queue 0",
            ),
            (
                "pull old",
                |s| s.last_pull_ok = Some(NOW - 31),
                NagiosCode::Warning,
                "last pull 31s ago (warning above 30s)",
            ),
            (
                "pull very old",
                |s| s.last_pull_ok = Some(NOW - 61),
                NagiosCode::Critical,
                "last pull 61s ago (critical above 60s)",
            ),
            (
                "process old",
                |s| s.last_process_ok = Some(NOW - 45),
                NagiosCode::Warning,
                "last process 45s ago (warning above 30s)",
            ),
            (
                "push very old",
                |s| s.sinks[0].last_push_ok = Some(NOW - 600),
                NagiosCode::Critical,
                "last graphite push 600s ago (critical above 60s)",
            ),
            (
                "pull age ignored when not pulling",
                |s| {
                    s.pulling = false;
                    s.last_pull_ok = None;
                },
                NagiosCode::Ok,
                "queue 0, last process 2s ago, graphite backlog 0 lines",
            ),
            (
                "never pulled, just started",
                |s| {
                    s.started_at = NOW - 5;
                    s.last_pull_ok = None;
                },
                NagiosCode::Ok,
                "no pull yet, started 5s ago",
            ),
            (
                "never pushed for long",
                |s| s.sinks[1].last_push_ok = None,
                NagiosCode::Critical,
                "no kafka push yet, started 3600s ago (critical above 60s)",
            ),
            (
                "timestamps in the future count as now",
                |s| {
                    s.updated_at = NOW + FUTURE_TOLERANCE_SECS;
                    s.last_pull_ok = Some(NOW + 5);
                },
                NagiosCode::Ok,
                "last pull 0s ago",
            ),
            (
                "counters are shown, not judged",
                |s| {
                    s.sinks[1].dropped_lines = 7;
                    s.quarantined = 2;
                    s.child_restarts = 1;
                },
                NagiosCode::Ok,
                "kafka dropped lines 7, quarantined 2, child restarts 1",
            ),
            (
                "worst wins, alerts first",
                |s| {
                    s.queue_depth = 11;
                    s.sinks[0].last_push_ok = Some(NOW - 61);
                },
                NagiosCode::Critical,
                "CRITICAL - last graphite push 61s ago (critical above 60s), queue 11 (warning above 10), last pull",
            ),
            (
                "status at the stale limit is fresh",
                |s| s.updated_at = NOW - 10,
                NagiosCode::Ok,
                "status_age=10s;;10;0",
            ),
            (
                "stale status",
                |s| s.updated_at = NOW - 11,
                NagiosCode::Critical,
                "CRITICAL - haproxystats not running or hung: status last updated 11s ago by pid 77 (stale above 10s) | status_age=11s;;10;0",
            ),
            (
                "stale limit follows a slow writer",
                |s| {
                    s.write_interval = 5;
                    s.updated_at = NOW - 14;
                },
                NagiosCode::Ok,
                "status_age=14s;;15;0",
            ),
            (
                "stale hides the rest",
                |s| {
                    s.updated_at = NOW - 100;
                    s.queue_depth = 1000;
                },
                NagiosCode::Critical,
                "not running or hung",
            ),
        ];
        for (name, change, code, text) in cases {
            let mut status = healthy();
            change(&mut status);
            let outcome = evaluate(&status, NOW, &thresholds());
            assert_eq!(outcome.code, *code, "{name}: {}", outcome.line);
            assert!(
                outcome.line.contains(text),
                "{name}: {:?} not in {:?}",
                text,
                outcome.line
            );
            assert_eq!(outcome.line.lines().count(), 1, "{name}");
            assert_eq!(outcome.line.matches(" | ").count(), 1, "{name}");
        }
    }

    #[test]
    fn status_from_the_future_is_critical_naming_the_skew() {
        let mut status = healthy();
        status.updated_at = NOW + 3600;
        let outcome = evaluate(&status, NOW, &thresholds());
        assert_eq!(outcome.code, NagiosCode::Critical, "{}", outcome.line);
        assert!(
            outcome
                .line
                .contains("status last updated 3600s in the future by pid 77"),
            "{}",
            outcome.line
        );
        assert_eq!(outcome.line.lines().count(), 1);
        // A clock that ticks a little ahead of ours (the writer's second not
        // yet ours) is not a skew.
        status.updated_at = NOW + FUTURE_TOLERANCE_SECS;
        assert_eq!(evaluate(&status, NOW, &thresholds()).code, NagiosCode::Ok);
        status.updated_at = NOW + FUTURE_TOLERANCE_SECS + 1;
        assert_eq!(
            evaluate(&status, NOW, &thresholds()).code,
            NagiosCode::Critical
        );
    }

    #[test]
    fn explicit_stale_threshold_wins() {
        let mut status = healthy();
        status.updated_at = NOW - 4;
        let strict = Thresholds {
            stale_after: Some(3),
            ..thresholds()
        };
        assert_eq!(evaluate(&status, NOW, &strict).code, NagiosCode::Critical);
        assert_eq!(evaluate(&status, NOW, &thresholds()).code, NagiosCode::Ok);
    }

    #[test]
    fn defaults_follow_the_configuration() {
        let mut config = Config::defaults();
        config.pull.queue_size = 360;
        config.graphite.queue_size = 1_000_000;
        config.pull.pull_interval = std::time::Duration::from_secs(10);
        let t = Thresholds::from_config(&config);
        assert_eq!(
            t.queue,
            Limits {
                warning: 36,
                critical: 180
            }
        );
        assert_eq!(t.backlog, BacklogThresholds::default());
        assert_eq!(
            t.age,
            Limits {
                warning: 30,
                critical: 60
            }
        );
        assert_eq!(t.stale_after, None);
        assert_eq!(t.validate(), Ok(()));
        config.pull.pull_interval = std::time::Duration::from_millis(100);
        let t = Thresholds::from_config(&config);
        assert_eq!(
            t.age,
            Limits {
                warning: 1,
                critical: 1
            }
        );
    }

    #[test]
    fn each_sink_has_its_backlog_limits_from_its_capacity_or_the_flags() {
        let graphite = sink("graphite", 100_000);
        let kafka = sink("kafka", 2_000_000);
        let defaults = BacklogThresholds::default();
        let limits = |warning, critical| Limits { warning, critical };
        assert_eq!(defaults.limits(&graphite), limits(10_000, 50_000));
        assert_eq!(defaults.limits(&kafka), limits(200_000, 1_000_000));
        // A named limit wins over one for every sink, wherever it is given.
        let given = BacklogThresholds {
            warning: vec![named("kafka", 300_000), every(1_000)],
            critical: vec![every(90_000)],
        };
        assert_eq!(given.limits(&graphite), limits(1_000, 90_000));
        assert_eq!(given.limits(&kafka), limits(300_000, 90_000));
        // Judged each by its own: the same backlog is fine for one only.
        let mut status = healthy();
        status.sinks = vec![graphite, kafka];
        status.sinks[0].backlog = 150_000;
        status.sinks[1].backlog = 150_000;
        let mut t = thresholds();
        t.backlog = defaults;
        let outcome = evaluate(&status, NOW, &t);
        assert_eq!(outcome.code, NagiosCode::Critical, "{}", outcome.line);
        assert!(
            outcome
                .line
                .contains("graphite backlog 150000 lines (critical above 50000), queue 0"),
            "{}",
            outcome.line
        );
        assert!(
            outcome.line.contains("kafka backlog 150000 lines, "),
            "{}",
            outcome.line
        );
        assert!(
            outcome
                .line
                .contains("kafka_backlog=150000;200000;1000000;0"),
            "{}",
            outcome.line
        );
    }

    #[test]
    fn sink_limits_parse_from_the_command_line() {
        assert_eq!("5".parse(), Ok(every(5)));
        assert_eq!(" kafka = 7 ".parse(), Ok(named("kafka", 7)));
        for bad in ["", "x", "=5", "kafka=", "kafka=-1", "kafka=1.5"] {
            assert!(bad.parse::<SinkLimit>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn warning_above_critical_is_refused_naming_the_flags() {
        let mut t = thresholds();
        t.backlog.warning = vec![every(6000)];
        assert_eq!(
            t.validate(),
            Err("--backlog-warning 6000 is above --backlog-critical 5000".to_owned())
        );
        t.backlog.warning = vec![named("kafka", 10)];
        t.backlog.critical = vec![every(5), named("kafka", 20)];
        assert_eq!(t.validate(), Ok(()), "kafka's own critical applies");
        t.backlog.critical = vec![named("kafka", 5)];
        assert_eq!(
            t.validate(),
            Err("--backlog-warning kafka=10 is above --backlog-critical kafka=5".to_owned())
        );
    }

    #[test]
    fn unreadable_status_file_is_critical_when_missing_else_unknown() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = Status::read(&dir.path().join("gone")).expect_err("missing");
        let outcome = CheckOutcome::unreadable(&missing);
        assert_eq!(outcome.code, NagiosCode::Critical);
        assert!(
            outcome.line.starts_with(
                "HAPROXYSTATS CRITICAL - haproxystats not running: cannot read status file"
            ),
            "{}",
            outcome.line
        );
        let garbled = dir.path().join("garbled");
        std::fs::write(&garbled, "x|y\n").expect("write");
        let outcome = CheckOutcome::unreadable(&Status::read(&garbled).expect_err("garbled"));
        assert_eq!(outcome.code, NagiosCode::Unknown);
        assert!(
            outcome
                .line
                .starts_with("HAPROXYSTATS UNKNOWN - status file"),
            "{}",
            outcome.line
        );
        assert!(!outcome.line.contains('|'), "{}", outcome.line);
    }

    #[test]
    fn unknown_is_one_line() {
        let outcome = CheckOutcome::unknown("bad\nthing");
        assert_eq!(outcome.code.exit_code(), 3);
        assert_eq!(outcome.line, "HAPROXYSTATS UNKNOWN - bad thing");
    }
}
