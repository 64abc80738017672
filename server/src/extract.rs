//! What a handler takes: the caller ([`Caller`], [`Manager`]) and the request's parts
//! ([`ApiJson`], [`ApiQuery`], [`ApiPath`], [`ApiBytes`]), each refusing with an [`ApiError`] so
//! that every refusal has the one JSON shape.
//!
//! The caller is extracted from the request's head, before its body: a request whose token does
//! not verify, or a rep calling a manager's endpoint, is refused without a byte of its body read.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use fieldsync_core::Principal;

use crate::error::ApiError;
use crate::http::Verified;
use crate::state::AppState;

/// Who is calling: the principal the request's bearer token names.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

/// A caller who sees the whole team (a manager or an admin); anyone else gets 403.
#[derive(Debug, Clone)]
pub struct Manager(pub Principal);

/// A caller who may post leads: an integration (or an admin); anyone else gets 403.
#[derive(Debug, Clone)]
pub struct LeadSource(pub Principal);

/// The principal the request's bearer token names, whatever its role.
fn verified(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    if let Some(Verified(who)) = parts.extensions.get::<Verified>() {
        return Ok(who.clone());
    }
    let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    Ok(state.auth.verify_authorization_header(header)?.into_principal())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    /// Every route but the lead intake takes a `Caller`, so an integration's token opens none of
    /// them.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let who = verified(parts, state)?;
        if who.role == fieldsync_core::Role::Integration {
            return Err(ApiError::forbidden("an integration token may only post leads (POST /v1/leads)"));
        }
        Ok(Caller(who))
    }
}

impl FromRequestParts<AppState> for LeadSource {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let who = verified(parts, state)?;
        if !matches!(who.role, fieldsync_core::Role::Integration | fieldsync_core::Role::Admin) {
            return Err(ApiError::forbidden("leads come from an integration's token"));
        }
        // Before the body is read: a sender over its rate costs nothing more.
        let limits = &state.limits;
        state
            .leads
            .admit(&who.team, &who.user, state.clock.now_ms(), limits.leads_per_minute, limits.lead_burst)
            .map_err(|wait_s| ApiError {
                retry_after: Some(wait_s),
                ..ApiError::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    format!(
                        "at most {} leads a minute from one sender; wait {wait_s} s",
                        limits.leads_per_minute
                    ),
                )
            })?;
        Ok(LeadSource(who))
    }
}

impl FromRequestParts<AppState> for Manager {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Caller(who) = Caller::from_request_parts(parts, state).await?;
        if who.role.sees_whole_team() {
            Ok(Manager(who))
        } else {
            Err(ApiError::forbidden("this is for managers and admins"))
        }
    }
}

/// The rep a request is narrowed to: a rep's own (naming another is 403), the one a manager names,
/// or none (the whole team). The one rule every route follows.
pub fn rep_scope(who: &Principal, rep: Option<String>) -> Result<Option<String>, ApiError> {
    match (who.role, rep) {
        (fieldsync_core::Role::Rep, Some(r)) if r != who.user => {
            Err(ApiError::forbidden("a rep sees and plans for themself only"))
        }
        (fieldsync_core::Role::Rep, _) => Ok(Some(who.user.clone())),
        (fieldsync_core::Role::Integration, _) => Err(ApiError::forbidden("an integration reads nothing")),
        (fieldsync_core::Role::Manager | fieldsync_core::Role::Admin, rep) => Ok(rep),
    }
}

/// A JSON body.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// The query string.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// The path parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// The raw body.
#[derive(Debug)]
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiBytes(Bytes::from_request(req, state).await?))
    }
}
