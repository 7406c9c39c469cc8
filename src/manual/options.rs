//! The configuration reference of the man page: what every option means,
//! written by hand here for the sections config reads itself, and by each
//! sink with a section of its own in its [`config::SinkSection`], with its
//! default taken from the program itself (the configuration `-p` prints),
//! so that `man haproxystats` and `haproxystats -p` cannot disagree. The
//! tests below fail when an option is added to the configuration without a
//! line here, or the other way round.

use crate::config::{self, SinkOptions};

/// One option of the configuration file.
#[derive(Debug, Clone, Copy)]
pub struct OptionDoc {
    /// The section, without brackets.
    pub section: &'static str,
    /// The option name.
    pub option: &'static str,
    /// What it means; `` `name` `` marks a name set in bold.
    pub text: &'static str,
    /// What happens when the option is not set, for options that have no
    /// value of their own in the rendered configuration; `None` for every
    /// option whose default the program prints.
    pub when_unset: Option<&'static str>,
}

/// The sections config reads itself, in the order of `-p`, with what
/// each one is for; the sinks' own sections go among the sinks', where
/// [`documented_sections`] puts them.
pub const SECTIONS: &[(&str, &str)] = &[
    ("paths", "Where haproxystats keeps its files."),
    (
        "pull",
        "The puller: every `pull-interval` it asks every HAProxy stats socket for `show info` \
         and `show stat` and writes the answers as one snapshot directory.",
    ),
    (
        "process",
        "The processors: each snapshot directory in `src-dir` is aggregated across HAProxy \
         processes, sent to every enabled sink, and removed once every sink has it.",
    ),
    (
        "graphite",
        "The Graphite sink: plaintext carbon lines over one TCP connection, with a bounded \
         backlog while Graphite is unreachable.",
    ),
    (
        "kafka",
        "Ours. Enabled when the section exists: every metric also goes to Kafka; with \
         `snapshots-topic`, raw snapshots go there too, for central processing. On \
         `haproxystats central` it describes the input (brokers, `snapshots-topic`), and \
         lines go to a Kafka topic only when `topic` is set. At start each Kafka sink says \
         in one line whether its topic exists; while one cannot deliver, `check` is CRITICAL \
         with the reason.",
    ),
    (
        "central",
        "Ours. The options of `haproxystats central`, which consumes the raw snapshots of \
         the `[kafka] snapshots-topic`.",
    ),
];

/// Every option of [`SECTIONS`], grouped by section in their order.
pub const OPTIONS: &[OptionDoc] = &[
    doc(
        "paths",
        "base-dir",
        "The root of the directory layout; the other directories default to places \
         under it, and the status file `haproxystats.status` that `haproxystats check` \
         reads is written there.",
    ),
    // [pull]
    doc(
        "pull",
        "loglevel",
        "Log level of the puller: debug, info, warning, error or critical.",
    ),
    doc(
        "pull",
        "socket-dir",
        "Every UNIX socket directly in this directory is pulled (other files are ignored). \
         Empty: only `servers` are pulled.",
    ),
    unset(
        "pull",
        "servers",
        "More sources, comma separated: stats sockets `unix:///path` or `tcp://host:port`; \
         a master CLI `master:///path` (HAProxy -W -S: every current worker, pulled through \
         the master, up to `master-worker-limit`); an HTTP stats page \
         `http(s)://[user:pass@]host[:port]/path` (show stat only: no daemon metrics; \
         credentials never logged).",
        "none",
    ),
    doc(
        "pull",
        "retries",
        "Extra connection attempts after a failed one; -1 retries until the cycle times out.",
    ),
    doc(
        "pull",
        "timeout",
        "Seconds to wait for one connection attempt.",
    ),
    doc("pull", "interval", "Seconds between connection attempts."),
    doc(
        "pull",
        "pull-timeout",
        "Seconds a whole pull may take; the requests still pending then are cancelled and \
         the snapshot is not published. 0: no limit.",
    ),
    doc(
        "pull",
        "pull-interval",
        "Seconds between the starts of two pulls (a whole number: snapshot directories are \
         named by epoch second).",
    ),
    doc(
        "pull",
        "buffer-limit",
        "The largest answer accepted from a socket, in bytes.",
    ),
    doc(
        "pull",
        "dst-dir",
        "Where complete snapshots appear, one directory per pull.",
    ),
    doc(
        "pull",
        "tmp-dst-dir",
        "Where a snapshot is written before it is renamed into `dst-dir`; must be on the \
         same filesystem.",
    ),
    doc("pull", "workers", "Threads writing snapshot files."),
    doc(
        "pull",
        "queue-size",
        "Pulls are skipped, with a warning, while `dst-dir` holds this many snapshots (the \
         disk is protected when processing falls behind).",
    ),
    doc(
        "pull",
        "master-worker-limit",
        "The most workers pulled through one master CLI per pull (at most 4096), the lowest \
         relative numbers first; a master listing more is warned about (at most one line \
         per master every 10 s).",
    ),
    // [process]
    doc(
        "process",
        "loglevel",
        "Log level of everything that processes and sends.",
    ),
    doc(
        "process",
        "src-dir",
        "The directory watched for snapshots (the puller's `dst-dir`).",
    ),
    doc(
        "process",
        "workers",
        "Snapshots processed in parallel, one thread each: 1 to 1024.",
    ),
    unset(
        "process",
        "frontend-metrics",
        "Only these frontend metrics, space separated.",
        "all",
    ),
    unset(
        "process",
        "backend-metrics",
        "Only these backend metrics, space separated.",
        "all",
    ),
    unset(
        "process",
        "server-metrics",
        "Only these server metrics, space separated.",
        "all",
    ),
    unset(
        "process",
        "exclude-frontends",
        "A file with one frontend name per line; those frontends are skipped.",
        "none",
    ),
    unset(
        "process",
        "exclude-backends",
        "A file with one backend name per line; those backends and their servers are \
         skipped.",
        "none",
    ),
    doc(
        "process",
        "aggr-server-metrics",
        "Also send each server's metrics summed across all backends, under \
         `<prefix>.server.<name>`.",
    ),
    doc(
        "process",
        "per-process-metrics",
        "Also send the daemon metrics of each HAProxy process, under \
         `<prefix>.daemon.process.<id>`.",
    ),
    doc(
        "process",
        "calculate-percentages",
        "Also send the daemon's usage percentages (connections, connection rate, SSL \
         connections and SSL rate against their limits).",
    ),
    doc(
        "process",
        "liveness-check-interval",
        "Accepted for compatibility and ignored, with a warning when it is not 10: the \
         supervisor checks its children every 250 ms.",
    ),
    doc(
        "process",
        "local",
        "Ours. false makes an edge: it pulls and publishes raw snapshots to `[kafka] \
         snapshots-topic` and processes nothing here.",
    ),
    // [graphite]
    doc(
        "graphite",
        "enabled",
        "Ours. false turns Graphite off; `[local-store]` or `[kafka]` must then be on.",
    ),
    doc("graphite", "server", "The carbon relay's host."),
    doc("graphite", "port", "The carbon relay's plaintext port."),
    doc(
        "graphite",
        "retries",
        "Reconnection attempts per round after a broken connection.",
    ),
    doc(
        "graphite",
        "interval",
        "Seconds before the first reconnection attempt of a round; multiplied by `backoff` \
         after each attempt.",
    ),
    doc(
        "graphite",
        "connect-timeout",
        "Seconds to wait for a connection.",
    ),
    doc(
        "graphite",
        "write-timeout",
        "Seconds a write may stall before the connection counts as broken.",
    ),
    unset(
        "graphite",
        "timeout",
        "Accepted and ignored, as by the original (`connect-timeout` and `write-timeout` \
         apply), with a warning.",
        "ignored",
    ),
    doc(
        "graphite",
        "delay",
        "Seconds between two rounds of reconnection attempts.",
    ),
    doc(
        "graphite",
        "backoff",
        "The factor applied to `interval` after each attempt.",
    ),
    doc(
        "graphite",
        "namespace",
        "The first elements of every path: names (see Names above) between dots.",
    ),
    doc(
        "graphite",
        "prefix-hostname",
        "Put the host name after the namespace.",
    ),
    doc(
        "graphite",
        "fqdn",
        "Use the full host name (dots become underscores) rather than the short one.",
    ),
    doc(
        "graphite",
        "queue-size",
        "Lines kept while Graphite is unreachable; when full, the oldest are dropped and \
         counted (`GraphiteDroppedLines`).",
    ),
    doc(
        "graphite",
        "replay-bytes",
        "Ours. The last bytes written are sent again after a broken connection (plaintext \
         carbon acknowledges nothing); also the memory this takes.",
    ),
    unset(
        "graphite",
        "group-namespace",
        "With groups declared: a frontend, backend or server whose name matches a group is \
         written under `<prefix>.<group-namespace>.<group>` instead of `<prefix>`; names \
         between dots, as `namespace`.",
        "none; required with group sections",
    ),
    doc(
        "graphite",
        "group-namespace-double-writes",
        "Write grouped names under both paths.",
    ),
    // [kafka]
    unset(
        "kafka",
        "brokers",
        "The brokers, `host:port[,host:port...]`.",
        "none; required",
    ),
    doc(
        "kafka",
        "topic",
        "The topic of the metrics (1 to 249 of `a-z A-Z 0-9 . _ -`, not `.` or `..`, as for \
         every topic option). On `haproxystats central` lines go there only when it is set.",
    ),
    doc(
        "kafka",
        "format",
        "graphite (whole plaintext lines per message) or influx (InfluxDB line protocol).",
    ),
    unset(
        "kafka",
        "key",
        "The message key: one load balancer's messages stay in order on one partition.",
        "the host name of the Graphite prefix",
    ),
    doc(
        "kafka",
        "snapshot-fields",
        "Which `show stat` columns raw snapshots carry: `engine`, every column the engine \
         reads under any options plus names and statuses (about half the fields), or `all`, \
         every column.",
    ),
    doc(
        "kafka",
        "snapshot-compression",
        "How raw snapshots' buffers are compressed (Arrow IPC buffer compression): `lz4` (the \
         least CPU in all, edge and central, for about 0.4 of the CSV's bytes), `zstd` or \
         `zstd:<level>` (-7 to 22; level 1: 0.27 of the bytes for about a tenth more CPU) or \
         `none`. Central reads every codec whatever this says, so edges can change it one by \
         one (BENCHMARKS.md, \"Buffer codecs\").",
    ),
    doc(
        "kafka",
        "message-max-bytes",
        "The largest message, key and overhead included; a message never splits a line. \
         Checked at start against librdkafka's bounds (`librdkafka.message.max.bytes`, \
         `queue.buffering.max.kbytes`, `receive.message.max.bytes`: 100000000 unless raised). \
         A message the broker refuses for its size is split, a single line dropped and counted.",
    ),
    doc("kafka", "compression", "none, gzip, snappy, lz4 or zstd."),
    doc(
        "kafka",
        "queue-size",
        "Lines kept while the broker is unreachable; when full, the oldest are dropped and \
         counted (`KafkaDroppedLines`).",
    ),
    doc(
        "kafka",
        "message-timeout",
        "Seconds librdkafka tries to deliver one message.",
    ),
    unset(
        "kafka",
        "snapshots-topic",
        "Raw snapshots (Arrow IPC) go to this topic, for `haproxystats central`.",
        "none: off",
    ),
    doc(
        "kafka",
        "cluster",
        "The cluster this load balancer belongs to (the `cluster` header of raw snapshots); \
         a name (see Names above), as central requires.",
    ),
    unset(
        "kafka",
        "lb-name",
        "The load balancer's name in raw snapshots (message key and `lb` header); a name \
         (see Names above), as central requires: a host name that is not one stops the edge \
         at start.",
        "the host name of the Graphite prefix",
    ),
    unset(
        "kafka",
        "librdkafka.NAME",
        "Any librdkafka option, passed on unchanged after ours (TLS, SASL); `acks=all` and \
         the idempotent producer are always on.",
        "none",
    ),
    // [central]
    doc(
        "central",
        "group-id",
        "The consumer group the central instances share.",
    ),
    unset(
        "central",
        "partials-topic",
        "Where partial aggregates go; created at start when missing.",
        "<snapshots-topic>.partials",
    ),
    unset(
        "central",
        "state-topic",
        "The compacted state topic of the cluster stage; created at start when missing.",
        "<snapshots-topic>.state",
    ),
    unset(
        "central",
        "workers",
        "Processing threads: 1 to 1024.",
        "[process] workers",
    ),
    doc(
        "central",
        "window",
        "Stage 2's window, whole seconds: a cluster's partials of `ts - ts % window` are merged \
         into one point per metric (a multiple of the edges' `pull-interval`).",
    ),
    doc(
        "central",
        "grace",
        "How long after its first partial a window waits for the load balancers that did not \
         report, seconds; applies only while the partition is caught up.",
    ),
    unset(
        "central",
        "lb-timeout",
        "A load balancer further than this behind its cluster's newest window is no longer \
         expected (`LoadBalancersExpected`), seconds.",
        "3 windows",
    ),
    doc(
        "central",
        "expected-windows",
        "Windows a cluster with no stored state is watched before the load balancers it saw \
         are trusted to be all of them (before, only `grace` closes its windows).",
    ),
    unset(
        "central",
        "max-clock-skew",
        "How far a snapshot's `ts` may be ahead of its message's timestamp (or of this host's \
         clock, when that is earlier) and still place its partial in the window of `ts`, seconds. \
         Further ahead (a clock far off, or a forged `ts`), the partial is placed by that time, \
         counted (`SkewedPartials`) and warned about; its per-LB lines are unaffected.",
        "2 windows",
    ),
    doc(
        "central",
        "partials-compression",
        "How the partials' buffers are compressed, as `[kafka] snapshot-compression`: `lz4` \
         (the least CPU to write in stage 1 and to read in stage 2), `zstd`, `zstd:<level>` or \
         `none`. Stage 2 reads every codec whatever this says.",
    ),
    doc(
        "central",
        "cluster-namespace",
        "Cluster lines go under `<namespace>.<cluster-namespace>.<cluster>.haproxy`; names \
         between dots, as `namespace`.",
    ),
];

/// A configuration that declares every section config reads itself that
/// is off by default, and sets what those sections require (and
/// `group-namespace`, which unlocks `group-namespace-double-writes`), so
/// that rendering it shows the default of every other option. The options
/// it sets have no default of their own: each has a `when_unset` text.
/// [`every_section`] adds the sinks' own sections.
const EVERY_SECTION: &str = "[graphite]\ngroup-namespace = groups\n[frontend-groups]\nweb = ^www\n\
                             [kafka]\nbrokers = kafka1:9092\n[central]\n";

/// [`EVERY_SECTION`] and every sink's own section, with what it requires.
fn every_section(sinks: &[SinkOptions]) -> String {
    let mut text = EVERY_SECTION.to_owned();
    for sink in sinks {
        if let SinkOptions::Own(section) = sink {
            text.push_str(&format!("[{}]\n{}", section.name(), section.required()));
        }
    }
    text
}

/// The sections in the order of `-p`, with what each one is for: those of
/// [`SECTIONS`], the sinks' (`sinks`, in their order) where `[graphite]` is.
pub fn documented_sections(sinks: &[SinkOptions]) -> Vec<(&'static str, &'static str)> {
    let core = |name: &str| {
        SECTIONS
            .iter()
            .find(|(section, _)| *section == name)
            .copied()
    };
    let mut sections = Vec::new();
    for &(name, about) in SECTIONS {
        if name == "graphite" {
            sections.extend(sinks.iter().filter_map(|sink| match sink {
                SinkOptions::Own(own) => Some((own.name(), own.about())),
                core_sink => core(core_sink.name()),
            }));
        } else if !sinks.iter().any(|sink| sink.name() == name) {
            sections.push((name, about));
        }
    }
    sections
}

/// Every option, grouped by section in the order of
/// [`documented_sections`]: [`OPTIONS`] and the sinks' own.
pub fn documented_options(sinks: &[SinkOptions]) -> Vec<OptionDoc> {
    let mut options = Vec::new();
    for (name, _) in documented_sections(sinks) {
        let own = sinks.iter().find_map(|sink| match sink {
            SinkOptions::Own(own) if own.name() == name => Some(*own),
            _ => None,
        });
        match own {
            Some(own) => options.extend(own.options().iter().map(|option| OptionDoc {
                section: own.name(),
                option: option.name,
                text: option.doc,
                when_unset: option.when_unset,
            })),
            None => options.extend(OPTIONS.iter().filter(|doc| doc.section == name)),
        }
    }
    options
}

const fn doc(section: &'static str, option: &'static str, text: &'static str) -> OptionDoc {
    OptionDoc {
        section,
        option,
        text,
        when_unset: None,
    }
}

const fn unset(
    section: &'static str,
    option: &'static str,
    text: &'static str,
    when_unset: &'static str,
) -> OptionDoc {
    OptionDoc {
        section,
        option,
        text,
        when_unset: Some(when_unset),
    }
}

/// `(section, option, value)` of every line of an INI text, commented
/// (`# key = value` under `# [kafka]`, as `-p` prints it) or not.
pub fn ini_values(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut values = Vec::new();
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let pair = line
            .split_once(" = ")
            .or_else(|| line.strip_suffix(" =").map(|option| (option, "")));
        // Prose in comments (`# ... as librdkafka.<name> = value`) is no option.
        if let Some((option, value)) = pair.filter(|(option, _)| !option.contains(' ')) {
            values.push((section.clone(), option.to_owned(), value.to_owned()));
        }
    }
    values
}

/// The defaults the program prints for the options [`every_section`] does
/// not set: `(section, option, value)`, empty values left out.
fn printed_defaults(
    sinks: &[SinkOptions],
) -> Result<Vec<(String, String, String)>, config::ConfigError> {
    let every_section = every_section(sinks);
    let set_here = ini_values(&every_section);
    let mut rendered = ini_values(&config::load_str(&every_section, sinks)?.config.to_ini());
    rendered.retain(|(section, option, value)| {
        !value.is_empty() && !set_here.iter().any(|(s, o, _)| s == section && o == option)
    });
    Ok(rendered)
}

/// The default shown for every option, from the program's own rendering or,
/// for options without a value of their own, the `when_unset` text: `(doc,
/// default)` in the order of [`documented_options`].
pub fn with_defaults(
    sinks: &[SinkOptions],
) -> Result<Vec<(OptionDoc, String)>, config::ConfigError> {
    let printed = printed_defaults(sinks)?;
    Ok(documented_options(sinks)
        .into_iter()
        .map(|doc| {
            let value = printed
                .iter()
                .find(|(section, option, _)| section == doc.section && option == doc.option)
                .map(|(_, _, value)| value.as_str())
                .or(doc.when_unset)
                .unwrap_or_default();
            (doc, value.to_owned())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sinks() -> Vec<SinkOptions> {
        crate::sink::options()
    }

    fn documented(section: &str, option: &str) -> bool {
        documented_options(&sinks())
            .iter()
            .any(|doc| doc.section == section && doc.option == option)
    }

    /// What the reader knows: [`config::KNOWN_OPTIONS`] and the sinks' own.
    fn known_options() -> Vec<(&'static str, Vec<&'static str>)> {
        let mut known: Vec<(&str, Vec<&str>)> = config::KNOWN_OPTIONS
            .iter()
            .map(|(section, options)| (*section, options.to_vec()))
            .collect();
        for sink in sinks() {
            if let SinkOptions::Own(own) = sink {
                known.push((own.name(), own.options().iter().map(|o| o.name).collect()));
            }
        }
        known
    }

    #[test]
    fn every_option_the_program_knows_is_documented_and_nothing_else() {
        let known_options = known_options();
        for (section, options) in &known_options {
            for option in options {
                assert!(
                    documented(section, option),
                    "[{section}] {option} has no man page entry"
                );
            }
        }
        for doc in documented_options(&sinks()) {
            let known = known_options
                .iter()
                .any(|(s, options)| *s == doc.section && options.contains(&doc.option));
            let passed_on =
                doc.section == "kafka" && doc.option.starts_with(config::LIBRDKAFKA_PREFIX);
            assert!(
                known || passed_on,
                "[{}] {} is documented but unknown",
                doc.section,
                doc.option
            );
        }
    }

    #[test]
    fn every_option_that_dash_p_prints_is_documented() {
        let printed = ini_values(&config::Config::defaults_with(&sinks()).to_ini());
        assert!(
            printed.len() > 40,
            "-p printed only {} options",
            printed.len()
        );
        for (section, option, _) in printed {
            assert!(
                documented(&section, &option),
                "-p prints [{section}] {option}, the man page lacks it"
            );
        }
    }

    #[test]
    fn every_option_has_exactly_one_default_the_printed_one_or_a_text() {
        let printed = match printed_defaults(&sinks()) {
            Ok(printed) => printed,
            Err(error) => panic!("the documentation configuration is invalid: {error}"),
        };
        for doc in documented_options(&sinks()) {
            let is_printed = printed
                .iter()
                .any(|(s, o, _)| s == doc.section && o == doc.option);
            assert!(
                is_printed != doc.when_unset.is_some(),
                "[{}] {}: printed default {is_printed}, hand-written {:?}: exactly one of them",
                doc.section,
                doc.option,
                doc.when_unset
            );
        }
    }

    #[test]
    fn defaults_are_the_ones_dash_p_prints() {
        let defaults = with_defaults(&sinks()).unwrap_or_default();
        let find = |section: &str, option: &str| {
            defaults
                .iter()
                .find(|(d, _)| d.section == section && d.option == option)
                .map(|(_, value)| value.clone())
        };
        for (section, option, value) in
            ini_values(&config::Config::defaults_with(&sinks()).to_ini())
        {
            if !value.is_empty() {
                assert_eq!(find(&section, &option), Some(value), "[{section}] {option}");
            }
        }
        assert_eq!(
            find("central", "group-id").as_deref(),
            Some("haproxystats-central")
        );
        assert_eq!(
            find("local-store", "dir").as_deref(),
            Some("/var/lib/haproxystats/local-store")
        );
    }

    #[test]
    fn sections_are_described_once_and_options_grouped_under_them() {
        let sections = documented_sections(&sinks());
        let mut last = 0;
        for doc in documented_options(&sinks()) {
            let index = sections.iter().position(|(name, _)| *name == doc.section);
            let Some(index) = index else {
                panic!("[{}] has no section description", doc.section)
            };
            assert!(
                index >= last,
                "[{}] {} is out of section order",
                doc.section,
                doc.option
            );
            last = index;
        }
    }

    #[test]
    fn ini_values_reads_plain_commented_and_empty_values() {
        let values = ini_values(
            "[a]\nx = 1\n\n# (any option as librdkafka.<name> = value):\n# [kafka]\n# key = \n# topic = t\n",
        );
        let want = [
            ("a", "x", "1"),
            ("kafka", "key", ""),
            ("kafka", "topic", "t"),
        ];
        let got: Vec<(&str, &str, &str)> = values
            .iter()
            .map(|(s, o, v)| (s.as_str(), o.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, want);
    }
}
