//! No lock any role can take hostage, and no wait without a bound: the extension serializes on
//! rows of `awf.locks` that no other role can lock, and every lock it takes waits at most
//! `awf.lock_timeout_ms` (55P03 after that).

use awf_tests::{sqlstate, TestDb, TestRole};
use std::time::{Duration, Instant};

const SID: &str = "77777777-7777-7777-7777-777777777777";

fn session(db: &TestDb) {
    db.client()
        .query_one(
            "SELECT awf.session_upsert($1::text::uuid, 'u1', '{\"gold\": 0}')",
            &[&SID],
        )
        .unwrap();
}

#[test]
fn advisory_locks_held_by_any_role_stall_nothing() {
    let db = TestDb::new();
    session(&db);
    let nobody = TestRole::new(&db, "");
    let mut squatter = db.client_as(nobody.name());
    // The keys the audit chain and the quota used to serialize on, and then some.
    squatter
        .batch_execute(
            "SELECT pg_advisory_lock(7023194703750587497);
             SELECT pg_advisory_lock(hashtextextended('awf.quota:u1', 0));
             SELECT pg_advisory_lock(k) FROM generate_series(1, 100) k;",
        )
        .unwrap();
    let mut c = db.client();
    c.batch_execute("SET statement_timeout = '10s'").unwrap();
    let t = Instant::now();
    c.query_one(
        "SELECT awf.snapshot_create($1::text::uuid, 'audited')",
        &[&SID],
    )
    .expect("an audited call does not wait for anyone's advisory lock");
    c.query_one(
        "SELECT awf.save_create_or_attach($1::text::uuid, 'u1')",
        &[&SID],
    )
    .unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    drop(squatter);
}

#[test]
fn the_extensions_lock_rows_are_out_of_every_roles_reach() {
    let db = TestDb::new();
    session(&db);
    db.client()
        .query_one("SELECT awf.snapshot_create($1::text::uuid, 'x')", &[&SID])
        .unwrap();
    for member_of in ["awf_app", "awf_admin", ""] {
        let role = TestRole::new(&db, member_of);
        let mut c = db.client_as(role.name());
        for sql in [
            "SELECT * FROM awf.locks FOR UPDATE",
            "SELECT * FROM awf.locks",
            "LOCK TABLE awf.locks",
            "INSERT INTO awf.locks VALUES ('audit')",
        ] {
            let err = c
                .batch_execute(&format!("BEGIN; {sql}; ROLLBACK"))
                .unwrap_err();
            assert_eq!(sqlstate(&err), "42501", "{member_of:?}: {sql}");
            c.batch_execute("ROLLBACK").unwrap();
        }
        drop(c);
    }
}

#[test]
fn a_lock_wait_ends_with_55p03_after_the_lock_timeout() {
    let db = TestDb::new();
    session(&db);
    let mut holder = db.client();
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT awf.turn_submit('{SID}', 1, '{{\"acts\": []}}')"
        ))
        .unwrap();
    let mut c = db.client();
    c.batch_execute("SET awf.lock_timeout_ms = 300; SET statement_timeout = '20s'")
        .unwrap();
    let t = Instant::now();
    let err = c
        .query_one(
            &format!("SELECT awf.turn_submit('{SID}', 1, '{{\"acts\": []}}')"),
            &[],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55P03", "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // The caller's own lock_timeout is back after the call.
    let lt: String = c
        .query_one("SELECT current_setting('lock_timeout')", &[])
        .unwrap()
        .get(0);
    assert_eq!(lt, "0");
    holder.batch_execute("COMMIT").unwrap();
    // And the wait for the audit chain is bounded too (another session: only the chain is shared).
    let other = "88888888-8888-8888-8888-888888888888";
    db.client()
        .query_one(
            "SELECT awf.session_upsert($1::text::uuid, 'u2', '{}')",
            &[&other],
        )
        .unwrap();
    let mut holder = db.client();
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT awf.snapshot_create('{SID}', 'held')"
        ))
        .unwrap();
    let err = c
        .query_one(
            "SELECT awf.snapshot_create($1::text::uuid, 'waits')",
            &[&other],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55P03", "{err:?}");
    holder.batch_execute("ROLLBACK").unwrap();
    println!("lock waits: turn and audit chain both ended with 55P03 after awf.lock_timeout_ms");
}

/// A turn (or any change) in progress locks its session, but no stronger than an UPDATE of its
/// state would: the foreign-key check of a row that references the session (a device's row
/// updated twice in one transaction, as a sync down does) takes KEY SHARE, and must not wait.
/// With FOR UPDATE it waited, and a sync down deadlocked against a sync up of the same save.
#[test]
fn a_locked_session_does_not_stall_foreign_key_checks_of_rows_that_reference_it() {
    let db = TestDb::new();
    session(&db);
    db.client()
        .query_one(
            "SELECT awf.device_register('phone', 'u1', $1::text::uuid)",
            &[&SID],
        )
        .unwrap();
    let mut holder = db.client();
    holder.batch_execute("BEGIN").unwrap();
    holder
        .query_one(
            "SELECT awf.snapshot_create($1::text::uuid, 'held')",
            &[&SID],
        )
        .unwrap();
    let mut c = db.client();
    c.batch_execute("SET lock_timeout = '2s'").unwrap();
    c.batch_execute(
        "BEGIN;
         UPDATE awf.devices SET last_seen_at = now() WHERE device_id = 'phone';
         UPDATE awf.devices SET last_turn_seen = 1 WHERE device_id = 'phone';
         COMMIT",
    )
    .expect("the device's foreign-key check does not wait for the session's lock");
    holder.batch_execute("COMMIT").unwrap();
}
