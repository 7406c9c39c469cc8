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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(true);
    // try_init also routes the `log` crate (actix) into tracing.
    let installed = match stream {
        LogStream::Stdout => builder.with_writer(std::io::stdout).try_init(),
        LogStream::Stderr => builder.with_writer(std::io::stderr).try_init(),
    };
    installed.map_err(|error| format!("cannot install the logger: {error}"))
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
}
