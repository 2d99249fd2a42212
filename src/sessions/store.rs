//! Row access shared by the lifecycle functions: sessions, turns and WAL entries.
//!
//! Values are always bound as arguments, never formatted into SQL. SPI failures here mean a
//! broken installation (a missing table), not bad input, so they panic with the statement.

use crate::errors::raise;
use crate::jsonb::JsonB;
use crate::spi::col;
use awf_core::Error;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::Value;

/// The parts of a session row the lifecycle needs.
pub struct Session {
    pub turn_id: i64,
    pub state: Value,
    pub state_hash: String,
}

/// A WAL entry.
pub struct WalEntry {
    pub turn_id: i64,
    pub awf_raw: Value,
    pub payload_hash: String,
    pub state_hash_before: String,
    pub applied: bool,
}

/// Takes the row lock that serializes the turns of a session the caller can see; false when
/// row-level security hides it (or it does not exist). The lock is taken as the owner: a
/// locking read needs UPDATE, which no caller role has, so that no caller can hold a
/// session's row hostage outside the functions either. Read the row after this, not before,
/// to see its newest version.
pub fn lock_session(c: &mut SpiClient<'_>, id: Uuid) -> bool {
    // NO KEY: turns of a session still serialize on it, but the foreign-key checks of rows
    // that reference the session (a device's, say, updated twice in one transaction) take
    // KEY SHARE, which this does not block; FOR UPDATE made those checks wait on a turn and
    // deadlock a sync down against a sync up.
    crate::locks::lock_visible(c, "sessions", "session_id", id, "FOR NO KEY UPDATE")
}

/// Loads a session; `lock` takes the row lock that serializes turns of one session.
/// Missing (or hidden by row-level security) → P0002.
pub fn session(c: &mut SpiClient<'_>, id: Uuid, lock: bool) -> Session {
    if !lock || lock_session(c, id) {
        let sql = "SELECT turn_id, state, state_hash FROM awf.sessions WHERE session_id = $1";
        let t = crate::spi::run(c, sql, Some(1), &[id.into()]).expect(sql);
        if !t.is_empty() {
            let t = t.first();
            return Session {
                turn_id: col(&t, 1),
                state: col::<JsonB>(&t, 2).0,
                state_hash: col(&t, 3),
            };
        }
    }
    raise(
        Error::not_found(format!("session {id} does not exist")),
        "awf",
    )
}

/// Writes a session's new state and turn counter, as the owner: the caller has locked the
/// session under row-level security ([`session`]), which proves its right to it.
pub fn save_state(c: &mut SpiClient<'_>, id: Uuid, state: Value, state_hash: &str, turn_id: i64) {
    let _owner = crate::audit::AsOwner::enter(c);
    crate::spi::run(
        c,
        "UPDATE awf.sessions SET state = $2, state_hash = $3, turn_id = $4, updated_at = now()
         WHERE session_id = $1",
        None,
        &[
            id.into(),
            JsonB(state).into(),
            state_hash.into(),
            turn_id.into(),
        ],
    )
    .expect("update awf.sessions");
}

/// The WAL entry of one turn, if any.
pub fn wal_entry(c: &mut SpiClient<'_>, id: Uuid, turn_id: i64) -> Option<WalEntry> {
    let t = crate::spi::run(
        c,
        "SELECT turn_id, awf_raw, payload_hash, state_hash_before, applied
             FROM awf.turn_wal WHERE session_id = $1 AND turn_id = $2",
        Some(1),
        &[id.into(), turn_id.into()],
    )
    .expect("select awf.turn_wal");
    if t.is_empty() {
        return None;
    }
    let t = t.first();
    Some(WalEntry {
        turn_id: col(&t, 1),
        awf_raw: col::<JsonB>(&t, 2).0,
        payload_hash: col(&t, 3),
        state_hash_before: col(&t, 4),
        applied: col(&t, 5),
    })
}

/// The state hash recorded after an applied turn, if the turn is recorded.
pub fn turn_state_hash(c: &mut SpiClient<'_>, id: Uuid, turn_id: i64) -> Option<String> {
    crate::spi::one(
        c,
        "SELECT state_hash FROM awf.turns WHERE session_id = $1 AND turn_id = $2",
        &[id.into(), turn_id.into()],
    )
}

/// Marks a WAL entry applied (by this call or, for reconciliation, by the state it finds).
pub fn mark_wal_applied(c: &mut SpiClient<'_>, id: Uuid, turn_id: i64) {
    let _owner = crate::audit::AsOwner::enter(c);
    crate::spi::run(
        c,
        "UPDATE awf.turn_wal SET applied = true, applied_at = now(), attempts = attempts + 1,
                last_error = NULL
         WHERE session_id = $1 AND turn_id = $2",
        None,
        &[id.into(), turn_id.into()],
    )
    .expect("update awf.turn_wal");
}

/// The payload hash recorded for an applied turn, if the turn is recorded.
pub fn turn_payload_hash(c: &mut SpiClient<'_>, id: Uuid, turn_id: i64) -> Option<String> {
    crate::spi::one(
        c,
        "SELECT payload_hash FROM awf.turns WHERE session_id = $1 AND turn_id = $2",
        &[id.into(), turn_id.into()],
    )
}
