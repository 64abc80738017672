//! The records that exist for the app only (the documents themselves are the core's records).

use fieldsync_core::client::{ApplyReport, RejectedEdit};
use fieldsync_core::docs::{CheckinVerification, Customer, Visit};
use fieldsync_core::geo::{CheckinFix, LatLon};

/// A GPS fix from the phone (WGS-84).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct GpsFix {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
    pub device_time_ms: i64,
    pub mock_location: bool,
}

/// A check-in as recorded, with the verification computed on the spot by the same rules as the
/// server's (the server's verdict arrives with the next sync).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CheckInResult {
    pub visit: Visit,
    /// The verdict on the spot, in the record the server writes into the visit once it has judged
    /// the check-in itself.
    pub verification: CheckinVerification,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CustomerNear {
    pub customer: Customer,
    pub distance_m: f64,
}

/// An edit the server refused (or that left this user's scope), kept for the user.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RejectedEditRecord {
    pub doc_id: String,
    pub code: String,
    pub reason: String,
    /// The document as the user had it, with the refused edit, as JSON.
    pub attempted_json: Option<String>,
    pub changes: u32,
}

impl From<&RejectedEdit> for RejectedEditRecord {
    fn from(r: &RejectedEdit) -> Self {
        RejectedEditRecord {
            doc_id: r.doc_id.clone(),
            code: r.code.clone(),
            reason: r.reason.clone(),
            attempted_json: r.attempted.as_ref().map(|v| v.to_string()),
            changes: r.changes.len() as u32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, uniffi::Record)]
pub struct SyncSummary {
    pub rounds: u32,
    pub accepted_docs: u32,
    pub rejected: Vec<RejectedEditRecord>,
    pub pulled_changes: u32,
    pub pulled_docs: u32,
    pub revoked: u32,
    pub more: bool,
    pub outbox_size: u32,
    /// Documents not brought up to date: the server's copy is damaged (or what it sent does not
    /// load). This phone keeps its copy and its edits; they go out once the server's is repaired.
    pub unavailable: Vec<String>,
    /// Local copies that were damaged on this phone and were fetched from the server again.
    pub repaired: Vec<String>,
}

impl SyncSummary {
    pub(crate) fn add(&mut self, r: &ApplyReport) {
        self.accepted_docs += r.accepted_docs as u32;
        self.rejected.extend(r.rejected.iter().map(RejectedEditRecord::from));
        self.pulled_changes += r.pulled_changes as u32;
        self.pulled_docs += r.pulled_docs as u32;
        self.revoked += r.revoked as u32;
        self.more = r.more;
        for id in &r.unavailable {
            if !self.unavailable.contains(id) {
                self.unavailable.push(id.clone());
            }
        }
        self.repaired.extend(r.damaged.iter().cloned());
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SyncStatus {
    pub device_id: String,
    pub outbox_size: u32,
    pub last_sync_ms: Option<i64>,
    pub syncing: bool,
    pub documents: u32,
}

impl From<&GpsFix> for CheckinFix {
    fn from(f: &GpsFix) -> Self {
        CheckinFix {
            point: LatLon { lat: f.lat, lon: f.lon },
            accuracy_m: f.accuracy_m,
            device_time_ms: f.device_time_ms,
            mock_location: f.mock_location,
        }
    }
}

impl From<(Customer, f64)> for CustomerNear {
    fn from((customer, distance_m): (Customer, f64)) -> Self {
        CustomerNear { customer, distance_m }
    }
}
