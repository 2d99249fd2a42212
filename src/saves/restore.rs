//! Restoring a save to an earlier turn. The turns after it are archived whole (never
//! destroyed) and can be brought back.

use crate::audit;
use crate::errors::{raise, OrRaise};
use crate::jsonb::JsonB;
use crate::saves::store::{self, Save};
use crate::spi::col;
use awf_core::save::Rebuilt;
use awf_core::{canonical, Error, Result};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::{json, Value};

/// Moves turns `from..=head` of a locked save into a new archive; returns its id.
pub fn archive_tail(
    c: &mut SpiClient<'_>,
    s: &Save,
    from: i64,
    reason: &str,
    details: Value,
) -> i64 {
    let base_chain =
        store::chain_at(c, s, from - 1).expect("the turn before an archived tail is held");
    let t = crate::audit::as_owner(c, |c| {
        crate::spi::run(c,

            "INSERT INTO awf.save_archives (save_id, reason, from_turn, to_turn, base_chain, details)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING archive_id",
            Some(1),
            &[
                s.save_id.into(),
                reason.into(),
                from.into(),
                s.head_turn.into(),
                base_chain.into(),
                JsonB(details).into(),
            ],
        )
        .expect("insert into awf.save_archives")
    });
    let archive_id: i64 = col(&t.first(), 1);
    crate::audit::as_owner(c, |c| {
        crate::spi::run(c,
        "WITH moved AS (
           DELETE FROM awf.save_diffs WHERE save_id = $1 AND turn_id >= $2
           RETURNING turn_id, kind, blob_hash, key_id, content_hash, chain_hash, stored_bytes)
         INSERT INTO awf.save_archive_turns
           (archive_id, turn_id, kind, blob_hash, key_id, content_hash, chain_hash, stored_bytes)
         SELECT $3, turn_id, kind, blob_hash, key_id, content_hash, chain_hash, stored_bytes FROM moved",
        None,
        &[s.save_id.into(), from.into(), archive_id.into()],
    )
    .expect("archive save turns")
    });
    archive_id
}

/// Points a locked save's head back at its origin (no stored turn): a sealed save whose first
/// uploaded branch lost a conflict to another that also starts at the origin.
pub fn set_head_to_origin(c: &mut SpiClient<'_>, s: &Save) {
    crate::audit::as_owner(c, |c| {
        crate::spi::run(
            c,
            "UPDATE awf.saves SET head_turn = origin_turn, head_chain = origin_chain,
                head_content_hash = NULL, updated_at = now()
             WHERE save_id = $1",
            None,
            &[s.save_id.into()],
        )
        .expect("update awf.saves")
    });
    super::notify::head_moved(c, s.save_id);
}

/// Points a save's head at a rebuilt turn, and (for a session's save) puts that state back
/// into the session, snapshotting the session's state first so it can be undone.
pub fn set_head(c: &mut SpiClient<'_>, s: &Save, head: &Rebuilt) -> Result<()> {
    let chain = store::chain_at(c, s, head.turn_id()).expect("a rebuilt turn is held");
    let state = head.state().cloned();
    crate::audit::as_owner(c, |c| {
        crate::spi::run(
            c,
            "UPDATE awf.saves SET head_turn = $2, head_chain = $3, head_content_hash = $4,
                updated_at = now()
         WHERE save_id = $1",
            None,
            &[
                s.save_id.into(),
                head.turn_id().into(),
                chain.into(),
                head.content_hash().into(),
            ],
        )
        .expect("update awf.saves")
    });
    super::notify::head_moved(c, s.save_id);
    if let (Some(sid), Some(state)) = (s.session_id, state) {
        crate::snapshots::create(c, sid, Some("pre-save-restore"), false);
        let hash = canonical::content_hash(&state)?;
        // As the owner; the save's user must own the session too, as row-level security
        // required when the caller wrote it.
        crate::audit::as_owner(c, |c| {
            crate::spi::run(
                c,
                "UPDATE awf.sessions SET state = $2, state_hash = $3, updated_at = now()
                 WHERE session_id = $1 AND user_id_hash = $4",
                None,
                &[
                    sid.into(),
                    JsonB(state).into(),
                    hash.into(),
                    s.user_id_hash.as_str().into(),
                ],
            )
            .expect("update awf.sessions")
        });
    }
    Ok(())
}

/// Restores a save to `target_turn`: the turns after it are archived (`reason =
/// 'manual_restore'`) and the head becomes that turn, rebuilt and checked first. A session's
/// save also puts the restored state back into the session (its current state is snapshotted
/// as `pre-save-restore`; its turn counter keeps counting, and the save's next turn is
/// `target_turn + 1`). Returns `{save_id, head_turn, archive_id, archived_turns}`.
#[pg_extern(volatile, parallel_unsafe)]
fn save_restore(save_id: Uuid, target_turn: i64) -> JsonB {
    const F: &str = "save_restore";
    crate::locks::connect_mut(|c| {
        let s = store::save_with_session_locked(c, save_id);
        let head = store::rebuild(c, &s, target_turn).or_raise(F);
        if target_turn == s.head_turn {
            return JsonB(
                json!({"save_id": save_id.to_string(), "head_turn": s.head_turn,
                                "archive_id": null, "archived_turns": 0}),
            );
        }
        let archived = s.head_turn - target_turn;
        let archive_id = archive_tail(
            c,
            &s,
            target_turn + 1,
            "manual_restore",
            json!({"previous_head_chain": s.head_chain}),
        );
        set_head(c, &s, &head).or_raise(F);
        audit::bump(c, "awf.sync.restores", 1);
        let result = json!({
            "save_id": save_id.to_string(), "head_turn": target_turn,
            "archive_id": archive_id, "archived_turns": archived,
        });
        audit::record(c, "save_restore", s.session_id, result.clone());
        JsonB(result)
    })
}

/// Brings an archived branch back as the save's head. When the save moved on since the branch
/// was archived, its newer turns are archived first (so nothing is lost either way); the
/// branch must still attach where it was cut (same chain hash). Returns `{save_id, head_turn,
/// archive_id, displaced_archive_id}`.
#[pg_extern(volatile, parallel_unsafe)]
fn save_archive_restore(archive_id: i64) -> JsonB {
    const F: &str = "save_archive_restore";
    crate::locks::connect_mut(|c| {
        crate::locks::lock_visible(c, "save_archives", "archive_id", archive_id, "FOR UPDATE");
        let t = crate::spi::run(
            c,
            "SELECT save_id, from_turn, to_turn, base_chain, restored_at IS NOT NULL
                 FROM awf.save_archives WHERE archive_id = $1",
            Some(1),
            &[archive_id.into()],
        )
        .expect("select awf.save_archives");
        if t.is_empty() {
            raise(
                Error::not_found(format!("archive {archive_id} does not exist")),
                F,
            );
        }
        let t = t.first();
        let save_id: Uuid = col(&t, 1);
        let from: i64 = col(&t, 2);
        let to: i64 = col(&t, 3);
        let base_chain: String = col(&t, 4);
        if col::<bool>(&t, 5) {
            raise(
                Error::conflict(format!("archive {archive_id} was already restored")),
                F,
            );
        }
        let s = store::save_with_session_locked(c, save_id);
        if from - 1 < s.origin_turn || from - 1 > s.head_turn {
            raise(
                Error::conflict(format!(
                    "archive {archive_id} attaches after turn {}, which save {save_id} no longer holds",
                    from - 1
                )),
                F,
            );
        }
        let displaced = (s.head_turn >= from).then(|| {
            archive_tail(
                c,
                &s,
                from,
                "manual_restore",
                json!({"displaced_by_archive": archive_id}),
            )
        });
        let s = store::save(c, save_id, true);
        let attach_chain = store::chain_at(c, &s, from - 1).unwrap_or_default();
        if attach_chain != base_chain {
            raise(
                Error::conflict(format!(
                    "archive {archive_id} was cut from a different history (chain {base_chain} at turn {}, the save has {attach_chain})",
                    from - 1
                )),
                F,
            );
        }
        crate::audit::as_owner(c, |c| {
            crate::spi::run(c,
            "INSERT INTO awf.save_diffs (save_id, turn_id, kind, blob_hash, key_id, content_hash,
                                         chain_hash, stored_bytes)
             SELECT $1, turn_id, kind, blob_hash, key_id, content_hash, chain_hash, stored_bytes
             FROM awf.save_archive_turns WHERE archive_id = $2",
            None,
            &[save_id.into(), archive_id.into()],
        )
        .expect("restore archived turns")
        });
        crate::audit::as_owner(c, |c| {
            crate::spi::run(
                c,
                "DELETE FROM awf.save_archive_turns WHERE archive_id = $1",
                None,
                &[archive_id.into()],
            )
            .expect("delete archived turns")
        });
        crate::audit::as_owner(c, |c| {
            crate::spi::run(
                c,
                "UPDATE awf.save_archives SET restored_at = now() WHERE archive_id = $1",
                None,
                &[archive_id.into()],
            )
            .expect("mark archive restored")
        });
        let s = Save { head_turn: to, ..s };
        let head = store::rebuild(c, &s, to).or_raise(F);
        set_head(c, &s, &head).or_raise(F);
        let result = json!({
            "save_id": save_id.to_string(), "head_turn": to,
            "archive_id": archive_id, "displaced_archive_id": displaced,
        });
        audit::record(c, "save_archive_restore", s.session_id, result.clone());
        JsonB(result)
    })
}
