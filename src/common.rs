//! What any module may use, whatever its place: the fault injection's
//! `Crash` message, the text of a caught panic, the clock in epoch
//! seconds. It imports nothing of ours, so that the puller, the watcher,
//! the sinks and central need not import the supervisor, the processor or
//! health for them (`tests/module_graph.rs` keeps the modules free of
//! import circles).

use std::time::{SystemTime, UNIX_EPOCH};

/// Makes the receiving child panic in its handler: the fault injection of
/// the supervision tests and the soak. Only in test builds and with the
/// `fault-injection` feature, never in a release.
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub struct Crash;

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-text panic payload".to_string()
    }
}

/// Now, in whole epoch seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
