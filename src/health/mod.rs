//! Health: what the running supervisor tells the outside world about itself.
//!
//! - [`status`]: the status file (`<paths.base-dir>/haproxystats.status`),
//!   rewritten atomically about every second by the supervisor and read by
//!   `haproxystats check`.
//! - [`evaluate`]: the pure judgement `check` makes of a status record
//!   (Nagios states, thresholds, one status line with perfdata).
//! - [`notify`]: systemd's notification protocol (`Type=notify`): READY,
//!   WATCHDOG, STATUS and STOPPING over `$NOTIFY_SOCKET`.
//! - [`reporter`]: [`Reporter`], what the supervisor keeps: the current
//!   status, written to the file and sent to systemd on every tick.
//!
//! Together they replace the original's monit check and nagios scripts:
//! systemd's watchdog restarts a hung process, `check` alerts on one that is
//! alive but not doing its job (see `contrib/monitoring.md`).

pub mod evaluate;
pub mod notify;
pub mod reporter;
pub mod status;

pub use evaluate::{
    BacklogThresholds, CheckOutcome, Limits, NagiosCode, SinkLimit, Thresholds, evaluate,
};
pub use notify::Notifier;
pub use reporter::Reporter;
pub use status::{
    STATUS_FILE_NAME, SinkStatus, Status, StatusError, StatusWriter, WRITE_INTERVAL, status_path,
};
