//! The `haproxystats` binary: parse the command line, load and validate the
//! configuration, set up logging, run the chosen command.
//!
//! Exit codes: 0 success, 1 a command failed at run time, 2 bad command line
//! or configuration (one line on stderr naming what and where). `check` is a
//! Nagios plugin and exits 0/1/2/3 by Nagios' rules: for it a bad command
//! line or configuration is 3 (UNKNOWN), with the reason on stdout.

use std::io::Write;
use std::process::ExitCode;

use haproxystats::cli::{Cli, Command};
use haproxystats::config::{self, Config, ConfigSources, LoadedConfig};
use haproxystats::logging::{self, Halves, LogStream};
use haproxystats::{commands, replay};

const EXIT_RUNTIME: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(dir) = haproxystats::manual::requested_dir(&args) {
        return generate_assets(dir);
    }
    let cli = match Cli::parse_args(args.iter().cloned()) {
        Ok(cli) => cli,
        Err(error) if error.use_stderr() && commands::check::is_check_invocation(&args) => {
            let rendered = error.render().to_string();
            let first = rendered.lines().next().unwrap_or("bad command line");
            return commands::check::unknown(first.trim_start_matches("error: "));
        }
        Err(error) => {
            // clap prints help and version itself and exits 0 for them.
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if cli.common.print {
        return print(&Config::defaults_with(&haproxystats::sink::options()).to_ini());
    }
    let sources = ConfigSources {
        file: cli
            .common
            .file
            .clone()
            .unwrap_or_else(|| haproxystats::config::DEFAULT_CONFIG_FILE.into()),
        file_is_explicit: cli.common.file.is_some(),
        dir: cli.common.dir.clone(),
    };
    let LoadedConfig { config, warnings } =
        match config::load(&sources, &haproxystats::sink::options()) {
            Ok(loaded) => loaded,
            Err(error) if matches!(cli.command, Some(Command::Check(_))) => {
                return commands::check::unknown(&error.to_string());
            }
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
    // What only `central` needs ([kafka] snapshots-topic, topics of its
    // own) is checked here, before logging starts, like the rest of the
    // configuration: a refusal is one line on stderr, with `-P` as without.
    let central = match &cli.command {
        Some(Command::Central) => match config::resolve_central(&config) {
            Ok(settings) => Some(settings),
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
        _ => None,
    };
    if cli.common.print_conf {
        // stdout must stay valid INI: warnings go to stderr.
        for warning in &warnings {
            eprintln!("warning: {warning}");
        }
        return print(&config.to_ini());
    }
    run(cli.command, central, &config, &warnings)
}

/// `central` is `[central]` resolved when the command is `central`.
fn run(
    command: Option<Command>,
    central: Option<config::CentralSettings>,
    config: &Config,
    warnings: &[config::ConfigWarning],
) -> ExitCode {
    let (halves, stream) = match &command {
        None => (Halves::Both, LogStream::Stdout),
        Some(Command::Pull) => (Halves::Pull, LogStream::Stdout),
        Some(Command::Process) | Some(Command::Central) => (Halves::Process, LogStream::Stdout),
        Some(Command::Replay { .. }) => (Halves::Process, LogStream::Stderr),
        // A Nagios plugin: no logging, one line on stdout, the state as exit code.
        Some(Command::Check(args)) => return commands::check::run(config, args),
    };
    if let Err(error) = logging::init(config, halves, stream) {
        eprintln!("{error}");
        return ExitCode::from(EXIT_USAGE);
    }
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let hostname = gethostname::gethostname().to_string_lossy().into_owned();
    let outcome = match command {
        None => commands::daemon::run(config, &hostname, true),
        Some(Command::Process) => commands::daemon::run(config, &hostname, false),
        Some(Command::Pull) => commands::pull::run(config),
        Some(Command::Central) => match central {
            Some(settings) => commands::central::run(config, settings, &hostname),
            // main() resolves it for `central`; kept total without a panic path.
            None => return ExitCode::from(EXIT_USAGE),
        },
        Some(Command::Replay { dirs }) => return run_replay(config, &hostname, &dirs),
        // Handled before logging was set up; kept total without a panic path.
        Some(Command::Check(args)) => return commands::check::run(config, &args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ commands::CommandError::Unusable(_)) => {
            tracing::error!("{error}");
            eprintln!("{error}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("{error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Exit 0 only when every directory was processed.
fn run_replay(config: &Config, hostname: &str, dirs: &[std::path::PathBuf]) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    match replay::run(config, hostname, dirs, &mut out) {
        Ok(summary) if summary.failed == 0 => ExitCode::SUCCESS,
        Ok(summary) => {
            eprintln!(
                "replay: {} of {} directories failed",
                summary.failed,
                summary.failed + summary.processed
            );
            ExitCode::from(EXIT_RUNTIME)
        }
        Err(error) => {
            eprintln!("replay: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// The packaging hook (contrib/deb/build.sh): man pages and completions.
fn generate_assets(dir: &std::path::Path) -> ExitCode {
    match haproxystats::manual::write_assets(dir) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn print(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cannot write to stdout: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// glibc gives each thread that allocates its own malloc arena (up to 8 per
/// core) and returns freed memory from them reluctantly: with ~30 threads
/// (arbiters, processors, the blocking pool) the soak saw RssAnon creep up
/// by ~12 KB/s for 10 minutes; with two arenas it stays flat
/// (BENCHMARKS.md, "Soak"). The mmap threshold is pinned at its default,
/// 128 KiB: glibc would otherwise raise it as big blocks are freed, and
/// every big buffer of a cycle would then stay in the heaps — 170 MB
/// resident between cycles on bench/cpu.sh. The chunks of a snapshot's lines
/// are kept apart, by a pool bounded to one snapshot's worth
/// (sink/chunk_pool.rs). Done here, before any thread exists, so that it
/// holds however the binary is started (systemd or not).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; it is called before any
    // other thread exists, and a failure (return 0) just keeps the default.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
