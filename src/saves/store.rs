//! Row access for saves and their stored turns.

use crate::errors::raise;
use crate::jsonb::JsonB;
use crate::saves::{blobs, head_cache};
use crate::spi::col;
use awf_core::save::{self, Kind, Rebuilt, StoredTurn};
use awf_core::{Error, Result};
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::Value;

/// A save row.
pub struct Save {
    pub save_id: Uuid,
    pub session_id: Option<Uuid>,
    pub user_id_hash: String,
    pub sealed: bool,
    pub origin_turn: i64,
    pub origin_chain: String,
    pub head_turn: i64,
    pub head_chain: String,
    /// The head's content hash (None at the origin): which state the head is, wherever a copy
    /// of it is found ([`head_state`]).
    pub head_content_hash: Option<String>,
    pub bytes_stored: i64,
}

/// Locks a save the caller can see (FOR NO KEY UPDATE, or FOR SHARE with `share`); false when
/// row-level security hides it or it does not exist. Taken as the owner: a locking read needs
/// UPDATE, which no caller role has on the save tables. Read the row after this, not before.
/// NO KEY, so the foreign-key checks of rows that reference the save never wait on it.
pub fn lock_save(c: &mut SpiClient<'_>, id: Uuid, share: bool) -> bool {
    let mode = if share {
        "FOR SHARE"
    } else {
        "FOR NO KEY UPDATE"
    };
    crate::locks::lock_visible(c, "saves", "save_id", id, mode)
}

/// Loads a save (P0002 when missing or hidden by row-level security); `lock` serializes turns.
pub fn save(c: &mut SpiClient<'_>, id: Uuid, lock: bool) -> Save {
    let sql = "SELECT session_id, user_id_hash, sealed, origin_turn, origin_chain, head_turn,
                      head_chain, head_content_hash, bytes_stored
               FROM awf.saves WHERE save_id = $1";
    let visible = !lock || lock_save(c, id, false);
    let t = crate::spi::run(c, sql, Some(1), &[id.into()]).expect("select awf.saves");
    if !visible || t.is_empty() {
        raise(
            Error::not_found(format!("save {id} does not exist")),
            "save",
        );
    }
    let t = t.first();
    Save {
        save_id: id,
        session_id: t.get(1).expect("session_id"),
        user_id_hash: col(&t, 2),
        sealed: col(&t, 3),
        origin_turn: col(&t, 4),
        origin_chain: col(&t, 5),
        head_turn: col(&t, 6),
        head_chain: col(&t, 7),
        head_content_hash: t.get(8).expect("head_content_hash"),
        bytes_stored: col(&t, 9),
    }
}

/// The head state of a JSON save (None when sealed or at its origin), from the cheapest place
/// that holds it: this backend's copy of the head it last wrote (taken out of the copies), the session's state
/// when that is the head (the usual case: every session turn is the save's next turn), else
/// rebuilt from the blobs (at most `awf.sync_snapshot_every - 1` diffs after a base). The
/// save keeps no copy of its own, so a turn writes the whole state once (the session's), not
/// twice.
pub fn head_state(c: &mut SpiClient<'_>, s: &Save) -> Result<Option<Value>> {
    let Some(hash) = s.head_content_hash.as_deref() else {
        return Ok(None);
    };
    if s.sealed || s.head_turn <= s.origin_turn {
        return Ok(None);
    }
    if let Some(state) = head_cache::take(s.save_id, &s.head_chain) {
        return Ok(Some(state));
    }
    if let Some(sid) = s.session_id {
        let t = crate::spi::run(
            c,
            "SELECT state FROM awf.sessions WHERE session_id = $1 AND state_hash = $2",
            Some(1),
            &[sid.into(), hash.into()],
        )
        .expect("select awf.sessions");
        if !t.is_empty() {
            return Ok(Some(col::<JsonB>(&t.first(), 1).0));
        }
    }
    match rebuild(c, s, s.head_turn)? {
        Rebuilt::State { state, .. } => Ok(Some(state)),
        Rebuilt::Sealed { .. } => Err(Error::integrity(format!(
            "save {} is not sealed but its head turn {} is",
            s.save_id, s.head_turn
        ))),
    }
}

/// Locks a save for a change that may also touch its session (restore, sync, archive
/// restore): the session first, then the save, the order `awf.turn_submit` takes them in, so
/// the two never deadlock.
pub fn save_with_session_locked(c: &mut SpiClient<'_>, id: Uuid) -> Save {
    let t = crate::spi::run(
        c,
        "SELECT session_id FROM awf.saves WHERE save_id = $1",
        Some(1),
        &[id.into()],
    )
    .expect("select awf.saves");
    if let Some(Some(sid)) = (!t.is_empty()).then(|| t.first().get::<Uuid>(1).expect("session_id"))
    {
        crate::sessions::store::lock_session(c, sid);
    }
    save(c, id, true)
}

/// Whether a save belongs to a user, seen past row-level security, so a device of another
/// user is refused (42501) rather than told the save does not exist; `None` when it does not.
pub fn save_belongs_to(c: &mut SpiClient<'_>, id: Uuid, user: &str) -> Option<bool> {
    // As the owner: row-level security would hide another user's save. Reveals only a yes/no
    // about a save id the caller already has.
    crate::audit::as_owner(c, |c| {
        crate::spi::one(
            c,
            "SELECT user_id_hash = $2 FROM awf.saves WHERE save_id = $1",
            &[id.into(), user.into()],
        )
    })
}

/// One stored turn's row.
pub struct TurnRow {
    pub turn_id: i64,
    pub kind: Kind,
    pub blob_hash: String,
    pub key_id: String,
    pub content_hash: String,
    pub chain_hash: String,
}

/// The stored turns of a save from `from` to `to`, in order.
pub fn turns(c: &mut SpiClient<'_>, id: Uuid, from: i64, to: i64) -> Vec<TurnRow> {
    crate::spi::run(
        c,
        "SELECT turn_id, kind, blob_hash, key_id, content_hash, chain_hash FROM awf.save_diffs
         WHERE save_id = $1 AND turn_id BETWEEN $2 AND $3 ORDER BY turn_id",
        None,
        &[id.into(), from.into(), to.into()],
    )
    .expect("select awf.save_diffs")
    .map(|r| turn_row(&r))
    .collect()
}

/// A turn row from columns 1..=6: turn_id, kind, blob_hash, key_id, content_hash, chain_hash.
fn turn_row(r: &pgrx::spi::SpiHeapTupleData<'_>) -> TurnRow {
    TurnRow {
        turn_id: r.get(1).unwrap().unwrap(),
        kind: r
            .get::<String>(2)
            .unwrap()
            .unwrap()
            .parse()
            .unwrap_or(Kind::Diff),
        blob_hash: r.get(3).unwrap().unwrap(),
        key_id: r.get(4).unwrap().unwrap(),
        content_hash: r.get(5).unwrap().unwrap(),
        chain_hash: r.get(6).unwrap().unwrap(),
    }
}

/// Rebuilds turn `target` of a save from its last base at or before it, in one statement: the
/// turns from that base to the target with their blobs, and the chain hash of the turn before
/// the base. Every blob is checked against its content address, the chain links from the base
/// to the target, and the target's state against its content hash (XX001 on a mismatch, P0002
/// for a turn the save does not hold); the chain before the base is `awf.save_verify`'s to
/// check, so a read costs the same at turn 10 and turn 10,000.
pub fn rebuild(c: &mut SpiClient<'_>, s: &Save, target: i64) -> Result<Rebuilt> {
    if target <= s.origin_turn || target > s.head_turn {
        return Err(Error::not_found(format!(
            "save {} holds turns {} to {}, not turn {target}",
            s.save_id,
            s.origin_turn + 1,
            s.head_turn
        )));
    }
    let t = crate::spi::run(
        c,
        // The last base at or before the target: a backward index scan that stops there.
        // LATERAL, so the range below is an index condition on it, not a filter.
        "SELECT d.turn_id, d.kind, d.blob_hash, d.key_id, d.content_hash, d.chain_hash,
                    bl.data, d.turn_id >= b.start
             FROM (SELECT coalesce((SELECT turn_id FROM awf.save_diffs
                      WHERE save_id = $1 AND turn_id BETWEEN $2 AND $3 AND kind <> 'diff'
                      ORDER BY turn_id DESC LIMIT 1), $2) AS start) b
             CROSS JOIN LATERAL (SELECT * FROM awf.save_diffs x
                    WHERE x.save_id = $1 AND x.turn_id BETWEEN b.start - 1 AND $3) d
             LEFT JOIN awf.save_blobs bl
                    ON d.turn_id >= b.start AND bl.blob_hash = d.blob_hash AND bl.key_id = d.key_id
             ORDER BY d.turn_id",
        None,
        &[s.save_id.into(), (s.origin_turn + 1).into(), target.into()],
    )
    .expect("select awf.save_diffs");
    let mut prev: Option<(i64, String)> = None;
    let mut rows = Vec::new();
    let mut data = Vec::new();
    for r in t {
        let row = turn_row(&r);
        let replayed: bool = r.get(8).expect("replayed").unwrap_or(false);
        if !replayed {
            prev = Some((row.turn_id, row.chain_hash));
            continue;
        }
        data.push(r.get::<Vec<u8>>(7).expect("data"));
        rows.push(row);
    }
    let Some(first) = rows.first() else {
        return Err(Error::integrity(format!(
            "save {} holds no stored turns up to turn {target}",
            s.save_id
        )));
    };
    // Where the replayed turns attach: the origin's chain, or the turn before the base.
    let (start_prev_turn, start_prev_chain) = match prev {
        _ if first.turn_id == s.origin_turn + 1 => (s.origin_turn, s.origin_chain.clone()),
        Some(p) if p.0 == first.turn_id - 1 => p,
        _ => {
            return Err(Error::integrity(format!(
                "turn {} of save {} is missing: turn {} is stored after it",
                first.turn_id - 1,
                s.save_id,
                first.turn_id
            )))
        }
    };
    let mut key = None;
    let mut plain = Vec::with_capacity(rows.len());
    for (r, d) in rows.iter().zip(data) {
        let Some(d) = d else {
            return Err(Error::integrity(format!(
                "turn {} of save {}: blob {} is missing",
                r.turn_id, s.save_id, r.blob_hash
            )));
        };
        plain.push(
            blobs::decode(c, &d, &r.blob_hash, &r.key_id, &mut key).map_err(|e| {
                Error::new(
                    e.kind,
                    format!("turn {} of save {}: {}", r.turn_id, s.save_id, e.message),
                )
            })?,
        );
    }
    let stored = stored_turns(&rows, &plain);
    save::rebuild(&start_prev_chain, start_prev_turn, &[], &stored, target)
}

/// Pairs turn rows with their decoded blobs, for awf_core's rebuild and verify.
pub fn stored_turns<'a>(rows: &'a [TurnRow], plain: &'a [Vec<u8>]) -> Vec<StoredTurn<'a>> {
    rows.iter()
        .zip(plain)
        .map(|(r, p)| StoredTurn {
            turn_id: r.turn_id,
            kind: r.kind,
            blob: p,
            blob_hash: &r.blob_hash,
            content_hash: &r.content_hash,
            chain_hash: &r.chain_hash,
        })
        .collect()
}

/// The chain hash of a save's turn `turn` (the origin's chain for the origin turn), if held.
pub fn chain_at(c: &mut SpiClient<'_>, s: &Save, turn: i64) -> Option<String> {
    if turn == s.origin_turn {
        return Some(s.origin_chain.clone());
    }
    crate::spi::one(
        c,
        "SELECT chain_hash FROM awf.save_diffs WHERE save_id = $1 AND turn_id = $2",
        &[s.save_id.into(), turn.into()],
    )
}

/// The chain hashes of the save's turns `after + 1`, `after + 2`, ... (at most `count`, and
/// only while they follow each other), in one statement.
pub fn chains_after(c: &mut SpiClient<'_>, s: &Save, after: i64, count: usize) -> Vec<String> {
    let last = after.saturating_add(i64::try_from(count).unwrap_or(i64::MAX));
    let t = crate::spi::run(
        c,
        "SELECT turn_id, chain_hash FROM awf.save_diffs
         WHERE save_id = $1 AND turn_id > $2 AND turn_id <= $3 ORDER BY turn_id",
        None,
        &[s.save_id.into(), after.into(), last.into()],
    )
    .expect("select awf.save_diffs");
    let mut out = Vec::new();
    for (row, expected) in t.into_iter().zip(after.saturating_add(1)..) {
        if row.get::<i64>(1).ok().flatten() != Some(expected) {
            break;
        }
        out.push(row.get(2).ok().flatten().expect("chain_hash is NOT NULL"));
    }
    out
}

/// The (JSON, not sealed) save of a session, if it has one.
pub fn session_save(c: &mut SpiClient<'_>, session_id: Uuid) -> Option<Uuid> {
    crate::spi::one(
        c,
        "SELECT save_id FROM awf.saves WHERE session_id = $1 AND NOT sealed",
        &[session_id.into()],
    )
}
