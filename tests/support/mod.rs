//! Real HAProxy and Graphite pieces for integration tests (no mocks).
//!
//! Include it with `mod support;` from any file in `tests/`:
//!
//! - [`HaproxyFleet`]: N `haproxy` processes from generated configs, UNIX
//!   stats sockets in one directory (optionally one TCP stats socket), kill /
//!   restart / reload (`-sf`) of one instance, traffic generation.
//! - [`CarbonStack`]: `carbon-cache` writing whisper files into a temp dir
//!   behind `carbon-c-relay`; stop/start the relay; read points back, one
//!   metric at a time or every whisper file at once (`points`, `wait_points`).
//! - [`Haproxystats`]: our own binary as a child, logs in a file.
//! - [`kafka::Broker`]: tansu (a Kafka-compatible broker) behind a proxy
//!   that cuts and restores the network path; reads a topic back (to its
//!   end, too); a topic's end and a group's committed offsets; snapshot
//!   and partial messages grouped by load balancer and `ts`.
//! - [`master_worker::MasterWorker`]: one HAProxy in master-worker mode
//!   (`-W -S`) with a stats socket and an HTTP stats page (`stats auth`).
//! - [`fake_master::FakeMaster`]: a fake master CLI saying what a real one
//!   never says (hostile bytes, thousands of workers, shared numbers).
//! - [`prometheus::Prometheus`]: a real Prometheus scraping one target
//!   every second, read through its query API; `promtool check metrics`.
//! - [`crafted`]: real Arrow IPC parts whose buffers claim other sizes.
//! - [`start_fleet_and_carbon`]: both at once, started in parallel.
//!
//! Everything lives in its own temporary directory on free 127.0.0.1 ports,
//! so tests can run in parallel; every child is stopped by PID (SIGTERM, then
//! SIGKILL after 2 s) and reaped on drop; every wait has a deadline and panics
//! with the child's log. A missing binary panics naming the Debian package
//! (`haproxy`, `graphite-carbon`, `carbon-c-relay`, `python3-whisper`).
//! Set `SUPPORT_KEEP_TMP=1` to keep the temporary directories for a post-mortem.
#![allow(dead_code, unused_imports)]

pub mod carbon;
pub mod collected;
pub mod crafted;
pub mod fake_graphite;
pub mod fake_master;
pub mod haproxy;
pub mod haproxystats;
pub mod kafka;
pub mod master_worker;
pub mod process;
pub mod prometheus;
pub mod responder;
pub mod snapshots;

pub use carbon::{CarbonStack, send_lines_to, unix_now};
pub use haproxy::{FleetOptions, HaproxyFleet, parse_show_info, parse_show_stat};
pub use haproxystats::Haproxystats;
pub use process::{free_port, free_ports, pid_exists};

/// Starts `n` HAProxy instances and a carbon stack in parallel (carbon's
/// python start-up dominates: about 1 s).
pub fn start_fleet_and_carbon(n: usize, opts: FleetOptions) -> (HaproxyFleet, CarbonStack) {
    std::thread::scope(|s| {
        let carbon = s.spawn(CarbonStack::start);
        let fleet = HaproxyFleet::start(n, opts);
        let carbon = carbon
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (fleet, carbon)
    })
}
