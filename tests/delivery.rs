//! At-least-once delivery against Graphite peers that misbehave: a snapshot
//! leaves src-dir only once its lines are confirmed (acknowledged by the
//! peer's TCP stack and not followed by a stall), a peer that never reads
//! gets nothing confirmed, one that resets every 100 KB still gets every
//! line without a reconnect storm, one that reads and drops lines while it
//! shuts down gets them again, and a healthy one empties src-dir within
//! about a second of each snapshot.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix::Actor;
use haproxystats::config::Retries;
use haproxystats::sink::chunks::LineChunks;
use haproxystats::sink::graphite::{GraphiteSettings, GraphiteSink};
use haproxystats::sink::messages::{LinesOf, SendLinesAcked};
use haproxystats::sink::retry::RetryPolicy;
use support::Haproxystats;
use support::fake_graphite::{Behaviour, FakeGraphite};
use support::snapshots::{Shape, publish_snapshot, replay_lines};

/// About 6 000 lines per snapshot.
const SHAPE: Shape = Shape {
    processes: 2,
    frontends: 20,
    backends: 20,
    servers: 8,
};

fn write_conf(root: &Path, src: &Path, port: u16) -> PathBuf {
    let conf = root.join(format!("haproxystats-{port}.conf"));
    fs::write(
        &conf,
        format!(
            "[paths]\nbase-dir = {root}\n\n[process]\nsrc-dir = {src}\nworkers = 2\n\n\
             [graphite]\nserver = 127.0.0.1\nport = {port}\nnamespace = test\n\
             prefix-hostname = false\nwrite-timeout = 1\ninterval = 0.2\nretries = 3\n",
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

#[test]
fn nothing_a_never_reading_peer_took_is_deleted_and_a_restart_delivers_every_line() {
    let root = tempfile::tempdir().expect("tempdir");
    let src = root.path().join("incoming");
    fs::create_dir(&src).expect("src-dir");
    let dirs: Vec<PathBuf> = (0..20u32)
        .map(|i| publish_snapshot(&src, 1_700_000_000 + 10 * u64::from(i), i + 1, SHAPE))
        .collect();
    let stalled = FakeGraphite::start_with(|_| Behaviour::Stall, None);
    let conf = write_conf(root.path(), &src, stalled.port());
    // Self metrics (wall-clock times) differ from run to run; the rest is
    // what the snapshots hold.
    let expected: BTreeSet<String> = replay_lines(&conf, &dirs)
        .into_iter()
        .filter(|line| !line.contains(".haproxystats."))
        .collect();
    assert!(expected.len() > 100_000, "{} lines", expected.len());

    let log = root.path().join("stalled.log");
    let mut daemon = Haproxystats::start(&["process"], &conf, &log);
    // Long enough for several connections to stall and be replaced.
    let deadline = Instant::now() + Duration::from_secs(60);
    while stalled.accepted() < 3 {
        assert!(Instant::now() < deadline, "no reconnects: {}", daemon.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(daemon.terminate(Duration::from_secs(20)), Some(0));
    let kept = snapshots_in(&src);
    assert_eq!(
        kept,
        20,
        "snapshots deleted unconfirmed; log:\n{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains(&format!("kept_snapshots={kept}")),
        "the stop does not say truthfully what is kept:\n{}",
        daemon.log()
    );
    drop(stalled);

    let healthy = FakeGraphite::start();
    let conf = write_conf(root.path(), &src, healthy.port());
    let mut daemon = Haproxystats::start(&["process"], &conf, &root.path().join("healthy.log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while snapshots_in(&src) > 0 {
        assert!(
            Instant::now() < deadline,
            "src-dir not emptied: {}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(daemon.terminate(Duration::from_secs(20)), Some(0));
    let received: BTreeSet<String> = healthy.lines().into_iter().collect();
    let missing: Vec<&String> = expected.difference(&received).collect();
    assert!(
        missing.is_empty(),
        "{} of {} lines never arrived, e.g. {:?}",
        missing.len(),
        expected.len(),
        missing.first()
    );
}

#[test]
fn with_a_healthy_peer_each_snapshot_leaves_src_dir_within_about_a_second() {
    let root = tempfile::tempdir().expect("tempdir");
    let src = root.path().join("incoming");
    fs::create_dir(&src).expect("src-dir");
    let peer = FakeGraphite::start();
    let conf = write_conf(root.path(), &src, peer.port());
    let mut daemon = Haproxystats::start(&["process"], &conf, &root.path().join("process.log"));
    let mut slowest = Duration::ZERO;
    for i in 0..6u32 {
        let dir = publish_snapshot(&src, 1_700_000_000 + 10 * u64::from(i), i + 1, SHAPE);
        let published = Instant::now();
        while dir.exists() {
            assert!(
                published.elapsed() < Duration::from_secs(10),
                "snapshot {i} still in src-dir after 10 s: {}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        slowest = slowest.max(published.elapsed());
    }
    // About a second: processing, writing, the settle time (250 ms) and the
    // confirmation tick; 3 s leaves room for a loaded CI machine.
    assert!(slowest < Duration::from_secs(3), "slowest {slowest:?}");
    assert_eq!(snapshots_in(&src), 0);
    assert_eq!(daemon.terminate(Duration::from_secs(20)), Some(0));
    assert!(
        daemon.log().contains("every snapshot delivered"),
        "{}",
        daemon.log()
    );
}

fn lines(count: u32) -> (Vec<u8>, BTreeSet<String>) {
    lines_from(0, count)
}

/// Lines `first..first + count`, as bytes and as the set expected.
fn lines_from(first: u32, count: u32) -> (Vec<u8>, BTreeSet<String>) {
    let expected: BTreeSet<String> = (first..first + count)
        .map(|i| format!("test.reset.metric{i:06} {i} 1700000000"))
        .collect();
    let mut bytes = Vec::new();
    for line in &expected {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    (bytes, expected)
}

fn sink_settings(port: u16) -> GraphiteSettings {
    GraphiteSettings {
        host: "127.0.0.1".into(),
        port,
        connect_timeout: Duration::from_millis(500),
        write_timeout: Duration::from_secs(1),
        policy: RetryPolicy::new(
            Retries::Times(3),
            Duration::from_millis(200),
            2.0,
            Duration::from_secs(2),
        ),
        queue_size: 1_000_000,
        replay_bytes: haproxystats::sink::graphite::REPLAY_BYTES,
    }
}

/// Hands `bytes` to the sink; resolves once the sink confirmed them.
fn send(sink: &actix::Addr<GraphiteSink>, bytes: Vec<u8>) -> tokio::sync::oneshot::Receiver<()> {
    let mut chunks = LineChunks::default();
    chunks.push_chunk(bytes);
    let (written, acknowledged) = tokio::sync::oneshot::channel();
    sink.do_send(SendLinesAcked {
        of: LinesOf::Own,
        ts: 0,
        lines: chunks.into(),
        written,
    });
    acknowledged
}

#[actix_rt::test]
async fn lines_a_peer_read_and_dropped_while_shutting_down_are_written_again() {
    // The first connection reads everything for 1.5 s and forwards nothing,
    // as carbon-c-relay does between SIGTERM and its exit; TCP cannot tell.
    let peer = FakeGraphite::start_with(
        |n| {
            if n == 0 {
                Behaviour::DiscardFor(Duration::from_millis(1500))
            } else {
                Behaviour::Read
            }
        },
        None,
    );
    let sink = GraphiteSink::new(sink_settings(peer.port())).start();
    let (bytes, mut expected) = lines(2_000);
    let ack = tokio::time::timeout(Duration::from_secs(10), send(&sink, bytes)).await;
    assert!(
        matches!(ack, Ok(Ok(()))),
        "a reading peer's lines are confirmed: {ack:?}"
    );
    // The next snapshot finds the connection closed.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (more, later) = lines_from(2_000, 100);
    expected.extend(later);
    let ack = tokio::time::timeout(Duration::from_secs(10), send(&sink, more)).await;
    assert!(matches!(ack, Ok(Ok(()))), "not acknowledged: {ack:?}");
    let received: BTreeSet<String> = peer.lines().into_iter().collect();
    let missing = expected.difference(&received).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} lines lost with the first connection ({} connections)",
        expected.len(),
        peer.accepted()
    );
}

#[actix_rt::test]
async fn a_peer_that_resets_every_100_kb_gets_every_line_with_a_few_connections_a_second() {
    let peer = FakeGraphite::start_with(|_| Behaviour::ResetAfter(100_000), None);
    let sink = GraphiteSink::new(sink_settings(peer.port())).start();
    // About 1.1 MB: a dozen times what one connection takes.
    let (bytes, expected) = lines(25_000);
    let started = Instant::now();
    let ack = tokio::time::timeout(Duration::from_secs(90), send(&sink, bytes)).await;
    assert!(matches!(ack, Ok(Ok(()))), "not acknowledged: {ack:?}");
    let elapsed = started.elapsed();
    let received: BTreeSet<String> = peer.lines().into_iter().collect();
    let missing = expected.difference(&received).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} lines never arrived",
        expected.len()
    );
    let connections = peer.accepted();
    let per_second = connections as f64 / elapsed.as_secs_f64().max(1.0);
    assert!(
        per_second <= 5.0,
        "{connections} connections in {elapsed:?}: a reconnect storm"
    );
}
