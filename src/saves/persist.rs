//! Creating saves and persisting turns into them.

use crate::audit;
use crate::errors::{raise, OrRaise};
use crate::gucs;
use crate::jsonb::JsonB;
use crate::saves::store::{self, Save};
use crate::saves::{blobs, head_cache, keys};
use crate::sessions::store::Session;
use crate::spi::col;
use awf_core::save::{self, Kind, Planned, Rebuilt};
use awf_core::{canonical, Error, Result};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::{json, Value};

/// Creates the save of a session, or returns the one it has. A new save starts with the
/// session's current state as its first base (at the session's turn), so every later turn is
/// stored from there. Returns `{save_id, created, head_turn, sealed}`. `sealed` creates a
/// client-sealed save (its devices upload states they encrypted themselves; see
/// `awf.save_persist_sealed`); NULL (the default) takes `awf.sync_client_sealed`. A
/// session-less save is always sealed and is created when `session_id` is NULL.
#[pg_extern(volatile, parallel_unsafe)]
fn save_create_or_attach(
    session_id: Option<Uuid>,
    user_id_hash: Option<&str>,
    version: default!(Option<&str>, "'1.0.0'"),
    sealed: default!(Option<bool>, "NULL"),
) -> JsonB {
    const F: &str = "save_create_or_attach";
    let user_id_hash = crate::errors::required(user_id_hash, "user_id_hash", F);
    let version = crate::errors::required(version, "version", F);
    let sealed = sealed.unwrap_or_else(gucs::sync_client_sealed);
    if user_id_hash.is_empty() {
        raise(Error::invalid("user_id_hash must not be empty"), F);
    }
    // Saves are written as the owner, so the WITH CHECK of row-level security is made here.
    crate::identity::require_acting_for(user_id_hash, F);
    crate::locks::connect_mut(|c| {
        let Some(sid) = session_id else {
            if !sealed {
                raise(
                    Error::invalid("a save without a session must be sealed (sealed => true)"),
                    F,
                );
            }
            let id = insert_save(c, None, user_id_hash, version, true, 0);
            audit::record(
                c,
                "save_create",
                None,
                json!({"save_id": id.to_string(), "sealed": true}),
            );
            return JsonB(
                json!({"save_id": id.to_string(), "created": true, "head_turn": 0, "sealed": true}),
            );
        };
        crate::sessions::store::lock_session(c, sid);
        let t = crate::spi::run(
            c,
            "SELECT user_id_hash, turn_id, state FROM awf.sessions WHERE session_id = $1",
            Some(1),
            &[sid.into()],
        )
        .expect("select awf.sessions");
        if t.is_empty() {
            raise(Error::not_found(format!("session {sid} does not exist")), F);
        }
        let t = t.first();
        let owner: String = col(&t, 1);
        let turn_id: i64 = col(&t, 2);
        let state = col::<JsonB>(&t, 3).0;
        if owner != user_id_hash {
            raise(
                Error::not_allowed(format!("session {sid} belongs to another user")),
                F,
            );
        }
        let existing = crate::spi::run(
            c,
            "SELECT save_id, head_turn, sealed FROM awf.saves WHERE session_id = $1",
            Some(1),
            &[sid.into()],
        )
        .expect("select awf.saves");
        if !existing.is_empty() {
            let e = existing.first();
            let id: Uuid = col(&e, 1);
            let head: i64 = col(&e, 2);
            let was_sealed: bool = col(&e, 3);
            return JsonB(
                json!({"save_id": id.to_string(), "created": false, "head_turn": head,
                                "sealed": was_sealed}),
            );
        }
        // The first stored turn is the session's current one, as a base.
        let id = insert_save(c, Some(sid), user_id_hash, version, sealed, turn_id - 1);
        // A sealed save starts empty: its first turn is what a device seals and uploads.
        let head_turn = if sealed { turn_id - 1 } else { turn_id };
        if !sealed {
            let s = store::save(c, id, true);
            persist(c, &s, None, turn_id, &state).or_raise(F);
        }
        audit::record(
            c,
            "save_create",
            Some(sid),
            json!({"save_id": id.to_string(), "head_turn": head_turn, "sealed": sealed}),
        );
        JsonB(
            json!({"save_id": id.to_string(), "created": true, "head_turn": head_turn,
                     "sealed": sealed}),
        )
    })
}

fn insert_save(
    c: &mut SpiClient<'_>,
    session_id: Option<Uuid>,
    user: &str,
    version: &str,
    sealed: bool,
    origin_turn: i64,
) -> Uuid {
    let t = crate::audit::as_owner(c, |c| {
        crate::spi::run(c,

            "INSERT INTO awf.saves (session_id, user_id_hash, version, sealed, origin_turn, head_turn)
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING save_id",
            Some(1),
            &[
                session_id.into(),
                user.into(),
                version.into(),
                sealed.into(),
                origin_turn.into(),
            ],
        )
        .expect("insert into awf.saves")
    });
    col(&t.first(), 1)
}

/// Persists the state of turn `turn_id` (head + 1) into a save: a base every
/// `awf.sync_snapshot_every` turns, otherwise a diff from the head. Limits (diff size, save
/// size, the user's quota) are checked before anything is written (54000).
#[pg_extern(volatile, parallel_unsafe)]
fn save_persist_turn(save_id: Uuid, turn_id: i64, state: JsonB) -> JsonB {
    const F: &str = "save_persist_turn";
    crate::locks::connect_mut(|c| {
        let s = store::save(c, save_id, true);
        if s.sealed {
            raise(
                Error::invalid(format!(
                    "save {save_id} is client-sealed: persist its turns with awf.save_persist_sealed"
                )),
                F,
            );
        }
        let head = store::head_state(c, &s).or_raise(F);
        let state = state.0;
        let written = persist(c, &s, head.as_ref(), turn_id, &state).or_raise(F);
        // The client sends the next state too: keep this one as the head it will diff from.
        if let Some(chain) = written["chain_hash"].as_str() {
            head_cache::put(save_id, chain, state);
        }
        JsonB(written)
    })
}

/// Persists an opaque, client-sealed state: the server cannot read or diff it, but hashes and
/// chains it like any other turn.
#[pg_extern(volatile, parallel_unsafe)]
fn save_persist_sealed(save_id: Uuid, turn_id: i64, sealed: &[u8]) -> JsonB {
    const F: &str = "save_persist_sealed";
    crate::locks::connect_mut(|c| {
        let s = store::save(c, save_id, true);
        if !s.sealed {
            raise(
                Error::invalid(format!(
                    "save {save_id} is not sealed: persist its turns with awf.save_persist_turn"
                )),
                F,
            );
        }
        let mut written = persist_sealed_many(c, &s, &[(turn_id, sealed)]).or_raise(F);
        JsonB(written.remove(0))
    })
}

/// Plans and writes the sealed turns `sealed` of a locked, sealed save, each the next after
/// the one before, all or none (as [`persist_planned`] does for planned turns).
pub fn persist_sealed_many(
    c: &mut SpiClient<'_>,
    s: &Save,
    sealed: &[(i64, &[u8])],
) -> Result<Vec<Value>> {
    let mut plans = Vec::with_capacity(sealed.len());
    let (mut head_chain, mut head_turn) = (s.head_chain.clone(), s.head_turn);
    for &(turn_id, bytes) in sealed {
        check_next(s, head_turn, turn_id)?;
        let planned = save::plan_sealed(&head_chain, turn_id, bytes);
        (head_chain, head_turn) = (planned.chain_hash.clone(), turn_id);
        plans.push((turn_id, planned));
    }
    write(c, s, plans)
}

fn check_next(s: &Save, head_turn: i64, turn_id: i64) -> Result<()> {
    if turn_id != head_turn + 1 {
        return Err(Error::invalid(format!(
            "save {} is at turn {head_turn}, so the next turn is {}, not {turn_id}",
            s.save_id,
            head_turn + 1
        )));
    }
    Ok(())
}

/// Plans and writes one JSON turn of a locked save whose head state is `head`
/// ([`store::head_state`]).
pub fn persist(
    c: &mut SpiClient<'_>,
    s: &Save,
    head: Option<&Value>,
    turn_id: i64,
    state: &Value,
) -> Result<Value> {
    let planned = plan_on(s, head, &s.head_chain, s.head_turn, turn_id, state)?;
    let mut written = write(c, s, vec![(turn_id, planned)])?;
    Ok(written.remove(0))
}

/// Writes turns the caller planned on the head of a locked save (the sync path plans a
/// device's branch once, to compare chain hashes, and writes those plans), all or none. Each
/// must be the next turn, link to the one before (the first to the save's head), and keep
/// within the diff size cap.
pub fn persist_planned(c: &mut SpiClient<'_>, s: &Save, plans: Vec<(i64, Planned)>) -> Result<()> {
    let (mut head_turn, mut head_chain) = (s.head_turn, s.head_chain.as_str());
    for (turn_id, planned) in &plans {
        check_next(s, head_turn, *turn_id)?;
        if awf_core::chain::link(head_chain, *turn_id, &planned.content_hash) != planned.chain_hash
        {
            return Err(Error::integrity(format!(
                "turn {turn_id} was planned on another head than save {}'s",
                s.save_id
            )));
        }
        check_diff_size(planned, *turn_id)?;
        (head_turn, head_chain) = (*turn_id, planned.chain_hash.as_str());
    }
    write(c, s, plans).map(|_| ())
}

/// Plans turn `turn_id` of `s` (base or diff, hashes) on the head `head_state` at
/// `head_turn`/`head_chain` (ahead of the stored one while a batch is planned), and checks
/// what does not depend on other saves: the turn order, the state's shape and depth, the diff
/// size cap.
fn plan_on(
    s: &Save,
    head_state: Option<&Value>,
    head_chain: &str,
    head_turn: i64,
    turn_id: i64,
    state: &Value,
) -> Result<Planned> {
    check_next(s, head_turn, turn_id)?;
    if !state.is_object() {
        return Err(Error::invalid("a saved state must be a JSON object"));
    }
    awf_core::json::check_state_depth(state)?;
    let make_base = save::base_every(turn_id, s.origin_turn, gucs::sync_snapshot_every());
    let planned = save::plan(
        head_state,
        head_chain,
        turn_id,
        state,
        make_base,
        &mut gucs::budget(),
    )?;
    check_diff_size(&planned, turn_id)?;
    Ok(planned)
}

/// Encodes the blobs of planned turns (in order, each the next), checks the save and quota
/// limits for all of them, then writes blobs and rows and moves the head once, to the last
/// turn. Returns each turn's summary.
fn write(c: &mut SpiClient<'_>, s: &Save, plans: Vec<(i64, Planned)>) -> Result<Vec<Value>> {
    let key = keys::data_key_for(c, &s.user_id_hash)?;
    let mut blobs = Vec::with_capacity(plans.len());
    let mut added = 0i64;
    for (_, planned) in &plans {
        pgrx::check_for_interrupts!();
        let blob = blobs::encode(
            c,
            &planned.blob,
            &planned.blob_hash,
            key.as_ref(),
            gucs::sync_zstd_level(),
        )?;
        added += i64::from(blob.stored_bytes);
        blobs.push(blob);
    }
    check_limits(c, s, added)?;
    let mut out = Vec::with_capacity(plans.len());
    for ((turn_id, planned), blob) in plans.iter().zip(&blobs) {
        blobs::write(c, blob);
        crate::audit::as_owner(c, |c| {
            crate::spi::run(
                c,
                "INSERT INTO awf.save_diffs (save_id, turn_id, kind, blob_hash, key_id,
                                             content_hash, chain_hash, stored_bytes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                None,
                &[
                    s.save_id.into(),
                    (*turn_id).into(),
                    planned.kind.as_str().into(),
                    blob.blob_hash.as_str().into(),
                    blob.key_id.as_str().into(),
                    planned.content_hash.as_str().into(),
                    planned.chain_hash.as_str().into(),
                    blob.stored_bytes.into(),
                ],
            )
            .expect("insert into awf.save_diffs")
        });
        out.push(json!({
            "save_id": s.save_id.to_string(),
            "turn_id": turn_id,
            "kind": planned.kind.as_str(),
            "content_hash": planned.content_hash,
            "chain_hash": planned.chain_hash,
            "stored_bytes": blob.stored_bytes,
            "state_bytes": planned.state_bytes,
        }));
    }
    let Some((last_turn, last)) = plans.last() else {
        return Ok(out);
    };
    crate::audit::as_owner(c, |c| {
        crate::spi::run(
            c,
            "UPDATE awf.saves SET head_turn = $2, head_chain = $3, head_content_hash = $4,
                bytes_stored = bytes_stored + $5, updated_at = now()
             WHERE save_id = $1",
            None,
            &[
                s.save_id.into(),
                (*last_turn).into(),
                last.chain_hash.as_str().into(),
                last.content_hash.as_str().into(),
                added.into(),
            ],
        )
        .expect("update awf.saves")
    });
    super::notify::head_moved(c, s.save_id);
    audit::bump(c, "awf.sync.turns_persisted", plans.len() as i64);
    Ok(out)
}

/// Called for every applied session turn: when the session has a (JSON) save, the turn is
/// persisted into it in the same transaction, as the save's next turn. `before` is the
/// session's state before the turn: the save's head, unless the two have parted.
pub fn on_turn_applied(
    c: &mut SpiClient<'_>,
    session_id: Uuid,
    before: &Session,
    state: &Value,
) -> Result<()> {
    let Some(id) = store::session_save(c, session_id) else {
        return Ok(());
    };
    let s = store::save(c, id, true);
    with_head(c, &s, before, |c, head| {
        persist(c, &s, head, s.head_turn + 1, state).map(|_| ())
    })
}

/// What `on_turn_applied` would refuse for good, checked without writing: `awf.wal_append`
/// parks no turn its save could never take (a diff over the cap, say). The quota is not
/// checked here; it can change before the turn is applied.
pub fn check_turn_would_save(
    c: &mut SpiClient<'_>,
    session_id: Uuid,
    before: &Session,
    state: &Value,
) -> Result<()> {
    let Some(id) = store::session_save(c, session_id) else {
        return Ok(());
    };
    let s = store::save(c, id, false);
    with_head(c, &s, before, |_, head| {
        plan_on(&s, head, &s.head_chain, s.head_turn, s.head_turn + 1, state).map(|_| ())
    })
}

/// Runs `f` with the head state of a session's save: the session's state before the turn when
/// it is the head (same content hash), which costs nothing, else [`store::head_state`].
fn with_head<R>(
    c: &mut SpiClient<'_>,
    s: &Save,
    before: &Session,
    f: impl FnOnce(&mut SpiClient<'_>, Option<&Value>) -> Result<R>,
) -> Result<R> {
    if !s.sealed
        && s.head_turn > s.origin_turn
        && s.head_content_hash.as_deref() == Some(before.state_hash.as_str())
    {
        return f(c, Some(&before.state));
    }
    let head = store::head_state(c, s)?;
    f(c, head.as_ref())
}

/// Stores turn `turn_id` of a locked save as a base (its full state) when it is a diff, so the
/// turns before it are no longer needed to rebuild it. The content and chain hashes do not
/// change. Returns whether anything changed (false for a base or sealed turn).
pub fn rebase(c: &mut SpiClient<'_>, s: &Save, turn_id: i64) -> Result<bool> {
    let rows = store::turns(c, s.save_id, turn_id, turn_id);
    let Some(row) = rows.first() else {
        return Err(Error::not_found(format!(
            "save {} holds no turn {turn_id}",
            s.save_id
        )));
    };
    if row.kind != Kind::Diff {
        return Ok(false);
    }
    let Rebuilt::State { bytes, .. } = store::rebuild(c, s, turn_id)? else {
        return Ok(false);
    };
    let blob_hash = canonical::sha256_hex(&bytes);
    let key = keys::data_key_for(c, &s.user_id_hash)?;
    let blob = blobs::encode(c, &bytes, &blob_hash, key.as_ref(), gucs::sync_zstd_level())?;
    blobs::write(c, &blob);
    crate::audit::as_owner(c, |c| {
        crate::spi::run(c,
        "UPDATE awf.save_diffs SET kind = 'base', blob_hash = $3, key_id = $4, stored_bytes = $5
         WHERE save_id = $1 AND turn_id = $2",
        None,
        &[
            s.save_id.into(),
            turn_id.into(),
            blob.blob_hash.as_str().into(),
            blob.key_id.as_str().into(),
            blob.stored_bytes.into(),
        ],
    )
    .expect("re-base awf.save_diffs")
    });
    Ok(true)
}

/// Marks turn `turn_id` (default: the head) of a save as a base: it is stored whole from now
/// on, so rebuilding it or any later turn starts there. Returns `{save_id, turn_id, rebased}`.
#[pg_extern(volatile, parallel_unsafe)]
fn save_mark_base(save_id: Option<Uuid>, turn_id: default!(Option<i64>, "NULL")) -> JsonB {
    const F: &str = "save_mark_base";
    let save_id = crate::errors::required(save_id, "save_id", F);
    crate::locks::connect_mut(|c| {
        let s = store::save(c, save_id, true);
        let turn_id = turn_id.unwrap_or(s.head_turn);
        let rebased = rebase(c, &s, turn_id).or_raise(F);
        let result =
            json!({"save_id": save_id.to_string(), "turn_id": turn_id, "rebased": rebased});
        audit::record(c, "save_mark_base", s.session_id, result.clone());
        JsonB(result)
    })
}

/// For `awf.snapshot_create(..., as_base => true)`: marks the head of the session's save as a
/// base. Returns the save turn marked, if the session has a (JSON) save.
pub fn mark_session_base(c: &mut SpiClient<'_>, session_id: Uuid) -> Result<Option<i64>> {
    let Some(id) = store::session_save(c, session_id) else {
        return Ok(None);
    };
    let s = store::save(c, id, true);
    if s.head_turn <= s.origin_turn {
        return Ok(None);
    }
    rebase(c, &s, s.head_turn)?;
    Ok(Some(s.head_turn))
}

/// Checks a save's size limit and its user's quota for `added` more stored bytes, before
/// anything is written (54000, saying which). Holds a per-user lock to the end of the
/// transaction, so two saves of one user cannot both pass and together exceed the quota.
pub fn check_limits(c: &mut SpiClient<'_>, s: &Save, added: i64) -> Result<()> {
    if s.bytes_stored + added > gucs::sync_max_save_bytes() {
        return Err(Error::limit(format!(
            "save {} would grow to {} bytes, over awf.sync_max_save_bytes_mb = {}",
            s.save_id,
            s.bytes_stored + added,
            gucs::sync_max_save_bytes() / (1024 * 1024)
        )));
    }
    crate::locks::named(c, &format!("quota:{}", s.user_id_hash));
    let used: i64 = col(
        &crate::spi::run(
            c,
            "SELECT coalesce(sum(bytes_stored), 0)::bigint FROM awf.saves WHERE user_id_hash = $1",
            Some(1),
            &[s.user_id_hash.as_str().into()],
        )
        .expect("sum awf.saves")
        .first(),
        1,
    );
    if used + added > gucs::sync_user_quota_bytes() {
        return Err(Error::limit(format!(
            "user quota exceeded: {used} bytes used, this needs {added} more, awf.sync_user_quota_mb = {}",
            gucs::sync_user_quota_bytes() / (1024 * 1024)
        )));
    }
    Ok(())
}

/// Checks one planned turn's diff against `awf.sync_max_diff_bytes_kb` (54000).
pub fn check_diff_size(planned: &Planned, turn_id: i64) -> Result<()> {
    if planned.kind == Kind::Diff && planned.blob.len() > gucs::sync_max_diff_bytes() {
        return Err(Error::limit(format!(
            "the diff of turn {turn_id} is {} KB, over awf.sync_max_diff_bytes_kb = {}",
            planned.blob.len().div_ceil(1024),
            gucs::sync_max_diff_bytes() / 1024
        )));
    }
    Ok(())
}
