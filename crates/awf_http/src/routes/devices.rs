//! Device registration and token rotation: `awf.device_register`, `awf.device_rotate_token`.

use crate::db::AppState;
use crate::error::AppError;
use crate::extract::{check_uuid, AdminAuth, Caller, DeviceAuth, Json};
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(rotate_token))
}

/// The body of `POST /api/awf-cloud-sync/devices`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Register {
    device_id: String,
    user_id_hash: String,
    #[serde(default)]
    session_id: Option<String>,
}

/// A response carrying a sync token: never cached (RFC 6749 §5.1).
fn token_response(status: StatusCode, body: Value) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `POST /api/awf-cloud-sync/devices` `{"device_id", "user_id_hash", "session_id"?}` with an
/// admin key → 201 `{"device_id", "sync_token", "expires_at"}`. Registration names the user a
/// device acts for, so it is an admin action: a device must not enroll itself for any user.
#[utoipa::path(post, path = "/api/awf-cloud-sync/devices", tag = "devices", security(("admin_key" = [])),
    request_body = Register, responses((status = 201, description = "`{device_id, sync_token, expires_at}`", body = Object)))]
async fn register(
    State(state): State<AppState>,
    admin: AdminAuth,
    Json(body): Json<Register>,
) -> Result<Response, AppError> {
    if let Some(sid) = &body.session_id {
        check_uuid("session_id", sid)?;
    }
    let v = state
        .json(
            &Caller::Admin(admin),
            "SELECT awf.device_register($1, $2, $3::text::uuid)",
            &[&body.device_id, &body.user_id_hash, &body.session_id],
        )
        .await?;
    Ok(token_response(StatusCode::CREATED, v))
}

/// `POST /api/awf-cloud-sync/devices/token` with the device headers → 200 with a new token
/// (the old one stops working).
#[utoipa::path(post, path = "/api/awf-cloud-sync/devices/token", tag = "devices", security(("device_id" = [], "device_token" = [])),
    responses((status = 200, description = "A new sync token; the old one stops working", body = Object)))]
async fn rotate_token(
    State(state): State<AppState>,
    auth: DeviceAuth,
) -> Result<Response, AppError> {
    let conn = state.conn().await?;
    let row = conn
        .query_one(
            "SELECT awf.device_rotate_token($1, $2)",
            &[&auth.device_id, &auth.token],
        )
        .await?;
    Ok(token_response(StatusCode::OK, row.get(0)))
}
