//! What a rep does on the phone, as operations on a [`Replica`]: plan, reschedule and cancel
//! visits, check in (verified on the spot by the same policy as the server's), take notes, check
//! out, move an opportunity forward, hand a customer over, record a prospect, find customers nearby.
//!
//! Every operation checks its input, runs the rules through [`Replica::update`] /
//! [`Replica::create`] and returns the typed document as written. Ids and time are passed in, so
//! the device library stays a thin shell (it makes the ids and reads the clock) and tests are
//! deterministic.
//!
//! ```
//! use fieldsync_core::{client::Replica, docs::*, Principal, Role};
//! use automerge::ActorId;
//! let alice = Principal { team: "acme".into(), user: "alice".into(), role: Role::Rep };
//! let mut phone = Replica::new("phone-1", alice, ActorId::from(b"phone-1"));
//! // Without the customer on the phone there is nothing to plan.
//! assert!(phone.plan_visit("visit-1", "cust-1", 0, 3_600_000, 0).is_err());
//! ```

use crate::checkin::{self, CheckinHistory, CustomerSite};
use crate::client::{ClientError, Replica, Result};
use crate::docs::{
    Checkin, CheckinVerification, Checkout, Customer, DocKind, Document, GeoPoint, Tier, Visit, VisitState,
    on_customer, on_visit,
};
use crate::geo::{self, CheckinFix, LatLon, VerifyConfig};
use crate::rules::Role;

fn invalid(field: &str, reason: impl Into<String>) -> ClientError {
    ClientError::InvalidInput { field: field.into(), reason: reason.into() }
}

impl Replica {
    /// A visit held on this device.
    pub fn visit(&self, id: &str) -> Result<Visit> {
        match self.get(id) {
            Some(Document::Visit(v)) => Ok(v),
            _ => Err(crate::client::not_found(id)),
        }
    }

    /// A customer held on this device.
    pub fn customer(&self, id: &str) -> Result<Customer> {
        match self.get(id) {
            Some(Document::Customer(c)) => Ok(c),
            _ => Err(crate::client::not_found(id)),
        }
    }

    fn of_kind(&self, kind: DocKind) -> impl Iterator<Item = Document> + '_ {
        self.doc_ids()
            .filter(move |id| self.local(id).is_some_and(|d| d.kind() == kind))
            .filter_map(|id| self.get(id))
    }

    /// Every visit held on this device.
    pub fn visits(&self) -> Vec<Visit> {
        self.of_kind(DocKind::Visit)
            .filter_map(|d| match d {
                Document::Visit(v) => Some(v),
                _ => None,
            })
            .collect()
    }

    /// Visits planned to start in `[from_ms, to_ms)`, in time order.
    pub fn visits_between(&self, from_ms: i64, to_ms: i64) -> Vec<Visit> {
        let mut v: Vec<Visit> = self
            .visits()
            .into_iter()
            .filter(|v| v.planned_start_ms >= from_ms && v.planned_start_ms < to_ms)
            .collect();
        v.sort_by(|a, b| a.planned_start_ms.cmp(&b.planned_start_ms).then_with(|| a.id.cmp(&b.id)));
        v
    }

    fn edit_visit(&mut self, id: &str, now_ms: i64, edit: impl FnOnce(&mut Visit)) -> Result<Visit> {
        self.visit(id)?;
        match self.update(id, now_ms, on_visit(edit))? {
            Document::Visit(v) => Ok(v),
            _ => Err(invalid("visit_id", "not a visit")),
        }
    }

    fn edit_customer(&mut self, id: &str, now_ms: i64, edit: impl FnOnce(&mut Customer)) -> Result<Customer> {
        self.customer(id)?;
        match self.update(id, now_ms, on_customer(edit))? {
            Document::Customer(c) => Ok(c),
            _ => Err(invalid("customer_id", "not a customer")),
        }
    }

    /// Plans a visit at a customer held on this device: the signed-in rep's own, or, for a manager or
    /// an admin, one for the rep who owns the customer (a manager does not visit in their own name).
    pub fn plan_visit(
        &mut self,
        visit_id: &str,
        customer_id: &str,
        start_ms: i64,
        end_ms: i64,
        now_ms: i64,
    ) -> Result<Visit> {
        if end_ms < start_ms {
            return Err(invalid("end_ms", "ends before it starts"));
        }
        let customer = self.customer(customer_id)?;
        let rep = match (self.principal().role, customer.owner_rep) {
            (Role::Rep, _) => self.principal().user.clone(),
            (_, Some(owner)) => owner,
            (_, None) => {
                return Err(invalid("customer", "the customer has no owner rep to plan the visit for"));
            }
        };
        // Planned for `rep`, written by the signed-in user.
        let v = Visit {
            created_by: self.principal().user.clone(),
            ..Visit::planned(visit_id, customer_id, &rep, start_ms, end_ms)
        };
        self.create(Document::Visit(v.clone()), now_ms)?;
        Ok(v)
    }

    pub fn reschedule_visit(&mut self, id: &str, start_ms: i64, end_ms: i64, now_ms: i64) -> Result<Visit> {
        if end_ms < start_ms {
            return Err(invalid("end_ms", "ends before it starts"));
        }
        self.edit_visit(id, now_ms, |v| {
            v.planned_start_ms = start_ms;
            v.planned_end_ms = end_ms;
        })
    }

    pub fn cancel_visit(&mut self, id: &str, now_ms: i64) -> Result<Visit> {
        self.edit_visit(id, now_ms, |v| v.state = VisitState::Cancelled)
    }

    /// Checks in at the visit's customer and judges the fix on the spot, by the same policy as the
    /// server ([`checkin::judge`]: neighbours in time from this device's visits, the device clock as
    /// the receipt time). The server's own verdict arrives with the next sync.
    pub fn check_in(
        &mut self,
        visit_id: &str,
        checkin_id: &str,
        fix: CheckinFix,
        now_ms: i64,
        config: &VerifyConfig,
    ) -> Result<(Visit, CheckinVerification)> {
        let point = fix.point.validate().map_err(|e| invalid("fix", e.to_string()))?;
        if !(fix.accuracy_m.is_finite() && fix.accuracy_m >= 0.0) {
            return Err(invalid("fix.accuracy_m", "must be a finite number >= 0"));
        }
        let visit = self.visit(visit_id)?;
        let customer = self.customer(&visit.customer_id)?;
        let site = CustomerSite::of(&customer)
            .ok_or_else(|| invalid("customer", "the customer's location is not usable"))?;
        let visits = self.visits();
        let refs: Vec<&Visit> = visits.iter().collect();
        let me = self.principal().user.clone();
        let site_of = |id: &str| self.customer(id).ok().and_then(|c| CustomerSite::of(&c));
        let history = CheckinHistory::on_device(&me, &refs, site_of, now_ms, config);
        let judged = checkin::judge(&history, &fix, Some(&site), now_ms, config).verification;
        // The same record the server writes into the visit: one shape for a verdict everywhere.
        let verification = CheckinVerification::from_verification(&judged, now_ms);
        let checkin = Checkin {
            mock_location: fix.mock_location,
            ..Checkin::new(checkin_id, point.lat, point.lon, fix.accuracy_m, fix.device_time_ms)
        };
        let visit = self.edit_visit(visit_id, now_ms, |v| {
            v.checkins.push(checkin);
            if v.state == VisitState::Planned {
                v.state = VisitState::CheckedIn;
            }
        })?;
        Ok((visit, verification))
    }

    /// Replaces the visit's notes; the change is diffed into the shared text so that concurrent
    /// edits by others merge.
    pub fn set_visit_notes(&mut self, id: &str, notes: &str, now_ms: i64) -> Result<Visit> {
        self.edit_visit(id, now_ms, |v| crate::docs::set_text(&mut v.notes, notes))
    }

    pub fn check_out(
        &mut self,
        id: &str,
        outcome: &str,
        next_step: &str,
        device_time_ms: i64,
        now_ms: i64,
    ) -> Result<Visit> {
        if outcome.trim().is_empty() {
            return Err(invalid("outcome", "must not be empty"));
        }
        self.edit_visit(id, now_ms, |v| {
            v.checkout = Some(Checkout {
                device_time_ms,
                outcome: outcome.to_string(),
                next_step: next_step.to_string(),
            });
            v.state = VisitState::Completed;
        })
    }

    /// Updates a customer's follow-up status and/or opportunity stage.
    pub fn update_customer_status(
        &mut self,
        id: &str,
        follow_up_status: Option<String>,
        opportunity_stage: Option<String>,
        now_ms: i64,
    ) -> Result<Customer> {
        self.edit_customer(id, now_ms, |c| {
            if let Some(s) = follow_up_status {
                c.follow_up_status = s;
            }
            if let Some(s) = opportunity_stage {
                c.opportunity_stage = s;
            }
        })
    }

    pub fn set_customer_notes(&mut self, id: &str, notes: &str, now_ms: i64) -> Result<Customer> {
        self.edit_customer(id, now_ms, |c| crate::docs::set_text(&mut c.notes, notes))
    }

    /// A manager gives a customer to another rep (and, when given, moves it to another territory);
    /// on sync the new owner receives it and reps who lose it have it removed.
    pub fn reassign_customer(
        &mut self,
        id: &str,
        new_owner: &str,
        territory: Option<String>,
        now_ms: i64,
    ) -> Result<Customer> {
        crate::docs::validate_id("new_owner", new_owner)?;
        if let Some(t) = &territory {
            crate::docs::validate_id("territory", t)?;
        }
        self.edit_customer(id, now_ms, |c| {
            c.owner_rep = Some(new_owner.to_string());
            if territory.is_some() {
                c.territory = territory;
            }
        })
    }

    /// A prospect found on the road, owned by the signed-in rep.
    pub fn create_prospect(
        &mut self,
        id: &str,
        name: &str,
        at: LatLon,
        address: &str,
        now_ms: i64,
    ) -> Result<Customer> {
        if name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        let at = at.validate().map_err(|e| invalid("location", e.to_string()))?;
        let me = &self.principal().user;
        let c = Customer {
            address: address.to_string(),
            close_probability: 0.1,
            owner_rep: Some(me.clone()),
            tags: vec!["prospect".into()],
            ..Customer::new(id, name, GeoPoint::wgs84(at.lat, at.lon), me)
        };
        self.create(Document::Customer(c.clone()), now_ms)?;
        Ok(c)
    }

    /// Customers within `radius_m` of `here`, nearest first, with their distance, optionally
    /// filtered by tier and follow-up status (empty filters match everything).
    pub fn customers_near(
        &self,
        here: LatLon,
        radius_m: f64,
        tiers: &[Tier],
        statuses: &[String],
    ) -> Result<Vec<(Customer, f64)>> {
        let here = here.validate().map_err(|e| invalid("location", e.to_string()))?;
        if !(radius_m.is_finite() && radius_m >= 0.0) {
            return Err(invalid("radius_m", "must be a finite number >= 0"));
        }
        let mut out: Vec<(Customer, f64)> = self
            .of_kind(DocKind::Customer)
            .filter_map(|d| match d {
                Document::Customer(c) => Some(c),
                _ => None,
            })
            .filter(|c| tiers.is_empty() || c.tier.is_some_and(|t| tiers.contains(&t)))
            .filter(|c| statuses.is_empty() || statuses.contains(&c.follow_up_status))
            .filter_map(|c| {
                let (p, datum) = c.location.parsed("location").ok()?;
                let d = geo::distance_m(here, geo::to_wgs84(p, datum));
                (d <= radius_m).then_some((c, d))
            })
            .collect();
        out.sort_by(|a, b| a.1.total_cmp(&b.1));
        Ok(out)
    }
}
