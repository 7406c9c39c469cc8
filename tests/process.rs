//! `haproxystats process`: snapshots already in src-dir are processed oldest
//! first, their lines reach Graphite, processed directories are removed, an
//! unusable one is quarantined with its reason, and SIGTERM drains and exits 0.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Haproxystats;
use support::fake_graphite::FakeGraphite;
use support::haproxystats::BIN;

fn gen_snapshot(out: &Path, timestamp: u64, seed: u32) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/gen_snapshot.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg("--out")
        .arg(out)
        .args([
            "--processes",
            "2",
            "--frontends",
            "3",
            "--backends",
            "3",
            "--servers",
            "2",
        ])
        .args([
            "--timestamp",
            &timestamp.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("python3 {}: {e}", script.display()));
    assert!(status.success(), "gen_snapshot.py failed");
}

fn wait_until(what: &str, timeout: Duration, log: impl Fn() -> String, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "{what} within {timeout:?}; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn snapshots_reach_graphite_then_leave_and_bad_ones_are_quarantined() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let src = root.path().join("incoming");
    fs::create_dir(&src).unwrap_or_else(|e| panic!("{e}"));
    for (i, ts) in [1_700_000_020u64, 1_700_000_010, 1_700_000_000]
        .iter()
        .enumerate()
    {
        gen_snapshot(&src, *ts, i as u32 + 1);
    }
    // Garbage only: nothing usable.
    let bad = src.join("1700000005");
    fs::create_dir(&bad).unwrap_or_else(|e| panic!("{e}"));
    fs::write(bad.join("x.sock_stat"), b"\x00\x01garbage\n").unwrap_or_else(|e| panic!("{e}"));

    let graphite = FakeGraphite::start();
    let port = graphite.port();
    let conf = root.path().join("haproxystats.conf");
    fs::write(
        &conf,
        format!(
            "[process]\nsrc-dir = {}\nworkers = 2\n\n[graphite]\nserver = 127.0.0.1\nport = {port}\n\
             namespace = test\nprefix-hostname = false\n",
            src.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut daemon = Haproxystats::start(&["process"], &conf, &root.path().join("process.log"));

    let remaining = || fs::read_dir(&src).expect("src-dir").count();
    wait_until(
        "src-dir emptied",
        Duration::from_secs(15),
        || daemon.log(),
        || remaining() == 0,
    );
    let timestamps = || -> BTreeSet<String> {
        graphite
            .lines()
            .iter()
            .filter_map(|x| x.rsplit(' ').next().map(str::to_string))
            .collect()
    };
    wait_until(
        "lines of all three snapshots received",
        Duration::from_secs(10),
        || daemon.log(),
        || timestamps().len() == 3,
    );
    assert_eq!(
        timestamps(),
        ["1700000000", "1700000010", "1700000020"]
            .map(String::from)
            .into(),
    );
    let received = graphite.lines();
    assert!(
        received
            .iter()
            .any(|l| l.starts_with("test.haproxy.frontend.fe00000.stot ")),
        "no frontend line among {} lines",
        received.len()
    );
    assert!(
        received
            .iter()
            .any(|l| l.starts_with("test.haproxy.haproxystats.GraphiteBacklog "))
    );
    assert!(received.len() > 100, "only {} lines", received.len());

    let failed = root.path().join("incoming.failed");
    assert!(
        failed.join("1700000005/x.sock_stat").is_file(),
        "not quarantined"
    );
    let reason = fs::read_to_string(failed.join("1700000005.reason")).unwrap_or_default();
    assert!(reason.contains("nothing usable"), "{reason}");
    assert!(daemon.log().contains("quarantined"), "{}", daemon.log());

    assert_eq!(
        daemon.terminate(Duration::from_secs(15)),
        Some(0),
        "log:\n{}",
        daemon.log()
    );
}

#[test]
fn a_missing_src_dir_fails_at_start_with_one_line() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let conf = root.path().join("haproxystats.conf");
    fs::write(&conf, "[process]\nsrc-dir = /nonexistent/incoming\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(BIN)
        .args(["process", "-f"])
        .arg(&conf)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("src-dir") && err.contains("/nonexistent/incoming"),
        "{err}"
    );
}

/// With Graphite off and local-store the only sink, a snapshot leaves
/// src-dir once local-store answered for it, not before: one whose write is
/// held up (its temporary file is a FIFO nobody reads yet) stays until the
/// write ends. That write then fails (a FIFO cannot be synced): counted as
/// dropped lines and the snapshot removed all the same, since a full disk
/// must not keep snapshots forever.
#[test]
fn with_local_store_alone_a_snapshot_leaves_src_dir_once_stored() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let src = root.path().join("incoming");
    let store = root.path().join("local-store");
    fs::create_dir(&src).unwrap_or_else(|e| panic!("{e}"));
    gen_snapshot(&src, 1_700_000_000, 1);
    gen_snapshot(&src, 1_700_000_010, 2);
    let held = store.join("1700000010");
    fs::create_dir_all(&held).unwrap_or_else(|e| panic!("{e}"));
    let fifo = held.join(".stats.tmp");
    let made = Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", fifo.display());
    let conf = root.path().join("haproxystats.conf");
    // Nothing listens on port 1: a Graphite sink would hold every snapshot.
    fs::write(
        &conf,
        format!(
            "[process]\nsrc-dir = {}\nworkers = 1\n\n[graphite]\nenabled = false\nport = 1\n\
             namespace = test\nprefix-hostname = false\n\n[local-store]\ndir = {}\n",
            src.display(),
            store.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut daemon = Haproxystats::start(&["process"], &conf, &root.path().join("process.log"));

    let first = store.join("1700000000/stats");
    wait_until(
        "the first snapshot stored and removed",
        Duration::from_secs(15),
        || daemon.log(),
        || first.is_file() && !src.join("1700000000").exists(),
    );
    let stored = fs::read_to_string(&first).unwrap_or_default();
    assert!(stored.lines().count() > 100, "{stored}");
    assert!(
        stored.contains("test.haproxy.haproxystats.QueueDepth "),
        "self metrics are stored too"
    );
    wait_until(
        "the second snapshot processed",
        Duration::from_secs(15),
        || daemon.log(),
        || daemon.log().matches("snapshot processed").count() >= 2,
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        src.join("1700000010").is_dir(),
        "removed while its local-store write was held up; log:\n{}",
        daemon.log()
    );

    let reader = std::thread::spawn(move || fs::read(&fifo).unwrap_or_default());
    wait_until(
        "the second snapshot removed once its write ended",
        Duration::from_secs(15),
        || daemon.log(),
        || !src.join("1700000010").exists(),
    );
    let written = reader.join().unwrap_or_default();
    assert!(written.len() > 1000, "the lines went to the FIFO");
    assert!(
        daemon.log().contains("local-store write failed"),
        "{}",
        daemon.log()
    );
    assert_eq!(
        daemon.terminate(Duration::from_secs(15)),
        Some(0),
        "log:\n{}",
        daemon.log()
    );
}
