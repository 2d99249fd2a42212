//! The router: one module per resource, merged here.

mod devices;
mod health;
mod pure;
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
        // Unknown paths and methods answer in the same error shape as everything else.
        .fallback(|| async { crate::error::AppError::no_route() })
        .method_not_allowed_fallback(|| async { crate::error::AppError::wrong_method() })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}
