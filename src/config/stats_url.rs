//! `servers` entries for HTTP stats pages: `http://[user:pass@]host[:port]/path`
//! or `https://...` (HAProxy's `stats uri`, `stats auth`). Parsing is pure;
//! every way of showing a [`StatsUrl`] leaves its credentials out, so that
//! they reach no log line, no `-P` output and no file name.

use std::fmt;

/// A user name and password for HTTP basic authentication. Its `Debug`
/// shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name, percent-decoded.
    pub user: String,
    /// The password, percent-decoded.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

/// An HTTP stats page, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsUrl {
    /// `https://`.
    pub tls: bool,
    /// Host name or address (an IPv6 address without its brackets).
    pub host: String,
    /// The port given, or 80 / 443.
    pub port: u16,
    /// The path of the page, from `/`; `;csv` is appended to it.
    pub path: String,
    /// `user:pass@`, if given.
    pub credentials: Option<Credentials>,
}

impl StatsUrl {
    /// The CSV flavour of the page: HAProxy answers `<path>;csv` with the
    /// `show stat` CSV.
    pub fn csv_path(&self) -> String {
        format!("{};csv", self.path)
    }

    /// `host:port` (`[v6]:port`): the file-name prefix and the `Host` header.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The URL with `***` in place of any credentials: what logs and `-P` show.
impl fmt::Display for StatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        let auth = if self.credentials.is_some() {
            "***@"
        } else {
            ""
        };
        write!(f, "{scheme}://{auth}{}{}", self.host_port(), self.path)
    }
}

/// Why an `http(s)://` entry is refused. The texts never quote credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Neither `http://` nor `https://`.
    #[error("not an http:// or https:// URL")]
    Scheme,
    /// No host between `//` (or `@`) and the port or path.
    #[error("host is not set (http://host:port/path)")]
    NoHost,
    /// A port that is not 1..=65535.
    #[error("port is not a number from 1 to 65535")]
    Port,
    /// `user:pass@` without the `:`, or a bad `%` escape in it.
    #[error("credentials must be user:password, %-escaped")]
    Credentials,
    /// A `[` without its `]`.
    #[error("an IPv6 address needs its closing ']'")]
    Bracket,
    /// `?` or `#` in the URL: HAProxy's CSV is `<path>;csv`.
    #[error("a query or fragment cannot be given: the page is read as <path>;csv")]
    Query,
}

/// Parses `http://[user:pass@]host[:port][/path]` or `https://...`; the
/// path defaults to `/`.
pub fn parse(entry: &str) -> Result<StatsUrl, UrlError> {
    let (tls, rest) = if let Some(rest) = entry.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = entry.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err(UrlError::Scheme);
    };
    if rest.contains(['?', '#']) {
        return Err(UrlError::Query);
    }
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let credentials = userinfo.map(parse_userinfo).transpose()?;
    let (host, port) = split_host_port(host_port)?;
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    let port = match port {
        None => {
            if tls {
                443
            } else {
                80
            }
        }
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or(UrlError::Port)?,
    };
    Ok(StatsUrl {
        tls,
        host: host.to_owned(),
        port,
        path: path.to_owned(),
        credentials,
    })
}

fn split_host_port(host_port: &str) -> Result<(&str, Option<&str>), UrlError> {
    if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or(UrlError::Bracket)?;
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(UrlError::Port),
        };
    }
    Ok(match host_port.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (host_port, None),
    })
}

fn parse_userinfo(userinfo: &str) -> Result<Credentials, UrlError> {
    let (user, password) = userinfo.split_once(':').ok_or(UrlError::Credentials)?;
    Ok(Credentials {
        user: percent_decode(user)?,
        password: percent_decode(password)?,
    })
}

/// `%XX` escapes, as in URLs: the way to put `@`, `:` or `/` in a password.
fn percent_decode(text: &str) -> Result<String, UrlError> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        if byte != b'%' {
            out.push(byte);
            continue;
        }
        let hex = [bytes.next(), bytes.next()];
        let [Some(high), Some(low)] = hex else {
            return Err(UrlError::Credentials);
        };
        let digit = |b: u8| char::from(b).to_digit(16);
        match (digit(high), digit(low)) {
            (Some(h), Some(l)) => out.push(u8::try_from(h * 16 + l).unwrap_or(0)),
            _ => return Err(UrlError::Credentials),
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::Credentials)
}

/// `text` with the user-info of every `scheme://user:pass@host` in it
/// replaced by `***`: for error lines that quote a whole `servers` value,
/// valid or not.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends at the path, or at the next entry of a list.
        let end = after.find(['/', ',', ' ']).unwrap_or(after.len());
        let (authority, tail) = after.split_at(end);
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(authority.get(at..).unwrap_or_default());
            }
            None => out.push_str(authority),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(entry: &str) -> StatsUrl {
        parse(entry).unwrap_or_else(|e| panic!("{entry}: {e}"))
    }

    #[test]
    fn a_full_url_gives_every_part() {
        let url = ok("http://admin:s3cret@lb1.example.com:8404/stats");
        assert!(!url.tls);
        assert_eq!(url.host, "lb1.example.com");
        assert_eq!(url.port, 8404);
        assert_eq!(url.csv_path(), "/stats;csv");
        assert_eq!(
            url.credentials,
            Some(Credentials {
                user: "admin".into(),
                password: "s3cret".into()
            })
        );
        assert_eq!(url.host_port(), "lb1.example.com:8404");
    }

    #[test]
    fn defaults_ports_and_path() {
        assert_eq!(ok("http://lb").port, 80);
        assert_eq!(ok("https://lb").port, 443);
        assert_eq!(ok("https://lb").path, "/");
        assert!(ok("https://lb:9000/").tls);
        let v6 = ok("http://[::1]:8404/s");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8404));
        assert_eq!(v6.host_port(), "[::1]:8404");
    }

    #[test]
    fn escaped_credentials_are_decoded_and_the_last_at_ends_them() {
        let url = ok("http://us%3Aer:p@ss%2Fw:rd@lb:1/");
        assert_eq!(
            url.credentials,
            Some(Credentials {
                user: "us:er".into(),
                password: "p@ss/w:rd".into()
            })
        );
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        for (entry, error) in [
            ("ftp://lb:1/", UrlError::Scheme),
            ("http://:8404/", UrlError::NoHost),
            ("http://lb:0/", UrlError::Port),
            ("http://lb:99999/", UrlError::Port),
            ("http://lb:x/", UrlError::Port),
            ("http://admin@lb:1/", UrlError::Credentials),
            ("http://a:%zz@lb:1/", UrlError::Credentials),
            ("http://a:%4@lb:1/", UrlError::Credentials),
            ("http://[::1:1/", UrlError::Bracket),
            ("http://lb:1/stats?x", UrlError::Query),
            ("http://lb:1/stats#x", UrlError::Query),
        ] {
            assert_eq!(parse(entry), Err(error), "{entry}");
        }
    }

    #[test]
    fn credentials_show_nowhere() {
        let url = ok("https://admin:s3cret@lb:8404/stats");
        for shown in [
            url.to_string(),
            format!("{url:?}"),
            url.host_port(),
            url.csv_path(),
        ] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(!shown.contains("admin"), "{shown}");
        }
        assert_eq!(url.to_string(), "https://***@lb:8404/stats");
        assert_eq!(ok("http://lb:1/s").to_string(), "http://lb:1/s");
    }

    #[test]
    fn redact_hides_user_info_in_any_list() {
        assert_eq!(
            redact("unix:///a.sock, http://admin:s3cret@lb:1/s,https://u:p@x,tcp://h:1"),
            "unix:///a.sock, http://***@lb:1/s,https://***@x,tcp://h:1"
        );
        assert_eq!(redact("http://a:b@c@d:1/"), "http://***@d:1/");
        assert_eq!(redact("no url here"), "no url here");
    }
}
