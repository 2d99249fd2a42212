//! `awf.sync_down`: what a device needs to catch up with a save.

use crate::audit;
use crate::errors::OrRaise;
use crate::jsonb::JsonB;
use crate::saves::blobs;
use crate::saves::store::{self, TurnRow};
use crate::sync::devices;
use awf_core::save::{Kind, Rebuilt};
use awf_core::{json as awf_json, Error, Result};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::{json, Value};

const F: &str = "sync_down";

/// One stored turn as a device receives it: its hashes, and its content (a diff's patch, a
/// base's state, or a sealed turn's bytes in hex).
fn turn_json(c: &mut SpiClient<'_>, r: &TurnRow) -> Result<Value> {
    let plain = blobs::load(c, &r.blob_hash, &r.key_id)?;
    let mut t = json!({
        "turn_id": r.turn_id, "kind": r.kind.as_str(),
        "content_hash": r.content_hash, "chain_hash": r.chain_hash,
    });
    match r.kind {
        Kind::Diff => t["patch"] = awf_json::parse(&plain)?,
        Kind::Base => t["state"] = awf_json::parse(&plain)?,
        Kind::Sealed => t["sealed_hex"] = json!(hex::encode(&plain)),
    }
    Ok(t)
}

/// The turns after `since_turn` with their chain hashes, so the device can verify them from
/// the chain hash it holds for `since_turn` (`prev_chain` in the response; at a sealed save's
/// origin, the origin's chain hash). When the device is behind the oldest kept turn (a device
/// that holds nothing asks with the smallest bigint), the response starts with a `base` (the
/// state of the latest base turn, in full) followed by the diffs after it. A device ahead of the save gets no turns
/// and `"ahead": true` (it should sync up). `sealed` says whether the save is client-sealed
/// (its turns carry `sealed_hex`); a save that holds no turn yet answers with no turns, and its
/// head is the origin a first device starts from. Records the device's `last_turn_seen`.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_down(device_id: &str, sync_token: &str, save_id: Uuid, since_turn: i64) -> JsonB {
    crate::locks::connect_mut(|c| {
        let device = devices::authenticate(c, device_id, sync_token, F);
        devices::check_owner(c, &device, save_id, F);
        let (out, s) = answer(c, save_id, since_turn);
        devices::saw_turn(c, device_id, Some(s.head_turn));
        record(c, &out, &s, Some(device_id));
        JsonB(out)
    })
}

/// `awf.sync_down` for an admin (`awf_admin`, or an admin key through the gateway): the same
/// answer for any save, with no device to record; audited with the admin as the actor.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_down_admin(save_id: Uuid, since_turn: i64) -> JsonB {
    crate::identity::require_admin("sync_down_admin");
    crate::locks::connect_mut(|c| {
        let (out, s) = answer(c, save_id, since_turn);
        record(c, &out, &s, None);
        JsonB(out)
    })
}

fn record(c: &mut SpiClient<'_>, out: &Value, s: &store::Save, device_id: Option<&str>) {
    audit::record(
        c,
        "sync_down",
        s.session_id,
        json!({"save_id": s.save_id.to_string(), "device_id": device_id,
               "since_turn": out["since_turn"], "head_turn": s.head_turn,
               "turns": out["turns"].as_array().map_or(0, Vec::len),
               "with_base": out.get("base").is_some()}),
    );
}

/// The answer for `since_turn`, read under a share lock on the save.
fn answer(c: &mut SpiClient<'_>, save_id: Uuid, since_turn: i64) -> (Value, store::Save) {
    // FOR SHARE first, then read: a restore or retention cannot move turns between the
    // read of the head and the read of the turns.
    crate::saves::store::lock_save(c, save_id, true);
    let s = store::save(c, save_id, false);
    // Every answer has `prev_chain`: the server's chain hash of `since_turn`, the link the
    // device checks its next turn against; null when the server has no such turn (the
    // device is ahead, or behind the oldest kept turn and gets a base instead).
    let mut out = json!({
        "save_id": save_id.to_string(), "head_turn": s.head_turn, "head_chain": s.head_chain,
        "since_turn": since_turn, "prev_chain": null, "turns": [], "sealed": s.sealed,
    });
    if since_turn > s.head_turn {
        out["ahead"] = json!(true);
    } else if since_turn == s.head_turn {
        out["prev_chain"] = json!(s.head_chain);
    } else if since_turn < s.origin_turn && s.head_turn == s.origin_turn {
        // Nothing is kept after the origin: there is nothing to send.
    } else if s.head_turn > s.origin_turn
        && (since_turn < s.origin_turn || (since_turn == s.origin_turn && !s.sealed))
    {
        // (At the origin of a JSON save the first stored turn is a base anyway, so the answer
        // starts there as it always has; a sealed save's device at its origin gets the turns,
        // which it can verify link by link.)
        // Behind the oldest kept turn: a full base, then the diffs after it.
        let rows = store::turns(c, save_id, s.origin_turn + 1, s.head_turn);
        let start = rows.iter().rposition(|r| r.kind != Kind::Diff).unwrap_or(0);
        let base = match store::rebuild(c, &s, rows[start].turn_id).or_raise(F) {
            Rebuilt::State {
                state,
                turn_id,
                content_hash,
                ..
            } => json!({
                "turn_id": turn_id, "state": state, "content_hash": content_hash,
                "chain_hash": rows[start].chain_hash,
            }),
            Rebuilt::Sealed {
                bytes,
                turn_id,
                content_hash,
            } => json!({
                "turn_id": turn_id, "sealed_hex": hex::encode(&bytes), "content_hash": content_hash,
                "chain_hash": rows[start].chain_hash,
            }),
        };
        let turns: Vec<Value> = rows[start + 1..]
            .iter()
            .map(|r| turn_json(c, r))
            .collect::<Result<_>>()
            .or_raise(F);
        out["base"] = base;
        out["turns"] = Value::Array(turns);
    } else if since_turn < s.head_turn {
        let rows = store::turns(c, save_id, since_turn + 1, s.head_turn);
        let prev = if since_turn == s.origin_turn {
            s.origin_chain.clone()
        } else {
            store::turns(c, save_id, since_turn, since_turn)
                .first()
                .map(|r| r.chain_hash.clone())
                .ok_or_else(|| Error::integrity(format!("turn {since_turn} is missing")))
                .or_raise(F)
        };
        let turns: Vec<Value> = rows
            .iter()
            .map(|r| turn_json(c, r))
            .collect::<Result<_>>()
            .or_raise(F);
        out["prev_chain"] = json!(prev);
        out["turns"] = Value::Array(turns);
    }
    (out, s)
}
