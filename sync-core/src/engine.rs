//! The server side of the sync protocol, without IO of its own.
//!
//! [`SyncEngine::handle`] takes an authenticated request and returns the response as data; the only
//! thing it touches is the [`Storage`] it was given, through short synchronous calls. The HTTP server
//! owns the loop around it (decode, call, encode) and can run it on any thread.
//!
//! For each pushed document the engine applies the changes to a copy, checks that the result still
//! hydrates into its schema and that the author's role may make that change (comparing the typed
//! state before and after), verifies new check-ins, and records everything in one atomic, durable
//! batch: document chunks, feed entries, quarantine. Pulls read the feed only.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc, transaction::CommitOptions};
use serde_bytes::ByteBuf;

use crate::docs::{Audience, CheckinVerification, DocError, DocKind, Document, FlagReason, validate_id};
use crate::geo::{self, CheckinContext, CheckinFix, LatLon, PreviousCheckin, VerifyConfig};
use crate::protocol::{Accepted, Cursor, DocSnapshot, FeedChanges, Rejected, SyncRequest, SyncResponse};
use crate::rules::{self, Principal, Violation};
use crate::storage::{
    Batch, DocData, DocMeta, DocWrite, FeedBody, LastCheckin, QuarantineEntry, SERVER_ORIGIN, Storage,
    StorageError,
};

pub type Result<T, E = SyncError> = std::result::Result<T, E>;

/// Why a whole request was refused. Nothing of such a request is stored.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("document {doc_id}: corrupt Automerge change: {detail}")]
    CorruptChange { doc_id: String, detail: String },
    #[error("document {doc_id}: {error}")]
    InvalidDocument { doc_id: String, error: DocError },
    #[error("document {doc_id} is a {stored}, not a {pushed}")]
    KindMismatch { doc_id: String, stored: DocKind, pushed: DocKind },
    /// Unknown to this team: the pushed changes build on a history the server does not have.
    /// (Each team has its own id space: another team's documents are not even addressable.)
    #[error("unknown document {doc_id}")]
    UnknownDocument { doc_id: String },
    #[error("request too large: {0}")]
    TooLarge(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl SyncError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SyncError::BadRequest(_) => "bad_request",
            SyncError::CorruptChange { .. } => "corrupt_change",
            SyncError::InvalidDocument { .. } => "invalid_document",
            SyncError::KindMismatch { .. } => "kind_mismatch",
            SyncError::UnknownDocument { .. } => "unknown_document",
            SyncError::TooLarge(_) => "too_large",
            SyncError::Storage(StorageError::Conflict { .. }) => "conflict",
            SyncError::Storage(_) => "storage",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The actor the server writes its own changes with (verification, seeding). One per process.
    pub server_actor: ActorId,
    pub verify: VerifyConfig,
    /// Documents kept loaded between requests. Memory is bounded by this, not by the store.
    pub cache_docs: usize,
    /// Rough budget of bytes pulled in one response.
    pub page_bytes: usize,
    /// Most feed entries scanned for one response.
    pub page_entries: usize,
    /// Most documents in one bootstrap page.
    pub bootstrap_docs: usize,
    /// A document with more chunks than this is saved whole again.
    pub compact_after_chunks: u32,
    pub max_push_docs: usize,
    pub max_push_changes: usize,
}

impl EngineConfig {
    pub fn new(server_actor: ActorId) -> Self {
        EngineConfig {
            server_actor,
            verify: VerifyConfig::default(),
            cache_docs: 2048,
            page_bytes: 4 * 1024 * 1024,
            page_entries: 5000,
            bootstrap_docs: 1000,
            compact_after_chunks: 32,
            max_push_docs: 5000,
            max_push_changes: 200_000,
        }
    }
}

struct Loaded {
    doc: Automerge,
    meta: DocMeta,
}

/// The sync engine over a storage. Share it (`Arc`) between request handlers.
pub struct SyncEngine<S> {
    storage: S,
    config: EngineConfig,
    cache: Mutex<lru::LruCache<(String, String), Loaded>>,
    team_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl<S> std::fmt::Debug for SyncEngine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncEngine").field("config", &self.config).finish_non_exhaustive()
    }
}

/// What happened to one pushed document, before it is committed.
struct Staged {
    doc: Automerge,
    state: Option<Document>,
    accepted_new: Vec<Change>,
    rejected: Vec<(Change, Violation)>,
}

impl<S: Storage> SyncEngine<S> {
    pub fn new(storage: S, config: EngineConfig) -> Self {
        let cap = NonZeroUsize::new(config.cache_docs.max(1)).unwrap_or(NonZeroUsize::MIN);
        SyncEngine {
            storage,
            config,
            cache: Mutex::new(lru::LruCache::new(cap)),
            team_locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    fn team_lock(&self, team: &str) -> Arc<Mutex<()>> {
        let mut locks = self.team_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(team.to_string()).or_default().clone()
    }

    fn take_cached(&self, team: &str, doc_id: &str) -> Option<Loaded> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.pop(&(team.to_string(), doc_id.to_string()))
    }

    fn put_cached(&self, team: &str, doc_id: &str, loaded: Loaded) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.put((team.to_string(), doc_id.to_string()), loaded);
    }

    /// Number of documents currently loaded in memory.
    pub fn cached_docs(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Loads a document of `team` (cache first). The caller owns it until it puts it back.
    fn load(&self, team: &str, doc_id: &str) -> Result<Option<Loaded>> {
        if let Some(l) = self.take_cached(team, doc_id) {
            return Ok(Some(l));
        }
        let Some(meta) = self.storage.doc_meta(team, doc_id)? else {
            return Ok(None);
        };
        let bytes = self.storage.load_doc(team, doc_id)?.unwrap_or_default();
        let doc =
            Automerge::load(&bytes).map_err(|e| StorageError::Corrupt(format!("document {doc_id}: {e}")))?;
        Ok(Some(Loaded { doc, meta }))
    }

    /// Handles one sync request from an authenticated device. `now_ms` is the server's receipt time.
    pub fn handle(&self, who: &Principal, req: &SyncRequest, now_ms: i64) -> Result<SyncResponse> {
        validate_id("device_id", &req.device_id).map_err(|e| SyncError::BadRequest(e.to_string()))?;
        if req.device_id == SERVER_ORIGIN {
            return Err(SyncError::BadRequest("device id \"server\" is reserved".into()));
        }
        if req.push.len() > self.config.max_push_docs {
            return Err(SyncError::TooLarge(format!(
                "{} documents pushed at once, at most {}",
                req.push.len(),
                self.config.max_push_docs
            )));
        }
        let total: usize = req.push.iter().map(|p| p.changes.len()).sum();
        if total > self.config.max_push_changes {
            return Err(SyncError::TooLarge(format!(
                "{total} changes pushed at once, at most {}",
                self.config.max_push_changes
            )));
        }
        let mut resp = SyncResponse {
            accepted: vec![],
            rejected: vec![],
            docs: vec![],
            changes: vec![],
            revoked: vec![],
            cursor: req.cursor.clone(),
            more: false,
        };
        if !req.push.is_empty() {
            self.push(who, req, now_ms, &mut resp)?;
        }
        self.pull(who, &req.device_id, &req.cursor, &mut resp)?;
        Ok(resp)
    }

    fn push(&self, who: &Principal, req: &SyncRequest, now_ms: i64, resp: &mut SyncResponse) -> Result<()> {
        let team = who.team.as_str();
        let mut seen = HashSet::new();
        // Parse everything before taking the lock: garbage never waits for other writers.
        let mut parsed = Vec::with_capacity(req.push.len());
        for p in &req.push {
            validate_id("doc_id", &p.doc_id).map_err(|e| SyncError::BadRequest(e.to_string()))?;
            if !seen.insert(p.doc_id.as_str()) {
                return Err(SyncError::BadRequest(format!(
                    "document {} pushed twice in one request",
                    p.doc_id
                )));
            }
            let mut changes = Vec::with_capacity(p.changes.len());
            for bytes in &p.changes {
                let c = Change::from_bytes(bytes.to_vec()).map_err(|e| SyncError::CorruptChange {
                    doc_id: p.doc_id.clone(),
                    detail: e.to_string(),
                })?;
                changes.push(c);
            }
            parsed.push((p, changes));
        }

        let lock = self.team_lock(team);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let head = self.storage.feed_head(team)?;
        let mut batch = Batch::new(team, head);
        let mut to_cache: Vec<(String, Loaded)> = Vec::new();
        let mut new_audiences: HashMap<String, Audience> = HashMap::new();

        for (p, changes) in parsed {
            if changes.is_empty() {
                continue;
            }
            let doc_id = p.doc_id.as_str();
            let existing = self.load(team, doc_id)?;
            if let Some(e) = &existing
                && e.meta.kind != p.kind
            {
                return Err(SyncError::KindMismatch {
                    doc_id: doc_id.into(),
                    stored: e.meta.kind,
                    pushed: p.kind,
                });
            }
            let pushed_hashes: Vec<ChangeHash> = changes.iter().map(Change::hash).collect();
            let (base, old_meta) = match existing {
                Some(l) => (l.doc, Some(l.meta)),
                None => (Automerge::new(), None),
            };
            // A rep pushing to a document outside their scope learns nothing about it: the changes
            // are refused unread, and the server's version is not handed back.
            let out_of_scope = !who.role.sees_whole_team()
                && old_meta.as_ref().is_some_and(|m| !m.audience.includes(&who.user));
            let staged = if out_of_scope {
                let mut seen = BTreeSet::new();
                let rejected = changes
                    .into_iter()
                    .filter(|c| base.get_change_meta_by_hash(&c.hash()).is_none() && seen.insert(c.hash()))
                    .map(|c| (c, violation("not_assigned", "this document is not assigned to you")))
                    .collect();
                Staged { doc: base, state: None, accepted_new: vec![], rejected }
            } else {
                self.stage(who, p.kind, doc_id, base, old_meta.as_ref(), changes)?
            };
            let Staged { mut doc, state, accepted_new, rejected } = staged;

            let held: Vec<ByteBuf> = pushed_hashes
                .iter()
                .filter(|h| doc.get_change_meta_by_hash(h).is_some())
                .map(|h| ByteBuf::from(h.0.to_vec()))
                .collect();
            if !held.is_empty() {
                resp.accepted.push(Accepted { doc_id: doc_id.into(), hashes: held });
            }

            let mut meta_after = old_meta.clone();
            if let (Some(state), false) = (&state, accepted_new.is_empty()) {
                let audience = state.audience(&|t| self.territory_reps(team, t, &new_audiences));
                if let Document::Territory(_) = state {
                    new_audiences.insert(doc_id.to_string(), audience.clone());
                }
                let mut chunk: Vec<u8> = Vec::new();
                for c in &accepted_new {
                    chunk.extend_from_slice(c.raw_bytes());
                }
                batch.push_feed(
                    doc_id,
                    p.kind,
                    &req.device_id,
                    audience.clone(),
                    FeedBody::Changes(ByteBuf::from(chunk.clone())),
                );

                if let Document::Visit(visit) = state
                    && let Some(server_change) =
                        self.verify_new_checkins(who, team, visit, &mut doc, now_ms, &mut batch)?
                {
                    chunk.extend_from_slice(server_change.raw_bytes());
                    batch.push_feed(
                        doc_id,
                        p.kind,
                        SERVER_ORIGIN,
                        audience.clone(),
                        FeedBody::Changes(ByteBuf::from(server_change.raw_bytes().to_vec())),
                    );
                }

                if let Some(old) = &old_meta {
                    record_scope_change(&mut batch, doc_id, p.kind, &old.audience, &audience, &doc);
                }

                let compact =
                    old_meta.as_ref().is_some_and(|m| m.chunks + 1 > self.config.compact_after_chunks);
                batch.docs.push(DocWrite {
                    doc_id: doc_id.into(),
                    kind: p.kind,
                    audience: audience.clone(),
                    data: if compact { DocData::Replace(doc.save()) } else { DocData::Append(chunk) },
                });
                meta_after = Some(DocMeta {
                    kind: p.kind,
                    audience,
                    chunks: if compact { 1 } else { old_meta.as_ref().map_or(0, |m| m.chunks) + 1 },
                    updated_seq: batch.expected_head + batch.feed.len() as u64,
                });
            }

            if !rejected.is_empty() {
                let (_, first) = &rejected[0];
                let hashes_hex: Vec<String> = rejected.iter().map(|(c, _)| c.hash().to_string()).collect();
                batch.quarantine.push(QuarantineEntry {
                    doc_id: doc_id.into(),
                    kind: p.kind,
                    device: req.device_id.clone(),
                    user: who.user.clone(),
                    received_at_ms: now_ms,
                    code: first.code.clone(),
                    reason: first.message.clone(),
                    hashes: hashes_hex,
                    changes: rejected.iter().map(|(c, _)| ByteBuf::from(c.raw_bytes().to_vec())).collect(),
                });
                resp.rejected.push(Rejected {
                    doc_id: doc_id.into(),
                    hashes: rejected.iter().map(|(c, _)| ByteBuf::from(c.hash().0.to_vec())).collect(),
                    code: first.code.clone(),
                    reason: first.message.clone(),
                    server_doc: state.is_some().then(|| ByteBuf::from(doc.save())),
                });
            }
            if let Some(meta) = meta_after {
                to_cache.push((doc_id.to_string(), Loaded { doc, meta }));
            }
        }

        if !batch.is_empty() {
            self.storage.commit(batch)?;
        }
        for (doc_id, loaded) in to_cache {
            self.put_cached(team, &doc_id, loaded);
        }
        Ok(())
    }

    /// Reps of a territory: from this batch if it changed there, else from the stored audience.
    fn territory_reps(
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

    /// Applies the pushed changes that are new to `base` and decides, per the rules, which to keep.
    fn stage(
        &self,
        who: &Principal,
        kind: DocKind,
        doc_id: &str,
        base: Automerge,
        old_meta: Option<&DocMeta>,
        changes: Vec<Change>,
    ) -> Result<Staged> {
        let before = if old_meta.is_some() {
            Some(
                Document::hydrate(&base)
                    .map_err(|e| StorageError::Corrupt(format!("stored document {doc_id}: {e}")))?,
            )
        } else {
            None
        };
        let assigned = old_meta.is_some_and(|m| m.audience.includes(&who.user));
        let mut fresh: Vec<Change> = Vec::new();
        let mut fresh_hashes = BTreeSet::new();
        for c in changes {
            if base.get_change_meta_by_hash(&c.hash()).is_none() && fresh_hashes.insert(c.hash()) {
                fresh.push(c);
            }
        }
        if fresh.is_empty() {
            return Ok(Staged { doc: base, state: before, accepted_new: vec![], rejected: vec![] });
        }
        let corrupt = |e: automerge::AutomergeError| SyncError::CorruptChange {
            doc_id: doc_id.into(),
            detail: e.to_string(),
        };

        // The common case: everything is allowed. One application, one hydration.
        let mut candidate = base.clone();
        candidate.apply_changes(fresh.clone()).map_err(corrupt)?;
        let complete = fresh.iter().all(|c| candidate.get_change_meta_by_hash(&c.hash()).is_some());
        if !complete && before.is_none() {
            return Err(SyncError::UnknownDocument { doc_id: doc_id.into() });
        }
        if complete {
            let after = self.typed(&candidate, kind, doc_id)?;
            if rules::check_edit(who, before.as_ref(), &after, assigned).is_ok() {
                return Ok(Staged {
                    doc: candidate,
                    state: Some(after),
                    accepted_new: fresh,
                    rejected: vec![],
                });
            }
        }

        // Something is refused: go change by change, keeping every change that is allowed on its own
        // and does not build on a refused one.
        let mut doc = base;
        let mut state = before;
        let mut accepted_new = Vec::new();
        let mut rejected: Vec<(Change, Violation)> = Vec::new();
        let mut refused: HashSet<ChangeHash> = HashSet::new();
        for c in fresh {
            let violation = if c.deps().iter().any(|d| refused.contains(d)) {
                Some(violation("depends_on_rejected", "builds on an edit that was refused"))
            } else {
                let mut next = doc.clone();
                next.apply_changes([c.clone()]).map_err(corrupt)?;
                if next.get_change_meta_by_hash(&c.hash()).is_none() {
                    Some(violation("missing_dependencies", "builds on changes the server does not have"))
                } else {
                    match self.typed(&next, kind, doc_id) {
                        Err(e) => Some(violation("invalid_document", &e.to_string())),
                        Ok(after) => match rules::check_edit(who, state.as_ref(), &after, assigned) {
                            Ok(()) => {
                                doc = next;
                                state = Some(after);
                                accepted_new.push(c.clone());
                                None
                            }
                            Err(v) => Some(v),
                        },
                    }
                }
            };
            if let Some(v) = violation {
                refused.insert(c.hash());
                rejected.push((c, v));
            }
        }
        Ok(Staged { doc, state, accepted_new, rejected })
    }

    /// The typed, validated document, which must be the kind and id it was pushed as.
    fn typed(&self, doc: &Automerge, kind: DocKind, doc_id: &str) -> Result<Document> {
        let invalid = |error| SyncError::InvalidDocument { doc_id: doc_id.into(), error };
        let typed = Document::hydrate(doc).map_err(invalid)?;
        typed.validate().map_err(invalid)?;
        if typed.kind() != kind {
            return Err(SyncError::KindMismatch {
                doc_id: doc_id.into(),
                stored: typed.kind(),
                pushed: kind,
            });
        }
        if typed.id() != doc_id {
            return Err(invalid(DocError::InvalidField {
                field: "id".into(),
                reason: format!("document says {:?} but was pushed as {doc_id:?}", typed.id()),
            }));
        }
        Ok(typed)
    }

    /// Verifies check-ins the server has not judged yet and records the verdicts in the visit, as a
    /// change of the server's own. Returns that change.
    fn verify_new_checkins(
        &self,
        who: &Principal,
        team: &str,
        visit: &crate::docs::Visit,
        doc: &mut Automerge,
        now_ms: i64,
        batch: &mut Batch,
    ) -> Result<Option<Change>> {
        let pending: Vec<&crate::docs::Checkin> =
            visit.checkins.iter().filter(|c| !visit.verification.contains_key(&c.id)).collect();
        if pending.is_empty() {
            return Ok(None);
        }
        let customer = self.customer_location(team, &visit.customer_id, &visit.rep)?;
        let mut previous: Option<LastCheckin> =
            batch.checkins.iter().rev().find(|(u, _)| *u == visit.rep).map(|(_, c)| c.clone());
        if previous.is_none() {
            previous = self.storage.last_checkin(team, &visit.rep)?;
        }
        let mut verdicts = visit.verification.clone();
        // Judged in the order they happened: a check-in is compared with the one before it, never
        // with a later one that reached the server first.
        let mut pending = pending;
        pending.sort_by_key(|c| c.device_time_ms);
        for c in pending {
            let v = match &customer {
                None => CheckinVerification {
                    status: "invalid".into(),
                    distance_m: -1.0,
                    reasons: vec![FlagReason {
                        code: "unknown_customer".into(),
                        message: format!(
                            "customer {} is not known to the server for {}",
                            visit.customer_id, visit.rep
                        ),
                    }],
                    received_at_ms: now_ms,
                },
                Some((loc, datum, fence)) => {
                    let fix = CheckinFix {
                        point: LatLon { lat: c.lat, lon: c.lon },
                        accuracy_m: c.accuracy_m,
                        device_time_ms: c.device_time_ms,
                        mock_location: c.mock_location,
                    };
                    let prev = previous.as_ref().filter(|p| p.device_time_ms <= c.device_time_ms).map(|p| {
                        PreviousCheckin {
                            point: LatLon { lat: p.lat, lon: p.lon },
                            device_time_ms: p.device_time_ms,
                        }
                    });
                    let result = geo::verify_checkin(&CheckinContext {
                        fix: &fix,
                        customer: *loc,
                        customer_datum: *datum,
                        fence_override_m: *fence,
                        previous: prev.as_ref(),
                        received_at_ms: Some(now_ms),
                        config: &self.config.verify,
                    });
                    CheckinVerification::from_result(&result, now_ms)
                }
            };
            verdicts.insert(c.id.clone(), v);
            if previous.as_ref().is_none_or(|p| c.device_time_ms >= p.device_time_ms) {
                previous = Some(LastCheckin { lat: c.lat, lon: c.lon, device_time_ms: c.device_time_ms });
            }
        }
        if let Some(p) = &previous {
            batch.checkins.push((visit.rep.clone(), p.clone()));
        }
        let _ = who;
        let actor = doc.get_actor().clone();
        doc.set_actor(self.config.server_actor.clone());
        let written = doc.transact_with(
            |_| CommitOptions::default().with_message("verification").with_time(now_ms / 1000),
            |tx| autosurgeon::reconcile_prop(tx, automerge::ROOT, "verification", &verdicts),
        );
        doc.set_actor(actor);
        match written {
            Ok(_) => Ok(doc.get_change_by_hash(&doc.get_heads()[0])),
            Err(f) => {
                Err(SyncError::Storage(StorageError::Backend(format!("writing verification: {}", f.error))))
            }
        }
    }

    /// The customer's location, if the customer exists and the visit's rep may see it: verifying a
    /// check-in against a customer outside the rep's scope would tell the rep where it is.
    fn customer_location(
        &self,
        team: &str,
        customer_id: &str,
        rep: &str,
    ) -> Result<Option<(LatLon, geo::Datum, Option<f64>)>> {
        let Some(loaded) = self.load(team, customer_id)? else {
            return Ok(None);
        };
        let visible = loaded.meta.kind == DocKind::Customer && loaded.meta.audience.includes(rep);
        let typed = Document::hydrate(&loaded.doc).ok();
        self.put_cached(team, customer_id, loaded);
        Ok(match typed {
            Some(Document::Customer(c)) if visible => {
                c.location.parsed("location").ok().map(|(p, d)| (p, d, c.geofence_m))
            }
            _ => None,
        })
    }

    fn pull(&self, who: &Principal, device: &str, cursor: &Cursor, resp: &mut SyncResponse) -> Result<()> {
        let team = who.team.as_str();
        let horizon = self.storage.feed_horizon(team)?;
        let head = self.storage.feed_head(team)?;
        let mut budget = self.config.page_bytes;
        match cursor {
            Cursor::Start => self.bootstrap(who, head, "", &mut budget, device, resp),
            Cursor::Bootstrap { head: h, after } if *h >= horizon && *h <= head => {
                self.bootstrap(who, *h, after, &mut budget, device, resp)
            }
            Cursor::Feed { seq } if *seq >= horizon && *seq <= head => {
                self.pull_feed(who, device, *seq, &mut budget, resp)
            }
            // Behind the compaction horizon, or a cursor this server never gave: start over.
            _ => self.bootstrap(who, head, "", &mut budget, device, resp),
        }
    }

    fn bootstrap(
        &self,
        who: &Principal,
        head: u64,
        after: &str,
        budget: &mut usize,
        device: &str,
        resp: &mut SyncResponse,
    ) -> Result<()> {
        let team = who.team.as_str();
        let member = (!who.role.sees_whole_team()).then_some(who.user.as_str());
        let ids = self.storage.list_docs(team, member, after, self.config.bootstrap_docs + 1)?;
        let mut last = after.to_string();
        let mut done = true;
        for (i, (doc_id, kind)) in ids.iter().enumerate() {
            if i == self.config.bootstrap_docs || (*budget == 0 && i > 0) {
                done = false;
                break;
            }
            if let Some(bytes) = self.storage.load_doc(team, doc_id)? {
                *budget = budget.saturating_sub(bytes.len());
                resp.docs.push(DocSnapshot {
                    doc_id: doc_id.clone(),
                    kind: *kind,
                    bytes: ByteBuf::from(bytes),
                });
            }
            last = doc_id.clone();
        }
        if !done {
            resp.cursor = Cursor::Bootstrap { head, after: last };
            resp.more = true;
            return Ok(());
        }
        resp.cursor = Cursor::Feed { seq: head };
        self.pull_feed(who, device, head, budget, resp)
    }

    fn pull_feed(
        &self,
        who: &Principal,
        device: &str,
        after: u64,
        budget: &mut usize,
        resp: &mut SyncResponse,
    ) -> Result<()> {
        let team = who.team.as_str();
        let whole_team = who.role.sees_whole_team();
        let mut cursor = after;
        let mut scanned = 0usize;
        loop {
            let entries = self.storage.read_feed(team, cursor, 512)?;
            if entries.is_empty() {
                resp.more = false;
                break;
            }
            for e in entries {
                if *budget == 0 || scanned >= self.config.page_entries {
                    resp.cursor = Cursor::Feed { seq: cursor };
                    resp.more = true;
                    return Ok(());
                }
                scanned += 1;
                cursor = e.seq;
                match e.body {
                    FeedBody::Changes(bytes) => {
                        if e.origin != device && (whole_team || e.audience.includes(&who.user)) {
                            *budget = budget.saturating_sub(bytes.len());
                            resp.changes.push(FeedChanges {
                                seq: e.seq,
                                doc_id: e.doc_id,
                                kind: e.kind,
                                changes: bytes,
                            });
                        }
                    }
                    FeedBody::Grant { users, snapshot } => {
                        if !whole_team && users.contains(&who.user) {
                            *budget = budget.saturating_sub(snapshot.len());
                            resp.docs.push(DocSnapshot { doc_id: e.doc_id, kind: e.kind, bytes: snapshot });
                        }
                    }
                    FeedBody::Revoke { users } => {
                        if !whole_team && users.contains(&who.user) {
                            resp.revoked.push(e.doc_id);
                        }
                    }
                }
            }
        }
        resp.cursor = Cursor::Feed { seq: cursor };
        Ok(())
    }

    /// Writes documents as the server (seeding, imports, planning results): each becomes a change
    /// by the server's actor on the stored document, in the feed for every device in scope.
    pub fn write_as_server(&self, team: &str, docs: &[Document], now_ms: i64) -> Result<()> {
        let lock = self.team_lock(team);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let head = self.storage.feed_head(team)?;
        let mut batch = Batch::new(team, head);
        let mut to_cache = Vec::new();
        let mut new_audiences: HashMap<String, Audience> = HashMap::new();
        for d in docs {
            let doc_id = d.id();
            validate_id("id", doc_id)
                .map_err(|e| SyncError::InvalidDocument { doc_id: doc_id.into(), error: e })?;
            d.validate().map_err(|e| SyncError::InvalidDocument { doc_id: doc_id.into(), error: e })?;
            let (mut doc, old_meta) = match self.load(team, doc_id)? {
                Some(l) => (l.doc, Some(l.meta)),
                None => (Automerge::new(), None),
            };
            doc.set_actor(self.config.server_actor.clone());
            let heads_before = doc.get_heads();
            doc.transact_with(
                |_| CommitOptions::default().with_message("server write").with_time(now_ms / 1000),
                |tx| d.reconcile_into(tx),
            )
            .map_err(|f| {
                SyncError::Storage(StorageError::Backend(format!("reconcile {doc_id}: {}", f.error)))
            })?;
            let new: Vec<u8> = doc.save_after(&heads_before);
            if new.is_empty() {
                continue;
            }
            let audience = d.audience(&|t| self.territory_reps(team, t, &new_audiences));
            if let Document::Territory(_) = d {
                new_audiences.insert(doc_id.to_string(), audience.clone());
            }
            batch.push_feed(
                doc_id,
                d.kind(),
                SERVER_ORIGIN,
                audience.clone(),
                FeedBody::Changes(ByteBuf::from(new.clone())),
            );
            if let Some(old) = &old_meta {
                record_scope_change(&mut batch, doc_id, d.kind(), &old.audience, &audience, &doc);
            }
            let chunks = old_meta.as_ref().map_or(0, |m| m.chunks) + 1;
            batch.docs.push(DocWrite {
                doc_id: doc_id.into(),
                kind: d.kind(),
                audience: audience.clone(),
                data: DocData::Append(new),
            });
            to_cache.push((
                doc_id.to_string(),
                Loaded { doc, meta: DocMeta { kind: d.kind(), audience, chunks, updated_seq: 0 } },
            ));
        }
        if !batch.is_empty() {
            self.storage.commit(batch)?;
        }
        for (id, l) in to_cache {
            self.put_cached(team, &id, l);
        }
        Ok(())
    }

    /// Reads a document as it stands on the server (for HTTP views and tools).
    pub fn read_doc(&self, team: &str, doc_id: &str) -> Result<Option<(Document, DocMeta)>> {
        let Some(loaded) = self.load(team, doc_id)? else {
            return Ok(None);
        };
        let typed = Document::hydrate(&loaded.doc)
            .map_err(|e| StorageError::Corrupt(format!("stored document {doc_id}: {e}")))?;
        let meta = loaded.meta.clone();
        self.put_cached(team, doc_id, loaded);
        Ok(Some((typed, meta)))
    }

    /// Drops feed entries older than the newest `keep` of a team; devices further behind bootstrap.
    pub fn trim_feed(&self, team: &str, keep: u64) -> Result<u64> {
        let head = self.storage.feed_head(team)?;
        let upto = head.saturating_sub(keep);
        self.storage.trim_feed(team, upto)?;
        Ok(upto)
    }
}

/// When a document's audience changes, the users who gain it get it whole (`Grant`) and the users
/// who lose it are told to drop it (`Revoke`), through the feed like any other change.
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

fn violation(code: &str, message: &str) -> Violation {
    Violation { code: code.into(), field: None, message: message.into() }
}

impl CheckinVerification {
    /// The stored form of a verification result.
    pub fn from_result(v: &geo::Verification, received_at_ms: i64) -> Self {
        CheckinVerification {
            status: match v.status {
                geo::VerificationStatus::Verified => "verified",
                geo::VerificationStatus::Flagged => "flagged",
                geo::VerificationStatus::Invalid => "invalid",
            }
            .into(),
            distance_m: if v.distance_m.is_finite() { v.distance_m } else { -1.0 },
            reasons: v
                .reasons
                .iter()
                .map(|r| FlagReason { code: r.code().into(), message: r.message() })
                .collect(),
            received_at_ms,
        }
    }
}

impl<S: Storage> SyncEngine<S> {
    /// Heads of a document as the server holds it (for convergence checks and tools).
    pub fn doc_heads(&self, team: &str, doc_id: &str) -> Result<Option<Vec<ChangeHash>>> {
        let Some(loaded) = self.load(team, doc_id)? else {
            return Ok(None);
        };
        let heads = loaded.doc.get_heads();
        self.put_cached(team, doc_id, loaded);
        Ok(Some(heads))
    }
}

impl<S: Storage> SyncEngine<S> {
    /// Every document of a team, typed (reports and planning). Reads through the cache without
    /// keeping what it reads, so the cache stays with the documents being written.
    pub fn team_documents(&self, team: &str) -> Result<Vec<Document>> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.storage.list_docs(team, None, &after, 1000)?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            for (id, _) in &page {
                let bytes = match self.take_cached(team, id) {
                    Some(l) => {
                        out.push(
                            Document::hydrate(&l.doc)
                                .map_err(|e| StorageError::Corrupt(format!("{id}: {e}")))?,
                        );
                        self.put_cached(team, id, l);
                        continue;
                    }
                    None => self.storage.load_doc(team, id)?,
                };
                let Some(bytes) = bytes else { continue };
                let doc = Automerge::load(&bytes)
                    .map_err(|e| StorageError::Corrupt(format!("document {id}: {e}")))?;
                out.push(Document::hydrate(&doc).map_err(|e| StorageError::Corrupt(format!("{id}: {e}")))?);
            }
        }
        Ok(out)
    }
}
