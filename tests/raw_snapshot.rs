//! Raw snapshots (`haproxystats::raw`) end to end: a snapshot directory
//! encoded into parts, decoded and written back gives the engine (what
//! `replay` runs) the same lines as the original, and so does the engine
//! reading the decoded batches directly (central's path) — on the corpus, the
//! fixtures, defective files and generated snapshots —, a big snapshot
//! splits into parts each valid alone, and pyarrow reads every part as it is.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{ArrowPrimitiveType, DataType, Int32Type, Int64Type, UInt64Type};
use arrow_ipc::reader::StreamReader;
use haproxystats::engine::{EngineOptions, process_decoded_into, process_snapshot};
use haproxystats::raw::{self, DecodedSnapshot, EncodedSnapshot, Fields, MESSAGE_MARGIN, keys};
use support::collected::Collected;

const TS: &str = "1700000000";

fn manifest(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Engine options with every optional output on.
fn options() -> EngineOptions {
    let mut opts = EngineOptions::with_prefix("lb.haproxy");
    opts.aggr_server_metrics = true;
    opts.per_process_metrics = true;
    opts.calculate_percentages = true;
    opts
}

/// What `replay` prints for `dir`, but the self metrics that measure time;
/// an error as its kind.
fn replay_lines(dir: &Path) -> String {
    let mut out = Vec::new();
    match process_snapshot(dir, &options(), &mut out) {
        Ok(_) => String::from_utf8(out)
            .unwrap()
            .lines()
            .filter(|l| !l.contains("WallClockTime"))
            .map(|l| format!("{l}\n"))
            .collect(),
        Err(e) => format!("error: {}", e.kind()),
    }
}

fn slices(parts: &[Vec<u8>]) -> Vec<&[u8]> {
    parts.iter().map(Vec::as_slice).collect()
}

/// [`round_trip_fields`] with every column (what it returns) and with the
/// engine's columns (`[kafka] snapshot-fields`, the edge's default).
fn round_trip(dir: &Path, limit: usize) -> (EncodedSnapshot, DecodedSnapshot) {
    let (engine, _) = round_trip_fields(dir, limit, Fields::Engine);
    let (all, dec) = round_trip_fields(dir, limit, Fields::All);
    let bytes = |enc: &EncodedSnapshot| enc.parts.iter().map(Vec::len).sum::<usize>();
    assert!(
        bytes(&engine) <= bytes(&all),
        "{}: {} bytes with the engine's columns, {} with all",
        dir.display(),
        bytes(&engine),
        bytes(&all)
    );
    (all, dec)
}

/// Encodes `dir` under `limit` with `fields`, checks every part's size,
/// decodes the parts (in reverse order), writes them back and checks that
/// the engine gives the same lines for both directories.
fn round_trip_fields(
    dir: &Path,
    limit: usize,
    fields: Fields,
) -> (EncodedSnapshot, DecodedSnapshot) {
    let enc = raw::encode_fields(dir, limit, fields)
        .unwrap_or_else(|e| panic!("{} ({fields}): {e}", dir.display()));
    for (i, part) in enc.parts.iter().enumerate() {
        assert!(
            part.len() <= limit - MESSAGE_MARGIN,
            "{}: part {i} has {} bytes, limit {limit}",
            dir.display(),
            part.len()
        );
    }
    let mut parts = slices(&enc.parts);
    parts.reverse();
    let dec = raw::decode(&parts).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert_eq!(
        dec.ts.to_string(),
        dir.file_name().unwrap().to_str().unwrap()
    );
    let tmp = tempfile::tempdir().unwrap();
    let written = tmp.path().join(dec.ts.to_string());
    raw::write_dir(&dec, &written).unwrap();
    let want = replay_lines(dir);
    assert!(want.lines().count() > 10, "{}: {want}", dir.display());
    let got = replay_lines(&written);
    assert_same_lines(dir, limit, &want, &got, &format!("written back ({fields})"));
    // The engine's Arrow front end, reading the decoded batches as they are.
    let got = decoded_lines(&dec);
    assert_same_lines(
        dir,
        limit,
        &want,
        &got,
        &format!("read from the batches ({fields})"),
    );
    // Central decodes only the columns the engine reads.
    let columns = haproxystats::engine::columns_read(&options());
    let projected = raw::decode_columns(&parts, &|name| columns.contains(name))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    if let Some(segment) = projected.sockets.iter().flat_map(|s| &s.segments).next() {
        assert!(
            segment.schema.fields().len() <= columns.len() + 2,
            "{}: {} columns decoded",
            dir.display(),
            segment.schema.fields().len()
        );
    }
    let got = decoded_lines(&projected);
    assert_same_lines(
        dir,
        limit,
        &want,
        &got,
        &format!("read from the engine's columns ({fields})"),
    );
    (enc, dec)
}

/// What the engine gives for a decoded snapshot (`process_decoded_into`,
/// as central runs it), as [`replay_lines`] shows it.
fn decoded_lines(dec: &DecodedSnapshot) -> String {
    let mut out = Collected::default();
    match process_decoded_into(dec, "lb", &options(), &mut out) {
        Ok((report, partial)) => {
            assert_eq!(partial.ts, dec.ts);
            assert_eq!(partial.lb, "lb");
            let text = String::from_utf8(out.0.concat()).unwrap();
            assert_eq!(report.lines, text.lines().count());
            text.lines()
                .filter(|l| !l.contains("WallClockTime"))
                .map(|l| format!("{l}\n"))
                .collect()
        }
        Err(e) => format!("error: {}", e.kind()),
    }
}

fn assert_same_lines(dir: &Path, limit: usize, want: &str, got: &str, how: &str) {
    if got != want {
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .filter(|(a, b)| a != b)
            .take(5)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!(
            "{} (limit {limit}): {} lines vs {} {how}\n{}",
            dir.display(),
            want.lines().count(),
            got.lines().count(),
            diff.join("\n")
        );
    }
}

/// A snapshot directory holding `files`: (name, content).
fn snapshot(files: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(TS);
    std::fs::create_dir(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    (tmp, dir)
}

/// The captures of the fixtures (the shared corpus, HAProxy 1.4 to 2.7,
/// is among them), as (file name, content): `f<version>_stat` / `_info`.
fn captures() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (origin, dir) in [("f", "tests/fixtures/stat")] {
        let entries =
            std::fs::read_dir(manifest(dir)).unwrap_or_else(|e| panic!("cannot list {dir}: {e}"));
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let name = if let Some(v) = name.strip_suffix("_show_stat.csv") {
                format!("{origin}{v}_stat")
            } else if let Some(v) = name.strip_suffix("_show_info.txt") {
                format!("{origin}{v}_info")
            } else {
                continue;
            };
            files.push((name, std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    assert!(files.len() >= 10, "{} files", files.len());
    files
}

/// A snapshot directory of every capture.
fn all_captures() -> (tempfile::TempDir, PathBuf, Vec<(String, Vec<u8>)>) {
    let all = captures();
    let files: Vec<(&str, Vec<u8>)> = all.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let (tmp, dir) = snapshot(&files);
    (tmp, dir, all)
}

#[test]
fn corpus_and_fixtures_give_the_same_lines() {
    let (_tmp, dir, all) = all_captures();
    // All in one snapshot, then each stat file alone with the 2.7.1 info.
    for limit in [1_000_000, MESSAGE_MARGIN + 24 * 1024] {
        let (enc, dec) = round_trip(&dir, limit);
        let mut names: Vec<&str> = all.iter().map(|(n, _)| &n[..n.len() - 5]).collect();
        names.dedup();
        assert_eq!(dec.sockets.len(), names.len());
        assert!(enc.warnings.is_empty(), "{:?}", enc.warnings);
    }
    let info = std::fs::read(manifest("tests/fixtures/stat/2.7.1_show_info.txt")).unwrap();
    for (name, text) in all.iter().filter(|(n, _)| n.ends_with("_stat")) {
        let (_tmp, dir) = snapshot(&[(name, text.clone()), ("p_info", info.clone())]);
        round_trip(&dir, 1_000_000);
    }
}

/// A `show stat` file with what HAProxy and broken outputs put in one.
fn defective_stat() -> Vec<u8> {
    let mut t = String::new();
    t.push_str("\n# pxname,svname,qcur,scur,bin,bout,status,weight,act,lbtot,type,qtime,ctime,rtime,ttime,hrsp_2xx,hrsp_5xx,req_tot,check_status,h2_open_connections,h2_open_connections,-,(null),\r\n");
    t.push_str("fe,FRONTEND,,3,100,200,OPEN,,,,0,,,,,10,1,11,,1,2,,,\r\n");
    t.push_str("\"#hash,fe\",FRONTEND,,1,5,6,OPEN,,,,0,,,,,1,0,1,,,,,,\n");
    t.push_str("be,BACKEND,0,2,300,400,UP,2,2,18446744073709551615,1,1,2,3,4,5,0,5,,,,,,\n");
    t.push_str("be,srv1,0,1,150,200,UP 1/2,1,1,9223372036854775808,2,2,3,4,5,3,0,,L7OK,,,,,\n");
    t.push_str("be,\"srv \"\"2\"\"\",0,1,150,200,DOWN (agent),1,1,7,2,0,0,0,0,2,0,,L4TOUT,,,,,\n");
    t.push_str("be,srv3,0,007,+5, 9,MAINT,1,0,x,2,,,,,,,,,,,,,\n");
    t.push_str("be,short,row\n");
    t.push_str("be,listener,,,,,OPEN,,,,3,,,,,,,,,,,,,\n");
    t.push_str(",emptypx,,,,,UP,,,,2,,,,,,,,,,,,,\n");
    t.push_str("# not a header\n");
    t.push_str("# pxname,svname,qcur,scur,bin,bout,status,weight,act,lbtot,type,qtime,ctime,rtime,ttime,hrsp_2xx,hrsp_5xx,req_tot,check_status,h2_open_connections,h2_open_connections,-,(null),\n");
    t.push_str("be2,BACKEND,0,0,1,1,UP,1,1,1,1,0,0,0,0,0,0,0,,,,,,\n");
    t.push_str("# svname,pxname,type,bin,lbtot,weight\n");
    t.push_str("srvA,be3,2,10,4,3\n");
    t.push_str("BACKEND,be3,1,10,4,3\n");
    t.push_str("be3,broken\"quote,2,1,1,1\n");
    t.push_str("srvB,be3,2,-5,-1,1\n");
    t.push_str("srvC,be3,2,1,2");
    t.into_bytes()
}

#[test]
fn defective_files_give_the_same_lines() {
    let info = b"Name: HAProxy\nVersion: 1.9\nNbproc: x\nNbproc: 2\nProcess_num: 1\n\
                 Idle_pct:  1_0 \r\nUptime_sec: 99\njunk line\nCurrConns: 18446744073709551615\n"
        .to_vec();
    let (_tmp, dir) = snapshot(&[
        ("a_info", info.clone()),
        ("a_stat", defective_stat()),
        (
            "b_info",
            String::from_utf8(info.clone())
                .unwrap()
                .replace("Process_num: 1", "Process_num: 2")
                .into_bytes(),
        ),
        ("c_stat", b"# pxname,svname,bin\n".to_vec()),
        ("d_info", Vec::new()),
        ("e_stat", b"no header here\nfe,FRONTEND,1\n".to_vec()),
        ("f_stat", Vec::new()),
    ]);
    let (enc, dec) = round_trip(&dir, 1_000_000);
    let kinds: Vec<String> = enc
        .warnings
        .iter()
        .map(|w| format!("{:?}", w.kind))
        .collect();
    assert!(
        kinds.iter().any(|k| k.starts_with("CellCount")) && kinds.iter().any(|k| k == "BadRow"),
        "{kinds:?}"
    );
    let a = &dec.sockets[0];
    assert_eq!(a.segments.len(), 2);
    assert_eq!(
        a.info_value("Nbproc"),
        Some("x"),
        "the first of a repeated key"
    );
    let lbtot = a.segments[0].schema.field_with_name("lbtot").unwrap();
    assert_eq!(
        lbtot.data_type(),
        &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        "x in it"
    );
    round_trip(&dir, MESSAGE_MARGIN + 8 * 1024);
}

/// `gen_snapshot.py` into `out` with `args`; the snapshot directory.
fn generate(out: &Path, args: &[&str]) -> PathBuf {
    let status = Command::new("python3")
        .arg(manifest("tools/gen_snapshot.py"))
        .arg("--out")
        .arg(out)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 runs tools/gen_snapshot.py");
    assert!(status.success(), "gen_snapshot.py {args:?}");
    out.join(TS)
}

#[test]
fn generated_snapshots_give_the_same_lines() {
    for args in [
        "--processes 3 --backends 40 --servers 8 --weird-names --seed 5",
        "--processes 2 --backends 30 --legacy-info --unique-ratio 0.3 --idle-ratio 0.6 --seed 6",
    ] {
        let args: Vec<&str> = args.split_whitespace().collect();
        let tmp = tempfile::tempdir().unwrap();
        let dir = generate(tmp.path(), &args);
        let (_, small) = round_trip(&dir, 1_000_000);
        let (enc, dec) = round_trip(&dir, MESSAGE_MARGIN + 32 * 1024);
        assert!(
            enc.parts.len() > dec.sockets.len(),
            "{args:?}: {} parts",
            enc.parts.len()
        );
        for (a, b) in small.sockets.iter().zip(&dec.sockets) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.info, b.info);
            let rows =
                |s: &raw::DecodedSocket| s.batches().map(RecordBatch::num_rows).sum::<usize>();
            assert_eq!(rows(a), rows(b));
        }
    }
}

/// A generated snapshot of about 10 MB of CSV (2 processes), made once
/// under the target directory.
fn big_snapshot() -> &'static Path {
    static BIG: OnceLock<PathBuf> = OnceLock::new();
    BIG.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("raw_big_snapshot_2x600");
        let args: Vec<&str> = "--processes 2 --backends 600 --servers 20 --weird-names --seed 3"
            .split_whitespace()
            .collect();
        let dir = out.join(TS);
        if !dir.join("admin2.sock_stat").exists() {
            let _ = std::fs::remove_dir_all(&out);
            generate(&out, &args);
        }
        dir
    })
}

#[test]
fn a_big_snapshot_splits_into_parts_valid_alone() {
    let dir = big_snapshot();
    let limit = 1_000_000;
    let t = Instant::now();
    let enc = raw::encode(dir, limit).unwrap();
    let encode_time = t.elapsed();
    let t = Instant::now();
    let dec = raw::decode(&slices(&enc.parts)).unwrap();
    let decode_time = t.elapsed();
    let part_bytes: usize = enc.parts.iter().map(Vec::len).sum();
    println!(
        "big snapshot: {} bytes of files, {} parts, {part_bytes} bytes of parts ({:.1}%), \
         encode {encode_time:?}, decode {decode_time:?} (this build)",
        enc.input_bytes,
        enc.parts.len(),
        100.0 * part_bytes as f64 / enc.input_bytes as f64
    );
    assert!(enc.input_bytes > 8_000_000, "{}", enc.input_bytes);
    assert!(enc.warnings.is_empty(), "{:?}", enc.warnings);
    assert_eq!(dec.sockets.len(), 2);
    let mut per_socket = std::collections::BTreeMap::<String, usize>::new();
    for (i, part) in enc.parts.iter().enumerate() {
        assert!(
            part.len() <= limit - MESSAGE_MARGIN,
            "part {i}: {}",
            part.len()
        );
        // Valid alone: a whole stream of whole batches, as its metadata says.
        let reader = StreamReader::try_new(part.as_slice(), None).unwrap();
        let md = reader.schema().metadata().clone();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(md.get(keys::BATCHES).unwrap(), &batches.len().to_string());
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(md.get(keys::ROWS).unwrap(), &rows.to_string());
        *per_socket
            .entry(md.get(keys::SOCKET).unwrap().clone())
            .or_default() += 1;
    }
    assert!(
        per_socket.values().all(|&n| n >= 2),
        "each socket spans parts: {per_socket:?}"
    );
    for socket in &dec.sockets {
        let batches = socket.segments[0].batches.len();
        assert!(batches >= per_socket[&socket.name], "{}", socket.name);
    }
    // The edge's default sends only what the engine reads, names and
    // statuses: fewer bytes, no `pid`.
    let t = Instant::now();
    let engine = raw::encode_fields(dir, limit, Fields::Engine).unwrap();
    let engine_time = t.elapsed();
    let engine_bytes: usize = engine.parts.iter().map(Vec::len).sum();
    println!(
        "big snapshot, engine's columns: {} parts, {engine_bytes} bytes ({:.1}%), encode {engine_time:?}",
        engine.parts.len(),
        100.0 * engine_bytes as f64 / engine.input_bytes as f64
    );
    assert!(engine_bytes < part_bytes, "{engine_bytes} vs {part_bytes}");
    let fields_of = |enc: &EncodedSnapshot| {
        let dec = raw::decode(&slices(&enc.parts)).unwrap();
        let segment = &dec.sockets[0].segments[0];
        segment
            .field_names()
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (all_fields, engine_fields) = (fields_of(&enc), fields_of(&engine));
    assert!(all_fields.iter().any(|f| f == "pid"), "{all_fields:?}");
    assert!(
        !engine_fields.iter().any(|f| f == "pid"),
        "{engine_fields:?}"
    );
    for name in raw::NAMES_AND_STATUSES.iter().chain(&["lbtot", "bin"]) {
        assert!(
            engine_fields.iter().any(|f| f == name),
            "{name}: {engine_fields:?}"
        );
    }
    round_trip(dir, limit);
}

/// Makes sure `python3` can import pyarrow: installs it if missing, or
/// fails saying how.
fn python_with_pyarrow() {
    let has = || {
        Command::new("python3")
            .args(["-c", "import pyarrow"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if has() {
        return;
    }
    for args in [
        &["-m", "pip", "install", "--quiet", "pyarrow"][..],
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--break-system-packages",
            "pyarrow",
        ],
    ] {
        eprintln!("pyarrow is missing: python3 {}", args.join(" "));
        let _ = Command::new("python3").args(args).status();
        if has() {
            return;
        }
    }
    panic!(
        "pyarrow is missing and could not be installed: run `python3 -m pip install pyarrow` \
         (or with --break-system-packages) and run this test again"
    );
}

/// The sum of the values of an integer column.
fn sum_of<T: ArrowPrimitiveType>(array: &dyn Array) -> i128
where
    T::Native: Into<i128>,
{
    array
        .as_primitive::<T>()
        .iter()
        .flatten()
        .map(Into::into)
        .sum()
}

/// What the pyarrow script prints for a part, computed from the Rust side.
fn summary(part: &[u8], file: &Path) -> String {
    let reader = StreamReader::try_new(part, None).unwrap();
    let schema = reader.schema();
    let md = schema.metadata();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let get = |k: &str| md.get(k).cloned().unwrap_or_else(|| "-".to_owned());
    let first_key = md
        .get(keys::INFO)
        .and_then(|i| i.lines().next())
        .and_then(|l| l.split_once(": "))
        .map_or("-".to_owned(), |(k, _)| k.to_owned());
    let px = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map_or("-".to_owned(), |b| {
            let dict = b
                .column_by_name("pxname")
                .unwrap()
                .as_dictionary::<Int32Type>();
            let key = dict.keys().value(0) as usize;
            dict.values().as_string::<i32>().value(key).to_owned()
        });
    let mut sum: i128 = 0;
    let mut bin_type = "-".to_owned();
    for b in &batches {
        let Some(bin) = b.column_by_name("bin") else {
            continue;
        };
        let (name, values) = match bin.data_type() {
            DataType::Int64 => ("int64", sum_of::<Int64Type>(bin)),
            DataType::UInt64 => ("uint64", sum_of::<UInt64Type>(bin)),
            _ => ("other", 0),
        };
        bin_type = name.to_owned();
        sum += values;
    }
    let nulls: usize = batches
        .iter()
        .filter_map(|b| b.column_by_name("qcur"))
        .map(|c| c.null_count())
        .sum();
    [
        file.display().to_string(),
        rows.to_string(),
        get(keys::SOCKET),
        get(keys::PART),
        get(keys::PARTS),
        get(keys::TS),
        get(keys::VERSION),
        get(keys::FORMAT),
        first_key,
        px,
        sum.to_string(),
        bin_type,
        nulls.to_string(),
    ]
    .join("\t")
}

const PYARROW_SCRIPT: &str = r#"
import sys
import pyarrow.ipc as ipc
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        table = ipc.open_stream(f).read_all()
    md = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    info = md.get("haproxystats.info")
    first_key = info.split("\n")[0].split(": ", 1)[0] if info else "-"
    names = table.column_names
    px = table.column("pxname")[0].as_py() if table.num_rows else "-"
    if "pxname" in names:
        assert str(table.schema.field("pxname").type) == "dictionary<values=string, indices=int32, ordered=0>"
    bins = table.column("bin").to_pylist() if "bin" in names else []
    bin_type = str(table.schema.field("bin").type) if "bin" in names else "-"
    nulls = table.column("qcur").null_count if "qcur" in names else 0
    print("\t".join(str(x) for x in [
        path, table.num_rows, md["haproxystats.socket"], md["haproxystats.part"],
        md["haproxystats.parts"], md["haproxystats.ts"], md.get("haproxystats.haproxy_version", "-"),
        md["haproxystats.format"], first_key, px, sum(b for b in bins if b is not None), bin_type, nulls,
    ]))
"#;

#[test]
fn pyarrow_reads_every_part_as_it_is() {
    python_with_pyarrow();
    let (_tmp, small, _) = all_captures();
    let big = raw::encode(big_snapshot(), 1_000_000).unwrap();
    let big_engine = raw::encode_fields(big_snapshot(), 1_000_000, Fields::Engine).unwrap();
    let small = raw::encode(&small, 1_000_000).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut want = String::new();
    for (name, enc) in [
        ("big", &big),
        ("big-engine", &big_engine),
        ("small", &small),
    ] {
        for (i, part) in enc.parts.iter().enumerate() {
            let file = out.path().join(format!("{name}-{i}.arrows"));
            std::fs::write(&file, part).unwrap();
            want.push_str(&summary(part, &file));
            want.push('\n');
            files.push(file);
        }
    }
    let output = Command::new("python3")
        .arg("-c")
        .arg(PYARROW_SCRIPT)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got = String::from_utf8(output.stdout).unwrap();
    assert_eq!(got, want);
    // The values are there, not just consistent: a 2.7.1 socket with its info.
    assert!(
        got.lines().any(|l| l.contains("\tf2.7.1\t")
            && l.contains("\t2.7.1-3e4af0e\tarrow-ipc/1\tName\tstats\t")),
        "{got}"
    );
    assert!(
        got.lines()
            .filter(|l| l.contains("big-"))
            .all(|l| l.contains("\tint64\t"))
    );
}

/// A generated snapshot of 3 processes, 40 backends of 8 servers.
fn small_generated(tmp: &tempfile::TempDir) -> PathBuf {
    let args: Vec<&str> = "--processes 3 --backends 40 --servers 8 --weird-names --seed 5"
        .split_whitespace()
        .collect();
    generate(tmp.path(), &args)
}

#[test]
fn every_codec_gives_the_same_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_generated(&tmp);
    let want = replay_lines(&dir);
    let limit = MESSAGE_MARGIN + 32 * 1024;
    for codec in support::crafted::CODECS {
        let enc = raw::encode_with(&dir, limit, Fields::All, codec).unwrap();
        assert!(enc.parts.len() > 3, "{codec}: {} parts", enc.parts.len());
        assert!(enc.parts.iter().all(|p| p.len() <= limit - MESSAGE_MARGIN));
        let dec = raw::decode(&slices(&enc.parts)).unwrap_or_else(|e| panic!("{codec}: {e}"));
        assert_same_lines(&dir, limit, &want, &decoded_lines(&dec), &codec.to_string());
        let largest = enc
            .parts
            .iter()
            .map(|p| raw::claims(p).unwrap().largest_ratio)
            .fold(0.0, f64::max);
        assert_eq!(largest > 0.0, codec != raw::BufferCodec::None, "{codec}");
    }
}

#[test]
fn a_crafted_claim_is_refused_by_the_walk_for_every_codec() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_generated(&tmp);
    for codec in support::crafted::CODECS {
        let enc = raw::encode_with(&dir, MESSAGE_MARGIN + 32 * 1024, Fields::All, codec).unwrap();
        let part = &enc.parts[0];
        let buffers = support::crafted::compressed_buffers(part, |packed| packed < 16 * 1024);
        if codec == raw::BufferCodec::None {
            // Nothing claims a size: arrow reads the buffers where they lie.
            assert!(buffers.is_empty());
            let claims = raw::claims(part).unwrap();
            assert!(claims.bytes <= part.len() as u64, "{claims:?}");
            continue;
        }
        // A GiB from a buffer of at most 16 KiB: above the ratio.
        let buffer = buffers[0];
        let crafted = support::crafted::with_claim(part, buffer, 1 << 30);
        let mut parts = slices(&enc.parts);
        parts[0] = &crafted;
        let walk = format!(
            "buffer {} claims 1073741824 bytes from {}, more than {} times",
            buffer.index,
            buffer.packed,
            raw::MAX_COMPRESSION_RATIO
        );
        // The walk that runs before arrow reads a batch says it.
        assert_eq!(raw::claims(&crafted), Err(walk.clone()), "{codec}");
        let err = raw::decode(&parts).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("part 0: not a valid Arrow IPC stream: {walk}"),
            "{codec}"
        );
        // Each buffer within the ratio, but all of them more than the
        // part may claim in all.
        let (at, part) = enc
            .parts
            .iter()
            .enumerate()
            .max_by_key(|(_, p)| p.len())
            .unwrap();
        let mut crafted = part.clone();
        for buffer in support::crafted::compressed_buffers(part, |packed| packed < 16 * 1024) {
            let claim = buffer.packed as i64 * raw::MAX_COMPRESSION_RATIO;
            crafted = support::crafted::with_claim(&crafted, buffer, claim);
        }
        let mut parts = slices(&enc.parts);
        parts[at] = &crafted;
        let err = raw::decode(&parts).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "part {at}: not a valid Arrow IPC stream: buffers claim "
            )) && err.ends_with(&format!(
                "bytes, more than {} times the part's {}",
                raw::MAX_PART_RATIO,
                part.len()
            )),
            "{codec}: {err}"
        );
    }
}
