//! The OpenAPI 3.1 document, generated from the handlers' annotations and served at
//! `GET /openapi.json`. Every route is registered through `utoipa_axum`, so a route cannot
//! exist without its entry; the error responses every route shares are added here once.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, ResponseBuilder};
use utoipa::{Modify, ToSchema};

/// The error body of every non-2xx answer.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only; errors are built as JSON in `error.rs`
pub struct Error {
    error: ErrorDetail,
}

/// What went wrong: the SQLSTATE, a message, and (for a 500) the request id.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// A PostgreSQL SQLSTATE, for instance `28000`, `42501`, `P0002`, `22023`.
    code: String,
    message: String,
    request_id: Option<String>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "awf_lifecycle HTTP API",
        description = "Session lifecycle (admin tools) and cloud-save sync (devices). Every route is one SQL call; the SQLSTATE of an error decides its status.",
        license(name = "Apache-2.0")
    ),
    components(schemas(Error, ErrorDetail))
)]
pub struct ApiDoc;

/// Adds the security schemes and the shared error responses; applied once every route is in.
pub struct Shared;

/// The error statuses any route may answer, and when.
const ERRORS: [(&str, &str); 9] = [
    (
        "400",
        "malformed request: bad JSON, id or parameter (22P02 and other 22xxx)",
    ),
    ("401", "missing, malformed or wrong credential (28000)"),
    ("403", "a credential without the right (42501)"),
    ("404", "no such session, save, snapshot or device (P0002)"),
    ("409", "a concurrent change won (23505, 40001, 40P01)"),
    ("413", "body or work over a limit (54000)"),
    ("422", "a value out of range (22023)"),
    (
        "503",
        "busy: a timeout, a full pool or too many waiters; Retry-After says when",
    ),
    (
        "500",
        "an internal error; the body has a request id for the log",
    ),
];

impl Modify for Shared {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An admin key (awfk_...) from awf.admin_key_create"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "device_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A device's sync token, with X-Device-Id"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "device_id",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Device-Id"))),
        );
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                for (status, description) in ERRORS {
                    let response = ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                                    "Error",
                                ))))
                                .build(),
                        )
                        .build();
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert(RefOr::T(response));
                }
            }
        }
    }
}
