//! Issue 13 end to end, every part real: HAProxy instances → `haproxystats`
//! (puller, watcher, processors, Graphite sink and Kafka sink in one
//! process) → carbon-c-relay → carbon-cache → whisper, and → tansu (a
//! Kafka-compatible broker).
//!
//! The daemon pulls into `pulled/` and processes `incoming/`; the test moves
//! each snapshot from one to the other (a rename, as the puller publishes),
//! after hard-linking its files into `kept/`, so that the snapshot the daemon
//! processed and then deleted is still there for `haproxystats replay`. The
//! first snapshot goes in alone; the next ones together, a backlog (as after
//! a restart or an outage). One processor takes them in the test that runs;
//! with four (the ignored test) the daemon delivers them out of order.
//!
//! It asserts that
//! 1. the topic holds, for each snapshot, exactly the lines `replay` prints
//!    for it (self metrics aside: they vary per run, but each is there), in
//!    whole-line messages under `message-max-bytes`, with our key; and that
//!    whisper has every one of them, with its value, at its timestamp;
//! 2. the key's records, in offset order, never go back in time;
//! 3. carbon reads the topic as Graphite gets it: the payloads, unchanged,
//!    go to the line receiver of a second carbon-cache (carbon's own parser
//!    of the plaintext protocol, not ours), and its whisper files hold the
//!    same points, to the bit, as those the Graphite sink fed to the first.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::carbon::parse_line;
use support::kafka::{Broker, ONE_RECORD_PER_BATCH, Record};
use support::{CarbonStack, FleetOptions, HaproxyFleet, Haproxystats};

const TOPIC: &str = "lb-metrics";
const KEY: &str = "lb-e2e";
const PARTITIONS: i32 = 3;
/// Small, so that a snapshot takes several messages.
const MESSAGE_MAX_BYTES: usize = 4096;
/// Marks the self metrics, which vary per run.
const SELF: &str = ".haproxystats.";
/// Every wait below ends by then.
const TIMEOUT: Duration = Duration::from_secs(30);

fn write_conf(
    workers: usize,
    base: &Path,
    sockets: &Path,
    relay: SocketAddr,
    brokers: &str,
) -> PathBuf {
    let conf = base.join("haproxystats.conf");
    fs::write(
        &conf,
        format!(
            "[paths]\nbase-dir = {base}\n\n\
             [pull]\nsocket-dir = {sockets}\npull-interval = 1\npull-timeout = 0.9\n\
             dst-dir = ${{paths:base-dir}}/pulled\ntmp-dst-dir = ${{paths:base-dir}}/pulled.tmp\n\n\
             [process]\nsrc-dir = ${{paths:base-dir}}/incoming\nworkers = {workers}\n\
             calculate-percentages = true\nper-process-metrics = true\naggr-server-metrics = true\n\n\
             [graphite]\nserver = {host}\nport = {port}\nnamespace = e2e\nprefix-hostname = false\n\n\
             [kafka]\nbrokers = {brokers}\ntopic = {TOPIC}\nkey = {KEY}\nformat = graphite\n\
             message-max-bytes = {MESSAGE_MAX_BYTES}\n{ONE_RECORD_PER_BATCH}",
            base = base.display(),
            sockets = sockets.display(),
            host = relay.ip(),
            port = relay.port(),
        ),
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
    conf
}

/// The snapshot directories in `dir` (named by timestamp), oldest first.
fn snapshots_in(dir: &Path) -> Vec<u64> {
    let mut found: Vec<u64> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    found.sort_unstable();
    found
}

/// Hard-links every file of `from` into `to` (made), keeping the layout.
fn link_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            link_tree(&entry.path(), &target);
        } else {
            fs::hard_link(entry.path(), &target)
                .unwrap_or_else(|e| panic!("link {}: {e}", entry.path().display()));
        }
    }
}

/// What `haproxystats replay -f conf DIR` prints, line by line, as printed.
fn replay(conf: &Path, dir: &Path) -> Vec<String> {
    let output = Command::new(support::haproxystats::BIN)
        .arg("replay")
        .arg("-f")
        .arg(conf)
        .arg(dir)
        .env_remove("HAPROXYSTATS_LOG")
        .output()
        .unwrap_or_else(|e| panic!("run haproxystats replay: {e}"));
    assert!(
        output.status.success(),
        "replay {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap_or_else(|e| panic!("replay printed no UTF-8: {e}"))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The lines of the records, in the order given.
fn record_lines(records: &[Record]) -> Vec<String> {
    support::kafka::lines_of(records)
}

/// Writes `payloads` unchanged, in order, to `addr` in one connection.
fn send_raw(addr: SocketAddr, payloads: &[&[u8]]) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    for payload in payloads {
        stream
            .write_all(payload)
            .unwrap_or_else(|e| panic!("write to {addr}: {e}"));
    }
    stream
        .flush()
        .and_then(|()| stream.shutdown(Shutdown::Write))
        .unwrap_or_else(|e| panic!("{addr}: {e}"));
}

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn wait(what: &str, daemon: &Haproxystats, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} after {TIMEOUT:?}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A scoped thread's result, or its panic.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// One processor: the backlog is processed, and so delivered, oldest first.
#[test]
fn pulled_lines_reach_kafka_as_replay_prints_them_and_carbon_reads_the_topic_as_graphite_gets_it() {
    end_to_end(1, 4);
}

/// Four processors finish a backlog's snapshots in any order; the
/// pipeline still hands them to the sinks oldest first, so the key's
/// records never go back in time.
#[test]
fn a_backlog_on_four_processors_keeps_the_key_in_time_order() {
    end_to_end(4, 8);
}

/// `snapshots` pulled (at least 3) and delivered by the daemon with
/// `workers` processors: the first alone, the rest as one backlog.
fn end_to_end(workers: usize, snapshots: usize) {
    assert!(snapshots >= 3);
    let started = Instant::now();
    let (mut fleet, graphite, from_topic, broker) = std::thread::scope(|s| {
        let graphite = s.spawn(CarbonStack::start);
        let from_topic = s.spawn(CarbonStack::start);
        let broker = s.spawn(Broker::start);
        let fleet = HaproxyFleet::start(2, FleetOptions::default());
        (fleet, join(graphite), join(from_topic), join(broker))
    });
    broker.create_topic(TOPIC, PARTITIONS as u32);
    fleet.wait_servers_up(Duration::from_secs(10));
    fleet.generate_traffic(20);
    eprintln!("parts up in {:?}", started.elapsed());

    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let base = root.path();
    let (pulled, incoming, kept) = (
        base.join("pulled"),
        base.join("incoming"),
        base.join("kept"),
    );
    for dir in [&incoming, &kept] {
        fs::create_dir(dir).unwrap_or_else(|e| panic!("{e}"));
    }
    let conf = write_conf(
        workers,
        base,
        &fleet.socket_dir(),
        graphite.relay_addr(),
        &broker.brokers(),
    );
    let mut daemon = Haproxystats::start(&[], &conf, &base.join("daemon.log"));

    // Traffic all along, so that counters differ from one snapshot to the next.
    let stop_traffic = AtomicBool::new(false);
    let delivered: Vec<u64> = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop_traffic.load(Ordering::Relaxed) {
                for i in 0..fleet.len() {
                    fleet.generate_traffic_to(i, 3);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        // Stops the traffic however this scope ends (a panic too: the
        // scope joins the thread before it unwinds).
        let _stop = StopOnDrop(&stop_traffic);
        let move_in = |ts: u64| {
            link_tree(&pulled.join(ts.to_string()), &kept.join(ts.to_string()));
            fs::rename(pulled.join(ts.to_string()), incoming.join(ts.to_string()))
                .unwrap_or_else(|e| panic!("move {ts} into incoming: {e}"));
        };
        let mut first = None;
        wait("no snapshot pulled", &daemon, || {
            first = snapshots_in(&pulled).first().copied();
            first.is_some()
        });
        let first = first.expect("waited for");
        move_in(first);
        wait("the first snapshot not delivered", &daemon, || {
            snapshots_in(&incoming).is_empty()
        });
        let mut rest = Vec::new();
        wait("too few snapshots pulled", &daemon, || {
            rest = snapshots_in(&pulled);
            rest.retain(|&ts| ts > first);
            rest.len() >= snapshots - 1
        });
        rest.truncate(snapshots - 1);
        for &ts in &rest {
            move_in(ts);
        }
        wait("the backlog not delivered", &daemon, || {
            snapshots_in(&incoming).is_empty()
        });
        std::iter::once(first).chain(rest).collect()
    });
    assert_eq!(
        daemon.terminate(Duration::from_secs(15)),
        Some(0),
        "{}",
        daemon.log()
    );
    eprintln!("{delivered:?} delivered in {:?}", started.elapsed());
    let (oldest, newest) = (delivered[0], delivered[snapshots - 1]);

    // What replay makes of each snapshot the daemon processed.
    let mut expected: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut self_paths: BTreeSet<String> = BTreeSet::new();
    for &ts in &delivered {
        let lines = replay(&conf, &kept.join(ts.to_string()));
        assert!(
            lines.len() > 100,
            "replay of {ts}: only {} lines",
            lines.len()
        );
        let (own, mut metrics): (Vec<String>, Vec<String>) =
            lines.into_iter().partition(|l| l.contains(SELF));
        for line in &own {
            self_paths.insert(parse_line(line).0);
        }
        assert!(
            metrics.iter().all(|l| parse_line(l).2 == ts),
            "replay of {ts}: another timestamp"
        );
        metrics.sort();
        expected.insert(ts, metrics);
    }
    assert!(!self_paths.is_empty(), "replay printed no self metric");
    // The supervisor's and the Kafka sink's own (README, SPEC §5), besides
    // the engine's ones replay prints too.
    for name in [
        "GraphiteBacklog",
        "GraphiteDroppedLines",
        "GraphiteReconnects",
        "QueueDepth",
        "ProcessorPanics",
        "ChildRestarts",
        "QuarantinedSnapshots",
        "KafkaBacklog",
        "KafkaDroppedLines",
        "KafkaDeliveryErrors",
        "KafkaMessagesSent",
    ] {
        self_paths.insert(format!("e2e.haproxy.haproxystats.{name}"));
    }

    // The topic, read until it has as many lines as replay prints for these
    // snapshots and the self metrics of each (its last lines), then a second
    // more, so that a line delivered twice would show; what they are is
    // compared below.
    let replayed: usize = expected.values().map(Vec::len).sum();
    let complete_since = std::cell::Cell::new(None::<Instant>);
    let records = broker.read(TOPIC, PARTITIONS, TIMEOUT, |records| {
        if let Some(since) = complete_since.get() {
            return since.elapsed() > Duration::from_secs(1);
        }
        let lines = record_lines(records);
        let own: BTreeSet<(String, u64)> = lines
            .iter()
            .filter(|l| l.contains(SELF))
            .map(|l| {
                let (path, _, ts) = parse_line(l);
                (path, ts)
            })
            .collect();
        let complete = lines.len() >= replayed + own.len()
            && delivered.iter().all(|&ts| {
                self_paths
                    .iter()
                    .all(|path| own.contains(&(path.clone(), ts)))
            });
        if complete {
            complete_since.set(Some(Instant::now()));
        }
        false
    });
    eprintln!("{} records read in {:?}", records.len(), started.elapsed());

    // Whole lines, our key, one partition (the key's), under the size limit.
    let partition = records[0].partition;
    for record in &records {
        assert_eq!(
            record.key.as_deref(),
            Some(KEY.as_bytes()),
            "offset {}",
            record.offset
        );
        assert_eq!(record.partition, partition, "one key, one partition");
        assert!(
            record.payload.len() + KEY.len() <= MESSAGE_MAX_BYTES,
            "offset {}: {} bytes",
            record.offset,
            record.payload.len()
        );
        assert!(
            record.payload.ends_with(b"\n"),
            "offset {}: a cut line",
            record.offset
        );
    }
    let mut in_order = records.clone();
    in_order.sort_by_key(|r| r.offset);
    assert_eq!(in_order, records, "read back out of offset order");
    let mut per_snapshot: BTreeMap<u64, usize> = BTreeMap::new();
    for record in &records {
        let text = String::from_utf8_lossy(&record.payload);
        let stamps: BTreeSet<u64> = text.lines().map(|l| parse_line(l).2).collect();
        for ts in stamps {
            *per_snapshot.entry(ts).or_default() += 1;
        }
    }
    assert!(
        per_snapshot.values().all(|&n| n > 1),
        "a snapshot in one message: message-max-bytes not exercised ({per_snapshot:?})"
    );

    // 1. Exactly replay's lines for each snapshot; every self metric once.
    let lines = record_lines(&records);
    let mut by_ts: BTreeMap<u64, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for line in &lines {
        let (path, _, ts) = parse_line(line);
        let (own, metrics) = by_ts.entry(ts).or_default();
        if line.contains(SELF) {
            own.push(path);
        } else {
            metrics.push(line.clone());
        }
    }
    assert_eq!(
        by_ts.keys().copied().collect::<Vec<_>>(),
        delivered,
        "the topic holds other snapshots than those delivered"
    );
    for (ts, (own, mut metrics)) in by_ts {
        metrics.sort();
        let want = &expected[&ts];
        if metrics != *want {
            let got: BTreeSet<&String> = metrics.iter().collect();
            let wanted: BTreeSet<&String> = want.iter().collect();
            panic!(
                "snapshot {ts}: the topic has {} lines, replay prints {}; only in the topic: {:?}; \
                 only in replay: {:?}",
                metrics.len(),
                want.len(),
                got.difference(&wanted).take(5).collect::<Vec<_>>(),
                wanted.difference(&got).take(5).collect::<Vec<_>>()
            );
        }
        let count = own.len();
        let own: BTreeSet<String> = own.into_iter().collect();
        assert_eq!(own.len(), count, "snapshot {ts}: a self metric twice");
        let missing: Vec<&String> = self_paths.difference(&own).collect();
        assert!(missing.is_empty(), "snapshot {ts}: no {missing:?}");
    }

    // 2. In offset order, the key's lines never go back in time.
    let stamps: Vec<u64> = lines.iter().map(|l| parse_line(l).2).collect();
    if let Some(k) = stamps.windows(2).position(|w| w[1] < w[0]) {
        panic!(
            "line {} of the key is of {}, after one of {}: out of order\n{}",
            k + 2,
            stamps[k + 1],
            stamps[k],
            daemon.log()
        );
    }

    // Whisper behind the Graphite sink has every line replay prints.
    let wanted: BTreeSet<(String, u64)> = lines
        .iter()
        .map(|l| {
            let (path, _, ts) = parse_line(l);
            (path, ts)
        })
        .collect();
    let fed_by_graphite = graphite.wait_points(&wanted, oldest, newest, TIMEOUT);
    for line in expected.values().flatten() {
        let (path, value, ts) = parse_line(line);
        let landed = fed_by_graphite[&(path.clone(), ts)];
        assert!(
            landed == value,
            "{path} @ {ts}: replay prints {value}, whisper has {landed}"
        );
    }
    eprintln!("graphite checked in {:?}", started.elapsed());

    // 3. The payloads, unchanged, to carbon's own plaintext receiver.
    let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
    send_raw(from_topic.cache_line_addr(), &payloads);
    let fed_by_kafka = from_topic.wait_points(&wanted, oldest, newest, TIMEOUT);
    assert_eq!(
        fed_by_kafka.len(),
        wanted.len(),
        "carbon read points the topic does not hold"
    );
    for (key, value) in &fed_by_kafka {
        let graphite_value = fed_by_graphite.get(key);
        assert!(
            graphite_value.is_some_and(|g| g.to_bits() == value.to_bits()),
            "{key:?}: {value} from the topic, {graphite_value:?} from the Graphite sink"
        );
    }
    assert_eq!(
        fed_by_graphite.len(),
        fed_by_kafka.len(),
        "points only Graphite got"
    );
    eprintln!("done in {:?}", started.elapsed());
}
