//! Lines per second from the KafkaSink into a real broker on loopback
//! (issue 13: goal ≥ 1,000,000 lines/s, as Graphite's sink).
//!
//! `cargo bench --bench kafka_throughput [-- LINES] [influx]`: tansu with its
//! memory storage engine (contrib/install-deps.sh installs it), one topic
//! of one partition, the sink's defaults (`acks=all`, idempotent, zstd,
//! 1 MB messages); timed from handing the lines over until the sink's
//! flush says the broker confirmed every message. Results go to
//! BENCHMARKS.md, beside `cargo bench --bench sink_throughput` run in the
//! same window as the baseline.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix::Actor;
use haproxystats::config::KafkaConfig;
use haproxystats::sink::graphite::{Flush, SendLines};
use haproxystats::sink::kafka::format::{Format, PathLayout};
use haproxystats::sink::kafka::settings::{Compression, KafkaSettings};
use haproxystats::sink::kafka::sink::{GetKafkaStats, KafkaSink};

const TOPIC: &str = "bench";

fn tansu() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_default();
    let installed = PathBuf::from(home).join(".cargo/bin/tansu");
    if installed.is_file() {
        installed
    } else {
        PathBuf::from("tansu")
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let lines: usize = args
        .iter()
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(1_000_000);
    let format = if args.iter().any(|a| a == "influx") {
        Format::Influx
    } else {
        Format::Graphite
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"));
    let url = format!("tcp://127.0.0.1:{port}");
    let mut broker = Command::new(tansu())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start tansu (contrib/install-deps.sh): {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let created = Command::new(tansu())
        .args([
            "topic",
            "create",
            TOPIC,
            "--partitions",
            "1",
            "--broker",
            &url,
        ])
        .status()
        .unwrap_or_else(|e| panic!("tansu topic create: {e}"));
    assert!(created.success(), "tansu topic create failed");

    // Lines shaped like the engine's, as in benches/sink_throughput.rs.
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
    let settings = KafkaSettings {
        config: KafkaConfig {
            brokers: format!("127.0.0.1:{port}"),
            topic: TOPIC.into(),
            format,
            key: None,
            message_max_bytes: 1_000_000,
            compression: Compression::Zstd,
            queue_size: lines + 1,
            message_timeout: Duration::from_secs(300),
            librdkafka: Vec::new(),
        },
        layout: PathLayout {
            prefix: "loadbalancers.lb-01_example_com.haproxy".into(),
            host: "lb-01_example_com".into(),
            group_namespace: None,
        },
        key: "lb-01_example_com".into(),
    };

    let system = actix::System::new();
    let (elapsed, stats) = system.block_on(async move {
        let sink = KafkaSink::new(settings).start();
        let start = Instant::now();
        sink.do_send(SendLines(payload));
        let left = sink
            .send(Flush {
                timeout: Duration::from_secs(120),
            })
            .await
            .unwrap_or(u64::MAX);
        let elapsed = start.elapsed();
        assert_eq!(left, 0, "not everything was confirmed within 120 s");
        (elapsed, sink.send(GetKafkaStats).await.unwrap_or_default())
    });
    let _ = broker.kill();
    let _ = broker.wait();

    let secs = elapsed.as_secs_f64();
    println!(
        "kafka_throughput ({format}): {lines} lines ({:.1} MB) in {:.3} s = {:.0} lines/s, {:.0} MB/s; messages={} lines_sent={} dropped={} delivery_errors={}",
        bytes as f64 / 1e6,
        secs,
        lines as f64 / secs,
        bytes as f64 / 1e6 / secs,
        stats.messages_sent,
        stats.lines_sent,
        stats.dropped,
        stats.delivery_errors
    );
}
