//! `haproxystats central` (SPEC §7, stage 1) against a real broker
//! (tansu): raw snapshots of three load balancers, as edges publish them
//! (`raw::encode`, SPEC §5 headers), give each load balancer exactly the
//! lines `replay` gives for its snapshot under `<namespace>.<lb>.haproxy`;
//! bad messages of every kind are counted, skipped and committed past, and
//! the good ones after them are still processed; each snapshot's partial
//! aggregate is in the partials topic, and the partials merged equal
//! `replay` of all the load balancers' files in one directory; offsets are
//! committed only once every sink has the lines; central creates the
//! partials and state topics it finds missing.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use support::Haproxystats;
use support::kafka::{Broker, ONE_RECORD_PER_BATCH};
use support::snapshots::{Shape, publish_snapshot, replay_lines};

const TOPIC: &str = "snaps";
const PARTITIONS: i32 = 2;
const GROUP: &str = "haproxystats-central";

const SHAPE: Shape = Shape {
    processes: 2,
    frontends: 4,
    backends: 4,
    servers: 3,
};

/// A recent slot: the `ts` of the snapshots (central refuses a week old).
fn slot() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    now - now % 10 - 600
}

struct Setup {
    root: tempfile::TempDir,
    broker: Broker,
    producer: FutureProducer,
    store: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let root = tempfile::tempdir().expect("tempdir");
        let broker = Broker::start();
        broker.create_topic(TOPIC, PARTITIONS as u32);
        // Not the partials and state topics: central creates them.
        // [kafka] is there for the snapshots topic, and its `topic` is set:
        // its lines go to the Kafka sink's topic too, a second sink to wait for.
        broker.create_topic("haproxystats.metrics", 1);
        let producer = broker
            .producer_config()
            .set("acks", "all")
            .create()
            .unwrap_or_else(|e| panic!("producer: {e}"));
        let store = root.path().join("store");
        Setup {
            root,
            broker,
            producer,
            store,
        }
    }

    /// Central's configuration; `graphite` is the section's body.
    fn conf(&self, name: &str, graphite: &str) -> PathBuf {
        let conf = self.root.path().join(name);
        fs::write(
            &conf,
            format!(
                "[paths]\nbase-dir = {root}\n\n[pull]\npull-interval = 1\n\n\
                 [graphite]\n{graphite}namespace = test\nprefix-hostname = true\n\n\
                 [local-store]\ndir = {store}\n\n\
                 [kafka]\nbrokers = {brokers}\nsnapshots-topic = {TOPIC}\n\
                 topic = haproxystats.metrics\n{ONE_RECORD_PER_BATCH}\n\
                 [central]\nworkers = 2\n",
                root = self.root.path().display(),
                store = self.store.display(),
                brokers = self.broker.brokers(),
            ),
        )
        .expect("write conf");
        conf
    }

    /// A snapshot directory from gen_snapshot.py.
    fn generated(&self, ts: u64, seed: u32) -> PathBuf {
        let out = self.root.path().join(format!("gen-{seed}"));
        fs::create_dir_all(&out).expect("gen dir");
        publish_snapshot(&out, ts, seed, SHAPE)
    }

    /// A snapshot directory of the captures in tests/fixtures/stat.
    fn captured(&self, ts: u64) -> PathBuf {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stat");
        let dir = self.root.path().join("captured").join(ts.to_string());
        fs::create_dir_all(&dir).expect("captured dir");
        for (from, to) in [
            ("2.5.5_show_stat.csv", "haproxy1_stat"),
            ("2.5.5_show_info.txt", "haproxy1_info"),
            ("2.7.1_show_info.txt", "haproxy2_info"),
            ("2.6_show_stat.csv", "haproxy2_stat"),
        ] {
            fs::copy(fixtures.join(from), dir.join(to))
                .unwrap_or_else(|e| panic!("{from}: {e} (tests/fixtures/stat must be there)"));
        }
        dir
    }

    /// Sends one message; `headers` as given (name, value).
    fn send(&self, key: &str, headers: &[(&str, String)], value: &[u8]) {
        self.send_to(To::default(), key, headers, value);
    }

    /// The same, where `to` says, stamped as it says.
    fn send_to(&self, to: To, key: &str, headers: &[(&str, String)], value: &[u8]) {
        let mut owned = OwnedHeaders::new();
        for (name, text) in headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(text.as_bytes()),
            });
        }
        let mut record = FutureRecord::to(to.topic.unwrap_or(TOPIC))
            .key(key.as_bytes())
            .payload(value)
            .headers(owned);
        record.partition = to.partition;
        record.timestamp = to.timestamp_ms;
        futures_executor(
            self.producer
                .send(record, Timeout::After(Duration::from_secs(30))),
        )
        .unwrap_or_else(|(e, _)| panic!("send: {e}"));
    }

    /// Publishes `dir` as an edge of `lb` would: parts under `max` bytes.
    fn publish(&self, lb: &str, dir: &Path, max: usize) -> usize {
        let encoded = haproxystats::raw::encode(dir, max).unwrap_or_else(|e| panic!("encode: {e}"));
        let parts = encoded.parts.len();
        for (n, part) in encoded.parts.iter().enumerate() {
            self.send(lb, &headers(lb, encoded.ts as u64, n, parts), part);
        }
        parts
    }

    fn stored(&self, lb: &str, ts: u64) -> Option<BTreeSet<String>> {
        let text =
            fs::read_to_string(self.store.join(lb).join(ts.to_string()).join("stats")).ok()?;
        Some(
            text.lines()
                .filter(|l| !l.contains("WallClockTime"))
                .map(str::to_owned)
                .collect(),
        )
    }

    /// The group's committed offsets, summed over the partitions.
    fn committed(&self) -> i64 {
        self.broker
            .committed_offsets(GROUP, TOPIC, PARTITIONS)
            .map_or(-1, |offsets| offsets.iter().sum())
    }

    /// Messages in the topic, over the partitions.
    fn end(&self) -> i64 {
        self.broker.end_offsets(TOPIC, PARTITIONS).iter().sum()
    }

    fn status(&self) -> String {
        fs::read_to_string(self.root.path().join("haproxystats.status")).unwrap_or_default()
    }
}

/// Where a message goes and its timestamp, when not the producer's choice.
#[derive(Default, Clone, Copy)]
struct To {
    topic: Option<&'static str>,
    partition: Option<i32>,
    timestamp_ms: Option<i64>,
}

fn futures_executor<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

fn headers(lb: &str, ts: u64, part: usize, parts: usize) -> Vec<(&'static str, String)> {
    vec![
        ("lb", lb.to_owned()),
        ("cluster", "eu".to_owned()),
        ("ts", ts.to_string()),
        ("interval", "10".to_owned()),
        ("part", part.to_string()),
        ("parts", parts.to_string()),
        ("format", "arrow-ipc/1".to_owned()),
    ]
}

/// `replay`'s lines of `dir` under `test.<lb>.haproxy`, timings aside.
fn replayed(setup: &Setup, lb: &str, dir: &Path) -> BTreeSet<String> {
    let conf = setup.root.path().join(format!("replay-{lb}.conf"));
    fs::write(
        &conf,
        format!("[graphite]\nnamespace = test.{lb}\nprefix-hostname = false\n"),
    )
    .expect("replay conf");
    replay_lines(&conf, &[dir.to_path_buf()])
        .into_iter()
        .filter(|line| !line.contains("WallClockTime"))
        .collect()
}

/// The partials topic holds one complete partial per load balancer's
/// snapshot, keyed by its cluster; merged, they give the lines `replay`
/// gives for one directory of every load balancer's files renamed
/// `<lb>_<file>` (SPEC §7).
fn partials_merge_to_replay_of_the_union(setup: &Setup, dirs: &[(&str, PathBuf)], ts: u64) {
    use haproxystats::engine::partial::{Merge, PARTIAL_FORMAT, Partial};
    use haproxystats::engine::{EngineOptions, process_gathered_into, process_snapshot};
    use std::collections::BTreeMap;

    let complete = |records: &[support::kafka::Record]| {
        let mut by_lb: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for r in records {
            let (Some(lb), Some(parts)) = (r.header("lb"), r.header("parts")) else {
                continue;
            };
            let entry = by_lb.entry(lb).or_insert((0, parts.parse().unwrap_or(0)));
            entry.0 += 1;
        }
        dirs.iter()
            .all(|(lb, _)| by_lb.get(*lb).is_some_and(|(got, want)| got >= want))
    };
    let topic = format!("{TOPIC}.partials");
    let records = setup
        .broker
        .read(&topic, PARTITIONS, Duration::from_secs(30), complete);
    let loaded = haproxystats::config::load_str(
        "[graphite]\nnamespace = eu\nprefix-hostname = false\n",
        &haproxystats::sink::options(),
    )
    .expect("options");
    let opts = EngineOptions::from_config(&loaded.config, "central").expect("engine options");
    let mut merge = Merge::default();
    for (lb, _) in dirs {
        let mine: Vec<&support::kafka::Record> = records
            .iter()
            .filter(|r| r.header("lb").as_deref() == Some(*lb))
            .collect();
        for r in &mine {
            assert_eq!(
                r.key.as_deref(),
                Some(&b"eu"[..]),
                "{lb}: keyed by its cluster"
            );
            assert_eq!(r.header("cluster").as_deref(), Some("eu"));
            assert_eq!(r.header("format").as_deref(), Some(PARTIAL_FORMAT));
        }
        let parts: Vec<&[u8]> = mine.iter().map(|r| r.payload.as_slice()).collect();
        let partial = Partial::decode(&parts, &opts).unwrap_or_else(|e| panic!("{lb}: {e}"));
        assert_eq!(partial.lb, *lb);
        merge.add(partial);
    }
    let union = setup.root.path().join("union").join(ts.to_string());
    fs::create_dir_all(&union).expect("union dir");
    for (lb, dir) in dirs {
        for entry in fs::read_dir(dir).expect("snapshot dir").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            fs::copy(entry.path(), union.join(format!("{lb}_{name}"))).expect("copy");
        }
    }
    let mut want = Vec::new();
    process_snapshot(&union, &opts, &mut want).expect("replay of the union");
    let merged = merge
        .gathered(ts as i64, PathBuf::from("merged"), &opts)
        .expect("partials");
    let mut got = support::collected::Collected::default();
    process_gathered_into(&merged, &opts, &mut got).expect("merged lines");
    let lines = |text: &[u8]| -> BTreeSet<String> {
        String::from_utf8_lossy(text)
            .lines()
            .filter(|l| !l.contains(".haproxystats."))
            .map(str::to_owned)
            .collect()
    };
    let (want, got) = (lines(&want), lines(&got.0.concat()));
    assert!(want.len() > 100, "{} lines", want.len());
    assert_eq!(
        want.symmetric_difference(&got).take(5).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "merged partials vs replay of the union"
    );
}

fn wait(what: &str, timeout: Duration, central: &Haproxystats, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} after {timeout:?}\n{}",
            central.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn each_load_balancer_gets_replays_lines_and_bad_messages_are_skipped_and_committed_past() {
    let setup = Setup::new();
    let ts = slot();
    // Bad messages of every kind first, on both partitions.
    let good_dir = setup.generated(ts, 9);
    let good = haproxystats::raw::encode(&good_dir, 1_000_000).expect("encode");
    let one = &good.parts[0];
    let single = |lb: &str| headers(lb, ts, 0, 1);
    let mut bad = 0;
    // Garbage value.
    setup.send("bad-1", &single("bad-1"), b"not an arrow stream");
    bad += 1;
    // Unknown format.
    let mut unknown = single("bad-2");
    unknown[6].1 = "csv/1".into();
    setup.send("bad-2", &unknown, one);
    bad += 1;
    // A missing header.
    setup.send("bad-3", &single("bad-3")[1..], one);
    bad += 1;
    // A truncated stream.
    setup.send("bad-4", &single("bad-4"), &one[..one.len() / 2]);
    bad += 1;
    // Far in the future, far in the past.
    setup.send("bad-5", &headers("bad-5", ts + 7200 + 600, 0, 1), one);
    setup.send("bad-6", &headers("bad-6", ts - 8 * 24 * 3600, 0, 1), one);
    bad += 2;
    // A missing part: part 0 of 2, then a newer snapshot of the same lb.
    setup.send("lb-x", &headers("lb-x", ts - 10, 0, 2), one);
    bad += 1;
    // The good ones after them: three load balancers, several parts each
    // for the generated ones, and lb-x's newer snapshot.
    let dirs = [
        ("lb-a", setup.generated(ts, 1)),
        ("lb-b", setup.generated(ts, 2)),
        ("lb-c", setup.captured(ts)),
        ("lb-x", good_dir.clone()),
    ];
    let mut parts = 0;
    for (lb, dir) in &dirs {
        parts += setup.publish(lb, dir, 40_000);
    }
    assert!(parts > dirs.len(), "some snapshot needs several parts");

    let conf = setup.conf("central.conf", "enabled = false\n");
    let mut central =
        Haproxystats::start(&["central"], &conf, &setup.root.path().join("central.log"));
    for (lb, dir) in &dirs {
        wait(
            &format!("{lb} not stored"),
            Duration::from_secs(60),
            &central,
            || setup.stored(lb, ts).is_some(),
        );
        let want = replayed(&setup, lb, dir);
        let got = setup.stored(lb, ts).unwrap_or_default();
        assert!(want.len() > 50, "{lb}: {} lines", want.len());
        let missing: Vec<_> = want.difference(&got).take(5).collect();
        let extra: Vec<_> = got.difference(&want).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{lb}: missing {missing:?}, extra {extra:?}"
        );
    }
    // Every message done, bad ones included: committed to the end.
    let end = setup.end();
    wait(
        "offsets not committed to the end",
        Duration::from_secs(30),
        &central,
        || setup.committed() == end,
    );
    partials_merge_to_replay_of_the_union(&setup, &dirs, ts);
    wait(
        "bad messages not counted",
        Duration::from_secs(10),
        &central,
        || setup.status().contains(&format!("bad_messages={bad}\n")),
    );
    let log = central.log();
    for topic in [format!("{TOPIC}.partials"), format!("{TOPIC}.state")] {
        assert!(
            log.lines().any(|l| l.contains("created the topic")
                && l.contains(&topic)
                && l.contains(&format!("partitions={PARTITIONS}"))),
            "{topic} not created\n{log}"
        );
    }
    for kind in [
        "decode",
        "unknown_format",
        "missing_header",
        "far_future",
        "far_past",
        "missing_part",
    ] {
        assert!(
            log.contains(&format!("kind=\"{kind}\"")),
            "no {kind} logged\n{log}"
        );
    }
    // Self metrics of the central host: under test.<host>.haproxystats.
    wait("no self metrics", Duration::from_secs(10), &central, || {
        fs::read_dir(&setup.store)
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| {
                fs::read_to_string(entry.path().join("stats"))
                    .is_ok_and(|text| text.contains(".haproxystats.BadMessages 7 "))
            })
    });
    // `check` judges a central instance too.
    let check = std::process::Command::new(support::haproxystats::BIN)
        .args(["check", "-f"])
        .arg(&conf)
        .output()
        .expect("check");
    let line = String::from_utf8_lossy(&check.stdout);
    assert!(line.contains("bad messages 7"), "{line}");
    assert_eq!(check.status.code(), Some(0), "{line}");
    assert_eq!(central.terminate(Duration::from_secs(20)), Some(0));
}

#[test]
fn offsets_are_never_committed_over_3_s_nor_at_the_stop_while_a_sink_never_confirms() {
    let setup = Setup::new();
    let ts = slot();
    let dir = setup.generated(ts, 3);
    setup.publish("lb-a", &dir, 1_000_000);
    // Graphite on a port where nothing listens: it never confirms.
    let port = support::process::free_port();
    let conf = setup.conf(
        "central.conf",
        &format!("enabled = true\nserver = 127.0.0.1\nport = {port}\n"),
    );
    let mut central =
        Haproxystats::start(&["central"], &conf, &setup.root.path().join("central.log"));
    wait("not stored", Duration::from_secs(60), &central, || {
        setup.stored("lb-a", ts).is_some()
    });
    // Checked all along for 3 s, not once at the end of a sleep.
    let watched = std::time::Instant::now();
    while watched.elapsed() < Duration::from_secs(3) {
        assert!(
            setup.committed() <= 0,
            "committed before graphite had the lines\n{}",
            central.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(central.terminate(Duration::from_secs(30)), Some(0));
    assert!(
        setup.committed() <= 0,
        "committed at the stop\n{}",
        central.log()
    );
}

/// `queue-size` of Graphite in the pause test: about two snapshots' lines.
const SMALL_QUEUE: usize = 1500;

#[test]
fn a_sink_that_cannot_take_more_pauses_consumption_and_nothing_is_dropped() {
    let setup = Setup::new();
    let ts = slot();
    let snapshots: Vec<(String, u64)> = (0..24)
        .map(|n| (format!("lb-{}", n % 4), ts - 10 * (n / 4) as u64))
        .collect();
    let slots: BTreeSet<u64> = snapshots.iter().map(|(_, at)| *at).collect();
    let dirs: std::collections::BTreeMap<u64, PathBuf> = slots
        .into_iter()
        .map(|at| (at, setup.generated(at, 5)))
        .collect();
    let lines_per_snapshot = replayed(&setup, "lb-0", &dirs[&ts]).len();
    assert!(
        lines_per_snapshot * 2 > SMALL_QUEUE / 2 && lines_per_snapshot < SMALL_QUEUE,
        "{lines_per_snapshot} lines a snapshot: the queue must hold one but not many"
    );
    for (lb, at) in &snapshots {
        let encoded = haproxystats::raw::encode(&dirs[at], 1_000_000).expect("encode");
        for (n, part) in encoded.parts.iter().enumerate() {
            setup.send(lb, &headers(lb, *at, n, encoded.parts.len()), part);
        }
    }
    // Graphite down at first: its port is free, nothing listens.
    let port = support::process::free_port();
    let conf = setup.conf(
        "central.conf",
        &format!(
            "enabled = true\nserver = 127.0.0.1\nport = {port}\nqueue-size = {SMALL_QUEUE}\n\
             retries = 1\ninterval = 0.2\ndelay = 1\nconnect-timeout = 1\n"
        ),
    );
    let mut central =
        Haproxystats::start(&["central"], &conf, &setup.root.path().join("central.log"));
    wait("never paused", Duration::from_secs(30), &central, || {
        central
            .log()
            .contains("sink backlog full; consumption paused")
    });
    // While Graphite is down, its backlog stays within its queue-size:
    // the snapshots it cannot take wait in central (at most what the
    // consumer had fetched), never pushing older lines out.
    // The status file is written every second: once it reports the sink,
    // its backlog is checked for 3 s, and a status file without the line
    // fails the test too.
    wait(
        "no sink.graphite.backlog= in the status file",
        Duration::from_secs(10),
        &central,
        || setup.status().contains("sink.graphite.backlog="),
    );
    for _ in 0..30 {
        let status = setup.status();
        let Some(backlog) = status
            .lines()
            .find_map(|l| l.strip_prefix("sink.graphite.backlog="))
            .and_then(|v| v.parse::<usize>().ok())
        else {
            panic!("no sink.graphite.backlog= in the status file:\n{status}");
        };
        assert!(
            backlog <= SMALL_QUEUE,
            "backlog {backlog} over {SMALL_QUEUE}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stored = |setup: &Setup| {
        snapshots
            .iter()
            .filter(|(lb, at)| setup.stored(lb, *at).is_some())
            .count()
    };
    assert!(
        setup.committed() <= 0,
        "committed while Graphite had nothing"
    );
    // Graphite comes back: everything goes through, nothing dropped.
    let graphite = support::fake_graphite::FakeGraphite::start_on(
        port,
        |_| support::fake_graphite::Behaviour::Read,
        None,
    );
    let end = setup.end();
    wait(
        "not everything committed after Graphite came back",
        Duration::from_secs(90),
        &central,
        || setup.committed() == end,
    );
    assert_eq!(stored(&setup), snapshots.len());
    let received: BTreeSet<(String, String)> = graphite
        .lines()
        .iter()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let path = fields.next()?;
            let at = fields.nth(1)?;
            let lb = path.strip_prefix("test.")?.split('.').next()?;
            lb.starts_with("lb-")
                .then(|| (lb.to_owned(), at.to_owned()))
        })
        .collect();
    for (lb, at) in &snapshots {
        assert!(
            received.contains(&(lb.clone(), at.to_string())),
            "Graphite has nothing of {lb} at {at}"
        );
    }
    let status = setup.status();
    assert!(
        status.contains("sink.graphite.dropped_lines=0\n"),
        "lines dropped:\n{status}"
    );
    assert!(
        !central.log().contains("dropped the oldest"),
        "{}",
        central.log()
    );
    assert_eq!(central.terminate(Duration::from_secs(20)), Some(0));
}

/// Issue 24 items 7 and 8: `lb` and `cluster` headers that break the name
/// rule (`haproxystats::names`) are bad messages: logged once with where
/// they are, counted, committed past, and nothing of them is stored; the
/// snapshot after them is processed.
#[test]
fn names_graphite_would_not_store_as_sent_are_bad_headers() {
    let setup = Setup::new();
    let ts = slot();
    let dir = setup.generated(ts, 4);
    let encoded = haproxystats::raw::encode(&dir, 1_000_000).expect("encode");
    let parts = encoded.parts.len();
    let long = "a".repeat(300);
    let refused = [
        ("lb", "x;evil=1", "must not hold ';'"),
        ("lb", "a*", "must not hold * ? [ ] { }"),
        ("lb", "{a,b}", "must not hold * ? [ ] { }"),
        ("lb", "b[1]", "must not hold * ? [ ] { }"),
        ("lb", "lb\u{200b}", "must hold only A-Z a-z 0-9 _ -"),
        ("lb", long.as_str(), "is longer than 255 bytes"),
        ("lb", "lb/1", "must not hold '/'"),
        ("cluster", "eu/west", "must not hold '/'"),
        ("cluster", "c;k=v", "must not hold ';'"),
    ];
    // Each a whole snapshot, which central would process but for the name.
    for (header, value, _) in &refused {
        for (n, part) in encoded.parts.iter().enumerate() {
            let mut sent = headers("lb-named", ts, n, parts);
            for (name, text) in &mut sent {
                if name == header {
                    *text = (*value).to_owned();
                }
            }
            setup.send(value, &sent, part);
        }
    }
    setup.publish("lb-ok", &dir, 1_000_000);

    let conf = setup.conf("central.conf", "enabled = false\n");
    let mut central =
        Haproxystats::start(&["central"], &conf, &setup.root.path().join("central.log"));
    wait(
        "lb-ok not stored",
        Duration::from_secs(60),
        &central,
        || setup.stored("lb-ok", ts).is_some(),
    );
    let end = setup.end();
    wait(
        "offsets not committed to the end",
        Duration::from_secs(30),
        &central,
        || setup.committed() == end,
    );
    wait(
        "bad headers not counted",
        Duration::from_secs(10),
        &central,
        || {
            setup
                .status()
                .contains(&format!("bad_messages={}\n", refused.len() * parts))
        },
    );
    let log = central.log();
    for (header, value, reason) in &refused {
        // The value as the line shows it (escaped; a long one is cut).
        let shown: String = format!("{value:?}").chars().take(40).collect();
        let said = format!("header {header} = {shown}");
        assert!(
            log.lines().any(|l| l.contains("kind=\"bad_header\"")
                && l.contains(&format!("bad message {TOPIC}/"))
                && l.contains(&said)
                && l.contains(reason)),
            "no line says {said}…: {reason}\n{log}"
        );
    }
    // Nothing of them stored: only lb-ok, the clusters, the central host's
    // own metrics (a timestamp).
    let stored: Vec<String> = fs::read_dir(&setup.store)
        .expect("store")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    for name in &stored {
        assert!(
            name == "lb-ok"
                || name.starts_with("clusters.")
                || name.bytes().all(|b| b.is_ascii_digit()),
            "{name:?} stored: {stored:?}"
        );
    }
    assert_eq!(central.terminate(Duration::from_secs(20)), Some(0));
}

/// The partials topic of [`TOPIC`] (central's default name for it).
const PARTIALS: &str = "snaps.partials";

/// Issue 24 item 2: one forged part (`parts = 2`, a made-up lb) whose
/// second part never came held its partition's commit for good (41 later
/// snapshots processed, none committed, `BadMessages = 0`), on the
/// snapshots topic and on the partials topic alike. Each is given up once a
/// later message on its partition is stamped more than `MAX_OPEN_MS` (two
/// minutes) after it — the forged ones are stamped ten minutes ago, as if
/// they had waited that long —, counted as a bad message, and both groups'
/// commits reach the end of their topics.
#[test]
fn a_lone_part_with_a_made_up_lb_is_given_up_and_the_commits_reach_the_end() {
    let setup = Setup::new();
    setup.broker.create_topic(PARTIALS, PARTITIONS as u32);
    let ts = slot();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let ten_minutes_ago = To {
        timestamp_ms: Some(now_ms - 600_000),
        ..To::default()
    };
    let dir = setup.generated(ts, 4);
    let encoded = haproxystats::raw::encode(&dir, 1_000_000).expect("encode");
    for partition in 0..PARTITIONS {
        let lb = format!("forged-{partition}");
        let to = To {
            partition: Some(partition),
            ..ten_minutes_ago
        };
        setup.send_to(to, &lb, &headers(&lb, ts, 0, 2), &encoded.parts[0]);
    }
    // Keyed by its cluster, as central keys the partials: on their partition.
    let mut partial = headers("forged", ts, 0, 2);
    partial[6].1 = "partial-ipc/1".into();
    let to = To {
        topic: Some(PARTIALS),
        ..ten_minutes_ago
    };
    setup.send_to(to, "eu", &partial, b"part 1 of 2, the other never comes");
    // Real snapshots after them, stamped now.
    let lbs = ["lb-a", "lb-b", "lb-c", "lb-d"];
    for lb in lbs {
        setup.publish(lb, &dir, 1_000_000);
    }
    let ends = setup.broker.end_offsets(TOPIC, PARTITIONS);
    assert!(
        ends.iter().all(|&end| end >= 2),
        "{ends:?}: every partition needs a real snapshot after its forged part"
    );
    let conf = setup.conf("central.conf", "enabled = false\n");
    let mut central =
        Haproxystats::start(&["central"], &conf, &setup.root.path().join("central.log"));
    for lb in lbs {
        wait(
            &format!("{lb} not stored"),
            Duration::from_secs(60),
            &central,
            || setup.stored(lb, ts).is_some(),
        );
    }
    let end = setup.end();
    wait(
        "the snapshots' commit did not reach the end",
        Duration::from_secs(30),
        &central,
        || setup.committed() == end,
    );
    // Stage 2 commits once the window is out (`grace` after its first
    // partial): the partials' commit must get past the forged part too.
    let merged = |setup: &Setup| {
        let committed =
            setup
                .broker
                .committed_offsets(&format!("{GROUP}-merge"), PARTIALS, PARTITIONS);
        let ends = setup.broker.end_offsets(PARTIALS, PARTITIONS);
        committed.is_some_and(|c| c == ends && ends.iter().sum::<i64>() > 1)
    };
    wait(
        "the partials' commit did not reach the end",
        Duration::from_secs(60),
        &central,
        || merged(&setup),
    );
    wait(
        "the forged parts not counted",
        Duration::from_secs(10),
        &central,
        || setup.status().contains("bad_messages=3\n"),
    );
    let log = central.log();
    let given_up = log
        .lines()
        .filter(|l| l.contains("kind=\"missing_part\"") && l.contains("stamped over"))
        .count();
    assert_eq!(given_up, 3, "{log}");
    assert_eq!(central.terminate(Duration::from_secs(20)), Some(0));
}
