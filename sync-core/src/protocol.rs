//! The change-feed sync protocol as data: one request, one response, one round trip.
//!
//! A device sends its cursor and the changes it made since the last acknowledged push; the server
//! answers with what it accepted, what it rejected and why, and every change in the device's scope
//! after the cursor. Work is proportional to what changed, not to how many documents a device holds.
//!
//! On the wire a message is a small frame — magic `FSYN`, a version byte, a flags byte — followed by
//! CBOR (what the Automerge ecosystem uses), deflated when that pays. Decoding never trusts its input:
//! sizes are bounded before anything is allocated, a deflated message is decoded as it inflates (no
//! inflated copy is held), and the push list is counted while it is decoded ([`MAX_PUSH_DOCS`],
//! [`MAX_PUSH_CHANGES`]).

use std::io::{BufReader, Read, Write};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
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

/// Most documents one push may carry. Enforced while decoding: the entry past the limit is refused
/// before it is decoded, so a frame of millions of tiny entries costs no more than this many.
pub const MAX_PUSH_DOCS: usize = 5000;
/// Most changes one push may carry, over all its documents; enforced while decoding too.
pub const MAX_PUSH_CHANGES: usize = 200_000;

/// What decoding a request frame of `frame_len` bytes may cost in memory at most, in bytes: the
/// frame's own bytes once inflated (deflated frames are allowed to inflate to
/// `max(64 × frame_len, 16 MiB)`, at most [`MAX_DECODED_BYTES`]) plus the bookkeeping of the
/// largest push list the count limits allow. Servers budget concurrent decoding with it.
pub fn decode_memory_bound(frame_len: usize) -> usize {
    const PER_DOC: usize = 128;
    const PER_CHANGE: usize = 32;
    let inflated = frame_len.saturating_mul(MAX_RATIO).clamp(MIN_INFLATE_CAP, MAX_DECODED_BYTES);
    inflated + MAX_PUSH_DOCS * PER_DOC + MAX_PUSH_CHANGES * PER_CHANGE
}

/// Marks the decode errors raised by the count limits, so they are reported as
/// [`WireError::TooMany`] rather than as a malformed message.
const TOO_MANY: &str = "too many entries: ";

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
    /// At most [`MAX_PUSH_DOCS`] documents and [`MAX_PUSH_CHANGES`] changes in all, counted while
    /// decoding (the wire format is that of a plain list).
    #[serde(deserialize_with = "bounded_push")]
    pub push: Vec<DocPush>,
}

// --- count-limited decoding of the push list ------------------------------------------------------

/// Preallocation from a declared length is capped: the length is the sender's word.
const MAX_PREALLOC: usize = 1024;

fn too_many<E: de::Error>(what: &str, max: usize) -> E {
    E::custom(format!("{TOO_MANY}more than {max} {what} in one push"))
}

fn bounded_push<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DocPush>, D::Error> {
    struct PushList;
    impl<'de> Visitor<'de> for PushList {
        type Value = Vec<DocPush>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of document pushes")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_PREALLOC));
            let mut changes_left = MAX_PUSH_CHANGES;
            loop {
                if out.len() == MAX_PUSH_DOCS {
                    // One more entry, whatever it is, is one too many: refused undecoded.
                    return match seq.size_hint() {
                        Some(0) => Ok(out),
                        Some(_) => Err(too_many("documents", MAX_PUSH_DOCS)),
                        None => match seq.next_element::<IgnoredAny>()? {
                            None => Ok(out),
                            Some(_) => Err(too_many("documents", MAX_PUSH_DOCS)),
                        },
                    };
                }
                match seq.next_element_seed(DocPushSeed { changes_left: &mut changes_left })? {
                    Some(p) => out.push(p),
                    None => return Ok(out),
                }
            }
        }
    }
    d.deserialize_seq(PushList)
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum PushField {
    DocId,
    Kind,
    Changes,
    #[serde(other)]
    Other,
}

const PUSH_FIELDS: &[&str] = &["doc_id", "kind", "changes"];

/// One [`DocPush`], its changes drawn from the budget of the whole push.
struct DocPushSeed<'a> {
    changes_left: &'a mut usize,
}

impl<'de> DeserializeSeed<'de> for DocPushSeed<'_> {
    type Value = DocPush;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<DocPush, D::Error> {
        d.deserialize_struct("DocPush", PUSH_FIELDS, self)
    }
}

impl<'de> Visitor<'de> for DocPushSeed<'_> {
    type Value = DocPush;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a document push")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DocPush, A::Error> {
        let (mut doc_id, mut kind, mut changes) = (None, None, None);
        while let Some(field) = map.next_key::<PushField>()? {
            match field {
                PushField::DocId if doc_id.is_none() => doc_id = Some(map.next_value()?),
                PushField::Kind if kind.is_none() => kind = Some(map.next_value()?),
                PushField::Changes if changes.is_none() => {
                    changes = Some(map.next_value_seed(ChangesSeed { left: &mut *self.changes_left })?)
                }
                PushField::DocId => return Err(de::Error::duplicate_field("doc_id")),
                PushField::Kind => return Err(de::Error::duplicate_field("kind")),
                PushField::Changes => return Err(de::Error::duplicate_field("changes")),
                PushField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(DocPush {
            doc_id: doc_id.ok_or_else(|| de::Error::missing_field("doc_id"))?,
            kind: kind.ok_or_else(|| de::Error::missing_field("kind"))?,
            changes: changes.ok_or_else(|| de::Error::missing_field("changes"))?,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DocPush, A::Error> {
        let missing = |i| de::Error::invalid_length(i, &"a document push of 3 fields");
        let doc_id = seq.next_element()?.ok_or_else(|| missing(0))?;
        let kind = seq.next_element()?.ok_or_else(|| missing(1))?;
        let changes = seq
            .next_element_seed(ChangesSeed { left: &mut *self.changes_left })?
            .ok_or_else(|| missing(2))?;
        Ok(DocPush { doc_id, kind, changes })
    }
}

/// The change list of one document, each change taken from the push's remaining budget.
struct ChangesSeed<'a> {
    left: &'a mut usize,
}

impl<'de> DeserializeSeed<'de> for ChangesSeed<'_> {
    type Value = Vec<ByteBuf>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<ByteBuf>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ChangesSeed<'_> {
    type Value = Vec<ByteBuf>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of change chunks")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<ByteBuf>, A::Error> {
        let hint = seq.size_hint().unwrap_or(0);
        if hint > *self.left {
            return Err(too_many("changes", MAX_PUSH_CHANGES));
        }
        let mut out = Vec::with_capacity(hint.min(MAX_PREALLOC));
        loop {
            if *self.left == 0 {
                return match seq.next_element::<IgnoredAny>()? {
                    None => Ok(out),
                    Some(_) => Err(too_many("changes", MAX_PUSH_CHANGES)),
                };
            }
            match seq.next_element::<ByteBuf>()? {
                Some(c) => {
                    *self.left -= 1;
                    out.push(c);
                }
                None => return Ok(out),
            }
        }
    }
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

/// The code of a document whose stored copy is damaged ([`Unavailable`], and the HTTP error).
pub const DOCUMENT_DAMAGED: &str = "document_damaged";

/// A document in the device's scope the server could not serve or take this time: its stored copy
/// is damaged. Nothing of it was accepted or sent; the device keeps its own copy and its unsent
/// edits, and tries again with the next sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unavailable {
    pub doc_id: String,
    /// Machine-readable reason: [`DOCUMENT_DAMAGED`].
    pub code: String,
    /// For people.
    pub reason: String,
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
    /// Documents in the device's scope the server could neither serve nor take (see
    /// [`Unavailable`]); a bootstrap page that covers one does not bring it, and the device keeps it.
    #[serde(default)]
    pub unavailable: Vec<Unavailable>,
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
    /// More entries than the protocol's count limits allow ([`MAX_PUSH_DOCS`],
    /// [`MAX_PUSH_CHANGES`]); found while decoding, before the rest was decoded.
    #[error("{0}")]
    TooMany(String),
}

/// Inflates at most `cap` bytes; one byte more is an error ([`LimitedReader::exceeded`]).
struct LimitedReader<R> {
    inner: R,
    left: usize,
    exceeded: bool,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.exceeded = true;
            return Err(std::io::Error::other("message inflates past its size limit"));
        }
        let n = buf.len().min(self.left);
        let got = self.inner.read(&mut buf[..n])?;
        self.left -= got;
        Ok(got)
    }
}

/// `deflated`: the input was a deflate stream (an I/O error is then a corrupt stream, otherwise
/// the message ended early). `exceeded`: the inflate limit was hit.
fn wire_error<E: std::fmt::Debug>(e: ciborium::de::Error<E>, deflated: bool, exceeded: bool) -> WireError {
    match e {
        _ if exceeded => WireError::TooLarge,
        ciborium::de::Error::Semantic(_, msg) if msg.starts_with(TOO_MANY) => {
            WireError::TooMany(msg[TOO_MANY.len()..].to_string())
        }
        ciborium::de::Error::Io(e) if deflated => WireError::Compression(format!("{e:?}")),
        ciborium::de::Error::Io(_) => WireError::Truncated,
        other => WireError::Malformed(other.to_string()),
    }
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
    match flags {
        0 => ciborium::from_reader(body).map_err(|e| wire_error(e, false, false)),
        FLAG_DEFLATE => {
            // Decoded as it inflates: no inflated copy of the message is ever held. Real payloads
            // deflate a few times at most; a far higher ratio is a bomb, refused before it costs
            // more than the compressed size justifies.
            let cap = body.len().saturating_mul(MAX_RATIO).clamp(MIN_INFLATE_CAP, MAX_DECODED_BYTES);
            let mut limited =
                LimitedReader { inner: flate2::read::DeflateDecoder::new(body), left: cap, exceeded: false };
            let decoded = ciborium::from_reader(BufReader::with_capacity(64 * 1024, &mut limited));
            decoded.map_err(|e| wire_error(e, true, limited.exceeded))
        }
        other => Err(WireError::UnknownFlags(other)),
    }
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
    /// The documents a bootstrap page brings: its snapshots, and the documents the feed after it
    /// changes (the last page carries the feed written while the device paged), and those in scope
    /// the server could not serve. A document the page covers and is not among these left the
    /// device's scope.
    pub fn page_docs(&self) -> std::collections::HashSet<&str> {
        self.docs
            .iter()
            .map(|d| d.doc_id.as_str())
            .chain(self.changes.iter().map(|c| c.doc_id.as_str()))
            .chain(self.unavailable.iter().map(|u| u.doc_id.as_str()))
            .collect()
    }

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
            && self.unavailable.is_empty()
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
            bootstrap_after in proptest::option::of("[a-z0-9]{0,20}"),
            unavailable in proptest::collection::vec(("[a-z0-9]{1,20}", ".{0,60}")
                .prop_map(|(doc_id, reason)| Unavailable { doc_id, code: DOCUMENT_DAMAGED.into(), reason }), 0..3)) -> SyncResponse {
            SyncResponse { accepted, rejected, docs, changes, revoked, cursor, more, bootstrap_after, unavailable }
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

    /// A request frame whose push list declares `declared` entries and holds `entries` copies of
    /// `entry` (CBOR), followed by `tail`; deflated when `deflate`.
    fn push_frame(
        declared: Option<u64>,
        entry: &[u8],
        entries: usize,
        tail: &[u8],
        deflate: bool,
    ) -> Vec<u8> {
        let mut cbor = Vec::new();
        cbor.push(0xa3);
        for (key, value) in [("device_id", &b"\x61d"[..]), ("cursor", &b"\x65Start"[..])] {
            cbor.push(0x60 + key.len() as u8);
            cbor.extend_from_slice(key.as_bytes());
            cbor.extend_from_slice(value);
        }
        cbor.extend_from_slice(b"\x64push");
        match declared {
            Some(n) => {
                cbor.push(0x9b);
                cbor.extend_from_slice(&n.to_be_bytes());
            }
            None => cbor.push(0x9f),
        }
        for _ in 0..entries {
            cbor.extend_from_slice(entry);
        }
        cbor.extend_from_slice(tail);
        let mut out = b"FSYN\x01".to_vec();
        if deflate {
            out.push(FLAG_DEFLATE);
            let mut enc = flate2::write::DeflateEncoder::new(out, flate2::Compression::fast());
            enc.write_all(&cbor).unwrap();
            enc.finish().unwrap()
        } else {
            out.push(0);
            out.extend_from_slice(&cbor);
            out
        }
    }

    fn cbor_of<T: Serialize>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).unwrap();
        out
    }

    fn empty_push() -> Vec<u8> {
        cbor_of(&DocPush { doc_id: String::new(), kind: DocKind::Visit, changes: vec![] })
    }

    #[test]
    fn the_frame_builder_speaks_the_real_wire_format() {
        let real = SyncRequest {
            device_id: "d".into(),
            cursor: Cursor::Start,
            push: vec![DocPush { doc_id: String::new(), kind: DocKind::Visit, changes: vec![] }; 3],
        };
        let built = push_frame(Some(3), &empty_push(), 3, &[], false);
        assert_eq!(SyncRequest::decode(&built).unwrap(), real);
        let built = push_frame(None, &empty_push(), 3, &[0xff], true);
        assert_eq!(SyncRequest::decode(&built).unwrap(), real);
    }

    #[test]
    fn a_push_of_more_documents_than_the_limit_is_refused_while_decoding() {
        // Millions of empty entries declared (the 6 million entry attack), only the first
        // MAX_PUSH_DOCS present and then garbage: the decoder stops at the limit, never reaching
        // the garbage (which would be `Malformed`) nor building the rest.
        let entry = empty_push();
        for deflate in [false, true] {
            let frame = push_frame(Some(6_000_000), &entry, MAX_PUSH_DOCS, &[0xff, 0xff, 0xff], deflate);
            assert!(
                matches!(SyncRequest::decode(&frame), Err(WireError::TooMany(_))),
                "{:?}",
                SyncRequest::decode(&frame)
            );
            // Indefinite length: the entry past the limit is skipped over, not built.
            let frame = push_frame(None, &entry, MAX_PUSH_DOCS + 1, &[0xff, 0xff, 0xff], deflate);
            assert!(matches!(SyncRequest::decode(&frame), Err(WireError::TooMany(_))));
        }
        // Exactly at the limit is fine.
        let frame = push_frame(None, &entry, MAX_PUSH_DOCS, &[0xff], true);
        assert_eq!(SyncRequest::decode(&frame).unwrap().push.len(), MAX_PUSH_DOCS);
    }

    #[test]
    fn a_push_of_more_changes_than_the_limit_over_all_documents_is_refused_while_decoding() {
        let half = MAX_PUSH_CHANGES / 2 + 1;
        let doc = DocPush { doc_id: "x".into(), kind: DocKind::Visit, changes: vec![ByteBuf::new(); half] };
        let two = SyncRequest {
            device_id: "d".into(),
            cursor: Cursor::Start,
            push: vec![doc.clone(), doc.clone()],
        };
        assert!(matches!(SyncRequest::decode(&two.encode()), Err(WireError::TooMany(_))));
        // A change list declaring more than the budget is refused at its header.
        let mut entry = cbor_of(&DocPush { doc_id: "x".into(), kind: DocKind::Visit, changes: vec![] });
        let empty_list = entry.pop();
        assert_eq!(empty_list, Some(0x80));
        entry.push(0x9b);
        entry.extend_from_slice(&u64::MAX.to_be_bytes());
        let frame = push_frame(Some(1), &entry, 1, &[], false);
        assert!(matches!(SyncRequest::decode(&frame), Err(WireError::TooMany(_))));
        // One document at the budget decodes.
        let one = SyncRequest {
            device_id: "d".into(),
            cursor: Cursor::Start,
            push: vec![DocPush { changes: vec![ByteBuf::new(); MAX_PUSH_CHANGES], ..doc }],
        };
        assert_eq!(SyncRequest::decode(&one.encode()).unwrap(), one);
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
