//! `GET /health`: the server is up and the extension answers.

use crate::db::AppState;
use crate::error::AppError;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "`{status, server_version, extension_version}`", body = Object)))]
async fn health(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let conn = state.conn().await?;
    let row = conn.query_one("SELECT awf.version()", &[]).await?;
    let extension: String = row.get(0);
    Ok(Json(json!({
        "status": "ok",
        "server_version": env!("CARGO_PKG_VERSION"),
        "extension_version": extension,
    })))
}
