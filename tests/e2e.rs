//! End to end with real parts: HAProxy instances → `haproxystats` (puller,
//! processors, Graphite sink, local-store) → carbon-c-relay → carbon-cache →
//! whisper. Every line sent for a snapshot (local-store keeps exactly what was
//! sent) must be in whisper with its value.

mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use support::{FleetOptions, Haproxystats, start_fleet_and_carbon};

/// `(path, value, timestamp)` of every line of a local-store file.
fn stored_lines(file: &Path) -> Vec<(String, f64, u64)> {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            let path = parts.next()?.to_string();
            let value = parts.next()?.parse().ok()?;
            let ts = parts.next()?.parse().ok()?;
            Some((path, value, ts))
        })
        .collect()
}

#[test]
fn every_line_of_a_snapshot_lands_in_whisper_with_its_value() {
    let (mut fleet, mut carbon) = start_fleet_and_carbon(2, FleetOptions::default());
    fleet.wait_servers_up(Duration::from_secs(10));
    fleet.generate_traffic(50);

    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let base = root.path();
    let conf = base.join("haproxystats.conf");
    let relay = carbon.relay_addr();
    fs::write(
        &conf,
        format!(
            "[paths]\nbase-dir = {base}\n\n\
             [pull]\nsocket-dir = {sockets}\npull-interval = 1\npull-timeout = 0.9\n\
             dst-dir = ${{paths:base-dir}}/incoming\ntmp-dst-dir = ${{paths:base-dir}}/incoming.tmp\n\n\
             [process]\nsrc-dir = ${{paths:base-dir}}/incoming\ncalculate-percentages = true\n\
             per-process-metrics = true\naggr-server-metrics = true\n\n\
             [graphite]\nserver = {host}\nport = {port}\nnamespace = e2e\nprefix-hostname = false\n\n\
             [local-store]\ndir = ${{paths:base-dir}}/local-store\n",
            base = base.display(),
            sockets = fleet.socket_dir().display(),
            host = relay.ip(),
            port = relay.port(),
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut daemon = Haproxystats::start(&[], &conf, &base.join("daemon.log"));

    // Wait for two stored snapshots; check the first one completely.
    let store = base.join("local-store");
    let start = Instant::now();
    let first = loop {
        let mut stored: Vec<u64> = fs::read_dir(&store)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .filter(|ts: &u64| store.join(ts.to_string()).join("stats").is_file())
                    .collect()
            })
            .unwrap_or_default();
        stored.sort_unstable();
        if stored.len() >= 2 {
            break stored[0];
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no two snapshots stored; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines = stored_lines(&store.join(first.to_string()).join("stats"));
    assert!(lines.len() > 100, "only {} lines", lines.len());
    let paths: Vec<&str> = lines.iter().map(|(p, _, _)| p.as_str()).collect();
    for expected in [
        "e2e.haproxy.daemon.CurrConns",
        "e2e.haproxy.daemon.ConnPercentage",
        "e2e.haproxy.daemon.process.haproxy0_sock.CurrConns",
        "e2e.haproxy.frontend.fe_0.req_tot",
        "e2e.haproxy.backend.be_0.lbtot",
        "e2e.haproxy.backend.be_0.TotalServers",
        "e2e.haproxy.backend.be_0.server.srv_0_0.lbtot",
        "e2e.haproxy.server.srv_0_0.lbtot",
        "e2e.haproxy.haproxystats.TotalWallClockTime",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} not among the lines sent"
        );
    }
    for (path, value, ts) in &lines {
        assert_eq!(*ts, first, "{path}");
        let landed = carbon.wait_for(path, *ts, Duration::from_secs(20));
        let Some(landed) = landed else {
            panic!(
                "{path} @ {ts} never landed in whisper; log:\n{}",
                daemon.log()
            );
        };
        let tolerance = 1e-9 * value.abs().max(1.0);
        assert!(
            (landed - value).abs() <= tolerance,
            "{path}: sent {value}, whisper has {landed}"
        );
    }
    // The running supervisor keeps the status file fresh: `check` says OK
    // (pull, process and push all happened within a few seconds).
    let check = std::process::Command::new(support::haproxystats::BIN)
        .args(["-f"])
        .arg(&conf)
        .arg("check")
        .output()
        .unwrap_or_else(|e| panic!("check: {e}"));
    let line = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(0), "check: {line}");
    assert!(line.starts_with("HAPROXYSTATS OK"), "{line}");
    assert!(
        line.contains("last pull") && line.contains("last graphite push"),
        "{line}"
    );
    assert_eq!(
        daemon.terminate(Duration::from_secs(15)),
        Some(0),
        "log:\n{}",
        daemon.log()
    );
    assert!(daemon.log().contains("stopped; "), "{}", daemon.log());
}

/// Writes a snapshot of fixture files the way the puller publishes it.
fn publish_fixture(src: &Path, ts: u64) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stat");
    let tmp = src.with_file_name(format!("publish-{ts}"));
    fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("{e}"));
    for (from, to) in [
        ("2.6_show_stat.csv", "lb.sock_stat"),
        ("2.5.5_show_info.txt", "lb.sock_info"),
    ] {
        fs::copy(fixtures.join(from), tmp.join(to)).unwrap_or_else(|e| panic!("{e}"));
    }
    fs::rename(&tmp, src.join(ts.to_string())).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_relay_down_for_20_s_loses_nothing_and_keeps_the_snapshots_until_written() {
    let mut carbon = support::CarbonStack::start();
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let base = root.path();
    let src = base.join("incoming");
    fs::create_dir(&src).unwrap_or_else(|e| panic!("{e}"));
    let relay = carbon.relay_addr();
    let conf = base.join("haproxystats.conf");
    fs::write(
        &conf,
        format!(
            "[process]\nsrc-dir = {src}\n\n\
             [graphite]\nserver = {host}\nport = {port}\nnamespace = outage\nprefix-hostname = false\n\
             retries = 3\ninterval = 0.5\nbackoff = 2\ndelay = 2\n\n\
             [local-store]\ndir = {base}/local-store\n",
            src = src.display(),
            base = base.display(),
            host = relay.ip(),
            port = relay.port(),
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    carbon.stop_relay();
    let mut daemon = Haproxystats::start(&["process"], &conf, &base.join("daemon.log"));
    let now = support::unix_now();
    let stamps: Vec<u64> = (0..5).map(|i| now - 100 + i * 10).collect();
    for ts in &stamps {
        publish_fixture(&src, *ts);
        std::thread::sleep(Duration::from_millis(200));
    }
    // The outage lasts 20 s from the first snapshot. Every snapshot is
    // processed (local-store has it) as soon as it can be, and none leaves
    // src-dir at any moment of the outage: checked all along, not once.
    let outage = Instant::now();
    let processed = |ts: &u64| {
        base.join("local-store")
            .join(ts.to_string())
            .join("stats")
            .is_file()
    };
    while !(stamps.iter().all(processed) && daemon.log().contains("cannot connect to graphite")) {
        assert!(
            outage.elapsed() < Duration::from_secs(20),
            "not every snapshot processed, or no 'cannot connect to graphite' line, \
             after 20 s; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    while outage.elapsed() < Duration::from_secs(20) {
        for ts in &stamps {
            assert!(
                src.join(ts.to_string()).is_dir(),
                "snapshot {ts} deleted while Graphite was down; log:\n{}",
                daemon.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    carbon.start_relay();
    for ts in &stamps {
        let lines = stored_lines(&base.join("local-store").join(ts.to_string()).join("stats"));
        assert!(lines.len() > 50, "only {} lines for {ts}", lines.len());
        for (path, value, line_ts) in &lines {
            assert_eq!(line_ts, ts);
            let Some(landed) = carbon.wait_for(path, *ts, Duration::from_secs(30)) else {
                panic!(
                    "{path} @ {ts} never landed in whisper; log:\n{}",
                    daemon.log()
                );
            };
            assert!(
                (landed - value).abs() <= 1e-9 * value.abs().max(1.0),
                "{path}: sent {value}, whisper has {landed}"
            );
        }
    }
    let start = Instant::now();
    while fs::read_dir(&src).map(|d| d.count()).unwrap_or(0) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "snapshots not deleted after delivery"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        daemon.terminate(Duration::from_secs(15)),
        Some(0),
        "log:\n{}",
        daemon.log()
    );
}
