//! A realistic demo team, generated from a seed: a manager, five reps, a few hundred customers around
//! Lyon with tiers, opening hours, potential and probability, a territory per rep, a quarter plan and
//! some past visits (a few of them flagged).
//!
//! Everything is written through the engine as the server, so it reaches devices through the feed
//! like any other change.

use std::f64::consts::PI;

use fieldsync_core::docs::{
    Cadence, Checkin, CheckinVerification, Checkout, Customer, Document, GeoPoint, LatLonPoint, OpeningHours,
    Plan, Quota, Territory, Tier, TierThresholds, Visit, VisitState,
};
use fieldsync_core::engine::SyncEngine;
use fieldsync_core::geo::{self, CheckinContext, CheckinFix, Datum, LatLon, VerifyConfig};
use fieldsync_core::storage::Storage;
use fieldsync_planning::route::{LocalDate, local_time_ms};
use rand::{Rng, SeedableRng, rngs::SmallRng};

pub const DEMO_TEAM: &str = "demo";
pub const DEMO_MANAGER: &str = "maria";
pub const DEMO_REPS: [&str; 5] = ["alice", "bruno", "chloe", "david", "emma"];
const CENTER: (f64, f64) = (45.7640, 4.8357); // Lyon, Place Bellecour
const RADIUS_KM: f64 = 18.0;

/// What was seeded.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedSummary {
    pub team: String,
    pub customers: usize,
    pub territories: usize,
    pub visits: usize,
    pub plans: usize,
}

/// Thresholds and cadences of the demo plan, shared with tier assignment.
fn demo_plan(quarter: &str) -> Plan {
    let mut quotas = vec![
        Quota { rep: None, tier: Tier::A, amount: 1_200_000.0 },
        Quota { rep: None, tier: Tier::B, amount: 600_000.0 },
        Quota { rep: None, tier: Tier::C, amount: 200_000.0 },
    ];
    for rep in DEMO_REPS {
        for (tier, amount) in [(Tier::A, 240_000.0), (Tier::B, 120_000.0), (Tier::C, 40_000.0)] {
            quotas.push(Quota { rep: Some(rep.to_string()), tier, amount });
        }
    }
    let cadence = Cadence { a_days: 7, b_days: 14, c_days: 30 };
    let thresholds = TierThresholds { a_min_score: 30_000.0, b_min_score: 10_000.0 };
    Plan { quotas, focus_share: 0.8, ..Plan::new(&format!("plan-{quarter}"), quarter, cadence, thresholds) }
}

fn offset(center: (f64, f64), bearing: f64, km: f64) -> (f64, f64) {
    let dlat = km * bearing.cos() / 111.32;
    let dlon = km * bearing.sin() / (111.32 * center.0.to_radians().cos());
    (center.0 + dlat, center.1 + dlon)
}

/// The quarter containing a time, e.g. "2026-Q4".
pub fn quarter_of(now_ms: i64) -> String {
    let days = now_ms.div_euclid(86_400_000);
    // Civil-from-days (Howard Hinnant), enough for a label.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year}-Q{}", (month - 1) / 3 + 1)
}

/// Generates the demo documents (pure: the same seed and time give the same team).
pub fn demo_documents(seed: u64, now_ms: i64) -> Vec<Document> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let plan = demo_plan(&quarter_of(now_ms));
    let sector = 2.0 * PI / DEMO_REPS.len() as f64;
    let mut docs = Vec::new();

    for (i, rep) in DEMO_REPS.iter().enumerate() {
        let start = i as f64 * sector;
        let mut ring = vec![LatLonPoint { lat: CENTER.0, lon: CENTER.1 }];
        for step in 0..=8 {
            let (lat, lon) = offset(CENTER, start + sector * step as f64 / 8.0, RADIUS_KM + 2.0);
            ring.push(LatLonPoint { lat, lon });
        }
        ring.push(LatLonPoint { lat: CENTER.0, lon: CENTER.1 });
        let id = format!("territory-{rep}");
        let name = format!("Lyon sector {}", i + 1);
        docs.push(
            Territory { polygons: vec![ring], ..Territory::new(&id, &name, vec![rep.to_string()]) }.into(),
        );
    }

    let names = [
        "Boulangerie",
        "Pharmacie",
        "Garage",
        "Cave",
        "Épicerie",
        "Fromagerie",
        "Librairie",
        "Quincaillerie",
        "Brasserie",
        "Fleuriste",
    ];
    let streets = [
        "rue de la République",
        "cours Lafayette",
        "avenue Jean Jaurès",
        "rue Garibaldi",
        "quai Saint-Antoine",
        "rue Paul Bert",
    ];
    let stages = ["prospecting", "qualification", "proposal", "negotiation", "won", "lost"];
    let statuses = ["none", "call_back", "send_quote", "visit_again"];
    let mut customers = Vec::new();
    for n in 0..300 {
        let bearing = rng.random_range(0.0..2.0 * PI);
        // Denser in the centre, like a real city.
        let km = RADIUS_KM * rng.random_range(0.0f64..1.0).powf(0.7);
        let (lat, lon) = offset(CENTER, bearing, km);
        let rep_idx = ((bearing / sector) as usize).min(DEMO_REPS.len() - 1);
        let rep = DEMO_REPS[rep_idx];
        let potential = (rng.random_range(0.0f64..1.0).powi(3) * 200_000.0 + 2_000.0).round();
        let probability = (rng.random_range(0.05f64..0.9) * 100.0).round() / 100.0;
        let score = potential * probability;
        let tier = if score >= plan.thresholds.a_min_score {
            Tier::A
        } else if score >= plan.thresholds.b_min_score {
            Tier::B
        } else {
            Tier::C
        };
        let mut hours = Vec::new();
        for weekday in 1..=5u8 {
            hours.push(OpeningHours { weekday, open_min: 8 * 60 + 30, close_min: 12 * 60 });
            hours.push(OpeningHours { weekday, open_min: 14 * 60, close_min: 18 * 60 + 30 });
        }
        if rng.random_bool(0.4) {
            hours.push(OpeningHours { weekday: 6, open_min: 9 * 60, close_min: 12 * 60 + 30 });
        }
        let id = format!("cust-{n:04}");
        let name = format!("{} {}", names[n % names.len()], n + 1);
        // The random draws stay in this order: the same seed gives the same team (README's ids).
        let c = Customer {
            address: format!("{} {}, Lyon", rng.random_range(1..200), streets[n % streets.len()]),
            timezone: "Europe/Paris".into(),
            opening_hours: hours,
            potential_value: potential,
            close_probability: probability,
            tier: Some(tier),
            follow_up_status: statuses[rng.random_range(0..statuses.len())].into(),
            opportunity_stage: stages[rng.random_range(0..stages.len())].into(),
            owner_rep: Some(rep.to_string()),
            territory: Some(format!("territory-{rep}")),
            tags: if km > RADIUS_KM * 0.8 && tier == Tier::C { vec!["remote".into()] } else { vec![] },
            ..Customer::new(&id, &name, GeoPoint::wgs84(lat, lon), "server")
        };
        customers.push(c);
    }

    // Past visits: two weeks of history, mostly honest, a few far from the customer.
    let verify = VerifyConfig::default();
    let mut visits = Vec::new();
    for (i, c) in customers.iter().enumerate().filter(|(i, _)| i % 6 == 0) {
        let rep = c.owner_rep.clone().unwrap_or_default();
        let day = (i % 14) as i64 + 1;
        let start = now_ms - day * 86_400_000 + 9 * 3_600_000 + (i as i64 % 8) * 3_600_000;
        let far = i % 30 == 0;
        let (lat, lon) = if far {
            offset((c.location.lat, c.location.lon), rng.random_range(0.0..2.0 * PI), 1.2)
        } else {
            offset(
                (c.location.lat, c.location.lon),
                rng.random_range(0.0..2.0 * PI),
                rng.random_range(0.0..0.06),
            )
        };
        let checkin =
            Checkin::new(&format!("ci-{i:04}"), lat, lon, rng.random_range(5.0..40.0), start + 5 * 60_000);
        let verification = judged(&checkin, c, &verify);
        let id = format!("visit-seed-{i:04}");
        // A few planned visits nobody went to: the reports count them missed.
        if i % 42 == 12 && !far {
            visits.push(Visit::planned(&id, &c.id, &rep, start, start + 45 * 60_000));
            continue;
        }
        visits.push(Visit {
            state: VisitState::Completed,
            checkins: vec![checkin],
            checkout: Some(Checkout {
                device_time_ms: start + 40 * 60_000,
                outcome: if i % 4 == 0 { "order".into() } else { "follow_up".into() },
                next_step: "call back next week".into(),
            }),
            notes: format!("Met the owner of {}.", c.name).into(),
            verification,
            ..Visit::planned(&id, &c.id, &rep, start, start + 45 * 60_000)
        });
    }

    visits.extend(week_ahead(&customers, now_ms));

    docs.push(Document::Plan(plan));
    docs.extend(customers.into_iter().map(Document::Customer));
    docs.extend(visits.into_iter().map(Document::Visit));
    docs
}

/// The server's verdict on `checkin` at `customer`, received a minute after it was made, as the
/// visit stores it.
fn judged(
    checkin: &Checkin,
    customer: &Customer,
    verify: &VerifyConfig,
) -> std::collections::HashMap<String, CheckinVerification> {
    let received = checkin.device_time_ms + 60_000;
    let result = geo::verify_checkin(&CheckinContext {
        fix: &CheckinFix {
            point: LatLon { lat: checkin.lat, lon: checkin.lon },
            accuracy_m: checkin.accuracy_m,
            device_time_ms: checkin.device_time_ms,
            mock_location: false,
        },
        customer: LatLon { lat: customer.location.lat, lon: customer.location.lon },
        customer_datum: Datum::Wgs84,
        fence_override_m: None,
        previous: None,
        received_at_ms: Some(received),
        config: verify,
    });
    std::iter::once((checkin.id.clone(), CheckinVerification::from_verification(&result, received))).collect()
}

/// The working week ahead of each rep, from today: three visits a weekday (09:30, 11:00, 14:30
/// Paris time) at their A and B customers first. Today's visits that are over were done, with a
/// check-in at the door; the rest are still planned. No random draws: the team stays the same.
fn week_ahead(customers: &[Customer], now_ms: i64) -> Vec<Visit> {
    const TZ: &str = "Europe/Paris";
    let verify = VerifyConfig::default();
    let Ok(mut date) = LocalDate::of_ms(TZ, now_ms) else { return Vec::new() };
    let by_rep: Vec<Vec<&Customer>> = DEMO_REPS
        .iter()
        .map(|rep| {
            let mut theirs: Vec<&Customer> =
                customers.iter().filter(|c| c.owner_rep.as_deref() == Some(*rep)).collect();
            theirs.sort_by_key(|c| (c.tier.map(|t| t as u8), c.id.clone()));
            theirs
        })
        .collect();
    let mut visits = Vec::new();
    for day in 0..7 {
        if date.weekday().is_ok_and(|w| w <= 5) {
            for (r, (rep, theirs)) in DEMO_REPS.iter().zip(&by_rep).enumerate() {
                for (slot, minute) in [9 * 60 + 30, 11 * 60, 14 * 60 + 30].into_iter().enumerate() {
                    let Some(c) = theirs.get((day * 3 + slot + r) % theirs.len().max(1)) else { continue };
                    let Ok(start) = local_time_ms(TZ, date, minute) else { continue };
                    let id = format!("visit-week-{rep}-{day}-{slot}");
                    let mut v = Visit::planned(&id, &c.id, rep, start, start + 45 * 60_000);
                    // Today's visits are done only when they ended hours ago: a check-in minutes
                    // before the one a person makes while trying the demo would make that one
                    // look too fast to be true (a rep cannot cross Lyon in ten minutes).
                    if start + 45 * 60_000 + 3 * 3_600_000 <= now_ms {
                        let checkin = Checkin::new(
                            &format!("ci-week-{rep}-{day}-{slot}"),
                            c.location.lat,
                            c.location.lon,
                            8.0,
                            start + 3 * 60_000,
                        );
                        v.verification = judged(&checkin, c, &verify);
                        v.checkins.push(checkin);
                        v.checkout = Some(Checkout {
                            device_time_ms: start + 40 * 60_000,
                            outcome: "follow_up".into(),
                            next_step: "send the quote".into(),
                        });
                        v.state = VisitState::Completed;
                    }
                    visits.push(v);
                }
            }
        }
        match date.next() {
            Ok(next) => date = next,
            Err(_) => break,
        }
    }
    visits
}

/// Seeds the demo team unless the team already has data. Returns what was written, or None.
pub fn seed_demo<S: Storage>(
    engine: &SyncEngine<S>,
    seed: u64,
    now_ms: i64,
) -> crate::Result<Option<SeedSummary>> {
    if engine.storage().feed_head(DEMO_TEAM)? > 0 {
        return Ok(None);
    }
    let docs = demo_documents(seed, now_ms);
    let count = |k: fieldsync_core::docs::DocKind| docs.iter().filter(|d| d.kind() == k).count();
    use fieldsync_core::docs::DocKind;
    let summary = SeedSummary {
        team: DEMO_TEAM.into(),
        customers: count(DocKind::Customer),
        territories: count(DocKind::Territory),
        visits: count(DocKind::Visit),
        plans: count(DocKind::Plan),
    };
    // Territories first, so customers see their reps in the audience.
    for chunk in docs.chunks(200) {
        engine.write_as_server(DEMO_TEAM, chunk, now_ms)?;
    }
    Ok(Some(summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_team_is_the_same_for_the_same_seed_and_valid() {
        let a = demo_documents(7, 1_764_500_000_000);
        let b = demo_documents(7, 1_764_500_000_000);
        assert_eq!(a, b);
        for d in &a {
            d.validate().unwrap_or_else(|e| panic!("{} is invalid: {e}", d.id()));
        }
        let customers = a.iter().filter(|d| matches!(d, Document::Customer(_))).count();
        assert!(customers >= 200, "a few hundred customers, got {customers}");
        let tiers: std::collections::HashSet<_> =
            a.iter().filter_map(|d| if let Document::Customer(c) = d { c.tier } else { None }).collect();
        assert_eq!(tiers.len(), 3, "all three tiers occur");
        let flagged = a
            .iter()
            .filter_map(|d| if let Document::Visit(v) = d { Some(v) } else { None })
            .filter(|v| v.verification.values().any(|x| x.status != "verified"))
            .count();
        assert!(flagged > 0, "some past check-ins are flagged");
    }

    /// Whenever someone tries the demo, a check-in of theirs now or two hours back (README's walk-
    /// through, the device tests) is not minutes from one the demo made for the same rep: that
    /// one would be too fast to be true. Seeded at every ten minutes of a weekday.
    #[test]
    fn the_demo_leaves_the_last_three_hours_free_of_check_ins() {
        let monday_midnight = 1_796_026_800_000; // 2026-11-30 00:00 UTC
        for step in 0..144 {
            let now = monday_midnight + step * 600_000;
            for d in demo_documents(42, now) {
                if let Document::Visit(v) = d {
                    for c in &v.checkins {
                        assert!(
                            c.device_time_ms <= now - 3 * 3_600_000,
                            "seeded at {now}: {} checked in at {}",
                            v.id,
                            c.device_time_ms
                        );
                    }
                }
            }
        }
    }

    /// README's examples name these: the demo team of seed 42 must stay the one it describes.
    #[test]
    fn the_demo_team_of_seed_42_is_the_one_readme_describes() {
        let docs = demo_documents(42, 1_796_000_000_000);
        let customer = |id: &str| {
            docs.iter()
                .find_map(|d| match d {
                    Document::Customer(c) if c.id == id => Some(c.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{id}"))
        };
        assert_eq!(customer("cust-0001").owner_rep.as_deref(), Some("bruno"));
        let owned_by = |rep: &str| {
            docs.iter()
                .filter(|d| matches!(d, Document::Customer(c) if c.owner_rep.as_deref() == Some(rep)))
                .count()
        };
        let counts: Vec<usize> = DEMO_REPS.iter().map(|r| owned_by(r)).collect();
        assert_eq!(counts, [61, 62, 49, 54, 74], "customers of {DEMO_REPS:?}");
    }

    #[test]
    fn quarters_are_labelled_from_the_date() {
        assert_eq!(quarter_of(0), "1970-Q1");
        // 2026-11-30
        assert_eq!(quarter_of(1_795_996_800_000), "2026-Q4");
    }
}
