//! Throughput of `haproxystats central` (SPEC §7 stage 1, issue 14): one
//! instance against two in one consumer group, on this machine's cores.
//!
//! `cargo bench --bench central_throughput [-- SNAPSHOTS]` (default 48):
//! starts tansu (memory storage; contrib/install-deps.sh installs it), a
//! snapshots topic of 4 partitions, and a Graphite listener that reads and
//! discards; publishes SNAPSHOTS raw snapshots of 8 load balancers, as edges
//! do (`raw::encode` of one gen_snapshot.py directory, shape `HS_CENTRAL_SHAPE`
//! = `processes,frontends,backends,servers`, default 4,250,250,20), then
//! times `haproxystats central` (the release binary, `[central] workers = 1`
//! per instance) from its start until its consumer group committed every
//! offset: first one instance, then two in a fresh group. Prints snapshots
//! per second, the ratio, and the CPU time of the central processes.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

#[path = "common/tansu.rs"]
mod tansu;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, TopicPartitionList};

const TOPIC: &str = "snaps";
const PARTITIONS: i32 = 4;
const LBS: usize = 8;

/// A Graphite server that reads everything and keeps nothing.
fn discard_graphite() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = vec![0u8; 1 << 20];
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

/// The snapshot every load balancer publishes, made once.
fn snapshot_dir(root: &Path) -> PathBuf {
    let shape = std::env::var("HS_CENTRAL_SHAPE").unwrap_or_else(|_| "4,250,250,20".into());
    let n: Vec<&str> = shape.split(',').collect();
    let [processes, frontends, backends, servers] = n.as_slice() else {
        panic!("HS_CENTRAL_SHAPE is processes,frontends,backends,servers, not {shape}");
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/gen_snapshot.py");
    let status = Command::new("python3")
        .arg(script)
        .arg("--out")
        .arg(root)
        .args(["--processes", processes, "--frontends", frontends])
        .args(["--backends", backends, "--servers", servers])
        .status()
        .unwrap_or_else(|e| panic!("gen_snapshot.py: {e}"));
    assert!(status.success(), "gen_snapshot.py failed");
    root.join("1700000000")
}

/// Publishes `count` snapshots of `dir` round-robin over the load
/// balancers, each slot 10 s after the previous; returns the messages.
fn publish(brokers: &str, dir: &Path, count: usize, first_ts: u64) -> (usize, usize) {
    let encoded = haproxystats::raw::encode(dir, 1_000_000).unwrap_or_else(|e| panic!("{e}"));
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("message.max.bytes", "1048576")
        .set("queue.buffering.max.kbytes", "1048576")
        // tansu 0.6.0 never gives a consumer that fetches from inside a
        // batch the rest of it (tests/tansu_fetch.rs).
        .set("batch.num.messages", "1")
        .create()
        .unwrap_or_else(|e| panic!("producer: {e}"));
    let mut messages = 0;
    for n in 0..count {
        let lb = format!("lb{:02}", n % LBS);
        let ts = first_ts + (n / LBS) as u64 * 10;
        let parts = encoded.parts.len();
        for (part, value) in encoded.parts.iter().enumerate() {
            let headers = rdkafka::message::OwnedHeaders::new()
                .insert(header("lb", &lb))
                .insert(header("cluster", "bench"))
                .insert(header("ts", &ts.to_string()))
                .insert(header("interval", "10"))
                .insert(header("part", &part.to_string()))
                .insert(header("parts", &parts.to_string()))
                .insert(header("format", haproxystats::raw::FORMAT));
            let mut record = BaseRecord::to(TOPIC)
                .key(lb.as_str())
                .payload(value.as_slice())
                .headers(headers);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        producer.poll(Duration::from_millis(50));
                        record = back;
                    }
                }
            }
            messages += 1;
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("flush: {e}"));
    (
        messages,
        encoded.parts.iter().map(Vec::len).sum::<usize>() * count,
    )
}

fn header<'a>(key: &'a str, value: &'a str) -> rdkafka::message::Header<'a, &'a str> {
    rdkafka::message::Header {
        key,
        value: Some(value),
    }
}

/// Messages in the topic, and what the group committed, over the partitions.
fn progress(brokers: &str, group: &str) -> (i64, i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap_or_else(|e| panic!("consumer: {e}"));
    let mut tpl = TopicPartitionList::new();
    let mut end = 0;
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
        end += consumer
            .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
            .map(|(_, high)| high)
            .unwrap_or(0);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .map(|tpl| {
            tpl.elements()
                .iter()
                .filter_map(|e| e.offset().to_raw())
                .filter(|&o| o > 0)
                .sum()
        })
        .unwrap_or(0);
    (end, committed)
}

/// CPU seconds (user + system) of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz.max(1.0)
}

/// Runs `instances` central processes in group `group` until it committed
/// everything; returns (seconds, CPU seconds of the centrals).
fn run(root: &Path, brokers: &str, graphite: u16, group: &str, instances: usize) -> (f64, f64) {
    let conf = root.join(format!("{group}.conf"));
    std::fs::write(
        &conf,
        format!(
            "[paths]\nbase-dir = {base}\n\n[graphite]\nserver = 127.0.0.1\nport = {graphite}\n\
             namespace = bench\nprefix-hostname = false\nqueue-size = 20000000\n\n\
             [kafka]\nbrokers = {brokers}\nsnapshots-topic = {TOPIC}\n\
             librdkafka.batch.num.messages = 1\n\n\
             [central]\ngroup-id = {group}\nworkers = 1\n",
            base = root.join(group).display(),
        ),
    )
    .unwrap_or_else(|e| panic!("conf: {e}"));
    std::fs::create_dir_all(root.join(group)).unwrap_or_else(|e| panic!("base dir: {e}"));
    let start = Instant::now();
    let mut children: Vec<Child> = (0..instances)
        .map(|i| {
            let log = std::fs::File::create(root.join(format!("{group}-{i}.log")))
                .unwrap_or_else(|e| panic!("log: {e}"));
            Command::new(env!("CARGO_BIN_EXE_haproxystats"))
                .args(["central", "-f"])
                .arg(&conf)
                .stdout(log.try_clone().unwrap_or_else(|e| panic!("log: {e}")))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("central: {e}"))
        })
        .collect();
    let deadline = start + Duration::from_secs(900);
    let mut cpu = vec![0.0; children.len()];
    let mut first_commit: Option<Instant> = None;
    loop {
        for (c, child) in cpu.iter_mut().zip(&children) {
            let now = cpu_seconds(child.id());
            if now > 0.0 {
                *c = now;
            }
        }
        let (end, committed) = progress(brokers, group);
        if committed > 0 && first_commit.is_none() {
            first_commit = Some(Instant::now());
        }
        if end > 0 && committed >= end {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{group}: committed {committed} of {end} after 900 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(first) = first_commit {
        println!(
            "{group}: first commit after {:.1} s (joining the group, first fetch), the rest in {:.1} s",
            (first - start).as_secs_f64(),
            first.elapsed().as_secs_f64()
        );
    }
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    (elapsed, cpu.iter().sum())
}

fn main() {
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(48);
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let broker = tansu::Tansu::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let brokers = broker.brokers.clone();
    let graphite = discard_graphite();
    let dir = snapshot_dir(&root.path().join("gen"));
    let csv: u64 = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let first_ts = now - now % 10 - 3600;
    let (messages, bytes) = publish(&brokers, &dir, count, first_ts);
    println!(
        "central_throughput: {count} snapshots of {LBS} load balancers ({csv} bytes of CSV each), {messages} messages, {bytes} bytes, {PARTITIONS} partitions"
    );
    let broker_cpu = cpu_seconds(broker.child.id());
    let (one, one_cpu) = run(root.path(), &brokers, graphite, "one", 1);
    let broker_one = cpu_seconds(broker.child.id()) - broker_cpu;
    println!(
        "one instance:  {one:.1} s, {:.2} snapshots/s, central CPU {one_cpu:.1} s ({:.3} s per snapshot)",
        count as f64 / one,
        one_cpu / count as f64
    );
    println!("  tansu's CPU meanwhile: {broker_one:.1} s");
    let broker_cpu = cpu_seconds(broker.child.id());
    let (two, two_cpu) = run(root.path(), &brokers, graphite, "two", 2);
    let broker_two = cpu_seconds(broker.child.id()) - broker_cpu;
    println!(
        "two instances: {two:.1} s, {:.2} snapshots/s, central CPU {two_cpu:.1} s ({:.3} s per snapshot)",
        count as f64 / two,
        two_cpu / count as f64
    );
    println!("  tansu's CPU meanwhile: {broker_two:.1} s");
    println!("two / one throughput: {:.2}×", one / two);
}
