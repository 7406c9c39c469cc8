//! GraphiteSink against fake carbon peers on loopback: order, outages,
//! a full backlog. (The real carbon stack is exercised by the end-to-end tests.)

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use haproxystats::config::Retries;
use haproxystats::sink::graphite::{GetSinkStats, GraphiteSettings, GraphiteSink, SinkStats};
use haproxystats::sink::messages::{Flush, SendLines};
use haproxystats::sink::retry::RetryPolicy;
use support::fake_graphite::{Behaviour, FakeGraphite};
use support::free_port;

/// The sink's stats; a sink that cannot answer fails the test.
async fn sink_stats(sink: &actix::Addr<GraphiteSink>) -> SinkStats {
    sink.send(GetSinkStats)
        .await
        .expect("the sink answers GetSinkStats")
}

/// The sink's stats once `done` holds for them; failing after 10 s names
/// `what` and the last stats seen.
async fn stats_once(
    sink: &actix::Addr<GraphiteSink>,
    what: &str,
    done: impl Fn(&SinkStats) -> bool,
) -> SinkStats {
    let start = Instant::now();
    loop {
        let stats = sink_stats(sink).await;
        if done(&stats) {
            return stats;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: not after 10 s: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the sink still holds after flushing for `timeout`.
async fn flush(sink: &actix::Addr<GraphiteSink>, timeout: Duration) -> u64 {
    sink.send(Flush { timeout })
        .await
        .expect("the sink answers Flush")
}

/// Runs a blocking wait off the event loop; its panic is the test's.
async fn blocking<T: Send + 'static>(wait: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(wait)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn settings(port: u16, queue_size: usize) -> GraphiteSettings {
    GraphiteSettings {
        host: "127.0.0.1".into(),
        port,
        connect_timeout: Duration::from_millis(200),
        write_timeout: Duration::from_millis(500),
        policy: RetryPolicy::new(
            Retries::Times(2),
            Duration::from_millis(20),
            2.0,
            Duration::from_millis(100),
        ),
        queue_size,
        replay_bytes: haproxystats::sink::graphite::REPLAY_BYTES,
    }
}

fn batch(snapshot: u32, lines: u32) -> (Vec<u8>, Vec<String>) {
    let expected: Vec<String> = (0..lines)
        .map(|i| {
            format!(
                "test.snapshot{snapshot}.metric{i} {i} {}",
                1_700_000_000 + snapshot
            )
        })
        .collect();
    let mut bytes = expected.join("\n").into_bytes();
    bytes.push(b'\n');
    (bytes, expected)
}

#[actix_rt::test]
async fn lines_sent_during_an_outage_arrive_once_in_order_when_it_ends() {
    let port = free_port();
    let sink = GraphiteSink::new(settings(port, 100_000)).start();
    let mut expected = Vec::new();
    for snapshot in 0..5 {
        let (bytes, lines) = batch(snapshot, 1000);
        sink.do_send(SendLines(bytes));
        expected.extend(lines);
    }
    let stats = stats_once(&sink, "every line in the backlog", |s| s.backlog == 5000).await;
    assert!(!stats.connected);
    assert_eq!(
        stats.last_delivery, None,
        "nothing delivered yet: {stats:?}"
    );

    let peer = FakeGraphite::start_on(port, |_| Behaviour::Read, None);
    let received = blocking(move || peer.wait_for_last(5000, Duration::from_secs(10))).await;
    assert_eq!(received.len(), expected.len());
    assert!(
        received == expected,
        "lines arrived out of order or altered"
    );
    let left = flush(&sink, Duration::from_secs(2)).await;
    assert_eq!(left, 0);
    let stats = sink_stats(&sink).await;
    assert_eq!((stats.sent, stats.dropped), (5000, 0), "{stats:?}");
    // `haproxystats check` reads its push age from this.
    assert!(stats.last_delivery.is_some(), "{stats:?}");
}

#[actix_rt::test]
async fn a_full_backlog_drops_exactly_the_oldest_lines_and_counts_them() {
    let port = free_port();
    let sink = GraphiteSink::new(settings(port, 2500)).start();
    let mut expected = Vec::new();
    for snapshot in 0..5 {
        let (bytes, lines) = batch(snapshot, 1000);
        sink.do_send(SendLines(bytes));
        expected.extend(lines);
    }
    // Once the last batch is queued, the backlog holds the newest 2500 and
    // nothing more is ever dropped while the peer is down.
    stats_once(&sink, "2500 lines dropped", |s| s.dropped == 2500).await;
    let stats = sink_stats(&sink).await;
    assert_eq!((stats.backlog, stats.dropped), (2500, 2500), "{stats:?}");

    let peer = FakeGraphite::start_on(port, |_| Behaviour::Read, None);
    let received = blocking(move || peer.wait_for_last(2500, Duration::from_secs(10))).await;
    assert!(
        received == expected[2500..],
        "not exactly the newest 2500 lines: got {}",
        received.len()
    );
}

#[actix_rt::test]
async fn a_peer_that_never_reads_is_replaced_and_nothing_is_lost() {
    let port = free_port();
    // The first connection stalls with a tiny receive buffer; later ones read.
    let peer = FakeGraphite::start_on(
        port,
        |n| {
            if n == 0 {
                Behaviour::Stall
            } else {
                Behaviour::Read
            }
        },
        Some(4096),
    );
    let sink = GraphiteSink::new(settings(port, 1_000_000)).start();
    let mut expected = Vec::new();
    for snapshot in 0..10 {
        let (bytes, lines) = batch(snapshot, 20_000);
        sink.do_send(SendLines(bytes));
        expected.extend(lines);
    }
    // Processing is never blocked: the sink answers while the peer stalls.
    let stats = tokio::time::timeout(Duration::from_secs(1), sink.send(GetSinkStats)).await;
    assert!(matches!(stats, Ok(Ok(_))), "sink blocked: {stats:?}");
    let total = expected.len();
    let (last, connections) = blocking(move || {
        let last = peer.wait_for_last(total, Duration::from_secs(20));
        (last, peer.accepted())
    })
    .await;
    assert!(
        connections >= 2,
        "the stalled connection was never replaced"
    );
    assert_eq!(
        last.len(),
        total,
        "lines lost or duplicated on the new connection"
    );
    assert!(last == expected, "lines arrived out of order");
    let stats = sink_stats(&sink).await;
    assert_eq!(stats.dropped, 0);
    assert!(stats.reconnects >= 1, "{stats:?}");
}

#[actix_rt::test]
async fn a_connection_reset_mid_batch_resends_the_unacknowledged_tail() {
    let port = free_port();
    // The first connection closes after ~100 kB: mid-chunk, mid-line.
    let peer = FakeGraphite::start_on(
        port,
        |n| {
            if n == 0 {
                Behaviour::CloseAfter(100_000)
            } else {
                Behaviour::Read
            }
        },
        None,
    );
    let sink = GraphiteSink::new(settings(port, 1_000_000)).start();
    let (bytes, expected) = batch(0, 50_000);
    sink.do_send(SendLines(bytes));
    let total = expected.len();
    let connections = blocking(move || {
        peer.wait_for_connections(
            "a second connection carrying every line",
            Duration::from_secs(20),
            |all| all.len() >= 2 && all.last().map(Vec::len) >= Some(total),
        )
    })
    .await;
    assert!(
        connections.len() >= 2,
        "no reconnect after the reset: {}",
        connections.len()
    );
    let first = &connections[0];
    assert!(
        !first.is_empty() && first.len() < total,
        "the reset was not mid-batch"
    );
    assert!(
        first[..] == expected[..first.len()],
        "first connection got altered lines"
    );
    // At-least-once: the new connection carries everything again, in order.
    let last = &connections[connections.len() - 1];
    assert!(
        last[..] == expected[..],
        "resend incomplete: {} of {total}",
        last.len()
    );
}

#[actix_rt::test]
async fn flush_waits_for_the_backlog_and_reports_what_is_left() {
    let port = free_port();
    let sink = GraphiteSink::new(settings(port, 10_000)).start();
    let (bytes, _) = batch(0, 300);
    sink.do_send(SendLines(bytes));
    // Nobody listens: flushing times out with every line still waiting.
    let started = Instant::now();
    let left = flush(&sink, Duration::from_millis(300)).await;
    assert_eq!(left, 300);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let peer = FakeGraphite::start_on(port, |_| Behaviour::Read, None);
    let left = flush(&sink, Duration::from_secs(5)).await;
    assert_eq!(left, 0);
    assert_eq!(peer.wait_for_last(300, Duration::from_secs(2)).len(), 300);
}

#[actix_rt::test]
async fn a_batch_is_acknowledged_only_once_written_or_dropped() {
    use haproxystats::sink::messages::{LinesOf, SendLinesAcked};
    use tokio::sync::oneshot;

    let port = free_port();
    // Room for 2500 lines: of five 1000-line batches, the first two and half
    // of the third are dropped while the peer is down.
    let sink = GraphiteSink::new(settings(port, 2500)).start();
    let mut acks = Vec::new();
    for snapshot in 0..5 {
        let (bytes, _) = batch(snapshot, 1000);
        let (written, ack) = oneshot::channel();
        sink.do_send(SendLinesAcked {
            of: LinesOf::Own,
            ts: 0,
            lines: bytes.into(),
            written,
        });
        acks.push(ack);
    }
    // Dropped entirely: acknowledged (nothing left to keep the snapshot for).
    // Partly or not dropped: waiting for the peer, which is down, so no
    // other answer can come before it starts.
    let mut done = [false; 5];
    let start = Instant::now();
    while !(done[0] && done[1]) {
        for (i, ack) in acks.iter_mut().enumerate() {
            done[i] |= ack.try_recv().is_ok();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the two dropped batches not acknowledged after 10 s: {done:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(done, [true, true, false, false, false]);

    let peer = FakeGraphite::start_on(port, |_| Behaviour::Read, None);
    let received = blocking(move || peer.wait_for_last(2500, Duration::from_secs(10))).await;
    assert_eq!(received.len(), 2500);
    for (i, ack) in acks.iter_mut().enumerate().skip(2) {
        let ok = tokio::time::timeout(Duration::from_secs(2), ack).await;
        assert!(
            matches!(ok, Ok(Ok(()))),
            "batch {i} not acknowledged: {ok:?}"
        );
        done[i] = true;
    }
    assert!(done.iter().all(|d| *d));
}

#[actix_rt::test]
async fn sent_chunks_come_back_to_the_pool_once_out_of_the_replay_window() {
    use haproxystats::sink::chunk_pool::ChunkPool;
    use haproxystats::sink::chunks::{LINE_CHUNK, LineChunks};
    use haproxystats::sink::messages::{LinesOf, SendLinesAcked};
    use std::io::Write;
    use tokio::sync::oneshot;

    let port = free_port();
    let peer = FakeGraphite::start_on(port, |_| Behaviour::Read, None);
    let pool = Arc::new(ChunkPool::new());
    // Replay window: two chunks' worth stays with the sink.
    let mut sink_settings = settings(port, 1_000_000);
    sink_settings.replay_bytes = 2 * LINE_CHUNK;
    let sink = GraphiteSink::new(sink_settings).start();

    let (bytes, expected) = batch(0, 80_000);
    let mut lines = LineChunks::recycling(Arc::clone(&pool));
    lines.write_all(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let chunks = lines.chunks().len();
    assert!(chunks >= 8, "only {chunks} chunks");
    pool.limit_to(chunks);
    let (written, ack) = oneshot::channel();
    sink.do_send(SendLinesAcked {
        of: LinesOf::Own,
        ts: 0,
        lines: lines.into(),
        written,
    });
    let acked = tokio::time::timeout(Duration::from_secs(10), ack).await;
    assert!(matches!(acked, Ok(Ok(()))), "not acknowledged: {acked:?}");
    let count = expected.len();
    let received = blocking(move || peer.wait_for_last(count, Duration::from_secs(10))).await;
    assert_eq!(received.len(), count);
    assert!(
        received == expected,
        "lines arrived out of order or altered"
    );

    // Every chunk but those the replay window holds (at most its two plus
    // the last, partial one, which is not of the pool's size) is back.
    let spare = pool.spare();
    assert!(
        spare + 3 >= chunks && spare < chunks,
        "{spare} spare of {chunks}"
    );
    // And the next snapshot's chunks are those.
    let mut next = LineChunks::recycling(Arc::clone(&pool));
    next.write_all(b"a 1 2\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pool.spare(), spare - 1);
}
