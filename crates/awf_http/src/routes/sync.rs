//! Cloud-save sync for devices: `awf.sync_up` and `awf.sync_down`.

use crate::db::AppState;
use crate::error::AppError;
use crate::extract::{check_uuid, DeviceAuth, Json, Query};
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/awf-cloud-sync/sync/up", post(sync_up))
        .route("/api/awf-cloud-sync/sync/down", get(sync_down))
}

/// `POST /api/awf-cloud-sync/sync/up` with the device headers; the body is `awf.sync_up`'s request, passed as
/// it is (numbers keep their text) → 200 with its result (`fast_forward` or `conflict`).
async fn sync_up(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Json(request): Json<Value>,
) -> Result<axum::Json<Value>, AppError> {
    let conn = state.conn().await?;
    let row = conn
        .query_one(
            "SELECT awf.sync_up($1, $2, $3::jsonb)",
            &[&auth.device_id, &auth.token, &request],
        )
        .await?;
    Ok(axum::Json(row.get(0)))
}

/// The query of `GET /api/awf-cloud-sync/sync/down`.
#[derive(Debug, Deserialize)]
struct Down {
    save_id: String,
    since_turn: i64,
}

/// `GET /api/awf-cloud-sync/sync/down?save_id=<uuid>&since_turn=<n>` with the device headers → 200 with the
/// turns after `since_turn`.
async fn sync_down(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Query(q): Query<Down>,
) -> Result<axum::Json<Value>, AppError> {
    check_uuid("save_id", &q.save_id)?;
    let conn = state.conn().await?;
    let row = conn
        .query_one(
            "SELECT awf.sync_down($1, $2, $3::text::uuid, $4)",
            &[&auth.device_id, &auth.token, &q.save_id, &q.since_turn],
        )
        .await?;
    Ok(axum::Json(row.get(0)))
}
