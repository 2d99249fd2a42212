//! `awf.sync_up`: a device uploads the turns it played on top of a base it had.

use crate::audit;
use crate::errors::{raise, OrRaise};
use crate::gucs;
use crate::jsonb::JsonB;
use crate::saves::persist;
use crate::saves::restore;
use crate::saves::store::{self, Save};
use crate::saves::{blobs, keys};
use crate::spi::col;
use crate::sync::{conflicts, devices};
use awf_core::conflict::Strategy;
use awf_core::save::{Planned, Rebuilt};
use awf_core::sync::branch::{self, Layout};
use awf_core::sync::decide::{self, Decision, Head, Winner};
use awf_core::sync::request::{self, ClientTurn, Content, Request};
use awf_core::{merge, Error, Result};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::{json, Value};

const F: &str = "sync_up";

/// Archives the device's branch whole (`reason = 'conflict'`), writing its blobs.
fn archive_client_branch(
    c: &mut SpiClient<'_>,
    s: &Save,
    ancestor_turn: i64,
    ancestor_chain: &str,
    plans: &[Planned],
    details: Value,
) -> Result<i64> {
    let last = ancestor_turn + plans.len() as i64;
    let t = crate::audit::as_owner(c, |c| {
        crate::spi::run(c,

            "INSERT INTO awf.save_archives (save_id, reason, from_turn, to_turn, base_chain, details)
             VALUES ($1, 'conflict', $2, $3, $4, $5) RETURNING archive_id",
            Some(1),
            &[
                s.save_id.into(),
                (ancestor_turn + 1).into(),
                last.into(),
                ancestor_chain.into(),
                JsonB(details).into(),
            ],
        )
        .expect("insert into awf.save_archives")
    });
    let archive_id: i64 = col(&t.first(), 1);
    for (p, t) in plans.iter().zip(ancestor_turn + 1..) {
        persist::check_diff_size(p, t)?;
    }
    let key = keys::data_key_for(c, &s.user_id_hash)?;
    let encoded = plans
        .iter()
        .map(|p| {
            blobs::encode(
                c,
                &p.blob,
                &p.blob_hash,
                key.as_ref(),
                gucs::sync_zstd_level(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    // An archived branch takes storage like any turn: same limits, counted in the save.
    let added: i64 = encoded.iter().map(|b| i64::from(b.stored_bytes)).sum();
    persist::check_limits(c, s, added)?;
    crate::audit::as_owner(c, |c| {
        crate::spi::run(
            c,
            "UPDATE awf.saves SET bytes_stored = bytes_stored + $2 WHERE save_id = $1",
            None,
            &[s.save_id.into(), added.into()],
        )
        .expect("update awf.saves")
    });
    for ((i, p), blob) in plans.iter().enumerate().zip(&encoded) {
        blobs::write(c, blob);
        crate::audit::as_owner(c, |c| {
            crate::spi::run(
                c,
                "INSERT INTO awf.save_archive_turns (archive_id, turn_id, kind, blob_hash, key_id,
                                                content_hash, chain_hash, stored_bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                None,
                &[
                    archive_id.into(),
                    (ancestor_turn + 1 + i as i64).into(),
                    p.kind.as_str().into(),
                    blob.blob_hash.as_str().into(),
                    blob.key_id.as_str().into(),
                    p.content_hash.as_str().into(),
                    p.chain_hash.as_str().into(),
                    blob.stored_bytes.into(),
                ],
            )
            .expect("insert into awf.save_archive_turns")
        });
    }
    Ok(archive_id)
}

/// Writes the device's turns, as planned, on the save's head (which the plans start from),
/// and returns the save after them.
fn append(
    c: &mut SpiClient<'_>,
    save_id: Uuid,
    first_turn: i64,
    plans: Vec<Planned>,
) -> Result<Save> {
    let s = store::save(c, save_id, true);
    let numbered = (first_turn..).zip(plans).collect();
    persist::persist_planned(c, &s, numbered)?;
    Ok(store::save(c, save_id, true))
}

/// Uploads a device's turns. The request: `{save_id, base_turn, base_chain, turns: [{turn_id,
/// state | patch | sealed_hex, chain_hash?}], strategy?, merge_rule?}`: a client-sealed save
/// takes `sealed_hex` turns only (and cannot be merged by the server), any other save takes
/// `state` or `patch`.
/// - When the base is the save's head, the turns fast-forward it (a claimed chain hash that
///   differs from the server's is 40001: chain mismatch on upload).
/// - Otherwise it is a conflict: the common ancestor is the base (found in the save by turn
///   and chain hash; 40001 when the save does not hold it), the strategy picks the branch
///   that stays, the losing branch is archived whole (`reason = 'conflict'`), and the
///   response carries the conflict report.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_up(device_id: &str, sync_token: &str, request: JsonB) -> JsonB {
    crate::locks::connect_mut(|c| {
        let device = devices::authenticate(c, device_id, sync_token, F);
        let req = request::parse(&request.0).or_raise(F);
        let save_id = parse_uuid(&req.save_id, F);
        devices::check_owner(c, &device, save_id, F);
        let result = upload(c, Some(&device.device_id), save_id, &req, F);
        devices::saw_turn(c, device_id, result["head_turn"].as_i64());
        JsonB(result)
    })
}

/// `awf.sync_up` for an admin (`awf_admin`, or an admin key through the gateway): the same
/// upload, to any save, with no device (the audit rows and a conflict record name none; the
/// actor is the admin).
#[pg_extern(volatile, parallel_unsafe)]
fn sync_up_admin(request: JsonB) -> JsonB {
    const FA: &str = "sync_up_admin";
    crate::identity::require_admin(FA);
    crate::locks::connect_mut(|c| {
        let req = request::parse(&request.0).or_raise(FA);
        let save_id = parse_uuid(&req.save_id, FA);
        JsonB(upload(c, None, save_id, &req, FA))
    })
}

/// Locks the save and its session, then fast-forwards it or resolves the conflict.
fn upload(
    c: &mut SpiClient<'_>,
    device: Option<&str>,
    save_id: Uuid,
    req: &Request,
    f: &'static str,
) -> Value {
    let s = store::save_with_session_locked(c, save_id);
    if s.sealed && req.strategy == Strategy::ThreeWayMerge {
        raise(
            Error::invalid(
                "save is client-sealed: the server cannot read its states to merge them; \
                 use server_wins, client_wins or longest_chain (or merge on the device)",
            ),
            f,
        );
    }
    if req.base_turn == s.head_turn && req.base_chain == s.head_chain {
        fast_forward(c, device, &s, req)
    } else {
        resolve_conflict(c, device, &s, req)
    }
    .or_raise(f)
}

fn layout(s: &Save) -> Layout {
    Layout {
        origin_turn: s.origin_turn,
        snapshot_every: gucs::sync_snapshot_every(),
    }
}

fn fast_forward(
    c: &mut SpiClient<'_>,
    device: Option<&str>,
    s: &Save,
    req: &Request,
) -> Result<Value> {
    let head = store::head_state(c, s)?;
    if head.is_none() && !s.sealed {
        return Err(Error::invalid("the save holds no state to build on"));
    }
    let mut budget = gucs::budget();
    let turns = req.client_turns(head.as_ref(), gucs::sync_max_upload_turns(), &mut budget)?;
    let plans = branch::plan(layout(s), head.as_ref(), &s.head_chain, &turns, &mut budget)?;
    branch::check_claims(&turns, &plans)?;
    finish_fast_forward(c, device, s.save_id, turns, plans, 0)
}

/// Appends the device's planned turns on the save's head, hands the new head to the session,
/// audits; `already_held` counts the turns of the upload the save had already (a retry).
fn finish_fast_forward(
    c: &mut SpiClient<'_>,
    device: Option<&str>,
    save_id: Uuid,
    turns: Vec<ClientTurn>,
    plans: Vec<Planned>,
    already_held: usize,
) -> Result<Value> {
    let count = turns.len();
    let first = turns.first().map_or(0, |t| t.turn_id);
    let after = append(c, save_id, first, plans)?;
    sync_session(c, &after, last_state(turns).as_ref())?;
    let mut details = json!({"save_id": save_id.to_string(), "device_id": device,
                             "outcome": "fast_forward", "turns": count,
                             "head_turn": after.head_turn});
    let mut result = json!({
        "status": "fast_forward",
        "save_id": save_id.to_string(),
        "head_turn": after.head_turn,
        "head_chain": after.head_chain,
        "turns_applied": count,
    });
    if already_held > 0 {
        details["already_held"] = json!(already_held);
        result["already_held"] = json!(already_held);
    }
    audit::record(c, "sync_up", after.session_id, details);
    Ok(result)
}

/// The state of the last turn, for a JSON save.
fn last_state(turns: Vec<ClientTurn>) -> Option<Value> {
    match turns.into_iter().last()?.content {
        Content::State(v) => Some(v),
        Content::Sealed(_) => None,
    }
}

/// Puts a save's head state into its session (turn counters stay as they are); `known` is the
/// head's state when the caller has it (the last turn it appended), else it is looked up only
/// if the session does not hold it already.
fn sync_session(c: &mut SpiClient<'_>, s: &Save, known: Option<&Value>) -> Result<()> {
    let (Some(sid), Some(hash)) = (s.session_id, s.head_content_hash.as_deref()) else {
        return Ok(());
    };
    if s.sealed {
        return Ok(());
    }
    let held = crate::spi::run(
        c,
        "SELECT 1 FROM awf.sessions WHERE session_id = $1 AND state_hash = $2",
        Some(1),
        &[sid.into(), hash.into()],
    )
    .expect("select awf.sessions");
    if !held.is_empty() {
        return Ok(());
    }
    let looked_up;
    let state = match known {
        Some(state) => state,
        None => match store::head_state(c, s)? {
            Some(state) => {
                looked_up = state;
                &looked_up
            }
            None => return Ok(()),
        },
    };
    // As the owner, for the session of the save's own user only.
    audit::as_owner(c, |c| {
        crate::spi::run(
            c,
            "UPDATE awf.sessions SET state = $2, state_hash = $3, updated_at = now()
             WHERE session_id = $1 AND user_id_hash = $4",
            None,
            &[
                sid.into(),
                JsonB(state.clone()).into(),
                hash.into(),
                s.user_id_hash.as_str().into(),
            ],
        )
        .expect("update awf.sessions")
    });
    Ok(())
}

fn resolve_conflict(
    c: &mut SpiClient<'_>,
    device: Option<&str>,
    s: &Save,
    req: &Request,
) -> Result<Value> {
    let stale = || {
        Error::new(
            awf_core::ErrorKind::Conflict,
            format!(
                "stale base: save {} holds no turn {} with chain {} (its head is turn {}); sync down first",
                s.save_id, req.base_turn, req.base_chain, s.head_turn
            ),
        )
    };
    // The ancestor must be a stored turn: the origin holds no state to merge from. A sealed
    // save needs no ancestor state, and its first uploads are built on the origin.
    let oldest_base = if s.sealed {
        s.origin_turn
    } else {
        s.origin_turn + 1
    };
    if req.base_turn < oldest_base || req.base_turn > s.head_turn {
        return Err(stale());
    }
    if store::chain_at(c, s, req.base_turn).as_deref() != Some(req.base_chain.as_str()) {
        return Err(stale());
    }
    // The ancestor's state, for a JSON save (the branch is computed from it); a sealed save's
    // turns stand alone.
    let base_state = match s.sealed {
        true => None,
        false => match store::rebuild(c, s, req.base_turn)? {
            Rebuilt::State { state, .. } => Some(state),
            Rebuilt::Sealed { .. } => {
                return Err(Error::integrity("a JSON save holds a sealed turn"))
            }
        },
    };
    let mut budget = gucs::budget();
    let mut turns = req.client_turns(
        base_state.as_ref(),
        gucs::sync_max_upload_turns(),
        &mut budget,
    )?;
    let mut plans = branch::plan(
        layout(s),
        base_state.as_ref(),
        &req.base_chain,
        &turns,
        &mut budget,
    )?;
    // The turns the save already holds (same turn, same chain hash — a retried upload, or a
    // device that synced elsewhere) are shared history; the common ancestor is the last.
    let held = store::chains_after(c, s, req.base_turn, plans.len());
    let shared = branch::shared_prefix(&held, &plans);
    let ancestor_turn = req.base_turn + shared as i64;
    let (ancestor_state, ancestor_chain) = match shared {
        0 => (base_state, req.base_chain.clone()),
        k => (
            turns[k - 1].state().cloned(),
            plans[k - 1].chain_hash.clone(),
        ),
    };
    turns.drain(..shared);
    plans.drain(..shared);
    if turns.is_empty() {
        // Everything the device sent is already here: nothing to do, nothing to archive.
        return Ok(json!({
            "status": "up_to_date", "save_id": s.save_id.to_string(),
            "head_turn": s.head_turn, "head_chain": s.head_chain,
        }));
    }
    if ancestor_turn == s.head_turn {
        return finish_fast_forward(c, device, s.save_id, turns, plans, shared);
    }
    let client_tip = plans.last().expect("turns is non-empty");
    // A retry of an upload whose conflict was resolved already (its answer was lost): the same
    // branch, from the same ancestor, sits in the archive of a recorded conflict. Its report
    // again, rather than a second archive of it (or a second merge of it).
    let recorded = conflicts::ClientBranch {
        ancestor_turn,
        ancestor_chain: &ancestor_chain,
        tip_turn: ancestor_turn + plans.len() as i64,
        tip_chain: &client_tip.chain_hash,
    };
    if let Some(report) = conflicts::already_resolved(c, s.save_id, &recorded) {
        return Ok(json!({
            "status": "conflict", "save_id": s.save_id.to_string(),
            "head_turn": s.head_turn, "head_chain": s.head_chain,
            "conflict": report, "already_resolved": true,
        }));
    }
    let decision = decide::decide(
        Head {
            turn_id: s.head_turn,
            chain_hash: &s.head_chain,
        },
        ancestor_turn,
        &ancestor_chain,
        &turns,
        &plans,
        device,
        req.strategy,
    )?;
    let details = |side: &str| json!({"branch": side, "device_id": device, "strategy": req.strategy.as_str()});
    let mut merge_conflicts = None;
    // The new head's state when this side knows it (None: the server's head stays).
    let mut after_state: Option<Value> = None;
    let (archive_id, after) = match decision.winner {
        Winner::Server => {
            let id = archive_client_branch(
                c,
                s,
                ancestor_turn,
                &ancestor_chain,
                &plans,
                details("client"),
            )?;
            (id, store::save(c, s.save_id, true))
        }
        Winner::Client => {
            let id = restore::archive_tail(c, s, ancestor_turn + 1, "conflict", details("server"));
            if ancestor_turn == s.origin_turn {
                restore::set_head_to_origin(c, s);
            } else {
                let ancestor = store::rebuild(c, s, ancestor_turn)?;
                restore::set_head(c, s, &ancestor)?;
            }
            let first = turns[0].turn_id;
            after_state = last_state(turns);
            (id, append(c, s.save_id, first, plans)?)
        }
        Winner::Merge => {
            // Three-way merge from the ancestor; the merged state is a new turn on the server
            // branch. (A sealed save never gets here: `upload` refuses the merge strategy.)
            let no_state = || Error::invalid("the save holds no state to merge");
            let server_state = store::head_state(c, s)?.ok_or_else(no_state)?;
            let client_state = turns
                .last()
                .and_then(ClientTurn::state)
                .ok_or_else(no_state)?;
            let ancestor_state = ancestor_state.ok_or_else(no_state)?;
            let outcome = merge::merge(
                &ancestor_state,
                &server_state,
                client_state,
                req.merge_rule,
                &mut budget,
            )?;
            merge_conflicts =
                Some(serde_json::to_value(&outcome.conflicts).expect("conflicts serialize"));
            let id = archive_client_branch(
                c,
                s,
                ancestor_turn,
                &ancestor_chain,
                &plans,
                details("client"),
            )?;
            persist::persist(c, s, Some(&server_state), s.head_turn + 1, &outcome.merged)?;
            after_state = Some(outcome.merged);
            (id, store::save(c, s.save_id, true))
        }
    };
    sync_session(c, &after, after_state.as_ref())?;
    record_conflict(c, device, s, &after, &decision, archive_id, merge_conflicts)
}

/// Records a resolved conflict (its row, the counter, the audit row) and builds the answer.
fn record_conflict(
    c: &mut SpiClient<'_>,
    device: Option<&str>,
    s: &Save,
    after: &Save,
    decision: &Decision,
    archive_id: i64,
    merge_conflicts: Option<Value>,
) -> Result<Value> {
    let chosen = decision.winner.as_str();
    let strategy = decision.strategy.as_str();
    let mut report = decision.report(&s.save_id.to_string(), archive_id, merge_conflicts);
    // The report names its own conflict id: the id is drawn first, so the row is written once.
    let t = crate::audit::as_owner(c, |c| {
        crate::spi::run(
            c,
            "INSERT INTO awf.save_conflicts (conflict_id, save_id, device_id, strategy, chosen,
                                             archive_id, report)
             SELECT id, $1, $2, $3, $4, $5, $6 || jsonb_build_object('conflict_id', id)
             FROM (SELECT gen_random_uuid() AS id) g
             RETURNING conflict_id",
            Some(1),
            &[
                s.save_id.into(),
                device.into(),
                strategy.into(),
                chosen.into(),
                archive_id.into(),
                JsonB(report.clone()).into(),
            ],
        )
        .expect("insert into awf.save_conflicts")
    });
    let conflict_id: Uuid = col(&t.first(), 1);
    report["conflict_id"] = json!(conflict_id.to_string());
    audit::bump(c, "awf.sync.conflicts", 1);
    audit::record(
        c,
        "sync_conflict",
        after.session_id,
        json!({"save_id": s.save_id.to_string(), "device_id": device,
               "conflict_id": conflict_id.to_string(), "strategy": strategy,
               "chosen": chosen, "archive_id": archive_id}),
    );
    Ok(json!({
        "status": "conflict",
        "save_id": s.save_id.to_string(),
        "head_turn": after.head_turn,
        "head_chain": after.head_chain,
        "conflict": report,
    }))
}

/// The save id of a request (22P02 for one that is not a UUID).
fn parse_uuid(text: &str, f: &'static str) -> Uuid {
    let u = awf_core::ids::parse_uuid("request.save_id", text).or_raise(f);
    Uuid::from_bytes(*u.as_bytes())
}
