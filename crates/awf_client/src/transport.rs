//! Device requests over HTTP: the device headers, signatures on sync requests (and checks of
//! the signed answers), and retries with backoff on network errors and 503s.

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use awf_core::signing;
use serde_json::Value;

/// A device's connection to the server.
#[derive(Clone)]
pub struct Transport {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) backoff: Backoff,
}

/// How one request authenticates.
pub(crate) enum As<'a> {
    Admin(&'a str),
    Device {
        id: &'a str,
        token: &'a str,
        key: Option<Vec<u8>>,
    },
}

impl Transport {
    pub fn new(base: &str, backoff: Backoff) -> Transport {
        Transport {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(40))
                .build()
                .expect("a default HTTP client builds"),
            base: base.trim_end_matches('/').to_owned(),
            backoff,
        }
    }

    /// Sends one request (retrying network errors and 503 with backoff) and returns the
    /// answer's JSON for a 2xx, a [`Error::Refused`] otherwise. With a device key, the request
    /// is signed and a 200 must come back signed over its nonce.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        who: As<'_>,
        body: Option<&Value>,
    ) -> Result<Value> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut last = String::new();
        for attempt in 1..=self.backoff.attempts {
            if attempt > 1 {
                tokio::time::sleep(self.backoff.delay(attempt - 1)).await;
            }
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path_and_query}", self.base));
            let mut nonce = None;
            match &who {
                As::Admin(k) => req = req.bearer_auth(k),
                As::Device { id, token, key } => {
                    req = req.header("x-device-id", *id).bearer_auth(token);
                    if let Some(key) = key {
                        let n = signing::new_nonce();
                        let h = signing::sign_request(
                            key,
                            method.as_str(),
                            path_and_query,
                            &bytes,
                            unix_now(),
                            &n,
                        );
                        req = req.header(signing::HEADER, h);
                        nonce = Some((key.as_slice(), n));
                    }
                }
            }
            if body.is_some() {
                req = req
                    .header("content-type", "application/json")
                    .body(bytes.clone());
            }
            let res = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let status = res.status().as_u16();
            let signature = res
                .headers()
                .get(signing::HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let raw = match res.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            if status == 503 || status == 502 || status == 504 {
                last = format!("HTTP {status}");
                continue;
            }
            let v: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
            if !(200..300).contains(&status) {
                return Err(Error::Refused {
                    status,
                    code: v["error"]["code"].as_str().unwrap_or("").to_owned(),
                    message: v["error"]["message"].as_str().unwrap_or("").to_owned(),
                });
            }
            if let Some((key, n)) = nonce {
                let ok = signature
                    .as_deref()
                    .is_some_and(|s| signing::verify_response(key, status, &n, &raw, s));
                if !ok {
                    return Err(Error::Untrusted(format!(
                        "the answer to {method} {path_and_query} is not signed by the save's key"
                    )));
                }
            }
            return Ok(v);
        }
        Err(Error::Offline(format!(
            "{method} {path_and_query}: {last} (after {} tries)",
            self.backoff.attempts
        )))
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
