//! Cloud saves for devices (their own user's saves) and admin tools (any save):
//! materialize, verify, export, delete, restore, and a user's quota.

use crate::db::AppState;
use crate::error::AppError;
use crate::extract::{check_uuid, Caller, Json, Path};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, REFERRER_POLICY};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(materialize))
        .routes(routes!(verify))
        .routes(routes!(export))
        .routes(routes!(restore))
        .routes(routes!(delete))
        .routes(routes!(quota))
        .routes(routes!(signing_key))
        .routes(routes!(download))
}

type JsonResult = Result<axum::Json<Value>, AppError>;

/// The body of `POST .../save/materialize`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Materialize {
    save_id: String,
    #[serde(default)]
    target_turn: Option<i64>,
}

/// `POST /api/awf-cloud-sync/save/materialize` `{"save_id", "target_turn"?}` → the state at
/// that turn (the head when left out), rebuilt from the stored chain.
#[utoipa::path(post, path = "/api/awf-cloud-sync/save/materialize", tag = "saves", security(("device_id" = [], "device_token" = []), ("admin_key" = [])),
    request_body = Materialize, responses((status = 200, description = "The state at that turn", body = Object)))]
async fn materialize(
    State(state): State<AppState>,
    caller: Caller,
    Json(b): Json<Materialize>,
) -> JsonResult {
    check_uuid("save_id", &b.save_id)?;
    let v = state
        .json(
            &caller,
            "SELECT awf.save_materialize($1::text::uuid, $2)",
            &[&b.save_id, &b.target_turn],
        )
        .await?;
    Ok(axum::Json(v))
}

/// A body naming one save.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SaveOnly {
    save_id: String,
}

/// `POST /api/awf-cloud-sync/save/verify` `{"save_id"}` → the integrity report.
#[utoipa::path(post, path = "/api/awf-cloud-sync/save/verify", tag = "saves", security(("device_id" = [], "device_token" = []), ("admin_key" = [])),
    request_body = SaveOnly, responses((status = 200, description = "The integrity report", body = Object)))]
async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    Json(b): Json<SaveOnly>,
) -> JsonResult {
    check_uuid("save_id", &b.save_id)?;
    let v = state
        .json(
            &caller,
            "SELECT awf.save_verify($1::text::uuid)",
            &[&b.save_id],
        )
        .await?;
    Ok(axum::Json(v))
}

/// The body of `POST .../save/export`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Export {
    save_id: String,
    /// `jsonl` (default), `json` or `zip` (the JSON Lines archive in a zip file).
    #[serde(default = "jsonl")]
    format: String,
    /// Also export the save's audit rows (admin key only).
    #[serde(default)]
    include_audit: bool,
    /// Answer with a one-use, time-limited download link instead of the archive.
    #[serde(default)]
    link: bool,
}

fn jsonl() -> String {
    "jsonl".into()
}

/// `POST /api/awf-cloud-sync/save/export` `{"save_id", "format"?, "include_audit"?, "link"?}`
/// → the archive, streamed: JSON Lines (`application/x-ndjson`, the default), one JSON
/// document (`"format": "json"`) or a zip holding the JSON Lines (`"format": "zip"`). With
/// `"link": true` → 201 `{url, expires_at, format}`: a URL that serves the archive once,
/// without credentials, until it expires. `include_audit` needs an admin key.
#[utoipa::path(post, path = "/api/awf-cloud-sync/save/export", tag = "saves", security(("device_id" = [], "device_token" = []), ("admin_key" = [])),
    request_body = Export, responses(
        (status = 200, description = "The archive", content((String = "application/x-ndjson"), (Object = "application/json"), (Vec<u8> = "application/zip"))),
        (status = 201, description = "`{url, expires_at, format}`: a one-use download link", body = Object)))]
async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Json(b): Json<Export>,
) -> Result<Response, AppError> {
    check_uuid("save_id", &b.save_id)?;
    if b.link {
        let v = state
            .json(
                &caller,
                "SELECT awf.save_export_link($1::text::uuid, $2, $3)",
                &[&b.save_id, &b.format, &b.include_audit],
            )
            .await?;
        let token = v["token"].as_str().unwrap_or_default();
        let body = serde_json::json!({
            "url": format!("/api/awf-cloud-sync/save/download/{token}"),
            "expires_at": v["expires_at"],
            "format": v["format"],
        });
        let mut res = (StatusCode::CREATED, axum::Json(body)).into_response();
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(res);
    }
    let sql_format = match b.format.as_str() {
        "zip" => "jsonl",
        other => other,
    };
    let row = state
        .call(
            &caller,
            "SELECT awf.save_export($1::text::uuid, $2, $3)",
            &[&b.save_id, &sql_format, &b.include_audit],
        )
        .await?;
    archive(&b.save_id, &b.format, row.get(0)).await
}

/// `GET /api/awf-cloud-sync/save/download/{token}` → the archive of a download link, once; no
/// other credential. An unknown, used or expired link is 401.
#[utoipa::path(get, path = "/api/awf-cloud-sync/save/download/{token}", tag = "saves",
    params(("token" = String, Path, description = "The link's token (64 hex)")),
    responses((status = 200, description = "The archive, as the export route sends it",
        content((String = "application/x-ndjson"), (Object = "application/json"), (Vec<u8> = "application/zip")))))]
async fn download(
    State(state): State<AppState>,
    method: axum::http::Method,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    // axum answers HEAD with the GET route; a link preview's HEAD must not spend the link.
    if method == axum::http::Method::HEAD {
        return Err(AppError::wrong_method());
    }
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::new(
            StatusCode::UNAUTHORIZED,
            "28000",
            "this download link is unknown, used or expired",
        ));
    }
    let mut conn = state.conn().await?;
    let tx = conn.transaction().await?;
    let row = tx
        .query_one(
            "SELECT save_id::text, format, archive FROM awf.save_export_redeem($1)",
            &[&token],
        )
        .await?;
    tx.commit().await?;
    archive(
        &row.get::<_, String>(0),
        &row.get::<_, String>(1),
        row.get(2),
    )
    .await
}

/// An export's archive as a streamed answer of its format, named for download, never cached
/// (a download link's answer must not outlive the link in a shared cache).
async fn archive(save_id: &str, format: &str, text: String) -> Result<Response, AppError> {
    let (content_type, bytes, ext) = match format {
        "zip" => {
            // Deflating up to the export limit is CPU work: off the async workers.
            let name = awf_core::archive_zip::entry_name(save_id);
            let zip = tokio::task::spawn_blocking(move || {
                awf_core::archive_zip::jsonl_to_zip(&name, &text)
            })
            .await
            .map_err(|e| internal(e.to_string()))?
            .map_err(|e| internal(e.message))?;
            ("application/zip", Bytes::from(zip), "zip")
        }
        "json" => ("application/json", Bytes::from(text), "json"),
        _ => ("application/x-ndjson", Bytes::from(text), "jsonl"),
    };
    // Sent in 64 KiB chunks, so the server never copies a large archive again for the socket.
    const CHUNK: usize = 64 * 1024;
    let len = bytes.len();
    let chunks = (0..len.div_ceil(CHUNK)).map(move |i| {
        Ok::<_, std::convert::Infallible>(bytes.slice(i * CHUNK..((i + 1) * CHUNK).min(len)))
    });
    let disposition = format!("attachment; filename=\"save-{save_id}.{ext}\"");
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).expect("a uuid file name is ASCII"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        Body::from_stream(futures_util::stream::iter(chunks)),
    )
        .into_response())
}

/// The body of `DELETE .../save`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Delete {
    save_id: String,
    reason: String,
}

/// `DELETE /api/awf-cloud-sync/save` `{"save_id", "reason"}` → what was deleted (a tombstone
/// stays).
#[utoipa::path(delete, path = "/api/awf-cloud-sync/save", tag = "saves", security(("device_id" = [], "device_token" = []), ("admin_key" = [])),
    request_body = Delete, responses((status = 200, description = "What was deleted; a tombstone stays", body = Object)))]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Json(b): Json<Delete>,
) -> JsonResult {
    check_uuid("save_id", &b.save_id)?;
    let v = state
        .json(
            &caller,
            "SELECT awf.save_delete($1::text::uuid, $2)",
            &[&b.save_id, &b.reason],
        )
        .await?;
    Ok(axum::Json(v))
}

/// The body of `POST .../save/restore`: a save and a turn, or an archived branch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Restore {
    #[serde(default)]
    save_id: Option<String>,
    #[serde(default)]
    target_turn: Option<i64>,
    #[serde(default)]
    archive_id: Option<i64>,
}

/// `POST /api/awf-cloud-sync/save/restore` `{"save_id", "target_turn"}` (the turns after it are
/// archived) or `{"archive_id"}` (an archived branch becomes the head again).
#[utoipa::path(post, path = "/api/awf-cloud-sync/save/restore", tag = "saves", security(("device_id" = [], "device_token" = []), ("admin_key" = [])),
    request_body = Restore, responses((status = 200, description = "The restore's result", body = Object)))]
async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Json(b): Json<Restore>,
) -> JsonResult {
    let v = match (b.save_id, b.target_turn, b.archive_id) {
        (Some(save_id), Some(turn), None) => {
            check_uuid("save_id", &save_id)?;
            state
                .json(
                    &caller,
                    "SELECT awf.save_restore($1::text::uuid, $2)",
                    &[&save_id, &turn],
                )
                .await?
        }
        (None, None, Some(archive_id)) => {
            state
                .json(
                    &caller,
                    "SELECT awf.save_archive_restore($1)",
                    &[&archive_id],
                )
                .await?
        }
        _ => {
            return Err(AppError::bad_request(
                "the body is {\"save_id\", \"target_turn\"} or {\"archive_id\"}",
            ))
        }
    };
    Ok(axum::Json(v))
}

/// `GET /api/awf-cloud-sync/quota/{user_id_hash}` → the user's storage and quota. A device
/// may ask only about its own user (403 otherwise).
#[utoipa::path(get, path = "/api/awf-cloud-sync/quota/{user_id_hash}", tag = "saves", security(("device_id" = [], "device_token" = []), ("admin_key" = [])),
    params(("user_id_hash" = String, Path, description = "The user's id hash")),
    responses((status = 200, description = "The user's storage and quota", body = Object)))]
async fn quota(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> JsonResult {
    let v = state
        .json(&caller, "SELECT awf.user_quota($1)", &[&user])
        .await?;
    Ok(axum::Json(v))
}

/// The query of the signing-key route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct KeyQuery {
    /// The save (a UUID).
    save_id: String,
}

/// `GET /api/awf-cloud-sync/save/signing-key?save_id=<uuid>` → the save's signing key
/// `{save_id, key, algorithm, header}`, for a device of the save's user (or an admin key);
/// never cached. Registration with a session that has a save returns it too.
#[utoipa::path(get, path = "/api/awf-cloud-sync/save/signing-key", tag = "saves", security(("device_id" = [], "device_token" = []), ("admin_key" = [])),
    params(KeyQuery), responses((status = 200, description = "`{save_id, key, algorithm, header}`", body = Object)))]
async fn signing_key(
    State(state): State<AppState>,
    caller: Caller,
    crate::extract::Query(q): crate::extract::Query<KeyQuery>,
) -> Result<Response, AppError> {
    check_uuid("save_id", &q.save_id)?;
    let v = state
        .json(
            &caller,
            "SELECT awf.sync_signing_key($1::text::uuid)",
            &[&q.save_id],
        )
        .await?;
    let mut res = axum::Json(v).into_response();
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

fn internal(message: impl Into<String>) -> AppError {
    AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "XX000", message)
}
