//! Disk full: the whole base dir on a tiny tmpfs (in a private mount
//! namespace: `unshare --user --map-root-user --mount`, no root needed).
//! local-store fills it; pulls then fail with ENOSPC — logged, nothing
//! partial published, no crash — and once space is freed, pulling, processing
//! and delivery resume without a restart.

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::process::Proc;
use support::{FleetOptions, HaproxyFleet};

fn counting_graphite() -> (u16, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let lines = Arc::new(Mutex::new(0));
    let count = Arc::clone(&lines);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let count = Arc::clone(&count);
            std::thread::spawn(move || {
                for _ in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut n) = count.lock() {
                        *n += 1;
                    }
                }
            });
        }
    });
    (port, lines)
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
    let (port, received) = counting_graphite();
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
        || received.lock().map(|n| *n > 0).unwrap_or(false),
    );
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
    wait(
        "the disk to fill up and a pull to fail",
        Duration::from_secs(90),
        &log,
        || {
            top_up();
            read_log()
                .lines()
                .any(|l| l.contains("pull cycle failed") && l.contains("No space left on device"))
        },
    );
    // Still alive, nothing partial published, nothing left half-written.
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
    let tmp_left = std::fs::read_dir(inside.join("incoming.tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(tmp_left, 0, "partial snapshots left in tmp-dst-dir");

    // Free the space (an SRE cleaning local-store): it all resumes.
    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{}: {e}", filler.display()));
    let store = inside.join("local-store");
    for entry in std::fs::read_dir(&store)
        .unwrap_or_else(|e| panic!("{}: {e}", store.display()))
        .flatten()
    {
        let _ = std::fs::remove_dir_all(entry.path());
    }
    let before = received.lock().map(|n| *n).unwrap_or(0);
    let log_len = read_log().len();
    wait(
        "snapshots to flow again",
        Duration::from_secs(20),
        &log,
        || {
            let published_again = read_log()[log_len..].contains("snapshot published");
            published_again && received.lock().map(|n| *n > before).unwrap_or(false)
        },
    );
    daemon.terminate();
    let status = daemon.wait_exit(Duration::from_secs(15));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", read_log());
}
