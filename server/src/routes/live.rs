//! `GET /v1/live`: the team's accepted changes as Server-Sent Events, for an open dashboard. Each
//! event's id is its feed sequence, so a client that reconnects with `Last-Event-ID` (or
//! `?after=`) resumes exactly where it stopped; scoped by role like sync (a rep hears only about
//! documents in their scope). A notification after each write wakes the streams; the feed is
//! always read from the last sequence sent, so a missed wake-up only delays an event.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use fieldsync_core::index::IndexRow;
use fieldsync_core::storage::{FeedBody, FeedEntry, Storage as _};
use fieldsync_core::{Principal, Role};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{ApiQuery, Caller};
use crate::state::{AppState, blocking};

/// Feed entries read per round.
const PAGE: usize = 200;

/// How long a quiet stream waits for a wake-up before looking at the feed again.
const IDLE: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveQuery {
    /// Resume after this feed sequence (the `Last-Event-ID` header wins); default: from now.
    after: Option<u64>,
}

struct Cursor {
    state: AppState,
    who: Principal,
    after: u64,
    pending: VecDeque<Event>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

#[utoipa::path(get, path = "/v1/live", tag = "live", params(LiveQuery, ("Last-Event-ID" = Option<u64>, Header, description = "resume after this feed sequence")), responses((status = 200, description = "Server-Sent Events: `event: change`, `id:` the feed sequence, data {seq, doc_id, kind, what, by, rep, line}", content_type = "text/event-stream"), crate::routes::openapi::Errors))]
pub async fn live(
    State(state): State<AppState>,
    Caller(who): Caller,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<LiveQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID is the sequence of an event"))?,
        ),
        None => q.after,
    };
    let slot = state.live_streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::busy("the server is serving as many live feeds as it can", state.limits.retry_after_s)
    })?;
    let (engine, team) = (state.engine.clone(), who.team.clone());
    let head = blocking(move || engine.storage().feed_head(&team)).await?;
    let after = match resume {
        Some(a) if a > head => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "that event has not happened yet",
            ));
        }
        Some(a) => a,
        None => head,
    };
    let cursor = Cursor { state, who, after, pending: VecDeque::new(), _slot: slot };
    let events = stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(event) = c.pending.pop_front() {
                return Some((Ok(event), c));
            }
            let notified = c.state.feed_changed.notified();
            let (engine, team, who, after) =
                (c.state.engine.clone(), c.who.team.clone(), c.who.clone(), c.after);
            let read = blocking(move || -> Result<_, ApiError> {
                let horizon = engine.storage().feed_horizon(&team)?;
                let entries = engine.storage().read_feed(&team, after, PAGE)?;
                let mut events = Vec::new();
                if after < horizon {
                    events.push((
                        horizon,
                        Event::default().event("reset").data("older events were trimmed: reload"),
                    ));
                }
                for e in &entries {
                    if let Some(ev) = event_for(&engine, &who, e)? {
                        events.push((e.seq, ev));
                    }
                }
                Ok((entries.last().map(|e| e.seq), events))
            })
            .await;
            match read {
                Ok((last, events)) => {
                    if let Some(last) = last {
                        c.after = last;
                    }
                    c.pending.extend(events.into_iter().map(|(_, e)| e));
                    if last.is_some() {
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = ?e, "live feed read failed"),
            }
            let _ = tokio::time::timeout(IDLE, notified).await;
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The event a feed entry makes for `who`, if they may know of it.
fn event_for<S: fieldsync_core::storage::Storage>(
    engine: &fieldsync_core::engine::SyncEngine<S>,
    who: &Principal,
    e: &FeedEntry,
) -> Result<Option<Event>, ApiError> {
    let visible = who.role != Role::Rep || e.audience.includes(&who.user);
    if !visible {
        return Ok(None);
    }
    let what = match &e.body {
        FeedBody::Changes(_) => "changed",
        FeedBody::Grant { .. } => "granted",
        FeedBody::Revoke { .. } => "revoked",
    };
    let row = engine.storage().index_row(&who.team, &e.doc_id)?;
    let (rep, line) = match &row {
        Some(IndexRow::Visit(v)) => {
            let state = serde_json::to_value(v.state)
                .ok()
                .and_then(|s| s.as_str().map(str::to_owned))
                .unwrap_or_default();
            (Some(v.rep.clone()), format!("visit {} of {} at {}: {state}", v.id, v.rep, v.customer_id))
        }
        Some(IndexRow::Customer(c)) => (
            c.owner_rep.clone(),
            format!(
                "customer {} ({}): {}, follow-up {}, owner {}",
                c.id,
                c.name,
                c.opportunity_stage,
                c.follow_up_status,
                c.owner_rep.as_deref().unwrap_or("none")
            ),
        ),
        None => (None, format!("{} {} {what}", e.kind, e.doc_id)),
    };
    let origin = if e.origin == fieldsync_core::storage::SERVER_ORIGIN { "server" } else { "device" };
    let data = json!({
        "seq": e.seq, "doc_id": e.doc_id, "kind": e.kind, "what": what, "by": origin, "rep": rep, "line": line,
    });
    Ok(Some(Event::default().id(e.seq.to_string()).event("change").data(data.to_string())))
}
