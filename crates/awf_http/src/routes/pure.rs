//! The pure helpers over HTTP: canonical form and content hash of a JSON document.

use crate::db::AppState;
use crate::error::AppError;
use crate::extract::Json;
use axum::extract::State;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(canonical_hash))
}

/// `POST /api/awf/canonical-hash` with any JSON body → `{"hash": ..., "canonical": ...}`.
#[utoipa::path(post, path = "/api/awf/canonical-hash", tag = "pure",
    request_body(content = Object, description = "Any JSON document"),
    responses((status = 200, description = "`{hash, canonical}`: the RFC 8785 form and its SHA-256", body = Object)))]
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
