//! The dashboard's side of the server: the embedded bundle at `/` with its security headers and
//! validators, the one-click demo sign-in (a development server with the demo team only), who a
//! token names, the week calendar, and the OpenAPI description that lists every route — checked
//! against README's route table in both directions and against the router itself.

use std::collections::BTreeSet;

use fieldsync_core::Role;
use fieldsync_e2e::{MORNING_MS, TestServer, json_answer};
use serde_json::Value;

const DAY_MS: i64 = 86_400_000;

#[tokio::test]
async fn the_dashboard_is_served_from_the_binary_with_its_validators_and_security_headers() {
    let server = TestServer::demo().await;
    let http = reqwest::Client::new();

    // 1. The page names its bundle, and nothing from another origin.
    let page = http.get(format!("{}/", server.url())).send().await.expect("GET /");
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(headers["content-type"].to_str().expect("ascii").starts_with("text/html"));
    let csp = headers["content-security-policy"].to_str().expect("ascii");
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = page.text().await.expect("page");
    assert!(html.contains("/assets/app.js") && html.contains("/assets/app.css"), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"), "no external resource: {html}");

    // 2. The script is the real bundle (Leaflet and Chart.js inside), with a strong validator.
    let js = http.get(format!("{}/assets/app.js", server.url())).send().await.expect("GET app.js");
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"].to_str().expect("ascii").starts_with("text/javascript"));
    let etag = js.headers()["etag"].clone();
    let body = js.text().await.expect("app.js");
    assert!(body.len() > 100_000, "the bundle holds its libraries: {} bytes", body.len());
    assert!(body.contains("/v1/map/customers") && body.contains("/v1/live"));

    // 3. Unchanged files cost a 304; compressed on request.
    let again = http
        .get(format!("{}/assets/app.js", server.url()))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .expect("revalidate");
    assert_eq!(again.status(), 304);
    let gz = http
        .get(format!("{}/assets/app.js", server.url()))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("gzip");
    assert_eq!(gz.headers().get("content-encoding").map(|v| v.to_str().unwrap_or("")), Some("gzip"));
    assert!(gz.bytes().await.expect("bytes").len() < body.len() / 2);

    // 4. Nothing else is served from there.
    for path in ["/assets/nope.js", "/assets/..%2FCargo.toml", "/assets/%2e%2e%2fCargo.toml"] {
        let (status, err) =
            json_answer(http.get(format!("{}{path}", server.url())).send().await.expect("GET")).await;
        assert_eq!((status, err["error"].as_str()), (404, Some("not_found")), "{path}: {err}");
    }
}

#[tokio::test]
async fn the_demo_sign_in_is_offered_only_by_a_development_server_holding_the_demo_team() {
    let http = reqwest::Client::new();

    // 1. An empty development server offers nothing: there is no demo team to sign in to.
    let empty = TestServer::start().await;
    let (status, config) =
        json_answer(http.get(format!("{}/v1/dashboard/config", empty.url())).send().await.expect("config"))
            .await;
    assert_eq!((status, &config["demo_sign_in"]), (200, &Value::Bool(false)), "{config}");
    let (status, err) =
        json_answer(http.post(format!("{}/v1/dev/sign-in", empty.url())).send().await.expect("sign-in"))
            .await;
    assert_eq!((status, err["error"].as_str()), (404, Some("not_found")), "{err}");

    // 2. Once the demo team is there, one click gives the demo manager's token…
    empty.seed_demo();
    let (_, config) =
        json_answer(http.get(format!("{}/v1/dashboard/config", empty.url())).send().await.expect("config"))
            .await;
    assert_eq!(config["demo_sign_in"], true, "{config}");
    let (status, signed) =
        json_answer(http.post(format!("{}/v1/dev/sign-in", empty.url())).send().await.expect("sign-in"))
            .await;
    assert_eq!(status, 200, "{signed}");
    let token = signed["token"].as_str().expect("a token");

    // 3. …which names maria, manager of the demo team, and works on the API.
    let (status, me) =
        json_answer(http.get(format!("{}/v1/me", empty.url())).bearer_auth(token).send().await.expect("me"))
            .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me, serde_json::json!({ "team": "demo", "user": "maria", "role": "manager" }));

    // 4. Without a token, who-am-I is a 401 like everything else.
    let (status, err) =
        json_answer(http.get(format!("{}/v1/me", empty.url())).send().await.expect("me")).await;
    assert_eq!((status, err["error"].as_str()), (401, Some("unauthorized")), "{err}");

    // 5. A server whose tokens come from an identity provider mints none, demo team or not.
    let external = TestServer::start_with(|c| {
        c.auth = Some(
            fieldsync_server::auth::AuthConfig::external(
                "EdDSA",
                ED25519_PUBLIC_PEM.as_bytes(),
                "fieldsync",
                "fieldsync",
            )
            .expect("an EdDSA key"),
        );
    })
    .await;
    external.seed_demo();
    let (_, config) = json_answer(
        http.get(format!("{}/v1/dashboard/config", external.url())).send().await.expect("config"),
    )
    .await;
    assert_eq!(config["demo_sign_in"], false, "{config}");
    let (status, _) =
        json_answer(http.post(format!("{}/v1/dev/sign-in", external.url())).send().await.expect("sign-in"))
            .await;
    assert_eq!(status, 404);
}

/// Any Ed25519 public key: the server verifies with it and mints nothing.
const ED25519_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=
-----END PUBLIC KEY-----
";

#[tokio::test]
async fn the_week_calendar_shows_each_visit_as_the_visit_report_counts_it_and_only_in_scope() {
    let server = TestServer::demo().await;
    let maria = server.add_device("maria-tablet", "demo", "maria", Role::Manager);
    let bruno = server.add_device("bruno-phone", "demo", "bruno", Role::Rep);
    let (from, to) = (MORNING_MS - 14 * DAY_MS, MORNING_MS + 7 * DAY_MS);
    let window = format!("from_ms={from}&to_ms={to}");

    // 1. The team's calendar holds the past fortnight and the week ahead, by rep then time.
    let (status, cal) = maria.get_json(&format!("/v1/reports/calendar?{window}")).await;
    assert_eq!(status, 200, "{cal}");
    let entries = cal["entries"].as_array().expect("entries");
    let statuses: BTreeSet<&str> = entries.iter().filter_map(|e| e["status"].as_str()).collect();
    for s in ["done", "missed", "planned"] {
        assert!(statuses.contains(s), "the demo week has {s} visits: {statuses:?}");
    }
    let keys: Vec<(String, i64)> = entries
        .iter()
        .map(|e| (e["rep"].as_str().unwrap_or("").to_string(), e["planned_start_ms"].as_i64().unwrap_or(0)))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "by rep, then time");
    assert!(entries.iter().all(|e| e["customer_name"].is_string() && e["tier"].is_string()));

    // 2. Its counts are the visit report's over the same window.
    let (_, report) = maria.get_json(&format!("/v1/reports/visits?{window}")).await;
    let count = |s: &str| entries.iter().filter(|e| e["status"] == s).count() as u64;
    assert_eq!(count("missed"), report["missed"].as_u64().expect("missed"));
    assert_eq!(count("done") + count("remote"), report["completed"].as_u64().expect("completed"));
    assert_eq!(
        entries.iter().filter(|e| e["status"] != "cancelled").count() as u64,
        report["planned"].as_u64().expect("planned")
    );

    // 3. A rep's calendar is theirs, whatever they ask for.
    let (status, own) = bruno.get_json(&format!("/v1/reports/calendar?{window}")).await;
    assert_eq!(status, 200, "{own}");
    let own = own["entries"].as_array().expect("entries");
    assert!(!own.is_empty() && own.iter().all(|e| e["rep"] == "bruno"));
    let (status, err) = bruno.get_json(&format!("/v1/reports/calendar?{window}&rep=alice")).await;
    assert_eq!((status, err["error"].as_str()), (403, Some("forbidden")), "{err}");

    // 4. Bad windows and unknown reps are typed 4xx.
    for (query, code, error) in [
        (format!("from_ms={from}&to_ms={}", from + 43 * DAY_MS), 400, "invalid_request"),
        (format!("from_ms={to}&to_ms={from}"), 400, "invalid_request"),
        (format!("{window}&rep=nobody"), 404, "unknown_rep"),
        ("from_ms=abc".to_string(), 400, "bad_request"),
    ] {
        let (status, err) = maria.get_json(&format!("/v1/reports/calendar?{query}")).await;
        assert_eq!((status, err["error"].as_str()), (code, Some(error)), "{query}: {err}");
    }
}

/// `METHOD /path` of every row of README's route table.
fn readme_routes() -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let mut routes = BTreeSet::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let cell = line.trim_start_matches("| `").split('`').next().unwrap_or("");
        let mut parts = cell.splitn(2, ' ');
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else { continue };
        let (methods, path) = (method, path.split('?').next().unwrap_or(path));
        for m in methods.split(", ") {
            if ["GET", "POST", "PUT", "DELETE", "PATCH"].contains(&m) {
                routes.insert(format!("{m} {path}"));
            }
        }
    }
    routes
}

#[tokio::test]
async fn the_openapi_description_lists_every_route_and_nothing_else() {
    // The demo team seeded: without it the demo sign-in looks missing on purpose.
    let server = TestServer::demo().await;
    let http = reqwest::Client::new();
    let (status, spec) =
        json_answer(http.get(format!("{}/openapi.json", server.url())).send().await.expect("openapi")).await;
    assert_eq!(status, 200);
    assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", spec["openapi"]);

    // 1. The description and README's table name the same routes.
    let mut described = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("operations").keys() {
            described.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let documented = readme_routes();
    assert!(documented.len() >= 25, "README's table was read: {documented:?}");
    let missing: Vec<_> = documented.difference(&described).collect();
    let undocumented: Vec<_> = described.difference(&documented).collect();
    assert!(missing.is_empty(), "in README, not in /openapi.json: {missing:?}");
    assert!(undocumented.is_empty(), "in /openapi.json, not in README: {undocumented:?}");

    // 2. Every described route is served: none falls through to "no such endpoint".
    for route in &described {
        let (method, path) = route.split_once(' ').expect("METHOD path");
        let url =
            format!("{}{}", server.url(), path.replace("{id}", "cust-0001").replace("{name}", "app.js"));
        let resp = match method {
            "GET" => http.get(&url),
            "POST" => http.post(&url),
            other => panic!("unexpected method {other}"),
        }
        .send()
        .await
        .expect("request");
        let status = resp.status().as_u16();
        if path == "/v1/live" {
            assert_eq!(status, 401, "{route}");
            continue;
        }
        let (_, body) = json_answer(resp).await;
        assert!(body["message"] != "no such endpoint" && status != 405, "{route}: {status} {body}");
    }

    // 3. The sync endpoint is there as what it is: a binary body.
    let sync = &spec["paths"]["/v1/sync"]["post"];
    assert!(sync["requestBody"]["content"]["application/x-fieldsync"].is_object(), "{sync}");
    // And refusals have their one shape.
    assert!(spec["components"]["schemas"]["ErrorBody"]["properties"]["request_id"].is_object());
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
}
