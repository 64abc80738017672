//! Committing decided documents: the bookkeeping every write shares (audience, feed entries, scope
//! changes, compaction), the quarantine, the atomic batch, then the cache. Runs under the team's
//! lock, against documents that are at the version they were decided against.

use std::collections::HashMap;
use std::sync::Arc;

use automerge::{Automerge, Change};
use serde_bytes::ByteBuf;

use super::stage::Staged;
use super::{Decision, Outcome, Result, Snapshot, SyncEngine};
use crate::docs::{Audience, DocKind, Document};
use crate::index::IndexRow;
use crate::protocol::{Accepted, Rejected, SyncResponse};
use crate::rules::{Principal, Violation};
use crate::storage::{
    Batch, DocData, DocMeta, DocWrite, FeedBody, QuarantineEntry, QuarantineUsage, SERVER_ORIGIN, Storage,
};

/// Refused changes of one document, with the server's version when the author may see it.
struct Refusal {
    doc_id: String,
    kind: DocKind,
    rejected: Vec<(Change, Violation)>,
    server_doc: Option<ByteBuf>,
    /// The document as its author would have had it (JSON): what they tried to write.
    attempted: Option<String>,
}

/// Largest attempted document kept with a quarantine entry; a larger one is left out (the
/// changes themselves are kept within the quota anyway).
const MAX_ATTEMPTED_BYTES: usize = 64 * 1024;

/// The document with the refused changes applied on top of what was accepted, as JSON: the
/// notes and fields the author tried to write, for whoever reviews the quarantine. None when it
/// does not build or is too large.
fn attempted_json(doc: &Automerge, rejected: &[(Change, Violation)]) -> Option<String> {
    let mut fork = doc.fork();
    fork.apply_changes(rejected.iter().map(|(c, _)| c.clone())).ok()?;
    let json = serde_json::to_string(&Document::hydrate(&fork).ok()?).ok()?;
    (json.len() <= MAX_ATTEMPTED_BYTES).then_some(json)
}

/// One write of one document, as pushes and server writes both record it.
pub(crate) struct DocUpdate<'a> {
    pub doc_id: &'a str,
    pub kind: DocKind,
    pub old_meta: Option<&'a DocMeta>,
    /// The document after the write.
    pub doc: &'a Automerge,
    pub state: &'a Document,
    /// The new changes, as feed entries in order: origin and the raw change bytes.
    pub entries: Vec<(&'a str, Vec<u8>)>,
    /// When the server stores it (the report index's `first_seen_ms` and stage changes).
    pub now_ms: i64,
}

/// A batch being built, with what the commit needs besides it.
pub(crate) struct Pending {
    pub batch: Batch,
    /// Territories whose audience changed in this batch (customers' audiences follow them).
    pub new_audiences: HashMap<String, Audience>,
    /// Documents to cache once the batch is durable.
    pub to_cache: Vec<(String, Automerge)>,
}

impl Pending {
    pub(crate) fn new(team: &str, head: u64) -> Self {
        Pending { batch: Batch::new(team, head), new_audiences: HashMap::new(), to_cache: Vec::new() }
    }
}

impl<S: Storage> SyncEngine<S> {
    /// Records one document write in the batch: feed entries for every reader, grants and revokes
    /// when the audience changed, the chunk or a compacted copy.
    pub(crate) fn record(&self, pending: &mut Pending, u: DocUpdate<'_>) -> Result<()> {
        let team = pending.batch.team.clone();
        let audience = u.state.audience(&|t| self.territory_reps(&team, t, &pending.new_audiences));
        if let Document::Territory(_) = u.state {
            pending.new_audiences.insert(u.doc_id.to_string(), audience.clone());
        }
        let mut chunk = Vec::new();
        for (origin, bytes) in u.entries {
            chunk.extend_from_slice(&bytes);
            pending.batch.push_feed(
                u.doc_id,
                u.kind,
                origin,
                audience.clone(),
                FeedBody::Changes(ByteBuf::from(bytes)),
            );
        }
        if let Some(old) = u.old_meta {
            record_scope_change(&mut pending.batch, u.doc_id, u.kind, &old.audience, &audience, u.doc);
        }
        let compact = u.old_meta.is_some_and(|m| m.chunks + 1 > self.config.compact_after_chunks);
        pending.batch.docs.push(DocWrite {
            doc_id: u.doc_id.into(),
            kind: u.kind,
            audience,
            data: match compact.then(|| u.doc.save()) {
                // Automerge saves some documents built from damaged changes in a form it cannot
                // load again (`tests/fuzz.rs`): a compaction must never replace loadable chunks
                // with such bytes.
                Some(saved) if reloads(&saved, u.doc) => DocData::Replace(saved),
                Some(_) => {
                    tracing::warn!(doc = %u.doc_id, "the compacted form does not load back; appended instead");
                    DocData::Append(chunk)
                }
                None => DocData::Append(chunk),
            },
        });
        self.index(pending, u.doc_id, u.old_meta.is_some(), u.state, u.now_ms)
    }

    /// The document's report-index row, in the same batch as the document (`index.rs`).
    /// `stored`: the document existed before this batch (a new one has no stored row to read).
    fn index(
        &self,
        pending: &mut Pending,
        doc_id: &str,
        stored: bool,
        state: &Document,
        now_ms: i64,
    ) -> Result<()> {
        let old = match pending.batch.index.iter().rposition(|r| r.id() == doc_id) {
            Some(i) => Some(pending.batch.index[i].clone()),
            None if stored => self.storage.index_row(&pending.batch.team, doc_id)?,
            None => None,
        };
        let first_seen = old.as_ref().map_or(now_ms, IndexRow::first_seen_ms);
        if let Some(row) = IndexRow::of(state, first_seen) {
            if let Some(change) = row.stage_change_from(old.as_ref(), now_ms) {
                pending.batch.stage_changes.push(change);
            }
            pending.batch.index.push(row);
        }
        Ok(())
    }

    /// Commits the batch durably, then caches what it wrote at the version the storage gave it.
    pub(crate) fn commit_pending(&self, pending: Pending) -> Result<()> {
        let Pending { batch, to_cache, .. } = pending;
        if batch.is_empty() {
            return Ok(());
        }
        let team = batch.team.clone();
        // Every document written by a batch is stored at the batch's last feed sequence.
        let version = batch.expected_head + batch.feed.len() as u64;
        self.storage.commit(batch)?;
        for (doc_id, doc) in to_cache {
            self.cache.offer(&team, &doc_id, Arc::new(Snapshot { doc, version }));
        }
        Ok(())
    }

    /// Reps of a territory: from this batch if it changed there, else from the stored audience.
    pub(crate) fn territory_reps(
        &self,
        team: &str,
        territory: &str,
        in_batch: &HashMap<String, Audience>,
    ) -> Vec<String> {
        if let Some(a) = in_batch.get(territory) {
            return a.users().to_vec();
        }
        match self.storage.doc_meta(team, territory) {
            Ok(Some(DocMeta { kind: DocKind::Territory, audience, .. })) => audience.users().to_vec(),
            _ => vec![],
        }
    }

    /// Commits a decided push and fills in the response's accepted and rejected parts.
    pub(crate) fn commit_push(
        &self,
        who: &Principal,
        device: &str,
        decisions: Vec<Decision>,
        now_ms: i64,
        resp: &mut SyncResponse,
    ) -> Result<()> {
        let team = who.team.as_str();
        let mut pending = Pending::new(team, self.storage.feed_head(team)?);
        // Refused changes, with the server's version when the author may see it; kept (within the
        // author's quota) and answered once the accepted ones are recorded.
        let mut refusals: Vec<Refusal> = Vec::new();
        let mut usage = self.storage.quarantine_usage(team, &who.user)?;
        let mut verdicts = self.judge_new_checkins(team, &decisions, now_ms, &mut pending.batch)?;
        for d in decisions {
            let Decision { doc_id, kind, pushed, old_meta, outcome, .. } = d;
            let Staged { mut doc, state, accepted_new, rejected } = match outcome {
                Outcome::OutOfScope { held, rejected } => {
                    if !held.is_empty() {
                        resp.accepted.push(accepted(&doc_id, &held));
                    }
                    refusals.push(Refusal { doc_id, kind, rejected, server_doc: None, attempted: None });
                    continue;
                }
                Outcome::Damaged => {
                    resp.unavailable.push(super::unavailable(doc_id));
                    continue;
                }
                Outcome::Staged(staged) => staged,
            };
            let held: Vec<_> =
                pushed.into_iter().filter(|h| doc.get_change_meta_by_hash(h).is_some()).collect();
            if !held.is_empty() {
                resp.accepted.push(accepted(&doc_id, &held));
            }
            if let (Some(state), false) = (&state, accepted_new.is_empty()) {
                let mut entries = vec![(device, raw(&accepted_new))];
                // The state recorded (and indexed) is the one stored: with the new verdicts.
                let mut judged = None;
                if let Document::Visit(visit) = state
                    && let Some(new) = verdicts.remove(&doc_id)
                {
                    let mut with_verdicts = visit.clone();
                    with_verdicts.verification.extend(new.clone());
                    if let Some(verdict) = self.write_verdicts(visit, new, &mut doc, now_ms)? {
                        entries.push((SERVER_ORIGIN, verdict.raw_bytes().to_vec()));
                        judged = Some(Document::Visit(with_verdicts));
                    }
                }
                let state = judged.as_ref().unwrap_or(state);
                self.record(
                    &mut pending,
                    DocUpdate {
                        doc_id: &doc_id,
                        kind,
                        old_meta: old_meta.as_ref(),
                        doc: &doc,
                        state,
                        entries,
                        now_ms,
                    },
                )?;
            }
            if !rejected.is_empty() {
                let server_doc = state.is_some().then(|| ByteBuf::from(doc.save()));
                // Only while the author's quarantine has room for whole entries: past it, digests.
                let room = usage.entries < self.config.quarantine_quota.entries_per_user;
                let attempted = (state.is_some() && room).then(|| attempted_json(&doc, &rejected)).flatten();
                refusals.push(Refusal { doc_id: doc_id.clone(), kind, rejected, server_doc, attempted });
            }
            if !accepted_new.is_empty() {
                pending.to_cache.push((doc_id, doc));
            }
        }
        for r in refusals.into_iter().filter(|r| !r.rejected.is_empty()) {
            self.quarantine(&mut pending.batch, &mut usage, who, device, &r, now_ms);
            resp.rejected.push(rejection(&r.doc_id, &r.rejected, r.server_doc));
        }
        self.commit_pending(pending)
    }

    /// Keeps refused changes with their reason, within the author's quota: past it (or for a
    /// single refusal too large to keep), a digest of what was refused.
    fn quarantine(
        &self,
        batch: &mut Batch,
        usage: &mut QuarantineUsage,
        who: &Principal,
        device: &str,
        refusal: &Refusal,
        now_ms: i64,
    ) {
        let Refusal { doc_id, kind, rejected, attempted, .. } = refusal;
        let Some((_, first)) = rejected.first() else { return };
        let quota = &self.config.quarantine_quota;
        let bytes: u64 = rejected.iter().map(|(c, _)| c.raw_bytes().len() as u64).sum();
        let keep_whole = bytes <= quota.bytes_per_entry
            && usage.entries < quota.entries_per_user
            && usage.bytes + bytes <= quota.bytes_per_user;
        if !keep_whole && usage.entries >= quota.entries_per_user.saturating_mul(2) {
            // Even digests have a bound: the oldest of them tell the story well enough.
            return;
        }
        let entry = QuarantineEntry {
            doc_id: doc_id.clone(),
            kind: *kind,
            device: device.into(),
            user: who.user.clone(),
            received_at_ms: now_ms,
            code: first.code.as_str().to_string(),
            reason: first.message.clone(),
            hashes: rejected.iter().take(quota.hashes_per_entry).map(|(c, _)| c.hash().to_string()).collect(),
            changes: if keep_whole {
                rejected.iter().map(|(c, _)| ByteBuf::from(c.raw_bytes().to_vec())).collect()
            } else {
                vec![]
            },
            change_count: rejected.len() as u64,
            bytes,
            digest_only: !keep_whole,
            attempted: if keep_whole { attempted.clone() } else { None },
        };
        usage.entries += 1;
        usage.bytes += if keep_whole { bytes } else { 0 };
        batch.quarantine.push(entry);
    }
}

fn raw(changes: &[Change]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in changes {
        out.extend_from_slice(c.raw_bytes());
    }
    out
}

fn accepted(doc_id: &str, held: &[automerge::ChangeHash]) -> Accepted {
    Accepted { doc_id: doc_id.into(), hashes: held.iter().map(|h| ByteBuf::from(h.0.to_vec())).collect() }
}

fn rejection(doc_id: &str, rejected: &[(Change, Violation)], server_doc: Option<ByteBuf>) -> Rejected {
    let first = &rejected[0].1;
    Rejected {
        doc_id: doc_id.into(),
        hashes: rejected.iter().map(|(c, _)| ByteBuf::from(c.hash().0.to_vec())).collect(),
        code: first.code.as_str().to_string(),
        reason: first.message.clone(),
        server_doc,
    }
}

/// When a document's audience changes, the users who gain it get it whole (`Grant`) and the users
/// who lose it are told to drop it (`Revoke`), through the feed like any other change.
/// Whether `saved` loads back as `doc`, with the same heads.
fn reloads(saved: &[u8], doc: &Automerge) -> bool {
    crate::untrusted::load(saved).is_ok_and(|d| d.get_heads() == doc.get_heads())
}

fn record_scope_change(
    batch: &mut Batch,
    doc_id: &str,
    kind: DocKind,
    old: &Audience,
    new: &Audience,
    doc: &Automerge,
) {
    let (Audience::Users(old_users), Audience::Users(new_users)) = (old, new) else {
        return;
    };
    let granted: Vec<String> = new_users.iter().filter(|u| !old_users.contains(u)).cloned().collect();
    let revoked: Vec<String> = old_users.iter().filter(|u| !new_users.contains(u)).cloned().collect();
    if !granted.is_empty() {
        let snapshot = ByteBuf::from(doc.save());
        batch.push_feed(
            doc_id,
            kind,
            SERVER_ORIGIN,
            Audience::Users(granted.clone()),
            FeedBody::Grant { users: granted, snapshot },
        );
    }
    if !revoked.is_empty() {
        batch.push_feed(
            doc_id,
            kind,
            SERVER_ORIGIN,
            Audience::Users(revoked.clone()),
            FeedBody::Revoke { users: revoked },
        );
    }
}
