//! A message refused for its size (the broker's `message.max.bytes` or the
//! topic's `max.message.bytes` below our `message-max-bytes`, or
//! librdkafka's own limit): sending it again as it is would be refused
//! again, forever. It is cut in two at a line boundary, each half sent on
//! its own, and messages are cut no larger from then on; a single line
//! that is still too large is dropped and counted (without lowering the
//! cut: the lines around it would all be dropped). Pure: the sink carries
//! it out.

use rdkafka::types::RDKafkaErrorCode;

/// Whether `code` says a message or batch was too large to be taken:
/// librdkafka's refusal and the broker's (`MESSAGE_TOO_LARGE`,
/// `RECORD_LIST_TOO_LARGE`).
pub fn is_too_large(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge)
    )
}

/// What becomes of a refused payload.
#[derive(Debug, PartialEq, Eq)]
pub enum TooLarge<'a> {
    /// Send these two instead, in this order: whole lines each.
    Split(&'a [u8], &'a [u8]),
    /// One line (or none): nothing smaller to send; drop it.
    Drop,
}

/// Cuts `payload` (whole newline-terminated lines) in two at the line end
/// nearest its middle, or says it is one line.
pub fn split(payload: &[u8]) -> TooLarge<'_> {
    let body = payload.strip_suffix(b"\n").unwrap_or(payload);
    let middle = payload.len() / 2;
    // The newline ending a line, nearest the middle, but never the last.
    let before = memchr::memrchr(b'\n', body.get(..middle).unwrap_or(body));
    let after = body
        .get(middle..)
        .and_then(|rest| memchr::memchr(b'\n', rest))
        .map(|at| at + middle);
    let cut = match (before, after) {
        (Some(b), Some(a)) => Some(if middle - b <= a - middle { b } else { a }),
        (one, other) => one.or(other),
    };
    match cut {
        Some(at) => {
            let (first, second) = payload.split_at(at + 1);
            TooLarge::Split(first, second)
        }
        None => TooLarge::Drop,
    }
}

/// The payload size to cut messages at after one of `refused` bytes was
/// refused for its size: half of it (at least 1), never more than before.
pub fn lowered_limit(current: usize, refused: usize) -> usize {
    current.min(refused / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_message_is_cut_at_the_line_end_nearest_its_middle() {
        assert_eq!(
            split(b"a 1 1\nb 2 2\nc 3 3\nd 4 4\n"),
            TooLarge::Split(b"a 1 1\nb 2 2\n", b"c 3 3\nd 4 4\n")
        );
        assert_eq!(
            split(b"a\nlong line 1 1\n"),
            TooLarge::Split(b"a\n", b"long line 1 1\n")
        );
        assert_eq!(
            split(b"long line 1 1\na\n"),
            TooLarge::Split(b"long line 1 1\n", b"a\n")
        );
        assert_eq!(split(b"one line only 1 1\n"), TooLarge::Drop);
        assert_eq!(split(b"no newline"), TooLarge::Drop);
        assert_eq!(split(b""), TooLarge::Drop);
    }

    #[test]
    fn halving_always_ends_in_single_lines() {
        let payload: Vec<u8> = (0..37)
            .flat_map(|i| format!("path.{i} {i} 1\n").into_bytes())
            .collect();
        let mut pending = vec![payload.as_slice()];
        let mut single = 0;
        while let Some(next) = pending.pop() {
            match split(next) {
                TooLarge::Split(a, b) => {
                    assert!(!a.is_empty() && !b.is_empty());
                    assert!(a.ends_with(b"\n") && b.ends_with(b"\n"));
                    pending.extend([a, b]);
                }
                TooLarge::Drop => {
                    assert_eq!(memchr::memchr_iter(b'\n', next).count(), 1);
                    single += 1;
                }
            }
        }
        assert_eq!(single, 37);
    }

    #[test]
    fn only_size_refusals_count_and_the_limit_only_goes_down() {
        assert!(is_too_large(Some(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(is_too_large(Some(RDKafkaErrorCode::MessageBatchTooLarge)));
        assert!(!is_too_large(Some(RDKafkaErrorCode::MessageTimedOut)));
        assert!(!is_too_large(None));
        assert_eq!(lowered_limit(1000, 800), 400);
        assert_eq!(lowered_limit(100, 800), 100);
        assert_eq!(lowered_limit(100, 1), 1);
    }
}
