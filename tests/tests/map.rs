//! The team map over HTTP on the seeded demo team: GeoJSON customers from the R-tree over the
//! report index (filtered, clustered, current after every write), territories as polygons, a rep's
//! day as check-ins and a route; role-checked, and bad views are typed 4xx.

use fieldsync_core::Role;
use fieldsync_core::geo::{CheckinFix, LatLon, VerifyConfig};
use fieldsync_e2e::{MORNING_MS, TestServer};
use serde_json::Value;

const TEAM: &str = "demo";
const LYON: &str = "bbox=4.5,45.5,5.2,46.0";

fn features(v: &Value) -> &Vec<Value> {
    v["features"].as_array().expect("a FeatureCollection")
}

#[tokio::test]
async fn a_manager_sees_the_team_on_the_map_filtered_and_clustered() {
    let server = TestServer::demo().await;
    let maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);

    // 1. Every customer of the view, as RFC 7946 points inside it.
    let (status, all) = maria.get_json(&format!("/v1/map/customers?{LYON}&max_points=5000")).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        (all["type"].as_str(), all["total"].as_u64(), all["clustered"].as_bool()),
        (Some("FeatureCollection"), Some(300), Some(false))
    );
    for f in features(&all) {
        let c = f["geometry"]["coordinates"].as_array().expect("coordinates");
        let (lon, lat) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
        assert!((4.5..5.2).contains(&lon) && (45.5..46.0).contains(&lat), "[lon, lat] in the view: {f}");
        assert!(f["properties"]["tier"].as_str().is_some_and(|t| ["A", "B", "C"].contains(&t)), "{f}");
    }

    // 2. Filters: tier A is the segmentation's A; a rep's are theirs; a status narrows.
    let (_, seg) = maria.get_json("/v1/plan/segmentation").await;
    let a_count = seg["assignments"].as_array().unwrap().iter().filter(|a| a["effective"] == "A").count();
    let (_, a) = maria.get_json(&format!("/v1/map/customers?{LYON}&tier=A&max_points=5000")).await;
    assert_eq!(a["total"].as_u64(), Some(a_count as u64));
    let (_, alice) = maria.get_json(&format!("/v1/map/customers?{LYON}&rep=alice&max_points=5000")).await;
    assert_eq!(alice["total"], 61);
    assert!(features(&alice).iter().all(|f| f["properties"]["owner_rep"] == "alice"));
    let (_, quotes) =
        maria.get_json(&format!("/v1/map/customers?{LYON}&status=send_quote&max_points=5000")).await;
    let quotes_total = quotes["total"].as_u64().unwrap();
    assert!(quotes_total > 0 && quotes_total < 300);
    assert!(features(&quotes).iter().all(|f| f["properties"]["follow_up_status"] == "send_quote"));

    // 3. Zoomed out past max_points: clusters, which count every customer once.
    let (_, clustered) = maria.get_json(&format!("/v1/map/customers?{LYON}&max_points=16")).await;
    assert_eq!(clustered["clustered"], true);
    let n = features(&clustered).len();
    assert!(n > 1 && n <= 17, "{n} clusters");
    let counted: u64 = features(&clustered).iter().map(|f| f["properties"]["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 300);

    // 4. After a reassignment the map is current at once (the tree of the older version is not used).
    let mut tablet = server.synced_device("maria-tablet-2", TEAM, "maria", Role::Manager).await;
    let (_, bruno) = maria.get_json(&format!("/v1/map/customers?{LYON}&rep=bruno&max_points=5000")).await;
    let before = bruno["total"].as_u64().unwrap();
    let moved = features(&alice)[0]["id"].as_str().unwrap().to_string();
    tablet
        .replica
        .reassign_customer(&moved, "bruno", Some("territory-bruno".into()), MORNING_MS)
        .expect("reassign");
    tablet.sync().await.expect("sync");
    let (_, bruno) = maria.get_json(&format!("/v1/map/customers?{LYON}&rep=bruno&max_points=5000")).await;
    assert_eq!(bruno["total"].as_u64(), Some(before + 1));
    assert!(features(&bruno).iter().any(|f| f["id"] == moved.as_str()));

    // 5. Territories as closed polygons.
    let (status, t) = maria.get_json("/v1/map/territories").await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(features(&t).len(), 5);
    for f in features(&t) {
        assert_eq!(f["geometry"]["type"], "MultiPolygon");
        let ring = f["geometry"]["coordinates"][0][0].as_array().expect("a ring");
        assert!(ring.len() >= 4 && ring.first() == ring.last(), "a closed ring: {f}");
    }
}

#[tokio::test]
async fn a_reps_day_shows_check_ins_and_the_route_and_reps_see_only_their_own() {
    let server = TestServer::demo().await;
    let maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;

    // 1. Alice plans two visits today and checks in at the first.
    let near =
        alice.replica.customers_near(LatLon { lat: 45.764, lon: 4.8357 }, 50_000.0, &[], &[]).expect("near");
    let (c1, c2) = (near[0].0.clone(), near[1].0.clone());
    let at = |h: i64| MORNING_MS + h * 3_600_000;
    alice.replica.plan_visit("v-1", &c1.id, at(0), at(0) + 1_800_000, MORNING_MS).expect("plan");
    alice.replica.plan_visit("v-2", &c2.id, at(3), at(3) + 1_800_000, MORNING_MS).expect("plan");
    let fix = CheckinFix {
        point: LatLon { lat: c1.location.lat, lon: c1.location.lon },
        accuracy_m: 8.0,
        device_time_ms: at(0),
        mock_location: false,
    };
    alice.replica.check_in("v-1", "ci-1", fix, at(0), &VerifyConfig::default()).expect("check in");
    alice.sync().await.expect("sync");

    // 2. The day: her check-in as a point with the server's verdict, her route as a line.
    let (status, day) = maria.get_json("/v1/map/day?rep=alice&date=2026-11-30").await;
    assert_eq!(status, 200, "{day}");
    let kinds: Vec<&str> = features(&day).iter().filter_map(|f| f["properties"]["kind"].as_str()).collect();
    assert!(kinds.contains(&"planned_route") && kinds.contains(&"checkin"), "{day}");
    let ci = features(&day).iter().find(|f| f["id"] == "ci-1").expect("the check-in");
    assert_eq!(ci["properties"]["status"], "verified", "{ci}");
    let route = features(&day).iter().find(|f| f["properties"]["kind"] == "planned_route").unwrap();
    // Her two visits and the three the demo week plans for her that day.
    assert_eq!(route["geometry"]["coordinates"].as_array().map(Vec::len), Some(5));

    // 3. A rep sees their own customers, territory and day, and nobody else's.
    let (status, mine) = alice.get_json(&format!("/v1/map/customers?{LYON}&max_points=5000")).await;
    assert_eq!((status, mine["total"].as_u64()), (200, Some(61)), "{mine}");
    assert_eq!(features(&alice.get_json("/v1/map/territories").await.1).len(), 1);
    for path in
        [format!("/v1/map/customers?{LYON}&rep=bruno"), "/v1/map/day?rep=bruno&date=2026-11-30".to_string()]
    {
        let (status, body) = alice.get_json(&path).await;
        assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")), "{path}: {body}");
    }

    // 4. Bad views are typed 4xx; another team sees nothing of this one.
    let cases = [
        ("/v1/map/customers?bbox=4.5,45.5,5.2".to_string(), 400, "invalid_request"),
        ("/v1/map/customers?bbox=5.2,45.5,4.5,46.0".to_string(), 400, "invalid_request"),
        ("/v1/map/customers?bbox=4.5,45.5,5.2,95".to_string(), 400, "invalid_request"),
        ("/v1/map/customers?bbox=NaN,45.5,5.2,46".to_string(), 400, "invalid_request"),
        ("/v1/map/customers".to_string(), 400, "bad_request"),
        (format!("/v1/map/customers?{LYON}&tier=D"), 400, "invalid_request"),
        (format!("/v1/map/customers?{LYON}&max_points=0"), 400, "invalid_request"),
        (format!("/v1/map/customers?{LYON}&rep=zed"), 404, "unknown_rep"),
        ("/v1/map/day?rep=zed&date=2026-11-30".to_string(), 404, "unknown_rep"),
        ("/v1/map/day?rep=alice&date=01/12/2026".to_string(), 422, "invalid_request"),
    ];
    for (path, status, code) in cases {
        let (got, body) = maria.get_json(&path).await;
        assert_eq!((got, body["error"].as_str()), (status, Some(code)), "{path}: {body}");
    }
    let stranger = server.add_device("zz-tablet", "other-team", "zed", Role::Manager);
    let (_, theirs) = stranger.get_json(&format!("/v1/map/customers?{LYON}")).await;
    assert_eq!(theirs["total"], 0, "{theirs}");
}
