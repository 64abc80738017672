//! `POST /v1/devices/revoke`: a manager or admin revokes a device of the team (a lost or stolen
//! phone). Its syncs are refused from then on with 403 `device_revoked`, before anything it sends
//! is looked at; the rep's other devices sync as before. `fieldsync revoke-device` does the same on
//! a stopped server's data directory.

use axum::{Json, extract::State};
use fieldsync_core::storage::{DeviceRevocation, Storage as _};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{ApiJson, Manager};
use crate::state::{AppState, blocking};

/// Longest reason kept with a revocation, in characters.
pub const MAX_REASON_CHARS: usize = 500;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RevokeRequest {
    /// The device id the phone syncs with (`device_id` in its sync requests).
    device_id: String,
    #[serde(default)]
    reason: String,
}

#[utoipa::path(post, path = "/v1/devices/revoke", tag = "devices", request_body(content = RevokeRequest, content_type = "application/json"), responses((status = 200, description = "{device_id, by, at_ms, reason}: the revocation as kept (the first one, if the device was revoked already)", content_type = "application/json"), crate::routes::openapi::Errors))]
pub async fn revoke(
    State(state): State<AppState>,
    Manager(who): Manager,
    ApiJson(r): ApiJson<RevokeRequest>,
) -> Result<Json<Value>, ApiError> {
    fieldsync_core::docs::validate_id("device_id", &r.device_id).map_err(ApiError::invalid)?;
    if r.reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::invalid(format!("reason: at most {MAX_REASON_CHARS} characters")));
    }
    let revocation = DeviceRevocation {
        device_id: r.device_id,
        by: who.user.clone(),
        at_ms: state.clock.now_ms(),
        reason: r.reason,
    };
    let engine = state.engine.clone();
    let team = who.team.clone();
    let kept = blocking(move || engine.storage().revoke_device(&team, &revocation)).await?;
    tracing::warn!(team = %who.team, device = %kept.device_id, by = %kept.by, "device revoked");
    Ok(Json(
        json!({ "device_id": kept.device_id, "by": kept.by, "at_ms": kept.at_ms, "reason": kept.reason }),
    ))
}
