//! The typed documents: one Automerge document per entity.
//!
//! Each document carries its `kind` and a `schema` version at the root so that any reader can tell
//! what it holds without outside metadata, and readers accept older versions (fields added later are
//! `missing = "Default::default"`). Typed structs map to documents through autosurgeon's
//! `Hydrate`/`Reconcile`, which reconciles field by field, so concurrent edits of different fields merge
//! and notes (`Text`) merge character by character.

use std::collections::HashMap;

use automerge::{Automerge, ObjId, ObjType, ReadDoc, ValueRef};
use autosurgeon::{Hydrate, Reconcile, Text};
use serde::{Deserialize, Serialize};

use crate::geo::{Datum, LatLon, VerificationStatus};

/// The schema version this build writes. Readers accept this and every older version.
pub const SCHEMA_VERSION: u64 = 1;

pub use limits::MAX_ID_LEN;
use limits::*;

/// Sets `text` to `new` with a grapheme diff, each run of changed graphemes one splice.
///
/// `autosurgeon::Text::update` splices once per inserted or deleted grapheme: typing 2 000
/// characters into empty notes became 2 000 Automerge operations and seconds of work (quadratic:
/// every splice rewrites the string). The diff is the same, so concurrent edits merge the same way;
/// only the runs between unchanged graphemes are grouped.
///
/// ```
/// use autosurgeon::Text;
/// let mut notes = Text::with_value("Met the owner.");
/// fieldsync_core::docs::set_text(&mut notes, "Met the new owner. Call back.");
/// assert_eq!(notes.as_str(), "Met the new owner. Call back.");
/// ```
pub fn set_text(text: &mut Text, new: &str) {
    if text.as_str() == new {
        return;
    }
    let old = text.as_str().to_string();
    // Byte position in the text as edited so far, and the pending run.
    let (mut at, mut deleted, mut inserted) = (0usize, 0usize, String::new());
    fn flush(text: &mut Text, at: &mut usize, deleted: &mut usize, inserted: &mut String) {
        if *deleted > 0 || !inserted.is_empty() {
            text.splice(*at, *deleted as isize, inserted.as_str());
            *at += inserted.len();
            *deleted = 0;
            inserted.clear();
        }
    }
    for change in similar::TextDiff::from_graphemes(old.as_str(), new).iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Delete => deleted += change.value().len(),
            similar::ChangeTag::Insert => inserted.push_str(change.value()),
            similar::ChangeTag::Equal => {
                flush(text, &mut at, &mut deleted, &mut inserted);
                at += change.value().len();
            }
        }
    }
    flush(text, &mut at, &mut deleted, &mut inserted);
}

/// Every bound on the size of a document, in one place so that the security notes can cite them.
///
/// Automerge documents are written by devices, so without a bound a rep can store megabytes in any
/// string or list the rules let them touch, and every reader (other phones, planning, reports) pays
/// for it. The numbers are generous for real data and far below what hurts.
pub mod limits {
    /// Longest id accepted (document ids, user ids, `created_by`, check-in ids).
    pub const MAX_ID_LEN: usize = 128;
    /// Longest free text accepted in a single-line field (names, statuses, tags), in characters.
    pub const MAX_SHORT_TEXT: usize = 512;
    /// Longest notes accepted (characters); also the checkout's next step.
    pub const MAX_NOTES: usize = 100_000;
    /// Longest datum name ("wgs84", "gcj-02"), in bytes.
    pub const MAX_DATUM_LEN: usize = 16;
    /// Longest IANA time zone name; the longest real one ("America/Argentina/ComodRivadavia") has 32.
    pub const MAX_TIMEZONE_LEN: usize = 64;
    /// Tags per customer.
    pub const MAX_TAGS: usize = 50;
    /// Longest phone number as written, in characters (E.164 has at most 15 digits; spaces,
    /// dashes and brackets add some).
    pub const MAX_PHONE_LEN: usize = 32;
    /// Opening windows per customer: four a day, seven days.
    pub const MAX_OPENING_HOURS: usize = 7 * 4;
    /// Largest per-customer geofence, in metres. Large sites (malls, plants) need more than the
    /// default 200 m; beyond a couple of kilometres a fence no longer says the rep was there.
    /// Check-in verification clamps to the same value.
    pub const MAX_GEOFENCE_M: f64 = 2_000.0;
    /// Check-ins on one visit: re-checking in after a lost fix is normal, dozens are not.
    pub const MAX_CHECKINS_PER_VISIT: usize = 50;
    /// Reasons in one stored verification (there are fewer distinct reason codes).
    pub const MAX_VERIFICATION_REASONS: usize = 16;
    /// Reps of one territory.
    pub const MAX_TERRITORY_REPS: usize = 200;
    /// Polygons (outer rings) of one territory.
    pub const MAX_POLYGONS: usize = 50;
    /// Points of one polygon ring.
    pub const MAX_RING_POINTS: usize = 5_000;
    /// Sub-areas of one territory.
    pub const MAX_SUB_AREAS: usize = 200;
    /// Customers of one sub-area.
    pub const MAX_SUB_AREA_CUSTOMERS: usize = 10_000;
    /// Quotas of one plan.
    pub const MAX_QUOTAS: usize = 1_000;
}

/// What a document is.
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    Customer,
    Visit,
    Territory,
    Plan,
}

impl DocKind {
    pub const ALL: [DocKind; 4] = [DocKind::Customer, DocKind::Visit, DocKind::Territory, DocKind::Plan];

    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Customer => "customer",
            DocKind::Visit => "visit",
            DocKind::Territory => "territory",
            DocKind::Plan => "plan",
        }
    }
}

impl std::fmt::Display for DocKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DocKind {
    type Err = DocError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DocKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| DocError::UnknownKind(s.to_string()))
    }
}

/// Why a document is not acceptable as data (not a permission question: see `rules`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DocError {
    #[error("unknown document kind {0:?}")]
    UnknownKind(String),
    #[error("document schema version {found} is newer than this build understands ({supported})")]
    SchemaTooNew { found: u64, supported: u64 },
    #[error("document does not match the {kind} schema: {detail}")]
    Schema { kind: String, detail: String },
    #[error("invalid field {field}: {reason}")]
    InvalidField { field: String, reason: String },
}

impl DocError {
    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DocError::InvalidField { field: field.into(), reason: reason.into() }
    }
}

/// A point as stored in a document, with the datum it was captured in.
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
    /// "wgs84" (GPS) or "gcj02" (Chinese map providers).
    pub datum: String,
}

impl GeoPoint {
    pub fn wgs84(lat: f64, lon: f64) -> Self {
        GeoPoint { lat, lon, datum: Datum::Wgs84.as_str().to_string() }
    }

    /// The validated point and its datum.
    pub fn parsed(&self, field: &str) -> Result<(LatLon, Datum), DocError> {
        let p = LatLon::new(self.lat, self.lon)
            .map_err(|e| DocError::invalid(format!("{field}.lat/lon"), e.to_string()))?;
        let datum = self
            .datum
            .parse::<Datum>()
            .map_err(|e| DocError::invalid(format!("{field}.datum"), e.to_string()))?;
        Ok((p, datum))
    }
}

/// One opening window on a weekday, in the customer's local time.
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct OpeningHours {
    /// ISO weekday, 1 = Monday … 7 = Sunday.
    pub weekday: u8,
    /// Minutes after local midnight.
    pub open_min: u16,
    pub close_min: u16,
}

/// Segmentation tier.
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Reconcile, Hydrate, Serialize, Deserialize)]
pub enum Tier {
    A,
    B,
    C,
}

impl std::str::FromStr for Tier {
    type Err = DocError;
    /// `A`, `B` or `C` (also lower case, as people type it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "A" | "a" => Ok(Tier::A),
            "B" | "b" => Ok(Tier::B),
            "C" | "c" => Ok(Tier::C),
            _ => Err(DocError::invalid("tier", "A, B or C")),
        }
    }
}

#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Customer {
    pub kind: String,
    pub schema: u64,
    pub id: String,
    pub name: String,
    pub location: GeoPoint,
    pub address: String,
    /// The number to call, as people write it (`+33 6 12 34 56 78`); leads are matched by it
    /// ([`normalized_phone`]). Empty when unknown (and in documents written before it existed).
    #[autosurgeon(missing = "Default::default")]
    #[serde(default)]
    pub phone: String,
    /// IANA time zone of the opening hours, e.g. "Europe/Paris".
    pub timezone: String,
    pub opening_hours: Vec<OpeningHours>,
    pub potential_value: f64,
    /// 0.0 ..= 1.0
    pub close_probability: f64,
    pub tier: Option<Tier>,
    pub tier_set_by: Option<String>,
    pub tier_set_at_ms: Option<i64>,
    pub follow_up_status: String,
    pub opportunity_stage: String,
    pub owner_rep: Option<String>,
    pub territory: Option<String>,
    pub tags: Vec<String>,
    #[serde(with = "text_serde")]
    pub notes: Text,
    /// Per-customer geofence radius override in metres.
    #[autosurgeon(missing = "Default::default")]
    pub geofence_m: Option<f64>,
    pub created_by: String,
}

impl Customer {
    /// A customer with what identifies and places it, and nothing else: no owner, territory, tier,
    /// opening hours, tags or notes; no potential; follow-up "none", stage "prospecting". Set the
    /// rest with struct update syntax: `Customer { owner_rep: Some(…), ..Customer::new(…) }`.
    pub fn new(id: &str, name: &str, location: GeoPoint, created_by: &str) -> Self {
        Customer {
            kind: DocKind::Customer.as_str().into(),
            schema: SCHEMA_VERSION,
            id: id.into(),
            name: name.into(),
            location,
            address: String::new(),
            phone: String::new(),
            timezone: String::new(),
            opening_hours: vec![],
            potential_value: 0.0,
            close_probability: 0.0,
            tier: None,
            tier_set_by: None,
            tier_set_at_ms: None,
            follow_up_status: "none".into(),
            opportunity_stage: "prospecting".into(),
            owner_rep: None,
            territory: None,
            tags: vec![],
            notes: "".into(),
            geofence_m: None,
            created_by: created_by.into(),
        }
    }
}

/// Where a visit is in its life.
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Reconcile, Hydrate, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitState {
    Planned,
    CheckedIn,
    Completed,
    Cancelled,
    Missed,
}

/// A GPS fix taken when the rep arrived. Append-only.
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Checkin {
    #[key]
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
    pub device_time_ms: i64,
    pub mock_location: bool,
}

impl Checkin {
    /// A fix as the device took it, not from a mock location provider.
    pub fn new(id: &str, lat: f64, lon: f64, accuracy_m: f64, device_time_ms: i64) -> Self {
        Checkin { id: id.into(), lat, lon, accuracy_m, device_time_ms, mock_location: false }
    }
}

#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Checkout {
    pub device_time_ms: i64,
    pub outcome: String,
    pub next_step: String,
}

/// One reason a check-in was flagged, as the server recorded it.
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct FlagReason {
    pub code: String,
    pub message: String,
}

/// The server's verdict on one check-in. Written only by the server.
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct CheckinVerification {
    /// Stored as "verified" | "flagged" | "invalid".
    pub status: VerificationStatus,
    pub distance_m: f64,
    pub reasons: Vec<FlagReason>,
    pub received_at_ms: i64,
    /// A manager's decision on a check-in the server did not verify, written by the server on
    /// their behalf (`POST /v1/reviews/checkins`): evidence like the verdict, so no client writes it.
    #[autosurgeon(missing = "Default::default")]
    #[serde(default)]
    pub review: Option<CheckinReview>,
}

/// What a manager decided about a flagged or invalid check-in.
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Reconcile, Hydrate, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// The visit happened as recorded (the fence was too tight, the GPS poor): it counts.
    Approved,
    /// It did not: the visit does not count toward coverage.
    Rejected,
}

/// A manager's review of a check-in.
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct CheckinReview {
    pub decision: ReviewDecision,
    /// The manager.
    pub by: String,
    pub comment: String,
    pub at_ms: i64,
}

#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Visit {
    pub kind: String,
    pub schema: u64,
    pub id: String,
    pub customer_id: String,
    pub rep: String,
    pub planned_start_ms: i64,
    pub planned_end_ms: i64,
    pub state: VisitState,
    pub checkins: Vec<Checkin>,
    pub checkout: Option<Checkout>,
    #[serde(with = "text_serde")]
    pub notes: Text,
    /// Server-written, keyed by check-in id.
    pub verification: HashMap<String, CheckinVerification>,
    pub created_by: String,
}

impl Visit {
    /// A visit `rep` plans (and creates) at a customer: no check-in, check-out, notes or verdict.
    pub fn planned(id: &str, customer_id: &str, rep: &str, start_ms: i64, end_ms: i64) -> Self {
        Visit {
            kind: DocKind::Visit.as_str().into(),
            schema: SCHEMA_VERSION,
            id: id.into(),
            customer_id: customer_id.into(),
            rep: rep.into(),
            planned_start_ms: start_ms,
            planned_end_ms: end_ms,
            state: VisitState::Planned,
            checkins: vec![],
            checkout: None,
            notes: "".into(),
            verification: HashMap::new(),
            created_by: rep.into(),
        }
    }

    /// Whether the visit was checked out as a remote contact (a far customer served by phone): the
    /// check-out outcome starts with "remote", in any case. The rules let such a visit be completed
    /// without a check-in, and the planning (`fieldsync-planning`) counts it as a contact.
    pub fn is_remote_contact(&self) -> bool {
        self.checkout.as_ref().is_some_and(|co| {
            co.outcome.trim_start().get(..6).is_some_and(|p| p.eq_ignore_ascii_case("remote"))
        })
    }
}

#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct LatLonPoint {
    pub lat: f64,
    pub lon: f64,
}

#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct SubArea {
    #[key]
    pub id: String,
    pub name: String,
    pub customer_ids: Vec<String>,
}

#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Territory {
    pub kind: String,
    pub schema: u64,
    pub id: String,
    pub name: String,
    pub reps: Vec<String>,
    /// Outer rings of the territory's polygons (WGS-84), each closed or open.
    pub polygons: Vec<Vec<LatLonPoint>>,
    pub sub_areas: Vec<SubArea>,
}

impl Territory {
    /// A territory of `reps`, without polygons or sub-areas.
    pub fn new(id: &str, name: &str, reps: Vec<String>) -> Self {
        Territory {
            kind: DocKind::Territory.as_str().into(),
            schema: SCHEMA_VERSION,
            id: id.into(),
            name: name.into(),
            reps,
            polygons: vec![],
            sub_areas: vec![],
        }
    }

    /// Whether the WGS-84 point lies inside one of the territory's polygons (a territory without
    /// polygons covers nothing). Imports place a customer given only by coordinates with it.
    pub fn covers(&self, lat: f64, lon: f64) -> bool {
        use ::geo::{Contains, LineString, Point, Polygon};
        let point = Point::new(lon, lat);
        self.polygons.iter().filter(|ring| ring.len() >= 3).any(|ring| {
            let ring: LineString = ring.iter().map(|p| (p.lon, p.lat)).collect();
            Polygon::new(ring, vec![]).contains(&point)
        })
    }
}

#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Quota {
    /// None: the team's quota for the tier.
    pub rep: Option<String>,
    pub tier: Tier,
    pub amount: f64,
}

#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Cadence {
    pub a_days: u32,
    pub b_days: u32,
    pub c_days: u32,
}

#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct TierThresholds {
    /// Minimum potential × probability score for tier A.
    pub a_min_score: f64,
    /// Minimum score for tier B; below is C.
    pub b_min_score: f64,
}

#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Plan {
    pub kind: String,
    pub schema: u64,
    pub id: String,
    /// e.g. "2026-Q4"
    pub quarter: String,
    pub quotas: Vec<Quota>,
    pub cadence: Cadence,
    pub thresholds: TierThresholds,
    /// Share of effort planned on A and high-potential B customers (0.8 in the S.T.A.R. method).
    pub focus_share: f64,
}

impl Plan {
    /// A quarter's plan without quotas, focusing 80 % of the effort (the S.T.A.R. method's share).
    pub fn new(id: &str, quarter: &str, cadence: Cadence, thresholds: TierThresholds) -> Self {
        Plan {
            kind: DocKind::Plan.as_str().into(),
            schema: SCHEMA_VERSION,
            id: id.into(),
            quarter: quarter.into(),
            quotas: vec![],
            cadence,
            thresholds,
            focus_share: 0.8,
        }
    }
}

/// Any document, typed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Document {
    Customer(Customer),
    Visit(Visit),
    Territory(Territory),
    Plan(Plan),
}

/// Who, besides managers and admins of the team, may read a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Audience {
    /// Everybody in the team.
    Team,
    /// These users (reps) only.
    Users(Vec<String>),
}

impl Audience {
    pub fn includes(&self, user: &str) -> bool {
        match self {
            Audience::Team => true,
            Audience::Users(users) => users.iter().any(|u| u == user),
        }
    }

    pub fn users(&self) -> &[String] {
        match self {
            Audience::Team => &[],
            Audience::Users(u) => u,
        }
    }
}

/// An edit of a visit, as a [`Document`] edit (for `Replica::update` and the like): other kinds
/// are left as they are.
pub fn on_visit(edit: impl FnOnce(&mut Visit)) -> impl FnOnce(&mut Document) {
    move |d| {
        if let Document::Visit(v) = d {
            edit(v)
        }
    }
}

/// An edit of a customer, as a [`Document`] edit: other kinds are left as they are.
pub fn on_customer(edit: impl FnOnce(&mut Customer)) -> impl FnOnce(&mut Document) {
    move |d| {
        if let Document::Customer(c) = d {
            edit(c)
        }
    }
}

/// Each typed document is a [`Document`] (`visit.into()`).
macro_rules! into_document {
    ($($kind:ident),*) => {$(
        impl From<$kind> for Document {
            fn from(d: $kind) -> Self {
                Document::$kind(d)
            }
        }
    )*};
}
into_document!(Customer, Visit, Territory, Plan);

impl Document {
    pub fn kind(&self) -> DocKind {
        match self {
            Document::Customer(_) => DocKind::Customer,
            Document::Visit(_) => DocKind::Visit,
            Document::Territory(_) => DocKind::Territory,
            Document::Plan(_) => DocKind::Plan,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Document::Customer(d) => &d.id,
            Document::Visit(d) => &d.id,
            Document::Territory(d) => &d.id,
            Document::Plan(d) => &d.id,
        }
    }

    /// The notes, for the kinds that have them (customers and visits).
    pub fn notes(&self) -> Option<&Text> {
        match self {
            Document::Customer(c) => Some(&c.notes),
            Document::Visit(v) => Some(&v.notes),
            Document::Territory(_) | Document::Plan(_) => None,
        }
    }

    /// The notes to edit, for the kinds that have them.
    pub fn notes_mut(&mut self) -> Option<&mut Text> {
        match self {
            Document::Customer(c) => Some(&mut c.notes),
            Document::Visit(v) => Some(&mut v.notes),
            Document::Territory(_) | Document::Plan(_) => None,
        }
    }

    /// Sets the notes to `value` on `current`'s text object (hydrated from the document this one
    /// will be reconciled into), so that the change is a diff of that text, not a second copy of it.
    pub fn set_notes_on(&mut self, current: &Document, value: &str) {
        if let (Some(mine), Some(theirs)) = (self.notes_mut(), current.notes()) {
            *mine = theirs.clone();
            mine.update(value);
        }
    }

    /// Reads the kind and schema at the root, then the typed struct.
    pub fn hydrate<D: autosurgeon::ReadDoc>(doc: &D) -> Result<Document, DocError> {
        let kind_str: String = autosurgeon::hydrate_prop(doc, automerge::ROOT, "kind").map_err(|e| {
            DocError::Schema { kind: "?".into(), detail: format!("no kind at the root: {e}") }
        })?;
        let kind: DocKind = kind_str.parse()?;
        let schema: u64 = autosurgeon::hydrate_prop(doc, automerge::ROOT, "schema").map_err(|e| {
            DocError::Schema { kind: kind_str.clone(), detail: format!("no schema version: {e}") }
        })?;
        if schema > SCHEMA_VERSION {
            return Err(DocError::SchemaTooNew { found: schema, supported: SCHEMA_VERSION });
        }
        let schema_err =
            |e: autosurgeon::HydrateError| DocError::Schema { kind: kind_str.clone(), detail: e.to_string() };
        Ok(match kind {
            DocKind::Customer => Document::Customer(autosurgeon::hydrate(doc).map_err(schema_err)?),
            DocKind::Visit => Document::Visit(autosurgeon::hydrate(doc).map_err(schema_err)?),
            DocKind::Territory => Document::Territory(autosurgeon::hydrate(doc).map_err(schema_err)?),
            DocKind::Plan => Document::Plan(autosurgeon::hydrate(doc).map_err(schema_err)?),
        })
    }

    /// Reconciles this value into an Automerge document (inside a transaction or an `AutoCommit`).
    pub fn reconcile_into<D: autosurgeon::Doc>(
        &self,
        doc: &mut D,
    ) -> Result<(), autosurgeon::ReconcileError> {
        match self {
            Document::Customer(d) => autosurgeon::reconcile(doc, d),
            Document::Visit(d) => autosurgeon::reconcile(doc, d),
            Document::Territory(d) => autosurgeon::reconcile(doc, d),
            Document::Plan(d) => autosurgeon::reconcile(doc, d),
        }
    }

    /// Who may read it. Customers: their owner and the reps of their territory, which the caller
    /// resolves (`territory_reps`) because it lives in another document.
    pub fn audience(&self, territory_reps: &dyn Fn(&str) -> Vec<String>) -> Audience {
        let mut users = match self {
            Document::Customer(c) => {
                let mut u: Vec<String> = c.owner_rep.iter().cloned().collect();
                if let Some(t) = &c.territory {
                    u.extend(territory_reps(t));
                }
                u
            }
            Document::Visit(v) => vec![v.rep.clone()],
            Document::Territory(t) => t.reps.clone(),
            Document::Plan(_) => return Audience::Team,
        };
        users.sort();
        users.dedup();
        Audience::Users(users)
    }

    /// Data validation: ids, ranges, finite numbers, lengths. Never panics.
    pub fn validate(&self) -> Result<(), DocError> {
        let (kind, schema, id) = match self {
            Document::Customer(d) => (&d.kind, d.schema, &d.id),
            Document::Visit(d) => (&d.kind, d.schema, &d.id),
            Document::Territory(d) => (&d.kind, d.schema, &d.id),
            Document::Plan(d) => (&d.kind, d.schema, &d.id),
        };
        if kind != self.kind().as_str() {
            return Err(DocError::invalid("kind", format!("{kind:?} in a {} document", self.kind())));
        }
        if schema == 0 || schema > SCHEMA_VERSION {
            return Err(DocError::invalid("schema", format!("unsupported version {schema}")));
        }
        validate_id("id", id)?;
        match self {
            Document::Customer(c) => {
                short_text("name", &c.name)?;
                if c.name.trim().is_empty() {
                    return Err(DocError::invalid("name", "must not be empty"));
                }
                if c.location.datum.len() > MAX_DATUM_LEN {
                    return Err(DocError::invalid("location.datum", "not a datum name"));
                }
                c.location.parsed("location")?;
                short_text("address", &c.address)?;
                validate_timezone(&c.timezone)?;
                max_count("opening_hours", c.opening_hours.len(), MAX_OPENING_HOURS)?;
                for (i, h) in c.opening_hours.iter().enumerate() {
                    if !(1..=7).contains(&h.weekday) || h.close_min > 24 * 60 || h.open_min >= h.close_min {
                        return Err(DocError::invalid(
                            format!("opening_hours[{i}]"),
                            "weekday 1..=7 and 0 <= open < close <= 1440 minutes",
                        ));
                    }
                }
                non_negative("potential_value", c.potential_value)?;
                if !(c.close_probability.is_finite() && (0.0..=1.0).contains(&c.close_probability)) {
                    return Err(DocError::invalid("close_probability", "must be within 0..=1"));
                }
                short_text("follow_up_status", &c.follow_up_status)?;
                short_text("opportunity_stage", &c.opportunity_stage)?;
                for (f, v) in [
                    ("owner_rep", &c.owner_rep),
                    ("territory", &c.territory),
                    ("tier_set_by", &c.tier_set_by),
                ] {
                    if let Some(v) = v {
                        validate_id(f, v)?;
                    }
                }
                if !c.phone.is_empty() {
                    normalized_phone(&c.phone).map_err(|e| DocError::invalid("phone", e))?;
                }
                max_count("tags", c.tags.len(), MAX_TAGS)?;
                for t in &c.tags {
                    short_text("tags", t)?;
                }
                notes_len(&c.notes)?;
                if let Some(g) = c.geofence_m
                    && !(g.is_finite() && g > 0.0 && g <= MAX_GEOFENCE_M)
                {
                    return Err(DocError::invalid(
                        "geofence_m",
                        format!("must be within (0, {MAX_GEOFENCE_M}] metres"),
                    ));
                }
                validate_id("created_by", &c.created_by)?;
            }
            Document::Visit(v) => {
                validate_id("customer_id", &v.customer_id)?;
                validate_id("rep", &v.rep)?;
                if v.planned_end_ms < v.planned_start_ms {
                    return Err(DocError::invalid("planned_end_ms", "ends before it starts"));
                }
                max_count("checkins", v.checkins.len(), MAX_CHECKINS_PER_VISIT)?;
                let mut seen = std::collections::BTreeSet::new();
                for (i, c) in v.checkins.iter().enumerate() {
                    let field = format!("checkins[{i}]");
                    validate_id(&field, &c.id)?;
                    if !seen.insert(c.id.as_str()) {
                        return Err(DocError::invalid(field, "duplicate check-in id"));
                    }
                    LatLon::new(c.lat, c.lon).map_err(|e| DocError::invalid(&field, e.to_string()))?;
                    non_negative(&format!("{field}.accuracy_m"), c.accuracy_m)?;
                }
                // Bounded like the check-ins. Which verdicts exist is the rules' business (only
                // the server writes them): a client's forged entry is refused and kept, not a
                // broken document.
                max_count("verification", v.verification.len(), MAX_CHECKINS_PER_VISIT)?;
                for (id, verdict) in &v.verification {
                    // The key itself may be huge: validate_id does not echo it.
                    validate_id("verification", id)?;
                    max_count(
                        &format!("verification[{id}].reasons"),
                        verdict.reasons.len(),
                        MAX_VERIFICATION_REASONS,
                    )?;
                    for r in &verdict.reasons {
                        short_text(&format!("verification[{id}].reasons.code"), &r.code)?;
                        short_text(&format!("verification[{id}].reasons.message"), &r.message)?;
                    }
                }
                if let Some(co) = &v.checkout {
                    short_text("checkout.outcome", &co.outcome)?;
                    notes_len_str("checkout.next_step", &co.next_step)?;
                }
                notes_len(&v.notes)?;
                validate_id("created_by", &v.created_by)?;
            }
            Document::Territory(t) => {
                short_text("name", &t.name)?;
                max_count("reps", t.reps.len(), MAX_TERRITORY_REPS)?;
                for r in &t.reps {
                    validate_id("reps", r)?;
                }
                max_count("polygons", t.polygons.len(), MAX_POLYGONS)?;
                for (i, ring) in t.polygons.iter().enumerate() {
                    max_count(&format!("polygons[{i}]"), ring.len(), MAX_RING_POINTS)?;
                    for p in ring {
                        LatLon::new(p.lat, p.lon)
                            .map_err(|e| DocError::invalid("polygons", e.to_string()))?;
                    }
                }
                max_count("sub_areas", t.sub_areas.len(), MAX_SUB_AREAS)?;
                for (i, s) in t.sub_areas.iter().enumerate() {
                    validate_id("sub_areas.id", &s.id)?;
                    short_text("sub_areas.name", &s.name)?;
                    let field = format!("sub_areas[{i}].customer_ids");
                    max_count(&field, s.customer_ids.len(), MAX_SUB_AREA_CUSTOMERS)?;
                    for c in &s.customer_ids {
                        validate_id(&field, c)?;
                    }
                }
            }
            Document::Plan(p) => {
                short_text("quarter", &p.quarter)?;
                max_count("quotas", p.quotas.len(), MAX_QUOTAS)?;
                for q in &p.quotas {
                    non_negative("quotas.amount", q.amount)?;
                    if let Some(r) = &q.rep {
                        validate_id("quotas.rep", r)?;
                    }
                }
                let c = &p.cadence;
                if [c.a_days, c.b_days, c.c_days].iter().any(|d| *d == 0 || *d > 366) {
                    return Err(DocError::invalid("cadence", "days must be within 1..=366"));
                }
                non_negative("thresholds.a_min_score", p.thresholds.a_min_score)?;
                non_negative("thresholds.b_min_score", p.thresholds.b_min_score)?;
                if !(p.focus_share.is_finite() && (0.0..=1.0).contains(&p.focus_share)) {
                    return Err(DocError::invalid("focus_share", "must be within 0..=1"));
                }
            }
        }
        Ok(())
    }
}

/// Ids are short and made of URL-safe characters, so they can be used in keys and paths as they are.
pub fn validate_id(field: &str, id: &str) -> Result<(), DocError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(DocError::invalid(field, format!("id must be 1..={MAX_ID_LEN} characters")));
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b':')) {
        return Err(DocError::invalid(field, "id may only contain A-Z a-z 0-9 - _ . @ :"));
    }
    Ok(())
}

fn max_count(field: &str, count: usize, max: usize) -> Result<(), DocError> {
    if count > max {
        return Err(DocError::invalid(field, format!("{count} entries, at most {max} allowed")));
    }
    Ok(())
}

/// A plausible IANA name ("Europe/Paris", "America/Argentina/Buenos_Aires", "UTC", "Etc/GMT+5"),
/// or empty (planning falls back to the rep's zone). Checked by shape, not against the time zone
/// database: a zone added to the database after this build must still be storable.
fn validate_timezone(tz: &str) -> Result<(), DocError> {
    let shaped = tz.len() <= MAX_TIMEZONE_LEN
        && tz.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'))
        && !tz.starts_with('/')
        && !tz.ends_with('/')
        && !tz.contains("//");
    if !shaped {
        return Err(DocError::invalid(
            "timezone",
            format!("not an IANA time zone name (at most {MAX_TIMEZONE_LEN} of A-Z a-z 0-9 / _ - +)"),
        ));
    }
    Ok(())
}

/// A phone number reduced to what identifies it: `+` and digits (`00` read as `+`), without the
/// spaces, dots, dashes and brackets people write; 6 to 15 digits.
///
/// ```
/// use fieldsync_core::docs::normalized_phone;
/// assert_eq!(normalized_phone("+33 (0)6 12-34.56.78").as_deref(), Ok("+330612345678"));
/// assert_eq!(normalized_phone("0033 6 12 34 56 78").as_deref(), Ok("+33612345678"));
/// assert!(normalized_phone("call me").is_err());
/// ```
pub fn normalized_phone(s: &str) -> Result<String, String> {
    if s.chars().count() > MAX_PHONE_LEN {
        return Err(format!("longer than {MAX_PHONE_LEN} characters"));
    }
    let t = s.trim();
    let (plus, rest) = match t.strip_prefix('+') {
        Some(r) => (true, r),
        None => match t.strip_prefix("00") {
            Some(r) => (true, r),
            None => (false, t),
        },
    };
    let mut out = String::from(if plus { "+" } else { "" });
    for c in rest.chars() {
        match c {
            '0'..='9' => out.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            other => return Err(format!("{other:?} is not part of a phone number")),
        }
    }
    let digits = out.len() - usize::from(plus);
    if !(6..=15).contains(&digits) {
        return Err(format!("{digits} digits: a phone number has 6 to 15"));
    }
    Ok(out)
}

fn short_text(field: &str, s: &str) -> Result<(), DocError> {
    if s.chars().count() > MAX_SHORT_TEXT {
        return Err(DocError::invalid(field, format!("longer than {MAX_SHORT_TEXT} characters")));
    }
    Ok(())
}

fn notes_len(t: &Text) -> Result<(), DocError> {
    notes_len_str("notes", t.as_str())
}

fn notes_len_str(field: &str, s: &str) -> Result<(), DocError> {
    if s.chars().count() > MAX_NOTES {
        return Err(DocError::invalid(field, format!("longer than {MAX_NOTES} characters")));
    }
    Ok(())
}

fn non_negative(field: &str, v: f64) -> Result<(), DocError> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(DocError::invalid(field, "must be a finite number >= 0"));
    }
    Ok(())
}

/// Longest piece of a key echoed in an error path: the key is attacker-chosen and may be megabytes.
const MAX_ECHOED_KEY: usize = 40;

/// Every map key anywhere in `doc` must be a field the typed schema reads.
///
/// Hydrating ignores keys the schema does not know, so without this check a device could store
/// anything under an unknown key (the rules compare typed values and would never see it) and every
/// other reader would download it. `typed` must be `doc` hydrated; the two are walked in parallel
/// (the typed side as JSON): each Automerge map key must exist in the JSON object at the same path,
/// lists must have the same length, and an object where the schema has a scalar is refused. Maps
/// with dynamic keys (`verification`) are objects in the JSON with the same keys, so they need no
/// special case.
///
/// Linear in the size of the document, never recursing deeper than the typed JSON (itself a
/// handful of levels), and never panics.
pub fn check_known_keys(doc: &Automerge, typed: &Document) -> Result<(), DocError> {
    let json = serde_json::to_value(typed)
        .map_err(|e| DocError::Schema { kind: typed.kind().to_string(), detail: e.to_string() })?;
    let mut path = String::new();
    walk_known(doc, &automerge::ROOT, ObjType::Map, &json, &mut path, typed.kind())
}

fn walk_known(
    doc: &Automerge,
    obj: &ObjId,
    obj_type: ObjType,
    json: &serde_json::Value,
    path: &mut String,
    kind: DocKind,
) -> Result<(), DocError> {
    let not_in_schema = |path: &str| DocError::InvalidField {
        field: if path.is_empty() { "<root>".to_string() } else { path.to_string() },
        reason: format!("not in the {kind} schema"),
    };
    match (obj_type, json) {
        (ObjType::Map | ObjType::Table, serde_json::Value::Object(fields)) => {
            for item in doc.map_range(obj, ..) {
                let key = item.key.as_ref();
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                push_truncated(path, key);
                let Some(field) = fields.get(key) else {
                    return Err(not_in_schema(path));
                };
                if let ValueRef::Object(child_type) = item.value {
                    walk_known(doc, &item.id(), child_type, field, path, kind)?;
                }
                path.truncate(len);
            }
            Ok(())
        }
        (ObjType::List, serde_json::Value::Array(items)) => {
            if doc.length(obj) != items.len() {
                return Err(DocError::InvalidField {
                    field: path.clone(),
                    reason: format!("list does not match the {kind} schema"),
                });
            }
            for (item, json_item) in doc.list_range(obj, ..).zip(items) {
                if let ValueRef::Object(child_type) = item.value {
                    let len = path.len();
                    path.push_str(&format!("[{}]", item.index));
                    walk_known(doc, &item.id(), child_type, json_item, path, kind)?;
                    path.truncate(len);
                }
            }
            Ok(())
        }
        (ObjType::Text, serde_json::Value::String(_)) => Ok(()),
        _ => Err(not_in_schema(path)),
    }
}

fn push_truncated(path: &mut String, key: &str) {
    match key.char_indices().nth(MAX_ECHOED_KEY) {
        None => path.push_str(key),
        Some((cut, _)) => {
            path.push_str(&key[..cut]);
            path.push('…');
        }
    }
}

/// Reads just the root `kind` of a document, for callers that must route before hydrating.
pub fn kind_of(doc: &Automerge) -> Option<DocKind> {
    match doc.get(automerge::ROOT, "kind") {
        Ok(Some((automerge::Value::Scalar(s), _))) => match s.as_ref() {
            automerge::ScalarValue::Str(k) => k.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

// Notes cross the FFI as plain strings; edits made through the typed API are diffed into the Text.
#[cfg(feature = "uniffi")]
uniffi::custom_type!(Text, String, {
    remote,
    lower: |t| t.as_str().to_string(),
    try_lift: |s| Ok(Text::with_value(s)),
});

/// serde for autosurgeon's `Text`, as a plain string (JSON views, rule diffs).
pub(crate) mod text_serde {
    use autosurgeon::Text;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Text, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Text::with_value(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_visit() -> Visit {
        Visit {
            notes: Text::with_value("hello"),
            ..Visit::planned("visit-1", "cust-1", "alice", 1_000, 2_000)
        }
    }

    #[test]
    fn the_constructors_make_valid_documents() {
        let docs = [
            Document::Customer(Customer::new("cust-1", "Boulangerie", GeoPoint::wgs84(45.0, 4.0), "alice")),
            Document::Visit(Visit::planned("visit-1", "cust-1", "alice", 1_000, 2_000)),
            Document::Territory(Territory::new("terr-1", "Lyon", vec!["alice".into()])),
            Document::Plan(Plan::new(
                "plan-1",
                "2026-Q4",
                Cadence { a_days: 7, b_days: 14, c_days: 30 },
                TierThresholds { a_min_score: 10.0, b_min_score: 1.0 },
            )),
        ];
        for d in docs {
            assert_eq!(d.validate(), Ok(()), "{d:?}");
        }
        let mut v = Visit::planned("visit-1", "cust-1", "alice", 1_000, 2_000);
        v.checkins.push(Checkin::new("ci-1", 45.0, 4.0, 5.0, 1_500));
        assert_eq!(Document::Visit(v).validate(), Ok(()));
    }

    #[test]
    fn a_visit_round_trips_through_automerge() {
        let v = Document::Visit(sample_visit());
        let mut doc = automerge::AutoCommit::new();
        v.reconcile_into(&mut doc).unwrap();
        let back = Document::hydrate(doc.document()).unwrap();
        assert_eq!(back, v);
        assert_eq!(kind_of(doc.document()), Some(DocKind::Visit));
    }

    #[test]
    fn a_newer_schema_is_refused_with_a_clear_error() {
        let mut v = sample_visit();
        v.schema = SCHEMA_VERSION + 1;
        let mut doc = automerge::AutoCommit::new();
        autosurgeon::reconcile(&mut doc, &v).unwrap();
        assert!(matches!(Document::hydrate(doc.document()), Err(DocError::SchemaTooNew { .. })));
    }

    #[test]
    fn an_unknown_kind_is_refused() {
        let mut doc = automerge::AutoCommit::new();
        use automerge::transaction::Transactable;
        doc.put(automerge::ROOT, "kind", "spaceship").unwrap();
        doc.put(automerge::ROOT, "schema", 1_u64).unwrap();
        assert!(matches!(Document::hydrate(doc.document()), Err(DocError::UnknownKind(_))));
    }

    #[test]
    fn nan_and_out_of_range_coordinates_fail_validation() {
        let mut v = sample_visit();
        v.checkins.push(Checkin::new("c1", f64::NAN, 2.0, 5.0, 0));
        assert!(Document::Visit(v.clone()).validate().is_err());
        v.checkins[0].lat = 123.0;
        assert!(Document::Visit(v.clone()).validate().is_err());
        v.checkins[0].lat = 45.0;
        assert!(Document::Visit(v).validate().is_ok());
    }

    fn sample_customer() -> Customer {
        Customer {
            kind: "customer".into(),
            schema: SCHEMA_VERSION,
            id: "cust-1".into(),
            name: "Boulangerie".into(),
            location: GeoPoint::wgs84(45.76, 4.83),
            address: "1 place Bellecour".into(),
            phone: "+33 4 78 00 00 00".into(),
            timezone: "Europe/Paris".into(),
            opening_hours: vec![OpeningHours { weekday: 1, open_min: 480, close_min: 1080 }],
            potential_value: 1000.0,
            close_probability: 0.5,
            tier: Some(Tier::B),
            tier_set_by: Some("maria".into()),
            tier_set_at_ms: Some(5),
            follow_up_status: "none".into(),
            opportunity_stage: "qualification".into(),
            owner_rep: Some("alice".into()),
            territory: Some("terr-1".into()),
            tags: vec!["bakery".into(), "organic".into()],
            notes: "likes croissants".into(),
            geofence_m: Some(500.0),
            created_by: "server".into(),
        }
    }

    fn checkin(id: &str) -> Checkin {
        Checkin::new(id, 45.0, 4.0, 5.0, 7)
    }

    fn full_visit() -> Visit {
        let mut v = sample_visit();
        v.state = VisitState::Completed;
        v.checkins = vec![checkin("ci-1"), checkin("ci-2")];
        v.checkout = Some(Checkout { device_time_ms: 9, outcome: "order".into(), next_step: "call".into() });
        v.verification.insert(
            "ci-1".into(),
            CheckinVerification {
                status: VerificationStatus::Flagged,
                distance_m: 600.0,
                reasons: vec![FlagReason { code: "outside_fence".into(), message: "600 m".into() }],
                received_at_ms: 10,
                review: Some(CheckinReview {
                    decision: ReviewDecision::Approved,
                    by: "maria".into(),
                    comment: "the shop moved across the street".into(),
                    at_ms: 11,
                }),
            },
        );
        v
    }

    fn sample_territory() -> Territory {
        Territory {
            kind: "territory".into(),
            schema: SCHEMA_VERSION,
            id: "terr-1".into(),
            name: "Lyon".into(),
            reps: vec!["alice".into(), "bob".into()],
            polygons: vec![vec![
                LatLonPoint { lat: 45.0, lon: 4.0 },
                LatLonPoint { lat: 46.0, lon: 4.0 },
                LatLonPoint { lat: 46.0, lon: 5.0 },
            ]],
            sub_areas: vec![SubArea {
                id: "sa-1".into(),
                name: "North".into(),
                customer_ids: vec!["cust-1".into()],
            }],
        }
    }

    fn sample_plan() -> Plan {
        Plan {
            kind: "plan".into(),
            schema: SCHEMA_VERSION,
            id: "plan-1".into(),
            quarter: "2026-Q4".into(),
            quotas: vec![
                Quota { rep: Some("alice".into()), tier: Tier::A, amount: 3.0 },
                Quota { rep: None, tier: Tier::C, amount: 10.0 },
            ],
            cadence: Cadence { a_days: 7, b_days: 14, c_days: 30 },
            thresholds: TierThresholds { a_min_score: 10.0, b_min_score: 1.0 },
            focus_share: 0.8,
        }
    }

    fn all_samples() -> Vec<Document> {
        let mut empty_customer = sample_customer();
        (empty_customer.tier, empty_customer.tier_set_by, empty_customer.geofence_m) = (None, None, None);
        empty_customer.tags.clear();
        vec![
            Document::Customer(sample_customer()),
            Document::Customer(empty_customer),
            Document::Visit(sample_visit()),
            Document::Visit(full_visit()),
            Document::Territory(sample_territory()),
            Document::Plan(sample_plan()),
        ]
    }

    fn automerge_of(d: &Document) -> automerge::AutoCommit {
        let mut doc = automerge::AutoCommit::new();
        d.reconcile_into(&mut doc).unwrap();
        doc
    }

    /// Hydrates and checks, as the server does with a pushed document.
    fn known_keys(doc: &mut automerge::AutoCommit) -> Result<(), DocError> {
        let typed = Document::hydrate(doc.document())?;
        check_known_keys(doc.document(), &typed)
    }

    #[test]
    fn every_sample_document_is_valid_and_has_only_known_keys() {
        for d in all_samples() {
            assert_eq!(d.validate(), Ok(()), "{d:?}");
            let mut doc = automerge_of(&d);
            assert_eq!(known_keys(&mut doc), Ok(()), "{d:?}");
            // Edited, shrunk and edited again, as documents are in use.
            let mut edited = d.clone();
            if let Document::Visit(v) = &mut edited {
                v.checkins.pop();
                v.verification.clear();
                v.notes.update("changed");
            }
            edited.reconcile_into(&mut doc).unwrap();
            assert_eq!(known_keys(&mut doc), Ok(()), "{edited:?}");
        }
    }

    #[test]
    fn keys_outside_the_schema_are_refused() {
        use automerge::transaction::Transactable;
        for d in all_samples() {
            let mut doc = automerge_of(&d);
            doc.put(automerge::ROOT, "payload", "x").unwrap();
            let err = known_keys(&mut doc).unwrap_err();
            assert_eq!(
                err,
                DocError::InvalidField {
                    field: "payload".into(),
                    reason: format!("not in the {} schema", d.kind())
                }
            );
        }

        // Inside a check-in, found by walking into the list.
        let mut doc = automerge_of(&Document::Visit(full_visit()));
        let checkins = match doc.get(automerge::ROOT, "checkins").unwrap() {
            Some((automerge::Value::Object(ObjType::List), id)) => id,
            other => panic!("{other:?}"),
        };
        let second = match doc.get(&checkins, 1).unwrap() {
            Some((automerge::Value::Object(ObjType::Map), id)) => id,
            other => panic!("{other:?}"),
        };
        doc.put(&second, "selfie", "...").unwrap();
        assert_eq!(
            known_keys(&mut doc),
            Err(DocError::invalid("checkins[1].selfie", "not in the visit schema"))
        );

        // A map where the schema has a scalar.
        let mut doc = automerge_of(&Document::Customer(sample_customer()));
        doc.put_object(automerge::ROOT, "extra", ObjType::Map).unwrap();
        assert!(known_keys(&mut doc).is_err());
    }

    #[test]
    fn a_megabyte_key_is_refused_without_being_echoed() {
        use automerge::transaction::Transactable;
        let mut doc = automerge_of(&Document::Customer(sample_customer()));
        let key = "k".repeat(1 << 20);
        doc.put(automerge::ROOT, key.as_str(), 1_u64).unwrap();
        match known_keys(&mut doc) {
            Err(DocError::InvalidField { field, reason }) => {
                assert!(field.starts_with("kkkk") && field.chars().count() <= MAX_ECHOED_KEY + 1, "{field}");
                assert_eq!(reason, "not in the customer schema");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_document_that_does_not_match_its_typed_form_is_refused() {
        let mut doc = automerge_of(&Document::Visit(full_visit()));
        let mut fewer = full_visit();
        fewer.checkins.pop();
        assert!(check_known_keys(doc.document(), &Document::Visit(fewer)).is_err());
        let mut no_verdicts = full_visit();
        no_verdicts.verification.clear();
        assert_eq!(
            check_known_keys(doc.document(), &Document::Visit(no_verdicts)),
            Err(DocError::invalid("verification.ci-1", "not in the visit schema"))
        );
    }

    fn field_of(r: Result<(), DocError>) -> String {
        match r {
            Err(DocError::InvalidField { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn sizes_are_bounded() {
        let mut v = full_visit();
        v.verification.clear();
        v.checkins = (0..MAX_CHECKINS_PER_VISIT).map(|i| checkin(&format!("ci-{i}"))).collect();
        assert_eq!(Document::Visit(v.clone()).validate(), Ok(()));
        v.checkins.push(checkin("one-too-many"));
        assert_eq!(field_of(Document::Visit(v).validate()), "checkins");

        let mut v = full_visit();
        v.created_by = "a".repeat(10 << 20);
        assert_eq!(field_of(Document::Visit(v).validate()), "created_by");
        let mut c = sample_customer();
        c.created_by = String::new();
        assert_eq!(field_of(Document::Customer(c).validate()), "created_by");

        let mut c = sample_customer();
        c.tags = (0..MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert_eq!(Document::Customer(c.clone()).validate(), Ok(()));
        c.tags.push("one-too-many".into());
        assert_eq!(field_of(Document::Customer(c).validate()), "tags");

        let mut c = sample_customer();
        c.geofence_m = Some(MAX_GEOFENCE_M);
        assert_eq!(Document::Customer(c.clone()).validate(), Ok(()));
        c.geofence_m = Some(MAX_GEOFENCE_M + 1.0);
        assert_eq!(field_of(Document::Customer(c).validate()), "geofence_m");

        let mut c = sample_customer();
        c.opening_hours = vec![OpeningHours { weekday: 1, open_min: 1, close_min: 2 }; MAX_OPENING_HOURS + 1];
        assert_eq!(field_of(Document::Customer(c).validate()), "opening_hours");

        for bad in ["Europe//Paris", "/etc/passwd", "Europe/Paris ", &"A".repeat(MAX_TIMEZONE_LEN + 1)] {
            let mut c = sample_customer();
            c.timezone = bad.into();
            assert_eq!(field_of(Document::Customer(c).validate()), "timezone", "{bad:?}");
        }
        for good in ["", "UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+5"] {
            let mut c = sample_customer();
            c.timezone = good.into();
            assert_eq!(Document::Customer(c).validate(), Ok(()), "{good:?}");
        }

        let mut c = sample_customer();
        c.location.datum = "w".repeat(1 << 20);
        assert_eq!(field_of(Document::Customer(c).validate()), "location.datum");

        let mut t = sample_territory();
        t.polygons[0] = vec![LatLonPoint { lat: 1.0, lon: 1.0 }; MAX_RING_POINTS + 1];
        assert_eq!(field_of(Document::Territory(t).validate()), "polygons[0]");
        let mut t = sample_territory();
        t.reps = (0..=MAX_TERRITORY_REPS).map(|i| format!("rep-{i}")).collect();
        assert_eq!(field_of(Document::Territory(t).validate()), "reps");
        let mut t = sample_territory();
        t.sub_areas[0].customer_ids.push("a b".into());
        assert_eq!(field_of(Document::Territory(t).validate()), "sub_areas[0].customer_ids");

        let mut p = sample_plan();
        p.quotas = vec![p.quotas[0].clone(); MAX_QUOTAS + 1];
        assert_eq!(field_of(Document::Plan(p).validate()), "quotas");
    }

    #[test]
    fn verification_entries_belong_to_check_ins() {
        let mut v = full_visit();
        let verdict = v.verification["ci-1"].clone();
        v.verification.insert("a key/with a slash".into(), verdict.clone());
        assert_eq!(field_of(Document::Visit(v).validate()), "verification");

        let mut v = full_visit();
        for i in 0..MAX_CHECKINS_PER_VISIT {
            v.verification.insert(format!("ghost-{i}"), verdict.clone());
        }
        assert_eq!(field_of(Document::Visit(v).validate()), "verification");

        // A status outside the three does not even hydrate.
        let mut doc = automerge::AutoCommit::new();
        autosurgeon::reconcile_prop(&mut doc, automerge::ROOT, "status", "trusted").unwrap();
        let status: Result<VerificationStatus, _> =
            autosurgeon::hydrate_prop(&doc, automerge::ROOT, "status");
        assert!(status.is_err());
        autosurgeon::reconcile_prop(&mut doc, automerge::ROOT, "status", VerificationStatus::Flagged)
            .unwrap();
        let status: VerificationStatus = autosurgeon::hydrate_prop(&doc, automerge::ROOT, "status").unwrap();
        assert_eq!(status, VerificationStatus::Flagged);
        let stored: String = autosurgeon::hydrate_prop(&doc, automerge::ROOT, "status").unwrap();
        assert_eq!(stored, "flagged", "stored as its name, as before");

        let mut v = full_visit();
        v.verification.get_mut("ci-1").unwrap().reasons =
            vec![verdict.reasons[0].clone(); MAX_VERIFICATION_REASONS + 1];
        assert_eq!(field_of(Document::Visit(v).validate()), "verification[ci-1].reasons");
    }

    proptest::proptest! {
        #[test]
        fn a_stray_key_anywhere_in_a_visit_is_found(
            checkins in 1usize..8,
            verdicts in proptest::collection::vec(proptest::bool::ANY, 8),
            key in "[a-z_]{1,12}",
            inside in proptest::option::of(0usize..8),
        ) {
            use automerge::transaction::Transactable;
            let mut v = full_visit();
            v.checkins = (0..checkins).map(|i| checkin(&format!("ci-{i}"))).collect();
            let template = v.verification["ci-1"].clone();
            v.verification = (0..checkins)
                .filter(|i| verdicts[*i])
                .map(|i| (format!("ci-{i}"), template.clone()))
                .collect();
            let d = Document::Visit(v);
            proptest::prop_assert_eq!(d.validate(), Ok(()));
            let mut doc = automerge_of(&d);
            proptest::prop_assert_eq!(known_keys(&mut doc), Ok(()));

            let json = serde_json::to_value(&d).unwrap();
            let (obj, known) = match inside {
                None => (automerge::ROOT, json.as_object().unwrap().clone()),
                Some(i) => {
                    let i = i % checkins;
                    let list = doc.get(automerge::ROOT, "checkins").unwrap().unwrap().1;
                    (doc.get(&list, i).unwrap().unwrap().1, json["checkins"][i].as_object().unwrap().clone())
                }
            };
            proptest::prop_assume!(!known.contains_key(&key));
            doc.put(&obj, key.as_str(), "stray").unwrap();
            let refused = matches!(
                known_keys(&mut doc),
                Err(DocError::InvalidField { field, .. }) if field.ends_with(&key)
            );
            proptest::prop_assert!(refused);
        }
    }

    #[test]
    fn ids_with_path_characters_are_refused() {
        assert!(validate_id("id", "a/b").is_err());
        assert!(validate_id("id", "").is_err());
        assert!(validate_id("id", "visit-1b2c").is_ok());
    }

    /// Notes as they round-trip through a stored document: hydrated, edited, reconciled, read back.
    fn notes_after(old: &str, new: &str, edit: fn(&mut Text, &str)) -> (String, usize) {
        let mut c = Customer::new("c-1", "Boulangerie", GeoPoint::wgs84(45.76, 4.83), "alice");
        c.notes = Text::with_value(old);
        let mut doc = automerge_of(&Document::Customer(c));
        doc.commit();
        let mut held: Customer = autosurgeon::hydrate(&doc).expect("hydrate");
        edit(&mut held.notes, new);
        let before = doc.get_heads();
        autosurgeon::reconcile(&mut doc, &held).expect("reconcile");
        doc.commit();
        let ops: usize = doc.get_changes(&before).iter().map(|c| c.len()).sum();
        let back: Customer = autosurgeon::hydrate(&doc).expect("hydrate again");
        (back.notes.as_str().to_string(), ops)
    }

    #[test]
    fn notes_typed_into_an_empty_field_read_back_as_typed() {
        for (old, new) in [
            ("", " "),
            ("", "Met the owner."),
            ("Met the owner.", ""),
            ("ab", "ba"),
            ("a a aéé a éééa 😀é", " "),
        ] {
            assert_eq!(notes_after(old, new, |t, n| t.update(n)).0, new, "update {old:?} → {new:?}");
            assert_eq!(notes_after(old, new, set_text).0, new, "set_text {old:?} → {new:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn notes_set_by_runs_read_back_as_written(
            old in "[a-cé😀 ]{0,40}",
            new in "[a-cé😀 ]{0,40}",
        ) {
            let (notes, _) = notes_after(&old, &new, set_text);
            proptest::prop_assert_eq!(notes, new);
        }
    }
}
