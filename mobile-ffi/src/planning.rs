//! The rep's own planning, offline: the day route and the overdue list, computed on the phone from
//! the documents it holds, with the same functions the server uses (`fieldsync-planning`). The
//! search's wall-clock cap is built here, over the device's monotonic clock: the planning crate
//! reads none.

use fieldsync_core::docs::{Customer, DocKind, Document, Plan, Visit, VisitState};
use fieldsync_core::geo::LatLon;
use fieldsync_planning::agenda::{RepDayInput, plan_rep_day_until};
use fieldsync_planning::allocation::{AllocationConfig, overdue};
use fieldsync_planning::route::LocalDate;
use fieldsync_planning::{Deadline, TravelModel};

use crate::{FieldsyncClient, FieldsyncError, Result, invalid};

/// One stop of the planned day.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DayStop {
    /// A visit id (a planned visit) or a customer id (a due customer to visit).
    pub id: String,
    pub customer_id: String,
    pub customer_name: String,
    /// "planned" or "due".
    pub source: String,
    pub arrival_ms: i64,
    pub start_ms: i64,
    pub depart_ms: i64,
    pub travel_m_from_prev: f64,
}

/// A stop left out of the day, and why (`closed_all_day`, `window_unreachable`, `day_too_short`,
/// `day_full`, `lower_priority`, `invalid_stop`).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DroppedDayStop {
    pub id: String,
    pub reason: String,
}

/// A visit of the day already made (checked in or completed): shown, not routed again.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DoneDayVisit {
    pub visit_id: String,
    pub customer_id: String,
    pub customer_name: String,
    pub state: VisitState,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DayPlan {
    pub leave_ms: i64,
    pub stops: Vec<DayStop>,
    pub done: Vec<DoneDayVisit>,
    pub dropped: Vec<DroppedDayStop>,
    pub total_travel_m: f64,
    pub total_travel_s: f64,
    pub end_ms: i64,
}

/// A customer due for a visit by its tier's cadence.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct OverdueCustomer {
    pub customer_id: String,
    pub customer_name: String,
    /// None when the customer was never visited (`never_visited`).
    pub days_overdue: Option<f64>,
    pub urgency: f64,
    pub remote: bool,
    pub never_visited: bool,
}

struct Held {
    customers: Vec<Customer>,
    visits: Vec<Visit>,
    plan: Option<Plan>,
}

fn parse_date(s: &str) -> Result<LocalDate> {
    let parts: Vec<&str> = s.split('-').collect();
    match parts.as_slice() {
        [y, m, d] => match (y.parse(), m.parse(), d.parse()) {
            (Ok(y), Ok(m), Ok(d)) => Ok(LocalDate::new(y, m, d)),
            _ => Err(invalid("date", format!("{s:?} is not YYYY-MM-DD"))),
        },
        _ => Err(invalid("date", format!("{s:?} is not YYYY-MM-DD"))),
    }
}

impl FieldsyncClient {
    fn held(&self) -> Result<Held> {
        self.read(|r| {
            let mut held = Held { customers: vec![], visits: vec![], plan: None };
            for id in r.doc_ids() {
                if r.local(id).is_some_and(|d| d.kind() == DocKind::Territory) {
                    continue;
                }
                match r.get(id) {
                    Some(Document::Customer(c)) => held.customers.push(c),
                    Some(Document::Visit(v)) => held.visits.push(v),
                    Some(Document::Plan(p)) if held.plan.as_ref().is_none_or(|q| p.quarter > q.quarter) => {
                        held.plan = Some(p);
                    }
                    _ => {}
                }
            }
            Ok(held)
        })
    }
}

#[uniffi::export]
impl FieldsyncClient {
    /// Plans the signed-in rep's day on `date` (YYYY-MM-DD, in `timezone`): the visits planned that
    /// day are kept, due customers fill the rest by urgency, under opening hours and the working day.
    pub fn plan_my_day(
        &self,
        date: String,
        timezone: String,
        start_lat: f64,
        start_lon: f64,
        work_start_min: u32,
        work_end_min: u32,
    ) -> Result<DayPlan> {
        let start = LatLon::new(start_lat, start_lon).map_err(|e| invalid("start", e.to_string()))?;
        if work_end_min <= work_start_min || work_end_min > 24 * 60 {
            return Err(invalid("work_end_min", "the working day must end after it starts, by midnight"));
        }
        let date = parse_date(&date)?;
        let rep = self.read(|r| Ok(r.principal().user.clone()))?;
        let held = self.held()?;
        let plan =
            held.plan.ok_or_else(|| invalid("plan", "no plan document on this device yet: sync first"))?;
        let input = RepDayInput {
            rep,
            date,
            timezone,
            start,
            end: start,
            work_start_min,
            work_end_min,
            travel: TravelModel::default(),
            max_optional: 12,
            seed: 7,
            time_limit_ms: 500,
        };
        let origin = std::time::Instant::now();
        let clock = move || origin.elapsed();
        let deadline = Deadline::after_ms(&clock, input.time_limit_ms);
        let day = plan_rep_day_until(
            &held.customers,
            &held.visits,
            &plan,
            &AllocationConfig::default(),
            &input,
            deadline,
        )
        .map_err(|e| invalid("day", e.to_string()))?;
        let info: std::collections::HashMap<&str, _> = day.stops.iter().map(|s| (s.id.as_str(), s)).collect();
        Ok(DayPlan {
            leave_ms: day.route.leave_ms,
            done: day
                .done
                .iter()
                .map(|d| DoneDayVisit {
                    visit_id: d.visit_id.clone(),
                    customer_id: d.customer_id.clone(),
                    customer_name: d.customer_name.clone(),
                    state: d.state,
                    at_ms: d.at_ms,
                })
                .collect(),
            stops: day
                .route
                .stops
                .iter()
                .map(|s| {
                    let i = info.get(s.id.as_str());
                    DayStop {
                        id: s.id.clone(),
                        customer_id: i.map(|i| i.customer_id.clone()).unwrap_or_default(),
                        customer_name: i.map(|i| i.customer_name.clone()).unwrap_or_default(),
                        source: i.map(|i| i.source.clone()).unwrap_or_default(),
                        arrival_ms: s.arrival_ms,
                        start_ms: s.start_ms,
                        depart_ms: s.depart_ms,
                        travel_m_from_prev: s.travel_m_from_prev,
                    }
                })
                .collect(),
            dropped: day
                .route
                .dropped
                .iter()
                .map(|d| DroppedDayStop {
                    id: d.id.clone(),
                    reason: serde_json::to_value(&d.reason)
                        .ok()
                        .and_then(|v| v["code"].as_str().map(str::to_string))
                        .unwrap_or_else(|| "dropped".into()),
                })
                .collect(),
            total_travel_m: day.route.total_travel_m,
            total_travel_s: day.route.total_travel_s,
            end_ms: day.route.end_ms,
        })
    }

    /// The signed-in rep's customers that are due, most urgent first.
    pub fn overdue_customers(&self, now_ms: i64) -> Result<Vec<OverdueCustomer>> {
        let rep = self.read(|r| Ok(r.principal().user.clone()))?;
        let held = self.held()?;
        let plan = held.plan.ok_or_else(|| FieldsyncError::InvalidInput {
            field: "plan".into(),
            reason: "no plan document on this device yet: sync first".into(),
        })?;
        let names: std::collections::HashMap<&str, &str> =
            held.customers.iter().map(|c| (c.id.as_str(), c.name.as_str())).collect();
        Ok(overdue(&held.customers, &held.visits, &plan, &AllocationConfig::default(), now_ms)
            .into_iter()
            .filter(|o| o.owner_rep.as_deref() == Some(rep.as_str()))
            .map(|o| OverdueCustomer {
                customer_name: names.get(o.customer_id.as_str()).map(|s| s.to_string()).unwrap_or_default(),
                customer_id: o.customer_id,
                days_overdue: o.days_overdue,
                urgency: o.urgency,
                remote: o.remote,
                never_visited: o.never_visited,
            })
            .collect())
    }
}
