//! `[prometheus]` (ours): the Prometheus endpoint sink. Only the form of
//! the values is checked here; whether the address can be listened on is
//! known when the daemon binds it, before anything starts (exit 2).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::build::Reader;
use super::error::ConfigError;
use super::model::PrometheusConfig;

/// The options of `[prometheus]`.
pub const OPTIONS: &[&str] = &["listen", "path", "max-connections", "write-timeout"];

/// `max-connections` from 1 to this: a connection is a file descriptor,
/// and more than this many scrapers of one endpoint is a mistake.
pub const MAX_CONNECTIONS: usize = 16_384;

/// `write-timeout` from 1 s to this: a scrape that takes longer is of no
/// use to Prometheus (its `scrape_timeout` is at most the interval).
pub const MAX_WRITE_TIMEOUT: Duration = Duration::from_secs(600);

pub(super) fn build(r: &Reader<'_>) -> Result<PrometheusConfig, ConfigError> {
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
            &super::render::format_seconds(write_timeout),
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

    use crate::config::load_str;

    fn error(text: &str) -> String {
        load_str(text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn the_section_alone_listens_on_the_defaults() {
        let config = load_str("[prometheus]\n").expect("valid").config;
        let prometheus = config.prometheus.expect("on");
        assert_eq!(prometheus.listen, "127.0.0.1:9101");
        assert_eq!(prometheus.path, "/metrics");
        assert_eq!(prometheus.max_connections, 256);
        assert_eq!(prometheus.write_timeout, Duration::from_secs(30));
        assert_eq!(
            prometheus.addresses,
            ["127.0.0.1:9101".parse().expect("literal")]
        );
        assert!(load_str("").expect("valid").config.prometheus.is_none());
        let v6 = load_str("[prometheus]\nlisten = [::1]:9200\n")
            .expect("valid")
            .config;
        assert_eq!(
            v6.prometheus.expect("on").addresses,
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
        let defaults = crate::config::Config::defaults().to_ini();
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
        assert!(config.prometheus.is_some());
    }
}
