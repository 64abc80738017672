//! Reports for the manager's desk (plan → execute → review): what was planned against what
//! happened, computed from the report index ([`fieldsync_core::index`]) that the server keeps in
//! the same batch as every write — never by hydrating the documents. Pure functions of the rows,
//! the plan, a window and `now_ms`.
//!
//! ```
//! use fieldsync_core::docs::{Checkin, Document, Visit, VisitState};
//! use fieldsync_core::index::IndexRow;
//! use fieldsync_planning::reports::{ReportWindow, visit_report};
//! let mut done = Visit::planned("v-1", "c-1", "alice", 1_000, 2_000);
//! done.state = VisitState::Completed;
//! done.checkins.push(Checkin::new("k-1", 45.76, 4.83, 5.0, 1_100));
//! let late = Visit::planned("v-2", "c-2", "alice", 3_000, 4_000);
//! let rows: Vec<IndexRow> =
//!     [done, late].into_iter().filter_map(|v| IndexRow::of(&Document::Visit(v), 0)).collect();
//! let window = ReportWindow { from_ms: 0, to_ms: 10_000, rep: None };
//! let report = visit_report(&rows, &window, 5_000);
//! // Two planned, one completed, one over without a check-in: missed.
//! assert_eq!((report.total.planned, report.total.completed, report.total.missed), (2, 1, 1));
//! assert_eq!(report.total.completion_rate, 0.5);
//! ```

use std::collections::BTreeMap;

use fieldsync_core::docs::{CheckinReview, Plan, ReviewDecision, Tier, VisitState};
use fieldsync_core::geo::VerificationStatus;
use fieldsync_core::index::{CustomerRow, IndexRow, StageChange, VisitRow};
use serde::{Deserialize, Serialize};

use crate::allocation::cadence_days;
use crate::segmentation::{PerTier, potential_of, row_tier, score_of};

const DAY_MS: i64 = 86_400_000;

/// The range a report covers, `[from_ms, to_ms)`, for the team or one rep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportWindow {
    pub from_ms: i64,
    pub to_ms: i64,
    pub rep: Option<String>,
}

impl ReportWindow {
    fn covers(&self, t: i64) -> bool {
        (self.from_ms..self.to_ms).contains(&t)
    }

    fn for_rep(&self, rep: Option<&str>) -> bool {
        self.rep.as_deref().is_none_or(|r| rep == Some(r))
    }
}

/// A check-in the server did not verify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlaggedCheckin {
    pub visit_id: String,
    pub checkin_id: String,
    pub rep: String,
    pub customer_id: String,
    pub device_time_ms: i64,
    pub status: VerificationStatus,
    pub codes: Vec<String>,
    /// The manager's review, once there is one.
    pub review: Option<CheckinReview>,
}

/// Visits and check-ins of one rep, or of the whole window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VisitFigures {
    /// Visits planned to start in the window (cancelled ones aside).
    pub planned: usize,
    /// Of those, completed (remote contacts included).
    pub completed: usize,
    /// Of those, missed: marked missed, or never checked in and over by `now`.
    pub missed: usize,
    /// completed / planned; 0 when nothing was planned.
    pub completion_rate: f64,
    /// Completed as remote contacts (far customers served by phone).
    pub remote_contacts: usize,
    /// Check-ins made in the window that the server judged.
    pub checkins_judged: usize,
    pub verified: usize,
    pub flagged: usize,
    pub invalid: usize,
    /// verified / judged; 0 when nothing was judged.
    pub verification_rate: f64,
    /// Flagged or invalid check-ins a manager approved, rejected, or has not reviewed yet.
    pub reviews_approved: usize,
    pub reviews_rejected: usize,
    pub awaiting_review: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepVisitFigures {
    pub rep: String,
    #[serde(flatten)]
    pub figures: VisitFigures,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitReport {
    #[serde(flatten)]
    pub window: ReportWindow,
    #[serde(flatten)]
    pub total: VisitFigures,
    pub per_rep: Vec<RepVisitFigures>,
    /// Every check-in of the window not verified, oldest first.
    pub flagged_checkins: Vec<FlaggedCheckin>,
}

/// Planned against completed visits, missed ones, and how trustworthy the check-ins were.
pub fn visit_report(rows: &[IndexRow], window: &ReportWindow, now_ms: i64) -> VisitReport {
    let mut total = VisitFigures::default();
    let mut per_rep: BTreeMap<&str, VisitFigures> = BTreeMap::new();
    let mut flagged_checkins = Vec::new();
    for v in visits(rows).filter(|v| window.for_rep(Some(&v.rep))) {
        let rep = per_rep.entry(v.rep.as_str()).or_default();
        for f in [&mut total, rep] {
            count_visit(f, v, window, now_ms);
        }
        for j in v.verdicts.iter().filter(|j| window.covers(j.device_time_ms)) {
            if j.status != VerificationStatus::Verified {
                flagged_checkins.push(FlaggedCheckin {
                    visit_id: v.id.clone(),
                    checkin_id: j.checkin_id.clone(),
                    rep: v.rep.clone(),
                    customer_id: v.customer_id.clone(),
                    device_time_ms: j.device_time_ms,
                    status: j.status,
                    codes: j.codes.clone(),
                    review: j.review.clone(),
                });
            }
        }
    }
    for f in std::iter::once(&mut total).chain(per_rep.values_mut()) {
        f.completion_rate = ratio(f.completed, f.planned);
        f.verification_rate = ratio(f.verified, f.checkins_judged);
    }
    flagged_checkins
        .sort_by(|a, b| a.device_time_ms.cmp(&b.device_time_ms).then(a.checkin_id.cmp(&b.checkin_id)));
    VisitReport {
        window: window.clone(),
        total,
        per_rep: per_rep
            .into_iter()
            .map(|(rep, figures)| RepVisitFigures { rep: rep.to_string(), figures })
            .collect(),
        flagged_checkins,
    }
}

fn count_visit(f: &mut VisitFigures, v: &VisitRow, window: &ReportWindow, now_ms: i64) {
    if window.covers(v.planned_start_ms) && v.state != VisitState::Cancelled {
        f.planned += 1;
        match v.state {
            VisitState::Completed => {
                f.completed += 1;
                f.remote_contacts += usize::from(v.remote_contact);
            }
            VisitState::Missed => f.missed += 1,
            VisitState::Planned if v.planned_end_ms <= now_ms => f.missed += 1,
            _ => {}
        }
    }
    for j in v.verdicts.iter().filter(|j| window.covers(j.device_time_ms)) {
        f.checkins_judged += 1;
        match j.status {
            VerificationStatus::Verified => f.verified += 1,
            VerificationStatus::Flagged => f.flagged += 1,
            VerificationStatus::Invalid => f.invalid += 1,
        }
        if j.status != VerificationStatus::Verified {
            match j.review.as_ref().map(|r| r.decision) {
                Some(ReviewDecision::Approved) => f.reviews_approved += 1,
                Some(ReviewDecision::Rejected) => f.reviews_rejected += 1,
                None => f.awaiting_review += 1,
            }
        }
    }
}

/// One stage of the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageFigures {
    pub stage: String,
    pub customers: usize,
    /// Sum of the customers' potential value.
    pub potential_value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerReport {
    #[serde(flatten)]
    pub window: ReportWindow,
    /// Customers the server first stored within the window (prospects and imports).
    pub new_customers: usize,
    /// Customers by effective tier now.
    pub customers_by_tier: PerTier<usize>,
    /// A customers contacted (a completed visit or a remote contact) within their cadence before
    /// the window's end, and the share they are of all A customers.
    pub a_customers_covered: usize,
    pub a_coverage: f64,
    /// The pipeline now, in the order stages first appear in the plan of work.
    pub funnel: Vec<StageFigures>,
    /// Opportunities moved to `won` within the window, by tier.
    pub won_by_tier: PerTier<usize>,
    /// Stage transitions within the window.
    pub stage_changes: usize,
}

/// The stages of the pipeline, in their order; others follow, sorted.
pub const STAGES: [&str; 6] = ["prospecting", "qualification", "proposal", "negotiation", "won", "lost"];

/// New customers, tiers, coverage of A customers within their cadence, the funnel and conversions.
pub fn customer_report(
    rows: &[IndexRow],
    stage_changes: &[StageChange],
    plan: &Plan,
    window: &ReportWindow,
) -> CustomerReport {
    let tier = |c: &CustomerRow| row_tier(c, &plan.thresholds);
    let mine: Vec<&CustomerRow> =
        customers(rows).filter(|c| window.for_rep(c.owner_rep.as_deref())).collect();
    let mut by_tier = PerTier::<usize>::default();
    let mut funnel: BTreeMap<&str, StageFigures> = BTreeMap::new();
    for c in &mine {
        *by_tier.get_mut(tier(c)) += 1;
        let stage = funnel.entry(c.opportunity_stage.as_str()).or_insert_with(|| StageFigures {
            stage: c.opportunity_stage.clone(),
            customers: 0,
            potential_value: 0.0,
        });
        stage.customers += 1;
        stage.potential_value += potential_of(c.potential_value);
    }
    // Last contact per customer before the window's end: completed visits and remote contacts.
    let mut last_contact: BTreeMap<&str, i64> = BTreeMap::new();
    // A visit whose check-ins a manager rejected did not happen as recorded: it is no contact.
    let rejected = |v: &VisitRow| {
        !v.verdicts.is_empty()
            && v.verdicts
                .iter()
                .all(|j| j.review.as_ref().is_some_and(|r| r.decision == ReviewDecision::Rejected))
    };
    for v in visits(rows).filter(|v| v.state == VisitState::Completed && !rejected(v)) {
        let at = v.checkout_ms.or(v.first_checkin_ms).unwrap_or(v.planned_end_ms);
        if at < window.to_ms {
            let e = last_contact.entry(v.customer_id.as_str()).or_insert(at);
            *e = (*e).max(at);
        }
    }
    let a: Vec<&&CustomerRow> = mine.iter().filter(|c| tier(c) == Tier::A).collect();
    let a_days = i64::from(cadence_days(plan, Tier::A));
    let covered = a
        .iter()
        .filter(|c| last_contact.get(c.id.as_str()).is_some_and(|t| window.to_ms - t <= a_days * DAY_MS))
        .count();
    let by_id: BTreeMap<&str, &CustomerRow> = mine.iter().map(|c| (c.id.as_str(), *c)).collect();
    let mut won_by_tier = PerTier::<usize>::default();
    let mut changes = 0;
    for s in stage_changes.iter().filter(|s| window.covers(s.at_ms) && !s.from.is_empty()) {
        let Some(c) = by_id.get(s.customer_id.as_str()) else { continue };
        changes += 1;
        if s.to == "won" {
            *won_by_tier.get_mut(tier(c)) += 1;
        }
    }
    let rank = |s: &str| STAGES.iter().position(|x| *x == s).unwrap_or(STAGES.len());
    let mut funnel: Vec<StageFigures> = funnel.into_values().collect();
    funnel.sort_by(|a, b| rank(&a.stage).cmp(&rank(&b.stage)).then(a.stage.cmp(&b.stage)));
    CustomerReport {
        window: window.clone(),
        new_customers: mine.iter().filter(|c| window.covers(c.first_seen_ms)).count(),
        customers_by_tier: by_tier,
        a_customers_covered: covered,
        a_coverage: ratio(covered, a.len()),
        funnel,
        won_by_tier,
        stage_changes: changes,
    }
}

/// Whether `rep` appears in the index as an owner or a visit's rep.
pub fn knows_rep(rows: &[IndexRow], rep: &str) -> bool {
    rows.iter().any(|r| match r {
        IndexRow::Customer(c) => c.owner_rep.as_deref() == Some(rep),
        IndexRow::Visit(v) => v.rep == rep,
    })
}

fn visits(rows: &[IndexRow]) -> impl Iterator<Item = &VisitRow> {
    rows.iter().filter_map(|r| if let IndexRow::Visit(v) = r { Some(v) } else { None })
}

fn customers(rows: &[IndexRow]) -> impl Iterator<Item = &CustomerRow> {
    rows.iter().filter_map(|r| if let IndexRow::Customer(c) = r { Some(c) } else { None })
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// Where the effort went and what it brought, per tier or territory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Return {
    /// Hours of completed visits (measured, else planned) within the window.
    pub visit_hours: f64,
    /// Potential value of the opportunities won within the window.
    pub won_value: f64,
    /// won_value / visit_hours; 0 without visit time.
    pub value_per_visit_hour: f64,
    pub won: usize,
    pub lost: usize,
    /// won / (won + lost) within the window; 0 when none closed.
    pub win_rate: f64,
    /// won_value / won; 0 when none was won.
    pub average_deal_value: f64,
}

/// A quota and how much of it the won opportunities reach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attainment {
    /// None: the team's quota.
    pub rep: Option<String>,
    pub tier: Tier,
    pub quota: f64,
    /// Potential value of the customers whose opportunity is won now.
    pub won_value: f64,
    /// won_value / quota; 0 without a quota.
    pub attainment: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffortReport {
    #[serde(flatten)]
    pub window: ReportWindow,
    /// Visit minutes per tier within the window.
    pub minutes_by_tier: PerTier<f64>,
    /// Share of the visit time spent on the focus (A and high-potential B customers), against the
    /// plan's target (80%).
    pub focus_share: f64,
    pub focus_target: f64,
    /// Remote contacts of C customers (far ones, served by phone) within the window: they count
    /// toward the cadence without a trip.
    pub remote_c_contacts: usize,
    pub by_tier: PerTier<Return>,
    /// "Which area pays back our effort best", by territory id (customers without one under "").
    pub by_territory: BTreeMap<String, Return>,
    /// Every quota of the plan (the rep's only, for a rep) and its attainment now.
    pub attainment: Vec<Attainment>,
}

/// Time share against the 80/20 plan, return on visit time per tier and territory, quota attainment.
pub fn effort_report(
    rows: &[IndexRow],
    stage_changes: &[StageChange],
    plan: &Plan,
    cfg: &crate::allocation::AllocationConfig,
    window: &ReportWindow,
) -> EffortReport {
    let score = |c: &CustomerRow| score_of(c.potential_value, c.close_probability);
    let tier = |c: &CustomerRow| row_tier(c, &plan.thresholds);
    let all: Vec<&CustomerRow> = customers(rows).collect();
    let focus = crate::allocation::focus_of(all.iter().map(|c| (c.id.as_str(), tier(c), score(c))), cfg);
    let by_id: BTreeMap<&str, &CustomerRow> = all.iter().map(|c| (c.id.as_str(), *c)).collect();
    let value = |c: &CustomerRow| potential_of(c.potential_value);

    let mut minutes = PerTier::<f64>::default();
    let (mut focus_minutes, mut total_minutes, mut remote_c) = (0.0, 0.0, 0);
    let mut by_tier = PerTier::<Return>::default();
    let mut by_territory: BTreeMap<String, Return> = BTreeMap::new();
    for v in visits(rows).filter(|v| v.state == VisitState::Completed && window.for_rep(Some(&v.rep))) {
        let at = v.checkout_ms.or(v.first_checkin_ms).unwrap_or(v.planned_end_ms);
        if !window.covers(at) {
            continue;
        }
        let Some(c) = by_id.get(v.customer_id.as_str()) else { continue };
        let t = tier(c);
        if v.remote_contact && t == Tier::C {
            remote_c += 1;
        }
        let m = crate::allocation::duration_minutes(
            v.first_checkin_ms,
            v.checkout_ms,
            (v.planned_start_ms, v.planned_end_ms),
            Some(t),
            cfg,
        );
        *minutes.get_mut(t) += m;
        total_minutes += m;
        if focus.contains(&c.id) {
            focus_minutes += m;
        }
        by_tier.get_mut(t).visit_hours += m / 60.0;
        by_territory.entry(c.territory.clone().unwrap_or_default()).or_default().visit_hours += m / 60.0;
    }
    // Moves only: a customer created at a stage (an import) was not won in the window.
    for s in stage_changes.iter().filter(|s| window.covers(s.at_ms) && !s.from.is_empty() && s.from != s.to) {
        let Some(c) = by_id.get(s.customer_id.as_str()) else { continue };
        if !window.for_rep(s.rep.as_deref()) {
            continue;
        }
        for r in [
            by_tier.get_mut(tier(c)),
            by_territory.entry(c.territory.clone().unwrap_or_default()).or_default(),
        ] {
            match s.to.as_str() {
                "won" => {
                    r.won += 1;
                    r.won_value += value(c);
                }
                "lost" => r.lost += 1,
                _ => {}
            }
        }
    }
    for r in [&mut by_tier.a, &mut by_tier.b, &mut by_tier.c].into_iter().chain(by_territory.values_mut()) {
        r.value_per_visit_hour = if r.visit_hours > 0.0 { r.won_value / r.visit_hours } else { 0.0 };
        r.win_rate = ratio(r.won, r.won + r.lost);
        r.average_deal_value = if r.won > 0 { r.won_value / r.won as f64 } else { 0.0 };
    }
    let attainment = plan
        .quotas
        .iter()
        .filter(|q| window.rep.is_none() || q.rep == window.rep)
        .map(|q| {
            let won_value: f64 = all
                .iter()
                .filter(|c| c.opportunity_stage == "won" && tier(c) == q.tier)
                .filter(|c| q.rep.is_none() || c.owner_rep == q.rep)
                .map(|c| value(c))
                .sum();
            let quota = if q.amount.is_finite() { q.amount.max(0.0) } else { 0.0 };
            Attainment {
                rep: q.rep.clone(),
                tier: q.tier,
                quota,
                won_value,
                attainment: if quota > 0.0 { won_value / quota } else { 0.0 },
            }
        })
        .collect();
    EffortReport {
        window: window.clone(),
        minutes_by_tier: minutes,
        focus_share: if total_minutes > 0.0 { focus_minutes / total_minutes } else { 0.0 },
        focus_target: plan.focus_share,
        remote_c_contacts: remote_c,
        by_tier,
        by_territory,
        attainment,
    }
}

/// Where a visit stands on the week calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalendarStatus {
    /// Still ahead (or under way without a check-in yet).
    Planned,
    /// Checked in, not checked out.
    CheckedIn,
    /// Completed on site.
    Done,
    /// Completed as a remote contact.
    Remote,
    /// Marked missed, or over without a check-in — the rule of [`VisitFigures::missed`].
    Missed,
    Cancelled,
}

/// One visit on a rep's calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalendarEntry {
    pub visit_id: String,
    pub customer_id: String,
    /// The customer's name, when the index knows the customer.
    pub customer_name: Option<String>,
    pub tier: Option<Tier>,
    pub rep: String,
    pub planned_start_ms: i64,
    pub planned_end_ms: i64,
    pub status: CalendarStatus,
    /// A check-in of the visit the server did not verify.
    pub flagged: bool,
}

/// The visits planned to start in a window, by rep then time: what a week calendar shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calendar {
    #[serde(flatten)]
    pub window: ReportWindow,
    pub entries: Vec<CalendarEntry>,
    /// More visits than `limit` fell in the window: the first `limit` are listed.
    pub truncated: bool,
}

/// The calendar of a window: every visit planned to start in it (at most `limit`), with the
/// status the visit report counts it under, its customer's name and effective tier.
pub fn calendar(
    rows: &[IndexRow],
    plan: Option<&Plan>,
    window: &ReportWindow,
    now_ms: i64,
    limit: usize,
) -> Calendar {
    let by_id: BTreeMap<&str, &CustomerRow> = customers(rows).map(|c| (c.id.as_str(), c)).collect();
    let mut entries: Vec<CalendarEntry> = visits(rows)
        .filter(|v| window.for_rep(Some(&v.rep)) && window.covers(v.planned_start_ms))
        .map(|v| {
            let customer = by_id.get(v.customer_id.as_str());
            let status = match v.state {
                VisitState::Completed if v.remote_contact => CalendarStatus::Remote,
                VisitState::Completed => CalendarStatus::Done,
                VisitState::CheckedIn => CalendarStatus::CheckedIn,
                VisitState::Cancelled => CalendarStatus::Cancelled,
                VisitState::Missed => CalendarStatus::Missed,
                VisitState::Planned if v.planned_end_ms <= now_ms => CalendarStatus::Missed,
                VisitState::Planned => CalendarStatus::Planned,
            };
            CalendarEntry {
                visit_id: v.id.clone(),
                customer_id: v.customer_id.clone(),
                customer_name: customer.map(|c| c.name.clone()),
                tier: customer.and_then(|c| match plan {
                    Some(p) => Some(row_tier(c, &p.thresholds)),
                    None => c.tier,
                }),
                rep: v.rep.clone(),
                planned_start_ms: v.planned_start_ms,
                planned_end_ms: v.planned_end_ms,
                status,
                flagged: v.verdicts.iter().any(|j| j.status != VerificationStatus::Verified),
            }
        })
        .collect();
    entries.sort_by(|a, b| {
        (a.rep.as_str(), a.planned_start_ms, a.visit_id.as_str()).cmp(&(
            b.rep.as_str(),
            b.planned_start_ms,
            b.visit_id.as_str(),
        ))
    });
    let truncated = entries.len() > limit;
    entries.truncate(limit);
    Calendar { window: window.clone(), entries, truncated }
}

#[cfg(test)]
mod calendar_tests {
    use fieldsync_core::docs::{Document, Visit};

    use super::*;

    #[test]
    fn the_calendar_gives_each_visit_the_status_the_visit_report_counts() {
        let mut done = Visit::planned("v-done", "c-1", "alice", 1_000, 2_000);
        done.state = VisitState::Completed;
        let mut remote = Visit::planned("v-remote", "c-1", "alice", 3_000, 4_000);
        remote.state = VisitState::Completed;
        remote.checkout = Some(fieldsync_core::docs::Checkout {
            device_time_ms: 3_500,
            outcome: "remote call".into(),
            next_step: String::new(),
        });
        let over = Visit::planned("v-over", "c-1", "alice", 5_000, 6_000);
        let ahead = Visit::planned("v-ahead", "c-1", "alice", 8_000, 9_000);
        let other = Visit::planned("v-bruno", "c-1", "bruno", 1_500, 2_000);
        let outside = Visit::planned("v-later", "c-1", "alice", 20_000, 21_000);
        let rows: Vec<IndexRow> = [done, remote, over, ahead, other, outside]
            .into_iter()
            .filter_map(|v| IndexRow::of(&Document::Visit(v), 0))
            .collect();
        let window = ReportWindow { from_ms: 0, to_ms: 10_000, rep: Some("alice".into()) };
        let cal = calendar(&rows, None, &window, 7_000, 100);
        let got: Vec<(&str, CalendarStatus)> =
            cal.entries.iter().map(|e| (e.visit_id.as_str(), e.status)).collect();
        assert_eq!(
            got,
            [
                ("v-done", CalendarStatus::Done),
                ("v-remote", CalendarStatus::Remote),
                ("v-over", CalendarStatus::Missed),
                ("v-ahead", CalendarStatus::Planned),
            ]
        );
        assert!(!cal.truncated);
        // The figures agree with the visit report's over the same window.
        let report = visit_report(&rows, &window, 7_000);
        let count = |s: CalendarStatus| cal.entries.iter().filter(|e| e.status == s).count();
        assert_eq!(report.total.missed, count(CalendarStatus::Missed));
        assert_eq!(report.total.remote_contacts, count(CalendarStatus::Remote));
        let limited = calendar(&rows, None, &window, 7_000, 2);
        assert_eq!((limited.entries.len(), limited.truncated), (2, true));
    }
}
