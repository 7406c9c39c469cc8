//! GraphiteSink against fake carbon peers on loopback: order, outages,
//! a full backlog. (The real carbon stack is exercised by the end-to-end tests.)

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Actor;
use haproxystats::config::Retries;
use haproxystats::sink::graphite::{
    Flush, GetSinkStats, GraphiteSettings, GraphiteSink, SendLines,
};
use haproxystats::sink::retry::RetryPolicy;

/// A carbon stand-in: records every complete line it receives, in order.
struct CountingPeer {
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CountingPeer {
    fn start(port: u16, lines: Arc<Mutex<Vec<String>>>) -> CountingPeer {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("nonblocking: {e}"));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop_flag, record) = (Arc::clone(&stop), Arc::clone(&lines));
        let thread = std::thread::spawn(move || {
            let mut readers = Vec::new();
            while !stop_flag.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let record = Arc::clone(&record);
                        readers.push(std::thread::spawn(move || read_lines(stream, &record)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        CountingPeer {
            lines,
            stop,
            thread: Some(thread),
        }
    }

    fn wait_for(&self, count: usize, deadline: Duration) -> Vec<String> {
        let start = Instant::now();
        loop {
            let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
            if lines.len() >= count || start.elapsed() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for CountingPeer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_lines(stream: TcpStream, record: &Mutex<Vec<String>>) {
    let _ = stream.set_nonblocking(false);
    for line in BufReader::new(stream).lines() {
        match line {
            Ok(line) => {
                if let Ok(mut lines) = record.lock() {
                    lines.push(line);
                }
            }
            Err(_) => return,
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
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
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stats = sink.send(GetSinkStats).await.unwrap_or_default();
    assert_eq!(stats.backlog, 5000, "{stats:?}");
    assert!(!stats.connected);

    let peer = CountingPeer::start(port, Arc::default());
    let received =
        tokio::task::spawn_blocking(move || peer.wait_for(5000, Duration::from_secs(10)))
            .await
            .unwrap_or_default();
    assert_eq!(received.len(), expected.len());
    assert!(
        received == expected,
        "lines arrived out of order or altered"
    );
    let left = sink
        .send(Flush {
            timeout: Duration::from_secs(2),
        })
        .await
        .unwrap_or(u64::MAX);
    assert_eq!(left, 0);
    let stats = sink.send(GetSinkStats).await.unwrap_or_default();
    assert_eq!((stats.sent, stats.dropped), (5000, 0), "{stats:?}");
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = sink.send(GetSinkStats).await.unwrap_or_default();
    assert_eq!((stats.backlog, stats.dropped), (2500, 2500), "{stats:?}");

    let peer = CountingPeer::start(port, Arc::default());
    let received =
        tokio::task::spawn_blocking(move || peer.wait_for(2500, Duration::from_secs(10)))
            .await
            .unwrap_or_default();
    assert!(
        received == expected[2500..],
        "not exactly the newest 2500 lines: got {}",
        received.len()
    );
}
