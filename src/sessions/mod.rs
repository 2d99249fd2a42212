//! `awf.session_upsert`: create a session or replace its state.

/// `awf.recap`.
pub mod recap;
/// Row access to sessions, turns and WAL entries, shared by the lifecycle functions.
pub mod store;

use crate::errors::{raise, OrRaise};
use crate::jsonb::JsonB;
use crate::spi::col;
use awf_core::{canonical, Error};
use pgrx::prelude::*;
use pgrx::Uuid;
use serde_json::json;

/// Creates a session, or replaces the state (and contract) of an existing one of the same
/// user; the turn counter is kept. Returns `{session_id, created, turn_id, state_hash}`.
#[pg_extern(volatile, parallel_unsafe)]
fn session_upsert(
    session_id: Option<Uuid>,
    user_id_hash: Option<&str>,
    state: Option<JsonB>,
    contract_ref: default!(Option<&str>, "NULL"),
) -> JsonB {
    const F: &str = "session_upsert";
    let session_id = crate::errors::required(session_id, "session_id", F);
    let user_id_hash = crate::errors::required(user_id_hash, "user_id_hash", F);
    let state = crate::errors::required(state, "state", F);
    if user_id_hash.is_empty() {
        raise(Error::invalid("user_id_hash must not be empty"), F);
    }
    if !state.0.is_object() {
        raise(
            Error::invalid("state must be a JSON object (the session's state document)"),
            F,
        );
    }
    awf_core::json::check_state_depth(&state.0).or_raise(F);
    let state_hash = canonical::content_hash(&state.0).or_raise(F);
    // Sessions are written as the owner, so the WITH CHECK of row-level security is made here.
    crate::identity::require_acting_for(user_id_hash, F);
    crate::locks::connect_mut(|c| {
        // As the owner: a session of another user under this id must be seen (and refused),
        // not hidden by row-level security and then overwritten.
        let existing = crate::audit::as_owner(c, |c| {
            crate::spi::run(c,
                "SELECT user_id_hash FROM awf.sessions WHERE session_id OPERATOR(pg_catalog.=) $1 FOR NO KEY UPDATE",
                Some(1),
                &[session_id.into()],
            )
            .expect("select awf.sessions")
        });
        if !existing.is_empty() {
            let owner: String = col(&existing.first(), 1);
            if owner != user_id_hash {
                raise(
                    Error::not_allowed(format!("session {session_id} belongs to another user")),
                    F,
                );
            }
        }
        let owner = crate::audit::AsOwner::enter(c);
        let t = crate::spi::run(
            c,
            "INSERT INTO awf.sessions (session_id, user_id_hash, state, state_hash, contract_ref)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (session_id) DO UPDATE
                   SET state = EXCLUDED.state, state_hash = EXCLUDED.state_hash,
                       contract_ref = EXCLUDED.contract_ref, updated_at = now()
                   -- a concurrent create by another user must not be overwritten
                   WHERE awf.sessions.user_id_hash = EXCLUDED.user_id_hash
                 RETURNING turn_id, (xmax = 0) AS created",
            Some(1),
            &[
                session_id.into(),
                user_id_hash.into(),
                state.into(),
                state_hash.as_str().into(),
                contract_ref.into(),
            ],
        )
        .expect("upsert awf.sessions");
        drop(owner);
        if t.is_empty() {
            raise(
                Error::not_allowed(format!("session {session_id} belongs to another user")),
                F,
            );
        }
        let t = t.first();
        let turn_id: i64 = col(&t, 1);
        let created: bool = col(&t, 2);
        JsonB(json!({
            "session_id": session_id.to_string(),
            "created": created,
            "turn_id": turn_id,
            "state_hash": state_hash,
        }))
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{assert_sqlstate, json, new_session, one, SID};
    use pgrx::prelude::*;
    use serde_json::json;

    #[pg_test]
    fn upsert_creates_then_replaces_state_keeping_the_counter() {
        new_session();
        crate::testing::submit(1, "[]");
        let r = json(&format!(
            r#"SELECT awf.session_upsert('{SID}', 'u1', '{{"player": {{"hp": 3}}}}', 'c/2')"#
        ));
        assert_eq!(r["created"], json!(false));
        assert_eq!(r["turn_id"], json!(1));
        assert_eq!(
            one::<String>("SELECT contract_ref FROM awf.sessions").as_deref(),
            Some("c/2")
        );
        assert_eq!(
            one::<String>("SELECT state_hash FROM awf.sessions"),
            one::<String>("SELECT awf.canonical_hash(state) FROM awf.sessions")
        );
    }

    #[pg_test]
    fn upsert_error_paths() {
        new_session();
        // Another user's session.
        assert_sqlstate(
            &format!(r#"SELECT awf.session_upsert('{SID}', 'u2', '{{}}')"#),
            "42501",
        );
        assert_sqlstate(
            r#"SELECT awf.session_upsert(gen_random_uuid(), '', '{}')"#,
            "22023",
        );
        assert_sqlstate(
            r#"SELECT awf.session_upsert(gen_random_uuid(), 'u1', '[1, 2]')"#,
            "22023",
        );
        assert_sqlstate(
            r#"SELECT awf.session_upsert(gen_random_uuid(), 'u1', '{"n": 9007199254740993}')"#,
            "22023",
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM awf.sessions"), Some(1));
    }

    #[pg_test]
    fn null_arguments_are_refused_with_22023_not_a_panic() {
        assert_sqlstate("SELECT awf.session_upsert(NULL, 'u1', '{}')", "22023");
        assert_sqlstate(
            "SELECT awf.session_upsert(gen_random_uuid(), NULL, '{}')",
            "22023",
        );
        assert_sqlstate("SELECT awf.snapshot_create(NULL)", "22023");
        assert_sqlstate("SELECT awf.session_export(NULL)", "22023");
        assert_sqlstate("SELECT awf.device_register(NULL, 'u1')", "22023");
        assert_sqlstate("SELECT awf.save_materialize(NULL)", "22023");
        assert_sqlstate("SELECT awf.save_create_or_attach(NULL, NULL)", "22023");
    }
}
