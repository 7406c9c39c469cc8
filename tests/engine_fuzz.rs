//! Property tests: the `show stat` and `show info` parsers and the whole
//! engine never panic, whatever the bytes.

use std::path::Path;

use haproxystats::engine::aggregate::{SiteAgg, Specs};
use haproxystats::engine::parse_info::parse_info;
use haproxystats::engine::parse_stat::parse_stat;
use haproxystats::engine::{EngineOptions, process_snapshot};
use proptest::prelude::*;

const VALID: &str = include_str!("fixtures/stat/2.6_show_stat.csv");
const QUOTED: &str = include_str!("fixtures/stat/1.4_quoted_show_stat.csv");
const INFO: &str = include_str!("fixtures/stat/2.5.5_show_info.txt");

fn specs() -> Specs {
    use haproxystats::catalogue::ProxyKind;
    Specs::new(
        ProxyKind::Frontend.all_metrics(),
        ProxyKind::Backend.all_metrics(),
        ProxyKind::Server.all_metrics(),
    )
}

fn parse_all(bytes: &[u8]) {
    let specs = specs();
    let mut agg = SiteAgg::new(&specs);
    let mut w = Vec::new();
    parse_stat(bytes, Path::new("f_stat"), &specs.plan, 3, &mut w, &mut agg);
    let mut w = Vec::new();
    let _ = parse_info(bytes, Path::new("f_info"), &mut w);
}

/// A valid file with some bytes replaced, inserted or removed.
fn mutated(base: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    prop::collection::vec((0..len, any::<u8>(), 0u8..3), 0..12).prop_map(move |edits| {
        let mut b = base.as_bytes().to_vec();
        for (pos, byte, op) in edits {
            let pos = pos.min(b.len());
            match op {
                0 if pos < b.len() => b[pos] = byte,
                1 => b.insert(pos, byte),
                _ => b.truncate(pos.max(1)),
            }
        }
        b
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        parse_all(&bytes);
    }

    #[test]
    fn csv_like_bytes_never_panic(text in "[#a-z0-9,\"\\- \n\r.]{0,400}") {
        parse_all(text.as_bytes());
    }

    #[test]
    fn mutated_valid_files_never_panic(bytes in mutated(VALID), quoted in mutated(QUOTED), info in mutated(INFO)) {
        parse_all(&bytes);
        parse_all(&quoted);
        parse_all(&info);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn engine_never_panics(stat in mutated(VALID), info in mutated(INFO)) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("1700000000");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a_stat"), &stat).unwrap();
        std::fs::write(dir.join("a_info"), &info).unwrap();
        let mut opts = EngineOptions::with_prefix("P");
        opts.aggr_server_metrics = true;
        opts.per_process_metrics = true;
        opts.calculate_percentages = true;
        let mut out = Vec::new();
        let _ = process_snapshot(&dir, &opts, &mut out);
        for line in String::from_utf8_lossy(&out).lines() {
            prop_assert_eq!(line.split(' ').count(), 3, "{}", line);
        }
    }
}
