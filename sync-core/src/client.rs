//! The device side of the sync protocol, without IO of its own.
//!
//! A [`Replica`] holds a device's documents, knows which changes the server has acknowledged, and
//! turns that into a [`SyncRequest`]; it applies a [`SyncResponse`] back. Writes go through typed
//! methods that run the same rules as the server before anything is written, so an honest client is
//! rarely rejected. The device library persists a replica's documents and drives the loop; tests
//! drive it directly.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc, transaction::CommitOptions};
use serde_bytes::ByteBuf;

use crate::docs::{DocError, DocKind, Document};
use crate::protocol::{Cursor, DocPush, SyncRequest, SyncResponse};
use crate::rules::{self, Principal, Violation};

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

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

/// One local document and what the server is known to hold of it.
#[derive(Debug, Clone)]
pub struct LocalDoc {
    pub doc: Automerge,
    pub kind: DocKind,
    /// The server holds every change that is an ancestor of (or equal to) one of these.
    pub acked: Vec<ChangeHash>,
}

impl LocalDoc {
    /// Local changes the server has not acknowledged.
    pub fn pending(&self) -> Vec<Change> {
        self.doc.get_changes(&self.acked)
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
    pub more: bool,
}

#[derive(Debug, Clone)]
pub struct Replica {
    device_id: String,
    who: Principal,
    actor: ActorId,
    cursor: Cursor,
    docs: BTreeMap<String, LocalDoc>,
    rejected: Vec<RejectedEdit>,
    /// Heads pushed by the request in flight, per document.
    in_flight: BTreeMap<String, Vec<ChangeHash>>,
    /// Documents changed (or removed) since the owner last persisted.
    dirty: BTreeSet<String>,
}

impl Replica {
    /// A new, empty replica. `actor` must be unique to this device (derive it from the device id).
    pub fn new(device_id: &str, who: Principal, actor: ActorId) -> Self {
        Replica {
            device_id: device_id.to_string(),
            who,
            actor,
            cursor: Cursor::Start,
            docs: BTreeMap::new(),
            rejected: Vec::new(),
            in_flight: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// A replica as it was persisted: its cursor, documents and kept rejections.
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
        r.docs = docs
            .into_iter()
            .map(|(id, mut d)| {
                d.doc.set_actor(actor.clone());
                (id, d)
            })
            .collect();
        r
    }

    /// The user the local rules are applied for (a new token may carry a new role).
    pub fn set_principal(&mut self, who: Principal) {
        self.who = who;
    }

    /// Documents created, changed or removed since the last call: what the owner must persist.
    pub fn take_dirty(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.dirty)
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

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// The typed document, if held and readable.
    pub fn get(&self, doc_id: &str) -> Option<Document> {
        self.docs.get(doc_id).and_then(|d| Document::hydrate(&d.doc).ok())
    }

    pub fn heads(&self, doc_id: &str) -> Option<Vec<ChangeHash>> {
        self.docs.get(doc_id).map(|d| d.doc.get_heads())
    }

    /// Edits refused by the server, oldest first.
    pub fn rejected(&self) -> &[RejectedEdit] {
        &self.rejected
    }

    /// Number of documents with changes the server has not acknowledged.
    pub fn outbox_len(&self) -> usize {
        self.docs.values().filter(|d| !d.pending().is_empty()).count()
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
        self.docs.insert(id, LocalDoc { doc, kind: value.kind(), acked: vec![] });
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
        let local = self.docs.get_mut(doc_id).ok_or_else(|| ClientError::NotFound(doc_id.to_string()))?;
        let result = local.doc.transact_with(
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
        let local = self.docs.remove(doc_id).ok_or_else(|| ClientError::NotFound(doc_id.to_string()))?;
        let pending = local.pending();
        let edit = RejectedEdit {
            doc_id: doc_id.to_string(),
            code: code.to_string(),
            reason: reason.to_string(),
            changes: pending.iter().map(|c| ByteBuf::from(c.raw_bytes().to_vec())).collect(),
            attempted: Document::hydrate(&local.doc).ok().and_then(|d| serde_json::to_value(d).ok()),
        };
        if !local.acked.is_empty() {
            let doc = local
                .doc
                .fork_at(&local.acked)
                .map_err(|e| ClientError::Corrupt(format!("{doc_id} at its acknowledged heads: {e}")))?
                .with_actor(self.actor.clone());
            self.docs.insert(doc_id.to_string(), LocalDoc { doc, kind: local.kind, acked: local.acked });
        }
        self.dirty.insert(doc_id.to_string());
        self.rejected.push(edit.clone());
        Ok(edit)
    }

    /// Builds the next request: the cursor and every unacknowledged change.
    pub fn prepare_request(&mut self) -> SyncRequest {
        self.in_flight.clear();
        let mut push = Vec::new();
        for (id, local) in &self.docs {
            let pending = local.pending();
            if pending.is_empty() {
                continue;
            }
            self.in_flight.insert(id.clone(), local.doc.get_heads());
            push.push(DocPush {
                doc_id: id.clone(),
                kind: local.kind,
                changes: pending.iter().map(|c| ByteBuf::from(c.raw_bytes().to_vec())).collect(),
            });
        }
        SyncRequest { device_id: self.device_id.clone(), cursor: self.cursor.clone(), push }
    }

    /// Applies the server's answer to the last prepared request.
    pub fn apply_response(&mut self, resp: &SyncResponse) -> Result<ApplyReport> {
        let mut report = ApplyReport { more: resp.more, ..Default::default() };
        let rejected_docs: HashSet<&str> = resp.rejected.iter().map(|r| r.doc_id.as_str()).collect();
        for a in &resp.accepted {
            if rejected_docs.contains(a.doc_id.as_str()) {
                continue;
            }
            if let (Some(heads), Some(local)) = (self.in_flight.get(&a.doc_id), self.docs.get_mut(&a.doc_id))
            {
                let all_held = heads.iter().all(|h| a.hashes.iter().any(|b| b.as_slice() == h.0));
                if all_held || heads.iter().all(|h| local.doc.get_change_by_hash(h).is_some()) {
                    merge_acked(local, heads);
                    self.dirty.insert(a.doc_id.clone());
                    report.accepted_docs += 1;
                }
            }
        }
        for r in &resp.rejected {
            let edit = self.reset_to_server(
                &r.doc_id,
                &r.code,
                &r.reason,
                &r.hashes,
                r.server_doc.as_ref().map(|b| b.as_slice()),
            )?;
            report.rejected.push(edit);
        }
        for s in &resp.docs {
            self.dirty.insert(s.doc_id.clone());
            let mut incoming = Automerge::load(&s.bytes)
                .map_err(|e| ClientError::Corrupt(format!("snapshot of {}: {e}", s.doc_id)))?;
            let server_heads = incoming.get_heads();
            match self.docs.get_mut(&s.doc_id) {
                Some(local) => {
                    local
                        .doc
                        .merge(&mut incoming)
                        .map_err(|e| ClientError::Corrupt(format!("merging {}: {e}", s.doc_id)))?;
                    merge_acked(local, &server_heads);
                }
                None => {
                    let doc = incoming.with_actor(self.actor.clone());
                    self.docs.insert(s.doc_id.clone(), LocalDoc { doc, kind: s.kind, acked: server_heads });
                }
            }
            report.pulled_docs += 1;
        }
        for c in &resp.changes {
            self.dirty.insert(c.doc_id.clone());
            let actor = self.actor.clone();
            let local = self.docs.entry(c.doc_id.clone()).or_insert_with(|| LocalDoc {
                doc: Automerge::new().with_actor(actor),
                kind: c.kind,
                acked: vec![],
            });
            let before: HashSet<ChangeHash> = local.pending().iter().map(Change::hash).collect();
            local
                .doc
                .load_incremental(&c.changes)
                .map_err(|e| ClientError::Corrupt(format!("changes of {}: {e}", c.doc_id)))?;
            // What is new and not ours came from the server, so the server holds it.
            let pulled: Vec<ChangeHash> =
                local.pending().iter().map(Change::hash).filter(|h| !before.contains(h)).collect();
            merge_acked(local, &pulled);
            report.pulled_changes += 1;
        }
        for id in &resp.revoked {
            self.dirty.insert(id.clone());
            if let Some(local) = self.docs.remove(id) {
                let pending = local.pending();
                if !pending.is_empty() {
                    let edit = RejectedEdit {
                        doc_id: id.clone(),
                        code: "revoked".into(),
                        reason: "this document is no longer assigned to you; your unsent edits are kept here"
                            .into(),
                        changes: pending.iter().map(|c| ByteBuf::from(c.raw_bytes().to_vec())).collect(),
                        attempted: Document::hydrate(&local.doc)
                            .ok()
                            .and_then(|d| serde_json::to_value(d).ok()),
                    };
                    self.rejected.push(edit.clone());
                    report.rejected.push(edit);
                }
                report.revoked += 1;
            }
        }
        self.cursor = resp.cursor.clone();
        self.in_flight.clear();
        Ok(report)
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
        let old = self.docs.remove(doc_id);
        let mut edit = RejectedEdit {
            doc_id: doc_id.to_string(),
            code: code.to_string(),
            reason: reason.to_string(),
            changes: vec![],
            attempted: None,
        };
        let mut fresh = match server_doc {
            Some(bytes) => Some(
                Automerge::load(bytes)
                    .map_err(|e| ClientError::Corrupt(format!("server version of {doc_id}: {e}")))?
                    .with_actor(self.actor.clone()),
            ),
            None => None,
        };
        // The server holds exactly its version: that is what is acknowledged after the reset.
        let acked = fresh.as_ref().map(Automerge::get_heads).unwrap_or_default();
        if let Some(old) = old {
            edit.attempted = Document::hydrate(&old.doc).ok().and_then(|d| serde_json::to_value(d).ok());
            let mut dropped: HashSet<ChangeHash> = HashSet::new();
            for c in old.pending() {
                let builds_on_refused = c.deps().iter().any(|d| dropped.contains(d));
                if refused.contains(c.hash().0.as_slice()) || builds_on_refused {
                    dropped.insert(c.hash());
                    edit.changes.push(ByteBuf::from(c.raw_bytes().to_vec()));
                } else if let Some(doc) = fresh.as_mut() {
                    // A later local edit the server has not seen yet: keep it if it still applies.
                    if doc.apply_changes([c.clone()]).is_err() || doc.get_change_by_hash(&c.hash()).is_none()
                    {
                        dropped.insert(c.hash());
                        edit.changes.push(ByteBuf::from(c.raw_bytes().to_vec()));
                    }
                }
            }
            if let Some(doc) = fresh {
                self.docs.insert(doc_id.to_string(), LocalDoc { doc, kind: old.kind, acked });
            }
        }
        self.rejected.push(edit.clone());
        Ok(edit)
    }
}

/// Adds hashes the server is known to hold, keeping the list short.
fn merge_acked(local: &mut LocalDoc, held: &[ChangeHash]) {
    for h in held {
        if !local.acked.contains(h) {
            local.acked.push(*h);
        }
    }
    if local.pending().is_empty() {
        local.acked = local.doc.get_heads();
    } else if local.acked.len() > 16 {
        // Drop hashes that are direct dependencies of others in the list: still the same set.
        let deps: HashSet<ChangeHash> = local
            .acked
            .iter()
            .filter_map(|h| local.doc.get_change_by_hash(h))
            .flat_map(|c| c.deps().to_vec())
            .collect();
        local.acked.retain(|h| !deps.contains(h));
    }
}

fn commit(doc: &mut Automerge, value: &Document, now_ms: i64) -> Result<()> {
    doc.transact_with(|_| CommitOptions::default().with_time(now_ms / 1000), |tx| value.reconcile_into(tx))
        .map(|_| ())
        .map_err(|f| ClientError::InvalidInput { field: "document".into(), reason: f.error.to_string() })
}
