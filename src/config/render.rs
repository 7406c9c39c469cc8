//! The typed configuration back to INI (`-p`, `-P`): every option with its
//! effective value, `$` written as `$$`, so that reading the output with
//! `-f` gives the same configuration again — but for the credentials of an
//! HTTP stats page in `servers`, which are printed as `***`: this output
//! goes to terminals, tickets and logs.

use std::fmt::Write;
use std::time::Duration;

use super::model::*;
use super::raw::RawConfig;
use super::section::SinkOptions;

impl Config {
    /// The configuration without any file: the built-in defaults.
    pub fn defaults() -> Config {
        Config::defaults_with(&[])
    }

    /// The configuration without any file, read with the sinks' sections
    /// `sinks` (`-p`: every sink's defaults are printed).
    pub fn defaults_with(sinks: &[SinkOptions]) -> Config {
        // The built-in table is constant and covered by a unit test, and a
        // sink's section is off unless declared; a failure here is a bug
        // in this file, not bad input.
        super::build::build(&RawConfig::builtin(sinks), sinks)
            .map(|(config, _)| config)
            .expect("the built-in defaults are a valid configuration")
    }

    /// The configuration as INI text that `-f` reads back to the same value
    /// (stats page credentials aside: `***`).
    pub fn to_ini(&self) -> String {
        let mut out = IniWriter::default();
        out.section("paths");
        out.path("base-dir", &self.paths.base_dir);

        let p = &self.pull;
        out.section("pull");
        out.value("loglevel", p.loglevel);
        match &p.socket_dir {
            Some(dir) => out.path("socket-dir", dir),
            None => out.value("socket-dir", ""),
        }
        if p.servers.is_empty() {
            out.commented_servers();
        } else {
            let servers: Vec<String> = p.servers.iter().map(ToString::to_string).collect();
            out.value("servers", servers.join(","));
        }
        out.value("retries", p.retries);
        out.seconds("timeout", p.timeout);
        out.seconds("interval", p.interval);
        out.seconds("pull-timeout", p.pull_timeout.unwrap_or(Duration::ZERO));
        out.value("pull-interval", p.pull_interval.as_secs());
        out.value("buffer-limit", p.buffer_limit);
        out.path("dst-dir", &p.dst_dir);
        out.path("tmp-dst-dir", &p.tmp_dst_dir);
        out.value("workers", p.workers);
        out.value("queue-size", p.queue_size);
        out.value("master-worker-limit", p.master_worker_limit);

        let pr = &self.process;
        out.section("process");
        out.value("loglevel", pr.loglevel);
        out.path("src-dir", &pr.src_dir);
        out.value("workers", pr.workers);
        for (option, selection) in [
            ("frontend-metrics", &pr.frontend_metrics),
            ("backend-metrics", &pr.backend_metrics),
            ("server-metrics", &pr.server_metrics),
        ] {
            if selection.explicit {
                let names: Vec<&str> = selection.metrics.iter().map(|m| m.name).collect();
                out.value(option, names.join(" "));
            }
        }
        if let Some(file) = &pr.exclude_frontends {
            out.path("exclude-frontends", file);
        }
        if let Some(file) = &pr.exclude_backends {
            out.path("exclude-backends", file);
        }
        out.value("aggr-server-metrics", pr.aggr_server_metrics);
        out.value("per-process-metrics", pr.per_process_metrics);
        out.value("calculate-percentages", pr.calculate_percentages);
        out.seconds("liveness-check-interval", pr.liveness_check_interval);
        out.value("local", pr.local);

        for sink in self.sinks.sections() {
            match sink {
                SinkOptions::Graphite => self.graphite.print(&mut out),
                SinkOptions::Kafka => match &self.kafka {
                    Some(kafka) => kafka.print(&mut out),
                    None => out.commented_kafka_defaults(),
                },
                SinkOptions::Own(section) => match self.sinks.value(section.name()) {
                    Some(value) => {
                        out.section(section.name());
                        section.print(value, &mut out);
                    }
                    None => {
                        if let Some(why) = section.when_off() {
                            let defaults = section
                                .options()
                                .iter()
                                .filter_map(|option| Some((option.name, option.default?)));
                            out.commented_defaults(section.name(), why, defaults);
                        }
                    }
                },
            }
        }
        if let Some(central) = &self.central {
            out.section("central");
            out.value("group-id", &central.group_id);
            out.value(
                "partials-topic",
                central.partials_topic.as_deref().unwrap_or(""),
            );
            out.value("state-topic", central.state_topic.as_deref().unwrap_or(""));
            match central.workers {
                Some(workers) => out.value("workers", workers),
                None => out.value("workers", ""),
            }
            out.value("window", central.window);
            out.value("grace", central.grace.as_secs_f64());
            // Empty: 3 windows, whatever `window` is.
            match central.lb_timeout {
                Some(timeout) => out.value("lb-timeout", timeout.as_secs_f64()),
                None => out.value("lb-timeout", ""),
            }
            out.value("expected-windows", central.expected_windows);
            // Empty: 2 windows, whatever `window` is.
            match central.max_clock_skew {
                Some(skew) => out.value("max-clock-skew", skew.as_secs_f64()),
                None => out.value("max-clock-skew", ""),
            }
            out.value("cluster-namespace", &central.cluster_namespace);
            out.value("partials-compression", central.partials_compression);
        }
        for (section, groups) in [
            ("frontend-groups", &self.groups.frontend),
            ("backend-groups", &self.groups.backend),
            ("server-groups", &self.groups.server),
        ] {
            if !groups.is_empty() {
                out.section(section);
                for group in groups {
                    out.value(&group.name, group.pattern.as_str());
                }
            }
        }
        out.text
    }
}

impl GraphiteConfig {
    /// `[graphite]` as `-p` prints it.
    fn print(&self, out: &mut IniWriter) {
        out.section("graphite");
        out.value("enabled", self.enabled);
        out.value("server", &self.server);
        out.value("port", self.port);
        out.value("retries", self.retries);
        out.seconds("interval", self.interval);
        out.seconds("connect-timeout", self.connect_timeout);
        out.seconds("write-timeout", self.write_timeout);
        out.seconds("delay", self.delay);
        out.value("backoff", self.backoff);
        out.value("namespace", &self.namespace);
        out.value("prefix-hostname", self.prefix_hostname);
        out.value("fqdn", self.fqdn);
        out.value("queue-size", self.queue_size);
        out.value("replay-bytes", self.replay_bytes);
        if let Some(ns) = &self.group_namespace {
            out.value("group-namespace", ns);
            out.value(
                "group-namespace-double-writes",
                self.group_namespace_double_writes,
            );
        }
    }
}

impl KafkaConfig {
    /// `[kafka]` as `-p` prints it.
    fn print(&self, out: &mut IniWriter) {
        out.section("kafka");
        out.value("brokers", &self.brokers);
        if self.topic_set {
            out.value("topic", &self.topic);
        } else {
            // Printed as a comment so that reading this back leaves
            // it unset: central would otherwise start sending.
            out.commented_topic(&self.topic);
        }
        out.value("format", self.format);
        out.value("key", self.key.as_deref().unwrap_or(""));
        out.value("message-max-bytes", self.message_max_bytes);
        out.value("compression", self.compression);
        out.value("queue-size", self.queue_size);
        out.value("message-timeout", format_seconds(self.message_timeout));
        out.value(
            "snapshots-topic",
            self.snapshots_topic.as_deref().unwrap_or(""),
        );
        out.value("cluster", &self.cluster);
        out.value("lb-name", self.lb_name.as_deref().unwrap_or(""));
        out.value("snapshot-fields", self.snapshot_fields);
        out.value("snapshot-compression", self.snapshot_compression);
        for (name, value) in &self.librdkafka {
            out.value(&format!("{}{name}", super::kafka::LIBRDKAFKA_PREFIX), value);
        }
    }
}

/// Seconds as the shortest exact decimal (`0.1`, `1.8`, `10`): the value a
/// user would write, and one that parses back to the same `Duration`.
pub fn format_seconds(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        return d.as_secs().to_string();
    }
    let fraction = format!("{nanos:09}");
    format!("{}.{}", d.as_secs(), fraction.trim_end_matches('0'))
}

/// A configuration written as INI text: a sink's section prints its
/// options with it ([`super::SinkSection::print`]).
#[derive(Default)]
pub struct IniWriter {
    text: String,
}

impl IniWriter {
    fn section(&mut self, name: &str) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        let _ = writeln!(self.text, "[{name}]");
    }

    /// `option = value`, `$` written as `$$`.
    pub fn value(&mut self, option: &str, value: impl std::fmt::Display) {
        let value = value.to_string().replace('$', "$$");
        let _ = writeln!(self.text, "{option} = {value}");
    }

    /// `[kafka]` is off unless declared: its defaults are shown as comments,
    /// so that `-p` documents them and its output still reads back as is.
    fn commented_kafka_defaults(&mut self) {
        self.commented_defaults(
            "kafka",
            "# [kafka] is off; declare it, with brokers, to send every metric to Kafka too\n\
             # (any librdkafka option as librdkafka.<name> = value). On `haproxystats central`\n\
             # it describes the input (brokers, snapshots-topic), and lines go to a Kafka\n\
             # topic only when topic is set:\n",
            super::raw::builtin_section("kafka"),
        );
    }

    /// `[kafka] topic` left to its default: a node sends its lines there,
    /// `haproxystats central` sends none to Kafka.
    fn commented_topic(&mut self, topic: &str) {
        let _ = writeln!(
            self.text,
            "# topic is not set: a node sends its lines to this default, haproxystats central none to Kafka\n\
             # topic = {}",
            topic.replace('$', "$$")
        );
    }

    /// A section that is off unless declared: `why` (comment lines), then
    /// its defaults as comments.
    fn commented_defaults<'a>(
        &mut self,
        section: &str,
        why: &str,
        defaults: impl Iterator<Item = (&'a str, &'a str)>,
    ) {
        self.text.push('\n');
        self.text.push_str(why);
        let _ = writeln!(self.text, "# [{section}]");
        for (option, value) in defaults {
            let _ = writeln!(self.text, "# {option} = {value}");
        }
    }

    /// `servers` is empty unless set: its forms are shown as comments.
    fn commented_servers(&mut self) {
        self.text.push_str(
            "# servers: comma-separated sources pulled besides socket-dir's, e.g.\n\
             #   unix:///run/haproxy/admin.sock, tcp://10.0.0.1:5555,\n\
             #   master:///run/haproxy-master.sock   (HAProxy -W -S: every current worker, through its master)\n\
             #   https://user:password@lb1:8404/stats   (a stats page: show stat only, no daemon metrics)\n",
        );
    }

    /// A path, as [`IniWriter::value`].
    pub fn path(&mut self, option: &str, path: &std::path::Path) {
        self.value(option, path.display());
    }

    /// Seconds, as [`format_seconds`] writes them.
    pub fn seconds(&mut self, option: &str, d: Duration) {
        self.value(option, format_seconds(d));
    }
}
