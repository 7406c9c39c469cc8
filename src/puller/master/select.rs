//! Which of a master's current workers a cycle pulls, and under which
//! names (pure).
//!
//! A worker's files are `<master>@<relative number>_info|_stat`, stable
//! across reloads. A master that lists two workers with one relative number
//! (a bug, or not HAProxy) would have them write one file, and the sum
//! would count one of them only: workers whose number is shared are named
//! by PID instead (`<master>@pid<PID>`), and the cycle says so. A master
//! listing thousands of workers would make thousands of requests a cycle:
//! at most `master-worker-limit` are pulled, the lowest relative numbers
//! first, so that the same ones are pulled every cycle.

use std::collections::{BTreeMap, BTreeSet};

use super::Worker;

/// A worker to pull and the suffix of its files' prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picked {
    /// The worker.
    pub worker: Worker,
    /// `@<relative>`, or `@pid<PID>` when its relative number is shared.
    pub suffix: String,
}

/// The workers of one master a cycle pulls, and what was odd about the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The workers pulled, by relative number, then PID.
    pub picked: Vec<Picked>,
    /// Distinct current workers listed.
    pub listed: usize,
    /// The bound that was applied (`master-worker-limit`).
    pub limit: usize,
    /// Relative numbers claimed by more than one worker, with how many.
    pub shared: BTreeMap<u32, usize>,
    /// Lines that listed a PID already listed (ignored).
    pub repeated: usize,
}

/// Picks at most `limit` of `current`, named so that no two share a file.
pub fn select(current: &[Worker], limit: usize) -> Selection {
    let mut pids = BTreeSet::new();
    let mut workers: Vec<Worker> = current
        .iter()
        .copied()
        .filter(|worker| pids.insert(worker.pid))
        .collect();
    let repeated = current.len() - workers.len();
    workers.sort_by_key(|worker| (worker.relative, worker.pid));
    let mut claims: BTreeMap<u32, usize> = BTreeMap::new();
    for worker in &workers {
        *claims.entry(worker.relative).or_default() += 1;
    }
    let listed = workers.len();
    workers.truncate(limit);
    let picked = workers
        .into_iter()
        .map(|worker| Picked {
            worker,
            suffix: if claims.get(&worker.relative) > Some(&1) {
                format!("@pid{}", worker.pid)
            } else {
                format!("@{}", worker.relative)
            },
        })
        .collect();
    claims.retain(|_, claimed| *claimed > 1);
    Selection {
        picked,
        listed,
        limit,
        shared: claims,
        repeated,
    }
}

/// At most this many shared relative numbers are named in a notice.
const SHOWN: usize = 5;

impl Selection {
    /// What the cycle should warn about, in one sentence; `None` when the
    /// list was as HAProxy makes it and within the bound.
    pub fn notice(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.listed > self.limit {
            parts.push(format!(
                "{} current workers listed, over master-worker-limit: only the {} lowest \
                 relative numbers pulled",
                self.listed, self.limit
            ));
        }
        if !self.shared.is_empty() {
            let mut shown: Vec<String> = self
                .shared
                .iter()
                .take(SHOWN)
                .map(|(relative, claimed)| format!("{relative} by {claimed} workers"))
                .collect();
            if self.shared.len() > SHOWN {
                shown.push(format!("{} more", self.shared.len() - SHOWN));
            }
            parts.push(format!(
                "relative number(s) claimed more than once ({}): those workers named by \
                 PID (@pid<PID>), not by number",
                shown.join(", ")
            ));
        }
        if self.repeated > 0 {
            parts.push(format!(
                "{} line(s) listing a PID again ignored",
                self.repeated
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(pid: u32, relative: u32) -> Worker {
        Worker { pid, relative }
    }

    fn suffixes(selection: &Selection) -> Vec<&str> {
        selection
            .picked
            .iter()
            .map(|picked| picked.suffix.as_str())
            .collect()
    }

    #[test]
    fn a_list_as_haproxy_makes_it_is_pulled_by_relative_number_without_a_notice() {
        let selection = select(&[worker(12, 2), worker(11, 1)], 256);
        assert_eq!(suffixes(&selection), ["@1", "@2"]);
        assert_eq!(selection.picked[0].worker, worker(11, 1));
        assert_eq!(selection.notice(), None);
    }

    #[test]
    fn workers_sharing_a_relative_number_are_named_by_pid_and_warned_about() {
        let current = [
            worker(104, 1),
            worker(101, 1),
            worker(103, 1),
            worker(102, 1),
            worker(200, 2),
        ];
        let selection = select(&current, 256);
        assert_eq!(
            suffixes(&selection),
            ["@pid101", "@pid102", "@pid103", "@pid104", "@2"]
        );
        assert_eq!(selection.shared, BTreeMap::from([(1, 4)]));
        let notice = selection.notice().unwrap_or_default();
        assert!(notice.contains("(1 by 4 workers)"), "{notice}");
        assert!(notice.contains("named by PID"), "{notice}");
    }

    #[test]
    fn a_pid_listed_twice_is_pulled_once() {
        let selection = select(&[worker(7, 1), worker(7, 1), worker(8, 2)], 256);
        assert_eq!(suffixes(&selection), ["@1", "@2"]);
        assert_eq!(selection.repeated, 1);
        assert!(
            selection
                .notice()
                .is_some_and(|notice| notice.contains("1 line(s) listing a PID again")),
            "{selection:?}"
        );
    }

    #[test]
    fn at_most_the_limit_is_pulled_the_lowest_numbers_first_and_the_notice_stays_short() {
        let current: Vec<Worker> = (1..=5_000).rev().map(|n| worker(10_000 + n, n)).collect();
        let selection = select(&current, 256);
        assert_eq!(selection.picked.len(), 256);
        assert_eq!(selection.picked[0].worker, worker(10_001, 1));
        assert_eq!(selection.picked[255].worker, worker(10_256, 256));
        assert_eq!(selection.listed, 5_000);
        let notice = selection.notice().unwrap_or_default();
        assert!(notice.contains("5000 current workers listed"), "{notice}");
        // Thousands of shared numbers are summed up, not listed.
        let shared: Vec<Worker> = (1..=5_000)
            .flat_map(|n| [worker(2 * n, n), worker(2 * n + 1, n)])
            .collect();
        let notice = select(&shared, 256).notice().unwrap_or_default();
        assert!(notice.contains("4995 more"), "{notice}");
        assert!(notice.len() < 400, "{notice}");
    }
}
