//! A real Kafka-compatible broker for integration tests: tansu, with its
//! memory storage engine, behind a TCP proxy the test can cut and restore
//! (an outage; restarting tansu would forget every message), and a reader
//! that takes a topic back from the beginning.
//!
//! tansu is installed by `contrib/install-deps.sh` (`cargo install tansu
//! --locked --features dynostore`, once, into `~/.cargo/bin`); a missing
//! binary panics saying so. The broker advertises the proxy's address, so
//! every client, ours and the reader, goes through the proxy.
//!
//! Besides reading a topic back ([`Broker::read`], [`Broker::read_to_end`]),
//! it tells a topic's end and a group's committed offsets, and groups
//! snapshot or partial messages by load balancer and `ts` ([`by_lb_and_ts`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::process::{Proc, TempRoot, free_ports, port_accepts, temp_root, wait_until};

/// How long tansu may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// tansu in `PATH` or `~/.cargo/bin`, or a panic naming the install command.
fn tansu_binary() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|dir| dir.join("tansu"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`tansu` was not found in PATH nor in ~/.cargo/bin: these tests need a real \
                 broker; run contrib/install-deps.sh (cargo install tansu --locked --features \
                 dynostore)"
            )
        })
}

/// One message read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// Name and value of each header, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// The lines of the records' payloads, in order.
pub fn lines_of(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .flat_map(|r| {
            String::from_utf8_lossy(&r.payload)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

impl Record {
    /// The value of header `name` as text, if there is one.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
    }
}

/// Messages carrying SPEC §5's headers (`lb`, `ts`, `part`, `parts`: raw
/// snapshots, partial aggregates) grouped by `(lb, ts)`, each part once
/// (the first read), in part order; `None` for a group missing a part.
pub fn by_lb_and_ts(records: &[Record]) -> BTreeMap<(String, u64), Option<Vec<Record>>> {
    let mut groups: BTreeMap<(String, u64), (usize, BTreeMap<usize, Record>)> = BTreeMap::new();
    for record in records {
        let number = |name: &str| -> usize {
            record
                .header(name)
                .unwrap_or_else(|| panic!("offset {}: no {name} header", record.offset))
                .parse()
                .unwrap_or_else(|e| panic!("offset {}: {name} header: {e}", record.offset))
        };
        let lb = record
            .header("lb")
            .unwrap_or_else(|| panic!("offset {}: no lb header", record.offset));
        let (parts, part) = (number("parts"), number("part"));
        let group = groups
            .entry((lb, number("ts") as u64))
            .or_insert_with(|| (parts, BTreeMap::new()));
        group.1.entry(part).or_insert_with(|| record.clone());
    }
    groups
        .into_iter()
        .map(|(key, (parts, got))| {
            let complete = got.len() == parts && got.keys().copied().eq(0..parts);
            (key, complete.then(|| got.into_values().collect()))
        })
        .collect()
}

/// One past the highest offset of `records` in each of `partitions` (0
/// for a partition with none): where a topic read by
/// [`Broker::read_to_end`] ends.
pub fn ends_of(records: &[Record], partitions: i32) -> Vec<i64> {
    (0..partitions)
        .map(|p| {
            records
                .iter()
                .filter(|r| r.partition == p)
                .map(|r| r.offset + 1)
                .max()
                .unwrap_or(0)
        })
        .collect()
}

/// A `[kafka]` line for every haproxystats configuration talking to tansu:
/// one record per producer batch, because tansu 0.6.0 never returns the
/// rest of a batch to a fetch that starts inside it (tests/tansu_fetch.rs).
pub const ONE_RECORD_PER_BATCH: &str = "librdkafka.batch.num.messages = 1\n";

/// tansu behind a cuttable proxy; stopped by PID on drop.
pub struct Broker {
    // Fields drop in order: the broker, then the proxy, then the files.
    broker: Proc,
    proxy: Proxy,
    broker_port: u16,
    tansu: PathBuf,
    root: TempRoot,
}

impl Broker {
    /// Starts tansu on a free port, with the proxy in front of it.
    pub fn start() -> Broker {
        let tansu = tansu_binary();
        let root = temp_root("haproxystats-kafka-");
        // A port found free may be taken by another test's connection
        // before the proxy binds it: try again with others.
        let (broker_port, proxy_port, proxy) = (1..=3)
            .find_map(|_| {
                let ports = free_ports(2);
                let proxy = Proxy::start(ports[1], ports[0]).ok()?;
                Some((ports[0], ports[1], proxy))
            })
            .unwrap_or_else(|| panic!("no free port pair for the broker and its proxy"));
        let broker = Proc::spawn(
            "tansu",
            Command::new(&tansu)
                .arg("broker")
                .arg("--listener-url")
                .arg(format!("tcp://127.0.0.1:{broker_port}"))
                .arg("--advertised-listener-url")
                .arg(format!("tcp://127.0.0.1:{proxy_port}"))
                .arg("--storage-engine")
                .arg("memory://tansu/"),
            &root.path().join("tansu.log"),
        );
        let addr: SocketAddr = ([127, 0, 0, 1], broker_port).into();
        let mut broker = Broker {
            broker,
            proxy,
            broker_port,
            tansu,
            root,
        };
        wait_until(
            START_TIMEOUT,
            "tansu to listen",
            || port_accepts(addr).then_some(()),
            || broker.broker.log_tail(),
        );
        assert!(broker.broker.is_running(), "{}", broker.broker.log_tail());
        broker
    }

    /// What a client is given: the proxy's address.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.proxy.port)
    }

    /// A producer's configuration for this broker: its address, one record
    /// per batch (the librdkafka option of [`ONE_RECORD_PER_BATCH`]).
    pub fn producer_config(&self) -> ClientConfig {
        let (name, value) = ONE_RECORD_PER_BATCH
            .trim()
            .strip_prefix("librdkafka.")
            .and_then(|option| option.split_once(" = "))
            .expect("ONE_RECORD_PER_BATCH is one librdkafka option");
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.brokers())
            .set(name, value);
        config
    }

    /// Creates `topic` (tansu creates none by itself).
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let output = Command::new(&self.tansu)
            .args(["topic", "create", topic, "--partitions"])
            .arg(partitions.to_string())
            .arg("--broker")
            .arg(format!("tcp://127.0.0.1:{}", self.broker_port))
            .output()
            .unwrap_or_else(|e| panic!("run tansu topic create: {e}"));
        assert!(
            output.status.success(),
            "tansu topic create {topic}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Cuts every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.proxy.cut();
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.proxy.restore();
    }

    /// The broker's log, for panic messages.
    pub fn log(&self) -> String {
        self.broker.log_tail()
    }

    /// Reads `topic` from the beginning of each of its `partitions` until
    /// `enough` says so, or panics after `timeout`.
    pub fn read(
        &self,
        topic: &str,
        partitions: i32,
        timeout: Duration,
        enough: impl Fn(&[Record]) -> bool,
    ) -> Vec<Record> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("group.id", format!("reader-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap_or_else(|e| panic!("create consumer: {e}"));
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .unwrap_or_else(|e| panic!("assign {topic}/{partition}: {e}"));
        }
        consumer
            .assign(&assignment)
            .unwrap_or_else(|e| panic!("assign {topic}: {e}"));
        let deadline = Instant::now() + timeout;
        let mut records = Vec::new();
        while !enough(&records) {
            assert!(
                Instant::now() < deadline,
                "{topic}: not enough after {timeout:?}: {} messages\n{}",
                records.len(),
                self.log()
            );
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => records.push(Record {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    headers: message
                        .headers()
                        .map(|headers| {
                            headers
                                .iter()
                                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                }),
                Some(Err(error)) => panic!("{topic}: consumer error: {error}"),
                None => {}
            }
        }
        records
    }

    /// Reads `topic` from the beginning of each of its `partitions` up to
    /// its end: past the high watermarks it has now, and then on until no
    /// message came for a second, because tansu 0.6.0's high watermark can
    /// stay behind the last messages of a batch of several (seen with an
    /// idempotent producer sending a snapshot's parts at once). Panics
    /// after `timeout`. [`ends_of`] gives the ends the messages read show.
    pub fn read_to_end(&self, topic: &str, partitions: i32, timeout: Duration) -> Vec<Record> {
        let end = self.end_offsets(topic, partitions);
        let last = std::cell::Cell::new((0, Instant::now()));
        self.read(topic, partitions, timeout, |records| {
            if last.get().0 != records.len() {
                last.set((records.len(), Instant::now()));
            }
            let quiet = last.get().1.elapsed() > Duration::from_secs(1);
            quiet
                && (0..partitions).all(|p| {
                    let got = records.iter().filter(|r| r.partition == p).count();
                    i64::try_from(got).unwrap_or(i64::MAX) >= end[p as usize]
                })
        })
    }

    /// The high watermark of each of `topic`'s `partitions`: one past its
    /// last message (but see [`Broker::read_to_end`] about tansu's).
    pub fn end_offsets(&self, topic: &str, partitions: i32) -> Vec<i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .create()
            .unwrap_or_else(|e| panic!("create consumer: {e}"));
        (0..partitions)
            .map(|p| {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .map(|(_, high)| high)
                    .unwrap_or_else(|e| panic!("watermarks of {topic}/{p}: {e}"))
            })
            .collect()
    }

    /// What consumer group `group` committed on each of `topic`'s
    /// `partitions` (0 where nothing is), or `None` when the broker does
    /// not say.
    pub fn committed_offsets(&self, group: &str, topic: &str, partitions: i32) -> Option<Vec<i64>> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("group.id", group)
            .create()
            .unwrap_or_else(|e| panic!("create consumer: {e}"));
        let mut tpl = TopicPartitionList::new();
        for partition in 0..partitions {
            tpl.add_partition(topic, partition);
        }
        let offsets = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .ok()?;
        Some(
            offsets
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                })
                .collect(),
        )
    }

    /// Where the broker keeps its log.
    pub fn root(&self) -> &std::path::Path {
        self.root.path()
    }
}

/// A TCP proxy on 127.0.0.1 that can be cut: a broker outage without
/// stopping the broker.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(port: u16, target: u16) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let open = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (is_open, stopping, held) =
            (Arc::clone(&open), Arc::clone(&stop), Arc::clone(&streams));
        let thread = thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                };
                if !is_open.load(Ordering::Relaxed) {
                    // Cut: the connection is closed at once.
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                    let mut all = held.lock().unwrap_or_else(|e| e.into_inner());
                    all.push(c);
                    all.push(s);
                }
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        Ok(Proxy {
            port,
            open,
            stop,
            streams,
            thread: Some(thread),
        })
    }

    fn cut(&self) {
        self.open.store(false, Ordering::Relaxed);
        let mut all = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        for stream in all.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Copies `from` to `to` on a thread until either side closes.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
