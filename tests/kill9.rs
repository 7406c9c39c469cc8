//! `kill -9` at random moments, 20 times, while snapshots keep arriving:
//! after a final restart every snapshot that reached src-dir has reached
//! Graphite (at-least-once) and src-dir is empty.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::Haproxystats;

const STAT: &str = include_str!("fixtures/stat/2.6_show_stat.csv");
const INFO: &str = include_str!("fixtures/stat/2.5.5_show_info.txt");

/// Timestamps of every line received, over every connection.
fn counting_graphite() -> (u16, Arc<Mutex<BTreeSet<u64>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"))
        .port();
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let record = Arc::clone(&record);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let ts = line.rsplit(' ').next().and_then(|t| t.parse().ok());
                    if let (Some(ts), Ok(mut seen)) = (ts, record.lock()) {
                        seen.insert(ts);
                    }
                }
            });
        }
    });
    (port, seen)
}

/// Publishes a snapshot as the puller does: complete in tmp, then renamed.
fn publish(root: &Path, ts: u64) {
    let tmp = root.join("incoming.tmp").join(ts.to_string());
    std::fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("tmp: {e}"));
    std::fs::write(tmp.join("lb1.sock_stat"), STAT).unwrap_or_else(|e| panic!("stat: {e}"));
    std::fs::write(tmp.join("lb1.sock_info"), INFO).unwrap_or_else(|e| panic!("info: {e}"));
    std::fs::rename(&tmp, root.join("incoming").join(ts.to_string()))
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
    let (port, seen) = counting_graphite();
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
    let published: Vec<u64> = published.lock().map(|p| p.clone()).unwrap_or_default();
    assert!(
        published.len() > 100,
        "only {} snapshots published",
        published.len()
    );

    // A last, undisturbed run processes whatever is left.
    let mut daemon = Haproxystats::start(&["process"], &conf, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let missing: Vec<u64> = {
            let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
            published
                .iter()
                .copied()
                .filter(|ts| !seen.contains(ts))
                .collect()
        };
        let left = std::fs::read_dir(root.path().join("incoming"))
            .map(|d| d.count())
            .unwrap_or(usize::MAX);
        if missing.is_empty() && left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} snapshots never reached graphite (first: {:?}); {left} left in src-dir; seed {seed}\nlog tail:\n{}",
            missing.len(),
            published.len(),
            missing.first(),
            support::process::tail(&log, 4000)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(daemon.terminate(Duration::from_secs(15)), Some(0));
    let quarantined = root.path().join("incoming.failed");
    assert!(!quarantined.exists(), "a snapshot was quarantined");
}
