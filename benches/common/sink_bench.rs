//! What the sink throughput benchmarks share: the lines, the timed run of
//! one sink until its flush says every line is delivered, the report line.

use std::io::Write;
use std::time::{Duration, Instant};

use actix::prelude::*;
use haproxystats::sink::messages::{Flush, SendLines};

/// `lines` lines shaped like the engine's: realistic path lengths, values.
pub fn engine_like_lines(lines: usize) -> Vec<u8> {
    let mut payload = Vec::with_capacity(lines * 80);
    for i in 0..lines {
        let _ = writeln!(
            payload,
            "loadbalancers.lb-01_example_com.haproxy.backend.be{:05}.server.srv{:03}.bin {} 1700000000",
            i % 1000,
            i % 20,
            i * 7
        );
    }
    payload
}

/// Hands `payload` to the sink at once and times it until `Flush` answers
/// that nothing is left (panics after `timeout`); then asks for its stats.
pub async fn time_until_flushed<A, M>(
    sink: &Addr<A>,
    payload: Vec<u8>,
    timeout: Duration,
    stats: M,
) -> (Duration, M::Result)
where
    A: Actor<Context = Context<A>> + Handler<SendLines> + Handler<Flush> + Handler<M>,
    M: Message + Send + 'static,
    M::Result: Send + Default,
{
    let start = Instant::now();
    sink.do_send(SendLines(payload));
    let left = sink.send(Flush { timeout }).await.unwrap_or(u64::MAX);
    let elapsed = start.elapsed();
    assert_eq!(left, 0, "not everything was delivered within {timeout:?}");
    (elapsed, sink.send(stats).await.unwrap_or_default())
}

/// `NAME: N lines (MB) in S s = lines/s, MB/s; DETAILS`.
pub fn report(name: &str, lines: usize, bytes: usize, elapsed: Duration, details: &str) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{name}: {lines} lines ({:.1} MB) in {secs:.3} s = {:.0} lines/s, {:.0} MB/s; {details}",
        bytes as f64 / 1e6,
        lines as f64 / secs,
        bytes as f64 / 1e6 / secs,
    );
}
