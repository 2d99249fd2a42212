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
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}
