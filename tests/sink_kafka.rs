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
use haproxystats::sink::messages::{Flush, GetSinkHealth, LinesOf, SendLinesAcked, SinkHealth};
use support::kafka::{Broker, Record};
use tokio::sync::oneshot;

const TOPIC: &str = "haproxystats.metrics";

fn settings(broker: &Broker, queue_size: usize, message_max_bytes: usize) -> KafkaSettings {
    settings_at(broker.brokers(), queue_size, message_max_bytes)
}

fn settings_at(brokers: String, queue_size: usize, message_max_bytes: usize) -> KafkaSettings {
    KafkaSettings {
        config: KafkaConfig {
            brokers,
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
            snapshot_compression: haproxystats::raw::BufferCodec::SNAPSHOTS_DEFAULT,
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
        of: LinesOf::Own,
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

async fn health(sink: &Addr<KafkaSink>) -> SinkHealth {
    sink.send(GetSinkHealth).await.expect("the sink answers")
}

/// Waits, polling, until `done` holds of the sink's health.
async fn health_until(
    sink: &Addr<KafkaSink>,
    what: &str,
    done: impl Fn(&SinkHealth) -> bool,
) -> SinkHealth {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = health(sink).await;
        if done(&now) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 24 item 6: a sink whose topic does not exist says why it cannot
/// deliver while lines wait (the status file and `check` show it), and
/// delivers once the topic is there.
#[actix_rt::test]
async fn a_missing_topic_is_why_the_sink_cannot_deliver_until_it_is_created() {
    let broker = Broker::start();
    let sink = KafkaSink::new(settings(&broker, 1_000_000, 1_000_000)).start();
    let (bytes, expected) = lines(0, 500, 1_700_000_000);
    let mut ack = send(&sink, bytes);
    let stalled = health_until(&sink, "no reason given", |h| h.cannot_deliver.is_some()).await;
    let reason = stalled.cannot_deliver.clone().unwrap_or_default();
    assert!(
        reason.starts_with(&format!("topic {TOPIC} does not exist or cannot be used")),
        "{reason}"
    );
    assert_eq!(stalled.backlog, 500, "{stalled:?}");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut ack)
            .await
            .is_err(),
        "acknowledged without a topic"
    );

    broker.create_topic(TOPIC, 1);
    let done = tokio::time::timeout(Duration::from_secs(30), ack).await;
    assert!(matches!(done, Ok(Ok(()))), "{done:?}\n{}", broker.log());
    let delivered = health_until(&sink, "still blocked", |h| h.backlog == 0).await;
    assert_eq!(delivered.cannot_deliver, None, "{delivered:?}");
    let (records, _broker) =
        tokio::task::spawn_blocking(move || (read_lines(&broker, 500), broker))
            .await
            .expect("reader");
    assert_eq!(lines_of(&records), expected);
}

/// Every line of `topic` on the mock cluster at `brokers`, once `count`
/// are there (or 30 s passed).
fn mock_lines(brokers: &str, count: usize) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut partitions = rdkafka::TopicPartitionList::new();
    partitions
        .add_partition_offset(TOPIC, 0, rdkafka::Offset::Beginning)
        .expect("partition");
    consumer.assign(&partitions).expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < count && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let text = String::from_utf8_lossy(message.payload().unwrap_or_default());
            got.extend(text.lines().map(str::to_owned));
        }
    }
    got
}

/// Issue 24 item 13: a message the broker refuses for its size is split in
/// two and each half delivered; a single line it refuses is dropped and
/// counted; neither is sent again as it is forever. librdkafka's mock
/// cluster refuses the produce requests (tansu has no message size limit).
#[actix_rt::test]
async fn a_message_refused_for_its_size_is_split_and_a_refused_line_dropped() {
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    const TOO_LARGE: RDKafkaRespErr = RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic(TOPIC, 1, 1).expect("topic");
    let brokers = mock.bootstrap_servers();
    let sink = KafkaSink::new(settings_at(brokers.clone(), 1_000_000, 1_000_000)).start();

    // The first message (100 lines) is refused once: it goes as two.
    mock.request_errors(RDKafkaApiKey::Produce, &[TOO_LARGE]);
    let (bytes, mut expected) = lines(0, 100, 1_700_000_000);
    let ack = tokio::time::timeout(Duration::from_secs(30), send(&sink, bytes)).await;
    assert!(
        matches!(ack, Ok(Ok(()))),
        "{ack:?}: {:?}",
        stats(&sink).await
    );
    let after_split = stats(&sink).await;
    assert_eq!(after_split.split, 1, "{after_split:?}");
    assert_eq!(after_split.lines_sent, 100, "{after_split:?}");
    assert_eq!(after_split.dropped, 0, "{after_split:?}");

    // One line refused for its size, again and again as a broker would:
    // nothing smaller to send, dropped at the first refusal.
    mock.request_errors(RDKafkaApiKey::Produce, &[TOO_LARGE; 200]);
    let (bytes, _) = lines(100, 1, 1_700_000_010);
    let ack = tokio::time::timeout(Duration::from_secs(30), send(&sink, bytes)).await;
    assert!(
        matches!(ack, Ok(Ok(()))),
        "{ack:?}: {:?}",
        stats(&sink).await
    );
    mock.clear_request_errors(RDKafkaApiKey::Produce);
    let after_drop = stats(&sink).await;
    assert_eq!(after_drop.dropped, 1, "{after_drop:?}");
    assert_eq!(after_drop.backlog, 0, "{after_drop:?}");
    assert_eq!(after_drop.delivery_errors, 2, "sent again: {after_drop:?}");

    // And the sink goes on.
    let (bytes, more) = lines(101, 10, 1_700_000_020);
    expected.extend(more);
    let ack = tokio::time::timeout(Duration::from_secs(30), send(&sink, bytes)).await;
    assert!(matches!(ack, Ok(Ok(()))), "{ack:?}");
    let got = tokio::task::spawn_blocking(move || mock_lines(&brokers, 110))
        .await
        .expect("reader");
    let got: BTreeSet<String> = got.into_iter().collect();
    let want: BTreeSet<String> = expected.into_iter().collect();
    assert_eq!(got, want, "lines lost or the dropped one delivered");
    drop(mock);
}

/// `haproxystats -f CONF check`: its exit code and line.
fn nagios_check(conf: &std::path::Path) -> (Option<i32>, String) {
    let output = std::process::Command::new(support::haproxystats::BIN)
        .arg("-f")
        .arg(conf)
        .arg("check")
        .env_remove("HAPROXYSTATS_LOG")
        .output()
        .expect("run haproxystats check");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned(),
    )
}

/// Issue 24 item 6, as an operator sees it: `haproxystats process` whose
/// Kafka topic does not exist says so in one line at start, its status
/// file and `check` (CRITICAL) say why the sink cannot deliver while the
/// snapshot waits, and once the topic is created everything is delivered.
#[test]
fn a_missing_metrics_topic_is_one_line_at_start_and_critical_in_check() {
    use std::fs;

    use support::Haproxystats;
    use support::fake_graphite::FakeGraphite;
    use support::kafka::ONE_RECORD_PER_BATCH;
    use support::process::wait_until;
    use support::snapshots::{Shape, publish_snapshot};

    let root = tempfile::tempdir().expect("tempdir");
    let src = root.path().join("incoming");
    fs::create_dir(&src).expect("src-dir");
    let graphite = FakeGraphite::start();
    let broker = Broker::start();
    let conf = root.path().join("haproxystats.conf");
    fs::write(
        &conf,
        format!(
            "[paths]\nbase-dir = {root}\n\n[process]\nsrc-dir = {src}\nworkers = 1\n\n\
             [graphite]\nserver = 127.0.0.1\nport = {port}\nnamespace = test\n\n\
             [kafka]\nbrokers = {brokers}\ntopic = {TOPIC}\n{ONE_RECORD_PER_BATCH}",
            root = root.path().display(),
            src = src.display(),
            port = graphite.port(),
            brokers = broker.brokers(),
        ),
    )
    .expect("write conf");
    let mut daemon = Haproxystats::start(&["process"], &conf, &root.path().join("process.log"));
    let said = "the metrics topic does not exist or cannot be used: create it ([kafka] topic)";
    wait_until(
        Duration::from_secs(30),
        "the missing topic said at start",
        || daemon.log().contains(said).then_some(()),
        || daemon.log(),
    );
    let shape = Shape {
        processes: 1,
        frontends: 2,
        backends: 2,
        servers: 2,
    };
    let snapshot = publish_snapshot(&src, 1_700_000_000, 1, shape);
    let reason = format!("kafka cannot deliver: topic {TOPIC} does not exist or cannot be used");
    let (code, line) = wait_until(
        Duration::from_secs(30),
        "check CRITICAL naming the missing topic",
        || {
            let (code, line) = nagios_check(&conf);
            line.contains(&reason).then_some((code, line))
        },
        || format!("{:?}\n{}", nagios_check(&conf), daemon.log()),
    );
    assert_eq!(code, Some(2), "{line}");
    assert!(line.starts_with("HAPROXYSTATS CRITICAL - "), "{line}");
    let status = fs::read_to_string(root.path().join("haproxystats.status")).expect("status");
    assert!(
        status.contains(&format!(
            "\nsink.kafka.cannot_deliver=topic {TOPIC} does not exist or cannot be used"
        )),
        "{status}"
    );
    assert!(snapshot.exists(), "deleted before Kafka had it");

    broker.create_topic(TOPIC, 1);
    wait_until(
        Duration::from_secs(60),
        "the snapshot delivered once the topic exists",
        || (!snapshot.exists()).then_some(()),
        || daemon.log(),
    );
    wait_until(
        Duration::from_secs(30),
        "check without the reason",
        || {
            let (code, line) = nagios_check(&conf);
            (!line.contains("cannot deliver")).then_some(code)
        },
        || format!("{:?}", nagios_check(&conf)),
    );
    assert_eq!(daemon.terminate(Duration::from_secs(20)), Some(0));
    assert_eq!(
        daemon.log().matches(said).count(),
        1,
        "said once, at start:\n{}",
        daemon.log()
    );
}

/// Issue 24 item 13, raw snapshots: a part the broker refuses for its size
/// is not sent again as it is: the snapshot is encoded again in smaller
/// parts and published; one whose parts cannot get small enough is
/// counted as bad and acknowledged, not retried forever.
#[actix_rt::test]
async fn a_snapshot_part_refused_for_its_size_is_encoded_again_smaller() {
    use haproxystats::sink::snapshots::SnapshotsSettings;
    use haproxystats::sink::snapshots::sink::SnapshotsSink;
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    use support::snapshots::{Shape, publish_snapshot};
    const TOO_LARGE: RDKafkaRespErr = RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
    const SNAPSHOTS: &str = "snapshots";

    let root = tempfile::tempdir().expect("tempdir");
    let shape = Shape {
        processes: 4,
        frontends: 20,
        backends: 20,
        servers: 10,
    };
    let first = publish_snapshot(root.path(), 1_700_000_000, 1, shape);
    let second = publish_snapshot(root.path(), 1_700_000_010, 2, shape);
    // A message-max-bytes its parts fit under, with room for half of the
    // largest still to encode (a part needs the margin besides).
    let encode = |limit: usize| {
        haproxystats::raw::encode_fields(&first, limit, haproxystats::raw::Fields::Engine)
            .expect("encodes")
            .parts
    };
    let whole = encode(usize::MAX / 2);
    let size = whole.iter().map(Vec::len).max().unwrap_or(0);
    assert!(
        size > 4 * haproxystats::raw::MESSAGE_MARGIN,
        "{size} bytes: too small a snapshot"
    );
    let parts_before = encode(size + haproxystats::raw::MESSAGE_MARGIN).len();
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic(SNAPSHOTS, 1, 1).expect("topic");
    let mut kafka = settings_at(mock.bootstrap_servers(), 1000, 0).config;
    kafka.message_max_bytes = size + haproxystats::raw::MESSAGE_MARGIN + 4096;
    let sink = SnapshotsSink::new(SnapshotsSettings {
        kafka,
        topic: SNAPSHOTS.into(),
        lb: "lb1".into(),
        cluster: "default".into(),
        fields: haproxystats::raw::Fields::Engine,
        codec: haproxystats::raw::BufferCodec::SNAPSHOTS_DEFAULT,
        interval: Duration::from_secs(10),
        queue_size: 100,
    })
    .start();
    let publish = |dir: &std::path::Path| {
        let (written, acknowledged) = oneshot::channel();
        sink.do_send(SendLinesAcked {
            of: LinesOf::Snapshot(dir.to_path_buf()),
            ts: dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok())
                .expect("a timestamp"),
            lines: LineChunks::default().into(),
            written,
        });
        acknowledged
    };
    let metric = |health: &SinkHealth, name: &str| {
        health
            .metrics
            .iter()
            .find(|(metric, _)| *metric == name)
            .map(|(_, value)| *value)
    };

    // Refused once: encoded again in parts under half of it, all sent.
    mock.request_errors(RDKafkaApiKey::Produce, &[TOO_LARGE]);
    let ack = tokio::time::timeout(Duration::from_secs(30), publish(&first)).await;
    assert!(matches!(ack, Ok(Ok(()))), "{ack:?}");
    let health = sink.send(GetSinkHealth).await.expect("answers");
    assert_eq!(metric(&health, "SnapshotsPublished"), Some(1), "{health:?}");
    assert_eq!(metric(&health, "BadSnapshots"), Some(0), "{health:?}");
    assert!(
        metric(&health, "SnapshotPartsSent").unwrap_or(0) > parts_before as u64,
        "not split ({parts_before} parts before): {health:?}"
    );

    // Refused again and again, as a broker would: halved until its parts
    // cannot get so small, then counted as bad, not retried forever.
    mock.request_errors(RDKafkaApiKey::Produce, &[TOO_LARGE; 200]);
    let ack = tokio::time::timeout(Duration::from_secs(30), publish(&second)).await;
    assert!(matches!(ack, Ok(Ok(()))), "{ack:?}");
    mock.clear_request_errors(RDKafkaApiKey::Produce);
    let health = sink.send(GetSinkHealth).await.expect("answers");
    assert_eq!(metric(&health, "BadSnapshots"), Some(1), "{health:?}");
    assert_eq!(health.backlog, 0, "{health:?}");
    drop(mock);
}

/// Issue 24 item 6 on central: with `[kafka] topic` set to a topic that
/// does not exist, central says so in one line at start, and while its
/// Kafka sink holds lines it cannot deliver (consumption then pauses) the
/// status file and `check` (CRITICAL) say why: not a silent pause.
#[test]
fn central_whose_metrics_topic_is_missing_says_why_in_its_status_and_check() {
    use std::fs;

    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use support::Haproxystats;
    use support::fake_graphite::FakeGraphite;
    use support::kafka::ONE_RECORD_PER_BATCH;
    use support::process::wait_until;
    use support::snapshots::{Shape, publish_snapshot};
    const SNAPSHOTS: &str = "snaps";

    let root = tempfile::tempdir().expect("tempdir");
    let graphite = FakeGraphite::start();
    let broker = Broker::start();
    broker.create_topic(SNAPSHOTS, 1);
    let conf = root.path().join("central.conf");
    fs::write(
        &conf,
        format!(
            "[paths]\nbase-dir = {root}\n\n[pull]\npull-interval = 1\n\n\
             [graphite]\nserver = 127.0.0.1\nport = {port}\nnamespace = test\n\n\
             [kafka]\nbrokers = {brokers}\nsnapshots-topic = {SNAPSHOTS}\ntopic = {TOPIC}\n\
             {ONE_RECORD_PER_BATCH}\n[central]\nworkers = 1\n",
            root = root.path().display(),
            port = graphite.port(),
            brokers = broker.brokers(),
        ),
    )
    .expect("write conf");
    let mut central = Haproxystats::start(&["central"], &conf, &root.path().join("central.log"));
    let said = "the metrics topic does not exist or cannot be used: create it ([kafka] topic)";
    wait_until(
        Duration::from_secs(30),
        "the missing topic said at start",
        || central.log().contains(said).then_some(()),
        || central.log(),
    );

    // One snapshot of a load balancer, as an edge publishes it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let ts = now - now % 10;
    let shape = Shape {
        processes: 1,
        frontends: 2,
        backends: 2,
        servers: 2,
    };
    let generated = root.path().join("gen");
    fs::create_dir(&generated).expect("gen dir");
    let dir = publish_snapshot(&generated, ts, 1, shape);
    let encoded = haproxystats::raw::encode(&dir, 1_000_000).expect("encode");
    let producer: BaseProducer = broker.producer_config().create().expect("producer");
    let parts = encoded.parts.len();
    for (part, payload) in encoded.parts.iter().enumerate() {
        let mut headers = OwnedHeaders::new();
        // The edge's own headers (src/sink/snapshots/headers.rs).
        for (key, value) in haproxystats::sink::snapshots::headers::headers(
            "lb1",
            "eu",
            ts,
            Duration::from_secs(10),
            part,
            parts,
        ) {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        producer
            .send(
                BaseRecord::to(SNAPSHOTS)
                    .key("lb1")
                    .payload(payload.as_slice())
                    .headers(headers),
            )
            .map_err(|(error, _)| error)
            .expect("queued");
    }
    producer.flush(Duration::from_secs(30)).expect("sent");

    let status_file = root.path().join("haproxystats.status");
    let reason = format!("topic {TOPIC} does not exist or cannot be used");
    wait_until(
        Duration::from_secs(60),
        "the status file saying why the kafka sink cannot deliver",
        || {
            fs::read_to_string(&status_file)
                .ok()
                .filter(|status| status.contains(&format!("\nsink.kafka.cannot_deliver={reason}")))
        },
        || {
            format!(
                "{}\n{}",
                fs::read_to_string(&status_file).unwrap_or_default(),
                central.log()
            )
        },
    );
    let (code, line) = nagios_check(&conf);
    assert_eq!(code, Some(2), "{line}");
    assert!(
        line.contains(&format!("kafka cannot deliver: {reason}")),
        "{line}"
    );
    assert_eq!(central.terminate(Duration::from_secs(30)), Some(0));
    assert_eq!(central.log().matches(said).count(), 1, "{}", central.log());
}
