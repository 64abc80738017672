//! Pulls: the feed after a device's cursor, in its scope, or bootstrap pages of stored documents.
//! They read feed entries and stored bytes only: no document is loaded or re-encoded.

use serde_bytes::ByteBuf;

use super::{Result, SyncEngine, unavailable};
use crate::protocol::{Cursor, DocSnapshot, FeedChanges, SyncResponse};
use crate::rules::Principal;
use crate::storage::{FeedBody, Storage, StorageError};

impl<S: Storage> SyncEngine<S> {
    pub(crate) fn pull(
        &self,
        who: &Principal,
        device: &str,
        cursor: &Cursor,
        resp: &mut SyncResponse,
    ) -> Result<()> {
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
        // The page covers every id after `after` up to the next cursor (to the end on the last
        // page): the device drops what it holds in that range and the page does not bring back.
        resp.bootstrap_after = Some(after.to_string());
        let mut last = after.to_string();
        let mut done = true;
        for (i, (doc_id, kind)) in ids.iter().enumerate() {
            if i == self.config.bootstrap_docs || (*budget == 0 && i > 0) {
                done = false;
                break;
            }
            match self.storage.load_doc(team, doc_id) {
                Ok(Some(bytes)) => {
                    *budget = budget.saturating_sub(bytes.len());
                    resp.docs.push(DocSnapshot {
                        doc_id: doc_id.clone(),
                        kind: *kind,
                        bytes: ByteBuf::from(bytes),
                    });
                }
                Ok(None) => {}
                // One damaged document is left out, named, and the page goes on: the device keeps
                // its copy (the page does not make it drop it) and everything else syncs.
                Err(StorageError::Damaged { doc_id, detail }) => {
                    tracing::error!(team, doc = %doc_id, %detail, "a stored document is damaged; left out of a bootstrap");
                    resp.unavailable.push(unavailable(doc_id));
                }
                Err(e) => return Err(e.into()),
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
                // Nothing after the cursor, unless a trim took it since the horizon was read.
                resp.more = self.storage.feed_horizon(team)? > cursor;
                break;
            }
            for e in entries {
                // The feed is numbered without gaps, so a missing number means a trim ran between
                // this request's look at the horizon and its read: the device would skip what was
                // trimmed. It stops here, behind the new horizon, and its next request bootstraps.
                if *budget == 0 || scanned >= self.config.page_entries || e.seq != cursor + 1 {
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
                    // A device applies a response's documents before its revokes: of a grant and
                    // a revoke of one document in one response, only the later one is sent.
                    FeedBody::Grant { users, snapshot } => {
                        if !whole_team && users.contains(&who.user) {
                            *budget = budget.saturating_sub(snapshot.len());
                            resp.revoked.retain(|id| *id != e.doc_id);
                            resp.docs.push(DocSnapshot { doc_id: e.doc_id, kind: e.kind, bytes: snapshot });
                        }
                    }
                    FeedBody::Revoke { users } => {
                        if !whole_team && users.contains(&who.user) {
                            resp.docs.retain(|d| d.doc_id != e.doc_id);
                            resp.changes.retain(|c| c.doc_id != e.doc_id);
                            resp.revoked.push(e.doc_id);
                        }
                    }
                }
            }
        }
        resp.cursor = Cursor::Feed { seq: cursor };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use automerge::ActorId;

    use crate::Role;
    use crate::engine::{EngineConfig, SyncEngine};
    use crate::storage::{KvBackend, KvOp, KvStorage, MemoryKv, Result, key};
    use crate::testing::fixtures::customer;
    use crate::testing::{replica, sync_until_idle};

    /// Memory whose next read of the feed, once armed, first trims it to its last entry: a
    /// trim landing between a pull's look at the horizon and its read.
    #[derive(Default)]
    struct TrimBeforeNextFeedRead {
        kv: MemoryKv,
        armed: AtomicBool,
    }

    impl KvBackend for TrimBeforeNextFeedRead {
        fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>> {
            self.kv.get(k)
        }

        fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            if start.starts_with(&key(&["f", "t", ""])) && self.armed.swap(false, Ordering::SeqCst) {
                let head = u64::from_be_bytes(
                    self.kv.get(&key(&["h", "t"]))?.expect("head").try_into().expect("u64"),
                );
                let mut ops: Vec<KvOp> =
                    (1..head).map(|seq| KvOp::Delete(key(&["f", "t", &format!("{seq:020}")]))).collect();
                ops.push(KvOp::Put(key(&["z", "t"]), (head - 1).to_be_bytes().to_vec()));
                self.kv.apply(ops)?;
            }
            self.kv.scan(start, end, limit)
        }

        fn apply(&self, ops: Vec<KvOp>) -> Result<()> {
            self.kv.apply(ops)
        }

        fn export(&self, each: &mut crate::storage::ExportSink<'_>) -> Result<()> {
            self.kv.export(each)
        }
    }

    #[test]
    fn a_trim_between_the_horizon_check_and_the_feed_read_does_not_skip_entries() {
        // 1. Alice's phone holds her customer c1 and is at the feed's head.
        let engine = SyncEngine::new(
            KvStorage::new(TrimBeforeNextFeedRead::default()),
            EngineConfig::new(ActorId::from(b"srv")),
        );
        let docs = |id: &str| vec![customer(id, "alice", None, (45.0, 4.0)).into()];
        engine.write_as_server("t", &docs("c1"), 0).expect("seed");
        let mut alice = replica("pa", "t", "alice", Role::Rep);
        sync_until_idle(&engine, &mut alice, 1);

        // 2. Two more customers of hers arrive; her next pull is raced by a trim that keeps only
        //    the last entry (c3's).
        engine.write_as_server("t", &docs("c2"), 2).expect("c2");
        engine.write_as_server("t", &docs("c3"), 3).expect("c3");
        engine.storage().backend().armed.store(true, Ordering::SeqCst);

        // 3. She ends with both: the gap sent her back to a bootstrap instead of past c2.
        sync_until_idle(&engine, &mut alice, 4);
        assert!(!engine.storage().backend().armed.load(Ordering::SeqCst), "the trim ran");
        let held: Vec<&String> = alice.doc_ids().collect();
        assert_eq!(held, ["c1", "c2", "c3"]);
    }
}
