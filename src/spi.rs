//! Running the extension's SQL, and reading what it returns: every statement is prepared once per backend and kept, so a
//! turn does not parse, analyze and plan a dozen statements on every call (about half the time
//! of a read, profiled with perf).
//!
//! A kept plan is PostgreSQL's own cached plan: DDL on a table it uses (an extension update,
//! say), a different `search_path`, role or `row_security` all make PostgreSQL re-plan it
//! before it runs, so caching changes no result. Statements are keyed by their text and
//! argument types; the extension's statements are constants (or built from constants), so
//! the number kept is bounded by the code; past [`MAX_KEPT`] a statement simply runs
//! unprepared.
//!
//! Reads take the same path as writes, not SPI's read-only mode: a read-only statement runs on
//! the caller's snapshot and would miss the rows this very call wrote a moment before (a save
//! re-read after its head moved, say).

use crate::jsonb::JsonB;
use pgrx::datum::{DatumWithOid, FromDatum, IntoDatum};
use pgrx::pg_sys::PgOid;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiHeapTupleData, SpiResult, SpiTupleTable};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// How many statements one backend keeps prepared at most.
const MAX_KEPT: usize = 512;

type Key = (String, Vec<u32>);

thread_local! {
    static KEPT: RefCell<HashMap<Key, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

/// Runs `sql` with `args` like `SpiClient::update`, through this backend's prepared copy of the
/// statement (prepared on first use).
pub fn run<'conn>(
    c: &mut SpiClient<'conn>,
    sql: &str,
    limit: Option<i64>,
    args: &[DatumWithOid<'_>],
) -> SpiResult<SpiTupleTable<'conn>> {
    let types: Vec<u32> = args.iter().map(|a| a.oid().to_u32()).collect();
    let key = (sql.to_owned(), types);
    // Cloned out of the map, so a statement that calls back into the extension (and runs
    // statements of its own) finds the map free.
    let kept = KEPT.with_borrow(|m| m.get(&key).cloned());
    let stmt = match kept {
        Some(s) => s,
        None => {
            let oids: Vec<PgOid> = args.iter().map(|a| PgOid::from_untagged(a.oid())).collect();
            let stmt = Rc::new(c.prepare_mut(sql, &oids)?.keep());
            KEPT.with_borrow_mut(|m| {
                if m.len() < MAX_KEPT {
                    m.insert(key, Rc::clone(&stmt));
                }
            });
            stmt
        }
    };
    c.update(&*stmt, limit, args)
}

/// Column `i` (1-based) of the current row of `t`; NULL is a bug for the columns read this way.
pub fn col<T: IntoDatum + FromDatum>(t: &SpiTupleTable<'_>, i: usize) -> T {
    t.get::<T>(i)
        .expect("read column")
        .unwrap_or_else(|| panic!("column {i} is NULL"))
}

/// Column `i` (1-based) of a row met while iterating a result; NULL is a bug here too.
pub fn get<T: IntoDatum + FromDatum>(r: &SpiHeapTupleData<'_>, i: usize) -> T {
    r.get::<T>(i)
        .expect("read column")
        .unwrap_or_else(|| panic!("column {i} is NULL"))
}

/// Column 1 of the first row, or None when there is no row (or it is NULL).
pub fn one<T: IntoDatum + FromDatum>(
    c: &mut SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid<'_>],
) -> Option<T> {
    let t = run(c, sql, Some(1), args).expect(sql);
    if t.is_empty() {
        return None;
    }
    t.first().get::<T>(1).expect(sql)
}

/// The jsonb in column 1 of the first row, or None when there is no row (or it is NULL).
pub fn one_json(c: &mut SpiClient<'_>, sql: &str, args: &[DatumWithOid<'_>]) -> Option<Value> {
    one::<JsonB>(c, sql, args).map(|j| j.0)
}

/// Column 1 of every row (NULL is a bug).
pub fn column<T: IntoDatum + FromDatum>(
    c: &mut SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid<'_>],
) -> Vec<T> {
    run(c, sql, None, args)
        .expect(sql)
        .map(|r| get::<T>(&r, 1))
        .collect()
}
