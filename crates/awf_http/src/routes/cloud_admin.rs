//! Cloud-save administration (an admin key on every route): conflicts, statistics,
//! retention, one save or device in detail, and the audit log.

use crate::db::AppState;
use crate::error::AppError;
use crate::extract::{check_uuid, AdminAuth, Path, Query};
use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(conflicts))
        .routes(routes!(stats))
        .routes(routes!(retention))
        .routes(routes!(save_details))
        .routes(routes!(device_details))
        .routes(routes!(audit))
}

type JsonResult = Result<axum::Json<Value>, AppError>;

/// The query of the conflicts route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ConflictsQuery {
    /// Only this save's conflicts (a UUID).
    #[serde(default)]
    save_id: Option<String>,
}

/// `GET /api/awf-cloud-sync/save/conflicts[?save_id=]` → resolved conflicts, newest first.
#[utoipa::path(get, path = "/api/awf-cloud-sync/save/conflicts", tag = "cloud-admin", security(("admin_key" = [])),
    params(ConflictsQuery), responses((status = 200, description = "Resolved conflicts, newest first", body = [Object])))]
async fn conflicts(
    State(state): State<AppState>,
    admin: AdminAuth,
    Query(q): Query<ConflictsQuery>,
) -> JsonResult {
    if let Some(s) = &q.save_id {
        check_uuid("save_id", s)?;
    }
    let v = state
        .json(
            &admin.into(),
            "SELECT coalesce(jsonb_agg(to_jsonb(c)), '[]') FROM awf.conflicts($1::text::uuid) c",
            &[&q.save_id],
        )
        .await?;
    Ok(axum::Json(v))
}

/// `GET /api/awf-cloud-sync/save/stats` → counts across saves, blobs, devices and conflicts.
#[utoipa::path(get, path = "/api/awf-cloud-sync/save/stats", tag = "cloud-admin", security(("admin_key" = [])),
    responses((status = 200, description = "Counts across saves, blobs, devices and conflicts", body = Object)))]
async fn stats(State(state): State<AppState>, admin: AdminAuth) -> JsonResult {
    let v = state
        .json(&admin.into(), "SELECT awf.sync_stats()", &[])
        .await?;
    Ok(axum::Json(v))
}

/// `POST /api/awf-cloud-sync/admin/retention` → what the retention policy deleted.
#[utoipa::path(post, path = "/api/awf-cloud-sync/admin/retention", tag = "cloud-admin", security(("admin_key" = [])),
    responses((status = 200, description = "What the retention policy deleted", body = Object)))]
async fn retention(State(state): State<AppState>, admin: AdminAuth) -> JsonResult {
    let v = state
        .json(&admin.into(), "SELECT awf.retention_enforce()", &[])
        .await?;
    Ok(axum::Json(v))
}

/// `GET /api/awf-cloud-sync/admin/save/{save_id}` → one save for an operator.
#[utoipa::path(get, path = "/api/awf-cloud-sync/admin/save/{save_id}", tag = "cloud-admin", security(("admin_key" = [])),
    params(("save_id" = String, Path, description = "The save id (a UUID)")),
    responses((status = 200, description = "One save for an operator", body = Object)))]
async fn save_details(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(save_id): Path<String>,
) -> JsonResult {
    check_uuid("save_id", &save_id)?;
    let v = state
        .json(
            &admin.into(),
            "SELECT awf.save_details($1::text::uuid)",
            &[&save_id],
        )
        .await?;
    Ok(axum::Json(v))
}

/// `GET /api/awf-cloud-sync/admin/device/{device_id}` → one device for an operator.
#[utoipa::path(get, path = "/api/awf-cloud-sync/admin/device/{device_id}", tag = "cloud-admin", security(("admin_key" = [])),
    params(("device_id" = String, Path, description = "The device id")),
    responses((status = 200, description = "One device for an operator", body = Object)))]
async fn device_details(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(device_id): Path<String>,
) -> JsonResult {
    let v = state
        .json(
            &admin.into(),
            "SELECT awf.device_details($1)",
            &[&device_id],
        )
        .await?;
    Ok(axum::Json(v))
}

/// The query of the audit route: every filter optional; `from`/`to` are timestamps
/// (`from` inclusive, `to` exclusive); `limit` defaults to 1000.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    save_id: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    limit: Option<i32>,
}

/// `GET /api/awf-cloud-sync/admin/audit?save_id=&device_id=&action=&from=&to=&limit=` → audit
/// rows, newest first.
#[utoipa::path(get, path = "/api/awf-cloud-sync/admin/audit", tag = "cloud-admin", security(("admin_key" = [])),
    params(AuditQuery), responses((status = 200, description = "Audit rows, newest first", body = [Object])))]
async fn audit(
    State(state): State<AppState>,
    admin: AdminAuth,
    Query(q): Query<AuditQuery>,
) -> JsonResult {
    if let Some(s) = &q.save_id {
        check_uuid("save_id", s)?;
    }
    let v = state
        .json(
            &admin.into(),
            "SELECT coalesce(jsonb_agg(to_jsonb(a)), '[]')
             FROM awf.audit_query($1::text::uuid, $2, $3, $4::text::timestamptz,
                                  $5::text::timestamptz, coalesce($6, 1000)) a",
            &[
                &q.save_id,
                &q.device_id,
                &q.action,
                &q.from,
                &q.to,
                &q.limit,
            ],
        )
        .await?;
    Ok(axum::Json(v))
}
