//! The rules table (issue 14, item 6): role × document kind × field, every cell a push through the
//! engine.
//!
//! `rules.rs` has unit tests of `check_edit`, but what a device sees is the engine's answer, and
//! the engine decides things before the rules do (scope, schema, id and kind) and after them
//! (quarantine, verdicts). So every cell here is a real push from a device of that role, against
//! documents the server seeded, and the answer is read back from the response, the stored heads
//! and the quarantine.

use std::collections::BTreeSet;

use automerge::transaction::CommitOptions;
use automerge::{ActorId, Automerge};
use fieldsync_core::client::{LocalDoc, Replica};
use fieldsync_core::docs::*;
use fieldsync_core::engine::{SyncEngine, SyncError};
use fieldsync_core::geo::VerificationStatus;
use fieldsync_core::protocol::Cursor;
use fieldsync_core::rules::ViolationCode::{
    AppendOnly, BadTransition, ForbiddenField, ForbiddenKind, ImmutableField, NotFound, ServerField,
    WrongOwner,
};
use fieldsync_core::rules::{ViolationCode, changed_fields};
use fieldsync_core::storage::{MemoryStorage, Storage, TEAM_WIDE};
use fieldsync_core::testing::fixtures::{self, LYON, checkin, offset};
use fieldsync_core::testing::{memory_engine, replica, sync_until_idle};
use fieldsync_core::{Principal, Role};

const TEAM: &str = "acme";
/// Late 2026, so that check-in times look like real ones to the verification.
const DAY: i64 = 1_796_000_000_000;
const HOUR: i64 = 3_600_000;
const SEEDED_AT: i64 = DAY + 8 * HOUR;
const PUSHED_AT: i64 = DAY + 11 * HOUR;

/// Who pushes. The rules only know a role and an `assigned` flag, but the engine also knows scope,
/// so a rep comes in two columns: the one the documents belong to and one they do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Author {
    /// alice: owner of the customer, rep of its territory and of its visits.
    AssignedRep,
    /// bob: a rep of the same team to whom none of the seeded documents is assigned.
    OtherRep,
    Manager,
    Admin,
}

/// The columns of the table, in this order.
const AUTHORS: [Author; 4] = [Author::AssignedRep, Author::OtherRep, Author::Manager, Author::Admin];

impl Author {
    fn user(self) -> &'static str {
        match self {
            Author::AssignedRep => "alice",
            Author::OtherRep => "bob",
            Author::Manager => "maria",
            Author::Admin => "root",
        }
    }

    fn role(self) -> Role {
        match self {
            Author::AssignedRep | Author::OtherRep => Role::Rep,
            Author::Manager => Role::Manager,
            Author::Admin => Role::Admin,
        }
    }

    fn principal(self) -> Principal {
        Principal { team: TEAM.into(), user: self.user().into(), role: self.role() }
    }
}

/// What the engine does with one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accepted,
    /// Refused with this code, kept in the quarantine, the rest of the push goes on.
    Refused(ViolationCode),
    /// The whole request is refused (`invalid_document`): nothing of it is stored or kept, because
    /// a broken client must not be half-applied.
    InvalidRequest,
}

const OK: Outcome = Outcome::Accepted;
const INVALID: Outcome = Outcome::InvalidRequest;
const fn no(code: ViolationCode) -> Outcome {
    Outcome::Refused(code)
}

type EditFn = fn(&mut Document);
type MakeFn = fn(&str) -> Document;

#[derive(Clone, Copy)]
enum Push {
    /// An edit of a seeded document.
    Edit(&'static str, EditFn),
    /// A new document, made for the author's user id.
    Create(MakeFn),
}

struct Row {
    kind: DocKind,
    /// The top-level field of the typed struct the edit is about.
    field: &'static str,
    case: &'static str,
    push: Push,
    /// One outcome per column of [`AUTHORS`].
    expect: [Outcome; 4],
}

fn row(kind: DocKind, field: &'static str, case: &'static str, push: Push, expect: [Outcome; 4]) -> Row {
    Row { kind, field, case, push, expect }
}

fn customer(d: &mut Document) -> &mut Customer {
    match d {
        Document::Customer(c) => c,
        other => panic!("not a customer: {other:?}"),
    }
}

fn visit(d: &mut Document) -> &mut Visit {
    match d {
        Document::Visit(v) => v,
        other => panic!("not a visit: {other:?}"),
    }
}

fn territory(d: &mut Document) -> &mut Territory {
    match d {
        Document::Territory(t) => t,
        other => panic!("not a territory: {other:?}"),
    }
}

fn plan(d: &mut Document) -> &mut Plan {
    match d {
        Document::Plan(p) => p,
        other => panic!("not a plan: {other:?}"),
    }
}

fn verdict(status: VerificationStatus) -> CheckinVerification {
    CheckinVerification { status, distance_m: 12.0, reasons: vec![], received_at_ms: SEEDED_AT, review: None }
}

/// A check-in at the customer's door, as a phone takes it.
fn at_the_door(id: &str) -> Checkin {
    checkin(id, LYON, 8.0, DAY + 10 * HOUR)
}

// The seeded documents. Alice owns the customer, is the one rep of its territory and has two
// visits there: one still planned and one done, checked in, checked out and judged by the server.

fn seed() -> Vec<Document> {
    let mut done = fixtures::visit("visit-done", "cust-1", "alice", DAY + 9 * HOUR);
    done.state = VisitState::Completed;
    done.checkins.push(checkin("ci-1", LYON, 5.0, DAY + 9 * HOUR));
    done.checkout = Some(Checkout {
        device_time_ms: DAY + 9 * HOUR + 1_800_000,
        outcome: "order".into(),
        next_step: "".into(),
    });
    done.verification.insert("ci-1".into(), verdict(VerificationStatus::Verified));
    let mut terr = Territory::new("terr-1", "Lyon centre", vec!["alice".into()]);
    terr.polygons = vec![ring(45.7)];
    terr.sub_areas =
        vec![SubArea { id: "sa-1".into(), name: "Presqu'île".into(), customer_ids: vec!["cust-1".into()] }];
    let mut quarter = Plan::new(
        "plan-1",
        "2026-Q4",
        Cadence { a_days: 7, b_days: 14, c_days: 30 },
        TierThresholds { a_min_score: 10_000.0, b_min_score: 1_000.0 },
    );
    quarter.quotas = vec![Quota { rep: Some("alice".into()), tier: Tier::A, amount: 3.0 }];
    vec![
        terr.into(),
        fixtures::customer("cust-1", "alice", Some("terr-1"), LYON).into(),
        fixtures::visit("visit-1", "cust-1", "alice", DAY + 10 * HOUR).into(),
        done.into(),
        quarter.into(),
    ]
}

fn seeded_engine() -> SyncEngine<MemoryStorage> {
    let engine = memory_engine(|_| {});
    engine.write_as_server(TEAM, &seed(), SEEDED_AT).expect("seed");
    engine
}

// New documents, made for the author `me`: what an honest app of that user would create.

fn prospect(me: &str) -> Document {
    let at = offset(LYON, 300.0, 0.0);
    Customer {
        timezone: "Europe/Paris".into(),
        owner_rep: Some(me.into()),
        ..Customer::new("cust-new", "New bakery", GeoPoint::wgs84(at.0, at.1), me)
    }
    .into()
}

fn planned(me: &str) -> Document {
    fixtures::visit("visit-new", "cust-1", me, DAY + 12 * HOUR).into()
}

fn with_customer(me: &str, edit: fn(&mut Customer)) -> Document {
    let mut d = prospect(me);
    edit(customer(&mut d));
    d
}

fn with_visit(me: &str, edit: fn(&mut Visit)) -> Document {
    let mut d = planned(me);
    edit(visit(&mut d));
    d
}

// The answers that recur, named after the rule behind them. Columns: assigned rep, other rep,
// manager, admin.

/// A field only managers and admins change; to the other rep the document does not exist.
const MANAGERS_ONLY: [Outcome; 4] = [no(ForbiddenField), no(NotFound), OK, OK];
/// A field the assigned rep changes too.
const ALSO_THE_REP: [Outcome; 4] = [OK, no(NotFound), OK, OK];
/// Check-ins: the visit's rep adds them, nobody else (it is alice's visit).
const ONLY_THE_VISITS_REP: [Outcome; 4] = [OK, no(NotFound), no(WrongOwner), no(WrongOwner)];
/// A rule that binds the assigned rep only (managers and admins are trusted with it).
const fn reps_only(code: ViolationCode) -> [Outcome; 4] {
    [no(code), no(NotFound), OK, OK]
}
/// A rule that binds every role in scope, admins included: evidence.
const fn every_role(code: ViolationCode) -> [Outcome; 4] {
    [no(code), no(NotFound), no(code), no(code)]
}
/// History: it binds everybody but admins, who fix imports.
const HISTORY: [Outcome; 4] = [no(ImmutableField), no(NotFound), no(ImmutableField), OK];
/// The engine reads the document before the rules see it: a kind, schema or id that no longer
/// matches is a broken client, refused whole, for every role in scope; out of scope it is refused
/// unread, as if the document did not exist.
const BROKEN: [Outcome; 4] = [INVALID, no(NotFound), INVALID, INVALID];
/// Territories and plans are managed: a rep who can read one still may not write it.
const MANAGED_KIND: [Outcome; 4] = [no(ForbiddenKind), no(NotFound), OK, OK];
/// Plans are team-wide: every rep has them in scope, the other rep too.
const TEAM_WIDE_KIND: [Outcome; 4] = [no(ForbiddenKind), no(ForbiddenKind), OK, OK];
/// Creating something a rep may not create, whoever's it is.
const fn created_by_managers(code: ViolationCode) -> [Outcome; 4] {
    [no(code), no(code), OK, OK]
}

fn checkout(outcome: &str) -> Option<Checkout> {
    Some(Checkout { device_time_ms: PUSHED_AT, outcome: outcome.into(), next_step: "".into() })
}

fn ring(south: f64) -> Vec<LatLonPoint> {
    vec![
        LatLonPoint { lat: south, lon: 4.8 },
        LatLonPoint { lat: south + 0.1, lon: 4.8 },
        LatLonPoint { lat: south + 0.1, lon: 4.9 },
    ]
}

fn review(d: &mut Document) {
    if let Some(v) = visit(d).verification.get_mut("ci-1") {
        let (by, comment) = ("maria".into(), "not there".into());
        v.review = Some(CheckinReview { decision: ReviewDecision::Rejected, by, comment, at_ms: PUSHED_AT });
    }
}

/// The table.
fn table() -> Vec<Row> {
    use DocKind::{Customer as C, Plan as P, Territory as T, Visit as V};
    use Push::{Create, Edit};
    let new_plan = |_: &str| -> Document {
        let cadence = Cadence { a_days: 7, b_days: 14, c_days: 30 };
        Plan::new("plan-new", "2027-Q1", cadence, TierThresholds { a_min_score: 10.0, b_min_score: 1.0 })
            .into()
    };
    vec![
        // --- customers: cust-1, alice's, in her territory ---------------------------------------
        row(C, "kind", "made a visit", Edit("cust-1", |d| customer(d).kind = "visit".into()), BROKEN),
        row(
            C,
            "schema",
            "from the future",
            Edit("cust-1", |d| customer(d).schema = SCHEMA_VERSION + 1),
            BROKEN,
        ),
        row(C, "id", "renamed", Edit("cust-1", |d| customer(d).id = "cust-2".into()), BROKEN),
        row(C, "name", "renamed", Edit("cust-1", |d| customer(d).name = "Other".into()), MANAGERS_ONLY),
        row(C, "location", "moved", Edit("cust-1", |d| customer(d).location.lat += 0.001), MANAGERS_ONLY),
        row(
            C,
            "address",
            "changed",
            Edit("cust-1", |d| customer(d).address = "2 rue de la Ré".into()),
            MANAGERS_ONLY,
        ),
        row(
            C,
            "timezone",
            "changed",
            Edit("cust-1", |d| customer(d).timezone = "Europe/Berlin".into()),
            MANAGERS_ONLY,
        ),
        row(
            C,
            "opening_hours",
            "cleared",
            Edit("cust-1", |d| customer(d).opening_hours.clear()),
            MANAGERS_ONLY,
        ),
        row(
            C,
            "potential_value",
            "raised",
            Edit("cust-1", |d| customer(d).potential_value *= 2.0),
            MANAGERS_ONLY,
        ),
        row(
            C,
            "close_probability",
            "raised",
            Edit("cust-1", |d| customer(d).close_probability = 0.9),
            MANAGERS_ONLY,
        ),
        // A tier override records who made it: a manager must sign it, an admin need not.
        row(
            C,
            "tier",
            "unsigned",
            Edit("cust-1", |d| customer(d).tier = Some(Tier::A)),
            [no(ForbiddenField), no(NotFound), no(ForbiddenField), OK],
        ),
        row(
            C,
            "tier",
            "signed by the manager",
            Edit("cust-1", |d| {
                let c = customer(d);
                (c.tier, c.tier_set_by, c.tier_set_at_ms) =
                    (Some(Tier::A), Some("maria".into()), Some(PUSHED_AT));
            }),
            MANAGERS_ONLY,
        ),
        // The signature is checked whenever it changes, not only with the tier: a manager cannot
        // put somebody else's name on the tier that is there.
        row(
            C,
            "tier_set_by",
            "another's name",
            Edit("cust-1", |d| customer(d).tier_set_by = Some("root".into())),
            [no(ForbiddenField), no(NotFound), no(ForbiddenField), OK],
        ),
        row(
            C,
            "tier_set_by",
            "one's own name",
            Edit("cust-1", |d| customer(d).tier_set_by = Some("maria".into())),
            MANAGERS_ONLY,
        ),
        row(
            C,
            "tier_set_at_ms",
            "set",
            Edit("cust-1", |d| customer(d).tier_set_at_ms = Some(PUSHED_AT)),
            MANAGERS_ONLY,
        ),
        row(
            C,
            "follow_up_status",
            "call back",
            Edit("cust-1", |d| customer(d).follow_up_status = "call back".into()),
            ALSO_THE_REP,
        ),
        row(
            C,
            "opportunity_stage",
            "won",
            Edit("cust-1", |d| customer(d).opportunity_stage = "won".into()),
            ALSO_THE_REP,
        ),
        row(
            C,
            "owner_rep",
            "given to bob",
            Edit("cust-1", |d| customer(d).owner_rep = Some("bob".into())),
            MANAGERS_ONLY,
        ),
        // "*" is the storage's team-wide audience member: a customer owned by it would be listed
        // for every rep. Ids may not contain it, so it never gets that far, whoever asks.
        row(
            C,
            "owner_rep",
            "the team-wide marker",
            Edit("cust-1", |d| customer(d).owner_rep = Some(TEAM_WIDE.into())),
            BROKEN,
        ),
        row(
            C,
            "territory",
            "taken out of it",
            Edit("cust-1", |d| customer(d).territory = None),
            MANAGERS_ONLY,
        ),
        row(C, "tags", "tagged", Edit("cust-1", |d| customer(d).tags.push("vip".into())), MANAGERS_ONLY),
        row(
            C,
            "notes",
            "written",
            Edit("cust-1", |d| set_text(&mut customer(d).notes, "Back in May.")),
            ALSO_THE_REP,
        ),
        // Reps learn new numbers at the door.
        row(
            C,
            "phone",
            "corrected",
            Edit("cust-1", |d| customer(d).phone = "+33 6 11 22 33 44".into()),
            ALSO_THE_REP,
        ),
        row(C, "phone", "not a number", Edit("cust-1", |d| customer(d).phone = "call me".into()), BROKEN),
        // The fence decides whether the rep's own check-ins pass.
        row(
            C,
            "geofence_m",
            "widened",
            Edit("cust-1", |d| customer(d).geofence_m = Some(500.0)),
            MANAGERS_ONLY,
        ),
        row(
            C,
            "created_by",
            "rewritten",
            Edit("cust-1", |d| customer(d).created_by = "alice".into()),
            HISTORY,
        ),
        // --- customers created: a prospect of the author's own, or not ------------------------
        row(C, "owner_rep", "one's own", Create(prospect), [OK; 4]),
        row(
            C,
            "phone",
            "with a number",
            Create(|me| with_customer(me, |c| c.phone = "04 78 00 00 00".into())),
            [OK; 4],
        ),
        row(
            C,
            "owner_rep",
            "another rep's",
            Create(|me| with_customer(me, |c| c.owner_rep = Some("carol".into()))),
            created_by_managers(WrongOwner),
        ),
        row(
            C,
            "owner_rep",
            "the team-wide marker",
            Create(|me| with_customer(me, |c| c.owner_rep = Some(TEAM_WIDE.into()))),
            [INVALID; 4],
        ),
        row(
            C,
            "created_by",
            "in another's name",
            Create(|me| with_customer(me, |c| c.created_by = "server".into())),
            [no(WrongOwner), no(WrongOwner), no(WrongOwner), OK],
        ),
        row(
            C,
            "tier",
            "unsigned",
            Create(|me| with_customer(me, |c| c.tier = Some(Tier::B))),
            [no(ForbiddenField), no(ForbiddenField), no(ForbiddenField), OK],
        ),
        row(
            C,
            "tier",
            "signed by its author",
            Create(|me| {
                let mut d = prospect(me);
                let c = customer(&mut d);
                (c.tier, c.tier_set_by) = (Some(Tier::B), Some(me.into()));
                d
            }),
            created_by_managers(ForbiddenField),
        ),
        row(
            C,
            "territory",
            "placed in one",
            Create(|me| with_customer(me, |c| c.territory = Some("terr-1".into()))),
            created_by_managers(ForbiddenField),
        ),
        row(
            C,
            "geofence_m",
            "fenced",
            Create(|me| with_customer(me, |c| c.geofence_m = Some(800.0))),
            created_by_managers(ForbiddenField),
        ),
        // --- visits: alice's visit-1, planned, and visit-done, checked out and judged ------------
        row(V, "kind", "made a customer", Edit("visit-1", |d| visit(d).kind = "customer".into()), BROKEN),
        row(
            V,
            "schema",
            "from the future",
            Edit("visit-1", |d| visit(d).schema = SCHEMA_VERSION + 1),
            BROKEN,
        ),
        row(V, "id", "renamed", Edit("visit-1", |d| visit(d).id = "visit-2".into()), BROKEN),
        row(
            V,
            "customer_id",
            "another customer",
            Edit("visit-1", |d| visit(d).customer_id = "cust-9".into()),
            MANAGERS_ONLY,
        ),
        row(V, "rep", "given to bob", Edit("visit-1", |d| visit(d).rep = "bob".into()), MANAGERS_ONLY),
        row(
            V,
            "planned_start_ms",
            "earlier",
            Edit("visit-1", |d| visit(d).planned_start_ms -= HOUR),
            ALSO_THE_REP,
        ),
        row(V, "planned_end_ms", "later", Edit("visit-1", |d| visit(d).planned_end_ms += HOUR), ALSO_THE_REP),
        row(
            V,
            "state",
            "cancelled",
            Edit("visit-1", |d| visit(d).state = VisitState::Cancelled),
            ALSO_THE_REP,
        ),
        row(V, "state", "missed", Edit("visit-1", |d| visit(d).state = VisitState::Missed), ALSO_THE_REP),
        // The visit state machine binds reps only: a completed visit counts for their cadence.
        row(
            V,
            "state",
            "checked in, no check-in",
            Edit("visit-1", |d| visit(d).state = VisitState::CheckedIn),
            reps_only(BadTransition),
        ),
        row(
            V,
            "state",
            "completed, no check-in",
            Edit("visit-1", |d| visit(d).state = VisitState::Completed),
            reps_only(BadTransition),
        ),
        row(
            V,
            "state",
            "checked in at the door",
            Edit("visit-1", |d| {
                let v = visit(d);
                v.state = VisitState::CheckedIn;
                v.checkins.push(at_the_door("ci-new"));
            }),
            ONLY_THE_VISITS_REP,
        ),
        row(
            V,
            "state",
            "completed as a remote contact",
            Edit("visit-1", |d| {
                let v = visit(d);
                (v.state, v.checkout) = (VisitState::Completed, checkout("Remote: phone call"));
            }),
            ALSO_THE_REP,
        ),
        row(
            V,
            "state",
            "completed, planned again",
            Edit("visit-done", |d| visit(d).state = VisitState::Planned),
            reps_only(BadTransition),
        ),
        // A check-in is the visit's rep's presence, judged into their travel history: nobody else
        // adds one, not even an admin.
        row(
            V,
            "checkins",
            "one appended",
            Edit("visit-1", |d| visit(d).checkins.push(at_the_door("ci-new"))),
            ONLY_THE_VISITS_REP,
        ),
        row(
            V,
            "checkins",
            "one moved",
            Edit("visit-done", |d| visit(d).checkins[0].lat += 0.01),
            every_role(AppendOnly),
        ),
        row(
            V,
            "checkins",
            "one removed",
            Edit("visit-done", |d| visit(d).checkins.clear()),
            every_role(AppendOnly),
        ),
        row(
            V,
            "checkins",
            "one made a mock fix",
            Edit("visit-done", |d| visit(d).checkins[0].mock_location = true),
            every_role(AppendOnly),
        ),
        row(
            V,
            "checkout",
            "the first one",
            Edit("visit-1", |d| visit(d).checkout = checkout("nobody there")),
            ALSO_THE_REP,
        ),
        // The outcome a rep reported is the record of the visit: final for the rep.
        row(
            V,
            "checkout",
            "rewritten",
            Edit("visit-done", |d| visit(d).checkout = checkout("no order")),
            reps_only(ImmutableField),
        ),
        row(
            V,
            "checkout",
            "removed",
            Edit("visit-done", |d| visit(d).checkout = None),
            reps_only(ImmutableField),
        ),
        row(
            V,
            "notes",
            "written",
            Edit("visit-done", |d| set_text(&mut visit(d).notes, "Sent the catalogue.")),
            ALSO_THE_REP,
        ),
        // Verdicts, and a manager's review of one, are the server's to write (a review goes
        // through the server's reviews endpoint, never through a push).
        row(
            V,
            "verification",
            "a verdict forged",
            Edit("visit-1", |d| {
                visit(d).verification.insert("ci-x".into(), verdict(VerificationStatus::Verified));
            }),
            every_role(ServerField),
        ),
        row(
            V,
            "verification",
            "a verdict overturned",
            Edit("visit-done", |d| {
                visit(d).verification.insert("ci-1".into(), verdict(VerificationStatus::Invalid));
            }),
            every_role(ServerField),
        ),
        row(V, "verification", "a review pushed", Edit("visit-done", review), every_role(ServerField)),
        row(V, "created_by", "rewritten", Edit("visit-1", |d| visit(d).created_by = "maria".into()), HISTORY),
        // --- visits created -----------------------------------------------------------------
        // A rep may plan a visit at a customer that is not theirs: its check-ins are then judged
        // against no site (`unknown_customer`), which tells them nothing about it.
        row(V, "rep", "one's own", Create(planned), [OK; 4]),
        row(
            V,
            "rep",
            "another rep's",
            Create(|me| with_visit(me, |v| v.rep = "carol".into())),
            created_by_managers(WrongOwner),
        ),
        row(
            V,
            "created_by",
            "in another's name",
            Create(|me| with_visit(me, |v| v.created_by = "server".into())),
            [no(WrongOwner), no(WrongOwner), no(WrongOwner), OK],
        ),
        row(
            V,
            "state",
            "checked in, no check-in",
            Create(|me| with_visit(me, |v| v.state = VisitState::CheckedIn)),
            created_by_managers(BadTransition),
        ),
        row(
            V,
            "state",
            "completed, no check-in",
            Create(|me| with_visit(me, |v| v.state = VisitState::Completed)),
            created_by_managers(BadTransition),
        ),
        // A remote contact needs no check-in, and a new visit is not checked against the
        // customer's assignment: bob records a contact at alice's customer, and the planning
        // counts contacts per customer, whoever made them.
        row(
            V,
            "state",
            "a remote contact at cust-1",
            Create(|me| {
                with_visit(me, |v| {
                    (v.state, v.checkout) = (VisitState::Completed, checkout("remote: phone call"));
                })
            }),
            [OK; 4],
        ),
        row(
            V,
            "checkins",
            "checked in at the door",
            Create(|me| {
                with_visit(me, |v| {
                    v.state = VisitState::CheckedIn;
                    v.checkins.push(at_the_door("ci-new"));
                })
            }),
            [OK; 4],
        ),
        row(
            V,
            "verification",
            "with its own verdict",
            Create(|me| {
                with_visit(me, |v| {
                    v.checkins.push(at_the_door("ci-new"));
                    v.verification.insert("ci-new".into(), verdict(VerificationStatus::Verified));
                })
            }),
            [no(ServerField); 4],
        ),
        // --- territories: terr-1, alice's ---------------------------------------------------
        row(T, "kind", "made a plan", Edit("terr-1", |d| territory(d).kind = "plan".into()), BROKEN),
        row(
            T,
            "schema",
            "from the future",
            Edit("terr-1", |d| territory(d).schema = SCHEMA_VERSION + 1),
            BROKEN,
        ),
        row(T, "id", "renamed", Edit("terr-1", |d| territory(d).id = "terr-2".into()), BROKEN),
        row(T, "name", "renamed", Edit("terr-1", |d| territory(d).name = "Lyon".into()), MANAGED_KIND),
        row(T, "reps", "bob added", Edit("terr-1", |d| territory(d).reps.push("bob".into())), MANAGED_KIND),
        // Like an owner "*": the territory's customers would be listed for every rep.
        row(
            T,
            "reps",
            "the team-wide marker added",
            Edit("terr-1", |d| territory(d).reps.push(TEAM_WIDE.into())),
            BROKEN,
        ),
        row(
            T,
            "polygons",
            "a second ring",
            Edit("terr-1", |d| territory(d).polygons.push(ring(45.6))),
            MANAGED_KIND,
        ),
        row(T, "sub_areas", "emptied", Edit("terr-1", |d| territory(d).sub_areas.clear()), MANAGED_KIND),
        row(
            T,
            "reps",
            "created",
            Create(|me| Territory::new("terr-new", "Villeurbanne", vec![me.into()]).into()),
            created_by_managers(ForbiddenKind),
        ),
        // --- plans: plan-1, team-wide -------------------------------------------------------
        row(
            P,
            "kind",
            "made a territory",
            Edit("plan-1", |d| plan(d).kind = "territory".into()),
            [INVALID; 4],
        ),
        row(
            P,
            "schema",
            "from the future",
            Edit("plan-1", |d| plan(d).schema = SCHEMA_VERSION + 1),
            [INVALID; 4],
        ),
        row(P, "id", "renamed", Edit("plan-1", |d| plan(d).id = "plan-2".into()), [INVALID; 4]),
        row(P, "quarter", "moved", Edit("plan-1", |d| plan(d).quarter = "2027-Q1".into()), TEAM_WIDE_KIND),
        row(
            P,
            "quotas",
            "a quota raised",
            Edit("plan-1", |d| plan(d).quotas[0].amount = 30.0),
            TEAM_WIDE_KIND,
        ),
        row(P, "cadence", "A every 3 days", Edit("plan-1", |d| plan(d).cadence.a_days = 3), TEAM_WIDE_KIND),
        row(
            P,
            "thresholds",
            "A made easy",
            Edit("plan-1", |d| plan(d).thresholds.a_min_score = 1.0),
            TEAM_WIDE_KIND,
        ),
        row(P, "focus_share", "lowered", Edit("plan-1", |d| plan(d).focus_share = 0.5), TEAM_WIDE_KIND),
        row(P, "quarter", "created", Create(new_plan), created_by_managers(ForbiddenKind)),
    ]
}

/// A device of `author` holding `doc`, of which the server holds `acked`. For a stored document
/// that is the server's copy, whether or not the author should hold it: a device that lost the
/// document's scope, or a client that forges one, pushes just the same.
fn device_holding(author: Author, doc_id: &str, doc: Automerge, kind: DocKind, acked: bool) -> Replica {
    let device = format!("phone-{}", author.user());
    let heads = if acked { doc.get_heads() } else { vec![] };
    Replica::restore(
        &device,
        author.principal(),
        ActorId::from(device.as_bytes()),
        Cursor::Start,
        vec![(doc_id.to_string(), LocalDoc::new(doc, kind, heads))],
        vec![],
    )
}

/// A document as a device writes it, without the device's own rules (which would refuse most of
/// the table before it reaches the server).
fn authored(value: &Document, actor: &ActorId) -> Automerge {
    let mut doc = Automerge::new().with_actor(actor.clone());
    doc.transact_with(
        |_| CommitOptions::default().with_time(PUSHED_AT / 1000),
        |tx| value.reconcile_into(tx),
    )
    .expect("reconcile a new document");
    doc
}

fn stored(engine: &SyncEngine<MemoryStorage>, doc_id: &str) -> Option<Document> {
    engine.read_doc(TEAM, doc_id).expect("read").map(|(d, _)| d)
}

fn field_value(doc: &Document, field: &str) -> serde_json::Value {
    serde_json::to_value(doc).expect("json")[field].clone()
}

/// Runs one cell: `author` pushes the row's edit. Returns what went wrong, if anything.
fn run_cell(row: &Row, column: usize) -> Vec<String> {
    let author = AUTHORS[column];
    let expected = row.expect[column];
    let engine = seeded_engine();
    let mut problems = Vec::new();
    let (doc_id, mut phone, before, after) = match row.push {
        Push::Edit(doc_id, edit) => {
            let bytes = engine.storage().load_doc(TEAM, doc_id).expect("load").expect("seeded");
            let doc = Automerge::load(&bytes).expect("stored document");
            let before = Document::hydrate(&doc).expect("typed");
            let mut phone = device_holding(author, doc_id, doc, row.kind, true);
            let after = phone.update_unchecked(doc_id, PUSHED_AT, edit).expect("edit on the device");
            (doc_id.to_string(), phone, Some(before), after)
        }
        Push::Create(make) => {
            let value = make(author.user());
            let device = format!("phone-{}", author.user());
            let doc = authored(&value, &ActorId::from(device.as_bytes()));
            let id = value.id().to_string();
            (id.clone(), device_holding(author, &id, doc, row.kind, false), None, value)
        }
    };
    // A row whose edit does not touch its field tests some other field than it says.
    if let Some(before) = &before
        && !changed_fields(before, &after).iter().any(|f| f == row.field)
    {
        problems.push(format!(
            "the edit does not change {} (it changes {:?})",
            row.field,
            changed_fields(before, &after)
        ));
    }
    let heads_before = engine.doc_heads(TEAM, &doc_id).expect("heads");
    let feed_before = engine.storage().feed_head(TEAM).expect("feed head");
    let kept_before = engine.storage().quarantine(TEAM, usize::MAX).expect("quarantine").len();

    let request = phone.prepare_request();
    if !request.push.iter().any(|p| p.doc_id == doc_id) {
        problems.push("the device has nothing to push".into());
        return problems;
    }
    let answer = match engine.handle(phone.principal(), &request, PUSHED_AT) {
        Err(SyncError::InvalidDocument { doc_id: refused, .. }) if refused == doc_id => Ok(INVALID),
        Err(e) => Err(format!("request refused: {} ({e})", e.code())),
        Ok(response) => {
            let refused = response.rejected.iter().find(|r| r.doc_id == doc_id);
            let taken = response.accepted.iter().any(|a| a.doc_id == doc_id);
            let outcome = match (refused, taken) {
                (Some(r), false) => match code_named(&r.code) {
                    Some(code) => Ok(no(code)),
                    None => Err(format!("refused with an unknown code {:?}", r.code)),
                },
                (None, true) => Ok(OK),
                (r, t) => Err(format!("neither clearly accepted nor refused: rejected {r:?}, accepted {t}")),
            };
            // The device keeps what the server refused, for its user.
            let report = phone.apply_response(&response).expect("apply the response");
            if let Some(r) = refused
                && !report
                    .rejected
                    .iter()
                    .any(|k| k.doc_id == doc_id && k.code == r.code && !k.changes.is_empty())
            {
                problems.push(format!("the device did not keep its refused edit: {:?}", report.rejected));
            }
            outcome
        }
    };
    let outcome = match answer {
        Ok(o) => o,
        Err(e) => {
            problems.push(e);
            return problems;
        }
    };
    if outcome != expected {
        problems.push(format!("expected {expected:?}, got {outcome:?}"));
        return problems;
    }

    let heads_after = engine.doc_heads(TEAM, &doc_id).expect("heads");
    let feed_after = engine.storage().feed_head(TEAM).expect("feed head");
    let kept = engine.storage().quarantine(TEAM, usize::MAX).expect("quarantine");
    match outcome {
        Outcome::Accepted => {
            if heads_after == heads_before {
                problems.push("accepted, but the stored heads did not move".into());
            }
            let pushed_heads = phone.heads(&doc_id).unwrap_or_default();
            let bytes = engine.storage().load_doc(TEAM, &doc_id).expect("load").unwrap_or_default();
            let server = Automerge::load(&bytes).expect("stored document");
            if !pushed_heads.iter().all(|h| server.get_change_meta_by_hash(h).is_some()) {
                problems.push("accepted, but the server does not hold the device's heads".into());
            }
            match stored(&engine, &doc_id) {
                Some(now) if field_value(&now, row.field) == field_value(&after, row.field) => {}
                other => problems.push(format!("accepted, but {} is stored as {other:?}", row.field)),
            }
            if kept.len() != kept_before {
                problems.push("accepted, but something was quarantined".into());
            }
        }
        Outcome::Refused(code) => {
            if heads_after != heads_before || feed_after != feed_before {
                problems.push(format!(
                    "refused, but storage changed: heads {heads_before:?} → {heads_after:?}, feed {feed_before} → {feed_after}"
                ));
            }
            if before.is_some() && stored(&engine, &doc_id) != before {
                problems.push("refused, but the stored document changed".into());
            }
            // Back to what the server holds, or, for a document the author may not see, to nothing.
            let device_heads = phone.heads(&doc_id);
            let server_heads = if code == NotFound { None } else { heads_after.clone() };
            if device_heads != server_heads {
                problems
                    .push(format!("refused, but the device holds {device_heads:?}, not {server_heads:?}"));
            }
            let entry = kept.iter().find(|e| e.doc_id == doc_id);
            match entry {
                Some(e)
                    if kept.len() == kept_before + 1
                        && e.code == code.as_str()
                        && e.user == author.user()
                        && !e.digest_only
                        && !e.changes.is_empty() => {}
                other => problems.push(format!("refused, but not kept whole in the quarantine: {other:?}")),
            }
        }
        Outcome::InvalidRequest => {
            if heads_after != heads_before || feed_after != feed_before || kept.len() != kept_before {
                problems.push("the request was refused whole, but something was stored or kept".into());
            }
        }
    }
    problems
}

fn code_named(name: &str) -> Option<ViolationCode> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

/// Cells of the table, counted from it by hand: a row that goes missing must be noticed.
const CELLS: usize = 87 * AUTHORS.len();

#[test]
fn every_role_kind_and_field_cell_gets_the_outcome_the_rules_table_gives() {
    let rows = table();
    let mut failures = Vec::new();
    let mut cells = 0;
    for r in &rows {
        let how = if matches!(r.push, Push::Edit(..)) { "edited" } else { "created" };
        for (column, author) in AUTHORS.iter().enumerate() {
            cells += 1;
            for p in run_cell(r, column) {
                failures.push(format!("{}.{} {how} ({}) by {author:?}: {p}", r.kind, r.field, r.case));
            }
        }
    }
    eprintln!("rules table: {cells} cells = {} rows × {} roles", rows.len(), AUTHORS.len());
    for kind in DocKind::ALL {
        let of_kind = || rows.iter().filter(move |r| r.kind == kind);
        let edits = of_kind().filter(|r| matches!(r.push, Push::Edit(..))).count();
        let fields: BTreeSet<_> =
            of_kind().filter(|r| matches!(r.push, Push::Edit(..))).map(|r| r.field).collect();
        eprintln!(
            "  {kind}: {} rows ({edits} edits of {} fields, {} creations) × {} roles = {} cells",
            of_kind().count(),
            fields.len(),
            of_kind().count() - edits,
            AUTHORS.len(),
            of_kind().count() * AUTHORS.len(),
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells differ from the table:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cells >= CELLS, "{cells} cells, the table had {CELLS}: a row went missing");
}

#[test]
fn the_table_edits_every_field_of_every_kind() {
    let rows = table();
    for seeded in seed() {
        let kind = seeded.kind();
        let fields: BTreeSet<String> = match serde_json::to_value(&seeded).expect("json") {
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            other => panic!("{other:?}"),
        };
        let edited: BTreeSet<String> = rows
            .iter()
            .filter(|r| r.kind == kind && matches!(r.push, Push::Edit(..)))
            .map(|r| r.field.to_string())
            .collect();
        assert_eq!(edited, fields, "{kind}: fields of the typed struct vs fields the table edits");
    }
    for kind in DocKind::ALL {
        assert!(
            rows.iter().any(|r| r.kind == kind && matches!(r.push, Push::Create(_))),
            "{kind}: no creation row"
        );
    }
}

#[test]
fn the_team_wide_marker_reaches_every_rep_and_no_document_can_claim_it() {
    let engine = seeded_engine();
    let storage = engine.storage();
    // The plan is indexed under the marker, and the marker is what a rep's listing adds to theirs.
    let team_wide = storage.list_docs(TEAM, Some(TEAM_WIDE), "", 100).expect("list");
    assert_eq!(team_wide, vec![("plan-1".to_string(), DocKind::Plan)]);
    assert_eq!(storage.doc_meta(TEAM, "plan-1").expect("meta").map(|m| m.audience), Some(Audience::Team));
    let bobs = storage.list_docs(TEAM, Some("bob"), "", 100).expect("list");
    assert_eq!(bobs, team_wide, "bob has nothing assigned: only the team-wide plan");
    let mut phone = replica("phone-bob", TEAM, "bob", Role::Rep);
    sync_until_idle(&engine, &mut phone, PUSHED_AT);
    assert_eq!(phone.doc_ids().cloned().collect::<Vec<_>>(), vec!["plan-1".to_string()]);

    // Not even the server can store a document under the marker's name: an owner or a territory
    // rep "*" would list the document for every rep of the team.
    let mut starred = fixtures::customer("cust-star", "alice", None, LYON);
    starred.owner_rep = Some(TEAM_WIDE.into());
    let mut open_territory = Territory::new("terr-star", "Everyone", vec![TEAM_WIDE.into()]);
    open_territory.reps.push("alice".into());
    for doc in [Document::from(starred), open_territory.into()] {
        let id = doc.id().to_string();
        match engine.write_as_server(TEAM, &[doc], PUSHED_AT) {
            Err(SyncError::InvalidDocument { doc_id, .. }) if doc_id == id => {}
            other => panic!("{id}: {other:?}"),
        }
        assert!(storage.doc_meta(TEAM, &id).expect("meta").is_none(), "{id} was stored");
    }
    assert_eq!(storage.list_docs(TEAM, Some(TEAM_WIDE), "", 100).expect("list"), team_wide);
    assert_eq!(storage.list_docs(TEAM, Some("bob"), "", 100).expect("list"), team_wide);
}
