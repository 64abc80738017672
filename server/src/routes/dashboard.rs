//! The dashboard ([`fieldsync_dashboard`]) and what it asks before a token exists: the page at
//! `/`, its bundle under `/assets/`, its settings, and — on a server running on its development
//! key with the demo team seeded — a one-click sign-in as the demo manager. Also `GET /v1/me`:
//! who a token names, for any client.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fieldsync_core::Role;
use fieldsync_core::storage::Storage as _;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{ApiPath, Caller};
use crate::seed::{DEMO_MANAGER, DEMO_TEAM};
use crate::state::{AppState, blocking};

/// How long a demo-manager token lasts (the one-click sign-in's, and the one `serve` prints).
pub const DEMO_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(8 * 3600);

/// A token of the demo team's manager, on a server that mints tokens (its development key).
pub fn demo_manager_token(auth: &crate::auth::Authenticator) -> Result<String, crate::auth::AuthError> {
    auth.issue(DEMO_TEAM, DEMO_MANAGER, Role::Manager, DEMO_TOKEN_TTL, crate::auth::unix_now())
}

/// What the dashboard is configured with (`fieldsync serve --tile-url`).
#[derive(Debug, Clone, Default)]
pub struct DashboardSettings {
    /// A raster tile URL template (`https://tiles.example/{z}/{x}/{y}.png`); none: the map shows the
    /// territories on a plain background, which works with no internet.
    pub tile_url: Option<String>,
}

impl DashboardSettings {
    /// Checks a tile URL template: http(s), with `{z}`, `{x}` and `{y}`, of a sane length.
    pub fn with_tile_url(url: &str) -> Result<Self, String> {
        let ok_scheme = url.starts_with("https://") || url.starts_with("http://");
        let placeholders = ["{z}", "{x}", "{y}"].iter().all(|p| url.contains(p));
        if !ok_scheme
            || !placeholders
            || url.len() > 512
            || url.chars().any(|c| c.is_whitespace() || c == '\'')
        {
            return Err(format!(
                "tile URL {url:?}: an http(s) URL of at most 512 bytes with {{z}}, {{x}} and {{y}}"
            ));
        }
        Ok(DashboardSettings { tile_url: Some(url.to_string()) })
    }

    /// `scheme://host[:port]` of the tile URL, for the page's Content-Security-Policy.
    fn tile_origin(&self) -> Option<&str> {
        let url = self.tile_url.as_deref()?;
        let after_scheme = url.find("://")? + 3;
        let end = url[after_scheme..].find('/').map_or(url.len(), |i| after_scheme + i);
        Some(&url[..end])
    }
}

fn security_headers(settings: &DashboardSettings, headers: &mut HeaderMap) {
    // Leaflet positions its panes with inline styles; scripts and everything else come from here.
    let img = settings.tile_origin().map(|o| format!(" {o}")).unwrap_or_default();
    let csp = format!(
        "default-src 'self'; img-src 'self' data:{img}; style-src 'self' 'unsafe-inline'; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

fn serve_asset(state: &AppState, name: &str, request: &HeaderMap) -> Response {
    let Some(asset) = fieldsync_dashboard::asset(name) else {
        return ApiError::not_found("no such file").into_response();
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    // Revalidated on every load: a new server version is picked up at once, unchanged files cost a 304.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(&state.dashboard, &mut headers);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    (headers, asset.body).into_response()
}

/// `GET /`: the dashboard's page.
#[utoipa::path(get, path = "/", tag = "dashboard", security(()), responses((status = 200, description = "the dashboard's page", content_type = "text/html"), (status = 304, description = "unchanged (If-None-Match)")))]
pub async fn page(State(state): State<AppState>, request: HeaderMap) -> Response {
    serve_asset(&state, "index.html", &request)
}

/// `GET /assets/{name}`: a file of the bundle (`app.js`, `app.css`).
#[utoipa::path(get, path = "/assets/{name}", tag = "dashboard", security(()), params(("name" = String, Path, description = "a file of the bundle: app.js, app.css")), responses((status = 200, description = "the file"), (status = 304, description = "unchanged (If-None-Match)"), (status = 404, description = "no such file")))]
pub async fn asset(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    request: HeaderMap,
) -> Response {
    serve_asset(&state, &name, &request)
}

/// Whether the one-click demo sign-in is offered: a development key (the server mints tokens)
/// and a seeded demo team. The token it gives is the demo manager's, for the demo team only.
async fn demo_sign_in_available(state: &AppState) -> Result<bool, ApiError> {
    if !state.auth.can_issue() {
        return Ok(false);
    }
    let engine = state.engine.clone();
    blocking(move || Ok::<_, ApiError>(engine.storage().feed_head(DEMO_TEAM)? > 0)).await
}

/// `GET /v1/dashboard/config`: what the page needs before sign-in (no data of any team).
#[utoipa::path(get, path = "/v1/dashboard/config", tag = "dashboard", security(()), responses((status = 200, description = "{demo_sign_in, tile_url, version}: what the page needs before sign-in", content_type = "application/json")))]
pub async fn config(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({
        "demo_sign_in": demo_sign_in_available(&state).await?,
        "tile_url": state.dashboard.tile_url,
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

/// `POST /v1/dev/sign-in`: a demo-manager token, on a development server with the demo team;
/// anywhere else this endpoint does not exist (404).
#[utoipa::path(post, path = "/v1/dev/sign-in", tag = "dashboard", security(()), responses((status = 200, description = "{token, team, user, role}: a demo-manager token (development key and demo team only)", content_type = "application/json"), (status = 404, description = "not a development server with the demo team", body = crate::routes::openapi::ErrorBody)))]
pub async fn demo_sign_in(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !demo_sign_in_available(&state).await? {
        return Err(ApiError::not_found("no such endpoint"));
    }
    let token = demo_manager_token(&state.auth).map_err(|e| ApiError::internal(e.to_string()))?;
    tracing::info!(team = DEMO_TEAM, user = DEMO_MANAGER, "demo sign-in");
    Ok(Json(json!({ "token": token, "team": DEMO_TEAM, "user": DEMO_MANAGER, "role": "manager" })))
}

/// `GET /v1/me`: who the token names.
#[utoipa::path(get, path = "/v1/me", tag = "dashboard", responses((status = 200, description = "{team, user, role} of the token", content_type = "application/json"), crate::routes::openapi::Errors))]
pub async fn me(Caller(who): Caller) -> Json<Value> {
    Json(json!({ "team": who.team, "user": who.user, "role": who.role }))
}
