//! The device side of the sync protocol, without IO of its own.
//!
//! A [`Replica`] holds a device's documents, knows which changes the server has acknowledged, and
//! turns that into a [`SyncRequest`]; it applies a [`SyncResponse`] back. Writes go through typed
//! methods that run the same rules as the server before anything is written, so an honest client is
//! rarely rejected. The device library persists a replica's documents and drives the loop; tests
//! drive it directly.
//!
//! A loaded Automerge document costs some 30 KB of memory, its saved form well under 1 KB. A replica
//! keeps at most [`RESIDENT_DOCS`] documents loaded (the most recently used ones) and the others as
//! saved bytes, with what the read paths need cached next to them: kind, acknowledged and current
//! heads, whether anything is unsent, the typed view. Reading ([`Replica::get`], [`Replica::heads`],
//! [`Replica::outbox_len`]) never loads a document; edits, pulls and pushes load the ones they touch.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::OnceLock;

use automerge::{ActorId, Automerge, Change, ChangeHash, transaction::CommitOptions};
use serde_bytes::ByteBuf;

use crate::docs::{DocError, DocKind, Document};
use crate::protocol::{Cursor, DocPush, SyncRequest, SyncResponse};
use crate::rules::{self, Principal, Violation};

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// How many documents a replica keeps loaded by default; the others are kept as saved bytes.
pub const RESIDENT_DOCS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no document {0}")]
    NotFound(String),
    #[error("document {0} exists already")]
    AlreadyExists(String),
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: String, reason: String },
    #[error("not allowed: {0}")]
    Forbidden(Violation),
    #[error("corrupt data from the server: {0}")]
    Corrupt(String),
}

impl From<DocError> for ClientError {
    fn from(e: DocError) -> Self {
        match e {
            DocError::InvalidField { field, reason } => ClientError::InvalidInput { field, reason },
            other => ClientError::InvalidInput { field: "document".into(), reason: other.to_string() },
        }
    }
}

/// A document this device does not hold: `NotFound`, unless the id could never name one (empty,
/// too long, outside the id alphabet), which is bad input.
pub(crate) fn not_found(doc_id: &str) -> ClientError {
    match crate::docs::validate_id("id", doc_id) {
        Err(e) => e.into(),
        Ok(()) => ClientError::NotFound(doc_id.to_string()),
    }
}

/// One local document and what the server is known to hold of it.
///
/// The document is either loaded or kept as saved bytes (`Automerge::save` output or a snapshot
/// from the server); the accessors answer from cached metadata without loading it.
#[derive(Debug, Clone)]
pub struct LocalDoc {
    /// The loaded document, when resident.
    doc: Option<Box<Automerge>>,
    /// The saved document: always present when not loaded; while loaded, present until it changes.
    saved: Option<Box<[u8]>>,
    kind: DocKind,
    /// The server holds every change that is an ancestor of (or equal to) one of these.
    acked: Vec<ChangeHash>,
    /// The document's current heads.
    heads: Vec<ChangeHash>,
    /// Whether the document holds changes the server has not acknowledged.
    has_pending: bool,
    /// The typed view of the current document (`None` inside: not readable), once computed.
    typed: OnceLock<Option<Document>>,
}

impl LocalDoc {
    /// A loaded document.
    pub fn new(doc: Automerge, kind: DocKind, acked: Vec<ChangeHash>) -> Self {
        let heads = doc.get_heads();
        let has_pending = !doc.get_changes(&acked).is_empty();
        LocalDoc {
            doc: Some(Box::new(doc)),
            saved: None,
            kind,
            acked,
            heads,
            has_pending,
            typed: OnceLock::new(),
        }
    }

    /// A document kept as saved bytes, not loaded, with what is known of it: its `heads` and
    /// whether it holds changes that are not ancestors of `acked` (as a store recorded them with the
    /// bytes). The typed view is computed on first read.
    pub fn from_saved(
        bytes: Vec<u8>,
        kind: DocKind,
        acked: Vec<ChangeHash>,
        heads: Vec<ChangeHash>,
        has_pending: bool,
    ) -> Self {
        LocalDoc {
            doc: None,
            saved: Some(bytes.into_boxed_slice()),
            kind,
            acked,
            heads,
            has_pending,
            typed: OnceLock::new(),
        }
    }

    pub fn kind(&self) -> DocKind {
        self.kind
    }

    /// The server holds every change that is an ancestor of (or equal to) one of these.
    pub fn acked(&self) -> &[ChangeHash] {
        &self.acked
    }

    /// The document's current heads.
    pub fn heads(&self) -> &[ChangeHash] {
        &self.heads
    }

    /// Whether the document holds changes the server has not acknowledged.
    pub fn has_pending(&self) -> bool {
        self.has_pending
    }

    /// Whether the document is loaded (otherwise it is kept as saved bytes).
    pub fn is_loaded(&self) -> bool {
        self.doc.is_some()
    }

    /// The loaded document, if it is loaded.
    pub fn loaded(&self) -> Option<&Automerge> {
        self.doc.as_deref()
    }

    /// A copy of the document (loaded from its saved bytes when it is not loaded).
    pub fn automerge(&self) -> Result<Automerge> {
        match &self.doc {
            Some(doc) => Ok(doc.as_ref().clone()),
            None => self.load_copy(),
        }
    }

    /// Local changes the server has not acknowledged (loading a copy of the document if needed).
    pub fn pending(&self) -> Result<Vec<Change>> {
        if !self.has_pending {
            return Ok(vec![]);
        }
        Ok(match &self.doc {
            Some(doc) => doc.get_changes(&self.acked),
            None => self.load_copy()?.get_changes(&self.acked),
        })
    }

    /// The whole document as bytes `Automerge::load` reads: the kept saved form when there is one.
    pub fn saved(&self) -> Cow<'_, [u8]> {
        match (&self.saved, &self.doc) {
            (Some(bytes), _) => Cow::Borrowed(bytes),
            (None, Some(doc)) => Cow::Owned(doc.save()),
            (None, None) => Cow::Borrowed(&[]),
        }
    }

    /// The changes after `heads`, as bytes to append to a saved copy at `heads`, when the document
    /// is loaded and holds every one of `heads` (`None`: save it whole instead).
    pub fn save_after(&self, heads: &[ChangeHash]) -> Option<Vec<u8>> {
        let doc = self.doc.as_deref()?;
        heads.iter().all(|h| doc.get_change_meta_by_hash(h).is_some()).then(|| doc.save_after(heads))
    }

    /// The typed document, if readable; computed once per version of the document.
    pub fn typed(&self) -> Option<Document> {
        self.typed
            .get_or_init(|| match &self.doc {
                Some(doc) => Document::hydrate(doc.as_ref()).ok(),
                None => self.load_copy().ok().and_then(|d| Document::hydrate(&d).ok()),
            })
            .clone()
    }

    fn load_copy(&self) -> Result<Automerge> {
        Automerge::load(self.saved.as_deref().unwrap_or_default())
            .map_err(|e| ClientError::Corrupt(format!("local copy: {e}")))
    }

    /// Loads the document (a no-op when it is loaded), writing as `actor` from now on.
    fn load(&mut self, doc_id: &str, actor: &ActorId) -> Result<&mut Automerge> {
        let doc = match self.doc.take() {
            Some(doc) => doc,
            None => Box::new(
                Automerge::load(self.saved.as_deref().unwrap_or_default())
                    .map_err(|e| ClientError::Corrupt(format!("local copy of {doc_id}: {e}")))?
                    .with_actor(actor.clone()),
            ),
        };
        Ok(self.doc.insert(doc))
    }

    /// Keeps only the saved bytes (saving the document when it changed since it was loaded) and the
    /// typed view.
    fn unload(&mut self) {
        if let Some(doc) = self.doc.take() {
            if self.saved.is_none() {
                self.saved = Some(doc.save().into_boxed_slice());
            }
            self.typed.get_or_init(|| Document::hydrate(doc.as_ref()).ok());
        }
    }

    /// To call after the loaded document may have changed: refreshes the heads and drops what no
    /// longer describes it (the saved bytes and the typed view). `has_pending` is the caller's.
    fn changed(&mut self) {
        if let Some(doc) = &self.doc {
            let heads = doc.get_heads();
            if heads != self.heads {
                self.heads = heads;
                self.saved = None;
                self.typed = OnceLock::new();
            }
        }
    }

    /// Recomputes `has_pending` from the loaded document.
    fn refresh_pending(&mut self) {
        if let Some(doc) = &self.doc {
            self.has_pending = !doc.get_changes(&self.acked).is_empty();
        }
    }
}

/// An edit the server refused (or that left the device's scope), kept for the user.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RejectedEdit {
    pub doc_id: String,
    pub code: String,
    pub reason: String,
    /// The refused changes, as bytes.
    pub changes: Vec<ByteBuf>,
    /// The document as the user last saw it, with their edit (for showing what was typed).
    pub attempted: Option<serde_json::Value>,
}

/// What applying a response did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyReport {
    pub accepted_docs: usize,
    pub rejected: Vec<RejectedEdit>,
    pub pulled_changes: usize,
    pub pulled_docs: usize,
    pub revoked: usize,
    /// Documents rebuilt on the server's version because a push no longer fitted it; their unsent
    /// edits were made again on top and go out with the next push.
    pub resynced: usize,
    /// Documents in scope that were not brought up to date this time: the server could not serve
    /// or take them (its copy is damaged), or what it sent does not load. The local copy and its
    /// unsent edits are kept.
    pub unavailable: Vec<String>,
    /// Local copies that no longer loaded (a damaged store): replaced by the server's copy, or
    /// dropped and fetched again by a new bootstrap. Their unsent edits could not be read.
    pub damaged: Vec<String>,
    pub more: bool,
}

#[derive(Debug, Clone)]
pub struct Replica {
    device_id: String,
    who: Principal,
    /// The actor this replica writes with: `base_actor` at epoch 0, then a new one per resync.
    actor: ActorId,
    base_actor: ActorId,
    actor_epoch: u32,
    cursor: Cursor,
    docs: BTreeMap<String, LocalDoc>,
    rejected: Vec<RejectedEdit>,
    /// Heads pushed by the request in flight, per document.
    in_flight: BTreeMap<String, Vec<ChangeHash>>,
    /// Documents rebuilt after an `out_of_sync` and not accepted since: a second one in a row is
    /// set aside instead, so a document the server keeps refusing cannot loop.
    resynced: BTreeSet<String>,
    /// Documents changed (or removed) since the owner last persisted.
    dirty: BTreeSet<String>,
    /// Loaded documents, least recently used first.
    resident: VecDeque<String>,
    resident_limit: usize,
    /// Something pulled could not be applied (a damaged local copy or damaged changes): the cursor
    /// stays at the start until the next request, which bootstraps and brings it whole.
    refetch: bool,
}

impl Replica {
    /// A new, empty replica. `actor` must be unique to this device (derive it from the device id).
    pub fn new(device_id: &str, who: Principal, actor: ActorId) -> Self {
        Replica {
            device_id: device_id.to_string(),
            who,
            actor: actor.clone(),
            base_actor: actor,
            actor_epoch: 0,
            cursor: Cursor::Start,
            docs: BTreeMap::new(),
            rejected: Vec::new(),
            in_flight: BTreeMap::new(),
            resynced: BTreeSet::new(),
            dirty: BTreeSet::new(),
            resident: VecDeque::new(),
            resident_limit: RESIDENT_DOCS,
            refetch: false,
        }
    }

    /// A replica as it was persisted: its cursor, documents (loaded or, better, as saved bytes:
    /// [`LocalDoc::from_saved`]) and kept rejections.
    pub fn restore(
        device_id: &str,
        who: Principal,
        actor: ActorId,
        cursor: Cursor,
        docs: Vec<(String, LocalDoc)>,
        rejected: Vec<RejectedEdit>,
    ) -> Self {
        let mut r = Replica::new(device_id, who, actor.clone());
        r.cursor = cursor;
        r.rejected = rejected;
        for (id, mut d) in docs {
            let loaded = match d.doc.as_deref_mut() {
                Some(doc) => {
                    doc.set_actor(actor.clone());
                    true
                }
                None => false,
            };
            r.docs.insert(id.clone(), d);
            if loaded {
                r.touch(&id);
            }
        }
        r
    }

    /// The actor epoch: how many times this replica took a new actor (to persist with it).
    pub fn actor_epoch(&self) -> u32 {
        self.actor_epoch
    }

    /// Writes as the actor of `epoch` from now on (a store restoring a replica calls this).
    pub fn set_actor_epoch(&mut self, epoch: u32) {
        self.actor_epoch = epoch;
        self.actor = if epoch == 0 {
            self.base_actor.clone()
        } else {
            let mut bytes = self.base_actor.to_bytes().to_vec();
            bytes.extend_from_slice(format!("~{epoch}").as_bytes());
            ActorId::from(bytes)
        };
        for local in self.docs.values_mut() {
            if let Some(doc) = local.doc.as_deref_mut() {
                doc.set_actor(self.actor.clone());
            }
        }
    }

    /// Sets how many documents stay loaded at most (at least one), saving the least recently used
    /// ones beyond it.
    pub fn set_resident_limit(&mut self, limit: usize) {
        self.resident_limit = limit.max(1);
        self.evict();
    }

    /// Number of documents loaded right now.
    pub fn resident_len(&self) -> usize {
        self.docs.values().filter(|d| d.is_loaded()).count()
    }

    /// The user the local rules are applied for (a new token may carry a new role).
    pub fn set_principal(&mut self, who: Principal) {
        self.who = who;
    }

    /// Documents created, changed or removed since the last call: what the owner must persist.
    pub fn take_dirty(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.dirty)
    }

    /// Gives back documents taken with [`Replica::take_dirty`] whose persisting failed: the next
    /// persist writes them (a store that wrote a newer cursor without them would skip their
    /// changes for good).
    pub fn untake_dirty(&mut self, ids: BTreeSet<String>) {
        self.dirty.extend(ids);
    }

    /// Removes a kept rejection once the user has dealt with it.
    pub fn dismiss_rejected(&mut self, index: usize) -> Option<RejectedEdit> {
        (index < self.rejected.len()).then(|| self.rejected.remove(index))
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    pub fn principal(&self) -> &Principal {
        &self.who
    }

    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    pub fn doc_ids(&self) -> impl Iterator<Item = &String> {
        self.docs.keys()
    }

    pub fn local(&self, doc_id: &str) -> Option<&LocalDoc> {
        self.docs.get(doc_id)
    }

    /// A copy of a held document (loaded from its saved bytes if it is not loaded), writing as this
    /// replica's actor.
    pub fn doc_clone(&self, doc_id: &str) -> Option<Automerge> {
        let doc = self.docs.get(doc_id)?.automerge().ok()?;
        Some(doc.with_actor(self.actor.clone()))
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// The typed document, if held and readable.
    pub fn get(&self, doc_id: &str) -> Option<Document> {
        self.docs.get(doc_id).and_then(LocalDoc::typed)
    }

    pub fn heads(&self, doc_id: &str) -> Option<Vec<ChangeHash>> {
        self.docs.get(doc_id).map(|d| d.heads.clone())
    }

    /// Edits refused by the server, oldest first.
    pub fn rejected(&self) -> &[RejectedEdit] {
        &self.rejected
    }

    /// Number of documents with changes the server has not acknowledged.
    pub fn outbox_len(&self) -> usize {
        self.docs.values().filter(|d| d.has_pending).count()
    }

    /// Marks a held document as the most recently used one, then saves the least recently used
    /// loaded documents beyond the limit (never this one).
    fn touch(&mut self, doc_id: &str) {
        if self.resident.back().is_some_and(|r| r == doc_id) || !self.docs.contains_key(doc_id) {
            return;
        }
        if let Some(i) = self.resident.iter().position(|r| r == doc_id) {
            self.resident.remove(i);
        }
        self.resident.push_back(doc_id.to_string());
        self.evict();
    }

    fn evict(&mut self) {
        while self.resident.len() > self.resident_limit {
            let Some(old) = self.resident.pop_front() else { break };
            if let Some(d) = self.docs.get_mut(&old) {
                d.unload();
            }
        }
    }

    /// Loads a held document as the most recently used one.
    fn load(&mut self, doc_id: &str) -> Result<&mut LocalDoc> {
        self.touch(doc_id);
        let local = self.docs.get_mut(doc_id).ok_or_else(|| not_found(doc_id))?;
        local.load(doc_id, &self.actor)?;
        Ok(local)
    }

    /// Adds a loaded document as the most recently used one.
    fn insert_loaded(&mut self, doc_id: &str, local: LocalDoc) {
        self.docs.insert(doc_id.to_string(), local);
        self.touch(doc_id);
    }

    /// Removes a document, loaded: the document, its kind and what the server holds of it.
    fn take_loaded(&mut self, doc_id: &str) -> Result<(Automerge, DocKind, Vec<ChangeHash>)> {
        let local = self.docs.get_mut(doc_id).ok_or_else(|| not_found(doc_id))?;
        let doc = std::mem::take(local.load(doc_id, &self.actor)?);
        let (kind, acked) = (local.kind, std::mem::take(&mut local.acked));
        self.remove(doc_id);
        Ok((doc, kind, acked))
    }

    fn remove(&mut self, doc_id: &str) -> Option<LocalDoc> {
        if let Some(i) = self.resident.iter().position(|r| r == doc_id) {
            self.resident.remove(i);
        }
        self.docs.remove(doc_id)
    }

    /// Creates a document, checking it as the server will.
    pub fn create(&mut self, value: Document, now_ms: i64) -> Result<()> {
        value.validate()?;
        let id = value.id().to_string();
        if self.docs.contains_key(&id) {
            return Err(ClientError::AlreadyExists(id));
        }
        rules::check_edit(&self.who, None, &value, false).map_err(ClientError::Forbidden)?;
        let mut doc = Automerge::new().with_actor(self.actor.clone());
        commit(&mut doc, &value, now_ms)?;
        self.dirty.insert(id.clone());
        self.insert_loaded(&id, LocalDoc::new(doc, value.kind(), vec![]));
        Ok(())
    }

    /// Edits a document through its typed form, checking the result as the server will.
    pub fn update(
        &mut self,
        doc_id: &str,
        now_ms: i64,
        edit: impl FnOnce(&mut Document),
    ) -> Result<Document> {
        let who = self.who.clone();
        // Held on this device means in this user's scope: assigned, for a rep.
        self.edit(doc_id, now_ms, edit, |before, after| {
            after.validate()?;
            rules::check_edit(&who, Some(before), after, true).map_err(ClientError::Forbidden)
        })
    }

    /// Edits a document without the local rules: what an outdated or dishonest client would send.
    /// The server still decides; tools and tests use this to show that it does.
    pub fn update_unchecked(
        &mut self,
        doc_id: &str,
        now_ms: i64,
        edit: impl FnOnce(&mut Document),
    ) -> Result<Document> {
        self.edit(doc_id, now_ms, edit, |_, _| Ok(()))
    }

    /// Hydrates, edits and reconciles inside one transaction, so that text edits are computed
    /// against exactly the state they are applied to; a refused edit rolls back.
    fn edit(
        &mut self,
        doc_id: &str,
        now_ms: i64,
        edit: impl FnOnce(&mut Document),
        check: impl FnOnce(&Document, &Document) -> Result<()>,
    ) -> Result<Document> {
        self.touch(doc_id);
        let local = self.docs.get_mut(doc_id).ok_or_else(|| not_found(doc_id))?;
        let result = local.load(doc_id, &self.actor)?.transact_with(
            |_| CommitOptions::default().with_time(now_ms / 1000),
            |tx| -> Result<Document> {
                let before = Document::hydrate(tx)?;
                let mut after = before.clone();
                edit(&mut after);
                check(&before, &after)?;
                if after != before {
                    after.reconcile_into(tx).map_err(|e| ClientError::InvalidInput {
                        field: "document".into(),
                        reason: e.to_string(),
                    })?;
                }
                Ok(after)
            },
        );
        match result {
            Ok(ok) => {
                local.changed();
                local.refresh_pending();
                self.dirty.insert(doc_id.to_string());
                Ok(ok.result)
            }
            Err(failure) => Err(failure.error),
        }
    }

    /// Sets a document's unacknowledged changes aside when the server refuses the whole request
    /// because of them (a broken document from an outdated app): they are kept in the rejected list
    /// and the document goes back to what the server holds, so the device can sync again.
    pub fn set_aside(&mut self, doc_id: &str, code: &str, reason: &str) -> Result<RejectedEdit> {
        let (doc, kind, acked) = self.take_loaded(doc_id)?;
        let pending = doc.get_changes(&acked);
        let edit = RejectedEdit {
            doc_id: doc_id.to_string(),
            code: code.to_string(),
            reason: reason.to_string(),
            changes: pending.iter().map(|c| ByteBuf::from(c.raw_bytes().to_vec())).collect(),
            attempted: Document::hydrate(&doc).ok().and_then(|d| serde_json::to_value(d).ok()),
        };
        if !acked.is_empty() {
            let doc = doc
                .fork_at(&acked)
                .map_err(|e| ClientError::Corrupt(format!("{doc_id} at its acknowledged heads: {e}")))?
                .with_actor(self.actor.clone());
            self.insert_loaded(doc_id, LocalDoc::new(doc, kind, acked));
        }
        self.dirty.insert(doc_id.to_string());
        self.rejected.push(edit.clone());
        Ok(edit)
    }

    /// Builds the next request: the cursor and every unacknowledged change. A local copy that no
    /// longer loads (a damaged store) is dropped and the request bootstraps, so the server's copy
    /// comes back; what it held unsent cannot be read.
    pub fn prepare_request(&mut self) -> SyncRequest {
        self.in_flight.clear();
        let mut push = Vec::new();
        let mut damaged = Vec::new();
        for (id, local) in self.docs.iter_mut().filter(|(_, d)| d.has_pending) {
            // A document that is not loaded is read from a temporary copy: no other one is evicted.
            let pending = match local.pending() {
                Ok(pending) => pending,
                Err(e) => {
                    tracing::error!(doc = %id, error = %e, "a local document cannot be read; fetched again");
                    damaged.push(id.clone());
                    continue;
                }
            };
            if pending.is_empty() {
                local.has_pending = false;
                continue;
            }
            self.in_flight.insert(id.clone(), local.heads.clone());
            push.push(DocPush {
                doc_id: id.clone(),
                kind: local.kind,
                changes: pending.iter().map(|c| ByteBuf::from(c.raw_bytes().to_vec())).collect(),
            });
        }
        for id in &damaged {
            self.forget_damaged(id);
        }
        if !damaged.is_empty() || std::mem::take(&mut self.refetch) {
            self.cursor = Cursor::Start;
        }
        SyncRequest { device_id: self.device_id.clone(), cursor: self.cursor.clone(), push }
    }

    /// Drops a local copy that does not load: the next bootstrap brings the server's.
    fn forget_damaged(&mut self, doc_id: &str) {
        self.remove(doc_id);
        self.in_flight.remove(doc_id);
        self.dirty.insert(doc_id.to_string());
    }

    /// Whether the local copy of `doc_id`, if any, fails to load.
    fn is_damaged(&mut self, doc_id: &str) -> bool {
        let actor = self.actor.clone();
        match self.docs.get_mut(doc_id).map(|l| l.load(doc_id, &actor).map(|_| ())) {
            Some(Err(e)) => {
                tracing::error!(doc = %doc_id, error = %e, "a local document cannot be read");
                true
            }
            _ => false,
        }
    }

    /// Applies the server's answer to the last prepared request.
    pub fn apply_response(&mut self, resp: &SyncResponse) -> Result<ApplyReport> {
        let mut report = ApplyReport { more: resp.more, ..Default::default() };
        let rejected_docs: HashSet<&str> = resp.rejected.iter().map(|r| r.doc_id.as_str()).collect();
        for a in &resp.accepted {
            if rejected_docs.contains(a.doc_id.as_str()) {
                continue;
            }
            let Some(heads) = self.in_flight.get(&a.doc_id).cloned() else { continue };
            let Some(local) = self.docs.get(&a.doc_id) else { continue };
            let all_held = heads.iter().all(|h| a.hashes.iter().any(|b| b.as_slice() == h.0));
            // Unchanged since the push: the pushed heads are the document's own.
            let held = all_held
                || heads == local.heads
                || self
                    .load(&a.doc_id)?
                    .doc
                    .as_deref()
                    .is_some_and(|doc| heads.iter().all(|h| doc.get_change_meta_by_hash(h).is_some()));
            if held {
                self.resynced.remove(&a.doc_id);
                self.merge_acked(&a.doc_id, &heads)?;
                self.dirty.insert(a.doc_id.clone());
                report.accepted_docs += 1;
            }
        }
        let mut new_actor = false;
        for r in &resp.rejected {
            let server_doc = r.server_doc.as_ref().map(|b| b.as_slice());
            if r.code == OUT_OF_SYNC
                && let Some(bytes) = server_doc
                && self.docs.contains_key(&r.doc_id)
                && self.resynced.insert(r.doc_id.clone())
            {
                // The old actor's sequence numbers are taken on the server: never reuse them.
                if !new_actor {
                    self.set_actor_epoch(self.actor_epoch.saturating_add(1));
                    new_actor = true;
                }
                match self.resync(&r.doc_id, bytes) {
                    Ok(()) => {
                        report.resynced += 1;
                        continue;
                    }
                    Err(e) => tracing::warn!(doc = %r.doc_id, error = %e, "resync failed; edits kept aside"),
                }
            }
            self.resynced.remove(&r.doc_id);
            let edit = self.reset_to_server(&r.doc_id, &r.code, &r.reason, &r.hashes, server_doc)?;
            report.rejected.push(edit);
        }
        report.unavailable.extend(resp.unavailable.iter().map(|u| u.doc_id.clone()));
        // Set when something of this response could not be applied: the next request bootstraps.
        let mut again = false;
        for s in &resp.docs {
            let mut incoming = match crate::untrusted::load(&s.bytes) {
                Ok(doc) => doc,
                Err(e) => {
                    tracing::error!(doc = %s.doc_id, error = %e, "the server's copy does not load; the local one is kept");
                    report.unavailable.push(s.doc_id.clone());
                    continue;
                }
            };
            self.dirty.insert(s.doc_id.clone());
            if self.is_damaged(&s.doc_id) {
                // The server's copy replaces what no longer loads here.
                self.forget_damaged(&s.doc_id);
                report.damaged.push(s.doc_id.clone());
            }
            let server_heads = incoming.get_heads();
            if self.docs.contains_key(&s.doc_id) {
                self.touch(&s.doc_id);
                let local = self.docs.get_mut(&s.doc_id).ok_or_else(|| not_found(&s.doc_id))?;
                local
                    .load(&s.doc_id, &self.actor)?
                    .merge(&mut incoming)
                    .map_err(|e| ClientError::Corrupt(format!("merging {}: {e}", s.doc_id)))?;
                local.changed();
                // A snapshot is all the server holds of the document: what this copy holds beyond
                // it is unsent, even if acknowledged once (a server restored from a backup taken
                // before the acknowledgement lacks it), and goes up with the next push.
                local.acked.clear();
                self.merge_acked(&s.doc_id, &server_heads)?;
            } else {
                // Kept as the bytes received; the typed view is computed now, while it is loaded.
                let local =
                    LocalDoc::from_saved(s.bytes.to_vec(), s.kind, server_heads.clone(), server_heads, false);
                local.typed.get_or_init(|| Document::hydrate(&incoming).ok());
                self.docs.insert(s.doc_id.clone(), local);
            }
            report.pulled_docs += 1;
        }
        for c in &resp.changes {
            self.dirty.insert(c.doc_id.clone());
            if self.is_damaged(&c.doc_id) {
                self.forget_damaged(&c.doc_id);
                report.damaged.push(c.doc_id.clone());
                again = true;
                continue;
            }
            if !self.docs.contains_key(&c.doc_id) {
                let doc = Automerge::new().with_actor(self.actor.clone());
                self.insert_loaded(&c.doc_id, LocalDoc::new(doc, c.kind, vec![]));
            }
            self.touch(&c.doc_id);
            let local = self.docs.get_mut(&c.doc_id).ok_or_else(|| not_found(&c.doc_id))?;
            local.load(&c.doc_id, &self.actor)?;
            let before: HashSet<ChangeHash> = local.pending()?.iter().map(Change::hash).collect();
            let applied = local.load(&c.doc_id, &self.actor)?.load_incremental(&c.changes);
            local.changed();
            local.refresh_pending();
            if let Err(e) = applied {
                // Damaged changes from the server: the document is fetched whole again.
                tracing::error!(doc = %c.doc_id, error = %e, "pulled changes do not load; bootstrapping again");
                report.unavailable.push(c.doc_id.clone());
                again = true;
                continue;
            }
            // What is new and not ours came from the server, so the server holds it.
            let pulled: Vec<ChangeHash> =
                local.pending()?.iter().map(Change::hash).filter(|h| !before.contains(h)).collect();
            self.merge_acked(&c.doc_id, &pulled)?;
            report.pulled_changes += 1;
        }
        for id in &resp.revoked {
            self.dirty.insert(id.clone());
            if !self.docs.contains_key(id) {
                continue;
            }
            if let Some(edit) = self.drop_keeping_edits(id)? {
                report.rejected.push(edit);
            }
            report.revoked += 1;
        }
        if let Some(after) = &resp.bootstrap_after {
            let (revoked, rejected) =
                self.drop_outside_bootstrap_page(after, &resp.cursor, &resp.page_docs())?;
            report.revoked += revoked;
            report.rejected.extend(rejected);
        }
        self.refetch |= again;
        self.cursor = if self.refetch { Cursor::Start } else { resp.cursor.clone() };
        report.more |= self.refetch;
        self.in_flight.clear();
        Ok(report)
    }

    /// After a bootstrap page, drops the documents the server knew of (acknowledged) whose ids the
    /// page covers but did not bring: they left this device's scope while it was away (the revoke
    /// may have been trimmed from the feed). Unsent edits of those are kept in the rejected list.
    /// The page covers the ids after `after` up to the `after` of `cursor`, or to the end when
    /// `cursor` is back on the feed. Returns how many were dropped and the edits kept.
    pub fn drop_outside_bootstrap_page(
        &mut self,
        after: &str,
        cursor: &Cursor,
        page: &HashSet<&str>,
    ) -> Result<(usize, Vec<RejectedEdit>)> {
        let until = match cursor {
            Cursor::Bootstrap { after, .. } => Some(after.as_str()),
            _ => None,
        };
        let gone: Vec<String> = self
            .docs
            .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .take_while(|(id, _)| until.is_none_or(|u| id.as_str() <= u))
            .filter(|(id, d)| !d.acked.is_empty() && !page.contains(id.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        let mut kept = Vec::new();
        for id in &gone {
            self.dirty.insert(id.clone());
            if let Some(edit) = self.drop_keeping_edits(id)? {
                kept.push(edit);
            }
        }
        Ok((gone.len(), kept))
    }

    /// Removes a document that left this device's scope; unsent edits go to the rejected list.
    fn drop_keeping_edits(&mut self, id: &str) -> Result<Option<RejectedEdit>> {
        let has_pending = self.docs.get(id).is_some_and(|d| d.has_pending);
        if !has_pending {
            self.remove(id);
            return Ok(None);
        }
        if self.is_damaged(id) {
            self.forget_damaged(id);
            return Ok(None);
        }
        let (doc, _, acked) = self.take_loaded(id)?;
        let pending = doc.get_changes(&acked);
        if pending.is_empty() {
            return Ok(None);
        }
        let edit = RejectedEdit {
            doc_id: id.to_string(),
            code: "revoked".into(),
            reason: "this document is no longer assigned to you; your unsent edits are kept here".into(),
            changes: pending.iter().map(|c| ByteBuf::from(c.raw_bytes().to_vec())).collect(),
            attempted: Document::hydrate(&doc).ok().and_then(|d| serde_json::to_value(d).ok()),
        };
        self.rejected.push(edit.clone());
        Ok(Some(edit))
    }

    /// Rebuilds a document whose push no longer fits the server's history: the server's version,
    /// with this device's unsent edits made again on top of it (field by field; notes as a text
    /// diff) as new changes, so nothing typed is lost and the next push fits. The caller has moved
    /// the replica to a new actor first.
    fn resync(&mut self, doc_id: &str, server_bytes: &[u8]) -> Result<()> {
        let local = self.docs.get(doc_id).ok_or_else(|| not_found(doc_id))?;
        let old = local.automerge()?;
        let kind = local.kind;
        let mine = Document::hydrate(&old)?;
        let mut doc = crate::untrusted::load(server_bytes)
            .map_err(|e| ClientError::Corrupt(format!("server version of {doc_id}: {e}")))?
            .with_actor(self.actor.clone());
        let server_heads = doc.get_heads();
        // What both sides hold: the server's changes this device has too (a set closed under
        // dependencies). What this device changed since then is made again, even what the
        // server had acknowledged and no longer holds.
        let shared: Vec<ChangeHash> = doc
            .get_changes(&[])
            .iter()
            .map(|c| c.hash())
            .filter(|h| old.get_change_meta_by_hash(h).is_some())
            .collect();
        let base = if shared.is_empty() {
            None
        } else {
            let deps: HashSet<ChangeHash> =
                shared.iter().filter_map(|h| doc.get_change_meta_by_hash(h)).flat_map(|m| m.deps).collect();
            let heads: Vec<ChangeHash> = shared.iter().copied().filter(|h| !deps.contains(h)).collect();
            let at = doc
                .fork_at(&heads)
                .map_err(|e| ClientError::Corrupt(format!("{doc_id} at the shared heads: {e}")))?;
            Some(Document::hydrate(&at)?)
        };
        doc.transact_with(
            |_| CommitOptions::default().with_message("resync"),
            |tx| -> Result<()> {
                let theirs = Document::hydrate(tx)?;
                if theirs.kind() != mine.kind() {
                    return Err(ClientError::Corrupt(format!(
                        "server version of {doc_id} is a {}",
                        theirs.kind()
                    )));
                }
                let merged = reapply(base.as_ref(), &mine, &theirs)?;
                if merged != theirs {
                    merged.reconcile_into(tx).map_err(|e| ClientError::InvalidInput {
                        field: "document".into(),
                        reason: e.to_string(),
                    })?;
                }
                Ok(())
            },
        )
        .map_err(|f| f.error)?;
        self.remove(doc_id);
        self.dirty.insert(doc_id.to_string());
        self.insert_loaded(doc_id, LocalDoc::new(doc, kind, server_heads));
        Ok(())
    }

    /// Replaces a document with the server's version, keeping the refused changes (and any later
    /// local edit that does not build on them).
    fn reset_to_server(
        &mut self,
        doc_id: &str,
        code: &str,
        reason: &str,
        hashes: &[ByteBuf],
        server_doc: Option<&[u8]>,
    ) -> Result<RejectedEdit> {
        self.dirty.insert(doc_id.to_string());
        let refused: HashSet<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
        // Read before the local copy is taken: corrupt bytes must not cost the unsent edits.
        let mut fresh = match server_doc {
            Some(bytes) => Some(
                crate::untrusted::load(bytes)
                    .map_err(|e| ClientError::Corrupt(format!("server version of {doc_id}: {e}")))?
                    .with_actor(self.actor.clone()),
            ),
            None => None,
        };
        let old = if self.docs.contains_key(doc_id) { Some(self.take_loaded(doc_id)?) } else { None };
        let mut edit = RejectedEdit {
            doc_id: doc_id.to_string(),
            code: code.to_string(),
            reason: reason.to_string(),
            changes: vec![],
            attempted: None,
        };
        // The server holds exactly its version: that is what is acknowledged after the reset.
        let acked = fresh.as_ref().map(Automerge::get_heads).unwrap_or_default();
        if let Some((old_doc, kind, old_acked)) = old {
            edit.attempted = Document::hydrate(&old_doc).ok().and_then(|d| serde_json::to_value(d).ok());
            let mut dropped: HashSet<ChangeHash> = HashSet::new();
            for c in old_doc.get_changes(&old_acked) {
                let builds_on_refused = c.deps().iter().any(|d| dropped.contains(d));
                if refused.contains(c.hash().0.as_slice()) || builds_on_refused {
                    dropped.insert(c.hash());
                    edit.changes.push(ByteBuf::from(c.raw_bytes().to_vec()));
                } else if let Some(doc) = fresh.as_mut() {
                    // A later local edit the server has not seen yet: keep it if it still applies.
                    if doc.apply_changes([c.clone()]).is_err()
                        || doc.get_change_meta_by_hash(&c.hash()).is_none()
                    {
                        dropped.insert(c.hash());
                        edit.changes.push(ByteBuf::from(c.raw_bytes().to_vec()));
                    }
                } else {
                    // No server version to keep it on: it is kept with the rejected edit.
                    edit.changes.push(ByteBuf::from(c.raw_bytes().to_vec()));
                }
            }
            if let Some(doc) = fresh {
                self.insert_loaded(doc_id, LocalDoc::new(doc, kind, acked));
            }
        }
        self.rejected.push(edit.clone());
        Ok(edit)
    }

    /// Adds hashes the server is known to hold, keeping the list short.
    fn merge_acked(&mut self, doc_id: &str, held: &[ChangeHash]) -> Result<()> {
        let local = self.docs.get_mut(doc_id).ok_or_else(|| not_found(doc_id))?;
        for h in held {
            if !local.acked.contains(h) {
                local.acked.push(*h);
            }
        }
        // The server holds the current heads, so every change: no need to load the document.
        if local.heads.iter().all(|h| local.acked.contains(h)) {
            local.acked = local.heads.clone();
            local.has_pending = false;
            return Ok(());
        }
        let local = self.load(doc_id)?;
        local.refresh_pending();
        if !local.has_pending {
            local.acked = local.heads.clone();
        } else if local.acked.len() > 16
            && let Some(doc) = local.doc.as_deref()
        {
            // Drop hashes that are direct dependencies of others in the list: still the same set.
            let deps: HashSet<ChangeHash> = local
                .acked
                .iter()
                .filter_map(|h| doc.get_change_meta_by_hash(h))
                .flat_map(|m| m.deps)
                .collect();
            local.acked.retain(|h| !deps.contains(h));
        }
        Ok(())
    }
}

/// The code of a rejection after which the device rebuilds the document and pushes again.
pub const OUT_OF_SYNC: &str = "out_of_sync";

/// `theirs` with the fields this device changed since `base`, the state both sides share (all of
/// them when they share nothing), set to `mine`. Notes keep the server's text object: when only this device changed
/// them they become its text, when both did the device's text is added after the server's.
fn reapply(base: Option<&Document>, mine: &Document, theirs: &Document) -> Result<Document> {
    let json = |d: &Document| serde_json::to_value(d).map_err(|e| ClientError::Corrupt(e.to_string()));
    let (mine_j, mut merged) = (json(mine)?, json(theirs)?);
    let base_j = base.map(json).transpose()?;
    if let (serde_json::Value::Object(m), serde_json::Value::Object(out)) = (&mine_j, &mut merged) {
        for (k, v) in m {
            if base_j.as_ref().and_then(|b| b.get(k)) != Some(v) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let corrupt = |e: serde_json::Error| ClientError::Corrupt(format!("rebuilding {}: {e}", theirs.id()));
    let mut out = match theirs {
        Document::Customer(_) => Document::Customer(serde_json::from_value(merged).map_err(corrupt)?),
        Document::Visit(_) => Document::Visit(serde_json::from_value(merged).map_err(corrupt)?),
        Document::Territory(_) => Document::Territory(serde_json::from_value(merged).map_err(corrupt)?),
        Document::Plan(_) => Document::Plan(serde_json::from_value(merged).map_err(corrupt)?),
    };
    let notes = |d: &Document| d.notes().map(|t| t.as_str().to_string());
    let (base_n, mine_n, theirs_n) = (base.and_then(notes), notes(mine), notes(theirs));
    let target = match (&mine_n, &theirs_n) {
        (Some(m), Some(t)) if base_n.as_ref() == Some(m) || m == t => t.clone(),
        (Some(m), Some(t)) if base_n.as_ref() == Some(t) || m.contains(t.as_str()) => m.clone(),
        (Some(m), Some(t)) => format!("{t}\n{m}"),
        _ => String::new(),
    };
    out.set_notes_on(theirs, &target);
    Ok(out)
}

fn commit(doc: &mut Automerge, value: &Document, now_ms: i64) -> Result<()> {
    doc.transact_with(|_| CommitOptions::default().with_time(now_ms / 1000), |tx| value.reconcile_into(tx))
        .map(|_| ())
        .map_err(|f| ClientError::InvalidInput { field: "document".into(), reason: f.error.to_string() })
}

#[cfg(test)]
mod tests {
    //! Residency must not change what a replica does: the same story runs with one loaded
    //! document and with the default, and ends the same, byte for byte.

    use super::*;
    use crate::Role;
    use crate::docs::{Checkin, Tier};
    use crate::engine::SyncEngine;
    use crate::storage::MemoryStorage;
    use crate::testing::fixtures::{self, prepend_notes};
    use crate::testing::{OnInvalid, memory_engine, replica, sync_until_idle_with};

    const TEAM: &str = "t";

    fn customer(id: &str, owner: &str) -> Document {
        Document::Customer(fixtures::customer(id, owner, None, (45.0, 4.0)))
    }

    fn visit(id: &str, customer_id: &str) -> Document {
        Document::Visit(fixtures::visit(id, customer_id, "alice", 0))
    }

    /// Syncs as the device library does (an invalid edit set aside), never loading more than `limit`.
    fn sync(engine: &SyncEngine<MemoryStorage>, r: &mut Replica, now: i64, limit: usize) {
        sync_until_idle_with(engine, r, now, OnInvalid::SetAside, |r| {
            assert!(r.resident_len() <= limit, "{} loaded, limit {limit}", r.resident_len());
        });
    }

    type Docs = Vec<(String, Vec<ChangeHash>, Option<serde_json::Value>, bool)>;

    fn state(r: &Replica) -> Docs {
        r.doc_ids()
            .map(|id| {
                let local = r.local(id).expect("held");
                let typed = r.get(id).map(|d| serde_json::to_value(d).expect("json"));
                (id.clone(), r.heads(id).expect("held"), typed, local.has_pending())
            })
            .collect()
    }

    /// The same replica, its documents as saved bytes (as a store restores it).
    fn reopened(r: &Replica) -> Replica {
        let docs = r
            .doc_ids()
            .map(|id| {
                let l = r.local(id).expect("held");
                let saved = l.saved().into_owned();
                (
                    id.clone(),
                    LocalDoc::from_saved(
                        saved,
                        l.kind(),
                        l.acked().to_vec(),
                        l.heads().to_vec(),
                        l.has_pending(),
                    ),
                )
            })
            .collect();
        Replica::restore(
            r.device_id(),
            r.principal().clone(),
            r.actor.clone(),
            r.cursor().clone(),
            docs,
            r.rejected().to_vec(),
        )
    }

    fn story(limit: usize) -> (Docs, Docs, Docs, Vec<RejectedEdit>) {
        let engine = memory_engine(|c| {
            c.bootstrap_docs = 5;
            c.page_entries = 7;
        });
        let ids: Vec<String> = (0..12).map(|i| format!("c{i:02}")).collect();
        let seed: Vec<Document> = ids.iter().map(|id| customer(id, "alice")).collect();
        engine.write_as_server(TEAM, &seed, 0).expect("seed");
        let mut alice = replica("pa", TEAM, "alice", Role::Rep);
        let mut bob = replica("pb", TEAM, "bob", Role::Rep);
        let mut tablet = replica("tab", TEAM, "maria", Role::Manager);
        for r in [&mut alice, &mut bob, &mut tablet] {
            r.set_resident_limit(limit);
            sync(&engine, r, 1, limit);
        }
        assert_eq!(alice.len(), 12);
        assert_eq!(tablet.len(), 12);

        // Alice edits everything offline, plans visits, then comes back to the first customers.
        for id in &ids {
            alice
                .update(id, 2_000, |d| {
                    prepend_notes("alice. ")(d);
                    if let Document::Customer(c) = d {
                        c.follow_up_status = "call".into();
                    }
                })
                .expect("edit");
        }
        for (i, id) in ids.iter().take(6).enumerate() {
            alice.create(visit(&format!("v{i:02}"), id), 2_000).expect("plan");
        }
        alice.update("c00", 3_000, prepend_notes("again. ")).expect("edit again");
        assert_eq!(alice.outbox_len(), 18);
        assert!(alice.resident_len() <= limit);

        // Meanwhile the manager edits some of the same customers and gives the last one to bob.
        for id in &ids[1..6] {
            tablet.update(id, 2_500, prepend_notes("maria. ")).expect("manager edit");
        }
        tablet
            .update("c11", 2_500, |d| {
                if let Document::Customer(c) = d {
                    c.owner_rep = Some("bob".into());
                }
            })
            .expect("reassign");
        sync(&engine, &mut tablet, 3_000, limit);

        // Alice also tries what a rep may not do, and what no one may write.
        alice
            .update_unchecked("c02", 3_500, |d| {
                if let Document::Customer(c) = d {
                    c.tier = Some(Tier::A);
                }
            })
            .expect("unchecked edit");
        alice
            .update_unchecked("v00", 3_500, |d| {
                if let Document::Visit(v) = d {
                    v.checkins.push(Checkin::new("bad", 123.0, 4.0, 5.0, 3));
                }
            })
            .expect("unchecked edit");
        sync(&engine, &mut alice, 4_000, limit);
        sync(&engine, &mut bob, 5_000, limit);
        sync(&engine, &mut tablet, 5_000, limit);

        // Reopened from saved bytes, alice goes on where she was.
        let mut alice2 = reopened(&alice);
        alice2.set_resident_limit(limit);
        assert_eq!(alice2.resident_len(), 0);
        assert_eq!(state(&alice2), state(&alice));
        alice2.update("c03", 6_000, prepend_notes("after reopening. ")).expect("edit after reopening");
        assert_eq!(alice2.outbox_len(), 1);
        sync(&engine, &mut alice2, 6_000, limit);
        sync(&engine, &mut tablet, 7_000, limit);
        sync(&engine, &mut bob, 7_000, limit);

        for r in [&alice2, &bob, &tablet] {
            assert_eq!(r.outbox_len(), 0);
            for id in r.doc_ids() {
                assert_eq!(r.heads(id), engine.doc_heads(TEAM, id).expect("heads"), "{id}");
                let loaded = r.doc_clone(id).expect("readable");
                assert_eq!(r.heads(id), Some(loaded.get_heads()), "{id}: cached heads");
                let typed = Document::hydrate(&loaded).ok();
                assert_eq!(r.get(id), typed, "{id}: cached typed view");
            }
        }
        assert!(alice2.get("c11").is_none(), "revoked");
        assert!(bob.get("c11").is_some(), "granted");
        match tablet.get("c03") {
            Some(Document::Customer(c)) => {
                assert!(c.notes.as_str().contains("after reopening."), "{}", c.notes.as_str());
                assert!(c.notes.as_str().contains("maria."), "{}", c.notes.as_str());
            }
            other => panic!("{other:?}"),
        }
        let mut codes: Vec<(&str, &str)> =
            alice2.rejected().iter().map(|r| (r.doc_id.as_str(), r.code.as_str())).collect();
        codes.sort();
        assert_eq!(codes.len(), 3, "{codes:?}");
        assert_eq!(codes[0].0, "c02", "{codes:?}");
        assert_eq!(codes[1], ("c11", "not_found"), "{codes:?}");
        assert_eq!(codes[2], ("v00", "invalid_document"), "{codes:?}");
        (state(&alice2), state(&bob), state(&tablet), alice2.rejected().to_vec())
    }

    #[test]
    fn residency_does_not_change_the_outcome() {
        let reference = story(RESIDENT_DOCS);
        assert_eq!(story(1), reference);
        assert_eq!(story(3), reference);
    }

    #[test]
    fn at_most_the_limit_is_loaded_and_reads_do_not_load() {
        let mut r = replica("p", TEAM, "root", Role::Admin);
        r.set_resident_limit(4);
        for i in 0..20 {
            r.create(customer(&format!("c{i:02}"), "alice"), 1_000).expect("create");
            assert!(r.resident_len() <= 4);
        }
        let before = r.resident_len();
        for i in 0..20 {
            let id = format!("c{i:02}");
            assert!(r.get(&id).is_some());
            assert!(r.heads(&id).is_some());
        }
        assert_eq!(r.outbox_len(), 20);
        assert_eq!(r.resident_len(), before);
        // Unloaded documents keep their unsent changes.
        let req = r.prepare_request();
        assert_eq!(req.push.len(), 20);
        assert!(req.push.iter().all(|p| p.changes.len() == 1));
        assert_eq!(r.resident_len(), before, "a push reads documents without loading them");
    }

    #[test]
    fn a_replica_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Replica>();
    }

    /// The server's answer that a document's pushed changes do not fit its history.
    fn out_of_sync(engine: &SyncEngine<MemoryStorage>, r: &Replica, doc_id: &str) -> SyncResponse {
        use crate::storage::Storage as _;
        let stored = engine.storage().load_doc(TEAM, doc_id).expect("load").expect("stored");
        SyncResponse {
            accepted: vec![],
            rejected: vec![crate::protocol::Rejected {
                doc_id: doc_id.into(),
                // As the server lists them: every change it could not take.
                hashes: r.docs[doc_id]
                    .pending()
                    .expect("pending")
                    .iter()
                    .map(|c| ByteBuf::from(c.hash().0.to_vec()))
                    .collect(),
                code: OUT_OF_SYNC.into(),
                reason: "the pushed changes do not fit the stored history".into(),
                server_doc: Some(ByteBuf::from(stored)),
            }],
            docs: vec![],
            changes: vec![],
            revoked: vec![],
            cursor: r.cursor().clone(),
            more: false,
            bootstrap_after: None,
            unavailable: vec![],
        }
    }

    #[test]
    fn a_second_out_of_sync_in_a_row_sets_the_edit_aside_instead_of_rebuilding_forever() {
        // 1. Alice holds her customer and writes a note offline.
        let engine = memory_engine(|_| {});
        engine.write_as_server(TEAM, &[customer("c1", "alice")], 1).expect("seed");
        let mut r = replica("alice-phone", TEAM, "alice", Role::Rep);
        sync(&engine, &mut r, 2, RESIDENT_DOCS);
        r.update("c1", 3, prepend_notes("call back")).expect("note");
        let epoch = r.actor_epoch();

        // 2. The server says the push does not fit: the document is rebuilt on the server's version
        //    under a new actor, the note kept, nothing set aside.
        let first = r.apply_response(&out_of_sync(&engine, &r, "c1")).expect("apply");
        assert_eq!((first.resynced, first.rejected.len()), (1, 0), "{first:?}");
        assert_eq!(r.actor_epoch(), epoch + 1);
        assert!(
            r.get("c1")
                .and_then(|d| d.notes().map(|n| n.as_str().to_string()))
                .is_some_and(|n| n.contains("call back"))
        );
        assert!(r.rejected().is_empty());

        // 3. It does not fit again, with no acceptance in between: the edit is set aside for the user
        //    and the document reset to the server's, instead of a rebuild on every sync.
        let second = r.apply_response(&out_of_sync(&engine, &r, "c1")).expect("apply");
        assert_eq!((second.resynced, second.rejected.len()), (0, 1), "{second:?}");
        assert_eq!(second.rejected[0].code, OUT_OF_SYNC);
        assert_eq!(r.rejected().len(), 1, "kept for the user");
        assert!(!r.rejected()[0].changes.is_empty(), "with the refused changes");
        assert_eq!(r.outbox_len(), 0, "nothing left to push for it");

        // 4. The next sync is quiet: the reset document matches the server.
        sync(&engine, &mut r, 4, RESIDENT_DOCS);
        assert_eq!(r.heads("c1"), engine.doc_heads(TEAM, "c1").expect("heads"));
        let on_server = engine.read_doc(TEAM, "c1").expect("read").expect("stored").0;
        assert!(
            !on_server.notes().is_some_and(|n| n.as_str().contains("call back")),
            "set aside, not pushed"
        );
    }

    #[test]
    fn a_document_created_while_the_last_bootstrap_page_was_read_is_kept() {
        // 1. The last (here: only) bootstrap page of alice's new phone lists c1; while it is read,
        //    c2 is created, and the feed after the page's head brings it in the same response.
        let engine = memory_engine(|_| {});
        engine.write_as_server(TEAM, &[customer("c1", "alice")], 0).expect("c1");
        let mut alice = replica("pa", TEAM, "alice", Role::Rep);
        let who = alice.principal().clone();
        let mut page = engine.handle(&who, &alice.prepare_request(), 1).expect("bootstrap");
        assert_eq!(page.bootstrap_after.as_deref(), Some(""));
        engine.write_as_server(TEAM, &[customer("c2", "alice")], 2).expect("c2");
        let mut other = replica("pb", TEAM, "alice", Role::Rep);
        other.cursor = page.cursor.clone();
        let tail = engine.handle(&who, &other.prepare_request(), 3).expect("feed");
        assert_eq!(tail.changes.len(), 1, "the feed brings c2");
        page.changes = tail.changes;
        page.cursor = tail.cursor;

        // 2. The phone keeps both: c2 came with the page, it did not leave alice's scope.
        alice.apply_response(&page).expect("apply");
        assert_eq!(alice.doc_ids().collect::<Vec<_>>(), ["c1", "c2"]);
    }
}
