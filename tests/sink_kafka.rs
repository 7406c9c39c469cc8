//! KafkaSink against a real broker (tansu behind a cuttable proxy): every
//! line in order in whole-line messages under the limit, acknowledged only
//! once the broker has it; an outage holds the acknowledgement and loses
//! nothing; a full backlog drops exactly the oldest lines, counted.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use actix::{Actor, Addr};
use haproxystats::config::KafkaConfig;
use haproxystats::sink::chunks::LineChunks;
use haproxystats::sink::kafka::format::{Format, PathLayout};
use haproxystats::sink::kafka::settings::{Compression, KafkaSettings};
use haproxystats::sink::kafka::sink::{GetKafkaStats, KafkaSink, KafkaStats};
use haproxystats::sink::messages::{Flush, SendLinesAcked};
use support::kafka::{Broker, Record};
use tokio::sync::oneshot;

const TOPIC: &str = "haproxystats.metrics";

fn settings(broker: &Broker, queue_size: usize, message_max_bytes: usize) -> KafkaSettings {
    KafkaSettings {
        config: KafkaConfig {
            brokers: broker.brokers(),
            topic: TOPIC.into(),
            topic_set: true,
            format: Format::Graphite,
            key: None,
            message_max_bytes,
            compression: Compression::Zstd,
            queue_size,
            message_timeout: Duration::from_secs(300),
            librdkafka: Vec::new(),
            snapshots_topic: None,
            cluster: "default".into(),
            lb_name: None,
            snapshot_fields: haproxystats::raw::Fields::Engine,
        },
        layout: PathLayout {
            prefix: "test.lb1.haproxy".into(),
            host: "lb1".into(),
            group_namespace: None,
            lb_in_path: false,
            cluster_namespace: None,
        },
        key: "lb1".into(),
    }
}

/// Lines `first..first + count` of one snapshot at `ts`.
fn lines(first: u32, count: u32, ts: u64) -> (Vec<u8>, Vec<String>) {
    let lines: Vec<String> = (first..first + count)
        .map(|i| format!("test.lb1.haproxy.frontend.fe{i:06}.req_tot {i} {ts}"))
        .collect();
    let mut bytes = Vec::new();
    for line in &lines {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    (bytes, lines)
}

fn send(sink: &Addr<KafkaSink>, bytes: Vec<u8>) -> oneshot::Receiver<()> {
    let mut chunks = LineChunks::default();
    chunks.push_chunk(bytes);
    let (written, acknowledged) = oneshot::channel();
    sink.do_send(SendLinesAcked {
        dir: std::path::PathBuf::new(),
        lb: None,
        cluster: None,
        ts: 0,
        lines: chunks.into(),
        written,
    });
    acknowledged
}

async fn stats(sink: &Addr<KafkaSink>) -> KafkaStats {
    sink.send(GetKafkaStats).await.expect("the sink answers")
}

/// Every line of every message read back, in order.
fn lines_of(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .flat_map(|r| {
            String::from_utf8(r.payload.clone())
                .expect("utf-8")
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn read_lines(broker: &Broker, count: usize) -> Vec<Record> {
    broker.read(TOPIC, 1, Duration::from_secs(30), |records| {
        lines_of(records).len() >= count
    })
}

#[actix_rt::test]
async fn every_line_reaches_the_topic_in_order_in_whole_line_messages_under_the_limit() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 1);
    let max = 64 * 1024;
    let sink = KafkaSink::new(settings(&broker, 1_000_000, max)).start();
    let mut expected = Vec::new();
    let mut acks = Vec::new();
    for snapshot in 0..5u32 {
        let (bytes, sent) = lines(snapshot * 3000, 3000, 1_700_000_000 + u64::from(snapshot));
        acks.push(send(&sink, bytes));
        expected.extend(sent);
    }
    for (n, ack) in acks.into_iter().enumerate() {
        let ack = tokio::time::timeout(Duration::from_secs(30), ack).await;
        assert!(
            matches!(ack, Ok(Ok(()))),
            "batch {n}: {ack:?}\n{}",
            broker.log()
        );
    }
    let records = tokio::task::spawn_blocking(move || (read_lines(&broker, 15_000), broker))
        .await
        .expect("reader");
    let (records, _broker) = records;
    assert_eq!(
        lines_of(&records),
        expected,
        "lines lost, altered or reordered"
    );
    assert!(
        records.len() > 5,
        "{} messages: not cut at the limit",
        records.len()
    );
    for record in &records {
        assert!(
            record.payload.len() <= max,
            "{} bytes",
            record.payload.len()
        );
        assert!(record.payload.ends_with(b"\n"), "a message ends mid-line");
        assert_eq!(record.key.as_deref(), Some(&b"lb1"[..]));
    }
    let stats = stats(&sink).await;
    assert_eq!(stats.lines_sent, 15_000, "{stats:?}");
    assert_eq!(stats.messages_sent, records.len() as u64, "{stats:?}");
    assert_eq!(
        (stats.backlog, stats.dropped, stats.delivery_errors),
        (0, 0, 0),
        "{stats:?}"
    );
    assert!(stats.last_delivery.is_some());
}

#[actix_rt::test]
async fn a_broker_outage_holds_the_acknowledgement_and_loses_nothing() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 1);
    let sink = KafkaSink::new(settings(&broker, 1_000_000, 1_000_000)).start();
    let (bytes, mut expected) = lines(0, 2000, 1_700_000_000);
    let first = tokio::time::timeout(Duration::from_secs(30), send(&sink, bytes)).await;
    assert!(matches!(first, Ok(Ok(()))), "{first:?}");

    broker.cut();
    let (bytes, during) = lines(2000, 2000, 1_700_000_010);
    expected.extend(during);
    let mut held = send(&sink, bytes);
    let early = tokio::time::timeout(Duration::from_secs(5), &mut held).await;
    assert!(
        early.is_err(),
        "acknowledged while the broker was cut off: {early:?}"
    );
    assert_eq!(stats(&sink).await.backlog, 2000);

    broker.restore();
    let late = tokio::time::timeout(Duration::from_secs(30), held).await;
    assert!(
        matches!(late, Ok(Ok(()))),
        "not acknowledged after the outage: {late:?}"
    );
    let left = sink
        .send(Flush {
            timeout: Duration::from_secs(5),
        })
        .await
        .expect("flush answered");
    assert_eq!(left, 0);
    let (records, _broker) =
        tokio::task::spawn_blocking(move || (read_lines(&broker, 4000), broker))
            .await
            .expect("reader");
    let got: BTreeSet<String> = lines_of(&records).into_iter().collect();
    let missing: Vec<&String> = expected.iter().filter(|l| !got.contains(*l)).collect();
    assert!(
        missing.is_empty(),
        "{} lines lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
}

#[actix_rt::test]
async fn a_full_backlog_during_an_outage_drops_exactly_the_oldest_lines_and_counts_them() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 1);
    broker.cut();
    let sink = KafkaSink::new(settings(&broker, 1000, 1_000_000)).start();
    let mut all = Vec::new();
    let mut acks = Vec::new();
    for snapshot in 0..3u32 {
        let (bytes, sent) = lines(snapshot * 600, 600, 1_700_000_000 + u64::from(snapshot));
        acks.push(send(&sink, bytes));
        all.extend(sent);
    }
    // 1800 lines into room for 1000: the first batch and a third of the
    // second are dropped; the first batch is thereby done with.
    let first = tokio::time::timeout(Duration::from_secs(5), acks.remove(0)).await;
    assert!(
        matches!(first, Ok(Ok(()))),
        "a dropped batch is acknowledged: {first:?}"
    );
    let stats_during = stats(&sink).await;
    assert_eq!(stats_during.dropped, 800, "{stats_during:?}");
    assert_eq!(stats_during.backlog, 1000, "{stats_during:?}");

    broker.restore();
    for ack in acks {
        let ack = tokio::time::timeout(Duration::from_secs(30), ack).await;
        assert!(matches!(ack, Ok(Ok(()))), "{ack:?}");
    }
    let (records, _broker) =
        tokio::task::spawn_blocking(move || (read_lines(&broker, 1000), broker))
            .await
            .expect("reader");
    assert_eq!(
        lines_of(&records),
        all[800..].to_vec(),
        "not exactly the newest 1000"
    );
    assert_eq!(stats(&sink).await.dropped, 800);
}
