//! What the route tests share: a server on a loopback port over a test database, a client
//! that authenticates as nobody, an admin key or a device, and a session with a cloud save.
#![allow(dead_code)] // each test binary uses its own part

use awf_http::db::Limits;
use awf_http::{router, AppState};
use awf_tests::{off_runtime, random_uuid, TestDb};
use reqwest::Method;
use serde_json::{json, Value};

pub const ADMIN: &str = "awfk_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Admin,
    Device(&'a str, &'a str),
}

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

/// One answer: status, content type, and the body as JSON (or as a string when it is not).
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    pub text: String,
}

impl Api {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        match auth {
            Auth::None => {}
            Auth::Admin => req = req.bearer_auth(ADMIN),
            Auth::Device(id, token) => req = req.header("x-device-id", id).bearer_auth(token),
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("the server answers");
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, auth: Auth<'_>) -> Answer {
        self.send(Method::GET, path, auth, None).await
    }

    pub async fn post(&self, path: &str, auth: Auth<'_>, body: Value) -> Answer {
        self.send(Method::POST, path, auth, Some(body)).await
    }
}

/// Asserts a status, printing the body when it differs.
#[track_caller]
pub fn expect(a: &Answer, status: u16) -> &Value {
    assert_eq!(a.status, status, "{}", a.text);
    &a.body
}

/// A session of `user` with three turns and a cloud save: (session, save).
pub fn session_with_save(db: &TestDb, user: &str) -> (String, String) {
    let session = random_uuid();
    let save = off_runtime(|| {
        let mut c = db.client();
        c.execute(
            "SELECT awf.session_upsert($1::text::uuid, $2, '{\"player\":{\"gold\":0,\"email\":\"ann@example.com\"}}')",
            &[&session, &user],
        )
        .unwrap();
        let save: Value = c
            .query_one(
                "SELECT awf.save_create_or_attach($1::text::uuid, $2)",
                &[&session, &user],
            )
            .unwrap()
            .get(0);
        for k in 1..=3i64 {
            c.execute(
                "SELECT awf.turn_submit($1::text::uuid, $2, '{\"txt\":\"Ash finds gold.\",\"acts\":[{\"op\":\"increment\",\"path\":\"/player/gold\",\"by\":3}]}')",
                &[&session, &k],
            )
            .unwrap();
        }
        save["save_id"].as_str().unwrap().to_owned()
    });
    (session, save)
}

/// Starts the server on a free loopback port over `db`, with the admin key planted, not
/// requiring signed sync requests (signing has its own tests).
pub async fn serve(db: &TestDb) -> (Api, tokio::task::JoinHandle<()>) {
    serve_with(
        db,
        Limits {
            require_signatures: false,
            ..Limits::default()
        },
    )
    .await
}

/// [`serve`] with explicit limits.
pub async fn serve_with(db: &TestDb, limits: Limits) -> (Api, tokio::task::JoinHandle<()>) {
    db.plant_admin_key(ADMIN);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(AppState::connect_with(&db.http_url(), 4, limits).unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let api = Api {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
    };
    (api, server)
}

pub async fn register(api: &Api, device: &str, user: &str, session: &str) -> String {
    let a = api
        .post(
            "/api/awf-cloud-sync/devices",
            Auth::Admin,
            json!({"device_id": device, "user_id_hash": user, "session_id": session}),
        )
        .await;
    expect(&a, 201)["sync_token"].as_str().unwrap().to_owned()
}
