//! The router: one module per resource, merged here with the OpenAPI document they describe,
//! and the layers every request passes (request id, trace, metrics, compression, body limit).

/// Cloud-save administration: conflicts, stats, retention, details, audit (admin key).
mod cloud_admin;
/// Device registration (admin key) and token rotation (device).
mod devices;
/// `/health`.
mod health;
/// Session lifecycle for admin tools: snapshots, recap, export/import, WAL (admin key).
mod lifecycle;
/// Canonical JSON and its hash.
mod pure;
/// A save's materialize, verify, export, delete, restore, and quota (device or admin key).
mod saves;
/// Sync up and down (device), long poll and event stream.
mod sync;

use crate::db::AppState;
use crate::openapi::ApiDoc;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::Router;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::compression::CompressionLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Every route, with its OpenAPI entry.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::routes())
        .merge(pure::routes())
        .merge(devices::routes())
        .merge(sync::routes())
        .merge(saves::routes())
        .merge(cloud_admin::routes())
        .merge(lifecycle::routes())
        .routes(routes!(crate::metrics::metrics))
        .routes(routes!(openapi_json))
}

/// The OpenAPI 3.1 document of this server.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api().split_for_parts();
    utoipa::Modify::modify(&crate::openapi::Shared, &mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this server", body = Object)))]
async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(openapi())
}

/// Builds the whole HTTP API over a database pool.
pub fn router(state: AppState) -> Router {
    let max_body = state.limits().max_body_bytes;
    let metrics = state.metrics().clone();
    let (routes, _) = api().split_for_parts();
    routes
        // Unknown paths and methods answer in the same error shape as everything else.
        .fallback(|| async { crate::error::AppError::no_route() })
        .method_not_allowed_fallback(|| async { crate::error::AppError::wrong_method() })
        .layer(DefaultBodyLimit::max(max_body))
        // Already-compressed archives are not deflated twice.
        .layer(CompressionLayer::new().compress_when(
            DefaultPredicate::new().and(NotForContentType::const_new("application/zip")),
        ))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(span)
                .on_response(
                    DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(LatencyUnit::Micros),
                )
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .layer(axum::middleware::from_fn(crate::request_id::assign))
        .with_state(state)
}

/// The log span of one request: its id, method and route pattern (never the raw path or query,
/// which can carry ids a log should not collect in bulk).
fn span(req: &Request) -> tracing::Span {
    let id = req
        .headers()
        .get(&crate::request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    tracing::info_span!("request", request_id = %id, method = %req.method(), route = %route)
}
