//! Signals and exit codes of the daemon (src/signals.rs,
//! src/commands/daemon.rs, actors.md "Lifecycle"): SIGTERM, SIGINT and
//! SIGHUP drain and exit 0; a second signal during the drain quits at once;
//! the drain is bounded by 10 s; a child crashing more than five times a
//! minute makes the process exit 1 (src/supervisor/restart.rs).

mod support;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::Haproxystats;
use support::fake_graphite::{Behaviour, FakeGraphite};
use support::haproxystats::fault_injection_bin;
use support::process::wait_until;
use support::snapshots::{Shape, publish_snapshot};

/// Big enough (some 300 KB of lines) that a peer that never reads with a
/// 4 KiB receive buffer cannot take it in.
const SHAPE: Shape = Shape {
    processes: 2,
    frontends: 20,
    backends: 20,
    servers: 8,
};

const DELIVERED: &str = "stopped; every snapshot delivered";
const KEPT: &str = "stopped; snapshots not yet delivered";

/// `haproxystats process` on one snapshot, delivering to `graphite`.
struct Daemon {
    root: tempfile::TempDir,
    daemon: Haproxystats,
}

impl Daemon {
    fn start(graphite: &FakeGraphite) -> Daemon {
        let root = tempfile::tempdir().expect("tempdir");
        let src = root.path().join("incoming");
        fs::create_dir(&src).expect("src-dir");
        publish_snapshot(&src, 1_700_000_000, 1, SHAPE);
        let conf = root.path().join("haproxystats.conf");
        fs::write(
            &conf,
            format!(
                "[paths]\nbase-dir = {root}\n[process]\nsrc-dir = {src}\nworkers = 1\n\
                 [graphite]\nport = {port}\nnamespace = test\nprefix-hostname = false\n\
                 write-timeout = 1\n",
                root = root.path().display(),
                src = src.display(),
                port = graphite.port(),
            ),
        )
        .expect("write conf");
        let daemon = Haproxystats::start(&["process"], &conf, &root.path().join("daemon.log"));
        Daemon { root, daemon }
    }

    fn src(&self) -> PathBuf {
        self.root.path().join("incoming")
    }

    fn snapshots_left(&self) -> usize {
        fs::read_dir(self.src()).expect("src-dir").count()
    }

    /// Waits for a line of the log containing `text`.
    fn wait_log(&self, text: &str, timeout: Duration) {
        wait_until(
            timeout,
            &format!("log line {text:?}"),
            || self.daemon.log().contains(text).then_some(()),
            || self.daemon.log(),
        );
    }

    fn signal(&mut self, signal: libc::c_int) {
        self.daemon.proc().signal(signal);
    }

    /// Waits for the exit, which must come within `limit` and be 0;
    /// answers the log.
    fn exits_0_within(&mut self, what: &str, limit: Duration) -> String {
        let started = Instant::now();
        let status = self
            .daemon
            .proc()
            .wait_exit(limit + Duration::from_secs(10));
        let took = started.elapsed();
        let log = self.daemon.log();
        eprintln!("{what}: exit {status:?} after {took:?}");
        let status = status.unwrap_or_else(|| panic!("{what}: no exit; log:\n{log}"));
        assert!(took < limit, "{what}: exit after {took:?}; log:\n{log}");
        assert_eq!(status.code(), Some(0), "{what}; log:\n{log}");
        log
    }

    fn last_log_line(&self) -> String {
        self.daemon
            .log()
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Each stop signal: the snapshot, delivered, is gone; the stop says so
/// and names the signal; exit 0.
fn stop_drains_and_exits_0(signal: libc::c_int, name: &str) {
    let graphite = FakeGraphite::start();
    let mut daemon = Daemon::start(&graphite);
    wait_until(
        Duration::from_secs(20),
        "the snapshot delivered and removed",
        || (daemon.snapshots_left() == 0).then_some(()),
        || daemon.daemon.log(),
    );
    daemon.signal(signal);
    let log = daemon.exits_0_within(name, Duration::from_secs(5));
    assert!(
        log.lines()
            .any(|l| l.contains("stopping:") && l.contains(&format!("signal=\"{name}\""))),
        "{name} not named in the stop; log:\n{log}"
    );
    assert!(
        daemon.last_log_line().contains(DELIVERED),
        "{name}: last line {:?}; log:\n{log}",
        daemon.last_log_line()
    );
}

#[test]
fn sigterm_drains_and_exits_0() {
    stop_drains_and_exits_0(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_drains_and_exits_0() {
    stop_drains_and_exits_0(libc::SIGINT, "SIGINT");
}

/// SIGHUP is a stop like SIGTERM, not a reload (src/signals.rs: the
/// configuration is read once; systemd restarts the unit to change it).
#[test]
fn sighup_drains_and_exits_0() {
    stop_drains_and_exits_0(libc::SIGHUP, "SIGHUP");
}

/// A daemon whose snapshot was processed into a peer that never reads: its
/// lines can never be confirmed, so a drain would last its whole bound.
fn stalled_daemon() -> (FakeGraphite, Daemon) {
    let graphite = FakeGraphite::start_with(|_| Behaviour::Stall, Some(4096));
    let daemon = Daemon::start(&graphite);
    daemon.wait_log("snapshot processed", Duration::from_secs(20));
    wait_until(
        Duration::from_secs(5),
        "the sink connected to the stalled peer",
        || (graphite.accepted() > 0).then_some(()),
        || daemon.daemon.log(),
    );
    (graphite, daemon)
}

#[test]
fn the_drain_is_bounded_by_10_s_and_keeps_what_was_not_confirmed() {
    let (_graphite, mut daemon) = stalled_daemon();
    daemon.signal(libc::SIGTERM);
    // SHUTDOWN_TIMEOUT, and a margin for a loaded machine.
    let log = daemon.exits_0_within("drain against a stalled peer", Duration::from_secs(12));
    assert_eq!(daemon.snapshots_left(), 1, "log:\n{log}");
    let last = daemon.last_log_line();
    assert!(
        last.contains(KEPT) && last.contains("kept_snapshots=1"),
        "last line {last:?}; log:\n{log}"
    );
}

#[test]
fn a_second_signal_during_the_drain_quits_at_once() {
    let (_graphite, mut daemon) = stalled_daemon();
    daemon.signal(libc::SIGTERM);
    daemon.wait_log("stopping:", Duration::from_secs(5));
    daemon.signal(libc::SIGINT);
    // The drain alone would last 10 s (the test above).
    let log = daemon.exits_0_within("second signal", Duration::from_secs(2));
    assert!(log.contains("second signal: quitting now"), "log:\n{log}");
    assert_eq!(daemon.snapshots_left(), 1, "log:\n{log}");
}

/// The fault-injection build: each SIGUSR2 crashes the next child (puller,
/// watcher, graphite sink). Five restarts within a minute are allowed; the
/// sixth crash exceeds the restart intensity and the process exits 1, for
/// systemd to restart the unit.
#[test]
fn a_sixth_child_crash_within_a_minute_exits_1() {
    let bin = fault_injection_bin();
    let root = tempfile::tempdir().expect("tempdir");
    let sockets = root.path().join("sockets");
    fs::create_dir(&sockets).expect("socket dir");
    let graphite = FakeGraphite::start();
    let conf = root.path().join("haproxystats.conf");
    fs::write(
        &conf,
        format!(
            "[paths]\nbase-dir = {root}\n\
             [pull]\nsocket-dir = {sockets}\ndst-dir = {root}/incoming\n\
             tmp-dst-dir = {root}/incoming.tmp\n\
             [process]\nsrc-dir = {root}/incoming\n\
             [graphite]\nport = {port}\n",
            root = root.path().display(),
            sockets = sockets.display(),
            port = graphite.port(),
        ),
    )
    .expect("write conf");
    let log = root.path().join("daemon.log");
    let mut daemon = Haproxystats::start_bin(&bin, &[], &conf, &log);
    let restarted = |daemon: &Haproxystats| daemon.log().matches("child restarted").count();
    wait_until(
        Duration::from_secs(10),
        "fault injection armed",
        || {
            daemon
                .log()
                .contains("fault injection enabled")
                .then_some(())
        },
        || daemon.log(),
    );
    let started = Instant::now();
    for crash in 1..=5 {
        daemon.proc().signal(libc::SIGUSR2);
        wait_until(
            Duration::from_secs(15),
            &format!("restart {crash}"),
            || (restarted(&daemon) == crash).then_some(()),
            || daemon.log(),
        );
        assert!(daemon.proc().is_running(), "exited after {crash} crashes");
    }
    daemon.proc().signal(libc::SIGUSR2);
    let status = daemon.proc().wait_exit(Duration::from_secs(10));
    let text = daemon.log();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the crashes did not fit in the window"
    );
    assert_eq!(status.and_then(|s| s.code()), Some(1), "log:\n{text}");
    assert!(
        text.contains("child restarts within") && text.contains("giving up"),
        "log:\n{text}"
    );
    assert_eq!(restarted(&daemon), 5, "log:\n{text}");
}
