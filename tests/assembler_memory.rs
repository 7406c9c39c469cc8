//! Issue 24 item 3, measured: 2 000 one-byte messages claiming 10 000 parts
//! each, each of another load balancer, took central from 15 to 478 MB of
//! RSS (a slot reserved per claimed part, none of it accounted). Here a
//! counting allocator (this test binary's only) measures what the
//! assembler really holds for the same messages: at most what it accounts
//! for, and that stays small, at the peak too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use haproxystats::central::assembler::{Assembler, MAX_OPEN_PER_PARTITION, Part};
use haproxystats::central::bad::{MAX_PARTS, PartHeader};

/// Bytes allocated and not freed, and the most there ever were.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call goes to `System` unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            grew(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn two_thousand_forged_parts_hold_no_more_than_the_assembler_accounts_for() {
    let mut assembler = Assembler::new();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut given_up = 0;
    for n in 0..2_000 {
        let outcome = assembler.add(Part {
            partition: 0,
            offset: n,
            timestamp_ms: Some(1_700_000_000_000),
            header: PartHeader {
                lb: format!("forged-{n:04}"),
                cluster: "eu".into(),
                ts: 1_700_000_000,
                part: 0,
                parts: MAX_PARTS,
            },
            value: vec![0],
        });
        given_up += outcome.abandoned.len();
    }
    let held = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    let accounted = assembler.bytes();
    eprintln!("held {held} peak {peak} accounted {accounted}");
    assert_eq!(assembler.open(), MAX_OPEN_PER_PARTITION);
    assert_eq!(given_up, 2_000 - MAX_OPEN_PER_PARTITION);
    assert!(
        held <= accounted,
        "holds {held} bytes, accounts for {accounted}"
    );
    assert!(accounted <= 1024 * 1024, "accounts for {accounted} bytes");
    // The peak: a table growing, an outcome in hand; never per claimed part.
    assert!(peak <= 2 * 1024 * 1024, "peak {peak} bytes");
}
