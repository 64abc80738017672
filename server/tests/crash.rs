//! A `kill -9` of the real `fieldsync` binary at any moment loses no acknowledged push.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use automerge::ActorId;
use fieldsync_core::client::Replica;
use fieldsync_core::docs::{Document, Visit};
use fieldsync_core::protocol::{CONTENT_TYPE, SyncRequest, SyncResponse};
use fieldsync_core::{Principal, Role};

const BIN: &str = env!("CARGO_BIN_EXE_fieldsync");

struct Running {
    child: Child,
    url: String,
}

fn start(data: &std::path::Path) -> Running {
    let mut child = Command::new(BIN)
        .args(["serve", "--no-seed", "--addr", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fieldsync serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("server printed its address").expect("read stdout");
        if let Some(rest) = line.strip_prefix("fieldsync listening on ") {
            break rest.split_whitespace().next().expect("url").to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Running { child, url }
}

fn mint(data: &std::path::Path, user: &str, role: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", "--team", "acme", "--user", user, "--role", role, "--data"])
        .arg(data)
        .output()
        .expect("fieldsync token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8").trim().to_string()
}

fn visit(n: usize) -> Document {
    let start = 1_000 * n as i64;
    let planned = Visit::planned(&format!("visit-{n:04}"), "cust-1", "alice", start, start + 60_000);
    Document::Visit(Visit { notes: format!("visit number {n}").into(), ..planned })
}

async fn exchange(http: &reqwest::Client, url: &str, token: &str, req: &SyncRequest) -> Option<SyncResponse> {
    let resp = http
        .post(format!("{url}/v1/sync"))
        .bearer_auth(token)
        .header("content-type", CONTENT_TYPE)
        .body(req.encode())
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    SyncResponse::decode(&resp.bytes().await.ok()?).ok()
}

#[tokio::test]
async fn a_kill_9_at_any_moment_loses_no_acknowledged_push() {
    let dir = tempfile::tempdir().expect("tempdir");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    let alice = Principal { team: "acme".into(), user: "alice".into(), role: Role::Rep };
    let mut phone = Replica::new("alice-phone", alice, ActorId::from(b"alice-phone"));
    let mut acknowledged: Vec<String> = Vec::new();
    let mut n = 0;

    // 1. Three lives of the server, each ended by SIGKILL: once right after an acknowledgement, once
    //    while a push is in flight, once in the middle of a burst.
    for life in 0..3 {
        let mut server = start(dir.path());
        let token = mint(dir.path(), "alice", "rep");
        for _ in 0..10 {
            n += 1;
            phone.create(visit(n), 0).expect("plan a visit");
            let req = phone.prepare_request();
            let resp = exchange(&http, &server.url, &token, &req).await.expect("server answers");
            phone.apply_response(&resp).expect("apply");
            acknowledged.extend(resp.accepted.iter().map(|a| a.doc_id.clone()));
        }
        if life == 1 {
            // A push in flight when the process dies: it may or may not land, never half.
            n += 1;
            phone.create(visit(n), 0).expect("plan");
            let req = phone.prepare_request();
            let (url, tok, client) = (server.url.clone(), token.clone(), http.clone());
            let in_flight = tokio::spawn(async move { exchange(&client, &url, &tok, &req).await });
            tokio::time::sleep(Duration::from_millis(2)).await;
            server.child.kill().expect("kill -9");
            if let Ok(Some(resp)) = in_flight.await {
                phone.apply_response(&resp).expect("apply");
                acknowledged.extend(resp.accepted.iter().map(|a| a.doc_id.clone()));
            }
        } else {
            server.child.kill().expect("kill -9");
        }
        server.child.wait().expect("reaped");
    }

    // 2. A fourth life: the phone's unacknowledged work goes through, and a manager bootstraps.
    let mut server = start(dir.path());
    let token = mint(dir.path(), "alice", "rep");
    let req = phone.prepare_request();
    let resp = exchange(&http, &server.url, &token, &req).await.expect("retry after the crashes");
    phone.apply_response(&resp).expect("apply");
    assert_eq!(phone.outbox_len(), 0);

    let maria = Principal { team: "acme".into(), user: "maria".into(), role: Role::Manager };
    let mut tablet = Replica::new("maria-tablet", maria, ActorId::from(b"maria-tablet"));
    let manager_token = mint(dir.path(), "maria", "manager");
    loop {
        let req = tablet.prepare_request();
        let resp = exchange(&http, &server.url, &manager_token, &req).await.expect("manager sync");
        let report = tablet.apply_response(&resp).expect("apply");
        if !report.more {
            break;
        }
    }
    // 3. Every acknowledged visit is there, with exactly the phone's history.
    assert!(acknowledged.len() >= 30, "acknowledged {}", acknowledged.len());
    for id in &acknowledged {
        assert_eq!(tablet.heads(id), phone.heads(id), "{id} after the crashes");
    }
    assert_eq!(tablet.len(), n, "every visit, including the one in flight, is on the server once");
    server.child.kill().expect("stop");
    let _ = server.child.wait();
}
