//! A rep's day route: windows, day length, lunch breaks, must over optional, reasons for every dropped
//! stop, time zones, re-planning; and a property test that every plan is feasible.

// In a module so that `cargo test -p fieldsync-planning route` selects these tests.
mod route_day {
    use std::collections::HashSet;

    use fieldsync_core::docs::{Customer, GeoPoint, OpeningHours};
    use fieldsync_core::geo::LatLon;
    use fieldsync_planning::TravelModel;
    use fieldsync_planning::route::*;
    use proptest::prelude::*;

    /// 08:00 on the planning day (any instant works: times are absolute).
    const DAY0: i64 = 1_783_324_800_000;
    const MIN: i64 = 60_000;
    const H: i64 = 3_600_000;
    const HOME: LatLon = LatLon { lat: 48.8566, lon: 2.3522 };

    /// A point `north` and `east` kilometres from HOME.
    fn at(north: f64, east: f64) -> LatLon {
        LatLon { lat: HOME.lat + north / 111.2, lon: HOME.lon + east / (111.2 * HOME.lat.to_radians().cos()) }
    }

    fn stop(
        id: &str,
        place: LatLon,
        windows: Vec<(i64, i64)>,
        service_min: u32,
        must: bool,
        priority: f64,
    ) -> RouteStop {
        RouteStop { id: id.into(), location: place, windows, service_s: service_min * 60, must, priority }
    }

    /// 08:00–18:00 from and back to HOME.
    fn request(stops: Vec<RouteStop>) -> DayRouteRequest {
        DayRouteRequest {
            start: HOME,
            end: HOME,
            day_start_ms: DAY0,
            day_end_ms: DAY0 + 10 * H,
            stops,
            travel: TravelModel::default(),
            seed: 1,
            time_limit_ms: 0,
        }
    }

    fn travel_ms(t: &TravelModel, a: LatLon, b: LatLon) -> i64 {
        (t.travel_s(a, b) * 1000.0).round() as i64
    }

    /// Checks a plan against the request without trusting the planner: every stop planned or dropped
    /// exactly once, travel times, waiting, windows (whole visit inside one), the day's bounds.
    fn assert_feasible(req: &DayRouteRequest, start: LatLon, not_before: i64, route: &DayRoute) {
        let mut seen = HashSet::new();
        for id in route.stops.iter().map(|s| &s.id).chain(route.dropped.iter().map(|d| &d.id)) {
            assert!(seen.insert(id.clone()), "{id} appears twice in {route:?}");
            assert!(req.stops.iter().any(|s| s.id == *id), "unknown stop {id}");
        }
        assert!(route.leave_ms >= not_before, "leaves at {} before {not_before}", route.leave_ms);
        let (mut here, mut t) = (start, route.leave_ms);
        for p in &route.stops {
            let s = req.stops.iter().find(|s| s.id == p.id).expect("planned stop is requested");
            let leg = travel_ms(&req.travel, here, s.location);
            assert!(
                p.arrival_ms >= t + leg,
                "{}: arrives at {} but cannot be there before {}",
                p.id,
                p.arrival_ms,
                t + leg
            );
            assert!(p.start_ms >= p.arrival_ms, "{}: starts before arriving", p.id);
            assert_eq!(p.depart_ms, p.start_ms + i64::from(s.service_s) * 1000, "{}", p.id);
            assert!(
                s.windows.iter().any(|&(a, b)| a <= p.start_ms && p.depart_ms <= b),
                "{}: visit {}..{} outside its windows {:?}",
                p.id,
                p.start_ms,
                p.depart_ms,
                s.windows
            );
            assert!((p.travel_m_from_prev - req.travel.distance_m(here, s.location)).abs() < 1e-6);
            here = s.location;
            t = p.depart_ms;
        }
        assert!(route.end_ms >= t + travel_ms(&req.travel, here, req.end));
        if !route.stops.is_empty() {
            assert!(
                route.end_ms <= req.day_end_ms,
                "back at {} after the day's end {}",
                route.end_ms,
                req.day_end_ms
            );
        }
        assert_eq!(seen.len(), req.stops.len(), "every stop is planned or dropped");
        for d in &route.dropped {
            let s = req.stops.iter().find(|s| s.id == d.id).expect("dropped stop is requested");
            if s.must {
                assert_ne!(d.reason, DropReason::LowerPriority, "a must stop is never dropped for priority");
            }
        }
    }

    fn reason(route: &DayRoute, id: &str) -> Option<DropReason> {
        route.dropped.iter().find(|d| d.id == id).map(|d| d.reason.clone())
    }

    /// Twelve stops around HOME with mixed windows, some closed for lunch.
    fn busy_day() -> DayRouteRequest {
        let lunch = vec![(DAY0 + 30 * MIN, DAY0 + 4 * H), (DAY0 + 6 * H, DAY0 + 10 * H + 30 * MIN)];
        let stops = (0..12)
            .map(|i| {
                let angle = i as f64 * 0.52;
                let place = at(4.0 * angle.sin() * (1.0 + i as f64 / 6.0), 5.0 * angle.cos());
                let windows = match i % 3 {
                    0 => lunch.clone(),
                    1 => vec![(DAY0, DAY0 + 10 * H)],
                    _ => vec![(DAY0 + 2 * H, DAY0 + 6 * H)],
                };
                stop(&format!("s{i}"), place, windows, 30, i % 4 == 0, 1.0 + (i % 3) as f64)
            })
            .collect();
        request(stops)
    }

    #[test]
    fn every_stop_starts_service_within_one_of_its_windows() {
        let req = busy_day();
        let route = plan_day(&req).expect("plan");
        assert!(route.stops.len() >= 8, "{route:?}");
        assert_feasible(&req, req.start, req.day_start_ms, &route);
        for p in &route.stops {
            let s = req.stops.iter().find(|s| s.id == p.id).expect("requested");
            assert!(s.windows.iter().any(|&(a, b)| (a..=b).contains(&p.start_ms)));
        }
    }

    #[test]
    fn no_stop_is_visited_twice() {
        let req = busy_day();
        let route = plan_day(&req).expect("plan");
        let ids: HashSet<&str> = route.stops.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids.len(), route.stops.len());
        assert!(route.dropped.iter().all(|d| !ids.contains(d.id.as_str())));
    }

    #[test]
    fn the_day_length_is_kept() {
        // Twenty hour-long visits cannot fit into four hours.
        let mut req = request(
            (0..20)
                .map(|i| {
                    stop(
                        &format!("s{i}"),
                        at(i as f64 * 0.3, 1.0),
                        vec![(DAY0, DAY0 + 12 * H)],
                        60,
                        false,
                        1.0,
                    )
                })
                .collect(),
        );
        req.day_end_ms = DAY0 + 4 * H;
        let route = plan_day(&req).expect("plan");
        assert!(route.leave_ms >= req.day_start_ms);
        assert!(route.end_ms <= req.day_end_ms);
        assert_eq!(route.stops.len(), 3, "three one-hour visits and the driving fit in four hours");
        assert_feasible(&req, req.start, req.day_start_ms, &route);
        assert!(route.dropped.iter().all(|d| d.reason == DropReason::LowerPriority));
    }

    #[test]
    fn a_customer_closed_for_lunch_is_visited_in_the_window_that_fits() {
        let lunch = vec![(DAY0 + 30 * MIN, DAY0 + 4 * H), (DAY0 + 6 * H, DAY0 + 10 * H + 30 * MIN)]; // 8:30–12:00, 14:00–18:30
        // Alone: the morning window, leaving home just in time for 8:30.
        let req = request(vec![stop("shop", at(2.0, 0.0), lunch.clone(), 45, true, 0.0)]);
        let route = plan_day(&req).expect("plan");
        assert_feasible(&req, req.start, req.day_start_ms, &route);
        assert_eq!(route.stops[0].start_ms, DAY0 + 30 * MIN);
        assert!(route.leave_ms > req.day_start_ms, "leaves later rather than waiting at the door");

        // A must meeting 9:00–13:30 next door: the shop moves to 14:00, not into its lunch break.
        let req = request(vec![
            stop("shop", at(2.0, 0.0), lunch.clone(), 45, true, 0.0),
            stop("meeting", at(2.5, 0.5), vec![(DAY0 + H, DAY0 + 5 * H + 30 * MIN)], 270, true, 0.0),
        ]);
        let route = plan_day(&req).expect("plan");
        assert_feasible(&req, req.start, req.day_start_ms, &route);
        let shop = route.stops.iter().find(|s| s.id == "shop").expect("shop is planned");
        assert_eq!(shop.start_ms, DAY0 + 6 * H, "{route:?}");
        assert!(shop.arrival_ms < shop.start_ms, "arrives during the lunch break and waits");

        // A 45-minute visit may not start at 11:50 and run into the break.
        let req = request(vec![stop(
            "shop",
            at(2.0, 0.0),
            vec![(DAY0 + 3 * H + 50 * MIN, DAY0 + 4 * H)],
            45,
            true,
            0.0,
        )]);
        let route = plan_day(&req).expect("plan");
        assert_eq!(reason(&route, "shop"), Some(DropReason::ClosedAllDay));
    }

    #[test]
    fn must_stops_are_kept_over_optional_ones() {
        // Both only possible at 9:00–9:45 with a 45-minute visit, 10 km apart.
        let slot = vec![(DAY0 + H, DAY0 + H + 45 * MIN)];
        let req = request(vec![
            stop("optional", at(0.0, 5.0), slot.clone(), 45, false, 100.0),
            stop("must", at(0.0, -5.0), slot.clone(), 45, true, 0.0),
        ]);
        let route = plan_day(&req).expect("plan");
        assert_feasible(&req, req.start, req.day_start_ms, &route);
        assert_eq!(route.stops.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["must"]);
        assert_eq!(reason(&route, "optional"), Some(DropReason::LowerPriority));

        // Among optional stops, the higher total priority wins.
        let req = request(vec![
            stop("low", at(0.0, 5.0), slot.clone(), 45, false, 1.0),
            stop("high", at(0.0, -5.0), slot.clone(), 45, false, 3.0),
        ]);
        let route = plan_day(&req).expect("plan");
        assert_eq!(route.stops.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["high"]);
    }

    #[test]
    fn dropped_stops_carry_reasons() {
        let all_day = vec![(DAY0 - 2 * H, DAY0 + 14 * H)];
        let slot = vec![(DAY0 + H, DAY0 + H + 45 * MIN)];
        let req = request(vec![
            stop("closed", at(1.0, 0.0), vec![(DAY0 + 24 * H, DAY0 + 30 * H)], 30, true, 0.0),
            stop("no-windows", at(1.0, 0.0), vec![], 30, false, 1.0),
            // 30 km away, open only 8:00–8:20: 39 road km at 30 km/h take 78 minutes.
            stop("unreachable", at(30.0, 0.0), vec![(DAY0, DAY0 + 20 * MIN)], 5, true, 0.0),
            // 150 km away: there by 14:30, but not back by 18:00.
            stop("far", at(150.0, 0.0), all_day.clone(), 10, true, 0.0),
            stop("two-musts-a", at(0.0, 5.0), slot.clone(), 45, true, 0.0),
            stop("two-musts-b", at(0.0, -5.0), slot.clone(), 45, true, 0.0),
            stop("optional", at(0.0, 6.0), slot.clone(), 45, false, 5.0),
            stop("nan", LatLon { lat: f64::NAN, lon: 2.0 }, all_day.clone(), 30, true, 0.0),
            stop("negative", at(1.0, 1.0), all_day.clone(), 30, false, -1.0),
            stop("reversed", at(1.0, 1.0), vec![(DAY0 + 2 * H, DAY0 + H)], 30, false, 1.0),
            stop("fine", at(1.0, 1.0), all_day, 30, false, 1.0),
        ]);
        let route = plan_day(&req).expect("plan");
        assert_feasible(&req, req.start, req.day_start_ms, &route);
        assert_eq!(reason(&route, "closed"), Some(DropReason::ClosedAllDay));
        assert_eq!(reason(&route, "no-windows"), Some(DropReason::ClosedAllDay));
        assert_eq!(reason(&route, "unreachable"), Some(DropReason::WindowUnreachable));
        assert_eq!(reason(&route, "far"), Some(DropReason::DayTooShort));
        let musts = [reason(&route, "two-musts-a"), reason(&route, "two-musts-b")];
        assert!(musts.contains(&None) && musts.contains(&Some(DropReason::DayFull)), "{musts:?}");
        assert_eq!(reason(&route, "optional"), Some(DropReason::LowerPriority));
        for id in ["nan", "negative", "reversed"] {
            assert!(matches!(reason(&route, id), Some(DropReason::InvalidStop { .. })), "{id}: {route:?}");
        }
        assert_eq!(reason(&route, "fine"), None);
        assert_eq!(route.stops.len() + route.dropped.len(), req.stops.len());

        let json = serde_json::to_value(&route.dropped[0]).expect("serialize");
        assert_eq!(json["reason"]["code"], "closed_all_day");
    }

    #[test]
    fn an_unknown_time_zone_is_a_typed_error() {
        let mut c = customer("Mars/Olympus_Mons");
        assert_eq!(
            opening_windows(&c, LocalDate::new(2026, 7, 6)),
            Err(RouteError::UnknownTimeZone("Mars/Olympus_Mons".into()))
        );
        c.timezone = String::new();
        assert!(matches!(
            opening_windows(&c, LocalDate::new(2026, 7, 6)),
            Err(RouteError::UnknownTimeZone(_))
        ));
        c.timezone = "Europe/Paris".into();
        assert!(matches!(opening_windows(&c, LocalDate::new(2026, 2, 30)), Err(RouteError::InvalidDate(_))));
        assert!(matches!(
            local_time_ms("Nowhere/Town", LocalDate::new(2026, 7, 6), 0),
            Err(RouteError::UnknownTimeZone(_))
        ));
    }

    fn customer(tz: &str) -> Customer {
        let hours = |weekday, open_min, close_min| OpeningHours { weekday, open_min, close_min };
        Customer {
            timezone: tz.into(),
            // Monday 9:00–12:00 and 14:00–18:30 (entered out of order), Sunday 1:00–4:00, Tuesday all day.
            opening_hours: vec![
                hours(1, 840, 1110),
                hours(1, 540, 720),
                hours(7, 60, 240),
                hours(2, 0, 1440),
            ],
            close_probability: 0.5,
            follow_up_status: String::new(),
            opportunity_stage: String::new(),
            ..Customer::new("c1", "Boulangerie", GeoPoint::wgs84(48.85, 2.35), "admin")
        }
    }

    #[test]
    fn opening_hours_are_read_in_the_customers_time_zone_with_daylight_saving() {
        let paris = customer("Europe/Paris");
        // Monday 6 July 2026, summer time (UTC+2): 07:00–10:00 and 12:00–16:30 UTC.
        assert_eq!(LocalDate::new(2026, 7, 6).weekday(), Ok(1));
        assert_eq!(
            opening_windows(&paris, LocalDate::new(2026, 7, 6)),
            Ok(vec![(1_783_321_200_000, 1_783_332_000_000), (1_783_339_200_000, 1_783_355_400_000)])
        );
        // Monday 5 January 2026, winter time (UTC+1): opens 08:00 UTC.
        let winter = opening_windows(&paris, LocalDate::new(2026, 1, 5)).expect("windows");
        assert_eq!(winter[0].0, 1_767_600_000_000);
        // Sunday 29 March 2026, clocks go forward at 02:00: 01:00 CET to 04:00 CEST is two hours.
        assert_eq!(
            opening_windows(&paris, LocalDate::new(2026, 3, 29)),
            Ok(vec![(1_774_742_400_000, 1_774_749_600_000)])
        );
        // Closed on Wednesday.
        assert_eq!(opening_windows(&paris, LocalDate::new(2026, 7, 8)), Ok(vec![]));
        // Tuesday 0:00–24:00 in New York (UTC−4 in July) ends at the next local midnight.
        let ny = customer("America/New_York");
        assert_eq!(
            opening_windows(&ny, LocalDate::new(2026, 7, 7)),
            Ok(vec![(1_783_396_800_000, 1_783_396_800_000 + 24 * H)])
        );
        // A week: Monday's two windows and Tuesday's.
        let week = opening_windows_for_days(&paris, LocalDate::new(2026, 7, 6), 3).expect("week");
        assert_eq!(week.len(), 3);
        assert_eq!(local_time_ms("Europe/Paris", LocalDate::new(2026, 7, 6), 9 * 60), Ok(1_783_321_200_000));
    }

    #[test]
    fn plan_day_is_deterministic_for_a_seed() {
        let req = busy_day();
        assert_eq!(plan_day(&req), plan_day(&req));
    }

    #[test]
    fn the_deadline_is_the_callers_clock_and_only_cuts_the_search_short() {
        use fieldsync_planning::Deadline;
        use std::time::Duration;
        let req = busy_day();
        // A clock that never moves: the deadline is never reached, the iteration budget decides,
        // and the answer is the one without a deadline.
        let frozen = || Duration::ZERO;
        let far = Deadline::new(&frozen, Duration::from_secs(3600));
        assert_eq!(plan_day_until(&req, Some(far)), plan_day(&req));
        let route = plan_day(&req).expect("plan");
        let done = vec![route.stops[0].id.clone()];
        let at = route.stops[0].depart_ms;
        assert_eq!(
            replan_until(&route, at, HOME, &done, &req, Some(far)),
            replan(&route, at, HOME, &done, &req)
        );
        // A deadline already passed stops the search at once, with a usable route all the same.
        let passed = Deadline::new(&frozen, Duration::ZERO);
        assert!(passed.passed());
        let cut = plan_day_until(&req, Some(passed)).expect("plan");
        assert_eq!(cut.stops.len() + cut.dropped.len(), req.stops.len());
        assert!(Deadline::after_ms(&frozen, 0).is_none(), "time_limit_ms = 0 means no deadline");
    }

    #[test]
    fn bad_requests_are_typed_errors() {
        let mut req = busy_day();
        req.day_end_ms = req.day_start_ms - 1;
        assert!(matches!(plan_day(&req), Err(RouteError::InvalidRequest { .. })));
        let mut req = busy_day();
        req.start.lat = 123.0;
        assert!(matches!(plan_day(&req), Err(RouteError::InvalidRequest { .. })));
        let mut req = busy_day();
        req.travel.speed_kmh = f64::NAN;
        assert!(matches!(plan_day(&req), Err(RouteError::InvalidRequest { .. })));
        let mut req = busy_day();
        let twin = req.stops[0].clone();
        req.stops.push(twin);
        assert_eq!(plan_day(&req), Err(RouteError::DuplicateStop("s0".into())));
        let req = request(vec![]);
        let route = plan_day(&req).expect("an empty day");
        assert!(route.stops.is_empty() && route.dropped.is_empty());
        assert_eq!(route.total_travel_m, 0.0);
    }

    #[test]
    fn replan_leaves_out_done_stops_and_starts_from_where_the_rep_is() {
        let req = busy_day();
        let route = plan_day(&req).expect("plan");
        let done: Vec<String> = route.stops.iter().take(2).map(|s| s.id.clone()).collect();
        let second = &route.stops[1];
        let here = req.stops.iter().find(|s| s.id == second.id).expect("requested").location;
        // Twenty minutes late.
        let now = second.depart_ms + 20 * MIN;
        let next = replan(&route, now, here, &done, &req).expect("replan");
        let rest = DayRouteRequest {
            stops: req.stops.iter().filter(|s| !done.contains(&s.id)).cloned().collect(),
            ..req.clone()
        };
        assert_feasible(&rest, here, now, &next);
        assert!(next.stops.iter().all(|s| !done.contains(&s.id)));
        assert!(
            2 * next.stops.len() >= route.stops.len() - 2,
            "late by 20 minutes keeps most stops: {next:?}"
        );

        // After the end of the day nothing is left, and every stop says why.
        let next = replan(&route, req.day_end_ms + H, here, &done, &req).expect("replan");
        assert!(next.stops.is_empty());
        assert_eq!(next.dropped.len(), req.stops.len() - 2);
    }

    #[test]
    fn replan_fits_in_a_stop_added_during_the_day() {
        let mut req = busy_day();
        let route = plan_day(&req).expect("plan");
        req.stops.push(stop("urgent", at(0.5, 0.5), vec![(DAY0, DAY0 + 10 * H)], 20, true, 0.0));
        let next = replan(&route, req.day_start_ms, HOME, &[], &req).expect("replan");
        assert!(next.stops.iter().any(|s| s.id == "urgent"), "{next:?}");
        assert_feasible(&req, HOME, req.day_start_ms, &next);
    }

    #[test]
    fn a_day_route_round_trips_through_json() {
        let req = busy_day();
        let route = plan_day(&req).expect("plan");
        // serde_json may move the last bit of a float, so compare the documents.
        let json = serde_json::to_value(&route).expect("json");
        let back: DayRoute = serde_json::from_value(json.clone()).expect("parse");
        assert_eq!(serde_json::to_value(&back).expect("json"), json);
        assert_eq!(
            back.stops.iter().map(|s| &s.id).collect::<Vec<_>>(),
            route.stops.iter().map(|s| &s.id).collect::<Vec<_>>()
        );
        let json = serde_json::to_value(&req).expect("json");
        let back: DayRouteRequest = serde_json::from_value(json.clone()).expect("parse");
        assert_eq!(serde_json::to_value(&back).expect("json"), json);
    }

    fn arb_stop(i: usize) -> impl Strategy<Value = RouteStop> {
        (
            (-8.0f64..8.0, -8.0f64..8.0),
            prop::collection::vec((0i64..600, 10i64..300), 0..3),
            0u32..90,
            any::<bool>(),
            0.0f64..5.0,
        )
            .prop_map(move |((n, e), windows, service_min, must, priority)| {
                let windows = windows
                    .into_iter()
                    .map(|(start, len)| (DAY0 + start * MIN, DAY0 + (start + len) * MIN))
                    .collect();
                stop(&format!("p{i}"), at(n, e), windows, service_min, must, priority)
            })
    }

    fn arb_request() -> impl Strategy<Value = DayRouteRequest> {
        (1usize..9, 60i64..600, any::<u64>(), (-5.0f64..5.0, -5.0f64..5.0))
            .prop_flat_map(|(n, day_min, seed, (n_km, e_km))| {
                let stops: Vec<_> = (0..n).map(arb_stop).collect();
                (stops, Just(day_min), Just(seed), Just((n_km, e_km)))
            })
            .prop_map(|(stops, day_min, seed, (n_km, e_km))| {
                let mut req = request(stops);
                req.day_end_ms = DAY0 + day_min * MIN;
                req.end = at(n_km, e_km);
                req.seed = seed;
                req
            })
    }

    proptest! {
        // 48 cases unless PROPTEST_CASES says otherwise (debug builds are slow).
        #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48), ..ProptestConfig::default() })]

        #[test]
        fn plan_day_output_is_always_feasible(req in arb_request()) {
            let route = plan_day(&req).expect("valid request");
            assert_feasible(&req, req.start, req.day_start_ms, &route);
            prop_assert_eq!(route.stops.len() + route.dropped.len(), req.stops.len());
        }

        #[test]
        fn replan_output_is_always_feasible(req in arb_request(), late_min in 0i64..240, done_n in 0usize..3) {
            let route = plan_day(&req).expect("valid request");
            let done: Vec<String> = route.stops.iter().take(done_n).map(|s| s.id.clone()).collect();
            let now = req.day_start_ms + late_min * MIN;
            let here = at(1.0, -1.0);
            let next = replan(&route, now, here, &done, &req).expect("valid request");
            let rest = DayRouteRequest { stops: req.stops.iter().filter(|s| !done.contains(&s.id)).cloned().collect(), ..req.clone() };
            assert_feasible(&rest, here, now, &next);
            prop_assert_eq!(next.stops.len() + next.dropped.len(), rest.stops.len());
        }
    }
}
