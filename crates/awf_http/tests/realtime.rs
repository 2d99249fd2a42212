//! Real-time sync over a real socket: a device's long poll (`sync/down?...&wait=`) and event
//! stream (`sync/events`) wake when another device (or the game's own turn) moves the save's
//! head, through PostgreSQL's LISTEN/NOTIFY, and refuse what they should before waiting.

mod common;

use awf_tests::{off_runtime, TestDb};
use common::*;
use postgres::fallible_iterator::FallibleIterator;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The save's head chain as the device sees it.
async fn head(api: &Api, device: Auth<'_>, save: &str) -> (i64, String) {
    let a = api
        .get(
            &format!("/api/awf-cloud-sync/sync/down?save_id={save}&since_turn=0"),
            device,
        )
        .await;
    let b = expect(&a, 200);
    (
        b["head_turn"].as_i64().unwrap(),
        b["head_chain"].as_str().unwrap().to_owned(),
    )
}

/// Uploads one turn on the current head from `device`.
async fn upload(api: &Api, device: Auth<'_>, save: &str, gold: i64) -> i64 {
    let (turn, chain) = head(api, device, save).await;
    let a = api
        .post(
            "/api/awf-cloud-sync/sync/up",
            device,
            json!({"save_id": save, "base_turn": turn, "base_chain": chain,
                   "turns": [{"turn_id": turn + 1, "state": {"player": {"gold": gold}}}]}),
        )
        .await;
    assert_eq!(expect(&a, 200)["status"], "fast_forward", "{}", a.text);
    turn + 1
}

/// Waits (bounded) until the server reports `n` sync waiters on `/metrics`.
async fn until_waiters(api: &Api, n: usize) {
    let want = format!("awf_http_sync_waiters {n}\n");
    for _ in 0..200 {
        if api.get("/metrics", Auth::None).await.text.contains(&want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the server never had {n} sync waiters");
}

/// Two devices of one user on one save: (api, server, save, session, phone token, tablet token).
async fn two_devices(db: &TestDb) -> (Api, String, String, String, String) {
    let (api, _server) = serve(db).await;
    let (session, save) = session_with_save(db, "user-rt");
    let phone = register(&api, "rt-phone", "user-rt", &session).await;
    let tablet = register(&api, "rt-tablet", "user-rt", &session).await;
    (api, save, session, phone, tablet)
}

#[tokio::test]
async fn a_long_poll_wakes_when_another_device_uploads() {
    let db = TestDb::new();
    let (api, save, _session, phone, tablet) = two_devices(&db).await;
    let phone = Auth::Device("rt-phone", &phone);
    let (since, _) = head(&api, Auth::Device("rt-tablet", &tablet), &save).await;

    let api2 = Api {
        base: api.base.clone(),
        http: api.http.clone(),
    };
    let (save2, tablet2) = (save.clone(), tablet.clone());
    let poll = tokio::spawn(async move {
        let a = api2
            .get(
                &format!(
                    "/api/awf-cloud-sync/sync/down?save_id={save2}&since_turn={since}&wait=30"
                ),
                Auth::Device("rt-tablet", &tablet2),
            )
            .await;
        (a, Instant::now())
    });
    until_waiters(&api, 1).await;
    let sent = Instant::now();
    let turn = upload(&api, phone, &save, 77).await;
    let (a, answered) = poll.await.unwrap();
    let body = expect(&a, 200);
    let turns = body["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 1, "the poll answers with the new turn: {body}");
    assert_eq!(turns[0]["turn_id"], turn);
    assert_eq!(body["head_turn"], turn);
    eprintln!(
        "long poll answered {:?} after the upload was sent",
        answered.duration_since(sent)
    );
    until_waiters(&api, 0).await;
}

#[tokio::test]
async fn a_long_poll_with_nothing_new_answers_empty_when_the_wait_ends() {
    let db = TestDb::new();
    let (api, save, _session, _phone, tablet) = two_devices(&db).await;
    let tablet = Auth::Device("rt-tablet", &tablet);
    let (since, _) = head(&api, tablet, &save).await;
    let t = Instant::now();
    let a = api
        .get(
            &format!("/api/awf-cloud-sync/sync/down?save_id={save}&since_turn={since}&wait=1"),
            tablet,
        )
        .await;
    let body = expect(&a, 200);
    assert_eq!(body["turns"], json!([]), "{body}");
    assert!(t.elapsed() >= Duration::from_millis(900), "it waited");
    // Turns already there answer at once, whatever the wait.
    let a = api
        .get(
            &format!("/api/awf-cloud-sync/sync/down?save_id={save}&since_turn=0&wait=60"),
            tablet,
        )
        .await;
    assert!(!expect(&a, 200)["turns"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn long_polls_and_streams_refuse_before_they_wait() {
    let db = TestDb::new();
    let (api, save, _session, _phone, tablet) = two_devices(&db).await;
    let ok = Auth::Device("rt-tablet", &tablet);
    let wrong = "0".repeat(64);
    let down = |q: &str| format!("/api/awf-cloud-sync/sync/down?{q}");
    let events = |q: &str| format!("/api/awf-cloud-sync/sync/events?{q}");
    let q = format!("save_id={save}&since_turn=0");
    let t = Instant::now();
    for (path, auth, status) in [
        (down(&format!("{q}&wait=61")), ok, 422),
        (down(&format!("{q}&wait=-1")), ok, 400),
        (down(&format!("{q}&wait=30")), Auth::None, 401),
        (
            down(&format!("{q}&wait=30")),
            Auth::Device("rt-tablet", &wrong),
            403,
        ),
        (down("save_id=nope&since_turn=0&wait=30"), ok, 400),
        (
            down(&format!(
                "save_id={}&since_turn=0&wait=30",
                awf_tests::random_uuid()
            )),
            ok,
            404,
        ),
        (events(&q), Auth::None, 401),
        (events(&q), Auth::Device("rt-tablet", &wrong), 403),
        (events(&format!("{q}&wait=5")), ok, 400),
        (events("save_id=nope&since_turn=0"), ok, 400),
    ] {
        let a = api.get(&path, auth).await;
        assert_eq!(a.status, status, "{path}: {}", a.text);
        assert!(a.body["error"]["code"].is_string(), "{path}: {}", a.text);
    }
    // None of those waited (each would have held the request 30 s).
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    until_waiters(&api, 0).await;
}

/// Reads server-sent events off a streaming response: (event name, parsed data).
struct Events {
    res: reqwest::Response,
    buf: String,
}

impl Events {
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if name.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((name, serde_json::from_str(&data).unwrap()));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.res.chunk())
                .await
                .expect("an event within 30 s")
                .unwrap()?;
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test]
async fn an_event_stream_sends_every_head_move_until_the_token_changes() {
    let db = TestDb::new();
    let (api, save, session, phone, tablet) = two_devices(&db).await;
    let phone = Auth::Device("rt-phone", &phone);
    let res = api
        .http
        .get(format!(
            "{}/api/awf-cloud-sync/sync/events?save_id={save}&since_turn=0",
            api.base
        ))
        .header("x-device-id", "rt-tablet")
        .bearer_auth(&tablet)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut events = Events {
        res,
        buf: String::new(),
    };
    // First: everything after since_turn.
    let (name, first) = events.next().await.unwrap();
    assert_eq!(name, "turns");
    let head = first["head_turn"].as_i64().unwrap();
    assert_eq!(first["turns"].as_array().unwrap().len() as i64, head);

    // Another device's upload.
    let sent = Instant::now();
    let turn = upload(&api, phone, &save, 5).await;
    let (name, e) = events.next().await.unwrap();
    eprintln!(
        "event stream delivered a turn {:?} after the upload was sent",
        sent.elapsed()
    );
    assert_eq!(name, "turns");
    assert_eq!(e["since_turn"], head, "{e}");
    assert_eq!(e["turns"][0]["turn_id"], turn, "{e}");

    // The game's own turn (the session's 4th), submitted in SQL, is the save's next turn and
    // moves the head too.
    off_runtime(|| {
        db.client()
            .execute(
                "SELECT awf.turn_submit($1::text::uuid, 4, '{\"txt\":\"More gold.\",\"acts\":[{\"op\":\"increment\",\"path\":\"/player/gold\",\"by\":1}]}')",
                &[&session],
            )
            .unwrap();
    });
    let (_, e) = events.next().await.unwrap();
    assert_eq!(e["turns"][0]["turn_id"], turn + 1, "{e}");

    // A rotated token ends the stream at the next move, with an error event.
    let rotated = api
        .post(
            "/api/awf-cloud-sync/devices/token",
            Auth::Device("rt-tablet", &tablet),
            json!({}),
        )
        .await;
    expect(&rotated, 200);
    upload(&api, phone, &save, 6).await;
    let (name, e) = events.next().await.unwrap();
    assert_eq!(name, "error", "{e}");
    assert_eq!(e["error"]["code"], "42501", "{e}");
    assert!(events.next().await.is_none(), "the stream ends");
    until_waiters(&api, 0).await;
}

#[tokio::test]
async fn the_notification_names_the_save_only_by_a_one_way_key() {
    let db = TestDb::new();
    let (_api, _server) = serve(&db).await;
    let (session, save) = session_with_save(&db, "user-key");
    off_runtime(|| {
        let mut listener = db.client();
        listener.batch_execute("LISTEN awf_save_head").unwrap();
        db.client()
            .execute(
                "SELECT awf.turn_submit($1::text::uuid, 4, '{\"txt\":\"x\",\"acts\":[]}')",
                &[&session],
            )
            .unwrap();
        let mut n = listener.notifications();
        let got = n
            .timeout_iter(Duration::from_secs(10))
            .next()
            .unwrap()
            .expect("a head notification");
        assert_eq!(got.channel(), awf_core::signal::HEAD_CHANNEL);
        assert_eq!(got.payload(), awf_core::signal::head_key(&save));
        assert!(!got.payload().contains(&save[..8]));
        // A rolled-back move sends nothing.
        let mut c = db.client();
        let mut tx = c.transaction().unwrap();
        tx.execute(
            "SELECT awf.turn_submit($1::text::uuid, 5, '{\"txt\":\"x\",\"acts\":[]}')",
            &[&session],
        )
        .unwrap();
        tx.rollback().unwrap();
        assert!(n
            .timeout_iter(Duration::from_millis(500))
            .next()
            .unwrap()
            .is_none());
    });
}

#[tokio::test]
async fn one_device_cannot_take_every_waiter() {
    let db = TestDb::new();
    let (api, save, _session, phone, tablet) = two_devices(&db).await;
    let open = |device: &'static str, token: String| {
        let http = api.http.clone();
        let url = format!(
            "{}/api/awf-cloud-sync/sync/events?save_id={save}&since_turn=0",
            api.base
        );
        async move {
            http.get(url)
                .header("x-device-id", device)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let mut streams = Vec::new();
    for _ in 0..awf_http::heads::MAX_WAITERS_PER_DEVICE {
        let s = open("rt-tablet", tablet.clone()).await;
        assert_eq!(s.status(), 200);
        streams.push(s);
    }
    let refused = open("rt-tablet", tablet.clone()).await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "53300");
    // Another device still gets its stream.
    let other = open("rt-phone", phone.clone()).await;
    assert_eq!(other.status(), 200);
    drop(other);
    drop(streams);
    until_waiters(&api, 0).await;
    // And the tablet can open streams again.
    assert_eq!(open("rt-tablet", tablet).await.status(), 200);
}
