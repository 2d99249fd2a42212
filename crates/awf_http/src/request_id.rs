//! One id per request: taken from the client's `X-Request-Id` when it is short and plain,
//! made up otherwise; answered in the response's `X-Request-Id`, carried by every log line of
//! the request, and quoted in the body of a 500 so a client's report finds the log.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The request id header, both ways.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-chosen id kept; a longer or unusual one is replaced (it would end up in logs).
const MAX_CLIENT_ID: usize = 64;

tokio::task_local! {
    static CURRENT: String;
}

/// A new id: time in microseconds and a counter, as hex.
fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    format!("{:x}-{n:x}", t & 0xffff_ffff_ffff)
}

/// The client's id when it is 1 to 64 characters of `[A-Za-z0-9._-]`.
fn client_id(v: Option<&HeaderValue>) -> Option<String> {
    let s = v?.to_str().ok()?;
    let plain = !s.is_empty()
        && s.len() <= MAX_CLIENT_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    plain.then(|| s.to_owned())
}

/// The id of the request being served (a fresh one outside a request).
pub fn current() -> String {
    CURRENT.try_with(Clone::clone).unwrap_or_else(|_| new_id())
}

/// Middleware: settles the request's id, puts it in the request (for the trace span) and the
/// response, and makes it [`current`] while the request is served.
pub async fn assign(mut req: Request, next: Next) -> Response {
    let id = client_id(req.headers().get(&HEADER)).unwrap_or_else(new_id);
    let value = HeaderValue::from_str(&id).expect("ids are plain ASCII");
    req.headers_mut().insert(HEADER, value.clone());
    let mut res = CURRENT.scope(id, next.run(req)).await;
    res.headers_mut().insert(HEADER, value);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_client_ids_are_kept() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(client_id(Some(&v("abc-1.2_3"))), Some("abc-1.2_3".into()));
        assert_eq!(client_id(Some(&v(&"a".repeat(65)))), None);
        assert_eq!(client_id(Some(&v("a b"))), None);
        assert_eq!(client_id(Some(&v(""))), None);
        assert_eq!(client_id(None), None);
        assert_ne!(new_id(), new_id());
    }
}
