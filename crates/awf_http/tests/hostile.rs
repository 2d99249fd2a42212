//! The hostile-input suite for HTTP: every route that takes a body or a query, over a real socket, with malformed,
//! oversized, deeply nested, wrongly typed and exponentially growing bodies, broken headers,
//! queries and paths, and requests that are not valid HTTP at all.
//!
//! Each request must be answered within the client's timeout with a status below 500 (a 503
//! would mean a limit let the database run out of time; a 500 that the server lost control),
//! and every answer the application writes is in its JSON error shape. Afterwards `/health`
//! still answers, the postmaster has the same start time and the server log shows no crashed
//! backend. The suite prints its counts.

use awf_http::{router, AppState};
use awf_tests::{off_runtime, CrashWatch, TestDb};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const SID: &str = "88888888-8888-8888-8888-888888888888";
const USER: &str = "hostile-http";
const DEVICE: &str = "hostile-http-phone";
const ADMIN: &str = "awfk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// Past this the request counts as stalled (the server's statement timeout is 10 s).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends raw bytes and reads the whole answer (every request says `Connection: close`):
/// (status, body), or None when the server closed without an answer. `half_close` shuts the
/// write side after sending, for requests that promise more bytes than they carry (the server
/// drops a connection whose client half-closed, as hyper does by default).
fn send_raw(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).expect("connect to the server");
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    // The server may answer (413, 400) and close before it has read everything.
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !out.is_empty() => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("no answer within {CLIENT_TIMEOUT:?}: {e}"),
    }
    let text = String::from_utf8_lossy(&out);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body_at = out.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    if status == 405 {
        let head = String::from_utf8_lossy(&out[..body_at]).to_ascii_lowercase();
        assert!(
            head.contains("\r\nallow: "),
            "405 without an Allow header: {head}"
        );
    }
    Some((status, out[body_at..].to_vec()))
}

/// A request with `Connection: close` and a correct Content-Length.
fn request(method: &str, target: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

struct Creds {
    save: String,
    token: String,
    head: (i64, String),
}

fn seed(db: &TestDb) -> Creds {
    off_runtime(|| {
        let mut c = db.client();
        c.query_one(
            "SELECT awf.session_upsert($1::text::uuid, $2, $3::jsonb)",
            &[&SID, &USER, &json!({"player": {"gold": 1, "log": []}})],
        )
        .unwrap();
        let save: String = c
            .query_one(
                "SELECT awf.save_create_or_attach($1::text::uuid, $2) ->> 'save_id'",
                &[&SID, &USER],
            )
            .unwrap()
            .get(0);
        let token: String = c
            .query_one(
                "SELECT awf.device_register($1, $2, $3::text::uuid) ->> 'sync_token'",
                &[&DEVICE, &USER, &SID],
            )
            .unwrap()
            .get(0);
        let r = c
            .query_one(
                "SELECT head_turn, head_chain FROM awf.saves WHERE save_id = $1::text::uuid",
                &[&save],
            )
            .unwrap();
        Creds {
            save,
            token,
            head: (r.get(0), r.get(1)),
        }
    })
}

type Headers = Vec<(&'static str, String)>;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Hostile JSON bodies, as bytes.
fn hostile_bodies(cr: &Creds) -> Vec<(&'static str, Vec<u8>)> {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
    let copy_bomb: Vec<Value> = (0..40)
        .map(|i| json!({"op": "copy", "from": "", "path": format!("/k{i}")}))
        .collect();
    let request = |turns: Value| {
        json!({"save_id": cr.save, "base_turn": cr.head.0, "base_chain": cr.head.1,
               "turns": turns})
        .to_string()
        .into_bytes()
    };
    let many_turns: Vec<Value> = (1..=30_000)
        .map(|i| json!({"turn_id": cr.head.0 + i, "patch": []}))
        .collect();
    let mut big_string = b"\"".to_vec();
    big_string.extend(std::iter::repeat_n(b'x', 3_000_000));
    big_string.push(b'"');
    vec![
        ("empty", vec![]),
        ("not JSON", b"{not json".to_vec()),
        ("truncated", b"{\"save_id\": \"".to_vec()),
        ("trailing garbage", b"{} {}".to_vec()),
        ("null", b"null".to_vec()),
        ("array", b"[]".to_vec()),
        ("number", b"1".to_vec()),
        ("invalid UTF-8", b"{\"a\": \"\xff\xfe\"}".to_vec()),
        ("byte order mark", b"\xef\xbb\xbf{}".to_vec()),
        (
            "NUL in a string",
            br#"{"device_id": "a\u0000b", "user_id_hash": "u"}"#.to_vec(),
        ),
        (
            "lone surrogate",
            br#"{"device_id": "\ud800", "user_id_hash": "u"}"#.to_vec(),
        ),
        (
            "duplicate keys",
            br#"{"device_id": "a", "device_id": "b", "user_id_hash": "u"}"#.to_vec(),
        ),
        (
            "wrong field types",
            br#"{"device_id": 5, "user_id_hash": [], "session_id": {}}"#.to_vec(),
        ),
        ("huge number", b"{\"a\": 1e999999}".to_vec()),
        ("129 deep", deep(129)),
        ("100000 deep", deep(100_000)),
        ("3 MB string", big_string),
        ("5 MB over the body limit", vec![b' '; 5 * 1024 * 1024]),
        (
            "sync request with a copy bomb",
            request(json!([{"turn_id": cr.head.0 + 1, "patch": copy_bomb}])),
        ),
        (
            "sync request of 30k turns",
            request(Value::Array(many_turns)),
        ),
        (
            "sync request 129 deep",
            request(
                json!([{"turn_id": cr.head.0 + 1, "patch": [{"op": "add", "path": "/x",
            "value": serde_json::from_slice::<Value>(&deep(120)).unwrap()}]}]),
            ),
        ),
        (
            "sync request of wrong types",
            br#"{"save_id": 7, "base_turn": "3", "base_chain": [], "turns": {}}"#.to_vec(),
        ),
    ]
}

fn device_headers(cr: &Creds) -> Vec<(&'static str, String)> {
    vec![
        ("x-device-id", DEVICE.to_owned()),
        ("authorization", format!("Bearer {}", cr.token)),
    ]
}

/// Every case: (label, raw request bytes, whether the application (not the HTTP layer)
/// answers it, so its body must be the JSON error shape).
fn cases(cr: &Creds) -> Vec<(String, Vec<u8>, bool)> {
    let dev = device_headers(cr);
    let json_ct = ("content-type", "application/json".to_owned());
    let admin = ("authorization", format!("Bearer {ADMIN}"));
    let mut out = Vec::new();
    let admin_json = vec![json_ct.clone(), admin.clone()];
    let dev_json = [vec![json_ct.clone()], dev.clone()].concat();
    let snapshots = format!("/api/admin/awf/sessions/{SID}/snapshots");
    let posts: Vec<(&str, &str, Headers)> = vec![
        ("POST", "/api/awf/canonical-hash", vec![json_ct.clone()]),
        ("POST", "/api/awf-cloud-sync/devices", admin_json.clone()),
        ("POST", "/api/awf-cloud-sync/sync/up", dev_json.clone()),
        ("POST", &snapshots, admin_json.clone()),
        ("POST", "/api/admin/awf/sessions/import", admin_json.clone()),
        (
            "POST",
            "/api/awf-cloud-sync/save/materialize",
            dev_json.clone(),
        ),
        ("POST", "/api/awf-cloud-sync/save/verify", dev_json.clone()),
        ("POST", "/api/awf-cloud-sync/save/export", dev_json.clone()),
        (
            "POST",
            "/api/awf-cloud-sync/save/restore",
            admin_json.clone(),
        ),
        ("DELETE", "/api/awf-cloud-sync/save", dev_json.clone()),
        // Last: the first request it accepts rotates the token the cases above carry.
        (
            "POST",
            "/api/awf-cloud-sync/devices/token",
            dev_json.clone(),
        ),
    ];
    // Credentials of every broken kind, on every device route.
    let long = "a".repeat(60_000);
    let bad_creds: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no credentials", vec![]),
        (
            "unknown device",
            vec![
                ("x-device-id", "nobody".into()),
                ("authorization", format!("Bearer {}", cr.token)),
            ],
        ),
        (
            "wrong token",
            vec![
                ("x-device-id", DEVICE.into()),
                ("authorization", "Bearer AAAA".into()),
            ],
        ),
        (
            "basic scheme",
            vec![
                ("x-device-id", DEVICE.into()),
                ("authorization", "Basic dXNlcjpwYXNz".into()),
            ],
        ),
        (
            "60 KB device id",
            vec![
                ("x-device-id", long.clone()),
                ("authorization", format!("Bearer {}", cr.token)),
            ],
        ),
        (
            "60 KB token",
            vec![
                ("x-device-id", DEVICE.into()),
                ("authorization", format!("Bearer {long}")),
            ],
        ),
        (
            "two device ids",
            vec![
                ("x-device-id", "a".into()),
                ("x-device-id", "b".into()),
                ("authorization", "Bearer AAAA".into()),
            ],
        ),
        (
            "non-ASCII device id",
            vec![
                ("x-device-id", "t\u{e9}l\u{e9}phone".into()),
                ("authorization", "Bearer AAAA".into()),
            ],
        ),
        (
            "token with quotes",
            vec![
                ("x-device-id", DEVICE.into()),
                ("authorization", "Bearer ' OR 1=1 --".into()),
            ],
        ),
    ];
    let down = format!(
        "/api/awf-cloud-sync/sync/down?save_id={}&since_turn=0",
        cr.save
    );
    for (label, mut headers) in bad_creds {
        for (method, path) in [
            ("POST", "/api/awf-cloud-sync/devices/token"),
            ("POST", "/api/awf-cloud-sync/sync/up"),
            ("GET", down.as_str()),
        ] {
            headers.push(json_ct.clone());
            out.push((
                format!("{method} {path}: {label}"),
                request(
                    method,
                    path,
                    &headers,
                    if method == "POST" { b"{}" } else { b"" },
                ),
                true,
            ));
            headers.pop();
        }
    }
    for (label, auth) in [
        ("no admin token", None),
        ("wrong admin token", Some("Bearer nope")),
        ("admin token as basic", Some("Basic aGk6aGk=")),
    ] {
        let mut h = vec![json_ct.clone()];
        if let Some(a) = auth {
            h.push(("authorization", a.to_owned()));
        }
        let body = json!({"device_id": "d", "user_id_hash": "someone"}).to_string();
        out.push((
            format!("POST /api/awf-cloud-sync/devices: {label}"),
            request("POST", "/api/awf-cloud-sync/devices", &h, body.as_bytes()),
            true,
        ));
    }
    // Queries.
    let queries = [
        ("no query", "/api/awf-cloud-sync/sync/down".to_owned()),
        (
            "since_turn not a number",
            format!("/api/awf-cloud-sync/sync/down?save_id={}&since_turn=abc", cr.save),
        ),
        (
            "since_turn negative",
            format!("/api/awf-cloud-sync/sync/down?save_id={}&since_turn=-1", cr.save),
        ),
        (
            "since_turn past i64",
            format!(
                "/api/awf-cloud-sync/sync/down?save_id={}&since_turn=99999999999999999999",
                cr.save
            ),
        ),
        (
            "save_id not a uuid",
            "/api/awf-cloud-sync/sync/down?save_id=../../etc/passwd&since_turn=0".to_owned(),
        ),
        (
            "save_id unknown",
            "/api/awf-cloud-sync/sync/down?save_id=12345678-1234-4234-8234-123456789abc&since_turn=0".to_owned(),
        ),
        (
            "parameters twice",
            format!(
                "/api/awf-cloud-sync/sync/down?save_id={0}&save_id={0}&since_turn=0&since_turn=1",
                cr.save
            ),
        ),
        (
            "bad percent escapes",
            "/api/awf-cloud-sync/sync/down?save_id=%zz%&since_turn=%00".to_owned(),
        ),
        (
            "60 KB query",
            format!("/api/awf-cloud-sync/sync/down?save_id={}&since_turn=0&x={long}", cr.save),
        ),
    ];
    for (label, target) in queries {
        out.push((
            format!("GET {label}"),
            request("GET", &target, &dev, b""),
            true,
        ));
    }
    // The GET routes of admin tools and devices, with hostile queries and path parameters.
    // (None may open an event stream: each must be refused before one starts.)
    let admin_h = vec![admin.clone()];
    let ahead = format!("save_id={}&since_turn=0", cr.save);
    for (label, target, headers) in [
        (
            "wait past i64",
            format!("/api/awf-cloud-sync/sync/down?{ahead}&wait=99999999999999999999"),
            &dev,
        ),
        (
            "wait 61",
            format!("/api/awf-cloud-sync/sync/down?{ahead}&wait=61"),
            &dev,
        ),
        (
            "wait negative",
            format!("/api/awf-cloud-sync/sync/down?{ahead}&wait=-1"),
            &dev,
        ),
        (
            "wait not a number",
            format!("/api/awf-cloud-sync/sync/down?{ahead}&wait=soon"),
            &dev,
        ),
        (
            "events with wait",
            format!("/api/awf-cloud-sync/sync/events?{ahead}&wait=5"),
            &dev,
        ),
        (
            "events without a query",
            "/api/awf-cloud-sync/sync/events".to_owned(),
            &dev,
        ),
        (
            "events save_id not a uuid",
            "/api/awf-cloud-sync/sync/events?save_id=%00&since_turn=0".to_owned(),
            &dev,
        ),
        (
            "events since_turn past i64",
            format!(
                "/api/awf-cloud-sync/sync/events?save_id={}&since_turn=1e99",
                cr.save
            ),
            &dev,
        ),
        (
            "events without credentials",
            format!("/api/awf-cloud-sync/sync/events?{ahead}"),
            &vec![],
        ),
        (
            "signing key of no save",
            "/api/awf-cloud-sync/save/signing-key?save_id=x".to_owned(),
            &dev,
        ),
        (
            "signing key, extra parameter",
            format!(
                "/api/awf-cloud-sync/save/signing-key?save_id={}&x=1",
                cr.save
            ),
            &dev,
        ),
        (
            "download, short token",
            "/api/awf-cloud-sync/save/download/abc".to_owned(),
            &vec![],
        ),
        (
            "download, unknown token",
            format!("/api/awf-cloud-sync/save/download/{}", "0".repeat(64)),
            &vec![],
        ),
        (
            "download, 60 KB token",
            format!("/api/awf-cloud-sync/save/download/{long}"),
            &vec![],
        ),
        (
            "download, encoded traversal",
            "/api/awf-cloud-sync/save/download/%2e%2e%2f%2e%2e".to_owned(),
            &vec![],
        ),
        (
            "quota of a 60 KB user",
            format!("/api/awf-cloud-sync/quota/{long}"),
            &dev,
        ),
        (
            "quota of another user",
            "/api/awf-cloud-sync/quota/someone-else".to_owned(),
            &dev,
        ),
        (
            "recap lastTurns past i32",
            format!("/api/admin/awf/sessions/{SID}/recap?lastTurns=9999999999"),
            &admin_h,
        ),
        (
            "recap lastTurns 1001",
            format!("/api/admin/awf/sessions/{SID}/recap?lastTurns=1001"),
            &admin_h,
        ),
        (
            "recap of no uuid",
            "/api/admin/awf/sessions/nope/recap".to_owned(),
            &admin_h,
        ),
        (
            "export redact not a bool",
            format!("/api/admin/awf/sessions/{SID}/export?redact=maybe"),
            &admin_h,
        ),
        (
            "snapshot id not a number",
            format!("/api/admin/awf/sessions/{SID}/snapshots/x"),
            &admin_h,
        ),
        (
            "wal of an unknown session",
            "/api/admin/awf/sessions/12345678-1234-4234-8234-123456789abc/wal".to_owned(),
            &admin_h,
        ),
        (
            "wal repair of no uuid",
            "/api/admin/awf/wal/repair?session=1%3B%20DROP".to_owned(),
            &admin_h,
        ),
        (
            "audit from not a time",
            "/api/awf-cloud-sync/admin/audit?from=yesterday".to_owned(),
            &admin_h,
        ),
        (
            "audit limit 10001",
            "/api/awf-cloud-sync/admin/audit?limit=10001".to_owned(),
            &admin_h,
        ),
        (
            "audit limit past i32",
            "/api/awf-cloud-sync/admin/audit?limit=99999999999".to_owned(),
            &admin_h,
        ),
        (
            "audit from after to",
            "/api/awf-cloud-sync/admin/audit?from=2030-01-01&to=2020-01-01".to_owned(),
            &admin_h,
        ),
        (
            "conflicts of no uuid",
            "/api/awf-cloud-sync/save/conflicts?save_id=%ff".to_owned(),
            &admin_h,
        ),
        (
            "admin save of no uuid",
            "/api/awf-cloud-sync/admin/save/nope".to_owned(),
            &admin_h,
        ),
        (
            "admin device, 60 KB id",
            format!("/api/awf-cloud-sync/admin/device/{long}"),
            &admin_h,
        ),
        (
            "admin route with a device credential",
            "/api/awf-cloud-sync/save/stats".to_owned(),
            &dev,
        ),
    ] {
        out.push((
            format!("GET {label}"),
            request("GET", &target, headers, b""),
            true,
        ));
    }
    // Signature headers of every broken kind (the suite's server checks any that is sent).
    let down_path = format!("/api/awf-cloud-sync/sync/down?{ahead}");
    let zeros = "0".repeat(64);
    for (label, sig) in [
        ("garbage", "garbage".to_owned()),
        ("10 KB", "t".repeat(10_000)),
        ("no nonce", format!("t=1, s={zeros}")),
        (
            "t at i64::MIN",
            format!("t=-9223372036854775808, n=nonce-nonce-nonce, s={zeros}"),
        ),
        (
            "t past i64",
            format!("t=99999999999999999999, n=nonce-nonce-nonce, s={zeros}"),
        ),
        (
            "nonce with a quote",
            format!("t=1, n=nonce'nonce-nonce, s={zeros}"),
        ),
        (
            "well formed, wrong",
            format!("t={}, n=nonce-nonce-nonce, s={zeros}", unix_now()),
        ),
    ] {
        let mut h = dev.clone();
        h.push(("x-awf-signature", sig));
        out.push((
            format!("GET sync/down, signature {label}"),
            request("GET", &down_path, &h, b""),
            true,
        ));
        h.push(("x-awf-signature", "t=1".into()));
        out.push((
            format!("GET sync/down, signature {label}, twice"),
            request("GET", &down_path, &h, b""),
            true,
        ));
    }
    // Paths and methods.
    for (label, method, target) in [
        ("unknown path", "GET", "/v1/nothing".to_owned()),
        ("traversal", "GET", "/v1/../../etc/passwd".to_owned()),
        ("encoded traversal", "GET", "/v1/%2e%2e/health".to_owned()),
        (
            "wrong method",
            "DELETE",
            "/api/awf-cloud-sync/sync/up".to_owned(),
        ),
        (
            "GET on a POST route",
            "GET",
            "/api/awf-cloud-sync/devices".to_owned(),
        ),
        ("60 KB path", "GET", format!("/{long}")),
    ] {
        out.push((
            format!("{method} {label}"),
            request(method, &target, &dev, b""),
            true,
        ));
    }
    // Not valid HTTP: the HTTP layer answers 4xx or closes.
    for (label, raw) in [
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec()),
        ("no version", b"GET /health\r\n\r\n".to_vec()),
        ("header without colon", b"GET /health HTTP/1.1\r\nHost: x\r\nnonsense\r\n\r\n".to_vec()),
        ("content length short", b"POST /api/awf/canonical-hash HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{}".to_vec()),
        ("content length negative", b"POST /api/awf/canonical-hash HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}".to_vec()),
        ("two content lengths", b"POST /api/awf/canonical-hash HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}".to_vec()),
        ("bad chunk size", b"POST /api/awf/canonical-hash HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".to_vec()),
        ("chunked over the limit", {
            let mut r = b"POST /api/awf/canonical-hash HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
            for _ in 0..80 {
                r.extend_from_slice(b"10000\r\n");
                r.extend(std::iter::repeat_n(b' ', 0x10000));
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\n\r\n");
            r
        }),
        ("600 KB of headers", {
            let mut r = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
            for i in 0..10_000 {
                r.extend_from_slice(format!("x-h{i}: {}\r\n", "v".repeat(50)).as_bytes());
            }
            r.extend_from_slice(b"\r\n");
            r
        }),
    ] {
        out.push((format!("raw: {label}"), raw, false));
    }
    for (method, path, headers) in &posts {
        for (label, body) in hostile_bodies(cr) {
            out.push((
                format!("{method} {path}: {label}"),
                request(method, path, headers, &body),
                true,
            ));
        }
        let without_ct: Vec<(&str, String)> = headers
            .iter()
            .filter(|(k, _)| *k != "content-type")
            .cloned()
            .collect();
        out.push((
            format!("{method} {path}: no content type"),
            request(method, path, &without_ct, b"{}"),
            true,
        ));
        let mut text = without_ct.clone();
        text.push(("content-type", "text/plain".into()));
        out.push((
            format!("{method} {path}: text/plain"),
            request(method, path, &text, b"{}"),
            true,
        ));
    }
    out
}

#[test]
fn every_route_survives_hostile_requests() {
    let db = TestDb::new();
    // A deployment that signs: any signature sent is checked against a real secret.
    let secret = awf_tests::TempFile::with_contents(&"3e".repeat(32));
    off_runtime(|| {
        db.client()
            .batch_execute(&format!(
                "ALTER DATABASE {} SET awf.signing_secret_file = '{}'",
                db.name(),
                secret.path()
            ))
            .unwrap()
    });
    let cr = seed(&db);
    let watch = off_runtime(|| CrashWatch::start(&mut db.client()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter(); // the pool spawns its connections on the runtime
    db.plant_admin_key(ADMIN);
    let state = AppState::connect_with(
        &db.http_url(),
        4,
        awf_http::db::Limits {
            // Signing has its own tests (signing.rs); these are about what reaches the SQL.
            require_signatures: false,
            ..awf_http::db::Limits::default()
        },
    )
    .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = rt.spawn(async move { axum::serve(listener, router(state)).await });

    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut closed = 0;
    let mut slowest = (Duration::ZERO, String::new());
    let all = cases(&cr);
    let t0 = Instant::now();
    for (label, raw, app_answers) in &all {
        let t = Instant::now();
        let answer = send_raw(addr, raw, !app_answers);
        if std::env::var_os("AWF_HOSTILE_VERBOSE").is_some() {
            let shown = answer.as_ref().map(|(st, b)| {
                (
                    st,
                    String::from_utf8_lossy(&b[..b.len().min(160)]).into_owned(),
                )
            });
            println!("{label}: {shown:?} ({:?})", t.elapsed());
        }
        let took = t.elapsed();
        if took > slowest.0 {
            slowest = (took, label.clone());
        }
        let Some((status, body)) = answer else {
            if *app_answers {
                failures.push(format!("{label}: closed without an answer"));
            }
            closed += 1;
            continue;
        };
        *by_status.entry(status).or_default() += 1;
        if status >= 500 {
            failures.push(format!(
                "{label}: {status} {}",
                String::from_utf8_lossy(&body)
            ));
        }
        if *app_answers && status >= 400 {
            let shaped = serde_json::from_slice::<Value>(&body)
                .ok()
                .is_some_and(|b| {
                    b["error"]["code"].is_string() && b["error"]["message"].is_string()
                });
            if !shaped {
                failures.push(format!(
                    "{label}: {status} not in the error shape: {:?}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ));
            }
            if body.len() > 4096 {
                failures.push(format!(
                    "{label}: a {}-byte error body echoes the input",
                    body.len()
                ));
            }
        }
    }
    let took = t0.elapsed();
    let health = send_raw(addr, &request("GET", "/health", &[], b""), false);
    assert_eq!(health.map(|h| h.0), Some(200), "/health after the suite");
    server.abort();

    off_runtime(|| watch.assert_no_crash(&mut db.client()));
    println!(
        "hostile HTTP: {} requests in {took:?}, by status {by_status:?}, {closed} closed by the \
         HTTP layer; slowest {:?} ({})",
        all.len(),
        slowest.0,
        slowest.1
    );
    assert!(
        failures.is_empty(),
        "{} requests ended badly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
