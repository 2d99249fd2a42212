//! Conflicts as an API: the resolver on its own, and statistics over resolved conflicts; and
//! the recorded conflicts a retried upload is recognized by.

use crate::audit;
use crate::errors::{raise, OrRaise};
use crate::jsonb::JsonB;
use crate::saves::store;
use awf_core::conflict::{self, Branch, Strategy};
use awf_core::Error;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::{json, Value};

/// The device branch of an upload, from its common ancestor with the save to its tip.
pub struct ClientBranch<'a> {
    pub ancestor_turn: i64,
    pub ancestor_chain: &'a str,
    pub tip_turn: i64,
    pub tip_chain: &'a str,
}

/// The report of the recorded conflict that archived exactly this branch (the server's branch
/// or a merge stayed): a retry of an upload whose answer was lost. Read as the owner, for the
/// locked save of the caller.
pub fn already_resolved(
    c: &mut SpiClient<'_>,
    save_id: Uuid,
    b: &ClientBranch<'_>,
) -> Option<Value> {
    audit::as_owner(c, |c| {
        crate::spi::one_json(
            c,
            "SELECT c.report FROM awf.save_archives a
                 JOIN awf.save_archive_turns t ON t.archive_id = a.archive_id AND t.turn_id = $3
                 JOIN awf.save_conflicts c ON c.archive_id = a.archive_id
                 WHERE a.save_id = $1 AND a.from_turn = $2 AND a.to_turn = $3
                   AND a.reason = 'conflict' AND a.base_chain = $4 AND t.chain_hash = $5
                   AND c.chosen <> 'client'
                 ORDER BY c.created_at DESC LIMIT 1",
            &[
                save_id.into(),
                (b.ancestor_turn + 1).into(),
                b.tip_turn.into(),
                b.ancestor_chain.into(),
                b.tip_chain.into(),
            ],
        )
    })
}

/// The seed's ConflictResolver: decides between `branches` (a JSON array of `{branch_id,
/// turn_id, chain_hash, device_id?, integrity_score?, length?, server?}`) by `strategy` and
/// returns `{save_id, strategy, resolution: {chosen_branch, archived_branches, reason}}`. It
/// changes no save data (`awf.sync_up` applies resolutions); the decision is audited.
#[pg_extern(volatile, parallel_unsafe)]
fn conflict_resolve(save_id: Uuid, branches: JsonB, strategy: &str) -> JsonB {
    const F: &str = "conflict_resolve";
    let strategy: Strategy = strategy.parse().or_raise(F);
    let branches: Vec<Branch> = serde_json::from_value(branches.0).unwrap_or_else(|e| {
        raise(
            Error::invalid(format!(
                "branches must be an array of {{branch_id, turn_id, chain_hash, ...}}: {e}"
            )),
            F,
        )
    });
    let resolution = conflict::resolve(&branches, strategy).or_raise(F);
    crate::locks::connect_mut(|c| {
        let s = store::save(c, save_id, false);
        let result = json!({
            "save_id": save_id.to_string(), "strategy": strategy.as_str(),
            "resolution": resolution,
        });
        audit::record(c, "conflict_resolve", s.session_id, result.clone());
        JsonB(result)
    })
}
