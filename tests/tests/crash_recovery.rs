//! Crash recovery of the turn WAL with real processes: a backend killed between
//! `awf.wal_append` and `awf.wal_apply`, a backend killed inside an open transaction, an entry
//! whose session moved on, and a server restart (fast, then immediate) on the preload cluster
//! where the background worker reconciles without any client asking.

use awf_tests::{pg_command, preload_url, random_uuid, run_ok, sqlstate, TestDb};
use postgres::Client;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn upsert(c: &mut Client, sid: &str, state: &Value) -> Value {
    c.query_one(
        "SELECT awf.session_upsert($1::text::uuid, 'user-1', $2::jsonb)",
        &[&sid, state],
    )
    .unwrap()
    .get(0)
}

fn initial_state() -> Value {
    json!({"player": {"name": "Ash", "gold": 5, "inventory": []}})
}

fn payload(k: i64) -> Value {
    json!({
        "txt": format!("Turn {k}: Ash finds three coins and a torch."),
        "acts": [
            {"op": "increment", "path": "/player/gold", "by": 3},
            {"op": "append", "path": "/player/inventory", "value": format!("torch-{k}")},
            {"op": "remember", "text": format!("Ash found torch {k}."), "salience": 0.5}
        ]
    })
}

fn wal_append(c: &mut impl postgres::GenericClient, sid: &str, turn: i64, raw: &Value) -> Value {
    c.query_one(
        "SELECT awf.wal_append($1::text::uuid, $2, $3::jsonb)",
        &[&sid, &turn, raw],
    )
    .unwrap()
    .get(0)
}

fn submit(c: &mut Client, sid: &str, turn: i64, raw: &Value) -> Value {
    c.query_one(
        "SELECT awf.turn_submit($1::text::uuid, $2, $3::jsonb)",
        &[&sid, &turn, raw],
    )
    .unwrap()
    .get(0)
}

/// (session_id, turn_id, action, detail) rows of `awf.wal_reconcile()`.
fn reconcile(c: &mut Client) -> Vec<(String, i64, String, String)> {
    c.query(
        "SELECT session_id::text, turn_id, action, detail FROM awf.wal_reconcile()",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

fn session_row(c: &mut Client, sid: &str) -> (i64, String, Value) {
    let r = c
        .query_one(
            "SELECT turn_id, state_hash, state FROM awf.sessions WHERE session_id = $1::text::uuid",
            &[&sid],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

/// (turn_id, applied, attempts, last_error) of each WAL entry of a session.
fn wal(c: &mut Client, sid: &str) -> Vec<(i64, bool, i32, Option<String>)> {
    c.query(
        "SELECT turn_id, applied, attempts, last_error FROM awf.wal_list($1::text::uuid)",
        &[&sid],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

fn metric(c: &mut Client, name: &str) -> i64 {
    c.query_one("SELECT value FROM awf.metrics WHERE name = $1", &[&name])
        .map(|r| r.get(0))
        .unwrap_or(0)
}

fn pid_of(c: &mut Client) -> i32 {
    c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0)
}

/// Terminates a backend and waits (up to 5 s) until it has exited.
fn kill_backend(admin: &mut Client, pid: i32) {
    let killed: bool = admin
        .query_one("SELECT pg_terminate_backend($1, 5000)", &[&pid])
        .unwrap()
        .get(0);
    assert!(killed, "backend {pid} was terminated and exited");
}

/// (a) A backend appends a turn (committed) and dies before applying it: reconciliation
/// applies it once, to the same state a straight turn_submit gives, and never again.
#[test]
fn killed_after_wal_append_is_reapplied_once() {
    let db = TestDb::new();
    let mut admin = db.client();
    let sid = random_uuid();
    upsert(&mut admin, &sid, &initial_state());

    let mut a = db.client();
    let pid = pid_of(&mut a);
    let r = wal_append(&mut a, &sid, 1, &payload(1));
    assert_eq!(r["applied"], json!(false));
    kill_backend(&mut admin, pid);
    assert!(
        a.query_one("SELECT 1", &[]).is_err(),
        "connection A is gone"
    );
    assert_eq!(wal(&mut admin, &sid), vec![(1, false, 0, None)]);
    assert_eq!(session_row(&mut admin, &sid).0, 0, "not applied yet");

    let mut other = db.client();
    let rows = reconcile(&mut other);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (rsid, rturn, action, detail) = &rows[0];
    assert_eq!(
        (rsid.as_str(), *rturn, action.as_str()),
        (sid.as_str(), 1, "reapplied")
    );

    let (turn, hash, state) = session_row(&mut admin, &sid);
    assert_eq!(turn, 1);
    assert!(
        detail.contains(&hash),
        "detail names the new state hash: {detail}"
    );
    assert_eq!(state["player"]["gold"], json!(8), "gold incremented once");

    // A twin played straight through turn_submit ends in the same state.
    let twin = random_uuid();
    upsert(&mut admin, &twin, &initial_state());
    let straight = submit(&mut admin, &twin, 1, &payload(1));
    assert_eq!(straight["state_hash"].as_str().unwrap(), hash);
    assert_eq!(session_row(&mut admin, &twin).2, state);

    // Nothing left to do, and nothing is applied twice.
    let again = reconcile(&mut other);
    assert!(again.is_empty(), "second reconcile does nothing: {again:?}");
    let (turn, hash2, state) = session_row(&mut admin, &sid);
    assert_eq!((turn, &hash2), (1, &hash));
    assert_eq!(state["player"]["gold"], json!(8));
    assert_eq!(wal(&mut admin, &sid), vec![(1, true, 1, None)]);
    let turns: i64 = admin
        .query_one(
            "SELECT count(*) FROM awf.turns WHERE session_id = $1::text::uuid",
            &[&sid],
        )
        .unwrap()
        .get(0);
    assert_eq!(turns, 1);
    // The backend retrying after its crash gets the reconciled result back.
    let retry = submit(&mut admin, &sid, 1, &payload(1));
    assert_eq!(retry["duplicate"], json!(true));
    assert_eq!(retry["state_hash"].as_str().unwrap(), hash);
    assert_eq!(metric(&mut admin, "awf.wal.reconciled"), 1);
    let audits: i64 = admin
        .query_one(
            "SELECT count(*) FROM awf.audit_log WHERE action = 'wal_reconcile'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        audits, 1,
        "one audited reconcile (the empty second run writes none)"
    );
    println!("crash (a): 1 entry reapplied after pg_terminate_backend, 0 on the second run, gold +3 once");
}

/// (b) A backend killed inside an open transaction leaves nothing: no WAL entry, nothing to
/// reconcile, no lock held, and the turn can be played again.
#[test]
fn killed_inside_open_transaction_leaves_nothing() {
    let db = TestDb::new();
    let mut admin = db.client();
    admin
        .batch_execute("SET statement_timeout = '20s'")
        .unwrap();
    let sid = random_uuid();
    upsert(&mut admin, &sid, &initial_state());

    // Once after wal_append, once after a whole turn_submit, neither committed.
    for (i, step) in ["wal_append", "turn_submit"].into_iter().enumerate() {
        let mut a = db.client();
        let pid = pid_of(&mut a);
        let mut tx = a.transaction().unwrap();
        let sql = format!("SELECT awf.{step}($1::text::uuid, 1, $2::jsonb)");
        tx.query_one(sql.as_str(), &[&sid, &payload(1)]).unwrap();
        kill_backend(&mut admin, pid);
        assert!(
            tx.commit().is_err(),
            "{step}: the killed transaction cannot commit"
        );
        drop(a);

        assert!(wal(&mut admin, &sid).is_empty(), "{step}: no WAL entry");
        let counts = admin
            .query_one(
                "SELECT (SELECT count(*) FROM awf.turn_wal), (SELECT count(*) FROM awf.turns),
                        (SELECT turn_id FROM awf.sessions WHERE session_id = $1::text::uuid)",
                &[&sid],
            )
            .unwrap();
        assert_eq!(
            (
                counts.get::<_, i64>(0),
                counts.get::<_, i64>(1),
                counts.get::<_, i64>(2)
            ),
            (0, 0, 0),
            "{step}: nothing written"
        );
        let rows = reconcile(&mut admin);
        assert!(rows.is_empty(), "{step}: reconcile finds nothing: {rows:?}");
        assert_eq!(
            metric(&mut admin, "awf.wal.entries"),
            0,
            "{step}: the killed entry is not counted"
        );
        println!(
            "crash (b{}): killed inside the transaction after {step}: 0 WAL rows, 0 reconciled",
            i + 1
        );
    }

    // The row lock died with the backend: the turn plays normally now.
    let r = submit(&mut admin, &sid, 1, &payload(1));
    assert_eq!(r["duplicate"], json!(false));
    assert_eq!(session_row(&mut admin, &sid).2["player"]["gold"], json!(8));
}

/// (c) The session changed after the entry was appended (the backend wrote a state itself):
/// reconciliation leaves the entry unapplied, counts the attempt, records why, and warns.
#[test]
fn entry_whose_session_moved_on_is_skipped_with_a_warning() {
    let db = TestDb::new();
    let mut admin = db.client();
    let sid = random_uuid();
    upsert(&mut admin, &sid, &initial_state());
    wal_append(&mut admin, &sid, 1, &payload(1));
    // The backend applied the acts its own way and saved a state of its own.
    let own = json!({"player": {"name": "Ash", "gold": 8, "inventory": ["torch-1"]}});
    let up = upsert(&mut admin, &sid, &own);
    let own_hash = up["state_hash"].as_str().unwrap().to_owned();

    let (mut c, notices) = db.client_with_notices();
    let rows = c
        .query(
            "SELECT session_id::text, turn_id, action, detail FROM awf.wal_reconcile()",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    let (action, detail): (String, String) = (rows[0].get(2), rows[0].get(3));
    assert_eq!(rows[0].get::<_, i64>(1), 1);
    assert_eq!(action, "skipped");
    assert!(
        detail.contains(&own_hash) && detail.contains("differs"),
        "detail says why: {detail}"
    );
    let warnings: Vec<String> = notices
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n.severity() == "WARNING")
        .map(|n| n.message().to_owned())
        .collect();
    assert_eq!(warnings.len(), 1, "one WARNING: {warnings:?}");
    assert!(
        warnings[0].contains(&sid)
            && warnings[0].contains("turn 1")
            && warnings[0].contains("unapplied"),
        "the WARNING names the session and turn: {}",
        warnings[0]
    );

    let entries = wal(&mut admin, &sid);
    assert_eq!(entries.len(), 1);
    let (turn, applied, attempts, last_error) = &entries[0];
    assert_eq!((*turn, *applied, *attempts), (1, false, 1));
    assert_eq!(last_error.as_deref(), Some(detail.as_str()));
    let (turn, hash, state) = session_row(&mut admin, &sid);
    assert_eq!(
        (turn, hash.as_str()),
        (0, own_hash.as_str()),
        "session untouched"
    );
    assert_eq!(state, own);
    assert_eq!(
        metric(&mut admin, "awf.wal.reconciled"),
        0,
        "a skip is not a fix"
    );

    // Again: still skipped, the attempt counted again, warned again.
    let rows = reconcile(&mut c);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].2, "skipped");
    assert_eq!(wal(&mut admin, &sid)[0].2, 2, "attempts counts every try");
    let n_warnings = notices
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n.severity() == "WARNING")
        .count();
    assert_eq!(n_warnings, 2);
    // And wal_apply refuses to apply it onto the wrong state (a conflict, not a silent apply).
    let err = admin
        .query_one("SELECT awf.wal_apply($1::text::uuid, 1)", &[&sid])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23505", "{err:?}");
    println!("crash (c): 1 entry skipped twice (attempts 2), 2 WARNINGs, session untouched");
}

/// The two-step form cannot queue several unapplied turns of one session: each entry records
/// the state it applies onto, which is unknown until the previous turn is applied.
#[test]
fn wal_append_needs_the_previous_turn_applied() {
    let db = TestDb::new();
    let mut c = db.client();
    let sid = random_uuid();
    upsert(&mut c, &sid, &initial_state());
    wal_append(&mut c, &sid, 1, &payload(1));
    let err = c
        .query_one(
            "SELECT awf.wal_append($1::text::uuid, 2, $2::jsonb)",
            &[&sid, &payload(2)],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023", "{err:?}");
    assert_eq!(
        wal(&mut c, &sid).len(),
        1,
        "the refused append wrote nothing"
    );
}

/// Restarts the preload cluster with pg_ctl (`mode`: fast or immediate), logging to
/// `server.log` in its data directory.
fn restart_preload(mode: &str) {
    let data = std::env::var("AWF_TEST_PRELOAD_DATA")
        .expect("AWF_TEST_PRELOAD_DATA is not set: run the tests with ./scripts/test");
    let log = format!("{data}/server.log");
    run_ok(pg_command("pg_ctl").args([
        "-D", &data, "-l", &log, "-w", "-t", "60", "-m", mode, "restart",
    ]));
}

fn connect_retry(db: &TestDb) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Client::connect(&db.url(), postgres::NoTls) {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for the restarted server: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("the preload cluster did not come back: {e}"),
        }
    }
}

/// Polls (up to 30 s) until every listed session is at its turn with no unapplied entry left.
fn wait_reconciled(db: &TestDb, expect: &[(&str, i64)]) -> (Client, Duration) {
    let start = Instant::now();
    let mut c = connect_retry(db);
    loop {
        let mut done = true;
        for (sid, turn) in expect {
            let (t, _, _) = session_row(&mut c, sid);
            let pending: i64 = c
                .query_one(
                    "SELECT count(*) FROM awf.turn_wal WHERE session_id = $1::text::uuid AND NOT applied",
                    &[sid],
                )
                .unwrap()
                .get(0);
            done &= t == *turn && pending == 0;
        }
        if done {
            return (c, start.elapsed());
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the background worker did not reconcile within 30 s: {:?}",
            expect
                .iter()
                .map(|(s, _)| (session_row(&mut c, s).0, wal(&mut c, s)))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// (d) On the cluster with the library preloaded, unapplied entries are reconciled by the
/// background worker when the server restarts: after a fast restart and after an immediate
/// one (a crash: the server runs recovery first).
#[test]
fn server_restart_reconciles_in_the_background() {
    let db = TestDb::on_cluster(&preload_url());
    let mut c = db.client();
    let (s1, s2, s3) = (random_uuid(), random_uuid(), random_uuid());
    let twin = random_uuid();
    for s in [&s1, &s2, &s3, &twin] {
        upsert(&mut c, s, &initial_state());
    }
    // s1: turns 1 and 2 played, turn 3 appended only; s2 and s3: turn 1 appended only.
    submit(&mut c, &s1, 1, &payload(1));
    submit(&mut c, &s1, 2, &payload(2));
    wal_append(&mut c, &s1, 3, &payload(3));
    wal_append(&mut c, &s2, 1, &payload(1));
    wal_append(&mut c, &s3, 1, &payload(1));
    let pending: i64 = c
        .query_one("SELECT count(*) FROM awf.turn_wal WHERE NOT applied", &[])
        .unwrap()
        .get(0);
    assert_eq!(pending, 3);
    // What straight play gives, for comparison.
    let mut expected = Value::Null;
    for k in 1..=3 {
        expected = submit(&mut c, &twin, k, &payload(k));
    }
    let one = random_uuid();
    upsert(&mut c, &one, &initial_state());
    let expected_one = submit(&mut c, &one, 1, &payload(1));
    drop(c);

    restart_preload("fast");
    let (mut c, took) = wait_reconciled(&db, &[(&s1, 3), (&s2, 1), (&s3, 1)]);
    assert_eq!(
        session_row(&mut c, &s1).1,
        expected["state_hash"].as_str().unwrap()
    );
    for s in [&s2, &s3] {
        assert_eq!(
            session_row(&mut c, s).1,
            expected_one["state_hash"].as_str().unwrap()
        );
    }
    assert_eq!(
        session_row(&mut c, &s1).2["player"]["gold"],
        json!(14),
        "5 + 3 x 3"
    );
    let reconciled = metric(&mut c, "awf.wal.reconciled");
    assert!(reconciled >= 3, "awf.wal.reconciled = {reconciled}");
    let audits: i64 = c
        .query_one(
            "SELECT count(*) FROM awf.audit_log WHERE action = 'wal_reconcile'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(audits >= 1, "the worker's reconcile is audited");
    println!(
        "crash (d, fast restart): 3 entries reconciled by the background worker in {:.1}s, metric {reconciled}, {audits} audit row(s)",
        took.as_secs_f64()
    );

    // A real crash: immediate shutdown, crash recovery, then the worker.
    wal_append(&mut c, &s1, 4, &payload(4));
    let expected4 = submit(&mut c, &twin, 4, &payload(4));
    drop(c);
    restart_preload("immediate");
    let (mut c, took) = wait_reconciled(&db, &[(&s1, 4)]);
    assert_eq!(
        session_row(&mut c, &s1).1,
        expected4["state_hash"].as_str().unwrap()
    );
    let reconciled = metric(&mut c, "awf.wal.reconciled");
    assert!(reconciled >= 4, "awf.wal.reconciled = {reconciled}");
    let turns: i64 = c
        .query_one(
            "SELECT count(*) FROM awf.turns WHERE session_id = $1::text::uuid",
            &[&s1],
        )
        .unwrap()
        .get(0);
    assert_eq!(turns, 4, "each turn recorded once");

    let data = std::env::var("AWF_TEST_PRELOAD_DATA").unwrap();
    let log = std::fs::read_to_string(format!("{data}/server.log")).unwrap_or_default();
    assert!(
        log.contains(&format!("reconciled database {}", db.name())),
        "the worker logs what it did in server.log"
    );
    println!(
        "crash (d, immediate restart): 1 entry reconciled in {:.1}s after crash recovery, metric {reconciled}",
        took.as_secs_f64()
    );
}

/// Two reconcilers at once (an operator's call racing the startup worker, say) on one pending
/// entry: it is applied once, reported as reapplied once, and counted once.
#[test]
fn concurrent_reconciles_apply_and_count_once() {
    let db = TestDb::new();
    let mut admin = db.client();
    let sid = random_uuid();
    upsert(&mut admin, &sid, &initial_state());
    wal_append(&mut admin, &sid, 1, &payload(1));

    // Hold the session's row lock so both reconcilers list the entry and then queue.
    let mut holder = db.client();
    let mut tx = holder.transaction().unwrap();
    tx.query_one(
        "SELECT 1 FROM awf.sessions WHERE session_id = $1::text::uuid FOR UPDATE",
        &[&sid],
    )
    .unwrap();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let mut c = db.client();
            std::thread::spawn(move || {
                c.batch_execute("SET statement_timeout = '30s'").unwrap();
                c.query("SELECT action FROM awf.wal_reconcile()", &[])
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE '%wal_reconcile%'",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both reconcilers should queue on the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    tx.commit().unwrap();
    let mut actions: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    actions.sort();

    let (turn, _, state) = session_row(&mut admin, &sid);
    assert_eq!(turn, 1);
    assert_eq!(state["player"]["gold"], json!(8), "applied once");
    let turns: i64 = admin
        .query_one("SELECT count(*) FROM awf.turns", &[])
        .unwrap()
        .get(0);
    assert_eq!(turns, 1);
    assert_eq!(
        actions.iter().filter(|a| *a == "reapplied").count(),
        1,
        "one reconciler applied it: {actions:?}"
    );
    let reconciled = metric(&mut admin, "awf.wal.reconciled");
    println!(
        "crash (concurrent reconcile): actions {actions:?}, awf.wal.reconciled = {reconciled}"
    );
    assert_eq!(
        reconciled, 1,
        "one entry was reconciled once, so awf.wal.reconciled counts 1 (actions {actions:?})"
    );
}
