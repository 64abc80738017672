//! Check-in verdicts: the server judges every check-in it has not judged yet with the one policy
//! of [`crate::checkin`] (neighbours in time on both sides, only trusted fixes become references)
//! and records the verdicts in the visit as a change of its own actor (the rules refuse client
//! changes to `verification`, so the verdict is evidence that travels with the visit).

use automerge::{Automerge, Change, ReadDoc, transaction::CommitOptions};

use super::{Result, SyncEngine, SyncError};
use crate::checkin::{self, CheckinHistory, CustomerSite};
use crate::docs::{CheckinVerification, DocKind, Document, Visit};
use crate::storage::{Batch, Storage, StorageError};

impl<S: Storage> SyncEngine<S> {
    /// Verifies check-ins the server has not judged yet and records the verdicts in the visit, as a
    /// change of the server's own. Returns that change.
    pub(crate) fn verify_new_checkins(
        &self,
        team: &str,
        visit: &Visit,
        doc: &mut Automerge,
        now_ms: i64,
        batch: &mut Batch,
    ) -> Result<Option<Change>> {
        let mut pending: Vec<&crate::docs::Checkin> =
            visit.checkins.iter().filter(|c| !visit.verification.contains_key(&c.id)).collect();
        if pending.is_empty() {
            return Ok(None);
        }
        let site = self.customer_site(team, &visit.customer_id, &visit.rep)?;
        // Visits pushed together see each other's check-ins: the batch holds the newest history.
        let mut history = match batch.checkins.iter().rposition(|(u, _)| *u == visit.rep) {
            Some(i) => batch.checkins.remove(i).1,
            None => self.storage.checkin_history(team, &visit.rep)?.unwrap_or_else(CheckinHistory::new),
        };
        let mut verdicts = visit.verification.clone();
        // Judged in the order they happened, each against its neighbours in time.
        pending.sort_by_key(|c| c.device_time_ms);
        for c in pending {
            let j = checkin::judge_and_record(
                &mut history,
                &checkin::fix_of(c),
                site.as_ref(),
                now_ms,
                &self.config.verify,
            );
            verdicts.insert(c.id.clone(), CheckinVerification::from_verification(&j.verification, now_ms));
        }
        batch.checkins.push((visit.rep.clone(), history));
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

    /// The customer's site, if the customer exists and the visit's rep may see it: verifying a
    /// check-in against a customer outside the rep's scope would tell the rep where it is (both
    /// answer `unknown_customer`).
    fn customer_site(&self, team: &str, customer_id: &str, rep: &str) -> Result<Option<CustomerSite>> {
        let Some(c) = self.current(team, customer_id)? else {
            return Ok(None);
        };
        let visible = c.meta.kind == DocKind::Customer && c.meta.audience.includes(rep);
        Ok(match Document::hydrate(&c.snap.doc).ok() {
            Some(Document::Customer(c)) if visible => CustomerSite::of(&c),
            _ => None,
        })
    }
}
