//! The hash-chained audit log and the event counters behind the `awf.metrics` view.
//!
//! Every row of `awf.audit_log` carries `prev_hash` (the previous row's `row_hash`, 64 zeros for
//! the first) and `row_hash`, computed by `awf_core::audit_chain` over `prev_hash` and the row's
//! content (id, at, actor, action, session_id, save_id, device_id, details, in canonical JSON).
//!
//! How a row is written ([`record_full`]):
//! - **One chain, no forks.** The writer takes the `audit` row lock of `awf.locks` (see
//!   `crate::locks`: no other role can take it) before it reads the last row's hash and holds
//!   it until its transaction ends, so audited
//!   transactions serialize from their first audit row to their commit. The id is drawn from
//!   the sequence after the lock, so id order is chain order. The cost: two transactions that
//!   both write audit rows never overlap past that point; write audit rows last in a
//!   transaction (after taking row locks) so the lock is held briefly and never waited on
//!   while holding it.
//! - **Any isolation level.** The last hash is read through a snapshot taken after the lock,
//!   not the transaction's snapshot, so a REPEATABLE READ transaction still chains onto rows
//!   committed while it waited.
//! - **`at` hashed exactly as stored.** `at` is `now()` read from the database and written
//!   explicitly, and it is hashed as its microseconds since the Unix epoch (the integer
//!   PostgreSQL stores), so neither `TimeZone`, `DateStyle` nor text rounding can change the
//!   hash. `details` are hashed as they read back from jsonb.
//! - **Privileges.** Rows are written as the owner of `awf.audit_log` with `search_path` pinned
//!   to `pg_catalog, pg_temp` (what a `SECURITY DEFINER` function would do), so callers need
//!   no privilege on the table and `actor` still names the calling role. The table can
//!   therefore be append-only for everyone else.

/// `awf.audit_verify`, `awf.audit_query`: the audit log for operators.
mod queries;

use crate::jsonb::JsonB;
use awf_core::audit_chain::{self, Entry, Stored, Verifier, GENESIS};
use awf_core::redact::{redact, RedactOptions};
use awf_core::{Budget, Error, Limits};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::{PgSqlErrorCode, Uuid};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::ffi::CString;

use crate::errors::{raise, OrRaise};

/// Rows read per batch when walking the log.
const BATCH: usize = 2000;

/// Microseconds between 1970-01-01 and 2000-01-01, PostgreSQL's timestamp epoch.
const PG_EPOCH_UNIX_US: i64 = 946_684_800_000_000;

/// The columns every row reader selects, in [`Row::decode`]'s order.
const COLS: &str =
    "id, at, actor, action, session_id, save_id, device_id, details, prev_hash, row_hash";

/// Records an action in `awf.audit_log` in the caller's transaction. `save_id` and
/// `device_id` are taken from `details` (`"save_id"`, `"device_id"`) when present.
pub fn record(c: &mut SpiClient<'_>, action: &str, session_id: Option<Uuid>, details: Value) {
    record_full(c, action, session_id, None, None, details);
}

/// Records an action with its save and device; a `None` save or device is taken from
/// `details` (`"save_id"`, `"device_id"`) when present there. Returns the row's id.
pub fn record_full(
    c: &mut SpiClient<'_>,
    action: &str,
    session_id: Option<Uuid>,
    save_id: Option<Uuid>,
    device_id: Option<&str>,
    details: Value,
) -> i64 {
    let actor = crate::identity::actor();
    let save_id = save_id.or_else(|| {
        details
            .get("save_id")
            .and_then(Value::as_str)
            .and_then(parse_uuid)
    });
    let device_id = device_id
        .or_else(|| details.get("device_id").and_then(Value::as_str))
        .map(str::to_owned);
    let details = as_stored(details);
    let _owner = AsOwner::enter(c);
    lock(c);
    let prev = chain_head(c, &Latest::take());
    let t = crate::spi::run(
        c,
        "SELECT nextval('awf.audit_log_id_seq'::regclass), now()",
        Some(1),
        &[],
    )
    .expect("nextval for awf.audit_log");
    let t = t.first();
    let id: i64 = t.get(1).expect("id").expect("id is not NULL");
    let at: TimestampWithTimeZone = t.get(2).expect("now()").expect("now() is not NULL");
    let session_text = session_id.map(|u| u.to_string());
    let save_text = save_id.map(|u| u.to_string());
    let entry = Entry {
        id,
        at_us: unix_micros(at),
        actor: &actor,
        action,
        session_id: session_text.as_deref(),
        save_id: save_text.as_deref(),
        device_id: device_id.as_deref(),
        details: &details,
    };
    let row_hash = audit_chain::row_hash(&prev, &entry);
    crate::spi::run(
        c,
        "INSERT INTO awf.audit_log
           (id, at, actor, action, session_id, save_id, device_id, details, prev_hash, row_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        None,
        &[
            id.into(),
            at.into(),
            actor.as_str().into(),
            action.into(),
            session_id.into(),
            save_id.into(),
            device_id.as_deref().into(),
            JsonB(details).into(),
            prev.as_str().into(),
            row_hash.as_str().into(),
        ],
    )
    .expect("insert into awf.audit_log");
    id
}

/// Adds `by` to a counter of the metrics view. The shard is the backend's, so concurrent
/// sessions do not queue on one row; a rolled-back transaction rolls its counts back too.
/// Written as the owner: a role able to write (or `LOCK`) the counters could forge them or
/// stall every counted call.
pub fn bump(c: &mut SpiClient<'_>, name: &str, by: i64) {
    if by == 0 {
        return;
    }
    let _owner = AsOwner::enter(c);
    crate::spi::run(c,
        "INSERT INTO awf.metric_counters (name, shard, value)
         VALUES ($1, pg_backend_pid() % 16, $2)
         ON CONFLICT (name, shard) DO UPDATE SET value = awf.metric_counters.value + EXCLUDED.value",
        None,
        &[name.into(), by.into()],
    )
    .expect("update awf.metric_counters");
}

/// Redacts secrets and PII (`awf_core::redact`, with a random salt that is not kept) in the
/// `details` of every audit row of `save_id` (its `save_id` column, or `details->>'save_id'`
/// for rows written before that column existed), then re-chains the log from the first changed
/// row to the end under the chain lock, so `awf.audit_verify()` stays ok. Returns the number
/// of rows whose details changed, and records an `audit_redacted` row (always, also when
/// nothing changed) naming the save, the counts per kind and the re-chained range: rewriting
/// hashes is an admin act and is itself audited.
///
/// Re-chaining never launders tampering: the rows it rewrites are verified first, and a
/// broken chain refuses the redaction with XX001 naming the first bad row. Cost: one UPDATE
/// per 2000 rows from the first redacted row to the newest one. In REPEATABLE READ, a row
/// committed after the transaction's snapshot cannot be rewritten: 40001, retry.
pub fn redact_details(c: &mut SpiClient<'_>, save_id: Uuid) -> usize {
    redact_where(
        c,
        // A typed uuid formatted by us, never caller text.
        &format!("save_id = '{save_id}'::uuid OR (save_id IS NULL AND details->>'save_id' = '{save_id}')"),
        Some(save_id),
        json!({"save_id": save_id.to_string()}),
    )
}

/// Redacts, as [`redact_details`] does, the audit rows of an erased user that no save ties
/// together: those of the user's sessions and devices, and those naming the user.
pub fn redact_user_rows(
    c: &mut SpiClient<'_>,
    user_id_hash: &str,
    sessions: &[Uuid],
    devices: &[String],
) -> usize {
    let ids: Vec<i64> = crate::spi::run(
        c,
        "SELECT id FROM awf.audit_log
             WHERE session_id = ANY($1) OR device_id = ANY($2) OR details->>'user_id_hash' = $3
             ORDER BY id",
        None,
        &[
            sessions.to_vec().into(),
            devices.to_vec().into(),
            user_id_hash.into(),
        ],
    )
    .expect("select the user's audit rows")
    .map(|r| r.get::<i64>(1).expect("id").expect("id is not NULL"))
    .collect();
    if ids.is_empty() {
        return 0;
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    redact_where(
        c,
        &format!("id = ANY('{{{list}}}'::int8[])"),
        None,
        json!({"user_rows": ids.len()}),
    )
}

/// Redacts the details of the rows matching `filter` (SQL built only from typed values) and
/// re-chains; `scope` describes them in the `audit_redacted` row.
fn redact_where(c: &mut SpiClient<'_>, filter: &str, save_id: Option<Uuid>, scope: Value) -> usize {
    const F: &str = "redact_details";
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut changed: BTreeMap<i64, Value> = BTreeMap::new();
    let mut rechained = 0usize;
    {
        let _owner = AsOwner::enter(c);
        lock(c);
        let salt: String = crate::spi::run(c, "SELECT gen_random_uuid()::text", Some(1), &[])
            .expect("gen_random_uuid")
            .first()
            .get(1)
            .expect("salt")
            .expect("salt is not NULL");
        let opts = RedactOptions::new(salt);
        let snap = Latest::take();
        let rows = snap.query(
            c,
            &format!("SELECT {COLS} FROM awf.audit_log WHERE {filter} ORDER BY id"),
            Row::decode,
        );
        for r in &rows {
            // Rows the extension wrote (bounded then): erasure must not fail on a budget.
            let red = redact(
                &r.details,
                &opts,
                &mut Budget::new(Limits::stored_history()),
            )
            .or_raise(F);
            if !red.report.is_empty() {
                for (kind, n) in &red.report.counts {
                    *counts.entry(kind.clone()).or_default() += n;
                }
                changed.insert(r.id, as_stored(red.document));
            }
        }
        if let Some(&first) = changed.keys().next() {
            let before = snap.query(
                c,
                &format!(
                    "SELECT id, row_hash FROM awf.audit_log WHERE id < {first}
                     ORDER BY id DESC LIMIT 1"
                ),
                |r| (r.get::<i64>(1).expect("id"), r.get::<String>(2)),
            );
            let mut check = match before.into_iter().next() {
                None => Verifier::new(),
                Some((id, Some(h))) => Verifier::resume(&h, id),
                Some((id, None)) => raise(
                    Error::integrity(format!(
                        "audit row {id} has no row_hash; run awf.audit_verify() before redacting"
                    )),
                    F,
                ),
            };
            let mut prev = check.head().to_owned();
            let mut cursor = format!("id >= {first}");
            loop {
                let batch = snap.query(
                    c,
                    &format!(
                        "SELECT {COLS} FROM awf.audit_log WHERE {cursor} ORDER BY id LIMIT {BATCH}"
                    ),
                    Row::decode,
                );
                let Some(last) = batch.last() else { break };
                cursor = format!("id > {}", last.id);
                let (mut ids, mut details, mut prevs, mut hashes) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for r in &batch {
                    if let Err(b) = check.check(&r.stored()) {
                        raise(
                            Error::integrity(format!(
                                "{b}; redaction refused, because re-chaining would hide it"
                            )),
                            F,
                        );
                    }
                    let new = changed.get(&r.id);
                    let mut entry = r.entry();
                    if let Some(d) = new {
                        entry.details = d;
                    }
                    let hash = audit_chain::row_hash(&prev, &entry);
                    ids.push(r.id);
                    details.push(new.cloned().map(JsonB));
                    prevs.push(std::mem::replace(&mut prev, hash.clone()));
                    hashes.push(hash);
                }
                let n = ids.len();
                let updated = crate::spi::run(
                    c,
                    "UPDATE awf.audit_log a
                         SET details = coalesce(u.details, a.details),
                             prev_hash = u.prev_hash, row_hash = u.row_hash
                         FROM unnest($1::int8[], $2::jsonb[], $3::text[], $4::text[])
                              AS u(id, details, prev_hash, row_hash)
                         WHERE a.id = u.id",
                    None,
                    &[ids.into(), details.into(), prevs.into(), hashes.into()],
                )
                .expect("re-chain awf.audit_log")
                .len();
                if updated != n {
                    ErrorReport::new(
                        PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
                        "audit rows were committed after this transaction's snapshot; retry the redaction",
                        F,
                    )
                    .report(PgLogLevel::ERROR);
                }
                rechained += n;
            }
        }
    }
    let first = changed.keys().next().copied();
    let mut details = json!({"rows_redacted": changed.len(), "findings": counts,
                             "rechained_from": first, "rows_rechained": rechained});
    if let (Value::Object(d), Value::Object(sc)) = (&mut details, scope) {
        d.extend(sc);
    }
    record_full(c, "audit_redacted", None, save_id, None, details);
    changed.len()
}

/// The outcome of [`verify`], as `awf.audit_verify()` returns it.
pub fn verify(c: &mut SpiClient<'_>, anchor: Option<(i64, &str)>) -> Value {
    let snap = Latest::take();
    let mut v = Verifier::new();
    let mut cursor = String::new();
    let mut anchor_seen = false;
    let mut bad: Option<(i64, Option<i64>, String, Value)> = None;
    'walk: loop {
        let batch = snap.query(
            c,
            &format!("SELECT {COLS} FROM awf.audit_log {cursor} ORDER BY id LIMIT {BATCH}"),
            Row::decode,
        );
        let Some(last) = batch.last() else { break };
        cursor = format!("WHERE id > {}", last.id);
        for r in &batch {
            if let Some((aid, ahash)) = anchor {
                if !anchor_seen && r.id > aid {
                    bad = Some((
                        aid,
                        v.last_id(),
                        "the anchored row is missing: it was deleted".into(),
                        json!({"expected": ahash, "found": null}),
                    ));
                    break 'walk;
                }
            }
            if let Err(b) = v.check(&r.stored()) {
                bad = Some((
                    b.id,
                    b.last_good_id,
                    b.reason,
                    json!({"expected": b.expected, "found": b.found}),
                ));
                break 'walk;
            }
            if let Some((aid, ahash)) = anchor {
                if r.id == aid {
                    anchor_seen = true;
                    if r.row_hash.as_deref() != Some(ahash) {
                        bad = Some((
                            aid,
                            v.last_id(),
                            "the anchored row's row_hash differs from the anchor: the log was rewritten up to it".into(),
                            json!({"expected": ahash, "found": r.row_hash}),
                        ));
                        break 'walk;
                    }
                }
            }
        }
    }
    if let (None, Some((aid, ahash))) = (&bad, anchor) {
        if !anchor_seen {
            bad = Some((
                aid,
                v.last_id(),
                "the anchored row is missing: the newest rows were deleted".into(),
                json!({"expected": ahash, "found": null}),
            ));
        }
    }
    let mut out = json!({
        "ok": bad.is_none(),
        "rows_checked": v.checked(),
        "first_bad_id": null,
        "last_good_id": v.last_id(),
        "reason": null,
    });
    match bad {
        None => {
            out["head_id"] = json!(v.last_id());
            out["head_hash"] = json!(v.head());
        }
        Some((id, last_good, reason, evidence)) => {
            out["first_bad_id"] = json!(id);
            out["last_good_id"] = json!(last_good);
            out["reason"] = json!(reason);
            out["expected"] = evidence["expected"].clone();
            out["found"] = evidence["found"].clone();
        }
    }
    out
}

/// One stored audit row.
struct Row {
    id: i64,
    at_us: i64,
    actor: String,
    action: String,
    session_id: Option<String>,
    save_id: Option<String>,
    device_id: Option<String>,
    details: Value,
    prev_hash: Option<String>,
    row_hash: Option<String>,
}

impl Row {
    /// Decodes the columns of [`COLS`].
    fn decode(r: &RawRow) -> Row {
        Row {
            id: r.get(1).expect("id is not NULL"),
            at_us: r
                .get::<TimestampWithTimeZone>(2)
                .map(unix_micros)
                .expect("at is not NULL"),
            actor: r.get(3).expect("actor is not NULL"),
            action: r.get(4).expect("action is not NULL"),
            session_id: r.get::<Uuid>(5).map(|u| u.to_string()),
            save_id: r.get::<Uuid>(6).map(|u| u.to_string()),
            device_id: r.get(7),
            details: r.get::<JsonB>(8).map_or(Value::Null, |j| j.0),
            prev_hash: r.get(9),
            row_hash: r.get(10),
        }
    }

    fn entry(&self) -> Entry<'_> {
        Entry {
            id: self.id,
            at_us: self.at_us,
            actor: &self.actor,
            action: &self.action,
            session_id: self.session_id.as_deref(),
            save_id: self.save_id.as_deref(),
            device_id: self.device_id.as_deref(),
            details: &self.details,
        }
    }

    fn stored(&self) -> Stored<'_> {
        Stored {
            entry: self.entry(),
            prev_hash: self.prev_hash.as_deref(),
            row_hash: self.row_hash.as_deref(),
        }
    }
}

/// Takes the chain lock (see the module documentation).
fn lock(c: &mut SpiClient<'_>) {
    crate::locks::named(c, "audit");
}

/// The `row_hash` of the newest row, GENESIS for an empty log. A newest row without a hash (not
/// written by these functions) is chained over as if absent, with a WARNING: audit_verify()
/// names it.
fn chain_head(c: &SpiClient<'_>, snap: &Latest) -> String {
    let head = snap.query(
        c,
        "SELECT id, row_hash FROM awf.audit_log ORDER BY id DESC LIMIT 1",
        |r| (r.get::<i64>(1).expect("id"), r.get::<String>(2)),
    );
    match head.into_iter().next() {
        None => GENESIS.to_owned(),
        Some((_, Some(h))) => h,
        Some((id, None)) => {
            warning!("awf.audit_log row {id} has no row_hash (not written by awf); run awf.audit_verify()");
            GENESIS.to_owned()
        }
    }
}

/// `at` as microseconds since the Unix epoch (infinities saturate, staying distinct).
fn unix_micros(at: TimestampWithTimeZone) -> i64 {
    at.into_inner().saturating_add(PG_EPOCH_UNIX_US)
}

/// `details` exactly as they will read back from the jsonb column, so the hash taken now is
/// the hash a verifier recomputes.
fn as_stored(details: Value) -> Value {
    let datum = JsonB(details).into_datum().expect("jsonb datum");
    // SAFETY: a jsonb datum just built, not NULL.
    unsafe { JsonB::from_datum(datum, false) }
        .expect("jsonb reads back")
        .0
}

/// The UUID a details member names, if it is one (awf_core's one parser).
fn parse_uuid(text: &str) -> Option<Uuid> {
    awf_core::ids::parse_uuid("save_id", text)
        .ok()
        .map(|u| Uuid::from_bytes(*u.as_bytes()))
}

/// One jsonb value from a query (None when no row), read as the owner in a connection of its
/// own: for the admin read functions, called only after [`crate::identity::require_admin`].
pub fn owner_json(sql: &str, args: &[pgrx::datum::DatumWithOid<'_>]) -> Option<Value> {
    crate::locks::connect_mut(|c| {
        let _owner = AsOwner::enter(c);
        crate::spi::one_json(c, sql, args)
    })
}

/// Runs the enclosed SPI calls as the owner of `awf.audit_log`, with `search_path` pinned to
/// `pg_catalog, pg_temp`, the way PostgreSQL runs a `SECURITY DEFINER` function with
/// `SET search_path`. Dropping it restores both; on an ERROR the transaction's (or
/// subtransaction's) abort restores them.
pub(crate) struct AsOwner {
    user: pg_sys::Oid,
    sec_context: i32,
    path: Option<crate::locks::Setting>,
}

impl AsOwner {
    /// Runs as the owner of the extension's tables.
    pub(crate) fn enter(_c: &SpiClient<'_>) -> AsOwner {
        Self::enter_role(tables_owner(), c"pg_catalog, pg_temp")
    }

    /// Runs as `role` (a security-restricted operation) with `search_path` pinned to `path`,
    /// the way PostgreSQL runs a `SECURITY DEFINER` function owned by it with `SET
    /// search_path`: the caller's path never decides what the owner's rights execute.
    pub(crate) fn enter_role(owner: pg_sys::Oid, path: &std::ffi::CStr) -> AsOwner {
        let mut user = pg_sys::InvalidOid;
        let mut sec_context = 0;
        // SAFETY: plain backend calls; the values saved here are restored in Drop, or by the
        // (sub)transaction abort that an ERROR leads to.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut sec_context);
            let path = crate::locks::Setting::enter(c"search_path", path);
            pg_sys::SetUserIdAndSecContext(
                owner,
                sec_context
                    | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                    | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
            );
            CALLERS.with(|c| c.borrow_mut().push(user));
            AsOwner {
                user,
                sec_context,
                path: Some(path),
            }
        }
    }
}

/// The owner of `awf.audit_log` (and of every table of the extension), read from the catalog
/// caches: this runs several times per turn, so it must not be an SQL statement.
fn tables_owner() -> pg_sys::Oid {
    // SAFETY: catalog cache lookups inside a transaction; the tuple is released before return.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"awf".as_ptr(), false);
        let rel = pg_sys::get_relname_relid(c"audit_log".as_ptr(), nsp);
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(rel),
        );
        if tuple.is_null() {
            panic!("awf.audit_log is missing: the extension is not installed properly");
        }
        let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple)).relowner;
        pg_sys::ReleaseSysCache(tuple);
        owner
    }
}

thread_local! {
    /// The users each open [`AsOwner`] switched away from, outermost first.
    static CALLERS: std::cell::RefCell<Vec<pg_sys::Oid>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The role that called the extension: the current user, or, while the extension runs as the
/// owner, the user it switched away from first. The audit log names this role.
pub(crate) fn calling_role() -> pg_sys::Oid {
    CALLERS
        .with(|c| c.borrow().first().copied())
        // SAFETY: GetUserId is always valid inside a transaction.
        .unwrap_or_else(|| unsafe { pg_sys::GetUserId() })
}

/// Runs `f` as the owner of the extension's tables (see [`AsOwner`]): how the extension
/// writes rows no caller role may write itself. The caller must already have proven its right
/// to the rows, by reading them under row-level security (and locking them) or by
/// `identity::require_acting_for`.
pub(crate) fn as_owner<'conn, R>(
    c: &mut SpiClient<'conn>,
    f: impl FnOnce(&mut SpiClient<'conn>) -> R,
) -> R {
    let _owner = AsOwner::enter(c);
    f(c)
}

impl Drop for AsOwner {
    fn drop(&mut self) {
        // The path first, then the user, the reverse of `enter_role`.
        drop(self.path.take());
        CALLERS.with(|c| c.borrow_mut().pop());
        // SAFETY: restores what `enter_role` saved.
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.sec_context) };
    }
}

/// A snapshot of everything committed now (and this transaction's own rows), registered until
/// dropped. Reads through it see rows committed after the transaction's own snapshot, which a
/// REPEATABLE READ transaction would otherwise miss.
struct Latest(pg_sys::Snapshot);

impl Latest {
    fn take() -> Latest {
        // SAFETY: RegisterSnapshot copies the static latest snapshot and ties the copy to the
        // current resource owner, which releases it on abort.
        Latest(unsafe { pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot()) })
    }

    /// Runs a SELECT (no parameters: callers format only integers and UUIDs into it) through
    /// this snapshot and decodes every row. `_c` proves an SPI connection is open.
    fn query<T>(
        &self,
        _c: &SpiClient<'_>,
        sql: &str,
        mut decode: impl FnMut(&RawRow) -> T,
    ) -> Vec<T> {
        let text = CString::new(sql).expect("SQL without NUL");
        // SAFETY: SPI is connected (`_c`); the plan and tuple table are freed before returning
        // and every value is copied out by `decode` first. Errors are raised by PostgreSQL.
        unsafe {
            let plan = pg_sys::SPI_prepare(text.as_ptr(), 0, std::ptr::null_mut());
            assert!(!plan.is_null(), "SPI_prepare failed: {sql}");
            let rc = pg_sys::SPI_execute_snapshot(
                plan,
                std::ptr::null_mut(),
                std::ptr::null(),
                self.0,
                std::ptr::null_mut(),
                false,
                false,
                0,
            );
            assert_eq!(rc, pg_sys::SPI_OK_SELECT as i32, "{sql}");
            let table = pg_sys::SPI_tuptable;
            let n = pg_sys::SPI_processed as usize;
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                let row = RawRow {
                    tuple: *(*table).vals.add(i),
                    desc: (*table).tupdesc,
                };
                out.push(decode(&row));
            }
            pg_sys::SPI_freetuptable(table);
            pg_sys::SPI_freeplan(plan);
            out
        }
    }
}

impl Drop for Latest {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            // SAFETY: registered in `take` with the same resource owner.
            unsafe { pg_sys::UnregisterSnapshot(self.0) };
        }
    }
}

/// One row of a [`Latest::query`] result, valid while the query's tuple table is.
struct RawRow {
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
}

impl RawRow {
    /// Column `i` (1-based), copied into Rust; None for NULL.
    fn get<T: FromDatum>(&self, i: i32) -> Option<T> {
        let mut isnull = false;
        // SAFETY: `tuple` and `desc` come from the live SPI tuple table; FromDatum copies
        // by-reference values out of it.
        unsafe {
            let d = pg_sys::SPI_getbinval(self.tuple, self.desc, i, &mut isnull);
            T::from_datum(d, isnull)
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{assert_sqlstate, json, one, run, SID};
    use pgrx::prelude::*;
    use serde_json::json;

    use crate::testing::audited;

    #[pg_test]
    fn rows_are_chained_from_genesis() {
        audited(30);
        let n = one::<i64>("SELECT count(*) FROM awf.audit_log").unwrap();
        assert!(n >= 30);
        assert_eq!(
            one::<String>("SELECT prev_hash FROM awf.audit_log ORDER BY id LIMIT 1").as_deref(),
            Some(super::GENESIS)
        );
        let unlinked = one::<i64>(
            "SELECT count(*) FROM (SELECT prev_hash, lag(row_hash) OVER (ORDER BY id) AS before
                                   FROM awf.audit_log) x
             WHERE before IS NOT NULL AND prev_hash <> before",
        );
        assert_eq!(unlinked, Some(0));
        assert_eq!(
            one::<i64>("SELECT count(*) FROM awf.audit_log WHERE row_hash !~ '^[0-9a-f]{64}$'"),
            Some(0)
        );
        let v = json("SELECT awf.audit_verify()");
        assert_eq!(v["ok"], json!(true), "{v}");
        assert_eq!(v["rows_checked"], json!(n));
        assert_eq!(
            v["head_hash"].as_str(),
            one::<String>("SELECT row_hash FROM awf.audit_log ORDER BY id DESC LIMIT 1").as_deref()
        );
    }

    #[pg_test]
    fn the_hash_is_the_documented_one() {
        audited(1);
        // Recompute the last row's hash from SQL alone, as an offline checker would.
        let mine = one::<bool>(
            "SELECT encode(sha256(convert_to('awf-audit-v1' || chr(10) || prev_hash || chr(10) ||
                      awf.canonical_hash(jsonb_build_object(
                        'id', id::text,
                        'at_us', ((extract(epoch FROM at) * 1000000)::bigint)::text,
                        'actor', actor, 'action', action, 'session_id', session_id,
                        'save_id', save_id, 'device_id', device_id, 'details', details)),
                      'UTF8')), 'hex') = row_hash
             FROM awf.audit_log ORDER BY id DESC LIMIT 1",
        );
        assert_eq!(mine, Some(true));
    }

    #[pg_test]
    fn save_and_device_come_from_details_and_actor_is_the_caller() {
        Spi::connect_mut(|c| {
            super::record(
                c,
                "test_action",
                None,
                json!({"save_id": "{0E6C1A52-0000-4000-8000-000000000001}", "device_id": "phone"}),
            );
            super::record(c, "test_action", None, json!({"save_id": "not a uuid"}));
            let id = super::record_full(
                c,
                "test_full",
                None,
                None,
                Some("tablet"),
                json!({"device_id": "ignored"}),
            );
            assert!(id > 0);
        });
        assert_eq!(
            one::<String>(
                "SELECT save_id::text || ' ' || device_id || ' ' || (actor = current_user)::text
                 FROM awf.audit_log WHERE action = 'test_action' ORDER BY id LIMIT 1"
            )
            .as_deref(),
            Some("0e6c1a52-0000-4000-8000-000000000001 phone true")
        );
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM awf.audit_log WHERE action = 'test_action' AND save_id IS NULL"
            ),
            Some(1)
        );
        assert_eq!(
            one::<String>("SELECT device_id FROM awf.audit_log WHERE action = 'test_full'")
                .as_deref(),
            Some("tablet")
        );
        assert_eq!(json("SELECT awf.audit_verify()")["ok"], json!(true));
    }

    #[pg_test]
    fn odd_details_time_zones_and_search_paths_still_verify() {
        run("SET TimeZone = 'Pacific/Chatham'");
        run("SET DateStyle = 'SQL, DMY'");
        Spi::connect_mut(|c| {
            let big: serde_json::Value =
                serde_json::from_str(r#"{"seed": 18446744073709551615, "x": 1.0, "y": 1e2}"#)
                    .unwrap();
            super::record(c, "odd", None, big);
            super::record(c, "odd", None, json!(["not", "an", "object"]));
        });
        run("CREATE SCHEMA awf_evil");
        run("SET search_path = awf_evil, pg_catalog");
        Spi::connect_mut(|c| super::record(c, "odd", None, json!({})));
        run("RESET search_path");
        run("SET TimeZone = 'UTC'");
        let v = json("SELECT awf.audit_verify()");
        assert_eq!(v["ok"], json!(true), "{v}");
        assert_eq!(
            v["rows_checked"],
            json!(one::<i64>("SELECT count(*) FROM awf.audit_log"))
        );
    }

    #[pg_test]
    fn a_rolled_back_subtransaction_does_not_break_the_chain() {
        audited(2);
        run(&format!(
            "DO $$ BEGIN
               BEGIN
                 PERFORM awf.snapshot_create('{SID}', 'gone');
                 RAISE EXCEPTION 'roll back';
               EXCEPTION WHEN OTHERS THEN NULL;
               END;
             END $$"
        ));
        run(&format!("SELECT awf.snapshot_create('{SID}', 'after')"));
        assert_eq!(json("SELECT awf.audit_verify()")["ok"], json!(true));
    }

    #[pg_test]
    fn redact_details_rechains_and_removes_pii() {
        audited(3);
        let save = "0e6c1a52-0000-4000-8000-0000000000aa";
        Spi::connect_mut(|c| {
            super::record(
                c,
                "save_note",
                None,
                json!({"save_id": save, "note": "contact ash@example.com from 203.0.113.9"}),
            );
            super::record(c, "other", None, json!({"note": "keep bob@example.org"}));
            super::record(
                c,
                "save_note",
                None,
                json!({"save_id": save, "api_key": "sk-live-1234567890abcdefghij"}),
            );
            super::record(c, "save_note", None, json!({"save_id": save, "clean": 1}));
        });
        // Tampering with one of the save's rows breaks the chain there...
        let first = one::<i64>("SELECT min(id) FROM awf.audit_log WHERE action = 'save_note'");
        run(&format!(
            "UPDATE awf.audit_log SET save_id = NULL WHERE id = {}",
            first.unwrap()
        ));
        let v = json("SELECT awf.audit_verify()");
        assert_eq!(v["first_bad_id"], json!(first), "{v}");
        // ...and redaction refuses to re-chain over it (the row is still found, through
        // details->>'save_id', as rows from before the save_id column are).
        assert_sqlstate(
            &format!("SELECT tests.awf_redact_for_test('{save}')"),
            "XX001",
        );
        run(&format!(
            "UPDATE awf.audit_log SET save_id = '{save}' WHERE id = {}",
            first.unwrap()
        ));
        assert_eq!(json("SELECT awf.audit_verify()")["ok"], json!(true));

        let n = one::<i64>(&format!("SELECT tests.awf_redact_for_test('{save}')"));
        assert_eq!(n, Some(2));
        let text = one::<String>(&format!(
            "SELECT string_agg(details::text, ' ') FROM awf.audit_log WHERE save_id = '{save}'"
        ))
        .unwrap();
        assert!(!text.contains("ash@example.com"), "{text}");
        assert!(!text.contains("203.0.113.9"), "{text}");
        assert!(!text.contains("sk-live-1234567890abcdefghij"), "{text}");
        assert!(text.contains("[REDACTED:email:"), "{text}");
        assert_eq!(
            one::<String>("SELECT details->>'note' FROM awf.audit_log WHERE action = 'other'")
                .as_deref(),
            Some("keep bob@example.org"),
            "other saves' rows are untouched"
        );
        let v = json("SELECT awf.audit_verify()");
        assert_eq!(v["ok"], json!(true), "{v}");
        let entry = json(
            "SELECT details FROM awf.audit_log WHERE action = 'audit_redacted' ORDER BY id DESC LIMIT 1",
        );
        assert_eq!(entry["rows_redacted"], json!(2), "{entry}");
        assert_eq!(entry["rows_rechained"], json!(4), "{entry}");
        assert_eq!(entry["rechained_from"], json!(first), "{entry}");
        assert_eq!(entry["findings"]["email"], json!(1), "{entry}");
        assert_eq!(
            one::<String>(
                "SELECT save_id::text FROM awf.audit_log WHERE action = 'audit_redacted'"
            )
            .as_deref(),
            Some(save)
        );
        // Nothing left to redact: no row changes, the act is still audited.
        assert_eq!(
            one::<i64>(&format!("SELECT tests.awf_redact_for_test('{save}')")),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM awf.audit_log WHERE action = 'audit_redacted'"),
            Some(2)
        );
        assert_eq!(json("SELECT awf.audit_verify()")["ok"], json!(true));
    }

    /// `redact_details` as SQL, so its errors can be caught in a subtransaction.
    #[pg_extern]
    fn awf_redact_for_test(save_id: pgrx::Uuid) -> i64 {
        Spi::connect_mut(|c| super::redact_details(c, save_id) as i64)
    }

    #[pg_test]
    fn uuid_text_forms() {
        let u = super::parse_uuid("0E6C1A52-0000-4000-8000-000000000001").unwrap();
        assert_eq!(u.to_string(), "0e6c1a52-0000-4000-8000-000000000001");
        assert!(super::parse_uuid("{0e6c1a5200004000800000000000000 1}").is_none());
        assert!(super::parse_uuid("0e6c1a52000040008000000000000001").is_some());
        assert!(super::parse_uuid("xyz").is_none());
    }
}
