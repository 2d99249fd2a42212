//! Extractors whose rejections use the app's error shape instead of axum's plain text: a JSON
//! body, a query string, and the device credentials of the sync routes.

use crate::error::AppError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
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

/// The rejection of [`DeviceAuth`]: 401 in the app's error shape, with
/// `WWW-Authenticate: Bearer` (RFC 6750).
#[derive(Debug)]
pub struct Unauthorized(pub AppError);

impl Unauthorized {
    fn new(message: impl Into<String>) -> Self {
        Unauthorized(AppError::new(StatusCode::UNAUTHORIZED, "28000", message))
    }
}

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut res = self.0.into_response();
        res.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        res
    }
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
        let authorization = single(headers, &AUTHORIZATION)?;
        let (scheme, token) = authorization.split_once(' ').ok_or_else(|| {
            Unauthorized::new("the authorization header must be `Bearer <sync token>`")
        })?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Unauthorized::new(
                "the authorization header must use the Bearer scheme: `Bearer <sync token>`",
            ));
        }
        let token = token.trim_start_matches(' ');
        if !is_b64token(token) {
            return Err(Unauthorized::new(
                "the bearer token is empty or malformed: `Bearer <sync token>`",
            ));
        }
        Ok(DeviceAuth {
            device_id: device_id.to_owned(),
            token: token.to_owned(),
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for DeviceAuth {
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        DeviceAuth::from_headers(&parts.headers)
    }
}

/// Checks that `s` is a UUID in its usual text form (`8-4-4-4-12` hex digits), so a bad id is
/// refused with 400 before SQL runs; the database parses it again as `uuid`.
pub fn check_uuid(what: &str, s: &str) -> Result<(), AppError> {
    let b = s.as_bytes();
    let ok = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(format!(
            "{what} must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), got {s:?}"
        )))
    }
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
        for bad in [
            "",
            "7f0c2a4e1b2c4d5e8f900123456789ab",
            "7f0c2a4e-1b2c-4d5e-8f90-0123456789ag",
        ] {
            assert_eq!(
                check_uuid("id", bad).unwrap_err().status(),
                StatusCode::BAD_REQUEST
            );
        }
    }
}
