//! Supervision: a panic injected into each kind of child is survived —
//! the child is restarted and counted, and no snapshot is lost; too many
//! restarts are fatal; a poison snapshot is retried once, then quarantined.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::{Actor, Addr};
use tokio::sync::mpsc;

use super::*;
use crate::config::Config;
use crate::processor::actor::INJECT_PANIC_FILE;

/// The Graphite stand-in the integration tests use (one copy, in tests/support).
#[allow(dead_code)]
#[path = "../../tests/support/fake_graphite.rs"]
mod fake_graphite;

use fake_graphite::{Behaviour, FakeGraphite};

const STAT: &str = include_str!("../../tests/fixtures/stat/2.6_show_stat.csv");
const INFO: &str = include_str!("../../tests/fixtures/stat/2.5.5_show_info.txt");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Writes a complete snapshot the way the puller publishes it (tmp + rename).
fn publish(src: &Path, ts: u64) -> PathBuf {
    let tmp = src.with_file_name(format!("tmp-{ts}"));
    std::fs::create_dir_all(&tmp).expect("tmp");
    std::fs::write(tmp.join("haproxy1.sock_stat"), STAT).expect("stat");
    std::fs::write(tmp.join("haproxy1.sock_info"), INFO).expect("info");
    let dir = src.join(ts.to_string());
    std::fs::rename(&tmp, &dir).expect("rename");
    dir
}

struct Harness {
    root: tempfile::TempDir,
    supervisor: Addr<Supervisor>,
    port: u16,
    graphite: Option<FakeGraphite>,
    fatal: mpsc::UnboundedReceiver<String>,
}

impl Harness {
    fn start(limit: RestartLimit) -> Harness {
        let graphite = FakeGraphite::start();
        let mut harness = Harness::start_on(limit, graphite.port());
        harness.graphite = Some(graphite);
        harness
    }

    /// With Graphite on `port`, not yet listening.
    fn start_on(limit: RestartLimit, port: u16) -> Harness {
        Harness::start_with(limit, port, |_| {})
    }

    /// With Graphite on `port`, and the configuration changed by `change`.
    fn start_with(limit: RestartLimit, port: u16, change: impl FnOnce(&mut Config)) -> Harness {
        Harness::start_with_sinks(limit, port, change, Vec::new())
    }

    /// The same, with `extra` sinks after the configured ones.
    fn start_with_sinks(
        limit: RestartLimit,
        port: u16,
        change: impl FnOnce(&mut Config),
        extra: Vec<crate::sink::SinkSpec>,
    ) -> Harness {
        let root = tempfile::tempdir().expect("tempdir");
        let src = root.path().join("incoming");
        let sockets = root.path().join("sockets");
        std::fs::create_dir(&src).expect("src");
        std::fs::create_dir(&sockets).expect("sockets");
        let mut config = Config::defaults();
        config.graphite.port = port;
        config.graphite.prefix_hostname = false;
        config.graphite.namespace = "t".into();
        config.pull.socket_dir = Some(sockets);
        config.pull.dst_dir = root.path().join("pulled");
        config.pull.tmp_dst_dir = root.path().join("pulled.tmp");
        change(&mut config);
        let engine = EngineOptions::from_config(&config, "host").expect("engine options");
        let (fatal_tx, fatal) = mpsc::unbounded_channel();
        let supervisor = Supervisor::new(SupervisorSettings {
            src_dir: src,
            workers: 2,
            engine: Arc::new(engine),
            pull: Some(config.pull.clone()),
            align_pulls: false,
            local: true,
            sinks: crate::sink::configured(&config, "t.haproxy", "haproxy")
                .expect("no port to bind")
                .into_iter()
                .chain(extra)
                .collect(),
            shutdown_timeout: Duration::from_secs(5),
            restart_limit: limit,
            fatal: fatal_tx,
            health: None,
        })
        .start();
        Harness {
            root,
            supervisor,
            port,
            graphite: None,
            fatal,
        }
    }

    /// Graphite starts listening on the port.
    fn graphite_back(&mut self) {
        self.graphite = Some(FakeGraphite::start_on(self.port, |_| Behaviour::Read, None));
    }

    /// Every line Graphite received.
    fn lines(&self) -> Vec<String> {
        self.graphite
            .as_ref()
            .map(FakeGraphite::lines)
            .unwrap_or_default()
    }

    fn src(&self) -> PathBuf {
        self.root.path().join("incoming")
    }

    /// Waits until Graphite received a line of snapshot `ts`.
    async fn wait_delivered(&self, ts: u64) {
        let suffix = format!(" {ts}");
        for _ in 0..200 {
            if self.lines().iter().any(|line| line.ends_with(&suffix)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("snapshot {ts} never reached graphite");
    }

    async fn stats(&self) -> SupervisorStats {
        self.supervisor
            .send(GetSupervisorStats)
            .await
            .expect("stats")
    }

    async fn wait_restarts(&self, n: u64) {
        for _ in 0..200 {
            if self.stats().await.child_restarts >= n {
                assert_eq!(
                    self.stats().await.child_restarts,
                    n,
                    "more restarts than crashes"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("restart {n} not seen: {:?}", self.stats().await);
    }

    async fn wait_all_alive(&self) {
        for _ in 0..200 {
            let alive = self.supervisor.send(ChildrenAlive).await.expect("alive");
            if alive.iter().all(|(_, up)| *up) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("children not all alive");
    }

    async fn crash(&self, kind: ChildKind) {
        assert!(
            self.supervisor.send(CrashChild(kind)).await.expect("crash"),
            "{kind:?} not running"
        );
    }
}

/// Waits until local-store wrote snapshot `ts`.
async fn wait_stored(dir: &Path, ts: u64) {
    let stats = dir.join(ts.to_string()).join("stats");
    for _ in 0..200 {
        if stats.is_file() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("snapshot {ts} never reached local-store");
}

#[actix_rt::test]
async fn every_child_kind_is_restarted_counted_and_no_snapshot_is_lost() {
    let graphite = FakeGraphite::start();
    let store = tempfile::tempdir().expect("local-store dir");
    let store_dir = store.path().to_path_buf();
    let limit = RestartLimit {
        max: 10,
        window: Duration::from_secs(60),
    };
    let mut harness = Harness::start_with(limit, graphite.port(), |config| {
        use crate::sink::local_store::{LocalStoreConfig, LocalStoreSection};
        let store = LocalStoreConfig { dir: store_dir };
        config.sinks.set::<LocalStoreSection>(Some(store));
    });
    harness.graphite = Some(graphite);
    harness.wait_all_alive().await;
    publish(&harness.src(), 1_700_000_000);
    harness.wait_delivered(1_700_000_000).await;

    let mut ts = 1_700_000_010;
    for (n, kind) in [
        ChildKind::Watcher,
        ChildKind::Sink("graphite"),
        ChildKind::Puller,
        ChildKind::Sink("local-store"),
    ]
    .into_iter()
    .enumerate()
    {
        harness.crash(kind).await;
        // A snapshot published while the child is dead or restarting is
        // processed and delivered all the same.
        tokio::time::sleep(Duration::from_millis(50)).await;
        publish(&harness.src(), ts);
        harness.wait_restarts(n as u64 + 1).await;
        harness.wait_all_alive().await;
        harness.wait_delivered(ts).await;
        wait_stored(store.path(), ts).await;
        ts += 10;
    }
    // Delivered snapshots leave src-dir.
    for _ in 0..100 {
        if quarantine::pending(&harness.src())
            .map(|p| p.snapshots.is_empty())
            .unwrap_or(false)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        quarantine::pending(&harness.src())
            .expect("list")
            .snapshots
            .len(),
        0
    );
    // The restarts are in the self metrics of the next snapshot.
    publish(&harness.src(), ts);
    harness.wait_delivered(ts).await;
    let lines = harness.lines();
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("t.haproxy.haproxystats.ChildRestarts 4 {ts}")),
        "no ChildRestarts 4 line for {ts}"
    );
}

/// `GET /metrics` on 127.0.0.1:`port`: the status line and the body.
async fn scrape(port: u16) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the prometheus endpoint");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: t\r\n\r\n")
        .await
        .expect("request");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.expect("reply");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head.lines().next().unwrap_or("").to_owned();
    (status, body.to_owned())
}

#[actix_rt::test]
async fn a_crashed_prometheus_sink_is_restarted_and_serves_the_latest_snapshot_on_its_port() {
    let graphite = FakeGraphite::start();
    let port = free_port();
    let limit = RestartLimit {
        max: 10,
        window: Duration::from_secs(60),
    };
    let mut harness = Harness::start_with(limit, graphite.port(), |config| {
        use crate::sink::prometheus::config::{PrometheusConfig, PrometheusSection};
        config
            .sinks
            .set::<PrometheusSection>(Some(PrometheusConfig {
                listen: format!("127.0.0.1:{port}"),
                addresses: vec![([127, 0, 0, 1], port).into()],
                path: "/metrics".into(),
                max_connections: 256,
                write_timeout: Duration::from_secs(30),
            }));
    });
    harness.graphite = Some(graphite);
    harness.wait_all_alive().await;
    publish(&harness.src(), 1_700_000_000);
    harness.wait_delivered(1_700_000_000).await;
    let series = "haproxystats_frontend_stot_total{host=\"haproxy\",frontend=\"fe_main\"} 10\n";
    let (status, before) = scrape(port).await;
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert!(before.contains(series), "{before}");
    assert!(before.contains("haproxystats_self_child_restarts{host=\"haproxy\"} 0\n"));

    harness.crash(ChildKind::Sink("prometheus")).await;
    harness.wait_restarts(1).await;
    harness.wait_all_alive().await;
    // Before any new snapshot: the same port, the same page.
    let (status, after) = scrape(port).await;
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert_eq!(after, before);
    // The next snapshot replaces it, its restart counted.
    publish(&harness.src(), 1_700_000_010);
    harness.wait_delivered(1_700_000_010).await;
    let mut page = String::new();
    for _ in 0..200 {
        page = scrape(port).await.1;
        if page.contains("haproxystats_self_child_restarts{host=\"haproxy\"} 1\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        page.contains("haproxystats_self_child_restarts{host=\"haproxy\"} 1\n"),
        "{page}"
    );
    assert!(page.contains(series), "{page}");
}

#[actix_rt::test]
async fn a_panicking_processor_is_retried_once_then_the_snapshot_is_quarantined() {
    let harness = Harness::start(RestartLimit::default());
    let poison = publish(&harness.src(), 1_700_000_100);
    std::fs::write(poison.join(INJECT_PANIC_FILE), b"").expect("marker");
    publish(&harness.src(), 1_700_000_200);
    harness.wait_delivered(1_700_000_200).await;
    let failed = quarantine::failed_dir(&harness.src()).join("1700000100");
    for _ in 0..200 {
        if failed.is_dir() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(failed.is_dir(), "poison snapshot not quarantined");
    let reason =
        std::fs::read_to_string(failed.with_file_name("1700000100.reason")).expect("reason");
    assert!(reason.contains("injected processor panic"), "{reason}");
    // The count follows the move (the move runs on a blocking thread).
    let mut stats = harness.stats().await;
    for _ in 0..200 {
        if stats.quarantined > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        stats = harness.stats().await;
    }
    assert_eq!(stats.processor_panics, 2, "{stats:?}");
    assert_eq!(stats.quarantined, 1, "{stats:?}");
}

#[actix_rt::test]
async fn more_restarts_than_the_limit_within_the_window_is_fatal() {
    let mut harness = Harness::start(RestartLimit {
        max: 2,
        window: Duration::from_secs(60),
    });
    harness.wait_all_alive().await;
    let mut restarts = 0;
    for _ in 0..2 {
        harness.crash(ChildKind::Watcher).await;
        restarts += 1;
        harness.wait_restarts(restarts).await;
        harness.wait_all_alive().await;
    }
    assert!(harness.fatal.try_recv().is_err(), "fatal too early");
    harness.crash(ChildKind::Watcher).await;
    let fatal = tokio::time::timeout(Duration::from_secs(5), harness.fatal.recv())
        .await
        .expect("fatal reported in time")
        .expect("fatal message");
    assert!(fatal.contains("3 child restarts"), "{fatal}");
}

#[actix_rt::test]
async fn a_snapshot_whose_lines_die_with_the_sink_is_processed_again() {
    // Graphite is down: the lines wait in the sink's backlog, the snapshot
    // stays in src-dir until they are written.
    let mut harness = Harness::start_on(RestartLimit::default(), free_port());
    harness.wait_all_alive().await;
    let dir = publish(&harness.src(), 1_700_000_300);
    for _ in 0..200 {
        if harness.stats().await.processed >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(dir.is_dir(), "deleted before Graphite had its lines");
    // The sink dies with the lines: the snapshot is processed again…
    harness.crash(ChildKind::Sink("graphite")).await;
    harness.wait_restarts(1).await;
    for _ in 0..200 {
        if harness.stats().await.processed >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(harness.stats().await.processed, 2);
    assert!(dir.is_dir());
    // …and delivered once Graphite is back, then deleted.
    harness.graphite_back();
    harness.wait_delivered(1_700_000_300).await;
    for _ in 0..200 {
        if !dir.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("snapshot not deleted after delivery");
}

/// Kafka (librdkafka's in-process mock cluster) beside Graphite. With the
/// broker down, the KafkaSink holds the snapshot's lines; it crashes: it is
/// restarted, the snapshot is processed again and handed to Kafka only
/// (Graphite had it already), and once the broker is back the lines reach
/// the topic and the snapshot leaves src-dir.
#[actix_rt::test]
async fn a_kafka_sink_that_dies_holding_lines_is_restarted_and_nothing_is_lost() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::mocking::MockCluster;
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("metrics", 1, 1).expect("topic");
    cluster.broker_down(1).expect("broker down");
    let brokers = cluster.bootstrap_servers();
    let graphite = FakeGraphite::start();
    let mut harness = Harness::start_with(RestartLimit::default(), graphite.port(), |config| {
        let text = format!("[kafka]\nbrokers = {brokers}\ntopic = metrics\n");
        let loaded =
            crate::config::load_str(&text, &crate::sink::options()).expect("kafka section");
        config.kafka = loaded.config.kafka;
    });
    harness.graphite = Some(graphite);
    harness.wait_all_alive().await;
    let ts = 1_700_000_400;
    let dir = publish(&harness.src(), ts);
    harness.wait_delivered(ts).await;
    let graphite_lines = harness.lines().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(dir.is_dir(), "deleted before Kafka had its lines");

    harness.crash(ChildKind::Sink("kafka")).await;
    harness.wait_restarts(1).await;
    harness.wait_all_alive().await;
    for _ in 0..200 {
        if harness.stats().await.processed >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(harness.stats().await.processed, 2, "processed again");
    assert!(dir.is_dir());

    cluster.broker_up(1).expect("broker up");
    for _ in 0..600 {
        if !dir.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!dir.exists(), "snapshot not deleted once Kafka had it");
    assert_eq!(
        harness.lines().len(),
        graphite_lines,
        "Graphite, which had acknowledged it, did not get the snapshot twice"
    );

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("group.id", "supervisor-test")
        .create()
        .expect("consumer");
    let mut partitions = TopicPartitionList::new();
    partitions
        .add_partition_offset("metrics", 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&partitions).expect("assign");
    let suffix = format!(" {ts}");
    let mut topic = Vec::new();
    for _ in 0..100 {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let payload = String::from_utf8_lossy(message.payload().unwrap_or_default());
                topic.extend(payload.lines().map(str::to_owned));
            }
            Some(Err(error)) => panic!("consumer: {error}"),
            None if !topic.is_empty() => break,
            None => {}
        }
    }
    // The snapshot's own lines are the same for both sinks; the self
    // metrics were made at each processing and differ.
    let snapshot_lines: Vec<String> = harness
        .lines()
        .into_iter()
        .filter(|line| line.ends_with(&suffix) && !line.contains(".haproxystats."))
        .collect();
    assert!(snapshot_lines.len() > 100, "{}", snapshot_lines.len());
    for line in &snapshot_lines {
        assert!(topic.contains(line), "{line:?} not in the topic");
    }
    assert!(
        topic
            .iter()
            .any(|line| line.starts_with("t.haproxy.haproxystats.KafkaBacklog ")),
        "the self metrics go to Kafka too"
    );
}

/// A sink the Supervisor knows nothing about: it keeps the lines in memory.
/// Given to the Supervisor as a `SinkSpec` only, it gets every snapshot,
/// holds back its removal until it acknowledges, is restarted after a
/// crash, and its self metric reaches the other sinks: what adding a sink
/// takes (besides its section and a line in `sink::SINKS`).
mod memory_sink {
    use std::sync::{Arc, Mutex};

    use actix::prelude::*;

    use crate::sink::messages::{Flush, GetSinkHealth, SendLinesAcked, SinkHealth};

    pub struct MemorySink {
        pub lines: Arc<Mutex<Vec<String>>>,
        /// While set, nothing is acknowledged (the acknowledgements wait here).
        pub hold: Arc<Mutex<bool>>,
        pub held: Vec<SendLinesAcked>,
    }

    impl Actor for MemorySink {
        type Context = Context<Self>;

        fn started(&mut self, ctx: &mut Context<Self>) {
            ctx.run_interval(std::time::Duration::from_millis(20), |sink, _| {
                if !*sink.hold.lock().expect("hold") {
                    for batch in sink.held.drain(..) {
                        let text =
                            String::from_utf8_lossy(&batch.lines.chunks().concat()).into_owned();
                        let mut lines = sink.lines.lock().expect("lines");
                        lines.extend(text.lines().map(str::to_owned));
                        let _ = batch.written.send(());
                    }
                }
            });
        }
    }

    impl Handler<SendLinesAcked> for MemorySink {
        type Result = ();

        fn handle(&mut self, batch: SendLinesAcked, _: &mut Context<Self>) {
            self.held.push(batch);
        }
    }

    impl Handler<Flush> for MemorySink {
        type Result = u64;

        fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> u64 {
            self.held.len() as u64
        }
    }

    impl Handler<GetSinkHealth> for MemorySink {
        type Result = SinkHealth;

        fn handle(&mut self, _: GetSinkHealth, _: &mut Context<Self>) -> SinkHealth {
            let stored = self.lines.lock().expect("lines").len() as u64;
            SinkHealth {
                backlog: self.held.len() as u64,
                metrics: vec![("MemoryLines", stored)],
                ..SinkHealth::default()
            }
        }
    }

    impl Handler<crate::common::Crash> for MemorySink {
        type Result = ();

        fn handle(&mut self, _: crate::common::Crash, _: &mut Context<Self>) {
            panic!("injected memory sink crash");
        }
    }
}

#[actix_rt::test]
async fn a_sink_given_as_a_spec_alone_is_delivered_to_waited_for_restarted_and_reported() {
    use std::sync::{Arc, Mutex};

    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let hold = Arc::new(Mutex::new(true));
    let spec = {
        let (lines, hold) = (Arc::clone(&lines), Arc::clone(&hold));
        crate::sink::SinkSpec::new("memory", move || memory_sink::MemorySink {
            lines: Arc::clone(&lines),
            hold: Arc::clone(&hold),
            held: Vec::new(),
        })
    };
    let graphite = FakeGraphite::start();
    let mut harness =
        Harness::start_with_sinks(RestartLimit::default(), graphite.port(), |_| {}, vec![spec]);
    harness.graphite = Some(graphite);
    harness.wait_all_alive().await;
    let alive = harness.supervisor.send(ChildrenAlive).await.expect("alive");
    assert!(
        alive.contains(&(ChildKind::Sink("memory"), true)),
        "{alive:?}"
    );

    // Held: Graphite has the snapshot, the memory sink has not acknowledged
    // it, so it stays in src-dir.
    let dir = publish(&harness.src(), 1_700_000_500);
    harness.wait_delivered(1_700_000_500).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        dir.is_dir(),
        "removed before the memory sink acknowledged it"
    );

    // It dies holding it: restarted, and the snapshot comes again.
    harness.crash(ChildKind::Sink("memory")).await;
    harness.wait_restarts(1).await;
    harness.wait_all_alive().await;
    *hold.lock().expect("hold") = false;
    for _ in 0..200 {
        if !dir.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!dir.exists(), "not removed once every sink acknowledged it");
    let stored = lines.lock().expect("lines").clone();
    let graphite_lines: Vec<String> = harness
        .lines()
        .into_iter()
        .filter(|line| line.ends_with(" 1700000500") && !line.contains(".haproxystats."))
        .collect();
    assert!(!graphite_lines.is_empty());
    for line in &graphite_lines {
        assert!(stored.contains(line), "{line:?} not in the memory sink");
    }

    // Its self metric goes out with the next snapshot, to every sink.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    publish(&harness.src(), 1_700_000_510);
    harness.wait_delivered(1_700_000_510).await;
    let metric = harness.lines().into_iter().find(|line| {
        line.starts_with("t.haproxy.haproxystats.MemoryLines ") && line.ends_with(" 1700000510")
    });
    let count: usize = metric
        .as_deref()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no MemoryLines metric: {metric:?}"));
    assert_eq!(count, stored.len(), "{metric:?}");
}
