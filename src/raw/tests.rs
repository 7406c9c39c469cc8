//! The codec on small snapshots: columns, metadata, warnings, splitting,
//! every error of [`decode`], and garbled input.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, UInt64Type};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;

use super::*;

const TS: &str = "1700000000";

/// A snapshot directory holding `files` (name, content).
fn snapshot(files: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(TS);
    std::fs::create_dir(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    (tmp, dir)
}

const INFO: &[u8] =
    b"Name: HAProxy\nVersion: 2.7.1-3e4af0e\nNbproc: 1\nno pair here\nUptime_sec: 168\n";

const STAT: &[u8] = b"# pxname,svname,status,bin,lastsess,big,mixed,weird,check_desc,\n\
fe,FRONTEND,OPEN,10,-1,1,x,007,,\n\
be,BACKEND,UP,20,,18446744073709551615,2,,,\n\
be,\"s,1\",DOWN 1/2,,5,9223372036854775808,,+5,Layer4 timeout,\n\
be,short,UP\n";

fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a dyn Array {
    batch.column_by_name(name).unwrap().as_ref()
}

fn text(array: &dyn Array, row: usize) -> Option<String> {
    let dict = array.as_dictionary::<Int32Type>();
    dict.is_valid(row).then(|| {
        let key = dict.keys().value(row) as usize;
        dict.values().as_string::<i32>().value(key).to_owned()
    })
}

#[test]
fn columns_metadata_and_warnings() {
    let (_tmp, dir) = snapshot(&[("a_info", INFO), ("a_stat", STAT)]);
    let enc = encode(&dir, 1_000_000).unwrap();
    assert_eq!(enc.ts, 1700000000);
    assert_eq!(enc.parts.len(), 1);
    assert_eq!(enc.input_bytes, INFO.len() + STAT.len());
    let warnings: Vec<String> = enc.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [format!(
            "{}:5: row has 3 cells, header has 10; row not sent",
            dir.join("a_stat").display()
        )]
    );
    assert_eq!(
        enc.warnings[0].kind,
        RawWarningKind::CellCount {
            expected: 10,
            found: 3
        }
    );

    // As arrow reads the part alone.
    let reader = StreamReader::try_new(enc.parts[0].as_slice(), None).unwrap();
    let schema = reader.schema();
    let md = schema.metadata();
    assert_eq!(md.get(keys::FORMAT).unwrap(), FORMAT);
    assert_eq!(md.get(keys::TS).unwrap(), TS);
    assert_eq!(md.get(keys::SOCKET).unwrap(), "a");
    assert_eq!(md.get(keys::PART).unwrap(), "0");
    assert_eq!(md.get(keys::PARTS).unwrap(), "1");
    assert_eq!(md.get(keys::SEGMENT).unwrap(), "0");
    assert_eq!(md.get(keys::ROWS).unwrap(), "3");
    assert_eq!(md.get(keys::VERSION).unwrap(), "2.7.1-3e4af0e");
    assert_eq!(
        md.get(keys::INFO).unwrap(),
        "Name: HAProxy\nVersion: 2.7.1-3e4af0e\nNbproc: 1\nUptime_sec: 168\n"
    );
    let text_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let types: Vec<(&str, &DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type()))
        .collect();
    assert_eq!(
        types,
        [
            ("pxname", &text_type),
            ("svname", &text_type),
            ("status", &text_type),
            ("bin", &DataType::Int64),
            ("lastsess", &DataType::Int64),
            ("big", &DataType::UInt64),
            ("mixed", &text_type),
            ("weird", &text_type),
            ("check_desc", &text_type),
            ("", &DataType::Int64),
        ]
    );
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(b.num_rows(), 3);
    assert_eq!(text(column(b, "svname"), 2).as_deref(), Some("s,1"));
    assert_eq!(text(column(b, "status"), 2).as_deref(), Some("DOWN 1/2"));
    let bin = column(b, "bin").as_primitive::<Int64Type>();
    assert_eq!((bin.value(0), bin.value(1), bin.is_null(2)), (10, 20, true));
    let lastsess = column(b, "lastsess").as_primitive::<Int64Type>();
    assert_eq!((lastsess.value(0), lastsess.is_null(1)), (-1, true));
    let big = column(b, "big").as_primitive::<UInt64Type>();
    assert_eq!(big.value(1), u64::MAX);
    assert_eq!(big.value(2), 1 << 63);
    assert_eq!(text(column(b, "mixed"), 1).as_deref(), Some("2"));
    assert_eq!(text(column(b, "weird"), 0).as_deref(), Some("007"));
    assert_eq!(text(column(b, "weird"), 1), None);
    assert_eq!(column(b, "").null_count(), 3);

    // As decode gives it.
    let dec = decode(&[enc.parts[0].as_slice()]).unwrap();
    assert_eq!(dec.ts, 1700000000);
    assert_eq!(dec.sockets.len(), 1);
    let s = &dec.sockets[0];
    assert_eq!(s.name, "a");
    assert_eq!(s.version.as_deref(), Some("2.7.1-3e4af0e"));
    assert_eq!(s.info_value("Uptime_sec"), Some("168"));
    assert_eq!(s.info.as_ref().unwrap().len(), 4);
    assert_eq!(s.segments.len(), 1);
    assert_eq!(s.segments[0].rows(), 3);
    assert!(s.segments[0].schema.metadata().is_empty());
}

#[test]
fn a_value_above_i64_next_to_a_negative_one_is_text() {
    let stat = b"# pxname,svname,v\np,s,-1\np,t,9223372036854775808\n";
    let (_tmp, dir) = snapshot(&[("a_stat", stat)]);
    let dec = decode(&[encode(&dir, 1_000_000).unwrap().parts[0].as_slice()]).unwrap();
    let b = dec.sockets[0].batches().next().unwrap();
    assert_eq!(
        text(column(b, "v"), 1).as_deref(),
        Some("9223372036854775808")
    );
    assert!(dec.sockets[0].info.is_none());
}

#[test]
fn sockets_with_info_alone_stat_alone_and_new_headers() {
    let (_tmp, dir) = snapshot(&[
        ("a_info", INFO),
        ("a_stat", b"no header,here\n"),
        (
            "b_stat",
            b"# pxname,svname,x\np,s,1\n# pxname,svname,y,z\np,s,2,3\n",
        ),
        ("c_info", b""),
        ("d_stat", b""),
        ("e_stat", b"# pxname,svname\n"),
        (".hidden_info", INFO),
        ("notes.txt", b"x"),
    ]);
    let enc = encode(&dir, 1_000_000).unwrap();
    let kinds: Vec<&RawWarningKind> = enc.warnings.iter().map(|w| &w.kind).collect();
    assert_eq!(
        kinds,
        [
            &RawWarningKind::NoHeader,
            &RawWarningKind::NewHeader { segment: 1 },
            &RawWarningKind::EmptyFile,
        ]
    );
    // a, b (two segments), c, e: a part each.
    assert_eq!(enc.parts.len(), 5);
    let parts: Vec<&[u8]> = enc.parts.iter().map(Vec::as_slice).collect();
    let dec = decode(&parts).unwrap();
    let names: Vec<&str> = dec.sockets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "e"]);
    let [a, b, c, e] = &dec.sockets[..] else {
        unreachable!()
    };
    assert!(a.segments.is_empty() && a.info.is_some());
    assert_eq!(b.segments.len(), 2);
    assert_eq!(b.segments[1].schema.fields().len(), 4);
    assert_eq!(c.info, Some(Vec::new()));
    assert!(c.segments.is_empty());
    assert_eq!(e.segments.len(), 1);
    assert_eq!(e.segments[0].rows(), 0);
    assert!(e.info.is_none());
}

#[test]
fn bad_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let err = encode(tmp.path(), 1_000_000).unwrap_err();
    assert!(matches!(err, RawError::BadTimestamp { .. }), "{err}");
    let missing = tmp.path().join("1700000000");
    assert!(matches!(
        encode(&missing, 1_000_000),
        Err(RawError::ReadDir { .. })
    ));
    let (_tmp, dir) = snapshot(&[("a_stat", b"garbage\n")]);
    let err = encode(&dir, 1_000_000).unwrap_err();
    assert!(matches!(err, RawError::Empty { .. }), "{err}");
}

/// `rows` server rows under a 2.x-like header.
fn many_rows(rows: usize) -> Vec<u8> {
    let mut text = String::from("# pxname,svname,status,scur,bin,bout,lbtot,check_status,\n");
    for i in 0..rows {
        let st = ["UP", "DOWN", "MAINT"][i % 3];
        text.push_str(&format!(
            "be{},srv{i},{st},{},{},{},{},L4OK,\n",
            i / 40,
            i % 7,
            i * 7919 % 100_003,
            i * 31,
            i % 13
        ));
    }
    text.into_bytes()
}

#[test]
fn a_big_socket_spans_parts_of_whole_batches() {
    let (_tmp, dir) = snapshot(&[
        ("a_info", INFO),
        ("a_stat", &many_rows(20_000)),
        ("b_info", INFO),
    ]);
    let limit = MESSAGE_MARGIN + 64 * 1024;
    let enc = encode(&dir, limit).unwrap();
    assert!(enc.parts.len() > 3, "{} parts", enc.parts.len());
    let sizes: Vec<usize> = enc.parts.iter().map(Vec::len).collect();
    assert!(
        sizes.iter().all(|&n| n <= limit - MESSAGE_MARGIN),
        "{sizes:?}"
    );
    // Each part says which it is; its batches hold all rows.
    let mut rows = 0;
    for (i, part) in enc.parts.iter().enumerate() {
        let reader = StreamReader::try_new(part.as_slice(), None).unwrap();
        let numbers = [keys::PART, keys::PARTS].map(|k| reader.schema().metadata()[k].clone());
        assert_eq!(numbers, [i.to_string(), enc.parts.len().to_string()]);
        rows += reader.map(|b| b.unwrap().num_rows()).sum::<usize>();
    }
    assert_eq!(rows, 20_000);
    // Decoded in any order.
    let mut parts: Vec<&[u8]> = enc.parts.iter().map(Vec::as_slice).collect();
    parts.reverse();
    let dec = decode(&parts).unwrap();
    assert_eq!(dec.sockets.len(), 2);
    assert_eq!(dec.sockets[0].segments[0].rows(), 20_000);
    assert!(dec.sockets[0].segments[0].batches.len() >= enc.parts.len() - 1);
    let last = dec.sockets[0].batches().last().unwrap();
    assert_eq!(
        text(column(last, "svname"), last.num_rows() - 1).as_deref(),
        Some("srv19999")
    );
}

#[test]
fn a_limit_too_small_is_an_error() {
    let (_tmp, dir) = snapshot(&[("a_info", INFO), ("a_stat", STAT)]);
    let err = encode(&dir, MESSAGE_MARGIN + 100).unwrap_err();
    assert!(
        matches!(
            err,
            RawError::LimitTooSmall {
                what: "its schema",
                ..
            }
        ),
        "{err}"
    );
    // A cell zstd cannot make small.
    let mut rng = Rng(7);
    let cell: String = (0..100_000)
        .map(|_| format!("{:02x}", rng.next() as u8))
        .collect();
    let long = format!("# pxname,svname,x\np,s,{cell}\n");
    let (_tmp, dir) = snapshot(&[("a_stat", long.as_bytes())]);
    let err = encode(&dir, MESSAGE_MARGIN + 8 * 1024).unwrap_err();
    assert!(
        matches!(
            err,
            RawError::LimitTooSmall {
                what: "one row",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("max message bytes 16384 is too small: socket a needs ")
    );
}

/// The parts of a snapshot with two sockets, the first over three parts.
fn three_parts() -> Vec<Vec<u8>> {
    let (_tmp, dir) = snapshot(&[("a_stat", &many_rows(8_000)), ("b_info", INFO)]);
    let enc = encode(&dir, MESSAGE_MARGIN + 24 * 1024).unwrap();
    assert!(enc.parts.len() >= 3, "{}", enc.parts.len());
    enc.parts
}

/// A stream of one Float64 column named pxname, with `metadata`.
fn foreign_stream(metadata: &[(&str, &str)]) -> Vec<u8> {
    let schema = Schema::new(vec![Field::new("pxname", DataType::Float64, true)]).with_metadata(
        metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<std::collections::HashMap<_, _>>(),
    );
    let schema = Arc::new(schema);
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Float64Array::from(vec![1.0]))],
    )
    .unwrap();
    let mut w = StreamWriter::try_new(Vec::new(), &schema).unwrap();
    w.write(&batch).unwrap();
    w.into_inner().unwrap()
}

fn decode_err(parts: &[&[u8]]) -> String {
    let err = decode(parts).unwrap_err();
    let text = err.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(!matches!(err, RawError::Panic { .. }), "{text}");
    text
}

#[test]
fn every_decode_error_names_the_part_in_one_line() {
    let parts = three_parts();
    let p: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    assert_eq!(decode_err(&[]), "no part to decode");
    let replaced = |i: usize, bytes: &[u8]| -> String {
        let mut all = p.clone();
        all[i] = bytes;
        decode_err(&all)
    };
    let text = replaced(1, b"garbage");
    assert!(
        text.starts_with("part 1: not a valid Arrow IPC stream"),
        "{text}"
    );
    let text = replaced(1, &p[1][..p[1].len() - 100]);
    assert!(
        text.starts_with("part 1: not a valid Arrow IPC stream: truncated"),
        "{text}"
    );
    // Cut at the last batch's end: only the end-of-stream marker is missing.
    let no_eos = &p[0][..p[0].len() - 8];
    let text = decode_err(&[no_eos]);
    assert!(text.contains("no end-of-stream marker"), "{text}");
    let mut trailing = p[0].to_vec();
    trailing.extend_from_slice(&[0; 16]);
    assert!(replaced(0, &trailing).contains("16 bytes after the end of the stream"));
    assert_eq!(
        decode_err(&p[..2]),
        format!("part 0: says the snapshot has {} parts, 2 given", p.len())
    );
    assert_eq!(
        replaced(1, p[0]),
        "part 1: part number 0 again (also part 0)"
    );

    let foreign = foreign_stream(&[]);
    assert_eq!(
        decode_err(&[foreign.as_slice()]),
        "part 0: schema metadata haproxystats.format: missing"
    );
    let other = foreign_stream(&[(keys::FORMAT, "arrow-ipc/2")]);
    assert_eq!(
        decode_err(&[other.as_slice()]),
        "part 0: schema metadata haproxystats.format: \"arrow-ipc/2\" is not \"arrow-ipc/1\""
    );
    let no_socket = foreign_stream(&[(keys::FORMAT, FORMAT)]);
    assert_eq!(
        decode_err(&[no_socket.as_slice()]),
        "part 0: schema metadata haproxystats.socket: missing"
    );
    let mut md = vec![
        (keys::FORMAT, FORMAT),
        (keys::SOCKET, "../x"),
        (keys::PART, "0"),
        (keys::PARTS, "1"),
        (keys::BATCHES, "1"),
        (keys::ROWS, "1"),
        (keys::TS, "1"),
        (keys::SEGMENT, "0"),
    ];
    assert!(decode_err(&[foreign_stream(&md).as_slice()]).contains("\"../x\" is not a file name"));
    md[1].1 = "a";
    assert_eq!(
        decode_err(&[foreign_stream(&md).as_slice()]),
        "part 0: column \"pxname\": type Float64 is not in the format"
    );
    md[2].1 = "x";
    assert_eq!(
        decode_err(&[foreign_stream(&md).as_slice()]),
        "part 0: schema metadata haproxystats.part: not a number: \"x\""
    );

    // Parts of two snapshots.
    let (_tmp, dir) = snapshot(&[("a_info", INFO)]);
    let one = encode(&dir, 1_000_000).unwrap().parts;
    let (_tmp2, dir2) = {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("1700000010");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a_info"), INFO).unwrap();
        (tmp, dir)
    };
    let mut two = encode(&dir2, 1_000_000).unwrap().parts;
    two.extend(one);
    // Both say they are part 0 of 1.
    assert!(
        decode_err(&[two[0].as_slice(), two[1].as_slice()])
            .starts_with("part 0: says the snapshot has 1 parts")
    );
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One part holding the batches of [`three_parts`], as another writer
/// would make it: one stream writer, dictionaries replaced between batches.
fn one_part_of_several_batches() -> Vec<u8> {
    let parts = three_parts();
    let dec = decode(&slices(&parts)).unwrap();
    let segment = &dec.sockets[0].segments[0];
    let batches = &segment.batches;
    assert!(batches.len() >= 3, "{}", batches.len());
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let reader = StreamReader::try_new(parts[0].as_slice(), None).unwrap();
    let mut md = reader.schema().metadata().clone();
    md.insert(keys::PARTS, "1");
    md.insert(keys::BATCHES, batches.len().to_string());
    md.insert(keys::ROWS, rows.to_string());
    let schema = segment.schema.as_ref().clone().with_metadata(md);
    let opts = arrow_ipc::writer::IpcWriteOptions::default()
        .try_with_compression(Some(arrow_ipc::CompressionType::ZSTD))
        .unwrap();
    let mut w = StreamWriter::try_new_with_options(Vec::new(), &schema, opts).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    let part = w.into_inner().unwrap();
    let again = decode(&[&part]).unwrap();
    assert_eq!(again.sockets[0].segments[0].rows(), rows);
    part
}

fn slices(parts: &[Vec<u8>]) -> Vec<&[u8]> {
    parts.iter().map(Vec::as_slice).collect()
}

#[test]
fn truncated_or_garbled_parts_never_panic() {
    let (_tmp, dir) = snapshot(&[("a_info", INFO), ("a_stat", STAT)]);
    let small = encode(&dir, 1_000_000).unwrap().parts.remove(0);
    // Every truncation is an error.
    for len in 0..small.len() {
        decode_err(&[&small[..len]]);
    }
    // A part of several batches, each with its dictionaries.
    let several = [one_part_of_several_batches()];
    // Garbled bytes: an error or a snapshot, never a panic.
    // RAW_FUZZ_SEED=n RAW_FUZZ_ROUNDS=200000 for another, longer run.
    let seed: u64 = std::env::var("RAW_FUZZ_SEED")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut rng = Rng(seed | 1);
    let mut failures = 0;
    let rounds: usize = std::env::var("RAW_FUZZ_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3000);
    for round in 0..rounds {
        let mut bytes = if round % 2 == 0 {
            small.clone()
        } else {
            several[0].clone()
        };
        for _ in 0..1 + rng.below(8) {
            let i = rng.below(bytes.len());
            bytes[i] = match round / 2 % 3 {
                0 => rng.next() as u8,
                1 => bytes[i] ^ (1 << rng.below(8)),
                _ => 0xff,
            };
        }
        match decode(&[bytes.as_slice()]) {
            Err(RawError::Panic { .. }) => panic!("round {round}: arrow panicked"),
            Err(_) => failures += 1,
            Ok(_) => {}
        }
    }
    assert!(failures > rounds / 3, "{failures}");
    // Pure noise, short and long.
    for len in [1, 7, 8, 16, 100, 5000] {
        let noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        decode_err(&[noise.as_slice()]);
        let mut marked = vec![0xff, 0xff, 0xff, 0xff];
        marked.extend_from_slice(&noise);
        decode_err(&[marked.as_slice()]);
    }
}

#[test]
fn write_dir_refuses_what_is_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = DecodedSnapshot {
        ts: 1,
        sockets: vec![DecodedSocket {
            name: "../escape".to_owned(),
            info: Some(Vec::new()),
            version: None,
            segments: Vec::new(),
        }],
    };
    let err = write_dir(&bad, tmp.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "socket \"../escape\": cannot write: not a file name"
    );
    let bad = DecodedSnapshot {
        ts: 1,
        sockets: vec![DecodedSocket {
            name: "a".to_owned(),
            info: Some(vec![("K".to_owned(), "1\nInjected: 2".to_owned())]),
            version: None,
            segments: Vec::new(),
        }],
    };
    assert!(matches!(
        write_dir(&bad, tmp.path()),
        Err(RawError::Unwritable { .. })
    ));
}

#[test]
fn written_files_quote_only_where_needed() {
    let stat = b"# pxname,svname,bin\n\"#p\",s,1\n\"a,b\",\"q\"\"x\",2\nplain,\" sp \",3\n";
    let (_tmp, dir) = snapshot(&[("a_info", INFO), ("a_stat", stat)]);
    let dec = decode(&[encode(&dir, 1_000_000).unwrap().parts[0].as_slice()]).unwrap();
    let out = tempfile::tempdir().unwrap();
    write_dir(&dec, out.path()).unwrap();
    let written = std::fs::read_to_string(out.path().join("a_stat")).unwrap();
    assert_eq!(
        written,
        "# pxname,svname,bin\n\"#p\",s,1\n\"a,b\",\"q\"\"x\",2\nplain, sp ,3\n"
    );
    let info = std::fs::read_to_string(out.path().join("a_info")).unwrap();
    assert_eq!(
        info,
        "Name: HAProxy\nVersion: 2.7.1-3e4af0e\nNbproc: 1\nUptime_sec: 168\n"
    );
}

/// The field names of every segment of every socket of `dir` encoded with
/// `fields`, as a reader of the parts sees them.
fn sent_fields(dir: &std::path::Path, fields: Fields) -> Vec<Vec<String>> {
    let enc = encode_fields(dir, 1_000_000, fields).unwrap();
    let parts: Vec<&[u8]> = enc.parts.iter().map(Vec::as_slice).collect();
    decode(&parts)
        .unwrap()
        .sockets
        .iter()
        .flat_map(|s| &s.segments)
        .map(|seg| seg.field_names().into_iter().map(str::to_owned).collect())
        .collect()
}

const ENGINE_STAT: &[u8] = b"# pxname,svname,qcur,pid,iid,sid,bin,status,lastchg,weight,throttle,type,check_status,ctime,lbtot,addr,\n\
fe,FRONTEND,,1,2,0,10,OPEN,,,,0,,,,,\n\
be,s1,0,1,3,1,20,UP,99,1,0,2,L4OK,5,7,1.2.3.4:80,\n";

#[test]
fn engine_fields_drop_what_the_engine_never_reads_in_header_order() {
    let (_tmp, dir) = snapshot(&[("a_info", INFO), ("a_stat", ENGINE_STAT)]);
    let engine = [
        "pxname",
        "svname",
        "qcur",
        "bin",
        "status",
        "weight",
        "throttle",
        "type",
        "check_status",
        "ctime",
        "lbtot",
    ];
    assert_eq!(sent_fields(&dir, Fields::Engine), [engine]);
    assert_eq!(Fields::default(), Fields::Engine);
    // `all` is every field, as `encode` sends them.
    let header: Vec<String> = std::str::from_utf8(ENGINE_STAT)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("# ")
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(sent_fields(&dir, Fields::All), [header]);
    let enc = encode(&dir, 1_000_000).unwrap();
    let all = encode_fields(&dir, 1_000_000, Fields::All).unwrap();
    assert_eq!(enc.parts, all.parts);

    // The cells sent are those of the fields kept, not their neighbours'.
    let enc = encode_fields(&dir, 1_000_000, Fields::Engine).unwrap();
    let batch = StreamReader::try_new(enc.parts[0].as_slice(), None)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let ints = |name| {
        let a = column(&batch, name).as_primitive::<Int64Type>();
        (0..2)
            .map(|r| a.is_valid(r).then(|| a.value(r)))
            .collect::<Vec<_>>()
    };
    assert_eq!(ints("bin"), [Some(10), Some(20)]);
    assert_eq!(ints("type"), [Some(0), Some(2)]);
    assert_eq!(ints("lbtot"), [None, Some(7)]);
    assert_eq!(text(column(&batch, "status"), 1).as_deref(), Some("UP"));
    assert_eq!(
        text(column(&batch, "check_status"), 1).as_deref(),
        Some("L4OK")
    );
}

#[test]
fn engine_fields_keep_every_column_the_engine_can_read() {
    use crate::catalogue::ProxyKind;
    // Whatever the options of the central that reads them.
    let mut opts = crate::engine::EngineOptions::with_prefix("p");
    opts.aggr_server_metrics = true;
    opts.per_process_metrics = true;
    opts.calculate_percentages = true;
    for name in crate::engine::columns_read(&opts)
        .into_iter()
        .chain([
            "pxname",
            "svname",
            "type",
            "lbtot",
            "status",
            "check_status",
        ])
        .chain(ProxyKind::Frontend.all_metrics().iter().map(|m| m.name))
        .chain(ProxyKind::Backend.all_metrics().iter().map(|m| m.name))
        .chain(ProxyKind::Server.all_metrics().iter().map(|m| m.name))
    {
        assert!(Fields::Engine.keeps(name), "{name}");
    }
    for name in ["pid", "iid", "sid", "lastchg", "addr", "", "-"] {
        assert!(!Fields::Engine.keeps(name), "{name}");
        assert!(Fields::All.keeps(name), "{name}");
    }
    // On real headers (HAProxy 1.4 to 3.0): every field the engine reads
    // is sent, and only the names and statuses besides.
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stat");
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with("_show_stat.csv") {
            continue;
        }
        seen += 1;
        let stat = std::fs::read(&path).unwrap();
        let (_tmp, dir) = snapshot(&[("a_stat", &stat)]);
        let all = sent_fields(&dir, Fields::All);
        let engine = sent_fields(&dir, Fields::Engine);
        assert_eq!(all.len(), engine.len(), "{}", path.display());
        for (all, engine) in all.iter().zip(&engine) {
            let want: Vec<&String> = all
                .iter()
                .filter(|n| {
                    crate::catalogue::columns_ever_read().any(|c| c == n.as_str())
                        || NAMES_AND_STATUSES.contains(&n.as_str())
                })
                .collect();
            assert_eq!(
                engine.iter().collect::<Vec<_>>(),
                want,
                "{}",
                path.display()
            );
            assert!(engine.len() < all.len(), "{}", path.display());
            assert!(!engine.iter().any(|n| n == "pid" || n == "iid"));
        }
    }
    assert!(seen >= 10, "{seen} fixtures");
}

#[test]
fn snapshot_fields_names() {
    for f in Fields::ALL {
        assert_eq!(Fields::parse(f.name()), Some(f));
        assert_eq!(f.to_string(), f.name());
    }
    assert_eq!(Fields::parse("Engine"), None);
    assert_eq!(Fields::parse(""), None);
}

/// The files [`write_dir`] makes of `dec`, by name.
fn written(dec: &DecodedSnapshot) -> Vec<(String, Vec<u8>)> {
    let tmp = tempfile::tempdir().unwrap();
    write_dir(dec, tmp.path()).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_topic_mixing_codecs_decodes() {
    let rows = many_rows(3_000);
    let (_tmp, dir) = snapshot(&[
        ("a_info", INFO),
        ("a_stat", STAT),
        ("b_stat", &rows),
        ("c_info", INFO),
    ]);
    let codecs = [
        BufferCodec::Zstd(1),
        BufferCodec::Lz4Frame,
        BufferCodec::None,
    ];
    let encoded: Vec<Vec<Vec<u8>>> = codecs
        .iter()
        .map(|&c| encode_with(&dir, 1_000_000, Fields::All, c).unwrap().parts)
        .collect();
    let want = written(&decode(&slices(&encoded[0])).unwrap());
    assert_eq!(
        want.len(),
        4,
        "{:?}",
        want.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    // Snapshots of edges set to each codec, one after the other through
    // the same decoder.
    let keep = |name: &str| name != "bin";
    for (codec, parts) in codecs.iter().zip(&encoded) {
        assert_eq!(written(&decode(&slices(parts)).unwrap()), want, "{codec}");
        let projected = decode_columns(&slices(parts), &keep).unwrap();
        assert!(
            projected.sockets[0].segments[0]
                .schema
                .field_with_name("bin")
                .is_err()
        );
    }
    // One snapshot whose parts are in each codec.
    assert!(encoded.iter().all(|p| p.len() == 3));
    let mixed: Vec<&[u8]> = (0..3).map(|i| encoded[i][i].as_slice()).collect();
    assert_eq!(written(&decode(&mixed).unwrap()), want);
}
