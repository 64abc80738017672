//! The typed documents: one Automerge document per entity.
//!
//! Each document carries its `kind` and a `schema` version at the root so that any reader can tell
//! what it holds without outside metadata, and readers accept older versions (fields added later are
//! `missing = "Default::default"`). Typed structs map to documents through autosurgeon's
//! `Hydrate`/`Reconcile`, which reconciles field by field, so concurrent edits of different fields merge
//! and notes (`Text`) merge character by character.

use std::collections::HashMap;

use automerge::{Automerge, ReadDoc};
use autosurgeon::{Hydrate, Reconcile, Text};
use serde::{Deserialize, Serialize};

use crate::geo::{Datum, LatLon};

/// The schema version this build writes. Readers accept this and every older version.
pub const SCHEMA_VERSION: u64 = 1;

/// Longest free text accepted in a single-line field (names, statuses).
const MAX_SHORT_TEXT: usize = 512;
/// Longest notes accepted (characters).
const MAX_NOTES: usize = 100_000;
/// Longest id accepted.
pub const MAX_ID_LEN: usize = 128;

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

#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Customer {
    pub kind: String,
    pub schema: u64,
    pub id: String,
    pub name: String,
    pub location: GeoPoint,
    pub address: String,
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
    /// "verified" | "flagged" | "invalid"
    pub status: String,
    pub distance_m: f64,
    pub reasons: Vec<FlagReason>,
    pub received_at_ms: i64,
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
                c.location.parsed("location")?;
                short_text("address", &c.address)?;
                short_text("timezone", &c.timezone)?;
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
                for t in &c.tags {
                    short_text("tags", t)?;
                }
                notes_len(&c.notes)?;
                if let Some(g) = c.geofence_m
                    && !(g.is_finite() && g > 0.0 && g <= 100_000.0)
                {
                    return Err(DocError::invalid("geofence_m", "must be within (0, 100 km]"));
                }
            }
            Document::Visit(v) => {
                validate_id("customer_id", &v.customer_id)?;
                validate_id("rep", &v.rep)?;
                if v.planned_end_ms < v.planned_start_ms {
                    return Err(DocError::invalid("planned_end_ms", "ends before it starts"));
                }
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
                if let Some(co) = &v.checkout {
                    short_text("checkout.outcome", &co.outcome)?;
                    notes_len_str("checkout.next_step", &co.next_step)?;
                }
                notes_len(&v.notes)?;
            }
            Document::Territory(t) => {
                short_text("name", &t.name)?;
                for r in &t.reps {
                    validate_id("reps", r)?;
                }
                for ring in &t.polygons {
                    for p in ring {
                        LatLon::new(p.lat, p.lon)
                            .map_err(|e| DocError::invalid("polygons", e.to_string()))?;
                    }
                }
                for s in &t.sub_areas {
                    validate_id("sub_areas.id", &s.id)?;
                    short_text("sub_areas.name", &s.name)?;
                }
            }
            Document::Plan(p) => {
                short_text("quarter", &p.quarter)?;
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
            kind: "visit".into(),
            schema: SCHEMA_VERSION,
            id: "visit-1".into(),
            customer_id: "cust-1".into(),
            rep: "alice".into(),
            planned_start_ms: 1_000,
            planned_end_ms: 2_000,
            state: VisitState::Planned,
            checkins: vec![],
            checkout: None,
            notes: Text::with_value("hello"),
            verification: HashMap::new(),
            created_by: "alice".into(),
        }
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
        v.checkins.push(Checkin {
            id: "c1".into(),
            lat: f64::NAN,
            lon: 2.0,
            accuracy_m: 5.0,
            device_time_ms: 0,
            mock_location: false,
        });
        assert!(Document::Visit(v.clone()).validate().is_err());
        v.checkins[0].lat = 123.0;
        assert!(Document::Visit(v.clone()).validate().is_err());
        v.checkins[0].lat = 45.0;
        assert!(Document::Visit(v).validate().is_ok());
    }

    #[test]
    fn ids_with_path_characters_are_refused() {
        assert!(validate_id("id", "a/b").is_err());
        assert!(validate_id("id", "").is_err());
        assert!(validate_id("id", "visit-1b2c").is_ok());
    }
}
