//! The server side of the sync protocol, without IO of its own.
//!
//! [`SyncEngine::handle`] takes an authenticated request and returns the response as data; the only
//! thing it touches is the [`Storage`] it was given, through short synchronous calls. The HTTP server
//! owns the loop around it (decode, call, encode) and can run it on any thread.
//!
//! A push goes **decide → commit → cache → pull**:
//!
//! 1. *decide* ([`stage`]), outside any lock: parse the changes, take the current version of each
//!    document, apply the new changes to a copy and judge the result against the schema and the
//!    author's role;
//! 2. *commit* ([`commit`]), under the team's lock: check that every document is still at the version
//!    it was decided against (otherwise decide it again), compute audiences, verify new check-ins,
//!    compact, quarantine what was refused, and write it all as one atomic, durable batch;
//! 3. *cache* ([`cache`]): the committed versions replace older cached ones, never the reverse;
//! 4. *pull* ([`pull`]): feed entries after the device's cursor, or bootstrap pages.
//!
//! Server-side writes (seeding, territory designs, imports) go through the same commit
//! bookkeeping ([`write`]), staged against the stored version under the team's lock.
//!
//! The invariant: **the engine never acts on an older version of a document than the stored one.**

mod cache;
mod commit;
mod pull;
mod stage;
mod verify;
mod write;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use automerge::{ActorId, Automerge, Change, ChangeHash};

pub use cache::{CacheStats, Snapshot};
pub use stage::MAX_REFUSALS_CHECKED;
pub use write::ServerWrite;

use crate::docs::{DocError, DocKind, Document, validate_id};
use crate::geo::VerifyConfig;
use crate::protocol::{DocPush, SyncRequest, SyncResponse};
use crate::rules::{Principal, Violation, ViolationCode};
use crate::storage::{DocMeta, SERVER_ORIGIN, Storage, StorageError};

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
    #[error("request too large: {0}")]
    TooLarge(String),
    /// A manager or admin revoked this device (a lost phone): nothing it sends is applied.
    #[error("device {0} was revoked: sign in on a new device")]
    DeviceRevoked(String),
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
            SyncError::TooLarge(_) => "too_large",
            SyncError::DeviceRevoked(_) => "device_revoked",
            SyncError::Storage(StorageError::Conflict { .. }) => "conflict",
            SyncError::Storage(StorageError::Full(_)) => "storage_full",
            SyncError::Storage(StorageError::Damaged { .. }) => crate::protocol::DOCUMENT_DAMAGED,
            SyncError::Storage(_) => "storage",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The actor the server writes its own changes with (verification, seeding). One per process;
    /// make it with [`server_actor`] so that clients can never author changes as the server.
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
    /// Most changes pushed for one document in one request.
    pub max_doc_changes: usize,
    /// Times a push is decided again outside the lock when a document moved meanwhile, before it is
    /// decided under the lock.
    pub optimistic_attempts: usize,
    /// What the quarantine keeps of one user's refused edits before it keeps only digests.
    pub quarantine_quota: QuarantineQuota,
}

/// Bounds of what the quarantine keeps per user: past them, refused edits are recorded as a digest
/// (who, when, which document, the hashes and sizes) without their bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuarantineQuota {
    pub entries_per_user: u64,
    pub bytes_per_user: u64,
    /// Largest refused edit kept whole.
    pub bytes_per_entry: u64,
    /// Hashes listed in one entry.
    pub hashes_per_entry: usize,
}

impl Default for QuarantineQuota {
    fn default() -> Self {
        QuarantineQuota {
            entries_per_user: 2_000,
            bytes_per_user: 16 * 1024 * 1024,
            bytes_per_entry: 2 * 1024 * 1024,
            hashes_per_entry: 1_000,
        }
    }
}

/// The marker every server actor starts with. Client actors are UUID v4 or device ids: neither
/// starts with it, and the engine refuses any pushed change whose actor does.
pub const SERVER_ACTOR_PREFIX: &[u8] = b"fieldsync-server:";

/// A server actor id: [`SERVER_ACTOR_PREFIX`] followed by `unique` (a process id, a UUID).
pub fn server_actor(unique: &[u8]) -> ActorId {
    let mut bytes = SERVER_ACTOR_PREFIX.to_vec();
    bytes.extend_from_slice(unique);
    ActorId::from(bytes)
}

/// Whether an actor is one of the server's (of any process, past or present).
pub fn is_server_actor(actor: &ActorId) -> bool {
    actor.to_bytes().starts_with(SERVER_ACTOR_PREFIX)
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
            max_doc_changes: 20_000,
            optimistic_attempts: 3,
            quarantine_quota: QuarantineQuota::default(),
        }
    }
}

/// A document's stored metadata and its current version, loaded.
#[derive(Debug, Clone)]
pub(crate) struct Current {
    pub snap: Arc<Snapshot>,
    pub meta: DocMeta,
}

/// The sync engine over a storage. Share it (`Arc`) between request handlers.
pub struct SyncEngine<S> {
    storage: S,
    config: EngineConfig,
    cache: cache::DocCache,
    team_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl<S> std::fmt::Debug for SyncEngine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncEngine").field("config", &self.config).finish_non_exhaustive()
    }
}

/// One pushed document, parsed.
struct Pushed<'a> {
    push: &'a DocPush,
    changes: Vec<Change>,
}

/// A pushed document decided against one version of it.
pub(crate) struct Decision {
    pub doc_id: String,
    pub kind: DocKind,
    pub pushed: Vec<ChangeHash>,
    /// The version decided against (`None`: the document did not exist).
    pub version: Option<u64>,
    pub old_meta: Option<DocMeta>,
    pub outcome: Outcome,
}

pub(crate) enum Outcome {
    /// In scope (or new): what the rules kept.
    Staged(stage::Staged),
    /// Outside the author's scope: refused unread, answered exactly like a missing document.
    OutOfScope { held: Vec<ChangeHash>, rejected: Vec<(Change, Violation)> },
    /// In scope, but the stored copy is damaged: nothing is decided, accepted or refused; the
    /// device keeps its edits and is told why (the detail went to the log).
    Damaged,
}

pub(crate) fn violation(code: ViolationCode, message: &str) -> Violation {
    Violation::new(code, None, message)
}

/// A stored document that does not load or is not of its schema any more.
pub(crate) fn damaged(doc_id: &str, e: &dyn std::fmt::Display) -> StorageError {
    StorageError::Damaged { doc_id: doc_id.to_string(), detail: e.to_string() }
}

/// What a device is told of a damaged document in its scope.
pub(crate) fn unavailable(doc_id: String) -> crate::protocol::Unavailable {
    crate::protocol::Unavailable {
        reason: format!(
            "the server's copy of {doc_id} is damaged: nothing of it was taken or sent this time; \
             this device keeps its copy and its edits, and an operator was alerted"
        ),
        doc_id,
        code: crate::protocol::DOCUMENT_DAMAGED.into(),
    }
}

/// The answer for a document that is missing or out of the author's scope: the same either way.
pub(crate) fn not_found() -> Violation {
    violation(
        ViolationCode::NotFound,
        "no such document among yours: it does not exist or is not assigned to you",
    )
}

impl<S: Storage> SyncEngine<S> {
    pub fn new(storage: S, config: EngineConfig) -> Self {
        SyncEngine {
            storage,
            cache: cache::DocCache::new(config.cache_docs),
            config,
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

    /// Number of documents currently loaded in memory.
    pub fn cached_docs(&self) -> usize {
        self.cache.len()
    }

    /// The document cache's hits and misses so far (the server's `/metrics`).
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The stored version of a document: the cached copy when it is at the stored version, else
    /// loaded from storage (metadata first, so the copy is never older than its label).
    pub(crate) fn current(&self, team: &str, doc_id: &str) -> Result<Option<Current>> {
        let Some(meta) = self.storage.doc_meta(team, doc_id)? else {
            return Ok(None);
        };
        if let Some(snap) = self.cache.at_version(team, doc_id, meta.updated_seq) {
            return Ok(Some(Current { snap, meta }));
        }
        let bytes = self.storage.load_doc(team, doc_id)?.unwrap_or_default();
        let doc = crate::untrusted::load(&bytes).map_err(|e| damaged(doc_id, &e))?;
        let snap = Arc::new(Snapshot { doc, version: meta.updated_seq });
        self.cache.offer(team, doc_id, snap.clone());
        Ok(Some(Current { snap, meta }))
    }

    /// Whether a document is still at `version` in storage.
    fn still_at(&self, team: &str, doc_id: &str, version: Option<u64>) -> Result<bool> {
        Ok(self.storage.doc_meta(team, doc_id)?.map(|m| m.updated_seq) == version)
    }

    /// Handles one sync request from an authenticated device. `now_ms` is the server's receipt time.
    pub fn handle(&self, who: &Principal, req: &SyncRequest, now_ms: i64) -> Result<SyncResponse> {
        validate_id("device_id", &req.device_id).map_err(|e| SyncError::BadRequest(e.to_string()))?;
        if req.device_id == SERVER_ORIGIN {
            return Err(SyncError::BadRequest("device id \"server\" is reserved".into()));
        }
        // Before anything of the request is looked at: a revoked phone neither pushes nor pulls.
        if self.storage.device_revocation(&who.team, &req.device_id)?.is_some() {
            return Err(SyncError::DeviceRevoked(req.device_id.clone()));
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
            bootstrap_after: None,
            unavailable: vec![],
        };
        if !req.push.is_empty() {
            self.push(who, req, now_ms, &mut resp)?;
        }
        self.pull(who, &req.device_id, &req.cursor, &mut resp)?;
        Ok(resp)
    }

    fn push(&self, who: &Principal, req: &SyncRequest, now_ms: i64, resp: &mut SyncResponse) -> Result<()> {
        let team = who.team.as_str();
        let parsed = self.parse(req)?;
        // Decide outside the lock: a long decision never makes the team's other writers wait.
        let mut decisions: Vec<Decision> =
            parsed.iter().map(|p| self.decide(who, p)).collect::<Result<_>>()?;
        let lock = self.team_lock(team);
        let mut attempt = 0;
        loop {
            let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let mut moved = Vec::new();
            for (i, d) in decisions.iter().enumerate() {
                if !self.still_at(team, &d.doc_id, d.version)? {
                    moved.push(i);
                }
            }
            if !moved.is_empty() {
                attempt += 1;
                let under_lock = attempt > self.config.optimistic_attempts;
                if !under_lock {
                    drop(guard);
                }
                for i in moved {
                    decisions[i] = self.decide(who, &parsed[i])?;
                }
                if !under_lock {
                    continue;
                }
            }
            return self.commit_push(who, &req.device_id, decisions, now_ms, resp);
        }
    }

    /// Parses every change before any document is touched: garbage never costs a lock or a load.
    fn parse<'a>(&self, req: &'a SyncRequest) -> Result<Vec<Pushed<'a>>> {
        let mut seen = HashSet::new();
        let mut parsed = Vec::with_capacity(req.push.len());
        for p in &req.push {
            validate_id("doc_id", &p.doc_id).map_err(|e| SyncError::BadRequest(e.to_string()))?;
            if !seen.insert(p.doc_id.as_str()) {
                return Err(SyncError::BadRequest(format!(
                    "document {} pushed twice in one request",
                    p.doc_id
                )));
            }
            if p.changes.len() > self.config.max_doc_changes {
                return Err(SyncError::TooLarge(format!(
                    "{} changes pushed for document {}, at most {}",
                    p.changes.len(),
                    p.doc_id,
                    self.config.max_doc_changes
                )));
            }
            let mut changes = Vec::with_capacity(p.changes.len());
            for bytes in &p.changes {
                let c = Change::from_bytes(bytes.to_vec()).map_err(|e| SyncError::CorruptChange {
                    doc_id: p.doc_id.clone(),
                    detail: e.to_string(),
                })?;
                // `from_bytes` does not check the chunk's checksum (the start of the change's hash),
                // but loading does: a change stored with a wrong one would make the document and the
                // feed entry unloadable for the server and every device.
                if c.raw_bytes().get(4..8) != Some(&c.hash().0[..4]) {
                    return Err(SyncError::CorruptChange {
                        doc_id: p.doc_id.clone(),
                        detail: "checksum does not match the change".into(),
                    });
                }
                changes.push(c);
            }
            if !changes.is_empty() {
                parsed.push(Pushed { push: p, changes });
            }
        }
        Ok(parsed)
    }

    /// Decides one pushed document against its current version. A damaged stored copy costs only
    /// that document: the rest of the push goes on.
    fn decide(&self, who: &Principal, p: &Pushed<'_>) -> Result<Decision> {
        match self.decide_on_current(who, p) {
            Err(SyncError::Storage(StorageError::Damaged { doc_id, detail })) => {
                tracing::error!(team = %who.team, doc = %doc_id, %detail, "a stored document is damaged");
                let meta = self.storage.doc_meta(&who.team, &doc_id)?;
                let in_scope = meta
                    .as_ref()
                    .is_some_and(|m| who.role.sees_whole_team() || m.audience.includes(&who.user));
                let mut seen = HashSet::new();
                let outcome = if in_scope {
                    Outcome::Damaged
                } else {
                    let rejected =
                        p.changes.iter().filter(|c| seen.insert(c.hash())).map(|c| (c.clone(), not_found()));
                    Outcome::OutOfScope { held: vec![], rejected: rejected.collect() }
                };
                Ok(Decision {
                    doc_id,
                    kind: p.push.kind,
                    pushed: p.changes.iter().map(Change::hash).collect(),
                    version: meta.as_ref().map(|m| m.updated_seq),
                    old_meta: meta,
                    outcome,
                })
            }
            other => other,
        }
    }

    fn decide_on_current(&self, who: &Principal, p: &Pushed<'_>) -> Result<Decision> {
        let team = who.team.as_str();
        let doc_id = p.push.doc_id.as_str();
        let current = self.current(team, doc_id)?;
        let pushed: Vec<ChangeHash> = p.changes.iter().map(Change::hash).collect();
        let mut decision = Decision {
            doc_id: doc_id.to_string(),
            kind: p.push.kind,
            pushed,
            version: current.as_ref().map(|c| c.meta.updated_seq),
            old_meta: current.as_ref().map(|c| c.meta.clone()),
            outcome: Outcome::OutOfScope { held: vec![], rejected: vec![] },
        };
        // A rep pushing to a document outside their scope learns nothing about it, not even its
        // kind: the changes are refused unread, exactly as for a document that does not exist.
        let in_scope = current
            .as_ref()
            .is_none_or(|c| who.role.sees_whole_team() || c.meta.audience.includes(&who.user));
        if !in_scope {
            let base = current.as_ref().map(|c| &c.snap.doc);
            let mut seen = HashSet::new();
            let (mut held, mut rejected) = (Vec::new(), Vec::new());
            for c in &p.changes {
                if base.is_some_and(|d| d.get_change_meta_by_hash(&c.hash()).is_some()) {
                    held.push(c.hash());
                } else if seen.insert(c.hash()) {
                    rejected.push((c.clone(), not_found()));
                }
            }
            decision.outcome = Outcome::OutOfScope { held, rejected };
            return Ok(decision);
        }
        if let Some(c) = &current
            && c.meta.kind != p.push.kind
        {
            return Err(SyncError::KindMismatch {
                doc_id: doc_id.into(),
                stored: c.meta.kind,
                pushed: p.push.kind,
            });
        }
        let empty = Automerge::new();
        let base_doc = current.as_ref().map_or(&empty, |c| &c.snap.doc);
        let before = match &current {
            Some(_) => Some(Document::hydrate(base_doc).map_err(|e| damaged(doc_id, &e))?),
            None => None,
        };
        let base = stage::Base {
            who,
            kind: p.push.kind,
            doc_id,
            doc: base_doc,
            before: before.as_ref(),
            assigned: current.as_ref().is_some_and(|c| c.meta.audience.includes(&who.user)),
        };
        // Staging works on forks of the stored document, so a panic in Automerge loses nothing.
        let staged = crate::untrusted::guard(|| stage::stage(&base, p.changes.clone())).map_err(|_| {
            SyncError::CorruptChange { doc_id: doc_id.into(), detail: "the changes cannot be applied".into() }
        })??;
        decision.outcome = Outcome::Staged(staged);
        Ok(decision)
    }

    /// Reads a document as it stands on the server (for HTTP views and tools).
    pub fn read_doc(&self, team: &str, doc_id: &str) -> Result<Option<(Document, DocMeta)>> {
        let Some(c) = self.current(team, doc_id)? else {
            return Ok(None);
        };
        let typed = Document::hydrate(&c.snap.doc).map_err(|e| damaged(doc_id, &e))?;
        Ok(Some((typed, c.meta)))
    }

    /// Heads of a document as the server holds it (for convergence checks and tools).
    pub fn doc_heads(&self, team: &str, doc_id: &str) -> Result<Option<Vec<ChangeHash>>> {
        Ok(self.current(team, doc_id)?.map(|c| c.snap.doc.get_heads()))
    }

    /// Every document of a team, typed (reports and planning). Reads cached copies when they are
    /// current and storage otherwise, without caching what it reads: the cache stays with the
    /// documents being written.
    pub fn team_documents(&self, team: &str) -> Result<Vec<Document>> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.storage.list_docs(team, None, &after, 1000)?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            for (id, _) in &page {
                let Some(meta) = self.storage.doc_meta(team, id)? else { continue };
                let corrupt = |e: &dyn std::fmt::Display| damaged(id, e);
                if let Some(snap) = self.cache.at_version(team, id, meta.updated_seq) {
                    out.push(Document::hydrate(&snap.doc).map_err(|e| corrupt(&e))?);
                    continue;
                }
                let Some(bytes) = self.storage.load_doc(team, id)? else { continue };
                let doc = crate::untrusted::load(&bytes).map_err(|e| corrupt(&e))?;
                out.push(Document::hydrate(&doc).map_err(|e| corrupt(&e))?);
            }
        }
        Ok(out)
    }

    /// The team's current plan (the latest quarter), read from the team-wide documents only.
    pub fn current_plan(&self, team: &str) -> Result<Option<crate::docs::Plan>> {
        let mut best: Option<crate::docs::Plan> = None;
        let mut after = String::new();
        loop {
            let page = self.storage.list_docs(team, Some(crate::storage::TEAM_WIDE), &after, 1000)?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            for (id, kind) in page {
                if kind != DocKind::Plan {
                    continue;
                }
                if let Some((Document::Plan(p), _)) = self.read_doc(team, &id)?
                    && best.as_ref().is_none_or(|b| p.quarter > b.quarter)
                {
                    best = Some(p);
                }
            }
        }
        Ok(best)
    }

    /// The team's opportunity-stage transitions, oldest first (`index.rs`).
    pub fn stage_changes(&self, team: &str) -> Result<Vec<crate::index::StageChange>> {
        Ok(self.storage.stage_changes(team)?)
    }

    /// The team's report-index rows (`index.rs`): what reports read instead of the documents.
    pub fn index_rows(&self, team: &str) -> Result<Vec<crate::index::IndexRow>> {
        Ok(self.storage.index_rows(team)?)
    }

    /// Builds the report index of a team stored before the index existed (documents, no rows): one
    /// pass over the documents under the team's lock, committed like any batch. Returns the number
    /// of rows written (0 when the team has its index already).
    pub fn backfill_index(&self, team: &str, now_ms: i64) -> Result<usize> {
        let lock = self.team_lock(team);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.storage.has_index(team)? {
            return Ok(0);
        }
        let mut batch = crate::storage::Batch::new(team, self.storage.feed_head(team)?);
        batch.index =
            self.team_documents(team)?.iter().filter_map(|d| crate::index::IndexRow::of(d, now_ms)).collect();
        let n = batch.index.len();
        if n > 0 {
            self.storage.commit(batch)?;
        }
        Ok(n)
    }

    /// Drops feed entries older than the newest `keep` of a team; devices further behind bootstrap.
    pub fn trim_feed(&self, team: &str, keep: u64) -> Result<u64> {
        let head = self.storage.feed_head(team)?;
        let upto = head.saturating_sub(keep);
        self.storage.trim_feed(team, upto)?;
        Ok(upto)
    }
}
