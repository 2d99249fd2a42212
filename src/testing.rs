//! Helpers for `#[pg_test]`s: run SQL and read the SQLSTATE it fails with.

use pgrx::prelude::*;

/// Runs `sql`; returns `None` when it succeeds, or the SQLSTATE it raised.
///
/// The statement runs inside a PL/pgSQL exception block, i.e. a subtransaction, so a test can
/// check several failures in a row and also that a failed call wrote nothing.
pub fn sqlstate_of(sql: &str) -> Option<String> {
    Spi::run(
        "CREATE OR REPLACE FUNCTION pg_temp.awf_sqlstate_of(q text) RETURNS text
         LANGUAGE plpgsql AS $$
         BEGIN EXECUTE q; RETURN NULL;
         EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $$",
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
