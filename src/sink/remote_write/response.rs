//! What a remote-write receiver's answer means (the spec, "Retries &
//! Backoff"): 2xx delivered; 5xx and 429 retried with backoff, honouring
//! `Retry-After`; any other status rejected for good — Prometheus answers
//! 400 for out-of-order or duplicate samples, which sending again cannot
//! fix. No answer at all (refused, reset, timed out) is retried like a 5xx.
//!
//! Pure.

use std::time::{Duration, SystemTime};

/// The first wait after a failure.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait the backoff grows to.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured: a receiver asking for more is asked
/// again after this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What to do with a request after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered: acknowledge its samples.
    Delivered,
    /// Send it again after this long.
    Retry(Duration),
    /// Never delivered: counted (`RemoteWriteRejected`), logged once per
    /// cause, acknowledged so that it holds nothing back.
    Rejected(Rejection),
}

/// Why a receiver rejected a request for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The status.
    pub status: u16,
    /// The first line of the response body (Prometheus says why there),
    /// cut to 200 bytes.
    pub first_line: String,
}

/// What an attempt gave.
#[derive(Debug, Clone, Copy)]
pub enum Answer<'a> {
    /// An HTTP response.
    Response {
        /// Its status.
        status: u16,
        /// Its `Retry-After` header, if any.
        retry_after: Option<&'a str>,
        /// Its body (the start of it is enough).
        body: &'a [u8],
    },
    /// No response: refused, reset, timed out.
    NoResponse,
}

/// The verdict on the `attempt`-th failed or successful try (1 for the
/// first) of a request, answered `answer` at `now`.
pub fn verdict(answer: Answer<'_>, attempt: u32, now: SystemTime) -> Verdict {
    match answer {
        Answer::Response { status, .. } if (200..300).contains(&status) => Verdict::Delivered,
        Answer::Response {
            status,
            retry_after,
            ..
        } if status == 429 || (500..600).contains(&status) => Verdict::Retry(
            retry_after
                .and_then(|text| retry_after_of(text, now))
                .map_or_else(|| backoff(attempt), |wait| wait.min(MAX_RETRY_AFTER)),
        ),
        Answer::Response { status, body, .. } => Verdict::Rejected(Rejection {
            status,
            first_line: first_line(body),
        }),
        Answer::NoResponse => Verdict::Retry(backoff(attempt)),
    }
}

/// `FIRST_BACKOFF` doubled each attempt, at most `MAX_BACKOFF`.
pub fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3); a
/// date in the past is no wait. `None` when it is neither.
fn retry_after_of(text: &str, now: SystemTime) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The body's first line, lossily decoded, cut to 200 bytes on a
/// character boundary.
pub fn first_line(body: &[u8]) -> String {
    let head = body.get(..body.len().min(512)).unwrap_or(body);
    let text = String::from_utf8_lossy(head);
    let line = text.lines().next().unwrap_or("").trim_end();
    let mut end = line.len().min(200);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line.get(..end).unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response<'a>(status: u16, retry_after: Option<&'a str>, body: &'a [u8]) -> Answer<'a> {
        Answer::Response {
            status,
            retry_after,
            body,
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn any_2xx_is_delivered() {
        for status in [200, 204, 299] {
            assert_eq!(
                verdict(response(status, None, b""), 1, now()),
                Verdict::Delivered
            );
        }
    }

    #[test]
    fn server_errors_and_429_are_retried_with_a_growing_capped_backoff() {
        for status in [429, 500, 503, 599] {
            assert_eq!(
                verdict(response(status, None, b""), 1, now()),
                Verdict::Retry(FIRST_BACKOFF)
            );
        }
        assert_eq!(
            verdict(response(503, None, b""), 2, now()),
            Verdict::Retry(Duration::from_secs(1))
        );
        assert_eq!(
            verdict(response(503, None, b""), 3, now()),
            Verdict::Retry(Duration::from_secs(2))
        );
        assert_eq!(
            verdict(response(503, None, b""), 60, now()),
            Verdict::Retry(MAX_BACKOFF)
        );
        assert_eq!(
            verdict(Answer::NoResponse, 1, now()),
            Verdict::Retry(FIRST_BACKOFF)
        );
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date_is_honoured_up_to_a_bound() {
        assert_eq!(
            verdict(response(429, Some("7"), b""), 1, now()),
            Verdict::Retry(Duration::from_secs(7))
        );
        let in_90_s = httpdate::fmt_http_date(now() + Duration::from_secs(90));
        assert_eq!(
            verdict(response(503, Some(&in_90_s), b""), 1, now()),
            Verdict::Retry(Duration::from_secs(90))
        );
        let past = httpdate::fmt_http_date(now() - Duration::from_secs(90));
        assert_eq!(
            verdict(response(503, Some(&past), b""), 4, now()),
            Verdict::Retry(Duration::ZERO)
        );
        assert_eq!(
            verdict(response(429, Some("86400"), b""), 1, now()),
            Verdict::Retry(MAX_RETRY_AFTER)
        );
        assert_eq!(
            verdict(response(429, Some("soon"), b""), 2, now()),
            Verdict::Retry(backoff(2)),
            "unreadable: the backoff"
        );
    }

    #[test]
    fn other_statuses_are_rejected_with_the_first_line_of_the_body() {
        let body = b"out of order sample\nsecond line\n";
        assert_eq!(
            verdict(response(400, None, body), 1, now()),
            Verdict::Rejected(Rejection {
                status: 400,
                first_line: "out of order sample".into()
            })
        );
        for status in [301, 401, 404, 413] {
            assert!(matches!(
                verdict(response(status, Some("5"), b""), 1, now()),
                Verdict::Rejected(Rejection { status: s, .. }) if s == status
            ));
        }
    }

    #[test]
    fn a_long_or_binary_first_line_is_cut_on_a_character_boundary() {
        let long = "é".repeat(300);
        let Verdict::Rejected(r) = verdict(response(400, None, long.as_bytes()), 1, now()) else {
            panic!("rejected");
        };
        assert!(r.first_line.len() <= 200 && r.first_line.chars().all(|c| c == 'é'));
        let Verdict::Rejected(r) = verdict(response(400, None, &[0xff, 0xfe, b'\n']), 1, now())
        else {
            panic!("rejected");
        };
        assert_eq!(r.first_line, "\u{fffd}\u{fffd}");
    }
}
