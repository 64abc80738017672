//! The id of every request: in the log (a span around the request), in every error body and as
//! the `x-request-id` header of every response, so a user's report can be matched with the log.

use axum::{extract::Request, http::HeaderValue, middleware::Next, response::Response};
use tracing::Instrument as _;

tokio::task_local! {
    pub(crate) static REQUEST_ID: String;
}

/// A fresh request id (a UUID, hyphenated).
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// The id of the request being handled, when called from within one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Middleware: gives the request an id, a span carrying it, and the response its header.
pub async fn request_context(req: Request, next: Next) -> Response {
    let id = new_request_id();
    let span =
        tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut resp = REQUEST_ID.scope(id.clone(), next.run(req)).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}
