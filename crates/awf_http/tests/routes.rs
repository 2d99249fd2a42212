//! Every route of the Phase 10 admin API and the Phase 23 cloud-save API, over a real socket
//! against a real database, as the server's own non-superuser login: each route's success and
//! its refusals (no credential, the wrong kind, a bad id, an unknown thing, a bad argument).

mod common;

use awf_tests::{off_runtime, random_uuid, TestDb};
use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn every_admin_or_device_route_is_401_without_a_credential() {
    let db = TestDb::new();
    let (api, server) = serve(&db).await;
    let (sid, save) = (random_uuid(), random_uuid());
    let routes = [
        (
            Method::POST,
            format!("/api/admin/awf/sessions/{sid}/snapshots"),
        ),
        (
            Method::GET,
            format!("/api/admin/awf/sessions/{sid}/snapshots"),
        ),
        (
            Method::POST,
            format!("/api/admin/awf/sessions/{sid}/restore/1"),
        ),
        (
            Method::DELETE,
            format!("/api/admin/awf/sessions/{sid}/snapshots/1"),
        ),
        (Method::GET, format!("/api/admin/awf/sessions/{sid}/recap")),
        (Method::GET, format!("/api/admin/awf/sessions/{sid}/export")),
        (Method::POST, "/api/admin/awf/sessions/import".to_owned()),
        (Method::GET, "/api/admin/awf/wal/repair".to_owned()),
        (Method::POST, "/api/admin/awf/wal/repair".to_owned()),
        (Method::GET, format!("/api/admin/awf/sessions/{sid}/wal")),
        (Method::POST, "/api/awf-cloud-sync/devices".to_owned()),
        (Method::POST, "/api/awf-cloud-sync/devices/token".to_owned()),
        (Method::POST, "/api/awf-cloud-sync/sync/up".to_owned()),
        (
            Method::GET,
            format!("/api/awf-cloud-sync/sync/down?save_id={save}&since_turn=0"),
        ),
        (
            Method::POST,
            "/api/awf-cloud-sync/save/materialize".to_owned(),
        ),
        (Method::POST, "/api/awf-cloud-sync/save/verify".to_owned()),
        (Method::POST, "/api/awf-cloud-sync/save/export".to_owned()),
        (Method::DELETE, "/api/awf-cloud-sync/save".to_owned()),
        (Method::POST, "/api/awf-cloud-sync/save/restore".to_owned()),
        (Method::GET, "/api/awf-cloud-sync/quota/u1".to_owned()),
        (Method::GET, "/api/awf-cloud-sync/save/conflicts".to_owned()),
        (Method::GET, "/api/awf-cloud-sync/save/stats".to_owned()),
        (
            Method::POST,
            "/api/awf-cloud-sync/admin/retention".to_owned(),
        ),
        (
            Method::GET,
            format!("/api/awf-cloud-sync/admin/save/{save}"),
        ),
        (
            Method::GET,
            "/api/awf-cloud-sync/admin/device/phone".to_owned(),
        ),
        (Method::GET, "/api/awf-cloud-sync/admin/audit".to_owned()),
    ];
    let audit_rows = || -> i64 {
        off_runtime(|| {
            db.client()
                .query_one("SELECT count(*) FROM awf.audit_log", &[])
                .unwrap()
                .get(0)
        })
    };
    let before = audit_rows();
    for (method, path) in &routes {
        let a = api
            .send(method.clone(), path, Auth::None, Some(json!({})))
            .await;
        assert_eq!(a.status, 401, "{method} {path}: {}", a.text);
        assert_eq!(a.body["error"]["code"], "28000", "{method} {path}");
        // A malformed key is refused before SQL too; a well-formed unknown one by the database.
        let bogus = api
            .http
            .request(method.clone(), format!("{}{path}", api.base))
            .bearer_auth(format!("awfk_{}", "9".repeat(64)))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(
            [401, 400].contains(&bogus.status().as_u16()),
            "{method} {path}: {}",
            bogus.status()
        );
    }
    assert_eq!(audit_rows(), before, "refused calls write nothing");
    println!(
        "routes: {} admin and device routes refuse anonymous calls with 401",
        routes.len()
    );
    server.abort();
}

#[tokio::test]
async fn the_phase_10_admin_routes() {
    let db = TestDb::new();
    let (api, server) = serve(&db).await;
    let (sid, _save) = session_with_save(&db, "u1");
    let token = register(&api, "phone", "u1", &sid).await;
    let device = Auth::Device("phone", &token);
    let base = format!("/api/admin/awf/sessions/{sid}");

    // Snapshots: create, list, restore, delete.
    let snaps = format!("{base}/snapshots");
    let created = api.post(&snaps, Auth::Admin, json!({"label": "cp1"})).await;
    let snap = expect(&created, 201)["snapshot_id"].as_i64().unwrap();
    expect(&api.post(&snaps, device, json!({"label": "x"})).await, 403);
    expect(
        &api.post(&snaps, Auth::Admin, json!({"label": 5})).await,
        400,
    );
    expect(
        &api.post(
            "/api/admin/awf/sessions/not-a-uuid/snapshots",
            Auth::Admin,
            json!({}),
        )
        .await,
        400,
    );
    let unknown = format!("/api/admin/awf/sessions/{}/snapshots", random_uuid());
    expect(&api.post(&unknown, Auth::Admin, json!({})).await, 404);
    let empty_body = api.send(Method::POST, &snaps, Auth::Admin, None).await;
    expect(&empty_body, 201);
    let listed = api.get(&snaps, Auth::Admin).await;
    let list = expect(&listed, 200).as_array().unwrap().clone();
    assert!(list.iter().any(|s| s["label"] == "cp1" && s["id"] == snap));
    let restored = api
        .post(&format!("{base}/restore/{snap}"), Auth::Admin, json!({}))
        .await;
    expect(&restored, 200);
    expect(
        &api.post(&format!("{base}/restore/999999"), Auth::Admin, json!({}))
            .await,
        404,
    );
    expect(
        &api.post(&format!("{base}/restore/abc"), Auth::Admin, json!({}))
            .await,
        400,
    );
    let del = api
        .send(
            Method::DELETE,
            &format!("{snaps}/{snap}"),
            Auth::Admin,
            None,
        )
        .await;
    assert_eq!(expect(&del, 200)["deleted"], true);
    expect(
        &api.send(
            Method::DELETE,
            &format!("{snaps}/{snap}"),
            Auth::Admin,
            None,
        )
        .await,
        404,
    );

    // Recap.
    let recap = api
        .get(&format!("{base}/recap?lastTurns=2"), Auth::Admin)
        .await;
    assert!(expect(&recap, 200).is_object());
    expect(
        &api.get(&format!("{base}/recap?lastTurns=1001"), Auth::Admin)
            .await,
        422,
    );
    expect(
        &api.get(&format!("{base}/recap?lastTurns=abc"), Auth::Admin)
            .await,
        400,
    );
    expect(
        &api.get(&format!("{base}/recap?turns=2"), Auth::Admin).await,
        400,
    );

    // Export (redacted by default; an admin key may ask for it unredacted) and import.
    let redacted = api.get(&format!("{base}/export"), Auth::Admin).await;
    let bundle = expect(&redacted, 200).clone();
    assert!(!redacted.text.contains("ann@example.com"));
    let raw = api
        .get(&format!("{base}/export?redact=false"), Auth::Admin)
        .await;
    assert!(expect(&raw, 200).to_string().contains("ann@example.com"));
    expect(
        &api.get(&format!("{base}/export?redact=maybe"), Auth::Admin)
            .await,
        400,
    );
    let import = "/api/admin/awf/sessions/import";
    let imported = api
        .post(
            import,
            Auth::Admin,
            json!({"bundle": bundle, "preserveTurnId": true}),
        )
        .await;
    let new_sid = expect(&imported, 201)["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_sid, sid);
    let mut tampered = bundle.clone();
    tampered["sections"]["state"]["player"]["gold"] = json!(1_000_000);
    expect(
        &api.post(import, Auth::Admin, json!({"bundle": tampered}))
            .await,
        422,
    );
    expect(
        &api.post(import, Auth::Admin, json!({"bundel": bundle}))
            .await,
        400,
    );
    expect(
        &api.post(import, device, json!({"bundle": bundle})).await,
        403,
    );

    // The WAL: list, and repair (GET or POST, one session or all).
    let wal = api.get(&format!("{base}/wal"), Auth::Admin).await;
    let entries = expect(&wal, 200).as_array().unwrap().clone();
    assert_eq!(entries.len(), 3);
    assert!(entries.iter().all(|e| e["applied"] == true));
    let repair = api.get("/api/admin/awf/wal/repair", Auth::Admin).await;
    assert_eq!(expect(&repair, 200), &json!([]));
    let repair = api
        .post(
            &format!("/api/admin/awf/wal/repair?session={sid}"),
            Auth::Admin,
            json!({}),
        )
        .await;
    assert_eq!(expect(&repair, 200), &json!([]));
    expect(
        &api.get("/api/admin/awf/wal/repair?session=x", Auth::Admin)
            .await,
        400,
    );
    expect(&api.get("/api/admin/awf/wal/repair", device).await, 403);

    // Every admin action is audited under the key's name.
    let actors: Vec<String> = off_runtime(|| {
        db.client()
            .query(
                "SELECT DISTINCT actor FROM awf.audit_log
                 WHERE action IN ('snapshot_create', 'snapshot_restore', 'snapshot_delete', 'session_import')",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    });
    assert_eq!(actors, vec!["key:tests".to_owned()]);
    server.abort();
}

#[tokio::test]
async fn the_phase_23_save_routes_for_devices_and_admins() {
    let db = TestDb::new();
    let (api, server) = serve(&db).await;
    let (sid, save) = session_with_save(&db, "u1");
    let (sid2, save2) = session_with_save(&db, "u2");
    let token = register(&api, "phone", "u1", &sid).await;
    let other = register(&api, "tablet", "u2", &sid2).await;
    let phone = Auth::Device("phone", &token);
    let tablet = Auth::Device("tablet", &other);
    let p = |s: &str| format!("/api/awf-cloud-sync{s}");

    // Sync down: a device for its own user's save, an admin key for any (the same answer,
    // audited as the key), and the same for sync up.
    let down = |save: &str| p(&format!("/sync/down?save_id={save}&since_turn=0"));
    let mine = api.get(&down(&save), phone).await;
    let admins = api.get(&down(&save), Auth::Admin).await;
    assert_eq!(expect(&admins, 200)["turns"], expect(&mine, 200)["turns"]);
    expect(&api.get(&down(&save2), Auth::Admin).await, 200);
    expect(&api.get(&down(&save2), phone).await, 403);
    expect(
        &api.get(&format!("{}&wait=5", down(&save)), Auth::Admin)
            .await,
        400,
    );
    // An admin key uploads to any save (a repaired state, say), audited as the key.
    let head = expect(&api.get(&down(&save2), Auth::Admin).await, 200).clone();
    let up = api
        .post(
            &p("/sync/up"),
            Auth::Admin,
            json!({"save_id": save2, "base_turn": head["head_turn"], "base_chain": head["head_chain"],
                   "turns": [{"turn_id": head["head_turn"].as_i64().unwrap() + 1,
                              "state": {"player": {"gold": 1}}}]}),
        )
        .await;
    assert_eq!(expect(&up, 200)["status"], "fast_forward", "{}", up.text);
    let bad = api
        .post(
            &p("/sync/up"),
            Auth::Admin,
            json!({"save_id": save2, "turns": []}),
        )
        .await;
    assert_eq!(expect(&bad, 422)["error"]["code"], "22023");
    let actor: String = awf_tests::off_runtime(|| {
        db.client()
            .query_one(
                "SELECT actor FROM awf.audit_log WHERE action = 'sync_down' AND details->>'device_id' IS NULL ORDER BY id DESC LIMIT 1",
                &[],
            )
            .unwrap()
            .get(0)
    });
    assert_eq!(actor, "key:tests");

    // Materialize: a device for its own user's save, an admin for any.
    let m = api
        .post(
            &p("/save/materialize"),
            phone,
            json!({"save_id": save, "target_turn": 2}),
        )
        .await;
    assert_eq!(expect(&m, 200)["player"]["gold"], 6, "{}", m.text);
    let m = api
        .post(
            &p("/save/materialize"),
            Auth::Admin,
            json!({"save_id": save2}),
        )
        .await;
    expect(&m, 200);
    let m = api
        .post(&p("/save/materialize"), phone, json!({"save_id": save2}))
        .await;
    assert!([403, 404].contains(&m.status), "{}", m.text);
    expect(
        &api.post(
            &p("/save/materialize"),
            phone,
            json!({"save_id": random_uuid()}),
        )
        .await,
        404,
    );
    expect(
        &api.post(&p("/save/materialize"), phone, json!({"save_id": "x"}))
            .await,
        400,
    );
    expect(
        &api.post(
            &p("/save/materialize"),
            Auth::Device("phone", "0badc0de"),
            json!({"save_id": save}),
        )
        .await,
        403,
    );

    // Verify.
    let v = api
        .post(&p("/save/verify"), phone, json!({"save_id": save}))
        .await;
    assert_eq!(expect(&v, 200)["ok"], true, "{}", v.text);

    // Export: JSON Lines by default, one JSON document on request; audit rows need a key.
    let e = api
        .post(&p("/save/export"), phone, json!({"save_id": save}))
        .await;
    expect(&e, 200);
    assert_eq!(e.content_type, "application/x-ndjson");
    assert!(e.text.lines().count() >= 4, "{}", e.text);
    let e = api
        .post(
            &p("/save/export"),
            phone,
            json!({"save_id": save, "format": "json"}),
        )
        .await;
    assert!(expect(&e, 200).is_object());
    expect(
        &api.post(
            &p("/save/export"),
            phone,
            json!({"save_id": save, "format": "xml"}),
        )
        .await,
        422,
    );
    expect(
        &api.post(
            &p("/save/export"),
            phone,
            json!({"save_id": save, "include_audit": true}),
        )
        .await,
        403,
    );
    let e = api
        .post(
            &p("/save/export"),
            Auth::Admin,
            json!({"save_id": save, "include_audit": true}),
        )
        .await;
    expect(&e, 200);
    assert!(e.text.contains("\"audit\""));

    // Restore to a turn (the later ones are archived), then bring the archive back.
    let r = api
        .post(
            &p("/save/restore"),
            phone,
            json!({"save_id": save, "target_turn": 2}),
        )
        .await;
    let archive = expect(&r, 200)["archive_id"].as_i64().unwrap();
    let r = api
        .post(&p("/save/restore"), phone, json!({"archive_id": archive}))
        .await;
    assert_eq!(expect(&r, 200)["head_turn"], 3, "{}", r.text);
    expect(
        &api.post(&p("/save/restore"), phone, json!({"save_id": save}))
            .await,
        400,
    );
    expect(
        &api.post(
            &p("/save/restore"),
            phone,
            json!({"save_id": save, "target_turn": 99}),
        )
        .await,
        404,
    );

    // Quota: a device for its own user only.
    let q = api.get(&p("/quota/u1"), phone).await;
    assert_eq!(expect(&q, 200)["saves"], 1);
    expect(&api.get(&p("/quota/u2"), phone).await, 403);
    assert_eq!(
        expect(&api.get(&p("/quota/u2"), Auth::Admin).await, 200)["saves"],
        1
    );

    // Admin only: conflicts, stats, retention, details, audit.
    let c = api.get(&p("/save/conflicts"), Auth::Admin).await;
    assert!(expect(&c, 200).is_array());
    expect(
        &api.get(&p(&format!("/save/conflicts?save_id={save}")), Auth::Admin)
            .await,
        200,
    );
    expect(&api.get(&p("/save/conflicts"), phone).await, 403);
    let s = api.get(&p("/save/stats"), Auth::Admin).await;
    assert_eq!(expect(&s, 200)["saves"]["total"], 2, "{}", s.text);
    expect(&api.get(&p("/save/stats"), phone).await, 403);
    expect(
        &api.post(&p("/admin/retention"), Auth::Admin, json!({}))
            .await,
        200,
    );
    expect(
        &api.post(&p("/admin/retention"), phone, json!({})).await,
        403,
    );
    let d = api
        .get(&p(&format!("/admin/save/{save}")), Auth::Admin)
        .await;
    assert_eq!(expect(&d, 200)["save"]["save_id"], save.as_str());
    expect(
        &api.get(&p(&format!("/admin/save/{}", random_uuid())), Auth::Admin)
            .await,
        404,
    );
    expect(&api.get(&p("/admin/save/nope"), Auth::Admin).await, 400);
    let d = api.get(&p("/admin/device/phone"), Auth::Admin).await;
    assert_eq!(expect(&d, 200)["device"]["device_id"], "phone");
    assert!(!d.text.contains("token_hash"));
    expect(&api.get(&p("/admin/device/nope"), Auth::Admin).await, 404);
    let a = api
        .get(
            &p(&format!("/admin/audit?save_id={save}&action=save_restore")),
            Auth::Admin,
        )
        .await;
    let rows = expect(&a, 200).as_array().unwrap().clone();
    assert_eq!(rows.len(), 1, "{}", a.text);
    assert_eq!(rows[0]["actor"], "device:phone");
    expect(
        &api.get(&p("/admin/audit?from=yesterday-ish"), Auth::Admin)
            .await,
        400,
    );
    expect(&api.get(&p("/admin/audit?limit=0"), Auth::Admin).await, 422);
    expect(&api.get(&p("/admin/audit"), phone).await, 403);

    // Delete: not another user's save; its own, with a reason; then it is gone.
    let del_path = p("/save");
    let del = |auth, body| api.send(Method::DELETE, &del_path, auth, Some(body));
    let d = del(tablet, json!({"save_id": save, "reason": "user request"})).await;
    assert!([403, 404].contains(&d.status), "{}", d.text);
    expect(&del(phone, json!({"save_id": save})).await, 400);
    let d = del(phone, json!({"save_id": save, "reason": "user request"})).await;
    expect(&d, 200);
    expect(
        &api.post(&p("/save/materialize"), phone, json!({"save_id": save}))
            .await,
        404,
    );
    let d = del(Auth::Admin, json!({"save_id": save2, "reason": "gdpr"})).await;
    expect(&d, 200);
    server.abort();
}
