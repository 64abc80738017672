//! The report index: what the manager's reports need of each customer and visit, as small rows the
//! engine writes **in the same atomic batch** as the document (pushes, verdicts and server writes
//! alike, through `commit::record`). A report reads rows, never hydrates every document, and can
//! never see a write whose document is not stored, nor miss one that is.
//!
//! A row is a pure function of the document ([`IndexRow::of`]) plus what only the server knows:
//! when it first stored the document (`first_seen_ms`). Opportunity-stage transitions, which the
//! documents do not keep, are appended as [`StageChange`]s.
//!
//! ```
//! use fieldsync_core::docs::{Customer, Document, GeoPoint};
//! use fieldsync_core::index::IndexRow;
//! let shop = Customer { owner_rep: Some("alice".into()), ..Customer::new("c-1", "Shop", GeoPoint::wgs84(45.76, 4.83), "maria") };
//! let row = IndexRow::of(&Document::Customer(shop), 1_000).expect("customers are indexed");
//! assert_eq!(row.first_seen_ms(), 1_000);
//! ```

use serde::{Deserialize, Serialize};

use crate::docs::{CheckinReview, Customer, Document, Tier, Visit, VisitState};
use crate::geo::{VerificationStatus, to_wgs84};

/// One indexed document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum IndexRow {
    Customer(CustomerRow),
    Visit(VisitRow),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerRow {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// The phone, normalized ([`crate::docs::normalized_phone`]); empty when none: what leads are
    /// matched by.
    #[serde(default)]
    pub phone: String,
    pub owner_rep: Option<String>,
    pub territory: Option<String>,
    /// The stored tier (a manager's override names them in `tier_set_by`); the effective tier is
    /// the planning's to decide, with the plan's thresholds.
    pub tier: Option<Tier>,
    pub tier_set_by: Option<String>,
    pub potential_value: f64,
    pub close_probability: f64,
    pub opportunity_stage: String,
    pub follow_up_status: String,
    /// Tagged `remote`: served by phone when far.
    pub remote: bool,
    /// WGS-84, when the stored location is usable.
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// When the server first stored the customer.
    pub first_seen_ms: i64,
}

/// The server's verdict on one check-in, as the reports count it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictRow {
    pub checkin_id: String,
    pub device_time_ms: i64,
    pub status: VerificationStatus,
    pub codes: Vec<String>,
    /// A manager's review of it, if any.
    #[serde(default)]
    pub review: Option<CheckinReview>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitRow {
    pub id: String,
    pub customer_id: String,
    pub rep: String,
    pub planned_start_ms: i64,
    pub planned_end_ms: i64,
    pub state: VisitState,
    /// The earliest check-in device time.
    pub first_checkin_ms: Option<i64>,
    /// The check-out's device time.
    pub checkout_ms: Option<i64>,
    /// Completed as a remote contact (outcome "remote…").
    pub remote_contact: bool,
    /// Verdicts of the check-ins the server has judged, in check-in order.
    pub verdicts: Vec<VerdictRow>,
    /// Where and when each check-in was made (WGS-84), in check-in order: the map of a rep's day.
    #[serde(default)]
    pub checkins: Vec<CheckinPoint>,
    pub first_seen_ms: i64,
}

/// One check-in on the map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckinPoint {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    pub device_time_ms: i64,
}

/// A customer's opportunity stage moved: the documents keep only the current stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageChange {
    pub customer_id: String,
    /// The owner at the time.
    pub rep: Option<String>,
    pub from: String,
    pub to: String,
    /// When the server stored the change.
    pub at_ms: i64,
}

impl IndexRow {
    /// The row of a document (customers and visits; territories and plans are read whole).
    pub fn of(doc: &Document, first_seen_ms: i64) -> Option<IndexRow> {
        match doc {
            Document::Customer(c) => Some(IndexRow::Customer(CustomerRow::of(c, first_seen_ms))),
            Document::Visit(v) => Some(IndexRow::Visit(VisitRow::of(v, first_seen_ms))),
            Document::Territory(_) | Document::Plan(_) => None,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            IndexRow::Customer(c) => &c.id,
            IndexRow::Visit(v) => &v.id,
        }
    }

    pub fn first_seen_ms(&self) -> i64 {
        match self {
            IndexRow::Customer(c) => c.first_seen_ms,
            IndexRow::Visit(v) => v.first_seen_ms,
        }
    }

    /// The stage change from `old` to this row, if the opportunity moved.
    pub fn stage_change_from(&self, old: Option<&IndexRow>, at_ms: i64) -> Option<StageChange> {
        let IndexRow::Customer(new) = self else { return None };
        let from = match old {
            Some(IndexRow::Customer(old)) => old.opportunity_stage.clone(),
            _ => String::new(),
        };
        (from != new.opportunity_stage).then(|| StageChange {
            customer_id: new.id.clone(),
            rep: new.owner_rep.clone(),
            from,
            to: new.opportunity_stage.clone(),
            at_ms,
        })
    }
}

impl CustomerRow {
    fn of(c: &Customer, first_seen_ms: i64) -> CustomerRow {
        let at = c.location.parsed("location").ok().map(|(p, datum)| to_wgs84(p, datum));
        CustomerRow {
            id: c.id.clone(),
            name: c.name.clone(),
            phone: crate::docs::normalized_phone(&c.phone).unwrap_or_default(),
            owner_rep: c.owner_rep.clone(),
            territory: c.territory.clone(),
            tier: c.tier,
            tier_set_by: c.tier_set_by.clone(),
            potential_value: c.potential_value,
            close_probability: c.close_probability,
            opportunity_stage: c.opportunity_stage.clone(),
            follow_up_status: c.follow_up_status.clone(),
            remote: c.tags.iter().any(|t| t == "remote"),
            lat: at.map(|p| p.lat),
            lon: at.map(|p| p.lon),
            first_seen_ms,
        }
    }
}

impl VisitRow {
    fn of(v: &Visit, first_seen_ms: i64) -> VisitRow {
        let verdicts = v
            .checkins
            .iter()
            .filter_map(|c| {
                v.verification.get(&c.id).map(|j| VerdictRow {
                    checkin_id: c.id.clone(),
                    device_time_ms: c.device_time_ms,
                    status: j.status,
                    codes: j.reasons.iter().map(|r| r.code.clone()).collect(),
                    review: j.review.clone(),
                })
            })
            .collect();
        VisitRow {
            id: v.id.clone(),
            customer_id: v.customer_id.clone(),
            rep: v.rep.clone(),
            planned_start_ms: v.planned_start_ms,
            planned_end_ms: v.planned_end_ms,
            state: v.state,
            first_checkin_ms: v.checkins.iter().map(|c| c.device_time_ms).min(),
            checkout_ms: v.checkout.as_ref().map(|c| c.device_time_ms),
            remote_contact: v.is_remote_contact(),
            verdicts,
            checkins: v
                .checkins
                .iter()
                .map(|c| CheckinPoint {
                    id: c.id.clone(),
                    lat: c.lat,
                    lon: c.lon,
                    device_time_ms: c.device_time_ms,
                })
                .collect(),
            first_seen_ms,
        }
    }
}
