//! `[prometheus]` (ours): the Prometheus endpoint sink. Only the form of
//! the values is checked here; whether the address can be listened on is
//! known when the daemon binds it, before anything starts (exit 2).

use std::net::{SocketAddr, ToSocketAddrs};

use super::build::Reader;
use super::error::ConfigError;
use super::model::PrometheusConfig;

/// The options of `[prometheus]`.
pub const OPTIONS: &[&str] = &["listen", "path"];

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
    Ok(PrometheusConfig {
        listen,
        addresses,
        path,
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
            defaults.contains("# [prometheus]\n# listen = 127.0.0.1:9101\n# path = /metrics\n"),
            "{defaults}"
        );
        let on = load_str("[prometheus]\nlisten = 0.0.0.0:9200\n").expect("valid");
        let text = on.config.to_ini();
        assert!(
            text.contains("[prometheus]\nlisten = 0.0.0.0:9200\npath = /metrics\n"),
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
