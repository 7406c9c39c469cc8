//! Disk full: the whole base dir on a tiny tmpfs (in a private mount
//! namespace: `unshare --user --map-root-user --mount`, no root needed).
//! local-store fills it; pulls and local-store writes then fail with ENOSPC
//! — logged, nothing partial published, no temporary file left, no crash —
//! and once space is freed, pulling, processing, delivery and local-store
//! resume without a restart.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::fake_graphite::FakeGraphite;
use support::process::Proc;
use support::{FleetOptions, HaproxyFleet};

const STAT: &str = include_str!("fixtures/stat/2.6_show_stat.csv");
const INFO: &str = include_str!("fixtures/stat/2.5.5_show_info.txt");

/// The timestamp of the snapshot the test hands over on a full disk.
const STAGED: &str = "1700000000";

/// The local-store files (`<ts>/stats`) present now.
fn store_files(store: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(store)
        .unwrap_or_else(|e| panic!("{}: {e}", store.display()))
        .map(|entry| entry.expect("local-store entry").path().join("stats"))
        .filter(|file| file.is_file())
        .collect()
}

fn wait(what: &str, timeout: Duration, log: &Path, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "{what} within {timeout:?}; log:\n{}",
            support::process::tail(log, 6000)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_full_disk_fails_pulls_cleanly_and_everything_resumes_when_space_is_freed() {
    let fleet = HaproxyFleet::start(2, FleetOptions::default());
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let base = root.path().join("base");
    std::fs::create_dir(&base).unwrap_or_else(|e| panic!("{e}"));
    let graphite = FakeGraphite::start();
    let port = graphite.port();
    let conf = root.path().join("haproxystats.conf");
    std::fs::write(
        &conf,
        format!(
            "[paths]\nbase-dir = {base}\n\
             [pull]\nsocket-dir = {sockets}\npull-interval = 1\npull-timeout = 0.9\n\
             dst-dir = ${{paths:base-dir}}/incoming\ntmp-dst-dir = ${{paths:base-dir}}/incoming.tmp\n\
             [process]\nsrc-dir = ${{paths:base-dir}}/incoming\n\
             [graphite]\nport = {port}\nnamespace = full\nprefix-hostname = false\n\
             [local-store]\ndir = ${{paths:base-dir}}/local-store\n",
            base = base.display(),
            sockets = fleet.socket_dir().display(),
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let log = root.path().join("daemon.log");
    // A 256 KiB tmpfs over base-dir, seen only by the daemon.
    let script = format!(
        "mount -t tmpfs -o size=256k tmpfs '{}' && exec '{}' -f '{}'",
        base.display(),
        support::haproxystats::BIN,
        conf.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .env_remove("HAPROXYSTATS_LOG");
    let mut daemon = Proc::spawn("haproxystats (unshare)", &mut cmd, &log);
    // The daemon's view of base-dir, through its mount namespace.
    let inside: PathBuf = PathBuf::from(format!("/proc/{}/root", daemon.pid()))
        .join(base.strip_prefix("/").unwrap_or_else(|e| panic!("{e}")));
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();

    wait(
        "the first snapshot to reach graphite",
        Duration::from_secs(20),
        &log,
        || !graphite.lines().is_empty(),
    );
    // Once the disk is full, pulls fail and the processing half has nothing
    // to write to local-store: a snapshot staged now, outside src-dir, is
    // handed over then.
    let staged = inside.join("staging").join(STAGED);
    std::fs::create_dir_all(&staged).unwrap_or_else(|e| panic!("{}: {e}", staged.display()));
    std::fs::write(staged.join("lb1.sock_stat"), STAT).unwrap_or_else(|e| panic!("stat: {e}"));
    std::fs::write(staged.join("lb1.sock_info"), INFO).unwrap_or_else(|e| panic!("info: {e}"));
    // local-store alone leaves whatever its last failed write did not need,
    // and each processed snapshot frees its space again before the next
    // pull: keep a filler file eating what is freed, so the disk is full.
    let filler = inside.join("filler");
    let top_up = || {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&filler)
            .unwrap_or_else(|e| panic!("{}: {e}", filler.display()));
        while file.write_all(&[0u8; 4096]).is_ok() {}
    };
    let failed_on_full_disk = |what: &str, path: &str| {
        read_log()
            .lines()
            .any(|l| l.contains(what) && l.contains(path) && l.contains("No space left on device"))
    };
    wait(
        "the disk to fill up and a pull to fail",
        Duration::from_secs(90),
        &log,
        || {
            top_up();
            failed_on_full_disk("pull cycle failed", "incoming.tmp/")
        },
    );
    // A rename needs no space: the snapshot is processed on the full disk.
    std::fs::rename(&staged, inside.join("incoming").join(STAGED))
        .unwrap_or_else(|e| panic!("hand over {}: {e}", staged.display()));
    wait(
        "the local-store write of the handed-over snapshot to fail",
        Duration::from_secs(20),
        &log,
        || {
            top_up();
            failed_on_full_disk("local-store write failed", &format!("/{STAGED}/"))
        },
    );
    // The failed write left neither its temporary file nor a partial file.
    let store = inside.join("local-store");
    let written = store.join(STAGED);
    for name in [".stats.tmp", "stats"] {
        let file = written.join(name);
        assert!(
            !file.exists(),
            "a failed local-store write left {}",
            file.display()
        );
    }
    // Still alive, nothing partial published.
    assert!(
        daemon.is_running(),
        "daemon died on a full disk:\n{}",
        read_log()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        daemon.is_running(),
        "daemon died on a full disk:\n{}",
        read_log()
    );
    let tmp_dst_dir = inside.join("incoming.tmp");
    let tmp_left = std::fs::read_dir(&tmp_dst_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", tmp_dst_dir.display()))
        .count();
    assert_eq!(tmp_left, 0, "partial snapshots left in tmp-dst-dir");

    // Free the space (an SRE cleaning local-store): it all resumes.
    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{}: {e}", filler.display()));
    for entry in std::fs::read_dir(&store)
        .unwrap_or_else(|e| panic!("{}: {e}", store.display()))
        .flatten()
    {
        let _ = std::fs::remove_dir_all(entry.path());
    }
    let before = graphite.lines().len();
    let log_len = read_log().len();
    wait(
        "snapshots to flow again",
        Duration::from_secs(20),
        &log,
        || {
            let published_again = read_log()[log_len..].contains("snapshot published");
            published_again && graphite.lines().len() > before
        },
    );
    // local-store writes again: a snapshot's file holds exactly the lines
    // Graphite got for it.
    wait(
        "a local-store file whose every line reached graphite",
        Duration::from_secs(20),
        &log,
        || {
            let received: BTreeSet<String> = graphite.lines().into_iter().collect();
            store_files(&store).iter().any(|file| {
                let text = std::fs::read_to_string(file)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                !text.is_empty() && text.lines().all(|line| received.contains(line))
            })
        },
    );
    daemon.terminate();
    let status = daemon.wait_exit(Duration::from_secs(15));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", read_log());
}
