//! A manager reviews the check-ins the server flagged: the decision lands in the visit as the
//! server's, reaches the rep's phone with the next sync, leaves the list to review, and the
//! reports count it. Nobody else can make or forge one.

use fieldsync_core::Role;
use fieldsync_core::docs::{CheckinReview, Document, ReviewDecision, on_visit};
use fieldsync_e2e::{MORNING_MS, TestServer, visit_of};
use serde_json::json;

const TEAM: &str = "demo";
const DAY_MS: i64 = 86_400_000;

#[tokio::test]
async fn a_manager_approves_a_flagged_check_in_and_the_rep_sees_it_on_the_next_sync() {
    let server = TestServer::demo().await;
    let maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);

    // 1. The check-ins to review: the seed's far ones, oldest first.
    let (status, pending) = maria.get_json("/v1/reviews/checkins").await;
    assert_eq!(status, 200, "{pending}");
    let total = pending["total"].as_u64().expect("total");
    assert!(total > 0, "{pending}");
    let first = &pending["items"][0];
    let (visit_id, checkin_id, rep) = (
        first["visit_id"].as_str().expect("visit").to_string(),
        first["checkin_id"].as_str().expect("check-in").to_string(),
        first["rep"].as_str().expect("rep").to_string(),
    );
    assert!(first["codes"].as_array().is_some_and(|c| !c.is_empty()), "{first}");
    let mut phone = server.synced_device(&format!("{rep}-phone"), TEAM, &rep, Role::Rep).await;

    // The rep cannot approve their own check-in: a review pushed from the phone is refused.
    let forged = checkin_id.clone();
    phone
        .replica
        .update_unchecked(
            &visit_id,
            MORNING_MS,
            on_visit(move |v| {
                if let Some(j) = v.verification.get_mut(&forged) {
                    j.review = Some(CheckinReview {
                        decision: ReviewDecision::Approved,
                        by: "maria".into(),
                        comment: "trust me".into(),
                        at_ms: 0,
                    });
                }
            }),
        )
        .expect("a tampered write");
    let outcome = phone.sync().await.expect("sync");
    let refused: Vec<&str> = outcome.rejected().iter().map(|r| r.code.as_str()).collect();
    assert_eq!(refused, ["server_field"], "{:?}", outcome.rejected());
    assert!(visit_of(server.doc(TEAM, &visit_id)).verification[&checkin_id].review.is_none());

    // 2. Maria approves it with a comment.
    let body = json!({ "visit_id": visit_id, "checkin_id": checkin_id, "decision": "approved",
                       "comment": "the shop moved across the street" });
    let (status, answer) = maria.post_json("/v1/reviews/checkins", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["review"]["by"], "maria");

    // 3. It is in the stored visit, written by the server; it left the list.
    let review =
        |doc: Option<Document>| visit_of(doc).verification[&checkin_id].review.clone().expect("a review");
    let stored = review(server.doc(TEAM, &visit_id));
    assert_eq!((stored.decision, stored.by.as_str()), (ReviewDecision::Approved, "maria"));
    assert_eq!(stored.at_ms, MORNING_MS);
    let (_, after) = maria.get_json("/v1/reviews/checkins").await;
    assert_eq!(after["total"].as_u64(), Some(total - 1), "{after}");
    assert!(after["items"].as_array().expect("items").iter().all(|i| i["checkin_id"] != checkin_id.as_str()));

    // 4. The rep's phone receives it with the next sync.
    phone.sync().await.expect("sync");
    assert_eq!(review(phone.doc(&visit_id)).comment, "the shop moved across the street");

    // 5. The reports count it.
    let q = format!("/v1/reports/visits?from_ms={}&to_ms={}", MORNING_MS - 15 * DAY_MS, MORNING_MS + DAY_MS);
    let (_, report) = maria.get_json(&q).await;
    assert_eq!(report["reviews_approved"], 1, "{report}");
    assert_eq!(report["awaiting_review"].as_u64(), Some(total - 1), "{report}");
    let listed = report["flagged_checkins"].as_array().expect("flagged");
    let it = listed.iter().find(|f| f["checkin_id"] == checkin_id.as_str()).expect("still listed as flagged");
    assert_eq!(it["review"]["decision"], "approved", "{it}");

    // 6. A second decision replaces the first (a manager may correct themself).
    let body = json!({ "visit_id": visit_id, "checkin_id": checkin_id, "decision": "rejected" });
    assert_eq!(maria.post_json("/v1/reviews/checkins", &body).await.0, 200);
    assert_eq!(review(server.doc(TEAM, &visit_id)).decision, ReviewDecision::Rejected);
}

#[tokio::test]
async fn only_managers_review_and_only_what_the_server_flagged() {
    let server = TestServer::demo().await;
    let maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);
    let alice = server.add_device("alice-phone", TEAM, "alice", Role::Rep);
    let (_, pending) = maria.get_json("/v1/reviews/checkins").await;
    let item = &pending["items"][0];
    let (visit_id, checkin_id) = (item["visit_id"].as_str().unwrap(), item["checkin_id"].as_str().unwrap());
    // A verified check-in of the seed: any visit whose check-in is not in the pending list.
    let verified = server
        .server()
        .engine()
        .team_documents(TEAM)
        .expect("documents")
        .into_iter()
        .find_map(|d| match d {
            Document::Visit(v) => v
                .verification
                .iter()
                .find(|(_, j)| j.status == "verified")
                .map(|(ck, _)| (v.id.clone(), ck.clone())),
            _ => None,
        })
        .expect("a verified check-in");
    let review = |visit: &str, ck: &str, decision: &str, comment: String| json!({ "visit_id": visit, "checkin_id": ck, "decision": decision, "comment": comment });
    let cases = [
        ("a rep", &alice, review(visit_id, checkin_id, "approved", String::new()), 403, "forbidden"),
        (
            "no such visit",
            &maria,
            review("visit-nope", checkin_id, "approved", String::new()),
            404,
            "not_found",
        ),
        (
            "no such check-in",
            &maria,
            review(visit_id, "ci-nope", "approved", String::new()),
            404,
            "not_found",
        ),
        (
            "a verified check-in",
            &maria,
            review(&verified.0, &verified.1, "approved", String::new()),
            409,
            "not_flagged",
        ),
        (
            "a novel as comment",
            &maria,
            review(visit_id, checkin_id, "approved", "x".repeat(2001)),
            422,
            "invalid_request",
        ),
        (
            "no such decision",
            &maria,
            review(visit_id, checkin_id, "maybe", String::new()),
            400,
            "bad_request",
        ),
        ("a bad id", &maria, review("a/b", checkin_id, "approved", String::new()), 400, "bad_request"),
    ];
    for (what, who, body, status, code) in cases {
        let (got, answer) = who.post_json("/v1/reviews/checkins", &body).await;
        assert_eq!((got, answer["error"].as_str()), (status, Some(code)), "{what}: {answer}");
    }
    assert_eq!(alice.get_json("/v1/reviews/checkins").await.0, 403);
    // Nothing was written by any of them.
    let (_, again) = maria.get_json("/v1/reviews/checkins").await;
    assert_eq!(again["total"], pending["total"]);
    // Another team's manager cannot reach this team's visit: out of scope is missing.
    let stranger = server.add_device("zz-tablet", "other-team", "zed", Role::Manager);
    let (got, answer) = stranger
        .post_json("/v1/reviews/checkins", &review(visit_id, checkin_id, "approved", String::new()))
        .await;
    assert_eq!((got, answer["error"].as_str()), (404, Some("not_found")), "{answer}");
}
