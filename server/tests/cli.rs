//! The `fieldsync` binary as a new user meets it: mistakes are one clear line, not a backtrace.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fieldsync");

#[test]
fn serve_on_a_port_in_use_says_so_in_one_line_and_leaves_the_data_directory_untouched() {
    // 1. Something already listens on the port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");

    // 2. `fieldsync serve` on it, with a backtrace asked for, as CI's environment does.
    let out = Command::new(BIN)
        .args(["serve", "--addr", &addr, "--data"])
        .arg(&data)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run fieldsync");

    // 3. It fails with one line naming the address, and nothing was seeded or even created.
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, no backtrace: {stderr}");
    assert!(lines[0].starts_with("fieldsync: cannot listen on ") && lines[0].contains(&addr), "{stderr}");
    assert!(lines[0].to_lowercase().contains("address") || lines[0].contains("in use"), "{stderr}");
    assert!(!data.exists(), "the data directory was created before the port was checked");
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "nothing seeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_token_for_an_unknown_role_is_refused_by_the_argument_parser_with_the_choices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["token", "--team", "demo", "--user", "zed", "--role", "boss", "--data"])
        .arg(dir.path())
        .output()
        .expect("run fieldsync");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("boss") && !stderr.contains("panicked") && !stderr.contains("stack backtrace"),
        "{stderr}"
    );
}

#[test]
fn revoke_device_on_a_stopped_servers_data_directory_keeps_the_revocation() {
    use fieldsync_core::storage::Storage as _;
    let dir = tempfile::tempdir().expect("tempdir");
    // 1. The server's data directory exists (as after a `fieldsync serve`).
    drop(fieldsync_server::Server::open(fieldsync_server::ServerConfig::dev(dir.path())).expect("open"));
    // 2. An operator revokes a phone with the command.
    let out = Command::new(BIN)
        .args(["revoke-device", "--team", "demo", "--device", "alice-phone", "--reason", "stolen", "--data"])
        .arg(dir.path())
        .output()
        .expect("run fieldsync");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));
    // 3. The next server to open the directory refuses the phone.
    let server =
        fieldsync_server::Server::open(fieldsync_server::ServerConfig::dev(dir.path())).expect("reopen");
    let kept = server.engine().storage().device_revocation("demo", "alice-phone").expect("read");
    assert_eq!(kept.map(|r| r.reason), Some("stolen".to_string()));
    // 4. A device id that is not an id is refused in one line.
    drop(server);
    let out = Command::new(BIN)
        .args(["revoke-device", "--team", "demo", "--device", "a/b", "--data"])
        .arg(dir.path())
        .output()
        .expect("run fieldsync");
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().count(),
        1,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn import_reports_each_refused_row_writes_nothing_then_imports_the_fixed_file_once() {
    use fieldsync_core::storage::Storage as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let file = dir.path().join("customers.csv");
    let import = |extra: &[&str]| {
        Command::new(BIN)
            .arg("import")
            .arg(&file)
            .args(["--team", "acme", "--data"])
            .arg(&data)
            .args(extra)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run fieldsync import")
    };
    let stored = || {
        let server =
            fieldsync_server::Server::open(fieldsync_server::ServerConfig::dev(&data)).expect("open");
        server.engine().storage().list_docs("acme", None, "", 100).expect("list").len()
    };

    // 1. A sheet with a latitude typed as a word: the line and column are named, exit code 1,
    //    and the good row is not written either.
    std::fs::write(&file, "name,lat,lon,notes\nBoulangerie,45.76,4.83,x\nTabac,nord,4.83,y\n")
        .expect("write");
    let out = import(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("line 3, column \"lat\": \"nord\" is not a number"), "{stdout}");
    assert!(stdout.contains("nothing written") && stdout.contains("columns not imported: notes"), "{stdout}");
    assert_eq!(stored(), 0);

    // 2. Fixed: a dry run changes nothing, then the import writes both, and a second one nothing.
    std::fs::write(&file, "name,lat,lon\nBoulangerie,45.76,4.83\nTabac,45.70,4.83\n").expect("write");
    let dry = import(&["--dry-run", "--json"]);
    assert!(dry.status.success());
    let report: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("a JSON report");
    assert_eq!((report["created"].as_u64(), report["written"].as_bool()), (Some(2), Some(false)), "{report}");
    assert_eq!(stored(), 0);
    let out = import(&["--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!((report["created"].as_u64(), report["written"].as_bool()), (Some(2), Some(true)), "{report}");
    assert_eq!(stored(), 2);
    let again: serde_json::Value = serde_json::from_slice(&import(&["--json"]).stdout).expect("JSON");
    assert_eq!((again["created"].as_u64(), again["unchanged"].as_u64()), (Some(0), Some(2)), "{again}");

    // 3. Exported, in either format, the team imports back unchanged.
    for format in ["csv", "xlsx"] {
        let exported = dir.path().join(format!("export.{format}"));
        let out = Command::new(BIN)
            .args(["export", "--team", "acme", "--format", format, "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&exported)
            .output()
            .expect("run fieldsync export");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::copy(&exported, &file).expect("copy");
        let again = Command::new(BIN)
            .arg("import")
            .arg(&exported)
            .args(["--team", "acme", "--json", "--data"])
            .arg(&data)
            .output()
            .expect("run fieldsync import");
        let report: serde_json::Value = serde_json::from_slice(&again.stdout).expect("JSON");
        assert_eq!(
            (report["unchanged"].as_u64(), report["updated"].as_u64()),
            (Some(2), Some(0)),
            "{format}: {report}"
        );
    }

    // 3b. As GeoJSON, the same customers as points; visits as a table; a wrong --what is one line.
    let export = |args: &[&str]| {
        Command::new(BIN)
            .arg("export")
            .args(["--team", "acme", "--data"])
            .arg(&data)
            .args(args)
            .output()
            .expect("export")
    };
    let geo = export(&["--format", "geojson"]);
    assert!(geo.status.success(), "{}", String::from_utf8_lossy(&geo.stderr));
    let geo: serde_json::Value = serde_json::from_slice(&geo.stdout).expect("GeoJSON");
    assert_eq!(geo["features"].as_array().map(Vec::len), Some(2), "{geo}");
    let visits = export(&["--what", "visits"]);
    assert!(visits.status.success(), "{}", String::from_utf8_lossy(&visits.stderr));
    assert!(String::from_utf8_lossy(&visits.stdout).starts_with("id,customer_id,customer,rep,planned_start"));
    let wrong = export(&["--what", "orders"]);
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(stderr.trim(), "fieldsync: --what \"orders\": customers or visits");

    // 4. A file that is not a table at all is one line on stderr.
    std::fs::write(&file, b"name,lat\n\xff\xfe,1\n").expect("write");
    let out = import(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("not UTF-8") && stderr.contains("nothing was written"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A `fieldsync serve` process, killed when the test ends, passed or not (a server left running
/// would hold the test's output open).
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `fieldsync serve` on `data` (seeding the demo team into an empty one) and a free port;
/// returns it with its URL once it listens.
fn serve(data: &std::path::Path) -> (Serving, String) {
    use std::io::BufRead as _;
    let mut serve = Serving(
        Command::new(BIN)
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run fieldsync serve"),
    );
    let mut lines = std::io::BufReader::new(serve.0.stdout.take().expect("stdout")).lines();
    let url = loop {
        let line = lines.next().expect("the server prints its address").expect("a line");
        if let Some(rest) = line.strip_prefix("fieldsync listening on ") {
            break rest.split_whitespace().next().expect("a URL").to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (serve, url)
}

/// A development token of the demo team, signed with `data`'s secret.
fn demo_token(data: &std::path::Path, user: &str, role: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", "--team", "demo", "--user", user, "--role", role, "--data"])
        .arg(data)
        .output()
        .expect("run fieldsync token");
    String::from_utf8(out.stdout).expect("a token").trim().to_string()
}

#[test]
fn import_into_a_running_server_goes_through_its_http_import_with_a_managers_token() {
    // 1. A running `fieldsync serve` with the demo team.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (serve, url) = serve(&data);
    let token = |user: &str, role: &str| demo_token(&data, user, role);
    let file = dir.path().join("new.csv");
    std::fs::write(&file, "id,name,lat,lon\nnew-1,Epicerie,45.76,4.83\n").expect("write");
    let import = |token: &str, extra: &[&str]| {
        Command::new(BIN)
            .arg("import")
            .arg(&file)
            .args(["--server", &url, "--token", token])
            .args(extra)
            .output()
            .expect("run fieldsync import")
    };

    // 2. The manager's import goes in (the server is running: no data directory is opened); a
    //    second changes nothing; a rep's is refused in one line.
    let maria = token("maria", "manager");
    let out = import(&maria, &["--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!((report["created"].as_u64(), report["written"].as_bool()), (Some(1), Some(true)), "{report}");
    let again = String::from_utf8_lossy(&import(&maria, &[]).stdout).to_string();
    assert!(again.contains("1 rows: 0 new, 0 updated, 1 unchanged, 0 refused"), "{again}");
    let out = import(&token("alice", "rep"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("HTTP 403"), "{stderr}");

    // 3. Refused rows are listed from the server's report, and the command fails.
    std::fs::write(&file, "id,name,lat,lon\nnew-2,Epicerie,nord,4.83\n").expect("write");
    let out = import(&maria, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && stdout.contains("line 2, column \"lat\""), "{stdout}");
    drop(serve);
}

#[test]
fn backup_of_a_running_server_restores_into_a_new_directory_whose_server_knows_the_old_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, restored, file) =
        (dir.path().join("data"), dir.path().join("restored"), dir.path().join("b.fsb"));
    let run = |args: &[&std::ffi::OsStr]| Command::new(BIN).args(args).output().expect("run fieldsync");
    let import = |url: &str, token: &str, csv: &std::path::Path| {
        run(&[
            "import".as_ref(),
            csv.as_os_str(),
            "--server".as_ref(),
            url.as_ref(),
            "--token".as_ref(),
            token.as_ref(),
        ])
    };

    // 1. A running server with the demo team and one imported customer.
    let (serving, url) = serve(&data);
    let maria = demo_token(&data, "maria", "manager");
    let csv = dir.path().join("new.csv");
    std::fs::write(&csv, "id,name,lat,lon\nnew-1,Epicerie,45.76,4.83\n").expect("write");
    assert!(import(&url, &maria, &csv).status.success());

    // 2. It is backed up while it runs (through its admin socket: sled keeps the directory locked).
    let out =
        run(&["backup".as_ref(), "--data".as_ref(), data.as_os_str(), "--out".as_ref(), file.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("backup ") && stdout.contains(" records, "), "{stdout}");

    // 3. A second backup to the same file is one line, and the first is kept.
    let size = std::fs::metadata(&file).expect("backup").len();
    let out =
        run(&["backup".as_ref(), "--data".as_ref(), data.as_os_str(), "--out".as_ref(), file.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("already there") && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert_eq!(std::fs::metadata(&file).expect("backup").len(), size);

    // 4. The machine is lost: the backup is restored into a new directory, and refused over one.
    drop(serving);
    let out = run(&["restore".as_ref(), file.as_os_str(), "--data".as_ref(), restored.as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["restore".as_ref(), file.as_os_str(), "--data".as_ref(), restored.as_os_str()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not empty"));

    // 5. The restored server takes the manager's old token and holds the imported customer; its
    //    metrics token is the old one (Prometheus goes on scraping).
    let (_serving, url) = serve(&restored);
    let out = import(&url, &maria, &csv);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("1 rows: 0 new, 0 updated, 1 unchanged"), "{stdout}");
    let token = std::fs::read_to_string(data.join("metrics-token")).expect("the old metrics token");
    assert_eq!(std::fs::read_to_string(restored.join("metrics-token")).expect("restored"), token);
    assert_eq!(http(&url, "GET", "/metrics", Some(token.trim())).0, 200);

    // 6. The old directory, its server killed (a stale socket left behind), is backed up directly.
    let direct = dir.path().join("direct.fsb");
    let out =
        run(&["backup".as_ref(), "--data".as_ref(), data.as_os_str(), "--out".as_ref(), direct.as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::metadata(&direct).expect("backup").len() > 0);
}

/// A plain HTTP/1.1 exchange with `fieldsync serve` (`url` as it prints it): the status, the
/// `x-request-id` header and the body.
fn http(url: &str, method: &str, path: &str, bearer: Option<&str>) -> (u16, String, String) {
    use std::io::{Read as _, Write as _};
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    let id =
        head.lines().find_map(|l| l.strip_prefix("x-request-id: ")).map(str::to_string).unwrap_or_default();
    (status, id, body.to_string())
}

#[test]
fn serve_with_json_logs_writes_one_json_object_a_line_with_the_request_id_and_serves_metrics() {
    use std::io::BufRead as _;
    // 1. `fieldsync serve --log-format json` on a new data directory, its log read line by line.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut serving = Serving(
        Command::new(BIN)
            .args(["--log-format", "json", "serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(&data)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run fieldsync serve"),
    );
    let (log_tx, log) = std::sync::mpsc::channel::<String>();
    let stderr = std::io::BufReader::new(serving.0.stderr.take().expect("stderr"));
    std::thread::spawn(move || stderr.lines().map_while(Result::ok).for_each(|l| drop(log_tx.send(l))));
    let mut stdout = std::io::BufReader::new(serving.0.stdout.take().expect("stdout")).lines();
    let mut printed = Vec::new();
    let url = loop {
        let line = stdout.next().expect("the server prints its address").expect("a line");
        printed.push(line.clone());
        if let Some(rest) = line.strip_prefix("fieldsync listening on ") {
            break rest.split_whitespace().next().expect("a URL").to_string();
        }
    };
    let metrics_line = loop {
        let line = stdout.next().expect("the server says where its metrics are").expect("a line");
        if line.starts_with("metrics: ") {
            break line;
        }
    };
    std::thread::spawn(move || stdout.for_each(drop));

    // 2. A request that logs: the demo sign-in.
    let (status, request_id, _) = http(&url, "POST", "/v1/dev/sign-in", None);
    assert_eq!(status, 200);
    assert_eq!(request_id.len(), 36, "a UUID: {request_id:?}");

    // 3. Every log line is a JSON object; the sign-in's carries the response's request id.
    let mut lines = Vec::new();
    let sign_in = loop {
        let line = log.recv_timeout(std::time::Duration::from_secs(10)).expect("the sign-in is logged");
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(event["timestamp"].is_string() && event["level"].is_string(), "{line}");
        lines.push(line);
        if event["fields"]["message"] == "demo sign-in" {
            break event;
        }
    };
    assert!(lines.len() >= 2, "the start was logged before: {lines:?}");
    assert_eq!(sign_in["span"]["request_id"], request_id.as_str(), "{sign_in}");
    assert_eq!(sign_in["span"]["path"], "/v1/dev/sign-in");

    // 4. /metrics: refused without the token, served with the one the data directory holds (the
    //    file the start-up lines name).
    let token_file = data.join("metrics-token");
    assert!(metrics_line.contains(&token_file.display().to_string()), "{metrics_line}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&token_file).expect("token file").permissions().mode();
        assert_eq!(mode & 0o077, 0, "only its owner reads the token: {mode:o}");
    }
    let token = std::fs::read_to_string(&token_file).expect("token");
    assert_eq!(http(&url, "GET", "/metrics", None).0, 401);
    let (status, _, text) = http(&url, "GET", "/metrics", Some(token.trim()));
    assert_eq!(status, 200);
    assert!(
        text.contains(
            r#"fieldsync_http_requests_total{method="POST",route="/v1/dev/sign-in",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"fieldsync_feed_head{team="demo"}"#), "{text}");
}

#[test]
fn serve_takes_its_settings_from_a_config_file_that_flags_and_the_environment_override() {
    use std::io::BufRead as _;
    // 1. A config file naming a data directory beside it, JSON logs, a metrics token file, and a
    //    port a flag will override.
    let dir = tempfile::tempdir().expect("tempdir");
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).expect("etc");
    let token = "ab".repeat(32);
    std::fs::write(etc.join("metrics.token"), format!("{token}\n")).expect("token file");
    let config = etc.join("fieldsync.toml");
    std::fs::write(
        &config,
        "data = \"../var/data\"\naddr = \"127.0.0.1:1\"\nlog-format = \"json\"\nmetrics-token-file = \"metrics.token\"\n\
         feed-trim-every = \"1h\"\nmin-free-space = \"1MiB\"\n",
    )
    .expect("config");
    let start = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .env_remove("FIELDSYNC_DATA")
            .env_remove("FIELDSYNC_LOG_FORMAT")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut serving = Serving(cmd.spawn().expect("run fieldsync serve"));
        let mut out = std::io::BufReader::new(serving.0.stdout.take().expect("stdout")).lines();
        let listening = loop {
            let line = out.next().expect("the server prints its address").expect("a line");
            if line.starts_with("fieldsync listening on ") {
                break line;
            }
        };
        std::thread::spawn(move || out.for_each(drop));
        let url =
            listening["fieldsync listening on ".len()..].split_whitespace().next().expect("url").to_string();
        let mut err = std::io::BufReader::new(serving.0.stderr.take().expect("stderr")).lines();
        let first_log = err.next().expect("a log line").expect("text");
        std::thread::spawn(move || err.for_each(drop));
        (serving, url, listening, first_log)
    };

    // 2. The file's settings hold where no flag gives them: the data directory relative to the
    //    file, JSON logs, its metrics token; the --addr flag beats the file's port 1.
    let (serving, url, listening, first_log) = start(&[]);
    let data = dir.path().join("var/data");
    assert!(listening.contains(&etc.join("../var/data").display().to_string()), "{listening}");
    assert!(data.join("conf").exists() || data.join("db").exists(), "sled opened the file's data directory");
    assert!(serde_json::from_str::<serde_json::Value>(&first_log).is_ok(), "JSON logs: {first_log}");
    assert_eq!(http(&url, "GET", "/metrics", Some(&token)).0, 200, "the file's metrics token");
    assert!(!data.join("metrics-token").exists(), "no token generated when the file names one");
    drop(serving);

    // 3. The environment overrides the file: text logs, another data directory.
    let other = dir.path().join("other");
    let (serving, _, listening, first_log) =
        start(&[("FIELDSYNC_LOG_FORMAT", "text"), ("FIELDSYNC_DATA", other.to_str().expect("utf-8"))]);
    assert!(listening.contains(&other.display().to_string()), "{listening}");
    assert!(serde_json::from_str::<serde_json::Value>(&first_log).is_err(), "text logs: {first_log}");
    drop(serving);

    // 4. A bad file is one clear error at start, naming the file, the line and the key; the data
    //    directory it names is not created.
    let cases = [
        ("data = \"fresh\"\nadress = \"127.0.0.1:8080\"\n", vec!["line 2", "adress", "expected one of"]),
        ("data = \"fresh\"\nfeed-retain = \"lots\"\n", vec!["line 2", "feed-retain"]),
        ("data = \"fresh\"\nfeed-trim-every = \"soon\"\n", vec!["feed-trim-every", "soon"]),
        ("data = \"fresh\"\nlog-format = \"yaml\"\n", vec!["log-format", "text or json"]),
        ("data = \"fresh\"\njwt-alg = \"RS256\"\n", vec!["--jwt-alg and --jwt-public-key go together"]),
        ("data = \"fresh\"\naddr = \"somewhere\"\n", vec!["line 2", "addr"]),
    ];
    for (text, said) in cases {
        std::fs::write(&config, text).expect("config");
        let out = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("run fieldsync serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {stderr}");
        assert!(
            stderr.starts_with(&format!("fieldsync: {}", config.display())) || said[0].starts_with("--"),
            "{stderr}"
        );
        for s in said {
            assert!(stderr.contains(s), "{text:?} should say {s:?}: {stderr}");
        }
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
        assert!(!etc.join("fresh").exists(), "{text:?} created the data directory");
    }
    let missing =
        Command::new(BIN).args(["serve", "--config", "/nonexistent/fieldsync.toml"]).output().expect("run");
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stderr.trim(),
        "fieldsync: /nonexistent/fieldsync.toml: No such file or directory (os error 2)"
    );

    // 5. `serve --help` documents every setting with its environment variable and the order.
    let help = Command::new(BIN).args(["serve", "--help"]).output().expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|f| *f != "help")
        .collect();
    assert!(flags.len() >= 14, "{flags:?}");
    let text: String = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for flag in &flags {
        let env = format!("[env: FIELDSYNC_{}=]", flag.replace('-', "_").to_uppercase());
        assert!(text.contains(&env), "--{flag} names {env}: {help}");
    }
    assert!(text.contains("else its environment variable, else the --config file"), "{help}");
}
