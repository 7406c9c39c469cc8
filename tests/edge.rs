//! An edge (`[process] local = false`, `[kafka] snapshots-topic`): every
//! snapshot goes to the snapshots topic as Arrow IPC parts, on a real
//! broker (tansu), and leaves src-dir only once the broker has every part;
//! through an outage it stays. What a central consumer decodes from the
//! parts gives exactly the lines `replay` gives for the snapshot itself.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::Haproxystats;
use support::kafka::{Broker, ONE_RECORD_PER_BATCH, Record};
use support::snapshots::{Shape, publish_snapshot, replay_lines};

const TOPIC: &str = "snapshots";

/// Some 3 MB of CSV: several parts under the 1 MB messages set below.
const BIG: Shape = Shape {
    processes: 2,
    frontends: 60,
    backends: 60,
    servers: 40,
};

const SMALL: Shape = Shape {
    processes: 2,
    frontends: 3,
    backends: 3,
    servers: 2,
};

struct Edge {
    root: tempfile::TempDir,
    src: PathBuf,
    generated: PathBuf,
    broker: Broker,
    conf: PathBuf,
}

impl Edge {
    fn new() -> Edge {
        let root = tempfile::tempdir().expect("tempdir");
        let src = root.path().join("incoming");
        let generated = root.path().join("generated");
        fs::create_dir(&src).expect("src-dir");
        fs::create_dir(&generated).expect("generated");
        let broker = Broker::start();
        broker.create_topic(TOPIC, 2);
        let conf = root.path().join("haproxystats.conf");
        fs::write(
            &conf,
            format!(
                "[paths]\nbase-dir = {root}\n\n[process]\nsrc-dir = {src}\nworkers = 2\nlocal = false\n\n\
                 [graphite]\nnamespace = test\nprefix-hostname = false\n\n\
                 [kafka]\nbrokers = {brokers}\nsnapshots-topic = {TOPIC}\ncluster = eu\n\
                 lb-name = lb-7\nmessage-max-bytes = 1000000\n{ONE_RECORD_PER_BATCH}",
                root = root.path().display(),
                src = src.display(),
                brokers = broker.brokers(),
            ),
        )
        .expect("write conf");
        Edge {
            root,
            src,
            generated,
            broker,
            conf,
        }
    }

    fn start(&self) -> Haproxystats {
        Haproxystats::start(&["process"], &self.conf, &self.root.path().join("edge.log"))
    }

    /// A generated snapshot moved into src-dir; a copy stays in `generated`.
    fn move_in(&self, ts: u64, seed: u32, shape: Shape) -> PathBuf {
        let made = publish_snapshot(&self.generated, ts, seed, shape);
        let copy = self.root.path().join("copies").join(ts.to_string());
        fs::create_dir_all(&copy).expect("copy dir");
        for entry in fs::read_dir(&made).expect("list") {
            let entry = entry.expect("entry");
            fs::copy(entry.path(), copy.join(entry.file_name())).expect("copy");
        }
        fs::rename(&made, self.src.join(ts.to_string())).expect("move into src-dir");
        copy
    }

    fn snapshots_in_src(&self) -> usize {
        fs::read_dir(&self.src).expect("src-dir").count()
    }
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

/// The parts of each snapshot (by ts), in part order, each once.
fn by_snapshot(records: &[Record]) -> BTreeMap<u64, Vec<&Record>> {
    let mut snapshots: BTreeMap<u64, BTreeMap<usize, &Record>> = BTreeMap::new();
    for record in records {
        let number = |name: &str| -> u64 {
            record
                .header(name)
                .unwrap_or_else(|| panic!("no {name} header"))
                .parse()
                .unwrap_or_else(|e| panic!("{name} header: {e}"))
        };
        let part = usize::try_from(number("part")).expect("part");
        snapshots
            .entry(number("ts"))
            .or_default()
            .insert(part, record);
    }
    snapshots
        .into_iter()
        .map(|(ts, parts)| (ts, parts.into_values().collect()))
        .collect()
}

/// Every part of the snapshot is there, with the headers SPEC §5 lists.
fn complete(parts: &[&Record]) -> bool {
    let Some(first) = parts.first() else {
        return false;
    };
    let parts_header: usize = first
        .header("parts")
        .and_then(|p| p.parse().ok())
        .unwrap_or(usize::MAX);
    parts.len() == parts_header
}

/// `replay`'s lines but its timings, which differ from run to run.
fn replayed(conf: &Path, dir: &Path) -> BTreeSet<String> {
    replay_lines(conf, &[dir.to_path_buf()])
        .into_iter()
        .filter(|line| !line.contains("WallClockTime"))
        .collect()
}

/// The `show stat` fields of the first socket of a snapshot's parts.
fn fields_sent(parts: &[&Record]) -> Vec<String> {
    let payloads: Vec<&[u8]> = parts.iter().map(|r| r.payload.as_slice()).collect();
    let decoded = haproxystats::raw::decode(&payloads).unwrap_or_else(|e| panic!("decode: {e}"));
    let segment = decoded
        .sockets
        .iter()
        .flat_map(|s| &s.segments)
        .next()
        .expect("a socket with show stat rows");
    segment
        .field_names()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// What a central consumer makes of the parts: decoded, written as a
/// snapshot directory, replayed.
fn replayed_from_parts(conf: &Path, parts: &[&Record], dir: &Path) -> BTreeSet<String> {
    let payloads: Vec<&[u8]> = parts.iter().map(|r| r.payload.as_slice()).collect();
    let decoded = haproxystats::raw::decode(&payloads).unwrap_or_else(|e| panic!("decode: {e}"));
    haproxystats::raw::write_dir(&decoded, dir).unwrap_or_else(|e| panic!("write_dir: {e}"));
    replayed(conf, dir)
}

#[test]
fn an_edge_publishes_each_snapshot_whole_in_parts_and_then_deletes_it() {
    let edge = Edge::new();
    let mut daemon = edge.start();
    let snapshots = [
        (1_700_000_000, edge.move_in(1_700_000_000, 1, BIG)),
        (1_700_000_010, edge.move_in(1_700_000_010, 2, SMALL)),
        (1_700_000_020, edge.move_in(1_700_000_020, 3, SMALL)),
    ];
    wait(
        "src-dir not emptied",
        Duration::from_secs(60),
        &daemon,
        || edge.snapshots_in_src() == 0,
    );
    assert_eq!(daemon.terminate(Duration::from_secs(20)), Some(0));

    let records = edge
        .broker
        .read(TOPIC, 2, Duration::from_secs(30), |records| {
            let got = by_snapshot(records);
            got.len() == snapshots.len() && got.values().all(|parts| complete(parts))
        });
    let got = by_snapshot(&records);
    for (ts, copy) in &snapshots {
        let parts = &got[ts];
        for (n, part) in parts.iter().enumerate() {
            assert_eq!(part.key.as_deref(), Some(&b"lb-7"[..]), "key");
            assert_eq!(part.header("lb").as_deref(), Some("lb-7"));
            assert_eq!(part.header("cluster").as_deref(), Some("eu"));
            assert_eq!(part.header("interval").as_deref(), Some("10"));
            assert_eq!(part.header("format").as_deref(), Some("arrow-ipc/1"));
            assert_eq!(part.header("part"), Some(n.to_string()));
            assert!(
                part.payload.len() < 1_000_000,
                "part {n}: {} bytes",
                part.payload.len()
            );
            // One key, one partition: the parts keep their order.
            assert_eq!(part.partition, parts[0].partition);
        }
        let rebuilt = edge.root.path().join("rebuilt").join(ts.to_string());
        let want = replayed(&edge.conf, copy);
        assert!(want.len() > 100, "{} lines", want.len());
        let got = replayed_from_parts(&edge.conf, parts, &rebuilt);
        let missing: Vec<_> = want.difference(&got).take(5).collect();
        let extra: Vec<_> = got.difference(&want).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "snapshot {ts}: missing {missing:?}, extra {extra:?}"
        );
    }
    assert!(
        got[&1_700_000_000].len() > 1,
        "the big snapshot needs several parts"
    );
    // `snapshot-fields` is `engine` by default: what the engine reads,
    // names and statuses, not the rest.
    let fields = fields_sent(&got[&1_700_000_000]);
    assert!(
        fields.iter().any(|f| f == "check_status") && !fields.iter().any(|f| f == "pid"),
        "{fields:?}"
    );
}

#[test]
fn through_a_broker_outage_snapshots_stay_in_src_dir_until_every_part_is_in() {
    let edge = Edge::new();
    // librdkafka gives up on a message after 2 s: the sink sends the parts
    // again, several times during the outage.
    let text = fs::read_to_string(&edge.conf).expect("conf");
    let conf = edge.root.path().join("outage.conf");
    fs::write(&conf, format!("{text}message-timeout = 2\n")).expect("write conf");
    let mut daemon = Haproxystats::start(&["process"], &conf, &edge.root.path().join("outage.log"));
    edge.move_in(1_700_000_000, 1, SMALL);
    wait(
        "the first snapshot not published",
        Duration::from_secs(30),
        &daemon,
        || edge.snapshots_in_src() == 0,
    );
    edge.broker.cut();
    edge.move_in(1_700_000_010, 2, BIG);
    edge.move_in(1_700_000_020, 3, SMALL);
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        edge.snapshots_in_src(),
        2,
        "deleted before the broker had them\n{}",
        daemon.log()
    );
    edge.broker.restore();
    wait(
        "src-dir not emptied after the outage",
        Duration::from_secs(60),
        &daemon,
        || edge.snapshots_in_src() == 0,
    );
    assert_eq!(daemon.terminate(Duration::from_secs(20)), Some(0));
    let records = edge
        .broker
        .read(TOPIC, 2, Duration::from_secs(30), |records| {
            let got = by_snapshot(records);
            got.len() == 3 && got.values().all(|parts| complete(parts))
        });
    assert_eq!(by_snapshot(&records).len(), 3);
    assert!(
        daemon
            .log()
            .contains("snapshot not taken by the broker; sending it again"),
        "{}",
        daemon.log()
    );
}

/// Pulling real HAProxy instances, an edge beats on multiples of the pull
/// interval since the epoch, so every load balancer's snapshot of a slot
/// carries the same `ts`; each snapshot holds every socket.
#[test]
fn an_edge_pulling_real_haproxy_publishes_epoch_aligned_snapshots_of_every_socket() {
    let fleet = support::haproxy::HaproxyFleet::start(2, support::FleetOptions::default());
    let edge = Edge::new();
    let conf = edge.root.path().join("pulling.conf");
    fs::write(
        &conf,
        format!(
            "[paths]\nbase-dir = {root}\n\n\
             [pull]\nsocket-dir = {sockets}\npull-interval = 2\npull-timeout = 0.9\n\
             dst-dir = {src}\ntmp-dst-dir = {root}/incoming.tmp\n\n\
             [process]\nsrc-dir = {src}\nlocal = false\n\n\
             [kafka]\nbrokers = {brokers}\nsnapshots-topic = {TOPIC}\nlb-name = edge-1\n{ONE_RECORD_PER_BATCH}",
            root = edge.root.path().display(),
            sockets = fleet.socket_dir().display(),
            src = edge.src.display(),
            brokers = edge.broker.brokers(),
        ),
    )
    .expect("write conf");
    let mut daemon = Haproxystats::start(&[], &conf, &edge.root.path().join("pulling.log"));
    let records = edge
        .broker
        .read(TOPIC, 2, Duration::from_secs(40), |records| {
            let got = by_snapshot(records);
            got.values().filter(|parts| complete(parts)).count() >= 3
        });
    // `check` judges an edge by its pulls, hand-overs and the snapshots
    // sink: all fresh.
    let check = std::process::Command::new(support::haproxystats::BIN)
        .arg("-f")
        .arg(&conf)
        .arg("check")
        .output()
        .expect("run check");
    let line = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(0), "{line}");
    assert!(line.contains("snapshots backlog"), "{line}");
    assert!(line.contains("last process "), "a hand-over counts: {line}");
    assert!(line.contains("last snapshots push"), "{line}");
    assert_eq!(
        daemon.terminate(Duration::from_secs(20)),
        Some(0),
        "{}",
        daemon.log()
    );
    for (ts, parts) in by_snapshot(&records)
        .iter()
        .filter(|(_, parts)| complete(parts))
    {
        assert_eq!(ts % 2, 0, "snapshot {ts} is not on a 2 s slot");
        assert_eq!(parts[0].header("interval").as_deref(), Some("2"));
        assert_eq!(parts[0].key.as_deref(), Some(&b"edge-1"[..]));
        let payloads: Vec<&[u8]> = parts.iter().map(|r| r.payload.as_slice()).collect();
        let decoded =
            haproxystats::raw::decode(&payloads).unwrap_or_else(|e| panic!("decode: {e}"));
        let dir = edge.root.path().join("pulled-back").join(ts.to_string());
        haproxystats::raw::write_dir(&decoded, &dir).unwrap_or_else(|e| panic!("write_dir: {e}"));
        let stat_files = fs::read_dir(&dir)
            .expect("written")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with("_stat"))
            })
            .count();
        assert_eq!(stat_files, 2, "snapshot {ts}: one stat file per socket");
    }
}

/// A snapshots topic nobody created: one line says so at start, and the
/// snapshots wait in src-dir.
#[test]
fn an_edge_whose_topic_is_missing_says_so_and_keeps_its_snapshots() {
    let edge = Edge::new();
    let text = fs::read_to_string(&edge.conf).expect("conf");
    let conf = edge.root.path().join("missing-topic.conf");
    fs::write(
        &conf,
        text.replace(
            &format!("snapshots-topic = {TOPIC}"),
            "snapshots-topic = nowhere",
        ),
    )
    .expect("write conf");
    let mut daemon =
        Haproxystats::start(&["process"], &conf, &edge.root.path().join("missing.log"));
    edge.move_in(1_700_000_000, 1, SMALL);
    wait(
        "no line about the missing topic",
        Duration::from_secs(20),
        &daemon,
        || daemon.log().contains("the snapshots topic does not exist"),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(edge.snapshots_in_src(), 1, "{}", daemon.log());
    let line = daemon
        .log()
        .lines()
        .find(|line| line.contains("the snapshots topic does not exist"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(line.contains("nowhere"), "{line}");
    // The stop's drain ends after its 10 s bound; the snapshot stays.
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    assert_eq!(edge.snapshots_in_src(), 1);
}

/// `local = true` (the default) with a snapshots topic: the node processes
/// and sends its lines as usual (Graphite, Kafka's `topic`), and publishes
/// the raw snapshots too; a snapshot leaves src-dir once every sink has it.
#[test]
fn a_node_that_processes_and_publishes_does_both_before_deleting() {
    let edge = Edge::new();
    let graphite = support::fake_graphite::FakeGraphite::start();
    let text = fs::read_to_string(&edge.conf).expect("conf");
    let conf = edge.root.path().join("both.conf");
    fs::write(
        &conf,
        text.replace("local = false\n", "")
            .replace("cluster = eu\n", "cluster = eu\nsnapshot-fields = all\n")
            .replace(
                "prefix-hostname = false\n",
                &format!(
                    "prefix-hostname = false\nserver = 127.0.0.1\nport = {}\n",
                    graphite.port()
                ),
            ),
    )
    .expect("write conf");
    // With [kafka], the metric lines go to Kafka's `topic` too.
    edge.broker.create_topic("haproxystats.metrics", 1);
    let mut daemon = Haproxystats::start(&["process"], &conf, &edge.root.path().join("both.log"));
    let copy = edge.move_in(1_700_000_000, 1, SMALL);
    wait(
        "src-dir not emptied",
        Duration::from_secs(30),
        &daemon,
        || edge.snapshots_in_src() == 0,
    );
    assert_eq!(daemon.terminate(Duration::from_secs(20)), Some(0));
    let want = replayed(&conf, &copy);
    let sent: BTreeSet<String> = graphite.lines().into_iter().collect();
    assert!(
        want.is_subset(&sent),
        "Graphite lacks lines of the snapshot"
    );
    assert!(
        sent.iter()
            .any(|line| line.starts_with("test.haproxy.haproxystats.SnapshotsPublished ")),
        "the publisher's self metrics go with the lines"
    );
    let records = edge
        .broker
        .read(TOPIC, 2, Duration::from_secs(30), |records| {
            by_snapshot(records).values().any(|parts| complete(parts))
        });
    let got = by_snapshot(&records);
    let rebuilt = edge.root.path().join("both-rebuilt").join("1700000000");
    assert_eq!(
        replayed_from_parts(&conf, &got[&1_700_000_000], &rebuilt),
        want
    );
    // `snapshot-fields = all`: every field of the header.
    let fields = fields_sent(&got[&1_700_000_000]);
    let header = fs::read_dir(&copy)
        .expect("copy")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with("_stat"))
        .map(|e| fs::read_to_string(e.path()).expect("stat"))
        .expect("a _stat file");
    let header: Vec<&str> = header
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches('#')
        .split(',')
        .map(str::trim)
        .collect();
    assert_eq!(fields, header);
}
