//! The HTTP API against a real database: in-process through `oneshot`, and once over a socket.

use awf_http::db::Limits;
use awf_http::error::{status_for_sqlstate, AppError};
use awf_http::{router, AppState};
use awf_tests::{off_runtime, TestDb};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tower::ServiceExt;

fn app(db: &TestDb) -> axum::Router {
    router(AppState::connect(&db.http_url(), 2).unwrap())
}

async fn call(app: axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn health_reports_the_extension_version() {
    let db = TestDb::new();
    let (status, body) = call(
        app(&db),
        Request::get("/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["extension_version"], "0.2.0");
}

#[tokio::test]
async fn canonical_hash_goes_through_sql() {
    let db = TestDb::new();
    let (status, body) = call(
        app(&db),
        post_json(
            "/api/awf/canonical-hash",
            r#"{"b": [1.50, true], "a": "é"}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["canonical"], r#"{"a":"é","b":[1.5,true]}"#);
    assert_eq!(
        body["hash"],
        independent_sha256(r#"{"a":"é","b":[1.5,true]}"#),
        "hash of the canonical bytes"
    );
}

/// SHA-256 computed independently of the code under test (by PostgreSQL's own sha256).
fn independent_sha256(canonical: &str) -> String {
    let db = TestDb::new();
    off_runtime(|| {
        db.client()
            .query_one(
                "SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')",
                &[&canonical],
            )
            .unwrap()
            .get(0)
    })
}

#[tokio::test]
async fn bad_json_is_400_in_the_app_error_shape() {
    let db = TestDb::new();
    let (status, body) = call(app(&db), post_json("/api/awf/canonical-hash", "{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "22P02");
}

#[tokio::test]
async fn inexact_number_is_422_with_its_sqlstate() {
    let db = TestDb::new();
    let (status, body) = call(
        app(&db),
        post_json("/api/awf/canonical-hash", r#"{"id": 9007199254740993}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "22023");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("9007199254740993"));
}

/// The server must pass numbers through with their exact text: a decimal that only rounds to
/// an f64 is refused by the database, not silently rounded by the server's JSON parser.
#[tokio::test]
async fn numbers_reach_sql_with_their_exact_text() {
    let db = TestDb::new();
    let (status, body) = call(
        app(&db),
        post_json("/api/awf/canonical-hash", r#"[0.10000000000000000001]"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "22023");
}

#[tokio::test]
async fn unreachable_database_is_503() {
    let state = AppState::connect("postgres://postgres@127.0.0.1:1/none", 1).unwrap();
    let (status, body) = call(
        router(state),
        Request::get("/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "08006");
}

#[tokio::test]
async fn serves_over_a_real_socket() {
    let db = TestDb::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app(&db);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/api/awf/canonical-hash"))
        .json(&json!({"z": 1, "a": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["canonical"], r#"{"a":null,"z":1}"#);
    server.abort();
}

#[test]
fn sqlstates_map_to_the_design_table() {
    for (code, status) in [
        ("P0002", 404),
        ("23505", 409),
        ("40001", 409),
        ("22023", 422),
        ("22P02", 400),
        ("54000", 413),
        ("XX001", 500),
        ("42501", 403),
    ] {
        assert_eq!(status_for_sqlstate(code).as_u16(), status, "{code}");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_before_any_sql() {
    let db = TestDb::new();
    let limits = Limits {
        max_body_bytes: 64 * 1024,
        ..Limits::default()
    };
    let app = router(AppState::connect_with(&db.http_url(), 1, limits).unwrap());
    let big = format!("[{}1]", "1,".repeat(100_000));
    let (status, body) = call(app, post_json("/api/awf/canonical-hash", &big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "54000");
}

#[tokio::test]
async fn a_busy_pool_answers_503_after_the_wait_instead_of_hanging() {
    let db = TestDb::new();
    let limits = Limits {
        pool_wait: Duration::from_millis(300),
        ..Limits::default()
    };
    let state = AppState::connect_with(&db.http_url(), 1, limits).unwrap();
    let held = state.conn().await.unwrap(); // the only connection, taken
    let t = Instant::now();
    let (status, body) = call(
        router(state.clone()),
        Request::get("/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    drop(held);
    let (status, _) = call(
        router(state),
        Request::get("/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the pool recovers");
}

#[tokio::test]
async fn every_request_runs_under_a_statement_and_lock_timeout() {
    let db = TestDb::new();
    let limits = Limits {
        statement_timeout: Duration::from_millis(250),
        ..Limits::default()
    };
    let state = AppState::connect_with(&db.http_url(), 1, limits).unwrap();
    let conn = state.conn().await.unwrap();
    let row = conn
        .query_one("SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), current_user::text, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "250ms");
    assert_eq!(row.get::<_, String>(1), "250ms");
    assert_eq!(row.get::<_, String>(2), "awf_http");
    assert!(
        !row.get::<_, bool>(3),
        "the server's login is not a superuser"
    );
    let err = conn.query_one("SELECT pg_sleep(5)", &[]).await.unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "57014");
}

#[tokio::test]
async fn a_500_carries_a_request_id_and_no_internal_text() {
    let err = AppError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "XX001",
        "blob 3f2a... of save 7d in awf.save_blobs failed its tag check",
    );
    let res = err.into_response();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"]["code"], "XX001");
    assert_eq!(body["error"]["message"], "internal error");
    assert!(
        body["error"]["request_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    assert!(!body.to_string().contains("save_blobs"), "{body}");
}
