//! Prometheus remote write 1.0 on the wire
//! (<https://prometheus.io/docs/specs/remote_write_spec/>): each request
//! body is a protobuf `WriteRequest` compressed with snappy's block format.
//!
//! ```text
//! message WriteRequest { repeated TimeSeries timeseries = 1; }
//! message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! message Label        { string name = 1; string value = 2; }
//! message Sample       { double value = 1; int64 timestamp = 2; }
//! ```
//!
//! Written here field by field rather than through generated message
//! types: a large load balancer's snapshot is ~700 000 series, and owned
//! messages would cost several allocations each; the format of these four
//! messages is fixed by the spec. The tests decode what this writes with
//! `prost` (an independent implementation), and the integration tests
//! send it to a real Prometheus and VictoriaMetrics. Snappy is the `snap`
//! crate (BurntSushi's, the reference Rust implementation).
//!
//! Pure.

/// `Content-Type` of a request.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// `Content-Encoding` of a request.
pub const CONTENT_ENCODING: &str = "snappy";
/// The version header the spec requires, and its value.
pub const VERSION_HEADER: (&str, &str) = ("X-Prometheus-Remote-Write-Version", "0.1.0");

/// One request: a compressed `WriteRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The body, snappy-compressed (shared: sent again as is).
    pub body: bytes::Bytes,
    /// Samples in it.
    pub samples: usize,
}

/// Why a request could not be made.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Snappy refused the body (only past 4 GiB, which
    /// `max-samples-per-request` keeps far away).
    #[error("cannot snappy-compress a remote write request of {bytes} bytes: {source}")]
    Compress {
        /// Bytes of the uncompressed body.
        bytes: usize,
        /// Snappy's reason.
        source: snap::Error,
    },
}

/// The requests of one snapshot, at most `max_samples` samples each (one
/// sample per series: a snapshot has one value per series).
#[derive(Debug)]
pub struct Requests {
    max_samples: usize,
    body: Vec<u8>,
    samples: usize,
    done: Vec<Request>,
    encoder: snap::raw::Encoder,
    /// Reused for sorting each series' labels.
    sorted: Vec<usize>,
}

/// Label names must be sorted; `__name__` sorts before every label we
/// write (`_` is below every small letter).
const NAME_LABEL: &str = "__name__";

impl Requests {
    /// No series yet; requests of at most `max_samples` samples (at least 1).
    pub fn new(max_samples: usize) -> Requests {
        Requests {
            max_samples: max_samples.max(1),
            body: Vec::new(),
            samples: 0,
            done: Vec::new(),
            encoder: snap::raw::Encoder::new(),
            sorted: Vec::new(),
        }
    }

    /// Adds the series `name{labels}` with one sample, `value` at
    /// `timestamp_ms` (milliseconds since the epoch). Labels with an empty
    /// value are left out (the spec forbids them); the others are sorted by
    /// name, after `__name__`.
    pub fn push(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: f64,
        timestamp_ms: i64,
    ) -> Result<(), WireError> {
        self.sorted.clear();
        self.sorted.extend(
            labels
                .iter()
                .enumerate()
                .filter(|(_, (_, v))| !v.is_empty())
                .map(|(i, _)| i),
        );
        self.sorted.sort_by_key(|&i| labels.get(i).map(|(n, _)| *n));
        let label_len = |n: &str, v: &str| field_len(n.len()) + field_len(v.len());
        let sample_len = 1 + 8 + 1 + varint_len(timestamp_ms as u64);
        let mut series_len = field_len(label_len(NAME_LABEL, name)) + field_len(sample_len);
        for &i in &self.sorted {
            if let Some((n, v)) = labels.get(i) {
                series_len += field_len(label_len(n, v));
            }
        }
        let out = &mut self.body;
        key(out, 1, LENGTH_DELIMITED);
        varint(out, series_len as u64);
        let label = |out: &mut Vec<u8>, n: &str, v: &str| {
            key(out, 1, LENGTH_DELIMITED);
            varint(out, label_len(n, v) as u64);
            bytes(out, 1, n.as_bytes());
            bytes(out, 2, v.as_bytes());
        };
        label(out, NAME_LABEL, name);
        for &i in &self.sorted {
            if let Some((n, v)) = labels.get(i) {
                label(out, n, v);
            }
        }
        key(out, 2, LENGTH_DELIMITED);
        varint(out, sample_len as u64);
        key(out, 1, FIXED64);
        out.extend_from_slice(&value.to_le_bytes());
        key(out, 2, VARINT);
        // int64 as protobuf writes it: two's complement, ten bytes when negative.
        varint(out, timestamp_ms as u64);
        self.samples += 1;
        if self.samples >= self.max_samples {
            self.cut()?;
        }
        Ok(())
    }

    /// The requests made of everything pushed.
    pub fn finish(mut self) -> Result<Vec<Request>, WireError> {
        self.cut()?;
        Ok(self.done)
    }

    /// Closes the current request, if it has a sample.
    fn cut(&mut self) -> Result<(), WireError> {
        if self.samples == 0 {
            return Ok(());
        }
        let body = self
            .encoder
            .compress_vec(&self.body)
            .map_err(|source| WireError::Compress {
                bytes: self.body.len(),
                source,
            })?;
        self.done.push(Request {
            body: body.into(),
            samples: self.samples,
        });
        self.body.clear();
        self.samples = 0;
        Ok(())
    }
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;

fn key(out: &mut Vec<u8>, field: u8, wire_type: u8) {
    out.push((field << 3) | wire_type);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    // 7 bits a byte; 0 takes one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// A length-delimited field of `len` bytes, key and length included.
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn bytes(out: &mut Vec<u8>, field: u8, data: &[u8]) {
    key(out, field, LENGTH_DELIMITED);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    // The spec's messages, decoded by prost: an implementation that is not
    // ours.
    #[derive(Clone, PartialEq, prost::Message)]
    struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        timeseries: Vec<TimeSeries>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        samples: Vec<Sample>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Label {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(string, tag = "2")]
        value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Sample {
        #[prost(double, tag = "1")]
        value: f64,
        #[prost(int64, tag = "2")]
        timestamp: i64,
    }

    fn decode(request: &Request) -> WriteRequest {
        let body = snap::raw::Decoder::new()
            .decompress_vec(&request.body)
            .expect("snappy block format");
        <WriteRequest as prost::Message>::decode(body.as_slice()).expect("a WriteRequest")
    }

    fn labels(series: &TimeSeries) -> Vec<(String, String)> {
        series
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect()
    }

    #[test]
    fn a_series_is_its_name_its_labels_sorted_and_one_sample() {
        let mut requests = Requests::new(10);
        requests
            .push(
                "haproxystats_server_scur",
                &[
                    ("host", "lb1"),
                    ("cluster", "c1"),
                    ("backend", "be"),
                    ("server", "s1"),
                    ("group", ""),
                ],
                3.5,
                1_700_000_000_000,
            )
            .expect("push");
        let done = requests.finish().expect("finish");
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].samples, 1);
        let decoded = decode(&done[0]);
        assert_eq!(decoded.timeseries.len(), 1);
        let series = &decoded.timeseries[0];
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            labels(series),
            pairs(&[
                ("__name__", "haproxystats_server_scur"),
                ("backend", "be"),
                ("cluster", "c1"),
                ("host", "lb1"),
                ("server", "s1"),
            ]),
            "sorted by name, empty values left out"
        );
        assert_eq!(
            series.samples,
            vec![Sample {
                value: 3.5,
                timestamp: 1_700_000_000_000
            }]
        );
    }

    #[test]
    fn requests_hold_at_most_max_samples_and_lose_none() {
        let mut requests = Requests::new(3);
        let values: Vec<f64> = vec![0.0, -1.0, 1e300, f64::MIN_POSITIVE, 42.0, 7.25, 1e-9];
        for (i, v) in values.iter().enumerate() {
            let lb = format!("lb{i}");
            requests
                .push("m", &[("host", lb.as_str())], *v, -5 + i as i64)
                .expect("push");
        }
        let done = requests.finish().expect("finish");
        assert_eq!(
            done.iter().map(|r| r.samples).collect::<Vec<_>>(),
            vec![3, 3, 1]
        );
        let got: Vec<(String, f64, i64)> = done
            .iter()
            .flat_map(|r| decode(r).timeseries)
            .map(|s| {
                (
                    s.labels[1].value.clone(),
                    s.samples[0].value,
                    s.samples[0].timestamp,
                )
            })
            .collect();
        let want: Vec<(String, f64, i64)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("lb{i}"), *v, -5 + i as i64))
            .collect();
        assert_eq!(got, want, "negative timestamps as int64, every value exact");
    }

    #[test]
    fn nothing_pushed_is_no_request() {
        assert!(Requests::new(5).finish().expect("finish").is_empty());
    }

    #[test]
    fn long_labels_take_multi_byte_lengths() {
        let long = "x".repeat(300);
        let mut requests = Requests::new(1);
        requests
            .push(&long, &[("frontend", long.as_str())], 1.0, 1)
            .expect("push");
        let series = decode(&requests.finish().expect("finish")[0]).timeseries;
        assert_eq!(series[0].labels[0].value, long);
        assert_eq!(series[0].labels[1].value, long);
    }

    #[test]
    fn varint_lengths_are_exact() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
    }
}
