//! A lead from another system (a CRM, a web form, a trade-fair scanner) as a prospect customer:
//! checked ([`check`]), matched against the team's customers by external id or phone
//! ([`find_duplicate`]), then either created ([`prospect`]: placed in the territory whose polygon
//! holds it and owned by that territory's first rep) or merged into the customer it duplicates
//! ([`fill`]: only what that customer lacks, so a lead never overwrites what the team wrote).
//!
//! A lead without an external id gets an id derived from its phone (or, without one, from its
//! name, place and source), so the same lead sent twice is the same customer.
//!
//! ```
//! use fieldsync_exchange::lead::{self, Lead};
//! let lead = Lead {
//!     name: "Boulangerie Martin".into(),
//!     phone: Some("+33 6 12 34 56 78".into()),
//!     lat: Some(45.76),
//!     lon: Some(4.83),
//!     source: "website".into(),
//!     ..Lead::default()
//! };
//! let checked = lead::check(&lead).unwrap();
//! assert_eq!(checked.phone_key.as_deref(), Some("+33612345678"));
//! let customer = lead::prospect(&checked, &[], "crm");
//! assert_eq!(customer.opportunity_stage, "prospecting");
//! assert!(customer.tags.contains(&"lead:website".to_string()));
//! ```

use fieldsync_core::docs::limits::{MAX_NOTES, MAX_SHORT_TEXT, MAX_TAGS};
use fieldsync_core::docs::{Customer, GeoPoint, Territory, normalized_phone, set_text, validate_id};
use fieldsync_core::geo::to_wgs84;
use fieldsync_core::index::CustomerRow;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Longest lead source name (`website`, `crm:salesforce`), in characters.
pub const MAX_SOURCE_LEN: usize = 64;
/// Longest note a lead brings, in characters.
pub const MAX_LEAD_NOTES: usize = 4_000;

/// A lead as another system sends it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lead {
    /// The business's name.
    pub name: String,
    /// The number to call; leads and customers with the same number are one customer.
    #[serde(default)]
    pub phone: Option<String>,
    /// The sending system's id of the lead: it becomes the customer's id, so a lead sent again
    /// merges into it.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Where the business is (with `lon`): the territory holding the point gets the lead.
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    /// `wgs84` (default) or `gcj02`.
    #[serde(default)]
    pub datum: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    /// Where the lead came from (`website`, `trade-fair`): tagged `lead:<source>`.
    pub source: String,
    /// What the sender knows (the web form's message).
    #[serde(default)]
    pub notes: Option<String>,
}

/// Why a lead was refused: the field and the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct LeadError {
    pub field: &'static str,
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> LeadError {
    LeadError { field, reason: reason.into() }
}

/// A lead that passed its checks.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedLead {
    /// The customer's id: the external id, or one derived from the lead.
    pub id: String,
    pub name: String,
    /// The phone as written (trimmed) and as matched.
    pub phone: String,
    pub phone_key: Option<String>,
    pub location: GeoPoint,
    pub address: String,
    pub source: String,
    pub notes: String,
}

impl CheckedLead {
    /// The tag every customer this lead reaches carries.
    pub fn source_tag(&self) -> String {
        format!("lead:{}", self.source)
    }
}

fn text(field: &'static str, s: &str, max: usize) -> Result<String, LeadError> {
    let t = s.trim();
    if t.chars().count() > max {
        return Err(refuse(field, format!("longer than {max} characters")));
    }
    if t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(refuse(field, "holds control characters"));
    }
    Ok(t.to_string())
}

/// Checks every field of `lead` against its bound, before anything is looked up.
pub fn check(lead: &Lead) -> Result<CheckedLead, LeadError> {
    let name = text("name", &lead.name, MAX_SHORT_TEXT)?;
    if name.is_empty() {
        return Err(refuse("name", "a lead needs a name"));
    }
    let source = text("source", &lead.source, MAX_SOURCE_LEN)?;
    if source.is_empty()
        || !source.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | ' '))
    {
        return Err(refuse("source", "a name such as website or trade-fair (letters, digits, - _ . :)"));
    }
    let phone = text("phone", lead.phone.as_deref().unwrap_or(""), MAX_SHORT_TEXT)?;
    let phone_key = match phone.as_str() {
        "" => None,
        p => Some(normalized_phone(p).map_err(|e| refuse("phone", e))?),
    };
    let external_id = match lead.external_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(id) => {
            validate_id("external_id", id).map_err(|e| refuse("external_id", e.to_string()))?;
            Some(id.to_string())
        }
    };
    let location = match (lead.lat, lead.lon) {
        (Some(lat), Some(lon)) => {
            let datum = lead.datum.as_deref().unwrap_or("wgs84").trim().to_string();
            let point = GeoPoint { lat, lon, datum };
            point.parsed("location").map_err(|e| refuse("lat/lon", e.to_string()))?;
            point
        }
        (None, None) => {
            return Err(refuse(
                "lat/lon",
                "a lead needs its position: this server has no geocoder, so an address alone cannot be placed in a territory",
            ));
        }
        _ => return Err(refuse("lat/lon", "both or neither")),
    };
    let address = text("address", lead.address.as_deref().unwrap_or(""), MAX_SHORT_TEXT)?;
    let notes = text("notes", lead.notes.as_deref().unwrap_or(""), MAX_LEAD_NOTES.min(MAX_NOTES))?;
    let id = match external_id {
        Some(id) => id,
        None => {
            let basis = match &phone_key {
                Some(p) => format!("phone\n{p}"),
                None => format!("lead\n{name}\n{}\n{}\n{source}", location.lat, location.lon),
            };
            let digest = Sha256::digest(basis.as_bytes());
            let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("lead-{hex}")
        }
    };
    Ok(CheckedLead { id, name, phone, phone_key, location, address, source, notes })
}

/// The customer `lead` duplicates: the one with its id, else the first with its phone.
pub fn find_duplicate<'a>(
    lead: &CheckedLead,
    rows: impl IntoIterator<Item = &'a CustomerRow>,
) -> Option<String> {
    let mut by_phone = None;
    for row in rows {
        if row.id == lead.id {
            return Some(row.id.clone());
        }
        if by_phone.is_none()
            && lead.phone_key.as_deref().is_some_and(|p| !row.phone.is_empty() && row.phone == p)
        {
            by_phone = Some(row.id.clone());
        }
    }
    by_phone
}

/// The prospect a new lead becomes, created by `by`: in the territory whose polygon holds it,
/// owned by that territory's first rep (none: a manager assigns it).
pub fn prospect(lead: &CheckedLead, territories: &[Territory], by: &str) -> Customer {
    let wgs = lead.location.parsed("location").map(|(p, d)| to_wgs84(p, d)).ok();
    let territory = wgs.and_then(|p| territories.iter().find(|t| t.covers(p.lat, p.lon)));
    let mut c = Customer {
        phone: lead.phone.clone(),
        address: lead.address.clone(),
        tags: vec!["lead".into(), lead.source_tag()],
        territory: territory.map(|t| t.id.clone()),
        owner_rep: territory.and_then(|t| t.reps.first().cloned()),
        ..Customer::new(&lead.id, &lead.name, lead.location.clone(), by)
    };
    if !lead.notes.is_empty() {
        set_text(&mut c.notes, &lead.notes);
    }
    c
}

/// Brings what `lead` knows that `c` lacks into `c` — a phone, an address, the source's tag, the
/// lead's notes — and names the fields it changed (none: the lead was merged already).
pub fn fill(c: &mut Customer, lead: &CheckedLead) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if c.phone.trim().is_empty() && !lead.phone.is_empty() {
        c.phone = lead.phone.clone();
        changed.push("phone");
    }
    if c.address.trim().is_empty() && !lead.address.is_empty() {
        c.address = lead.address.clone();
        changed.push("address");
    }
    let tag = lead.source_tag();
    if !c.tags.contains(&tag) && c.tags.len() < MAX_TAGS {
        c.tags.push(tag);
        changed.push("tags");
    }
    if !lead.notes.is_empty() && !c.notes.as_str().contains(&lead.notes) {
        let mut notes = c.notes.as_str().to_string();
        if !notes.is_empty() {
            notes.push('\n');
        }
        notes.push_str(&lead.notes);
        if notes.chars().count() <= MAX_NOTES {
            set_text(&mut c.notes, &notes);
            changed.push("notes");
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldsync_core::docs::{Document, LatLonPoint};
    use fieldsync_core::index::IndexRow;

    fn lead() -> Lead {
        Lead {
            name: "Boulangerie Martin".into(),
            phone: Some("06 12 34 56 78".into()),
            lat: Some(45.76),
            lon: Some(4.83),
            source: "website".into(),
            ..Lead::default()
        }
    }

    fn row(c: &Customer) -> CustomerRow {
        match IndexRow::of(&Document::Customer(c.clone()), 0) {
            Some(IndexRow::Customer(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn square(id: &str, rep: &str) -> Territory {
        let mut t = Territory::new(id, id, vec![rep.into()]);
        t.polygons = vec![vec![
            LatLonPoint { lat: 45.0, lon: 4.0 },
            LatLonPoint { lat: 46.0, lon: 4.0 },
            LatLonPoint { lat: 46.0, lon: 5.0 },
            LatLonPoint { lat: 45.0, lon: 5.0 },
        ]];
        t
    }

    #[test]
    fn a_new_lead_is_a_prospect_in_the_territory_holding_it_owned_by_its_rep() {
        let checked = check(&lead()).expect("valid");
        let mut far = square("far", "bob");
        for p in far.polygons.iter_mut().flatten() {
            p.lat += 1.5; // a degree and a half north: it does not hold Lyon
        }
        let c = prospect(&checked, &[far, square("t-lyon", "alice")], "crm");
        assert_eq!(c.territory.as_deref(), Some("t-lyon"));
        assert_eq!(c.owner_rep.as_deref(), Some("alice"));
        assert_eq!((c.created_by.as_str(), c.opportunity_stage.as_str()), ("crm", "prospecting"));
        assert!(Document::Customer(c.clone()).validate().is_ok(), "{c:?}");
        let nowhere = prospect(&checked, &[], "crm");
        assert_eq!((nowhere.territory, nowhere.owner_rep), (None, None));
    }

    #[test]
    fn the_same_lead_has_the_same_id_and_a_phone_written_otherwise_is_the_same_phone() {
        let a = check(&lead()).expect("valid");
        let b = check(&Lead { phone: Some("06-12-34-56-78".into()), name: "Martin".into(), ..lead() })
            .expect("valid");
        assert_eq!(a.id, b.id, "the id follows the phone");
        let with_id = check(&Lead { external_id: Some("crm-42".into()), ..lead() }).expect("valid");
        assert_eq!(with_id.id, "crm-42");
        let no_phone = Lead { phone: None, ..lead() };
        assert_eq!(check(&no_phone).expect("valid").id, check(&no_phone).expect("valid").id);
        assert_ne!(check(&no_phone).expect("valid").id, a.id);
    }

    #[test]
    fn a_duplicate_is_found_by_id_first_then_by_phone() {
        let checked = check(&lead()).expect("valid");
        let same_phone = Customer { phone: "06.12.34.56.78".into(), ..prospect(&checked, &[], "x") };
        let same_phone = Customer { id: "imported-1".into(), ..same_phone };
        let other = Customer { id: "c-2".into(), phone: "+33 4 00 00 00 00".into(), ..same_phone.clone() };
        let rows = [row(&other), row(&same_phone)];
        assert_eq!(find_duplicate(&checked, &rows).as_deref(), Some("imported-1"));
        let by_id = Customer { id: checked.id.clone(), phone: String::new(), ..other.clone() };
        let rows = [row(&same_phone), row(&by_id)];
        assert_eq!(find_duplicate(&checked, &rows).as_deref(), Some(checked.id.as_str()));
        let no_phone = check(&Lead { phone: None, ..lead() }).expect("valid");
        let blank = Customer { phone: String::new(), ..other };
        assert_eq!(find_duplicate(&no_phone, &[row(&blank)]), None, "no phone matches no phone");
    }

    #[test]
    fn a_merge_fills_only_what_the_customer_lacks_and_twice_changes_nothing() {
        let checked = check(&Lead {
            address: Some("3 rue Neuve".into()),
            notes: Some("wants a call".into()),
            ..lead()
        })
        .expect("valid");
        let mut c = Customer {
            address: "1 place Bellecour".into(),
            ..Customer::new("c-1", "Martin", GeoPoint::wgs84(45.7, 4.8), "maria")
        };
        set_text(&mut c.notes, "met in May");
        assert_eq!(fill(&mut c, &checked), vec!["phone", "tags", "notes"]);
        assert_eq!(c.address, "1 place Bellecour", "never overwritten");
        assert_eq!(c.notes.as_str(), "met in May\nwants a call");
        assert_eq!(fill(&mut c, &checked), Vec::<&str>::new());
    }

    #[test]
    fn every_field_is_checked_against_its_bound() {
        let refused = |l: Lead| check(&l).expect_err("refused").field;
        assert_eq!(refused(Lead { name: "  ".into(), ..lead() }), "name");
        assert_eq!(refused(Lead { name: "x".repeat(MAX_SHORT_TEXT + 1), ..lead() }), "name");
        assert_eq!(refused(Lead { phone: Some("call me".into()), ..lead() }), "phone");
        assert_eq!(refused(Lead { phone: Some("1".repeat(40)), ..lead() }), "phone");
        assert_eq!(refused(Lead { external_id: Some("a/b".into()), ..lead() }), "external_id");
        assert_eq!(refused(Lead { lat: Some(91.0), ..lead() }), "lat/lon");
        assert_eq!(refused(Lead { lat: Some(f64::NAN), ..lead() }), "lat/lon");
        assert_eq!(refused(Lead { lon: None, ..lead() }), "lat/lon");
        assert_eq!(
            refused(Lead { lat: None, lon: None, address: Some("1 rue".into()), ..lead() }),
            "lat/lon"
        );
        assert_eq!(refused(Lead { datum: Some("osgb36".into()), ..lead() }), "lat/lon");
        assert_eq!(refused(Lead { source: "".into(), ..lead() }), "source");
        assert_eq!(refused(Lead { source: "<script>".into(), ..lead() }), "source");
        assert_eq!(refused(Lead { source: "s".repeat(MAX_SOURCE_LEN + 1), ..lead() }), "source");
        assert_eq!(refused(Lead { address: Some("a\u{0}b".into()), ..lead() }), "address");
        assert_eq!(refused(Lead { notes: Some("n".repeat(MAX_LEAD_NOTES + 1)), ..lead() }), "notes");
        let gcj = check(&Lead { datum: Some("gcj02".into()), ..lead() }).expect("a Chinese map's point");
        assert_eq!(gcj.location.datum, "gcj02");
    }
}
