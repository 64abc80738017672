//! The HTTP side of sync: one POST of a framed request, and the server's answer mapped to what the
//! app does about it.

use fieldsync_core::Principal;
use fieldsync_core::Role;
use fieldsync_core::protocol::CONTENT_TYPE;

use crate::{FieldsyncError, Result, invalid};

/// The claims the library reads from a token, unverified: the server verifies; the device only needs
/// to know whose store this is and which rules to apply locally.
pub(crate) fn principal_from_token(token: &str) -> Result<Principal> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).ok_or_else(|| invalid("token", "not a JWT"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| invalid("token", "payload is not base64url"))?;
    #[derive(serde::Deserialize)]
    struct Claims {
        sub: String,
        team: String,
        role: Role,
    }
    let c: Claims = serde_json::from_slice(&bytes).map_err(|e| invalid("token", format!("claims: {e}")))?;
    Ok(Principal { team: c.team, user: c.sub, role: c.role })
}

/// Posts one sync request; the response body, or the error the app acts on.
pub(crate) fn post_sync(
    http: &ureq::Agent,
    server_url: &str,
    token: Option<String>,
    body: Vec<u8>,
) -> Result<Vec<u8>> {
    let token =
        token.ok_or_else(|| FieldsyncError::Unauthorized { message: "no token: call set_token".into() })?;
    let url = format!("{}/v1/sync", server_url.trim_end_matches('/'));
    let mut resp = http
        .post(&url)
        .header("authorization", &format!("Bearer {token}"))
        .header("content-type", CONTENT_TYPE)
        .send(&body[..])
        .map_err(|e| FieldsyncError::Offline { message: e.to_string() })?;
    let status = resp.status().as_u16();
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(512 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| FieldsyncError::Offline { message: e.to_string() })?;
    if status == 200 {
        return Ok(bytes);
    }
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let message = body["message"].as_str().unwrap_or("no message").to_string();
    Err(match status {
        401 => FieldsyncError::Unauthorized { message },
        // This phone was revoked (lost or stolen): signing in again here will not help.
        403 if body["error"] == "device_revoked" => FieldsyncError::Unauthorized { message },
        404 | 409 | 422 => FieldsyncError::Rejected {
            doc: body["doc_id"].as_str().unwrap_or_default().to_string(),
            reason: message,
        },
        400 | 403 | 413 => FieldsyncError::InvalidInput { field: "request".into(), reason: message },
        // The server is busy, at one of its limits, or its disk is full (507, nothing written): like
        // being offline, the outbox stays and the next sync tries again.
        408 | 429 | 502..=504 | 507 => FieldsyncError::Offline { message },
        _ => FieldsyncError::Internal { message: format!("HTTP {status}: {message}") },
    })
}
