//! `GET /health`: the server is up and the extension answers.

use crate::db::AppState;
use crate::error::AppError;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

pub fn routes() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

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
