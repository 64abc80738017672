//! Pulls: the feed after a device's cursor, in its scope, or bootstrap pages of stored documents.
//! They read feed entries and stored bytes only: no document is loaded or re-encoded.

use serde_bytes::ByteBuf;

use super::{Result, SyncEngine};
use crate::protocol::{Cursor, DocSnapshot, FeedChanges, SyncResponse};
use crate::rules::Principal;
use crate::storage::{FeedBody, Storage};

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
