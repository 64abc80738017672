//! The story again, with the device library itself (`fieldsync-mobile`'s `FieldsyncClient`, the object
//! the apps hold) as the phones and the tablet: its sled store, its HTTP client, its sync loop.

use fieldsync_core::Role;
use fieldsync_core::geo::VerificationStatus;
use fieldsync_e2e::fixtures::{self, LYON, offset};
use fieldsync_e2e::{MORNING_MS, TestServer};
use fieldsync_mobile::{FieldsyncClient, FieldsyncError, GpsFix};

const TEAM: &str = "acme";

fn phone(
    server: &TestServer,
    user: &str,
    role: Role,
) -> (std::sync::Arc<FieldsyncClient>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("store dir");
    let client = FieldsyncClient::open(dir.path().display().to_string(), server.url()).expect("open store");
    client.set_token(server.token(TEAM, user, role)).expect("token");
    (client, dir)
}

/// A GPS fix at `at`, as the phone's location service reports it.
fn fix(at: (f64, f64), accuracy_m: f64, device_time_ms: i64) -> GpsFix {
    GpsFix { lat: at.0, lon: at.1, accuracy_m, device_time_ms, mock_location: false }
}

/// Blocking library calls, run off the async runtime that serves the test server.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reps_and_a_manager_on_the_device_library_end_up_with_the_same_documents() {
    // 1. The team: alice and bob share a territory and its customer.
    let server =
        TestServer::seeded(TEAM, &fixtures::territory_with_customer("terr-1", &["alice", "bob"], "cust-1"))
            .await;
    let (alice, _a) = phone(&server, "alice", Role::Rep);
    let (bob, _b) = phone(&server, "bob", Role::Rep);
    let (maria, _m) = phone(&server, "maria", Role::Manager);
    blocking(|| {
        alice.sync(None).expect("alice bootstraps");
        bob.sync(None).expect("bob bootstraps");
    });

    // 2. Offline in the field: no server at this address.
    alice.set_server_url("http://127.0.0.1:1".into());
    bob.set_server_url("http://127.0.0.1:1".into());
    let now = MORNING_MS + 3_600_000;
    server.clock().set_ms(now + 2 * 3_600_000);
    let (va, vb) = blocking(|| {
        let va = alice.plan_visit("cust-1".into(), now, now + 2_700_000).expect("plan");
        let ok = alice.check_in(va.id.clone(), fix(offset(LYON, 15.0, 5.0), 8.0, now)).expect("check in");
        assert_eq!(ok.verification.status, VerificationStatus::Verified);
        alice.set_visit_notes(va.id.clone(), "Owner wants the spring catalogue.".into()).expect("note");
        alice.set_customer_notes("cust-1".into(), "Alice: ordered 3 pallets.".into()).expect("customer note");

        let vb = bob.plan_visit("cust-1".into(), now, now + 2_700_000).expect("plan");
        let far = fix(offset(LYON, 600.0, 0.0), 10.0, now + 60_000);
        let flagged = bob.check_in(vb.id.clone(), far).expect("check in");
        assert_eq!(flagged.verification.status, VerificationStatus::Flagged, "flagged on the spot");
        bob.set_customer_notes("cust-1".into(), "Bob: asks for a demo.".into()).expect("customer note");
        assert!(matches!(alice.sync(None), Err(FieldsyncError::Offline { .. })));
        assert_eq!(alice.outbox_size(), 2);
        (va, vb)
    });

    // 3. Back online, everybody syncs (the reps twice, to pull what the others pushed).
    alice.set_server_url(server.url());
    bob.set_server_url(server.url());
    blocking(|| {
        for d in [&alice, &bob, &maria, &alice, &bob] {
            let s = d.sync(None).expect("sync");
            assert!(s.rejected.is_empty(), "honest edits are accepted: {:?}", s.rejected);
            assert_eq!(s.outbox_size, 0);
        }
    });

    // 4. The manager sees both visits, the server's verdicts, and both notes merged.
    blocking(|| {
        let a = maria.get_visit(va.id.clone()).expect("alice's visit");
        let b = maria.get_visit(vb.id.clone()).expect("bob's visit");
        assert_eq!(a.verification[&a.checkins[0].id].status, "verified");
        let flag = &b.verification[&b.checkins[0].id];
        assert_eq!(flag.status, "flagged");
        assert!(flag.reasons.iter().any(|r| r.code == "outside_fence"));
        let notes = maria.get_customer("cust-1".into()).expect("customer").notes;
        assert!(
            notes.as_str().contains("Alice: ordered 3 pallets.")
                && notes.as_str().contains("Bob: asks for a demo."),
            "{notes:?}"
        );

        // 5. Every device holds exactly the server's version of what it holds.
        for id in ["cust-1", va.id.as_str()] {
            let on_server = serde_json::to_value(server.doc(TEAM, id).expect("on the server")).expect("json");
            for d in [&alice, &maria] {
                let local: serde_json::Value =
                    serde_json::from_str(&d.document_json(id.into()).expect("held")).expect("json");
                assert_eq!(local, on_server, "{id} on {}", d.device_id());
            }
        }
        assert!(bob.get_visit(va.id.clone()).is_err(), "a rep never receives another rep's visit");
    });
}
