//! Property test of stage 2's window state machine (SPEC §7, issue 15 item
//! 3): random interleavings of several clusters' partials on one partition,
//! with random acknowledgement and store orders and random crash points
//! (the consumer restarts from the last commit with the state topic as
//! stored), give every window the crash-free run gives, and every emitted
//! value of a window is the merge of its complete input — also when some
//! LBs' clocks run a minute fast (issue 24 item 1: their partials are
//! placed by the reference time, where the others' are).

use std::collections::{BTreeMap, BTreeSet};

use haproxystats::central::windows::{
    ClusterState, Input, Output, PartialIn, WindowSettings, Windows,
};
use proptest::prelude::*;

const WINDOW: u64 = 10;

/// LBs may be one window apart: a window is trusted complete two windows on.
const SETTINGS: WindowSettings = WindowSettings {
    window: WINDOW,
    grace_ms: 20_000,
    lb_timeout: 30,
    expected_windows: 2,
    max_clock_skew: 20,
};

/// How far a fast LB's clock is ahead: beyond `max_clock_skew`.
const FAST_BY: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Logged {
    cluster: String,
    lb: String,
    window: u64,
    /// Seconds its LB's clock is ahead.
    ahead: u64,
    value: u32,
}

/// One emitted window: (cluster, window) → its partials, by LB.
type Emitted = BTreeMap<(String, u64), Vec<Vec<(String, u32)>>>;

/// The partials topic: each LB of each cluster reports `windows` windows
/// in order; an LB reports window k only once every LB of its cluster
/// reported k - 2 (at most one window ahead of the slowest); `picks`
/// decides the interleaving, `dups` repeats some messages later; the LBs
/// `fast` says (by index, cycled) have a clock [`FAST_BY`] ahead.
fn log_of(
    sizes: &[usize],
    windows: u64,
    picks: &[usize],
    dups: &[usize],
    fast: &[bool],
) -> Vec<Logged> {
    let lbs: Vec<(String, String)> = sizes
        .iter()
        .enumerate()
        .flat_map(|(c, n)| (0..*n).map(move |l| (format!("c{c}"), format!("lb{l}"))))
        .collect();
    let mut next: Vec<u64> = vec![0; lbs.len()];
    let mut log = Vec::new();
    let mut pick = picks.iter().cycle();
    loop {
        let ready: Vec<usize> = (0..lbs.len())
            .filter(|i| next[*i] < windows)
            .filter(|i| {
                let (cluster, _) = &lbs[*i];
                lbs.iter()
                    .zip(&next)
                    .filter(|((c, _), _)| c == cluster)
                    .all(|(_, n)| *n + 1 >= next[*i])
            })
            .collect();
        if ready.is_empty() {
            break;
        }
        let i = ready[pick.next().copied().unwrap_or(0) % ready.len()];
        let (cluster, lb) = lbs[i].clone();
        let window = 1000 + next[i] * WINDOW;
        next[i] += 1;
        // The value says whose and which: a wrong merge cannot look right.
        let value = (i as u32) << 16 | next[i] as u32;
        let is_fast = !fast.is_empty() && fast[i % fast.len()];
        log.push(Logged {
            cluster,
            lb,
            window,
            ahead: if is_fast { FAST_BY } else { 0 },
            value,
        });
    }
    for d in dups {
        if log.is_empty() {
            break;
        }
        let copy = log[d % log.len()].clone();
        let at = (d / 7) % (log.len() + 1);
        log.insert(at.max(d % log.len() + 1).min(log.len()), copy);
    }
    log
}

/// The complete input of every window: per LB its value.
fn complete(log: &[Logged]) -> BTreeMap<(String, u64), Vec<(String, u32)>> {
    let mut by: BTreeMap<(String, u64), BTreeMap<String, u32>> = BTreeMap::new();
    for l in log {
        by.entry((l.cluster.clone(), l.window))
            .or_default()
            .insert(l.lb.clone(), l.value);
    }
    by.into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

/// Runs the machine over `log`. `choices` drive what happens next at each
/// step (read, acknowledge, store, commit, crash); with none left, the
/// rest is read and everything delivered.
fn run(log: &[Logged], choices: &[u8], crashes: bool) -> (Emitted, usize) {
    let mut state: BTreeMap<String, ClusterState> = BTreeMap::new();
    let mut committed = 0usize;
    let mut machine = start(&state);
    let mut position = 0usize;
    let mut acks: Vec<(String, u64)> = Vec::new();
    let mut stores: Vec<(String, ClusterState)> = Vec::new();
    let mut emitted = Emitted::new();
    let mut crashed = 0;
    let mut choice = choices.iter();
    let apply = |outputs: Vec<Output<u32>>,
                 acks: &mut Vec<(String, u64)>,
                 stores: &mut Vec<(String, ClusterState)>,
                 emitted: &mut Emitted| {
        for output in outputs {
            match output {
                Output::Emit(e) => {
                    acks.push((e.cluster.clone(), e.window));
                    emitted
                        .entry((e.cluster, e.window))
                        .or_default()
                        .push(e.partials);
                }
                Output::Store { cluster, state } => stores.push((cluster, state)),
                _ => {}
            }
        }
    };
    loop {
        let step = match choice.next() {
            Some(c) => *c % 8,
            // Drained: read on, then deliver, then commit.
            None if position < log.len() => 0,
            None if !acks.is_empty() => 2,
            None if !stores.is_empty() => 4,
            None => {
                let commits = machine.take_commits();
                if commits.is_empty() {
                    break;
                }
                for (_, offset) in commits {
                    committed = committed.max(offset as usize);
                }
                continue;
            }
        };
        match step {
            0 | 1 if position < log.len() => {
                let l = &log[position];
                let out = machine.handle(Input::Partial(PartialIn {
                    partition: 0,
                    offsets: vec![position as i64],
                    cluster: l.cluster.clone(),
                    lb: l.lb.clone(),
                    // Read 4 s into the window, by a reader whose clock is
                    // right: a fast LB's `ts` is past it.
                    ts: l.window + 3 + l.ahead,
                    reference: l.window + 4,
                    now_ms: 0,
                    payload: l.value,
                }));
                apply(out, &mut acks, &mut stores, &mut emitted);
                position += 1;
            }
            2 | 3 if !acks.is_empty() => {
                // Sinks answer in any order.
                let i = choices.len() % acks.len();
                let (cluster, window) = acks.remove(i);
                let out = machine.handle(Input::Acked { cluster, window });
                apply(out, &mut acks, &mut stores, &mut emitted);
            }
            4 | 5 if !stores.is_empty() => {
                let (cluster, stored) = stores.remove(0);
                let window = stored.emitted;
                state.insert(cluster.clone(), stored);
                machine.handle(Input::Stored { cluster, window });
            }
            6 => {
                for (_, offset) in machine.take_commits() {
                    committed = committed.max(offset as usize);
                }
            }
            7 if crashes => {
                // kill -9: what was not stored or committed is gone; what
                // is in flight to the broker may have landed or not.
                if position.is_multiple_of(2)
                    && let Some((cluster, stored)) = stores.first().cloned()
                {
                    state.insert(cluster, stored);
                }
                acks.clear();
                stores.clear();
                machine = start(&state);
                position = committed;
                crashed += 1;
            }
            _ => {}
        }
    }
    (emitted, crashed)
}

fn start(state: &BTreeMap<String, ClusterState>) -> Windows<u32> {
    let mut machine = Windows::new(SETTINGS);
    machine.handle(Input::Assigned {
        partition: 0,
        restored: state.clone(),
    });
    machine
}

/// Sizes of the clusters: one of 1, 2 and 3 load balancers, plus random
/// ones.
fn sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..4, 0..3).prop_map(|mut extra| {
        let mut sizes = vec![1, 2, 3];
        sizes.append(&mut extra);
        sizes
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn crashes_repeat_windows_never_change_them(
        sizes in sizes(),
        windows in 2u64..7,
        picks in prop::collection::vec(0usize..64, 1..64),
        dups in prop::collection::vec(0usize..4096, 0..4),
        choices in prop::collection::vec(any::<u8>(), 0..400),
        fast in prop::collection::vec(any::<bool>(), 0..4),
    ) {
        let log = log_of(&sizes, windows, &picks, &dups, &fast);
        let complete = complete(&log);
        let (clean, _) = run(&log, &choices, false);
        let (crashy, _) = run(&log, &choices, true);
        for (name, emitted) in [("crash-free", &clean), ("with crashes", &crashy)] {
            for (key, values) in emitted {
                for value in values {
                    prop_assert_eq!(Some(value), complete.get(key), "{} run, window {:?}", name, key);
                }
            }
        }
        let clean_windows: BTreeSet<&(String, u64)> = clean.keys().collect();
        let crashy_windows: BTreeSet<&(String, u64)> = crashy.keys().collect();
        prop_assert!(
            clean_windows.is_subset(&crashy_windows),
            "lost after a crash: {:?}",
            clean_windows.difference(&crashy_windows).collect::<Vec<_>>()
        );
        // A window closes once every LB reported it, and a new cluster's
        // LBs are trusted two windows after its first: then every window
        // of the run is emitted.
        if windows > SETTINGS.expected_windows {
            for key in complete.keys() {
                prop_assert!(clean.contains_key(key), "{:?} never emitted", key);
            }
        }
    }
}

#[test]
fn the_generator_interleaves_clusters_and_keeps_each_lb_in_order() {
    let log = log_of(&[1, 2, 3], 4, &[5, 1, 7, 2, 9], &[], &[true, false]);
    assert!(log.iter().any(|l| l.ahead == FAST_BY));
    assert_eq!(log.len(), 4 * 6);
    let clusters: Vec<&str> = log.iter().map(|l| l.cluster.as_str()).collect();
    assert!(clusters.windows(2).any(|w| w[0] != w[1]), "interleaved");
    let mut seen: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for l in &log {
        let before = seen.insert((&l.cluster, &l.lb), l.window);
        assert!(before.is_none_or(|b| b < l.window));
    }
}

#[test]
fn crashes_happen_and_windows_are_emitted_again_after_them() {
    let log = log_of(&[1, 2, 3], 6, &[3, 8, 1], &[], &[false, true]);
    // Read 20, deliver a little, commit, crash; then again.
    let mut choices = vec![0u8; 20];
    choices.extend([2, 4, 2, 4, 6, 7]);
    choices.extend([0u8; 10]);
    choices.push(7);
    let (emitted, crashed) = run(&log, &choices, true);
    assert_eq!(crashed, 2);
    assert!(
        emitted.values().any(|v| v.len() > 1),
        "some window emitted twice: {emitted:?}"
    );
    assert_eq!(emitted.len(), complete(&log).len());
}
