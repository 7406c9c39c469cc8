//! Every transition of [`Delivery`], the regressions it was written to
//! prevent, and a proptest of random interleavings.

use super::*;

/// Lines are a label, a partial a number: the machine only passes them on.
type D = Delivery<&'static str, u32>;
type Out = Output<&'static str, u32>;

/// The (work, sink) pairs handed lines in `out`.
fn hands(out: &[Out]) -> Vec<(WorkId, Sink)> {
    out.iter()
        .filter_map(|o| match o {
            Output::HandLines { id, sink, .. } => Some((*id, *sink)),
            _ => None,
        })
        .collect()
}

/// The partials sent in `out`.
fn partials(out: &[Out]) -> Vec<u32> {
    out.iter()
        .filter_map(|o| match o {
            Output::SendPartial { partial, .. } => Some(*partial),
            _ => None,
        })
        .collect()
}

fn has(out: &[Out], wanted: &Out) -> bool {
    out.contains(wanted)
}

fn commits(d: &mut D) -> Vec<(i32, i64)> {
    d.commit_tick()
}

/// Partition 0 assigned, a snapshot at `offsets` read and dispatched.
fn dispatch(d: &mut D, offsets: &[i64]) -> WorkId {
    let epoch = d.epoch(0).unwrap_or_else(|| {
        d.assigned(0);
        d.epoch(0).expect("assigned")
    });
    for offset in offsets {
        assert_eq!(d.received(0, *offset), Some(epoch));
    }
    d.dispatched(0, epoch, offsets.to_vec()).0
}

#[test]
fn a_snapshot_is_done_once_every_sink_and_the_broker_acknowledged() {
    let mut d = D::new(2, 8);
    let a = dispatch(&mut d, &[10, 11]);
    assert_eq!(d.in_flight(), 1);
    assert_eq!(commits(&mut d), [], "nothing done yet");
    let out = d.processed(a, "a", 3, Some(7));
    assert_eq!(hands(&out), [(a, 0), (a, 1)]);
    assert_eq!(partials(&out), [7]);
    assert_eq!((d.owed(0), d.owed(1)), (3, 3));
    assert!(d.sink_acked(a, 0).is_empty());
    assert!(d.partial_acked(a).is_empty());
    assert_eq!(commits(&mut d), [], "sink 1 has not acknowledged");
    let out = d.sink_acked(a, 1);
    assert!(has(
        &out,
        &Output::SnapshotDelivered {
            partition: 0,
            offsets: vec![10, 11]
        }
    ));
    assert_eq!(d.in_flight(), 0);
    assert_eq!((d.owed(0), d.owed(1)), (0, 0));
    assert_eq!(commits(&mut d), [(0, 12)]);
    assert_eq!(commits(&mut d), [], "committed once");
}

#[test]
fn a_snapshot_waits_for_its_partial_after_every_sink() {
    let mut d = D::new(1, 8);
    let a = dispatch(&mut d, &[0]);
    d.processed(a, "a", 1, Some(1));
    assert!(d.sink_acked(a, 0).is_empty());
    assert_eq!(commits(&mut d), [], "the broker has not acknowledged");
    assert!(
        d.sink_acked(a, 0).is_empty(),
        "a second answer changes nothing"
    );
    let out = d.partial_acked(a);
    assert!(matches!(out.as_slice(), [Output::SnapshotDelivered { .. }]));
    assert_eq!(commits(&mut d), [(0, 1)]);
}

#[test]
fn a_snapshot_without_a_partial_is_done_once_every_sink_acknowledged() {
    let mut d = D::new(1, 8);
    let a = dispatch(&mut d, &[0]);
    let out = d.processed(a, "a", 1, None);
    assert_eq!(partials(&out), Vec::<u32>::new());
    let out = d.sink_acked(a, 0);
    assert!(matches!(out.as_slice(), [Output::SnapshotDelivered { .. }]));
}

#[test]
fn a_snapshot_that_cannot_be_processed_is_done_at_once_and_frees_the_partials_behind_it() {
    let mut d = D::new(1, 8);
    let a = dispatch(&mut d, &[0]);
    let b = dispatch(&mut d, &[1]);
    let out = d.processed(b, "b", 1, Some(2));
    assert_eq!(partials(&out), Vec::<u32>::new(), "waits for a's");
    let (at, out) = d.unprocessable(a);
    assert_eq!(
        at,
        Some(GivenUp {
            partition: 0,
            offsets: vec![0]
        })
    );
    assert_eq!(partials(&out), [2]);
    assert_eq!(commits(&mut d), [(0, 1)]);
    assert_eq!(d.unprocessable(a).0, None, "once");
    assert_eq!(d.unprocessable(b).0, None, "processed already");
}

#[test]
fn partials_leave_in_dispatch_order_whatever_order_they_are_processed_in() {
    let mut d = D::new(1, 8);
    let a = dispatch(&mut d, &[0]);
    let b = dispatch(&mut d, &[1]);
    let c = dispatch(&mut d, &[2]);
    assert_eq!(
        partials(&d.processed(c, "c", 1, Some(3))),
        Vec::<u32>::new()
    );
    assert_eq!(partials(&d.processed(b, "b", 1, None)), Vec::<u32>::new());
    assert_eq!(partials(&d.processed(a, "a", 1, Some(1))), [1, 3]);
}

#[test]
fn a_revoked_partition_sends_what_waited_for_order_and_never_commits() {
    let mut d = D::new(1, 8);
    let a = dispatch(&mut d, &[0]);
    let b = dispatch(&mut d, &[1]);
    d.processed(b, "b", 1, Some(2));
    let out = d.revoked(0);
    assert_eq!(partials(&out), [2], "no order left to keep");
    assert_eq!(d.received(0, 2), None, "not ours");
    // a finishes: its partial goes at once, its lines too, no commit.
    assert_eq!(partials(&d.processed(a, "a", 1, Some(1))), [1]);
    d.sink_acked(a, 0);
    d.partial_acked(a);
    d.sink_acked(b, 0);
    d.partial_acked(b);
    assert_eq!(d.in_flight(), 0, "work of a revoked partition drains");
    assert_eq!(commits(&mut d), []);
    // Assigned again: a new epoch, whose commits the old work never moves.
    d.assigned(0);
    let c = dispatch(&mut d, &[0]);
    d.processed(c, "c", 1, None);
    d.sink_acked(c, 0);
    assert_eq!(commits(&mut d), [(0, 1)]);
}

/// Regression (6193c42): a new consumer, or a new assignment, reset the
/// pause state to "running" while the other consumer stayed paused, and no
/// resume ever came for it. Both consumers follow one pause state: neither
/// resets it, and the one resume reaches both.
#[test]
fn a_new_consumer_or_assignment_keeps_the_pause_state_both_consumers_follow() {
    let mut d = D::new(1, 4);
    let ids: Vec<WorkId> = (0..4).map(|offset| dispatch(&mut d, &[offset])).collect();
    assert!(d.paused());
    // One done: 3 left, still paused (it resumes at half).
    d.processed(ids[0], "a", 1, None);
    assert!(!has(&d.sink_acked(ids[0], 0), &Output::Resume));
    for out in [
        d.consumer_replaced(),
        d.assigned(0),
        d.merge_consumer_replaced(),
        d.assigned(1),
    ] {
        assert_eq!(out, [], "no new pause state");
        assert!(d.paused());
    }
    // The replaced consumer's work finishes: one resume, for both.
    d.processed(ids[1], "b", 1, None);
    assert!(has(&d.sink_acked(ids[1], 0), &Output::Resume));
    assert!(!d.paused());
}

#[test]
fn in_flight_snapshots_pause_at_the_maximum_and_resume_at_half() {
    let mut d = D::new(1, 4);
    let mut ids = Vec::new();
    for offset in 0..4 {
        let epoch = d.epoch(0).unwrap_or_else(|| {
            d.assigned(0);
            d.epoch(0).expect("assigned")
        });
        d.received(0, offset);
        let (id, out) = d.dispatched(0, epoch, vec![offset]);
        assert_eq!(has(&out, &Output::Pause), offset == 3, "{offset}: {out:?}");
        ids.push(id);
    }
    for (n, id) in ids.into_iter().enumerate() {
        d.processed(id, "x", 1, None);
        let out = d.sink_acked(id, 0);
        // 3 left: still paused; 2 left (half): resumed.
        assert_eq!(has(&out, &Output::Resume), n == 1, "{n}: {out:?}");
    }
    assert!(!d.paused());
}

/// Regression (ce3ac45): a burst of cluster windows counted as work in
/// flight and paused stage 1 (tansu then hid the last fetched messages
/// behind its lagging high watermark). Only snapshots count.
#[test]
fn cluster_windows_in_flight_do_not_pause_consumption() {
    let mut d = D::new(1, 2);
    let a = dispatch(&mut d, &[0]);
    for window in 0..10 {
        d.window_emitted("c".to_owned(), window * 10);
    }
    let out = d.processed(a, "a", 1, None);
    assert!(!has(&out, &Output::Pause));
    assert!(
        !d.paused(),
        "1 snapshot and 10 windows in flight, at most 2"
    );
    let (_, out) = d.dispatched(0, d.epoch(0).expect("assigned"), vec![1]);
    assert!(has(&out, &Output::Pause), "2 snapshots");
}

#[test]
fn a_sink_that_cannot_take_more_holds_lines_in_order_and_pauses_until_it_can() {
    let mut d = D::new(2, 100);
    d.sink_health(0, 0, 10);
    let a = dispatch(&mut d, &[0]);
    let b = dispatch(&mut d, &[1]);
    let c = dispatch(&mut d, &[2]);
    assert_eq!(hands(&d.processed(a, "a", 6, None)), [(a, 0), (a, 1)]);
    let out = d.processed(b, "b", 6, None);
    assert_eq!(hands(&out), [(b, 1)], "sink 0 would go past 10");
    assert!(has(&out, &Output::SinkFull { sink: 0 }));
    assert!(has(&out, &Output::Pause));
    let out = d.processed(c, "c", 1, None);
    assert_eq!(hands(&out), [(c, 1)], "behind b for sink 0, though it fits");
    assert!(!has(&out, &Output::SinkFull { sink: 0 }), "said once");
    let out = d.sink_acked(a, 0);
    assert_eq!(hands(&out), [(b, 0), (c, 0)]);
    assert!(has(&out, &Output::SinksDrained));
    assert!(has(&out, &Output::Resume));
    assert_eq!(d.owed(0), 7);
}

#[test]
fn a_snapshot_bigger_than_the_queue_size_goes_alone() {
    let mut d = D::new(1, 100);
    d.sink_health(0, 0, 10);
    let a = dispatch(&mut d, &[0]);
    let b = dispatch(&mut d, &[1]);
    assert_eq!(hands(&d.processed(a, "a", 50, None)), [(a, 0)]);
    assert_eq!(hands(&d.processed(b, "b", 1, None)), []);
    assert_eq!(hands(&d.sink_acked(a, 0)), [(b, 0)]);
}

#[test]
fn a_full_backlog_pauses_and_its_drain_resumes_and_hands_what_was_held() {
    let mut d = D::new(1, 100);
    let out = d.sink_health(0, 10, 10);
    assert_eq!(out, [Output::SinkFull { sink: 0 }, Output::Pause]);
    let a = dispatch(&mut d, &[0]);
    let b = dispatch(&mut d, &[1]);
    assert_eq!(
        hands(&d.processed(a, "a", 3, None)),
        [(a, 0)],
        "owes nothing"
    );
    assert_eq!(hands(&d.processed(b, "b", 3, None)), [], "10 reported");
    let out = d.sink_health(0, 0, 10);
    assert_eq!(hands(&out), [(b, 0)], "its backlog drained");
    assert!(has(&out, &Output::Resume));
}

/// Regression (6193c42): self metrics were handed to a sink without being
/// counted, so snapshot lines found its backlog fuller than counted and it
/// dropped some. They count as owed until the sink answers.
#[test]
fn self_metrics_count_as_owed_until_answered_so_snapshot_lines_wait_for_room() {
    let mut d = D::new(2, 100);
    d.sink_health(0, 0, 10);
    assert_eq!(
        d.self_metrics(6),
        [
            Output::HandSelfMetrics { sink: 0 },
            Output::HandSelfMetrics { sink: 1 }
        ]
    );
    assert_eq!(d.owed(0), 6);
    let a = dispatch(&mut d, &[0]);
    let out = d.processed(a, "a", 6, None);
    assert_eq!(hands(&out), [(a, 1)], "sink 0 holds 6 self metrics lines");
    assert_eq!(
        d.self_metrics(6),
        [Output::HandSelfMetrics { sink: 1 }],
        "left out where they would push snapshot lines out"
    );
    let out = d.self_metrics_answered(0, 6);
    assert_eq!(hands(&out), [(a, 0)]);
    assert_eq!((d.owed(0), d.owed(1)), (6, 18));
}

#[test]
fn a_sink_that_died_gets_the_same_lines_again_and_its_answer_counts() {
    let mut d = D::new(2, 100);
    let a = dispatch(&mut d, &[0]);
    d.processed(a, "a", 2, None);
    d.sink_acked(a, 1);
    assert_eq!(
        d.sink_lost(a, 0),
        [Output::HandLines {
            id: a,
            sink: 0,
            lines: "a"
        }]
    );
    assert_eq!(d.owed(0), 2, "still owed");
    assert_eq!(d.sink_lost(a, 1), [], "sink 1 has them");
    assert!(matches!(
        d.sink_acked(a, 0).as_slice(),
        [Output::SnapshotDelivered { .. }]
    ));
    assert_eq!(d.sink_lost(a, 0), [], "done");
}

#[test]
fn a_failed_partial_is_sent_again_only_while_the_broker_owes_it() {
    let mut d = D::new(1, 100);
    let a = dispatch(&mut d, &[0]);
    assert_eq!(d.resend_partial(a), [], "not processed");
    d.processed(a, "a", 1, Some(5));
    assert_eq!(
        d.resend_partial(a),
        [Output::SendPartial { id: a, partial: 5 }]
    );
    d.partial_acked(a);
    assert_eq!(d.resend_partial(a), []);
}

#[test]
fn a_clusters_windows_go_to_the_sinks_in_emission_order_and_are_acknowledged_to_the_windows() {
    let mut d = D::new(1, 100);
    let w0 = d.window_emitted("c".to_owned(), 0);
    let w1 = d.window_emitted("c".to_owned(), 10);
    let other = d.window_emitted("d".to_owned(), 0);
    assert_eq!(hands(&d.merged(w1, "w1", 1)), [], "waits for window 0");
    assert_eq!(hands(&d.merged(other, "d", 1)), [(other, 0)]);
    assert_eq!(hands(&d.merged(w0, "w0", 1)), [(w0, 0), (w1, 0)]);
    assert_eq!(
        d.sink_acked(w1, 0),
        [Output::WindowDelivered {
            cluster: "c".to_owned(),
            window: 10
        }]
    );
    assert_eq!(commits(&mut d), [], "stage 2's commits are the windows'");
}

#[test]
fn a_window_that_cannot_be_merged_is_given_up_and_frees_the_ones_behind_it() {
    let mut d = D::new(1, 100);
    let w0 = d.window_emitted("c".to_owned(), 0);
    let w1 = d.window_emitted("c".to_owned(), 10);
    d.merged(w1, "w1", 1);
    let out = d.merge_failed(w0);
    assert_eq!(hands(&out), [(w1, 0)]);
    assert!(has(
        &out,
        &Output::WindowDelivered {
            cluster: "c".to_owned(),
            window: 0
        }
    ));
    assert_eq!(d.merge_failed(w1), [], "merged already");
}

#[test]
fn a_replaced_merge_consumer_leaves_no_window_waiting_for_order() {
    let mut d = D::new(1, 100);
    let w0 = d.window_emitted("c".to_owned(), 0);
    let w1 = d.window_emitted("c".to_owned(), 10);
    d.merged(w1, "w1", 1);
    assert_eq!(hands(&d.merge_consumer_replaced()), [(w1, 0)]);
    assert_eq!(hands(&d.merged(w0, "w0", 1)), [(w0, 0)]);
}

#[test]
fn draining_pauses_for_good_and_work_in_flight_finishes() {
    let mut d = D::new(1, 100);
    let a = dispatch(&mut d, &[0]);
    assert_eq!(d.drain(), [Output::Pause]);
    d.processed(a, "a", 1, None);
    let out = d.sink_acked(a, 0);
    assert!(!has(&out, &Output::Resume));
    assert_eq!(d.in_flight(), 0);
    assert_eq!(commits(&mut d), [(0, 1)]);
}

#[test]
fn bad_messages_are_done_at_once_and_messages_of_unassigned_partitions_are_dropped() {
    let mut d = D::new(1, 100);
    assert_eq!(d.received(0, 0), None);
    d.assigned(0);
    let epoch = d.received(0, 5).expect("assigned");
    assert_eq!(commits(&mut d), []);
    d.bad(0, epoch, &[5]);
    assert_eq!(commits(&mut d), [(0, 6)]);
}

mod interleavings;
