//! What operators expect of the server, over a real socket: the OpenAPI document lists exactly
//! the routes that answer, `/metrics` counts requests per route and status, every answer has a
//! request id, large answers are compressed, and the `awf-http` binary logs JSON lines and
//! stops on SIGTERM without waiting for its long polls.

mod common;

use awf_tests::{random_uuid, TestDb};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every route the server has: the seeds' contract plus the operational ones.
const ROUTES: [(&str, &str); 33] = [
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/api/awf/canonical-hash"),
    ("POST", "/api/admin/awf/sessions/{id}/snapshots"),
    ("GET", "/api/admin/awf/sessions/{id}/snapshots"),
    ("POST", "/api/admin/awf/sessions/{id}/restore/{snapshot_id}"),
    (
        "DELETE",
        "/api/admin/awf/sessions/{id}/snapshots/{snapshot_id}",
    ),
    ("GET", "/api/admin/awf/sessions/{id}/recap"),
    ("GET", "/api/admin/awf/sessions/{id}/export"),
    ("POST", "/api/admin/awf/sessions/import"),
    ("GET", "/api/admin/awf/wal/repair"),
    ("POST", "/api/admin/awf/wal/repair"),
    ("GET", "/api/admin/awf/sessions/{id}/wal"),
    ("POST", "/api/awf-cloud-sync/devices"),
    ("POST", "/api/awf-cloud-sync/devices/token"),
    ("POST", "/api/awf-cloud-sync/sync/up"),
    ("GET", "/api/awf-cloud-sync/sync/down"),
    ("GET", "/api/awf-cloud-sync/sync/events"),
    ("POST", "/api/awf-cloud-sync/save/materialize"),
    ("POST", "/api/awf-cloud-sync/save/verify"),
    ("POST", "/api/awf-cloud-sync/save/export"),
    ("DELETE", "/api/awf-cloud-sync/save"),
    ("POST", "/api/awf-cloud-sync/save/restore"),
    ("GET", "/api/awf-cloud-sync/quota/{user_id_hash}"),
    ("GET", "/api/awf-cloud-sync/save/conflicts"),
    ("GET", "/api/awf-cloud-sync/save/stats"),
    ("POST", "/api/awf-cloud-sync/admin/retention"),
    ("GET", "/api/awf-cloud-sync/admin/save/{save_id}"),
    ("GET", "/api/awf-cloud-sync/admin/device/{device_id}"),
    ("GET", "/api/awf-cloud-sync/admin/audit"),
    ("GET", "/api/awf-cloud-sync/save/signing-key"),
    ("GET", "/api/awf-cloud-sync/save/download/{token}"),
];

/// `(METHOD, path)` of every operation in an OpenAPI document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// A concrete path for a pattern: every `{param}` becomes a fresh UUID.
fn concrete(pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let j = rest[i..].find('}').unwrap();
        out.push_str(&random_uuid());
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

/// Whether an answer came from a route (not the unknown-path or wrong-method fallback).
fn routed(a: &Answer) -> bool {
    let fallback = (a.status == 404 && a.body["error"]["code"] == "42704") || a.status == 405;
    !fallback
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_that_answer() {
    let db = TestDb::new();
    let (api, _server) = serve(&db).await;
    let a = api.get("/openapi.json", Auth::None).await;
    let doc = expect(&a, 200).clone();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let documented = operations(&doc);
    let expected: BTreeSet<_> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "documented routes nobody expects: {extra:?}"
    );
    // Every documented operation is served (by its route, not the fallbacks), so the document
    // cannot list a route that does not exist.
    for (method, path) in &documented {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let body = (m != Method::GET).then(|| json!({}));
        let a = api.send(m, &concrete(path), Auth::None, body).await;
        assert!(
            routed(&a),
            "{method} {path} is documented but not served: {}",
            a.text
        );
    }
    // The probe itself can fail: an unknown path and a wrong method are the fallbacks.
    assert!(!routed(
        &api.get("/api/awf-cloud-sync/nope", Auth::None).await
    ));
    assert!(!routed(
        &api.send(Method::PUT, "/health", Auth::None, None).await
    ));
    // Each operation says how to authenticate and what its errors look like.
    let rotate = &doc["paths"]["/api/awf-cloud-sync/devices/token"]["post"];
    assert_eq!(
        rotate["security"],
        json!([{"device_id": [], "device_token": []}])
    );
    let up = &doc["paths"]["/api/awf-cloud-sync/sync/up"]["post"];
    assert_eq!(
        up["security"],
        json!([{"device_id": [], "device_token": []}, {"admin_key": []}])
    );
    assert_eq!(
        up["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Error"
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["admin_key"]["scheme"], "bearer");
    assert_eq!(schemes["device_id"]["name"], "X-Device-Id");
    println!(
        "openapi: {} operations documented, all served",
        documented.len()
    );
}

/// The value of one sample line of a Prometheus text body.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_per_route_method_and_status() {
    let db = TestDb::new();
    let (api, _server) = serve(&db).await;
    for _ in 0..3 {
        expect(&api.get("/health", Auth::None).await, 200);
    }
    for _ in 0..2 {
        expect(
            &api.get(&format!("/x/{}", random_uuid()), Auth::None).await,
            404,
        );
    }
    expect(
        &api.send(Method::PUT, "/health", Auth::None, None).await,
        405,
    );
    expect(
        &api.get("/api/awf-cloud-sync/save/stats", Auth::None).await,
        401,
    );
    expect(
        &api.get("/api/awf-cloud-sync/save/stats", Auth::Admin).await,
        200,
    );

    let a = api.get("/metrics", Auth::None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type, "text/plain; version=0.0.4");
    let m = &a.text;
    let count = |labels: &str| sample(m, &format!("awf_http_requests_total{{{labels}}}"));
    assert_eq!(
        count("route=\"/health\",method=\"GET\",status=\"200\""),
        Some(3.0),
        "{m}"
    );
    // Unknown paths share one label: a client cannot grow the series by inventing paths.
    assert_eq!(
        count("route=\"unmatched\",method=\"GET\",status=\"404\""),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        count("route=\"/health\",method=\"PUT\",status=\"405\""),
        Some(1.0),
        "{m}"
    );
    let stats = "route=\"/api/awf-cloud-sync/save/stats\",method=\"GET\"";
    assert_eq!(count(&format!("{stats},status=\"401\"")), Some(1.0), "{m}");
    assert_eq!(count(&format!("{stats},status=\"200\"")), Some(1.0), "{m}");
    // The histogram's +Inf bucket is the count; its buckets only grow.
    let health = "route=\"/health\",method=\"GET\",status=\"200\"";
    assert_eq!(
        sample(
            m,
            &format!("awf_http_request_duration_seconds_bucket{{{health},le=\"+Inf\"}}")
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            m,
            &format!("awf_http_request_duration_seconds_count{{{health}}}")
        ),
        Some(3.0)
    );
    // The extension's counters and the server's gauges are there too.
    assert!(
        m.contains("# TYPE awf_snapshots_created_total counter"),
        "{m}"
    );
    assert_eq!(sample(m, "awf_http_sync_waiters"), Some(0.0), "{m}");
    assert!(
        sample(m, "awf_http_pool_connections{state=\"open\"}").is_some(),
        "{m}"
    );
    let unique: BTreeSet<_> = m.lines().filter(|l| !l.starts_with('#')).collect();
    println!("metrics: {} samples", unique.len());
}

#[tokio::test]
async fn every_answer_has_a_request_id_and_large_ones_are_compressed() {
    let db = TestDb::new();
    let (api, _server) = serve(&db).await;
    let id_of = |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let url = format!("{}/health", api.base);
    let a = api.http.get(&url).send().await.unwrap();
    let b = api.http.get(&url).send().await.unwrap();
    assert_ne!(id_of(&a), id_of(&b));
    // A client's own short, plain id is kept, so its logs and ours meet.
    let r = api
        .http
        .get(&url)
        .header("x-request-id", "client-7.a_b")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&r), "client-7.a_b");
    // Anything else is replaced, not logged.
    for hostile in ["x".repeat(65), "a b".into(), "a;b".into()] {
        let r = api
            .http
            .get(&url)
            .header("x-request-id", hostile.as_bytes())
            .send()
            .await
            .unwrap();
        assert_ne!(id_of(&r), hostile);
        assert!(id_of(&r).len() <= 64);
    }
    // Errors carry it too.
    let r = api
        .http
        .get(format!("{}/nope", api.base))
        .send()
        .await
        .unwrap();
    assert!(!id_of(&r).is_empty());

    let doc_url = format!("{}/openapi.json", api.base);
    let plain = api.http.get(&doc_url).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();
    let gz = api
        .http
        .get(&doc_url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let gz = gz.bytes().await.unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(
        gz.len() * 3 < plain.len(),
        "{} vs {}",
        gz.len(),
        plain.len()
    );
    println!(
        "compression: /openapi.json {} bytes, {} gzipped",
        plain.len(),
        gz.len()
    );
}

/// A free loopback port (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_binary_logs_json_lines_and_stops_on_sigterm_within_its_grace() {
    let db = TestDb::new();
    db.plant_admin_key(ADMIN);
    let (session, save) = session_with_save(&db, "user-bin");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_awf-http"))
        .env("DATABASE_URL", db.http_url())
        .env("AWF_HTTP_BIND", format!("127.0.0.1:{port}"))
        .env("AWF_HTTP_LOG_FORMAT", "json")
        .env("AWF_HTTP_SHUTDOWN_GRACE_SECONDS", "1")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    let mut up = false;
    for _ in 0..200 {
        if let Ok(r) = api.http.get(format!("{}/health", api.base)).send().await {
            up = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the server came up");
    let r = api
        .http
        .get(format!("{}/health", api.base))
        .header("x-request-id", "bin-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = register(&api, "bin-phone", "user-bin", &session).await;
    // A long poll holds a request open across the signal.
    let poll = {
        let http = api.http.clone();
        let url = format!(
            "{}/api/awf-cloud-sync/sync/down?save_id={save}&since_turn=3&wait=30",
            api.base
        );
        tokio::spawn(async move {
            http.get(url)
                .header("x-device-id", "bin-phone")
                .bearer_auth(token)
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(20),
            "the server did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    println!(
        "shutdown: exited {:?} after SIGTERM with a 30 s long poll open (grace 1 s)",
        signalled.elapsed()
    );
    let _ = poll.await;
    assert!(
        api.http
            .get(format!("{}/health", api.base))
            .send()
            .await
            .is_err(),
        "nothing listens after the exit"
    );
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let traced = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "bin-test-1")
        .unwrap_or_else(|| panic!("no log line of the request: {out}"));
    assert_eq!(traced["span"]["route"], "/health");
    assert_eq!(traced["fields"]["status"], 200);
    assert!(lines.iter().any(|l| l["fields"]["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("shutting down"))));
}
