//! Automerge's storage framing, checked without loading: what the server and the phone store is
//! a sequence of chunks (`magic · checksum · type · length · data`), and the checksum of a
//! document or change chunk is the start of the SHA-256 of its type, length and data.
//!
//! Both stores keep a document as several chunks under separate keys and hand them to devices as
//! they are (a bootstrap never loads a document). [`verify`] is the cheap check that a stored
//! chunk is still what was written: a flipped bit or a cut-off value is found here, named by
//! document, instead of in a device that cannot load what it was sent.
//!
//! ```
//! use automerge::{AutoCommit, transaction::Transactable, ROOT};
//! use fieldsync_core::chunks;
//!
//! let mut doc = AutoCommit::new();
//! doc.put(ROOT, "name", "Boulangerie Paul").unwrap();
//! let mut bytes = doc.save();
//! assert!(chunks::verify(&bytes).is_ok());
//!
//! let last = bytes.len() - 1;
//! bytes[last] ^= 0x01;
//! assert!(chunks::verify(&bytes).is_err());
//! ```

use sha2::Digest as _;

/// The first bytes of every Automerge chunk.
pub const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Chunk types whose checksum covers their bytes as stored (compressed changes are checksummed
/// uncompressed, bundles differently: their framing is checked, their content by loading).
const DOCUMENT: u8 = 0;
const CHANGE: u8 = 1;

/// One chunk of well-framed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Where the chunk starts in the bytes it was split from.
    pub at: usize,
    /// 0 document, 1 change, 2 compressed change, 3 bundle.
    pub kind: u8,
    pub checksum: [u8; 4],
    pub data: &'a [u8],
}

impl Chunk<'_> {
    /// Whether the checksum matches the data (`true` for types it cannot be checked for here).
    pub fn checksum_ok(&self) -> bool {
        !matches!(self.kind, DOCUMENT | CHANGE) || checksum(self.kind, self.data) == self.checksum
    }
}

/// What is wrong with stored bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("no Automerge chunk at byte {0}")]
    Framing(usize),
    #[error("the chunk at byte {0} is cut off")]
    Truncated(usize),
    #[error("the chunk at byte {0} is of no Automerge type")]
    Kind(usize),
    #[error("the chunk at byte {0} does not match its checksum")]
    Checksum(usize),
}

/// LEB128, as Automerge writes lengths.
pub fn uleb(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_uleb(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut n = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        n |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

fn checksum(kind: u8, data: &[u8]) -> [u8; 4] {
    let mut header = vec![kind];
    uleb(data.len() as u64, &mut header);
    let hash = sha2::Sha256::new().chain_update(&header).chain_update(data).finalize();
    [hash[0], hash[1], hash[2], hash[3]]
}

/// The chunks of `bytes`, in order, framing checked (not checksums: [`verify`]).
pub fn split(bytes: &[u8]) -> Result<Vec<Chunk<'_>>, ChunkError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < 4 || rest[..4] != MAGIC {
            return Err(ChunkError::Framing(at));
        }
        if rest.len() < 10 {
            return Err(ChunkError::Truncated(at));
        }
        let checksum = [rest[4], rest[5], rest[6], rest[7]];
        let kind = rest[8];
        if kind > 3 {
            return Err(ChunkError::Kind(at));
        }
        let (len, n) = read_uleb(&rest[9..]).ok_or(ChunkError::Truncated(at))?;
        let start = 9 + n;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e <= rest.len())
            .ok_or(ChunkError::Truncated(at))?;
        out.push(Chunk { at, kind, checksum, data: &rest[start..end] });
        at += end;
    }
    Ok(out)
}

/// Checks that `bytes` are whole Automerge chunks whose checksums match: what a store wrote and
/// nothing since damaged. Empty bytes are fine (no chunk).
pub fn verify(bytes: &[u8]) -> Result<(), ChunkError> {
    match split(bytes)?.into_iter().find(|c| !c.checksum_ok()) {
        Some(bad) => Err(ChunkError::Checksum(bad.at)),
        None => Ok(()),
    }
}

/// A chunk of `kind` around `data` with its length and checksum right (tests build damaged and
/// re-framed inputs with it).
pub fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&checksum(kind, data));
    out.push(kind);
    uleb(data.len() as u64, &mut out);
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};

    use super::*;

    fn saved_and_changes() -> (Vec<u8>, Vec<u8>) {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "name", "Paul").expect("put");
        let saved = doc.save();
        let heads = doc.get_heads();
        doc.put(ROOT, "city", "Lyon").expect("put");
        doc.commit();
        doc.put(ROOT, "tier", "A").expect("put");
        doc.commit();
        let changes: Vec<u8> = doc.get_changes(&heads).iter().flat_map(|c| c.raw_bytes().to_vec()).collect();
        (saved, changes)
    }

    #[test]
    fn real_documents_and_changes_verify_and_reframe_to_themselves() {
        let (saved, changes) = saved_and_changes();
        let both = [saved.clone(), changes.clone()].concat();
        let chunks = split(&both).expect("split");
        assert_eq!(chunks.iter().map(|c| c.kind).collect::<Vec<_>>(), vec![0, 1, 1]);
        assert_eq!(verify(&both), Ok(()));
        let reframed: Vec<u8> = chunks.iter().flat_map(|c| frame(c.kind, c.data)).collect();
        assert_eq!(reframed, both);
        assert_eq!(verify(&[]), Ok(()));
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_found() {
        let (saved, changes) = saved_and_changes();
        let both = [saved, changes].concat();
        for i in 0..both.len() {
            let mut bad = both.clone();
            bad[i] ^= 0x10;
            assert!(verify(&bad).is_err(), "a flip at byte {i} of {} went unseen", both.len());
        }
        for cut in 1..both.len() {
            let whole_chunk_boundary = split(&both[..cut]).is_ok();
            assert!(verify(&both[..cut]).is_err() || whole_chunk_boundary, "a cut at {cut} went unseen");
        }
        // The checksum error names where the bad chunk starts.
        let last = split(&both).expect("split")[2].at;
        let mut bad = both.clone();
        *bad.last_mut().expect("bytes") ^= 0x01;
        assert_eq!(verify(&bad), Err(ChunkError::Checksum(last)));
    }
}
