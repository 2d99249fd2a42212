//! `awf.sync_up`: a device uploads the turns it played on top of a base it had.

use crate::audit;
use crate::errors::{raise, OrRaise};
use crate::gucs;
use crate::jsonb::JsonB;
use crate::saves::persist;
use crate::saves::restore;
use crate::saves::store::{self, Save};
use crate::saves::{blobs, keys};
use crate::store::col;
use crate::sync::devices;
use awf_core::conflict::{self, Branch, Strategy};
use awf_core::save::{self, Planned, Rebuilt};
use awf_core::{merge, patch, Budget, Error, Result};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::{json, Value};

const F: &str = "sync_up";

/// One uploaded turn, with its state computed on the device's branch.
struct ClientTurn {
    turn_id: i64,
    state: Value,
    /// The chain hash the device computed, when it sent one.
    claimed_chain: Option<String>,
}

/// The parsed request.
struct Request {
    save_id: String,
    base_turn: i64,
    base_chain: String,
    turns: Vec<Value>,
    strategy: Strategy,
    merge_rule: merge::MergeRule,
}

fn parse(request: &Value) -> Result<Request> {
    let obj = request
        .as_object()
        .ok_or_else(|| Error::invalid("a sync request must be a JSON object"))?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str);
    let save_id = text("save_id")
        .ok_or_else(|| Error::invalid("request.save_id must be a UUID"))?
        .to_owned();
    let base_turn = obj
        .get("base_turn")
        .and_then(Value::as_i64)
        .ok_or_else(|| Error::invalid("request.base_turn must be an integer"))?;
    let base_chain = text("base_chain")
        .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| Error::invalid("request.base_chain must be a 64-hex chain hash"))?
        .to_ascii_lowercase();
    let turns = obj
        .get("turns")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::invalid("request.turns must be a non-empty array"))?
        .clone();
    let strategy = match text("strategy") {
        Some(s) => s.parse()?,
        None => Strategy::LongestChain,
    };
    let merge_rule = match text("merge_rule") {
        Some(r) => r.parse()?,
        None => merge::MergeRule::Ours,
    };
    Ok(Request {
        save_id,
        base_turn,
        base_chain,
        turns,
        strategy,
        merge_rule,
    })
}

/// Computes the device's states turn by turn from the ancestor's state: each turn carries a
/// full `state` or a `patch` (RFC 6902) from the previous one. Every state is kept until the
/// branch is planned, so each one is charged as built: a thousand empty patches on a large
/// state would otherwise hold a thousand free copies of it.
fn client_turns(req: &Request, ancestor: &Value, budget: &mut Budget) -> Result<Vec<ClientTurn>> {
    // Each turn costs a blob and a row: past a few thousand, one request outlasts any sane
    // statement timeout while holding the save's lock.
    if req.turns.len() > gucs::sync_max_upload_turns() {
        return Err(Error::limit(format!(
            "the request carries {} turns, over awf.sync_max_upload_turns = {}; upload them in parts",
            req.turns.len(),
            gucs::sync_max_upload_turns()
        )));
    }
    let mut out: Vec<ClientTurn> = Vec::with_capacity(req.turns.len());
    for (i, t) in req.turns.iter().enumerate() {
        let turn_id = t.get("turn_id").and_then(Value::as_i64).ok_or_else(|| {
            Error::invalid(format!("request.turns[{i}].turn_id must be an integer"))
        })?;
        let expected = req.base_turn + 1 + i as i64;
        if turn_id != expected {
            return Err(Error::invalid(format!(
                "request.turns[{i}] is turn {turn_id}, expected {expected} (turns follow base_turn {} in order)",
                req.base_turn
            )));
        }
        let at = |e: Error| {
            Error::new(
                e.kind,
                format!("request.turns[{i}] (turn {turn_id}): {}", e.message),
            )
        };
        let state = match (t.get("state"), t.get("patch")) {
            (Some(s), None) if s.is_object() => {
                awf_core::json::check_state_depth(s).map_err(at)?;
                budget.build_copy_of(s).map_err(at)?;
                s.clone()
            }
            (None, Some(p)) => {
                let prev = out.last().map_or(ancestor, |c| &c.state);
                budget.build_copy_of(prev).map_err(at)?;
                let state = patch::apply(prev, p, budget).map_err(at)?;
                if !state.is_object() {
                    return Err(at(Error::invalid(
                        "the patch must leave the state an object",
                    )));
                }
                awf_core::json::check_state_depth(&state).map_err(at)?;
                state
            }
            _ => {
                return Err(Error::invalid(format!(
                    "request.turns[{i}] needs exactly one of \"state\" (an object) or \"patch\""
                )))
            }
        };
        let claimed_chain = t
            .get("chain_hash")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        out.push(ClientTurn {
            turn_id,
            state,
            claimed_chain,
        });
    }
    Ok(out)
}

/// Plans the device's branch from the ancestor (blobs not written yet).
fn plan_branch(
    s: &Save,
    ancestor: &Value,
    ancestor_chain: &str,
    turns: &[ClientTurn],
    budget: &mut Budget,
) -> Result<Vec<Planned>> {
    let mut prev_state = ancestor;
    let mut prev_chain = ancestor_chain.to_owned();
    let mut plans = Vec::with_capacity(turns.len());
    for t in turns {
        let base = save::base_every(t.turn_id, s.origin_turn, gucs::sync_snapshot_every());
        let p = save::plan(
            Some(prev_state),
            &prev_chain,
            t.turn_id,
            &t.state,
            base,
            budget,
        )?;
        prev_chain = p.chain_hash.clone();
        prev_state = &t.state;
        plans.push(p);
    }
    Ok(plans)
}

/// Share of the device's claimed chain hashes that match what the server computes (1 when
/// it claimed none).
fn integrity_score(turns: &[ClientTurn], plans: &[Planned]) -> f64 {
    let claimed: Vec<_> = turns
        .iter()
        .zip(plans)
        .filter_map(|(t, p)| t.claimed_chain.as_ref().map(|c| c == &p.chain_hash))
        .collect();
    if claimed.is_empty() {
        1.0
    } else {
        claimed.iter().filter(|ok| **ok).count() as f64 / claimed.len() as f64
    }
}

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
        c
        .update(
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
        c.update(
            "UPDATE awf.saves SET bytes_stored = bytes_stored + $2 WHERE save_id = $1",
            None,
            &[s.save_id.into(), added.into()],
        )
        .expect("update awf.saves")
    });
    for ((i, p), blob) in plans.iter().enumerate().zip(&encoded) {
        blobs::write(c, blob);
        crate::audit::as_owner(c, |c| {
            c.update(
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

/// Persists states one after the other on the save's head.
fn append(c: &mut SpiClient<'_>, save_id: Uuid, states: &[(i64, &Value)]) -> Result<Save> {
    let s = store::save(c, save_id, true);
    persist::persist_many(c, &s, states)?;
    Ok(store::save(c, save_id, true))
}

/// Uploads a device's turns. The request: `{save_id, base_turn, base_chain, turns: [{turn_id,
/// state | patch, chain_hash?}], strategy?, merge_rule?}`.
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
        let req = parse(&request.0).or_raise(F);
        let save_id = parse_uuid(c, &req.save_id);
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
        let req = parse(&request.0).or_raise(FA);
        let save_id = parse_uuid(c, &req.save_id);
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
    if s.sealed {
        raise(
            Error::invalid("sync_up carries JSON states; this save is client-sealed"),
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

fn fast_forward(
    c: &mut SpiClient<'_>,
    device: Option<&str>,
    s: &Save,
    req: &Request,
) -> Result<Value> {
    let head = s
        .head_state
        .clone()
        .ok_or_else(|| Error::invalid("the save holds no state to build on"))?;
    let mut budget = gucs::budget();
    let turns = client_turns(req, &head, &mut budget)?;
    let plans = plan_branch(s, &head, &s.head_chain, &turns, &mut budget)?;
    if let Some((t, p)) = turns
        .iter()
        .zip(&plans)
        .find(|(t, p)| t.claimed_chain.as_ref().is_some_and(|c| c != &p.chain_hash))
    {
        return Err(Error::new(
            awf_core::ErrorKind::Conflict,
            format!(
                "chain mismatch on upload at turn {}: the device computed {}, the server {}",
                t.turn_id,
                t.claimed_chain.as_deref().unwrap_or(""),
                p.chain_hash
            ),
        ));
    }
    finish_fast_forward(c, device, s.save_id, &turns, 0)
}

/// Appends the device's turns on the save's head, hands the new head to the session, audits;
/// `already_held` counts the turns of the upload the save had already (a retry).
fn finish_fast_forward(
    c: &mut SpiClient<'_>,
    device: Option<&str>,
    save_id: Uuid,
    turns: &[ClientTurn],
    already_held: usize,
) -> Result<Value> {
    let states: Vec<(i64, &Value)> = turns.iter().map(|t| (t.turn_id, &t.state)).collect();
    let after = append(c, save_id, &states)?;
    sync_session(c, &after)?;
    let mut details = json!({"save_id": save_id.to_string(), "device_id": device,
                             "outcome": "fast_forward", "turns": turns.len(),
                             "head_turn": after.head_turn});
    let mut result = json!({
        "status": "fast_forward",
        "save_id": save_id.to_string(),
        "head_turn": after.head_turn,
        "head_chain": after.head_chain,
        "turns_applied": turns.len(),
    });
    if already_held > 0 {
        details["already_held"] = json!(already_held);
        result["already_held"] = json!(already_held);
    }
    audit::record(c, "sync_up", after.session_id, details);
    Ok(result)
}

/// Puts a save's head state into its session (turn counters stay as they are).
fn sync_session(c: &mut SpiClient<'_>, s: &Save) -> Result<()> {
    if let (Some(sid), Some(state)) = (s.session_id, &s.head_state) {
        let hash = awf_core::canonical::content_hash(state)?;
        // As the owner, for the session of the save's own user only.
        audit::as_owner(c, |c| {
            c.update(
                "UPDATE awf.sessions SET state = $2, state_hash = $3, updated_at = now()
                 WHERE session_id = $1 AND state_hash <> $3 AND user_id_hash = $4",
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
    }
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
    // The ancestor must be a stored turn (the origin itself holds no state to merge from).
    if req.base_turn <= s.origin_turn || req.base_turn > s.head_turn {
        return Err(stale());
    }
    if store::chain_at(c, s, req.base_turn).as_deref() != Some(req.base_chain.as_str()) {
        return Err(stale());
    }
    let base_state = match store::rebuild(c, s, req.base_turn)? {
        Rebuilt::State { state, .. } => state,
        Rebuilt::Sealed { .. } => return Err(Error::invalid("the common ancestor is sealed")),
    };
    let mut budget = gucs::budget();
    let mut turns = client_turns(req, &base_state, &mut budget)?;
    let mut plans = plan_branch(s, &base_state, &req.base_chain, &turns, &mut budget)?;
    // Walk the device's turns along the save's lineage: the turns the save already holds
    // (same turn, same chain hash — a retried upload, or a device that synced elsewhere) are
    // shared history, and the common ancestor is the last of them.
    let mut shared = 0;
    while shared < plans.len()
        && store::chain_at(c, s, req.base_turn + 1 + shared as i64).as_deref()
            == Some(plans[shared].chain_hash.as_str())
    {
        shared += 1;
    }
    let ancestor_turn = req.base_turn + shared as i64;
    let (ancestor_state, ancestor_chain) = match shared {
        0 => (base_state, req.base_chain.clone()),
        k => (turns[k - 1].state.clone(), plans[k - 1].chain_hash.clone()),
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
        return finish_fast_forward(c, device, s.save_id, &turns, shared);
    }
    let client_tip = plans.last().expect("turns is non-empty");
    let server_branch = Branch {
        branch_id: format!("server-{}", &s.head_chain[..16]),
        turn_id: s.head_turn,
        chain_hash: s.head_chain.clone(),
        device_id: None,
        integrity_score: 1.0,
        length: s.head_turn - ancestor_turn,
        server: true,
    };
    let client_branch = Branch {
        branch_id: format!("client-{}", &client_tip.chain_hash[..16]),
        turn_id: ancestor_turn + plans.len() as i64,
        chain_hash: client_tip.chain_hash.clone(),
        device_id: device.map(str::to_owned),
        integrity_score: integrity_score(&turns, &plans),
        length: plans.len() as i64,
        server: false,
    };
    let branches = [server_branch.clone(), client_branch.clone()];
    let resolution = conflict::resolve(&branches, req.strategy)?;
    let details = |side: &str| json!({"branch": side, "device_id": device, "strategy": req.strategy.as_str()});
    let mut merge_conflicts = Value::Null;
    let (chosen, archive_id, after) = if resolution.chosen_branch == server_branch.branch_id {
        let id = archive_client_branch(
            c,
            s,
            ancestor_turn,
            &ancestor_chain,
            &plans,
            details("client"),
        )?;
        ("server", id, store::save(c, s.save_id, true))
    } else if resolution.chosen_branch == client_branch.branch_id {
        let id = restore::archive_tail(c, s, ancestor_turn + 1, "conflict", details("server"));
        let ancestor = store::rebuild(c, s, ancestor_turn)?;
        restore::set_head(c, s, &ancestor)?;
        let states: Vec<(i64, &Value)> = turns.iter().map(|t| (t.turn_id, &t.state)).collect();
        let after = append(c, s.save_id, &states)?;
        ("client", id, after)
    } else {
        // Three-way merge from the ancestor; the merged state is a new turn on the server branch.
        let server_state = s
            .head_state
            .clone()
            .ok_or_else(|| Error::invalid("the save holds no head state"))?;
        let client_state = &turns.last().expect("non-empty").state;
        let outcome = merge::merge(
            &ancestor_state,
            &server_state,
            client_state,
            req.merge_rule,
            &mut budget,
        )?;
        merge_conflicts = serde_json::to_value(&outcome.conflicts).expect("conflicts serialize");
        let id = archive_client_branch(
            c,
            s,
            ancestor_turn,
            &ancestor_chain,
            &plans,
            details("client"),
        )?;
        let after = append(c, s.save_id, &[(s.head_turn + 1, &outcome.merged)])?;
        ("merge", id, after)
    };
    sync_session(c, &after)?;
    let archived = if chosen == "client" {
        &server_branch
    } else {
        &client_branch
    };
    let mut report = json!({
        "save_id": s.save_id.to_string(),
        "ancestor": {"turn_id": ancestor_turn, "chain_hash": ancestor_chain},
        "branches": [server_branch, client_branch],
        "resolution": {
            "strategy": req.strategy.as_str(),
            "chosen_branch": resolution.chosen_branch,
            "archived_branch": archived.branch_id,
            "archive_id": archive_id,
            "reason": resolution.reason,
        },
    });
    if chosen == "merge" {
        report["merge_conflicts"] = merge_conflicts;
    }
    let t = crate::audit::as_owner(c, |c| {
        c
        .update(
            "INSERT INTO awf.save_conflicts (save_id, device_id, strategy, chosen, archive_id, report)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING conflict_id",
            Some(1),
            &[
                s.save_id.into(),
                device.into(),
                req.strategy.as_str().into(),
                chosen.into(),
                archive_id.into(),
                JsonB(report.clone()).into(),
            ],
        )
        .expect("insert into awf.save_conflicts")
    });
    let conflict_id: Uuid = col(&t.first(), 1);
    report["conflict_id"] = json!(conflict_id.to_string());
    crate::audit::as_owner(c, |c| {
        c.update(
            "UPDATE awf.save_conflicts SET report = $2 WHERE conflict_id = $1",
            None,
            &[conflict_id.into(), JsonB(report.clone()).into()],
        )
        .expect("update awf.save_conflicts")
    });
    audit::bump(c, "awf.sync.conflicts", 1);
    audit::record(
        c,
        "sync_conflict",
        after.session_id,
        json!({"save_id": s.save_id.to_string(), "device_id": device,
               "conflict_id": conflict_id.to_string(), "strategy": req.strategy.as_str(),
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

/// Parses a UUID the way PostgreSQL does (22P02 for bad text).
pub fn parse_uuid(c: &mut SpiClient<'_>, text: &str) -> Uuid {
    col(
        &c.update("SELECT $1::uuid", Some(1), &[text.into()])
            .expect("uuid cast")
            .first(),
        1,
    )
}
