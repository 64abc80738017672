//! Trying to break isolation, over real HTTP: teams never see each other, a rep sees only their own
//! scope, a rep cannot change what is not theirs to change, and a request without a valid token is
//! refused without hurting the server.

use std::time::Duration;

use automerge::{ActorId, Automerge, ChangeHash};
use fieldsync_core::Role;
use fieldsync_core::client::Replica;
use fieldsync_core::docs::{
    Cadence, CheckinVerification, DocKind, Document, Plan, Quota, Tier, TierThresholds, Visit, VisitState,
};
use fieldsync_core::protocol::{CONTENT_TYPE, Cursor, SyncRequest};
use fieldsync_core::storage::Storage as _;
use fieldsync_e2e::fixtures::{self, LYON, offset, on_customer, on_visit, prepend_notes};
use fieldsync_e2e::{Device, MORNING_MS, TestServer, b64url, b64url_decode, changes_since, json_answer};
use fieldsync_e2e::{customer_of, tampered_changes, visit_of};
use fieldsync_server::auth::{AuthConfig, Authenticator};

const TEAM: &str = "acme";
const TEAM_A: &str = "teamA";
const TEAM_B: &str = "teamB";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn sorted(mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort();
    heads
}

fn server_heads(server: &TestServer, team: &str, id: &str) -> Vec<ChangeHash> {
    sorted(
        server.server().engine().doc_heads(team, id).expect("heads").expect("the server holds the document"),
    )
}

fn feed_head(server: &TestServer, team: &str) -> u64 {
    server.server().engine().storage().feed_head(team).expect("feed head")
}

fn quarantine_len(server: &TestServer, team: &str) -> usize {
    server.server().engine().storage().quarantine(team, 1000).expect("quarantine").len()
}

/// A scratch replica with a manager's principal: creates documents the local rules would refuse a
/// rep, so that a rep's token can push them and the server has to decide.
fn scratch_replica(device_id: &str) -> Replica {
    fieldsync_core::testing::replica(device_id, TEAM, "scratch", Role::Manager)
}

/// One team ("acme"): alice and bob share terr-shared with cust-shared (owned by alice); alice alone
/// owns cust-alice, outside any territory; maria manages.
async fn team_with_a_shared_and_a_private_customer() -> TestServer {
    let mut docs = fixtures::territory_with_customer("terr-shared", &["alice", "bob"], "cust-shared");
    docs.push(fixtures::customer("cust-alice", "alice", None, offset(LYON, 2_000.0, 0.0)).into());
    TestServer::seeded(TEAM, &docs).await
}

/// That team, where alice has pushed her visit visit-alice-1 at the shared customer with `notes`,
/// and bob has bootstrapped since.
async fn alice_with_a_visit_and_bob(notes: &str) -> (TestServer, Device, Device) {
    let server = team_with_a_shared_and_a_private_customer().await;
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;
    let visit = fixtures::visit("visit-alice-1", "cust-shared", "alice", MORNING_MS);
    alice.replica.create(Visit { notes: notes.into(), ..visit }.into(), MORNING_MS).expect("plan");
    alice.sync().await.expect("alice pushes");
    let bob = server.synced_device("bob-phone", TEAM, "bob", Role::Rep).await;
    (server, alice, bob)
}

/// Where a server answers, and a client to call it with.
struct Endpoint {
    url: String,
    http: reqwest::Client,
}

impl Endpoint {
    fn of(device: &Device) -> Self {
        Endpoint { url: device.url.clone(), http: device.http.clone() }
    }
}

async fn healthz_ok(at: &Endpoint) {
    let (status, _, body) = call(at, "GET", "/healthz", None).await;
    assert_eq!(status, 200, "the server keeps serving: {body}");
    assert_eq!(body["status"], "ok");
}

// ---------------------------------------------------------------------------------------------
// Teams
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_rep_of_one_team_can_neither_read_nor_write_the_documents_of_another_team() {
    // 1. Two teams, each with a territory and a customer.
    let server =
        TestServer::seeded(TEAM_A, &fixtures::territory_with_customer("terr-a", &["alice"], "cust-a")).await;
    server.seed(TEAM_B, &fixtures::territory_with_customer("terr-b", &["bella"], "cust-b"));
    let mut alice = server.add_device("alice-phone", TEAM_A, "alice", Role::Rep);
    let mut anna = server.add_device("anna-tablet", TEAM_A, "anna", Role::Manager);
    let mut bella = server.add_device("bella-phone", TEAM_B, "bella", Role::Rep);

    // 2. Team B's rep plans a visit with notes and syncs.
    bella.sync().await.expect("bella bootstraps");
    let mut vb = fixtures::visit("visit-b-1", "cust-b", "bella", MORNING_MS);
    vb.notes = "Team B secret: 20% discount offered.".into();
    bella.replica.create(Document::Visit(vb), MORNING_MS).expect("bella plans");
    assert!(bella.sync().await.expect("bella pushes").rejected().is_empty());
    let b_heads = server_heads(&server, TEAM_B, "visit-b-1");
    let b_feed = feed_head(&server, TEAM_B);

    // 3. Team A's rep and manager sync: nothing of team B arrives.
    alice.sync().await.expect("alice syncs");
    anna.sync().await.expect("anna syncs");
    for d in [&alice, &anna] {
        let ids: Vec<&String> = d.replica.doc_ids().collect();
        assert!(
            ids.iter().all(|id| ["terr-a", "cust-a"].contains(&id.as_str())),
            "{} holds only team A documents: {ids:?}",
            d.replica.device_id()
        );
    }
    assert!(alice.doc("visit-b-1").is_none() && anna.doc("cust-b").is_none());

    // 4. Reading it by id: 404, exactly like a document that never existed.
    // Every answer has its own request id; everything else must be the same.
    let without_request_id = |mut body: serde_json::Value| {
        if let Some(fields) = body.as_object_mut() {
            fields.remove("request_id");
        }
        body
    };
    let (_, absent_body) = alice.get_json("/v1/docs/no-such-doc").await;
    for (d, id) in [(&alice, "visit-b-1"), (&alice, "cust-b"), (&anna, "visit-b-1"), (&anna, "terr-b")] {
        let (status, body) = d.get_json(&format!("/v1/docs/{id}")).await;
        assert_eq!(status, 404, "{} reads {id}: {body}", d.replica.device_id());
        assert_eq!(
            without_request_id(body),
            without_request_id(absent_body.clone()),
            "another team's document looks absent"
        );
    }

    let a_feed = feed_head(&server, TEAM_A);
    // 5. With a copy of team B's history, an edit on top of it is refused: team A has no such
    //    history, for a rep and for a manager alike.
    let stolen = bella.replica.doc_clone("visit-b-1").expect("bella holds her visit");
    let edit = tampered_changes(
        &stolen,
        "alice-phone",
        on_visit(|v| {
            v.notes = "hijacked".into();
            v.rep = "alice".into();
        }),
    );
    for d in [&alice, &anna] {
        let req = d.push_request("visit-b-1", DocKind::Visit, edit.clone());
        let resp = d.exchange(&req).await.expect("refused per document, like any missing one");
        assert!(resp.accepted.is_empty(), "{:?}", resp.accepted);
        assert_eq!(resp.rejected.len(), 1, "{:?}", resp.rejected);
        assert_eq!(resp.rejected[0].code, "not_found");
        assert!(resp.rejected[0].server_doc.is_none());
        // The same history pushed under an id that exists nowhere gets the very same answer.
        let absent = d.push_request("no-such-doc", DocKind::Visit, edit.clone());
        let absent = d.exchange(&absent).await.expect("refused per document");
        assert_eq!(
            (&absent.rejected[0].code, &absent.rejected[0].reason),
            (&resp.rejected[0].code, &resp.rejected[0].reason)
        );
    }

    assert_eq!(feed_head(&server, TEAM_A), a_feed, "nothing of the refused push is stored");

    // 6. Each team has its own id space: team A's rep creating a visit with the same id creates team
    //    A's own document, and team B's is untouched.
    let mut tablet = fieldsync_core::testing::replica("alice-tablet", TEAM_A, "alice", Role::Rep);
    let mut va = fixtures::visit("visit-b-1", "cust-a", "alice", MORNING_MS);
    va.notes = "team A's own visit".into();
    tablet.create(Document::Visit(va), MORNING_MS).expect("a visit of her own");
    let resp = alice.exchange(&tablet.prepare_request()).await.expect("accepted as team A's document");
    assert_eq!(resp.accepted.len(), 1);
    assert!(resp.rejected.is_empty());
    assert_eq!(visit_of(server.doc(TEAM_A, "visit-b-1")).notes.as_str(), "team A's own visit");

    // 7. Team B's visit is exactly as bella left it, and nothing crossed over.
    assert_eq!(server_heads(&server, TEAM_B, "visit-b-1"), b_heads);
    assert_eq!(
        visit_of(server.doc(TEAM_B, "visit-b-1")).notes.as_str(),
        "Team B secret: 20% discount offered."
    );
    assert_eq!(feed_head(&server, TEAM_B), b_feed);
    assert_eq!(quarantine_len(&server, TEAM_B), 0, "team A's refused pushes are kept in team A only");
    let quiet = bella.sync().await.expect("bella syncs");
    assert!(quiet.reports.iter().all(|r| r.pulled_changes == 0 && r.pulled_docs == 0), "{quiet:?}");
}

#[tokio::test]
async fn two_teams_importing_customer_lists_with_the_same_ids_do_not_collide() {
    // 1. Team B imports its customer list first: ids like the demo seed's, or an Excel column "C001".
    let server = TestServer::start().await;
    let list = |rep: &str| fixtures::territory_with_customer("terr-1", &[rep], "cust-0001");
    server.server().engine().write_as_server(TEAM_B, &list("bella"), MORNING_MS).expect("team B imports");

    // 2. Team A imports a list with the same ids: it must work, and must not touch team B's documents.
    let b_heads = server_heads(&server, TEAM_B, "cust-0001");
    let imported = server.server().engine().write_as_server(TEAM_A, &list("alice"), MORNING_MS);
    assert!(imported.is_ok(), "team A's import fails because team B uses the same ids: {imported:?}");
    assert_eq!(server_heads(&server, TEAM_B, "cust-0001"), b_heads);

    // 3. Each team's rep sees their own customer.
    let mut alice = server.add_device("alice-phone", TEAM_A, "alice", Role::Rep);
    let mut bella = server.add_device("bella-phone", TEAM_B, "bella", Role::Rep);
    alice.sync().await.expect("alice syncs");
    bella.sync().await.expect("bella syncs");
    assert_eq!(customer_of(alice.doc("cust-0001")).owner_rep.as_deref(), Some("alice"));
    assert_eq!(customer_of(bella.doc("cust-0001")).owner_rep.as_deref(), Some("bella"));
}

// ---------------------------------------------------------------------------------------------
// A rep's scope inside a team
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_rep_receives_only_their_own_visits_and_the_customers_assigned_to_them() {
    // 1. Alice plans a visit at the shared customer; the private customer is hers alone.
    let server = team_with_a_shared_and_a_private_customer().await;
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;
    let mut bob = server.add_device("bob-phone", TEAM, "bob", Role::Rep);
    assert!(alice.doc("cust-alice").is_some() && alice.doc("cust-shared").is_some());
    let visit = fixtures::visit("visit-alice-1", "cust-shared", "alice", MORNING_MS);
    alice.replica.create(visit.into(), MORNING_MS).expect("plan");
    alice.sync().await.expect("alice pushes");

    // 2. Bob bootstraps, then pulls again after more of alice's work: he holds the shared territory
    //    and customer, nothing else.
    bob.sync().await.expect("bob bootstraps");
    alice.replica.update("visit-alice-1", MORNING_MS, prepend_notes("private notes")).expect("alice edits");
    alice
        .replica
        .update("cust-alice", MORNING_MS, prepend_notes("private customer notes"))
        .expect("alice edits her customer");
    alice.sync().await.expect("alice pushes again");
    bob.sync().await.expect("bob pulls from the feed");
    let mut held: Vec<&String> = bob.replica.doc_ids().collect();
    held.sort();
    assert_eq!(held, ["cust-shared", "terr-shared"]);

    // 3. By id, alice's visit and private customer look absent to bob; the shared customer does not.
    for id in ["visit-alice-1", "cust-alice"] {
        let (status, body) = bob.get_json(&format!("/v1/docs/{id}")).await;
        assert_eq!(status, 404, "bob reads {id}: {body}");
        assert_eq!(body["error"], "not_found");
    }
    let (status, body) = bob.get_json("/v1/docs/cust-shared").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["doc"]["id"], "cust-shared");
    let (status, _) = alice.get_json("/v1/docs/visit-alice-1").await;
    assert_eq!(status, 200, "the owner reads her own visit");
}

#[tokio::test]
async fn a_rep_pushing_an_edit_to_another_reps_visit_or_customer_is_rejected_quarantined_and_changes_nothing()
{
    // 1. Alice has a visit and a private customer on the server.
    let (server, mut alice, bob) = alice_with_a_visit_and_bob("alice's notes").await;
    let visit_heads = server_heads(&server, TEAM, "visit-alice-1");
    let cust_heads = server_heads(&server, TEAM, "cust-alice");
    let head = feed_head(&server, TEAM);

    // 2. Bob, with a leaked copy of alice's documents, forks them under his own actor and edits.
    let visit_edit = tampered_changes(
        &alice.replica.doc_clone("visit-alice-1").expect("held"),
        "bob-phone",
        on_visit(|v| {
            v.notes = "bob was here".into();
            v.state = VisitState::Cancelled;
        }),
    );
    let cust_edit = tampered_changes(
        &alice.replica.doc_clone("cust-alice").expect("held"),
        "bob-phone",
        on_customer(|c| c.follow_up_status = "lost".into()),
    );

    // 3. He pushes both with his own token: both are rejected as not assigned to him.
    for (id, kind, edit) in
        [("visit-alice-1", DocKind::Visit, visit_edit), ("cust-alice", DocKind::Customer, cust_edit)]
    {
        let req = bob.push_request(id, kind, edit);
        let resp = bob.exchange(&req).await.expect("the request as a whole is fine");
        assert!(
            resp.accepted.iter().all(|a| a.doc_id != id),
            "nothing of {id} accepted: {:?}",
            resp.accepted
        );
        assert_eq!(resp.rejected.len(), 1, "{:?}", resp.rejected);
        assert_eq!(resp.rejected[0].doc_id, id);
        assert_eq!(resp.rejected[0].code, "not_found");
        assert!(resp.rejected[0].server_doc.is_none(), "nothing of the document is handed back");
        assert!(!resp.rejected[0].reason.is_empty());
        assert!(resp.changes.iter().all(|c| c.doc_id != id) && resp.docs.iter().all(|d| d.doc_id != id));
    }

    // 4. Nothing changed on the server; alice's documents are exactly as she left them.
    assert_eq!(server_heads(&server, TEAM, "visit-alice-1"), visit_heads);
    assert_eq!(server_heads(&server, TEAM, "cust-alice"), cust_heads);
    assert_eq!(feed_head(&server, TEAM), head, "no feed entry for refused changes");
    let on_server = visit_of(server.doc(TEAM, "visit-alice-1"));
    assert_eq!(on_server.notes.as_str(), "alice's notes");
    assert_eq!(on_server.state, VisitState::Planned);
    assert_eq!(customer_of(server.doc(TEAM, "cust-alice")).follow_up_status, "none");

    // 5. The manager finds both attempts in the quarantine, attributed to bob.
    let maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);
    let (status, body) = maria.get_json("/v1/quarantine").await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{body}");
    for item in items {
        assert_eq!(item["user"], "bob");
        assert_eq!(item["device"], "bob-phone");
        assert_eq!(item["code"], "not_found");
    }

    // 6. Alice pulls nothing of bob's.
    let quiet = alice.sync().await.expect("alice syncs");
    assert!(quiet.reports.iter().all(|r| r.pulled_changes == 0 && r.pulled_docs == 0), "{quiet:?}");
}

#[tokio::test]
async fn a_rejected_push_to_a_document_outside_the_reps_scope_does_not_hand_back_that_document() {
    // 1. Alice has a visit with private notes and a private customer.
    let (_server, _alice, bob) = alice_with_a_visit_and_bob("confidential: competitor quoted 12% less").await;

    // 2. Bob knows only the ids (they show up in URLs, exports, screenshots). He pushes a change that
    //    has nothing to do with those documents: a fresh little document under his actor.
    for (id, kind) in [("visit-alice-1", DocKind::Visit), ("cust-alice", DocKind::Customer)] {
        let mut probe = Automerge::new().with_actor(ActorId::from(&b"bob-phone"[..]));
        probe
            .transact(|tx| {
                use automerge::transaction::Transactable as _;
                tx.put(automerge::ROOT, "probe", 1_i64)
            })
            .expect("probe change");
        let bytes = changes_since(&probe, &[]);
        let req = bob.push_request(id, kind, bytes);
        let resp = bob.exchange(&req).await.expect("exchange");

        // 3. It is refused, and the refusal must not carry the document: bob may not read it (GET
        //    /v1/docs/{id} answers 404), so neither may the sync answer hand it over.
        assert_eq!(resp.rejected.len(), 1, "{:?}", resp.rejected);
        let r = &resp.rejected[0];
        assert!(
            r.server_doc.is_none(),
            "the rejection of {id} hands bob the whole document ({} bytes): {:?}",
            r.server_doc.as_ref().map_or(0, |b| b.len()),
            r.server_doc
                .as_ref()
                .and_then(|b| Automerge::load(b).ok())
                .and_then(|d| Document::hydrate(&d).ok())
        );
    }
}

#[tokio::test]
async fn a_rep_cannot_locate_a_customer_outside_their_scope_through_check_in_verification() {
    // 1. Alice's private customer is 2 km north of Lyon; bob is not assigned to it.
    let server = team_with_a_shared_and_a_private_customer().await;
    let mut bob = server.synced_device("bob-phone", TEAM, "bob", Role::Rep).await;
    assert!(bob.doc("cust-alice").is_none());

    // 2. Bob plans visits at alice's customer and at a customer that does not exist, and checks in
    //    at the same place for both.
    for (visit, customer) in [("v-probe-1", "cust-alice"), ("v-probe-2", "cust-nobody")] {
        let mut v = fixtures::visit(visit, customer, "bob", MORNING_MS);
        v.checkins.push(fixtures::checkin(&format!("{visit}-ci"), LYON, 5.0, MORNING_MS));
        v.state = VisitState::CheckedIn;
        bob.replica.create(Document::Visit(v), MORNING_MS).expect("plan");
    }
    bob.sync().await.expect("bob pushes");
    bob.sync().await.expect("bob pulls the verdicts");

    // 3. Whatever the server answers, a customer out of scope must look exactly like an unknown one:
    //    no distance to it comes back to bob.
    let verdict = |visit: &str| -> Option<CheckinVerification> {
        bob.doc(visit)
            .map(|d| visit_of(Some(d)))
            .and_then(|v| v.verification.get(&format!("{visit}-ci")).cloned())
    };
    let (probe, unknown) = (verdict("v-probe-1"), verdict("v-probe-2"));
    if let Some(p) = &probe {
        assert!(p.distance_m < 0.0, "bob learns he is {:.0} m from alice's customer: {p:?}", p.distance_m);
    }
    assert_eq!(
        probe.as_ref().map(|p| (p.status, p.reasons.iter().map(|r| r.code.clone()).collect::<Vec<_>>())),
        unknown.as_ref().map(|p| (p.status, p.reasons.iter().map(|r| r.code.clone()).collect::<Vec<_>>())),
        "an out-of-scope customer and an unknown one get the same verdict"
    );
}

// ---------------------------------------------------------------------------------------------
// What a rep may change
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_rep_reassigning_a_customer_or_moving_it_to_another_territory_is_rejected_as_forbidden_field() {
    // 1. Bob holds the shared customer (owned by alice) through the territory.
    let server = team_with_a_shared_and_a_private_customer().await;
    server.seed(TEAM, &[fixtures::territory("terr-north", &["carol"])]);
    let mut bob = server.synced_device("bob-phone", TEAM, "bob", Role::Rep).await;
    let heads = server_heads(&server, TEAM, "cust-shared");

    // 2. A tampered app makes bob the owner; then moves the customer to another territory.
    type Edit = fn(&mut fieldsync_core::docs::Customer);
    let edits: [(&str, Edit); 2] = [
        ("owner_rep", |c| c.owner_rep = Some("bob".into())),
        ("territory", |c| c.territory = Some("terr-north".into())),
    ];
    for (field, edit) in edits {
        let local = bob.replica.update("cust-shared", MORNING_MS, on_customer(edit));
        assert!(local.is_err(), "the library refuses {field} before writing");

        // 3. Sync: rejected with the field named, and bob's device is back on the server's version.
        let rejected = bob.sync_tampered("cust-shared", on_customer(edit)).await;
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert_eq!(rejected[0].code, "forbidden_field");
        assert!(rejected[0].reason.contains(field), "{}", rejected[0].reason);
        let c = customer_of(bob.doc("cust-shared"));
        assert_eq!((c.owner_rep.as_deref(), c.territory.as_deref()), (Some("alice"), Some("terr-shared")));
    }

    // 4. The server's customer is untouched.
    assert_eq!(server_heads(&server, TEAM, "cust-shared"), heads);
    let c = customer_of(server.doc(TEAM, "cust-shared"));
    assert_eq!((c.owner_rep.as_deref(), c.territory.as_deref()), (Some("alice"), Some("terr-shared")));
    assert_eq!(quarantine_len(&server, TEAM), 2);
}

#[tokio::test]
async fn a_rep_creating_a_plan_or_a_territory_or_editing_their_territory_is_rejected_as_forbidden_kind() {
    // 1. Bob is a rep of terr-shared.
    let server = team_with_a_shared_and_a_private_customer().await;
    let mut bob = server.synced_device("bob-phone", TEAM, "bob", Role::Rep).await;
    let head = feed_head(&server, TEAM);

    // 2. A tampered app creates a quarterly plan and a territory of his own (built on a scratch
    //    replica, so the local rules do not stop it) and pushes them with bob's token.
    let mut scratch = scratch_replica("bob-phone");
    scratch
        .create(
            Plan {
                quotas: vec![Quota { rep: Some("bob".into()), tier: Tier::A, amount: 1.0 }],
                ..Plan::new(
                    "plan-2026-q4",
                    "2026-Q4",
                    Cadence { a_days: 7, b_days: 14, c_days: 30 },
                    TierThresholds { a_min_score: 40_000.0, b_min_score: 10_000.0 },
                )
            }
            .into(),
            MORNING_MS,
        )
        .expect("plan");
    scratch.create(fixtures::territory("terr-bob", &["bob"]), MORNING_MS).expect("territory");
    let mut req = scratch.prepare_request();
    req.cursor = bob.replica.cursor().clone();
    let resp = bob.exchange(&req).await.expect("exchange");
    assert!(resp.accepted.is_empty(), "{:?}", resp.accepted);
    let mut codes: Vec<(&str, &str)> =
        resp.rejected.iter().map(|r| (r.doc_id.as_str(), r.code.as_str())).collect();
    codes.sort();
    assert_eq!(codes, [("plan-2026-q4", "forbidden_kind"), ("terr-bob", "forbidden_kind")]);
    assert!(resp.rejected.iter().all(|r| r.server_doc.is_none()), "no server version of new documents");
    assert!(server.doc(TEAM, "plan-2026-q4").is_none() && server.doc(TEAM, "terr-bob").is_none());

    // 3. He adds a friend to his own territory: also refused.
    let add_a_friend = |d: &mut Document| {
        if let Document::Territory(t) = d {
            t.reps.push("mallory".into())
        }
    };
    let rejected = bob.sync_tampered("terr-shared", add_a_friend).await;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].code, "forbidden_kind");
    match server.doc(TEAM, "terr-shared") {
        Some(Document::Territory(t)) => assert_eq!(t.reps, ["alice", "bob"]),
        other => panic!("expected the territory, got {other:?}"),
    }

    // 4. Nothing entered the feed; all three attempts are in the quarantine.
    assert_eq!(feed_head(&server, TEAM), head);
    assert_eq!(quarantine_len(&server, TEAM), 3);
}

/// The shared and private customers' team, where alice checks in 600 m from the shared customer
/// (flagged by the server) and pulls the verdict; with the server's heads of her visit then.
async fn alice_with_a_flagged_checkin() -> (TestServer, Device, Vec<ChangeHash>) {
    let server = team_with_a_shared_and_a_private_customer().await;
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;
    let mut v = fixtures::visit("visit-1", "cust-shared", "alice", MORNING_MS);
    v.checkins.push(fixtures::checkin("ci-1", offset(LYON, 600.0, 0.0), 8.0, MORNING_MS));
    v.state = VisitState::CheckedIn;
    alice.replica.create(Document::Visit(v), MORNING_MS).expect("check in");
    alice.sync().await.expect("push");
    alice.sync().await.expect("pull the verdict");
    assert_eq!(visit_of(alice.doc("visit-1")).verification["ci-1"].status, "flagged");
    let heads = server_heads(&server, TEAM, "visit-1");
    (server, alice, heads)
}

#[tokio::test]
async fn a_rep_overwriting_the_servers_verification_of_their_own_checkin_is_rejected_as_server_field() {
    // 1. Alice's check-in is flagged.
    let (server, mut alice, heads) = alice_with_a_flagged_checkin().await;

    // 2. A tampered app marks it verified, and also slips a verdict in for a check-in that does not
    //    exist.
    let verified = on_visit(|v| {
        let mut ok = v.verification["ci-1"].clone();
        ok.status = fieldsync_core::geo::VerificationStatus::Verified;
        ok.reasons.clear();
        ok.distance_m = 3.0;
        v.verification.insert("ci-1".into(), ok.clone());
        v.verification.insert("ci-ghost".into(), ok);
    });

    // 3. Rejected; the server keeps its flag, and so does alice's device after the reset.
    let rejected = alice.sync_tampered("visit-1", verified).await;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].code, "server_field");
    assert_eq!(server_heads(&server, TEAM, "visit-1"), heads);
    let on_server = visit_of(server.doc(TEAM, "visit-1"));
    assert_eq!(on_server.verification["ci-1"].status, "flagged");
    assert!(!on_server.verification.contains_key("ci-ghost"));
    assert_eq!(visit_of(alice.doc("visit-1")).verification["ci-1"].status, "flagged");
}

#[tokio::test]
async fn a_rep_moving_an_existing_checkin_is_rejected_as_append_only_while_appending_one_is_accepted() {
    // 1. Alice's check-in is flagged: 600 m from the customer.
    let (server, mut alice, heads) = alice_with_a_flagged_checkin().await;

    // 2. A tampered app moves the check-in onto the customer's door.
    let rejected =
        alice.sync_tampered("visit-1", on_visit(|v| (v.checkins[0].lat, v.checkins[0].lon) = LYON)).await;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].code, "append_only");
    assert_eq!(server_heads(&server, TEAM, "visit-1"), heads);
    let moved = visit_of(server.doc(TEAM, "visit-1"));
    assert_eq!(moved.checkins.len(), 1);
    assert!(
        (moved.checkins[0].lat - offset(LYON, 600.0, 0.0).0).abs() < 1e-9,
        "the check-in stays where it was"
    );

    // 3. Removing it is refused the same way.
    let removed = on_visit(|v| {
        v.checkins.clear();
        v.verification.clear();
    });
    let rejected = alice.sync_tampered("visit-1", removed).await;
    let codes: Vec<&str> = rejected.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["append_only"]);

    // 4. Walking to the door and checking in again ten minutes later is what the app is for: accepted
    //    and verified.
    server.clock().set_ms(MORNING_MS + 660_000);
    alice
        .replica
        .update(
            "visit-1",
            MORNING_MS + 600_000,
            on_visit(|v| v.checkins.push(fixtures::checkin("ci-2", LYON, 5.0, MORNING_MS + 600_000))),
        )
        .expect("append a check-in");
    let outcome = alice.sync().await.expect("sync");
    assert!(outcome.rejected().is_empty(), "{:?}", outcome.rejected());
    let v = visit_of(server.doc(TEAM, "visit-1"));
    assert_eq!(v.checkins.len(), 2);
    assert_eq!(v.verification["ci-1"].status, "flagged");
    assert_eq!(v.verification["ci-2"].status, "verified", "{:?}", v.verification["ci-2"]);
}

#[tokio::test]
async fn a_manager_sets_a_tier_only_by_recording_themself_and_the_owner_rep_receives_it() {
    // 1. Maria manages the team; alice owns the customer.
    let server = team_with_a_shared_and_a_private_customer().await;
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;
    let mut maria = server.synced_device("maria-tablet", TEAM, "maria", Role::Manager).await;

    // 2. Maria's outdated app promotes the customer without recording who did it, or crediting
    //    alice: rejected.
    for credited in [None, Some("alice")] {
        let promoted = on_customer(|c| {
            c.tier = Some(Tier::A);
            c.tier_set_by = credited.map(str::to_string);
        });
        let rejected = maria.sync_tampered("cust-shared", promoted).await;
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert_eq!(rejected[0].code, "forbidden_field");
        assert!(rejected[0].reason.contains("tier_set_by"), "{}", rejected[0].reason);
        assert_eq!(customer_of(server.doc(TEAM, "cust-shared")).tier, Some(Tier::B));
    }

    // 3. Done properly, recording herself: accepted.
    let at = MORNING_MS + 60_000;
    maria
        .replica
        .update(
            "cust-shared",
            at,
            on_customer(|c| {
                c.tier = Some(Tier::A);
                c.tier_set_by = Some("maria".into());
                c.tier_set_at_ms = Some(at);
            }),
        )
        .expect("the library allows it");
    let outcome = maria.sync().await.expect("sync");
    assert!(outcome.rejected().is_empty(), "{:?}", outcome.rejected());

    // 4. Alice, the owner, receives the new tier and who set it.
    alice.sync().await.expect("alice pulls");
    let c = customer_of(alice.doc("cust-shared"));
    assert_eq!(c.tier, Some(Tier::A));
    assert_eq!(c.tier_set_by.as_deref(), Some("maria"));
    assert_eq!(c.tier_set_at_ms, Some(at));
    assert_eq!(
        alice.replica.heads("cust-shared").map(sorted),
        Some(server_heads(&server, TEAM, "cust-shared"))
    );
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

fn real_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// SHA-256 (FIPS 180-4), enough to sign test tokens with HS256.
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];
    let mut h: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for (wi, word) in w.iter_mut().zip(block.chunks(4)) {
            *wi = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for (k, wi) in K.iter().zip(w) {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(*k).wrapping_add(wi);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            (hh, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (o, x) in out.chunks_mut(4).zip(h) {
        o.copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&sha256(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(msg);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha256(&inner));
    sha256(&outer)
}

/// A JWT with the given header and claims, signed HS256 with `secret` (or unsigned for `None`).
fn jwt(header: &serde_json::Value, claims: &serde_json::Value, secret: Option<&[u8]>) -> String {
    let signing_input =
        format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let signature = secret.map(|s| b64url(&hmac_sha256(s, signing_input.as_bytes()))).unwrap_or_default();
    format!("{signing_input}.{signature}")
}

fn claims(user: &str, team: &str, role: &str, aud: &str, iss: &str) -> serde_json::Value {
    let now = real_now();
    serde_json::json!({
        "sub": user, "team": team, "role": role, "exp": now + 3600, "nbf": now, "iat": now,
        "iss": iss, "aud": aud,
    })
}

fn hs256_header() -> serde_json::Value {
    serde_json::json!({ "typ": "JWT", "alg": "HS256" })
}

/// Sends `method path` with an optional raw `Authorization` header value: (status, headers, body).
async fn call(
    at: &Endpoint,
    method: &str,
    path: &str,
    authorization: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let url = format!("{}{}", at.url, path);
    let mut req =
        match method {
            "POST" => at.http.post(url).header("content-type", CONTENT_TYPE).body(
                SyncRequest { device_id: "dev-1".into(), cursor: Cursor::Start, push: vec![] }.encode(),
            ),
            _ => at.http.get(url),
        };
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    let resp = req.send().await.expect("the server answers");
    let headers = resp.headers().clone();
    let (status, body) = json_answer(resp).await;
    (status, headers, body)
}

/// Every endpoint that needs a token refuses this Authorization header with 401 and a JSON body.
async fn assert_unauthorized(at: &Endpoint, name: &str, authorization: Option<&str>) {
    for (method, path) in [("POST", "/v1/sync"), ("GET", "/v1/docs/cust-shared"), ("GET", "/v1/quarantine")] {
        let (status, headers, body) = call(at, method, path, authorization).await;
        assert_eq!(status, 401, "{name}: {method} {path} answered {status} {body}");
        assert_eq!(body["error"], "unauthorized", "{name}: {method} {path}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: a message: {body}");
        assert_eq!(
            headers.get("www-authenticate").and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "{name}: the challenge"
        );
    }
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_with_a_json_body_and_the_server_keeps_serving() {
    // 1. A team and a manager with a good token (the control).
    let server = team_with_a_shared_and_a_private_customer().await;
    let maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);
    let at = Endpoint::of(&maria);
    let good = format!("Bearer {}", maria.token);
    for (method, path) in [("POST", "/v1/sync"), ("GET", "/v1/docs/cust-shared"), ("GET", "/v1/quarantine")] {
        let (status, _, body) = call(&at, method, path, Some(&good)).await;
        assert_eq!(status, 200, "control: {method} {path}: {body}");
    }

    // 2. Tokens that must not pass.
    let now = real_now();
    let auth = server.server().auth();
    let expired =
        auth.issue(TEAM, "maria", Role::Manager, Duration::from_secs(1), now - 3600).expect("expired token");
    let not_yet =
        auth.issue(TEAM, "maria", Role::Manager, Duration::from_secs(3600), now + 3600).expect("future");
    let foreign_authority =
        Authenticator::new(&AuthConfig::dev(vec![7u8; 32]).expect("config")).expect("auth");
    let foreign = foreign_authority
        .issue(TEAM, "maria", Role::Manager, Duration::from_secs(3600), now)
        .expect("token of another server");
    let unsigned = jwt(
        &serde_json::json!({ "alg": "none", "typ": "JWT" }),
        &claims("maria", TEAM, "manager", "fieldsync", "fieldsync"),
        None,
    );
    // The good token's header and signature around claims promoted to admin.
    let parts: Vec<&str> = maria.token.split('.').collect();
    let mut promoted_claims: serde_json::Value =
        serde_json::from_slice(&b64url_decode(parts[1])).expect("claims");
    promoted_claims["role"] = "admin".into();
    let promoted = format!("{}.{}.{}", parts[0], b64url(promoted_claims.to_string().as_bytes()), parts[2]);
    // A good signature moved onto an alg:none header.
    let alg_none_with_signature =
        format!("{}.{}.{}", b64url(br#"{"alg":"none","typ":"JWT"}"#), parts[1], parts[2]);

    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("empty", Some(String::new())),
        ("bearer without a token", Some("Bearer ".into())),
        ("basic auth", Some("Basic bWFyaWE6c2VjcmV0".into())),
        ("token without scheme", Some(maria.token.clone())),
        ("garbage", Some("Bearer not.a.jwt".into())),
        ("two parts", Some("Bearer abc.def".into())),
        ("expired", Some(format!("Bearer {expired}"))),
        ("not valid yet", Some(format!("Bearer {not_yet}"))),
        ("signed with another secret", Some(format!("Bearer {foreign}"))),
        ("alg none", Some(format!("Bearer {unsigned}"))),
        ("alg none keeping a real signature", Some(format!("Bearer {alg_none_with_signature}"))),
        ("claims edited after signing", Some(format!("Bearer {promoted}"))),
        ("truncated signature", Some(format!("Bearer {}", &maria.token[..maria.token.len() - 3]))),
        ("huge", Some(format!("Bearer {}", "a".repeat(20_000)))),
    ];
    for (name, header) in &cases {
        assert_unauthorized(&at, name, header.as_deref()).await;
    }

    // 3. After all of that the server is healthy and the good token still works.
    healthz_ok(&at).await;
    let (status, _, body) = call(&at, "GET", "/v1/quarantine", Some(&good)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"], serde_json::json!([]), "no refused request left a trace");
}

/// A server whose dev secret the test knows, so it can sign tokens of its own.
struct KnownSecretServer {
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
    at: Endpoint,
}

const KNOWN_SECRET: [u8; 32] = *b"fieldsync-e2e-known-test-secret!";

async fn known_secret_server() -> KnownSecretServer {
    let dir = tempfile::tempdir().expect("data dir");
    let config = fieldsync_server::ServerConfig {
        auth: Some(AuthConfig::dev(KNOWN_SECRET.to_vec()).expect("auth config")),
        ..fieldsync_server::ServerConfig::dev(dir.path())
    };
    let server = fieldsync_server::Server::open(config).expect("open server");
    server
        .engine()
        .write_as_server(
            TEAM,
            &fixtures::territory_with_customer("terr-shared", &["alice"], "cust-shared"),
            MORNING_MS,
        )
        .expect("seed");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(fieldsync_server::run(listener, server.state(), async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
    KnownSecretServer { _dir: dir, _stop: stop, at: Endpoint { url, http } }
}

#[tokio::test]
async fn correctly_signed_tokens_for_another_audience_or_issuer_or_with_bad_claims_get_401() {
    // 1. Our own HS256 agrees with the server's: a token it issued has the signature we compute.
    let authority =
        Authenticator::new(&AuthConfig::dev(KNOWN_SECRET.to_vec()).expect("config")).expect("auth");
    let issued =
        authority.issue(TEAM, "alice", Role::Rep, Duration::from_secs(3600), real_now()).expect("issue");
    let (signing_input, signature) = issued.rsplit_once('.').expect("a JWT");
    assert_eq!(b64url(&hmac_sha256(&KNOWN_SECRET, signing_input.as_bytes())), signature);
    assert_eq!(
        b64url(&sha256(b"abc")),
        b64url(&[
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
            0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad
        ])
    );

    // 2. A server with that secret accepts a token we sign with the right claims (the control).
    let s = known_secret_server().await;
    let ok =
        jwt(&hs256_header(), &claims("alice", TEAM, "rep", "fieldsync", "fieldsync"), Some(&KNOWN_SECRET));
    let (status, _, body) = call(&s.at, "GET", "/v1/docs/cust-shared", Some(&format!("Bearer {ok}"))).await;
    assert_eq!(status, 200, "control: {body}");

    // 3. Correctly signed, but wrong in what they say.
    let mut no_aud = claims("alice", TEAM, "rep", "fieldsync", "fieldsync");
    no_aud.as_object_mut().expect("object").remove("aud");
    let mut no_team = claims("alice", TEAM, "rep", "fieldsync", "fieldsync");
    no_team.as_object_mut().expect("object").remove("team");
    let mut no_exp = claims("alice", TEAM, "rep", "fieldsync", "fieldsync");
    no_exp.as_object_mut().expect("object").remove("exp");
    let cases: Vec<(&str, serde_json::Value)> = vec![
        ("another audience", claims("alice", TEAM, "rep", "billing-service", "fieldsync")),
        ("another issuer", claims("alice", TEAM, "rep", "fieldsync", "https://evil.example")),
        ("no audience", no_aud),
        ("no team", no_team),
        ("no expiry", no_exp),
        ("unknown role", claims("alice", TEAM, "owner", "fieldsync", "fieldsync")),
        ("team with a path separator", claims("alice", "acme/../other", "rep", "fieldsync", "fieldsync")),
        ("user with a key separator", claims("alice\u{0}x", TEAM, "rep", "fieldsync", "fieldsync")),
        ("empty user", claims("", TEAM, "rep", "fieldsync", "fieldsync")),
    ];
    for (name, c) in &cases {
        let token = jwt(&hs256_header(), c, Some(&KNOWN_SECRET));
        assert_unauthorized(&s.at, name, Some(&format!("Bearer {token}"))).await;
    }
    // HS256 named in the header but another algorithm's name, and a header without alg at all.
    for (name, header) in [
        ("HS512 header", serde_json::json!({ "typ": "JWT", "alg": "HS512" })),
        ("no alg", serde_json::json!({ "typ": "JWT" })),
    ] {
        let token =
            jwt(&header, &claims("alice", TEAM, "rep", "fieldsync", "fieldsync"), Some(&KNOWN_SECRET));
        assert_unauthorized(&s.at, name, Some(&format!("Bearer {token}"))).await;
    }

    // 4. Still serving, and the control still passes.
    healthz_ok(&s.at).await;
    let (status, _, body) = call(&s.at, "GET", "/v1/docs/cust-shared", Some(&format!("Bearer {ok}"))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_rep_may_not_read_the_quarantine() {
    // 1. A rep and a manager of the same team.
    let server = team_with_a_shared_and_a_private_customer().await;
    let alice = server.add_device("alice-phone", TEAM, "alice", Role::Rep);
    let maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);

    // 2. The rep gets 403 with a JSON body, whatever the query; the manager gets the list.
    for path in ["/v1/quarantine", "/v1/quarantine?limit=5"] {
        let (status, body) = alice.get_json(path).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"], "forbidden");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, body) = maria.get_json("/v1/quarantine").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["items"].is_array());
    healthz_ok(&Endpoint::of(&alice)).await;
}
