//! [`write_dir`]: a decoded snapshot back as the files the engine reads.

use std::path::Path;

use arrow::array::Array;
use arrow::record_batch::RecordBatch;

use super::RawError;
use super::cells::ColumnCells;
use super::decode::{DecodedSnapshot, DecodedSocket, valid_socket_name};

/// Appends `cell` to a CSV line, quoted where the engine would otherwise
/// read it differently: a `,`, `"`, CR or LF in it, or a `#` starting the
/// line (the engine reads such a line as a header).
fn push_cell(line: &mut Vec<u8>, cell: &[u8], first: bool) {
    let quote = cell
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
        || (first && cell.first() == Some(&b'#'));
    if !quote {
        line.extend_from_slice(cell);
        return;
    }
    line.push(b'"');
    for &b in cell {
        if b == b'"' {
            line.push(b'"');
        }
        line.push(b);
    }
    line.push(b'"');
}

/// Appends the rows of `batch` as CSV lines.
fn write_rows(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), String> {
    let columns = batch
        .columns()
        .iter()
        .zip(batch.schema_ref().fields())
        .map(|(array, field)| {
            ColumnCells::of(array.as_ref()).ok_or_else(|| {
                format!(
                    "column {:?} of type {} is not in the format",
                    field.name(),
                    array.data_type()
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut cell = Vec::new();
    for row in 0..batch.num_rows() {
        for (i, cells) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            cell.clear();
            cells.write(row, &mut cell);
            push_cell(out, &cell, i == 0);
        }
        out.push(b'\n');
    }
    Ok(())
}

/// `<socket>_stat`: each segment's header line, then its rows.
fn stat_file(socket: &DecodedSocket) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for segment in &socket.segments {
        let names = segment.field_names();
        if let Some(bad) = names.iter().find(|n| n.contains([',', '\n', '\r'])) {
            return Err(format!("field name {bad:?} cannot be a header field"));
        }
        out.extend_from_slice(format!("# {}\n", names.join(",")).as_bytes());
        for batch in &segment.batches {
            write_rows(batch, &mut out)?;
        }
    }
    Ok(out)
}

/// `<socket>_info`: `Key: value` lines.
fn info_file(pairs: &[(String, String)]) -> Result<String, String> {
    let mut text = String::new();
    for (k, v) in pairs {
        if k.contains(": ") || k.contains('\n') || v.contains('\n') {
            return Err(format!("show info pair {k:?}: {v:?} cannot be a line"));
        }
        text.push_str(k);
        text.push_str(": ");
        text.push_str(v);
        text.push('\n');
    }
    Ok(text)
}

/// Writes `snapshot` into the directory `dir` (created if missing; usually
/// `<src-dir>/<snapshot.ts>`) as `<socket>_info` (when the socket had info)
/// and `<socket>_stat` (when it had rows under a header) files that the
/// engine reads as it read the original ones (see the module documentation
/// of [`crate::raw`] for what a round trip keeps).
pub fn write_dir(snapshot: &DecodedSnapshot, dir: &Path) -> Result<(), RawError> {
    let write_err = |path: &Path, source| RawError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    for socket in &snapshot.sockets {
        let unwritable = |detail: String| RawError::Unwritable {
            socket: socket.name.clone(),
            detail,
        };
        if !valid_socket_name(&socket.name) {
            return Err(unwritable("not a file name".to_owned()));
        }
        if let Some(pairs) = &socket.info {
            let path = dir.join(format!("{}_info", socket.name));
            let text = info_file(pairs).map_err(unwritable)?;
            std::fs::write(&path, text).map_err(|e| write_err(&path, e))?;
        }
        if !socket.segments.is_empty() {
            let path = dir.join(format!("{}_stat", socket.name));
            let text = stat_file(socket).map_err(unwritable)?;
            std::fs::write(&path, text).map_err(|e| write_err(&path, e))?;
        }
    }
    Ok(())
}
