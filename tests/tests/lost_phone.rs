//! A rep loses their phone: a manager revokes it. Its next sync is refused with a typed 403 and
//! nothing it sends is applied, while the rep's new phone syncs normally; reps cannot revoke, and
//! another team's device of the same id is untouched.

use fieldsync_core::Role;
use fieldsync_core::docs::Document;
use fieldsync_e2e::{DeviceError, MORNING_MS, TestServer, fixtures};
use serde_json::json;

#[tokio::test]
async fn a_revoked_phone_is_refused_and_applies_nothing_while_the_reps_new_phone_syncs() {
    let server =
        TestServer::seeded("t", &fixtures::territory_with_customer("t-alice", &["alice"], "c-1")).await;
    server.seed("other", &fixtures::territory_with_customer("t-zoe", &["zoe"], "c-9"));
    let maria = server.add_device("maria-tablet", "t", "maria", Role::Manager);
    let mut lost = server.synced_device("alice-phone", "t", "alice", Role::Rep).await;
    assert!(lost.doc("c-1").is_some(), "the phone holds her customer");

    // 1. A rep cannot revoke anyone's phone, not even their own.
    let (status, err) = lost.post_json("/v1/devices/revoke", &json!({ "device_id": "alice-phone" })).await;
    assert_eq!((status, err["error"].as_str()), (403, Some("forbidden")), "{err}");

    // 2. Her manager revokes it.
    let (status, revoked) = maria
        .post_json("/v1/devices/revoke", &json!({ "device_id": "alice-phone", "reason": "lost in Lyon" }))
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!((revoked["by"].as_str(), revoked["reason"].as_str()), (Some("maria"), Some("lost in Lyon")));

    // 3. Whoever holds the phone writes and syncs: refused, typed, and nothing applied.
    lost.replica.set_customer_notes("c-1", "written by whoever found the phone", MORNING_MS).expect("note");
    match lost.sync().await {
        Err(DeviceError::Http { status, body }) => {
            assert_eq!((status, body["error"].as_str()), (403, Some("device_revoked")), "{body}")
        }
        other => panic!("the revoked phone synced: {other:?}"),
    }
    match server.doc("t", "c-1") {
        Some(Document::Customer(c)) => assert_eq!(c.notes.as_str(), "", "nothing it sent was applied"),
        other => panic!("{other:?}"),
    }

    // 4. Her new phone bootstraps and syncs as usual.
    let mut new_phone = server.synced_device("alice-phone-2", "t", "alice", Role::Rep).await;
    assert!(new_phone.doc("c-1").is_some());
    new_phone.replica.set_customer_notes("c-1", "Call back on Monday.", MORNING_MS).expect("note");
    new_phone.sync().await.expect("the new phone syncs");
    match server.doc("t", "c-1") {
        Some(Document::Customer(c)) => assert_eq!(c.notes.as_str(), "Call back on Monday."),
        other => panic!("{other:?}"),
    }

    // 5. Revocations are per team: another team's device of the same id syncs.
    server.synced_device("alice-phone", "other", "zoe", Role::Rep).await;

    // 6. Bad input is a typed 4xx.
    for body in
        [json!({ "device_id": "a/b" }), json!({ "device_id": "x", "reason": "r".repeat(501) }), json!({})]
    {
        let (status, err) = maria.post_json("/v1/devices/revoke", &body).await;
        assert!(matches!(status, 400 | 422), "{body}: {status} {err}");
        assert!(err["error"].is_string(), "{err}");
    }
}
