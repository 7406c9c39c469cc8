//! `[remote-write]` (ours): the section of the Prometheus remote-write
//! sink.

use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};

use crate::config::stats_url::{self, StatsUrl};
use crate::config::{ConfigError, IniWriter, Reader, SectionOption, SinkSection, format_seconds};

/// `max-samples-per-request` from 1 to this: a request of a million
/// samples is already ~60 MB before compression.
pub const MAX_SAMPLES_PER_REQUEST: usize = 1_000_000;

/// `timeout` from 1 s to this.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// `[remote-write]`: every snapshot's series pushed to a receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWriteConfig {
    /// `url`: where to POST (user-info, if any, becomes basic auth and is
    /// shown nowhere).
    pub url: StatsUrl,
    /// `timeout`: one request, from connecting to the answer's end.
    pub timeout: Duration,
    /// `queue-size`: samples waiting at most; a full backlog drops its
    /// oldest snapshots (counted).
    pub queue_size: usize,
    /// `max-samples-per-request`.
    pub max_samples_per_request: usize,
    /// `headers`: sent with every request, as written.
    pub headers: Vec<(String, String)>,
}

/// The section `[remote-write]`.
pub struct RemoteWriteSection;

impl SinkSection for RemoteWriteSection {
    type Value = RemoteWriteConfig;
    const NAME: &'static str = "remote-write";
    const ABOUT: &'static str = "Ours. Enabled when the section exists: every snapshot's series \
         (the names and labels of [prometheus], in central per load balancer and per cluster) \
         are pushed with Prometheus remote write 1.0 to Prometheus, VictoriaMetrics, Mimir or \
         Thanos, each snapshot acknowledged once the receiver took all of it.";
    const OPTIONS: &'static [SectionOption] = &[
        SectionOption {
            name: "url",
            default: None,
            doc: "Where to POST, http:// or https:// (TLS by OpenSSL with the system's trust \
                  store), e.g. http://127.0.0.1:9090/api/v1/write (Prometheus) or \
                  http://127.0.0.1:8428/api/v1/write (VictoriaMetrics). user:password@ in it \
                  is sent as basic auth and shown in no log line.",
            when_unset: Some("required: the section is refused without it"),
        },
        SectionOption {
            name: "timeout",
            default: Some("30"),
            doc: "Seconds (1 to 600) for one request, from connecting to the end of the \
                  answer; then it is sent again, as after a 5xx.",
            when_unset: None,
        },
        SectionOption {
            name: "queue-size",
            default: Some("10000000"),
            doc: "Samples waiting at most while the receiver is slow or down; a full backlog \
                  drops its oldest snapshots (counted in RemoteWriteDroppedSamples). In \
                  central consumption pauses instead and nothing is dropped.",
            when_unset: None,
        },
        SectionOption {
            name: "max-samples-per-request",
            default: Some("5000"),
            doc: "Samples in one request at most (1 to 1000000).",
            when_unset: None,
        },
        SectionOption {
            name: "headers",
            default: None,
            doc: "Headers sent with every request, `Name: value` pairs separated by `;`, e.g. \
                  `Authorization: Bearer TOKEN; X-Scope-OrgID: tenant1`. 5xx and 429 answers \
                  are retried with backoff (Retry-After honoured), any other non-2xx is counted \
                  in RemoteWriteRejected, logged once per cause and not retried.",
            when_unset: Some("none but the protocol's"),
        },
    ];
    const WHEN_OFF: Option<&'static str> = Some(
        "# [remote-write] is off; declare it with a url to push every snapshot with Prometheus remote write:\n",
    );
    const REQUIRED: &'static str = "url = http://127.0.0.1:9090/api/v1/write\n";

    fn read(section: &Reader<'_>) -> Result<RemoteWriteConfig, ConfigError> {
        let url_text = section.string("url")?;
        let url = stats_url::parse(&url_text).map_err(|error| {
            section.invalid("url", &stats_url::redact(&url_text), error.to_string())
        })?;
        let timeout = section.seconds("timeout")?;
        if !(Duration::from_secs(1)..=MAX_TIMEOUT).contains(&timeout) {
            return Err(section.invalid(
                "timeout",
                &format_seconds(timeout),
                format!("must be from 1 to {} seconds", MAX_TIMEOUT.as_secs()),
            ));
        }
        let queue_size = section.count("queue-size", 1)?;
        let max_samples_per_request = section.count("max-samples-per-request", 1)?;
        if max_samples_per_request > MAX_SAMPLES_PER_REQUEST {
            return Err(section.invalid(
                "max-samples-per-request",
                &max_samples_per_request.to_string(),
                format!("must be at most {MAX_SAMPLES_PER_REQUEST}"),
            ));
        }
        let headers_text = section.optional("headers")?.unwrap_or_default();
        let headers = parse_headers(&headers_text).map_err(|reason| {
            // The values may be secrets: only the names are quoted.
            section.invalid("headers", "(not shown)", reason)
        })?;
        if url.credentials.is_some()
            && headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        {
            return Err(section.invalid(
                "headers",
                "(not shown)",
                "an Authorization header and user:password@ in url: give one",
            ));
        }
        Ok(RemoteWriteConfig {
            url,
            timeout,
            queue_size,
            max_samples_per_request,
            headers,
        })
    }

    fn print(value: &RemoteWriteConfig, out: &mut IniWriter) {
        out.value("url", url_text(&value.url));
        out.seconds("timeout", value.timeout);
        out.value("queue-size", value.queue_size);
        out.value("max-samples-per-request", value.max_samples_per_request);
        let headers: Vec<String> = value
            .headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}"))
            .collect();
        if !headers.is_empty() {
            out.value("headers", headers.join("; "));
        }
    }
}

/// The URL as written, credentials included (`-p` prints what reads back).
fn url_text(url: &StatsUrl) -> String {
    let scheme = if url.tls { "https" } else { "http" };
    let auth = url.credentials.as_ref().map_or_else(String::new, |c| {
        format!(
            "{}:{}@",
            escape_userinfo(&c.user),
            escape_userinfo(&c.password)
        )
    });
    format!("{scheme}://{auth}{}{}", url.host_port(), url.path)
}

/// `%`-escapes what user-info cannot hold as is.
fn escape_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `Name: value; Name: value` → the pairs; each name an HTTP token, each
/// value a valid header value, no name twice. The reason never quotes a
/// value.
fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for pair in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = pair.split_once(':') else {
            return Err("each header is `Name: value`, separated by `;`".to_owned());
        };
        let (name, value) = (name.trim(), value.trim());
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("{name:?} is not a header name"));
        }
        if value.is_empty() || HeaderValue::from_str(value).is_err() {
            return Err(format!(
                "the value of {name} is empty or not a header value"
            ));
        }
        let reserved = ["content-type", "content-encoding", "content-length", "host"];
        if reserved.iter().any(|r| name.eq_ignore_ascii_case(r))
            || name.eq_ignore_ascii_case(super::wire::VERSION_HEADER.0)
        {
            return Err(format!("{name} is set by haproxystats"));
        }
        if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(format!("{name} is given twice"));
        }
        headers.push((name.to_owned(), value.to_owned()));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Option<RemoteWriteConfig>, String> {
        crate::config::load_str(text, &crate::sink::options())
            .map(|loaded| loaded.config.sinks.get::<RemoteWriteSection>().cloned())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_section_with_a_url_takes_the_defaults() {
        let config = load("[remote-write]\nurl = http://vm:8428/api/v1/write\n")
            .expect("valid")
            .expect("on");
        assert_eq!(config.url.host_port(), "vm:8428");
        assert_eq!(config.url.path, "/api/v1/write");
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(config.queue_size, 10_000_000);
        assert_eq!(config.max_samples_per_request, 5000);
        assert!(config.headers.is_empty());
        assert_eq!(load("").expect("valid"), None);
    }

    #[test]
    fn bad_values_are_one_line_naming_section_option_and_value_but_no_secret() {
        for (text, shown) in [
            ("", "[remote-write] url"),
            ("url = ftp://x/", "[remote-write] url = 'ftp://x/'"),
            (
                "url = https://u:s3cret@/w",
                "[remote-write] url = 'https://***@/w'",
            ),
            (
                "url = http://a/w\ntimeout = 0",
                "[remote-write] timeout = '0'",
            ),
            (
                "url = http://a/w\ntimeout = 601",
                "[remote-write] timeout = '601'",
            ),
            (
                "url = http://a/w\nqueue-size = 0",
                "[remote-write] queue-size = '0'",
            ),
            (
                "url = http://a/w\nmax-samples-per-request = 1000001",
                "[remote-write] max-samples-per-request = '1000001'",
            ),
            (
                "url = http://a/w\nheaders = X-A s3cret",
                "[remote-write] headers",
            ),
            (
                "url = http://u:s3cret@a/w\nheaders = Authorization: Bearer s3cret",
                "an Authorization header and user:password@",
            ),
        ] {
            let message = load(&format!("[remote-write]\n{text}\n")).expect_err(text);
            assert!(message.contains(shown), "{text}: {message}");
            assert!(!message.contains('\n'), "{message}");
            assert!(!message.contains("s3cret"), "{message}");
        }
    }

    #[test]
    fn headers_are_name_value_pairs_and_their_values_are_never_quoted() {
        assert_eq!(
            parse_headers("Authorization: Bearer s3cret; X-Scope-OrgID: t1;").expect("valid"),
            vec![
                ("Authorization".to_owned(), "Bearer s3cret".to_owned()),
                ("X-Scope-OrgID".to_owned(), "t1".to_owned())
            ]
        );
        assert_eq!(parse_headers("").expect("valid"), vec![]);
        for (bad, reason) in [
            ("Authorization Bearer s3cret", "Name: value"),
            ("Bad Name: s3cret", "not a header name"),
            ("X-A: ", "empty"),
            ("X-A: s3cret\u{7f}", "not a header value"),
            ("Content-Type: s3cret", "set by haproxystats"),
            ("X-A: s3cret; x-a: s3cret", "twice"),
        ] {
            let error = parse_headers(bad).expect_err(bad);
            assert!(error.contains(reason), "{bad}: {error}");
            assert!(!error.contains("s3cret"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_url_prints_back_as_it_reads() {
        for text in [
            "http://127.0.0.1:8428/api/v1/write",
            "https://us%40r:p%3Ass@mimir.example:443/api/v1/push",
        ] {
            let url = stats_url::parse(text).expect("valid");
            assert_eq!(stats_url::parse(&url_text(&url)).expect("reads back"), url);
        }
    }
}
