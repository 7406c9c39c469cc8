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

use std::time::Duration;

use actix::Actor;
use haproxystats::config::KafkaConfig;
use haproxystats::sink::kafka::format::{Format, PathLayout};
use haproxystats::sink::kafka::settings::{Compression, KafkaSettings};
use haproxystats::sink::kafka::sink::{GetKafkaStats, KafkaSink};

#[path = "common/sink_bench.rs"]
mod sink_bench;
#[path = "common/tansu.rs"]
mod tansu;

const TOPIC: &str = "bench";

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
    let broker = tansu::Tansu::start();
    broker.create_topic(TOPIC, 1);
    let payload = sink_bench::engine_like_lines(lines);
    let bytes = payload.len();
    let settings = KafkaSettings {
        config: KafkaConfig {
            brokers: broker.brokers.clone(),
            topic: TOPIC.into(),
            topic_set: true,
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
            snapshot_fields: haproxystats::raw::Fields::Engine,
            snapshot_compression: haproxystats::raw::BufferCodec::SNAPSHOTS_DEFAULT,
        },
        layout: PathLayout {
            prefix: "loadbalancers.lb-01_example_com.haproxy".into(),
            host: "lb-01_example_com".into(),
            group_namespace: None,
            lb_in_path: false,
            cluster_namespace: None,
        },
        key: "lb-01_example_com".into(),
    };

    let system = actix::System::new();
    let (elapsed, stats) = system.block_on(async move {
        let sink = KafkaSink::new(settings).start();
        sink_bench::time_until_flushed(&sink, payload, Duration::from_secs(120), GetKafkaStats)
            .await
    });
    drop(broker);

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
