//! What the endpoint serves: the latest snapshot of the node, or in central
//! processing of each load balancer and cluster (keyed by the `lb` of
//! `SendLinesAcked`), and nothing older. A snapshot replaces its
//! predecessor in one step under a lock, so a scrape during an update sees
//! the one or the other, never a mix; the page itself is written after the
//! lock is released.
//!
//! The page is written once per change, at the first scrape after it, into
//! one immutable buffer that every connection writes from: a client that
//! never reads its answer holds a reference to that buffer, not a copy of
//! the page (issue 24: 64 such clients held 64 copies of a 4.9 MB page).
//!
//! It outlives a crash of the sink (the Supervisor's `SinkSpec` holds it),
//! so that the endpoint still serves the latest snapshot right after a
//! restart, instead of an empty page that would end every series.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use super::exposition::{Exposition, render};

/// A load balancer or cluster whose latest snapshot is this much older
/// than the newest one's is dropped: it stopped reporting, and its last
/// values would otherwise be served forever. Prometheus' own staleness
/// lookback.
pub const STALE_AFTER_SECS: u64 = 300;

/// The latest snapshots.
#[derive(Debug, Default)]
pub struct Served {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    latest: BTreeMap<Option<String>, Latest>,
    /// Changes of `latest` since start.
    generation: u64,
    /// The page of `latest`, once a scrape asked for it.
    page: Option<Bytes>,
}

#[derive(Debug)]
struct Latest {
    ts: u64,
    exposition: Arc<Exposition>,
}

impl Served {
    /// `exposition`, of snapshot `ts` of `lb` (`None`: the node's own, or
    /// central's own metrics), replaces what `lb` had. An older snapshot
    /// than the one served (sent again after a restart) changes nothing.
    pub fn replace(&self, lb: Option<String>, ts: u64, exposition: Exposition) {
        let exposition = Arc::new(exposition);
        let mut state = self.lock();
        if state.latest.get(&lb).is_some_and(|l| l.ts > ts) {
            return;
        }
        state.latest.insert(lb, Latest { ts, exposition });
        let oldest_kept = ts.saturating_sub(STALE_AFTER_SECS);
        state
            .latest
            .retain(|lb, l| lb.is_none() || l.ts >= oldest_kept);
        state.generation += 1;
        state.page = None;
    }

    /// The page: every latest snapshot. The same buffer until the next
    /// change; cloning it copies no byte of the page.
    pub fn page(&self) -> Bytes {
        let (generation, snapshots) = {
            let state = self.lock();
            if let Some(page) = &state.page {
                return page.clone();
            }
            let snapshots: Vec<Arc<Exposition>> = state
                .latest
                .values()
                .map(|l| Arc::clone(&l.exposition))
                .collect();
            (state.generation, snapshots)
        };
        // Written outside the lock: an update does not wait for it.
        let page = Bytes::from(render(&snapshots));
        let mut state = self.lock();
        if state.generation == generation {
            state.page = Some(page.clone());
        }
        page
    }

    /// Series served.
    pub fn series(&self) -> u64 {
        self.lock()
            .latest
            .values()
            .map(|l| l.exposition.series())
            .sum()
    }

    /// Nothing under the lock can panic halfway (an insert, a clone of an
    /// `Arc` or of a `Bytes`), so a poisoned lock holds a whole state.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::paths::PathLayout;
    use crate::sink::prometheus::exposition::convert;

    fn snapshot(lines: &str) -> Exposition {
        convert(&[lines.as_bytes()], &PathLayout::test_central(), None).exposition
    }

    /// `lines` as snapshot `ts` of `lb` ("": the node's).
    fn put(served: &Served, lb: &str, ts: u64, lines: &str) {
        let lb = (!lb.is_empty()).then(|| lb.to_owned());
        served.replace(lb, ts, snapshot(lines));
    }

    fn page(served: &Served) -> String {
        String::from_utf8(served.page().to_vec()).expect("utf-8")
    }

    #[test]
    fn the_page_is_written_once_per_change_into_one_shared_buffer() {
        let served = Served::default();
        put(&served, "lb1", 10, "ns.lb1.haproxy.backend.a.scur 1 10\n");
        let first = served.page();
        let again = served.page();
        // The same bytes in memory, not an equal copy.
        assert_eq!(first.as_ptr(), again.as_ptr());
        put(&served, "lb2", 10, "ns.lb2.haproxy.backend.a.scur 2 10\n");
        let next = served.page();
        assert_ne!(first.as_ptr(), next.as_ptr());
        assert_eq!(next.as_ptr(), served.page().as_ptr());
        assert!(!first.windows(5).any(|w| w == b"lb2\"}"));
        assert!(String::from_utf8_lossy(&next).contains("host=\"lb2\""));
        // An older snapshot changes nothing, and so keeps the page.
        put(&served, "lb2", 5, "ns.lb2.haproxy.backend.a.scur 3 5\n");
        assert_eq!(next.as_ptr(), served.page().as_ptr());
    }

    #[test]
    fn a_vanished_backend_is_gone_at_the_next_snapshot_of_its_lb_only() {
        let served = Served::default();
        put(
            &served,
            "lb1",
            10,
            "ns.lb1.haproxy.backend.a.scur 1 10\nns.lb1.haproxy.backend.b.scur 2 10\n",
        );
        put(&served, "lb2", 10, "ns.lb2.haproxy.backend.b.scur 3 10\n");
        put(
            &served,
            "clusters.c1",
            10,
            "ns.clusters.c1.haproxy.backend.b.scur 5 10\n",
        );
        assert_eq!(served.series(), 4);
        put(&served, "lb1", 20, "ns.lb1.haproxy.backend.a.scur 4 20\n");
        let text = page(&served);
        assert!(text.contains("{host=\"lb1\",backend=\"a\"} 4\n"), "{text}");
        assert!(!text.contains("{host=\"lb1\",backend=\"b\"}"), "{text}");
        assert!(text.contains("{host=\"lb2\",backend=\"b\"} 3\n"), "{text}");
        assert!(
            text.contains("{cluster=\"c1\",backend=\"b\"} 5\n"),
            "{text}"
        );
        assert_eq!(served.series(), 3);
    }

    #[test]
    fn an_older_snapshot_never_replaces_a_newer_one() {
        let served = Served::default();
        put(&served, "", 20, "ns.lb1.haproxy.daemon.Tasks 2 20\n");
        put(&served, "", 10, "ns.lb1.haproxy.daemon.Tasks 1 10\n");
        assert!(page(&served).contains("} 2\n"));
    }

    #[test]
    fn a_load_balancer_silent_for_longer_than_the_lookback_is_dropped() {
        let served = Served::default();
        put(
            &served,
            "",
            10,
            "ns.central.haproxystats.BadMessages 0 10\n",
        );
        put(&served, "lb1", 10, "ns.lb1.haproxy.daemon.Tasks 1 10\n");
        put(
            &served,
            "lb2",
            10 + STALE_AFTER_SECS,
            "ns.lb2.haproxy.daemon.Tasks 2 10\n",
        );
        assert!(page(&served).contains("host=\"lb1\""));
        put(
            &served,
            "lb2",
            11 + STALE_AFTER_SECS,
            "ns.lb2.haproxy.daemon.Tasks 2 10\n",
        );
        let text = page(&served);
        assert!(!text.contains("host=\"lb1\""), "{text}");
        assert!(text.contains("host=\"central\""), "{text}");
    }

    #[test]
    fn a_scrape_during_updates_sees_one_whole_snapshot() {
        // Every snapshot gives each of its 200 series the same value, its
        // number: a page mixing two snapshots would show two values.
        let served = Arc::new(Served::default());
        let lines = |n: u64| -> String {
            (0..200)
                .map(|b| format!("ns.lb1.haproxy.backend.b{b}.scur {n} {n}\n"))
                .collect()
        };
        put(&served, "lb1", 0, &lines(0));
        let writer = {
            let served = Arc::clone(&served);
            std::thread::spawn(move || {
                for n in 1..300 {
                    put(&served, "lb1", n, &lines(n));
                }
            })
        };
        let mut pages = 0;
        while !writer.is_finished() || pages == 0 {
            let text = page(&served);
            let values: std::collections::BTreeSet<&str> = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.rsplit(' ').next())
                .collect();
            assert_eq!(values.len(), 1, "a mixed page: {values:?}");
            assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 200);
            pages += 1;
        }
        writer.join().expect("writer");
    }
}
