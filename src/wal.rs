//! The turn write-ahead log: `awf.turn_submit` (append + apply in one call), the two-step
//! `awf.wal_append` / `awf.wal_apply`, and the applier both use.
//!
//! Every call locks the session row first, so turns of one session apply one at a time and a
//! second caller of the same turn waits, then finds the first one's result.

use crate::audit;
use crate::errors::{raise, OrRaise};
use crate::gucs;
use crate::store::{self, Session};
use awf_core::{acts, canonical, Error};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Uuid};
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
    Spi::connect_mut(|c| {
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
        check_next(session_id, &session, turn_id);
        insert_wal(
            c,
            session_id,
            turn_id,
            &raw,
            &payload_hash,
            &session.state_hash,
        );
        apply(c, session_id, &session, turn_id, &raw, &payload_hash)
    })
}

/// Records a turn in the WAL without applying it (step one of the two-step form).
#[pg_extern(volatile, parallel_unsafe)]
fn wal_append(session_id: Uuid, turn_id: i64, awf_raw: JsonB) -> JsonB {
    let raw = awf_raw.0;
    let payload_hash = canonical::content_hash(&raw).or_raise("wal_append");
    // Refuse a payload that can never apply now, not at apply time.
    acts::parse_payload(&raw).or_raise("wal_append");
    Spi::connect_mut(|c| {
        let session = store::session(c, session_id, true);
        if let Some(entry) = store::wal_entry(c, session_id, turn_id) {
            same_payload(session_id, turn_id, &entry.payload_hash, &payload_hash);
            return JsonB(json!({
                "session_id": session_id.to_string(), "turn_id": turn_id,
                "payload_hash": payload_hash, "applied": entry.applied, "duplicate": true,
            }));
        }
        check_next(session_id, &session, turn_id);
        insert_wal(
            c,
            session_id,
            turn_id,
            &raw,
            &payload_hash,
            &session.state_hash,
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
    Spi::connect_mut(|c| {
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

fn insert_wal(
    c: &mut SpiClient<'_>,
    id: Uuid,
    turn_id: i64,
    raw: &Value,
    payload_hash: &str,
    state_hash_before: &str,
) {
    c.update(
        "INSERT INTO awf.turn_wal (session_id, turn_id, awf_raw, payload_hash, state_hash_before)
         VALUES ($1, $2, $3, $4, $5)",
        None,
        &[
            id.into(),
            turn_id.into(),
            JsonB(raw.clone()).into(),
            payload_hash.into(),
            state_hash_before.into(),
        ],
    )
    .expect("insert into awf.turn_wal");
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

/// Computes the state after a turn: the host's applier when one is configured, else awf_core's.
pub fn next_state(
    c: &mut SpiClient<'_>,
    state: &Value,
    payload: &acts::TurnPayload,
    turn_id: i64,
) -> Result<Value, Error> {
    match gucs::act_applier() {
        None => acts::apply_acts(state, &payload.acts, turn_id),
        Some(name) => custom_apply(c, &name, state, payload, turn_id),
    }
}

fn custom_apply(
    c: &mut SpiClient<'_>,
    name: &str,
    state: &Value,
    payload: &acts::TurnPayload,
    turn_id: i64,
) -> Result<Value, Error> {
    // Resolve through the catalog so the name is quoted by PostgreSQL, never by us.
    let t = c
        .update(
            "SELECT to_regprocedure($1 || '(jsonb, jsonb, bigint)')::regproc::text",
            Some(1),
            &[name.into()],
        )
        .expect("resolve awf.act_applier");
    let proc: Option<String> = t.first().get(1).expect("read applier name");
    let Some(proc) = proc else {
        return Err(Error::invalid(format!(
            "awf.act_applier names {name:?}, but no function {name}(jsonb, jsonb, bigint) exists"
        )));
    };
    let sql = format!("SELECT {proc}($1, $2, $3)");
    let t = c
        .update(
            sql.as_str(),
            Some(1),
            &[
                JsonB(state.clone()).into(),
                JsonB(acts::acts_to_value(&payload.acts)).into(),
                turn_id.into(),
            ],
        )
        .unwrap_or_else(|e| panic!("act applier {proc} failed: {e}"));
    match t.first().get::<JsonB>(1).expect("read applier result") {
        Some(JsonB(v)) if v.is_object() => Ok(v),
        _ => Err(Error::invalid(format!(
            "act applier {proc} must return a JSON object (the new state)"
        ))),
    }
}

/// Applies a turn onto the locked session: new state, turn row, WAL entry marked applied.
pub fn apply(
    c: &mut SpiClient<'_>,
    id: Uuid,
    session: &Session,
    turn_id: i64,
    raw: &Value,
    payload_hash: &str,
) -> JsonB {
    let payload = acts::parse_payload(raw).or_raise("turn_submit");
    let state = next_state(c, &session.state, &payload, turn_id).or_raise("turn_submit");
    let state_hash = canonical::content_hash(&state).or_raise("turn_submit");
    store::save_state(c, id, state, &state_hash, turn_id);
    c.update(
        "INSERT INTO awf.turns (session_id, turn_id, lines, acts, payload_hash, state_hash)
         VALUES ($1, $2, $3, $4, $5, $6)",
        None,
        &[
            id.into(),
            turn_id.into(),
            payload.lines.clone().into(),
            JsonB(acts::acts_to_value(&payload.acts)).into(),
            payload_hash.into(),
            state_hash.as_str().into(),
        ],
    )
    .expect("insert into awf.turns");
    c.update(
        "UPDATE awf.turn_wal SET applied = true, applied_at = now(), attempts = attempts + 1,
                last_error = NULL
         WHERE session_id = $1 AND turn_id = $2",
        None,
        &[id.into(), turn_id.into()],
    )
    .expect("update awf.turn_wal");
    result(id, turn_id, &state_hash, false)
}
