//! The router: one module per resource, merged here.

mod health;
mod pure;

use crate::db::AppState;
use axum::Router;

/// Builds the whole HTTP API over a database pool.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(pure::routes())
        .with_state(state)
}
