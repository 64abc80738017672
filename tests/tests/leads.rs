//! Leads from other systems: `POST /v1/leads` with an integration's token makes a prospect in the
//! territory holding it, which reaches that rep's phone; a lead sent again, or one with the phone
//! of a customer the team has, merges instead of doubling; the sender is rate-limited; and an
//! integration's token opens nothing else.

use fieldsync_core::Role;
use fieldsync_core::docs::{Customer, Document, GeoPoint, LatLonPoint, Territory};
use fieldsync_core::storage::Storage as _;
use fieldsync_e2e::{TestServer, customer_of, json_answer};
use serde_json::{Value, json};

const TEAM: &str = "acme";

/// A square territory of `rep` between two latitudes around Lyon.
fn band(id: &str, rep: &str, south: f64, north: f64) -> Document {
    let mut t = Territory::new(id, id, vec![rep.into()]);
    t.polygons = vec![vec![
        LatLonPoint { lat: south, lon: 4.6 },
        LatLonPoint { lat: north, lon: 4.6 },
        LatLonPoint { lat: north, lon: 5.1 },
        LatLonPoint { lat: south, lon: 5.1 },
    ]];
    t.into()
}

/// Alice north of 45.76, bob south of it; bob's customer c-known has a phone.
fn team_docs() -> Vec<Document> {
    let known = Customer {
        phone: "04 78 11 22 33".into(),
        owner_rep: Some("bob".into()),
        territory: Some("t-south".into()),
        ..Customer::new("c-known", "Café du Rhône", GeoPoint::wgs84(45.70, 4.84), "maria")
    };
    vec![band("t-north", "alice", 45.76, 46.0), band("t-south", "bob", 45.5, 45.76), known.into()]
}

async fn team() -> TestServer {
    let server = TestServer::start_with(|_| {}).await;
    server.seed(TEAM, &team_docs());
    server
}

fn lead_request(url: &str, token: &str, lead: &Value) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{url}/v1/leads"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(lead.to_string())
}

async fn post_lead(server: &TestServer, token: &str, lead: &Value) -> (u16, Value) {
    json_answer(lead_request(&server.url(), token, lead).send().await.expect("lead")).await
}

fn head(server: &TestServer, team: &str) -> u64 {
    server.server().engine().storage().feed_head(team).expect("head")
}

/// Every customer of the team whose phone is `phone` once normalized.
fn customers_with_phone(server: &TestServer, team: &str, phone: &str) -> Vec<String> {
    let want = fieldsync_core::docs::normalized_phone(phone).expect("a phone");
    server
        .server()
        .engine()
        .team_documents(team)
        .expect("documents")
        .into_iter()
        .filter_map(|d| match d {
            Document::Customer(c)
                if fieldsync_core::docs::normalized_phone(&c.phone).ok().as_deref() == Some(&want) =>
            {
                Some(c.id)
            }
            _ => None,
        })
        .collect()
}

fn web_lead() -> Value {
    json!({
        "name": "Boulangerie Martin", "phone": "+33 6 12 34 56 78", "lat": 45.80, "lon": 4.85,
        "address": "3 rue Neuve, Lyon", "source": "website", "notes": "Wants a tasting next week."
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lead_becomes_a_prospect_of_the_territory_rep_and_a_duplicate_merges_instead_of_doubling() {
    // 1. The team; alice's and bob's phones synced; the CRM's integration token.
    let server = team().await;
    let mut alice = server.add_device("alice-phone", TEAM, "alice", Role::Rep);
    let mut bob = server.add_device("bob-phone", TEAM, "bob", Role::Rep);
    alice.sync().await.expect("alice syncs");
    bob.sync().await.expect("bob syncs");
    let crm = server.token(TEAM, "crm", Role::Integration);

    // 2. A web-form lead north of Lyon: a prospect in alice's territory, owned by her.
    let (status, created) = post_lead(&server, &crm, &web_lead()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["outcome"], "created");
    assert_eq!(
        (created["owner_rep"].as_str(), created["territory"].as_str()),
        (Some("alice"), Some("t-north"))
    );
    let id = created["customer_id"].as_str().expect("an id").to_string();

    // 3. It reaches alice's phone with what the lead said, and not bob's.
    alice.sync().await.expect("alice syncs");
    bob.sync().await.expect("bob syncs");
    let c = customer_of(alice.doc(&id));
    assert_eq!((c.name.as_str(), c.phone.as_str()), ("Boulangerie Martin", "+33 6 12 34 56 78"));
    assert_eq!((c.opportunity_stage.as_str(), c.created_by.as_str()), ("prospecting", "crm"));
    assert!(c.tags.contains(&"lead:website".to_string()), "{:?}", c.tags);
    assert_eq!(c.notes.as_str(), "Wants a tasting next week.");
    assert!(bob.doc(&id).is_none(), "bob's phone holds alice's prospect");

    // 4. The CRM retries the same lead: merged, nothing written.
    let before = head(&server, TEAM);
    let (status, again) = post_lead(&server, &crm, &web_lead()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["outcome"].as_str(), again["customer_id"].as_str()),
        (Some("merged"), Some(id.as_str()))
    );
    assert_eq!(again["filled"], json!([]));
    assert_eq!(head(&server, TEAM), before, "a retried lead writes nothing");

    // 5. A trade-fair scanner sends bob's customer's number written otherwise, under another
    //    name: merged into c-known, which gains the source and the address, and keeps its name.
    let fair = json!({
        "name": "Cafe Rhone", "phone": "04.78.11.22.33", "lat": 45.70, "lon": 4.84,
        "address": "12 quai Perrache", "source": "trade-fair"
    });
    let (status, merged) = post_lead(&server, &crm, &fair).await;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["customer_id"], "c-known");
    assert_eq!(merged["filled"], json!(["address", "tags"]));
    bob.sync().await.expect("bob syncs");
    let known = customer_of(bob.doc("c-known"));
    assert_eq!((known.name.as_str(), known.address.as_str()), ("Café du Rhône", "12 quai Perrache"));
    assert!(known.tags.contains(&"lead:trade-fair".to_string()));
    assert_eq!(customers_with_phone(&server, TEAM, "0478112233"), vec!["c-known".to_string()]);

    // 6. Eight copies of a new lead at once, from eight senders (one sender has at most four
    //    bodies in flight): one customer, one 201, seven merges.
    let rush =
        json!({"name": "Fromagerie", "phone": "+33 7 00 00 00 01", "lat": 45.9, "lon": 4.9, "source": "ads"});
    let mut rushing = tokio::task::JoinSet::new();
    for n in 0..8 {
        let req =
            lead_request(&server.url(), &server.token(TEAM, &format!("crm-{n}"), Role::Integration), &rush);
        rushing.spawn(async move { json_answer(req.send().await.expect("lead")).await });
    }
    let answers = rushing.join_all().await;
    let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 201], "{answers:?}");
    let ids: std::collections::BTreeSet<_> =
        answers.iter().map(|(_, a)| a["customer_id"].to_string()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(customers_with_phone(&server, TEAM, "+33700000001").len(), 1);

    // 7. A lead with the CRM's own id, sent again with another phone: merged by the id.
    let first =
        json!({"name": "Épicerie", "external_id": "crm-77", "lat": 45.6, "lon": 4.9, "source": "crm"});
    let (status, a) = post_lead(&server, &crm, &first).await;
    assert_eq!(
        (status, a["customer_id"].as_str(), a["owner_rep"].as_str()),
        (201, Some("crm-77"), Some("bob"))
    );
    let second = json!({"name": "Epicerie", "external_id": "crm-77", "phone": "+33 7 99 99 99 99", "lat": 45.6, "lon": 4.9, "source": "crm"});
    let (status, b) = post_lead(&server, &crm, &second).await;
    assert_eq!((status, b["customer_id"].as_str()), (200, Some("crm-77")));
    assert_eq!(b["filled"], json!(["phone"]));

    // 8. A lead outside every territory: a prospect nobody owns yet, for a manager to assign.
    let (status, far) = post_lead(
        &server,
        &crm,
        &json!({"name": "Far away", "lat": 48.85, "lon": 2.35, "source": "website"}),
    )
    .await;
    assert_eq!(status, 201, "{far}");
    assert_eq!((far["owner_rep"].clone(), far["territory"].clone()), (Value::Null, Value::Null));

    // 9. Bad leads: typed refusals, nothing written.
    let before = head(&server, TEAM);
    let bad = [
        (json!({"name": "No place", "address": "5 rue X", "source": "web"}), 422, "lat/lon"),
        (
            json!({"name": "Bad phone", "phone": "call me", "lat": 45.8, "lon": 4.8, "source": "web"}),
            422,
            "phone",
        ),
        (json!({"name": "", "lat": 45.8, "lon": 4.8, "source": "web"}), 422, "name"),
        (json!({"name": "Off the map", "lat": 123.0, "lon": 4.8, "source": "web"}), 422, "lat/lon"),
        (
            json!({"name": "Odd", "lat": 45.8, "lon": 4.8, "source": "web", "owner_rep": "alice"}),
            400,
            "owner_rep",
        ),
        (json!({"name": 7, "lat": 45.8, "lon": 4.8, "source": "web"}), 400, "name"),
        (
            json!({"name": "Taken", "external_id": "t-north", "lat": 45.8, "lon": 4.8, "source": "web"}),
            409,
            "not a customer",
        ),
    ];
    for (lead, want, says) in bad {
        let (status, body) = post_lead(&server, &crm, &lead).await;
        assert_eq!(status, want, "{lead}: {body}");
        assert!(body["error"].is_string() && body["request_id"].is_string(), "{body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains(says)), "{lead}: {body}");
    }
    assert_eq!(head(&server, TEAM), before, "a refused lead writes nothing");
}

#[tokio::test]
async fn an_integration_token_posts_leads_and_opens_nothing_else() {
    // 1. The team, and a second team with its own CRM.
    let server = team().await;
    server.seed("globex", &[band("g-north", "gina", 45.0, 46.5)]);
    let crm = server.token(TEAM, "crm", Role::Integration);
    let http = reqwest::Client::new();

    // 2. Every other route refuses the integration's token, the sync first of all.
    for (method, path) in [
        ("POST", "/v1/sync"),
        ("GET", "/v1/docs/c-known"),
        ("GET", "/v1/quarantine"),
        ("GET", "/v1/reports/visits"),
        ("GET", "/v1/map/customers"),
        ("GET", "/v1/me"),
        ("GET", "/v1/export/customers"),
        ("POST", "/v1/import"),
        ("POST", "/v1/devices/revoke"),
        ("GET", "/v1/plan/targets"),
    ] {
        let req = match method {
            "GET" => http.get(format!("{}{path}", server.url())),
            _ => http.post(format!("{}{path}", server.url())).body("{}"),
        };
        let (status, body) = json_answer(req.bearer_auth(&crm).send().await.expect("answer")).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains("only post leads")), "{body}");
    }
    let (status, _) = json_answer(
        http.get(format!("{}/metrics", server.url())).bearer_auth(&crm).send().await.expect("metrics"),
    )
    .await;
    assert_eq!(status, 401);

    // 3. Reps and managers do not post leads; an admin may.
    let lead =
        json!({"name": "Shop", "phone": "+33 6 55 55 55 55", "lat": 45.8, "lon": 4.85, "source": "manual"});
    for (user, role) in [("alice", Role::Rep), ("maria", Role::Manager)] {
        let (status, body) = post_lead(&server, &server.token(TEAM, user, role), &lead).await;
        assert_eq!(status, 403, "{role:?}: {body}");
    }
    let (status, body) = post_lead(&server, &server.token(TEAM, "root", Role::Admin), &lead).await;
    assert_eq!(status, 201, "{body}");

    // 4. Globex's CRM sends a lead with acme's customer's phone: a new customer of globex; acme's
    //    is untouched.
    let acme_before = head(&server, TEAM);
    let globex_crm = server.token("globex", "crm", Role::Integration);
    let same_phone = json!({"name": "Café du Rhône", "phone": "04 78 11 22 33", "lat": 45.70, "lon": 4.84, "source": "crm"});
    let (status, body) = post_lead(&server, &globex_crm, &same_phone).await;
    assert_eq!(
        (status, body["outcome"].as_str(), body["owner_rep"].as_str()),
        (201, Some("created"), Some("gina")),
        "{body}"
    );
    assert_eq!(head(&server, TEAM), acme_before);
    assert_eq!(customers_with_phone(&server, TEAM, "0478112233"), vec!["c-known".to_string()]);
    assert_eq!(customers_with_phone(&server, "globex", "0478112233").len(), 1);
}

#[tokio::test]
async fn a_sender_past_its_rate_waits_as_told_and_others_go_on() {
    // 1. At most 6 leads a minute, 3 at once.
    let server = TestServer::start_with(|c| {
        c.limits.leads_per_minute = 6;
        c.limits.lead_burst = 3;
    })
    .await;
    server.seed(TEAM, &team_docs());
    let crm = server.token(TEAM, "crm", Role::Integration);
    let lead = |n: u32| json!({"name": format!("Lead {n}"), "lat": 45.8, "lon": 4.85, "source": "ads"});

    // 2. Three go through; the fourth is told to wait ten seconds and writes nothing.
    for n in 0..3 {
        assert_eq!(post_lead(&server, &crm, &lead(n)).await.0, 201);
    }
    let before = head(&server, TEAM);
    let resp = lead_request(&server.url(), &crm, &lead(3)).send().await.expect("lead");
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "10");
    let (_, body) = json_answer(resp).await;
    assert_eq!(body["error"], "too_many_requests");
    assert_eq!(head(&server, TEAM), before);

    // 3. Another sender is not held up by it.
    let other = server.token(TEAM, "webform", Role::Integration);
    assert_eq!(post_lead(&server, &other, &lead(4)).await.0, 201);

    // 4. Ten seconds later (the server's clock), the first sender has one lead again, not two.
    server.clock().advance_ms(10_000);
    assert_eq!(post_lead(&server, &crm, &lead(5)).await.0, 201);
    assert_eq!(post_lead(&server, &crm, &lead(6)).await.0, 429);
}
