//! Reading saves back: any turn as JSON or as its exact canonical bytes, and verification.

use crate::audit;
use crate::errors::{raise, OrRaise};
use crate::gucs;
use crate::jsonb::JsonB;
use crate::saves::blobs;
use crate::saves::store::{self, Save};
use awf_core::save::{self, Rebuilt, VerifyReport};
use awf_core::Error;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::json;

fn rebuilt(c: &mut SpiClient<'_>, id: Uuid, target: Option<i64>, f: &'static str) -> Rebuilt {
    let s = store::save(c, id, false);
    let target = target.unwrap_or(s.head_turn);
    store::rebuild(c, &s, target).or_raise(f)
}

/// The state of a save at `target_turn` (default: the head), rebuilt from its last base and
/// the diffs after it: every replayed blob's hash, the chain links from the base and the
/// target's state hash checked on the way (XX001 rather than a wrong state; see
/// `store::rebuild`). A client-sealed save is refused here (22023): its turns are
/// bytes only the client can read, see `awf.save_materialize_bytes`.
#[pg_extern(stable)]
fn save_materialize(save_id: Option<Uuid>, target_turn: default!(Option<i64>, "NULL")) -> JsonB {
    const F: &str = "save_materialize";
    let save_id = crate::errors::required(save_id, "save_id", F);
    crate::locks::connect_mut(|c| match rebuilt(c, save_id, target_turn, F) {
        Rebuilt::State { state, .. } => JsonB(state),
        Rebuilt::Sealed { turn_id, .. } => raise(
            Error::invalid(format!(
                "turn {turn_id} of save {save_id} is client-sealed: the server cannot read it; \
                 use awf.save_materialize_bytes for the sealed bytes"
            )),
            F,
        ),
    })
}

/// The exact RFC 8785 bytes of a save's state at `target_turn` (the sealed bytes for a
/// client-sealed save), checked as `awf.save_materialize` checks them.
#[pg_extern(stable)]
fn save_materialize_bytes(
    save_id: Option<Uuid>,
    target_turn: default!(Option<i64>, "NULL"),
) -> Vec<u8> {
    let save_id = crate::errors::required(save_id, "save_id", "save_materialize_bytes");
    crate::locks::connect_mut(|c| {
        rebuilt(c, save_id, target_turn, "save_materialize_bytes")
            .bytes()
            .to_vec()
    })
}

/// Rebuilds every turn of a save and reports the first problem; never raises for one.
fn check(c: &mut SpiClient<'_>, s: &Save) -> VerifyReport {
    let rows = store::turns(c, s.save_id, s.origin_turn + 1, s.head_turn);
    let mut plain = Vec::with_capacity(rows.len());
    let mut decode_failure = None;
    for r in &rows {
        match blobs::load(c, &r.blob_hash, &r.key_id) {
            Ok(p) => plain.push(p),
            Err(e) => {
                decode_failure = Some((r.turn_id, e.message));
                break;
            }
        }
    }
    let stored = store::stored_turns(&rows, &plain);
    let head = decode_failure
        .is_none()
        .then_some((s.head_turn, s.head_chain.as_str()));
    let report = save::verify(&s.origin_chain, s.origin_turn, &stored, head);
    match decode_failure {
        // An earlier problem found while rebuilding the decodable prefix wins.
        Some((turn, why)) if report.ok || report.first_bad_turn.is_some_and(|t| t > turn) => {
            VerifyReport {
                ok: false,
                turns_checked: stored.len(),
                first_bad_turn: Some(turn),
                reason: Some(why),
            }
        }
        _ => report,
    }
}

/// Records a verification's outcome on the save; failures are audited and counted.
fn record(c: &mut SpiClient<'_>, s: &Save, report: &VerifyReport, action: &str) {
    crate::audit::as_owner(c, |c| {
        crate::spi::run(
            c,
            "UPDATE awf.saves SET integrity_ok = $2, last_verified_at = now() WHERE save_id = $1",
            None,
            &[s.save_id.into(), report.ok.into()],
        )
        .expect("update awf.saves")
    });
    if !report.ok {
        audit::bump(c, "awf.sync.verify_failures", 1);
        audit::record(
            c,
            action,
            s.session_id,
            json!({"save_id": s.save_id.to_string(), "report": report}),
        );
    }
}

/// Rebuilds every turn of a save, compares every hash, records `integrity_ok`, and returns
/// `{ok, turns_checked, first_bad_turn, reason}`.
#[pg_extern(volatile, parallel_unsafe)]
fn save_verify(save_id: Uuid) -> JsonB {
    crate::locks::connect_mut(|c| {
        // FOR SHARE: a restore or retention must not move turns under the check, or a
        // healthy save would be reported corrupt.
        store::lock_save(c, save_id, true);
        let s = store::save(c, save_id, false);
        let report = check(c, &s);
        record(c, &s, &report, "save_verify_failed");
        audit::bump(c, "awf.sync.verified", 1);
        JsonB(serde_json::to_value(&report).expect("report serializes"))
    })
}

/// Verifies a random `pct` percent of all saves (default `awf.sync_verify_sample_pct`; at
/// least one when there are saves). Each failure logs a WARNING, is counted in
/// `awf.sync.verify_failures` and audited. One row per checked save.
#[pg_extern(volatile, parallel_unsafe)]
fn save_verify_sample(
    pct: default!(Option<f64>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(save_id, Uuid),
        name!(ok, bool),
        name!(first_bad_turn, Option<i64>),
        name!(reason, Option<String>),
    ),
> {
    let pct = pct.unwrap_or_else(gucs::sync_verify_sample_pct);
    if !(0.0..=100.0).contains(&pct) {
        raise(
            Error::invalid(format!("pct must be between 0 and 100, not {pct}")),
            "save_verify_sample",
        );
    }
    let rows = crate::locks::connect_mut(|c| {
        let ids: Vec<Uuid> = crate::spi::run(c,

                "WITH n AS (SELECT greatest(1, ceil(count(*) * $1 / 100.0))::bigint AS k FROM awf.saves)
                 SELECT save_id FROM awf.saves ORDER BY random() LIMIT (SELECT k FROM n)",
                None,
                &[pct.into()],
            )
            .expect("sample awf.saves")
            .map(|r| r.get::<Uuid>(1).unwrap().unwrap())
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            store::lock_save(c, id, true);
            let s = store::save(c, id, false);
            let report = check(c, &s);
            if !report.ok {
                warning!(
                    "awf.save_verify_sample: save {id} failed at turn {:?}: {}",
                    report.first_bad_turn,
                    report.reason.clone().unwrap_or_default()
                );
            }
            record(c, &s, &report, "save_verify_failed");
            audit::bump(c, "awf.sync.verified", 1);
            out.push((id, report.ok, report.first_bad_turn, report.reason));
        }
        let checked = out.len() as i64;
        let failed = out.iter().filter(|r| !r.1).count() as i64;
        audit::record(
            c,
            "save_verify_sample",
            None,
            json!({"pct": pct, "checked": checked, "failed": failed}),
        );
        out
    });
    TableIterator::new(rows)
}
