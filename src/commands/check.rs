//! `haproxystats check`: a Nagios plugin. Reads the status file the running
//! supervisor rewrites every second, judges it ([`crate::health::evaluate`])
//! and prints one line; the exit code is the Nagios state.
//!
//! Unlike every other command, a bad command line or configuration exits 3
//! (UNKNOWN) with the reason on stdout, not 2 on stderr: Nagios shows stdout
//! and reads exit code 2 as CRITICAL, which would page someone about the
//! service when the check itself is broken.

use std::ffi::OsString;
use std::io::Write as _;
use std::process::ExitCode;

use crate::cli::CheckArgs;
use crate::common::unix_now;
use crate::config::Config;
use crate::health::{
    BacklogThresholds, CheckOutcome, Limits, Status, Thresholds, evaluate, status_path,
};

/// Judges the status file of `config` now and prints the verdict.
pub fn run(config: &Config, args: &CheckArgs) -> ExitCode {
    report(&outcome(config, args, unix_now()))
}

/// Judges the status file of `config` at `now` (epoch seconds).
pub fn outcome(config: &Config, args: &CheckArgs, now: u64) -> CheckOutcome {
    let thresholds = match thresholds(config, args) {
        Ok(thresholds) => thresholds,
        Err(reason) => return CheckOutcome::unknown(&reason),
    };
    match Status::read(&status_path(config)) {
        Ok(status) => evaluate(&status, now, &thresholds),
        Err(error) => CheckOutcome::unreadable(&error),
    }
}

/// The configuration's defaults, overridden by the flags given.
pub fn thresholds(config: &Config, args: &CheckArgs) -> Result<Thresholds, String> {
    let defaults = Thresholds::from_config(config);
    let limits = |default: Limits, warning: Option<u64>, critical: Option<u64>| Limits {
        warning: warning.unwrap_or(default.warning),
        critical: critical.unwrap_or(default.critical),
    };
    let thresholds = Thresholds {
        queue: limits(defaults.queue, args.queue_warning, args.queue_critical),
        backlog: BacklogThresholds {
            warning: args.backlog_warning.clone(),
            critical: args.backlog_critical.clone(),
        },
        age: limits(defaults.age, args.age_warning, args.age_critical),
        stale_after: args.stale_critical.or(defaults.stale_after),
    };
    thresholds.validate()?;
    Ok(thresholds)
}

/// UNKNOWN, for a check that cannot even start (command line, configuration).
pub fn unknown(reason: &str) -> ExitCode {
    report(&CheckOutcome::unknown(reason))
}

/// Prints the line on stdout and turns the state into the exit code.
pub fn report(outcome: &CheckOutcome) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    // Nothing better to do if stdout is gone: the exit code still tells.
    let _ = writeln!(stdout, "{}", outcome.line).and_then(|()| stdout.flush());
    ExitCode::from(outcome.code.exit_code())
}

/// `true` when the command line asks for `check` (its first word that is
/// not an option or an option's value), so that a command line clap refuses
/// still ends as UNKNOWN for Nagios.
pub fn is_check_invocation(args: &[OsString]) -> bool {
    let mut words = args.iter().skip(1);
    while let Some(word) = words.next() {
        match word.to_str() {
            // Options of the common flags that take a separate value.
            Some("-f" | "--file" | "-d" | "--dir") => {
                words.next();
            }
            Some("--") => return words.next().is_some_and(|w| w == "check"),
            Some(option) if option.starts_with('-') => {}
            _ => return word == "check",
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::NagiosCode;

    #[test]
    fn flags_override_the_configuration_defaults() {
        let config = Config::defaults();
        let args = CheckArgs {
            queue_critical: Some(50),
            age_warning: Some(15),
            stale_critical: Some(4),
            ..CheckArgs::default()
        };
        let defaults = Thresholds::from_config(&config);
        let got = thresholds(&config, &args).expect("valid");
        assert_eq!(got.queue.warning, defaults.queue.warning);
        assert_eq!(got.queue.critical, 50);
        assert_eq!(got.age.warning, 15);
        assert_eq!(got.age.critical, defaults.age.critical);
        assert_eq!(got.backlog, defaults.backlog);
        assert_eq!(got.stale_after, Some(4));
    }

    #[test]
    fn warning_above_critical_is_unknown() {
        let mut config = Config::defaults();
        config.paths.base_dir = "/nonexistent".into();
        let args = CheckArgs {
            queue_warning: Some(1000),
            queue_critical: Some(10),
            ..CheckArgs::default()
        };
        let outcome = outcome(&config, &args, 0);
        assert_eq!(outcome.code, NagiosCode::Unknown);
        assert!(
            outcome.line.contains("--queue-warning 1000"),
            "{}",
            outcome.line
        );
    }

    #[test]
    fn the_command_is_the_first_word_that_is_not_an_option() {
        let words = |line: &str| -> Vec<OsString> { line.split(' ').map(OsString::from).collect() };
        let cases = [
            ("haproxystats check", true),
            ("haproxystats -f check.conf check --bogus", true),
            ("haproxystats --file=x.conf check", true),
            ("haproxystats -d conf.d -P check", true),
            ("haproxystats -- check", true),
            ("haproxystats -f check pull", false),
            ("haproxystats replay check", false),
            ("haproxystats --bogus", false),
            ("haproxystats", false),
        ];
        for (line, expected) in cases {
            assert_eq!(is_check_invocation(&words(line)), expected, "{line}");
        }
    }
}
