//! The command line (SPEC §1).
//!
//! One binary with subcommands; invoked as `haproxystats-pull` or
//! `haproxystats-process` (a symlink, as the original's two programs were
//! named) it behaves as the matching subcommand, so existing systemd units and
//! scripts keep working.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::{ArgAction, Args, Parser, Subcommand};

/// Where the configuration is read from unless `-f` says otherwise.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/haproxystats.conf";

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
    /// Process snapshot directories once and print the Graphite lines to
    /// stdout; deletes nothing
    Replay {
        /// Snapshot directories (named by their epoch timestamp)
        #[arg(value_name = "DIR", required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Nagios-style health check: exit 0/1/2/3 and one status line
    Check,
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
    fn replay_needs_a_directory() {
        assert!(Cli::parse_args(["haproxystats", "replay"]).is_err());
    }

    #[test]
    fn print_and_print_conf_exclude_each_other() {
        assert!(Cli::parse_args(["haproxystats", "-p", "-P"]).is_err());
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
