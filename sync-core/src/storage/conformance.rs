//! The conformance suite: every [`Storage`] implementation runs it (`run_all`) in its own tests.
//!
//! Test support, so behind the `testing` feature (never in the phone library): a storage crate
//! enables it from its dev-dependencies.

use super::*;

fn entry(doc: &str, body: &[u8], audience: Audience) -> (String, DocKind, Audience, FeedBody) {
    (doc.to_string(), DocKind::Visit, audience, FeedBody::Changes(ByteBuf::from(body.to_vec())))
}

fn write(doc: &str, audience: Audience, data: DocData) -> DocWrite {
    DocWrite { doc_id: doc.to_string(), kind: DocKind::Visit, audience, data }
}

/// A stored chunk: stores check that what they load is still what they wrote.
fn c(bytes: &[u8]) -> Vec<u8> {
    crate::chunks::frame(1, bytes)
}

fn users(u: &[&str]) -> Audience {
    Audience::Users(u.iter().map(|s| s.to_string()).collect())
}

/// Runs every check against fresh stores from `make`. Panics (test failure) on the first
/// violation, naming it.
pub fn run_all<S: Storage>(make: impl Fn() -> S) {
    documents_append_and_load_in_order(&make());
    replace_compacts_to_one_chunk(&make());
    feed_is_ordered_and_paged(&make());
    a_stale_head_conflicts_and_applies_nothing(&make());
    audience_index_follows_the_document(&make());
    teams_never_see_each_other(&make());
    trimming_moves_the_horizon(&make());
    quarantine_and_checkins_are_kept(&make());
    the_report_index_is_kept_per_team(&make());
    revoked_devices_are_kept_per_team(&make());
}

pub fn revoked_devices_are_kept_per_team<S: Storage>(s: &S) {
    use crate::storage::DeviceRevocation;
    let lost = DeviceRevocation {
        device_id: "alice-phone".into(),
        by: "maria".into(),
        at_ms: 7,
        reason: "lost".into(),
    };
    assert_eq!(s.device_revocation("t1", "alice-phone").expect("read"), None);
    s.revoke_device("t1", &lost).expect("revoke");
    assert_eq!(s.device_revocation("t1", "alice-phone").expect("read"), Some(lost.clone()));
    // Revoking again keeps the first record; another team's device of the same id is untouched.
    let kept = s
        .revoke_device("t1", &DeviceRevocation { by: "root".into(), at_ms: 9, ..lost.clone() })
        .expect("again");
    assert_eq!(kept, lost, "revoking again answers the first record");
    assert_eq!(s.device_revocation("t1", "alice-phone").expect("read"), Some(lost));
    assert_eq!(s.device_revocation("t2", "alice-phone").expect("read"), None);
    assert_eq!(s.device_revocation("t1", "alice-phone-2").expect("read"), None);
}

pub fn the_report_index_is_kept_per_team<S: Storage>(s: &S) {
    use crate::docs::{Customer, Document, GeoPoint};
    use crate::index::{IndexRow, StageChange};
    let row = |id: &str, stage: &str| {
        let c = Customer {
            opportunity_stage: stage.into(),
            ..Customer::new(id, "Shop", GeoPoint::wgs84(45.0, 4.0), "m")
        };
        IndexRow::of(&Document::Customer(c), 7).expect("a row")
    };
    assert!(!s.has_index("t1").expect("has index"));
    let mut b = Batch::new("t1", 0);
    b.index.push(row("c2", "proposal"));
    b.index.push(row("c1", "qualification"));
    let change = StageChange {
        customer_id: "c2".into(),
        rep: None,
        from: "qualification".into(),
        to: "proposal".into(),
        at_ms: 7,
    };
    b.stage_changes.push(change.clone());
    s.commit(b).expect("commit");
    // The last row of a document wins; rows come in id order.
    let mut b = Batch::new("t1", 0);
    b.index.push(row("c1", "won"));
    s.commit(b).expect("commit");
    assert!(s.has_index("t1").expect("has index"));
    assert_eq!(s.index_rows("t1").expect("rows"), vec![row("c1", "won"), row("c2", "proposal")]);
    assert_eq!(s.index_row("t1", "c1").expect("row"), Some(row("c1", "won")));
    assert_eq!(s.stage_changes("t1").expect("changes"), vec![change]);
    // Another team sees none of it.
    assert!(!s.has_index("t2").expect("has index"));
    assert!(
        s.index_rows("t2").expect("rows").is_empty() && s.stage_changes("t2").expect("changes").is_empty()
    );
    assert_eq!(s.index_row("t2", "c1").expect("row"), None);
}

pub fn documents_append_and_load_in_order<S: Storage>(s: &S) {
    let mut b = Batch::new("t1", 0);
    b.docs.push(write("d1", users(&["alice"]), DocData::Append(c(b"one"))));
    b.docs.push(write("d1", users(&["alice"]), DocData::Append(c(b"two"))));
    s.commit(b).expect("commit");
    let mut b = Batch::new("t1", 0);
    b.docs.push(write("d1", users(&["alice"]), DocData::Append(c(b"three"))));
    s.commit(b).expect("second commit");
    assert_eq!(
        s.load_doc("t1", "d1").expect("load").as_deref(),
        Some(&[c(b"one"), c(b"two"), c(b"three")].concat()[..])
    );
    let meta = s.doc_meta("t1", "d1").expect("meta").expect("meta exists");
    assert_eq!(meta.chunks, 3);
    assert_eq!(s.load_doc("t1", "nope").expect("load missing"), None);
    assert_eq!(s.doc_meta("t1", "nope").expect("meta missing"), None);
}

pub fn replace_compacts_to_one_chunk<S: Storage>(s: &S) {
    let mut b = Batch::new("t1", 0);
    for part in ["a", "b", "c"] {
        b.docs.push(write("d1", Audience::Team, DocData::Append(c(part.as_bytes()))));
    }
    s.commit(b).expect("commit");
    let mut b = Batch::new("t1", 0);
    b.docs.push(write("d1", Audience::Team, DocData::Replace(c(b"ABC"))));
    s.commit(b).expect("replace");
    assert_eq!(s.load_doc("t1", "d1").expect("load").as_deref(), Some(&c(b"ABC")[..]));
    assert_eq!(s.doc_meta("t1", "d1").expect("meta").map(|m| m.chunks), Some(1));
    let mut b = Batch::new("t1", 0);
    b.docs.push(write("d1", Audience::Team, DocData::Append(c(b"D"))));
    s.commit(b).expect("append after replace");
    assert_eq!(s.load_doc("t1", "d1").expect("load").as_deref(), Some(&[c(b"ABC"), c(b"D")].concat()[..]));
}

pub fn feed_is_ordered_and_paged<S: Storage>(s: &S) {
    let mut b = Batch::new("t1", 0);
    for i in 0..25 {
        let (d, k, a, body) = entry(&format!("d{i}"), &[i as u8], Audience::Team);
        b.push_feed(&d, k, "dev", a, body);
    }
    s.commit(b).expect("commit");
    assert_eq!(s.feed_head("t1").expect("head"), 25);
    let page = s.read_feed("t1", 0, 10).expect("page 1");
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    let page = s.read_feed("t1", 20, 10).expect("page 3");
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), (21..=25).collect::<Vec<_>>());
    assert!(s.read_feed("t1", 25, 10).expect("past the end").is_empty());
    assert_eq!(s.feed_head("t2").expect("other team head"), 0);
    assert_eq!(s.teams().expect("teams"), vec!["t1".to_string()]);
}

pub fn a_stale_head_conflicts_and_applies_nothing<S: Storage>(s: &S) {
    let mut b = Batch::new("t1", 0);
    let (d, k, a, body) = entry("d1", b"x", Audience::Team);
    b.push_feed(&d, k, "dev", a, body);
    s.commit(b).expect("first");
    let mut stale = Batch::new("t1", 0);
    let (d, k, a, body) = entry("d2", b"y", Audience::Team);
    stale.push_feed(&d, k, "dev", a, body);
    stale.docs.push(write("d2", Audience::Team, DocData::Append(c(b"y"))));
    match s.commit(stale) {
        Err(StorageError::Conflict { expected: 0, found: 1, .. }) => {}
        other => panic!("a stale head must conflict, got {other:?}"),
    }
    assert_eq!(s.doc_meta("t1", "d2").expect("meta"), None, "nothing of a conflicting batch is applied");
    assert_eq!(s.feed_head("t1").expect("head"), 1);
}

pub fn audience_index_follows_the_document<S: Storage>(s: &S) {
    let mut b = Batch::new("t1", 0);
    b.docs.push(write("v1", users(&["alice"]), DocData::Append(c(b"1"))));
    b.docs.push(write("v2", users(&["bob"]), DocData::Append(c(b"2"))));
    b.docs.push(write("p1", Audience::Team, DocData::Append(c(b"3"))));
    s.commit(b).expect("commit");
    let ids = |m: Option<&str>| -> Vec<String> {
        s.list_docs("t1", m, "", 100).expect("list").into_iter().map(|(id, _)| id).collect()
    };
    assert_eq!(ids(Some("alice")), vec!["p1", "v1"]);
    assert_eq!(ids(Some("bob")), vec!["p1", "v2"]);
    assert_eq!(ids(None), vec!["p1", "v1", "v2"]);
    // v1 moves from alice to bob.
    let mut b = Batch::new("t1", 0);
    b.docs.push(write("v1", users(&["bob"]), DocData::Append(c(b"4"))));
    s.commit(b).expect("reassign");
    assert_eq!(ids(Some("alice")), vec!["p1"]);
    assert_eq!(ids(Some("bob")), vec!["p1", "v1", "v2"]);
    // Paging by id.
    let page: Vec<String> =
        s.list_docs("t1", Some("bob"), "p1", 1).expect("page").into_iter().map(|(id, _)| id).collect();
    assert_eq!(page, vec!["v1"]);
}

pub fn teams_never_see_each_other<S: Storage>(s: &S) {
    let mut b = Batch::new("t1", 0);
    b.docs.push(write("a1", Audience::Team, DocData::Append(c(b"secret"))));
    let (d, k, a, body) = entry("a1", b"secret", Audience::Team);
    b.push_feed(&d, k, "dev", a, body);
    s.commit(b).expect("commit t1");
    assert_eq!(s.load_doc("t2", "a1").expect("load"), None);
    assert!(s.list_docs("t2", None, "", 100).expect("list").is_empty());
    assert!(s.read_feed("t2", 0, 100).expect("feed").is_empty());
    // The same id in another team is another document.
    let mut b = Batch::new("t2", 0);
    b.docs.push(write("a1", Audience::Team, DocData::Append(c(b"other"))));
    s.commit(b).expect("commit t2");
    assert_eq!(s.load_doc("t1", "a1").expect("load").as_deref(), Some(&c(b"secret")[..]));
    assert_eq!(s.load_doc("t2", "a1").expect("load").as_deref(), Some(&c(b"other")[..]));
    // A team whose name is a prefix of another's sees nothing of it either.
    assert!(s.list_docs("t", None, "", 100).expect("list").is_empty());
}

pub fn trimming_moves_the_horizon<S: Storage>(s: &S) {
    let mut b = Batch::new("t1", 0);
    for i in 0..10 {
        let (d, k, a, body) = entry("d", &[i], Audience::Team);
        b.push_feed(&d, k, "dev", a, body);
    }
    s.commit(b).expect("commit");
    s.trim_feed("t1", 6).expect("trim");
    assert_eq!(s.feed_horizon("t1").expect("horizon"), 6);
    let rest: Vec<u64> = s.read_feed("t1", 0, 100).expect("read").iter().map(|e| e.seq).collect();
    assert_eq!(rest, vec![7, 8, 9, 10]);
    s.trim_feed("t1", 100).expect("trim past head");
    assert_eq!(s.feed_horizon("t1").expect("horizon"), 10, "never past the head");
    assert_eq!(s.feed_head("t1").expect("head"), 10);
}

pub fn quarantine_and_checkins_are_kept<S: Storage>(s: &S) {
    let q = QuarantineEntry {
        doc_id: "c1".into(),
        kind: DocKind::Customer,
        device: "phone".into(),
        user: "alice".into(),
        received_at_ms: 5,
        code: "forbidden_field".into(),
        reason: "a rep may not change the tier".into(),
        hashes: vec!["ab".into()],
        changes: vec![ByteBuf::from(b"change".to_vec())],
        change_count: 1,
        bytes: 6,
        digest_only: false,
        attempted: Some(r#"{"notes":"Call back in May."}"#.into()),
    };
    let mut b = Batch::new("t1", 0);
    b.quarantine.push(q.clone());
    b.quarantine.push(q.clone()); // the same rejection twice is kept once
    let mut history = CheckinHistory::new();
    history.record(crate::checkin::RefFix { lat: 1.0, lon: 2.0, device_time_ms: 1_800_000_000_000 });
    b.checkins.push(("alice".into(), history.clone()));
    s.commit(b).expect("commit");
    assert_eq!(s.quarantine("t1", 10).expect("list"), vec![q.clone()]);
    let once = QuarantineUsage { entries: 1, bytes: 6 };
    assert_eq!(s.quarantine_usage("t1", "alice").expect("usage"), once);
    // Pushed again in a later request: still counted once.
    let mut again = Batch::new("t1", 0);
    again.quarantine.push(q);
    s.commit(again).expect("commit again");
    assert_eq!(s.quarantine_usage("t1", "alice").expect("usage"), once);
    assert_eq!(s.quarantine_usage("t1", "bob").expect("usage"), QuarantineUsage::default());
    assert!(s.quarantine("t2", 10).expect("other team").is_empty());
    assert_eq!(s.checkin_history("t1", "alice").expect("history"), Some(history));
    assert_eq!(s.checkin_history("t1", "bob").expect("none"), None);
}
