//! The device-facing sync routes against a real database: registration, token rotation,
//! sync down and up (fast-forward and conflict), and how each refusal maps to a status.

use awf_http::{router, AppState};
use awf_tests::{off_runtime, random_uuid, TestDb};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tower::ServiceExt;

const USER: &str = "u1";

/// Limits without the signature requirement: signing has its own tests (signing.rs); these
/// are about what reaches the SQL.
fn unsigned() -> awf_http::db::Limits {
    awf_http::db::Limits {
        require_signatures: false,
        ..awf_http::db::Limits::default()
    }
}

fn app(db: &TestDb) -> axum::Router {
    db.plant_admin_key(ADMIN);
    router(AppState::connect_with(&db.http_url(), 2, unsigned()).unwrap())
}

/// A server whose database cannot be reached: any route that runs SQL answers 503.
fn app_without_database() -> axum::Router {
    router(AppState::connect_with("postgres://postgres@127.0.0.1:1/none", 1, unsigned()).unwrap())
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn send(app: &axum::Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {bytes:?}"));
    Reply {
        status,
        headers,
        body,
    }
}

/// A device's credentials.
#[derive(Clone)]
struct Device {
    id: String,
    token: String,
}

/// The backend's admin key in these tests (planted in each test database).
const ADMIN: &str = "awfk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn request(method: &str, uri: &str, device: Option<&Device>, body: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if uri == "/api/awf-cloud-sync/devices" && device.is_none() {
        b = b.header("authorization", format!("Bearer {ADMIN}"));
    }
    if let Some(d) = device {
        b = b
            .header("x-device-id", &d.id)
            .header("authorization", format!("Bearer {}", d.token));
    }
    match body {
        Some(body) => b
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// A session of `USER` with one applied turn, and its save (turns 0 and 1).
fn session_with_save(db: &TestDb) -> (String, String) {
    let session = random_uuid();
    let save = off_runtime(|| {
        let mut c = db.client();
        c.execute(
            "SELECT awf.session_upsert($1::text::uuid, $2, '{\"player\":{\"gold\":0}}')",
            &[&session, &USER],
        )
        .unwrap();
        let save: Value = c
            .query_one(
                "SELECT awf.save_create_or_attach($1::text::uuid, $2)",
                &[&session, &USER],
            )
            .unwrap()
            .get(0);
        c.execute(
            "SELECT awf.turn_submit($1::text::uuid, 1, '{\"txt\":\"Ash finds gold.\",\"acts\":[{\"op\":\"increment\",\"path\":\"/player/gold\",\"by\":3}]}')",
            &[&session],
        )
        .unwrap();
        save["save_id"].as_str().unwrap().to_owned()
    });
    (session, save)
}

async fn register(app: &axum::Router, device_id: &str, session: Option<&str>) -> Device {
    let body = json!({"device_id": device_id, "user_id_hash": USER, "session_id": session});
    let r = send(
        app,
        request(
            "POST",
            "/api/awf-cloud-sync/devices",
            None,
            Some(&body.to_string()),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    Device {
        id: device_id.to_owned(),
        token: r.body["sync_token"].as_str().unwrap().to_owned(),
    }
}

async fn sync_down(app: &axum::Router, device: &Device, save: &str, since: i64) -> Reply {
    let uri = format!("/api/awf-cloud-sync/sync/down?save_id={save}&since_turn={since}");
    send(app, request("GET", &uri, Some(device), None)).await
}

async fn sync_up(app: &axum::Router, device: &Device, body: &Value) -> Reply {
    send(
        app,
        request(
            "POST",
            "/api/awf-cloud-sync/sync/up",
            Some(device),
            Some(&body.to_string()),
        ),
    )
    .await
}

fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
    assert!(r.body["error"]["message"].is_string(), "{}", r.body);
}

fn is_hex64(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The audit rows of one action for one device.
fn audit_rows(db: &TestDb, action: &str, device_id: &str) -> i64 {
    off_runtime(|| {
        db.client()
            .query_one(
                "SELECT count(*) FROM awf.audit_log WHERE action = $1 AND device_id = $2",
                &[&action, &device_id],
            )
            .unwrap()
            .get(0)
    })
}

#[tokio::test]
async fn register_is_201_with_a_new_token() {
    let db = TestDb::new();
    let app = app(&db);
    let (session, _) = session_with_save(&db);
    let body = json!({"device_id": "phone", "user_id_hash": USER, "session_id": session});
    let r = send(
        &app,
        request(
            "POST",
            "/api/awf-cloud-sync/devices",
            None,
            Some(&body.to_string()),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["device_id"], "phone");
    assert!(is_hex64(&r.body["sync_token"]), "{}", r.body);
    assert!(r.body["expires_at"].is_string());
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(audit_rows(&db, "device_register", "phone"), 1);

    // Without a session, too.
    let tablet = register(&app, "tablet", None).await;
    assert!(is_hex64(&json!(tablet.token)));

    // The database's refusals, mapped.
    let cases = [
        // Another user's device.
        (
            json!({"device_id": "phone", "user_id_hash": "u2"}),
            StatusCode::FORBIDDEN,
            "42501",
        ),
        // An unknown session.
        (
            json!({"device_id": "pc", "user_id_hash": USER, "session_id": random_uuid()}),
            StatusCode::NOT_FOUND,
            "P0002",
        ),
        // An empty id.
        (
            json!({"device_id": "", "user_id_hash": USER}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "22023",
        ),
        // Refused before SQL: a session id that is not a UUID, a missing member.
        (
            json!({"device_id": "pc", "user_id_hash": USER, "session_id": "s1"}),
            StatusCode::BAD_REQUEST,
            "22P02",
        ),
        (json!({"device_id": "pc"}), StatusCode::BAD_REQUEST, "22P02"),
    ];
    for (body, status, code) in cases {
        let r = send(
            &app,
            request(
                "POST",
                "/api/awf-cloud-sync/devices",
                None,
                Some(&body.to_string()),
            ),
        )
        .await;
        assert_error(&r, status, code);
    }
}

/// One device syncs down and fast-forwards; a second device, still on the old head, uploads
/// on that stale base and is resolved as a conflict with the full report.
#[tokio::test]
async fn sync_down_then_up_fast_forwards_and_a_racing_device_conflicts() {
    let db = TestDb::new();
    let app = app(&db);
    let (session, save) = session_with_save(&db);
    let phone = register(&app, "phone", Some(&session)).await;
    let tablet = register(&app, "tablet", Some(&session)).await;

    let down = sync_down(&app, &phone, &save, 0).await;
    assert_eq!(down.status, StatusCode::OK, "{}", down.body);
    assert_eq!(down.body["save_id"], save.as_str());
    assert_eq!(down.body["head_turn"], 1);
    assert_eq!(down.body["since_turn"], 0);
    assert!(is_hex64(&down.body["head_chain"]));
    assert!(is_hex64(&down.body["prev_chain"]));
    let turns = down.body["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 1, "{}", down.body);
    assert_eq!(turns[0]["turn_id"], 1);
    assert_eq!(turns[0]["chain_hash"], down.body["head_chain"]);
    let head_chain = down.body["head_chain"].as_str().unwrap().to_owned();

    // The tablet has the same head.
    let tablet_down = sync_down(&app, &tablet, &save, 0).await;
    assert_eq!(tablet_down.body["head_chain"], head_chain.as_str());

    let up = sync_up(
        &app,
        &phone,
        &json!({"save_id": save, "base_turn": 1, "base_chain": head_chain,
                "turns": [{"turn_id": 2, "patch": [{"op": "replace", "path": "/player/gold", "value": 10}]}]}),
    )
    .await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.body);
    assert_eq!(up.body["status"], "fast_forward");
    assert_eq!(up.body["head_turn"], 2);
    assert_eq!(up.body["turns_applied"], 1);
    assert!(is_hex64(&up.body["head_chain"]));
    assert_ne!(up.body["head_chain"], head_chain.as_str());

    // The tablet uploads its own turn 2 on the old head: a conflict, with the report.
    let race = sync_up(
        &app,
        &tablet,
        &json!({"save_id": save, "base_turn": 1, "base_chain": head_chain,
                "turns": [{"turn_id": 2, "state": {"player": {"gold": 99}}}]}),
    )
    .await;
    assert_eq!(race.status, StatusCode::OK, "{}", race.body);
    assert_eq!(race.body["status"], "conflict", "{}", race.body);
    let report = &race.body["conflict"];
    assert_eq!(report["ancestor"]["turn_id"], 1);
    assert_eq!(report["ancestor"]["chain_hash"], head_chain.as_str());
    let branches = report["branches"].as_array().unwrap();
    assert_eq!(branches.len(), 2, "{report}");
    assert!(branches
        .iter()
        .any(|b| b["server"] == true && b["turn_id"] == 2));
    assert!(branches
        .iter()
        .any(|b| b["server"] == false && b["device_id"] == "tablet"));
    let resolution = &report["resolution"];
    assert_eq!(resolution["strategy"], "longest_chain");
    // A tie in length and integrity goes to the server; the tablet's branch is archived.
    assert!(resolution["chosen_branch"]
        .as_str()
        .unwrap()
        .starts_with("server-"));
    assert!(resolution["archived_branch"]
        .as_str()
        .unwrap()
        .starts_with("client-"));
    assert!(resolution["archive_id"].is_number(), "{report}");
    assert_eq!(race.body["head_turn"], 2);
    assert_eq!(race.body["head_chain"], up.body["head_chain"]);
    assert_eq!(audit_rows(&db, "sync_conflict", "tablet"), 1);

    // The session has the phone's state.
    let gold: Value = off_runtime(|| {
        db.client()
            .query_one(
                "SELECT state->'player'->'gold' FROM awf.sessions WHERE session_id = $1::text::uuid",
                &[&session],
            )
            .unwrap()
            .get(0)
    });
    assert_eq!(gold, json!(10));
}

/// Missing or malformed credentials are refused by the server itself: 401 with SQLSTATE 28000,
/// and no SQL runs — the same requests against a server without a database still get 401
/// (not 503), and the audit log records no refusal for them, while a wrong token reaches the
/// database, is 403 and is audited.
#[tokio::test]
async fn missing_or_malformed_credentials_are_401_before_any_sql() {
    let db = TestDb::new();
    let app = app(&db);
    let (session, save) = session_with_save(&db);
    let phone = register(&app, "phone", Some(&session)).await;
    let up_body = json!({"save_id": save, "base_turn": 1, "base_chain": "0".repeat(64),
                         "turns": [{"turn_id": 2, "state": {}}]})
    .to_string();
    let down_uri = format!("/api/awf-cloud-sync/sync/down?save_id={save}&since_turn=0");

    let headers: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("x-device-id", "phone".into())],
        vec![("authorization", format!("Bearer {}", phone.token))],
        vec![
            ("x-device-id", "phone".into()),
            ("authorization", phone.token.clone()),
        ],
        vec![
            ("x-device-id", "phone".into()),
            ("authorization", format!("Basic {}", phone.token)),
        ],
        vec![
            ("x-device-id", "phone".into()),
            ("authorization", "Bearer ".into()),
        ],
        vec![
            ("x-device-id", "".into()),
            ("authorization", format!("Bearer {}", phone.token)),
        ],
    ];
    let no_db = app_without_database();
    for hs in &headers {
        for (method, uri, body) in [
            (
                "POST",
                "/api/awf-cloud-sync/sync/up",
                Some(up_body.as_str()),
            ),
            ("GET", down_uri.as_str(), None),
            ("POST", "/api/awf-cloud-sync/devices/token", None),
        ] {
            for server in [&app, &no_db] {
                let mut req = request(method, uri, None, body);
                for (k, v) in hs {
                    req.headers_mut().append(*k, v.parse().unwrap());
                }
                let r = send(server, req).await;
                assert_error(&r, StatusCode::UNAUTHORIZED, "28000");
                assert_eq!(
                    r.headers["www-authenticate"], "Bearer",
                    "{method} {uri} {hs:?}"
                );
            }
        }
    }
    // Even a malformed body is not looked at without credentials.
    let r = send(
        &app,
        request(
            "POST",
            "/api/awf-cloud-sync/sync/up",
            None,
            Some("{not json"),
        ),
    )
    .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "28000");

    // A wrong token does reach the database: 403, and its refusal is audited (by a
    // background worker, so it may take a moment).
    let wrong = Device {
        id: "phone".into(),
        token: "f".repeat(64),
    };
    assert_error(
        &sync_down(&app, &wrong, &save, 0).await,
        StatusCode::FORBIDDEN,
        "42501",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while audit_rows(&db, "sync_refused", "phone") == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Exactly that one refusal: none of the 401s above wrote one.
    assert_eq!(audit_rows(&db, "sync_refused", "phone"), 1);
    let all_refusals: i64 = off_runtime(|| {
        db.client()
            .query_one(
                "SELECT count(*) FROM awf.audit_log WHERE action = 'sync_refused'",
                &[],
            )
            .unwrap()
            .get(0)
    });
    assert_eq!(all_refusals, 1);
}

#[tokio::test]
async fn wrong_token_or_unknown_device_is_403() {
    let db = TestDb::new();
    let app = app(&db);
    let (session, save) = session_with_save(&db);
    let phone = register(&app, "phone", Some(&session)).await;
    for device in [
        Device {
            id: "phone".into(),
            token: "0".repeat(64),
        },
        Device {
            id: "phone".into(),
            token: "short".into(),
        },
        Device {
            id: "ghost".into(),
            token: phone.token.clone(),
        },
    ] {
        assert_error(
            &sync_down(&app, &device, &save, 0).await,
            StatusCode::FORBIDDEN,
            "42501",
        );
        let up = json!({"save_id": save, "base_turn": 1, "base_chain": "0".repeat(64),
                        "turns": [{"turn_id": 2, "state": {}}]});
        assert_error(
            &sync_up(&app, &device, &up).await,
            StatusCode::FORBIDDEN,
            "42501",
        );
    }
    // A device of another user asking for this user's save.
    let other = {
        let body = json!({"device_id": "intruder", "user_id_hash": "u2"});
        let r = send(
            &app,
            request(
                "POST",
                "/api/awf-cloud-sync/devices",
                None,
                Some(&body.to_string()),
            ),
        )
        .await;
        Device {
            id: "intruder".into(),
            token: r.body["sync_token"].as_str().unwrap().to_owned(),
        }
    };
    assert_error(
        &sync_down(&app, &other, &save, 0).await,
        StatusCode::FORBIDDEN,
        "42501",
    );
}

#[tokio::test]
async fn stale_base_and_chain_mismatch_are_409() {
    let db = TestDb::new();
    let app = app(&db);
    let (session, save) = session_with_save(&db);
    let phone = register(&app, "phone", Some(&session)).await;
    let head_chain = sync_down(&app, &phone, &save, 0).await.body["head_chain"].clone();

    // A base chain the save does not hold.
    let stale = json!({"save_id": save, "base_turn": 1, "base_chain": "a".repeat(64),
                       "turns": [{"turn_id": 2, "state": {"player": {"gold": 1}}}]});
    let r = sync_up(&app, &phone, &stale).await;
    assert_error(&r, StatusCode::CONFLICT, "23505");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stale base"),
        "{}",
        r.body
    );

    // A claimed chain hash that differs from the server's.
    let mismatch = json!({"save_id": save, "base_turn": 1, "base_chain": head_chain,
                          "turns": [{"turn_id": 2, "state": {"player": {"gold": 1}}, "chain_hash": "b".repeat(64)}]});
    assert_error(
        &sync_up(&app, &phone, &mismatch).await,
        StatusCode::CONFLICT,
        "23505",
    );
    // Nothing was written.
    assert_eq!(sync_down(&app, &phone, &save, 0).await.body["head_turn"], 1);
}

#[tokio::test]
async fn malformed_or_invalid_sync_up_bodies() {
    let db = TestDb::new();
    let app = app(&db);
    let (session, save) = session_with_save(&db);
    let phone = register(&app, "phone", Some(&session)).await;

    for body in ["{not json", "", "[1,"] {
        let r = send(
            &app,
            request(
                "POST",
                "/api/awf-cloud-sync/sync/up",
                Some(&phone),
                Some(body),
            ),
        )
        .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "22P02");
    }
    // Without a JSON content type.
    let mut req = request("POST", "/api/awf-cloud-sync/sync/up", Some(&phone), None);
    *req.body_mut() = Body::from("{}");
    assert_error(&send(&app, req).await, StatusCode::BAD_REQUEST, "22P02");

    // Well-formed JSON that the database finds invalid: 422.
    let head_chain = sync_down(&app, &phone, &save, 0).await.body["head_chain"].clone();
    for body in [
        json!([1, 2]),
        json!({"save_id": save, "base_turn": 1, "base_chain": head_chain, "turns": []}),
        json!({"save_id": save, "base_turn": 1, "base_chain": head_chain,
               "turns": [{"turn_id": 2, "state": {}}], "strategy": "coin_flip"}),
    ] {
        assert_error(
            &sync_up(&app, &phone, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "22023",
        );
    }
}

#[tokio::test]
async fn unknown_save_is_404() {
    let db = TestDb::new();
    let app = app(&db);
    let (session, _) = session_with_save(&db);
    let phone = register(&app, "phone", Some(&session)).await;
    let unknown = random_uuid();
    assert_error(
        &sync_down(&app, &phone, &unknown, 0).await,
        StatusCode::NOT_FOUND,
        "P0002",
    );
    let up = json!({"save_id": unknown, "base_turn": 1, "base_chain": "0".repeat(64),
                    "turns": [{"turn_id": 2, "state": {}}]});
    assert_error(
        &sync_up(&app, &phone, &up).await,
        StatusCode::NOT_FOUND,
        "P0002",
    );
}

#[tokio::test]
async fn bad_sync_down_query_is_400_before_any_sql() {
    let db = TestDb::new();
    let app = app(&db);
    let (session, save) = session_with_save(&db);
    let phone = register(&app, "phone", Some(&session)).await;
    let no_db = app_without_database();
    for query in [
        format!("save_id={save}&since_turn=abc"),
        format!("save_id={save}&since_turn=1.5"),
        format!("save_id={save}&since_turn=99999999999999999999"),
        "since_turn=0".to_owned(),
        "save_id=nope&since_turn=0".to_owned(),
        String::new(),
    ] {
        for server in [&app, &no_db] {
            let uri = format!("/api/awf-cloud-sync/sync/down?{query}");
            let r = send(server, request("GET", &uri, Some(&phone), None)).await;
            assert_error(&r, StatusCode::BAD_REQUEST, "22P02");
        }
    }
    // No since_turn: the whole save from its newest base, for a device that holds nothing.
    let uri = format!("/api/awf-cloud-sync/sync/down?save_id={save}");
    let r = send(&app, request("GET", &uri, Some(&phone), None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["base"]["state"].is_object(), "{}", r.body);
}

#[tokio::test]
async fn rotate_issues_a_new_token_and_retires_the_old_one() {
    let db = TestDb::new();
    let app = app(&db);
    let (session, save) = session_with_save(&db);
    let old = register(&app, "phone", Some(&session)).await;

    let r = send(
        &app,
        request(
            "POST",
            "/api/awf-cloud-sync/devices/token",
            Some(&old),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["device_id"], "phone");
    assert!(is_hex64(&r.body["sync_token"]));
    assert_ne!(r.body["sync_token"], old.token.as_str());
    assert_eq!(r.headers["cache-control"], "no-store");
    let new = Device {
        id: "phone".into(),
        token: r.body["sync_token"].as_str().unwrap().to_owned(),
    };

    assert_error(
        &sync_down(&app, &old, &save, 0).await,
        StatusCode::FORBIDDEN,
        "42501",
    );
    assert_error(
        &send(
            &app,
            request(
                "POST",
                "/api/awf-cloud-sync/devices/token",
                Some(&old),
                None,
            ),
        )
        .await,
        StatusCode::FORBIDDEN,
        "42501",
    );
    assert_eq!(sync_down(&app, &new, &save, 0).await.status, StatusCode::OK);
}

#[tokio::test]
async fn syncs_over_a_real_socket() {
    let db = TestDb::new();
    let (session, save) = session_with_save(&db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app(&db);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();

    let res = http
        .post(format!("http://{addr}/api/awf-cloud-sync/devices"))
        .bearer_auth(ADMIN)
        .json(&json!({"device_id": "phone", "user_id_hash": USER, "session_id": session}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let token = res.json::<Value>().await.unwrap()["sync_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let res = http
        .get(format!("http://{addr}/api/awf-cloud-sync/sync/down"))
        .query(&[("save_id", save.as_str()), ("since_turn", "0")])
        .header("x-device-id", "phone")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let down: Value = res.json().await.unwrap();
    assert_eq!(down["head_turn"], 1);

    let res = http
        .post(format!("http://{addr}/api/awf-cloud-sync/sync/up"))
        .header("x-device-id", "phone")
        .bearer_auth(&token)
        .json(&json!({"save_id": save, "base_turn": 1, "base_chain": down["head_chain"],
                      "turns": [{"turn_id": 2, "patch": [{"op": "add", "path": "/player/hp", "value": 7}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let up: Value = res.json().await.unwrap();
    assert_eq!(up["status"], "fast_forward");
    assert_eq!(up["head_turn"], 2);

    let res = http
        .get(format!(
            "http://{addr}/api/awf-cloud-sync/sync/down?save_id={save}&since_turn=1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "28000");
    server.abort();
}

#[tokio::test]
async fn registering_a_device_needs_an_admin_key() {
    let db = TestDb::new();
    let body = json!({"device_id": "phone", "user_id_hash": USER}).to_string();
    let post = |auth: Option<&str>| {
        let mut b =
            Request::post("/api/awf-cloud-sync/devices").header("content-type", "application/json");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(Body::from(body.clone())).unwrap()
    };
    let r = send(&app(&db), post(None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers.get("www-authenticate").unwrap(), "Bearer");
    // A wrong key and a revoked one get the same answer.
    let wrong = format!("Bearer awfk_{}", "f".repeat(64));
    let r = send(&app(&db), post(Some(&wrong))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"]["code"], "28000");
    let revoked_message = {
        off_runtime(|| {
            db.client()
                .execute("UPDATE awf.admin_keys SET revoked_at = now()", &[])
                .unwrap()
        });
        let app = router(AppState::connect_with(&db.http_url(), 1, unsigned()).unwrap());
        let r = send(&app, post(Some(&format!("Bearer {ADMIN}")))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        r.body["error"]["message"].clone()
    };
    assert_eq!(
        revoked_message,
        send(&app(&db), post(Some(&wrong))).await.body["error"]["message"]
    );
    let r = send(&app(&db), post(Some(&format!("Bearer {ADMIN}")))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // The audit row of the registration names the key.
    let actor: String = off_runtime(|| {
        db.client()
            .query_one(
                "SELECT actor FROM awf.audit_log WHERE action = 'device_register' ORDER BY id DESC LIMIT 1",
                &[],
            )
            .unwrap()
            .get(0)
    });
    assert_eq!(actor, "key:tests");
}

/// A save another transaction holds: the upload waits at most the connection's lock timeout
/// (or its statement timeout) and answers 503 with Retry-After (a load condition, not a server fault), writing nothing.
#[tokio::test]
async fn a_lock_timeout_is_503_with_retry_after() {
    let db = TestDb::new();
    let limits = awf_http::db::Limits {
        statement_timeout: Duration::from_millis(300),
        require_signatures: false,
        ..awf_http::db::Limits::default()
    };
    db.plant_admin_key(ADMIN);
    let app = router(AppState::connect_with(&db.http_url(), 2, limits).unwrap());
    let (session, save) = session_with_save(&db);
    let phone = register(&app, "phone", Some(&session)).await;
    let head_chain = sync_down(&app, &phone, &save, 0).await.body["head_chain"].clone();
    let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let mut c = off_runtime(|| db.client());
    let save_id = save.clone();
    let holder = std::thread::spawn(move || {
        let mut tx = c.transaction().unwrap();
        tx.execute(
            "SELECT 1 FROM awf.saves WHERE save_id = $1::text::uuid FOR UPDATE",
            &[&save_id],
        )
        .unwrap();
        held_tx.send(()).unwrap();
        hold_rx.recv_timeout(Duration::from_secs(30)).ok();
        tx.rollback().unwrap();
    });
    held_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let up = json!({"save_id": save, "base_turn": 1, "base_chain": head_chain,
                    "turns": [{"turn_id": 2, "state": {"player": {"gold": 9}}}]});
    let t = Instant::now();
    let r = sync_up(&app, &phone, &up).await;
    let took = t.elapsed();
    hold_tx.send(()).unwrap();
    holder.join().unwrap();
    // The request's statement timeout and lock timeout are the same here; either may fire.
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    let code = r.body["error"]["code"].as_str().unwrap();
    assert!(["55P03", "57014"].contains(&code), "{}", r.body);
    assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    println!("upload on a held save: 503 after {took:?}");
    assert_eq!(sync_down(&app, &phone, &save, 0).await.body["head_turn"], 1);
}
