//! Cloud-save sync for devices: `awf.sync_up` and `awf.sync_down`, and two ways to hear about
//! new turns without polling: `sync/down?...&wait=N` (a long poll) and `sync/events` (a
//! server-sent event stream). Both are woken by the save's head notification (see
//! [`crate::heads`]) and hold no database connection while they wait.

use crate::db::AppState;
use crate::error::AppError;
use crate::extract::{check_uuid, json_bytes, Caller, DeviceAuth, Query, RawBody};
use crate::heads::Subscription;
use crate::signed::{Covered, Signed};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;
use tokio_postgres::types::ToSql;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The longest `wait` of a long poll, in seconds.
pub const MAX_WAIT_SECONDS: u64 = 60;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sync_up))
        .routes(routes!(sync_down))
        .routes(routes!(sync_events))
}

/// `POST /api/awf-cloud-sync/sync/up` with the device headers (and `X-AWF-Signature`); the
/// body is `awf.sync_up`'s request, passed as it is (numbers keep their text) → 200 with its
/// result (`fast_forward` or `conflict`), signed when the request was.
#[utoipa::path(post, path = "/api/awf-cloud-sync/sync/up", tag = "sync",
    security(("device_id" = [], "device_token" = []), ("admin_key" = [])),
    params(("X-AWF-Signature" = String, Header, description = "`t=<unix s>, n=<nonce>, s=<HMAC hex>`; required unless the server runs with signatures off")),
    request_body(content = Object, description = "`{save_id, base_turn, base_chain, turns, strategy?}`"),
    responses((status = 200, description = "`fast_forward` or `conflict`, with the new head; `X-AWF-Signature` signs it", body = Object)))]
async fn sync_up(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    RawBody(body): RawBody,
) -> Result<Response, AppError> {
    let auth = match caller {
        Caller::Device(d) => d,
        // An admin tool uploads to any save, unsigned (signatures are devices' keys).
        admin @ Caller::Admin(_) => {
            let request = json_bytes(&headers, &body)?;
            let v = state
                .json(&admin, "SELECT awf.sync_up_admin($1::jsonb)", &[&request])
                .await?;
            return Ok(axum::Json(v).into_response());
        }
    };
    let signed = Signed::from_headers(&headers, state.limits().require_signatures)?;
    let request = json_bytes(&headers, &body)?;
    let covered = match &signed {
        Some(s) => {
            let save_id = request["save_id"]
                .as_str()
                .ok_or_else(|| AppError::bad_request("a signed sync/up body names its save_id"))?;
            check_uuid("save_id", save_id)?;
            Some((s, covered(&auth, save_id, "POST", &uri, &body)))
        }
        None => None,
    };
    crate::signed::call(
        &state,
        covered,
        "SELECT awf.sync_up($1, $2, $3::jsonb)",
        &[&auth.device_id, &auth.token, &request],
    )
    .await
}

/// What a signature of this request covers.
fn covered<'a>(
    auth: &'a DeviceAuth,
    save_id: &'a str,
    method: &'a str,
    uri: &'a Uri,
    body: &'a [u8],
) -> Covered<'a> {
    Covered {
        device_id: &auth.device_id,
        save_id,
        method,
        path: uri.path_and_query().map_or(uri.path(), |p| p.as_str()),
        body,
    }
}

/// The query of `GET /api/awf-cloud-sync/sync/down` and `.../sync/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Down {
    /// The save (a UUID).
    save_id: String,
    /// The newest turn the device has; the answer holds the turns after it. Omitted: the
    /// whole save from its newest base (what a device that holds nothing asks for).
    #[serde(default)]
    since_turn: Option<i64>,
    /// Long poll (`sync/down` only): when there is nothing newer, wait up to this many seconds
    /// (0 to 60, default 0) for the save's head to move before answering.
    #[serde(default)]
    wait: Option<u64>,
}

impl Down {
    fn check(&self) -> Result<(), AppError> {
        check_uuid("save_id", &self.save_id)
    }

    /// `since_turn`, or one below every save's origin (so the answer starts at a base).
    fn since(&self) -> i64 {
        self.since_turn.unwrap_or(i64::MIN)
    }
}

const DOWN: &str = "SELECT awf.sync_down($1, $2, $3::text::uuid, $4)";

/// Whether a sync-down answer brings the device anything (turns, or a base to start from).
fn has_news(v: &Value) -> bool {
    v.get("base").is_some() || v["turns"].as_array().is_some_and(|t| !t.is_empty())
}

/// Marks the moves so far as seen, then reads (so a move during the read still wakes the
/// next wait): one `awf.sync_down` call.
async fn read(
    state: &AppState,
    auth: &DeviceAuth,
    sub: &mut Subscription,
    save_id: &str,
    since_turn: i64,
) -> Result<Value, AppError> {
    sub.seen();
    let conn = state.conn().await?;
    let row = conn
        .query_one(DOWN, &[&auth.device_id, &auth.token, &save_id, &since_turn])
        .await?;
    Ok(row.get(0))
}

/// `GET /api/awf-cloud-sync/sync/down?save_id=<uuid>[&since_turn=<n>][&wait=<s>]` with the device
/// headers (and `X-AWF-Signature`) → 200 with the turns after `since_turn`, signed when the
/// request was. With `wait`, an answer with no turns is held until the save's head moves or
/// the wait ends (then the empty answer); the signature is checked before the wait.
#[utoipa::path(get, path = "/api/awf-cloud-sync/sync/down", tag = "sync",
    security(("device_id" = [], "device_token" = []), ("admin_key" = [])),
    params(Down, ("X-AWF-Signature" = String, Header, description = "`t=<unix s>, n=<nonce>, s=<HMAC hex>` over the empty body; required unless the server runs with signatures off")),
    responses((status = 200, description = "The turns after `since_turn` (with a base when the device is behind the oldest kept turn); `X-AWF-Signature` signs it", body = Object)))]
async fn sync_down(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<Down>,
) -> Result<Response, AppError> {
    q.check()?;
    let since = q.since();
    let auth = match caller {
        Caller::Device(d) => d,
        // An admin tool reads any save's turns; signatures and long polls are for devices.
        admin @ Caller::Admin(_) => {
            if q.wait.is_some() {
                return Err(AppError::bad_request("wait is for devices' long polls"));
            }
            let v = state
                .json(
                    &admin,
                    "SELECT awf.sync_down_admin($1::text::uuid, $2)",
                    &[&q.save_id, &since],
                )
                .await?;
            return Ok(axum::Json(v).into_response());
        }
    };
    let signed = Signed::from_headers(&headers, state.limits().require_signatures)?;
    let wait = q.wait.unwrap_or(0);
    if wait > MAX_WAIT_SECONDS {
        return Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "22023",
            format!("wait must be 0 to {MAX_WAIT_SECONDS} seconds"),
        ));
    }
    let params: [&(dyn ToSql + Sync); 4] = [&auth.device_id, &auth.token, &q.save_id, &since];
    if wait == 0 {
        let c = signed
            .as_ref()
            .map(|s| (s, covered(&auth, &q.save_id, "GET", &uri, b"")));
        return crate::signed::call(&state, c, DOWN, &params).await;
    }
    // Subscribe, then read: the first read checks the signature and authenticates the device
    // in one transaction (nothing is spent when either fails), so a refused request never
    // waits; every answer is signed over the request's nonce.
    let mut sub = state.heads().subscribe(&q.save_id, &auth.device_id)?;
    sub.seen();
    let c = covered(&auth, &q.save_id, "GET", &uri, b"");
    let check = signed.as_ref().map(|s| (s, &c));
    let sign = signed.as_ref().map(|s| (s, q.save_id.as_str()));
    let first = crate::signed::run(&state, check, sign, DOWN, &params).await?;
    if has_news(&first.value) {
        return Ok(first.into_response());
    }
    let deadline = Instant::now() + Duration::from_secs(wait);
    while sub.moved(deadline).await {
        // Each re-read is made in the transaction that signs it, so news is answered at once.
        sub.seen();
        let again = crate::signed::run(&state, None, sign, DOWN, &params).await?;
        if has_news(&again.value) {
            return Ok(again.into_response());
        }
    }
    // The wait ended: the answer is read once more, and signed.
    Ok(crate::signed::run(&state, None, sign, DOWN, &params)
        .await?
        .into_response())
}

/// `GET /api/awf-cloud-sync/sync/events?save_id=<uuid>[&since_turn=<n>]` with the device headers
/// → `text/event-stream`. The first `turns` event is the sync-down answer from `since_turn`;
/// each later one carries the turns after the previous event's `head_turn`, sent when the
/// save's head moves. An `error` event (the error body) ends the stream, for instance when the
/// device's token is rotated; the stream also ends after the server's stream limit, and the
/// device reconnects from its newest turn.
#[utoipa::path(get, path = "/api/awf-cloud-sync/sync/events", tag = "sync",
    security(("device_id" = [], "device_token" = [])),
    params(Down, ("X-AWF-Signature" = String, Header, description = "checked once, when the stream opens; events are not signed")),
    responses((status = 200, description = "Server-sent `turns` events (each a sync-down answer) and a final `error` event on failure",
        content_type = "text/event-stream", body = String)))]
async fn sync_events(
    State(state): State<AppState>,
    auth: DeviceAuth,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<Down>,
) -> Result<Response, AppError> {
    let signed = Signed::from_headers(&headers, state.limits().require_signatures)?;
    q.check()?;
    if q.wait.is_some() {
        return Err(AppError::bad_request(
            "wait is for sync/down; an event stream waits by itself",
        ));
    }
    let deadline = Instant::now() + state.limits().max_stream;
    let mut sub = state.heads().subscribe(&q.save_id, &auth.device_id)?;
    sub.seen();
    // The first read answers the request itself (and checks its signature in the same
    // transaction), so a bad credential is a 401/403, not a stream.
    let since = q.since();
    let first = {
        let c = covered(&auth, &q.save_id, "GET", &uri, b"");
        let params: [&(dyn ToSql + Sync); 4] = [&auth.device_id, &auth.token, &q.save_id, &since];
        let check = signed.as_ref().map(|s| (s, &c));
        crate::signed::run(&state, check, None, DOWN, &params)
            .await?
            .value
    };
    let since = first["head_turn"].as_i64().unwrap_or(since);
    let stream = Stream {
        state,
        auth,
        sub,
        save_id: q.save_id,
        since,
        deadline,
        pending: Some(Ok(first)),
    };
    let events = futures_util::stream::unfold(stream, |mut s| async move {
        let item = s.next().await?;
        Some((Ok::<_, std::convert::Infallible>(item), s))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// An event stream's position: what it has sent up to, and what to send next.
struct Stream {
    state: AppState,
    auth: DeviceAuth,
    sub: Subscription,
    save_id: String,
    since: i64,
    deadline: Instant,
    pending: Option<Result<Value, AppError>>,
}

impl Stream {
    /// The next event, or `None` when the stream ends (after an error, or at the deadline).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(item) = self.pending.take() {
                return Some(match item {
                    Ok(v) => {
                        self.since = v["head_turn"].as_i64().unwrap_or(self.since);
                        Event::default().event("turns").data(v.to_string())
                    }
                    Err(e) => {
                        // Ends the stream after this event.
                        self.deadline = Instant::now();
                        Event::default().event("error").data(e.body().to_string())
                    }
                });
            }
            if Instant::now() >= self.deadline || !self.sub.moved(self.deadline).await {
                return None;
            }
            let v = read(
                &self.state,
                &self.auth,
                &mut self.sub,
                &self.save_id,
                self.since,
            )
            .await;
            match v {
                Ok(v) if !has_news(&v) => continue,
                other => self.pending = Some(other),
            }
        }
    }
}
