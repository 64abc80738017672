//! The HTTP side of sync: one POST of a framed request, and the server's answer mapped to what the
//! app does about it.

use std::time::Duration;

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

/// How `sync` retries an answer that means "busy, try again shortly" (429, 502, 503, 504): a server
/// at one of its limits, or a proxy in between that lost it for a moment, should not turn a sync
/// into an error the app has to schedule around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Retries of one request after its first try.
    pub retries: u32,
    /// The wait before the first retry when the server names none, doubled before each next one.
    pub base: Duration,
    /// Most time spent waiting in one `sync`, all its requests together. A wait that would go past
    /// it (a server asking for a minute) is not made: the sync stops there, `Offline`.
    pub budget: Duration,
}

/// The policy of every client: at most 3 retries of a request, after what the server's
/// `Retry-After` asks or else 0.2 s, 0.4 s, 0.8 s, and no more than 5 s of waiting per sync.
pub(crate) const RETRY: RetryPolicy =
    RetryPolicy { retries: 3, base: Duration::from_millis(200), budget: Duration::from_secs(5) };

/// One sync's retries: the time waited counts against the budget for every request of that sync.
#[derive(Debug)]
pub(crate) struct Retrier {
    policy: RetryPolicy,
    waited: Duration,
}

impl Retrier {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Retrier { policy, waited: Duration::ZERO }
    }

    /// Posts one sync request, retrying busy answers; `wait` sleeps between two tries (and stops
    /// the retries when it fails, e.g. with `Cancelled`). The response body, or the error the app
    /// acts on.
    pub(crate) fn post_sync(
        &mut self,
        http: &ureq::Agent,
        server_url: &str,
        token: Option<String>,
        body: &[u8],
        wait: &mut dyn FnMut(Duration) -> Result<()>,
    ) -> Result<Vec<u8>> {
        let token = token
            .ok_or_else(|| FieldsyncError::Unauthorized { message: "no token: call set_token".into() })?;
        let url = format!("{}/v1/sync", server_url.trim_end_matches('/'));
        let mut retries = 0;
        loop {
            let (status, message, retry_after) = match post_once(http, &url, &token, body)? {
                Answer::Body(bytes) => return Ok(bytes),
                Answer::Busy { status, message, retry_after } => (status, message, retry_after),
            };
            let delay = retry_after.unwrap_or_else(|| self.policy.base.saturating_mul(1 << retries.min(16)));
            if retries >= self.policy.retries || self.waited + delay > self.policy.budget {
                let tries = if retries == 0 { String::new() } else { format!(", {} tries", retries + 1) };
                let asked =
                    retry_after.map(|d| format!(", retry after {} s", d.as_secs())).unwrap_or_default();
                return Err(FieldsyncError::Offline {
                    message: format!("{message} (HTTP {status}{tries}{asked})"),
                });
            }
            wait(delay)?;
            self.waited += delay;
            retries += 1;
        }
    }
}

/// What one POST brought: a body, or an answer worth trying again shortly.
enum Answer {
    Body(Vec<u8>),
    Busy { status: u16, message: String, retry_after: Option<Duration> },
}

/// One POST of a sync request, and the server's answer mapped to what the app does about it.
fn post_once(http: &ureq::Agent, url: &str, token: &str, body: &[u8]) -> Result<Answer> {
    let mut resp = http
        .post(url)
        .header("authorization", &format!("Bearer {token}"))
        .header("content-type", CONTENT_TYPE)
        .send(body)
        .map_err(|e| FieldsyncError::Offline { message: e.to_string() })?;
    let status = resp.status().as_u16();
    // Seconds only (what the server sends); an HTTP date falls back to the policy's own wait.
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(512 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| FieldsyncError::Offline { message: e.to_string() })?;
    if status == 200 {
        return Ok(Answer::Body(bytes));
    }
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let message = body["message"].as_str().unwrap_or("no message").to_string();
    let doc = body["doc_id"].as_str().filter(|d| !d.is_empty());
    Err(match status {
        // Busy, or a gateway that lost the server for a moment: worth trying again shortly.
        429 | 502..=504 => return Ok(Answer::Busy { status, message, retry_after }),
        401 => FieldsyncError::Unauthorized { message },
        // This phone was revoked (lost or stolen): signing in again here will not help.
        403 if body["error"] == "device_revoked" => FieldsyncError::Unauthorized { message },
        // The server refused one document of the request (a corrupt change in it, too): the sync
        // sets that document's unsent edits aside and goes on.
        400 | 404 | 409 | 422 if doc.is_some() => {
            FieldsyncError::Rejected { doc: doc.unwrap_or_default().to_string(), reason: message }
        }
        // Not the server's own 404 (which names the document): a wrong address or a proxy.
        404 => FieldsyncError::InvalidInput {
            field: "server_url".into(),
            reason: format!("no fieldsync server answers at this address (HTTP 404: {message})"),
        },
        409 | 422 => FieldsyncError::Rejected { doc: String::new(), reason: message },
        400 | 403 | 413 => FieldsyncError::InvalidInput { field: "request".into(), reason: message },
        // The body did not arrive in time, or the server's disk is full (507, nothing written, and
        // it asks for a minute): like being offline, the outbox stays and the next sync tries again.
        408 | 507 => FieldsyncError::Offline { message: format!("{message} (HTTP {status})") },
        _ => FieldsyncError::Internal { message: format!("HTTP {status}: {message}") },
    })
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A loopback HTTP server answering the canned responses in turn (the last one for ever after),
    /// counting the requests it got.
    fn canned(answers: Vec<Canned>) -> (String, Arc<Mutex<usize>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(Mutex::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                }
                reader.read_exact(&mut vec![0; length]).unwrap();
                let mut n = seen.lock().unwrap();
                let (status, retry_after, body) = answers[(*n).min(answers.len() - 1)];
                *n += 1;
                let retry_after = retry_after.map(|s| format!("retry-after: {s}\r\n")).unwrap_or_default();
                let answer = format!(
                    "HTTP/1.1 {status}\r\n{retry_after}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        (url, count)
    }

    /// A status line, a `Retry-After` and a body.
    type Canned = (&'static str, Option<&'static str>, &'static str);
    const BUSY: &str = r#"{"error":"overloaded","message":"busy"}"#;
    const BUSY_0: Canned = ("503 Service Unavailable", Some("0"), BUSY);
    const BUSY_7: Canned = ("429 Too Many Requests", Some("7"), BUSY);
    const GATEWAY: Canned = ("502 Bad Gateway", None, "");
    const FULL: Canned = ("507 Insufficient Storage", Some("60"), "");
    const OK: Canned = ("200 OK", None, "ok");

    fn agent() -> ureq::Agent {
        ureq::Agent::new_with_config(ureq::Agent::config_builder().http_status_as_error(false).build())
    }

    /// Posts with `policy`, recording the waits instead of sleeping.
    fn post(url: &str, policy: RetryPolicy) -> (Result<Vec<u8>>, Vec<Duration>) {
        let mut waits = Vec::new();
        let out = Retrier::new(policy).post_sync(&agent(), url, Some("t".into()), b"body", &mut |d| {
            waits.push(d);
            Ok(())
        });
        (out, waits)
    }

    const POLICY: RetryPolicy =
        RetryPolicy { retries: 3, base: Duration::from_millis(10), budget: Duration::from_secs(10) };

    #[test]
    fn a_refusal_naming_a_document_is_that_documents_and_a_bare_404_is_a_wrong_address() {
        let corrupt = r#"{"error":"corrupt_change","message":"a corrupt change","doc_id":"c1"}"#;
        for (status, body) in [("400 Bad Request", corrupt), ("422 Unprocessable Entity", corrupt)] {
            let (url, _) = canned(vec![(status, None, body)]);
            let (out, _) = post(&url, POLICY);
            assert!(
                matches!(out, Err(FieldsyncError::Rejected { ref doc, .. }) if doc == "c1"),
                "{status}: {out:?}"
            );
        }
        let (url, _) = canned(vec![("404 Not Found", None, "<html>nginx</html>")]);
        let (out, _) = post(&url, POLICY);
        assert!(
            matches!(out, Err(FieldsyncError::InvalidInput { ref field, .. }) if field == "server_url"),
            "{out:?}"
        );
        let (url, _) = canned(vec![("400 Bad Request", None, r#"{"error":"bad_request","message":"no"}"#)]);
        let (out, _) = post(&url, POLICY);
        assert!(
            matches!(out, Err(FieldsyncError::InvalidInput { ref field, .. }) if field == "request"),
            "{out:?}"
        );
    }

    #[test]
    fn a_busy_answer_is_retried_after_what_the_server_asks() {
        let (url, count) = canned(vec![BUSY_0, BUSY_7, OK]);
        let (out, waits) = post(&url, POLICY);
        assert_eq!(out.unwrap(), b"ok");
        assert_eq!(waits, [Duration::ZERO, Duration::from_secs(7)]);
        assert_eq!(*count.lock().unwrap(), 3);
    }

    #[test]
    fn without_retry_after_the_wait_doubles_and_the_retries_end_offline() {
        let (url, count) = canned(vec![GATEWAY]);
        let (out, waits) = post(&url, POLICY);
        let ms = Duration::from_millis;
        assert_eq!(waits, [ms(10), ms(20), ms(40)]);
        assert_eq!(*count.lock().unwrap(), 4, "one try and three retries");
        assert!(
            matches!(out, Err(FieldsyncError::Offline { ref message }) if message.contains("HTTP 502, 4 tries")),
            "{out:?}"
        );
    }

    #[test]
    fn a_wait_past_the_budget_is_not_made() {
        let (url, count) = canned(vec![BUSY_0, BUSY_7]);
        let (out, waits) = post(&url, RetryPolicy { budget: Duration::from_secs(5), ..POLICY });
        assert_eq!(waits, [Duration::ZERO]);
        assert_eq!(*count.lock().unwrap(), 2);
        assert!(
            matches!(out, Err(FieldsyncError::Offline { ref message }) if message.contains("retry after 7 s")),
            "{out:?}"
        );
        // The budget is the sync's: what one request waited is gone for the next.
        let (url, _) = canned(vec![BUSY_7]);
        let mut retrier = Retrier::new(RetryPolicy { budget: Duration::from_secs(10), ..POLICY });
        let mut waits = Vec::new();
        let mut wait = |d| {
            waits.push(d);
            Ok(())
        };
        assert!(retrier.post_sync(&agent(), &url, Some("t".into()), b"", &mut wait).is_err());
        assert!(retrier.post_sync(&agent(), &url, Some("t".into()), b"", &mut wait).is_err());
        assert_eq!(waits, [Duration::from_secs(7)]);
    }

    #[test]
    fn a_full_disk_and_a_failed_wait_are_not_retried() {
        // Not even when the sync could wait the minute the server asks for.
        let (url, count) = canned(vec![FULL]);
        let (out, waits) = post(&url, RetryPolicy { budget: Duration::from_secs(3600), ..POLICY });
        assert!(waits.is_empty() && *count.lock().unwrap() == 1);
        assert!(matches!(out, Err(FieldsyncError::Offline { .. })), "{out:?}");
        let (url, count) = canned(vec![BUSY_0]);
        let out = Retrier::new(POLICY)
            .post_sync(&agent(), &url, Some("t".into()), b"", &mut |_| Err(FieldsyncError::Cancelled));
        assert!(matches!(out, Err(FieldsyncError::Cancelled)), "{out:?}");
        assert_eq!(*count.lock().unwrap(), 1);
    }
}
