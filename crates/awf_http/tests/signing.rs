//! Signed sync over a real socket, with the server's default (signatures required) and a
//! deployment secret file: a device gets its save's key at registration, signs with
//! awf_core's device-side functions, and checks the server's signed answers; unsigned,
//! forged, tampered, stale and replayed requests are refused with 401 and write nothing.

mod common;

use awf_core::signing;
use awf_http::db::Limits;
use awf_tests::{off_runtime, TempFile, TestDb};
use common::*;
use serde_json::{json, Value};

/// A deployment secret file for `db` (set as the database's `awf.signing_secret_file`).
fn with_secret(db: &TestDb) -> (TempFile, Vec<u8>) {
    // Two random nonces make 32 random bytes of hex.
    let text = format!("{}{}", signing::new_nonce(), signing::new_nonce());
    let secret = signing::parse_secret(&text).unwrap();
    let file = TempFile::with_contents(&format!("{text}\n"));
    off_runtime(|| {
        db.client()
            .batch_execute(&format!(
                "ALTER DATABASE {} SET awf.signing_secret_file = '{}'",
                db.name(),
                file.path()
            ))
            .unwrap();
    });
    (file, secret)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// One signed (or not) device request and its answer, with the answer's signature header.
struct Reply {
    status: u16,
    body: Value,
    raw: Vec<u8>,
    signature: Option<String>,
}

async fn send(
    api: &Api,
    device: (&str, &str),
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    signature: Option<&str>,
) -> Reply {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = api
        .http
        .request(m, format!("{}{path}", api.base))
        .header("x-device-id", device.0)
        .bearer_auth(device.1);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_vec());
    }
    if let Some(s) = signature {
        req = req.header("x-awf-signature", s);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let signature = res
        .headers()
        .get("x-awf-signature")
        .map(|v| v.to_str().unwrap().to_owned());
    let raw = res.bytes().await.unwrap().to_vec();
    Reply {
        status,
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw,
        signature,
    }
}

/// Signs and sends; checks a 200's signature against the key and the nonce.
async fn signed(
    api: &Api,
    device: (&str, &str),
    key: &[u8],
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> (Reply, String) {
    let nonce = signing::new_nonce();
    let header = signing::sign_request(key, method, path, body.unwrap_or(b""), now(), &nonce);
    let r = send(api, device, method, path, body, Some(&header)).await;
    if r.status == 200 {
        let sig = r
            .signature
            .as_deref()
            .expect("a signed request's answer is signed");
        assert!(
            signing::verify_response(key, 200, &nonce, &r.raw, sig),
            "the answer's signature verifies"
        );
    }
    (r, header)
}

#[track_caller]
fn refused(r: &Reply, why: &str) {
    assert_eq!(r.status, 401, "{why}: {}", r.body);
    assert_eq!(r.body["error"]["code"], "28000", "{why}: {}", r.body);
    assert!(r.signature.is_none(), "{why}: errors are not signed");
}

#[tokio::test]
async fn signed_sync_end_to_end_and_every_forgery_refused() {
    let db = TestDb::new();
    let (_file, secret) = with_secret(&db);
    let (api, _server) = serve_with(&db, Limits::default()).await;
    let (session, save) = session_with_save(&db, "user-sig");

    // The key arrives with the registration, over the admin-authenticated channel.
    let reg = api
        .post(
            "/api/awf-cloud-sync/devices",
            Auth::Admin,
            json!({"device_id": "sig-phone", "user_id_hash": "user-sig", "session_id": session}),
        )
        .await;
    let reg = expect(&reg, 201).clone();
    let token = reg["sync_token"].as_str().unwrap().to_owned();
    assert_eq!(reg["signing_key"]["save_id"], save.as_str());
    let key_hex = reg["signing_key"]["key"].as_str().unwrap().to_owned();
    assert_eq!(
        key_hex,
        signing::save_key_hex(&secret, &save),
        "HKDF of the file's secret"
    );
    let key = signing::key_from_hex(&key_hex).unwrap();
    let phone = ("sig-phone", token.as_str());

    // And from the key route, for the device's own saves only.
    let k = api
        .get(
            &format!("/api/awf-cloud-sync/save/signing-key?save_id={save}"),
            Auth::Device(phone.0, phone.1),
        )
        .await;
    assert_eq!(expect(&k, 200)["key"], key_hex.as_str());
    let (other_session, other_save) = session_with_save(&db, "user-other");
    let other_token = register(&api, "sig-other", "user-other", &other_session).await;
    let k = api
        .get(
            &format!("/api/awf-cloud-sync/save/signing-key?save_id={other_save}"),
            Auth::Device(phone.0, phone.1),
        )
        .await;
    expect(&k, 404);
    let k = api
        .get(
            &format!("/api/awf-cloud-sync/save/signing-key?save_id={save}"),
            Auth::None,
        )
        .await;
    expect(&k, 401);

    // Unsigned sync is refused before any SQL.
    let down = format!("/api/awf-cloud-sync/sync/down?save_id={save}&since_turn=0");
    let r = send(&api, phone, "GET", &down, None, None).await;
    refused(&r, "unsigned");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("X-AWF-Signature"));

    // Signed sync down and up, answers signed.
    let (r, _) = signed(&api, phone, &key, "GET", &down, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (head, chain) = (
        r.body["head_turn"].as_i64().unwrap(),
        r.body["head_chain"].clone(),
    );
    let up_body = serde_json::to_vec(
        &json!({"save_id": save, "base_turn": head, "base_chain": chain,
        "turns": [{"turn_id": head + 1, "state": {"player": {"gold": 42}}}]}),
    )
    .unwrap();
    let up = "/api/awf-cloud-sync/sync/up";
    let (r, up_header) = signed(&api, phone, &key, "POST", up, Some(&up_body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "fast_forward");
    let head_after = r.body["head_turn"].as_i64().unwrap();

    // The same request again is a replay, whichever device sends it (the nonce belongs to the
    // save's key, not to the device id, which the signature does not cover).
    let r = send(&api, phone, "POST", up, Some(&up_body), Some(&up_header)).await;
    refused(&r, "replay");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("replay"));
    let r = send(
        &api,
        ("sig-other", &other_token),
        "POST",
        up,
        Some(&up_body),
        Some(&up_header),
    )
    .await;
    refused(&r, "replay by another device");

    // A tampered body, path or method under a valid-looking signature.
    let t = now();
    let n = signing::new_nonce();
    let h = signing::sign_request(&key, "POST", up, &up_body, t, &n);
    let mut tampered = up_body.clone();
    tampered.push(b' ');
    refused(
        &send(&api, phone, "POST", up, Some(&tampered), Some(&h)).await,
        "tampered body",
    );
    let h = signing::sign_request(&key, "GET", &down, b"", now(), &signing::new_nonce());
    let elsewhere = format!("/api/awf-cloud-sync/sync/down?save_id={save}&since_turn=1");
    refused(
        &send(&api, phone, "GET", &elsewhere, None, Some(&h)).await,
        "another query",
    );
    // Stale and future timestamps, even when correctly signed.
    for t in [now() - 3600, now() + 3600, i64::MIN, i64::MAX] {
        let h = signing::sign_request(&key, "GET", &down, b"", t, &signing::new_nonce());
        refused(
            &send(&api, phone, "GET", &down, None, Some(&h)).await,
            "stale",
        );
    }
    // Another save's key, and a made-up one.
    let wrong = signing::save_key(&secret, &other_save);
    let h = signing::sign_request(&wrong, "GET", &down, b"", now(), &signing::new_nonce());
    refused(
        &send(&api, phone, "GET", &down, None, Some(&h)).await,
        "other key",
    );
    // Malformed headers.
    for h in ["garbage", "t=1, n=x, s=y", &"t=1,".repeat(80)] {
        refused(&send(&api, phone, "GET", &down, None, Some(h)).await, h);
    }
    // None of those moved the head.
    let (r, _) = signed(&api, phone, &key, "GET", &down, None).await;
    assert_eq!(r.body["head_turn"], head_after);

    // A long poll is signed too; its answer is signed over the request's nonce. A refused one
    // (a wrong token) spends nothing: the same signed request then goes through.
    let poll = format!("{down}&wait=1");
    let n = signing::new_nonce();
    let h = signing::sign_request(&key, "GET", &poll, b"", now(), &n);
    let wrong_token = "0".repeat(64);
    let r = send(
        &api,
        ("sig-phone", &wrong_token),
        "GET",
        &poll,
        None,
        Some(&h),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = send(&api, phone, "GET", &poll, None, Some(&h)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(signing::verify_response(
        &key,
        200,
        &n,
        &r.raw,
        r.signature.as_deref().unwrap()
    ));

    // A device cannot sign for a save of another user even with its key: the token decides.
    let other_key = signing::key_from_hex(&signing::save_key_hex(&secret, &other_save)).unwrap();
    let other_down = format!("/api/awf-cloud-sync/sync/down?save_id={other_save}&since_turn=0");
    let (r, _) = signed(&api, phone, &other_key, "GET", &other_down, None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let (r, _) = signed(
        &api,
        ("sig-other", &other_token),
        &other_key,
        "GET",
        &other_down,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The nonces are kept (owner-only table), one per accepted request.
    let kept: i64 = off_runtime(|| {
        db.client()
            .query_one(
                "SELECT count(*) FROM awf.sync_nonces WHERE save_id = $1::text::uuid",
                &[&save],
            )
            .unwrap()
            .get(0)
    });
    // Two sync downs, the upload and the long poll; the refused ones (and the 403, whose
    // transaction rolled back) left none.
    assert_eq!(kept, 4);
}
