//! `GET /openapi.json`: the OpenAPI 3.1 description of the whole HTTP API, generated from the
//! handlers' `#[utoipa::path]` annotations. The router is built from the same registrations
//! ([`utoipa_axum::routes!`] in [`super::api_router`]), so a route cannot exist without its
//! description, nor a description without its route.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder, ResponsesBuilder};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

/// Every refusal's body (see [`crate::error::ApiError`]).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// A stable snake_case code: `bad_request`, `invalid_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `unknown_rep`, `overloaded`, `internal`, …
    error: String,
    /// For people; a 5xx says only which request id to quote.
    message: String,
    /// The `x-request-id` of the answer, also in the server's log.
    request_id: String,
    /// The document a refusal is about, when there is one.
    doc_id: Option<String>,
}

/// The refusals every endpoint may answer with, each with an [`ErrorBody`].
#[derive(Debug)]
pub struct Errors;

impl utoipa::IntoResponses for Errors {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let cases = [
            ("400", "the request cannot be read, or a query parameter is out of its bound"),
            ("401", "no token, or one that does not verify"),
            ("403", "the caller's role may not do this"),
            ("404", "no such thing, or out of the caller's scope (they look the same)"),
            ("408", "the body did not arrive in time"),
            ("413", "the body is larger than this endpoint takes"),
            ("422", "the body reads well but asks for something out of bounds"),
            ("429", "this user has too many requests with a body in flight (Retry-After)"),
            ("503", "the server is at one of its limits (Retry-After)"),
        ];
        let mut b = ResponsesBuilder::new();
        for (status, why) in cases {
            b = b.response(
                status,
                ResponseBuilder::new().description(why).content(
                    "application/json",
                    ContentBuilder::new().schema(Some(ErrorBody::schema())).build(),
                ),
            );
        }
        b.build().into()
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "fieldsync",
        description = "Offline-first sync for field sales teams: the sync protocol, documents, planning, \
                       reports, the team map, check-in review and the live feed. Every endpoint but the \
                       dashboard's page and settings, /healthz and this description takes a bearer token \
                       (JWT); errors are `{error, message, request_id}`.",
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody)),
)]
struct ApiDoc;

/// The description: the annotations of every registered route, under [`ApiDoc`]'s header.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::api_router().into_openapi());
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The description, as served.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "this API's OpenAPI 3.1 description", content_type = "application/json")))]
pub async fn openapi_json() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| openapi().to_pretty_json().unwrap_or_else(|_| "{}".into()));
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.as_str()).into_response()
}
