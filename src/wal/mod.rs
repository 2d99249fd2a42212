//! The turn write-ahead log: `awf.turn_submit` (append + apply in one call), the two-step
//! `awf.wal_append` / `awf.wal_apply`, and the applier both use.
//!
//! Every call locks the session row first, so turns of one session apply one at a time and a
//! second caller of the same turn waits, then finds the first one's result.

/// Reconciliation at server start, when loaded through `shared_preload_libraries`.
pub mod bgworker;
/// `awf.wal_reconcile`, `awf.wal_discard`, `awf.wal_cleanup`.
pub mod reconcile;

use crate::audit;
use crate::errors::{raise, OrRaise};
use crate::gucs;
use crate::jsonb::JsonB;
use crate::sessions::store::{self, Session};
use awf_core::{acts, canonical, Error};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::{json, Value};

/// What a turn call returns.
fn result(id: Uuid, turn_id: i64, state_hash: &str, duplicate: bool) -> JsonB {
    JsonB(json!({
        "session_id": id.to_string(),
        "turn_id": turn_id,
        "state_hash": state_hash,
        "duplicate": duplicate,
    }))
}

/// Appends a turn to the WAL and applies it, in the caller's transaction. Idempotent: the same
/// payload again returns the first result; another payload for the same turn is 23505.
#[pg_extern(volatile, parallel_unsafe)]
fn turn_submit(session_id: Uuid, turn_id: i64, awf_raw: JsonB) -> JsonB {
    let raw = awf_raw.0;
    let payload_hash = canonical::content_hash(&raw).or_raise("turn_submit");
    crate::locks::connect_mut(|c| {
        let session = store::session(c, session_id, true);
        if let Some(entry) = store::wal_entry(c, session_id, turn_id) {
            same_payload(session_id, turn_id, &entry.payload_hash, &payload_hash);
            if entry.applied {
                return first_result(c, session_id, turn_id);
            }
            // Appended by wal_append but never applied: this call finishes the job.
            check_pre_state(session_id, &session, &entry);
            return apply(c, session_id, &session, turn_id, &raw, &payload_hash);
        }
        // The WAL entry may have been cleaned up: the turn row still knows its payload.
        if turn_id <= session.turn_id {
            if let Some(recorded) = store::turn_payload_hash(c, session_id, turn_id) {
                same_payload(session_id, turn_id, &recorded, &payload_hash);
                return first_result(c, session_id, turn_id);
            }
        }
        check_next(session_id, &session, turn_id);
        // Computed first, then logged as applied and applied: one transaction, so the entry
        // and the turn commit together or not at all, and the entry is written once rather
        // than inserted and then updated (a second copy of the payload in the table and WAL).
        let computed = compute(c, &session, turn_id, &raw).or_raise("turn_submit");
        insert_wal(
            c,
            session_id,
            turn_id,
            &raw,
            &payload_hash,
            &session.state_hash,
            true,
        );
        persist(
            c,
            session_id,
            &session,
            turn_id,
            computed,
            &payload_hash,
            Logged::Applied,
        )
    })
}

/// Records a turn in the WAL without applying it (step one of the two-step form).
#[pg_extern(volatile, parallel_unsafe)]
fn wal_append(session_id: Uuid, turn_id: i64, awf_raw: JsonB) -> JsonB {
    let raw = awf_raw.0;
    let payload_hash = canonical::content_hash(&raw).or_raise("wal_append");
    crate::locks::connect_mut(|c| {
        let session = store::session(c, session_id, true);
        if let Some(entry) = store::wal_entry(c, session_id, turn_id) {
            same_payload(session_id, turn_id, &entry.payload_hash, &payload_hash);
            return JsonB(json!({
                "session_id": session_id.to_string(), "turn_id": turn_id,
                "payload_hash": payload_hash, "applied": entry.applied, "duplicate": true,
            }));
        }
        check_next(session_id, &session, turn_id);
        // Refuse now, not at apply time (or at every restart's reconciliation), a payload that
        // does not apply to the current state or costs more than the limits allow.
        let computed = compute(c, &session, turn_id, &raw).or_raise("wal_append");
        crate::saves::persist::check_turn_would_save(c, session_id, &session, &computed.state)
            .or_raise("wal_append");
        insert_wal(
            c,
            session_id,
            turn_id,
            &raw,
            &payload_hash,
            &session.state_hash,
            false,
        );
        JsonB(json!({
            "session_id": session_id.to_string(), "turn_id": turn_id,
            "payload_hash": payload_hash, "applied": false, "duplicate": false,
        }))
    })
}

/// Applies a WAL entry appended by `awf.wal_append` (step two). Applying an applied entry
/// again returns its first result.
#[pg_extern(volatile, parallel_unsafe)]
fn wal_apply(session_id: Uuid, turn_id: i64) -> JsonB {
    crate::locks::connect_mut(|c| {
        let session = store::session(c, session_id, true);
        let Some(entry) = store::wal_entry(c, session_id, turn_id) else {
            raise(
                Error::not_found(format!(
                    "session {session_id} has no WAL entry for turn {turn_id}; append it with awf.wal_append first"
                )),
                "wal_apply",
            )
        };
        if entry.applied {
            return first_result(c, session_id, turn_id);
        }
        check_pre_state(session_id, &session, &entry);
        apply(
            c,
            session_id,
            &session,
            turn_id,
            &entry.awf_raw,
            &entry.payload_hash,
        )
    })
}

fn same_payload(id: Uuid, turn_id: i64, recorded: &str, offered: &str) {
    if recorded != offered {
        raise(
            Error::conflict(format!(
                "turn {turn_id} of session {id} was already submitted with another payload \
                 (recorded payload hash {recorded}, this one {offered})"
            )),
            "turn_submit",
        );
    }
}

fn check_next(id: Uuid, session: &Session, turn_id: i64) {
    let expected = session.turn_id + 1;
    if turn_id != expected {
        let why = if turn_id > expected {
            "skips ahead"
        } else {
            "goes back"
        };
        raise(
            Error::invalid(format!(
                "turn {turn_id} {why}: session {id} is at turn {}, so the expected turn is {expected}",
                session.turn_id
            )),
            "turn_submit",
        );
    }
}

/// An unapplied entry applies only onto the state it was appended against.
fn check_pre_state(id: Uuid, session: &Session, entry: &store::WalEntry) {
    if session.turn_id + 1 != entry.turn_id || session.state_hash != entry.state_hash_before {
        raise(
            Error::new(
                awf_core::ErrorKind::Conflict,
                format!(
                    "WAL entry for turn {} of session {id} was appended against state {} at turn {}, \
                     but the session is now at turn {} with state {}; run awf.wal_reconcile()",
                    entry.turn_id,
                    entry.state_hash_before,
                    entry.turn_id - 1,
                    session.turn_id,
                    session.state_hash
                ),
            ),
            "wal_apply",
        );
    }
}

/// Logs a turn; `applied` when it is applied in this same transaction (`awf.turn_submit`).
fn insert_wal(
    c: &mut SpiClient<'_>,
    id: Uuid,
    turn_id: i64,
    raw: &Value,
    payload_hash: &str,
    state_hash_before: &str,
    applied: bool,
) {
    // As the owner, on the session the caller locked under row-level security.
    audit::as_owner(c, |c| {
        crate::spi::run(c,
            "INSERT INTO awf.turn_wal (session_id, turn_id, awf_raw, payload_hash, state_hash_before,
                                       applied, attempts, applied_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6::int,
                     CASE WHEN $6 THEN pg_catalog.now() END)",
            None,
            &[
                id.into(),
                turn_id.into(),
                JsonB(raw.clone()).into(),
                payload_hash.into(),
                state_hash_before.into(),
                applied.into(),
            ],
        )
        .expect("insert into awf.turn_wal")
    });
    audit::bump(c, "awf.wal.entries", 1);
}

/// The result recorded when the turn was first applied.
fn first_result(c: &mut SpiClient<'_>, id: Uuid, turn_id: i64) -> JsonB {
    match store::turn_state_hash(c, id, turn_id) {
        Some(h) => result(id, turn_id, &h, true),
        // Marked applied by reconciliation without a turn row: report the WAL's word for it.
        None => JsonB(json!({
            "session_id": id.to_string(), "turn_id": turn_id, "state_hash": null, "duplicate": true,
        })),
    }
}

/// A turn payload checked against the applier that will run it.
pub struct Prepared {
    /// The narrative lines.
    pub lines: Vec<String>,
    /// The acts as stored in `awf.turns` (normalized for the built-in applier, as sent for a
    /// host's own).
    pub acts: Value,
    /// The parsed acts, for the built-in applier.
    parsed: Option<Vec<acts::Act>>,
}

/// Parses a payload. With `awf.act_applier` set, acts are the host's business: only their
/// shape (an array) is checked here, since the host may define acts awf_core does not know.
pub fn prepare(raw: &Value) -> Result<Prepared, Error> {
    if gucs::act_applier().is_some() {
        return Ok(Prepared {
            lines: acts::parse_lines(raw)?,
            acts: acts::raw_acts(raw)?.cloned().unwrap_or_else(|| json!([])),
            parsed: None,
        });
    }
    let payload = acts::parse_payload(raw)?;
    Ok(Prepared {
        acts: acts::acts_to_value(&payload.acts),
        lines: payload.lines,
        parsed: Some(payload.acts),
    })
}

/// Computes the state after a turn: the host's applier when one is configured, else awf_core's.
pub fn next_state(
    c: &mut SpiClient<'_>,
    state: &Value,
    turn: &Prepared,
    turn_id: i64,
) -> Result<Value, Error> {
    match (&turn.parsed, gucs::act_applier()) {
        (Some(parsed), None) => acts::apply_acts(state, parsed, turn_id, &mut gucs::budget()),
        (_, Some(name)) => custom_apply(c, &name, state, &turn.acts, turn_id),
        // The setting changed between prepare and apply (same transaction): re-prepare.
        (None, None) => acts::apply_acts(
            state,
            &acts::parse_acts(&turn.acts)?,
            turn_id,
            &mut gucs::budget(),
        ),
    }
}

fn custom_apply(
    c: &mut SpiClient<'_>,
    name: &str,
    state: &Value,
    acts: &Value,
    turn_id: i64,
) -> Result<Value, Error> {
    // Resolve through the catalog so the name is quoted by PostgreSQL, never by us.
    let t = crate::spi::run(c,

            // Schema-qualified, and its schema quoted for the pinned search_path.
            "SELECT pg_catalog.format('%I.%I', n.nspname, p.proname), p.proowner,
                    pg_catalog.format('pg_catalog, %I, pg_temp', n.nspname)
             FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
             WHERE p.oid OPERATOR(pg_catalog.=) to_regprocedure($1 || '(jsonb, jsonb, bigint)')",
            Some(1),
            &[name.into()],
        )
        .expect("resolve awf.act_applier");
    if t.is_empty() {
        return Err(Error::invalid(format!(
            "awf.act_applier names {name:?}, but no function {name}(jsonb, jsonb, bigint) exists"
        )));
    }
    let row = t.first();
    let proc: String = crate::spi::col(&row, 1);
    let owner: pg_sys::Oid = crate::spi::col(&row, 2);
    let path: String = crate::spi::col(&row, 3);
    let path = std::ffi::CString::new(path).expect("a quoted schema name has no NUL");
    // The host's applier runs with its owner's rights, as if it were SECURITY DEFINER: never
    // with the caller's, which at server start are the reconciling worker's superuser rights.
    // Its search_path is pinned to its own schema (after pg_catalog), as a SECURITY DEFINER
    // function's should be: a caller's path could otherwise put the caller's own functions
    // or operators in front of the ones the applier means, and run them with the owner's rights.
    let _as_owner = crate::audit::AsOwner::enter_role(owner, &path);
    let sql = format!("SELECT {proc}($1, $2, $3)");
    let t = crate::spi::run(
        c,
        sql.as_str(),
        Some(1),
        &[
            JsonB(state.clone()).into(),
            JsonB(acts.clone()).into(),
            turn_id.into(),
        ],
    )
    .unwrap_or_else(|e| panic!("act applier {proc} failed: {e}"));
    drop(_as_owner);
    match t.first().get::<JsonB>(1).expect("read applier result") {
        Some(JsonB(v)) if v.is_object() => Ok(v),
        _ => Err(Error::invalid(format!(
            "act applier {proc} must return a JSON object (the new state)"
        ))),
    }
}

/// A turn computed but not yet written.
pub struct Computed {
    turn: Prepared,
    state: Value,
    state_hash: String,
}

/// Computes the state after a turn without writing anything, so a caller can decide what to
/// do with a turn that does not apply (raise it, or report it as reconciliation does).
pub fn compute(
    c: &mut SpiClient<'_>,
    session: &Session,
    turn_id: i64,
    raw: &Value,
) -> Result<Computed, Error> {
    let turn = prepare(raw)?;
    let state = next_state(c, &session.state, &turn, turn_id)?;
    let state_hash = canonical::content_hash(&state)?;
    Ok(Computed {
        turn,
        state,
        state_hash,
    })
}

/// Whether a turn's WAL entry still has to be marked applied when the turn is written.
pub enum Logged {
    /// Appended earlier (`awf.wal_append`, or found by reconciliation): mark it.
    Pending,
    /// Inserted as applied in this transaction.
    Applied,
}

/// Writes a computed turn onto the locked session (`before` is its state before the turn):
/// new state, turn row, WAL entry applied.
pub fn persist(
    c: &mut SpiClient<'_>,
    id: Uuid,
    before: &Session,
    turn_id: i64,
    computed: Computed,
    payload_hash: &str,
    logged: Logged,
) -> JsonB {
    let Computed {
        turn,
        state,
        state_hash,
    } = computed;
    // A session with a cloud save persists the turn there too, in this transaction.
    crate::saves::persist::on_turn_applied(c, id, before, &state).or_raise("turn_submit");
    store::save_state(c, id, state, &state_hash, turn_id);
    audit::as_owner(c, |c| {
        crate::spi::run(
            c,
            "INSERT INTO awf.turns (session_id, turn_id, lines, acts, payload_hash, state_hash)
             VALUES ($1, $2, $3, $4, $5, $6)",
            None,
            &[
                id.into(),
                turn_id.into(),
                turn.lines.into(),
                JsonB(turn.acts).into(),
                payload_hash.into(),
                state_hash.as_str().into(),
            ],
        )
        .expect("insert into awf.turns")
    });
    if let Logged::Pending = logged {
        store::mark_wal_applied(c, id, turn_id);
    }
    result(id, turn_id, &state_hash, false)
}

/// Computes and writes a turn, raising its error if it does not apply.
fn apply(
    c: &mut SpiClient<'_>,
    id: Uuid,
    session: &Session,
    turn_id: i64,
    raw: &Value,
    payload_hash: &str,
) -> JsonB {
    let computed = compute(c, session, turn_id, raw).or_raise("turn_submit");
    persist(
        c,
        id,
        session,
        turn_id,
        computed,
        payload_hash,
        Logged::Pending,
    )
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{assert_sqlstate, json, new_session, one, run, submit, SID};
    use pgrx::prelude::*;
    use serde_json::json;

    #[pg_test]
    fn the_host_applier_runs_with_its_owners_rights() {
        new_session();
        run("DO $$ BEGIN CREATE ROLE awf_test_applier_owner; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        run(
            "CREATE FUNCTION public.whoami_applier(state jsonb, acts jsonb, turn_id bigint)
             RETURNS jsonb LANGUAGE sql
             AS $$ SELECT state || jsonb_build_object('ran_as', current_user::text,
                                                      'path', current_setting('search_path')) $$",
        );
        run("ALTER FUNCTION public.whoami_applier(jsonb, jsonb, bigint) OWNER TO awf_test_applier_owner");
        run("SET awf.act_applier = 'public.whoami_applier'");
        // The caller here is a superuser, as the startup worker is; its search_path (which
        // could name a schema of the caller's own in front) does not reach the applier.
        run("CREATE SCHEMA IF NOT EXISTS awf_test_caller_first");
        run("SET search_path = awf_test_caller_first, public");
        submit(1, "[]");
        run("RESET search_path");
        assert_eq!(
            json("SELECT state->'ran_as' FROM awf.sessions"),
            json!("awf_test_applier_owner")
        );
        assert_eq!(
            json("SELECT state->'path' FROM awf.sessions"),
            json!("pg_catalog, public, pg_temp")
        );
        assert_eq!(
            one::<bool>("SELECT current_user = session_user"),
            Some(true),
            "the caller's rights are back"
        );
        run("RESET awf.act_applier");
    }

    #[pg_test]
    fn wal_append_parks_only_turns_that_apply() {
        new_session();
        // Parses, but cannot apply to this state: refused now, not at every restart.
        assert_sqlstate(
            &format!(
                r#"SELECT awf.wal_append('{SID}', 1, '{{"acts": [{{"op": "remove", "path": "/nope"}}]}}')"#
            ),
            "22023",
        );
        let bomb: Vec<String> = (0..40)
            .map(|i| format!(r#"{{"op":"copy","from":"","path":"/k{i}"}}"#))
            .collect();
        let bomb = format!(r#"{{"acts": [{}]}}"#, bomb.join(","));
        assert_sqlstate(
            &format!("SELECT awf.wal_append('{SID}', 1, '{bomb}')"),
            "54000",
        );
        assert_sqlstate(
            &format!("SELECT awf.turn_submit('{SID}', 1, '{bomb}')"),
            "54000",
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM awf.turn_wal"),
            Some(0),
            "a refused turn writes nothing"
        );
        assert_eq!(one::<i64>("SELECT turn_id FROM awf.sessions"), Some(0));
    }

    /// A turn whose diff its cloud save would refuse is refused when appended, not parked to
    /// fail at every apply (found by the hostile-input suite).
    #[pg_test]
    fn wal_append_refuses_a_turn_its_save_would_refuse() {
        new_session();
        run(&format!("SELECT awf.save_create_or_attach('{SID}', 'u1')"));
        run("SET awf.sync_max_diff_bytes_kb = 1");
        let big = format!(
            r#"{{"acts": [{{"op": "merge", "path": "/player", "value": {{"bio": "{}"}}}}]}}"#,
            "x".repeat(4000)
        );
        assert_sqlstate(
            &format!("SELECT awf.wal_append('{SID}', 1, '{big}')"),
            "54000",
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM awf.turn_wal"), Some(0));
        // A small turn still goes through.
        run(&format!(
            r#"SELECT awf.wal_append('{SID}', 1, '{{"acts": [{{"op": "increment", "path": "/player/gold"}}]}}')"#
        ));
    }

    #[pg_test]
    fn turn_submit_applies_once_and_records_everything() {
        new_session();
        let r = submit(
            1,
            r#"[{"op": "increment", "path": "/player/gold", "by": 2}]"#,
        )
        .0;
        assert_eq!(r["duplicate"], json!(false));
        let state = json(&format!(
            "SELECT state FROM awf.sessions WHERE session_id = '{SID}'"
        ));
        assert_eq!(state["player"]["gold"], json!(7));
        let hash = one::<String>(&format!(
            "SELECT state_hash FROM awf.sessions WHERE session_id = '{SID}'"
        ));
        assert_eq!(r["state_hash"].as_str(), hash.as_deref());
        assert_eq!(
            one::<String>(&format!(
                "SELECT awf.canonical_hash(state) FROM awf.sessions WHERE session_id = '{SID}'"
            )),
            hash,
            "state_hash is the canonical hash of the stored state"
        );
        let again = submit(
            1,
            r#"[{"op": "increment", "path": "/player/gold", "by": 2}]"#,
        )
        .0;
        assert_eq!(again["duplicate"], json!(true));
        assert_eq!(again["state_hash"], r["state_hash"]);
        assert_eq!(
            one::<i64>("SELECT count(*) FROM awf.turns").unwrap(),
            1,
            "one turn row"
        );
        assert_eq!(
            one::<bool>("SELECT applied FROM awf.turn_wal WHERE turn_id = 1"),
            Some(true)
        );
        assert_eq!(
            one::<String>("SELECT lines::text FROM awf.turns WHERE turn_id = 1").as_deref(),
            Some("{\"Turn 1.\"}")
        );
    }

    #[pg_test]
    fn turn_submit_error_paths() {
        new_session();
        submit(1, "[]");
        // Another payload for a recorded turn.
        assert_sqlstate(
            &format!(r#"SELECT awf.turn_submit('{SID}', 1, '{{"txt": "other"}}')"#),
            "23505",
        );
        // Skipping ahead and going back.
        assert_sqlstate(
            &format!(r#"SELECT awf.turn_submit('{SID}', 3, '{{}}')"#),
            "22023",
        );
        assert_sqlstate(
            &format!(r#"SELECT awf.turn_submit('{SID}', 0, '{{}}')"#),
            "22023",
        );
        // Unknown session, invalid act, non-object payload, unknown op.
        assert_sqlstate(
            r#"SELECT awf.turn_submit('00000000-0000-0000-0000-000000000000', 1, '{}')"#,
            "P0002",
        );
        assert_sqlstate(
            &format!(
                r#"SELECT awf.turn_submit('{SID}', 2, '{{"acts": [{{"op": "increment", "path": "/player/gold"}}, {{"op": "remove", "path": "/nope"}}]}}')"#
            ),
            "22023",
        );
        assert_sqlstate(
            &format!("SELECT awf.turn_submit('{SID}', 2, '[]')"),
            "22023",
        );
        assert_sqlstate(
            &format!(r#"SELECT awf.turn_submit('{SID}', 2, '{{"acts": [{{"op": "fly"}}]}}')"#),
            "22023",
        );
        // Nothing of the failed turns was written.
        assert_eq!(one::<i64>("SELECT count(*) FROM awf.turn_wal"), Some(1));
        assert_eq!(
            json(&format!(
                "SELECT state FROM awf.sessions WHERE session_id = '{SID}'"
            ))["player"]["gold"],
            json!(5)
        );
    }

    #[pg_test]
    fn two_step_append_then_apply() {
        new_session();
        let a = json(&format!(
            r#"SELECT awf.wal_append('{SID}', 1, '{{"acts": [{{"op": "append", "path": "/player/inventory", "value": "rope"}}]}}')"#
        ));
        assert_eq!(a["applied"], json!(false));
        assert_eq!(
            one::<String>("SELECT state_hash_before FROM awf.turn_wal WHERE turn_id = 1"),
            one::<String>("SELECT state_hash FROM awf.sessions")
        );
        // Appending the same payload again is idempotent; another payload conflicts.
        let again = json(&format!(
            r#"SELECT awf.wal_append('{SID}', 1, '{{"acts": [{{"op": "append", "path": "/player/inventory", "value": "rope"}}]}}')"#
        ));
        assert_eq!(again["duplicate"], json!(true));
        assert_sqlstate(
            &format!(r#"SELECT awf.wal_append('{SID}', 1, '{{"acts": []}}')"#),
            "23505",
        );
        assert_sqlstate(
            &format!("SELECT awf.wal_append('{SID}', 5, '{{}}')"),
            "22023",
        );
        assert_sqlstate(
            &format!(r#"SELECT awf.wal_append('{SID}', 2, '{{"acts": [{{"op": "nope"}}]}}')"#),
            "22023",
        );
        let r = json(&format!("SELECT awf.wal_apply('{SID}', 1)"));
        assert_eq!(r["duplicate"], json!(false));
        assert_eq!(
            json("SELECT state -> 'player' -> 'inventory' FROM awf.sessions"),
            json!(["rope"])
        );
        assert_eq!(
            json(&format!("SELECT awf.wal_apply('{SID}', 1)"))["duplicate"],
            json!(true)
        );
        assert_sqlstate(&format!("SELECT awf.wal_apply('{SID}', 9)"), "P0002");
    }

    #[pg_test]
    fn wal_apply_refuses_a_moved_state() {
        new_session();
        run(&format!("SELECT awf.wal_append('{SID}', 1, '{{}}')"));
        run(&format!(
            r#"SELECT awf.session_upsert('{SID}', 'u1', '{{"player": {{"hp": 1}}}}')"#
        ));
        assert_sqlstate(&format!("SELECT awf.wal_apply('{SID}', 1)"), "23505");
    }

    #[pg_test]
    fn custom_applier_is_called_instead() {
        new_session();
        run("CREATE FUNCTION public.my_applier(state jsonb, acts jsonb, turn_id bigint)
             RETURNS jsonb LANGUAGE sql AS $$ SELECT state || jsonb_build_object('seen', acts, 'at', turn_id) $$");
        run("SET awf.act_applier = 'public.my_applier'");
        // A host's own act, unknown to the built-in applier, reaches the host's function.
        submit(1, r#"[{"op": "cast-spell", "spell": "light"}]"#);
        let s = json("SELECT state FROM awf.sessions");
        assert_eq!(s["at"], json!(1));
        assert_eq!(s["seen"][0]["op"], json!("cast-spell"));
        assert_eq!(
            json("SELECT acts FROM awf.turns WHERE turn_id = 1")[0]["spell"],
            json!("light")
        );
        run("SET awf.act_applier = 'public.no_such_fn'");
        assert_sqlstate(
            &format!(r#"SELECT awf.turn_submit('{SID}', 2, '{{}}')"#),
            "22023",
        );
        run("RESET awf.act_applier");
    }

    #[pg_test]
    fn a_retry_after_wal_cleanup_is_still_idempotent() {
        new_session();
        let first = submit(1, r#"[{"op": "increment", "path": "/player/gold"}]"#).0;
        run("UPDATE awf.turn_wal SET applied_at = now() - interval '1 day'");
        run("SELECT awf.wal_cleanup('1 hour')");
        assert_eq!(one::<i64>("SELECT count(*) FROM awf.turn_wal"), Some(0));
        let again = submit(1, r#"[{"op": "increment", "path": "/player/gold"}]"#).0;
        assert_eq!(again["duplicate"], json!(true));
        assert_eq!(again["state_hash"], first["state_hash"]);
        assert_sqlstate(
            &format!(r#"SELECT awf.turn_submit('{SID}', 1, '{{"txt": "other"}}')"#),
            "23505",
        );
    }

    #[pg_test]
    fn states_nested_too_deep_are_refused_up_front() {
        new_session();
        let deep = format!("{}1{}", "[".repeat(101), "]".repeat(101));
        assert_sqlstate(
            &format!(r#"SELECT awf.session_upsert('{SID}', 'u1', '{{"a": {deep}}}')"#),
            "22023",
        );
        let value = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert_sqlstate(
            &format!(
                r#"SELECT awf.turn_submit('{SID}', 1, '{{"acts": [{{"op": "add", "path": "/deep", "value": {value}}}]}}')"#
            ),
            "22023",
        );
    }
}
