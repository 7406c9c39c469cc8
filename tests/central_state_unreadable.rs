//! The state topic unreadable at an assignment (actors.md, failures of
//! stage 2): the merge consumer tries to read it three times, hands nothing
//! of the assignment over (no window may be emitted without knowing each
//! cluster's `H`), and its thread ends, which Central sees as a dead child
//! and restarts with backoff. A consumer whose read succeeds is given the
//! assignment with the state before any message of it.
//!
//! A real broker (tansu) serves the partials; the state read is the one
//! part replaced, by a function that fails: a broker that serves one topic
//! and not another is not something tansu can be made into. The first test
//! drives the consumer alone; the second runs `haproxystats central` (the
//! fault-injection build, whose first state reads fail) and watches Central
//! restart its merge consumer with backoff.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use haproxystats::central::consumer::{self, ConsumerOptions, Event, RestoreFn};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use support::haproxystats::{Haproxystats, fault_injection_bin};
use support::kafka::{Broker, ONE_RECORD_PER_BATCH};
use tokio::sync::mpsc;

const TOPIC: &str = "snaps.partials";
const GROUP: &str = "haproxystats-central-merge";
const TIMEOUT: Duration = Duration::from_secs(60);

fn settings(broker: &Broker) -> haproxystats::config::CentralSettings {
    let loaded = haproxystats::config::load_str(
        &format!(
            "[kafka]\nbrokers = {}\nsnapshots-topic = snaps\n\
         librdkafka.session.timeout.ms = 6000\nlibrdkafka.heartbeat.interval.ms = 500\n",
            broker.brokers()
        ),
        &haproxystats::sink::options(),
    )
    .expect("config");
    haproxystats::config::resolve_central(&loaded.config).expect("central settings")
}

/// The merge consumer as stage 2 starts it, reading the state with `restore`.
fn start(
    settings: &haproxystats::config::CentralSettings,
    restore: RestoreFn,
    events: mpsc::Sender<Event>,
) -> consumer::ConsumerHandle {
    let options = ConsumerOptions {
        restore: Some(restore),
        track_caught_up: true,
    };
    consumer::start(settings, GROUP, TOPIC, options, events).expect("consumer")
}

/// Waits for `done`, or panics naming `what`.
fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "{what} after {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_unreadable_state_hands_nothing_over_and_ends_the_consumer_a_readable_one_comes_first() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 2);
    let producer: BaseProducer = broker.producer_config().create().expect("producer");
    for cluster in ["eu", "us"] {
        producer
            .send(BaseRecord::to(TOPIC).key(cluster).payload("a partial"))
            .unwrap_or_else(|(e, _)| panic!("send: {e}"));
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
    let settings = settings(&broker);

    let attempts = Arc::new(AtomicUsize::new(0));
    let failing: RestoreFn = {
        let attempts = Arc::clone(&attempts);
        Arc::new(move || {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err("the state topic cannot be read (test)".to_owned())
        })
    };
    let (events, mut received) = mpsc::channel(64);
    let first = start(&settings, failing, events);
    wait("the consumer whose state read fails never ended", || {
        !first.alive()
    });
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "attempts at reading the state"
    );
    let mut handed_over = Vec::new();
    while let Ok(event) = received.try_recv() {
        handed_over.push(format!("{event:?}"));
    }
    assert!(
        handed_over.is_empty(),
        "handed over without the state: {handed_over:?}"
    );
    drop(first);

    let state: BTreeMap<String, _> = BTreeMap::new();
    let reads = Arc::new(AtomicUsize::new(0));
    let readable: RestoreFn = {
        let reads = Arc::clone(&reads);
        Arc::new(move || {
            reads.fetch_add(1, Ordering::SeqCst);
            Ok(state.clone())
        })
    };
    let (events, mut received) = mpsc::channel(64);
    let second = start(&settings, readable, events);
    let mut got = Vec::new();
    wait("the second consumer was given no message", || {
        while let Ok(event) = received.try_recv() {
            got.push(event);
        }
        got.iter().any(|e| matches!(e, Event::Message(_)))
    });
    let first_message = got
        .iter()
        .position(|e| matches!(e, Event::Message(_)))
        .expect("a message");
    assert!(
        got[..first_message].iter().any(|e| matches!(
            e,
            Event::Assigned {
                restored: Some(_),
                ..
            }
        )),
        "a message before the assignment with its state: {got:?}"
    );
    assert!(reads.load(Ordering::SeqCst) >= 1);
    assert!(
        second.alive(),
        "the consumer whose state read succeeds runs on"
    );
}

/// Where `needle` first is in `log` after byte `from`, or a failure naming
/// what was expected.
fn find_after(log: &str, from: usize, needle: &str, what: &str) -> usize {
    log[from..]
        .find(needle)
        .map(|at| from + at)
        .unwrap_or_else(|| panic!("{what}: no {needle:?} after byte {from}; log:\n{log}"))
}

#[test]
fn central_restarts_its_merge_consumer_with_backoff_when_the_state_is_unreadable() {
    let broker = Broker::start();
    broker.create_topic("snaps", 2);
    let root = tempfile::tempdir().expect("temp dir");
    let conf = root.path().join("central.conf");
    std::fs::write(
        &conf,
        format!(
            "[paths]\nbase-dir = {root}\n\n[pull]\npull-interval = 1\n\n\
             [graphite]\nenabled = false\n\n[local-store]\ndir = {root}/store\n\n\
             [kafka]\nbrokers = {brokers}\nsnapshots-topic = snaps\n\
             librdkafka.session.timeout.ms = 6000\nlibrdkafka.heartbeat.interval.ms = 500\n\
             {ONE_RECORD_PER_BATCH}\n[central]\nworkers = 1\n",
            root = root.path().display(),
            brokers = broker.brokers(),
        ),
    )
    .expect("write conf");
    // One merge consumer's attempts (three) fail; the restarted one reads.
    let mut central = Haproxystats::start_bin_with_env(
        &fault_injection_bin(),
        &["central"],
        &conf,
        &root.path().join("central.log"),
        &[("HAPROXYSTATS_FAIL_STATE_READS", "3")],
    );
    let restarted = "child restarted child=\"merge-consumer\"";
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let log = central.log();
        if let Some(at) = log.find(restarted)
            && log[at..].contains("partitions assigned topic=snaps.partials")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no restart of the merge consumer followed by an assignment after {TIMEOUT:?}; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = central.log();
    // In order: three failed reads, the consumer stops, Central restarts it
    // after a backoff, the new one is assigned the partials and reads the
    // state (no failed read after the restart).
    let mut at = 0;
    for attempt in 1..=3 {
        at = find_after(
            &log,
            at,
            &format!("attempt={attempt} "),
            "a failed state read",
        );
        at = find_after(&log, at, "(fault injection)", "the injected failure");
    }
    at = find_after(
        &log,
        at,
        "cannot read the state at an assignment; the consumer stops and is restarted",
        "the merge consumer stopping",
    );
    at = find_after(
        &log,
        at,
        "child died; restarting it child=\"merge-consumer\" restart_in_ms=",
        "the backoff",
    );
    at = find_after(&log, at, restarted, "the restart");
    assert!(
        !log[at..].contains("cannot read the state"),
        "a failed read after the restart; log:\n{log}"
    );
    // The status file is rewritten every second: it counts the restart.
    let status_file = root.path().join("haproxystats.status");
    wait("child_restarts=1 not in the status file", || {
        std::fs::read_to_string(&status_file).is_ok_and(|s| s.contains("child_restarts=1\n"))
    });
    assert_eq!(central.terminate(Duration::from_secs(20)), Some(0));
}
