//! The pure helpers over HTTP: canonical form and content hash of a JSON document.

use crate::db::AppState;
use crate::error::AppError;
use crate::extract::Json;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/awf/canonical-hash", post(canonical_hash))
}

/// `POST /api/awf/canonical-hash` with any JSON body → `{"hash": ..., "canonical": ...}`.
async fn canonical_hash(
    State(state): State<AppState>,
    Json(doc): Json<Value>,
) -> Result<axum::Json<Value>, AppError> {
    let conn = state.conn().await?;
    let row = conn
        .query_one(
            "SELECT awf.canonical_hash($1::jsonb), awf.canonical_json($1::jsonb)",
            &[&doc],
        )
        .await?;
    let hash: String = row.get(0);
    let canonical: String = row.get(1);
    Ok(axum::Json(json!({ "hash": hash, "canonical": canonical })))
}
