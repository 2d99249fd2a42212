//! Helpers for `#[pg_test]`s: run SQL and read the SQLSTATE it fails with.

use pgrx::prelude::*;

/// Runs `sql`; returns `None` when it succeeds, or the SQLSTATE it raised.
///
/// The statement runs inside a PL/pgSQL exception block, i.e. a subtransaction, so a test can
/// check several failures in a row and also that a failed call wrote nothing.
pub fn sqlstate_of(sql: &str) -> Option<String> {
    // Created once per session: a test may switch roles, and only the creator could replace it.
    Spi::run(
        "DO $d$ BEGIN
           IF to_regprocedure('pg_temp.awf_sqlstate_of(text)') IS NULL THEN
             CREATE FUNCTION pg_temp.awf_sqlstate_of(q text) RETURNS text
             LANGUAGE plpgsql AS $$
             BEGIN EXECUTE q; RETURN NULL;
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $$;
           END IF;
         END $d$",
    )
    .expect("create helper");
    Spi::get_one_with_args::<String>("SELECT pg_temp.awf_sqlstate_of($1)", &[sql.into()])
        .expect("run helper")
}

/// Asserts that `sql` fails with exactly `code`.
#[track_caller]
pub fn assert_sqlstate(sql: &str, code: &str) {
    assert_eq!(
        sqlstate_of(sql).as_deref(),
        Some(code),
        "expected SQLSTATE {code} from: {sql}"
    );
}

/// Runs a query returning one value; panics on SPI errors.
pub fn one<T: IntoDatum + FromDatum>(sql: &str) -> Option<T> {
    Spi::get_one::<T>(sql).expect("SPI call failed")
}

/// Runs a statement for its effect; panics on errors.
pub fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A session id used by the lifecycle tests.
pub const SID: &str = "11111111-1111-1111-1111-111111111111";

/// Creates session [`SID`] for user `u1` with a small state.
pub fn new_session() {
    run(&format!(
        r#"SELECT awf.session_upsert('{SID}', 'u1', '{{"player": {{"hp": 10, "gold": 5, "inventory": []}}}}')"#
    ));
}

/// Submits turn `n` of [`SID`] with the given acts JSON.
pub fn submit(n: i64, acts: &str) -> crate::jsonb::JsonB {
    one::<crate::jsonb::JsonB>(&format!(
        r#"SELECT awf.turn_submit('{SID}', {n}, '{{"txt": "Turn {n}.", "acts": {acts}}}')"#
    ))
    .expect("turn_submit returned NULL")
}

/// One jsonb value.
pub fn json(sql: &str) -> serde_json::Value {
    one::<crate::jsonb::JsonB>(sql).expect("NULL").0
}

/// Audit rows written through the lifecycle: the test session and `n` snapshots of it.
pub fn audited(n: usize) {
    new_session();
    for i in 0..n {
        run(&format!("SELECT awf.snapshot_create('{SID}', 'l{i}')"));
    }
}

/// Attaches a save to the test session and plays `turns` turns; returns the save id.
pub fn save_with_turns(turns: i64) -> String {
    new_session();
    let r = json(&format!("SELECT awf.save_create_or_attach('{SID}', 'u1')"));
    for n in 1..=turns {
        submit(
            n,
            &format!(r#"[{{"op": "increment", "path": "/player/gold", "by": {n}}}]"#),
        );
    }
    r["save_id"].as_str().unwrap().to_owned()
}
