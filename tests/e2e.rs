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
    assert_eq!(
        daemon.terminate(Duration::from_secs(15)),
        Some(0),
        "log:\n{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains("everything flushed"),
        "{}",
        daemon.log()
    );
}
