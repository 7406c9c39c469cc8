//! One pull cycle against many real HAProxy instances vs the slowest single
//! socket (issue 4: target ≤ 1.3×), and the peak RSS of `haproxystats pull`.
//!
//! `cargo bench --bench pull [-- INSTANCES]` (default 32 instances, each with
//! 1000 backends × 10 servers, no health checks). Needs Debian's haproxy.
//! Results go to BENCHMARKS.md.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use haproxystats::config::{Config, StatsEndpoint};
use haproxystats::puller::cycle::{self, CycleOutcome, CycleSettings, Source};
use support::{FleetOptions, HaproxyFleet, Haproxystats};

const RUNS: usize = 5;

fn main() {
    let instances: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(32);
    let opts = FleetOptions {
        frontends: 2,
        backends: 1000,
        servers_per_backend: 10,
        tcp_stats: None,
        health_checks: false,
    };
    let started = Instant::now();
    let fleet = HaproxyFleet::start(instances, opts);
    eprintln!(
        "pull bench: {instances} HAProxy instances × 1000 backends × 10 servers up in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut config = Config::defaults();
    config.pull.socket_dir = Some(fleet.socket_dir());
    config.pull.dst_dir = root.path().join("incoming");
    config.pull.tmp_dst_dir = root.path().join("incoming.tmp");
    config.pull.buffer_limit = 64 << 20;
    config.pull.pull_timeout = Some(Duration::from_secs(30));
    std::fs::create_dir_all(&config.pull.dst_dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(&config.pull.tmp_dst_dir).unwrap_or_else(|e| panic!("{e}"));
    let settings = Arc::new(CycleSettings::from_config(&config.pull));
    let sources: Vec<Source> = (0..instances)
        .map(|i| Source {
            name: format!("haproxy{i}.sock"),
            endpoint: StatsEndpoint::Unix(fleet.socket_path(i)),
        })
        .collect();

    let system = actix::System::new();
    let mut ts = 1_000_000_000u64;
    let mut time_cycle = |sources: Vec<Source>| -> Duration {
        ts += 1;
        let settings = Arc::clone(&settings);
        let start = Instant::now();
        let outcome = system.block_on(async move {
            let (_stop, shutdown) = tokio::sync::watch::channel(false);
            cycle::run(sources, settings, ts, shutdown).await.outcome
        });
        let elapsed = start.elapsed();
        match outcome {
            CycleOutcome::Published { dir, .. } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            other => panic!("cycle failed: {other:?}"),
        }
        elapsed
    };

    // Warm up (HAProxy's first dump of a big config is slower).
    time_cycle(sources.clone());
    let mut slowest_single = Duration::ZERO;
    for source in &sources {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            best = best.min(time_cycle(vec![source.clone()]));
        }
        slowest_single = slowest_single.max(best);
    }
    // The floor on this machine: every socket read at once by bare threads
    // (no retries, no files), i.e. what the HAProxy processes themselves
    // need to produce their dumps on the cores there are.
    let mut floor = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for i in 0..instances {
                let path = fleet.socket_path(i);
                scope.spawn(move || {
                    let _ = support::haproxy::stats_command_unix(&path, "show info");
                    let _ = support::haproxy::stats_command_unix(&path, "show stat");
                });
            }
        });
        floor = floor.min(start.elapsed());
    }
    let mut full: Vec<Duration> = (0..RUNS).map(|_| time_cycle(sources.clone())).collect();
    full.sort();
    let median = full[RUNS / 2];
    let mut bytes_per_socket = 0;
    if let Ok(stat) = support::haproxy::stats_command_unix(&fleet.socket_path(0), "show stat") {
        bytes_per_socket = stat.len();
    }
    println!(
        "pull bench: {instances} sockets, show stat {:.1} MB each; slowest single socket {:.1} ms; \
         all sockets read at once by bare threads {:.1} ms; full cycle median {:.1} ms \
         (min {:.1}, max {:.1}); cycle / slowest socket {:.2}; cycle / bare threads {:.2}",
        bytes_per_socket as f64 / 1e6,
        slowest_single.as_secs_f64() * 1e3,
        floor.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        full[0].as_secs_f64() * 1e3,
        full[RUNS - 1].as_secs_f64() * 1e3,
        median.as_secs_f64() / slowest_single.as_secs_f64(),
        median.as_secs_f64() / floor.as_secs_f64()
    );

    // Peak RSS of the real command over a few cycles.
    let conf = root.path().join("pull.conf");
    std::fs::write(
        &conf,
        format!(
            "[pull]\nsocket-dir = {}\ndst-dir = {}/rss\ntmp-dst-dir = {}/rss.tmp\n\
             pull-interval = 2\npull-timeout = 1.9\nbuffer-limit = {}\nloglevel = warning\n",
            fleet.socket_dir().display(),
            root.path().display(),
            root.path().display(),
            64 << 20
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut pull = Haproxystats::start(&["pull"], &conf, &root.path().join("pull.log"));
    std::thread::sleep(Duration::from_secs(11));
    let hwm = vm_hwm_kib(pull.proc().pid());
    let code = pull.terminate(Duration::from_secs(10));
    let published = std::fs::read_dir(root.path().join("rss"))
        .map(|d| d.count())
        .unwrap_or(0);
    println!(
        "pull bench: haproxystats pull peak RSS {:.1} MB over {published} cycles (exit {code:?})",
        hwm as f64 / 1024.0
    );
    if published == 0 {
        eprintln!("{}", pull.log());
    }
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
