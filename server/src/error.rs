//! The one error type of the HTTP layer, [`ApiError`], and every conversion into it: from the
//! core's errors, from authentication, from planning's bounds and from axum's extractor
//! rejections (the extractors of [`crate::extract`] answer with it).

use axum::{
    Json,
    extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use fieldsync_core::protocol::{DOCUMENT_DAMAGED, WireError};
use fieldsync_core::{engine::SyncError, storage::StorageError};
use fieldsync_planning::{OutOfBounds, areas::AreaError, route::RouteError};
use serde_json::json;

use crate::auth::AuthError;
use crate::request_id::{current_request_id, new_request_id};

/// A status and a JSON body `{"error": CODE, "message": TEXT, "request_id": ID}`.
///
/// For 5xx answers `message` is the detail for the log only: the client is told that something
/// went wrong and which request id to quote, never what (storage messages, hashes and paths stay
/// on the server). 4xx messages are for the client, with long hexadecimal runs (hashes) removed.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The document at fault, when there is one (added to the body as `doc_id`).
    pub doc_id: Option<String>,
    /// Seconds for a `Retry-After` header (429s and 503s).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), doc_id: None, retry_after: None }
    }

    /// A server error: `detail` goes to the log, the client gets a generic message.
    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    /// 503 `overloaded` with `Retry-After`: the server is at one of its limits.
    pub fn busy(message: impl Into<String>, retry_after_s: u32) -> Self {
        ApiError {
            retry_after: Some(retry_after_s),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: also the answer for what exists but is out of the caller's scope.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 400 `bad_request`: the request cannot be read (syntax, types, a malformed id).
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400 `invalid_request`: a query parameter is out of its bound.
    pub fn invalid_query(message: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message.to_string())
    }

    /// 422 `invalid_request`: a body reads well but asks for something out of bounds.
    pub fn invalid(message: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message.to_string())
    }

    /// 404 `unknown_rep`: a rep named in a request does not work in the team.
    pub fn unknown_rep(rep: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "unknown_rep", format!("no rep named {rep:?} in this team"))
    }

    /// 409 `no_plan`: planning and reports need the team's plan document.
    pub fn no_plan() -> Self {
        ApiError::new(StatusCode::CONFLICT, "no_plan", "the team has no plan document yet")
    }

    /// What a 503 may tell the client: only our own words, never the detail.
    fn public_unavailable_reason(&self) -> &'static str {
        match self.code {
            "overloaded" => "the server is at its limit of concurrent work",
            "storage_full" => {
                "the server's disk is nearly full: nothing was written, reads go on, and writes resume once space is freed"
            }
            _ => "the server could not complete this request right now",
        }
    }
}

/// Replaces every run of 16 or more hexadecimal digits (change hashes, heads, keys) with "…".
pub fn scrub_hex(text: &str) -> String {
    const RUN: usize = 16;
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= RUN {
            out.push('…');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id().unwrap_or_else(new_request_id);
        let message = if self.status.is_server_error() {
            if matches!(self.status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::INSUFFICIENT_STORAGE) {
                // A limit reached or a transient conflict: worth a warning, not an alert.
                tracing::warn!(
                    request_id = %request_id, code = self.code, detail = %self.message, doc_id = ?self.doc_id,
                    "request not served now"
                );
                format!("{}; retry shortly (request id {request_id})", self.public_unavailable_reason())
            } else {
                tracing::error!(
                    request_id = %request_id, status = self.status.as_u16(), code = self.code,
                    detail = %self.message, doc_id = ?self.doc_id, "request failed"
                );
                if self.code == DOCUMENT_DAMAGED {
                    format!(
                        "a document this needs is damaged on the server (the others are not); quote request id {request_id} when reporting it"
                    )
                } else {
                    format!(
                        "something went wrong on the server; quote request id {request_id} when reporting it"
                    )
                }
            }
        } else {
            tracing::debug!(request_id = %request_id, code = self.code, message = %self.message, "request refused");
            scrub_hex(&self.message)
        };
        let code = match self.code {
            // Which document stays in the log: it may be out of the caller's scope.
            DOCUMENT_DAMAGED => self.code,
            _ if self.status == StatusCode::INTERNAL_SERVER_ERROR => "internal",
            _ => self.code,
        };
        let mut body = json!({ "error": code, "message": message, "request_id": request_id });
        // The document a refusal is about; a server error names nothing (it is in the log).
        if let Some(doc) = self.doc_id.filter(|_| !self.status.is_server_error()) {
            body["doc_id"] = json!(doc);
        }
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        resp
    }
}

// --- the core and authentication ---------------------------------------------------------------

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        if e.is_unauthorized() {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
        } else {
            ApiError::internal(format!("authentication: {e}"))
        }
    }
}

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::UnsupportedVersion(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "unsupported_version", e.to_string())
            }
            WireError::TooLarge | WireError::TooMany(_) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            WireError::Malformed(detail) => {
                // The decoder's words are its Debug form (`Semantic(None, "…")`) around serde's
                // message, which names Rust types (`Cursor::Feed`): the client gets serde's message
                // without the type paths, the log everything.
                tracing::debug!(detail = %detail, "sync frame refused");
                let message = match (detail.find('"'), detail.rfind('"')) {
                    (Some(a), Some(b)) if b > a => {
                        format!(
                            "malformed message: {}",
                            without_type_paths(&detail[a + 1..b].replace("\\\"", "\""))
                        )
                    }
                    _ => "malformed message: the body is not the CBOR of a sync request".to_string(),
                };
                ApiError::new(StatusCode::BAD_REQUEST, "malformed", message)
            }
            WireError::Compression(detail) => {
                // An io::Error's Debug form (`Custom { kind: InvalidData, … }`): for the log only.
                tracing::debug!(detail = %detail, "sync frame refused");
                ApiError::new(StatusCode::BAD_REQUEST, "malformed", "corrupt compressed payload")
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, "malformed", e.to_string()),
        }
    }
}

/// `text` with every `Name::` qualifier removed (`struct variant Cursor::Feed` → `struct variant Feed`).
fn without_type_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else if c == ':' && chars.peek() == Some(&':') && !word.is_empty() {
            chars.next();
            word.clear();
        } else {
            out.push_str(&word);
            word.clear();
            out.push(c);
        }
    }
    out.push_str(&word);
    out
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        let status = match &e {
            SyncError::BadRequest(_) | SyncError::CorruptChange { .. } => StatusCode::BAD_REQUEST,
            SyncError::InvalidDocument { .. } | SyncError::KindMismatch { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            SyncError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            SyncError::DeviceRevoked(_) => StatusCode::FORBIDDEN,
            SyncError::Storage(StorageError::Conflict { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            // Nothing was written; the device keeps its outbox and tries again later.
            SyncError::Storage(StorageError::Full(_)) => StatusCode::INSUFFICIENT_STORAGE,
            SyncError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let retry_after = match status {
            StatusCode::SERVICE_UNAVAILABLE => Some(1),
            StatusCode::INSUFFICIENT_STORAGE => Some(60),
            _ => None,
        };
        let doc_id = match &e {
            SyncError::CorruptChange { doc_id, .. }
            | SyncError::InvalidDocument { doc_id, .. }
            | SyncError::KindMismatch { doc_id, .. }
            | SyncError::Storage(StorageError::Damaged { doc_id, .. }) => Some(doc_id.clone()),
            _ => None,
        };
        ApiError { doc_id, retry_after, ..ApiError::new(status, e.code(), e.to_string()) }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        SyncError::from(e).into()
    }
}

// --- planning's bounds ---------------------------------------------------------------------------

impl From<OutOfBounds> for ApiError {
    fn from(e: OutOfBounds) -> Self {
        ApiError::invalid(e)
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> Self {
        ApiError::invalid(e)
    }
}

impl From<AreaError> for ApiError {
    fn from(e: AreaError) -> Self {
        ApiError::invalid(e)
    }
}

// --- extractor rejections ------------------------------------------------------------------------

/// The error a request body yields once its deadline has passed ([`crate::http::body_deadline`]).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

/// 408 when reading the body hit its deadline: `e`, or an error it wraps, is [`BodyTimedOut`].
fn body_timeout(e: &(dyn std::error::Error + 'static)) -> Option<ApiError> {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<BodyTimedOut>() {
            return Some(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body did not arrive in time; send it again",
            ));
        }
        cur = e.source();
    }
    None
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
        if let Some(timeout) = body_timeout(&e) {
            return timeout;
        }
        let status = e.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "too_large" } else { "bad_request" };
        ApiError::new(status, code, e.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        if let Some(timeout) = body_timeout(&e) {
            return timeout;
        }
        ApiError::bad_request(e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Log output captured into memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_500_tells_the_client_a_request_id_and_the_log_the_detail() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber =
            tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        let detail = "storage backend failed: reconcile cust-0139: the data to be reconciled is stale, \
                      expected heads were [d1a3c0ffee0123456789abcdef0123456789abcdef0123456789abcdef012345]";
        let resp = tracing::subscriber::with_default(subscriber, || {
            crate::request_id::REQUEST_ID.sync_scope("req-under-test".to_string(), || {
                ApiError::from(SyncError::Storage(StorageError::Backend(detail.into()))).into_response()
            })
        });
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("req-under-test"));
        let body = body_bytes(resp);
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["error"], "internal");
        assert_eq!(json["request_id"], "req-under-test");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("storage") && !text.contains("d1a3") && !text.contains("cust-0139"), "{text}");
        let logged = String::from_utf8(log.0.lock().expect("log").clone()).expect("utf8");
        assert!(logged.contains("req-under-test") && logged.contains(detail), "{logged}");
    }

    fn body_bytes(resp: Response) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(axum::body::to_bytes(resp.into_body(), 1 << 20)).expect("body").to_vec()
    }

    #[test]
    fn a_malformed_frame_is_told_in_serdes_words_without_rust_types_or_debug_forms() {
        let e = ApiError::from(WireError::Malformed(
            "Semantic(None, \"invalid type: enum, expected struct variant Cursor::Feed\")".into(),
        ));
        assert_eq!(e.message, "malformed message: invalid type: enum, expected struct variant Feed");
        let e = ApiError::from(WireError::Compression("Custom { kind: InvalidData, error: \"x\" }".into()));
        assert_eq!(e.message, "corrupt compressed payload");
        assert_eq!(without_type_paths("a::b::C d ::e f: g"), "C d ::e f: g");
    }

    #[test]
    fn hex_runs_are_scrubbed_from_messages_for_people() {
        let automerge = "change d1a3c0ffee0123456789abcdef0123456789abcdef0123456789abcdef012345 is missing \
                         dependencies [ChangeHash(00ff00ff00ff00ff00ff)]";
        assert_eq!(scrub_hex(automerge), "change … is missing dependencies [ChangeHash(…)]");
        // Ordinary words, ids and numbers are kept.
        let ok = "visit v-0001 of customer cust-0139 (deadbeef, 2026) is 15 minutes late";
        assert_eq!(scrub_hex(ok), ok);
        assert_eq!(scrub_hex(""), "");
    }
}
