//! The device client against the real HTTP server and a real cluster (signatures required, a
//! deployment secret configured): offline play that converges, two devices on one save, an
//! answer lost on the way, a restart from the store, and tampered answers refused.

use awf_client::{Backoff, Device, Error, Registration};
use awf_core::client_seal::SealKey;
use awf_http::db::Limits;
use awf_http::{router, AppState};
use awf_tests::{off_runtime, random_uuid, TempDir, TempFile, TestDb};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ADMIN: &str = "awfk_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn quick() -> Backoff {
    Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
        attempts: 3,
    }
}

/// A database with a signing secret, the server on a loopback port, and a session with a save.
struct World {
    db: TestDb,
    base: String,
    session: String,
    save: String,
    dir: TempDir,
    _secret: TempFile,
}

async fn world(signed: bool) -> World {
    world_with(signed, false).await
}

/// [`world`], with a client-sealed save when `sealed`.
async fn world_with(signed: bool, sealed: bool) -> World {
    let db = TestDb::new();
    let secret = TempFile::with_contents(&"5a".repeat(32));
    if signed {
        off_runtime(|| {
            db.client()
                .batch_execute(&format!(
                    "ALTER DATABASE {} SET awf.signing_secret_file = '{}'",
                    db.name(),
                    secret.path()
                ))
                .unwrap()
        });
    }
    db.plant_admin_key(ADMIN);
    let limits = Limits {
        require_signatures: signed,
        ..Limits::default()
    };
    let app = router(AppState::connect_with(&db.http_url(), 4, limits).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let session = random_uuid();
    let save = off_runtime(|| {
        let mut c = db.client();
        c.execute(
            "SELECT awf.session_upsert($1::text::uuid, 'u-dev', '{\"player\": {\"gold\": 0, \"name\": \"Ash\"}}')",
            &[&session],
        )
        .unwrap();
        let v: Value = c
            .query_one(
                "SELECT awf.save_create_or_attach($1::text::uuid, 'u-dev', sealed => $2)",
                &[&session, &sealed],
            )
            .unwrap()
            .get(0);
        v["save_id"].as_str().unwrap().to_owned()
    });
    World {
        db,
        base,
        session,
        save,
        dir: TempDir::new(),
        _secret: secret,
    }
}

impl World {
    async fn device(&self, name: &str, base: &str) -> Device {
        self.sealed_device(name, base, None).await.unwrap()
    }

    async fn sealed_device(
        &self,
        name: &str,
        base: &str,
        key: Option<&SealKey>,
    ) -> awf_client::Result<Device> {
        Device::register(
            std::path::Path::new(&self.dir.file(name)),
            base,
            ADMIN,
            &Registration {
                device_id: name,
                user: "u-dev",
                session: &self.session,
                save_id: &self.save,
                seal_key: key,
            },
            quick(),
        )
        .await
    }

    /// One value of SQL on the test database.
    fn sql<T: for<'a> postgres::types::FromSql<'a> + Send>(&self, q: &str) -> T {
        off_runtime(|| self.db.client().query_one(q, &[&self.save]).unwrap().get(0))
    }

    /// The server's head (turn, chain) and whether the save verifies.
    fn server(&self) -> (i64, String, bool) {
        off_runtime(|| {
            let mut c = self.db.client();
            let r = c
                .query_one(
                    "SELECT head_turn, head_chain, (awf.save_verify(save_id)->>'ok')::boolean
                     FROM awf.saves WHERE save_id = $1::text::uuid",
                    &[&self.save],
                )
                .unwrap();
            (r.get(0), r.get(1), r.get(2))
        })
    }
}

fn gold(state: &Value, by: i64) -> Value {
    let mut s = state.clone();
    let g = s["player"]["gold"].as_i64().unwrap_or(0);
    s["player"]["gold"] = json!(g + by);
    s
}

#[tokio::test]
async fn a_device_offline_for_200_turns_converges_when_it_reconnects() {
    let w = world(true).await;
    let phone = w.device("phone", &w.base).await;
    let start = phone.confirmed().unwrap().turn_id;
    let path = w.dir.file("phone");
    drop(phone);
    // Offline: nothing listens there. Turns are recorded anyway, durably.
    let mut offline =
        Device::open(std::path::Path::new(&path), "http://127.0.0.1:1", quick()).unwrap();
    for _ in 0..200 {
        let next = gold(&offline.state().unwrap(), 1);
        offline.record_turn(next).unwrap();
    }
    let e = offline.sync().await.unwrap_err();
    assert!(matches!(e, Error::Offline(_)), "{e}");
    drop(offline);
    // Back online (a new process: the queue comes from the store).
    let mut phone = Device::open(std::path::Path::new(&path), &w.base, quick()).unwrap();
    assert_eq!(phone.queued().unwrap().len(), 200);
    let r = phone.sync().await.unwrap();
    assert_eq!(r.pushed, 200, "{r:?}");
    assert!(phone.queued().unwrap().is_empty());
    let (head, chain, ok) = w.server();
    assert_eq!(head, start + 200);
    assert_eq!(chain, r.head_chain);
    assert!(ok, "the save verifies");
    assert_eq!(phone.state().unwrap()["player"]["gold"], 200);
    // A second device registered now gets the same state.
    let tablet = w.device("tablet", &w.base).await;
    assert_eq!(tablet.confirmed().unwrap().chain_hash, chain);
    assert_eq!(tablet.state().unwrap(), phone.state().unwrap());
}

#[tokio::test]
async fn two_devices_playing_one_save_converge_to_one_chain() {
    let w = world(true).await;
    let mut phone = w.device("phone2", &w.base).await;
    let mut tablet = w.device("tablet2", &w.base).await;
    let mut conflicts = 0;
    for round in 0..10 {
        let p = gold(&phone.state().unwrap(), 1);
        phone.record_turn(p).unwrap();
        let t = gold(&tablet.state().unwrap(), 10);
        tablet.record_turn(t).unwrap();
        // Both sync at once; the second to arrive built on a stale base.
        let (a, b) = tokio::join!(phone.sync(), tablet.sync());
        for r in [a.unwrap(), b.unwrap()] {
            if let Some(c) = r.conflict {
                conflicts += 1;
                assert!(c.is_object(), "round {round}: the server's report: {c}");
            }
        }
    }
    // Settle: each device pulls what the other's last sync left.
    phone.sync().await.unwrap();
    tablet.sync().await.unwrap();
    let (head, chain, ok) = w.server();
    assert!(ok);
    assert_eq!(phone.confirmed().unwrap().chain_hash, chain);
    assert_eq!(tablet.confirmed().unwrap().chain_hash, chain);
    assert_eq!(phone.confirmed().unwrap().turn_id, head);
    assert_eq!(phone.state().unwrap(), tablet.state().unwrap());
    assert!(
        conflicts >= 1,
        "concurrent syncs conflict, and it is reported"
    );
    let recorded: i64 = off_runtime(|| {
        w.db.client()
            .query_one(
                "SELECT count(*) FROM awf.save_conflicts WHERE save_id = $1::text::uuid",
                &[&w.save],
            )
            .unwrap()
            .get(0)
    });
    assert_eq!(
        recorded, conflicts as i64,
        "every conflict the devices saw is on record"
    );
}

/// A proxy in front of the server that can drop an answer or tamper with one.
#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    /// Sync-up answers still to lose (the upload reaches the server; its answer does not).
    lose_uploads: Arc<AtomicUsize>,
    /// Sync-down answers to alter.
    tamper_downs: Arc<AtomicUsize>,
    /// Sync-down answers to make up, signed with `forge_key` (a server that holds the keys
    /// and lies), answered in this order instead of asking the server.
    forge_downs: Arc<std::sync::Mutex<Vec<Value>>>,
    forge_key: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
}

async fn forward(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path().ends_with("/sync/down") {
        let forged = {
            let mut f = p.forge_downs.lock().unwrap();
            (!f.is_empty()).then(|| f.remove(0))
        };
        if let Some(body) = forged {
            let body = serde_json::to_vec(&body).unwrap();
            let nonce = headers
                .get("x-awf-signature")
                .and_then(|h| awf_core::signing::Signature::parse(h.to_str().ok()?).ok())
                .unwrap()
                .nonce;
            let key = p.forge_key.lock().unwrap().clone().unwrap();
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let message = awf_core::signing::response_string(
                200,
                &nonce,
                t,
                &awf_core::signing::body_hash(&body),
            );
            let sig = awf_core::signing::Signature {
                t,
                nonce,
                mac: awf_core::signing::sign(&key, &message),
            };
            let h = [
                ("content-type", "application/json".to_owned()),
                ("x-awf-signature", sig.header()),
            ];
            return (StatusCode::OK, h, body).into_response();
        }
    }
    let url = format!(
        "{}{}",
        p.upstream,
        uri.path_and_query().map_or("", |x| x.as_str())
    );
    let mut req = p.http.request(method.clone(), url).body(body.to_vec());
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let mut out_headers = HeaderMap::new();
    for (k, v) in res.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            out_headers.insert(k.clone(), v.clone());
        }
    }
    let mut bytes = res.bytes().await.unwrap().to_vec();
    let take = |n: &AtomicUsize| {
        n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |x| x.checked_sub(1))
            .is_ok()
    };
    if uri.path().ends_with("/sync/up") && take(&p.lose_uploads) {
        return (StatusCode::BAD_GATEWAY, "lost").into_response();
    }
    if uri.path().ends_with("/sync/down") && status == 200 && take(&p.tamper_downs) {
        let mut v: Value = serde_json::from_slice(&bytes).unwrap();
        if let Some(t) = v["turns"].get_mut(0) {
            t["patch"] = json!([{"op": "replace", "path": "/player/gold", "value": 999999}]);
        }
        bytes = serde_json::to_vec(&v).unwrap();
    }
    (StatusCode::from_u16(status).unwrap(), out_headers, bytes).into_response()
}

async fn proxy(upstream: &str) -> (String, Proxy) {
    let p = Proxy {
        upstream: upstream.to_owned(),
        http: reqwest::Client::new(),
        lose_uploads: Arc::new(AtomicUsize::new(0)),
        tamper_downs: Arc::new(AtomicUsize::new(0)),
        forge_downs: Arc::default(),
        forge_key: Arc::default(),
    };
    let app = axum::Router::new().fallback(forward).with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, p)
}

#[tokio::test]
async fn a_turn_whose_answer_was_lost_is_applied_once() {
    let w = world(true).await;
    let (via, p) = proxy(&w.base).await;
    let mut phone = w.device("phone3", &via).await;
    let start = phone.confirmed().unwrap().turn_id;
    let next = gold(&phone.state().unwrap(), 5);
    phone.record_turn(next).unwrap();
    // Every try's answer is lost: the upload reached the server, the device cannot know.
    p.lose_uploads
        .store(quick().attempts as usize, Ordering::SeqCst);
    let e = phone.sync().await.unwrap_err();
    assert!(matches!(e, Error::Offline(_)), "{e}");
    assert_eq!(phone.queued().unwrap().len(), 1, "still queued");
    assert_eq!(w.server().0, start + 1, "the server has it");
    // The next sync finds its own turn on the server and sends nothing twice.
    let r = phone.sync().await.unwrap();
    assert_eq!((r.already_there, r.pushed, r.pulled), (1, 0, 0), "{r:?}");
    let (head, chain, ok) = w.server();
    assert_eq!(head, start + 1);
    assert_eq!(chain, r.head_chain);
    assert!(ok);
    assert!(phone.queued().unwrap().is_empty());
}

#[tokio::test]
async fn a_tampered_answer_is_refused_and_nothing_is_applied() {
    for signed in [true, false] {
        let w = world(signed).await;
        let (via, p) = proxy(&w.base).await;
        let mut phone = w.device(&format!("phone-t{signed}"), &via).await;
        let mut tablet = w.device(&format!("tablet-t{signed}"), &w.base).await;
        let t = gold(&tablet.state().unwrap(), 7);
        tablet.record_turn(t).unwrap();
        tablet.sync().await.unwrap();
        let before = phone.confirmed().unwrap();
        p.tamper_downs.store(1, Ordering::SeqCst);
        let e = phone.sync().await.unwrap_err();
        assert!(matches!(e, Error::Untrusted(_)), "signed {signed}: {e}");
        assert_eq!(phone.confirmed().unwrap(), before, "nothing applied");
        // Untampered, the same pull goes through.
        let r = phone.sync().await.unwrap();
        assert_eq!(r.pulled, 1, "{r:?}");
        assert_eq!(phone.state().unwrap(), tablet.state().unwrap());
    }
}

#[tokio::test]
async fn a_sync_rides_through_a_server_restart() {
    let w = world(true).await;
    // Our own server in front of the same database, so it can be stopped and started again
    // on the same address.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = |listener: tokio::net::TcpListener| {
        let app = router(AppState::connect_with(&w.db.http_url(), 4, Limits::default()).unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() })
    };
    let server = serve(listener);
    let base = format!("http://{addr}");
    let path = w.dir.file("restart");
    {
        let mut phone = w.device("restart", &base).await;
        for _ in 0..20 {
            let s = gold(&phone.state().unwrap(), 2);
            phone.record_turn(s).unwrap();
        }
    }
    let start = w.server().0;
    server.abort();
    let _ = server.await;
    let patient = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(400),
        attempts: 12,
    };
    let mut phone = Device::open(std::path::Path::new(&path), &base, patient).unwrap();
    let sync = tokio::spawn(async move {
        let r = phone.sync().await;
        (r, phone)
    });
    // The server comes back while the device is retrying.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _server = serve(again);
    let (r, phone) = sync.await.unwrap();
    let r = r.unwrap();
    assert_eq!(r.pushed, 20, "{r:?}");
    let (head, chain, ok) = w.server();
    assert_eq!(head, start + 20);
    assert_eq!(chain, phone.confirmed().unwrap().chain_hash);
    assert!(ok);
}

#[tokio::test]
async fn the_token_is_refreshed_before_it_expires() {
    let w = world(true).await;
    let mut phone = w.device("refresh", &w.base).await;
    let id = phone.identity().clone();
    assert!(
        id.token_expires_at.ends_with('Z'),
        "RFC 3339 UTC: {}",
        id.token_expires_at
    );
    let left = id.token_expires_unix
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
    assert!((29 * 86400..=30 * 86400).contains(&left), "{left}");
    // Within the refresh window (here: always), sync rotates first.
    phone.refresh_before = Duration::from_secs(31 * 86400);
    let s = gold(&phone.state().unwrap(), 1);
    phone.record_turn(s).unwrap();
    let r = phone.sync().await.unwrap();
    assert_eq!(r.pushed, 1);
    let new = phone.identity().clone();
    assert_ne!(new.token, id.token, "rotated");
    // The store has the new token (a restart keeps working), and the old one is dead.
    let path = w.dir.file("refresh");
    drop(phone);
    let mut again = Device::open(std::path::Path::new(&path), &w.base, quick()).unwrap();
    assert_eq!(again.identity().token, new.token);
    again.sync().await.unwrap();
    let old_works = off_runtime(|| {
        let mut c = w.db.client();
        let mut tx = c.transaction().unwrap();
        tx.batch_execute("SET LOCAL ROLE awf_gateway").unwrap();
        tx.query_one("SELECT awf.act_as_device('refresh', $1)", &[&id.token])
            .is_ok()
    });
    assert!(!old_works);
}

#[tokio::test]
async fn a_retried_upload_after_one_lost_answer_is_no_conflict() {
    let w = world(true).await;
    let (via, p) = proxy(&w.base).await;
    let mut phone = w.device("phone4", &via).await;
    let start = phone.confirmed().unwrap().turn_id;
    for _ in 0..3 {
        let next = gold(&phone.state().unwrap(), 1);
        phone.record_turn(next).unwrap();
    }
    // The first answer is lost; the transport's retry finds the turns held already.
    p.lose_uploads.store(1, Ordering::SeqCst);
    let r = phone.sync().await.unwrap();
    assert!(r.conflict.is_none(), "{r:?}");
    assert_eq!(r.pushed, 3, "{r:?}");
    let (head, chain, ok) = w.server();
    assert_eq!(head, start + 3);
    assert_eq!(chain, r.head_chain);
    assert!(ok);
}

#[tokio::test]
async fn a_device_whose_confirmed_turns_lost_a_conflict_adopts_the_server_history() {
    let w = world(true).await;
    let mut phone = w.device("loser", &w.base).await;
    let mut tablet = w.device("winner", &w.base).await;
    // The phone confirms 3 turns; the tablet, offline meanwhile, plays 10 on the older base.
    for _ in 0..3 {
        let s = gold(&phone.state().unwrap(), 1);
        phone.record_turn(s).unwrap();
    }
    phone.sync().await.unwrap();
    for _ in 0..10 {
        let s = gold(&tablet.state().unwrap(), 100);
        tablet.record_turn(s).unwrap();
    }
    tablet.strategy = Some("longest_chain".into());
    let r = tablet.sync().await.unwrap();
    let c = r.conflict.expect("a conflict");
    assert_eq!(
        c["resolution"]["chosen_branch"], c["branches"][1]["branch_id"],
        "{c}"
    );
    // The phone's confirmed turns are archived now; its next turn was built on them.
    let s = gold(&phone.state().unwrap(), 1);
    phone.record_turn(s).unwrap();
    let r = phone.sync().await.unwrap();
    assert!(r.history_replaced, "{r:?}");
    assert_eq!(r.orphaned.len(), 1, "the queued turn is kept, not lost");
    assert_eq!(phone.orphaned().unwrap().len(), 1);
    assert!(phone.queued().unwrap().is_empty());
    let (head, chain, ok) = w.server();
    assert!(ok);
    assert_eq!(phone.confirmed().unwrap().chain_hash, chain);
    assert_eq!(phone.confirmed().unwrap().turn_id, head);
    assert_eq!(phone.state().unwrap(), tablet.state().unwrap());
    // From there it plays on normally.
    phone.clear_orphaned().unwrap();
    let s = gold(&phone.state().unwrap(), 1);
    phone.record_turn(s).unwrap();
    assert_eq!(phone.sync().await.unwrap().pushed, 1);
}

#[tokio::test]
async fn a_long_queue_goes_up_in_parts_that_fit_the_server() {
    let w = world(true).await;
    let mut phone = w.device("long", &w.base).await;
    let start = phone.confirmed().unwrap().turn_id;
    // 600 turns of ~6 KB states: 3.6 MB and 600 turns in all, over one upload's share.
    for i in 0..600 {
        let mut s = gold(&phone.state().unwrap(), 1);
        s["pad"] = json!(format!("{i:06}{}", "x".repeat(6000)));
        phone.record_turn(s).unwrap();
    }
    let r = phone.sync().await.unwrap();
    assert_eq!(r.pushed, 600, "{:?}", (r.pulled, r.pushed, &r.conflict));
    let (head, chain, ok) = w.server();
    assert_eq!(head, start + 600);
    assert_eq!(chain, r.head_chain);
    assert!(ok);
}

#[tokio::test]
async fn two_devices_sharing_a_seal_key_sync_a_sealed_save_the_server_cannot_read() {
    let w = world_with(true, true).await;
    let key = SealKey::from_hex(&SealKey::generate_hex()).unwrap();
    // Both register while the save holds nothing: each starts at its origin, empty.
    let mut phone = w
        .sealed_device("phone-s", &w.base, Some(&key))
        .await
        .unwrap();
    let mut tablet = w
        .sealed_device("tablet-s", &w.base, Some(&key))
        .await
        .unwrap();
    assert!(phone.sealed());
    assert_eq!(phone.state().unwrap(), json!({}));
    let origin = phone.confirmed().unwrap().turn_id;
    const SECRET: &str = "dragon-hoard-under-the-well";
    // Both play offline on the origin; the first to sync wins it, the other's first upload
    // is a conflict the server resolves without reading a state.
    for i in 0..3 {
        phone
            .record_turn(json!({"player": {"gold": i, "note": SECRET}}))
            .unwrap();
    }
    tablet
        .record_turn(json!({"player": {"gold": 100}}))
        .unwrap();
    let r = phone.sync().await.unwrap();
    assert_eq!((r.pushed, r.head_turn), (3, origin + 3), "{r:?}");
    let r = tablet.sync().await.unwrap();
    assert!(r.conflict.is_some(), "{r:?}");
    assert_eq!(tablet.state().unwrap(), phone.state().unwrap());
    // Then concurrent rounds, as any two devices play.
    let mut conflicts = 1;
    for _ in 0..5 {
        let p = gold(&phone.state().unwrap(), 1);
        phone.record_turn(p).unwrap();
        let t = gold(&tablet.state().unwrap(), 10);
        tablet.record_turn(t).unwrap();
        let (a, b) = tokio::join!(phone.sync(), tablet.sync());
        conflicts += [a.unwrap(), b.unwrap()]
            .iter()
            .filter(|r| r.conflict.is_some())
            .count();
    }
    phone.sync().await.unwrap();
    tablet.sync().await.unwrap();
    let (head, chain, ok) = w.server();
    assert!(ok, "the sealed save verifies on the server");
    assert_eq!(phone.confirmed().unwrap().chain_hash, chain);
    assert_eq!(tablet.confirmed().unwrap().chain_hash, chain);
    assert_eq!(phone.state().unwrap(), tablet.state().unwrap());
    assert_eq!(phone.state().unwrap()["player"]["note"], json!(SECRET));
    let recorded: i64 =
        w.sql("SELECT count(*) FROM awf.save_conflicts WHERE save_id = $1::text::uuid");
    assert_eq!(recorded, conflicts as i64);
    // What the server holds is what the devices sealed: no state it could read.
    let bytes: Vec<u8> = w.sql(&format!(
        "SELECT awf.save_materialize_bytes($1::text::uuid, {head})"
    ));
    assert!(!bytes.windows(SECRET.len()).any(|b| b == SECRET.as_bytes()));
    assert_eq!(
        awf_core::client_seal::open(
            &key,
            awf_core::client_seal::Place {
                save_id: &w.save,
                turn_id: head,
                prev_chain: ""
            },
            &bytes,
            1 << 20
        )
        .unwrap(),
        phone.state().unwrap()
    );
    let session_state: String = w.sql(
        "SELECT s.state::text FROM awf.sessions s JOIN awf.saves v USING (session_id)
         WHERE v.save_id = $1::text::uuid",
    );
    assert!(!session_state.contains(SECRET), "{session_state}");
}

#[tokio::test]
async fn a_device_without_the_seal_key_gets_a_clear_error_and_applies_nothing() {
    let w = world_with(true, true).await;
    let key = SealKey::from_hex(&SealKey::generate_hex()).unwrap();
    let other = SealKey::from_hex(&SealKey::generate_hex()).unwrap();
    let mut phone = w
        .sealed_device("phone-k", &w.base, Some(&key))
        .await
        .unwrap();
    phone.record_turn(json!({"hp": 3})).unwrap();
    phone.sync().await.unwrap();
    // Without a key, or with another one, registering on the save cannot open its state.
    let e = w
        .sealed_device("tablet-none", &w.base, None)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&e, Error::Sealed(m) if m.contains("seal key")),
        "{e}"
    );
    let e = w
        .sealed_device("tablet-other", &w.base, Some(&other))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&e, Error::Sealed(m) if m.contains(key.id()) && m.contains(other.id())),
        "{e}"
    );
    // The registered device restarted without its key: it records nothing and applies no
    // pulled turn; given the key again, it goes on.
    let mut tablet = w
        .sealed_device("tablet-k", &w.base, Some(&key))
        .await
        .unwrap();
    tablet.record_turn(json!({"hp": 4})).unwrap();
    tablet.sync().await.unwrap();
    let path = w.dir.file("phone-k");
    drop(phone);
    let mut phone = Device::open(std::path::Path::new(&path), &w.base, quick()).unwrap();
    let before = phone.confirmed().unwrap();
    let e = phone.record_turn(json!({"hp": 5})).unwrap_err();
    assert!(matches!(e, Error::Sealed(_)), "{e}");
    let e = phone.sync().await.unwrap_err();
    assert!(matches!(e, Error::Sealed(_)), "{e}");
    assert_eq!(phone.confirmed().unwrap(), before, "nothing applied");
    phone.set_seal_key(Some(key.clone())).unwrap();
    let r = phone.sync().await.unwrap();
    assert_eq!(r.pulled, 1, "{r:?}");
    assert_eq!(phone.state().unwrap(), json!({"hp": 4}));
}

#[tokio::test]
async fn a_sealed_device_takes_no_state_the_server_made_up() {
    let w = world_with(true, true).await;
    let (via, p) = proxy(&w.base).await;
    let key = SealKey::from_hex(&SealKey::generate_hex()).unwrap();
    let mut phone = w.sealed_device("phone-f", &via, Some(&key)).await.unwrap();
    phone.record_turn(json!({"hp": 1})).unwrap();
    phone.sync().await.unwrap();
    phone.record_turn(json!({"hp": 2})).unwrap();
    let before = phone.confirmed().unwrap();
    // A server holding the signing secret says the save moved away from the device, then
    // offers an empty save at a head of its choosing: a state it made up ({}), signed.
    let secret = awf_core::signing::parse_secret(&"5a".repeat(32)).unwrap();
    *p.forge_key.lock().unwrap() = Some(awf_core::signing::save_key(&secret, &w.save).to_vec());
    let head = json!({"save_id": w.save, "sealed": true, "turns": [], "prev_chain": null});
    let mut ahead = head.clone();
    ahead["ahead"] = json!(true);
    ahead["head_turn"] = json!(-5);
    ahead["head_chain"] = json!("0".repeat(64));
    let mut empty = head.clone();
    empty["head_turn"] = json!(999);
    empty["head_chain"] = json!("f".repeat(64));
    p.forge_downs.lock().unwrap().extend([ahead, empty]);
    let e = phone.sync().await.unwrap_err();
    assert!(matches!(e, Error::NotReady(_) | Error::Untrusted(_)), "{e}");
    assert_eq!(phone.confirmed().unwrap(), before, "nothing adopted");
    assert_eq!(phone.queued().unwrap().len(), 1, "nothing orphaned");
    assert!(phone.orphaned().unwrap().is_empty());
    // The real server again: the queued turn goes up.
    assert_eq!(phone.sync().await.unwrap().pushed, 1);
}

#[tokio::test]
async fn a_seal_key_for_a_save_that_is_not_sealed_is_refused_not_ignored() {
    let w = world(true).await;
    let key = SealKey::from_hex(&SealKey::generate_hex()).unwrap();
    let e = w
        .sealed_device("plain", &w.base, Some(&key))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&e, Error::Sealed(m) if m.contains("not client-sealed")),
        "{e}"
    );
    // Nothing was kept of the refused registration: the same store registers without a key.
    let mut d = w.sealed_device("plain", &w.base, None).await.unwrap();
    assert!(!d.sealed());
    let e = d.set_seal_key(Some(key)).unwrap_err();
    assert!(matches!(e, Error::Sealed(_)), "{e}");
    d.set_seal_key(None).unwrap();
}
