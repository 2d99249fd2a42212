//! The hash-chained audit log over real connections: what the in-backend tests (one
//! rolled-back transaction each) cannot show. Concurrent writers that COMMIT never fork the
//! chain, whatever their isolation level; a writer waits for the chain lock until the holder
//! commits; rolled-back writers leave no hole; an app role writes audit rows without any
//! privilege on the table, and a hostile `search_path` cannot hijack the owner's rights.

use awf_tests::{random_uuid, sqlstate, TestDb, TestRole};
use postgres::{Client, IsolationLevel};
use serde_json::{json, Value};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const THREADS: usize = 4;
const PER_THREAD: usize = 25;

/// A connection whose statements give up (rather than hang the test) after 60 s.
fn connect(db: &TestDb) -> Client {
    let mut c = db.client();
    c.batch_execute("SET statement_timeout = '60s'").unwrap();
    c
}

fn new_session(c: &mut Client, user: &str) -> String {
    let sid = random_uuid();
    c.query_one(
        "SELECT awf.session_upsert($1::text::uuid, $2, $3::jsonb)",
        &[&sid, &user, &json!({"player": {"gold": 0}})],
    )
    .unwrap();
    sid
}

fn verify(c: &mut Client) -> Value {
    c.query_one("SELECT awf.audit_verify()", &[])
        .unwrap()
        .get(0)
}

/// The chain is whole and has no fork: every row's prev_hash is used once.
fn assert_one_chain(c: &mut Client) {
    let v = verify(c);
    assert_eq!(v["ok"], json!(true), "{v}");
    let (rows, distinct_prev): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT count(*), count(DISTINCT prev_hash) FROM awf.audit_log",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(v["rows_checked"], json!(rows), "{v}");
    assert_eq!(
        rows, distinct_prev,
        "two rows chained onto the same row: a fork"
    );
}

#[test]
fn concurrent_writers_never_fork_the_chain() {
    let db = TestDb::new();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = Arc::clone(&barrier);
            let mut c = connect(&db);
            thread::spawn(move || {
                let sid = new_session(&mut c, &format!("u{t}"));
                // Half the writers run in REPEATABLE READ with their snapshot taken before they
                // wait for the chain lock: they must still chain onto the newest row.
                let level = if t % 2 == 0 {
                    IsolationLevel::ReadCommitted
                } else {
                    IsolationLevel::RepeatableRead
                };
                barrier.wait();
                for i in 0..PER_THREAD {
                    let mut tx = c
                        .build_transaction()
                        .isolation_level(level)
                        .start()
                        .unwrap();
                    tx.query_one("SELECT count(*) FROM awf.sessions", &[])
                        .unwrap();
                    tx.query_one(
                        "SELECT awf.snapshot_create($1::text::uuid, $2)",
                        &[&sid, &format!("t{t} n{i}")],
                    )
                    .unwrap();
                    tx.commit().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer thread");
    }
    let mut c = connect(&db);
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM awf.audit_log WHERE action = 'snapshot_create'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, (THREADS * PER_THREAD) as i64);
    assert_one_chain(&mut c);
}

#[test]
fn rolled_back_writers_leave_no_hole() {
    let db = TestDb::new();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = Arc::clone(&barrier);
            let mut c = connect(&db);
            thread::spawn(move || {
                let sid = new_session(&mut c, &format!("u{t}"));
                barrier.wait();
                for i in 0..PER_THREAD {
                    let mut tx = c.transaction().unwrap();
                    tx.query_one(
                        "SELECT awf.snapshot_create($1::text::uuid, $2)",
                        &[&sid, &format!("t{t} n{i}")],
                    )
                    .unwrap();
                    // Every third transaction fails after writing its audit row.
                    if (i + t) % 3 == 0 {
                        let err = tx.batch_execute("SELECT 1 / 0").unwrap_err();
                        assert_eq!(sqlstate(&err), "22012");
                        tx.rollback().unwrap();
                    } else {
                        tx.commit().unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer thread");
    }
    let mut c = connect(&db);
    assert_one_chain(&mut c);
}

#[test]
fn a_writer_waits_for_the_chain_lock_until_the_holder_commits() {
    let db = TestDb::new();
    let mut a = connect(&db);
    let mut b = connect(&db);
    let sa = new_session(&mut a, "ua");
    let sb = new_session(&mut b, "ub");
    a.batch_execute("BEGIN").unwrap();
    a.query_one("SELECT awf.snapshot_create($1::text::uuid, 'a')", &[&sa])
        .unwrap();
    let b_pid: i32 = b.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    // Longer than this test holds the lock: B must wait, not time out.
    b.batch_execute("SET awf.lock_timeout_ms = 60000").unwrap();
    let waiter = thread::spawn(move || {
        let started = Instant::now();
        b.query_one("SELECT awf.snapshot_create($1::text::uuid, 'b')", &[&sb])
            .unwrap();
        (b, started.elapsed())
    });
    // B blocks on the chain's row lock while A's transaction is open.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: bool = a
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_locks WHERE pid = $1 AND NOT granted)",
                &[&b_pid],
            )
            .unwrap()
            .get(0);
        if waiting {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never waited for the chain lock"
        );
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(200));
    a.batch_execute("COMMIT").unwrap();
    let (mut b, waited) = waiter.join().expect("waiter");
    assert!(waited >= Duration::from_millis(200), "waited {waited:?}");
    let order: Vec<String> = b
        .query(
            "SELECT details->>'label' FROM awf.audit_log WHERE action = 'snapshot_create' ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(order, ["a", "b"]);
    assert_one_chain(&mut b);
}

#[test]
fn a_repeatable_read_writer_chains_onto_rows_committed_after_its_snapshot() {
    let db = TestDb::new();
    let mut a = connect(&db);
    let mut b = connect(&db);
    let sa = new_session(&mut a, "ua");
    let sb = new_session(&mut b, "ub");
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM awf.audit_log")
        .unwrap();
    // Committed after A's snapshot: invisible to A's own queries.
    b.query_one("SELECT awf.snapshot_create($1::text::uuid, 'b')", &[&sb])
        .unwrap();
    a.query_one("SELECT awf.snapshot_create($1::text::uuid, 'a')", &[&sa])
        .unwrap();
    a.batch_execute("COMMIT").unwrap();
    assert_one_chain(&mut a);
}

#[test]
fn an_app_role_writes_audit_rows_and_search_path_cannot_hijack_the_owner() {
    let db = TestDb::new();
    let app = TestRole::new(&db, "awf_app");
    let mut root = db.client();
    // A schema the app role owns, with functions named like those the audit writer calls
    // while it runs as the table's owner.
    root.batch_execute(&format!(
        "CREATE SCHEMA evil AUTHORIZATION {0};
         SET ROLE {0};
         CREATE FUNCTION evil.nextval(regclass) RETURNS bigint LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'evil.nextval() ran as %', current_user; END $$;
         CREATE FUNCTION evil.pg_advisory_xact_lock(bigint) RETURNS void LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'evil lock ran as %', current_user; END $$;
         RESET ROLE",
        app.name()
    ))
    .unwrap();
    let mut c = db.client();
    c.batch_execute(&format!(
        "SET awf.user_id_hash = 'u1'; SET ROLE {}",
        app.name()
    ))
    .unwrap();
    let sid = new_session(&mut c, "u1");
    c.batch_execute("SET search_path = evil, pg_catalog, public")
        .unwrap();
    c.query_one("SELECT awf.snapshot_create($1::text::uuid, 'app')", &[&sid])
        .unwrap();
    // The app still cannot read (or write) the log directly.
    let err = c
        .query("SELECT count(*) FROM awf.audit_log", &[])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    let err = c
        .batch_execute("UPDATE awf.audit_log SET actor = 'x'")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    // Its own rights are back after the call: still not the owner.
    let who: String = c
        .query_one("SELECT current_user::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(who, app.name());
    let actor: String = root
        .query_one(
            "SELECT actor FROM awf.audit_log WHERE action = 'snapshot_create'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(actor, app.name(), "the row names the caller, not the owner");
    assert_one_chain(&mut root);
    drop(c);
}
