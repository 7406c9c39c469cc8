//! `haproxystats process` with Graphite and Kafka (a real broker, tansu,
//! behind a proxy the test cuts): through a 30 s Kafka outage Graphite
//! keeps receiving on time, every snapshot stays in src-dir until every
//! sink has it, and after the outage every line is in the topic; a kill -9
//! with deliveries in flight loses nothing.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::Haproxystats;
use support::fake_graphite::FakeGraphite;
use support::kafka::{Broker, ONE_RECORD_PER_BATCH};
use support::snapshots::{Shape, publish_snapshot, replay_lines};

const TOPIC: &str = "metrics";

const SHAPE: Shape = Shape {
    processes: 2,
    frontends: 5,
    backends: 5,
    servers: 4,
};

fn write_conf(root: &Path, src: &Path, graphite: u16, brokers: &str) -> PathBuf {
    let conf = root.join("haproxystats.conf");
    fs::write(
        &conf,
        format!(
            "[paths]\nbase-dir = {root}\n\n[process]\nsrc-dir = {src}\nworkers = 2\n\n\
             [graphite]\nserver = 127.0.0.1\nport = {graphite}\nnamespace = test\n\
             prefix-hostname = false\n\n\
             [kafka]\nbrokers = {brokers}\ntopic = {TOPIC}\nkey = lb1\n{ONE_RECORD_PER_BATCH}",
            root = root.display(),
            src = src.display()
        ),
    )
    .expect("write conf");
    conf
}

fn snapshots_in(src: &Path) -> usize {
    fs::read_dir(src)
        .unwrap_or_else(|e| panic!("read src-dir {}: {e}", src.display()))
        .count()
}

/// The lines of these snapshots a sink must get (self metrics vary).
fn expected(conf: &Path, dirs: &[PathBuf]) -> BTreeSet<String> {
    replay_lines(conf, dirs)
        .into_iter()
        .filter(|line| !line.contains(".haproxystats."))
        .collect()
}

fn wait(what: &str, timeout: Duration, daemon: &Haproxystats, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} after {timeout:?}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until src-dir is empty, then stops the daemon: exit 0.
fn drained_and_stopped(daemon: &mut Haproxystats, src: &Path, what: &str) {
    wait(what, Duration::from_secs(60), daemon, || {
        snapshots_in(src) == 0
    });
    assert_eq!(daemon.terminate(Duration::from_secs(20)), Some(0));
}

/// Lines read back from the topic.
fn topic_lines(records: &[support::kafka::Record]) -> BTreeSet<String> {
    support::kafka::lines_of(records).into_iter().collect()
}

/// A src-dir, a directory to make snapshots in, both sinks, the configuration.
struct Setup {
    root: tempfile::TempDir,
    src: PathBuf,
    generated: PathBuf,
    graphite: FakeGraphite,
    broker: Broker,
    conf: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let root = tempfile::tempdir().expect("tempdir");
        let src = root.path().join("incoming");
        let generated = root.path().join("generated");
        fs::create_dir(&src).expect("src-dir");
        fs::create_dir(&generated).expect("generated");
        let graphite = FakeGraphite::start();
        let broker = Broker::start();
        broker.create_topic(TOPIC, 1);
        let conf = write_conf(root.path(), &src, graphite.port(), &broker.brokers());
        Setup {
            root,
            src,
            generated,
            graphite,
            broker,
            conf,
        }
    }
}

#[test]
fn one_sink_down_does_not_hold_back_the_other_and_nothing_is_lost() {
    let Setup {
        conf,
        broker,
        graphite,
        generated,
        src,
        root,
    } = Setup::new();
    // Made aside and moved in one at a time, so that what each must give is
    // known before the daemon deletes it.
    let snapshots: Vec<(PathBuf, BTreeSet<String>)> = (0..4u32)
        .map(|i| {
            let dir = publish_snapshot(&generated, 1_700_000_000 + 10 * u64::from(i), i + 1, SHAPE);
            let lines = expected(&conf, std::slice::from_ref(&dir));
            (dir, lines)
        })
        .collect();
    let move_in = |dir: &Path| {
        let to = src.join(dir.file_name().expect("a name"));
        fs::rename(dir, &to).expect("move into src-dir");
        to
    };
    let mut daemon = Haproxystats::start(&["process"], &conf, &root.path().join("process.log"));

    let first = move_in(&snapshots[0].0);
    wait(
        "the first snapshot still in src-dir",
        Duration::from_secs(30),
        &daemon,
        || !first.exists(),
    );

    // A 30 s outage, a snapshot every 10 s: each reaches Graphite on time
    // (within a few seconds, as with Kafka up) and stays in src-dir.
    broker.cut();
    let outage = Instant::now();
    for (n, (dir, lines)) in snapshots.iter().enumerate().skip(1) {
        let moved = Instant::now();
        move_in(dir);
        wait(
            "Graphite held back by the Kafka outage",
            Duration::from_secs(5),
            &daemon,
            || {
                let got: BTreeSet<String> = graphite.lines().into_iter().collect();
                lines.is_subset(&got)
            },
        );
        std::thread::sleep(Duration::from_secs(10).saturating_sub(moved.elapsed()));
        // Graphite has them, Kafka not: they stay.
        assert_eq!(
            snapshots_in(&src),
            n,
            "deleted before Kafka had them\n{}",
            daemon.log()
        );
    }
    assert!(outage.elapsed() >= Duration::from_secs(30));

    broker.restore();
    drained_and_stopped(&mut daemon, &src, "src-dir not emptied after the outage");
    assert!(
        daemon.log().contains("every snapshot delivered"),
        "{}",
        daemon.log()
    );

    let want: BTreeSet<String> = snapshots
        .iter()
        .flat_map(|(_, lines)| lines.iter().cloned())
        .collect();
    let records = broker.read(TOPIC, 1, Duration::from_secs(30), |records| {
        want.is_subset(&topic_lines(records))
    });
    assert!(
        records
            .iter()
            .all(|r| r.key.as_deref() == Some(&b"lb1"[..]))
    );
    let got = topic_lines(&records);
    for name in [
        "KafkaBacklog",
        "KafkaDroppedLines",
        "KafkaDeliveryErrors",
        "KafkaMessagesSent",
    ] {
        let path = format!("test.haproxy.haproxystats.{name} ");
        assert!(
            got.iter().any(|l| l.starts_with(&path)),
            "no {name} self metric"
        );
    }
}

#[test]
fn a_kill_9_with_deliveries_in_flight_loses_nothing() {
    // The Graphite peer must outlive the daemon: held, not used.
    let Setup {
        generated,
        graphite: _graphite,
        broker,
        conf,
        src,
        root,
    } = Setup::new();
    let dirs: Vec<PathBuf> = (0..6u32)
        .map(|i| publish_snapshot(&generated, 1_700_000_000 + 10 * u64::from(i), i + 1, SHAPE))
        .collect();
    let want = expected(&conf, &dirs);
    let mut daemon = Haproxystats::start(&["process"], &conf, &root.path().join("first.log"));
    // The daemon is up once it has written its status file.
    wait("no status file", Duration::from_secs(10), &daemon, || {
        root.path().join("haproxystats.status").exists()
    });
    for (n, dir) in dirs.iter().enumerate() {
        fs::rename(dir, src.join(dir.file_name().expect("a name"))).expect("move into src-dir");
        if n == 3 {
            // Mid-stream: some snapshots delivered, some in librdkafka's
            // hands, some not processed yet.
            std::thread::sleep(Duration::from_millis(150));
            daemon.proc().signal(libc::SIGKILL);
        }
    }
    assert!(
        daemon.proc().wait_exit(Duration::from_secs(5)).is_some(),
        "not killed"
    );
    let kept = snapshots_in(&src);
    assert!(
        kept > 0,
        "everything was delivered before the kill: nothing tested"
    );

    let mut daemon = Haproxystats::start(&["process"], &conf, &root.path().join("second.log"));
    drained_and_stopped(&mut daemon, &src, "src-dir not emptied after the restart");
    let records = broker.read(TOPIC, 1, Duration::from_secs(30), |records| {
        want.is_subset(&topic_lines(records))
    });
    let sent: Vec<String> = records
        .iter()
        .flat_map(|r| {
            String::from_utf8_lossy(&r.payload)
                .lines()
                .filter(|l| !l.contains(".haproxystats."))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    // At-least-once: what was in flight at the kill may come twice.
    let duplicates = sent.len()
        - topic_lines(&records)
            .iter()
            .filter(|l| !l.contains(".haproxystats."))
            .count();
    eprintln!("{kept} snapshots kept at the kill; {duplicates} duplicate lines in the topic");
    assert!(sent.len() >= want.len());
}
