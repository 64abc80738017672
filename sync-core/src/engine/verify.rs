//! Check-in verdicts: the server judges every check-in it has not judged yet and records the
//! verdicts in the visit as a change of its own actor (the rules refuse client changes to
//! `verification`, so the verdict is evidence that travels with the visit).

use automerge::{Automerge, Change, ReadDoc, transaction::CommitOptions};

use super::{Result, SyncEngine, SyncError};
use crate::docs::{CheckinVerification, DocKind, Document, FlagReason, Visit};
use crate::geo::{self, CheckinContext, CheckinFix, LatLon, PreviousCheckin};
use crate::storage::{Batch, LastCheckin, Storage, StorageError};

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
        let customer = self.customer_location(team, &visit.customer_id, &visit.rep)?;
        let mut previous: Option<LastCheckin> =
            batch.checkins.iter().rev().find(|(u, _)| *u == visit.rep).map(|(_, c)| c.clone());
        if previous.is_none() {
            previous = self.storage.last_checkin(team, &visit.rep)?;
        }
        let mut verdicts = visit.verification.clone();
        // Judged in the order they happened: a check-in is compared with the one before it, never
        // with a later one that reached the server first.
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
        let Some(c) = self.current(team, customer_id)? else {
            return Ok(None);
        };
        let visible = c.meta.kind == DocKind::Customer && c.meta.audience.includes(rep);
        Ok(match Document::hydrate(&c.snap.doc).ok() {
            Some(Document::Customer(c)) if visible => {
                c.location.parsed("location").ok().map(|(p, d)| (p, d, c.geofence_m))
            }
            _ => None,
        })
    }
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
