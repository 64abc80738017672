//! Writes by the server itself (seeding, territory designs, imports, reviews).
//!
//! They follow the rules of pushes: under the team's lock, each write is applied to the stored
//! version of the document — hydrated, edited and reconciled inside one transaction, so text is
//! never reconciled against heads it was not read at — and recorded with the same bookkeeping
//! (audience, grants and revokes, compaction, version). A commit that finds the feed head moved
//! (another node wrote) is decided again from the stored versions.

use std::collections::HashSet;

use automerge::{Automerge, transaction::CommitOptions};

use super::commit::{DocUpdate, Pending};
use super::{Result, SyncEngine, SyncError};
use crate::docs::{DocKind, Document, validate_id};
use crate::storage::{SERVER_ORIGIN, Storage, StorageError};

/// Commits tried when other writers keep moving the feed head.
const COMMIT_ATTEMPTS: usize = 5;

type EditFn = dyn Fn(&mut Document) + Send + Sync;

/// One write by the server.
pub enum ServerWrite {
    /// The document with these values: created, or the stored one brought to them field by field
    /// (text is diffed into the stored text, so concurrent edits of it are not clobbered wholesale).
    Put(Document),
    /// An edit of the stored document's current typed form (only the fields it sets change). A
    /// document that does not exist (any more) is left alone.
    Edit { doc_id: String, kind: DocKind, edit: Box<EditFn> },
}

impl std::fmt::Debug for ServerWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerWrite::Put(d) => f.debug_tuple("Put").field(&d.id()).finish(),
            ServerWrite::Edit { doc_id, kind, .. } => {
                f.debug_struct("Edit").field("doc_id", doc_id).field("kind", kind).finish_non_exhaustive()
            }
        }
    }
}

impl ServerWrite {
    /// An edit of a stored document.
    pub fn edit(doc_id: &str, kind: DocKind, edit: impl Fn(&mut Document) + Send + Sync + 'static) -> Self {
        ServerWrite::Edit { doc_id: doc_id.to_string(), kind, edit: Box::new(edit) }
    }

    pub fn doc_id(&self) -> &str {
        match self {
            ServerWrite::Put(d) => d.id(),
            ServerWrite::Edit { doc_id, .. } => doc_id,
        }
    }
}

impl<S: Storage> SyncEngine<S> {
    /// Writes documents as the server (seeding, imports): each is created or brought to the given
    /// values, as a change by the server's actor, in the feed for every device in scope.
    pub fn write_as_server(&self, team: &str, docs: &[Document], now_ms: i64) -> Result<()> {
        let writes: Vec<ServerWrite> = docs.iter().cloned().map(ServerWrite::Put).collect();
        self.apply_server_writes(team, &writes, now_ms).map(|_| ())
    }

    /// Applies server writes to the stored versions of their documents, atomically. Returns the ids
    /// of the documents that changed.
    pub fn apply_server_writes(
        &self,
        team: &str,
        writes: &[ServerWrite],
        now_ms: i64,
    ) -> Result<Vec<String>> {
        let mut ids = HashSet::new();
        for w in writes {
            validate_id("id", w.doc_id())
                .map_err(|e| SyncError::InvalidDocument { doc_id: w.doc_id().into(), error: e })?;
            if !ids.insert(w.doc_id()) {
                return Err(SyncError::BadRequest(format!(
                    "document {} written twice in one batch",
                    w.doc_id()
                )));
            }
        }
        let lock = self.team_lock(team);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (pending, changed) = self.stage_server_writes(team, writes, now_ms)?;
            match self.commit_pending(pending) {
                Err(SyncError::Storage(StorageError::Conflict { .. })) if attempt < COMMIT_ATTEMPTS => {
                    continue;
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok(changed),
            }
        }
    }

    fn stage_server_writes(
        &self,
        team: &str,
        writes: &[ServerWrite],
        now_ms: i64,
    ) -> Result<(Pending, Vec<String>)> {
        let mut pending = Pending::new(team, self.storage.feed_head(team)?);
        let mut changed = Vec::new();
        for w in writes {
            let doc_id = w.doc_id();
            let current = self.current(team, doc_id)?;
            let kind = match (w, &current) {
                (ServerWrite::Edit { .. }, None) => continue,
                (ServerWrite::Edit { kind, .. }, Some(_)) => *kind,
                (ServerWrite::Put(d), _) => d.kind(),
            };
            if let Some(c) = &current
                && c.meta.kind != kind
            {
                return Err(SyncError::KindMismatch {
                    doc_id: doc_id.into(),
                    stored: c.meta.kind,
                    pushed: kind,
                });
            }
            let mut doc = current.as_ref().map_or_else(Automerge::new, |c| c.snap.doc.clone());
            let actor = doc.get_actor().clone();
            doc.set_actor(self.config.server_actor.clone());
            let heads_before = doc.get_heads();
            let invalid = |error| SyncError::InvalidDocument { doc_id: doc_id.into(), error };
            let result = doc.transact_with(
                |_| CommitOptions::default().with_message("server write").with_time(now_ms / 1000),
                |tx| -> Result<Document> {
                    let before =
                        if current.is_some() { Some(Document::hydrate(tx).map_err(invalid)?) } else { None };
                    let after = match (w, &before) {
                        (ServerWrite::Put(d), None) => d.clone(),
                        (ServerWrite::Put(d), Some(b)) => {
                            // The stored text keeps its identity; only its content follows `d`.
                            let mut d = d.clone();
                            if let Some(value) = d.notes().map(|t| t.as_str().to_string()) {
                                d.set_notes_on(b, &value);
                            }
                            d
                        }
                        (ServerWrite::Edit { edit, .. }, Some(b)) => {
                            let mut d = b.clone();
                            edit(&mut d);
                            d
                        }
                        (ServerWrite::Edit { .. }, None) => {
                            return Err(SyncError::BadRequest(format!("no document {doc_id} to edit")));
                        }
                    };
                    after.validate().map_err(invalid)?;
                    if after.id() != doc_id || after.kind() != kind {
                        return Err(SyncError::BadRequest(format!(
                            "a server write may not change the id or kind of {doc_id}"
                        )));
                    }
                    if before.as_ref() != Some(&after) {
                        after.reconcile_into(tx).map_err(|e| {
                            SyncError::Storage(StorageError::Backend(format!("reconcile {doc_id}: {e}")))
                        })?;
                    }
                    Ok(after)
                },
            );
            doc.set_actor(actor);
            let after = result.map_err(|f| f.error)?.result;
            let new = doc.save_after(&heads_before);
            if new.is_empty() {
                continue;
            }
            self.record(
                &mut pending,
                DocUpdate {
                    doc_id,
                    kind,
                    old_meta: current.as_ref().map(|c| &c.meta),
                    doc: &doc,
                    state: &after,
                    entries: vec![(SERVER_ORIGIN, new)],
                    now_ms,
                },
            )?;
            changed.push(doc_id.to_string());
            pending.to_cache.push((doc_id.to_string(), doc));
        }
        Ok((pending, changed))
    }
}
