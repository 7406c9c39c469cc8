//! The remote-write sink's backlog: snapshots in the order they came, each
//! as its requests, sent one at a time, front first. A snapshot is done —
//! its acknowledgement handed back — once every one of its requests was
//! delivered or rejected for good. At most `capacity` samples wait: a
//! snapshot that would go past it drops the oldest ones first (never the
//! one being sent), which are acknowledged too and counted, as the daemon's
//! other sinks do with their oldest lines.
//!
//! Pure.

use std::collections::VecDeque;

use super::response::Verdict;
use super::wire::Request;

/// One snapshot waiting.
#[derive(Debug)]
struct Pending<A> {
    requests: VecDeque<Request>,
    ack: A,
}

/// What [`Queue::answered`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Answered<A> {
    /// Send the same request again (after the verdict's wait).
    Again,
    /// The request is done; so is its snapshot when `Some` (its ack).
    Done(Option<A>),
}

/// The backlog; `A` is a snapshot's acknowledgement.
#[derive(Debug)]
pub struct Queue<A> {
    snapshots: VecDeque<Pending<A>>,
    samples: u64,
    capacity: u64,
    dropped_samples: u64,
}

impl<A> Queue<A> {
    /// Empty, holding at most `capacity` samples (at least 1).
    pub fn new(capacity: u64) -> Queue<A> {
        Queue {
            snapshots: VecDeque::new(),
            samples: 0,
            capacity: capacity.max(1),
            dropped_samples: 0,
        }
    }

    /// Adds a snapshot's requests; answers the acknowledgements now due:
    /// its own if it has no sample, and those of the oldest snapshots
    /// dropped to make room (`sending`: the front one's request is out and
    /// is not dropped). A snapshot bigger than the capacity goes alone.
    pub fn push(&mut self, requests: Vec<Request>, ack: A, sending: bool) -> Vec<A> {
        let samples: u64 = requests.iter().map(|r| r.samples as u64).sum();
        if samples == 0 {
            return vec![ack];
        }
        let mut due = Vec::new();
        let keep = usize::from(sending);
        while self.samples + samples > self.capacity && self.snapshots.len() > keep {
            let Some(oldest) = self.snapshots.remove(keep) else {
                break;
            };
            let left: u64 = oldest.requests.iter().map(|r| r.samples as u64).sum();
            self.samples -= left;
            self.dropped_samples += left;
            due.push(oldest.ack);
        }
        self.samples += samples;
        self.snapshots.push_back(Pending {
            requests: requests.into(),
            ack,
        });
        due
    }

    /// The request to send now: the front one.
    pub fn next(&self) -> Option<&Request> {
        self.snapshots.front().and_then(|p| p.requests.front())
    }

    /// The front request was answered with `verdict`.
    pub fn answered(&mut self, verdict: &Verdict) -> Answered<A> {
        if matches!(verdict, Verdict::Retry(_)) {
            return Answered::Again;
        }
        let Some(front) = self.snapshots.front_mut() else {
            return Answered::Done(None);
        };
        if let Some(request) = front.requests.pop_front() {
            self.samples -= request.samples as u64;
        }
        if !front.requests.is_empty() {
            return Answered::Done(None);
        }
        Answered::Done(self.snapshots.pop_front().map(|p| p.ack))
    }

    /// Samples waiting (the one being sent included).
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Samples dropped since start because the backlog was full.
    pub fn dropped_samples(&self) -> u64 {
        self.dropped_samples
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty()
    }

    /// Samples of the snapshots waiting, front first (tests).
    #[cfg(test)]
    fn sizes(&self) -> Vec<u64> {
        self.snapshots
            .iter()
            .map(|p| p.requests.iter().map(|r| r.samples as u64).sum())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::response::Rejection;
    use super::*;

    fn requests(samples: &[usize]) -> Vec<Request> {
        samples
            .iter()
            .map(|&samples| Request {
                body: vec![0; samples].into(),
                samples,
            })
            .collect()
    }

    #[test]
    fn a_snapshot_is_acknowledged_once_each_of_its_requests_is_delivered_or_rejected() {
        let mut q = Queue::new(100);
        assert!(q.push(requests(&[3, 2]), "a", false).is_empty());
        assert!(q.push(requests(&[4]), "b", false).is_empty());
        assert_eq!(q.samples(), 9);
        assert_eq!(q.next().map(|r| r.samples), Some(3));
        assert_eq!(
            q.answered(&Verdict::Retry(Duration::from_secs(1))),
            Answered::Again
        );
        assert_eq!(q.next().map(|r| r.samples), Some(3), "the same again");
        assert_eq!(q.answered(&Verdict::Delivered), Answered::Done(None));
        let rejected = Verdict::Rejected(Rejection {
            status: 400,
            first_line: "out of order".into(),
        });
        assert_eq!(q.answered(&rejected), Answered::Done(Some("a")));
        assert_eq!(q.samples(), 4);
        assert_eq!(q.answered(&Verdict::Delivered), Answered::Done(Some("b")));
        assert!(q.is_empty() && q.next().is_none());
        assert_eq!(q.answered(&Verdict::Delivered), Answered::Done(None));
    }

    #[test]
    fn a_snapshot_without_samples_is_acknowledged_at_once() {
        let mut q = Queue::new(10);
        assert_eq!(q.push(Vec::new(), "empty", false), vec!["empty"]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_full_backlog_drops_the_oldest_but_never_the_one_being_sent() {
        let mut q = Queue::new(10);
        q.push(requests(&[4]), "a", false);
        q.push(requests(&[4]), "b", false);
        assert_eq!(q.push(requests(&[4]), "c", true), vec!["b"]);
        assert_eq!(q.sizes(), vec![4, 4]);
        assert_eq!(q.dropped_samples(), 4);
        assert_eq!(
            q.push(requests(&[4]), "d", false),
            vec!["a"],
            "nothing out: the front goes too"
        );
        assert_eq!(q.push(requests(&[30]), "big", false), vec!["c", "d"]);
        assert_eq!(q.sizes(), vec![30], "bigger than the capacity: alone");
        assert_eq!(q.samples(), 30);
        assert_eq!(q.dropped_samples(), 16);
    }
}
