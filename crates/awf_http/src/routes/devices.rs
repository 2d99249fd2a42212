//! Device registration and token rotation: `awf.device_register`, `awf.device_rotate_token`.

use crate::db::AppState;
use crate::error::AppError;
use crate::extract::{check_uuid, DeviceAuth, Json};
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/devices", post(register))
        .route("/v1/devices/token", post(rotate_token))
}

/// The body of `POST /v1/devices`.
#[derive(Debug, Deserialize)]
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

/// `POST /v1/devices` `{"device_id", "user_id_hash", "session_id"?}` → 201
/// `{"device_id", "sync_token", "expires_at"}`.
async fn register(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Register>,
) -> Result<Response, AppError> {
    authorize_backend(&state, &headers)?;
    if let Some(sid) = &body.session_id {
        check_uuid("session_id", sid)?;
    }
    let mut conn = state.conn().await?;
    // The server's login is a non-superuser under row-level security: it names the user the
    // registration is for (the admin token vouched for the caller), for this transaction only.
    let tx = conn.transaction().await?;
    tx.query_one("SELECT awf.act_as($1)", &[&body.user_id_hash])
        .await?;
    let row = tx
        .query_one(
            "SELECT awf.device_register($1, $2, $3::text::uuid)",
            &[&body.device_id, &body.user_id_hash, &body.session_id],
        )
        .await?;
    tx.commit().await?;
    Ok(token_response(StatusCode::CREATED, row.get(0)))
}

/// `POST /v1/devices/token` with the device headers → 200 with a new token (the old one stops
/// working).
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

/// Registration names the user a device acts for, so only a backend holding the admin token
/// may do it: 403 when none is configured, 401 when it is missing or wrong.
fn authorize_backend(state: &AppState, headers: &axum::http::HeaderMap) -> Result<(), AppError> {
    let Some(expected) = state.admin_token() else {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            "42501",
            "device registration over HTTP is disabled: start the server with AWF_HTTP_ADMIN_TOKEN",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(AppError::new(
            StatusCode::UNAUTHORIZED,
            "28000",
            "registering a device needs the backend's admin token (Authorization: Bearer ...)",
        ))
    }
}
