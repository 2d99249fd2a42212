//! The router: one module per resource, merged here.

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
/// Sync up and down (device).
mod sync;

use crate::db::AppState;
use axum::extract::DefaultBodyLimit;
use axum::Router;

/// Builds the whole HTTP API over a database pool.
pub fn router(state: AppState) -> Router {
    let max_body = state.limits().max_body_bytes;
    Router::new()
        .merge(health::routes())
        .merge(pure::routes())
        .merge(devices::routes())
        .merge(sync::routes())
        .merge(saves::routes())
        .merge(cloud_admin::routes())
        .merge(lifecycle::routes())
        // Unknown paths and methods answer in the same error shape as everything else.
        .fallback(|| async { crate::error::AppError::no_route() })
        .method_not_allowed_fallback(|| async { crate::error::AppError::wrong_method() })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}
