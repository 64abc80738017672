//! The admin socket: a Unix socket in the data directory (`admin.sock`, mode 0600) through which
//! commands run on the server's machine reach a running server, whose data directory sled keeps
//! locked. Whoever can connect could read the data directory's files anyway, so the socket asks
//! for no token; nothing of it is reachable over the network.
//!
//! `POST /backup {"out": "/abs/path"}` writes a backup ([`crate::backup`]) and answers its report.

use std::path::{Path, PathBuf};

use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use serde::Deserialize;

use crate::Server;
use crate::backup::BackupReport;

/// The socket's name in the data directory.
pub const SOCKET_NAME: &str = "admin.sock";

#[derive(Debug, Deserialize)]
pub struct BackupRequest {
    /// Absolute path of the backup file to write (it must not exist).
    pub out: PathBuf,
}

/// An admin command's failure: a code and the whole message (the caller is the machine's operator).
#[derive(Debug, serde::Serialize, Deserialize)]
pub struct AdminError {
    pub code: String,
    pub message: String,
}

type AdminResult<T> = Result<Json<T>, (StatusCode, Json<AdminError>)>;

fn failed(code: &str, message: impl ToString) -> (StatusCode, Json<AdminError>) {
    (StatusCode::INTERNAL_SERVER_ERROR, Json(AdminError { code: code.into(), message: message.to_string() }))
}

async fn backup(State(server): State<Server>, Json(req): Json<BackupRequest>) -> AdminResult<BackupReport> {
    if !req.out.is_absolute() {
        return Err(failed("invalid_path", format!("{}: the path must be absolute", req.out.display())));
    }
    let report = tokio::task::spawn_blocking(move || server.backup(&req.out))
        .await
        .map_err(|e| failed("internal", e))?
        .map_err(|e| failed("backup_failed", e))?;
    Ok(Json(report))
}

/// The admin application.
pub fn admin_app(server: Server) -> Router {
    Router::new().route("/backup", post(backup)).with_state(server)
}

/// The socket path of a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Binds the admin socket of `server`'s data directory (replacing a stale one: the data
/// directory's lock, held by `server`, says no other server uses it) and serves it until the
/// process ends.
pub async fn serve_admin(server: Server) -> std::io::Result<()> {
    let path = socket_path(server.data_dir());
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    axum::serve(listener, admin_app(server)).await
}

/// Asks the server running on `data_dir` for a backup to `out` (absolute) through its admin
/// socket. `Ok(None)`: no server listens there (no socket, or a stale one), and the directory may
/// be opened directly.
pub async fn request_backup(data_dir: &Path, out: &Path) -> Result<Option<BackupReport>, AdminError> {
    let client_failed =
        |e: &dyn std::fmt::Display| AdminError { code: "admin_socket".into(), message: e.to_string() };
    let stream = match tokio::net::UnixStream::connect(socket_path(data_dir)).await {
        Ok(s) => s,
        Err(e)
            if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(client_failed(&format!("{}: {e}", socket_path(data_dir).display()))),
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| client_failed(&e))?;
    tokio::spawn(connection);
    let body = serde_json::to_vec(&serde_json::json!({ "out": out })).map_err(|e| client_failed(&e))?;
    let request = axum::http::Request::post("/backup")
        .header("host", "admin")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .map_err(|e| client_failed(&e))?;
    let response = sender.send_request(request).await.map_err(|e| client_failed(&e))?;
    let ok = response.status().is_success();
    let bytes = axum::body::to_bytes(axum::body::Body::new(response.into_body()), 1 << 20)
        .await
        .map_err(|e| client_failed(&e))?;
    if ok {
        serde_json::from_slice(&bytes).map(Some).map_err(|e| client_failed(&e))
    } else {
        Err(serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| client_failed(&String::from_utf8_lossy(&bytes))))
    }
}
