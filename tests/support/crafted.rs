//! Crafted Arrow IPC parts: a real part (a raw snapshot's or a partial's)
//! whose compressed buffer claims another uncompressed size than it holds,
//! to show the decoders' walk refuses the claim before arrow allocates it.

/// Every codec an edge may be set to.
pub const CODECS: [haproxystats::raw::BufferCodec; 5] = [
    haproxystats::raw::BufferCodec::Zstd(3),
    haproxystats::raw::BufferCodec::Zstd(1),
    haproxystats::raw::BufferCodec::Zstd(-5),
    haproxystats::raw::BufferCodec::Lz4Frame,
    haproxystats::raw::BufferCodec::None,
];

/// A compressed buffer of a record batch: where its 8-byte claim is in the
/// part, its index among the batch's buffers (as the walk's errors name
/// it) and its compressed bytes (after the claim).
#[derive(Debug, Clone, Copy)]
pub struct CompressedBuffer {
    /// Offset of the claim (little-endian `i64`) in the part.
    pub claim_at: usize,
    /// Index of the buffer in its batch.
    pub index: usize,
    /// Compressed bytes after the claim.
    pub packed: usize,
}

fn word(part: &[u8], at: usize) -> usize {
    u32::from_le_bytes(part[at..at + 4].try_into().unwrap()) as usize
}

/// The compressed buffers (not stored as they are) of the first record
/// batch of `part` that has any, whose compressed bytes `fits` accepts.
pub fn compressed_buffers(part: &[u8], fits: impl Fn(usize) -> bool) -> Vec<CompressedBuffer> {
    let mut pos = 0;
    loop {
        let mut len = word(part, pos);
        pos += 4;
        if len == u32::MAX as usize {
            len = word(part, pos);
            pos += 4;
        }
        if len == 0 {
            return Vec::new();
        }
        let message = arrow_ipc::root_as_message(&part[pos..pos + len]).unwrap();
        let body = pos + len;
        pos = body + message.bodyLength() as usize;
        let Some(batch) = message.header_as_record_batch() else {
            continue;
        };
        if batch.compression().is_none() {
            continue;
        }
        let found: Vec<CompressedBuffer> = batch
            .buffers()
            .into_iter()
            .flatten()
            .enumerate()
            .filter(|(_, b)| b.length() > 8)
            .map(|(index, b)| CompressedBuffer {
                claim_at: body + b.offset() as usize,
                index,
                packed: b.length() as usize - 8,
            })
            .filter(|b| {
                let claim =
                    i64::from_le_bytes(part[b.claim_at..b.claim_at + 8].try_into().unwrap());
                claim != -1 && fits(b.packed)
            })
            .collect();
        if !found.is_empty() {
            return found;
        }
    }
}

/// `part` with `buffer` claiming `bytes` once decompressed.
pub fn with_claim(part: &[u8], buffer: CompressedBuffer, bytes: i64) -> Vec<u8> {
    let mut crafted = part.to_vec();
    crafted[buffer.claim_at..buffer.claim_at + 8].copy_from_slice(&bytes.to_le_bytes());
    crafted
}
