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
use crate::sync::{conflicts, devices};
use awf_core::conflict::{self, Branch, Strategy};
use awf_core::save::{self, Planned, Rebuilt};
use awf_core::{merge, patch, Budget, Error, Result};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::{json, Value};

const F: &str = "sync_up";

/// What one uploaded turn holds.
enum Content {
    /// The state, computed on the device's branch (a JSON save).
    State(Value),
    /// The bytes the device sealed (a client-sealed save): stored, hashed and chained as they
    /// are, never read.
    Sealed(Vec<u8>),
}

/// One uploaded turn.
struct ClientTurn {
    turn_id: i64,
    content: Content,
    /// The chain hash the device computed, when it sent one.
    claimed_chain: Option<String>,
}

impl ClientTurn {
    fn state(&self) -> Option<&Value> {
        match &self.content {
            Content::State(v) => Some(v),
            Content::Sealed(_) => None,
        }
    }
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

/// Reads the device's turns. For a JSON save (`ancestor` is the ancestor's state) each turn
/// carries a full `state` or a `patch` (RFC 6902) from the previous one, and the states are
/// computed turn by turn; for a client-sealed save (`ancestor` is None) each carries
/// `sealed_hex`, the bytes the device sealed. Every state is kept until the branch is
/// planned, so each one is charged as built: a thousand empty patches on a large state would
/// otherwise hold a thousand free copies of it.
fn client_turns(
    req: &Request,
    ancestor: Option<&Value>,
    budget: &mut Budget,
) -> Result<Vec<ClientTurn>> {
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
        let Some(ancestor) = ancestor else {
            out.push(ClientTurn {
                turn_id,
                content: Content::Sealed(sealed_bytes(t, budget).map_err(at)?),
                claimed_chain: claimed_chain(t),
            });
            continue;
        };
        if t.get("sealed_hex").is_some() {
            return Err(at(Error::invalid(
                "this save is not client-sealed: send \"state\" or \"patch\", not \"sealed_hex\"",
            )));
        }
        let state = match (t.get("state"), t.get("patch")) {
            (Some(s), None) if s.is_object() => {
                awf_core::json::check_state_depth(s).map_err(at)?;
                budget.build_copy_of(s).map_err(at)?;
                s.clone()
            }
            (None, Some(p)) => {
                let prev = out.last().and_then(ClientTurn::state).unwrap_or(ancestor);
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
        out.push(ClientTurn {
            turn_id,
            content: Content::State(state),
            claimed_chain: claimed_chain(t),
        });
    }
    Ok(out)
}

fn claimed_chain(t: &Value) -> Option<String> {
    t.get("chain_hash")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
}

/// The bytes of a sealed turn (`sealed_hex`, and nothing that the server would have to read).
fn sealed_bytes(t: &Value, budget: &mut Budget) -> Result<Vec<u8>> {
    if t.get("state").is_some() || t.get("patch").is_some() {
        return Err(Error::invalid(
            "this save is client-sealed: send \"sealed_hex\" (the bytes the device sealed), not \"state\" or \"patch\"",
        ));
    }
    let hex = t
        .get("sealed_hex")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("\"sealed_hex\" must be a hex string"))?;
    budget.build(1, hex.len() as u64 / 2)?;
    let bytes = hex::decode(hex)
        .map_err(|_| Error::invalid("\"sealed_hex\" must be hex digits, two per byte"))?;
    if bytes.is_empty() {
        return Err(Error::invalid("\"sealed_hex\" must not be empty"));
    }
    Ok(bytes)
}

/// Plans the device's branch from the ancestor (blobs not written yet); `ancestor` is the
/// ancestor's state (None for a sealed save).
fn plan_branch(
    s: &Save,
    ancestor: Option<&Value>,
    ancestor_chain: &str,
    turns: &[ClientTurn],
    budget: &mut Budget,
) -> Result<Vec<Planned>> {
    let mut prev_state = ancestor;
    let mut prev_chain = ancestor_chain.to_owned();
    let mut plans = Vec::with_capacity(turns.len());
    for t in turns {
        let p = match &t.content {
            Content::State(state) => {
                let base = save::base_every(t.turn_id, s.origin_turn, gucs::sync_snapshot_every());
                let p = save::plan(prev_state, &prev_chain, t.turn_id, state, base, budget)?;
                prev_state = Some(state);
                p
            }
            Content::Sealed(bytes) => save::plan_sealed(&prev_chain, t.turn_id, bytes),
        };
        prev_chain = p.chain_hash.clone();
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

/// Persists the turns one after the other on the save's head, whose state is `head` (None
/// for a sealed save).
fn append(
    c: &mut SpiClient<'_>,
    save_id: Uuid,
    head: Option<&Value>,
    turns: &[ClientTurn],
) -> Result<Save> {
    let s = store::save(c, save_id, true);
    if s.sealed {
        let sealed: Vec<(i64, &[u8])> = turns
            .iter()
            .filter_map(|t| match &t.content {
                Content::Sealed(b) => Some((t.turn_id, b.as_slice())),
                Content::State(_) => None,
            })
            .collect();
        persist::persist_sealed_many(c, &s, &sealed)?;
    } else {
        let states: Vec<(i64, &Value)> = turns
            .iter()
            .filter_map(|t| t.state().map(|v| (t.turn_id, v)))
            .collect();
        persist::persist_many(c, &s, head, &states)?;
    }
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
    let head = head.as_ref();
    let mut budget = gucs::budget();
    let turns = client_turns(req, head, &mut budget)?;
    let plans = plan_branch(s, head, &s.head_chain, &turns, &mut budget)?;
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
    finish_fast_forward(c, device, s.save_id, head, &turns, 0)
}

/// Appends the device's turns on the save's head (whose state is `head`), hands the new head
/// to the session, audits; `already_held` counts the turns of the upload the save had already
/// (a retry).
fn finish_fast_forward(
    c: &mut SpiClient<'_>,
    device: Option<&str>,
    save_id: Uuid,
    head: Option<&Value>,
    turns: &[ClientTurn],
    already_held: usize,
) -> Result<Value> {
    let after = append(c, save_id, head, turns)?;
    sync_session(c, &after, turns.last().and_then(ClientTurn::state))?;
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
    let mut turns = client_turns(req, base_state.as_ref(), &mut budget)?;
    let mut plans = plan_branch(s, base_state.as_ref(), &req.base_chain, &turns, &mut budget)?;
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
        return finish_fast_forward(
            c,
            device,
            s.save_id,
            ancestor_state.as_ref(),
            &turns,
            shared,
        );
    }
    let client_tip = plans.last().expect("turns is non-empty");
    // A retry of an upload whose conflict was resolved already (its answer was lost): the same
    // branch, from the same ancestor, sits in the archive of a recorded conflict. Its report
    // again, rather than a second archive of it (or a second merge of it).
    let branch = conflicts::ClientBranch {
        ancestor_turn,
        ancestor_chain: &ancestor_chain,
        tip_turn: ancestor_turn + plans.len() as i64,
        tip_chain: &client_tip.chain_hash,
    };
    if let Some(report) = conflicts::already_resolved(c, s.save_id, &branch) {
        return Ok(json!({
            "status": "conflict", "save_id": s.save_id.to_string(),
            "head_turn": s.head_turn, "head_chain": s.head_chain,
            "conflict": report, "already_resolved": true,
        }));
    }
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
    // The new head's state when this side knows it (None: the server's head stays).
    let mut after_state: Option<Value> = None;
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
        if ancestor_turn == s.origin_turn {
            restore::set_head_to_origin(c, s);
        } else {
            let ancestor = store::rebuild(c, s, ancestor_turn)?;
            restore::set_head(c, s, &ancestor)?;
        }
        let after = append(c, s.save_id, ancestor_state.as_ref(), &turns)?;
        after_state = turns.last().and_then(ClientTurn::state).cloned();
        ("client", id, after)
    } else {
        // Three-way merge from the ancestor; the merged state is a new turn on the server branch.
        // (A sealed save never gets here: `upload` refuses the merge strategy for it.)
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
        merge_conflicts = serde_json::to_value(&outcome.conflicts).expect("conflicts serialize");
        let id = archive_client_branch(
            c,
            s,
            ancestor_turn,
            &ancestor_chain,
            &plans,
            details("client"),
        )?;
        let merged = ClientTurn {
            turn_id: s.head_turn + 1,
            content: Content::State(outcome.merged),
            claimed_chain: None,
        };
        let after = append(
            c,
            s.save_id,
            Some(&server_state),
            std::slice::from_ref(&merged),
        )?;
        after_state = merged.state().cloned();
        ("merge", id, after)
    };
    sync_session(c, &after, after_state.as_ref())?;
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
        crate::spi::run(c,

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
        crate::spi::run(
            c,
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
        &crate::spi::run(c, "SELECT $1::uuid", Some(1), &[text.into()])
            .expect("uuid cast")
            .first(),
        1,
    )
}
