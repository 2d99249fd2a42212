//! Cross-device sync under real concurrency: two devices racing on one save, repeated, and a
//! device that comes back far behind with turns of its own.

use awf_tests::TestDb;
use postgres::Client;
use serde_json::{json, Value};
use std::sync::{Arc, Barrier};
use std::thread;

const SID: &str = "55555555-5555-5555-5555-555555555555";
const ROUNDS: i64 = 100;

fn connect(db: &TestDb) -> Client {
    let mut c = db.client();
    c.batch_execute("SET statement_timeout = '60s'").unwrap();
    c
}

/// A session with a save and two devices of its user; returns (save id, token a, token b).
fn setup(c: &mut Client) -> (String, String, String) {
    c.query_one(
        "SELECT awf.session_upsert($1::text::uuid, 'u1', $2::jsonb)",
        &[&SID, &json!({"player": {"gold": 0, "log": []}})],
    )
    .unwrap();
    let save: String = c
        .query_one(
            "SELECT awf.save_create_or_attach($1::text::uuid, 'u1') ->> 'save_id'",
            &[&SID],
        )
        .unwrap()
        .get(0);
    let mut token = |device: &str| -> String {
        c.query_one(
            "SELECT awf.device_register($1, 'u1', $2::text::uuid) ->> 'sync_token'",
            &[&device, &SID],
        )
        .unwrap()
        .get(0)
    };
    let (a, b) = (token("device-a"), token("device-b"));
    (save, a, b)
}

fn head(c: &mut Client, save: &str) -> (i64, String) {
    let r = c
        .query_one(
            "SELECT head_turn, head_chain FROM awf.saves WHERE save_id = $1::text::uuid",
            &[&save],
        )
        .unwrap();
    (r.get(0), r.get(1))
}

fn sync_up(c: &mut Client, device: &str, token: &str, req: &Value) -> Value {
    c.query_one(
        "SELECT awf.sync_up($1, $2, $3::jsonb)",
        &[&device, &token, req],
    )
    .unwrap_or_else(|e| panic!("sync_up by {device} failed: {e:?}"))
    .get(0)
}

fn one_turn(save: &str, base: &(i64, String), marker: &str) -> Value {
    json!({"save_id": save, "base_turn": base.0, "base_chain": base.1,
           "turns": [{"turn_id": base.0 + 1, "patch": [{"op": "add", "path": "/player/log/-", "value": marker}]}]})
}

/// Both devices upload a turn built on the same head at the same moment: the save lock
/// serializes them, so one fast-forwards and the other is resolved as a conflict (equal
/// lengths: the server's branch stays, the device's turn is archived). No turn is lost, the
/// head advances by exactly one, nothing deadlocks.
#[test]
fn two_devices_racing_serialize_into_one_fast_forward_and_one_conflict() {
    let db = TestDb::new();
    let (save, ta, tb) = setup(&mut connect(&db));
    let mut admin = connect(&db);
    let (mut fast, mut conflicts) = (0, 0);
    for round in 0..ROUNDS {
        let base = head(&mut admin, &save);
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = [("device-a", ta.clone()), ("device-b", tb.clone())]
            .into_iter()
            .map(|(device, token)| {
                let (barrier, req) = (
                    barrier.clone(),
                    one_turn(&save, &base, &format!("{device}-{round}")),
                );
                let mut c = connect(&db);
                thread::spawn(move || {
                    barrier.wait();
                    sync_up(&mut c, device, &token, &req)
                })
            })
            .collect();
        let results: Vec<Value> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let statuses: Vec<&str> = results
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect();
        assert!(
            statuses.contains(&"fast_forward") && statuses.contains(&"conflict"),
            "round {round}: {results:?}"
        );
        fast += 1;
        conflicts += 1;
        assert_eq!(
            head(&mut admin, &save).0,
            base.0 + 1,
            "round {round}: one new head turn"
        );
    }
    let archived: i64 = admin
        .query_one(
            "SELECT count(*) FROM awf.save_archives WHERE save_id = $1::text::uuid AND reason = 'conflict'",
            &[&save],
        )
        .unwrap()
        .get(0);
    assert_eq!(archived, ROUNDS, "every losing turn is archived");
    let verify: Value = admin
        .query_one("SELECT awf.save_verify($1::text::uuid)", &[&save])
        .unwrap()
        .get(0);
    assert_eq!(verify["ok"], json!(true), "{verify}");
    let log: Value = admin
        .query_one(
            "SELECT awf.save_materialize($1::text::uuid) -> 'player' -> 'log'",
            &[&save],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        log.as_array().unwrap().len() as i64,
        ROUNDS,
        "one winner per round in the state"
    );
    println!("sync race: {ROUNDS} rounds, {fast} fast-forwards, {conflicts} conflicts, {archived} archived branches, verify ok");
}

/// A device syncs, goes offline for 100 server turns, plays 20 of its own, and comes back:
/// the longer server branch stays, the device's 20 turns are archived whole and can be
/// brought back, and sync_down gives the device the 100 turns it missed.
#[test]
fn a_device_back_100_turns_behind_with_20_of_its_own() {
    let db = TestDb::new();
    let mut c = connect(&db);
    let (save, ta, _) = setup(&mut c);
    let base = head(&mut c, &save);
    for n in 1..=100i64 {
        c.query_one(
            "SELECT awf.turn_submit($1::text::uuid, $2, $3::jsonb)",
            &[
                &SID,
                &n,
                &json!({"acts": [{"op": "increment", "path": "/player/gold"}]}),
            ],
        )
        .unwrap();
    }
    let turns: Vec<Value> = (1..=20)
        .map(|i| json!({"turn_id": base.0 + i, "patch": [{"op": "add", "path": "/player/log/-", "value": format!("offline {i}")}]}))
        .collect();
    let req = json!({"save_id": save, "base_turn": base.0, "base_chain": base.1, "turns": turns});
    let r = sync_up(&mut c, "device-a", &ta, &req);
    assert_eq!(r["status"], json!("conflict"));
    let rep = &r["conflict"];
    assert_eq!(rep["branches"][0]["length"], json!(100));
    assert_eq!(rep["branches"][1]["length"], json!(20));
    assert_eq!(
        rep["resolution"]["chosen_branch"],
        rep["branches"][0]["branch_id"]
    );
    assert_eq!(head(&mut c, &save).0, base.0 + 100);
    let archive_id: i64 = rep["resolution"]["archive_id"].as_i64().unwrap();
    let archived: i64 = c
        .query_one(
            "SELECT count(*) FROM awf.save_archive_turns WHERE archive_id = $1",
            &[&archive_id],
        )
        .unwrap()
        .get(0);
    assert_eq!(archived, 20, "the device's branch is archived whole");
    let down: Value = c
        .query_one(
            "SELECT awf.sync_down('device-a', $1, $2::text::uuid, $3)",
            &[&ta, &save, &base.0],
        )
        .unwrap()
        .get(0);
    assert_eq!(down["turns"].as_array().unwrap().len(), 100);
    assert_eq!(down["prev_chain"], json!(base.1));
    // Bring the device's branch back: the server's 100 turns are archived in turn.
    let back: Value = c
        .query_one("SELECT awf.save_archive_restore($1)", &[&archive_id])
        .unwrap()
        .get(0);
    assert_eq!(back["head_turn"], json!(base.0 + 20));
    assert!(back["displaced_archive_id"].is_i64());
    let log: Value = c
        .query_one(
            "SELECT awf.save_materialize($1::text::uuid) -> 'player' -> 'log'",
            &[&save],
        )
        .unwrap()
        .get(0);
    assert_eq!(log.as_array().unwrap().len(), 20);
    let verify: Value = c
        .query_one("SELECT awf.save_verify($1::text::uuid)", &[&save])
        .unwrap()
        .get(0);
    assert_eq!(verify["ok"], json!(true));
    println!("offline device: 100 server turns kept, 20 device turns archived and restorable, sync_down sent 100");
}

/// A refused call rolls back, but its audit row does not: a worker of its own records it.
#[test]
fn refused_calls_are_audited_although_they_roll_back() {
    let db = TestDb::new();
    let mut c = connect(&db);
    let (save, _, tb) = setup(&mut c);
    let wrong = "0".repeat(64);
    let err = c
        .query_one(
            "SELECT awf.sync_down('device-a', $1, $2::text::uuid, 0)",
            &[&wrong, &save],
        )
        .unwrap_err();
    assert_eq!(awf_tests::sqlstate(&err), "42501");
    c.query_one(
        "SELECT awf.session_upsert($1::text::uuid, 'u2', '{}')",
        &[&"66666666-6666-6666-6666-666666666666"],
    )
    .unwrap();
    let other: String = c
        .query_one(
            "SELECT awf.save_create_or_attach($1::text::uuid, 'u2') ->> 'save_id'",
            &[&"66666666-6666-6666-6666-666666666666"],
        )
        .unwrap()
        .get(0);
    // Another connection: each backend starts at most one refusal worker per second.
    let err = connect(&db)
        .query_one(
            "SELECT awf.sync_down('device-b', $1, $2::text::uuid, 0)",
            &[&tb, &other],
        )
        .unwrap_err();
    assert_eq!(awf_tests::sqlstate(&err), "42501");
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = c
            .query(
                "SELECT details ->> 'device_id', details ->> 'reason' FROM awf.audit_log
                 WHERE action = 'sync_refused' ORDER BY id",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect::<Vec<_>>();
        if rows.len() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].0, "device-a");
    assert!(rows[0].1.contains("wrong sync token"), "{rows:?}");
    assert_eq!(rows[1].0, "device-b");
    let verify: Value = c
        .query_one("SELECT awf.audit_verify()", &[])
        .unwrap()
        .get(0);
    assert_eq!(verify["ok"], json!(true), "{verify}");
    println!("refusals: 2 refused calls, 2 audit rows written by the refusal worker, chain ok");
}
