//! Session lifecycle for admin tools (`/api/admin/awf/...`, an admin key on every route):
//! snapshots, recap, export and import, and the turn write-ahead log.

use crate::db::AppState;
use crate::error::AppError;
use crate::extract::{check_uuid, AdminAuth, Json, Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(snapshot_create, snapshot_list))
        .routes(routes!(snapshot_delete))
        .routes(routes!(snapshot_restore))
        .routes(routes!(recap))
        .routes(routes!(export))
        .routes(routes!(import))
        .routes(routes!(wal_list))
        .routes(routes!(wal_repair))
}

type JsonResult = Result<axum::Json<Value>, AppError>;

/// The body of `POST .../snapshots`: an optional label.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SnapshotBody {
    #[serde(default)]
    label: Option<String>,
}

/// `POST /api/admin/awf/sessions/{id}/snapshots` `{"label"?}` → 201 with the snapshot.
#[utoipa::path(post, path = "/api/admin/awf/sessions/{id}/snapshots", tag = "lifecycle", security(("admin_key" = [])),
    params(("id" = String, Path, description = "The session id (a UUID)")), request_body(content = Option<SnapshotBody>, description = "An optional label"),
    responses((status = 201, description = "The snapshot", body = Object)))]
async fn snapshot_create(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(id): Path<String>,
    crate::extract::RawBody(body): crate::extract::RawBody,
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
#[utoipa::path(get, path = "/api/admin/awf/sessions/{id}/snapshots", tag = "lifecycle", security(("admin_key" = [])),
    params(("id" = String, Path, description = "The session id (a UUID)")), responses((status = 200, description = "The snapshots, newest first", body = [Object])))]
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
#[utoipa::path(delete, path = "/api/admin/awf/sessions/{id}/snapshots/{snapshot_id}", tag = "lifecycle", security(("admin_key" = [])),
    params(("id" = String, Path, description = "The session id (a UUID)"), ("snapshot_id" = i64, Path, description = "The snapshot id")), responses((status = 200, description = "`{\"deleted\": true}`", body = Object)))]
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
#[utoipa::path(post, path = "/api/admin/awf/sessions/{id}/restore/{snapshot_id}", tag = "lifecycle", security(("admin_key" = [])),
    params(("id" = String, Path, description = "The session id (a UUID)"), ("snapshot_id" = i64, Path, description = "The snapshot id")), responses((status = 200, description = "The restore's result", body = Object)))]
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
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RecapQuery {
    /// How many of the newest turns to recap (0 to 1000, default 3).
    #[serde(rename = "lastTurns", alias = "last_turns", default = "three")]
    last_turns: i32,
}

fn three() -> i32 {
    3
}

/// `GET /api/admin/awf/sessions/{id}/recap?lastTurns=K` (default 3, 0 to 1000) → the recap.
#[utoipa::path(get, path = "/api/admin/awf/sessions/{id}/recap", tag = "lifecycle", security(("admin_key" = [])),
    params(("id" = String, Path, description = "The session id (a UUID)"), RecapQuery), responses((status = 200, description = "The recap", body = Object)))]
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
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    /// `false` exports secrets and PII unredacted (admin rights; default `true`).
    #[serde(default)]
    redact: Option<bool>,
}

/// `GET /api/admin/awf/sessions/{id}/export[?redact=false]` → the bundle. Redacted unless
/// `redact=false`, which the database allows only with admin rights (an admin key has them).
#[utoipa::path(get, path = "/api/admin/awf/sessions/{id}/export", tag = "lifecycle", security(("admin_key" = [])),
    params(("id" = String, Path, description = "The session id (a UUID)"), ExportQuery), responses((status = 200, description = "The session bundle", body = Object)))]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    /// A bundle as the export route returns it.
    #[schema(value_type = Object)]
    bundle: Value,
    /// Keep the bundle's turn ids (default `false`).
    #[serde(default, rename = "preserveTurnId", alias = "preserve_turn_id")]
    preserve_turn_id: bool,
}

/// `POST /api/admin/awf/sessions/import` `{"bundle", "preserveTurnId"?}` → 201 with the new
/// session.
#[utoipa::path(post, path = "/api/admin/awf/sessions/import", tag = "lifecycle", security(("admin_key" = [])),
    request_body = ImportBody, responses((status = 201, description = "The imported session", body = Object)))]
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
#[utoipa::path(get, path = "/api/admin/awf/sessions/{id}/wal", tag = "lifecycle", security(("admin_key" = [])),
    params(("id" = String, Path, description = "The session id (a UUID)")), responses((status = 200, description = "The session's WAL entries, oldest first", body = [Object])))]
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
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RepairQuery {
    /// Only this session's entries (a UUID); all sessions when left out.
    #[serde(default)]
    session: Option<String>,
}

/// `GET` or `POST /api/admin/awf/wal/repair[?session=<id>]` → what the reconciliation did to
/// each unapplied entry (of one session, or all).
#[utoipa::path(method(get, post), path = "/api/admin/awf/wal/repair", tag = "lifecycle", security(("admin_key" = [])),
    params(RepairQuery), responses((status = 200, description = "What reconciliation did to each unapplied entry", body = [Object])))]
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
