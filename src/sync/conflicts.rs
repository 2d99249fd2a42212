//! Conflicts as an API: the resolver on its own, and statistics over resolved conflicts.

use crate::audit;
use crate::errors::{raise, OrRaise};
use crate::jsonb::JsonB;
use crate::saves::store;
use awf_core::conflict::{self, Branch, Strategy};
use awf_core::Error;
use pgrx::prelude::*;
use pgrx::Uuid;
use serde_json::json;

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
