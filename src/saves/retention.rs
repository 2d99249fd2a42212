//! `awf.retention_enforce()`: one call applies every retention setting without ever breaking
//! a chain.

use crate::audit;
use crate::errors::OrRaise;
use crate::gucs;
use crate::jsonb::JsonB;
use crate::saves::store::{self, Save};
use crate::saves::{persist, privacy};
use crate::spi::col;
use awf_core::Result;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::json;

/// Applies the retention settings:
/// - saves untouched (`updated_at`) for `awf.sync_retention_days` are deleted as
///   `awf.save_delete(save_id, 'retention')` deletes them: tombstoned, blobs no other save
///   uses purged, audit details redacted;
/// - save history older than `awf.sync_retention_days` is pruned, always keeping the head;
///   the first kept turn is re-based (stored as a base) when it was a diff, and the save's
///   origin moves to the last pruned turn with that turn's chain hash, so every kept turn
///   still materializes and verifies;
/// - archives older than `awf.sync_retention_days` are deleted;
/// - snapshots by `awf.snapshot_max_age_days` / `awf.snapshot_max_count`
///   (`awf.snapshot_prune()`), and applied WAL entries by `awf.wal_max_age_days`
///   (`awf.wal_cleanup()`);
/// - blobs no turn or archive uses any more are deleted.
///
/// Returns the counts; audited. Admin only.
#[pg_extern(volatile, parallel_unsafe)]
fn retention_enforce() -> JsonB {
    const F: &str = "retention_enforce";
    crate::identity::require_admin(F);
    let days = gucs::sync_retention_days();
    crate::locks::connect_mut(|c| {
        // As the owner: only admins get here (checked above), and the gateway's login has no
        // DML on the tables, whatever key it presented.
        let _owner = crate::audit::AsOwner::enter(c);
        // Whole saves first, so none of them is re-based only to be deleted.
        let stale: Vec<Uuid> = crate::spi::run(
            c,
            "SELECT save_id FROM awf.saves
                 WHERE updated_at < now() - make_interval(days => $1) ORDER BY 1",
            None,
            &[days.into()],
        )
        .expect("select stale saves")
        .map(|r| r.get::<Uuid>(1).unwrap().unwrap())
        .collect();
        let saves: Vec<Uuid> = crate::spi::run(
            c,
            "SELECT DISTINCT d.save_id FROM awf.save_diffs d JOIN awf.saves s USING (save_id)
                 WHERE d.created_at < now() - make_interval(days => $1) AND d.turn_id < s.head_turn
                 ORDER BY 1",
            None,
            &[days.into()],
        )
        .expect("select prunable saves")
        .map(|r| r.get::<Uuid>(1).unwrap().unwrap())
        .collect();
        // Every row lock first (sessions, then saves: turn_submit's order), and only then any
        // audit row: its chain lock is held to commit, so nothing may be waited on after it.
        let mut all: Vec<Uuid> = stale.iter().chain(&saves).copied().collect();
        all.sort_unstable_by_key(|u| u.as_bytes().to_owned());
        all.dedup();
        let candidates = stale;
        crate::spi::run(
            c,
            "SELECT 1 FROM awf.sessions WHERE session_id IN
               (SELECT session_id FROM awf.saves WHERE save_id = ANY($1))
             ORDER BY session_id FOR UPDATE",
            None,
            &[all.clone().into()],
        )
        .expect("lock sessions");
        crate::spi::run(
            c,
            "SELECT 1 FROM awf.saves WHERE save_id = ANY($1) ORDER BY save_id FOR UPDATE",
            None,
            &[all.into()],
        )
        .expect("lock saves");
        // Staleness again, under the locks: a save a player touched while this waited is
        // not stale any more (a fresh statement sees the committed touch).
        let stale: Vec<Uuid> = crate::spi::run(
            c,
            "SELECT save_id FROM awf.saves
                 WHERE save_id = ANY($1) AND updated_at < now() - make_interval(days => $2)
                 ORDER BY 1",
            None,
            &[candidates.into(), days.into()],
        )
        .expect("re-check stale saves")
        .map(|r| r.get::<Uuid>(1).unwrap().unwrap())
        .collect();
        for id in &stale {
            let s = store::save(c, *id, true);
            privacy::delete_save(c, &s, "retention");
        }
        let mut pruned = 0i64;
        let mut rebased = 0i64;
        for id in saves.iter().filter(|id| !stale.contains(id)) {
            let s = store::save(c, *id, true);
            let (n, r) = prune_save(c, &s, days).or_raise(F);
            pruned += n;
            rebased += i64::from(r);
        }
        let archives = crate::spi::one::<i64>(
            c,
            "WITH gone AS (DELETE FROM awf.save_archives
                           WHERE created_at < now() - make_interval(days => $1) RETURNING 1)
             SELECT count(*) FROM gone",
            &[days.into()],
        )
        .unwrap_or(0);
        let snapshots = crate::snapshots::prune(c, None);
        let wal = crate::wal::reconcile::cleanup(c, None);
        let blobs_deleted = crate::spi::one::<i64>(
            c,
            "WITH gone AS (
               DELETE FROM awf.save_blobs b
               WHERE NOT EXISTS (SELECT FROM awf.save_diffs d
                                 WHERE d.blob_hash = b.blob_hash AND d.key_id = b.key_id)
                 AND NOT EXISTS (SELECT FROM awf.save_archive_turns a
                                 WHERE a.blob_hash = b.blob_hash AND a.key_id = b.key_id)
                 AND $1 IS NOT NULL
               RETURNING 1)
             SELECT count(*) FROM gone",
            &[days.into()],
        )
        .unwrap_or(0);
        let result = json!({
            "retention_days": days,
            "saves_deleted": stale.len(),
            "saves_pruned": saves.len(),
            "turns_pruned": pruned,
            "turns_rebased": rebased,
            "archives_deleted": archives,
            "snapshots_deleted": snapshots,
            "wal_entries_deleted": wal,
            "blobs_deleted": blobs_deleted,
        });
        audit::record(c, "retention_enforce", None, result.clone());
        JsonB(result)
    })
}

/// Prunes one save's old turns; returns (turns pruned, whether the first kept turn was re-based).
fn prune_save(c: &mut SpiClient<'_>, s: &Save, days: i32) -> Result<(i64, bool)> {
    let last: Option<i64> = crate::spi::run(c,

            "SELECT max(turn_id) FROM awf.save_diffs
             WHERE save_id = $1 AND turn_id < $2 AND created_at < now() - make_interval(days => $3)",
            Some(1),
            &[s.save_id.into(), s.head_turn.into(), days.into()],
        )
        .expect("select prunable turns")
        .first()
        .get(1)
        .expect("max turn");
    // An archive that is still restorable attaches after turn from_turn - 1, whose state
    // must stay rebuildable: keep it stored (the origin holds no state).
    let attach: Option<i64> = crate::spi::run(
        c,
        "SELECT min(from_turn) FROM awf.save_archives WHERE save_id = $1 AND restored_at IS NULL",
        Some(1),
        &[s.save_id.into()],
    )
    .expect("select awf.save_archives")
    .first()
    .get(1)
    .expect("min from_turn");
    let last = match (last, attach) {
        (Some(l), Some(a)) => Some(l.min(a - 2)),
        (l, _) => l,
    };
    let Some(last) = last.filter(|l| *l > s.origin_turn) else {
        return Ok((0, false));
    };
    // Re-base the first kept turn while its history is still there to rebuild it from.
    let rebased = persist::rebase(c, s, last + 1)?;
    let origin_chain: String = col(
        &crate::spi::run(
            c,
            "SELECT chain_hash FROM awf.save_diffs WHERE save_id = $1 AND turn_id = $2",
            Some(1),
            &[s.save_id.into(), last.into()],
        )
        .expect("select awf.save_diffs")
        .first(),
        1,
    );
    let t = crate::spi::run(
        c,
        "WITH gone AS (DELETE FROM awf.save_diffs WHERE save_id = $1 AND turn_id <= $2
                           RETURNING 1)
             SELECT count(*) FROM gone",
        Some(1),
        &[s.save_id.into(), last.into()],
    )
    .expect("prune awf.save_diffs");
    let n: i64 = col(&t.first(), 1);
    crate::spi::run(c,
        "UPDATE awf.saves SET origin_turn = $2, origin_chain = $3,
                bytes_stored = (SELECT coalesce(sum(stored_bytes), 0) FROM awf.save_diffs WHERE save_id = $1)
                             + (SELECT coalesce(sum(t.stored_bytes), 0) FROM awf.save_archive_turns t
                                JOIN awf.save_archives a USING (archive_id) WHERE a.save_id = $1)
         WHERE save_id = $1",
        None,
        &[s.save_id.into(), last.into(), origin_chain.into()],
    )
    .expect("update awf.saves");
    Ok((n, rebased))
}
