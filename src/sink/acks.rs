//! When a batch of lines handed to a sink with a backlog (Graphite, Kafka)
//! may be acknowledged (pure): its lines leave the sink in the order they
//! came (delivered, or dropped from the full backlog, oldest first), so a
//! batch is done once as many lines left as were queued up to its last.

use std::collections::VecDeque;

use tokio::sync::oneshot;

use super::backlog::Backlog;
use super::chunks::SharedLines;

/// The acknowledgements waiting for their batch's lines to leave.
#[derive(Debug, Default)]
pub struct LineAcks {
    /// Lines ever queued: the sequence number of the newest line.
    queued: u64,
    /// Lines of `queued` that left (delivered or dropped).
    left: u64,
    /// Each batch's answer with the sequence number of its last line.
    waiting: VecDeque<(u64, oneshot::Sender<()>)>,
}

impl LineAcks {
    /// Queues `lines` in `backlog`; `written` is answered once the last of
    /// them left. Answers how many of the oldest lines the full backlog
    /// dropped for them (counted as left here; the sink counts and logs
    /// them).
    pub fn queue(
        &mut self,
        backlog: &mut Backlog,
        lines: SharedLines,
        written: Option<oneshot::Sender<()>>,
    ) -> usize {
        let (mut accepted, mut dropped) = (0, 0);
        for chunk in lines.into_chunks() {
            let pushed = backlog.push(chunk);
            accepted += pushed.accepted;
            dropped += pushed.dropped;
        }
        self.queued += accepted as u64;
        if let Some(written) = written {
            self.waiting.push_back((self.queued, written));
        }
        self.left(dropped as u64);
        dropped
    }

    /// `lines` more left the sink, oldest first: every batch now gone
    /// whole is answered.
    pub fn left(&mut self, lines: u64) {
        self.left += lines;
        while self
            .waiting
            .front()
            .is_some_and(|(last, _)| *last <= self.left)
        {
            if let Some((_, written)) = self.waiting.pop_front() {
                // A sender that stopped waiting (the pipeline restarted)
                // has nothing left to learn.
                let _ = written.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize) -> SharedLines {
        SharedLines::from("m 1 2\n".repeat(n).into_bytes())
    }

    fn batch(
        acks: &mut LineAcks,
        backlog: &mut Backlog,
        n: usize,
    ) -> (oneshot::Receiver<()>, usize) {
        let (written, answer) = oneshot::channel();
        let dropped = acks.queue(backlog, lines(n), Some(written));
        (answer, dropped)
    }

    #[test]
    fn a_batch_is_answered_once_its_last_line_left_not_before() {
        let mut backlog = Backlog::new(100);
        let mut acks = LineAcks::default();
        let (mut first, _) = batch(&mut acks, &mut backlog, 3);
        let (mut second, _) = batch(&mut acks, &mut backlog, 2);
        acks.left(2);
        assert!(first.try_recv().is_err(), "one of its lines is still in");
        acks.left(1);
        assert_eq!(first.try_recv(), Ok(()));
        assert!(second.try_recv().is_err());
        acks.left(2);
        assert_eq!(second.try_recv(), Ok(()));
    }

    #[test]
    fn lines_dropped_from_a_full_backlog_count_as_left_oldest_first() {
        let mut backlog = Backlog::new(4);
        let mut acks = LineAcks::default();
        let (mut first, dropped) = batch(&mut acks, &mut backlog, 3);
        assert_eq!(dropped, 0);
        // Three more: two of the first batch's lines make room.
        let (mut second, dropped) = batch(&mut acks, &mut backlog, 3);
        assert_eq!(dropped, 2);
        assert!(first.try_recv().is_err(), "its third line still waits");
        let (mut third, dropped) = batch(&mut acks, &mut backlog, 4);
        assert_eq!(dropped, 4);
        assert_eq!(first.try_recv(), Ok(()), "dropped whole: answered");
        assert_eq!(second.try_recv(), Ok(()), "dropped whole: answered");
        assert!(third.try_recv().is_err());
        acks.left(4);
        assert_eq!(third.try_recv(), Ok(()));
    }

    #[test]
    fn a_batch_without_an_answer_still_counts_in_the_order() {
        let mut backlog = Backlog::new(100);
        let mut acks = LineAcks::default();
        acks.queue(&mut backlog, lines(2), None);
        let (mut after, _) = batch(&mut acks, &mut backlog, 1);
        acks.left(2);
        assert!(
            after.try_recv().is_err(),
            "the unanswered batch's lines went first"
        );
        acks.left(1);
        assert_eq!(after.try_recv(), Ok(()));
    }
}
