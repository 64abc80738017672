//! `POST /v1/sync`: a device's push and pull in one round trip, in the framed CBOR of
//! [`fieldsync_core::protocol`]. Decoding, deciding and encoding all run on a blocking thread.

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use fieldsync_core::protocol::{CONTENT_TYPE, SyncRequest};

use crate::error::{ApiError, scrub_hex};
use crate::extract::{ApiBytes, Caller};
use crate::state::{AppState, blocking};

#[utoipa::path(post, path = "/v1/sync", tag = "sync", request_body(content = Vec<u8>, content_type = "application/x-fieldsync", description = "a framed, versioned CBOR sync request (fieldsync_core::protocol)"), responses((status = 200, description = "the framed CBOR sync response", content_type = "application/x-fieldsync", body = Vec<u8>), crate::routes::openapi::Errors))]
pub async fn sync(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let now = state.clock.now_ms();
    let notify = state.clone();
    let encoded = blocking(move || -> Result<_, ApiError> {
        let req = SyncRequest::decode(&body)?;
        let mut resp = state.engine.handle(&who, &req, now)?;
        // Reasons are for people: no hashes in them (the hashes are in their own field).
        for r in &mut resp.rejected {
            r.reason = scrub_hex(&r.reason);
        }
        crate::metrics::record_sync(&req, &resp);
        tracing::info!(
            team = %who.team, user = %who.user, device = %req.device_id,
            pushed = req.push.len(), accepted = resp.accepted.len(), rejected = resp.rejected.len(),
            pulled_changes = resp.changes.len(), pulled_docs = resp.docs.len(), more = resp.more,
            "sync"
        );
        Ok(resp.encode())
    })
    .await?;
    notify.changed();
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], encoded).into_response())
}
