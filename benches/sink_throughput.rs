//! Lines per second from the GraphiteSink into a real carbon-c-relay on
//! loopback (issue 5: target ≥ 1,000,000 lines/s).
//!
//! `cargo bench --bench sink_throughput [-- LINES]` — the relay routes every
//! metric to its `blackhole`, so the relay's own forwarding is not measured,
//! only how fast it takes what the sink writes. Results go to BENCHMARKS.md.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix::Actor;
use haproxystats::config::Retries;
use haproxystats::sink::graphite::{
    Flush, GetSinkStats, GraphiteSettings, GraphiteSink, SendLines,
};
use haproxystats::sink::retry::RetryPolicy;

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

    // Lines shaped like the engine's: realistic path lengths and values.
    let mut payload = Vec::with_capacity(lines * 80);
    for i in 0..lines {
        let _ = writeln!(
            payload,
            "loadbalancers.lb-01_example_com.haproxy.backend.be{:05}.server.srv{:03}.bin {} 1700000000",
            i % 1000,
            i % 20,
            i * 7
        );
    }
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
        let start = Instant::now();
        sink.do_send(SendLines(payload));
        let left = sink
            .send(Flush {
                timeout: Duration::from_secs(60),
            })
            .await
            .unwrap_or(u64::MAX);
        let elapsed = start.elapsed();
        assert_eq!(left, 0, "not everything was written within 60 s");
        (elapsed, sink.send(GetSinkStats).await.unwrap_or_default())
    });
    let _ = relay.kill();
    let _ = relay.wait();

    let secs = elapsed.as_secs_f64();
    println!(
        "sink_throughput: {lines} lines ({:.1} MB) in {:.3} s = {:.0} lines/s, {:.0} MB/s; sent={} dropped={} reconnects={}",
        bytes as f64 / 1e6,
        secs,
        lines as f64 / secs,
        bytes as f64 / 1e6 / secs,
        stats.sent,
        stats.dropped,
        stats.reconnects
    );
}
