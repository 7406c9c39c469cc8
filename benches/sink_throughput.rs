//! Lines per second from the GraphiteSink into a real carbon-c-relay on
//! loopback (issue 5: target ≥ 1,000,000 lines/s).
//!
//! `cargo bench --bench sink_throughput [-- LINES]` — the relay routes every
//! metric to its `blackhole`, so the relay's own forwarding is not measured,
//! only how fast it takes what the sink writes. Results go to BENCHMARKS.md.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix::Actor;
use haproxystats::config::Retries;
use haproxystats::sink::graphite::{GetSinkStats, GraphiteSettings, GraphiteSink};
use haproxystats::sink::retry::RetryPolicy;

#[path = "common/sink_bench.rs"]
mod sink_bench;

fn main() {
    let lines: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"));
    let config = dir.path().join("relay.conf");
    std::fs::write(&config, "match * send to blackhole stop;\n")
        .unwrap_or_else(|e| panic!("relay config: {e}"));
    let mut relay = Command::new("carbon-c-relay")
        .arg("-f")
        .arg(&config)
        .args(["-p", &port.to_string(), "-s", "-w", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start carbon-c-relay (apt-get install carbon-c-relay): {e}")
        });
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "carbon-c-relay did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }

    let payload = sink_bench::engine_like_lines(lines);
    let bytes = payload.len();

    let system = actix::System::new();
    let (elapsed, stats) = system.block_on(async move {
        let sink = GraphiteSink::new(GraphiteSettings {
            host: "127.0.0.1".into(),
            port,
            connect_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(5),
            policy: RetryPolicy::new(
                Retries::Times(3),
                Duration::from_millis(100),
                2.0,
                Duration::from_secs(1),
            ),
            queue_size: lines + 1,
            replay_bytes: haproxystats::sink::graphite::REPLAY_BYTES,
        })
        .start();
        sink_bench::time_until_flushed(&sink, payload, Duration::from_secs(60), GetSinkStats).await
    });
    let _ = relay.kill();
    let _ = relay.wait();

    sink_bench::report(
        "sink_throughput",
        lines,
        bytes,
        elapsed,
        &format!(
            "sent={} dropped={} reconnects={}",
            stats.sent, stats.dropped, stats.reconnects
        ),
    );
}
