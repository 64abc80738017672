//! Fuzzing of every HTTP endpoint's input as ordinary tests (issue 14, item 5): each route of the
//! router, from [`ROUTES`] (checked against the server's own `/openapi.json`, so a new route the
//! fuzzer does not know fails [`the_fuzzer_knows_every_route_the_server_describes`]), gets inputs
//! generated with proptest and sent over real HTTP to a real server on a loopback port holding the
//! demo team, each input as a rep (`alice`) and as the manager (`maria`), some also with no token
//! or a garbage one.
//!
//! The inputs start from a valid request of the route and are damaged with its structure in mind:
//! a field of the JSON body (at any depth) replaced by a value of the wrong type, a huge, negative,
//! `-0`, `1e308`, subnormal or out-of-range number (`1e400`, `NaN` written raw), a very long or
//! strange string (NUL, lone surrogates, right-to-left marks, emoji, path traversal), deep nesting
//! (past serde's recursion limit), an array repeated within and beyond its bound; fields removed,
//! extra fields added; raw byte garbage, truncated and spliced JSON text, other content types;
//! query parameters replaced, dropped, duplicated, added, raw or percent-encoded bytes (invalid
//! UTF-8 too); path segments of every kind; a stray suffix after the route.
//!
//! The oracle, for every answer: no 5xx (the one exception is `503 overloaded`, the documented
//! answer of a server at one of its limits, counted and printed — none are expected here, requests
//! go one at a time); every refusal is JSON with a snake_case `error`, a `message` and a
//! `request_id`, naming no internals (`sled`, `automerge`, a panic, a Rust path, a run of 16+ hex
//! digits); a rep never gets a 2xx from a manager-only route; a request without a valid token gets
//! 401 on every route that is not public; each answer within [`PER_REQUEST`]. After each route's
//! batch the server must still answer `/healthz` and the plan document, byte for byte as before.
//!
//! Deterministic: every route runs a fixed number of cases from a fixed seed (ChaCha, derived from
//! the route's name), no failure persistence, so CI sends the same requests every run. Counts per
//! route and in total are printed (`-- --nocapture`). A longer run:
//!
//! ```text
//! FIELDSYNC_FUZZ_CASES=2000 cargo test -p fieldsync-e2e --test fuzz_http --release -- --nocapture
//! ```
//!
//! (`FIELDSYNC_FUZZ_CASES` sets the cases of every route, `FIELDSYNC_FUZZ_SEED=<u64>` explores
//! another sequence: the same variables as `sync-core/tests/fuzz.rs`.) A failing case is shrunk,
//! and its requests are written to `$CARGO_TARGET_TMPDIR/fuzz-http-crashers/` in the fixture format:
//! keep each one under `tests/fixtures/http/`, where [`http_fixtures_are_refused_with_a_4xx`]
//! replays every file and expects a typed 4xx.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use fieldsync_core::Role;
use fieldsync_core::protocol::{CONTENT_TYPE as SYNC_CONTENT_TYPE, Cursor, SyncRequest};
use fieldsync_e2e::{MORNING_MS, TestServer};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestError, TestRunner};
use serde_json::{Value, json};

// --- the routes ------------------------------------------------------------------------------------

/// What a route reads besides its caller.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Input {
    /// The query string; the names it knows (none: the route reads no query, extra ones are fuzzed
    /// anyway).
    Query(&'static [&'static str]),
    /// One path segment (the route's `{…}`).
    Path,
    /// A JSON body.
    Json,
    /// The framed CBOR of `/v1/sync`.
    Cbor,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Access {
    /// No token needed.
    Public,
    /// Any member of the team.
    Member,
    /// Managers and admins: a rep gets 403.
    Manager,
    /// The deployment's metrics token, which no user's token is: everyone here gets 401.
    Operator,
    /// An integration's token (or an admin's): reps and managers get 403.
    Integration,
}

#[derive(Debug)]
struct Route {
    method: &'static str,
    /// The route as the OpenAPI document names it.
    path: &'static str,
    access: Access,
    input: Input,
    /// A valid request: the target (path and query), and for [`Input::Json`] the body (`DESIGN`:
    /// the territory design the server proposes, fetched at the start).
    target: &'static str,
    body: &'static str,
    /// Cases per route before `FIELDSYNC_FUZZ_CASES`: fewer where a valid input costs a planning
    /// computation.
    cases: u32,
}

const REPORT_KEYS: &[&str] = &["rep", "from_ms", "to_ms"];
const PLAN_KEYS: &[&str] = &["rep", "now_ms", "from_ms", "to_ms"];

/// Every route of the server, in the order they are fuzzed (the one that writes the most,
/// `territories/apply`, last).
const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/healthz",
        access: Access::Public,
        input: Input::Query(&[]),
        target: "/healthz",
        body: "",
        cases: 24,
    },
    Route {
        method: "GET",
        path: "/openapi.json",
        access: Access::Public,
        input: Input::Query(&[]),
        target: "/openapi.json",
        body: "",
        cases: 12,
    },
    Route {
        method: "POST",
        path: "/v1/leads",
        access: Access::Integration,
        input: Input::Json,
        target: "/v1/leads",
        body: r#"{"name": "Shop", "phone": "+33 6 12 34 56 78", "lat": 45.76, "lon": 4.83, "source": "website"}"#,
        cases: 24,
    },
    Route {
        method: "GET",
        path: "/metrics",
        access: Access::Operator,
        input: Input::Query(&[]),
        target: "/metrics",
        body: "",
        cases: 24,
    },
    Route {
        method: "GET",
        path: "/",
        access: Access::Public,
        input: Input::Query(&[]),
        target: "/",
        body: "",
        cases: 16,
    },
    Route {
        method: "GET",
        path: "/assets/{name}",
        access: Access::Public,
        input: Input::Path,
        target: "/assets/app.css",
        body: "",
        cases: 48,
    },
    Route {
        method: "GET",
        path: "/v1/dashboard/config",
        access: Access::Public,
        input: Input::Query(&[]),
        target: "/v1/dashboard/config",
        body: "",
        cases: 16,
    },
    Route {
        method: "POST",
        path: "/v1/dev/sign-in",
        access: Access::Public,
        input: Input::Json,
        target: "/v1/dev/sign-in",
        body: "{}",
        cases: 24,
    },
    Route {
        method: "GET",
        path: "/v1/me",
        access: Access::Member,
        input: Input::Query(&[]),
        target: "/v1/me",
        body: "",
        cases: 16,
    },
    Route {
        method: "POST",
        path: "/v1/sync",
        access: Access::Member,
        input: Input::Cbor,
        target: "/v1/sync",
        body: "",
        cases: 48,
    },
    Route {
        method: "GET",
        path: "/v1/quarantine",
        access: Access::Manager,
        input: Input::Query(&["limit"]),
        target: "/v1/quarantine?limit=10",
        body: "",
        cases: 48,
    },
    Route {
        method: "GET",
        path: "/v1/docs/{id}",
        access: Access::Member,
        input: Input::Path,
        target: "/v1/docs/cust-0001",
        body: "",
        cases: 96,
    },
    Route {
        method: "GET",
        path: "/v1/reports/visits",
        access: Access::Member,
        input: Input::Query(REPORT_KEYS),
        target: "/v1/reports/visits?rep=alice&from_ms=1795000000000&to_ms=1796029200000",
        body: "",
        cases: 64,
    },
    Route {
        method: "GET",
        path: "/v1/reports/customers",
        access: Access::Member,
        input: Input::Query(REPORT_KEYS),
        target: "/v1/reports/customers?rep=alice&from_ms=1795000000000&to_ms=1796029200000",
        body: "",
        cases: 48,
    },
    Route {
        method: "GET",
        path: "/v1/reports/effort",
        access: Access::Member,
        input: Input::Query(REPORT_KEYS),
        target: "/v1/reports/effort?rep=alice&from_ms=1795000000000&to_ms=1796029200000",
        body: "",
        cases: 48,
    },
    Route {
        method: "GET",
        path: "/v1/reports/calendar",
        access: Access::Member,
        input: Input::Query(REPORT_KEYS),
        target: "/v1/reports/calendar?rep=alice&from_ms=1795424400000&to_ms=1796029200000",
        body: "",
        cases: 48,
    },
    Route {
        method: "GET",
        path: "/v1/reviews/checkins",
        access: Access::Manager,
        input: Input::Query(&["limit"]),
        target: "/v1/reviews/checkins?limit=10",
        body: "",
        cases: 32,
    },
    Route {
        method: "POST",
        path: "/v1/reviews/checkins",
        access: Access::Manager,
        input: Input::Json,
        target: "/v1/reviews/checkins",
        body: r#"{"visit_id":"visit-seed-0000","checkin_id":"ck-0","decision":"approved","comment":"seen by phone"}"#,
        cases: 96,
    },
    Route {
        method: "GET",
        path: "/v1/map/customers",
        access: Access::Member,
        input: Input::Query(&["bbox", "tier", "status", "rep", "territory", "max_points"]),
        target: "/v1/map/customers?bbox=4.5,45.5,5.2,46.0&tier=A,B&rep=alice&max_points=50",
        body: "",
        cases: 96,
    },
    Route {
        method: "GET",
        path: "/v1/map/territories",
        access: Access::Member,
        input: Input::Query(&[]),
        target: "/v1/map/territories",
        body: "",
        cases: 12,
    },
    Route {
        method: "GET",
        path: "/v1/map/day",
        access: Access::Member,
        input: Input::Query(&["rep", "date", "timezone"]),
        target: "/v1/map/day?rep=alice&date=2026-11-30&timezone=Europe/Paris",
        body: "",
        cases: 96,
    },
    Route {
        method: "GET",
        path: "/v1/live",
        access: Access::Member,
        input: Input::Query(&["after"]),
        target: "/v1/live?after=0",
        body: "",
        cases: 32,
    },
    Route {
        method: "POST",
        path: "/v1/devices/revoke",
        access: Access::Manager,
        input: Input::Json,
        target: "/v1/devices/revoke",
        body: r#"{"device_id":"fuzz-phone","reason":"lost in Lyon"}"#,
        cases: 96,
    },
    Route {
        method: "GET",
        path: "/v1/export/customers",
        access: Access::Manager,
        input: Input::Query(&["format"]),
        target: "/v1/export/customers?format=xlsx",
        body: "",
        cases: 32,
    },
    Route {
        method: "GET",
        path: "/v1/export/visits",
        access: Access::Manager,
        input: Input::Query(&["format", "from_ms", "to_ms"]),
        target: "/v1/export/visits?format=geojson",
        body: "",
        cases: 32,
    },
    Route {
        method: "POST",
        path: "/v1/import",
        access: Access::Manager,
        input: Input::Query(&["dry_run", "format"]),
        target: "/v1/import?dry_run=true&format=csv",
        body: "",
        cases: 48,
    },
    Route {
        method: "GET",
        path: "/v1/plan/segmentation",
        access: Access::Manager,
        input: Input::Query(&[]),
        target: "/v1/plan/segmentation",
        body: "",
        cases: 8,
    },
    Route {
        method: "GET",
        path: "/v1/plan/targets",
        access: Access::Member,
        input: Input::Query(&[]),
        target: "/v1/plan/targets",
        body: "",
        cases: 8,
    },
    Route {
        method: "GET",
        path: "/v1/plan/overdue",
        access: Access::Member,
        input: Input::Query(PLAN_KEYS),
        target: "/v1/plan/overdue?rep=alice&now_ms=1796029200000",
        body: "",
        cases: 32,
    },
    Route {
        method: "GET",
        path: "/v1/plan/time-share",
        access: Access::Member,
        input: Input::Query(PLAN_KEYS),
        target: "/v1/plan/time-share?rep=alice&from_ms=1795000000000&to_ms=1796029200000",
        body: "",
        cases: 32,
    },
    Route {
        method: "POST",
        path: "/v1/plan/day",
        access: Access::Member,
        input: Input::Json,
        target: "/v1/plan/day",
        body: r#"{"rep":"alice","date":"2026-11-30","timezone":"Europe/Paris","start_lat":45.764,"start_lon":4.8357,"end_lat":45.75,"end_lon":4.85,"work_start_min":510,"work_end_min":1080,"max_optional":4,"travel":{"speed_kmh":30.0,"detour_factor":1.3}}"#,
        cases: 48,
    },
    Route {
        method: "POST",
        path: "/v1/plan/week",
        access: Access::Manager,
        input: Input::Json,
        target: "/v1/plan/week",
        body: r#"{"date":"2026-11-30","days":1,"timezone":"Europe/Paris","reps":[{"rep":"alice","lat":45.76,"lon":4.83}],"work_start_min":510,"work_end_min":1080,"travel":{"speed_kmh":30.0,"detour_factor":1.3},"working_weekdays":[1,2,3,4,5]}"#,
        cases: 32,
    },
    Route {
        method: "POST",
        path: "/v1/plan/sub-areas",
        access: Access::Member,
        input: Input::Json,
        target: "/v1/plan/sub-areas",
        body: "SUB_AREAS",
        cases: 48,
    },
    Route {
        method: "POST",
        path: "/v1/plan/territories",
        access: Access::Manager,
        input: Input::Json,
        target: "/v1/plan/territories",
        body: r#"{"reps":[{"rep":"alice","home":{"lat":45.76,"lon":4.83}},{"rep":"bruno","home":{"lat":45.80,"lon":4.90}}],"tolerance":0.5,"seed":1}"#,
        cases: 32,
    },
    Route {
        method: "POST",
        path: "/v1/plan/territories/apply",
        access: Access::Manager,
        input: Input::Json,
        target: "/v1/plan/territories/apply",
        body: "DESIGN",
        cases: 48,
    },
];

/// The bound on every answer.
const PER_REQUEST: Duration = Duration::from_secs(10);

const DEMO: &str = "demo";

// --- generated inputs -----------------------------------------------------------------------------

/// A value written into a JSON body in place of what was there.
#[derive(Debug, Clone)]
enum Hostile {
    Json(Value),
    /// JSON text serde_json's `Value` cannot hold (`1e400`, `NaN`, lone surrogates, …).
    Raw(&'static str),
    /// `depth` nested arrays or objects.
    Deep {
        depth: usize,
        object: bool,
    },
    /// A string of `n` times `c`.
    Long(usize, char),
    /// An array of `n` copies of the value there (of its first element, if an array).
    Repeat(usize),
    /// The value there inside an array.
    Wrap,
    Text(String),
    /// A hostile value of the type already there: a boundary number for a number, a strange or
    /// long string for a string, the array repeated around its bounds, the flag flipped.
    Like(Index),
}

fn hostile_numbers() -> Vec<Value> {
    vec![
        json!(0),
        json!(-1),
        json!(1),
        json!(-0.0),
        json!(0.5),
        json!(1.5),
        json!(-1.5),
        json!(1e308),
        json!(-1e308),
        json!(5e-324),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u32::MAX),
        json!(4_294_967_296_u64),
        json!(9_007_199_254_740_993_u64),
        json!(65_536),
        json!(1_440),
        json!(1_441),
        json!(90.000_001),
        json!(-180.000_001),
        json!(MORNING_MS),
        json!(7_258_118_400_001_i64),
    ]
}

fn hostile_strings() -> Vec<&'static str> {
    vec![
        "",
        " ",
        "alice",
        "bruno",
        "maria",
        "zed",
        "cust-0001",
        "visit-seed-0000",
        "2026-11-30",
        "2026-02-30",
        "1999-12-31",
        "2200-01-01",
        "-2026-11-30",
        "9999-99-99",
        "2026-11-30T09:00:00Z",
        "Europe/Paris",
        "Mars/Olympus_Mons",
        "UTC",
        "../../etc/passwd",
        "a/b",
        "%00",
        "\u{0}",
        "\u{0}\u{1}\u{7f}",
        "é",
        "🦀🦀🦀",
        "\u{202e}evil\u{202c}",
        "\u{200b}",
        "\u{fffd}\u{ffff}",
        "null",
        "true",
        "1e308",
        "NaN",
        "-0",
        "approved",
        "rejected",
        "A",
        "Z",
        "<script>alert(1)</script>",
        "' OR 1=1 --",
        "{\"rep\":\"alice\"}",
    ]
}

const RAW_JSON: &[&str] = &[
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    "00012",
    "-",
    "0x10",
    "+1",
    ".5",
    "1.",
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\u0000\"",
    "\"\\x41\"",
    "\"unterminated",
    "undefined",
    "[1,]",
    "{\"a\":1,}",
    "123456789012345678901234567890123456789012345678901234567890",
    "0.0000000000000000000000000000000000000000000000000000000000000000000000000000000000000001",
];

/// Sizes of repeated arrays: around the bounds (64 areas, 500 reps, 10 000 hull points), and far
/// beyond (a body near and past the 8 MiB limit).
const REPEATS: &[usize] = &[0, 1, 2, 7, 8, 63, 64, 65, 499, 500, 501, 2_000, 10_001, 100_000, 400_000];

fn hostile() -> impl Strategy<Value = Hostile> {
    prop_oneof![
        12 => any::<Index>().prop_map(Hostile::Like),
        4 => proptest::sample::select(hostile_numbers()).prop_map(Hostile::Json),
        4 => proptest::sample::select(hostile_strings()).prop_map(|s| Hostile::Json(json!(s))),
        2 => proptest::sample::select(vec![json!(null), json!(true), json!(false), json!({}), json!([]), json!([null]), json!({"": null})]).prop_map(Hostile::Json),
        3 => proptest::sample::select(RAW_JSON).prop_map(Hostile::Raw),
        1 => (proptest::sample::select(vec![129_usize, 200, 1_000, 100_000]), any::<bool>())
            .prop_map(|(depth, object)| Hostile::Deep { depth, object }),
        2 => (
            proptest::sample::select(vec![64_usize, 65, 128, 129, 500, 501, 2_001, 100_001, 1_000_000]),
            proptest::sample::select(vec!['a', 'é', '🦀', '0', '\u{0}', '/']),
        )
            .prop_map(|(n, c)| Hostile::Long(n, c)),
        3 => proptest::sample::select(REPEATS).prop_map(Hostile::Repeat),
        1 => Just(Hostile::Wrap),
        2 => "\\PC{0,40}".prop_map(Hostile::Text),
        1 => any::<i64>().prop_map(|n| Hostile::Json(json!(n))),
        1 => any::<f64>().prop_filter("JSON numbers", |f| f.is_finite()).prop_map(|f| Hostile::Json(json!(f))),
    ]
}

/// How a JSON body is damaged.
#[derive(Debug, Clone)]
enum BodyMut {
    /// The valid body, as it is.
    Valid,
    /// The value at one place (any depth, the root too) replaced.
    Set(Index, Hostile),
    /// Several places replaced.
    Many(Vec<(Index, Hostile)>),
    /// A field or element removed.
    Remove(Index),
    /// A field added to an object.
    Extra(Index, String, Hostile),
    /// Random bytes, no JSON at all.
    Garbage(Vec<u8>),
    /// The valid text cut short.
    Truncate(Index),
    /// Random bytes written into the valid text.
    Splice(Index, Vec<u8>),
}

fn body_mut() -> impl Strategy<Value = BodyMut> {
    prop_oneof![
        1 => Just(BodyMut::Valid),
        10 => (any::<Index>(), hostile()).prop_map(|(i, h)| BodyMut::Set(i, h)),
        3 => proptest::collection::vec((any::<Index>(), hostile()), 2..5).prop_map(BodyMut::Many),
        3 => any::<Index>().prop_map(BodyMut::Remove),
        2 => (any::<Index>(), "[a-z_]{1,12}", hostile()).prop_map(|(i, k, h)| BodyMut::Extra(i, k, h)),
        2 => proptest::collection::vec(any::<u8>(), 0..256).prop_map(BodyMut::Garbage),
        2 => any::<Index>().prop_map(BodyMut::Truncate),
        2 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| BodyMut::Splice(i, b)),
    ]
}

/// A query value or path segment.
#[derive(Debug, Clone)]
enum QText {
    Fixed(&'static str),
    Long(usize, char),
    Bytes(Vec<u8>),
    Text(String),
}

#[derive(Debug, Clone)]
struct QVal {
    text: QText,
    /// Percent-encode everything but unreserved characters; otherwise only what would break the
    /// request line (space, CR, LF, `#`, control bytes) is encoded, the rest is sent raw.
    encode: bool,
}

const QUERY_VALUES: &[&str] = &[
    "",
    "-1",
    "0",
    "-0",
    "1",
    "1e308",
    "NaN",
    "inf",
    "18446744073709551616",
    "18446744073709551615",
    "9223372036854775807",
    "-9223372036854775808",
    "1796029200000",
    "1795000000000",
    "7258118400001",
    "+5",
    "0x10",
    "1.5",
    " 5",
    "1000",
    "1001",
    "5000",
    "5001",
    "alice",
    "bruno",
    "maria",
    "zed",
    "A",
    "A,B,C",
    "A,,B",
    "D",
    "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u",
    "send_quote",
    "territory-alice",
    "2026-11-30",
    "2026-13-01",
    "2026-11-31",
    "1900-01-01",
    "30/11/2026",
    "Europe/Paris",
    "America/New_York",
    "Etc/GMT+14",
    "Nowhere/Land",
    "4.5,45.5,5.2,46.0",
    "-180,-90,180,90",
    "181,0,0,0",
    "0,91,0,0",
    "NaN,NaN,NaN,NaN",
    "inf,0,0,0",
    "1,2,3",
    "1,2,3,4,5",
    "5.2,46.0,4.5,45.5",
    "%",
    "%zz",
    "%ff%fe",
    "%00",
    "%C0%AF",
    "..%2F..%2Fetc%2Fpasswd",
    "a&b=c",
    "=",
    "[]",
    "{}",
    "🦀",
    "\u{202e}",
];

fn qval() -> impl Strategy<Value = QVal> {
    let text = prop_oneof![
        6 => proptest::sample::select(QUERY_VALUES).prop_map(QText::Fixed),
        1 => (proptest::sample::select(vec![65_usize, 129, 1_000, 20_000]), proptest::sample::select(vec!['a', '9', 'é', ','])).prop_map(|(n, c)| QText::Long(n, c)),
        2 => proptest::collection::vec(any::<u8>(), 0..24).prop_map(QText::Bytes),
        2 => "\\PC{0,24}".prop_map(QText::Text),
    ];
    (text, proptest::bool::weighted(0.7)).prop_map(|(text, encode)| QVal { text, encode })
}

/// How a query string is damaged.
#[derive(Debug, Clone)]
enum QueryMut {
    Valid,
    /// A known parameter set (added if absent) to a value.
    Set(Index, QVal),
    Many(Vec<(Index, QVal)>),
    /// A parameter of the valid query dropped.
    Remove(Index),
    /// A known parameter given twice.
    Duplicate(Index, QVal),
    /// A parameter the route does not know.
    Extra(String, QVal),
    /// The whole query string replaced by bytes.
    Raw(QVal),
}

fn query_mut() -> impl Strategy<Value = QueryMut> {
    prop_oneof![
        1 => Just(QueryMut::Valid),
        10 => (any::<Index>(), qval()).prop_map(|(i, v)| QueryMut::Set(i, v)),
        4 => proptest::collection::vec((any::<Index>(), qval()), 2..5).prop_map(QueryMut::Many),
        2 => any::<Index>().prop_map(QueryMut::Remove),
        2 => (any::<Index>(), qval()).prop_map(|(i, v)| QueryMut::Duplicate(i, v)),
        2 => ("[a-z_\\[\\]]{1,10}", qval()).prop_map(|(k, v)| QueryMut::Extra(k, v)),
        2 => qval().prop_map(QueryMut::Raw),
    ]
}

/// How a sync frame is damaged (the frame decoder has its own, deeper fuzzing in sync-core).
#[derive(Debug, Clone)]
enum CborMut {
    Valid,
    Flip(Vec<(Index, u8)>),
    Truncate(Index),
    Garbage(Vec<u8>),
}

fn cbor_mut() -> impl Strategy<Value = CborMut> {
    prop_oneof![
        1 => Just(CborMut::Valid),
        4 => proptest::collection::vec((any::<Index>(), any::<u8>()), 1..6).prop_map(CborMut::Flip),
        2 => any::<Index>().prop_map(CborMut::Truncate),
        3 => proptest::collection::vec(any::<u8>(), 0..512).prop_map(CborMut::Garbage),
    ]
}

/// The content type a body is sent with.
#[derive(Debug, Clone, Copy)]
enum ContentType {
    Right,
    None,
    Other(&'static str),
}

fn content_type() -> impl Strategy<Value = ContentType> {
    prop_oneof![
        12 => Just(ContentType::Right),
        1 => Just(ContentType::None),
        1 => proptest::sample::select(vec![
            "text/plain",
            "application/json; charset=latin1",
            "application/x-www-form-urlencoded",
            "application/x-fieldsync",
            "application/json\u{7f}",
            "multipart/form-data; boundary=x",
        ])
        .prop_map(ContentType::Other),
    ]
}

/// One generated input of a route.
#[derive(Debug, Clone)]
struct Case {
    input: Mutation,
    /// Query damage also sent to a route that takes a body or a path.
    query: Option<QueryMut>,
    /// A stray path suffix (`/x`, `//`, `/%00`).
    suffix: Option<&'static str>,
    content_type: ContentType,
    /// Also sent without a valid token.
    stranger: Option<Stranger>,
}

#[derive(Debug, Clone)]
enum Mutation {
    Body(BodyMut),
    Query(QueryMut),
    Path(QVal),
    Cbor(CborMut),
}

#[derive(Debug, Clone, Copy)]
enum Stranger {
    NoToken,
    Garbage,
}

const SUFFIXES: &[&str] = &["/", "//", "/x", "/%00", "/..", "/../healthz", ";x", "/%2e%2e", "/v1"];

fn case(route: &'static Route) -> BoxedStrategy<Case> {
    let input = match route.input {
        Input::Json => body_mut().prop_map(Mutation::Body).boxed(),
        Input::Query(_) => query_mut().prop_map(Mutation::Query).boxed(),
        Input::Path => qval().prop_map(Mutation::Path).boxed(),
        Input::Cbor => cbor_mut().prop_map(Mutation::Cbor).boxed(),
    };
    (
        input,
        proptest::option::weighted(0.1, query_mut()),
        proptest::option::weighted(0.05, proptest::sample::select(SUFFIXES)),
        content_type(),
        proptest::option::weighted(0.1, prop_oneof![Just(Stranger::NoToken), Just(Stranger::Garbage)]),
    )
        .prop_map(|(input, query, suffix, content_type, stranger)| Case {
            input,
            query,
            suffix,
            content_type,
            stranger,
        })
        .boxed()
}

// --- rendering a case into a request -----------------------------------------------------------------

/// A request as sent on the wire.
#[derive(Clone)]
struct Request {
    method: &'static str,
    target: Vec<u8>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = String::from_utf8_lossy(&self.target);
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(300)]);
        write!(
            f,
            "{} {} (content-type {:?}, {} bytes of body: {body:?}{})",
            self.method,
            &target[..target.len().min(300)],
            self.content_type,
            self.body.len(),
            if self.body.len() > 300 { "…" } else { "" }
        )
    }
}

/// Every JSON pointer in `v`, the root (`""`) first.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                pointers(child, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        // The first elements only: a territory design's hundreds of customer ids are alike.
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate().take(3) {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Bodies are capped a little past the server's limit: enough to cross it, not gigabytes.
const BODY_CAP: usize = 9 * 1024 * 1024;

/// Raw JSON texts placed in a `Value` by a marker string, swapped in once it is serialized.
struct Raws(Vec<String>);

impl Raws {
    fn mark(&mut self, raw: String) -> Value {
        self.0.push(raw);
        Value::String(format!("\u{0}RAW{}\u{0}", self.0.len() - 1))
    }

    fn render(&self, v: &Value) -> String {
        let mut text = v.to_string();
        for (i, raw) in self.0.iter().enumerate() {
            text = text.replacen(&format!("\"\\u0000RAW{i}\\u0000\""), raw, 1);
        }
        text
    }
}

fn hostile_value(h: &Hostile, there: &Value, raws: &mut Raws) -> Value {
    match h {
        Hostile::Json(v) => v.clone(),
        Hostile::Raw(r) => raws.mark((*r).to_string()),
        Hostile::Deep { depth, object } => {
            let (open, close) = if *object { ("{\"a\":", "}") } else { ("[", "]") };
            raws.mark(format!("{}1{}", open.repeat(*depth), close.repeat(*depth)))
        }
        Hostile::Long(n, c) => Value::String(std::iter::repeat_n(*c, *n).collect()),
        Hostile::Repeat(n) => {
            let one = match there {
                Value::Array(a) if !a.is_empty() => a[0].clone(),
                Value::Array(_) => json!("x"),
                other => other.clone(),
            };
            let each = one.to_string().len() + 1;
            Value::Array(vec![one; (*n).min(BODY_CAP / each + 1)])
        }
        Hostile::Wrap => json!([there]),
        Hostile::Text(s) => json!(s),
        Hostile::Like(i) => match there {
            Value::Number(_) => hostile_numbers()[i.index(hostile_numbers().len())].clone(),
            Value::String(_) => {
                let strings = hostile_strings();
                match i.index(strings.len() + 3) {
                    n if n < strings.len() => json!(strings[n]),
                    n => {
                        hostile_value(&Hostile::Long([129, 513, 2_001][n - strings.len()], 'é'), there, raws)
                    }
                }
            }
            Value::Bool(b) => json!(!b),
            Value::Array(_) => hostile_value(&Hostile::Repeat(REPEATS[i.index(REPEATS.len())]), there, raws),
            Value::Object(_) | Value::Null => json!({}),
        },
    }
}

fn pick<'a, T>(items: &'a [T], i: &Index) -> Option<&'a T> {
    (!items.is_empty()).then(|| &items[i.index(items.len())])
}

/// `body` with `h` written at the pointer `i` picks.
fn set_at(body: &mut Value, i: &Index, h: &Hostile, raws: &mut Raws) {
    let mut all = Vec::new();
    pointers(body, String::new(), &mut all);
    let Some(at) = pick(&all, i) else { return };
    if let Some(slot) = body.pointer_mut(at) {
        *slot = hostile_value(h, slot, raws);
    }
}

fn json_body(valid: &Value, m: &BodyMut) -> Vec<u8> {
    let mut body = valid.clone();
    let mut raws = Raws(Vec::new());
    let text = |body: &Value, raws: &Raws| raws.render(body).into_bytes();
    match m {
        BodyMut::Valid => text(&body, &raws),
        BodyMut::Set(i, h) => {
            set_at(&mut body, i, h, &mut raws);
            text(&body, &raws)
        }
        BodyMut::Many(edits) => {
            for (i, h) in edits {
                set_at(&mut body, i, h, &mut raws);
            }
            text(&body, &raws)
        }
        BodyMut::Remove(i) => {
            let mut all = Vec::new();
            pointers(&body, String::new(), &mut all);
            all.remove(0);
            if let Some(at) = pick(&all, i) {
                let (parent, last) = at.rsplit_once('/').unwrap_or(("", at));
                let key = last.replace("~1", "/").replace("~0", "~");
                match body.pointer_mut(parent) {
                    Some(Value::Object(o)) => {
                        o.remove(&key);
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(n) = key.parse::<usize>()
                            && n < a.len()
                        {
                            a.remove(n);
                        }
                    }
                    _ => {}
                }
            }
            text(&body, &raws)
        }
        BodyMut::Extra(i, key, h) => {
            let mut all = Vec::new();
            pointers(&body, String::new(), &mut all);
            all.retain(|p| body.pointer(p).is_some_and(Value::is_object));
            if let Some(at) = pick(&all, i).cloned() {
                let v = hostile_value(h, &Value::Null, &mut raws);
                if let Some(Value::Object(o)) = body.pointer_mut(&at) {
                    o.insert(key.clone(), v);
                }
            }
            text(&body, &raws)
        }
        BodyMut::Garbage(bytes) => bytes.clone(),
        BodyMut::Truncate(i) => {
            let mut t = text(&body, &raws);
            t.truncate(i.index(t.len().max(1)));
            t
        }
        BodyMut::Splice(i, bytes) => {
            let mut t = text(&body, &raws);
            let at = i.index(t.len() + 1);
            t.splice(at..at, bytes.iter().copied());
            t
        }
    }
}

fn qtext(v: &QVal) -> Vec<u8> {
    let raw = match &v.text {
        QText::Fixed(s) => s.as_bytes().to_vec(),
        QText::Long(n, c) => std::iter::repeat_n(*c, *n).collect::<String>().into_bytes(),
        QText::Bytes(b) => b.clone(),
        QText::Text(s) => s.as_bytes().to_vec(),
    };
    let mut out = Vec::with_capacity(raw.len());
    for b in raw {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        let breaks_the_line = b <= b' ' || b == 0x7f || b == b'#';
        if (v.encode && !unreserved) || breaks_the_line {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

/// The valid query's `(name, value)` pairs.
fn query_pairs(target: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    target
        .split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

fn query_string(route: &Route, m: &QueryMut) -> Vec<u8> {
    let keys: Vec<&str> = match route.input {
        Input::Query(keys) => keys.to_vec(),
        _ => Vec::new(),
    };
    let mut pairs = query_pairs(route.target);
    let key_of = |i: &Index, pairs: &[(Vec<u8>, Vec<u8>)]| -> Vec<u8> {
        match pick(&keys, i) {
            Some(k) => k.as_bytes().to_vec(),
            None => pairs.first().map(|p| p.0.clone()).unwrap_or_else(|| b"limit".to_vec()),
        }
    };
    let set = |pairs: &mut Vec<(Vec<u8>, Vec<u8>)>, i: &Index, v: &QVal| {
        let k = key_of(i, pairs);
        let v = qtext(v);
        match pairs.iter_mut().find(|p| p.0 == k) {
            Some(p) => p.1 = v,
            None => pairs.push((k, v)),
        }
    };
    match m {
        QueryMut::Valid => {}
        QueryMut::Set(i, v) => set(&mut pairs, i, v),
        QueryMut::Many(edits) => {
            for (i, v) in edits {
                set(&mut pairs, i, v);
            }
        }
        QueryMut::Remove(i) => {
            if !pairs.is_empty() {
                pairs.remove(i.index(pairs.len()));
            }
        }
        QueryMut::Duplicate(i, v) => {
            let k = key_of(i, &pairs);
            pairs.push((k, qtext(v)));
        }
        QueryMut::Extra(k, v) => pairs.push((k.as_bytes().to_vec(), qtext(v))),
        QueryMut::Raw(v) => return qtext(v),
    }
    let mut out = Vec::new();
    for (n, (k, v)) in pairs.iter().enumerate() {
        if n > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(k);
        out.push(b'=');
        out.extend_from_slice(v);
    }
    out
}

/// The inputs a route's valid requests need from the running server.
struct Valid {
    design: Value,
    sub_areas: Value,
    review: Value,
    sync_frame: Vec<u8>,
}

fn request(route: &'static Route, valid: &Valid, c: &Case) -> Request {
    let base = route.target.split_once('?').map_or(route.target, |(p, _)| p);
    let mut target = base.as_bytes().to_vec();
    let mut body = Vec::new();
    let mut query: Option<Vec<u8>> = match route.input {
        Input::Query(_) => Some(query_string(route, &QueryMut::Valid)),
        _ => None,
    };
    let right_type = match route.input {
        Input::Json => Some("application/json"),
        Input::Cbor => Some(SYNC_CONTENT_TYPE),
        _ => None,
    };
    match &c.input {
        Mutation::Body(m) => {
            let valid_body = match route.body {
                "DESIGN" => valid.design.clone(),
                "SUB_AREAS" => valid.sub_areas.clone(),
                _ if route.path == "/v1/reviews/checkins" => valid.review.clone(),
                text => serde_json::from_str(text).expect("the route's valid body is JSON"),
            };
            body = json_body(&valid_body, m);
        }
        Mutation::Query(m) => query = Some(query_string(route, m)),
        Mutation::Path(v) => {
            let (parent, _) = base.rsplit_once('/').expect("a path route has a parent");
            target = format!("{parent}/").into_bytes();
            target.extend_from_slice(&qtext(v));
        }
        Mutation::Cbor(m) => {
            body = valid.sync_frame.clone();
            match m {
                CborMut::Valid => {}
                CborMut::Flip(flips) => {
                    for (i, b) in flips {
                        let n = body.len();
                        body[i.index(n)] ^= b | 1;
                    }
                }
                CborMut::Truncate(i) => body.truncate(i.index(body.len())),
                CborMut::Garbage(g) => body = g.clone(),
            }
        }
    }
    if let Some(s) = c.suffix {
        target.extend_from_slice(s.as_bytes());
    }
    if let Some(m) = &c.query {
        query = Some(query_string(route, m));
    }
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        target.push(b'?');
        target.extend_from_slice(&q);
    }
    let content_type = match c.content_type {
        ContentType::Right => right_type.map(str::to_owned),
        ContentType::None => None,
        ContentType::Other(t) => Some(t.to_owned()),
    };
    Request { method: route.method, target, content_type, body }
}

// --- the wire ----------------------------------------------------------------------------------------

/// An answer off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
    took: Duration,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A chunked body, decoded (what arrived of it).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(raw, b"\r\n") {
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size.filter(|s| *s > 0) else { break };
        let start = eol + 2;
        let end = (start + size).min(raw.len());
        out.extend_from_slice(&raw[start..end]);
        raw = &raw[(end + 2).min(raw.len())..];
    }
    out
}

/// Sends one request on its own connection (`connection: close`) and reads the answer: its head,
/// and its body unless it is an event stream (the live feed never ends).
fn send(addr: SocketAddr, token: Option<&str>, req: &Request) -> Result<Answer, String> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, PER_REQUEST).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(PER_REQUEST)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(PER_REQUEST)).map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    head.extend_from_slice(req.method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(&req.target);
    head.extend_from_slice(b" HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n");
    if let Some(t) = token {
        head.extend_from_slice(format!("authorization: Bearer {t}\r\n").as_bytes());
    }
    if let Some(ct) = &req.content_type {
        head.extend_from_slice(b"content-type: ");
        head.extend_from_slice(ct.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(format!("content-length: {}\r\n\r\n", req.body.len()).as_bytes());
    // The body is written from another thread: a server refusing a large body early answers and
    // closes while it is still being sent.
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let body = req.body.clone();
    let written = std::thread::spawn(move || -> std::io::Result<()> {
        writer.write_all(&head)?;
        writer.write_all(&body)?;
        writer.flush()
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let answer = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let (status, headers) = fieldsync_e2e::parse_response_head(&buf[..end])?;
            let headers: BTreeMap<String, String> = headers.into_iter().collect();
            let content_type = headers.get("content-type").cloned().unwrap_or_default();
            if content_type.starts_with("text/event-stream") {
                break Answer { status, content_type, body: Vec::new(), took: started.elapsed() };
            }
            let len = headers.get("content-length").and_then(|v| v.parse::<usize>().ok());
            let chunked = headers.get("transfer-encoding").is_some_and(|v| v.contains("chunked"));
            loop {
                let got = buf.len() - (end + 4);
                if len.is_some_and(|l| got >= l) || (chunked && buf.ends_with(b"0\r\n\r\n")) {
                    break;
                }
                match stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) => return Err(format!("reading the body of a {status}: {e}")),
                }
            }
            let raw = &buf[end + 4..];
            let body = match len {
                Some(l) => raw[..l.min(raw.len())].to_vec(),
                None if chunked => dechunk(raw),
                None => raw.to_vec(),
            };
            break Answer { status, content_type, body, took: started.elapsed() };
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(format!("connection closed after {} bytes, before an answer", buf.len())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("no answer ({e}) after {:?}", started.elapsed())),
        }
    };
    drop(stream);
    // A write cut off by the server's answer is fine; a write that hangs is not.
    let _ = written.join();
    Ok(answer)
}

// --- the oracle --------------------------------------------------------------------------------------

/// A run of 16 or more hexadecimal digits (a hash, a key).
fn has_hex_run(text: &str) -> bool {
    let mut run = 0;
    text.chars().any(|c| {
        run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
        run >= 16
    })
}

/// `word::Word`, the shape of a Rust path (`fieldsync_core::docs`, `alloc::string::String`).
fn has_rust_path(text: &str) -> bool {
    text.match_indices("::").any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + 2..].chars().next();
        before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && after.is_some_and(|c| c.is_alphabetic() || c == '_')
    })
}

/// Words of the server's internals that no refusal may carry (unless the request itself did).
const INTERNALS: &[&str] =
    &["sled", "automerge", "panicked", "panic", "backtrace", "src/", ".rs:", "thread '", "rust_begin_unwind"];

#[derive(Debug, Default)]
struct Tally {
    inputs: u64,
    requests: u64,
    statuses: BTreeMap<u16, u64>,
    overloaded: u64,
    slowest: Duration,
}

/// Every property of `answer` to `req` as `who` on `route`.
fn check(route: &Route, who: Who, req: &Request, answer: &Answer, tally: &mut Tally) -> Result<(), String> {
    tally.requests += 1;
    *tally.statuses.entry(answer.status).or_default() += 1;
    tally.slowest = tally.slowest.max(answer.took);
    if answer.took > PER_REQUEST {
        return Err(format!("answered in {:?}, more than {PER_REQUEST:?}", answer.took));
    }
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let code = body["error"].as_str();
    if answer.status == 503 && code == Some("overloaded") {
        tally.overloaded += 1;
    } else if answer.status >= 500 {
        return Err(format!("a server error {}: {}", answer.status, String::from_utf8_lossy(&answer.body)));
    }
    if answer.status >= 400 {
        if !answer.content_type.starts_with("application/json") {
            return Err(format!(
                "a {} refusal of content type {:?}, not JSON: {:?}",
                answer.status,
                answer.content_type,
                String::from_utf8_lossy(&answer.body)
            ));
        }
        let typed = code.is_some_and(|c| {
            !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
        let message = body["message"].as_str().unwrap_or("");
        if !typed || message.is_empty() || !body["request_id"].is_string() {
            return Err(format!(
                "a {} refusal without error code, message and request id: {body}",
                answer.status
            ));
        }
        let said = String::from_utf8_lossy(&req.target).to_lowercase()
            + &String::from_utf8_lossy(&req.body).to_lowercase();
        let text = format!("{} {message}", code.unwrap_or("")).to_lowercase();
        if let Some(word) = INTERNALS.iter().find(|w| text.contains(**w) && !said.contains(**w)) {
            return Err(format!("a refusal naming internals ({word:?}): {body}"));
        }
        if has_hex_run(message) {
            return Err(format!("a refusal with a hash in it: {body}"));
        }
        if has_rust_path(message) && !said.contains("::") {
            return Err(format!("a refusal naming a Rust path: {body}"));
        }
    }
    let success = (200..300).contains(&answer.status);
    match who {
        Who::Rep if route.access == Access::Manager && success => {
            return Err(format!("a rep got {} from a manager's route: {body}", answer.status));
        }
        Who::Rep | Who::Manager
            if matches!(route.access, Access::Operator | Access::Integration) && success =>
        {
            return Err(format!(
                "a rep's or manager's token got {} from {}: {body}",
                answer.status, route.path
            ));
        }
        Who::Stranger if route.access != Access::Public && success => {
            return Err(format!("a request without a valid token got {}: {body}", answer.status));
        }
        // Refused before any route could look at the token: by the HTTP parser, the body limit, or
        // because the target is not this route (a stray suffix, a `/` in a segment). Anything else
        // must be the 401.
        Who::Stranger
            if route.access != Access::Public
                && answer.status != 401
                && !(matches!(
                    code,
                    Some("malformed_http" | "uri_too_long" | "headers_too_large" | "too_large")
                ) || (code == Some("not_found") && !on_the_route(route, req))) =>
        {
            return Err(format!("a request without a valid token got {}, not 401: {body}", answer.status));
        }
        _ => {}
    }
    if success && answer.content_type.starts_with("application/json") && body.is_null() {
        return Err(format!("a {} whose JSON does not parse", answer.status));
    }
    Ok(())
}

/// Whether the request's path is the route's (its query aside).
fn on_the_route(route: &Route, req: &Request) -> bool {
    let path = req.target.split(|b| *b == b'?').next().unwrap_or(&[]);
    match route.path.split_once('{') {
        Some((parent, _)) => {
            path.starts_with(parent.as_bytes())
                && path.len() > parent.len()
                && !path[parent.len()..].contains(&b'/')
        }
        None => path == route.path.as_bytes(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Rep,
    Manager,
    /// Another system's token (role integration), on the routes it may call.
    Integration,
    Stranger,
}

// --- the harness ------------------------------------------------------------------------------------

static TOTAL_INPUTS: AtomicU64 = AtomicU64::new(0);
static TOTAL_REQUESTS: AtomicU64 = AtomicU64::new(0);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// FNV-1a: a seed per route, stable across platforms and releases.
fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The demo team, whole, or thinned to every tenth customer (and their visits) so that a planning
/// request that passes its bounds costs a tenth of the time in a debug build.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Team {
    Demo,
    Thinned,
}

/// The demo team's server and what the fuzzer needs from it.
struct Stage {
    server: TestServer,
    team: Team,
    rep: String,
    manager: String,
    integration: String,
    valid: Valid,
    /// `GET /v1/docs/{plan}` as it answered at the start.
    plan_path: String,
    plan: Vec<u8>,
}

impl Stage {
    async fn new(team: Team) -> Stage {
        // Live feeds are opened and dropped by the hundred: room for those the server has not yet
        // seen closed.
        let server = TestServer::start_with(|c| {
            c.limits.max_live_streams = 100_000;
            c.limits.lead_burst = 1_000_000;
        })
        .await;
        match team {
            Team::Demo => server.seed_demo(),
            Team::Thinned => server.seed(DEMO, &thinned_demo()),
        }
        let rep = server.token(DEMO, "alice", Role::Rep);
        let manager = server.token(DEMO, "maria", Role::Manager);
        let integration = server.token(DEMO, "crm", Role::Integration);
        let plan_path = format!("/v1/docs/plan-{}", fieldsync_server::seed::quarter_of(MORNING_MS));
        let mut stage = Stage {
            server,
            team,
            rep,
            manager,
            integration,
            valid: Valid {
                design: Value::Null,
                sub_areas: Value::Null,
                review: serde_json::from_str(route("POST", "/v1/reviews/checkins").body).expect("JSON"),
                sync_frame: Vec::new(),
            },
            plan_path,
            plan: Vec::new(),
        };
        let plan = stage.get(&stage.plan_path.clone(), Who::Manager);
        assert_eq!(plan.status, 200, "the plan document: {:?}", String::from_utf8_lossy(&plan.body));
        stage.plan = plan.body;
        let territories = ROUTES.iter().find(|r| r.path == "/v1/plan/territories").expect("route");
        let design = send(
            stage.addr(),
            Some(&stage.manager),
            &Request {
                method: "POST",
                target: territories.target.as_bytes().to_vec(),
                content_type: Some("application/json".into()),
                body: territories.body.as_bytes().to_vec(),
            },
        )
        .expect("a territory design");
        assert_eq!(design.status, 200, "{:?}", String::from_utf8_lossy(&design.body));
        stage.valid.design = serde_json::from_slice(&design.body).expect("design JSON");
        let config = serde_json::to_value(fieldsync_planning::areas::AreaConfig::default()).expect("config");
        stage.valid.sub_areas = json!({ "rep": "alice", "n": 3, "seed": 1, "config": config });
        // A check-in awaiting review, if the team has one.
        let pending = stage.get("/v1/reviews/checkins?limit=1", Who::Manager);
        let pending: Value = serde_json::from_slice(&pending.body).unwrap_or(Value::Null);
        if let Some(p) = pending["items"].get(0) {
            stage.valid.review = json!({
                "visit_id": p["visit_id"], "checkin_id": p["checkin_id"], "decision": "rejected",
                "comment": "not at the customer's",
            });
        }
        stage.valid.sync_frame = SyncRequest {
            device_id: "fuzz-tablet".into(),
            cursor: Cursor::Feed { seq: 1 },
            push: Vec::new(),
        }
        .encode();
        stage
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    fn token(&self, who: Who, stranger: Stranger) -> Option<String> {
        match who {
            Who::Rep => Some(self.rep.clone()),
            Who::Manager => Some(self.manager.clone()),
            Who::Integration => Some(self.integration.clone()),
            Who::Stranger => match stranger {
                Stranger::NoToken => None,
                Stranger::Garbage => Some(format!("{}x", &self.manager[..self.manager.len() - 1])),
            },
        }
    }

    fn get(&self, target: &str, who: Who) -> Answer {
        let req = Request {
            method: "GET",
            target: target.as_bytes().to_vec(),
            content_type: None,
            body: Vec::new(),
        };
        send(self.addr(), self.token(who, Stranger::NoToken).as_deref(), &req)
            .unwrap_or_else(|e| panic!("GET {target}: {e}"))
    }

    /// The server still answers a healthy request, and the plan document is as it was.
    fn assert_healthy(&self, after: &str) {
        let health = self.get("/healthz", Who::Rep);
        assert_eq!(health.status, 200, "after {after}: /healthz");
        let plan = self.get(&self.plan_path, Who::Manager);
        assert_eq!(plan.status, 200, "after {after}: {}", self.plan_path);
        assert!(plan.body == self.plan, "after {after}: the plan document changed");
        let me = self.get("/v1/me", Who::Rep);
        assert_eq!(me.status, 200, "after {after}: /v1/me as the rep");
    }

    /// Fuzzes one route with its cases divided by `fewer`; returns how many inputs were tried.
    fn fuzz(&self, route: &'static Route, fewer: u32) -> u64 {
        let name = format!("{} {} ({:?} team)", route.method, route.path, self.team);
        let seed = name_seed(&name) ^ env_u64("FIELDSYNC_FUZZ_SEED").unwrap_or(0);
        let cases = env_u64("FIELDSYNC_FUZZ_CASES")
            .map_or((route.cases / fewer).max(2), |c| c.min(u64::from(u32::MAX)) as u32);
        let config = Config {
            cases,
            failure_persistence: None,
            rng_algorithm: RngAlgorithm::ChaCha,
            rng_seed: RngSeed::Fixed(seed),
            max_shrink_iters: 256,
            max_shrink_time: 60_000,
            ..Config::default()
        };
        let tally = std::cell::RefCell::new(Tally::default());
        let started = Instant::now();
        let mut runner = TestRunner::new(config);
        let result = runner.run(&case(route), |c| {
            tally.borrow_mut().inputs += 1;
            self.run_case(route, &c, &mut tally.borrow_mut()).map_err(TestCaseError::fail)
        });
        let tally = tally.into_inner();
        match result {
            Ok(()) => {
                let total = TOTAL_INPUTS.fetch_add(tally.inputs, Ordering::Relaxed) + tally.inputs;
                let requests = TOTAL_REQUESTS.fetch_add(tally.requests, Ordering::Relaxed) + tally.requests;
                eprintln!(
                    "fuzz_http {name}: {} inputs tried ({} requests, seed {seed:#018x}) in {:.1?}, statuses {:?}, \
                     {} answered 503 overloaded, slowest answer {:.1?}; {total} inputs ({requests} requests) so far",
                    tally.inputs,
                    tally.requests,
                    started.elapsed(),
                    tally.statuses,
                    tally.overloaded,
                    tally.slowest,
                );
                self.assert_healthy(&name);
                tally.inputs
            }
            Err(TestError::Fail(why, minimal)) => {
                let saved = self.save(route, &minimal);
                panic!(
                    "fuzz_http {name} failed after {} inputs (seed {seed:#018x}): {why}\nminimal input: {minimal:#?}\n\
                     its requests, to keep under tests/fixtures/http/: {saved:#?}",
                    tally.inputs
                );
            }
            Err(e) => panic!("fuzz_http {name}: {e}"),
        }
    }

    /// Sends one case as the rep, the manager and (if it says so) a stranger, checking each answer.
    fn run_case(&self, route: &'static Route, c: &Case, tally: &mut Tally) -> Result<(), String> {
        let req = request(route, &self.valid, c);
        let mut callers = vec![Who::Rep, Who::Manager];
        if route.access == Access::Integration {
            callers.push(Who::Integration);
        }
        if c.stranger.is_some() {
            callers.push(Who::Stranger);
        }
        for who in callers {
            let token = self.token(who, c.stranger.unwrap_or(Stranger::NoToken));
            let answer =
                send(self.addr(), token.as_deref(), &req).map_err(|e| format!("{who:?}: {req:?}: {e}"))?;
            check(route, who, &req, &answer, tally).map_err(|e| format!("{who:?}: {req:?}: {e}"))?;
        }
        Ok(())
    }

    /// Writes the requests of a failing case as fixtures; returns their paths.
    fn save(&self, route: &'static Route, c: &Case) -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-http-crashers");
        let _ = std::fs::create_dir_all(&dir);
        let req = request(route, &self.valid, c);
        ["rep", "manager"]
            .iter()
            .map(|role| {
                let fixture = fixture_of(&req, role);
                let name = format!(
                    "{}-{}-{role}-{}.json",
                    route.method.to_lowercase(),
                    route.path.trim_matches('/').replace(['/', '{', '}', '.'], "_"),
                    name_seed(&fixture.to_string()) % 100_000
                );
                let path = dir.join(name);
                let _ = std::fs::write(&path, serde_json::to_string_pretty(&fixture).unwrap_or_default());
                path.display().to_string()
            })
            .collect()
    }
}

/// A request as a fixture file: method, target, content type, body (text, or base64 when not
/// UTF-8), and who sends it.
fn fixture_of(req: &Request, role: &str) -> Value {
    let mut f = json!({
        "method": req.method,
        "content_type": req.content_type,
        "role": role,
    });
    match String::from_utf8(req.target.clone()) {
        Ok(t) => f["target"] = json!(t),
        Err(_) => f["target_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(&req.target)),
    }
    match String::from_utf8(req.body.clone()) {
        Ok(b) => f["body"] = json!(b),
        Err(_) => f["body_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(&req.body)),
    }
    f
}

fn bytes_of(f: &Value, field: &str) -> Vec<u8> {
    match (f[field].as_str(), f[format!("{field}_base64")].as_str()) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD.decode(b64).expect("base64"),
        (None, None) => Vec::new(),
    }
}

fn route(method: &str, path: &str) -> &'static Route {
    ROUTES.iter().find(|r| r.method == method && r.path == path).unwrap_or_else(|| panic!("{method} {path}"))
}

/// The demo team's territories and plans, every tenth customer and the visits of those.
fn thinned_demo() -> Vec<fieldsync_core::docs::Document> {
    use fieldsync_core::docs::Document;
    let all = fieldsync_server::seed::demo_documents(42, MORNING_MS);
    let kept: BTreeSet<String> = all
        .iter()
        .filter_map(|d| match d {
            Document::Customer(c) => Some(c.id.clone()),
            _ => None,
        })
        .step_by(10)
        .collect();
    all.into_iter()
        .filter(|d| match d {
            Document::Customer(c) => kept.contains(&c.id),
            Document::Visit(v) => kept.contains(&v.customer_id),
            Document::Territory(_) | Document::Plan(_) => true,
        })
        .collect()
}

/// Fuzzes the routes `which` picks (in [`ROUTES`] order) on one server of `team`, each with its
/// cases divided by `fewer`.
async fn fuzz_routes(team: Team, fewer: u32, which: impl Fn(&Route) -> bool) {
    let stage = Stage::new(team).await;
    for route in ROUTES.iter().filter(|r| which(r)) {
        stage.fuzz(route, fewer);
    }
    eprintln!(
        "fuzz_http: {} inputs ({} requests) so far over every test of this file",
        TOTAL_INPUTS.load(Ordering::Relaxed),
        TOTAL_REQUESTS.load(Ordering::Relaxed)
    );
}

fn is_planning(r: &Route) -> bool {
    r.path.starts_with("/v1/plan/")
}

// --- the tests ----------------------------------------------------------------------------------------

/// Planning over the thinned team: a request that passes its bounds is computed in a tenth of the
/// time, so each route gets its full count of cases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_planning_route_answers_fuzzed_inputs_with_typed_4xx_and_keeps_serving() {
    fuzz_routes(Team::Thinned, 1, is_planning).await;
}

/// Planning over the whole demo team, a few cases each (a plan of 300 customers takes about a second
/// in a debug build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_planning_route_over_the_whole_demo_team_answers_fuzzed_inputs() {
    fuzz_routes(Team::Demo, 16, is_planning).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_route_answers_fuzzed_inputs_with_typed_4xx_and_keeps_serving() {
    fuzz_routes(Team::Demo, 1, |r| !is_planning(r)).await;
}

/// [`ROUTES`] is every route of the server's own OpenAPI document (the router is built from the
/// same registrations), and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fuzzer_knows_every_route_the_server_describes() {
    let server = TestServer::start().await;
    let req =
        Request { method: "GET", target: b"/openapi.json".to_vec(), content_type: None, body: Vec::new() };
    let answer = send(server.addr(), None, &req).expect("openapi.json");
    assert_eq!(answer.status, 200);
    let doc: Value = serde_json::from_slice(&answer.body).expect("OpenAPI JSON");
    let mut described = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete", "head", "options"] {
            if item.get(method).is_some() {
                described.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let known: BTreeSet<(String, String)> =
        ROUTES.iter().map(|r| (r.method.to_string(), r.path.to_string())).collect();
    let unknown: Vec<_> = described.difference(&known).collect();
    let stale: Vec<_> = known.difference(&described).collect();
    assert!(unknown.is_empty(), "routes the fuzzer does not know (add them to ROUTES): {unknown:?}");
    assert!(stale.is_empty(), "routes in ROUTES the server does not have: {stale:?}");
    // Each route's valid request reaches that route (not the 404 fallback).
    for r in ROUTES {
        let base = r.target.split_once('?').map_or(r.target, |(p, _)| p);
        let template = r.path.split('{').next().unwrap_or(r.path);
        assert!(base.starts_with(template), "{} {}: target {}", r.method, r.path, r.target);
    }
}

/// Every input the fuzzer found answered wrongly, kept under `tests/fixtures/http/`, now gets a
/// typed 4xx, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_fixtures_are_refused_with_a_4xx() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/http");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    let stage = Stage::new(Team::Thinned).await;
    let mut tally = Tally::default();
    for file in &files {
        let f: Value = serde_json::from_slice(&std::fs::read(file).expect("read")).expect("fixture JSON");
        let method = match f["method"].as_str().expect("method") {
            "GET" => "GET",
            "POST" => "POST",
            other => panic!("{}: method {other}", file.display()),
        };
        let req = Request {
            method,
            target: bytes_of(&f, "target"),
            content_type: f["content_type"].as_str().map(str::to_owned),
            body: bytes_of(&f, "body"),
        };
        let path = String::from_utf8_lossy(&req.target).to_string();
        let r = ROUTES
            .iter()
            .filter(|r| r.method == method)
            .find(|r| {
                let base = path.split('?').next().unwrap_or("");
                match r.input {
                    Input::Path => base.starts_with(r.path.split('{').next().unwrap_or("")),
                    _ => base == r.path,
                }
            })
            .unwrap_or_else(|| route(method, "/healthz"));
        let who = match f["role"].as_str() {
            Some("rep") => Who::Rep,
            Some("manager") => Who::Manager,
            other => panic!("{}: role {other:?}", file.display()),
        };
        let answer = send(stage.addr(), stage.token(who, Stranger::NoToken).as_deref(), &req)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        check(r, who, &req, &answer, &mut tally).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            (400..500).contains(&answer.status),
            "{}: {} {}",
            file.display(),
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        stage.assert_healthy(&file.display().to_string());
    }
    eprintln!("fuzz_http fixtures: {} files replayed, statuses {:?}", files.len(), tally.statuses);
}
