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

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix::Actor;
use haproxystats::config::KafkaConfig;
use haproxystats::sink::kafka::format::{Format, PathLayout};
use haproxystats::sink::kafka::settings::{Compression, KafkaSettings};
use haproxystats::sink::kafka::sink::{GetKafkaStats, KafkaSink};

#[path = "common/sink_bench.rs"]
mod sink_bench;

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

    let payload = sink_bench::engine_like_lines(lines);
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
            snapshots_topic: None,
            cluster: "default".into(),
            lb_name: None,
        },
        layout: PathLayout {
            prefix: "loadbalancers.lb-01_example_com.haproxy".into(),
            host: "lb-01_example_com".into(),
            group_namespace: None,
            lb_in_path: false,
        },
        key: "lb-01_example_com".into(),
    };

    let system = actix::System::new();
    let (elapsed, stats) = system.block_on(async move {
        let sink = KafkaSink::new(settings).start();
        sink_bench::time_until_flushed(&sink, payload, Duration::from_secs(120), GetKafkaStats)
            .await
    });
    let _ = broker.kill();
    let _ = broker.wait();

    sink_bench::report(
        &format!("kafka_throughput ({format})"),
        lines,
        bytes,
        elapsed,
        &format!(
            "messages={} lines_sent={} dropped={} delivery_errors={}",
            stats.messages_sent, stats.lines_sent, stats.dropped, stats.delivery_errors
        ),
    );
}
