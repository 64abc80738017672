//! The manager's week plan: due visits spread over several reps and days.

// In a module so that `cargo test -p fieldsync-planning route` selects these tests.
mod route_week {
    use std::collections::HashSet;

    use fieldsync_core::geo::LatLon;
    use fieldsync_planning::TravelModel;
    use fieldsync_planning::route::*;

    const MON: i64 = 1_783_324_800_000; // 08:00 on the first day
    const H: i64 = 3_600_000;
    const DAY: i64 = 24 * H;

    fn at(base: LatLon, north: f64, east: f64) -> LatLon {
        LatLon { lat: base.lat + north / 111.2, lon: base.lon + east / (111.2 * base.lat.to_radians().cos()) }
    }

    const NORTH: LatLon = LatLon { lat: 48.90, lon: 2.35 };
    const SOUTH: LatLon = LatLon { lat: 48.70, lon: 2.35 };

    fn rep(name: &str, home: LatLon, days: usize) -> RepWeek {
        RepWeek {
            rep: name.into(),
            start: home,
            end: home,
            days: (0..days as i64).map(|d| (MON + d * DAY, MON + d * DAY + 9 * H)).collect(),
        }
    }

    /// Forty visits around two homes 22 km apart, open every weekday 8:00–18:00 (some closed for lunch).
    fn request() -> WeekPlanRequest {
        let mut stops = Vec::new();
        for i in 0..40 {
            let base = if i % 2 == 0 { NORTH } else { SOUTH };
            let angle = i as f64 * 0.7;
            let windows = (0..5)
                .flat_map(|d| {
                    let day = MON + d * DAY;
                    if i % 3 == 0 {
                        vec![(day, day + 4 * H), (day + 6 * H, day + 10 * H)]
                    } else {
                        vec![(day, day + 10 * H)]
                    }
                })
                .collect();
            stops.push(WeekStop {
                id: format!("v{i}"),
                location: at(base, 6.0 * angle.sin(), 6.0 * angle.cos()),
                windows,
                service_s: 45 * 60,
                must: i % 4 == 0,
                priority: 1.0,
                reps: if i == 7 {
                    vec!["nobody".into()]
                } else if i == 9 {
                    vec!["ann".into()]
                } else {
                    vec![]
                },
            });
        }
        WeekPlanRequest {
            reps: vec![rep("ann", NORTH, 3), rep("bob", SOUTH, 3)],
            stops,
            travel: TravelModel::default(),
            seed: 5,
            time_limit_ms: 0,
        }
    }

    #[test]
    fn a_week_plan_visits_each_stop_once_within_its_windows_and_each_rep_starts_at_home() {
        let req = request();
        let plan = plan_week(&req).expect("plan");
        assert_eq!(plan.days.len(), 6, "one entry per rep and working day");
        let mut seen = HashSet::new();
        for day in &plan.days {
            let r = req.reps.iter().find(|r| r.rep == day.rep).expect("known rep");
            let shift = r.days.iter().find(|d| d.0 == day.day_start_ms).expect("a working day of the rep");
            assert!(day.route.leave_ms >= shift.0 && day.route.end_ms <= shift.1, "{day:?}");
            let mut here = r.start;
            let mut t = day.route.leave_ms;
            for p in &day.route.stops {
                assert!(seen.insert(p.id.clone()), "{} twice", p.id);
                let s = req.stops.iter().find(|s| s.id == p.id).expect("requested");
                let leg = (req.travel.travel_s(here, s.location) * 1000.0).round() as i64;
                assert!(p.arrival_ms >= t + leg);
                assert!(s.windows.iter().any(|&(a, b)| a <= p.start_ms && p.depart_ms <= b));
                assert!(s.reps.is_empty() || s.reps.contains(&day.rep));
                here = s.location;
                t = p.depart_ms;
            }
            // The first leg starts from the rep's own home.
            if let Some(first) = day.route.stops.first() {
                let s = req.stops.iter().find(|s| s.id == first.id).expect("requested");
                assert!((first.travel_m_from_prev - req.travel.distance_m(r.start, s.location)).abs() < 1e-6);
            }
        }
        for d in &plan.unassigned {
            assert!(seen.insert(d.id.clone()), "{} both planned and unassigned", d.id);
        }
        assert_eq!(seen.len(), req.stops.len());
        assert!(plan.unassigned.iter().any(|d| d.id == "v7" && d.reason == DropReason::NoEligibleRep));
        // Three days of nine hours each for two reps fit the other 39 visits.
        assert_eq!(plan.unassigned.len(), 1, "{:?}", plan.unassigned);
        // Visits near a rep's home go to that rep (v0, v2, ... are north, Ann's side).
        let ann: usize = plan
            .days
            .iter()
            .filter(|d| d.rep == "ann")
            .flat_map(|d| &d.route.stops)
            .filter(|s| s.id.trim_start_matches('v').parse::<usize>().is_ok_and(|i| i % 2 == 0))
            .count();
        assert!(ann >= 15, "{ann} of the 20 northern visits go to the northern rep");
    }

    #[test]
    fn a_week_plan_is_deterministic_and_bad_rep_days_are_errors() {
        let req = request();
        assert_eq!(plan_week(&req), plan_week(&req));
        let mut bad = request();
        bad.reps[0].days[0] = (MON + H, MON);
        assert!(matches!(plan_week(&bad), Err(RouteError::InvalidRequest { .. })));
        let mut none = request();
        none.reps.clear();
        let plan = plan_week(&none).expect("no reps is a valid request");
        assert!(plan.days.is_empty());
        assert!(plan.unassigned.iter().all(|d| d.reason == DropReason::NoEligibleRep));
    }
}
