//! `[prometheus]` (ours): the section of the Prometheus endpoint sink.
//! Only the form of the values is checked here; whether the address can
//! be listened on is known when the daemon binds it, before anything
//! starts (exit 2).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::config::{ConfigError, IniWriter, Reader, SectionOption, SinkSection, format_seconds};

/// `max-connections` from 1 to this: a connection is a file descriptor,
/// and more than this many scrapers of one endpoint is a mistake.
pub const MAX_CONNECTIONS: usize = 16_384;

/// `write-timeout` from 1 s to this: a scrape that takes longer is of no
/// use to Prometheus (its `scrape_timeout` is at most the interval).
pub const MAX_WRITE_TIMEOUT: Duration = Duration::from_secs(600);

/// `[prometheus]`: the latest snapshot served to Prometheus.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusConfig {
    /// `listen`: `host:port` as written.
    pub listen: String,
    /// What `listen` resolved to at start; the first that can be bound is.
    pub addresses: Vec<SocketAddr>,
    /// `path`: the URL path of the metrics.
    pub path: String,
    /// `max-connections`: connections served at once; a new one takes the
    /// slot of the one idle the longest.
    pub max_connections: usize,
    /// `write-timeout`: an answer not read whole within this (a client
    /// that does not read) ends its connection.
    pub write_timeout: Duration,
}

/// The section `[prometheus]`.
pub struct PrometheusSection;

impl SinkSection for PrometheusSection {
    type Value = PrometheusConfig;
    const NAME: &'static str = "prometheus";
    const ABOUT: &'static str = "Ours. Enabled when the section exists: the latest snapshot (in \
         central: of each load balancer and cluster) is served in Prometheus' text format.";
    const OPTIONS: &'static [SectionOption] = &[
        SectionOption {
            name: "listen",
            default: Some("127.0.0.1:9101"),
            doc: "The address and port the endpoint listens on; taken at start (a port in use \
                  is one line, exit 2).",
            when_unset: None,
        },
        SectionOption {
            name: "path",
            default: Some("/metrics"),
            doc: "The path of the metrics page.",
            when_unset: None,
        },
        SectionOption {
            name: "max-connections",
            default: Some("256"),
            doc: "Connections served at once (1 to 16384). When all are taken, a new \
                  connection takes the slot of the one idle the longest (waiting for a \
                  request), else of the one writing an answer the longest, so that clients \
                  holding connections open never lock a scraper out.",
            when_unset: None,
        },
        SectionOption {
            name: "write-timeout",
            default: Some("30"),
            doc: "Seconds (1 to 600) to write an answer whole, from its first byte: a client \
                  that does not read its answer is disconnected. Raise it only for a large page \
                  over a slow link; Prometheus' own `scrape_timeout` gives up sooner anyway. A \
                  request head must arrive within 10 seconds (fixed).",
            when_unset: None,
        },
    ];
    const WHEN_OFF: Option<&'static str> =
        Some("# [prometheus] is off; declare it to serve the latest snapshot to Prometheus:\n");

    fn read(section: &Reader<'_>) -> Result<PrometheusConfig, ConfigError> {
        build(section)
    }

    fn print(value: &PrometheusConfig, out: &mut IniWriter) {
        out.value("listen", &value.listen);
        out.value("path", &value.path);
        out.value("max-connections", value.max_connections);
        out.seconds("write-timeout", value.write_timeout);
    }
}

fn build(r: &Reader<'_>) -> Result<PrometheusConfig, ConfigError> {
    let listen = r.string("listen")?;
    let addresses = resolve(&listen).map_err(|reason| r.invalid("listen", &listen, reason))?;
    let path = r.string("path")?;
    if !path.starts_with('/')
        || path.contains(|c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        return Err(r.invalid(
            "path",
            &path,
            "not a URL path (it starts with '/' and holds no blank, '?' or '#')",
        ));
    }
    let max_connections = r.count("max-connections", 1)?;
    if max_connections > MAX_CONNECTIONS {
        return Err(r.invalid(
            "max-connections",
            &max_connections.to_string(),
            format!("must be at most {MAX_CONNECTIONS}"),
        ));
    }
    let write_timeout = r.seconds("write-timeout")?;
    if !(Duration::from_secs(1)..=MAX_WRITE_TIMEOUT).contains(&write_timeout) {
        return Err(r.invalid(
            "write-timeout",
            &format_seconds(write_timeout),
            format!("must be from 1 to {} seconds", MAX_WRITE_TIMEOUT.as_secs()),
        ));
    }
    Ok(PrometheusConfig {
        listen,
        addresses,
        path,
        max_connections,
        write_timeout,
    })
}

/// `host:port` (`[v6]:port` for IPv6) to the addresses it names.
fn resolve(listen: &str) -> Result<Vec<SocketAddr>, String> {
    let Some((host, port)) = listen.rsplit_once(':') else {
        return Err("not host:port".to_owned());
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err("not host:port with a port from 0 to 65535".to_owned());
    }
    let addresses: Vec<SocketAddr> = listen
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve it: {error}"))?
        .collect();
    if addresses.is_empty() {
        return Err("resolves to no address".to_owned());
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::Config;

    fn load_str(text: &str) -> Result<crate::config::LoadedConfig, crate::config::ConfigError> {
        crate::config::load_str(text, &crate::sink::options())
    }

    fn section(config: &Config) -> Option<&super::PrometheusConfig> {
        config.sinks.get::<super::PrometheusSection>()
    }

    fn error(text: &str) -> String {
        load_str(text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn the_section_alone_listens_on_the_defaults() {
        let config = load_str("[prometheus]\n").expect("valid").config;
        let prometheus = section(&config).expect("on");
        assert_eq!(prometheus.listen, "127.0.0.1:9101");
        assert_eq!(prometheus.path, "/metrics");
        assert_eq!(prometheus.max_connections, 256);
        assert_eq!(prometheus.write_timeout, Duration::from_secs(30));
        assert_eq!(
            prometheus.addresses,
            ["127.0.0.1:9101".parse().expect("literal")]
        );
        assert!(section(&load_str("").expect("valid").config).is_none());
        let v6 = load_str("[prometheus]\nlisten = [::1]:9200\n")
            .expect("valid")
            .config;
        assert_eq!(
            section(&v6).expect("on").addresses,
            ["[::1]:9200".parse().expect("literal")]
        );
    }

    #[test]
    fn bad_values_are_one_line_naming_section_option_and_value() {
        for (text, option, value) in [
            ("listen = 9101", "listen", "9101"),
            ("listen = 127.0.0.1:port", "listen", "127.0.0.1:port"),
            ("listen = 127.0.0.1:70000", "listen", "127.0.0.1:70000"),
            ("listen = :9101", "listen", ":9101"),
            ("path = metrics", "path", "metrics"),
            ("path = /a b", "path", "/a b"),
            ("path = /m?x=1", "path", "/m?x=1"),
            ("max-connections = 0", "max-connections", "0"),
            ("max-connections = 16385", "max-connections", "16385"),
            ("max-connections = many", "max-connections", "many"),
            ("write-timeout = 0.5", "write-timeout", "0.5"),
            ("write-timeout = 601", "write-timeout", "601"),
            ("write-timeout = -1", "write-timeout", "-1"),
        ] {
            let message = error(&format!("[prometheus]\n{text}\n"));
            assert!(
                message.contains(&format!("[prometheus] {option} = '{value}'")),
                "{text}: {message}"
            );
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn print_shows_the_defaults_commented_and_print_conf_the_section() {
        let defaults = Config::defaults_with(&crate::sink::options()).to_ini();
        assert!(
            defaults.contains(
                "# [prometheus]\n# listen = 127.0.0.1:9101\n# path = /metrics\n\
                 # max-connections = 256\n# write-timeout = 30\n"
            ),
            "{defaults}"
        );
        let on = load_str("[prometheus]\nlisten = 0.0.0.0:9200\n").expect("valid");
        let text = on.config.to_ini();
        assert!(
            text.contains(
                "[prometheus]\nlisten = 0.0.0.0:9200\npath = /metrics\n\
                 max-connections = 256\nwrite-timeout = 30\n"
            ),
            "{text}"
        );
        assert_eq!(load_str(&text).expect("read back").config, on.config);
    }

    #[test]
    fn prometheus_alone_is_a_sink() {
        let config = load_str("[graphite]\nenabled = false\n[prometheus]\n")
            .expect("prometheus is a sink")
            .config;
        assert!(section(&config).is_some());
    }
}
