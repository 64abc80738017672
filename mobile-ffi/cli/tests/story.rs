//! The device CLI end to end: a real server in-process on loopback (seeded with the demo team), and
//! `fieldsync-device` run as a subprocess for every step, the way a person would at a shell.

use std::process::{Command, Output};
use std::time::Duration;

use fieldsync_mobile::fieldsync_core::Role;
use fieldsync_server::{Server, ServerConfig, seed};
use serde_json::Value;

/// Nothing listens there: the phone is offline.
const OFFLINE: &str = "http://127.0.0.1:1";
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The centre of the demo team's area (Lyon, Place Bellecour).
const LYON: (&str, &str) = ("45.7640", "4.8357");

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The seeded server, serving on 127.0.0.1:0 from a thread until dropped.
struct TestServer {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    server: Server,
    _data: tempfile::TempDir,
}

impl TestServer {
    fn start() -> Self {
        let data = tempfile::tempdir().expect("a data directory");
        let server = Server::open(ServerConfig::dev(data.path())).expect("open the server");
        // Seeded as of three days ago: the demo's own check-ins of today (9:30, 11:00 and 14:30 in
        // Lyon) would otherwise sit minutes from this file's check-ins at some hours of the day,
        // and the server would rightly flag the rep as travelling too fast.
        seed::seed_demo(server.engine(), 42, now_ms() - 3 * DAY_MS)
            .expect("seed")
            .expect("an empty server is seeded");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = server.state();
        let thread = std::thread::spawn(move || {
            runtime
                .block_on(fieldsync_server::run(listener, state, async {
                    let _ = stopped.await;
                }))
                .expect("serve");
        });
        TestServer { url, stop: Some(stop), thread: Some(thread), server, _data: data }
    }

    fn token(&self, user: &str, role: Role) -> String {
        let now = jiff::Timestamp::now().as_second() as u64;
        self.server
            .auth()
            .issue(seed::DEMO_TEAM, user, role, Duration::from_secs(3600), now)
            .expect("a token")
    }

    /// A new device (its own store) signed in as `user`.
    fn device(&self, user: &str, role: Role) -> Device {
        Device {
            store: tempfile::tempdir().expect("a store directory"),
            url: self.url.clone(),
            token: self.token(user, role),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `fieldsync-device` with none of its environment variables inherited from the test runner.
fn device_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fieldsync-device"));
    for var in ["FIELDSYNC_STORE", "FIELDSYNC_SERVER", "FIELDSYNC_TOKEN"] {
        c.env_remove(var);
    }
    c
}

/// One phone or tablet: a store directory, the server it syncs with, its user's token.
struct Device {
    store: tempfile::TempDir,
    url: String,
    token: String,
}

impl Device {
    fn run(&self, server: &str, token: Option<&str>, args: &[&str]) -> Output {
        let mut c = device_command();
        c.arg("--store").arg(self.store.path()).arg("--server").arg(server);
        if let Some(token) = token {
            c.arg("--token").arg(token);
        }
        c.args(args).output().expect("run fieldsync-device")
    }

    /// Runs a command with the server reachable and the token passed.
    fn online(&self, args: &[&str]) -> Value {
        succeeded(args, self.run(&self.url, Some(&self.token), args))
    }

    /// Runs a command with no network and no token (the store remembers its user).
    fn offline(&self, args: &[&str]) -> Value {
        succeeded(args, self.run(OFFLINE, None, args))
    }
}

fn succeeded(args: &[&str], out: Output) -> Value {
    assert!(
        out.status.success(),
        "{args:?} failed with {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
    })
}

/// The exit code and the JSON error (the last line of stderr) of a command that must fail.
fn failed(out: Output) -> (i32, Value) {
    assert!(!out.status.success(), "expected a failure, got {}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stdout.is_empty(), "nothing on stdout when failing");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or_default();
    let error: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("no JSON error ({e}): {stderr}"));
    (out.status.code().expect("an exit code, not a signal"), error)
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// The device's customers around Lyon, nearest first.
fn customers(device: &Device) -> Vec<Value> {
    let near = device.offline(&["customers-near", "--lat", LYON.0, "--lon", LYON.1, "--radius-m", "50000"]);
    near.as_array().expect("an array").iter().map(|n| n["customer"].clone()).collect()
}

/// Plans a visit at `customer` starting at `start_ms` and checks in at (lat, lon), offline.
fn plan_and_check_in(device: &Device, customer: &Value, start_ms: i64, lat: f64, lon: f64) -> Value {
    let start = start_ms.to_string();
    let visit =
        device.offline(&["plan", "--customer", text(&customer["id"]), "--start", &start, "--minutes", "45"]);
    assert_eq!(visit["state"], "planned");
    assert_eq!(visit["planned_end_ms"].as_i64(), Some(start_ms + 45 * 60_000));
    let check_in = device.offline(&[
        "check-in",
        "--visit",
        text(&visit["id"]),
        "--lat",
        &lat.to_string(),
        "--lon",
        &lon.to_string(),
        "--accuracy",
        "8",
        "--time",
        &(start_ms + 60_000).to_string(),
    ]);
    assert_eq!(check_in["visit"]["state"], "checked_in");
    check_in
}

/// The verdict the server wrote into a visit for its first check-in.
fn server_verdict(visit: &Value) -> &Value {
    let checkin = text(&visit["checkins"][0]["id"]);
    &visit["verification"][checkin]
}

#[test]
fn two_reps_check_in_offline_and_the_manager_sees_both_visits_verified_by_the_server() {
    let server = TestServer::start();
    let alice = server.device("alice", Role::Rep);
    let bruno = server.device("bruno", Role::Rep);
    let maria = server.device("maria", Role::Manager);
    let two_hours_ago = now_ms() - 2 * HOUR_MS;

    // 1. Alice's phone bootstraps her customers, then goes offline: plan, check in at the door, note.
    let first = alice.online(&["sync"]);
    assert!(first["pulled_docs"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(first["outbox_size"], 0);
    let mine = customers(&alice);
    assert!(!mine.is_empty(), "alice holds her customers");
    assert!(mine.iter().all(|c| c["owner_rep"] == "alice" || c["territory"] == "territory-alice"));
    let c1 = &mine[0];
    let (lat, lon) = (c1["location"]["lat"].as_f64().unwrap(), c1["location"]["lon"].as_f64().unwrap());
    let at_the_door = plan_and_check_in(&alice, c1, two_hours_ago, lat, lon);
    assert_eq!(at_the_door["verification"]["status"], "verified", "{at_the_door}");
    let alice_visit = text(&at_the_door["visit"]["id"]).to_string();
    let noted =
        alice.offline(&["note", "--visit", &alice_visit, "--text", "Owner wants the spring catalogue."]);
    assert_eq!(noted["notes"], "Owner wants the spring catalogue.");

    // Syncing offline fails as `offline` (exit 3) and keeps everything in the outbox.
    let (code, error) = failed(alice.run(OFFLINE, Some(&alice.token), &["sync"]));
    assert_eq!((code, text(&error["error"])), (3, "offline"), "{error}");
    let pending = alice.offline(&["pending"]);
    assert_eq!(pending["outbox_size"], 1, "{pending}");
    assert!(pending["device_id"].as_str().unwrap().starts_with("device-"));

    // A latitude of 123 is refused before anything is written.
    let (code, error) = failed(alice.run(
        OFFLINE,
        None,
        &["check-in", "--visit", &alice_visit, "--lat", "123", "--lon", "4.8"],
    ));
    assert_eq!((code, text(&error["error"])), (2, "invalid_input"), "{error}");

    // 2. Bruno does the same at one of his customers.
    bruno.online(&["sync"]);
    let his = customers(&bruno);
    let c2 = &his[0];
    assert_ne!(c2["id"], c1["id"], "reps see their own customers");
    let (blat, blon) = (c2["location"]["lat"].as_f64().unwrap(), c2["location"]["lon"].as_f64().unwrap());
    let bruno_check_in = plan_and_check_in(&bruno, c2, two_hours_ago + HOUR_MS / 2, blat, blon);
    let bruno_visit = text(&bruno_check_in["visit"]["id"]).to_string();
    bruno.offline(&["note", "--visit", &bruno_visit, "--text", "Needs a quote for 40 units."]);
    let checked_out = bruno.offline(&[
        "check-out",
        "--visit",
        &bruno_visit,
        "--outcome",
        "quote requested",
        "--next-step",
        "send the quote by Friday",
    ]);
    assert_eq!(checked_out["state"], "completed");
    assert_eq!(checked_out["checkout"]["next_step"], "send the quote by Friday");
    // A second check-out would rewrite the record of the visit: refused, the first one kept.
    let (code, error) = failed(bruno.run(
        OFFLINE,
        None,
        &["check-out", "--visit", &bruno_visit, "--outcome", "nobody there"],
    ));
    assert_eq!(
        (code, text(&error["error"]), text(&error["field"])),
        (2, "invalid_input", "checkout"),
        "{error}"
    );
    assert_eq!(bruno.offline(&["show", &bruno_visit])["checkout"]["outcome"], "quote requested");
    let moved = bruno.offline(&["customer-status", "--customer", text(&c2["id"]), "--stage", "proposal"]);
    assert_eq!(moved["opportunity_stage"], "proposal");

    // 3. Both back online: their edits go up.
    for (who, device) in [("alice", &alice), ("bruno", &bruno)] {
        let summary = device.online(&["sync"]);
        assert!(summary["accepted_docs"].as_u64().unwrap() >= 1, "{who}: {summary}");
        assert_eq!(summary["rejected"], Value::Array(vec![]), "{who}: {summary}");
        assert_eq!(summary["outbox_size"], 0, "{who}: {summary}");
        assert!(device.offline(&["pending"])["last_sync_ms"].is_i64());
    }

    // 4. Later, alice checks in 600 m from another customer: flagged on the spot, and by the server.
    let c3 = &mine[1];
    let (lat3, lon3) = (c3["location"]["lat"].as_f64().unwrap(), c3["location"]["lon"].as_f64().unwrap());
    let far = plan_and_check_in(&alice, c3, now_ms() - 60_000 - 60_000, lat3 + 600.0 / 111_195.0, lon3);
    assert_eq!(far["verification"]["status"], "flagged", "{far}");
    assert_eq!(far["verification"]["reasons"][0]["code"], "outside_fence", "{far}");
    let distance = far["verification"]["distance_m"].as_f64().unwrap();
    assert!((distance - 600.0).abs() < 5.0, "{distance}");
    let far_visit = text(&far["visit"]["id"]).to_string();
    alice.online(&["sync"]);

    // Alice's visits of the last hours include both of hers, in time order. (An explicit window:
    // "today" in UTC would not hold the visit of two hours ago just after midnight.)
    let today: Vec<String> = alice
        .offline(&[
            "visits",
            "--from",
            &(two_hours_ago - 1).to_string(),
            "--to",
            &(now_ms() + HOUR_MS).to_string(),
        ])
        .as_array()
        .unwrap()
        .iter()
        .map(|v| text(&v["id"]).to_string())
        .collect();
    let (i, j) = (today.iter().position(|v| *v == alice_visit), today.iter().position(|v| *v == far_visit));
    assert!(matches!((i, j), (Some(i), Some(j)) if i < j), "{today:?}");
    let window = alice.offline(&[
        "visits",
        "--from",
        &(two_hours_ago - 1).to_string(),
        "--to",
        &(two_hours_ago + 1).to_string(),
    ]);
    assert_eq!(window.as_array().unwrap().len(), 1);
    assert_eq!(window[0]["id"], alice_visit.as_str());

    // 5. Maria's tablet syncs the team and sees both visits, with the server's verification.
    maria.online(&["sync"]);
    let seen = maria.offline(&["show", &alice_visit]);
    assert_eq!(seen["rep"], "alice");
    assert_eq!(seen["notes"], "Owner wants the spring catalogue.");
    assert_eq!(server_verdict(&seen)["status"], "verified", "{seen}");
    assert!(server_verdict(&seen)["received_at_ms"].as_i64().unwrap() > 0);
    let seen = maria.offline(&["show", &bruno_visit]);
    assert_eq!(seen["rep"], "bruno");
    assert_eq!(seen["notes"], "Needs a quote for 40 units.");
    assert_eq!(seen["state"], "completed");
    assert_eq!(server_verdict(&seen)["status"], "verified", "{seen}");
    let seen = maria.offline(&["show", &far_visit]);
    assert_eq!(server_verdict(&seen)["status"], "flagged", "{seen}");
    assert_eq!(server_verdict(&seen)["reasons"][0]["code"], "outside_fence", "{seen}");
    let stage = maria.offline(&["show", text(&c2["id"])]);
    assert_eq!(stage["opportunity_stage"], "proposal");
    let pending = maria.offline(&["status"]);
    assert!(pending["documents"].as_u64() > alice.offline(&["pending"])["documents"].as_u64());
}

#[test]
fn a_customer_the_manager_hands_to_bruno_leaves_alice_and_her_offline_note_is_kept_as_rejected() {
    let server = TestServer::start();
    let alice = server.device("alice", Role::Rep);
    let maria = server.device("maria", Role::Manager);
    alice.online(&["sync"]);
    let customer = customers(&alice).pop().unwrap();
    let id = text(&customer["id"]).to_string();

    // A rep may not reassign: refused on the device, nothing written.
    let (code, error) = failed(alice.run(OFFLINE, None, &["reassign", "--customer", &id, "--to", "bruno"]));
    assert_eq!((code, text(&error["error"])), (2, "invalid_input"), "{error}");

    // Alice writes a note offline while maria hands the customer to bruno.
    let noted = alice.offline(&["note", "--customer", &id, "--text", "Alice was here"]);
    assert_eq!(noted["notes"], "Alice was here");
    maria.online(&["sync"]);
    let handed =
        maria.offline(&["reassign", "--customer", &id, "--to", "bruno", "--territory", "territory-bruno"]);
    assert_eq!(
        (handed["owner_rep"].as_str(), handed["territory"].as_str()),
        (Some("bruno"), Some("territory-bruno"))
    );
    maria.online(&["sync"]);

    // Alice's sync: her note is refused and kept with its reason; the customer leaves her phone.
    let summary = alice.online(&["sync"]);
    assert!(summary["rejected"].as_array().unwrap().iter().any(|r| r["doc_id"] == id.as_str()), "{summary}");
    let kept = alice.offline(&["rejected"]);
    let kept = kept.as_array().unwrap().iter().find(|r| r["doc_id"] == id.as_str()).expect("kept");
    assert!(!text(&kept["reason"]).is_empty());
    assert_eq!(kept["attempted"]["notes"], "Alice was here", "{kept}");
    // Gone from her phone: a not-found, not a bad argument.
    let (code, error) = failed(alice.run(OFFLINE, None, &["show", &id]));
    assert_eq!((code, text(&error["error"]), text(&error["doc"])), (8, "not_found", id.as_str()), "{error}");

    // Bruno's new phone, configured through the environment, receives it.
    let bruno_store = tempfile::tempdir().unwrap();
    let bruno = |args: &[&str]| {
        let out = device_command()
            .env("FIELDSYNC_STORE", bruno_store.path())
            .env("FIELDSYNC_SERVER", &server.url)
            .env("FIELDSYNC_TOKEN", server.token("bruno", Role::Rep))
            .args(args)
            .output()
            .unwrap();
        succeeded(args, out)
    };
    bruno(&["sync"]);
    let his = bruno(&["show", &id]);
    assert_eq!(
        (his["owner_rep"].as_str(), his["territory"].as_str()),
        (Some("bruno"), Some("territory-bruno"))
    );
    let near = bruno(&[
        "customers-near",
        "--lat",
        LYON.0,
        "--lon",
        LYON.1,
        "--radius-m",
        "50000",
        "--tier",
        "a",
        "--tier",
        "B",
        "--tier",
        "C",
    ]);
    assert!(near.as_array().unwrap().iter().any(|n| n["customer"]["id"] == id.as_str()));
}

#[test]
fn help_mentions_every_command() {
    let out = device_command().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let commands = [
        "plan",
        "visits",
        "check-in",
        "note",
        "check-out",
        "customer-status",
        "customers-near",
        "sync",
        "pending",
        "rejected",
        "show",
        "reassign",
        "prospect",
    ];
    for command in commands {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{command}: {help}"
        );
        let out = device_command().args([command, "--help"]).output().unwrap();
        assert!(out.status.success(), "{command} --help");
        let own = String::from_utf8(out.stdout).unwrap();
        assert!(own.contains("--store") && own.contains("--token"), "{command}: {own}");
    }
    for option in ["--store", "--server", "--token", "FIELDSYNC_STORE", "FIELDSYNC_SERVER", "FIELDSYNC_TOKEN"]
    {
        assert!(help.contains(option), "{option}");
    }
}

#[test]
fn a_latitude_of_123_exits_with_code_2_and_a_json_error() {
    let store = tempfile::tempdir().unwrap();
    for args in [
        &["check-in", "--visit", "visit-1", "--lat", "123", "--lon", "4.8"][..],
        &["customers-near", "--lat", "123", "--lon", "4.8"][..],
        &["prospect", "--name", "Boulangerie", "--lat", "123", "--lon", "4.8"][..],
    ] {
        let out = device_command().arg("--store").arg(store.path()).args(args).output().unwrap();
        let (code, error) = failed(out);
        assert_eq!(code, 2, "{args:?}: {error}");
        assert_eq!(error["error"], "invalid_input", "{args:?}");
        assert!(text(&error["message"]).contains("123"), "{error}");
    }
    // Arguments clap refuses are JSON errors with the same code.
    let out = device_command()
        .arg("--store")
        .arg(store.path())
        .args(["plan", "--customer", "c", "--start", "soon", "--minutes", "5"])
        .output()
        .unwrap();
    let (code, error) = failed(out);
    assert_eq!((code, text(&error["error"])), (2, "invalid_input"), "{error}");
    assert!(text(&error["message"]).contains("--start"), "{error}");
}

#[test]
fn without_a_user_or_a_token_commands_are_unauthorized_with_code_4() {
    let store = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        failed(device_command().arg("--store").arg(store.path()).args(args).output().unwrap())
    };
    let (code, error) = run(&["plan", "--customer", "cust-0001", "--start", "now", "--minutes", "30"]);
    assert_eq!((code, text(&error["error"])), (4, "unauthorized"), "{error}");
    assert!(text(&error["message"]).contains("--token"), "{error}");
    let (code, error) = run(&["sync"]);
    assert_eq!((code, text(&error["error"])), (4, "unauthorized"), "{error}");
    // No store at all is bad input.
    let (code, error) = failed(device_command().arg("pending").output().unwrap());
    assert_eq!((code, text(&error["error"])), (2, "invalid_input"), "{error}");
}

#[test]
fn a_rep_plans_her_day_and_reads_her_overdue_list_offline() {
    let server = TestServer::start();
    let alice = server.device("alice", Role::Rep);
    alice.online(&["sync"]);
    // The next working day (the demo customers open Monday to Friday).
    let mut day = jiff::tz::TimeZone::UTC.to_datetime(jiff::Timestamp::now()).date().tomorrow().unwrap();
    while day.weekday().to_monday_one_offset() > 5 {
        day = day.tomorrow().unwrap();
    }
    let date = day.to_string();
    let plan = alice.offline(&["day", "--date", &date, "--lat", "45.7640", "--lon", "4.8357"]);
    let stops = plan["stops"].as_array().expect("stops");
    assert!(stops.len() >= 3, "{plan}");
    for s in stops {
        let customer = alice.offline(&["show", s["customer_id"].as_str().unwrap()]);
        assert_eq!(customer["owner_rep"], "alice");
    }
    let overdue = alice.offline(&["overdue"]);
    assert!(!overdue.as_array().expect("list").is_empty());
}

#[test]
fn a_managers_planned_visit_is_for_the_rep_who_owns_the_customer() {
    let server = TestServer::start();
    let maria = server.device("maria", Role::Manager);
    maria.online(&["sync"]);
    let customer = customers(&maria).into_iter().next().expect("a customer");
    let owner = text(&customer["owner_rep"]).to_string();
    let start = (now_ms() + HOUR_MS).to_string();
    let visit =
        maria.offline(&["plan", "--customer", text(&customer["id"]), "--start", &start, "--minutes", "30"]);
    assert_eq!((text(&visit["rep"]), owner.as_str()), (owner.as_str(), owner.as_str()), "{visit}");
    assert_ne!(visit["rep"], "maria");
    // The server takes it, and it reaches the owner.
    let synced = maria.online(&["sync"]);
    assert_eq!(synced["rejected"].as_array().map(Vec::len), Some(0), "{synced}");
    let rep = server.device(&owner, Role::Rep);
    rep.online(&["sync"]);
    assert_eq!(rep.offline(&["show", text(&visit["id"])])["rep"], owner.as_str());
}

#[test]
fn visits_of_a_day_are_counted_in_the_teams_time_zone_like_the_day_plan() {
    let server = TestServer::start();
    let alice = server.device("alice", Role::Rep);
    alice.online(&["sync"]);
    let customer = customers(&alice).into_iter().next().expect("a customer");
    let id = text(&customer["id"]).to_string();
    // Late on 10 June in Lyon, and just after midnight on the 11th: both on 10 June in UTC.
    let late = alice.offline(&[
        "plan",
        "--customer",
        &id,
        "--start",
        "2026-06-10T23:30:00+02:00",
        "--minutes",
        "20",
    ]);
    let next = alice.offline(&[
        "plan",
        "--customer",
        &id,
        "--start",
        "2026-06-11T00:30:00+02:00",
        "--minutes",
        "20",
    ]);
    let ids = |v: Value| -> Vec<String> {
        v.as_array().expect("visits").iter().map(|x| text(&x["id"]).to_string()).collect()
    };
    assert_eq!(ids(alice.offline(&["visits", "--day", "2026-06-10"])), [text(&late["id"])]);
    assert_eq!(ids(alice.offline(&["visits", "--day", "2026-06-11"])), [text(&next["id"])]);
    // Another time zone is one flag away.
    let utc = ids(alice.offline(&["visits", "--day", "2026-06-10", "--timezone", "UTC"]));
    assert_eq!(utc, [text(&late["id"]), text(&next["id"])]);
}
