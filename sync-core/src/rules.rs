//! Who may change what.
//!
//! The server decides what is true: a pushed change is applied to a copy of the document and the
//! typed state before and after is compared field by field against the author's role. The device
//! library runs the very same function before it writes, so honest clients are rarely rejected.

use serde::{Deserialize, Serialize};

/// The role a token grants inside its team.
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Rep,
    Manager,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Rep => "rep",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }

    /// Managers and admins read and sync the whole team.
    pub fn sees_whole_team(self) -> bool {
        matches!(self, Role::Manager | Role::Admin)
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rep" => Ok(Role::Rep),
            "manager" => Ok(Role::Manager),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?} (expected rep, manager or admin)")),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller: the team it belongs to, its user id and its role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    pub team: String,
    pub user: String,
    pub role: Role,
}

use crate::docs::{Document, VisitState};

/// Why an edit is not allowed. Kept with the refused changes and shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct Violation {
    /// Machine-readable: `forbidden_kind`, `not_assigned`, `forbidden_field`, `append_only`,
    /// `server_field`, `immutable_field`, `bad_transition`, `wrong_owner`.
    pub code: String,
    pub field: Option<String>,
    pub message: String,
}

impl Violation {
    fn new(code: &str, field: Option<&str>, message: impl Into<String>) -> Self {
        Violation { code: code.to_string(), field: field.map(str::to_string), message: message.into() }
    }
}

/// Top-level fields whose values differ between two documents of the same kind.
pub fn changed_fields(before: &Document, after: &Document) -> Vec<String> {
    let (Ok(serde_json::Value::Object(b)), Ok(serde_json::Value::Object(a))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return vec!["<document>".into()];
    };
    let mut fields: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

/// May `who` turn `before` (None: the document is being created) into `after`?
///
/// `assigned` says whether the customer is assigned to `who` (its owner or a rep of its territory)
/// as the server knows it; the caller resolves it because territories live in other documents.
pub fn check_edit(
    who: &Principal,
    before: Option<&Document>,
    after: &Document,
    assigned: bool,
) -> Result<(), Violation> {
    if let Some(before) = before {
        if before.kind() != after.kind() {
            return Err(Violation::new(
                "immutable_field",
                Some("kind"),
                "the kind of a document never changes",
            ));
        }
        if before.id() != after.id() {
            return Err(Violation::new("immutable_field", Some("id"), "the id of a document never changes"));
        }
    }
    if who.role == Role::Admin {
        return Ok(());
    }
    // Check-ins and their verification are evidence: nobody but the server rewrites them.
    if let (Some(Document::Visit(b)), Document::Visit(a)) = (before, after) {
        if a.checkins.len() < b.checkins.len() || a.checkins[..b.checkins.len()] != b.checkins[..] {
            return Err(Violation::new(
                "append_only",
                Some("checkins"),
                "check-ins are append-only: an existing check-in was changed or removed",
            ));
        }
        if a.verification != b.verification {
            return Err(Violation::new(
                "server_field",
                Some("verification"),
                "check-in verification is written by the server only",
            ));
        }
    }
    if let (None, Document::Visit(a)) = (before, after)
        && !a.verification.is_empty()
    {
        return Err(Violation::new(
            "server_field",
            Some("verification"),
            "check-in verification is written by the server only",
        ));
    }
    if let Document::Customer(a) = after {
        let tier_changed = match before {
            Some(Document::Customer(b)) => b.tier != a.tier,
            _ => a.tier.is_some(),
        };
        if tier_changed && who.role == Role::Manager && a.tier_set_by.as_deref() != Some(who.user.as_str()) {
            return Err(Violation::new(
                "forbidden_field",
                Some("tier_set_by"),
                "a tier override records who set it: tier_set_by must be you",
            ));
        }
    }
    match who.role {
        Role::Admin | Role::Manager => Ok(()),
        Role::Rep => check_rep(who, before, after, assigned),
    }
}

fn check_rep(
    who: &Principal,
    before: Option<&Document>,
    after: &Document,
    assigned: bool,
) -> Result<(), Violation> {
    let me = who.user.as_str();
    match (before, after) {
        (_, Document::Territory(_)) | (_, Document::Plan(_)) => {
            Err(Violation::new("forbidden_kind", None, format!("a rep may not change a {}", after.kind())))
        }
        (None, Document::Customer(c)) => {
            if c.owner_rep.as_deref() != Some(me) {
                return Err(Violation::new(
                    "wrong_owner",
                    Some("owner_rep"),
                    "a prospect a rep creates is owned by that rep",
                ));
            }
            if c.tier.is_some() || c.tier_set_by.is_some() {
                return Err(Violation::new("forbidden_field", Some("tier"), "a rep may not set a tier"));
            }
            if c.territory.is_some() {
                return Err(Violation::new(
                    "forbidden_field",
                    Some("territory"),
                    "a rep may not set a territory",
                ));
            }
            Ok(())
        }
        (Some(b), Document::Customer(_)) => {
            if !assigned {
                return Err(Violation::new("not_assigned", None, "this customer is not assigned to you"));
            }
            only_fields(b, after, &["follow_up_status", "opportunity_stage", "notes"])
        }
        (None, Document::Visit(v)) => {
            if v.rep != me {
                return Err(Violation::new(
                    "wrong_owner",
                    Some("rep"),
                    "a rep plans visits for themself only",
                ));
            }
            Ok(())
        }
        (Some(b @ Document::Visit(bv)), Document::Visit(av)) => {
            if bv.rep != me {
                return Err(Violation::new("not_assigned", None, "this visit belongs to another rep"));
            }
            only_fields(
                b,
                after,
                &["planned_start_ms", "planned_end_ms", "state", "checkins", "checkout", "notes"],
            )?;
            let terminal = |s: VisitState| {
                matches!(s, VisitState::Completed | VisitState::Cancelled | VisitState::Missed)
            };
            if bv.state != av.state && terminal(bv.state) {
                return Err(Violation::new(
                    "bad_transition",
                    Some("state"),
                    format!("a {:?} visit cannot become {:?}", bv.state, av.state).to_lowercase(),
                ));
            }
            Ok(())
        }
        (Some(_), _) => {
            Err(Violation::new("immutable_field", Some("kind"), "the kind of a document never changes"))
        }
    }
}

fn only_fields(before: &Document, after: &Document, allowed: &[&str]) -> Result<(), Violation> {
    match changed_fields(before, after).into_iter().find(|f| !allowed.contains(&f.as_str())) {
        None => Ok(()),
        Some(field) => Err(Violation::new(
            "forbidden_field",
            Some(&field),
            format!("a rep may not change {field} of a {}", after.kind()),
        )),
    }
}
