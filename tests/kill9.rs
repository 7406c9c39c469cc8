//! `kill -9` at random moments, 20 times, while snapshots keep arriving:
//! after a final restart every snapshot that reached src-dir has reached
//! Graphite whole — every one of its lines, values included — at least once,
//! and src-dir is empty.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::Haproxystats;
use support::fake_graphite::FakeGraphite;
use support::snapshots::replay_lines;

const STAT: &str = include_str!("fixtures/stat/2.6_show_stat.csv");
const INFO: &str = include_str!("fixtures/stat/2.5.5_show_info.txt");

/// Writes the snapshot files of `ts` into `dir/<ts>`.
fn write_snapshot(dir: &Path, ts: u64) -> std::path::PathBuf {
    let snapshot = dir.join(ts.to_string());
    std::fs::create_dir_all(&snapshot).unwrap_or_else(|e| panic!("snapshot dir: {e}"));
    std::fs::write(snapshot.join("lb1.sock_stat"), STAT).unwrap_or_else(|e| panic!("stat: {e}"));
    std::fs::write(snapshot.join("lb1.sock_info"), INFO).unwrap_or_else(|e| panic!("info: {e}"));
    snapshot
}

/// Every snapshot is the same files under another timestamp: the lines
/// `replay` makes of one, without their timestamp (`path value`). Self
/// metrics (wall-clock times) differ from run to run and are left out.
fn lines_of_every_snapshot(root: &Path, conf: &Path) -> Vec<String> {
    let ts = 1_600_000_000u64;
    let dir = write_snapshot(&root.join("template"), ts);
    let suffix = format!(" {ts}");
    let lines: Vec<String> = replay_lines(conf, &[dir])
        .into_iter()
        .filter(|line| !line.contains(".haproxystats."))
        .map(|line| {
            line.strip_suffix(&suffix)
                .unwrap_or_else(|| panic!("replay line without timestamp {ts}: {line}"))
                .to_owned()
        })
        .collect();
    assert!(lines.len() > 10, "replay gave only {lines:?}");
    lines
}

/// The published snapshots not every line of which, values included,
/// reached Graphite.
fn undelivered(published: &[u64], template: &[String], received: &[String]) -> Vec<u64> {
    let received: HashSet<&str> = received.iter().map(String::as_str).collect();
    published
        .iter()
        .copied()
        .filter(|ts| {
            template
                .iter()
                .any(|line| !received.contains(format!("{line} {ts}").as_str()))
        })
        .collect()
}

/// Which lines of snapshot `ts` never arrived, for the failure message.
fn what_is_missing(ts: u64, template: &[String], received: &[String]) -> String {
    let suffix = format!(" {ts}");
    let arrived: HashSet<&str> = received
        .iter()
        .filter_map(|line| line.strip_suffix(&suffix))
        .collect();
    let absent: Vec<&String> = template
        .iter()
        .filter(|line| !arrived.contains(line.as_str()))
        .collect();
    format!(
        "snapshot {ts}: {} of its {} lines missing, e.g. {:?}; {} lines with its timestamp arrived",
        absent.len(),
        template.len(),
        &absent[..absent.len().min(3)],
        arrived.len()
    )
}

/// Publishes a snapshot as the puller does: complete in tmp, then renamed.
fn publish(root: &Path, ts: u64) {
    let tmp = root.join("incoming.tmp");
    write_snapshot(&tmp, ts);
    std::fs::rename(
        tmp.join(ts.to_string()),
        root.join("incoming").join(ts.to_string()),
    )
    .unwrap_or_else(|e| panic!("rename: {e}"));
}

/// A small deterministic generator, seeded from the clock and printed, so
/// a failing run can be replayed with `KILL9_SEED`.
struct Lcg(u64);

impl Lcg {
    fn next_below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn twenty_kill_9_at_random_moments_lose_no_snapshot() {
    let seed = std::env::var("KILL9_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("KILL9_SEED={seed}");
    let mut random = Lcg(seed);
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(root.path().join("incoming")).unwrap_or_else(|e| panic!("{e}"));
    let graphite = FakeGraphite::start();
    let port = graphite.port();
    let conf = root.path().join("haproxystats.conf");
    std::fs::write(
        &conf,
        format!(
            "[process]\nsrc-dir = {}/incoming\nworkers = 2\nloglevel = debug\n\
             [graphite]\nport = {port}\nnamespace = k\nprefix-hostname = false\n",
            root.path().display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let template = lines_of_every_snapshot(root.path(), &conf);

    // Snapshots keep arriving, every 20 ms, whatever happens to the daemon.
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(Mutex::new(Vec::new()));
    let publisher = {
        let (stop, published) = (Arc::clone(&stop), Arc::clone(&published));
        let root = root.path().to_path_buf();
        std::thread::spawn(move || {
            let mut ts = 1_700_000_000u64;
            while !stop.load(Ordering::Relaxed) {
                publish(&root, ts);
                if let Ok(mut p) = published.lock() {
                    p.push(ts);
                }
                ts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let log = root.path().join("haproxystats.log");
    for _ in 0..20 {
        let mut daemon = Haproxystats::start(&["process"], &conf, &log);
        std::thread::sleep(Duration::from_millis(50 + random.next_below(450)));
        daemon.proc().signal(libc::SIGKILL);
        assert!(
            daemon.proc().wait_exit(Duration::from_secs(5)).is_some(),
            "not dead after SIGKILL"
        );
    }
    stop.store(true, Ordering::Relaxed);
    publisher
        .join()
        .unwrap_or_else(|_| panic!("publisher panicked"));
    let published: Vec<u64> = published.lock().expect("published list").clone();
    assert!(
        published.len() > 100,
        "only {} snapshots published",
        published.len()
    );

    // A last, undisturbed run processes whatever is left.
    let mut daemon = Haproxystats::start(&["process"], &conf, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let missing = undelivered(&published, &template, &graphite.lines());
        let left = std::fs::read_dir(root.path().join("incoming"))
            .unwrap_or_else(|e| panic!("src-dir: {e}"))
            .count();
        if missing.is_empty() && left == 0 {
            break;
        }
        if Instant::now() >= deadline {
            panic!(
                "{} of {} snapshots never reached graphite whole ({}); {left} left in src-dir; seed {seed}\nlog tail:\n{}",
                missing.len(),
                published.len(),
                what_is_missing(missing[0], &template, &graphite.lines()),
                support::process::tail(&log, 4000)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(daemon.terminate(Duration::from_secs(15)), Some(0));
    let quarantined = root.path().join("incoming.failed");
    assert!(!quarantined.exists(), "a snapshot was quarantined");
}
