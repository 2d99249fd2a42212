//! Signed sync requests and answers over HTTP (the protocol is awf_core's `signing`; the keys
//! and the replay check live in the database). A sync request carries `X-AWF-Signature`; the
//! server has the database check it in the transaction of the request's own call, and signs
//! the answer in that transaction too. Unsigned sync requests are refused (401) unless the
//! server runs with `--require-signatures false`; a signature that is present is always
//! checked. Error answers are not signed.

use crate::db::AppState;
use crate::error::AppError;
use awf_core::signing::{self, Signature};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio_postgres::types::ToSql;

/// The signature header, both ways.
pub const HEADER: HeaderName = HeaderName::from_static(signing::HEADER);

/// A request's signature header, parsed far enough to know its nonce.
#[derive(Debug, Clone)]
pub struct Signed {
    header: String,
    nonce: String,
}

impl Signed {
    /// The request's signature, if it has one; 401 (28000) when it has none and signatures are
    /// required, or when the header is malformed.
    pub fn from_headers(headers: &HeaderMap, required: bool) -> Result<Option<Self>, AppError> {
        let mut values = headers.get_all(&HEADER).iter();
        let Some(v) = values.next() else {
            return if required {
                Err(unauthenticated(
                    "sync requests must be signed: send X-AWF-Signature (see the HTTP API docs)",
                ))
            } else {
                Ok(None)
            };
        };
        if values.next().is_some() {
            return Err(unauthenticated("send one X-AWF-Signature header"));
        }
        let header = v
            .to_str()
            .map_err(|_| unauthenticated("the signature header is not ASCII"))?
            .to_owned();
        let sig = Signature::parse(&header).map_err(|e| unauthenticated(e.message))?;
        Ok(Some(Signed {
            header,
            nonce: sig.nonce,
        }))
    }
}

fn unauthenticated(message: impl Into<String>) -> AppError {
    AppError::new(StatusCode::UNAUTHORIZED, "28000", message)
}

/// What a request's signature covers, besides the header itself.
pub struct Covered<'a> {
    pub device_id: &'a str,
    pub save_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
}

const VERIFY: &str = "SELECT awf.sync_request_verify($1::text::uuid, $2, $3, $4, $5)";

async fn check(
    tx: &tokio_postgres::Transaction<'_>,
    signed: &Signed,
    covered: &Covered<'_>,
) -> Result<(), AppError> {
    let sha = signing::body_hash(covered.body);
    tx.execute(
        VERIFY,
        &[
            &covered.save_id,
            &covered.method,
            &covered.path,
            &sha,
            &signed.header,
        ],
    )
    .await?;
    Ok(())
}

/// A sync statement's answer: its value, the exact bytes sent, and their signature.
pub struct Answered {
    pub value: Value,
    body: Vec<u8>,
    signature: Option<String>,
}

impl IntoResponse for Answered {
    fn into_response(self) -> Response {
        let mut res = (
            StatusCode::OK,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            self.body,
        )
            .into_response();
        if let Some(sig) = self.signature {
            let v = HeaderValue::from_str(&sig).expect("a signature header is ASCII");
            res.headers_mut().insert(HEADER, v);
        }
        res
    }
}

/// Runs one sync statement (one `jsonb` column) in one transaction: first the signature check
/// of `check` (the nonce is spent only if the statement, which authenticates the device, also
/// succeeds), then the statement, then the signature of the answer's exact bytes for `sign`
/// (a request's signature and its save).
pub async fn run(
    state: &AppState,
    check_first: Option<(&Signed, &Covered<'_>)>,
    sign_for: Option<(&Signed, &str)>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Answered, AppError> {
    let mut conn = state.conn().await?;
    let tx = conn.transaction().await?;
    if let Some((s, covered)) = check_first {
        check(&tx, s, covered).await?;
    }
    let value: Value = tx.query_one(sql, params).await?.get(0);
    let body = serde_json::to_vec(&value).expect("JSON values serialize");
    let mut signature = None;
    if let Some((s, save_id)) = sign_for {
        let sha = signing::body_hash(&body);
        let row = tx
            .query_one(
                "SELECT awf.sync_response_sign($1::text::uuid, 200, $2, $3)",
                &[&save_id, &s.nonce, &sha],
            )
            .await?;
        signature = Some(row.get::<_, String>(0));
    }
    tx.commit().await?;
    Ok(Answered {
        value,
        body,
        signature,
    })
}

/// [`run`] for a request that is checked and answered in one go: signed both ways when it
/// came signed.
pub async fn call(
    state: &AppState,
    signed: Option<(&Signed, Covered<'_>)>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Response, AppError> {
    let check = signed.as_ref().map(|(s, c)| (*s, c));
    let sign = signed.as_ref().map(|(s, c)| (*s, c.save_id));
    Ok(run(state, check, sign, sql, params).await?.into_response())
}
