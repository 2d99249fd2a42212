//! `awf.wal_reconcile` (crash recovery for WAL entries that were appended but not applied) and
//! `awf.wal_cleanup` (removing old applied entries).

use crate::audit;
use crate::gucs;
use crate::sessions::store;
use crate::spi::col;
use crate::wal;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::json;

/// One reconciled entry: what was found and what was done.
pub struct Outcome {
    pub session_id: Uuid,
    pub turn_id: i64,
    pub action: &'static str,
    pub detail: String,
}

impl Outcome {
    /// Whether this call brought the entry up to date (what `awf.wal.reconciled` counts).
    pub fn fixed(&self) -> bool {
        matches!(self.action, "reapplied" | "marked_applied")
    }
}

/// Walks every unapplied WAL entry (of one session, or all) in turn order:
/// - the session is still in the entry's pre-apply state → apply it (`reapplied`);
/// - the session already reflects it (its turn counter reached the entry) → mark it applied
///   (`marked_applied`);
/// - otherwise leave it unapplied, count the attempt, log a WARNING (`skipped`).
#[pg_extern(volatile, parallel_unsafe)]
fn wal_reconcile(
    session_id: default!(Option<Uuid>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(session_id, Uuid),
        name!(turn_id, i64),
        name!(action, String),
        name!(detail, String),
    ),
> {
    crate::identity::require_admin("wal_reconcile");
    let outcomes = crate::locks::connect_mut(|c| reconcile(c, session_id));
    TableIterator::new(
        outcomes
            .into_iter()
            .map(|o| (o.session_id, o.turn_id, o.action.to_owned(), o.detail)),
    )
}

/// The reconciliation itself, shared with the background worker.
pub fn reconcile(c: &mut SpiClient<'_>, only: Option<Uuid>) -> Vec<Outcome> {
    let pending: Vec<(Uuid, i64)> = {
        let t = crate::spi::run(
            c,
            "SELECT session_id, turn_id FROM awf.turn_wal
                 WHERE NOT applied AND ($1::uuid IS NULL OR session_id = $1)
                 ORDER BY session_id, turn_id",
            None,
            &[only.into()],
        )
        .expect("select unapplied WAL entries");
        t.map(|row| {
            (
                row.get::<Uuid>(1).unwrap().unwrap(),
                row.get::<i64>(2).unwrap().unwrap(),
            )
        })
        .collect()
    };
    let mut outcomes = Vec::with_capacity(pending.len());
    for (sid, turn_id) in pending {
        outcomes.push(isolated(c, sid, turn_id));
    }
    let fixed = outcomes.iter().filter(|o| o.fixed()).count() as i64;
    audit::bump(c, "awf.wal.reconciled", fixed);
    if !outcomes.is_empty() {
        let summary: Vec<_> = outcomes
            .iter()
            .map(|o| json!({"session_id": o.session_id.to_string(), "turn_id": o.turn_id, "action": o.action}))
            .collect();
        audit::record(
            c,
            "wal_reconcile",
            only,
            json!({"entries": summary, "fixed": fixed}),
        );
    }
    outcomes
}

/// Reconciles one entry in a subtransaction of its own: an ERROR while applying it (a host
/// applier that raises, a cloud-save limit) rolls back that entry only and reports it as
/// `skipped`, so one broken entry never stops the recovery of every other session.
fn isolated(c: &mut SpiClient<'_>, sid: Uuid, turn_id: i64) -> Outcome {
    // SAFETY: the standard internal-subtransaction pattern (as PL/pgSQL's exception blocks):
    // memory context and resource owner are restored after commit or rollback.
    let (ctx, owner) = unsafe {
        let saved = (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner);
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(saved.0);
        saved
    };
    let c = std::cell::RefCell::new(c);
    let result = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        Ok(reconcile_one(&mut c.borrow_mut(), sid, turn_id))
    }))
    .catch_others(|e| {
        Err(match e {
            pg_sys::panic::CaughtError::PostgresError(r)
            | pg_sys::panic::CaughtError::ErrorReport(r)
            | pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => r.message().to_owned(),
        })
    })
    .execute();
    let c = c.into_inner();
    unsafe {
        match result {
            Ok(_) => pg_sys::ReleaseCurrentSubTransaction(),
            Err(_) => pg_sys::RollbackAndReleaseCurrentSubTransaction(),
        }
        pg_sys::MemoryContextSwitchTo(ctx);
        pg_sys::CurrentResourceOwner = owner;
    }
    match result {
        Ok(outcome) => outcome,
        Err(why) => skip(
            c,
            sid,
            turn_id,
            |action, detail| Outcome {
                session_id: sid,
                turn_id,
                action,
                detail,
            },
            format!("applying it raised an error: {why}"),
        ),
    }
}

fn reconcile_one(c: &mut SpiClient<'_>, sid: Uuid, turn_id: i64) -> Outcome {
    let session = store::session(c, sid, true);
    let outcome = |action, detail: String| Outcome {
        session_id: sid,
        turn_id,
        action,
        detail,
    };
    let Some(entry) = store::wal_entry(c, sid, turn_id) else {
        return outcome("skipped", "entry vanished while reconciling".into());
    };
    if entry.applied {
        return outcome("already_applied", "applied by a concurrent call".into());
    }
    if session.turn_id >= turn_id {
        store::mark_wal_applied(c, sid, turn_id);
        return outcome(
            "marked_applied",
            format!(
                "session is at turn {}: the state already reflects this entry",
                session.turn_id
            ),
        );
    }
    if session.turn_id + 1 == turn_id && session.state_hash == entry.state_hash_before {
        // A payload that no longer applies is reported, not raised, so one broken entry does
        // not stop the recovery of every other session.
        return match wal::compute(c, &session, turn_id, &entry.awf_raw) {
            Ok(computed) => {
                let hash = computed_hash(&wal::persist(
                    c,
                    sid,
                    &session,
                    turn_id,
                    computed,
                    &entry.payload_hash,
                    wal::Logged::Pending,
                ));
                outcome("reapplied", format!("applied; state hash {hash}"))
            }
            Err(e) => skip(c, sid, turn_id, outcome, format!("cannot apply: {e}")),
        };
    }
    let why = if session.turn_id + 1 == turn_id {
        format!(
            "session state {} differs from the entry's pre-apply state {}",
            session.state_hash, entry.state_hash_before
        )
    } else {
        format!(
            "session is at turn {}; an earlier turn is missing",
            session.turn_id
        )
    };
    skip(c, sid, turn_id, outcome, why)
}

fn computed_hash(result: &crate::jsonb::JsonB) -> String {
    result.0["state_hash"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn skip(
    c: &mut SpiClient<'_>,
    sid: Uuid,
    turn_id: i64,
    outcome: impl Fn(&'static str, String) -> Outcome,
    why: String,
) -> Outcome {
    crate::spi::run(
        c,
        "UPDATE awf.turn_wal SET attempts = attempts + 1, last_error = $3
         WHERE session_id = $1 AND turn_id = $2",
        None,
        &[sid.into(), turn_id.into(), why.as_str().into()],
    )
    .expect("update awf.turn_wal");
    warning!("awf.wal_reconcile: session {sid} turn {turn_id} left unapplied: {why}");
    outcome("skipped", why)
}

/// Discards an unapplied WAL entry that can no longer apply (reconciliation skipped it: the
/// session moved on through a restore or an upsert), so the session can take that turn again.
/// Admin only; audited with the discarded payload's hash. P0002 when there is no unapplied
/// entry for that turn.
#[pg_extern(volatile, parallel_unsafe)]
fn wal_discard(session_id: Uuid, turn_id: i64) -> bool {
    crate::locks::connect_mut(|c| {
        store::session(c, session_id, true);
        let t = crate::spi::run(
            c,
            "DELETE FROM awf.turn_wal WHERE session_id = $1 AND turn_id = $2 AND NOT applied
                 RETURNING payload_hash, last_error",
            Some(1),
            &[session_id.into(), turn_id.into()],
        )
        .expect("delete from awf.turn_wal");
        if t.is_empty() {
            crate::errors::raise(
                awf_core::Error::not_found(format!(
                    "session {session_id} has no unapplied WAL entry for turn {turn_id}"
                )),
                "wal_discard",
            );
        }
        let t = t.first();
        let hash: String = col(&t, 1);
        let why: Option<String> = t.get(2).expect("last_error");
        audit::record(
            c,
            "wal_discard",
            Some(session_id),
            json!({"turn_id": turn_id, "payload_hash": hash, "last_error": why}),
        );
        true
    })
}

/// Deletes applied WAL entries older than `older_than` (default: `awf.wal_max_age_days`).
/// Unapplied entries are never deleted. Returns how many were removed.
#[pg_extern(volatile, parallel_unsafe)]
fn wal_cleanup(older_than: default!(Option<pgrx::datum::Interval>, "NULL")) -> i64 {
    crate::locks::connect_mut(|c| cleanup(c, older_than))
}

/// `awf.wal_cleanup` for the extension's own callers (retention), audited the same way.
pub fn cleanup(c: &mut SpiClient<'_>, older_than: Option<pgrx::datum::Interval>) -> i64 {
    let t = crate::spi::run(
        c,
        "WITH gone AS (
               DELETE FROM awf.turn_wal
               WHERE applied AND coalesce(applied_at, created_at)
                     < now() - coalesce($1, make_interval(days => $2))
               RETURNING 1)
             SELECT count(*) FROM gone",
        Some(1),
        &[older_than.into(), gucs::wal_max_age_days().into()],
    )
    .expect("delete from awf.turn_wal");
    let n: i64 = col(&t.first(), 1);
    audit::record(
        c,
        "wal_cleanup",
        None,
        json!({"deleted": n, "older_than_days_default": gucs::wal_max_age_days()}),
    );
    n
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{json, new_session, one, run, SID};
    use pgrx::prelude::*;
    use serde_json::json;

    #[pg_test]
    fn reconcile_reapplies_marks_and_skips() {
        new_session();
        // Appended, never applied, state untouched: re-applied.
        run(&format!(
            r#"SELECT awf.wal_append('{SID}', 1, '{{"acts": [{{"op": "increment", "path": "/player/gold"}}]}}')"#
        ));
        let rows = json(&format!(
            "SELECT jsonb_agg(to_jsonb(r)) FROM awf.wal_reconcile('{SID}') r"
        ));
        assert_eq!(rows[0]["action"], json!("reapplied"), "{rows}");
        assert_eq!(
            json("SELECT state -> 'player' -> 'gold' FROM awf.sessions"),
            json!(6)
        );
        // The backend moved the session on by itself: the entry is marked applied.
        run(&format!("SELECT awf.wal_append('{SID}', 2, '{{}}')"));
        run("UPDATE awf.sessions SET turn_id = 2");
        let rows = json("SELECT jsonb_agg(to_jsonb(r)) FROM awf.wal_reconcile() r");
        assert_eq!(rows[0]["action"], json!("marked_applied"), "{rows}");
        // The state changed under an unapplied entry: left alone, reported, counted.
        run(&format!("SELECT awf.wal_append('{SID}', 3, '{{}}')"));
        run(&format!(
            r#"SELECT awf.session_upsert('{SID}', 'u1', '{{"player": {{"hp": 1}}}}')"#
        ));
        let rows = json("SELECT jsonb_agg(to_jsonb(r)) FROM awf.wal_reconcile() r");
        assert_eq!(rows[0]["action"], json!("skipped"), "{rows}");
        assert_eq!(
            one::<i32>("SELECT attempts FROM awf.turn_wal WHERE turn_id = 3"),
            Some(1)
        );
        assert!(one::<String>("SELECT last_error FROM awf.turn_wal WHERE turn_id = 3").is_some());
        assert_eq!(
            one::<i64>("SELECT value FROM awf.metrics WHERE name = 'awf.wal.reconciled'"),
            Some(2)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM awf.audit_log WHERE action = 'wal_reconcile'"),
            Some(3)
        );
    }

    #[pg_test]
    fn cleanup_removes_only_old_applied_entries() {
        new_session();
        crate::testing::submit(1, "[]");
        run(&format!("SELECT awf.wal_append('{SID}', 2, '{{}}')"));
        run("UPDATE awf.turn_wal SET created_at = now() - interval '30 days', applied_at = now() - interval '30 days'");
        assert_eq!(one::<i64>("SELECT awf.wal_cleanup()"), Some(1));
        assert_eq!(
            one::<i64>("SELECT count(*) FROM awf.turn_wal WHERE NOT applied"),
            Some(1)
        );
        assert_eq!(
            one::<i64>("SELECT awf.wal_cleanup(interval '1 day')"),
            Some(0)
        );
    }

    #[pg_test]
    fn a_skipped_entry_can_be_discarded_so_the_session_moves_on() {
        new_session();
        run(&format!("SELECT awf.wal_append('{SID}', 1, '{{}}')"));
        run(&format!(
            r#"SELECT awf.session_upsert('{SID}', 'u1', '{{"player": {{"hp": 2}}}}')"#
        ));
        run("SELECT * FROM awf.wal_reconcile()");
        crate::testing::assert_sqlstate(
            &format!(r#"SELECT awf.turn_submit('{SID}', 1, '{{"txt": "new"}}')"#),
            "23505",
        );
        assert_eq!(
            one::<bool>(&format!("SELECT awf.wal_discard('{SID}', 1)")),
            Some(true)
        );
        run(&format!(
            r#"SELECT awf.turn_submit('{SID}', 1, '{{"txt": "new"}}')"#
        ));
        crate::testing::assert_sqlstate(&format!("SELECT awf.wal_discard('{SID}', 1)"), "P0002");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM awf.audit_log WHERE action = 'wal_discard'"),
            Some(1)
        );
    }

    #[pg_test]
    fn an_entry_that_raises_is_skipped_and_the_others_recover() {
        new_session();
        let other = "22222222-2222-2222-2222-222222222222";
        run(&format!(
            r#"SELECT awf.session_upsert('{other}', 'u1', '{{"n": 0}}')"#
        ));
        run(
            "CREATE FUNCTION public.picky(state jsonb, acts jsonb, turn_id bigint) RETURNS jsonb
             LANGUAGE plpgsql AS $$ BEGIN
               IF acts ? 'boom' AND current_setting('awf_test.boom', true) = 'on' THEN
                 RAISE EXCEPTION 'host applier refuses'; END IF;
               RETURN state || jsonb_build_object('n', turn_id); END $$",
        );
        run("SET awf.act_applier = 'public.picky'");
        run(&format!(
            r#"SELECT awf.wal_append('{SID}', 1, '{{"acts": ["boom"]}}')"#
        ));
        run(&format!(
            r#"SELECT awf.wal_append('{other}', 1, '{{"acts": ["ok"]}}')"#
        ));
        // wal_append applied both to check them; the host changed its mind since.
        run("SET awf_test.boom = 'on'");
        let rows = json("SELECT jsonb_object_agg(session_id, action) FROM awf.wal_reconcile() r");
        assert_eq!(rows[SID], json!("skipped"), "{rows}");
        assert_eq!(rows[other], json!("reapplied"), "{rows}");
        assert!(one::<String>(&format!(
            "SELECT last_error FROM awf.turn_wal WHERE session_id = '{SID}'"
        ))
        .unwrap()
        .contains("host applier refuses"));
        run("RESET awf.act_applier");
    }
}
