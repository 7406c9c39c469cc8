//! Logging: one line per event on stdout — timestamp, level, component,
//! message, then `key=value` fields — so journald keeps one record per event.
//!
//! Each component logs at the level of the configuration section that owns
//! it (`[pull] loglevel` for the puller, `[process] loglevel` for watcher,
//! processors, engine and sinks). `HAPROXYSTATS_LOG` (an `EnvFilter`
//! directive string) overrides everything, for debugging one component.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogLevel};

/// Environment variable whose directives replace the configured levels.
pub const LOG_ENV: &str = "HAPROXYSTATS_LOG";

/// Modules whose level follows `[pull] loglevel`.
const PULL_COMPONENTS: &[&str] = &["puller"];
/// Modules whose level follows `[process] loglevel`.
const PROCESS_COMPONENTS: &[&str] = &["watcher", "processor", "engine", "sink", "replay"];

/// Which halves of the program run, deciding which sections' levels apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halves {
    /// `pull` only.
    Pull,
    /// `process` or `replay`.
    Process,
    /// The supervisor runs both.
    Both,
}

/// Builds the filter directives for the configured levels: the crate as a
/// whole logs at the most verbose level of the halves that run, each
/// component at its own section's level, other crates (actix, tokio) at warn.
pub fn directives(config: &Config, halves: Halves) -> String {
    let pull = config.pull.loglevel;
    let process = config.process.loglevel;
    let base = match halves {
        Halves::Pull => pull,
        Halves::Process => process,
        Halves::Both => pull.min(process),
    };
    let mut directives = format!("warn,haproxystats={}", filter_name(base));
    for (components, level) in [(PULL_COMPONENTS, pull), (PROCESS_COMPONENTS, process)] {
        for component in components {
            directives.push_str(&format!(
                ",haproxystats::{component}={}",
                filter_name(level)
            ));
        }
    }
    directives
}

fn filter_name(level: LogLevel) -> &'static str {
    match level.tracing_level() {
        tracing::Level::TRACE => "trace",
        tracing::Level::DEBUG => "debug",
        tracing::Level::INFO => "info",
        tracing::Level::WARN => "warn",
        tracing::Level::ERROR => "error",
    }
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// The daemons: stdout, collected by journald.
    Stdout,
    /// `replay`, whose stdout carries the metric lines.
    Stderr,
}

/// Installs the global subscriber. Returns an error line when
/// `HAPROXYSTATS_LOG` holds directives that do not parse.
pub fn init(config: &Config, halves: Halves, stream: LogStream) -> Result<(), String> {
    let filter = match std::env::var(LOG_ENV) {
        Ok(custom) => EnvFilter::try_new(&custom)
            .map_err(|error| format!("invalid {LOG_ENV} value '{custom}': {error}"))?,
        Err(_) => EnvFilter::try_new(directives(config, halves))
            .map_err(|error| format!("internal error building log filter: {error}"))?,
    };
    match stream {
        LogStream::Stdout => install(filter, std::io::stdout),
        LogStream::Stderr => install(filter, std::io::stderr),
    }
}

/// Installs the subscriber writing to `writer`. `try_init` also routes the
/// `log` crate's records (actix logs through it) into tracing: the
/// `tracing-log` feature of tracing-subscriber, on by default.
fn install<W>(filter: EnvFilter, writer: W) -> Result<(), String>
where
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(true)
        .with_writer(writer)
        .try_init()
        .map_err(|error| format!("cannot install the logger: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_component_follows_its_section() {
        let mut config = Config::defaults();
        config.pull.loglevel = LogLevel::Debug;
        config.process.loglevel = LogLevel::Error;
        let both = directives(&config, Halves::Both);
        assert!(both.starts_with("warn,haproxystats=debug,"), "{both}");
        assert!(both.contains("haproxystats::puller=debug"), "{both}");
        assert!(both.contains("haproxystats::engine=error"), "{both}");
        let process = directives(&config, Halves::Process);
        assert!(process.starts_with("warn,haproxystats=error,"), "{process}");
        assert!(EnvFilter::try_new(both).is_ok());
    }

    /// What the subscriber wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("capture").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'writer> tracing_subscriber::fmt::MakeWriter<'writer> for Captured {
        type Writer = Captured;

        fn make_writer(&'writer self) -> Captured {
            self.clone()
        }
    }

    /// An actor that notifies itself once stopped: actix answers that with
    /// a `log::error!` record.
    struct NotifiesWhenStopped;

    #[derive(actix::Message)]
    #[rtype(result = "()")]
    struct Ping;

    impl actix::Actor for NotifiesWhenStopped {
        type Context = actix::Context<Self>;

        fn started(&mut self, ctx: &mut Self::Context) {
            actix::ActorContext::stop(ctx);
        }

        fn stopped(&mut self, ctx: &mut Self::Context) {
            actix::AsyncContext::notify(ctx, Ping);
        }
    }

    impl actix::Handler<Ping> for NotifiesWhenStopped {
        type Result = ();

        fn handle(&mut self, _: Ping, _: &mut Self::Context) {}
    }

    /// The only test that installs the global subscriber.
    #[actix_rt::test]
    async fn actix_log_records_reach_the_log() {
        use actix::Actor;

        let captured = Captured::default();
        install(EnvFilter::new("warn"), captured.clone()).expect("install");
        NotifiesWhenStopped.start();
        let wanted = "Context::notify called for stopped actor";
        for _ in 0..100 {
            let text = String::from_utf8_lossy(&captured.0.lock().expect("capture")).into_owned();
            if let Some(line) = text.lines().find(|line| line.contains(wanted)) {
                assert!(line.contains("ERROR actix"), "{line}");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("actix's log record never reached the subscriber");
    }
}
