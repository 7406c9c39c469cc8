//! How the buffers of raw snapshots and partials are compressed (the Arrow
//! IPC format's own buffer compression). A value of the configuration;
//! [`crate::raw`] and [`crate::engine::partial`] encode with it, and every
//! decoder reads every codec whatever its own setting (old and new edges
//! share a topic during an upgrade).

use std::fmt;

/// The compression of every buffer of an Arrow IPC part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferCodec {
    /// ZSTD at a level (negative levels are zstd's fast ones).
    Zstd(i32),
    /// LZ4 frames.
    Lz4Frame,
    /// No buffer compression (the producer's own Kafka compression may
    /// still apply to the whole message).
    None,
}

/// The lowest and highest zstd levels accepted (zstd's fast levels go
/// down to -131072, but below -7 they only add bytes).
const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = -7..=22;

impl BufferCodec {
    /// What raw snapshots are encoded with unless told otherwise. On the
    /// bench snapshot LZ4 costs the least CPU in all (the edge's encode,
    /// central's decode, the partial's encode and stage 2's decode: 497 to
    /// 548 ms against 538 to 603 with zstd level 1, the former default,
    /// and 519 to 568 with zstd -5), central's decode the least of any
    /// compression (57 to 61 ms against 77 to 92), for 0.40× the CSV's
    /// bytes (zstd 1: 0.27×; BENCHMARKS.md, "Buffer codecs").
    pub const SNAPSHOTS_DEFAULT: BufferCodec = BufferCodec::Lz4Frame;

    /// What partials are encoded with unless told otherwise: LZ4 as for
    /// raw snapshots, the cheapest to encode and to decode in stage 2
    /// after no compression (27 and 10 to 14 ms against 57 and 15 with
    /// zstd 3, the former default), for 4.1 MB per bench snapshot
    /// against 2.8.
    pub const PARTIALS_DEFAULT: BufferCodec = BufferCodec::Lz4Frame;

    /// The codec written as `text`: `zstd` (level 3), `zstd:<level>`
    /// (-7 to 22), `lz4` or `none`; `Err` is a one-line message.
    pub fn parse(text: &str) -> Result<BufferCodec, String> {
        let expected = "expected zstd, zstd:<level> (-7 to 22), lz4 or none";
        match text.split_once(':') {
            None => match text {
                "zstd" => Ok(BufferCodec::Zstd(3)),
                "lz4" => Ok(BufferCodec::Lz4Frame),
                "none" => Ok(BufferCodec::None),
                _ => Err(format!("{text:?}: {expected}")),
            },
            Some(("zstd", level)) => match level.parse::<i32>() {
                Ok(l) if ZSTD_LEVELS.contains(&l) => Ok(BufferCodec::Zstd(l)),
                _ => Err(format!("{text:?}: zstd level {level:?} is not -7 to 22")),
            },
            Some(_) => Err(format!("{text:?}: {expected}")),
        }
    }
}

impl fmt::Display for BufferCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BufferCodec::Zstd(level) => write!(f, "zstd:{level}"),
            BufferCodec::Lz4Frame => f.write_str("lz4"),
            BufferCodec::None => f.write_str("none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BufferCodec;

    #[test]
    fn parses_every_form_and_prints_what_it_parses() {
        for (text, codec) in [
            ("zstd", BufferCodec::Zstd(3)),
            ("zstd:1", BufferCodec::Zstd(1)),
            ("zstd:-5", BufferCodec::Zstd(-5)),
            ("zstd:22", BufferCodec::Zstd(22)),
            ("lz4", BufferCodec::Lz4Frame),
            ("none", BufferCodec::None),
        ] {
            assert_eq!(BufferCodec::parse(text), Ok(codec), "{text}");
            assert_eq!(BufferCodec::parse(&codec.to_string()), Ok(codec));
        }
    }

    #[test]
    fn refuses_others_in_one_line() {
        for text in [
            "", "gzip", "zstd:", "zstd:x", "zstd:23", "zstd:-8", "lz4:1", "none:0", "ZSTD",
        ] {
            let err = BufferCodec::parse(text).expect_err(text);
            assert!(!err.contains('\n'), "{err}");
            assert!(err.contains(&format!("{text:?}")), "{err}");
        }
    }
}
