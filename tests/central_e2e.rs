//! Central processing end to end (issue 14 item 6), every part real:
//! HAProxy fleets → edges (`haproxystats` with `[process] local = false`)
//! → tansu (the snapshots topic, two partitions) → `haproxystats central`
//! → carbon-c-relay → carbon-cache → whisper.
//!
//! Three edges, `eu-1` and `eu-2` of cluster `eu` and `us-1` of `us`, each
//! pulling its own HAProxy fleet (1 or 2 processes, traffic all along) every
//! second. What whisper must hold is worked out from the topic itself: every
//! snapshot the edges published is read back, its parts decoded
//! (`raw::decode`), written as `<tmp>/<lb>/<ts>` (`raw::write_dir`) and run
//! through the engine as `replay` does, under `test.<lb>.haproxy`; whisper
//! must hold exactly those points at that `ts` under `test.<lb>.haproxy.`
//! (the engine's timings, which vary per run, aside), for every snapshot.
//!
//! 1. One central with two workers: per-LB parity, and one partial
//!    aggregate per snapshot in the partials topic, keyed by its cluster.
//! 2. kill -9 of central with snapshots in flight, edges publishing on:
//!    once started again, every snapshot is in whisper with its values
//!    (the uncommitted ones processed again) and the offsets reach the end.
//! 3. Two centrals in one group share the partitions (a rebalance); both
//!    process snapshots; SIGTERM of one hands its partitions to the other;
//!    nothing is lost.
//! 4. Two centrals, one killed with -9 mid-stream: the other takes every
//!    partition over once the broker counts the dead one out.
//!
//! Stage 2 in 1, 2 and 4 (window = the pull interval): every window in which all
//! of a cluster's LBs published is in whisper under
//! `test.clusters.<cluster>.haproxy.` as `replay` of the union of the LBs
//! that reported it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::carbon::{Points, parse_line};
use support::kafka::{Broker, ONE_RECORD_PER_BATCH, Record, by_lb_and_ts, ends_of};
use support::process::{TempRoot, temp_root};
use support::{CarbonStack, FleetOptions, HaproxyFleet, Haproxystats};

const TOPIC: &str = "snaps";
const PARTIALS: &str = "snaps.partials";
const PARTITIONS: i32 = 2;
/// `[central] group-id`'s default.
const GROUP: &str = "haproxystats-central";
/// `(lb-name, cluster, HAProxy processes)` of each edge. With librdkafka's
/// default partitioner (CRC32 of the key) `us-1` goes to one partition and
/// the `eu` ones to the other, so that two centrals both have work
/// (`lbs_on_both_partitions` checks it).
const EDGES: [(&str, &str, usize); 3] = [("eu-1", "eu", 2), ("eu-2", "eu", 1), ("us-1", "us", 2)];
/// The centrals' consumer session timeout (librdkafka's default is 45 s):
/// a member killed with -9 leaves the group that much later. Not shorter:
/// with 3 s and two centrals (four members in two groups) tansu 0.6.0
/// timed sessions out and rebalanced every few seconds for good.
const SESSION_TIMEOUT_MS: u64 = 6000;
/// Every wait below ends by then.
const TIMEOUT: Duration = Duration::from_secs(60);
/// What processing options central and the reference share.
const PROCESS: &str = "per-process-metrics = true\ncalculate-percentages = true\n";
/// Stage 2: one window per pull (1 s), a missing LB waited for 5 s, an LB
/// expected while within 30 s of its cluster's newest window, a new
/// cluster's LBs trusted to be all after 5 windows (the edges and stage 1's
/// processing spread an LB's partials over several 1 s windows).
const WINDOWS: &str = "window = 1\ngrace = 5\nlb-timeout = 30\nexpected-windows = 5\n";
/// Marks the engine's timings, which differ from run to run.
const TIMINGS: &str = "WallClockTime";

/// Each load balancer's snapshots as published: `(lb, ts)` → parts.
type Snapshots = BTreeMap<(String, u64), Vec<Record>>;

/// The broker, carbon and one HAProxy fleet per edge, in one temp dir.
struct World {
    root: TempRoot,
    broker: Broker,
    carbon: CarbonStack,
    fleets: Vec<HaproxyFleet>,
    started: Instant,
    /// Held while the world lives; last, so that it is released once the
    /// fields above (their processes) are dropped.
    _turn: std::sync::MutexGuard<'static, ()>,
}

/// A scoped thread's result, or its panic.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// One world at a time: four worlds of 5 HAProxy processes, 3 edges,
/// centrals, a broker and carbon on 2 cores time each other out.
static ONE_WORLD: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl World {
    /// Starts everything but the edges and central, in parallel.
    fn start() -> World {
        let turn = ONE_WORLD
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let started = Instant::now();
        let (broker, carbon, fleets) = std::thread::scope(|s| {
            let broker = s.spawn(Broker::start);
            let carbon = s.spawn(CarbonStack::start);
            let fleets: Vec<_> = EDGES
                .iter()
                .map(|&(_, _, processes)| {
                    s.spawn(move || {
                        let mut fleet = HaproxyFleet::start(processes, FleetOptions::default());
                        fleet.wait_servers_up(TIMEOUT);
                        fleet
                    })
                })
                .collect();
            (
                join(broker),
                join(carbon),
                fleets.into_iter().map(join).collect(),
            )
        });
        broker.create_topic(TOPIC, PARTITIONS as u32);
        broker.create_topic(PARTIALS, PARTITIONS as u32);
        // [kafka] is there for the snapshots topic, and its `topic` is set:
        // central's lines go to the Kafka sink's topic too.
        broker.create_topic("haproxystats.metrics", 1);
        let world = World {
            root: temp_root("haproxystats-central-e2e-"),
            broker,
            carbon,
            fleets,
            started,
            _turn: turn,
        };
        world.progress("up");
        world
    }

    fn progress(&self, what: &str) {
        eprintln!("{:>6.1?} {what}", self.started.elapsed());
    }

    /// Starts the edges: each pulls its fleet every second and publishes.
    fn start_edges(&self) -> Vec<Haproxystats> {
        EDGES
            .iter()
            .zip(&self.fleets)
            .map(|(&(lb, cluster, _), fleet)| {
                let base = self.root.path().join(lb);
                fs::create_dir_all(&base).expect("edge dir");
                let conf = base.join("edge.conf");
                fs::write(
                    &conf,
                    format!(
                        "[paths]\nbase-dir = {base}\n\n\
                         [pull]\nsocket-dir = {sockets}\npull-interval = 1\npull-timeout = 0.9\n\
                         dst-dir = {base}/incoming\ntmp-dst-dir = {base}/incoming.tmp\n\n\
                         [process]\nsrc-dir = {base}/incoming\nlocal = false\n\n\
                         [kafka]\nbrokers = {brokers}\nsnapshots-topic = {TOPIC}\n\
                         cluster = {cluster}\nlb-name = {lb}\n{ONE_RECORD_PER_BATCH}",
                        base = base.display(),
                        sockets = fleet.socket_dir().display(),
                        brokers = self.broker.brokers(),
                    ),
                )
                .expect("write edge conf");
                Haproxystats::start(&[], &conf, &base.join("edge.log"))
            })
            .collect()
    }

    /// Stops the edges (SIGTERM: each publishes what it pulled, exit 0).
    fn stop_edges(&self, edges: &mut [Haproxystats]) {
        for edge in edges.iter_mut() {
            assert_eq!(
                edge.terminate(Duration::from_secs(20)),
                Some(0),
                "{}",
                edge.log()
            );
        }
        self.progress("edges stopped");
    }

    /// Runs `body` with HTTP traffic to every fleet meanwhile, so that
    /// counters differ from one snapshot to the next.
    fn with_traffic<R>(&self, body: impl FnOnce() -> R) -> R {
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    for fleet in &self.fleets {
                        for i in 0..fleet.len() {
                            fleet.generate_traffic_to(i, 2);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(150));
                }
            });
            // Stops the traffic however `body` ends (a panic too).
            let _stop = StopOnDrop(&stop);
            body()
        })
    }

    /// Central instance `name` (its own base-dir, so its own status file),
    /// run number `run` (its own log); debug level, which logs each
    /// snapshot processed.
    fn central(&self, name: &str, run: u32) -> Haproxystats {
        let base = self.root.path().join(name);
        fs::create_dir_all(&base).expect("central dir");
        let conf = base.join("central.conf");
        let relay = self.carbon.relay_addr();
        fs::write(
            &conf,
            format!(
                "[paths]\nbase-dir = {base}\n\n[pull]\npull-interval = 1\n\n\
                 [process]\nloglevel = debug\n{PROCESS}\n\
                 [graphite]\nserver = {host}\nport = {port}\nnamespace = test\n\
                 prefix-hostname = true\n\n\
                 [kafka]\nbrokers = {brokers}\nsnapshots-topic = {TOPIC}\n\
                 topic = haproxystats.metrics\n\
                 librdkafka.session.timeout.ms = {SESSION_TIMEOUT_MS}\n\
                 librdkafka.heartbeat.interval.ms = 500\n{ONE_RECORD_PER_BATCH}\n\
                 [central]\nworkers = 2\n{WINDOWS}",
                base = base.display(),
                host = relay.ip(),
                port = relay.port(),
                brokers = self.broker.brokers(),
            ),
        )
        .expect("write central conf");
        let central =
            Haproxystats::start(&["central"], &conf, &base.join(format!("run-{run}.log")));
        self.progress(&format!("{name} run {run} started"));
        central
    }

    /// Every snapshot in the topic now, each complete (an edge stopped by
    /// SIGTERM publishes what it pulled whole).
    fn snapshots(&self) -> Snapshots {
        let records = self.broker.read_to_end(TOPIC, PARTITIONS, TIMEOUT);
        let snapshots: Snapshots = by_lb_and_ts(&records)
            .into_iter()
            .map(|(key, parts)| {
                let parts = parts.unwrap_or_else(|| {
                    let of: Vec<_> = records
                        .iter()
                        .filter(|r| {
                            r.header("lb").as_ref() == Some(&key.0)
                                && r.header("ts") == Some(key.1.to_string())
                        })
                        .map(|r| (r.partition, r.offset, r.header("part"), r.header("parts")))
                        .collect();
                    panic!("{key:?}: a part is missing: {of:?}")
                });
                (key, parts)
            })
            .collect();
        for &(lb, _, _) in &EDGES {
            let count = snapshots.keys().filter(|(l, _)| l == lb).count();
            assert!(count >= 3, "{lb}: only {count} snapshots published");
        }
        self.progress(&format!("{} snapshots in the topic", snapshots.len()));
        snapshots
    }

    /// The group's committed offsets, summed (-1: the broker does not say).
    fn committed(&self) -> i64 {
        self.broker
            .committed_offsets(GROUP, TOPIC, PARTITIONS)
            .map_or(-1, |offsets| offsets.iter().sum())
    }

    /// Waits until the group committed every message of the topic: up to
    /// the end the snapshots read back show, partition by partition.
    fn wait_committed_to_the_end(&self, snapshots: &Snapshots, centrals: &[&Haproxystats]) {
        let records: Vec<Record> = snapshots.values().flatten().cloned().collect();
        let end = ends_of(&records, PARTITIONS);
        wait(
            &format!("offsets not committed to the end {end:?}"),
            centrals,
            || {
                self.broker
                    .committed_offsets(GROUP, TOPIC, PARTITIONS)
                    .as_ref()
                    == Some(&end)
            },
        );
        self.progress("committed to the end");
    }

    /// What `replay` gives for each snapshot (see the top), timings aside:
    /// `(path, ts)` → value.
    fn replayed(&self, snapshots: &Snapshots) -> Points {
        let mut points = Points::new();
        let mut options = BTreeMap::new();
        for ((lb, ts), parts) in snapshots {
            let opts = options.entry(lb.clone()).or_insert_with(|| {
                let loaded = haproxystats::config::load_str(&format!(
                    "[process]\n{PROCESS}\n[graphite]\nnamespace = test.{lb}\nprefix-hostname = false\n"
                ), &haproxystats::sink::options())
                .expect("replay options");
                haproxystats::engine::EngineOptions::from_config(&loaded.config, "replay")
                    .expect("engine options")
            });
            let payloads: Vec<&[u8]> = parts.iter().map(|r| r.payload.as_slice()).collect();
            let decoded = haproxystats::raw::decode(&payloads)
                .unwrap_or_else(|e| panic!("{lb} {ts}: decode: {e}"));
            let dir = self
                .root
                .path()
                .join("replayed")
                .join(lb)
                .join(ts.to_string());
            haproxystats::raw::write_dir(&decoded, &dir)
                .unwrap_or_else(|e| panic!("{lb} {ts}: write_dir: {e}"));
            let mut out = Vec::new();
            haproxystats::engine::process_snapshot(&dir, opts, &mut out)
                .unwrap_or_else(|e| panic!("{lb} {ts}: replay: {e}"));
            let lines = String::from_utf8(out).expect("UTF-8 lines");
            let before = points.len();
            for line in lines.lines().filter(|l| !l.contains(TIMINGS)) {
                let (path, value, at) = parse_line(line);
                assert_eq!(at, *ts, "{lb}: {line}");
                assert!(
                    path.starts_with(&format!("test.{lb}.haproxy.")),
                    "{lb}: {line}"
                );
                points.insert((path, at), value);
            }
            assert!(
                points.len() - before > 50,
                "{lb} {ts}: only {} lines",
                points.len() - before
            );
        }
        points
    }

    /// Whisper holds exactly `replay`'s points of every snapshot: each
    /// path with its value, and no other under `test.<lb>.haproxy.` at
    /// that `ts` (timings aside).
    fn assert_whisper_has_replays_points(&self, snapshots: &Snapshots, centrals: &[&Haproxystats]) {
        let want = self.replayed(snapshots);
        let (from, until) = (
            snapshots
                .keys()
                .map(|(_, ts)| *ts)
                .min()
                .expect("snapshots"),
            snapshots
                .keys()
                .map(|(_, ts)| *ts)
                .max()
                .expect("snapshots"),
        );
        let wanted: BTreeSet<(String, u64)> = want.keys().cloned().collect();
        let deadline = Instant::now() + TIMEOUT;
        let got = loop {
            let got = self.carbon.points(from, until);
            let mut missing: BTreeMap<(&str, u64), usize> = BTreeMap::new();
            for (path, ts) in wanted.iter().filter(|k| !got.contains_key(*k)) {
                let lb = path.split('.').nth(1).unwrap_or_default();
                *missing.entry((lb, *ts)).or_default() += 1;
            }
            if missing.is_empty() {
                break got;
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> = centrals.iter().map(|c| c.log()).collect();
                let snapshots_missing: Vec<(&str, u64)> = missing.keys().copied().collect();
                panic!(
                    "after {TIMEOUT:?}, points missing in whisper, (lb, ts) → how many: \
                     {missing:?}\n{}\n===== whole logs =====\n{}",
                    story_of(&snapshots_missing, &logs),
                    logs.join("\n-----\n")
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        for (key, value) in &want {
            let landed = got[key];
            assert!(
                landed == *value,
                "{key:?}: replay gives {value}, whisper has {landed}"
            );
        }
        let ours: BTreeSet<(String, u64)> = got
            .keys()
            .filter(|(path, ts)| {
                !path.contains(TIMINGS)
                    && snapshots.keys().any(|(lb, at)| {
                        at == ts && path.starts_with(&format!("test.{lb}.haproxy."))
                    })
            })
            .cloned()
            .collect();
        let extra: Vec<_> = ours.difference(&wanted).take(5).collect();
        assert!(
            extra.is_empty(),
            "whisper has points replay does not give: {extra:?}"
        );
        self.progress(&format!(
            "whisper has the {} points of {} snapshots",
            want.len(),
            snapshots.len()
        ));
    }

    /// Stage 2: whisper holds, for every window in which every LB of a
    /// cluster published a snapshot, the cluster's lines under
    /// `test.clusters.<cluster>.haproxy.`: exactly what `replay` gives for
    /// one directory of the files of the LBs that reported (renamed
    /// `<lb>_<file>`), `LoadBalancersReporting` of them. An LB is left out
    /// of a window only when its partial came after the window closed
    /// (late); most windows have them all. Call after
    /// [`Self::assert_whisper_has_replays_points`] (its snapshot directories).
    fn assert_cluster_windows(&self, snapshots: &Snapshots, centrals: &[&Haproxystats]) {
        let mut by_window: BTreeMap<(&str, u64), Vec<&str>> = BTreeMap::new();
        for (lb, ts) in snapshots.keys() {
            by_window
                .entry((cluster_of(lb), *ts))
                .or_default()
                .push(lb.as_str());
        }
        let size = |cluster: &str| EDGES.iter().filter(|(_, c, _)| *c == cluster).count();
        // Not the last seconds: tansu 0.6.0's high watermark can stay behind
        // the last messages of a batch until more are produced (see
        // `Broker::read_to_end`), and once the edges stopped nothing more
        // is: the last partials may never reach stage 2's consumer.
        let last = snapshots.keys().map(|(_, ts)| *ts).max().unwrap_or(0);
        let windows: Vec<((&str, u64), Vec<&str>)> = by_window
            .into_iter()
            .filter(|((cluster, t), lbs)| lbs.len() == size(cluster) && t + 3 <= last)
            .collect();
        assert!(windows.len() >= 4, "{} complete windows", windows.len());
        let reporting = |cluster: &str| {
            format!("test.clusters.{cluster}.haproxy.haproxystats.LoadBalancersReporting")
        };
        let (from, until) = (
            windows.iter().map(|((_, t), _)| *t).min().unwrap_or(0),
            windows.iter().map(|((_, t), _)| *t).max().unwrap_or(0),
        );
        let deadline = Instant::now() + TIMEOUT;
        let got = loop {
            let got = self.carbon.points(from, until);
            let missing: Vec<&(&str, u64)> = windows
                .iter()
                .map(|(key, _)| key)
                .filter(|(cluster, t)| !got.contains_key(&(reporting(cluster), *t)))
                .collect();
            if missing.is_empty() {
                break got;
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> = centrals.iter().map(|c| c.log()).collect();
                panic!(
                    "after {TIMEOUT:?}, cluster windows missing in whisper: {missing:?}\n{}",
                    logs.join("\n-----\n")
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        let mut whole = 0;
        for ((cluster, t), lbs) in &windows {
            let n = got[&(reporting(cluster), *t)] as usize;
            let prefix = format!("test.clusters.{cluster}.haproxy.");
            let have: Points = got
                .iter()
                .filter(|((path, at), _)| {
                    at == t && path.starts_with(&prefix) && !path.contains(".haproxystats.")
                })
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            // Every set of n of its LBs that the window may hold.
            let sets: Vec<Vec<&str>> = (0u32..1 << lbs.len())
                .filter(|mask| mask.count_ones() as usize == n)
                .map(|mask| {
                    lbs.iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0)
                        .map(|(_, lb)| *lb)
                        .collect()
                })
                .collect();
            let matched = sets
                .iter()
                .find(|set| self.union_replayed(cluster, *t, set) == have);
            assert!(
                matched.is_some(),
                "{cluster} {t}: whisper's {} points are the union of no {n} of {lbs:?}",
                have.len()
            );
            whole += usize::from(n == lbs.len());
        }
        assert!(
            whole * 2 >= windows.len(),
            "only {whole} of {} windows with every LB",
            windows.len()
        );
        self.progress(&format!(
            "{} cluster windows right in whisper, {whole} with every LB",
            windows.len()
        ));
    }

    /// `replay`'s points of the snapshots of `lbs` at `t` in one directory,
    /// renamed `<lb>_<file>`, under `test.clusters.<cluster>.haproxy`.
    fn union_replayed(&self, cluster: &str, t: u64, lbs: &[&str]) -> Points {
        let dir = self
            .root
            .path()
            .join("union")
            .join(format!("{cluster}-{}", lbs.join("-")))
            .join(t.to_string());
        fs::create_dir_all(&dir).expect("union dir");
        for lb in lbs {
            let from = self
                .root
                .path()
                .join("replayed")
                .join(lb)
                .join(t.to_string());
            for entry in fs::read_dir(&from).expect("replayed dir").flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                fs::copy(entry.path(), dir.join(format!("{lb}_{name}"))).expect("copy");
            }
        }
        let loaded = haproxystats::config::load_str(&format!(
            "[process]\n{PROCESS}\n[graphite]\nnamespace = test.clusters.{cluster}\nprefix-hostname = false\n"
        ), &haproxystats::sink::options())
        .expect("replay options");
        let opts = haproxystats::engine::EngineOptions::from_config(&loaded.config, "replay")
            .expect("engine options");
        let mut out = Vec::new();
        haproxystats::engine::process_snapshot(&dir, &opts, &mut out)
            .unwrap_or_else(|e| panic!("{cluster} {t}: replay of the union: {e}"));
        String::from_utf8(out)
            .expect("UTF-8 lines")
            .lines()
            .filter(|l| !l.contains(".haproxystats."))
            .map(|line| {
                let (path, value, at) = parse_line(line);
                ((path, at), value)
            })
            .collect()
    }

    /// The partials topic holds exactly one partial aggregate (every part
    /// once) per snapshot, keyed by its load balancer's cluster.
    fn assert_one_partial_per_snapshot(&self, snapshots: &Snapshots) {
        let records = self.broker.read_to_end(PARTIALS, PARTITIONS, TIMEOUT);
        let partials = by_lb_and_ts(&records);
        assert_eq!(
            partials.keys().collect::<Vec<_>>(),
            snapshots.keys().collect::<Vec<_>>(),
            "one partial per snapshot"
        );
        let loaded = haproxystats::config::load_str(
            &format!("[process]\n{PROCESS}\n[graphite]\nnamespace = test\n"),
            &haproxystats::sink::options(),
        )
        .expect("options");
        let opts = haproxystats::engine::EngineOptions::from_config(&loaded.config, "central")
            .expect("engine options");
        for ((lb, ts), parts) in &partials {
            let parts = parts
                .as_ref()
                .unwrap_or_else(|| panic!("{lb} {ts}: a partial missing a part"));
            let sent = records
                .iter()
                .filter(|r| r.header("lb").as_ref() == Some(lb))
                .filter(|r| r.header("ts") == Some(ts.to_string()))
                .count();
            assert_eq!(sent, parts.len(), "{lb} {ts}: a partial sent twice");
            let cluster = cluster_of(lb);
            for part in parts {
                assert_eq!(part.key.as_deref(), Some(cluster.as_bytes()), "{lb} {ts}");
                assert_eq!(part.header("cluster").as_deref(), Some(cluster));
            }
            let payloads: Vec<&[u8]> = parts.iter().map(|r| r.payload.as_slice()).collect();
            let partial = haproxystats::engine::partial::Partial::decode(&payloads, &opts)
                .unwrap_or_else(|e| panic!("{lb} {ts}: partial: {e}"));
            assert_eq!(&partial.lb, lb);
        }
        self.progress(&format!("{} partials", partials.len()));
    }
}

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn cluster_of(lb: &str) -> &'static str {
    EDGES
        .iter()
        .find(|(name, _, _)| *name == lb)
        .map(|(_, cluster, _)| *cluster)
        .unwrap_or_else(|| panic!("no edge {lb}"))
}

/// Waits for `done`, panicking with the centrals' logs after [`TIMEOUT`].
fn wait(what: &str, centrals: &[&Haproxystats], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        if Instant::now() >= deadline {
            let logs: Vec<String> = centrals.iter().map(|c| c.log()).collect();
            panic!("{what} after {TIMEOUT:?}\n{}", logs.join("\n-----\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until no partition was assigned or revoked in any of `centrals`
/// (both their groups) for a few heartbeats.
fn wait_settled(centrals: &[&Haproxystats]) {
    let quiet = Duration::from_secs(4);
    let rebalances = || -> usize {
        centrals
            .iter()
            .map(|c| {
                let log = c.log();
                log.matches("partitions assigned").count()
                    + log.matches("partitions revoked").count()
            })
            .sum()
    };
    let mut last = (rebalances(), Instant::now());
    wait("the consumer groups never settled", centrals, || {
        let now = rebalances();
        if now != last.0 {
            last = (now, Instant::now());
        }
        last.1.elapsed() >= quiet
    });
}

/// What each central's log says of `snapshots` (`(lb, ts)`), with the
/// assignments, pauses and warnings around them: a failure's story short
/// enough to be read where CI shows only part of the output.
fn story_of(snapshots: &[(&str, u64)], logs: &[String]) -> String {
    /// Lines of context kept on each side of a line naming a snapshot.
    const CONTEXT: usize = 12;
    const MARKS: [&str; 5] = [
        "partitions revoked",
        "partitions assigned",
        "paused or resumed",
        " WARN ",
        " ERROR ",
    ];
    let names_one = |line: &str| {
        snapshots.iter().any(|(lb, ts)| {
            line.contains(&format!("lb={lb} ")) && line.contains(&format!("ts={ts}"))
        })
    };
    let mut story = String::new();
    for (i, log) in logs.iter().enumerate() {
        story.push_str(&format!(
            "===== central {i}, what it says of {snapshots:?} =====\n"
        ));
        let lines: Vec<(bool, &str)> = log
            .lines()
            .filter(|line| !line.contains("CONFWARN"))
            .map(|line| (names_one(line), line))
            .filter(|(named, line)| *named || MARKS.iter().any(|mark| line.contains(mark)))
            .collect();
        let named: Vec<usize> = (0..lines.len()).filter(|&at| lines[at].0).collect();
        for (at, (_, line)) in lines.iter().enumerate() {
            if named.iter().any(|&n| n.abs_diff(at) <= CONTEXT) {
                story.push_str(line);
                story.push('\n');
            }
        }
        if named.is_empty() {
            story.push_str("(no line names them; the last assignments, pauses and warnings:)\n");
            for (_, line) in lines.iter().rev().take(2 * CONTEXT).rev() {
                story.push_str(line);
                story.push('\n');
            }
        }
    }
    story
}

/// The `(lb, ts)` of each "snapshot processed" line of a central's log.
fn processed(log: &str) -> BTreeSet<(String, u64)> {
    log.lines()
        .filter(|line| line.contains("snapshot processed"))
        .filter_map(|line| {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|word| word.strip_prefix(name))
                    .map(|v| v.trim_matches('"').to_owned())
            };
            Some((field("lb=")?, field("ts=")?.parse().ok()?))
        })
        .collect()
}

/// Panics unless the load balancers' snapshots went to both partitions.
fn lbs_on_both_partitions(snapshots: &Snapshots) {
    let on: BTreeMap<&str, i32> = snapshots
        .iter()
        .map(|((lb, _), parts)| (lb.as_str(), parts[0].partition))
        .collect();
    let used: BTreeSet<i32> = on.values().copied().collect();
    assert_eq!(
        used.len(),
        2,
        "every load balancer on one partition: {on:?}"
    );
}

#[test]
fn every_snapshot_of_three_edges_reaches_whisper_as_replay_gives_it_with_one_partial_each() {
    let world = World::start();
    let mut central = world.central("central", 1);
    world.with_traffic(|| {
        let mut edges = world.start_edges();
        std::thread::sleep(Duration::from_secs(6));
        world.stop_edges(&mut edges);
    });
    let snapshots = world.snapshots();
    lbs_on_both_partitions(&snapshots);
    world.wait_committed_to_the_end(&snapshots, &[&central]);
    world.assert_whisper_has_replays_points(&snapshots, &[&central]);
    world.assert_cluster_windows(&snapshots, &[&central]);
    world.assert_one_partial_per_snapshot(&snapshots);
    let log = central.log();
    let seen = processed(&log);
    let missing: Vec<_> = snapshots.keys().filter(|k| !seen.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "not logged as processed: {missing:?}\n{log}"
    );
    assert_eq!(central.terminate(Duration::from_secs(20)), Some(0), "{log}");
    world.progress("done");
}

#[test]
fn after_a_kill_9_of_central_mid_stream_every_snapshot_reaches_whisper() {
    let world = World::start();
    let mut first = world.central("central", 1);
    let mut second = None;
    let committed_at_kill = world.with_traffic(|| {
        let mut edges = world.start_edges();
        wait("nothing committed", &[&first], || world.committed() > 0);
        // The moment a snapshot is processed, before its lines are
        // confirmed and its offset committed: in flight.
        let count = |log: String| log.matches("snapshot processed").count();
        let seen = count(first.log());
        let deadline = Instant::now() + TIMEOUT;
        while count(first.log()) == seen {
            assert!(
                Instant::now() < deadline,
                "nothing more processed\n{}",
                first.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        first.proc().signal(libc::SIGKILL);
        assert!(
            first.proc().wait_exit(Duration::from_secs(10)).is_some(),
            "no exit after SIGKILL"
        );
        world.progress("central killed");
        let committed = world
            .broker
            .committed_offsets(GROUP, TOPIC, PARTITIONS)
            .expect("committed offsets");
        // The edges publish on while central is down. It comes back once
        // the broker counts the killed member out (its session timed out):
        // tansu 0.6.0 never completes a rebalance in which the member it
        // counts out is the leader, as it would be with a quicker restart
        // (the new member is left with no partitions for good).
        std::thread::sleep(Duration::from_millis(SESSION_TIMEOUT_MS + 1500));
        second = Some(world.central("central", 2));
        std::thread::sleep(Duration::from_secs(3));
        world.stop_edges(&mut edges);
        committed
    });
    let mut second = second.expect("started again");
    let snapshots = world.snapshots();
    world.wait_committed_to_the_end(&snapshots, &[&second]);
    world.assert_whisper_has_replays_points(&snapshots, &[&first, &second]);
    world.assert_cluster_windows(&snapshots, &[&second]);
    // What the first run had processed but not committed, the second
    // processed again.
    let (by_first, by_second) = (processed(&first.log()), processed(&second.log()));
    let in_flight: Vec<&(String, u64)> = snapshots
        .iter()
        .filter(|(key, parts)| {
            by_first.contains(*key)
                && parts[0].offset >= committed_at_kill[parts[0].partition as usize]
        })
        .map(|(key, _)| key)
        .collect();
    assert!(
        !in_flight.is_empty(),
        "no snapshot in flight at the kill (committed {committed_at_kill:?})\n{}",
        first.log()
    );
    world.progress(&format!(
        "{} snapshots in flight at the kill, processed again",
        in_flight.len()
    ));
    for key in in_flight {
        assert!(
            by_second.contains(key),
            "{key:?}: in flight at the kill, not processed again\n{}",
            second.log()
        );
    }
    assert_eq!(
        second.terminate(Duration::from_secs(20)),
        Some(0),
        "{}",
        second.log()
    );
    world.progress("done");
}

#[test]
fn two_centrals_share_the_partitions_and_one_takes_over_when_the_other_stops() {
    let world = World::start();
    let mut a = world.central("central-a", 1);
    let (a_before_stop, b_seen) = world.with_traffic(|| {
        let mut edges = world.start_edges();
        wait("a processed nothing", &[&a], || {
            !processed(&a.log()).is_empty()
        });
        let mut b = world.central("central-b", 1);
        // A rebalance: a gives up a partition to b, both process.
        wait("b processed nothing", &[&a, &b], || {
            !processed(&b.log()).is_empty()
        });
        world.progress("central-b processes");
        let a_seen = processed(&a.log()).len();
        wait("a processed nothing more", &[&a, &b], || {
            processed(&a.log()).len() > a_seen + 2
        });
        world.progress("central-a processes too");
        assert!(
            a.log().contains("partitions revoked"),
            "no rebalance in a\n{}",
            a.log()
        );
        // b stops: a takes its partitions over.
        assert_eq!(b.terminate(Duration::from_secs(20)), Some(0), "{}", b.log());
        world.progress("central-b stopped");
        let a_before_stop = a.log().len();
        wait("a did not take every load balancer over", &[&a], || {
            let after = processed(&a.log()[a_before_stop..]);
            EDGES
                .iter()
                .all(|(lb, _, _)| after.iter().any(|(l, _)| l == lb))
        });
        world.progress("central-a took every load balancer over");
        std::thread::sleep(Duration::from_secs(2));
        world.stop_edges(&mut edges);
        (a_before_stop, processed(&b.log()))
    });
    let snapshots = world.snapshots();
    lbs_on_both_partitions(&snapshots);
    world.wait_committed_to_the_end(&snapshots, &[&a]);
    world.assert_whisper_has_replays_points(&snapshots, &[&a]);
    world.assert_cluster_windows(&snapshots, &[&a]);
    let a_seen = processed(&a.log());
    // Both had work (tansu rebalances often, so which partitions b held
    // when is not asserted).
    assert!(!b_seen.is_empty(), "b processed nothing");
    // Every snapshot processed by one of them, or both.
    let missing: Vec<_> = snapshots
        .keys()
        .filter(|k| !a_seen.contains(*k) && !b_seen.contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "processed by neither: {missing:?}\n{}",
        &a.log()[a_before_stop..]
    );
    assert_eq!(a.terminate(Duration::from_secs(20)), Some(0), "{}", a.log());
    world.progress("done");
}

#[test]
fn two_centrals_one_killed_with_9_mid_stream_and_restarted_every_window_is_right() {
    let world = World::start();
    // a joins first: the group's leader. tansu 0.6.0 completes the
    // rebalance that counts a dead member out only when the dead one is not
    // the leader, so b is the one killed.
    let mut a = world.central("central-a", 1);
    let mut b = None;
    let mut b_again = None;
    world.with_traffic(|| {
        let mut edges = world.start_edges();
        // Both of a's groups formed before b joins them.
        wait("a processed nothing", &[&a], || {
            !processed(&a.log()).is_empty() && a.log().contains("partials partitions assigned")
        });
        let b = b.insert(world.central("central-b", 1));
        wait("b processed nothing", &[&a, b], || {
            !processed(&b.log()).is_empty() && b.log().contains("partials partitions assigned")
        });
        // Killed while its groups are formed, not in the middle of a
        // rebalance: tansu 0.6.0 can complete a generation that still
        // holds a member killed during it and then never count it out.
        wait_settled(&[&a, b]);
        world.progress("both process");
        b.proc().signal(libc::SIGKILL);
        assert!(
            b.proc().wait_exit(Duration::from_secs(10)).is_some(),
            "no exit after SIGKILL"
        );
        world.progress("central-b killed");
        let a_before = a.log().len();
        // Started again as systemd would (Restart=on-failure), once the
        // broker counted the dead one out: tansu 0.6.0 sometimes gives the
        // survivor only its own partitions after that, until a member
        // joins (seen: a left with one partition for good).
        std::thread::sleep(Duration::from_millis(SESSION_TIMEOUT_MS + 1500));
        let b_again = b_again.insert(world.central("central-b", 2));
        wait(
            "the two did not take every load balancer over",
            &[&a, b_again],
            || {
                let mut after = processed(&a.log()[a_before..]);
                after.extend(processed(&b_again.log()));
                EDGES
                    .iter()
                    .all(|(lb, _, _)| after.iter().any(|(l, _)| l == lb))
            },
        );
        world.progress("central-a and the new central-b took every load balancer over");
        std::thread::sleep(Duration::from_secs(2));
        world.stop_edges(&mut edges);
    });
    let snapshots = world.snapshots();
    let (b, mut b_again) = (b.expect("b started"), b_again.expect("b started again"));
    world.wait_committed_to_the_end(&snapshots, &[&a, &b_again]);
    world.assert_whisper_has_replays_points(&snapshots, &[&a, &b, &b_again]);
    world.assert_cluster_windows(&snapshots, &[&a, &b, &b_again]);
    for central in [&mut a, &mut b_again] {
        assert_eq!(
            central.terminate(Duration::from_secs(20)),
            Some(0),
            "{}",
            central.log()
        );
    }
    world.progress("done");
}

#[test]
fn a_failures_story_keeps_the_lines_naming_the_snapshot_and_the_marks_near_them() {
    let mut log: Vec<String> = (0..100)
        .map(|i| format!("INFO consumer: partitions assigned topic=snaps n={i}"))
        .collect();
    log.insert(
        50,
        "DEBUG actor: part received partition=1 offset=13 lb=eu-1 ts=7 part=0".into(),
    );
    log.push("DEBUG actor: snapshot processed lb=eu-2 ts=7 lines=3".into());
    let story = story_of(&[("eu-1", 7)], &[log.join("\n")]);
    assert!(story.contains("offset=13 lb=eu-1 ts=7"), "{story}");
    assert!(story.contains("n=49") && story.contains("n=50"), "{story}");
    let has = |end: &str| story.lines().any(|line| line.ends_with(end));
    assert!(
        has("n=38") && !has("n=37"),
        "12 lines of context before: {story}"
    );
    assert!(
        has("n=61") && !has("n=62"),
        "12 lines of context after: {story}"
    );
    assert!(!story.contains("lb=eu-2"), "{story}");
}
