//! Session lifecycle for admin tools (`/api/admin/awf/...`, an admin key on every route):
//! snapshots, recap, export and import, and the turn write-ahead log.

use crate::db::AppState;
use crate::error::AppError;
use crate::extract::{check_uuid, AdminAuth, Json, Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/admin/awf/sessions/{id}/snapshots",
            post(snapshot_create).get(snapshot_list),
        )
        .route(
            "/api/admin/awf/sessions/{id}/snapshots/{snapshot_id}",
            delete(snapshot_delete),
        )
        .route(
            "/api/admin/awf/sessions/{id}/restore/{snapshot_id}",
            post(snapshot_restore),
        )
        .route("/api/admin/awf/sessions/{id}/recap", get(recap))
        .route("/api/admin/awf/sessions/{id}/export", get(export))
        .route("/api/admin/awf/sessions/import", post(import))
        .route("/api/admin/awf/sessions/{id}/wal", get(wal_list))
        .route(
            "/api/admin/awf/wal/repair",
            get(wal_repair).post(wal_repair),
        )
}

type JsonResult = Result<axum::Json<Value>, AppError>;

/// The body of `POST .../snapshots`: an optional label.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotBody {
    #[serde(default)]
    label: Option<String>,
}

/// `POST /api/admin/awf/sessions/{id}/snapshots` `{"label"?}` → 201 with the snapshot.
async fn snapshot_create(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, axum::Json<Value>), AppError> {
    check_uuid("session id", &id)?;
    let label = crate::extract::optional_json::<SnapshotBody>(&body)?.label;
    let v = state
        .json(
            &admin.into(),
            "SELECT awf.snapshot_create($1::text::uuid, $2)",
            &[&id, &label],
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(v)))
}

/// `GET /api/admin/awf/sessions/{id}/snapshots` → the snapshots, newest first.
async fn snapshot_list(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(id): Path<String>,
) -> JsonResult {
    check_uuid("session id", &id)?;
    let v = state
        .json(
            &admin.into(),
            "SELECT coalesce(jsonb_agg(to_jsonb(s)), '[]') FROM awf.snapshot_list($1::text::uuid) s",
            &[&id],
        )
        .await?;
    Ok(axum::Json(v))
}

/// `DELETE /api/admin/awf/sessions/{id}/snapshots/{snapshot_id}` → `{"deleted": true}`.
async fn snapshot_delete(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path((id, snapshot_id)): Path<(String, i64)>,
) -> JsonResult {
    check_uuid("session id", &id)?;
    let v = state
        .json(
            &admin.into(),
            "SELECT jsonb_build_object('deleted', awf.snapshot_delete($1::text::uuid, $2))",
            &[&id, &snapshot_id],
        )
        .await?;
    Ok(axum::Json(v))
}

/// `POST /api/admin/awf/sessions/{id}/restore/{snapshot_id}` → the restore's result.
async fn snapshot_restore(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path((id, snapshot_id)): Path<(String, i64)>,
) -> JsonResult {
    check_uuid("session id", &id)?;
    let v = state
        .json(
            &admin.into(),
            "SELECT awf.snapshot_restore($1::text::uuid, $2)",
            &[&id, &snapshot_id],
        )
        .await?;
    Ok(axum::Json(v))
}

/// The query of the recap route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecapQuery {
    #[serde(rename = "lastTurns", alias = "last_turns", default = "three")]
    last_turns: i32,
}

fn three() -> i32 {
    3
}

/// `GET /api/admin/awf/sessions/{id}/recap?lastTurns=K` (default 3, 0 to 1000) → the recap.
async fn recap(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(id): Path<String>,
    Query(q): Query<RecapQuery>,
) -> JsonResult {
    check_uuid("session id", &id)?;
    let v = state
        .json(
            &admin.into(),
            "SELECT awf.recap($1::text::uuid, $2)",
            &[&id, &q.last_turns],
        )
        .await?;
    Ok(axum::Json(v))
}

/// The query of the export route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    #[serde(default)]
    redact: Option<bool>,
}

/// `GET /api/admin/awf/sessions/{id}/export[?redact=false]` → the bundle. Redacted unless
/// `redact=false`, which the database allows only with admin rights (an admin key has them).
async fn export(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> JsonResult {
    check_uuid("session id", &id)?;
    let v = state
        .json(
            &admin.into(),
            "SELECT awf.session_export($1::text::uuid, $2)",
            &[&id, &q.redact],
        )
        .await?;
    Ok(axum::Json(v))
}

/// The body of the import route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    bundle: Value,
    #[serde(default, rename = "preserveTurnId", alias = "preserve_turn_id")]
    preserve_turn_id: bool,
}

/// `POST /api/admin/awf/sessions/import` `{"bundle", "preserveTurnId"?}` → 201 with the new
/// session.
async fn import(
    State(state): State<AppState>,
    admin: AdminAuth,
    Json(body): Json<ImportBody>,
) -> Result<(StatusCode, axum::Json<Value>), AppError> {
    let v = state
        .json(
            &admin.into(),
            "SELECT awf.session_import($1::jsonb, $2)",
            &[&body.bundle, &body.preserve_turn_id],
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(v)))
}

/// `GET /api/admin/awf/sessions/{id}/wal` → the session's WAL entries, oldest first.
async fn wal_list(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(id): Path<String>,
) -> JsonResult {
    check_uuid("session id", &id)?;
    let v = state
        .json(
            &admin.into(),
            "SELECT coalesce(jsonb_agg(to_jsonb(w)), '[]') FROM awf.wal_list($1::text::uuid) w",
            &[&id],
        )
        .await?;
    Ok(axum::Json(v))
}

/// The query of the WAL repair route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepairQuery {
    #[serde(default)]
    session: Option<String>,
}

/// `GET` or `POST /api/admin/awf/wal/repair[?session=<id>]` → what the reconciliation did to
/// each unapplied entry (of one session, or all).
async fn wal_repair(
    State(state): State<AppState>,
    admin: AdminAuth,
    Query(q): Query<RepairQuery>,
) -> JsonResult {
    if let Some(s) = &q.session {
        check_uuid("session", s)?;
    }
    let v = state
        .json(
            &admin.into(),
            "SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]') FROM awf.wal_reconcile($1::text::uuid) r",
            &[&q.session],
        )
        .await?;
    Ok(axum::Json(v))
}
