//! The change-feed sync protocol as data: one request, one response, one round trip.
//!
//! A device sends its cursor and the changes it made since the last acknowledged push; the server
//! answers with what it accepted, what it rejected and why, and every change in the device's scope
//! after the cursor. Work is proportional to what changed, not to how many documents a device holds.
//!
//! On the wire a message is a small frame — magic `FSYN`, a version byte, a flags byte — followed by
//! CBOR (what the Automerge ecosystem uses), deflated when that pays. Decoding never trusts its input:
//! sizes are bounded before anything is allocated.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::docs::DocKind;

/// Wire protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;
const MAGIC: &[u8; 4] = b"FSYN";
const FLAG_DEFLATE: u8 = 1;
/// Payloads smaller than this are sent as they are: deflate would cost more than it saves.
const COMPRESS_ABOVE: usize = 1024;
/// A decoded message may not inflate past this (zip bombs).
pub const MAX_DECODED_BYTES: usize = 256 * 1024 * 1024;

/// Inflation allowed per compressed byte, and the floor below which that is not applied.
const MAX_RATIO: usize = 64;
const MIN_INFLATE_CAP: usize = 16 * 1024 * 1024;

/// Media type of framed protocol messages over HTTP.
pub const CONTENT_TYPE: &str = "application/x-fieldsync";

/// Where a device stands in its team's change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cursor {
    /// Nothing seen yet: bootstrap from snapshots.
    Start,
    /// Bootstrapping: snapshots of documents after `after` (by id) are still to come; the feed
    /// resumes at `head` afterwards.
    Bootstrap { head: u64, after: String },
    /// Every feed entry up to and including `seq` has been seen.
    Feed { seq: u64 },
}

/// The changes a device made to one document since the server last acknowledged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocPush {
    pub doc_id: String,
    pub kind: DocKind,
    /// Raw Automerge change chunks, in causal order.
    pub changes: Vec<ByteBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub device_id: String,
    pub cursor: Cursor,
    pub push: Vec<DocPush>,
}

/// The changes of a document the server holds (new or already known: pushing twice is harmless).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    pub doc_id: String,
    /// Hashes (32 bytes each) of the pushed changes the server now holds.
    pub hashes: Vec<ByteBuf>,
}

/// Pushed changes the server refused. They are kept in quarantine on the server; the device keeps
/// them for the user and resets the document to `server_doc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    pub doc_id: String,
    pub hashes: Vec<ByteBuf>,
    /// Machine-readable reason, e.g. `forbidden_field`.
    pub code: String,
    /// For people.
    pub reason: String,
    /// The server's version of the document (saved Automerge bytes), or none when the server has
    /// no such document.
    pub server_doc: Option<ByteBuf>,
}

/// A whole document: bootstrap pages and documents that newly came into the device's scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocSnapshot {
    pub doc_id: String,
    pub kind: DocKind,
    /// Concatenated Automerge chunks (a saved document and/or changes); `Automerge::load` reads it.
    pub bytes: ByteBuf,
}

/// New changes to a document from the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedChanges {
    pub seq: u64,
    pub doc_id: String,
    pub kind: DocKind,
    /// Concatenated raw change chunks.
    pub changes: ByteBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncResponse {
    pub accepted: Vec<Accepted>,
    pub rejected: Vec<Rejected>,
    pub docs: Vec<DocSnapshot>,
    pub changes: Vec<FeedChanges>,
    /// Documents that left the device's scope: remove them (keeping any unsent edits for the user).
    pub revoked: Vec<String>,
    pub cursor: Cursor,
    /// More is waiting: sync again with the new cursor.
    pub more: bool,
    /// Set when `docs` is a bootstrap page: it holds every document in the device's scope with an id
    /// after this one, up to the `after` of the new cursor (or to the end, when the cursor is back
    /// on the feed). The device drops the documents it holds in that range that the page does not
    /// bring: they left its scope while it was away.
    #[serde(default)]
    pub bootstrap_after: Option<String>,
}

/// Why bytes are not a protocol message.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("not a fieldsync message (bad magic)")]
    BadMagic,
    #[error("truncated message")]
    Truncated,
    #[error("unsupported protocol version {0} (this build speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown flags {0:#x}")]
    UnknownFlags(u8),
    #[error("message inflates past its size limit")]
    TooLarge,
    #[error("corrupt compressed payload: {0}")]
    Compression(String),
    #[error("malformed message: {0}")]
    Malformed(String),
}

fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut cbor = Vec::new();
    // Serializing owned, in-memory values into a Vec cannot fail for these types.
    if let Err(e) = ciborium::into_writer(msg, &mut cbor) {
        unreachable_encode(e);
    }
    let mut out = Vec::with_capacity(cbor.len() / 2 + 6);
    out.extend_from_slice(MAGIC);
    out.push(PROTOCOL_VERSION);
    if cbor.len() > COMPRESS_ABOVE {
        out.push(FLAG_DEFLATE);
        let mut enc = flate2::write::DeflateEncoder::new(out, flate2::Compression::fast());
        // Writing into a Vec does not fail.
        let _ = enc.write_all(&cbor);
        enc.finish().unwrap_or_default()
    } else {
        out.push(0);
        out.extend_from_slice(&cbor);
        out
    }
}

#[cold]
fn unreachable_encode(e: ciborium::ser::Error<std::io::Error>) {
    tracing::error!(error = %e, "encoding a protocol message failed");
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() < 6 {
        return Err(if bytes.len() >= 4 && &bytes[..4] != MAGIC {
            WireError::BadMagic
        } else {
            WireError::Truncated
        });
    }
    if &bytes[..4] != MAGIC {
        return Err(WireError::BadMagic);
    }
    if bytes[4] != PROTOCOL_VERSION {
        return Err(WireError::UnsupportedVersion(bytes[4]));
    }
    let flags = bytes[5];
    let body = &bytes[6..];
    let inflated;
    let cbor: &[u8] = match flags {
        0 => body,
        FLAG_DEFLATE => {
            // Real payloads deflate a few times at most; a far higher ratio is a bomb, refused
            // before it costs more memory than the compressed size justifies.
            let cap = body.len().saturating_mul(MAX_RATIO).clamp(MIN_INFLATE_CAP, MAX_DECODED_BYTES);
            let mut out = Vec::new();
            let mut dec = flate2::read::DeflateDecoder::new(body).take(cap as u64 + 1);
            dec.read_to_end(&mut out).map_err(|e| WireError::Compression(e.to_string()))?;
            if out.len() > cap {
                return Err(WireError::TooLarge);
            }
            inflated = out;
            &inflated
        }
        other => return Err(WireError::UnknownFlags(other)),
    };
    ciborium::from_reader(cbor).map_err(|e| WireError::Malformed(e.to_string()))
}

impl SyncRequest {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        decode(bytes)
    }
}

impl SyncResponse {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        decode(bytes)
    }

    /// Nothing accepted, rejected or pulled.
    pub fn is_empty(&self) -> bool {
        self.accepted.is_empty()
            && self.rejected.is_empty()
            && self.docs.is_empty()
            && self.changes.is_empty()
            && self.revoked.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_bytes() -> impl Strategy<Value = ByteBuf> {
        proptest::collection::vec(any::<u8>(), 0..3000).prop_map(ByteBuf::from)
    }

    fn arb_kind() -> impl Strategy<Value = DocKind> {
        prop_oneof![
            Just(DocKind::Customer),
            Just(DocKind::Visit),
            Just(DocKind::Territory),
            Just(DocKind::Plan)
        ]
    }

    fn arb_cursor() -> impl Strategy<Value = Cursor> {
        prop_oneof![
            Just(Cursor::Start),
            any::<u64>().prop_map(|seq| Cursor::Feed { seq }),
            (any::<u64>(), "[a-z0-9-]{0,40}").prop_map(|(head, after)| Cursor::Bootstrap { head, after }),
        ]
    }

    prop_compose! {
        fn arb_request()(device_id in "[a-z0-9-]{1,40}", cursor in arb_cursor(),
            push in proptest::collection::vec(("[a-z0-9-]{1,40}", arb_kind(), proptest::collection::vec(arb_bytes(), 0..4))
                .prop_map(|(doc_id, kind, changes)| DocPush { doc_id, kind, changes }), 0..5)) -> SyncRequest {
            SyncRequest { device_id, cursor, push }
        }
    }

    prop_compose! {
        fn arb_response()(accepted in proptest::collection::vec(("[a-z0-9]{1,20}", proptest::collection::vec(arb_bytes(), 0..3))
                .prop_map(|(doc_id, hashes)| Accepted { doc_id, hashes }), 0..4),
            rejected in proptest::collection::vec(("[a-z0-9]{1,20}", "[a-z_]{1,20}", ".{0,60}", proptest::option::of(arb_bytes()))
                .prop_map(|(doc_id, code, reason, server_doc)| Rejected { doc_id, hashes: vec![], code, reason, server_doc }), 0..3),
            docs in proptest::collection::vec(("[a-z0-9]{1,20}", arb_kind(), arb_bytes())
                .prop_map(|(doc_id, kind, bytes)| DocSnapshot { doc_id, kind, bytes }), 0..3),
            changes in proptest::collection::vec((any::<u64>(), "[a-z0-9]{1,20}", arb_kind(), arb_bytes())
                .prop_map(|(seq, doc_id, kind, changes)| FeedChanges { seq, doc_id, kind, changes }), 0..4),
            revoked in proptest::collection::vec("[a-z0-9]{1,20}", 0..3),
            cursor in arb_cursor(), more in any::<bool>(),
            bootstrap_after in proptest::option::of("[a-z0-9]{0,20}")) -> SyncResponse {
            SyncResponse { accepted, rejected, docs, changes, revoked, cursor, more, bootstrap_after }
        }
    }

    proptest! {
        #[test]
        fn every_request_round_trips_through_the_wire(req in arb_request()) {
            prop_assert_eq!(SyncRequest::decode(&req.encode()).unwrap(), req);
        }

        #[test]
        fn every_response_round_trips_through_the_wire(resp in arb_response()) {
            prop_assert_eq!(SyncResponse::decode(&resp.encode()).unwrap(), resp);
        }

        #[test]
        fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = SyncRequest::decode(&bytes);
            let mut framed = b"FSYN\x01\x00".to_vec();
            framed.extend_from_slice(&bytes);
            let _ = SyncRequest::decode(&framed);
            framed[5] = 1;
            let _ = SyncResponse::decode(&framed);
        }
    }

    #[test]
    fn corrupt_frames_are_errors() {
        let good = SyncRequest { device_id: "d".into(), cursor: Cursor::Start, push: vec![] }.encode();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("bad magic", b"HTTP/1.1 200".to_vec()),
            ("future version", {
                let mut b = good.clone();
                b[4] = 99;
                b
            }),
            ("unknown flags", {
                let mut b = good.clone();
                b[5] = 0x80;
                b
            }),
            ("truncated body", good[..good.len() - 2].to_vec()),
            ("json instead of cbor", {
                let mut b = b"FSYN\x01\x00".to_vec();
                b.extend_from_slice(br#"{"device_id":"d"}"#);
                b
            }),
            ("bad deflate", b"FSYN\x01\x01\xff\xff\xff\xff".to_vec()),
        ];
        for (name, bytes) in cases {
            assert!(SyncRequest::decode(&bytes).is_err(), "{name} must not decode");
        }
    }

    #[test]
    fn large_payloads_are_deflated() {
        let req = SyncRequest {
            device_id: "d".into(),
            cursor: Cursor::Start,
            push: vec![DocPush {
                doc_id: "x".into(),
                kind: DocKind::Visit,
                changes: vec![ByteBuf::from(vec![7u8; 10_000])],
            }],
        };
        let bytes = req.encode();
        assert_eq!(bytes[5], FLAG_DEFLATE);
        assert!(bytes.len() < 1_000);
        assert_eq!(SyncRequest::decode(&bytes).unwrap(), req);
    }
}
