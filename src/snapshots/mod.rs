//! Snapshots: the whole runtime state of a session, captured atomically, content-addressed
//! (one row per distinct state per session), restorable and prunable.
//!
//! Payload: `{"version": 1, "session": {session_id, user_id_hash, turn_id}, "contract_ref",
//! "state": <the state document: game_state, npcs, player, rng, world, adventure, memory...>,
//! "state_hash"}`. The content hash covers `version`, `contract_ref` and `state` only, so the
//! same state taken at another turn is the same snapshot.

use crate::audit;
use crate::errors::{raise, OrRaise};
use crate::gucs;
use crate::jsonb::JsonB;
use crate::sessions::store;
use crate::spi::col;
use awf_core::{canonical, Error};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::{json, Value};

const PAYLOAD_VERSION: i64 = 1;

/// The content hash of a snapshot payload: what identifies the captured state.
fn content_hash(payload: &Value) -> Result<String, Error> {
    canonical::content_hash(&json!({
        "version": payload["version"],
        "contract_ref": payload["contract_ref"],
        "state": payload["state"],
    }))
}

/// Captures the current state of a session. Returns `{snapshot_id, content_hash, turn_id,
/// deduplicated, save_base_turn}`; `deduplicated` is true when an identical snapshot already
/// existed (it is returned instead of a new one). With `as_base`, the head turn of the
/// session's cloud save is also stored as a base (`save_base_turn`; null without a save).
#[pg_extern(volatile, parallel_unsafe)]
fn snapshot_create(
    session_id: Option<Uuid>,
    label: default!(Option<&str>, "NULL"),
    as_base: default!(Option<bool>, false),
) -> JsonB {
    let session_id = crate::errors::required(session_id, "session_id", "snapshot_create");
    let as_base = as_base.unwrap_or(false);
    crate::locks::connect_mut(|c| JsonB(create(c, session_id, label, as_base)))
}

/// `awf.snapshot_create` for the extension's own callers (a save restore snapshots the
/// session first), audited the same way.
pub fn create(
    c: &mut SpiClient<'_>,
    session_id: Uuid,
    label: Option<&str>,
    as_base: bool,
) -> Value {
    let (id, hash, turn_id, dedup) = capture(c, session_id, label);
    let base = if as_base {
        crate::saves::persist::mark_session_base(c, session_id).or_raise("snapshot_create")
    } else {
        None
    };
    audit::record(
        c,
        "snapshot_create",
        Some(session_id),
        json!({"snapshot_id": id, "label": label, "content_hash": hash, "deduplicated": dedup,
               "save_base_turn": base}),
    );
    json!({
        "snapshot_id": id, "content_hash": hash, "turn_id": turn_id, "deduplicated": dedup,
        "save_base_turn": base,
    })
}

/// Snapshots the session's current state (locking it as a turn does: no turn changes the
/// state while it is captured, and "snapshot, then turn" in one transaction cannot deadlock
/// with another such transaction by upgrading a shared lock); returns (id, content hash,
/// turn, deduplicated).
fn capture(c: &mut SpiClient<'_>, sid: Uuid, label: Option<&str>) -> (i64, String, i64, bool) {
    store::lock_session(c, sid);
    let t = crate::spi::run(
        c,
        "SELECT user_id_hash, turn_id, state, state_hash, contract_ref
             FROM awf.sessions WHERE session_id = $1",
        Some(1),
        &[sid.into()],
    )
    .expect("select awf.sessions");
    if t.is_empty() {
        raise(
            Error::not_found(format!("session {sid} does not exist")),
            "snapshot_create",
        );
    }
    let t = t.first();
    let user: String = col(&t, 1);
    let turn_id: i64 = col(&t, 2);
    let state = col::<JsonB>(&t, 3).0;
    let state_hash: String = col(&t, 4);
    let contract_ref: Option<String> = t.get(5).expect("contract_ref");
    let payload = json!({
        "version": PAYLOAD_VERSION,
        "session": {"session_id": sid.to_string(), "user_id_hash": user, "turn_id": turn_id},
        "contract_ref": contract_ref,
        "state": state,
        "state_hash": state_hash,
    });
    let hash = content_hash(&payload).or_raise("snapshot_create");
    // As the owner, on the session locked above under row-level security.
    let owner = audit::AsOwner::enter(c);
    let inserted = crate::spi::run(
        c,
        "INSERT INTO awf.snapshots (session_id, turn_id, label, content_hash, payload)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (session_id, content_hash) DO NOTHING
             RETURNING id",
        Some(1),
        &[
            sid.into(),
            turn_id.into(),
            label.into(),
            hash.as_str().into(),
            JsonB(payload).into(),
        ],
    )
    .expect("insert into awf.snapshots");
    drop(owner);
    if !inserted.is_empty() {
        let id: i64 = col(&inserted.first(), 1);
        audit::bump(c, "awf.snapshots.created", 1);
        return (id, hash, turn_id, false);
    }
    let t = crate::spi::run(
        c,
        "SELECT id FROM awf.snapshots WHERE session_id = $1 AND content_hash = $2",
        Some(1),
        &[sid.into(), hash.as_str().into()],
    )
    .expect("select awf.snapshots");
    (col(&t.first(), 1), hash, turn_id, true)
}

/// Restores a snapshot atomically. The current state is snapshotted first (label
/// `pre-restore`), so the restore can be undone; the snapshot is checked against its content
/// hash and state hash before anything changes (XX001 if either disagrees). The turn counter
/// keeps counting: the next turn after a restore is still head + 1.
#[pg_extern(volatile, parallel_unsafe)]
fn snapshot_restore(session_id: Uuid, snapshot_id: i64) -> JsonB {
    const F: &str = "snapshot_restore";
    crate::locks::connect_mut(|c| {
        let session = store::session(c, session_id, true);
        let t = crate::spi::run(
            c,
            "SELECT content_hash, payload FROM awf.snapshots WHERE id = $1 AND session_id = $2",
            Some(1),
            &[snapshot_id.into(), session_id.into()],
        )
        .expect("select awf.snapshots");
        if t.is_empty() {
            raise(
                Error::not_found(format!(
                    "snapshot {snapshot_id} of session {session_id} does not exist"
                )),
                F,
            );
        }
        let t = t.first();
        let recorded: String = col(&t, 1);
        let payload = col::<JsonB>(&t, 2).0;
        let computed = content_hash(&payload).or_raise(F);
        if computed != recorded {
            raise(
                Error::integrity(format!(
                    "snapshot {snapshot_id} is corrupt: content hash {computed} does not match the recorded {recorded}"
                )),
                F,
            );
        }
        let state = payload["state"].clone();
        let state_hash = canonical::content_hash(&state).or_raise(F);
        if payload["state_hash"].as_str() != Some(state_hash.as_str()) || !state.is_object() {
            raise(
                Error::integrity(format!(
                    "snapshot {snapshot_id} is corrupt: its state hashes to {state_hash}, not the recorded {}",
                    payload["state_hash"]
                )),
                F,
            );
        }
        let (pre_id, _, _, _) = capture(c, session_id, Some("pre-restore"));
        store::save_state(c, session_id, state, &state_hash, session.turn_id);
        audit::as_owner(c, |c| {
            crate::spi::run(
                c,
                "UPDATE awf.sessions SET contract_ref = $2 WHERE session_id = $1",
                None,
                &[session_id.into(), payload["contract_ref"].as_str().into()],
            )
            .expect("update awf.sessions")
        });
        audit::bump(c, "awf.snapshots.restored", 1);
        audit::record(
            c,
            "snapshot_restore",
            Some(session_id),
            json!({"snapshot_id": snapshot_id, "pre_restore_snapshot_id": pre_id,
                   "state_hash": state_hash, "previous_state_hash": session.state_hash}),
        );
        JsonB(json!({
            "session_id": session_id.to_string(),
            "snapshot_id": snapshot_id,
            "pre_restore_snapshot_id": pre_id,
            "state_hash": state_hash,
            "turn_id": session.turn_id,
        }))
    })
}

/// Deletes one snapshot (P0002 if it does not exist). Returns true.
#[pg_extern(volatile, parallel_unsafe)]
fn snapshot_delete(session_id: Uuid, snapshot_id: i64) -> bool {
    crate::locks::connect_mut(|c| {
        // The session must be the caller's (row-level security); then delete as the owner.
        store::session(c, session_id, true);
        let t = audit::as_owner(c, |c| {
            crate::spi::run(c,
                "DELETE FROM awf.snapshots WHERE id = $1 AND session_id = $2 RETURNING content_hash",
                Some(1),
                &[snapshot_id.into(), session_id.into()],
            )
            .expect("delete from awf.snapshots")
        });
        if t.is_empty() {
            raise(
                Error::not_found(format!(
                    "snapshot {snapshot_id} of session {session_id} does not exist"
                )),
                "snapshot_delete",
            );
        }
        let hash: String = col(&t.first(), 1);
        audit::record(
            c,
            "snapshot_delete",
            Some(session_id),
            json!({"snapshot_id": snapshot_id, "content_hash": hash}),
        );
        true
    })
}

/// Deletes snapshots older than `awf.snapshot_max_age_days` and all but the newest
/// `awf.snapshot_max_count` of each session (of one session, or all). Returns how many.
#[pg_extern(volatile, parallel_unsafe)]
fn snapshot_prune(session_id: default!(Option<Uuid>, "NULL")) -> i64 {
    crate::locks::connect_mut(|c| prune(c, session_id))
}

/// `awf.snapshot_prune` for the extension's own callers (retention), audited the same way.
pub fn prune(c: &mut SpiClient<'_>, session_id: Option<Uuid>) -> i64 {
    let (days, keep) = (gucs::snapshot_max_age_days(), gucs::snapshot_max_count());
    let t = crate::spi::run(c,

            "WITH ranked AS (
               SELECT id, created_at,
                      row_number() OVER (PARTITION BY session_id ORDER BY created_at DESC, id DESC) AS rn
               FROM awf.snapshots
               WHERE $1::uuid IS NULL OR session_id = $1),
             gone AS (
               DELETE FROM awf.snapshots s USING ranked r
               WHERE s.id = r.id
                 AND (r.rn > $3 OR r.created_at < now() - make_interval(days => $2))
               RETURNING 1)
             SELECT count(*) FROM gone",
            Some(1),
            &[session_id.into(), days.into(), (keep as i64).into()],
        )
        .expect("prune awf.snapshots");
    let n: i64 = col(&t.first(), 1);
    audit::record(
        c,
        "snapshot_prune",
        session_id,
        json!({"deleted": n, "max_age_days": days, "max_count": keep}),
    );
    n
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{assert_sqlstate, json, new_session, one, run, submit, SID};
    use pgrx::prelude::*;
    use serde_json::json;

    #[pg_test]
    fn create_dedups_and_restore_round_trips() {
        new_session();
        let a = json(&format!("SELECT awf.snapshot_create('{SID}', 'one')"));
        assert_eq!(a["deduplicated"], json!(false));
        let b = json(&format!("SELECT awf.snapshot_create('{SID}', 'two')"));
        assert_eq!(b["deduplicated"], json!(true));
        assert_eq!(a["snapshot_id"], b["snapshot_id"]);
        let before = one::<String>("SELECT state_hash FROM awf.sessions");
        submit(
            1,
            r#"[{"op": "replace", "path": "/player/hp", "value": 1}]"#,
        );
        let r = json(&format!(
            "SELECT awf.snapshot_restore('{SID}', {})",
            a["snapshot_id"]
        ));
        assert_eq!(one::<String>("SELECT state_hash FROM awf.sessions"), before);
        assert_eq!(r["turn_id"], json!(1), "the counter keeps counting");
        // The pre-restore snapshot makes the restore undoable.
        let undo = r["pre_restore_snapshot_id"].clone();
        run(&format!("SELECT awf.snapshot_restore('{SID}', {undo})"));
        assert_eq!(
            json("SELECT state -> 'player' -> 'hp' FROM awf.sessions"),
            json!(1)
        );
        assert_eq!(
            one::<i64>("SELECT value FROM awf.metrics WHERE name = 'awf.snapshots.restored'"),
            Some(2)
        );
    }

    #[pg_test]
    fn restore_refuses_a_corrupt_snapshot() {
        new_session();
        let a = json(&format!("SELECT awf.snapshot_create('{SID}')"));
        let id = &a["snapshot_id"];
        run(&format!(
            "UPDATE awf.snapshots SET payload = jsonb_set(payload, '{{state,player,hp}}', '99') WHERE id = {id}"
        ));
        let before = one::<String>("SELECT state_hash FROM awf.sessions");
        assert_sqlstate(
            &format!("SELECT awf.snapshot_restore('{SID}', {id})"),
            "XX001",
        );
        assert_eq!(one::<String>("SELECT state_hash FROM awf.sessions"), before);
    }

    #[pg_test]
    fn snapshot_error_paths() {
        new_session();
        assert_sqlstate(
            "SELECT awf.snapshot_create('00000000-0000-0000-0000-000000000000')",
            "P0002",
        );
        assert_sqlstate(
            &format!("SELECT awf.snapshot_restore('{SID}', 42)"),
            "P0002",
        );
        assert_sqlstate(&format!("SELECT awf.snapshot_delete('{SID}', 42)"), "P0002");
        let a = json(&format!("SELECT awf.snapshot_create('{SID}')"));
        assert_eq!(
            one::<bool>(&format!(
                "SELECT awf.snapshot_delete('{SID}', {})",
                a["snapshot_id"]
            )),
            Some(true)
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM awf.snapshots"), Some(0));
    }

    #[pg_test]
    fn prune_keeps_the_newest_and_drops_the_old() {
        new_session();
        for n in 1..=5 {
            submit(
                n,
                &format!(r#"[{{"op": "replace", "path": "/player/hp", "value": {n}}}]"#),
            );
            run(&format!("SELECT awf.snapshot_create('{SID}', 'turn {n}')"));
        }
        run("SET awf.snapshot_max_count = 3");
        assert_eq!(
            one::<i64>(&format!("SELECT awf.snapshot_prune('{SID}')")),
            Some(2)
        );
        run("UPDATE awf.snapshots SET created_at = now() - interval '40 days' WHERE label = 'turn 3'");
        assert_eq!(one::<i64>("SELECT awf.snapshot_prune()"), Some(1));
        assert_eq!(
            one::<String>("SELECT string_agg(label, ',' ORDER BY id) FROM awf.snapshots")
                .as_deref(),
            Some("turn 4,turn 5")
        );
    }
}
