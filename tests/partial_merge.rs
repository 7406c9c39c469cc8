//! Partial aggregates (SPEC §7): for random snapshots split over random
//! load balancers, each LB's snapshot goes the central way (raw parts →
//! `process_decoded_into` → its partial → partial messages → decoded), and
//! merging the partials in any order, with any duplication, gives the lines
//! `replay` gives for one directory holding every LB's files renamed
//! `<lb>_<file>` — with per-process metrics, groups, `aggr-server-metrics`
//! and `calculate-percentages` on.

mod support;

use std::path::{Path, PathBuf};

use haproxystats::engine::options::GroupRule;
use haproxystats::engine::partial::{Merge, Partial, PartialError};
use haproxystats::engine::{
    EngineOptions, process_decoded_into, process_gathered_into, process_snapshot,
};
use haproxystats::raw;
use proptest::prelude::*;
use support::collected::Collected;

const TS: i64 = 1_700_000_000;

/// Every optional output on, and groups of every kind.
fn options() -> EngineOptions {
    let rule = |name: &str, pattern: &str| GroupRule {
        name: name.into(),
        pattern: regex::Regex::new(pattern).unwrap(),
    };
    let mut opts = EngineOptions::with_prefix("cl.haproxy");
    opts.aggr_server_metrics = true;
    opts.per_process_metrics = true;
    opts.calculate_percentages = true;
    opts.group_namespace = Some("G".into());
    opts.group_double_writes = true;
    opts.frontend_groups = vec![rule("public", "b")];
    opts.backend_groups = vec![rule("apps", "a"), rule("rest", "_")];
    opts.server_groups = vec![rule("odd", "[13]")];
    opts
}

/// A small xorshift generator: the content of a case from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const FIELDS: &[&str] = &[
    "pxname",
    "svname",
    "qcur",
    "qmax",
    "scur",
    "smax",
    "slim",
    "stot",
    "bin",
    "bout",
    "dreq",
    "dresp",
    "ereq",
    "econ",
    "eresp",
    "wretr",
    "wredis",
    "status",
    "weight",
    "act",
    "bck",
    "chkfail",
    "chkdown",
    "lastchg",
    "downtime",
    "qlimit",
    "pid",
    "iid",
    "sid",
    "throttle",
    "lbtot",
    "tracked",
    "type",
    "rate",
    "rate_lim",
    "rate_max",
    "check_status",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
    "req_rate",
    "req_rate_max",
    "req_tot",
    "cli_abrt",
    "srv_abrt",
    "comp_in",
    "comp_out",
    "lastsess",
    "qtime",
    "ctime",
    "rtime",
    "ttime",
    "conn_rate",
    "conn_tot",
];

/// A `show stat` file: names from small pools (so that LBs share them),
/// a few numeric columns left out of the header, empty cells, idle
/// servers, listeners, and now and then a counter above `i64::MAX`.
fn stat_file(rng: &mut Rng) -> String {
    let fields: Vec<&str> = FIELDS
        .iter()
        .copied()
        .filter(|f| {
            matches!(*f, "pxname" | "svname" | "type" | "status" | "check_status") || !rng.chance(8)
        })
        .collect();
    let mut text = format!("# {},\n", fields.join(","));
    let mut row = |rng: &mut Rng, px: &str, sv: &str, ty: u8| {
        let cells: Vec<String> = fields
            .iter()
            .map(|f| match *f {
                "pxname" => px.to_owned(),
                "svname" => sv.to_owned(),
                "type" => ty.to_string(),
                "status" => "UP".into(),
                "check_status" => String::new(),
                "lbtot" if rng.chance(30) => "0".into(),
                _ if rng.chance(15) => String::new(),
                _ if rng.chance(1) => (u64::MAX - rng.below(1000)).to_string(),
                _ => rng.below(5000).to_string(),
            })
            .collect();
        text.push_str(&cells.join(","));
        text.push_str(",\n");
    };
    for fe in ["fe_a", "fe.b", "fe-c"] {
        if rng.chance(70) {
            row(rng, fe, "FRONTEND", 0);
        }
    }
    for be in ["be_a", "be b", "bk_c"] {
        if !rng.chance(75) {
            continue;
        }
        for srv in ["s1", "s2", "s.3", "s4"] {
            if rng.chance(60) {
                row(rng, be, srv, 2);
            }
        }
        row(rng, be, "BACKEND", 1);
    }
    if rng.chance(20) {
        row(rng, "fe_a", "sock-1", 3);
    }
    text
}

/// A `show info` file: the 2.7.1 capture with other numbers.
fn info_file(rng: &mut Rng) -> String {
    let capture = include_str!("fixtures/stat/2.7.1_show_info.txt");
    capture
        .lines()
        .map(|line| match line.split_once(": ") {
            Some(("Process_num", _)) => format!("Process_num: {}\n", 1 + rng.below(3)),
            Some(("Idle_pct", _)) => format!("Idle_pct: {}\n", rng.below(101)),
            Some((k, v)) if v.parse::<i64>().is_ok() => format!("{k}: {}\n", rng.below(100_000)),
            _ => format!("{line}\n"),
        })
        .collect()
}

/// The lines but the self metrics (they count and time the run itself).
fn without_self_metrics(text: &[u8]) -> Vec<String> {
    String::from_utf8(text.to_vec())
        .unwrap()
        .lines()
        .filter(|l| !l.contains(".haproxystats."))
        .map(str::to_owned)
        .collect()
}

fn write_files(dir: &Path, files: &[(String, String)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

/// One LB's snapshot the central way: its partial, through its messages.
fn partial_of(dir: &Path, lb: &str, opts: &EngineOptions, rng: &mut Rng) -> Option<Partial> {
    let enc = raw::encode(dir, 1_000_000).ok()?;
    let parts: Vec<&[u8]> = enc.parts.iter().map(Vec::as_slice).collect();
    let dec = raw::decode(&parts).unwrap();
    let (_, partial) = process_decoded_into(&dec, lb, opts, &mut Collected::default()).ok()?;
    // Small messages (a kind's schema alone is about 15 KB): big kinds
    // split into several parts.
    let mut messages = partial.encode("c", 40 * 1024).unwrap();
    for i in (1..messages.len()).rev() {
        messages.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let parts: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    Some(Partial::decode(&parts, opts).unwrap())
}

/// Runs one case: `files` sockets spread over `lbs` load balancers.
fn check_case(seed: u64, sockets: usize, lbs: usize) {
    let mut rng = Rng(seed | 1);
    let opts = options();
    let tmp = tempfile::tempdir().unwrap();
    let union = tmp.path().join("union").join(TS.to_string());
    std::fs::create_dir_all(&union).unwrap();
    let mut per_lb: Vec<Vec<(String, String)>> = vec![Vec::new(); lbs];
    for s in 0..sockets {
        let lb = rng.below(lbs as u64) as usize;
        let socket = format!("p{s}");
        if rng.chance(90) {
            per_lb[lb].push((format!("{socket}_stat"), stat_file(&mut rng)));
        }
        if rng.chance(85) {
            per_lb[lb].push((format!("{socket}_info"), info_file(&mut rng)));
        }
    }
    let mut partials = Vec::new();
    for (i, files) in per_lb.iter().enumerate() {
        let lb = format!("lb{i}");
        let renamed: Vec<(String, String)> = files
            .iter()
            .map(|(n, t)| (format!("{lb}_{n}"), t.clone()))
            .collect();
        write_files(&union, &renamed);
        let dir: PathBuf = tmp.path().join(&lb).join(TS.to_string());
        write_files(&dir, files);
        if let Some(p) = partial_of(&dir, &lb, &opts, &mut rng) {
            partials.push(p);
        }
    }
    // Any order, any duplication.
    let mut given: Vec<Partial> = partials.clone();
    for p in &partials {
        if rng.chance(50) {
            given.push(p.clone());
        }
    }
    for i in (1..given.len()).rev() {
        given.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut merge = Merge::default();
    for p in given {
        merge.add(p);
    }
    let mut want = Vec::new();
    let replayed = process_snapshot(&union, &opts, &mut want);
    let Some(g) = merge.gathered(TS, PathBuf::from("merged"), &opts) else {
        assert!(replayed.is_err(), "no partial, but replay gave lines");
        return;
    };
    let mut got = Collected::default();
    let merged = process_gathered_into(&g, &opts, &mut got);
    match (replayed, merged) {
        (Ok(_), Ok(_)) => {
            let (want, got) = (
                without_self_metrics(&want),
                without_self_metrics(&got.0.concat()),
            );
            if want != got {
                let diff: Vec<String> = want
                    .iter()
                    .filter(|l| !got.contains(l))
                    .map(|l| format!("- {l}"))
                    .chain(
                        got.iter()
                            .filter(|l| !want.contains(l))
                            .map(|l| format!("+ {l}")),
                    )
                    .take(10)
                    .collect();
                panic!(
                    "seed {seed}: {} lines replayed, {} merged\n{}",
                    want.len(),
                    got.len(),
                    diff.join("\n")
                );
            }
            assert!(want.len() > 20, "seed {seed}: {} lines", want.len());
        }
        (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind()),
        (a, b) => panic!("seed {seed}: replay {:?}, merge {:?}", a.err(), b.err()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn merged_partials_equal_replay_of_the_union(seed in any::<u64>(), sockets in 1usize..9, lbs in 1usize..5) {
        check_case(seed, sockets, lbs);
    }
}

fn parts(messages: &[Vec<u8>]) -> Vec<&[u8]> {
    messages.iter().map(Vec::as_slice).collect()
}

#[test]
fn partials_of_other_options_are_refused_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(TS.to_string());
    let mut rng = Rng(7);
    write_files(
        &dir,
        &[
            ("a_stat".into(), stat_file(&mut rng)),
            ("a_info".into(), info_file(&mut rng)),
        ],
    );
    let opts = options();
    let mine = partial_of(&dir, "lb0", &opts, &mut rng).unwrap();
    let mut fewer = options();
    fewer.frontend_metrics.truncate(3);
    let theirs = partial_of(&dir, "lb1", &fewer, &mut rng).unwrap();
    let messages = theirs.encode("c", 1_000_000).unwrap();
    let parts: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let err = Partial::decode(&parts, &opts).unwrap_err();
    assert!(matches!(err, PartialError::OptionsMismatch { .. }), "{err}");
    assert!(err.to_string().contains("lb1"), "{err}");
    let mut merge = Merge::default();
    merge.add(mine.clone());
    merge.add(theirs);
    merge.add(mine);
    assert_eq!((merge.mismatched, merge.duplicates), (1, 1));
    assert_eq!(merge.lbs().collect::<Vec<_>>(), ["lb0"]);
}

#[test]
fn bad_partial_messages_are_errors_naming_the_part() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(TS.to_string());
    let mut rng = Rng(11);
    write_files(&dir, &[("a_stat".into(), stat_file(&mut rng))]);
    let opts = options();
    let p = partial_of(&dir, "lb0", &opts, &mut rng).unwrap();
    let messages = p.encode("c", 1_000_000).unwrap();
    assert_eq!(messages.len(), 4, "daemon and one part per kind");
    // Garbage, truncated, a part missing, a part twice.
    let mut garbage = messages.clone();
    garbage[1] = b"not arrow".to_vec();
    let mut truncated = messages.clone();
    let cut = truncated[2].len() / 2;
    truncated[2].truncate(cut);
    let mut twice = messages.clone();
    twice[3] = twice[2].clone();
    for (what, m) in [
        ("garbage", garbage),
        ("truncated", truncated),
        ("missing", messages[..3].to_vec()),
        ("twice", twice),
    ] {
        let err = Partial::decode(&parts(&m), &opts).unwrap_err();
        assert!(
            err.to_string().starts_with("partial part "),
            "{what}: {err}"
        );
        assert!(!err.to_string().contains('\n'), "{what}: {err}");
    }
    // Flipped bytes anywhere never panic.
    for i in (0..messages[3].len()).step_by(7) {
        let mut m = messages.clone();
        m[3][i] ^= 0x5a;
        let _ = Partial::decode(&parts(&m), &opts);
    }
}

#[test]
fn a_big_partial_splits_into_parts_that_give_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(TS.to_string());
    let mut text = format!("# {},\n", FIELDS.join(","));
    for b in 0..300 {
        for s in 0..12 {
            let cells: Vec<String> = FIELDS
                .iter()
                .map(|f| match *f {
                    "pxname" => format!("be{b}"),
                    "svname" => format!("srv{s}"),
                    "type" => "2".into(),
                    "status" | "check_status" => "UP".into(),
                    _ => (b * 31 + s * 7).to_string(),
                })
                .collect();
            text.push_str(&cells.join(","));
            text.push_str(",\n");
        }
    }
    write_files(&dir, &[("a_stat".into(), text)]);
    let opts = options();
    let enc = raw::encode(&dir, 1_000_000).unwrap();
    let dec = raw::decode(&parts(&enc.parts)).unwrap();
    let (_, partial) = process_decoded_into(&dec, "lb0", &opts, &mut Collected::default()).unwrap();
    let limit = 48 * 1024;
    let messages = partial.encode("c", limit).unwrap();
    assert!(messages.len() > 6, "{} parts", messages.len());
    assert!(
        messages.iter().all(|m| m.len() <= limit),
        "a part over the limit"
    );
    let back = Partial::decode(&parts(&messages), &opts).unwrap();
    let lines = |p: Partial| {
        let mut merge = Merge::default();
        merge.add(p);
        let g = merge.gathered(TS, PathBuf::from("m"), &opts).unwrap();
        let mut out = Collected::default();
        process_gathered_into(&g, &opts, &mut out).unwrap();
        without_self_metrics(&out.0.concat())
    };
    let want = lines(partial);
    assert!(want.len() > 3600 * 30, "{} lines", want.len());
    assert_eq!(lines(back), want);
}

/// A partial of one LB whose kinds span several parts.
fn partial_of_one_lb(dir: &Path, opts: &EngineOptions) -> Partial {
    let mut rng = Rng(5);
    write_files(
        dir,
        &[
            ("a_stat".into(), stat_file(&mut rng)),
            ("a_info".into(), info_file(&mut rng)),
            ("b_stat".into(), stat_file(&mut rng)),
        ],
    );
    let enc = raw::encode(dir, 1_000_000).unwrap();
    let dec = raw::decode(&parts(&enc.parts)).unwrap();
    process_decoded_into(&dec, "lb0", opts, &mut Collected::default())
        .unwrap()
        .1
}

/// The lines of a window holding `partial` alone.
fn window_lines(partial: Partial, opts: &EngineOptions) -> Vec<String> {
    let mut merge = Merge::default();
    merge.add(partial);
    let g = merge.gathered(TS, PathBuf::from("m"), opts).unwrap();
    let mut out = Collected::default();
    process_gathered_into(&g, opts, &mut out).unwrap();
    without_self_metrics(&out.0.concat())
}

#[test]
fn partials_of_every_codec_and_of_mixed_codecs_give_the_same_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = options();
    let partial = partial_of_one_lb(&tmp.path().join(TS.to_string()), &opts);
    let want = window_lines(partial.clone(), &opts);
    assert!(want.len() > 100, "{} lines", want.len());
    let encoded: Vec<Vec<Vec<u8>>> = support::crafted::CODECS
        .iter()
        .map(|&codec| partial.encode_with("c", 1_000_000, codec).unwrap())
        .collect();
    for (codec, messages) in support::crafted::CODECS.iter().zip(&encoded) {
        let back = Partial::decode(&parts(messages), &opts).unwrap();
        assert_eq!(window_lines(back, &opts), want, "{codec}");
    }
    // One partial's parts in other codecs each (as from no edge, but the
    // decoder cannot tell): read alike.
    let count = encoded[0].len();
    assert!(encoded.iter().all(|m| m.len() == count));
    let mixed: Vec<Vec<u8>> = (0..count)
        .map(|i| encoded[i % support::crafted::CODECS.len()][i].clone())
        .collect();
    let back = Partial::decode(&parts(&mixed), &opts).unwrap();
    assert_eq!(window_lines(back, &opts), want);
}

#[test]
fn a_crafted_partial_claim_is_refused_by_the_walk_for_every_codec() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = options();
    let partial = partial_of_one_lb(&tmp.path().join(TS.to_string()), &opts);
    for codec in support::crafted::CODECS {
        let messages = partial.encode_with("c", 1_000_000, codec).unwrap();
        let at = messages.len() - 1;
        let buffers =
            support::crafted::compressed_buffers(&messages[at], |packed| packed < 16 * 1024);
        if codec == raw::BufferCodec::None {
            assert!(buffers.is_empty());
            continue;
        }
        let crafted = support::crafted::with_claim(&messages[at], buffers[0], 1 << 30);
        let walk = format!(
            "buffer {} claims 1073741824 bytes from {}, more than {} times",
            buffers[0].index,
            buffers[0].packed,
            raw::MAX_COMPRESSION_RATIO
        );
        assert_eq!(raw::claims(&crafted), Err(walk.clone()), "{codec}");
        let mut m = messages.clone();
        m[at] = crafted;
        let err = Partial::decode(&parts(&m), &opts).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("partial part {at}: {walk}"),
            "{codec}"
        );
    }
}
