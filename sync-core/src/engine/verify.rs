//! Check-in verdicts: the server judges every check-in it has not judged yet with the one policy
//! of [`crate::checkin`] (neighbours in time on both sides, only trusted fixes become references)
//! and records the verdicts in the visit as a change of its own actor (the rules refuse client
//! changes to `verification`, so the verdict is evidence that travels with the visit).

use automerge::{Automerge, Change, ReadDoc, transaction::CommitOptions};

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::stage::Staged;
use super::{Decision, Outcome, Result, SyncEngine, SyncError};
use crate::checkin::{self, CheckinHistory, CustomerSite};
use crate::docs::{Checkin, CheckinVerification, DocKind, Document, Visit};
use crate::storage::{Batch, Storage, StorageError};

/// The verdicts of a push, per visit id: check-in id → verdict.
pub(crate) type Verdicts = HashMap<String, HashMap<String, CheckinVerification>>;

impl<S: Storage> SyncEngine<S> {
    /// Judges every check-in of the push's accepted visits that the server has not judged yet, in
    /// the order they happened across all those visits (so which of two conflicting offline
    /// check-ins is flagged never depends on the visits' ids), each against its neighbours in time
    /// in the rep's history; the updated histories go into `batch`.
    pub(crate) fn judge_new_checkins(
        &self,
        team: &str,
        decisions: &[Decision],
        now_ms: i64,
        batch: &mut Batch,
    ) -> Result<Verdicts> {
        let mut pending: Vec<(&str, &Visit, &Checkin)> = decisions
            .iter()
            .filter_map(|d| match &d.outcome {
                Outcome::Staged(Staged { state: Some(Document::Visit(v)), accepted_new, .. })
                    if !accepted_new.is_empty() =>
                {
                    Some((d.doc_id.as_str(), v))
                }
                _ => None,
            })
            .flat_map(|(id, v)| {
                v.checkins.iter().filter(|c| !v.verification.contains_key(&c.id)).map(move |c| (id, v, c))
            })
            .collect();
        let mut verdicts = Verdicts::new();
        if pending.is_empty() {
            return Ok(verdicts);
        }
        pending.sort_by_key(|(_, _, c)| c.device_time_ms);
        let mut histories: HashMap<&str, CheckinHistory> = HashMap::new();
        let mut sites: HashMap<&str, Option<CustomerSite>> = HashMap::new();
        for (visit_id, visit, c) in pending {
            let history = match histories.entry(visit.rep.as_str()) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(
                    self.storage.checkin_history(team, &visit.rep)?.unwrap_or_else(CheckinHistory::new),
                ),
            };
            let site = match sites.entry(visit_id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(self.customer_site(team, &visit.customer_id, &visit.rep)?),
            };
            let j = checkin::judge_and_record(
                history,
                &checkin::fix_of(c),
                site.as_ref(),
                now_ms,
                &self.config.verify,
            );
            verdicts
                .entry(visit_id.to_string())
                .or_default()
                .insert(c.id.clone(), CheckinVerification::from_verification(&j.verification, now_ms));
        }
        batch.checkins.extend(histories.into_iter().map(|(rep, h)| (rep.to_string(), h)));
        Ok(verdicts)
    }

    /// Records `new` verdicts in the visit, as a change of the server's own. Returns that change.
    pub(crate) fn write_verdicts(
        &self,
        visit: &Visit,
        new: HashMap<String, CheckinVerification>,
        doc: &mut Automerge,
        now_ms: i64,
    ) -> Result<Option<Change>> {
        let mut verdicts = visit.verification.clone();
        verdicts.extend(new);
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
