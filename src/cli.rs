//! The command line (SPEC §1).
//!
//! One binary with subcommands; invoked as `haproxystats-pull` or
//! `haproxystats-process` (a symlink, as the original's two programs were
//! named) it behaves as the matching subcommand, so existing systemd units and
//! scripts keep working.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::health::SinkLimit;

/// `haproxystats [-f FILE] [-d DIR] [-p | -P] [COMMAND]`
#[derive(Debug, Parser)]
#[command(
    name = "haproxystats",
    version,
    propagate_version = true,
    disable_version_flag = true,
    about = "Pulls statistics from HAProxy, aggregates them and pushes them to Graphite",
    long_about = "Pulls statistics from HAProxy, aggregates them and pushes them to Graphite.\n\n\
                  With no command it runs everything in one supervised process: the puller, \
                  the directory watcher, the processors and the sinks."
)]
pub struct Cli {
    /// Options every command accepts.
    #[command(flatten)]
    pub common: CommonArgs,
    /// What to run; none = the supervisor (pull + process in one process).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options shared by every command; accepted before or after the command name.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Configuration file [default: /etc/haproxystats.conf; when that default
    /// is missing, all settings take their defaults]
    #[arg(short = 'f', long = "file", value_name = "FILE", global = true)]
    pub file: Option<PathBuf>,
    /// Directory whose *.conf files are read after FILE, in sorted order
    #[arg(short = 'd', long = "dir", value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,
    /// Print the default settings as INI and exit
    #[arg(
        short = 'p',
        long = "print",
        global = true,
        conflicts_with = "print_conf"
    )]
    pub print: bool,
    /// Validate and print the effective configuration as INI and exit
    #[arg(short = 'P', long = "print-conf", global = true)]
    pub print_conf: bool,
    /// Print version
    #[arg(short = 'V', long = "version", short_alias = 'v', action = ArgAction::Version, global = true)]
    pub version: Option<bool>,
}

/// The subcommands.
#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Only the pull half: snapshots from every HAProxy stats socket (drop-in
    /// for haproxystats-pull)
    Pull,
    /// Only the process half: watch src-dir, aggregate, push to the sinks
    /// (drop-in for haproxystats-process)
    Process,
    /// Central processing: consume raw snapshots from [kafka]
    /// snapshots-topic (group [central] group-id), send each load
    /// balancer's lines to the sinks and its partial to [central]
    /// partials-topic; merge the partials per cluster and window (group
    /// <group-id>-merge) and send the cluster's lines
    Central,
    /// Process snapshot directories once and print the Graphite lines to
    /// stdout; deletes nothing
    Replay {
        /// Snapshot directories (named by their epoch timestamp)
        #[arg(value_name = "DIR", required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Nagios plugin: judge the running process by its status file; exit
    /// 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN and print one status line
    #[command(long_about = CHECK_ABOUT)]
    Check(CheckArgs),
}

const CHECK_ABOUT: &str = "Nagios plugin: judges the running haproxystats by its status file \
     <[paths] base-dir>/haproxystats.status, rewritten every second by the supervisor \
     (`haproxystats` or `haproxystats process`), and prints one line with perfdata.\n\n\
     Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Unlike the other commands, \
     a bad command line or configuration exits 3 (UNKNOWN), as Nagios expects of a plugin.\n\n\
     CRITICAL when the status file is missing or older than --stale-critical (not running \
     or hung), and while a sink says it cannot deliver what it holds (its Kafka topic \
     does not exist, no broker answers), with its reason. A value alerts when it is above \
     its threshold. Defaults come from the \
     configuration; the age of the last pull is judged only when the process pulls.";

/// Thresholds of `haproxystats check`; each unset one takes its default from
/// the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
#[command(next_help_heading = "Thresholds")]
pub struct CheckArgs {
    /// Snapshots waiting in src-dir above which the state is WARNING
    /// [default: a tenth of [pull] queue-size]
    #[arg(long, value_name = "N")]
    pub queue_warning: Option<u64>,
    /// Snapshots waiting in src-dir above which the state is CRITICAL
    /// [default: half of [pull] queue-size]
    #[arg(long, value_name = "N")]
    pub queue_critical: Option<u64>,
    /// Lines in a sink's backlog above which the state is WARNING: LINES
    /// for every sink, SINK=LINES for one (repeatable; SINK=LINES wins)
    /// [default: a tenth of the sink's queue-size]
    #[arg(long, value_name = "[SINK=]LINES")]
    pub backlog_warning: Vec<SinkLimit>,
    /// Lines in a sink's backlog above which the state is CRITICAL: LINES
    /// for every sink, SINK=LINES for one (repeatable; SINK=LINES wins)
    /// [default: half of the sink's queue-size]
    #[arg(long, value_name = "[SINK=]LINES")]
    pub backlog_critical: Vec<SinkLimit>,
    /// Seconds since the last successful pull, process or push (of any
    /// sink) above which
    /// the state is WARNING [default: 3 × [pull] pull-interval]
    #[arg(long, value_name = "SECS")]
    pub age_warning: Option<u64>,
    /// Seconds since the last successful pull, process or push (of any
    /// sink) above which
    /// the state is CRITICAL [default: 6 × [pull] pull-interval]
    #[arg(long, value_name = "SECS")]
    pub age_critical: Option<u64>,
    /// Seconds without a status update after which haproxystats counts as
    /// not running or hung: CRITICAL [default: 3 writes, at least 10]
    #[arg(long, value_name = "SECS")]
    pub stale_critical: Option<u64>,
}

impl Cli {
    /// Parses `args` (argv, including argv\[0\]), honouring the program name.
    pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Cli::try_parse_from(with_implied_command(args.into_iter().map(Into::into)))
    }
}

/// The subcommand the program name stands for, if any.
fn implied_command(argv0: &OsStr) -> Option<&'static str> {
    let name = Path::new(argv0).file_name()?.to_str()?;
    match name {
        "haproxystats-pull" => Some("pull"),
        "haproxystats-process" => Some("process"),
        _ => None,
    }
}

/// Inserts the subcommand implied by argv\[0\] right after it, so that
/// `haproxystats-pull -f x.conf` parses as `haproxystats pull -f x.conf`.
fn with_implied_command(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.collect();
    if let Some(command) = args.first().and_then(|argv0| implied_command(argv0)) {
        args.insert(1, OsString::from(command));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        match Cli::parse_args(args.iter().copied()) {
            Ok(cli) => cli,
            Err(error) => panic!("{args:?} did not parse: {error}"),
        }
    }

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn no_command_is_the_supervisor() {
        let cli = parse(&["haproxystats", "-f", "x.conf", "-d", "conf.d"]);
        assert_eq!(cli.command, None);
        assert_eq!(cli.common.file, Some(PathBuf::from("x.conf")));
        assert_eq!(cli.common.dir, Some(PathBuf::from("conf.d")));
    }

    #[test]
    fn program_name_selects_the_command() {
        let cli = parse(&["/usr/bin/haproxystats-pull", "-f", "x.conf"]);
        assert_eq!(cli.command, Some(Command::Pull));
        assert_eq!(cli.common.file, Some(PathBuf::from("x.conf")));
        let cli = parse(&["haproxystats-process", "-P"]);
        assert_eq!(cli.command, Some(Command::Process));
        assert!(cli.common.print_conf);
    }

    #[test]
    fn common_flags_go_before_or_after_the_command() {
        let cli = parse(&["haproxystats", "replay", "-f", "x.conf", "1700000000"]);
        assert_eq!(
            cli.command,
            Some(Command::Replay {
                dirs: vec![PathBuf::from("1700000000")]
            })
        );
        assert_eq!(cli.common.file, Some(PathBuf::from("x.conf")));
    }

    #[test]
    fn central_takes_the_common_flags() {
        let cli = parse(&["haproxystats", "central", "-f", "c.conf", "-d", "conf.d"]);
        assert_eq!(cli.command, Some(Command::Central));
        assert_eq!(cli.common.file, Some(PathBuf::from("c.conf")));
        assert_eq!(cli.common.dir, Some(PathBuf::from("conf.d")));
    }

    #[test]
    fn replay_needs_a_directory() {
        assert!(Cli::parse_args(["haproxystats", "replay"]).is_err());
    }

    #[test]
    fn print_and_print_conf_exclude_each_other() {
        assert!(Cli::parse_args(["haproxystats", "-p", "-P"]).is_err());
    }

    #[test]
    fn check_takes_its_thresholds() {
        let cli = parse(&[
            "haproxystats",
            "check",
            "--queue-warning",
            "5",
            "--age-critical=90",
            "--backlog-warning",
            "1000",
            "--backlog-warning",
            "kafka=50000",
            "-f",
            "x.conf",
        ]);
        let limit = |sink: Option<&str>, lines| SinkLimit {
            sink: sink.map(str::to_owned),
            lines,
        };
        assert_eq!(
            cli.command,
            Some(Command::Check(CheckArgs {
                queue_warning: Some(5),
                age_critical: Some(90),
                backlog_warning: vec![limit(None, 1000), limit(Some("kafka"), 50000)],
                ..CheckArgs::default()
            }))
        );
        for bad in ["kafka=", "=5", "x", "kafka=-1"] {
            let error = Cli::parse_args(["haproxystats", "check", "--backlog-critical", bad])
                .expect_err(bad)
                .to_string();
            assert!(error.contains("--backlog-critical"), "{bad}: {error}");
        }
        assert_eq!(cli.common.file, Some(PathBuf::from("x.conf")));
        assert!(Cli::parse_args(["haproxystats", "check", "--queue-warning", "-1"]).is_err());
    }

    #[test]
    fn lower_case_v_prints_the_version_like_the_original() {
        let error = Cli::parse_args(["haproxystats", "-v"]).err();
        assert_eq!(
            error.map(|e| e.kind()),
            Some(clap::error::ErrorKind::DisplayVersion)
        );
    }
}
