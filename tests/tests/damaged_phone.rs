//! A damaged document on the phone costs only itself (issue 14, item 4): the device library's
//! real sled store, one of its chunks damaged under it the way bit rot would (the bytes no longer
//! match their checksum). The app still opens, the other documents keep their unsent edits, what
//! still loads of the damaged one is kept, the server's copy is fetched again, and the sync names it.

use fieldsync_core::Role;
use fieldsync_e2e::TestServer;
use fieldsync_e2e::fixtures::{LYON, customer, offset, territory};
use fieldsync_mobile::FieldsyncClient;
use fieldsync_mobile::store::DeviceStore;

const TEAM: &str = "acme";

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn open(server: &TestServer, dir: &std::path::Path) -> std::sync::Arc<FieldsyncClient> {
    let phone = FieldsyncClient::open(dir.display().to_string(), server.url()).expect("the app opens");
    phone.set_token(server.token(TEAM, "alice", Role::Rep)).expect("token");
    phone
}

/// Flips one byte in the middle of chunk `n` of document `id`, in the closed store in `dir`.
fn damage_chunk(dir: &std::path::Path, id: &str, n: u32) {
    let db = sled::open(dir).expect("the phone's sled files");
    let key = format!("c/{id}/{n:08}");
    let mut value = db.get(&key).expect("read").unwrap_or_else(|| panic!("{key} is stored")).to_vec();
    let at = value.len() / 2;
    value[at] ^= 0x5a;
    db.insert(key, value).expect("write");
    db.flush().expect("flush");
}

fn append_note(phone: &FieldsyncClient, id: &str, note: &str) {
    let notes = phone.get_customer(id.into()).expect("a customer").notes;
    phone.set_customer_notes(id.into(), format!("{}{note}", notes.as_str())).expect("a note");
}

fn notes_on_server(server: &TestServer, id: &str) -> String {
    server.doc(TEAM, id).expect("stored").notes().expect("notes").as_str().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_chunk_on_the_phone_is_salvaged_and_fetched_again_and_the_other_documents_keep_their_edits()
{
    // 1. Alice's phone holds c1 and c2 and syncs a first note on c1.
    let server = TestServer::seeded(
        TEAM,
        &[
            territory("t-alice", &["alice"]),
            customer("c1", "alice", Some("t-alice"), LYON).into(),
            customer("c2", "alice", Some("t-alice"), offset(LYON, 300.0, 0.0)).into(),
        ],
    )
    .await;
    let dir = tempfile::tempdir().expect("store dir");
    let phone = open(&server, dir.path());
    blocking(|| {
        phone.sync(None).expect("bootstrap");
        append_note(&phone, "c1", "first. ");
        phone.sync(None).expect("the first note goes up");
    });

    // 2. Offline, two more notes on c1 (each its own chunk) and one on c2; the app is closed and
    //    the chunk holding c1's last note is damaged.
    phone.set_server_url("http://127.0.0.1:1".into());
    blocking(|| {
        append_note(&phone, "c1", "second. ");
        append_note(&phone, "c1", "third. ");
        append_note(&phone, "c2", "c2 note. ");
    });
    drop(phone);
    let last = {
        let store = DeviceStore::open(dir.path()).expect("store");
        store.chunks_of("c1").expect("chunks") - 1
    };
    assert!(last >= 2, "c1's notes are chunks of their own");
    damage_chunk(dir.path(), "c1", last);

    // 3. The app opens (before, the damaged copy failed its whole sync); offline, c1 reads as far
    //    as it is intact and c2 is untouched.
    let phone = open(&server, dir.path());
    phone.set_server_url("http://127.0.0.1:1".into());
    let c1 = blocking(|| phone.get_customer("c1".into())).expect("c1 reads");
    assert_eq!(c1.notes.as_str(), "first. second. ", "what is intact of c1 is kept");
    assert!(blocking(|| phone.get_customer("c2".into())).expect("c2").notes.as_str().ends_with("c2 note. "));

    // 4. Online, one sync: c1's salvaged unsent note and c2's go up, the server's copy of c1 is
    //    fetched again, and the sync names c1 as repaired, once.
    phone.set_server_url(server.url());
    let summary = blocking(|| phone.sync(None)).expect("the sync goes through");
    assert_eq!(summary.repaired, vec!["c1".to_string()], "{summary:?}");
    assert!(summary.rejected.is_empty() && summary.outbox_size == 0, "{summary:?}");
    assert_eq!(notes_on_server(&server, "c1"), "first. second. ");
    assert!(notes_on_server(&server, "c2").ends_with("c2 note. "));
    let again = blocking(|| phone.sync(None)).expect("the next sync");
    assert!(again.repaired.is_empty(), "{again:?}");
    let heads_on_server = {
        let mut h = server.server().engine().doc_heads(TEAM, "c1").expect("heads").expect("c1");
        h.sort();
        h
    };
    drop(phone);

    // 5. Its store holds c1 whole again, at the server's heads.
    let store = DeviceStore::open(dir.path()).expect("store");
    let loaded = store.load().expect("loads");
    assert!(loaded.repaired.is_empty(), "nothing is damaged any more");
    let (_, c1) = loaded.docs.iter().find(|(id, _)| id == "c1").expect("c1 is held");
    let mut heads = c1.heads().to_vec();
    heads.sort();
    assert_eq!(heads, heads_on_server);
    drop(store);

    // 6. A damaged first chunk (the whole saved document) leaves nothing to salvage of c2: it is
    //    dropped and fetched again, and c1 is untouched.
    damage_chunk(dir.path(), "c2", 0);
    let phone = open(&server, dir.path());
    let summary = blocking(|| phone.sync(None)).expect("sync");
    assert_eq!(summary.repaired, vec!["c2".to_string()], "{summary:?}");
    assert!(
        blocking(|| phone.get_customer("c2".into()))
            .expect("c2 is back")
            .notes
            .as_str()
            .ends_with("c2 note. ")
    );
    assert_eq!(blocking(|| phone.get_customer("c1".into())).expect("c1").notes.as_str(), "first. second. ");
}
