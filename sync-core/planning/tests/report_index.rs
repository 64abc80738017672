//! The report index is the documents, always: random sequences of offline work on several devices
//! (visits planned, check-ins near and far, check-outs, stage moves), a manager's reassignments,
//! tampered edits the server refuses, server-written stage changes and verdicts, synced in random
//! orders — after every one, each stored index row equals the row recomputed from the stored
//! document, no row is missing or extra, the stage history ends at each customer's stage, and the
//! reports computed from the index equal the reports computed from the documents.

use fieldsync_core::docs::{
    Cadence, CheckinReview, DocKind, Document, Plan, ReviewDecision, Tier, TierThresholds, on_customer,
};
use fieldsync_core::engine::{ServerWrite, SyncEngine};
use fieldsync_core::geo::{CheckinFix, LatLon, VerifyConfig};
use fieldsync_core::index::IndexRow;
use fieldsync_core::storage::{MemoryStorage, Storage as _};
use fieldsync_core::testing::fixtures::{self, LYON, offset};
use fieldsync_core::testing::{OnInvalid, memory_engine, replica, sync_until_idle_with};
use fieldsync_core::{Role, client::Replica};
use fieldsync_planning::allocation::AllocationConfig;
use fieldsync_planning::reports::{ReportWindow, customer_report, effort_report, visit_report};
use proptest::prelude::*;

const TEAM: &str = "acme";
const T0: i64 = 1_796_000_000_000;
const STAGES: [&str; 4] = ["qualification", "proposal", "won", "lost"];

fn plan() -> Plan {
    Plan::new(
        "plan-q",
        "2026-Q4",
        Cadence { a_days: 7, b_days: 14, c_days: 30 },
        TierThresholds { a_min_score: 30_000.0, b_min_score: 10_000.0 },
    )
}

/// Two territories, six customers (four of alice's, two of bob's), the plan.
fn team(engine: &SyncEngine<MemoryStorage>) {
    let mut docs = vec![fixtures::territory("t-a", &["alice"]), fixtures::territory("t-b", &["bob"])];
    for i in 0..6 {
        let (owner, t) = if i < 4 { ("alice", "t-a") } else { ("bob", "t-b") };
        let mut c = fixtures::customer(&format!("c{i}"), owner, Some(t), offset(LYON, 500.0 * i as f64, 0.0));
        c.potential_value = 20_000.0 * (i + 1) as f64;
        docs.push(c.into());
    }
    docs.push(plan().into());
    engine.write_as_server(TEAM, &docs, T0).expect("seed");
}

#[derive(Debug, Clone)]
enum Op {
    Plan {
        rep: usize,
        customer: usize,
        hour: i64,
    },
    CheckIn {
        rep: usize,
        visit: usize,
        far: bool,
    },
    CheckOut {
        rep: usize,
        visit: usize,
        remote: bool,
    },
    Stage {
        rep: usize,
        customer: usize,
        stage: usize,
    },
    Reassign {
        customer: usize,
        to: usize,
    },
    TamperTier {
        rep: usize,
        customer: usize,
    },
    ServerStage {
        customer: usize,
        stage: usize,
    },
    /// A manager's review of a flagged check-in, written by the server.
    Review {
        pick: usize,
        approve: bool,
    },
    Sync {
        device: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, 0..6usize, 0..48i64).prop_map(|(rep, customer, hour)| Op::Plan { rep, customer, hour }),
        3 => (0..2usize, 0..8usize, any::<bool>()).prop_map(|(rep, visit, far)| Op::CheckIn { rep, visit, far }),
        2 => (0..2usize, 0..8usize, any::<bool>()).prop_map(|(rep, visit, remote)| Op::CheckOut { rep, visit, remote }),
        2 => (0..2usize, 0..6usize, 0..4usize).prop_map(|(rep, customer, stage)| Op::Stage { rep, customer, stage }),
        1 => (0..6usize, 0..2usize).prop_map(|(customer, to)| Op::Reassign { customer, to }),
        1 => (0..2usize, 0..6usize).prop_map(|(rep, customer)| Op::TamperTier { rep, customer }),
        1 => (0..6usize, 0..4usize).prop_map(|(customer, stage)| Op::ServerStage { customer, stage }),
        1 => (0..8usize, any::<bool>()).prop_map(|(pick, approve)| Op::Review { pick, approve }),
        4 => (0..3usize).prop_map(|device| Op::Sync { device }),
    ]
}

const REPS: [&str; 2] = ["alice", "bob"];

/// Applies one operation; a refusal by the device (not its customer any more, a final check-out)
/// is part of the story, not a failure.
fn apply(engine: &SyncEngine<MemoryStorage>, devices: &mut [Replica], op: &Op, step: i64) {
    let now = T0 + step * 60_000;
    let nth_visit = |d: &Replica, n: usize| {
        let vs = d.visits();
        (!vs.is_empty()).then(|| vs[n % vs.len()].id.clone())
    };
    match *op {
        Op::Plan { rep, customer, hour } => {
            let id = format!("v-{}-{step}", REPS[rep]);
            let start = T0 + hour * 3_600_000;
            let _ = devices[rep].plan_visit(&id, &format!("c{customer}"), start, start + 1_800_000, now);
        }
        Op::CheckIn { rep, visit, far } => {
            let Some(v) = nth_visit(&devices[rep], visit) else { return };
            let Ok(visit) = devices[rep].visit(&v) else { return };
            let Ok(c) = devices[rep].customer(&visit.customer_id) else { return };
            let at = if far {
                offset((c.location.lat, c.location.lon), 3_000.0, 0.0)
            } else {
                (c.location.lat, c.location.lon)
            };
            let fix = CheckinFix {
                point: LatLon { lat: at.0, lon: at.1 },
                accuracy_m: 10.0,
                device_time_ms: now,
                mock_location: false,
            };
            let _ = devices[rep].check_in(&v, &format!("ci-{step}"), fix, now, &VerifyConfig::default());
        }
        Op::CheckOut { rep, visit, remote } => {
            let Some(v) = nth_visit(&devices[rep], visit) else { return };
            let outcome = if remote { "remote call" } else { "order" };
            let _ = devices[rep].check_out(&v, outcome, "", now, now);
        }
        Op::Stage { rep, customer, stage } => {
            let _ = devices[rep].update_customer_status(
                &format!("c{customer}"),
                None,
                Some(STAGES[stage].into()),
                now,
            );
        }
        Op::Reassign { customer, to } => {
            let territory = if to == 0 { "t-a" } else { "t-b" };
            let _ =
                devices[2].reassign_customer(&format!("c{customer}"), REPS[to], Some(territory.into()), now);
        }
        Op::TamperTier { rep, customer } => {
            let _ = devices[rep].update_unchecked(
                &format!("c{customer}"),
                now,
                on_customer(|c| c.tier = Some(Tier::A)),
            );
        }
        Op::ServerStage { customer, stage } => {
            let stage = STAGES[stage].to_string();
            let write = ServerWrite::edit(&format!("c{customer}"), DocKind::Customer, move |d| {
                if let Document::Customer(c) = d {
                    c.opportunity_stage = stage.clone();
                }
            });
            engine.apply_server_writes(TEAM, &[write], now).expect("server write");
        }
        Op::Review { pick, approve } => {
            let flagged: Vec<(String, String)> = engine
                .team_documents(TEAM)
                .expect("documents")
                .into_iter()
                .filter_map(|d| if let Document::Visit(v) = d { Some(v) } else { None })
                .flat_map(|v| {
                    let id = v.id.clone();
                    v.verification
                        .into_iter()
                        .filter(|(_, j)| j.status != "verified")
                        .map(move |(ck, _)| (id.clone(), ck))
                })
                .collect();
            let Some((visit, ck)) = flagged.get(pick % flagged.len().max(1)).cloned() else { return };
            let decision = if approve { ReviewDecision::Approved } else { ReviewDecision::Rejected };
            let write = ServerWrite::edit(&visit, DocKind::Visit, move |d| {
                if let Document::Visit(v) = d
                    && let Some(j) = v.verification.get_mut(&ck)
                {
                    j.review = Some(CheckinReview {
                        decision,
                        by: "maria".into(),
                        comment: String::new(),
                        at_ms: now,
                    });
                }
            });
            engine.apply_server_writes(TEAM, &[write], now).expect("review");
        }
        Op::Sync { device } => {
            sync_until_idle_with(engine, &mut devices[device], now, OnInvalid::SetAside, |_| {});
        }
    }
}

/// Every stored row is the row of its stored document, and every document has its row.
fn assert_index_is_the_documents(engine: &SyncEngine<MemoryStorage>) -> Result<(), TestCaseError> {
    let stored = engine.index_rows(TEAM).expect("rows");
    let first_seen = |id: &str| stored.iter().find(|r| r.id() == id).map(IndexRow::first_seen_ms);
    let docs = engine.team_documents(TEAM).expect("documents");
    let mut expected: Vec<IndexRow> =
        docs.iter().filter_map(|d| IndexRow::of(d, first_seen(d.id()).unwrap_or(i64::MIN))).collect();
    expected.sort_by(|a, b| a.id().cmp(b.id()));
    prop_assert_eq!(&stored, &expected);
    // The stage history ends where each customer stands.
    let changes = engine.stage_changes(TEAM).expect("stage changes");
    for d in &docs {
        if let Document::Customer(c) = d {
            let last = changes.iter().rfind(|s| s.customer_id == c.id);
            prop_assert_eq!(last.map(|s| s.to.as_str()), Some(c.opportunity_stage.as_str()), "{}", c.id);
        }
    }
    // Reports read from the index equal reports read from the documents.
    let window = ReportWindow { from_ms: T0 - 86_400_000, to_ms: T0 + 3 * 86_400_000, rep: None };
    let now = T0 + 2 * 86_400_000;
    prop_assert_eq!(visit_report(&stored, &window, now), visit_report(&expected, &window, now));
    prop_assert_eq!(
        customer_report(&stored, &changes, &plan(), &window),
        customer_report(&expected, &changes, &plan(), &window)
    );
    let cfg = AllocationConfig::default();
    prop_assert_eq!(
        effort_report(&stored, &changes, &plan(), &cfg, &window),
        effort_report(&expected, &changes, &plan(), &cfg, &window)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_report_index_always_equals_the_documents(ops in prop::collection::vec(op(), 1..40)) {
        let engine = memory_engine(|_| {});
        team(&engine);
        let mut devices = vec![
            replica("alice-phone", TEAM, "alice", Role::Rep),
            replica("bob-phone", TEAM, "bob", Role::Rep),
            replica("maria-tablet", TEAM, "maria", Role::Manager),
        ];
        for d in devices.iter_mut() {
            sync_until_idle_with(&engine, d, T0, OnInvalid::SetAside, |_| {});
        }
        for (step, op) in ops.iter().enumerate() {
            apply(&engine, &mut devices, op, step as i64 + 1);
            assert_index_is_the_documents(&engine)?;
        }
        for d in devices.iter_mut() {
            sync_until_idle_with(&engine, d, T0 + 100 * 60_000, OnInvalid::SetAside, |_| {});
        }
        assert_index_is_the_documents(&engine)?;
        prop_assert!(engine.storage().index_rows(TEAM).expect("rows").len() >= 6);
    }
}
