//! The master CLI's `show proc` (pure): which workers are current, with
//! their relative process number, and which are old (draining after a
//! reload, never pulled: their counters would be counted twice).
//!
//! Two layouts exist. 1.9–2.4 have a `<relative PID>` column, and old
//! workers show `[was: N]` in it; since 2.5 (no `nbproc`) there is no such
//! column and the one current worker is number 1. Both list current
//! workers under `# workers` and draining ones under `# old workers`.

use crate::log_limit::Quoted;

/// A current worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worker {
    /// Its system PID: requests go to it as `@!<pid> <command>`.
    pub pid: u32,
    /// Its relative process number (1-based), stable across reloads:
    /// the `@N` of its file names.
    pub relative: u32,
}

/// What `show proc` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcList {
    /// Current workers, as listed.
    pub current: Vec<Worker>,
    /// PIDs of old workers, still draining.
    pub old: Vec<u32>,
}

/// A reply that is not a `show proc` listing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShowProcError {
    /// The first line is not the `#<PID> <type> ...` header.
    #[error("not a 'show proc' reply (first line: '{0}')")]
    Header(Quoted),
    /// A worker line whose PID or relative number cannot be read.
    #[error("cannot read the worker line '{0}'")]
    Line(Quoted),
    /// No current worker: the master is between a reload and its new worker.
    #[error("the master lists no current worker")]
    NoWorker,
}

#[derive(Clone, Copy, PartialEq)]
enum Section {
    Master,
    Workers,
    OldWorkers,
    Other,
}

/// Parses a `show proc` reply of HAProxy 1.9 or later.
pub fn parse(reply: &str) -> Result<ProcList, ShowProcError> {
    let mut lines = reply.lines();
    let header = lines.next().unwrap_or_default();
    if !header.starts_with("#<PID>") {
        return Err(ShowProcError::Header(Quoted::new(header.as_bytes())));
    }
    let has_relative = header.contains("<relative PID>");
    let mut list = ProcList {
        current: Vec::new(),
        old: Vec::new(),
    };
    let mut section = Section::Master;
    for line in lines {
        let line = line.trim_end();
        if let Some(title) = line.strip_prefix('#') {
            section = match title.trim() {
                "workers" => Section::Workers,
                "old workers" => Section::OldWorkers,
                _ => Section::Other,
            };
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let bad = || ShowProcError::Line(Quoted::new(line.as_bytes()));
        match section {
            Section::Workers => {
                let pid = fields.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                let relative = if has_relative {
                    fields.nth(1).and_then(|r| r.parse().ok()).ok_or_else(bad)?
                } else {
                    // One worker since 2.5; were there more, their order.
                    u32::try_from(list.current.len() + 1).map_err(|_| bad())?
                };
                list.current.push(Worker { pid, relative });
            }
            Section::OldWorkers => {
                let pid = fields.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                list.old.push(pid);
            }
            Section::Master | Section::Other => {}
        }
    }
    if list.current.is_empty() {
        return Err(ShowProcError::NoWorker);
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> ProcList {
        let path = format!(
            "{}/tests/fixtures/show_proc/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn worker(pid: u32, relative: u32) -> Worker {
        Worker { pid, relative }
    }

    #[test]
    fn the_2_5_layout_has_one_worker_numbered_1_and_lists_old_ones_apart() {
        let list = fixture("2.6-old-worker.txt");
        assert_eq!(list.current, [worker(28463, 1)]);
        assert_eq!(list.old, [28148]);
    }

    #[test]
    fn the_1_9_to_2_4_layouts_carry_the_relative_number() {
        let list = fixture("2.0.txt");
        assert_eq!(list.current, [worker(1271, 1), worker(1272, 2)]);
        assert_eq!(list.old, [1233]);
        let list = fixture("1.9.txt");
        assert_eq!(list.current, [worker(1271, 1), worker(1272, 2)]);
        assert_eq!(list.old, [1233]);
        let list = fixture("2.4.txt");
        assert_eq!(
            list.current,
            [
                worker(5531, 1),
                worker(5532, 2),
                worker(5533, 3),
                worker(5534, 4)
            ]
        );
        assert_eq!(list.old, [4211, 4213]);
    }

    #[test]
    fn programs_are_not_workers() {
        let list = fixture("2.0.txt");
        assert!(list.current.iter().all(|w| w.pid != 1244 && w.pid != 1205));
        assert!(!list.old.contains(&1244));
    }

    #[test]
    fn a_master_error_or_garbage_is_refused() {
        assert_eq!(
            parse("Can't find the target PID matching the prefix '@!1'\n"),
            Err(ShowProcError::Header(Quoted::new(
                b"Can't find the target PID matching the prefix '@!1'"
            )))
        );
        assert_eq!(
            parse("#<PID> <type> <reloads>\n1 master 0\n# workers\nabc worker 0\n"),
            Err(ShowProcError::Line(Quoted::new(b"abc worker 0")))
        );
        assert_eq!(
            parse("#<PID> <type> <relative PID>\n1 master 0\n# workers\n2 worker x\n"),
            Err(ShowProcError::Line(Quoted::new(b"2 worker x")))
        );
        assert_eq!(
            parse("#<PID> <type> <reloads>\n1 master 0\n# workers\n# programs\n"),
            Err(ShowProcError::NoWorker)
        );
        assert!(matches!(parse(""), Err(ShowProcError::Header(_))));
    }
}
