//! The headers of a raw snapshot message (SPEC §5): `lb`, `cluster`, `ts`,
//! `interval`, `part`, `parts`, `format`. Numbers are decimal ASCII, so
//! that any Kafka tool shows them as they are.

use std::time::Duration;

/// The `format` header of every part.
pub const FORMAT: &str = "arrow-ipc/1";

/// The headers of part `part` (0-based) of `parts`, as (name, value).
pub fn headers(
    lb: &str,
    cluster: &str,
    ts: u64,
    interval: Duration,
    part: usize,
    parts: usize,
) -> Vec<(&'static str, String)> {
    vec![
        ("lb", lb.to_owned()),
        ("cluster", cluster.to_owned()),
        ("ts", ts.to_string()),
        ("interval", format_interval(interval)),
        ("part", part.to_string()),
        ("parts", parts.to_string()),
        ("format", FORMAT.to_owned()),
    ]
}

/// Whole seconds as an integer, anything else with its fraction.
fn format_interval(interval: Duration) -> String {
    if interval.subsec_nanos() == 0 {
        interval.as_secs().to_string()
    } else {
        interval.as_secs_f64().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_spec_5_lists_in_decimal() {
        let got = headers("lb-7", "eu", 1_700_000_010, Duration::from_secs(10), 1, 3);
        assert_eq!(
            got,
            [
                ("lb", "lb-7".to_owned()),
                ("cluster", "eu".to_owned()),
                ("ts", "1700000010".to_owned()),
                ("interval", "10".to_owned()),
                ("part", "1".to_owned()),
                ("parts", "3".to_owned()),
                ("format", "arrow-ipc/1".to_owned()),
            ]
        );
        let half = headers("a", "b", 1, Duration::from_millis(500), 0, 1);
        assert_eq!(half[3], ("interval", "0.5".to_owned()));
    }
}
