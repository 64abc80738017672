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
    /// Another system (a CRM, a web form) that may only create prospects through the server's
    /// lead intake; it reads and syncs nothing.
    Integration,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Rep => "rep",
            Role::Manager => "manager",
            Role::Admin => "admin",
            Role::Integration => "integration",
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
            "integration" => Ok(Role::Integration),
            other => Err(format!("unknown role {other:?} (expected rep, manager, admin or integration)")),
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

use crate::docs::{Document, Visit, VisitState};

/// Why an edit is not allowed, as a machine-readable code (serialized and sent as its snake_case
/// name: `forbidden_field`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationCode {
    /// A rep creating or changing a territory or a plan.
    ForbiddenKind,
    /// A document of another rep's.
    NotAssigned,
    /// A field the author's role may not change.
    ForbiddenField,
    /// Check-ins are evidence: never changed or removed.
    AppendOnly,
    /// A field only the server writes (`verification`).
    ServerField,
    /// `id`, `kind`, `created_by`.
    ImmutableField,
    /// A state change a visit cannot make.
    BadTransition,
    /// Created for, or in the name of, somebody else.
    WrongOwner,
    /// The document does not exist, or is outside the author's scope: the same answer for both.
    NotFound,
    /// The change does not fit the server's history: resync the document and retry.
    OutOfSync,
    /// A change authored with a server actor.
    ServerActor,
    /// Builds on a refused change.
    DependsOnRejected,
    /// Not checked: too many refused changes in one push (kept for review).
    NotChecked,
    /// The result is not a valid document.
    InvalidDocument,
}

impl ViolationCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationCode::ForbiddenKind => "forbidden_kind",
            ViolationCode::NotAssigned => "not_assigned",
            ViolationCode::ForbiddenField => "forbidden_field",
            ViolationCode::AppendOnly => "append_only",
            ViolationCode::ServerField => "server_field",
            ViolationCode::ImmutableField => "immutable_field",
            ViolationCode::BadTransition => "bad_transition",
            ViolationCode::WrongOwner => "wrong_owner",
            ViolationCode::NotFound => "not_found",
            ViolationCode::OutOfSync => "out_of_sync",
            ViolationCode::ServerActor => "server_actor",
            ViolationCode::DependsOnRejected => "depends_on_rejected",
            ViolationCode::NotChecked => "not_checked",
            ViolationCode::InvalidDocument => "invalid_document",
        }
    }
}

impl std::fmt::Display for ViolationCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ViolationCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Why an edit is not allowed. Kept with the refused changes and shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct Violation {
    pub code: ViolationCode,
    pub field: Option<String>,
    pub message: String,
}

impl Violation {
    pub fn new(code: ViolationCode, field: Option<&str>, message: impl Into<String>) -> Self {
        Violation { code, field: field.map(str::to_string), message: message.into() }
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

/// Check-ins and their verification are evidence: nobody but the server rewrites them, whatever
/// the caller's role. Check-ins are append-only and only the visit's rep adds one (the server
/// judges it as theirs, in their travel history: nobody may be placed somewhere by somebody
/// else); the verification is the server's alone.
fn evidence_is_kept(who: &Principal, before: Option<&Document>, after: &Document) -> Result<(), Violation> {
    if let (Some(Document::Visit(b)), Document::Visit(a)) = (before, after) {
        if a.checkins.len() < b.checkins.len() || a.checkins[..b.checkins.len()] != b.checkins[..] {
            return Err(Violation::new(
                ViolationCode::AppendOnly,
                Some("checkins"),
                "check-ins are append-only: an existing check-in was changed or removed",
            ));
        }
        if a.verification != b.verification {
            return Err(Violation::new(
                ViolationCode::ServerField,
                Some("verification"),
                "check-in verification is written by the server only",
            ));
        }
    }
    if let (None, Document::Visit(a)) = (before, after)
        && !a.verification.is_empty()
    {
        return Err(Violation::new(
            ViolationCode::ServerField,
            Some("verification"),
            "check-in verification is written by the server only",
        ));
    }
    if let Document::Visit(a) = after {
        let had = match before {
            Some(Document::Visit(b)) => b.checkins.len(),
            _ => 0,
        };
        if a.checkins.len() > had && a.rep != who.user {
            return Err(Violation::new(
                ViolationCode::WrongOwner,
                Some("checkins"),
                "a check-in is the presence of the visit's rep: only they add one",
            ));
        }
    }
    Ok(())
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
                ViolationCode::ImmutableField,
                Some("kind"),
                "the kind of a document never changes",
            ));
        }
        if before.id() != after.id() {
            return Err(Violation::new(
                ViolationCode::ImmutableField,
                Some("id"),
                "the id of a document never changes",
            ));
        }
    }
    // Evidence binds every role, admins included.
    evidence_is_kept(who, before, after)?;
    if who.role == Role::Admin {
        return Ok(());
    }
    // The server no longer fills in or trusts `created_by`: it must name the author, and it is
    // history, so it never changes.
    match before {
        None => {
            if let Some(created_by) = created_by(after)
                && created_by != who.user
            {
                return Err(Violation::new(
                    ViolationCode::WrongOwner,
                    Some("created_by"),
                    "created_by must be your own user id",
                ));
            }
        }
        Some(before) => {
            if created_by(before) != created_by(after) {
                return Err(Violation::new(
                    ViolationCode::ImmutableField,
                    Some("created_by"),
                    "the author of a document never changes",
                ));
            }
        }
    }
    if let Document::Customer(a) = after {
        // The signature is checked whenever the tier or the signature changes: nobody puts
        // another's name on a tier.
        let signed_anew = match before {
            Some(Document::Customer(b)) => b.tier != a.tier || b.tier_set_by != a.tier_set_by,
            _ => a.tier.is_some() || a.tier_set_by.is_some(),
        };
        if signed_anew && who.role == Role::Manager && a.tier_set_by.as_deref() != Some(who.user.as_str()) {
            return Err(Violation::new(
                ViolationCode::ForbiddenField,
                Some("tier_set_by"),
                "a tier override records who set it: tier_set_by must be you",
            ));
        }
    }
    match who.role {
        Role::Admin | Role::Manager => Ok(()),
        Role::Rep => check_rep(who, before, after, assigned),
        Role::Integration => Err(Violation::new(
            ViolationCode::ForbiddenKind,
            None,
            "an integration creates leads through the server's lead intake only",
        )),
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
        (_, Document::Territory(_)) | (_, Document::Plan(_)) => Err(Violation::new(
            ViolationCode::ForbiddenKind,
            None,
            format!("a rep may not change a {}", after.kind()),
        )),
        (None, Document::Customer(c)) => {
            if c.owner_rep.as_deref() != Some(me) {
                return Err(Violation::new(
                    ViolationCode::WrongOwner,
                    Some("owner_rep"),
                    "a prospect a rep creates is owned by that rep",
                ));
            }
            if c.tier.is_some() || c.tier_set_by.is_some() {
                return Err(Violation::new(
                    ViolationCode::ForbiddenField,
                    Some("tier"),
                    "a rep may not set a tier",
                ));
            }
            if c.territory.is_some() {
                return Err(Violation::new(
                    ViolationCode::ForbiddenField,
                    Some("territory"),
                    "a rep may not set a territory",
                ));
            }
            // The fence decides whether the rep's own check-ins pass.
            if c.geofence_m.is_some() {
                return Err(Violation::new(
                    ViolationCode::ForbiddenField,
                    Some("geofence_m"),
                    "a rep may not set a customer's geofence",
                ));
            }
            Ok(())
        }
        (Some(b), Document::Customer(_)) => {
            if !assigned {
                return Err(Violation::new(
                    ViolationCode::NotAssigned,
                    None,
                    "this customer is not assigned to you",
                ));
            }
            only_fields(b, after, &["follow_up_status", "opportunity_stage", "notes", "phone"])
        }
        (None, Document::Visit(v)) => {
            if v.rep != me {
                return Err(Violation::new(
                    ViolationCode::WrongOwner,
                    Some("rep"),
                    "a rep plans visits for themself only",
                ));
            }
            visited_before_done(v)
        }
        (Some(b @ Document::Visit(bv)), Document::Visit(av)) => {
            if bv.rep != me {
                return Err(Violation::new(
                    ViolationCode::NotAssigned,
                    None,
                    "this visit belongs to another rep",
                ));
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
                    ViolationCode::BadTransition,
                    Some("state"),
                    format!("a {:?} visit cannot become {:?}", bv.state, av.state).to_lowercase(),
                ));
            }
            if bv.state != av.state {
                visited_before_done(av)?;
            }
            // The outcome a rep reported is the record of the visit: checked out once.
            if bv.checkout.is_some() && bv.checkout != av.checkout {
                return Err(Violation::new(
                    ViolationCode::ImmutableField,
                    Some("checkout"),
                    "this visit is checked out already: its outcome is final",
                ));
            }
            Ok(())
        }
        (Some(_), _) => Err(Violation::new(
            ViolationCode::ImmutableField,
            Some("kind"),
            "the kind of a document never changes",
        )),
    }
}

fn created_by(doc: &Document) -> Option<&str> {
    match doc {
        Document::Customer(c) => Some(&c.created_by),
        Document::Visit(v) => Some(&v.created_by),
        Document::Territory(_) | Document::Plan(_) => None,
    }
}

/// A rep's visit is only checked in or completed with a check-in: a completed visit counts as a
/// contact for the cadence (`fieldsync-planning`'s `allocation`), so completing one from the sofa would fake
/// the rep's coverage. The one exception is the remote contact the planning relies on (far C
/// customers served by phone): completed with a check-out outcome starting with "remote".
fn visited_before_done(v: &Visit) -> Result<(), Violation> {
    let needs_checkin = match v.state {
        VisitState::CheckedIn => true,
        VisitState::Completed => !v.is_remote_contact(),
        VisitState::Planned | VisitState::Cancelled | VisitState::Missed => false,
    };
    if needs_checkin && v.checkins.is_empty() {
        return Err(Violation::new(
            ViolationCode::BadTransition,
            Some("state"),
            format!(
                "a visit without a check-in cannot be {} (a remote contact is completed with an outcome starting with \"remote\")",
                if v.state == VisitState::CheckedIn { "checked in" } else { "completed" }
            ),
        ));
    }
    Ok(())
}

fn only_fields(before: &Document, after: &Document, allowed: &[&str]) -> Result<(), Violation> {
    match changed_fields(before, after).into_iter().find(|f| !allowed.contains(&f.as_str())) {
        None => Ok(()),
        Some(field) => Err(Violation::new(
            ViolationCode::ForbiddenField,
            Some(&field),
            format!("a rep may not change {field} of a {}", after.kind()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docs::{Checkin, Checkout, Customer, GeoPoint, Visit};

    fn who(user: &str, role: Role) -> Principal {
        Principal { team: "acme".into(), user: user.into(), role }
    }

    fn prospect(owner: &str) -> Customer {
        Customer {
            timezone: "Europe/Paris".into(),
            close_probability: 0.5,
            follow_up_status: String::new(),
            opportunity_stage: String::new(),
            owner_rep: Some(owner.into()),
            ..Customer::new("cust-new", "New shop", GeoPoint::wgs84(45.0, 4.0), owner)
        }
    }

    fn visit(rep: &str, state: VisitState) -> Visit {
        Visit { state, ..Visit::planned("visit-1", "cust-1", rep, 0, 1) }
    }

    fn checked_in(mut v: Visit) -> Visit {
        v.checkins.push(Checkin::new("ci-1", 45.0, 4.0, 5.0, 1));
        v
    }

    fn checked_out(mut v: Visit, outcome: &str) -> Visit {
        v.checkout = Some(Checkout { device_time_ms: 2, outcome: outcome.into(), next_step: String::new() });
        v
    }

    fn code(r: Result<(), Violation>) -> Option<(String, Option<String>)> {
        r.err().map(|v| (v.code.as_str().to_string(), v.field))
    }

    /// What the rules say of `who` turning `before`, a visit assigned to them, into `after`.
    fn visit_edit(who: &Principal, before: &Visit, after: &Visit) -> Option<(String, Option<String>)> {
        code(check_edit(who, Some(&Document::Visit(before.clone())), &Document::Visit(after.clone()), true))
    }

    fn violation(code: &str, field: &str) -> Option<(String, Option<String>)> {
        Some((code.into(), Some(field.into())))
    }

    #[test]
    fn a_rep_may_not_set_or_change_a_customers_geofence() {
        let alice = who("alice", Role::Rep);
        let plain = Document::Customer(prospect("alice"));
        assert_eq!(code(check_edit(&alice, None, &plain, false)), None);

        let mut fenced = prospect("alice");
        fenced.geofence_m = Some(100_000.0);
        let fenced = Document::Customer(fenced);
        assert_eq!(
            code(check_edit(&alice, None, &fenced, false)),
            violation("forbidden_field", "geofence_m")
        );
        // Not on their own prospect afterwards either.
        assert_eq!(
            code(check_edit(&alice, Some(&plain), &fenced, true)),
            violation("forbidden_field", "geofence_m")
        );
        // A manager sets fences.
        let mut managed = prospect("maria");
        managed.geofence_m = Some(800.0);
        assert_eq!(
            code(check_edit(&who("maria", Role::Manager), None, &Document::Customer(managed), false)),
            None
        );
    }

    #[test]
    fn created_by_names_the_author_and_never_changes() {
        for role in [Role::Rep, Role::Manager] {
            let me = who("alice", role);
            let mut forged = prospect("alice");
            forged.created_by = "server".into();
            let forged = Document::Customer(forged);
            assert_eq!(
                code(check_edit(&me, None, &forged, false)),
                violation("wrong_owner", "created_by"),
                "{role}"
            );
            let mut v = visit("alice", VisitState::Planned);
            v.created_by = "bob".into();
            assert_eq!(
                code(check_edit(&me, None, &Document::Visit(v), false)),
                violation("wrong_owner", "created_by"),
                "{role}"
            );

            let before = Document::Visit(visit("alice", VisitState::Planned));
            let mut after = visit("alice", VisitState::Planned);
            after.created_by = "maria".into();
            assert_eq!(
                code(check_edit(&me, Some(&before), &Document::Visit(after), true)),
                violation("immutable_field", "created_by"),
                "{role}"
            );
        }
        // Imports and fixes by an admin keep whatever author the data has.
        let mut imported = prospect("alice");
        imported.created_by = "import".into();
        assert_eq!(
            code(check_edit(&who("root", Role::Admin), None, &Document::Customer(imported), false)),
            None
        );
    }

    #[test]
    fn nobody_rewrites_checkins_or_writes_verification_not_even_an_admin() {
        let before = checked_in(visit("alice", VisitState::CheckedIn));
        let mut moved = before.clone();
        moved.checkins[0].lat += 0.5;
        let mut judged = before.clone();
        judged.verification.insert(
            "ci-1".into(),
            crate::docs::CheckinVerification {
                status: crate::geo::VerificationStatus::Verified,
                distance_m: 3.0,
                reasons: Vec::new(),
                received_at_ms: 3,
                review: None,
            },
        );
        for role in [Role::Rep, Role::Manager, Role::Admin] {
            let me = who(if role == Role::Rep { "alice" } else { "root" }, role);
            let edit = |after: &Visit| visit_edit(&me, &before, after);
            assert_eq!(edit(&moved), violation("append_only", "checkins"), "{role}");
            assert_eq!(edit(&judged), violation("server_field", "verification"), "{role}");
            assert_eq!(
                code(check_edit(&me, None, &Document::Visit(judged.clone()), false)),
                violation("server_field", "verification"),
                "{role} creating a judged visit"
            );
        }
    }

    #[test]
    fn a_reps_check_out_is_final() {
        let alice = who("alice", Role::Rep);
        let done = checked_out(checked_in(visit("alice", VisitState::Completed)), "met buyer");
        let again = checked_out(done.clone(), "no one there");
        let edit = |after: &Visit| visit_edit(&alice, &done, after);
        assert_eq!(edit(&again), violation("immutable_field", "checkout"));
        let mut undone = done.clone();
        undone.checkout = None;
        assert_eq!(edit(&undone), violation("immutable_field", "checkout"));
        // Notes after the visit are still the rep's.
        let mut noted = done.clone();
        noted.notes.update("sent the catalogue");
        assert_eq!(edit(&noted), None);
        // The first check-out is allowed.
        let open = checked_in(visit("alice", VisitState::CheckedIn));
        assert_eq!(
            code(check_edit(&alice, Some(&Document::Visit(open)), &Document::Visit(done.clone()), true)),
            None
        );
    }

    #[test]
    fn a_rep_cannot_check_in_or_complete_a_visit_without_a_check_in() {
        let alice = who("alice", Role::Rep);
        let create = |v: Visit| code(check_edit(&alice, None, &Document::Visit(v), false));
        let bad = violation("bad_transition", "state");

        assert_eq!(create(visit("alice", VisitState::Planned)), None);
        assert_eq!(create(visit("alice", VisitState::CheckedIn)), bad);
        assert_eq!(create(visit("alice", VisitState::Completed)), bad);
        assert_eq!(create(checked_out(visit("alice", VisitState::Completed), "met buyer")), bad);
        assert_eq!(create(checked_in(visit("alice", VisitState::CheckedIn))), None);
        assert_eq!(create(checked_out(checked_in(visit("alice", VisitState::Completed)), "order")), None);
        // The planning's remote contact: a far C customer served by phone.
        assert_eq!(create(checked_out(visit("alice", VisitState::Completed), "Remote: phone call")), None);

        let planned = Document::Visit(visit("alice", VisitState::Planned));
        let update = |v: Visit| code(check_edit(&alice, Some(&planned), &Document::Visit(v), true));
        assert_eq!(update(checked_out(visit("alice", VisitState::Completed), "met buyer")), bad);
        assert_eq!(update(visit("alice", VisitState::CheckedIn)), bad);
        assert_eq!(update(checked_out(visit("alice", VisitState::Completed), "remote: video")), None);
        assert_eq!(update(checked_out(checked_in(visit("alice", VisitState::Completed)), "order")), None);
        assert_eq!(update(visit("alice", VisitState::Cancelled)), None);

        // A manager may mark a visit done (the planning counts it at its planned end).
        let maria = who("maria", Role::Manager);
        let mut done = visit("alice", VisitState::Completed);
        done.created_by = "maria".into();
        assert_eq!(code(check_edit(&maria, None, &Document::Visit(done), false)), None);
    }
}
