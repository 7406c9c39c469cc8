//! Soak (issue 4): `haproxystats pull` at pull-interval 1 against 4 real
//! HAProxy instances for 60 s produces 60 ±1 complete snapshot directories,
//! none partial, and its RSS does not grow after the first 10 s.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{FleetOptions, HaproxyFleet, Haproxystats};

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or_else(|| panic!("cannot read VmRSS of {pid}"))
}

fn snapshot_names(dir: &Path) -> Vec<u64> {
    let mut names: Vec<u64> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort_unstable();
    names
}

#[test]
fn sixty_seconds_at_pull_interval_1_give_60_complete_snapshots_and_flat_rss() {
    let mut fleet = HaproxyFleet::start(4, FleetOptions::default());
    fleet.wait_servers_up(Duration::from_secs(10));
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let conf = root.path().join("haproxystats.conf");
    std::fs::write(
        &conf,
        format!(
            "[pull]\nsocket-dir = {sockets}\ndst-dir = {root}/incoming\n\
             tmp-dst-dir = {root}/incoming.tmp\npull-interval = 1\npull-timeout = 0.9\n\
             queue-size = 1000\n",
            sockets = fleet.socket_dir().display(),
            root = root.path().display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let log = root.path().join("pull.log");
    let mut pull = Haproxystats::start(&["pull"], &conf, &log);
    let pid = pull.proc().pid();
    let start = Instant::now();
    let mut rss_at_10s = None;
    let mut rss_max_after = 0;
    while start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(500));
        if start.elapsed() >= Duration::from_secs(10) {
            let rss = rss_kib(pid);
            rss_at_10s.get_or_insert(rss);
            rss_max_after = rss_max_after.max(rss);
        }
        if start.elapsed().as_secs().is_multiple_of(5) {
            fleet.generate_traffic(20);
        }
    }
    // On a loaded machine the loop (traffic included) overruns 60 s a
    // little: one snapshot per second of the time the puller really ran.
    let ran = start.elapsed().as_secs();
    assert_eq!(
        pull.terminate(Duration::from_secs(10)),
        Some(0),
        "{}",
        pull.log()
    );

    let incoming = root.path().join("incoming");
    let names = snapshot_names(&incoming);
    let expected = ran.saturating_sub(1)..=ran + 1;
    assert!(
        ran < 70 && expected.contains(&(names.len() as u64)),
        "{} snapshots in {ran} s: {names:?}\n{}",
        names.len(),
        pull.log()
    );
    for name in &names {
        let dir = incoming.join(name.to_string());
        let mut files: Vec<(String, u64)> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| {
                        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                        (e.file_name().to_string_lossy().into_owned(), len)
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        assert_eq!(files.len(), 8, "{name}: {files:?}");
        assert!(
            files.iter().all(|(_, len)| *len > 0),
            "{name}: empty file: {files:?}"
        );
    }
    let leftovers = std::fs::read_dir(root.path().join("incoming.tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "partial snapshots left in tmp-dst-dir");
    let (base, max) = (rss_at_10s.unwrap_or(0), rss_max_after);
    // Allocator noise is a few hundred KiB; a leak of one snapshot per
    // second would be megabytes by now.
    assert!(
        max <= base + 1024,
        "RSS grew from {base} KiB at 10 s to {max} KiB"
    );
    eprintln!(
        "soak: {} snapshots, RSS {base} KiB at 10 s, max {max} KiB after",
        names.len()
    );
}
