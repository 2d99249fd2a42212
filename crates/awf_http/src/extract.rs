//! Extractors whose rejections use the app's error shape instead of axum's plain text: a JSON
//! body, a query string, path parameters, and the credentials of devices and admin tools.

use crate::error::AppError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// `axum::Json`, but a malformed body becomes an [`AppError`] (400, SQLSTATE 22P02).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct Json<T>(pub T);

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        // A body over the server's limit is "over a limit" (413, 54000), like SQL's 54000.
        if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            return AppError::new(r.status(), "54000", r.body_text());
        }
        AppError::bad_request(r.body_text())
    }
}

/// A JSON body that may be left out: an empty body is `T::default()`, anything else must parse
/// as `T` (400, 22P02, otherwise).
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| AppError::bad_request(format!("the body is not the expected JSON: {e}")))
}

/// The raw body, but over the size limit is an [`AppError`] (413, 54000) like [`Json`]'s.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = AppError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(AppError::from)
    }
}

impl From<axum::extract::rejection::BytesRejection> for AppError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return AppError::new(r.status(), "54000", r.body_text());
        }
        AppError::bad_request(r.body_text())
    }
}

/// A JSON body taken as raw bytes (so a signature can cover exactly them): the content type
/// must be JSON and the bytes must parse (400, 22P02, otherwise). Numbers keep their text.
pub fn json_bytes(headers: &HeaderMap, body: &[u8]) -> Result<serde_json::Value, AppError> {
    let json_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        });
    if !json_type {
        return Err(AppError::bad_request(
            "expected request with `Content-Type: application/json`",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| AppError::bad_request(format!("the body is not valid JSON: {e}")))
}

/// `axum::extract::Query`, but a missing or malformed parameter becomes an [`AppError`]
/// (400, SQLSTATE 22P02).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        AppError::bad_request(r.body_text())
    }
}

/// `axum::extract::Path`, but a malformed parameter becomes an [`AppError`] (400, 22P02).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct Path<T>(pub T);

impl From<PathRejection> for AppError {
    fn from(r: PathRejection) -> Self {
        AppError::bad_request(r.body_text())
    }
}

/// The header naming the calling device.
pub const DEVICE_ID_HEADER: HeaderName = HeaderName::from_static("x-device-id");

/// A device's credentials: `X-Device-Id: <id>` and `Authorization: Bearer <sync token>`.
///
/// Only their syntax is checked here; whether the device exists and the token is valid is the
/// database's decision (`42501` → 403). A missing or malformed header is refused with 401
/// (SQLSTATE 28000) before any SQL runs.
#[derive(Clone)]
pub struct DeviceAuth {
    pub device_id: String,
    pub token: String,
}

impl std::fmt::Debug for DeviceAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never print it.
        f.debug_struct("DeviceAuth")
            .field("device_id", &self.device_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// The rejection of the credential extractors: 401 (with `WWW-Authenticate: Bearer`, RFC
/// 6750) for a missing or malformed credential, 403 for the wrong kind of credential.
#[derive(Debug)]
pub struct Unauthorized(pub AppError);

impl Unauthorized {
    fn new(message: impl Into<String>) -> Self {
        Unauthorized(AppError::new(StatusCode::UNAUTHORIZED, "28000", message))
    }
}

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let challenge = self.0.status() == StatusCode::UNAUTHORIZED;
        let mut res = self.0.into_response();
        if challenge {
            res.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// The bearer credential of `Authorization: Bearer <credential>`, checked for syntax only.
fn bearer(headers: &HeaderMap, what: &str) -> Result<String, Unauthorized> {
    let authorization = single(headers, &AUTHORIZATION)?;
    let (scheme, token) = authorization.split_once(' ').ok_or_else(|| {
        Unauthorized::new(format!(
            "the authorization header must be `Bearer <{what}>`"
        ))
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Unauthorized::new(format!(
            "the authorization header must use the Bearer scheme: `Bearer <{what}>`"
        )));
    }
    let token = token.trim_start_matches(' ');
    if !is_b64token(token) {
        return Err(Unauthorized::new(format!(
            "the bearer token is empty or malformed: `Bearer <{what}>`"
        )));
    }
    Ok(token.to_owned())
}

/// The one value of a header that must appear exactly once, as text.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<&'a str, Unauthorized> {
    let mut values = headers.get_all(name).iter();
    let value = values
        .next()
        .ok_or_else(|| Unauthorized::new(format!("missing {name} header")))?;
    if values.next().is_some() {
        return Err(Unauthorized::new(format!("more than one {name} header")));
    }
    value
        .to_str()
        .map(str::trim)
        .map_err(|_| Unauthorized::new(format!("the {name} header is not printable ASCII")))
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

impl DeviceAuth {
    /// Reads the credentials from request headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, Unauthorized> {
        let device_id = single(headers, &DEVICE_ID_HEADER)?;
        if device_id.is_empty() {
            return Err(Unauthorized::new("the x-device-id header is empty"));
        }
        let token = bearer(headers, "sync token")?;
        Ok(DeviceAuth {
            device_id: device_id.to_owned(),
            token,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for DeviceAuth {
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        DeviceAuth::from_headers(&parts.headers)
    }
}

/// An admin tool's credential: `Authorization: Bearer <admin key>` and no `X-Device-Id`.
///
/// Whether the key is valid is the database's decision (`awf.act_as_admin`: 28000 → 401). A
/// missing or malformed header is 401 before any SQL runs; a device credential is 403.
#[derive(Clone)]
pub struct AdminAuth {
    pub key: String,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminAuth(<redacted>)")
    }
}

impl AdminAuth {
    /// Reads the admin key from request headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, Unauthorized> {
        if headers.contains_key(DEVICE_ID_HEADER) {
            return Err(Unauthorized(AppError::new(
                StatusCode::FORBIDDEN,
                "42501",
                "this route needs an admin key; device credentials do not reach it",
            )));
        }
        let key = bearer(headers, "admin key")?;
        // Only the shape is checked here (a device's sync token sent without X-Device-Id, say):
        // whether the key exists is the database's decision.
        if awf_core::token::admin_key_hash(&key).is_err() {
            return Err(Unauthorized::new(format!(
                "the credential is neither a device's (no X-Device-Id) nor an admin key ({}<64 hex>)",
                awf_core::token::ADMIN_KEY_PREFIX
            )));
        }
        Ok(AdminAuth { key })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AdminAuth {
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        AdminAuth::from_headers(&parts.headers)
    }
}

/// Whoever calls a route open to both: a device (when `X-Device-Id` is present, for its own
/// user's saves) or an admin tool (for any).
#[derive(Debug, Clone)]
pub enum Caller {
    Device(DeviceAuth),
    Admin(AdminAuth),
}

impl Caller {
    /// Reads the device or admin credential from request headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, Unauthorized> {
        if headers.contains_key(DEVICE_ID_HEADER) {
            DeviceAuth::from_headers(headers).map(Caller::Device)
        } else {
            AdminAuth::from_headers(headers).map(Caller::Admin)
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Caller::from_headers(&parts.headers)
    }
}

impl From<AdminAuth> for Caller {
    fn from(a: AdminAuth) -> Self {
        Caller::Admin(a)
    }
}

impl From<DeviceAuth> for Caller {
    fn from(d: DeviceAuth) -> Self {
        Caller::Device(d)
    }
}

/// Checks that `s` is a UUID (awf_core's one parser: plain, hyphenated or braced hex), so a
/// bad id is refused with 400 before SQL runs; the database parses it again as `uuid`.
pub fn check_uuid(what: &str, s: &str) -> Result<(), AppError> {
    awf_core::ids::parse_uuid(what, s)
        .map(|_| ())
        .map_err(|e| AppError::bad_request(e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn device_auth_reads_both_headers() {
        let a = DeviceAuth::from_headers(&headers(&[
            ("x-device-id", " phone-1 "),
            ("authorization", "bearer  abc123=="),
        ]))
        .unwrap();
        assert_eq!(a.device_id, "phone-1");
        assert_eq!(a.token, "abc123==");
        assert!(!format!("{a:?}").contains("abc123"));
    }

    #[test]
    fn device_auth_refuses_missing_or_malformed_headers() {
        for h in [
            headers(&[("authorization", "Bearer abc")]),
            headers(&[("x-device-id", "p")]),
            headers(&[("x-device-id", ""), ("authorization", "Bearer abc")]),
            headers(&[("x-device-id", "p"), ("authorization", "Basic abc")]),
            headers(&[("x-device-id", "p"), ("authorization", "Bearer")]),
            headers(&[("x-device-id", "p"), ("authorization", "Bearer ")]),
            headers(&[("x-device-id", "p"), ("authorization", "Bearer a b")]),
            headers(&[("x-device-id", "p"), ("authorization", "Bearer =")]),
            headers(&[
                ("x-device-id", "p"),
                ("x-device-id", "q"),
                ("authorization", "Bearer abc"),
            ]),
        ] {
            let e = DeviceAuth::from_headers(&h).unwrap_err();
            assert_eq!(e.0.status(), StatusCode::UNAUTHORIZED, "{h:?}");
        }
    }

    #[test]
    fn uuids_are_checked() {
        assert!(check_uuid("id", "7f0c2a4e-1b2c-4d5e-8f90-0123456789ab").is_ok());
        // The plain form is a UUID to PostgreSQL too.
        assert!(check_uuid("id", "7f0c2a4e1b2c4d5e8f900123456789ab").is_ok());
        for bad in [
            "",
            "7f0c2a4e-1b2c-4d5e-8f90-0123456789ag",
            "urn:uuid:7f0c2a4e-1b2c-4d5e-8f90-0123456789ab",
        ] {
            assert_eq!(
                check_uuid("id", bad).unwrap_err().status(),
                StatusCode::BAD_REQUEST
            );
        }
    }
}
