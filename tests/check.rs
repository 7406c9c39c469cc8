//! `haproxystats check` as Nagios runs it: the binary against status files
//! written in a temp dir (the configuration's base-dir), one line on stdout,
//! the state as exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use haproxystats::common::unix_now;
use haproxystats::config::{self, ConfigSources};
use haproxystats::health::{
    Notifier, Reporter, STATUS_FILE_NAME, SinkStatus, Status, StatusWriter, status_path,
};

const BIN: &str = env!("CARGO_BIN_EXE_haproxystats");

const OK: i32 = 0;
const WARNING: i32 = 1;
const CRITICAL: i32 = 2;
const UNKNOWN: i32 = 3;

/// A base-dir and a configuration pointing at it.
struct Setup {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl Setup {
    /// `pull-interval = 10`, `[pull] queue-size = 100`: default age limits
    /// 30 s / 60 s, queue 10 / 50. Backlog limits come from each sink's
    /// capacity in the status file (see [`healthy`]).
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let conf = dir.path().join("haproxystats.conf");
        let text = format!(
            "[paths]\nbase-dir = {}\n[pull]\npull-interval = 10\nqueue-size = 100\n\
             [graphite]\nqueue-size = 1000\n",
            dir.path().display()
        );
        write(&conf, &text);
        Setup { dir, conf }
    }

    fn status_file(&self) -> PathBuf {
        self.dir.path().join(STATUS_FILE_NAME)
    }

    /// Writes `status` the way the supervisor does.
    fn write_status(&self, status: &Status) {
        StatusWriter::new(self.status_file())
            .write(status)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `haproxystats -f CONF check ARGS...`
    fn check(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("-f")
            .arg(&self.conf)
            .arg("check")
            .args(args)
            .env_remove("HAPROXYSTATS_LOG")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A sink with `capacity` lines of backlog (default limits: a tenth and
/// half of it) that delivered a second ago.
fn sink(name: &str, capacity: u64) -> SinkStatus {
    SinkStatus {
        name: name.to_owned(),
        backlog: 0,
        capacity,
        dropped_lines: 0,
        last_push_ok: Some(now() - 1),
        cannot_deliver: None,
    }
}

/// A supervisor that started an hour ago and is doing fine, with Graphite
/// (backlog limits 100 / 500).
fn healthy() -> Status {
    let now = now();
    Status {
        updated_at: now,
        last_pull_ok: Some(now - 2),
        last_process_ok: Some(now - 1),
        sinks: vec![sink("graphite", 1000)],
        ..Status::starting(4242, now - 3600, true)
    }
}

/// Asserts the exit code and the Nagios shape of the output (one line on
/// stdout starting with the state); returns the line.
fn expect(output: &Output, code: i32, label: &str) -> String {
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(code), "{output:?}");
    assert_eq!(out.lines().count(), 1, "one line expected: {out:?}");
    let prefix = format!("HAPROXYSTATS {label} - ");
    assert!(
        out.starts_with(&prefix),
        "{out:?} should start with {prefix:?}"
    );
    out.trim_end().to_owned()
}

#[test]
fn healthy_supervisor_is_ok_with_perfdata() {
    let setup = Setup::new();
    setup.write_status(&healthy());
    let line = expect(&setup.check(&[]), OK, "OK");
    // Ages may have grown by a second between write and check.
    assert!(line.contains("queue 0, last pull "), "{line}");
    assert!(line.contains(", graphite backlog 0 lines, "), "{line}");
    assert!(line.contains(" | queue=0;10;50;0 pull_age="), "{line}");
    assert!(line.contains(" graphite_backlog=0;100;500;0 "), "{line}");
    assert!(line.contains("s;30;60;0 "), "{line}");
}

/// What the supervisor keeps ([`Reporter`]), built from the same
/// configuration file, writes where `check` looks.
#[test]
fn the_reporter_writes_what_check_reads() {
    let setup = Setup::new();
    let loaded = config::load(
        &ConfigSources {
            file: setup.conf.clone(),
            file_is_explicit: true,
            dir: None,
        },
        &haproxystats::sink::options(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let now = unix_now();
    // As Reporter::from_config, without systemd (whatever the test's environment).
    let path = status_path(&loaded.config);
    assert_eq!(path, setup.status_file());
    let mut health = Reporter::new(path.clone(), Notifier::disabled(), true, now);
    health.ready(now);
    // Started just now, nothing pulled yet: not an alert.
    let line = expect(&setup.check(&[]), OK, "OK");
    assert!(line.contains("no pull yet"), "{line}");

    health.status_mut().queue_depth = 51;
    health.status_mut().last_pull_ok = Some(now);
    health.tick(now);
    let line = expect(&setup.check(&[]), CRITICAL, "CRITICAL");
    assert!(line.contains("queue 51 (critical above 50)"), "{line}");
    health.stopping(now);

    // A second reporter (a restart) replaces the file.
    let mut again = Reporter::new(path, Notifier::disabled(), false, now);
    again.tick(now);
    let line = expect(&setup.check(&[]), OK, "OK");
    assert!(!line.contains("pull"), "{line}");
}

#[test]
fn the_format_written_by_hand_is_read() {
    let setup = Setup::new();
    let now = now();
    let text = format!(
        "pid=1\nstarted_at={s}\nupdated_at={now}\nwrite_interval=1\npulling=false\n\
         queue_depth=2\nin_flight=0\nlast_pull_ok=never\nlast_process_ok={now}\n\
         child_restarts=0\nquarantined=0\nsinks=kafka\nsink.kafka.backlog=3\n\
         sink.kafka.capacity=100\nsink.kafka.dropped_lines=0\nsink.kafka.last_push_ok={now}\n",
        s = now - 3600
    );
    write(&setup.status_file(), &text);
    // `haproxystats process`: the pull age is not judged (it never pulled).
    let line = expect(&setup.check(&[]), OK, "OK");
    assert!(!line.contains("pull"), "{line}");
    assert!(line.contains("queue 2,"), "{line}");
    assert!(line.contains("kafka backlog 3 lines"), "{line}");
}

#[test]
fn thresholds_from_flags_and_from_the_configuration_give_warning() {
    let setup = Setup::new();
    let mut status = healthy();
    status.queue_depth = 6;
    setup.write_status(&status);
    expect(&setup.check(&[]), OK, "OK");
    let line = expect(&setup.check(&["--queue-warning", "5"]), WARNING, "WARNING");
    assert!(line.contains("queue 6 (warning above 5)"), "{line}");

    // 3 × pull-interval (10 s) from the configuration.
    status.sinks[0].last_push_ok = Some(now() - 45);
    setup.write_status(&status);
    let line = expect(&setup.check(&[]), WARNING, "WARNING");
    assert!(line.contains("(warning above 30s)"), "{line}");
    expect(
        &setup.check(&["--age-warning", "100", "--age-critical", "200"]),
        OK,
        "OK",
    );
}

#[test]
fn far_behind_is_critical() {
    let setup = Setup::new();
    let mut status = healthy();
    status.sinks[0].backlog = 501;
    setup.write_status(&status);
    let line = expect(&setup.check(&[]), CRITICAL, "CRITICAL");
    assert!(
        line.contains("graphite backlog 501 lines (critical above 500)"),
        "{line}"
    );
}

/// Graphite and Kafka, each judged by its own backlog limits and its own
/// last push: Kafka down does not hide behind a healthy Graphite.
#[test]
fn each_sink_is_judged_on_its_own() {
    let setup = Setup::new();
    let mut status = healthy();
    status.sinks.push(sink("kafka", 2_000_000));
    status.sinks[1].backlog = 150_000;
    setup.write_status(&status);
    // 150000 is below a tenth of Kafka's capacity, above half of Graphite's.
    let line = expect(&setup.check(&[]), OK, "OK");
    assert!(line.contains("kafka backlog 150000 lines,"), "{line}");
    let line = expect(
        &setup.check(&["--backlog-warning", "kafka=100000"]),
        WARNING,
        "WARNING",
    );
    assert!(
        line.contains("kafka backlog 150000 lines (warning above 100000)"),
        "{line}"
    );
    // A limit for every sink applies to Kafka unless it has its own.
    expect(
        &setup.check(&["--backlog-critical", "1000"]),
        CRITICAL,
        "CRITICAL",
    );
    expect(
        &setup.check(&[
            "--backlog-critical",
            "1000",
            "--backlog-critical",
            "kafka=200000",
        ]),
        OK,
        "OK",
    );
    // Kafka unreachable for two minutes while Graphite delivers.
    status.sinks[1].last_push_ok = Some(now() - 120);
    setup.write_status(&status);
    let line = expect(&setup.check(&[]), CRITICAL, "CRITICAL");
    assert!(
        line.contains("HAPROXYSTATS CRITICAL - last kafka push 12"),
        "{line}"
    );
    assert!(
        line.contains("last graphite push 1s ago") || line.contains("last graphite push 2s ago"),
        "{line}"
    );
    assert!(line.contains(" kafka_push_age=12"), "{line}");
}

#[test]
fn stale_status_means_not_running_or_hung() {
    let setup = Setup::new();
    let mut status = healthy();
    status.updated_at = now() - 60;
    setup.write_status(&status);
    let line = expect(&setup.check(&[]), CRITICAL, "CRITICAL");
    assert!(line.contains("not running or hung"), "{line}");
    assert!(line.contains("pid 4242"), "{line}");
    expect(&setup.check(&["--stale-critical", "120"]), OK, "OK");
}

#[test]
fn status_from_the_future_is_critical_naming_the_skew() {
    let setup = Setup::new();
    let mut status = healthy();
    // A hung supervisor after the clock stepped back an hour, or a corrupt file.
    status.updated_at = now() + 3600;
    setup.write_status(&status);
    let line = expect(&setup.check(&[]), CRITICAL, "CRITICAL");
    assert!(line.contains("in the future"), "{line}");
    assert!(line.contains("pid 4242"), "{line}");
    // The skew is named: 3600 s, give or take the second the check takes.
    assert!(
        line.contains(" 3600s ") || line.contains(" 3599s "),
        "{line}"
    );
}

#[test]
fn missing_status_file_is_critical_and_names_it() {
    let setup = Setup::new();
    let line = expect(&setup.check(&[]), CRITICAL, "CRITICAL");
    assert!(
        line.contains(&*setup.status_file().to_string_lossy()),
        "{line}"
    );
}

#[test]
fn garbled_status_file_is_unknown() {
    let setup = Setup::new();
    write(&setup.status_file(), "pid=1\nqueue_depth=lots\n");
    let line = expect(&setup.check(&[]), UNKNOWN, "UNKNOWN");
    assert!(line.contains("garbled"), "{line}");
}

#[test]
fn bad_configuration_and_bad_flags_are_unknown_not_usage_errors() {
    let setup = Setup::new();
    setup.write_status(&healthy());
    let line = expect(
        &setup.check(&["--queue-warning", "many"]),
        UNKNOWN,
        "UNKNOWN",
    );
    assert!(line.contains("many"), "{line}");
    expect(&setup.check(&["--no-such-flag"]), UNKNOWN, "UNKNOWN");
    let line = expect(
        &setup.check(&["--age-warning", "90", "--age-critical", "60"]),
        UNKNOWN,
        "UNKNOWN",
    );
    assert!(
        line.contains("--age-warning 90 is above --age-critical 60"),
        "{line}"
    );

    write(&setup.conf, "[pull]\npull-interval = soon\n");
    let line = expect(&setup.check(&[]), UNKNOWN, "UNKNOWN");
    assert!(line.contains("pull-interval"), "{line}");
}

#[test]
fn help_documents_the_thresholds_and_exit_codes() {
    let output = Command::new(BIN)
        .args(["check", "--help"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let help = String::from_utf8_lossy(&output.stdout);
    for text in [
        "--queue-warning",
        "--queue-critical",
        "--backlog-warning",
        "--backlog-critical",
        "--age-warning",
        "--age-critical",
        "--stale-critical",
        "haproxystats.status",
        "3 (UNKNOWN)",
    ] {
        assert!(help.contains(text), "{text:?} missing from:\n{help}");
    }
}

/// Issue 24 item 6: a sink that cannot deliver (its topic does not exist)
/// is CRITICAL with its reason, whatever its backlog and last push say: a
/// full backlog pauses central, and that must not be a silent pause.
#[test]
fn a_sink_that_cannot_deliver_is_critical_with_its_reason() {
    let setup = Setup::new();
    let mut status = healthy();
    let mut kafka = sink("kafka", 1_000_000);
    kafka.backlog = 12;
    kafka.cannot_deliver = Some(
        "topic haproxystats.metrics does not exist or cannot be used (Broker: Unknown topic or partition)"
            .into(),
    );
    status.sinks.push(kafka);
    setup.write_status(&status);
    let line = expect(&setup.check(&[]), CRITICAL, "CRITICAL");
    assert!(
        line.starts_with(
            "HAPROXYSTATS CRITICAL - kafka cannot deliver: topic haproxystats.metrics does not exist"
        ),
        "{line}"
    );
    status.sinks[1].cannot_deliver = None;
    setup.write_status(&status);
    expect(&setup.check(&[]), OK, "OK");
}
