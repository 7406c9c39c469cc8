//! Prometheus remote write (`[remote-write]`, issue 28): every series of
//! every snapshot pushed to a receiver (Prometheus with
//! `--web.enable-remote-write-receiver`, VictoriaMetrics, Mimir, Thanos),
//! acknowledged like every other sink.
//!
//! - [`wire`]: a snapshot's series as remote-write 1.0 requests: protobuf
//!   `WriteRequest`s, snappy-compressed (pure).
//! - [`response`]: what a receiver's answer means: delivered, retry after a
//!   while, or rejected for good (pure).
//! - [`queue`]: the backlog of snapshots' requests, bounded in samples
//!   (pure).
//! - [`config`]: the section `[remote-write]`.
//! - [`task`]: the sink's task: one request out at a time on a kept-alive
//!   connection, run by the shared writer shell.
//!
//! The series are the `[prometheus]` page's, through the one mapping
//! ([`crate::sink::prometheus::series`]).

pub mod config;
pub mod queue;
pub mod response;
pub mod task;
pub mod wire;

use crate::config::Config;

/// The sink: the shared writer shell around [`task::RemoteWriteTask`].
pub type RemoteWriteSink = crate::sink::writer_shell::WriterSink<task::RemoteWriteTask>;

/// The sink `[remote-write]` configures, when declared.
pub fn spec(config: &Config, naming: &super::Naming<'_>) -> super::Started {
    let Some(section) = config.sinks.get::<self::config::RemoteWriteSection>() else {
        return Ok(None);
    };
    let settings = task::Settings {
        config: section.clone(),
        layout: PathLayout::new(config, naming.prefix, naming.host, naming.lines),
    };
    tracing::info!(url = %section.url, "remote-write: pushing every snapshot");
    Ok(Some(super::SinkSpec::new("remote-write", move || {
        RemoteWriteSink::new(settings.clone())
    })))
}

use crate::sink::paths::PathLayout;
use crate::sink::prometheus::series::each_series;
use wire::{Request, Requests, WireError};

/// A snapshot's requests, and how many of its lines are no series (see
/// [`each_series`]) or have no finite value in the family's unit. Each
/// sample is stamped with its line's timestamp (the snapshot's `ts`; a
/// cluster window's `T`), in milliseconds.
pub fn requests_of<C: AsRef<[u8]>>(
    chunks: &[C],
    layout: &PathLayout,
    cluster: Option<&str>,
    max_samples: usize,
) -> Result<(Vec<Request>, u64), WireError> {
    let mut requests = Requests::new(max_samples);
    let mut unsent = 0;
    let mut failed = None;
    unsent += each_series(chunks, layout, cluster, |series| {
        if failed.is_some() {
            return;
        }
        let (Some(value), Ok(seconds)) = (series.value(), series.timestamp.parse::<i64>()) else {
            unsent += 1;
            return;
        };
        let ms = seconds.saturating_mul(1000);
        if let Err(e) = requests.push(&series.family.name, series.labels, value, ms) {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    Ok((requests.finish()?, unsent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshots_lines_become_requests_of_its_series_at_its_ts_in_ms() {
        let lines = "ns.lb1.haproxy.frontend.fe.req_tot 100 1700000000\n\
                     ns.lb1.haproxy.daemon.Memmax_MB 1 1700000000\n\
                     ns.lb1.haproxy.backend.be.server.s1.scur 3 1700000000\n\
                     garbage\n";
        let (requests, unsent) =
            requests_of(&[lines.as_bytes()], &PathLayout::test_node(), None, 2).expect("requests");
        assert_eq!(unsent, 1);
        assert_eq!(
            requests.iter().map(|r| r.samples).collect::<Vec<_>>(),
            vec![2, 1]
        );
        let body = snap::raw::Decoder::new()
            .decompress_vec(&requests[1].body)
            .expect("snappy");
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("haproxystats_server_scur") && text.contains("s1"),
            "{text:?}"
        );
        // 1700000000000 ms, as the protobuf varint it is.
        let mut ts = Vec::new();
        let mut v: u64 = 1_700_000_000_000;
        while v >= 0x80 {
            ts.push((v as u8) | 0x80);
            v >>= 7;
        }
        ts.push(v as u8);
        assert!(body.windows(ts.len()).any(|w| w == ts.as_slice()));
    }
}
