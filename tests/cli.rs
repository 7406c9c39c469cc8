//! The binary as users run it: exit codes, one-line errors, `-p`/`-P`,
//! argv[0] dispatch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_haproxystats");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    run_with_stdin(BIN, args, None)
}

fn run_with_stdin(
    program: impl AsRef<std::ffi::OsStr>,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    let mut child = spawn(program, args, Stdio::piped());
    if let Some(mut input) = child.stdin.take()
        && let Some(text) = stdin
    {
        input
            .write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("cannot write stdin: {e}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot wait for {BIN}: {e}"))
}

/// `program` started with `args`, stdout and stderr captured.
fn spawn(program: impl AsRef<std::ffi::OsStr>, args: &[&str], stdin: Stdio) -> Child {
    Command::new(program)
        .args(args)
        .env_remove("HAPROXYSTATS_LOG")
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn write_conf(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"))
}

#[test]
fn missing_explicit_file_exits_2_with_one_line() {
    let output = run(&["-f", "/nonexistent/missing.conf", "-P"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "one line expected, got: {err}");
    assert!(err.contains("/nonexistent/missing.conf"), "{err}");
    assert!(stdout(&output).is_empty());
}

#[test]
fn invalid_value_exits_2_naming_section_option_value_and_reason() {
    let dir = temp_dir();
    let conf = write_conf(dir.path(), "bad.conf", "[graphite]\nport = abc\n");
    let conf = conf.to_string_lossy();
    let output = run(&["-f", &conf, "-P"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        err.trim_end(),
        "invalid configuration: [graphite] port = 'abc': not an integer"
    );
}

#[test]
fn print_defaults_round_trips_through_print_conf() {
    let defaults = run(&["-p"]);
    assert_eq!(defaults.status.code(), Some(0), "{defaults:?}");
    let defaults_text = stdout(&defaults);
    assert!(defaults_text.contains("[graphite]"), "{defaults_text}");
    // Through a file: a pipe (`-f /dev/stdin`) is not a regular file and is
    // refused, as a FIFO without writer would block the start for good.
    let tmp = temp_dir();
    let file = write_conf(tmp.path(), "defaults.conf", &defaults_text);
    let reread = run(&["-f", file.to_str().unwrap(), "-P"]);
    assert_eq!(reread.status.code(), Some(0), "{reread:?}");
    assert_eq!(stdout(&reread), defaults_text);
}

#[test]
fn print_shows_every_kind_of_source_and_print_conf_no_credentials() {
    let defaults = stdout(&run(&["-p"]));
    for form in ["unix://", "tcp://", "master://", "https://"] {
        assert!(defaults.contains(form), "{form}: {defaults}");
    }
    let tmp = temp_dir();
    let file = write_conf(
        tmp.path(),
        "http.conf",
        "[pull]\nservers = master:///run/m.sock, http://admin:s3cret@lb1:8404/stats\n",
    );
    let output = run(&["-f", file.to_str().unwrap(), "-P"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let printed = stdout(&output);
    let servers = printed.lines().find(|l| l.starts_with("servers"));
    assert_eq!(
        servers,
        Some("servers = master:///run/m.sock,http://***@lb1:8404/stats")
    );
    assert!(!printed.contains("s3cret"), "{printed}");
}

#[test]
fn print_defaults_needs_no_configuration_file() {
    let output = run(&["-f", "/nonexistent/missing.conf", "-p"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stdout(&output).contains("port = 3002"));
}

#[test]
fn print_conf_shows_what_the_first_seed_example_means() {
    let conf = fixture("seed-example-1.conf");
    let output = run(&["-f", &conf.to_string_lossy(), "-P"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = stdout(&output);
    for expected in [
        "base-dir = /var/lib/haproxystats",
        "socket-dir = /run/haproxy",
        "dst-dir = /var/lib/haproxystats/incoming",
        "tmp-dst-dir = /var/lib/haproxystats/incoming.tmp",
        "timeout = 0.1",
        "pull-timeout = 2",
        "queue-size = 360",
        "src-dir = /var/lib/haproxystats/incoming",
        "port = 3002",
        "interval = 1.8",
        "namespace = loadbalancers",
        "queue-size = 1000000",
    ] {
        assert!(
            text.lines().any(|line| line == expected),
            "missing '{expected}' in:\n{text}"
        );
    }
    // `#[local-store]` is commented out in the example: not enabled.
    assert!(!text.contains("[local-store]"), "{text}");
}

#[test]
fn print_conf_shows_what_the_second_seed_example_means() {
    let conf = fixture("seed-example-2.conf");
    let output = run(&["-f", &conf.to_string_lossy(), "-P"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = stdout(&output);
    for expected in [
        "loglevel = debug",
        "pull-timeout = 10",
        "calculate-percentages = true",
        "per-process-metrics = true",
        "port = 39991",
        "interval = 0.8",
        "queue-size = 1000",
        "[local-store]",
    ] {
        assert!(
            text.lines().any(|line| line == expected),
            "missing '{expected}' in:\n{text}"
        );
    }
    // Warnings (prefix_hostname is not an option, [graphite] timeout is
    // ignored) go to stderr so that stdout stays valid INI.
    let err = stderr(&output);
    assert!(err.contains("prefix_hostname"), "{err}");
}

#[test]
fn conf_dir_files_are_read_after_the_file_in_sorted_order() {
    let dir = temp_dir();
    let main = write_conf(dir.path(), "main.conf", "[graphite]\nport = 1001\n");
    let conf_d = dir.path().join("conf.d");
    std::fs::create_dir(&conf_d).unwrap_or_else(|e| panic!("{e}"));
    write_conf(&conf_d, "20-later.conf", "[graphite]\nport = 1003\n");
    write_conf(
        &conf_d,
        "10-first.conf",
        "[graphite]\nport = 1002\nnamespace = ns\n",
    );
    write_conf(&conf_d, "ignored.txt", "[graphite]\nport = 9999\n");
    let output = run(&[
        "-f",
        &main.to_string_lossy(),
        "-d",
        &conf_d.to_string_lossy(),
        "-P",
    ]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = stdout(&output);
    assert!(text.lines().any(|l| l == "port = 1003"), "{text}");
    assert!(text.lines().any(|l| l == "namespace = ns"), "{text}");
}

/// `check` is a Nagios plugin: a configuration it cannot read is UNKNOWN (3)
/// on stdout, not 2 on stderr (tests/check.rs covers the plugin itself).
#[test]
fn check_reports_a_bad_configuration_as_nagios_unknown() {
    let output = run(&["-f", "/nonexistent/missing.conf", "check"]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let out = stdout(&output);
    assert!(out.starts_with("HAPROXYSTATS UNKNOWN - "), "{out}");
    assert!(out.contains("/nonexistent/missing.conf"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
}

/// A config whose directories cannot be created (they would sit under a
/// regular file), so that a command fails at start and names the option it
/// could not use: which option shows which command ran.
fn unusable_dirs_conf(dir: &Path) -> PathBuf {
    write_conf(
        dir,
        "unusable.conf",
        "[pull]\ndst-dir = /dev/null/incoming\ntmp-dst-dir = /dev/null/tmp\n\
         [process]\nsrc-dir = /dev/null/incoming\n",
    )
}

#[test]
fn program_name_selects_the_command() {
    let dir = temp_dir();
    let conf = unusable_dirs_conf(dir.path());
    let conf = conf.to_string_lossy();
    for (name, option) in [
        ("haproxystats-pull", "[pull] dst-dir"),
        ("haproxystats-process", "[process] src-dir"),
    ] {
        let link = dir.path().join(name);
        std::os::unix::fs::symlink(BIN, &link).unwrap_or_else(|e| panic!("{e}"));
        let output = run_with_stdin(&link, &["-f", &conf], None);
        assert_eq!(output.status.code(), Some(1), "{name}: {output:?}");
        let err = stderr(&output);
        assert!(
            err.contains("cannot start") && err.contains(option),
            "{name}: {err}"
        );
    }
}

#[test]
fn a_directory_that_cannot_be_used_stops_the_command_with_one_line() {
    let dir = temp_dir();
    let conf = unusable_dirs_conf(dir.path());
    let conf = conf.to_string_lossy();
    for (args, option) in [
        (vec!["-f", &*conf], "[pull] dst-dir"),
        (vec!["-f", &*conf, "process"], "[process] src-dir"),
        (vec!["-f", &*conf, "pull"], "[pull] dst-dir"),
    ] {
        let output = run(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {output:?}");
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(option), "{args:?}: {err}");
    }
}

#[test]
fn version_flags_print_the_version() {
    for flag in ["-V", "-v", "--version"] {
        let output = run(&[flag]);
        assert_eq!(output.status.code(), Some(0), "{flag}: {output:?}");
        assert_eq!(
            stdout(&output).trim_end(),
            format!("haproxystats {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn bad_command_line_exits_2() {
    let output = run(&["--no-such-flag"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let output = run(&["replay"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[test]
fn the_example_configuration_in_contrib_is_valid() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/haproxystats.conf");
    let output = run(&["-f", &conf.to_string_lossy(), "-P"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));
    // It documents the defaults: it must mean exactly what `-p` prints.
    assert_eq!(stdout(&output), stdout(&run(&["-p"])));
}

/// Issue 12 item 7: `-f /dev/zero` grew without bound and a FIFO blocked
/// forever; anything but a regular file of at most 1 MiB is refused at once.
#[test]
fn only_regular_files_of_sane_size_are_read_as_configuration() {
    let tmp = temp_dir();
    let fifo = tmp.path().join("fifo.conf");
    let status = Command::new("mkfifo").arg(&fifo).status();
    assert!(status.is_ok_and(|s| s.success()), "mkfifo failed");
    let big = tmp.path().join("big.conf");
    std::fs::write(&big, "#".repeat((1 << 20) + 1)).unwrap();
    let dir = tmp.path().to_str().unwrap().to_owned();
    for (file, reason) in [
        (
            "/dev/zero".to_owned(),
            "not a regular file (a character device)",
        ),
        (fifo.display().to_string(), "not a regular file (a FIFO)"),
        (dir, "not a regular file (a directory)"),
        (
            big.display().to_string(),
            "too large (more than 1048576 bytes)",
        ),
    ] {
        let mut child = Command::new(BIN)
            .args(["-f", &file, "-P"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > std::time::Duration::from_secs(10) {
                let _ = child.kill();
                panic!("{file}: still running after 10 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        assert_eq!(err.lines().count(), 1, "{file}: {err}");
        assert!(err.contains(&format!("{file}: {reason}")), "{file}: {err}");
    }
    // Exactly 1 MiB is still read.
    std::fs::write(&big, "#".repeat(1 << 20)).unwrap();
    let out = run(&["-f", big.to_str().unwrap(), "-P"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Runs the binary with `args`; kills it if it is still running after
/// `limit` (a refused configuration must stop it at once).
fn run_at_most(args: &[&str], limit: std::time::Duration) -> Option<Output> {
    let mut child = spawn(BIN, args, Stdio::null());
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().ok()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().ok()
}

/// Issue 24 item 8: an edge whose `lb-name` or `cluster` central would
/// refuse (`lb/1` published 12 snapshots central refused 12 of) is
/// refused at start, by `-P` and by the edge itself: exit 2, one line
/// naming section, option, value and reason.
#[test]
fn an_edge_refuses_at_start_the_names_central_refuses() {
    let dir = temp_dir();
    for (option, value, reason) in [
        ("lb-name", "lb/1", "must not hold '/'"),
        ("cluster", "eu/west", "must not hold '/'"),
        ("lb-name", "x;evil=1", "must not hold ';'"),
        ("cluster", "c;k=v", "must not hold ';'"),
    ] {
        let conf = write_conf(
            dir.path(),
            "edge.conf",
            &format!(
                "[paths]\nbase-dir = {}\n[process]\nlocal = false\n\
                 [kafka]\nbrokers = 127.0.0.1:9\nsnapshots-topic = snaps\n{option} = {value}\n",
                dir.path().display()
            ),
        );
        let conf = conf.to_string_lossy();
        for args in [
            vec!["-f", &*conf, "-P"],
            vec!["-f", &*conf],
            vec!["-f", &*conf, "process"],
        ] {
            let Some(output) = run_at_most(&args, std::time::Duration::from_secs(10)) else {
                panic!("{args:?} with {option} = {value} still running after 10 s");
            };
            assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
            let err = stderr(&output);
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            let want = format!("invalid configuration: [kafka] {option} = '{value}': {reason}");
            assert!(err.starts_with(&want), "{args:?}: {err}\nwant {want}…");
            assert!(stdout(&output).is_empty(), "{args:?}: {output:?}");
        }
    }
}

/// Issue 24 item 15: `central -P` checks what `central` checks, and either
/// refuses with one line on stderr (nothing on stdout: no log line copying
/// it), exit 2.
#[test]
fn central_print_conf_runs_centrals_own_checks_and_refuses_once() {
    let dir = temp_dir();
    let kafka = "[kafka]\nbrokers = 127.0.0.1:1\nsnapshots-topic = snaps\n";
    let cases = [
        ("no [kafka]", String::new(), "[kafka] brokers"),
        (
            "no snapshots-topic",
            "[kafka]\nbrokers = 127.0.0.1:1\n".to_owned(),
            "[kafka] snapshots-topic",
        ),
        (
            "partials topic = snapshots topic",
            format!("{kafka}[central]\npartials-topic = snaps\n"),
            "[central] partials-topic = 'snaps': is also [kafka] snapshots-topic",
        ),
        (
            "state topic = snapshots topic",
            format!("{kafka}[central]\nstate-topic = snaps\n"),
            "[central] state-topic = 'snaps': is also [kafka] snapshots-topic",
        ),
        (
            "a derived topic name too long",
            format!(
                "[kafka]\nbrokers = 127.0.0.1:1\nsnapshots-topic = {}\n",
                "s".repeat(245)
            ),
            "[central] partials-topic",
        ),
    ];
    for (name, text, expected) in cases {
        let conf = write_conf(dir.path(), "central.conf", &text);
        let conf = conf.to_string_lossy();
        for args in [
            vec!["-f", &*conf, "central", "-P"],
            vec!["-f", &*conf, "-P", "central"],
            vec!["-f", &*conf, "central"],
        ] {
            let output = run(&args);
            assert_eq!(output.status.code(), Some(2), "{name} {args:?}: {output:?}");
            let err = stderr(&output);
            assert_eq!(err.lines().count(), 1, "{name} {args:?}: {err}");
            assert!(err.contains(expected), "{name} {args:?}: {err}");
            assert_eq!(stdout(&output), "", "{name} {args:?}: printed twice");
        }
        // The configuration itself is fine for every other command.
        let output = run(&["-f", &conf, "-P"]);
        assert_eq!(output.status.code(), Some(0), "{name}: {output:?}");
    }
    // A configuration central takes: `central -P` prints it.
    let conf = write_conf(dir.path(), "central.conf", kafka);
    let output = run(&["-f", &conf.to_string_lossy(), "central", "-P"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stdout(&output).contains("snapshots-topic = snaps"));
}

/// Issue 24 item 6: on central `[kafka]` describes the input; `-p` and
/// `-P` say that lines go to a Kafka topic only when `topic` is set, and
/// `-P` keeps an unset topic unset (a comment) so that its output means
/// the same when read back.
#[test]
fn print_says_kafka_topic_is_for_central_only_when_set() {
    let defaults = stdout(&run(&["-p"]));
    assert!(
        defaults.contains("lines go to a Kafka\n# topic only when topic is set"),
        "{defaults}"
    );
    let dir = temp_dir();
    let conf = write_conf(
        dir.path(),
        "k.conf",
        "[kafka]\nbrokers = 127.0.0.1:1\nsnapshots-topic = snaps\n",
    );
    let printed = stdout(&run(&["-f", &conf.to_string_lossy(), "-P"]));
    assert!(
        printed.contains(
            "# topic is not set: a node sends its lines to this default, haproxystats central none to Kafka\n\
             # topic = haproxystats.metrics\n"
        ),
        "{printed}"
    );
    assert!(!printed.contains("\ntopic = "), "{printed}");
    let conf = write_conf(
        dir.path(),
        "k.conf",
        "[kafka]\nbrokers = 127.0.0.1:1\ntopic = haproxystats.metrics\n",
    );
    let printed = stdout(&run(&["-f", &conf.to_string_lossy(), "-P"]));
    assert!(
        printed.contains("\ntopic = haproxystats.metrics\n"),
        "{printed}"
    );
}
