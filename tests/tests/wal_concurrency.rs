//! The turn WAL under real concurrency: several connections, explicit transactions that
//! COMMIT, threads released together by a barrier. A turn must apply exactly once however
//! many callers race for it, and turns of different sessions must never deadlock.

use awf_tests::{random_uuid, sqlstate, TestDb};
use postgres::Client;
use serde_json::{json, Value};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

const ROUNDS: i64 = 50;

/// A connection whose statements give up (rather than hang the test) after 60 s.
fn connect(db: &TestDb) -> Client {
    let mut c = db.client();
    c.batch_execute("SET statement_timeout = '60s'").unwrap();
    c
}

fn upsert(c: &mut Client, sid: &str, user: &str, state: &Value) {
    c.query_one(
        "SELECT awf.session_upsert($1::text::uuid, $2, $3::jsonb)",
        &[&sid, &user, state],
    )
    .unwrap();
}

fn initial_state() -> Value {
    json!({"player": {"name": "Ash", "gold": 0, "inventory": []}, "log": []})
}

/// The payload of turn `k` (the same bytes whoever sends it).
fn payload(k: i64) -> Value {
    json!({
        "txt": format!("Round {k}: Ash finds a coin."),
        "acts": [
            {"op": "increment", "path": "/player/gold", "by": 1},
            {"op": "append", "path": "/log", "value": k}
        ]
    })
}

fn submit(c: &mut impl postgres::GenericClient, sid: &str, turn: i64, raw: &Value) -> Value {
    c.query_one(
        "SELECT awf.turn_submit($1::text::uuid, $2, $3::jsonb)",
        &[&sid, &turn, raw],
    )
    .unwrap_or_else(|e| panic!("turn_submit({sid}, {turn}) failed: {e:?}"))
    .get(0)
}

fn count(c: &mut Client, sql: &str, sid: &str) -> i64 {
    c.query_one(sql, &[&sid]).unwrap().get(0)
}

/// Two connections submit the same turn with the same payload at the same moment, each in an
/// explicit transaction that commits: one applies it, the other gets the first result back.
#[test]
fn same_turn_same_payload_applies_once() {
    let db = TestDb::new();
    let mut admin = connect(&db);
    let sid = random_uuid();
    upsert(&mut admin, &sid, "user-1", &initial_state());

    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let sid = sid.clone();
            let mut c = connect(&db);
            thread::spawn(move || {
                let mut results = Vec::new();
                for k in 1..=ROUNDS {
                    let mut tx = c.transaction().unwrap();
                    barrier.wait();
                    let r = submit(&mut tx, &sid, k, &payload(k));
                    // Hold the transaction open a moment so the other caller really waits.
                    thread::sleep(Duration::from_millis(2));
                    tx.commit().unwrap();
                    results.push(r);
                }
                results
            })
        })
        .collect();
    let results: Vec<Vec<Value>> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let mut single_applies = 0;
    for k in 1..=ROUNDS as usize {
        let (a, b) = (&results[0][k - 1], &results[1][k - 1]);
        let fresh = [a, b]
            .iter()
            .filter(|r| r["duplicate"] == json!(false))
            .count();
        assert_eq!(fresh, 1, "round {k}: exactly one caller applies: {a} / {b}");
        assert_eq!(a["turn_id"], json!(k), "round {k}: {a}");
        assert_eq!(b["turn_id"], json!(k), "round {k}: {b}");
        assert!(a["state_hash"].is_string(), "round {k}: {a}");
        assert_eq!(
            a["state_hash"], b["state_hash"],
            "round {k}: the duplicate returns the same state hash"
        );
        single_applies += 1;
    }

    let row = admin
        .query_one(
            "SELECT turn_id, state_hash, (state #>> '{player,gold}')::int, state -> 'log'
             FROM awf.sessions WHERE session_id = $1::text::uuid",
            &[&sid],
        )
        .unwrap();
    let (turn, hash, gold, log): (i64, String, i32, Value) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(turn, ROUNDS, "the session is at the last turn, once");
    assert_eq!(
        gold, ROUNDS as i32,
        "every turn's increment applied exactly once"
    );
    assert_eq!(log, json!((1..=ROUNDS).collect::<Vec<_>>()));
    assert_eq!(
        hash,
        results[0][ROUNDS as usize - 1]["state_hash"]
            .as_str()
            .unwrap()
    );
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(*) FROM awf.turns WHERE session_id = $1::text::uuid",
            &sid
        ),
        ROUNDS
    );
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(DISTINCT turn_id) FROM awf.turns WHERE session_id = $1::text::uuid",
            &sid
        ),
        ROUNDS
    );
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(*) FROM awf.turn_wal WHERE session_id = $1::text::uuid AND applied AND attempts = 1",
            &sid
        ),
        ROUNDS,
        "one applied WAL row per turn, applied by one attempt"
    );
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(*) FROM awf.turn_wal WHERE session_id = $1::text::uuid",
            &sid
        ),
        ROUNDS
    );

    // The same turns played one by one on a twin give the same state.
    let twin = random_uuid();
    upsert(&mut admin, &twin, "user-1", &initial_state());
    let mut last = Value::Null;
    for k in 1..=ROUNDS {
        last = submit(&mut admin, &twin, k, &payload(k));
    }
    assert_eq!(last["state_hash"].as_str().unwrap(), hash);

    println!("concurrency: {ROUNDS} rounds, {single_applies} single applies, {ROUNDS} duplicates with the same state hash");
}

/// The same turn with different payloads at the same moment: one commits, the other is a
/// conflict (23505) and writes nothing.
#[test]
fn same_turn_different_payloads_one_conflicts() {
    const N: i64 = 20;
    let db = TestDb::new();
    let mut admin = connect(&db);
    let sid = random_uuid();
    upsert(&mut admin, &sid, "user-1", &initial_state());
    let mine = |who: &str, k: i64| {
        json!({"txt": format!("{who} plays turn {k}."),
               "acts": [{"op": "append", "path": "/log", "value": format!("{who}{k}")}]})
    };

    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = ["A", "B"]
        .into_iter()
        .map(|who| {
            let barrier = Arc::clone(&barrier);
            let sid = sid.clone();
            let mut c = connect(&db);
            thread::spawn(move || {
                let mut outcomes = Vec::new();
                for k in 1..=N {
                    let mut tx = c.transaction().unwrap();
                    barrier.wait();
                    let r = tx.query_one(
                        "SELECT awf.turn_submit($1::text::uuid, $2, $3::jsonb)",
                        &[&sid, &k, &mine(who, k)],
                    );
                    thread::sleep(Duration::from_millis(2));
                    match r {
                        Ok(row) => {
                            tx.commit().unwrap();
                            outcomes.push(Ok(row.get::<_, Value>(0)));
                        }
                        Err(e) => {
                            tx.rollback().unwrap();
                            outcomes.push(Err(sqlstate(&e)));
                        }
                    }
                }
                outcomes
            })
        })
        .collect();
    let outcomes: Vec<Vec<Result<Value, String>>> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();

    let mut winners = Vec::new();
    let mut conflicts = 0;
    for k in 1..=N as usize {
        let (a, b) = (&outcomes[0][k - 1], &outcomes[1][k - 1]);
        match (a, b) {
            (Ok(r), Err(code)) | (Err(code), Ok(r)) => {
                assert_eq!(code, "23505", "round {k}: the loser is a conflict");
                assert_eq!(r["duplicate"], json!(false), "round {k}: {r}");
                winners.push(if a.is_ok() { "A" } else { "B" });
                conflicts += 1;
            }
            _ => panic!("round {k}: expected one success and one 23505, got {a:?} / {b:?}"),
        }
    }
    let log: Value = admin
        .query_one(
            "SELECT state -> 'log' FROM awf.sessions WHERE session_id = $1::text::uuid",
            &[&sid],
        )
        .unwrap()
        .get(0);
    let expected: Vec<String> = winners
        .iter()
        .enumerate()
        .map(|(i, w)| format!("{w}{}", i + 1))
        .collect();
    assert_eq!(log, json!(expected), "only the winners' acts were applied");
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(*) FROM awf.turns WHERE session_id = $1::text::uuid",
            &sid
        ),
        N
    );
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(*) FROM awf.turn_wal WHERE session_id = $1::text::uuid AND applied",
            &sid
        ),
        N
    );
    let a_wins = winners.iter().filter(|w| **w == "A").count();
    println!(
        "concurrency (different payloads): {N} rounds, {N} applied, {conflicts} conflicts (23505); A won {a_wins}, B won {}",
        N as usize - a_wins
    );
}

/// Four connections play 25 turns on four sessions at once, each visiting the sessions in its
/// own order: every turn applies exactly once, nobody deadlocks, every counter ends at 25.
#[test]
fn many_sessions_concurrently_no_deadlock() {
    const THREADS: usize = 4;
    const SESSIONS: usize = 4;
    const TURNS: i64 = 25;
    let db = TestDb::new();
    let mut admin = connect(&db);
    let sids: Vec<String> = (0..SESSIONS).map(|_| random_uuid()).collect();
    for sid in &sids {
        upsert(&mut admin, sid, "user-1", &initial_state());
    }

    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = Arc::clone(&barrier);
            let sids = sids.clone();
            let mut c = connect(&db);
            thread::spawn(move || {
                let (mut applied, mut duplicates) = (0, 0);
                for k in 1..=TURNS {
                    barrier.wait();
                    for j in 0..SESSIONS {
                        let s = if t % 2 == 0 {
                            (t + j) % SESSIONS
                        } else {
                            (t + SESSIONS - j) % SESSIONS
                        };
                        let mut tx = c.transaction().unwrap();
                        let r = submit(&mut tx, &sids[s], k, &payload(k));
                        tx.commit().unwrap();
                        assert_eq!(r["turn_id"], json!(k));
                        if r["duplicate"] == json!(false) {
                            applied += 1;
                        } else {
                            duplicates += 1;
                        }
                    }
                }
                (applied, duplicates)
            })
        })
        .collect();
    let (mut applied, mut duplicates) = (0, 0);
    for h in handles {
        let (a, d) = h
            .join()
            .expect("a worker thread failed (deadlock or error?)");
        applied += a;
        duplicates += d;
    }
    assert_eq!(
        applied,
        SESSIONS as i64 * TURNS,
        "each turn of each session applied once"
    );
    assert_eq!(duplicates, (THREADS as i64 - 1) * SESSIONS as i64 * TURNS);

    for sid in &sids {
        let row = admin
            .query_one(
                "SELECT turn_id, (state #>> '{player,gold}')::int FROM awf.sessions WHERE session_id = $1::text::uuid",
                &[sid],
            )
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), TURNS);
        assert_eq!(row.get::<_, i32>(1), TURNS as i32);
        assert_eq!(
            count(
                &mut admin,
                "SELECT count(*) FROM awf.turns WHERE session_id = $1::text::uuid",
                sid
            ),
            TURNS
        );
        assert_eq!(
            count(
                &mut admin,
                "SELECT count(*) FROM awf.turn_wal WHERE session_id = $1::text::uuid AND applied AND attempts = 1",
                sid
            ),
            TURNS
        );
    }
    let entries: i64 = admin
        .query_one(
            "SELECT value FROM awf.metrics WHERE name = 'awf.wal.entries'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        entries,
        SESSIONS as i64 * TURNS,
        "awf.wal.entries counts each entry once"
    );
    println!(
        "concurrency (many sessions): {THREADS} threads x {TURNS} turns x {SESSIONS} sessions: {applied} applied, {duplicates} duplicates, 0 deadlocks"
    );
}
