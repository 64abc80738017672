//! The HTTP machinery around the routes: the accept loop (connection cap, header read timeout,
//! graceful shutdown), the cap on requests in flight, the memory budget for request bodies, the
//! deadline on reading a body, and JSON bodies for the refusals hyper makes by itself.
//!
//! Every limit is a field of [`HttpLimits`] (in [`crate::ServerConfig`]), so tests can make them
//! small.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::auth::Authenticator;
use crate::error::{ApiError, BodyTimedOut};
use crate::request_id::new_request_id;

/// Largest body of `POST /v1/sync` (a first push of thousands of documents fits).
pub const MAX_SYNC_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Largest JSON body of the other routes (a territory design of a large team fits).
pub const MAX_JSON_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Largest customer file `POST /v1/import` reads (the import's own file bound).
pub const MAX_IMPORT_BODY_BYTES: usize = 64 * 1024 * 1024;

/// How much of the server one client may hold, and for how long.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Time allowed for a request's head (request line and headers) to arrive, counted from when
    /// the server starts waiting for it: also how long an idle keep-alive connection is kept.
    pub header_read_timeout: Duration,
    /// Time allowed for a request's whole body to arrive once its head has (a slow body is cut off
    /// with 408).
    pub body_read_timeout: Duration,
    /// Connections held at once; further clients wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Requests being handled at once; beyond, 503 with `Retry-After` (`/healthz` is exempt).
    pub max_in_flight: usize,
    /// Planning computations (day, week, sub-areas, territories) at once; beyond, 503.
    pub max_planning_jobs: usize,
    /// Live feeds (`/v1/live`, Server-Sent Events) open at once; beyond, 503. They do not count
    /// as requests in flight: a dashboard holds one for hours.
    pub max_live_streams: usize,
    /// Memory that the request bodies being received and decoded may take at once, in bytes: each
    /// request is charged its declared body length (the route's largest body when it declares
    /// none), and a sync request also what decoding that many bytes may cost at most
    /// ([`fieldsync_core::protocol::decode_memory_bound`]). Beyond, 503 with `Retry-After`.
    pub max_body_memory: usize,
    /// Requests with a body one user (team and subject) may have in flight at once; beyond, 429
    /// with `Retry-After`. One rep cannot hold the whole body budget.
    pub max_bodies_per_user: usize,
    /// Largest request head (request line and headers) in bytes; beyond, 431.
    pub max_header_bytes: usize,
    /// Seconds a client is told to wait (`Retry-After`) when the server is at a limit.
    pub retry_after_s: u32,
    /// Leads one sender (team and subject) may post a minute, on average; beyond, 429 with
    /// `Retry-After` ([`crate::routes::leads`]).
    pub leads_per_minute: u32,
    /// Leads one sender may post at once before the rate applies.
    pub lead_burst: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(120),
            max_connections: 1024,
            max_in_flight: 256,
            max_planning_jobs: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            max_live_streams: 64,
            max_body_memory: 1024 * 1024 * 1024,
            max_bodies_per_user: 4,
            max_header_bytes: 64 * 1024,
            retry_after_s: 2,
            leads_per_minute: 120,
            lead_burst: 60,
        }
    }
}

// --- requests in flight --------------------------------------------------------------------------

/// What the in-flight middleware needs.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub slots: Arc<Semaphore>,
    pub retry_after_s: u32,
}

/// At most `max_in_flight` requests are handled at once; the next gets 503 with `Retry-After`
/// straight away rather than queueing behind the others. `/healthz` is exempt: it costs nothing
/// and tells the operator the process is alive.
pub async fn limit_in_flight(State(limit): State<InFlight>, req: Request, next: Next) -> Response {
    // Liveness costs nothing; live feeds are capped by their own limit.
    if matches!(req.uri().path(), "/healthz" | "/v1/live") {
        return next.run(req).await;
    }
    match limit.slots.try_acquire_owned() {
        Ok(permit) => {
            let resp = next.run(req).await;
            drop(permit);
            resp
        }
        Err(_) => {
            tracing::warn!("request refused: too many requests in flight");
            ApiError::busy("the server is handling as many requests as it can", limit.retry_after_s)
                .into_response()
        }
    }
}

// --- memory for bodies ---------------------------------------------------------------------------

/// What the body-memory middleware needs.
#[derive(Debug, Clone)]
pub struct BodyMemory {
    /// One permit per KiB of [`HttpLimits::max_body_memory`].
    kib: Arc<Semaphore>,
    total_kib: u32,
    retry_after_s: u32,
    auth: Arc<Authenticator>,
    /// Requests with a body in flight, per user.
    per_user: Arc<Mutex<HashMap<String, usize>>>,
    max_per_user: usize,
}

impl BodyMemory {
    pub fn new(limits: &HttpLimits, auth: Arc<Authenticator>) -> Self {
        let total_kib = u32::try_from(limits.max_body_memory.div_ceil(1024)).unwrap_or(u32::MAX).max(1);
        BodyMemory {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
            retry_after_s: limits.retry_after_s,
            auth,
            per_user: Arc::default(),
            max_per_user: limits.max_bodies_per_user.max(1),
        }
    }
}

/// A caller the body-memory middleware verified already, handed on to the
/// [`Caller`](crate::extract::Caller) extractor so that the token is not verified twice.
#[derive(Debug, Clone)]
pub struct Verified(pub fieldsync_core::Principal);

/// One of a user's body slots; given back when dropped.
struct UserSlot {
    map: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl UserSlot {
    fn take(map: &Arc<Mutex<HashMap<String, usize>>>, user: String, max: usize) -> Option<UserSlot> {
        let mut m = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = m.entry(user.clone()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(UserSlot { map: map.clone(), user })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.user);
            }
        }
    }
}

/// What a request's body may cost in memory while it is handled, from its head alone, or Err
/// when its declared length is over the route's limit.
fn body_cost(req: &Request) -> Result<usize, ApiError> {
    use axum::http::header;
    let sync = req.uri().path() == "/v1/sync";
    let route_max = match req.uri().path() {
        "/v1/sync" => MAX_SYNC_BODY_BYTES,
        "/v1/import" => MAX_IMPORT_BODY_BYTES,
        _ => MAX_JSON_BODY_BYTES,
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let len = match declared {
        Some(n) if n > route_max => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the request body is larger than this endpoint accepts ({route_max} bytes)"),
            ));
        }
        Some(n) => n,
        None if req.headers().contains_key(header::TRANSFER_ENCODING) => route_max,
        None => 0,
    };
    Ok(if len == 0 {
        0
    } else if sync {
        len + fieldsync_core::protocol::decode_memory_bound(len)
    } else if req.uri().path() == "/v1/import" {
        // The rows read from the file, typed, and the team's customers they are decided against.
        4 * len
    } else {
        // Parsing JSON into typed values takes about as much again.
        2 * len
    })
}

/// Requests whose bodies would take the server past [`HttpLimits::max_body_memory`] get 503 and
/// `Retry-After` before a byte of the body is read; a body declared larger than its route accepts
/// gets 413 at once; a user with [`HttpLimits::max_bodies_per_user`] bodies in flight gets 429.
///
/// Only authenticated requests are charged: a request whose token does not verify is refused by
/// its handler without its body ever being read, so strangers cannot spend the budget.
pub async fn limit_body_memory(State(budget): State<BodyMemory>, mut req: Request, next: Next) -> Response {
    let cost = match body_cost(&req) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if cost == 0 {
        return next.run(req).await;
    }
    let header = req.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Ok(claims) = budget.auth.verify_authorization_header(header) else {
        return next.run(req).await;
    };
    let who = claims.into_principal();
    let user = format!("{}/{}", who.team, who.user);
    let Some(_slot) = UserSlot::take(&budget.per_user, user, budget.max_per_user) else {
        tracing::warn!(team = %who.team, user = %who.user, "request refused: too many bodies in flight for one user");
        return ApiError {
            retry_after: Some(budget.retry_after_s),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "you have as many uploads in progress as allowed; wait for one to finish",
            )
        }
        .into_response();
    };
    req.extensions_mut().insert(Verified(who));
    // A request larger than the whole budget may still run, alone.
    let kib = u32::try_from(cost.div_ceil(1024)).unwrap_or(u32::MAX).min(budget.total_kib);
    match budget.kib.clone().try_acquire_many_owned(kib) {
        Ok(permit) => {
            let resp = next.run(req).await;
            drop(permit);
            resp
        }
        Err(_) => {
            tracing::warn!(cost, "request refused: body memory budget exhausted");
            ApiError::busy("the server is receiving as much data as it can hold", budget.retry_after_s)
                .into_response()
        }
    }
}

// --- the body deadline ---------------------------------------------------------------------------

/// A request body that fails with [`BodyTimedOut`] once `deadline` passes, however it trickles.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The whole body of a request must arrive within `timeout` of its head.
pub async fn body_deadline(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let body = Body::new(DeadlineBody { inner: body, deadline: Box::pin(tokio::time::sleep(timeout)) });
    next.run(Request::from_parts(parts, body)).await
}

// --- the accept loop -----------------------------------------------------------------------------

/// Serves `app` on `listener` until `shutdown` resolves, then lets the open connections finish
/// the requests they are handling.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        // The read buffer never needs to hold more than a head (bodies are streamed).
        .max_buf_size((limits.max_header_bytes + 8 * 1024).max(16 * 1024));
    let service = hyper_util::service::TowerToHyperService::new(app);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A connection slot first: at the cap, new clients wait in the kernel's backlog (and are
        // served as soon as a connection closes, e.g. an idle one reaching its header timeout).
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin or die.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(HyperRefusalsAsJson::new(stream));
        let conn = graceful.watch(http.serve_connection(io, service.clone()));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

// --- hyper's own refusals ------------------------------------------------------------------------

/// hyper answers a request it cannot parse (a head over `max_header_bytes`: 431; a bad request
/// line or header: 400; a URI too long: 414) by itself, before any of our code runs, with an empty
/// body. This connection wrapper recognises those answers on their way out (a 4xx with
/// `content-length: 0`: every answer of ours carries a JSON body) and sends in their place the
/// same status with the JSON error body and a request id, then closes the connection as hyper
/// would have.
///
/// It reports itself as not vectored, so hyper writes each response head in one contiguous write.
/// After such a refusal the connection is closed lingering: our side is shut down (the client
/// reads the answer to its end) and what the client is still sending is read and dropped for a
/// moment, so that the close does not reset the connection before the client has read the answer.
struct HyperRefusalsAsJson {
    /// None only once dropped.
    inner: Option<TcpStream>,
    /// A replacement answer being written, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
}

/// How long, and how much, a refused client's remaining upload is drained before closing.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 4 * 1024 * 1024;

impl HyperRefusalsAsJson {
    fn new(inner: TcpStream) -> Self {
        HyperRefusalsAsJson { inner: Some(inner), replacement: None }
    }

    fn stream(&mut self) -> std::io::Result<&mut TcpStream> {
        self.inner.as_mut().ok_or_else(|| std::io::ErrorKind::NotConnected.into())
    }

    /// Writes what is left of the replacement answer.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let Some((out, written)) = &mut self.replacement else { return Poll::Ready(Ok(())) };
        let Some(inner) = self.inner.as_mut() else { return Poll::Ready(Ok(())) };
        while *written < out.len() {
            let n = ready!(Pin::new(&mut *inner).poll_write(cx, &out[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for HyperRefusalsAsJson {
    fn drop(&mut self) {
        let (Some(mut stream), Some(_)) = (self.inner.take(), self.replacement.take()) else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        rt.spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let _ = stream.shutdown().await;
            let drain = async {
                let mut buf = vec![0u8; 64 * 1024];
                let mut total = 0;
                while total < LINGER_BYTES {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n,
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER, drain).await;
        });
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The JSON answer to send instead of `buf`, when `buf` is one of hyper's bodiless refusals.
fn json_refusal(buf: &[u8]) -> Option<Vec<u8>> {
    let head_end = find(buf, b"\r\n\r\n")?;
    if buf.len() != head_end + 4 {
        return None;
    }
    let head = &buf[..head_end];
    let status_line = &head[..find(head, b"\r\n").unwrap_or(head.len())];
    if !(status_line.starts_with(b"HTTP/1.1 4") || status_line.starts_with(b"HTTP/1.0 4")) {
        return None;
    }
    let lower = head.to_ascii_lowercase();
    if find(&lower, b"\r\ncontent-length: 0\r\n").is_none() && !lower.ends_with(b"\r\ncontent-length: 0") {
        return None;
    }
    let status: u16 = std::str::from_utf8(status_line.get(9..12)?).ok()?.parse().ok()?;
    let (code, message) = match status {
        431 => ("headers_too_large", "the request's headers are larger than this server accepts"),
        414 => ("uri_too_long", "the request's URI is longer than this server accepts"),
        400 => ("malformed_http", "the request is not well-formed HTTP/1.1"),
        _ => ("bad_request", "the request was refused before it was read"),
    };
    let request_id = new_request_id();
    tracing::warn!(request_id = %request_id, status, code, "request refused by the HTTP parser");
    let body = serde_json::json!({ "error": code, "message": message, "request_id": request_id }).to_string();
    let mut out = Vec::with_capacity(status_line.len() + body.len() + 160);
    out.extend_from_slice(status_line);
    out.extend_from_slice(
        format!(
            "\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

impl AsyncRead for HyperRefusalsAsJson {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(self.stream()?).poll_read(cx, buf)
    }
}

impl AsyncWrite for HyperRefusalsAsJson {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.replacement.is_some() {
            // The connection ends with the replacement: nothing else goes out.
            ready!(this.poll_replacement(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        if let Some(out) = json_refusal(buf) {
            this.replacement = Some((out, 0));
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(this.stream()?).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(self.stream()?).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        if self.replacement.is_some() {
            // Shut down (and drained) by the lingering close when dropped.
            return Poll::Ready(Ok(()));
        }
        Pin::new(self.stream()?).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bodiless_refusals_are_replaced() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 10:00:00 GMT\r\n\r\n";
        let out = json_refusal(hyper_431).expect("replaced");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{text}");
        let body = &text[text.find("\r\n\r\n").expect("head end") + 4..];
        let json: serde_json::Value = serde_json::from_str(body).expect("json body");
        assert_eq!(json["error"], "headers_too_large");
        assert!(text.contains(&format!("content-length: {}\r\n", body.len())));
        // Ours (a body follows), successes and partial heads pass through.
        assert!(json_refusal(b"HTTP/1.1 404 Not Found\r\ncontent-length: 20\r\n\r\n").is_none());
        assert!(json_refusal(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}").is_none());
        assert!(json_refusal(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(json_refusal(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0").is_none());
        assert!(json_refusal(b"{\"error\":\"x\"}").is_none());
    }
}
