//! `awf.save_details`: one save for an operator (admin only, read as the owner).

use crate::audit;
use crate::errors::raise;
use crate::jsonb::JsonB;
use awf_core::Error;
use pgrx::prelude::*;
use pgrx::Uuid;

/// One save for an operator: the save row, its stored
/// turns by kind, bytes (stored, plain), the last verification, its archives, its
/// conflict count, the devices attached to its session, the devices seen syncing it (from the
/// audit log), and its audit row count. Unknown save: P0002 (saying so when it was deleted).
#[pg_extern(stable)]
fn save_details(save_id: Uuid) -> JsonB {
    const F: &str = "save_details";
    crate::identity::require_admin(F);
    let found = audit::owner_json(
        "SELECT jsonb_build_object(
           'save', to_jsonb(s),
           'turns', (SELECT jsonb_build_object(
               'total', count(*),
               'base', count(*) FILTER (WHERE d.kind = 'base'),
               'diff', count(*) FILTER (WHERE d.kind = 'diff'),
               'sealed', count(*) FILTER (WHERE d.kind = 'sealed'),
               'first_turn', min(d.turn_id),
               'last_turn', max(d.turn_id))
             FROM awf.save_diffs d WHERE d.save_id = s.save_id),
           'bytes', jsonb_build_object(
               'stored', s.bytes_stored,
               'turns_stored', (SELECT coalesce(sum(d.stored_bytes), 0) FROM awf.save_diffs d
                                WHERE d.save_id = s.save_id),
               'turns_plain', (SELECT coalesce(sum(b.plain_bytes), 0)
                               FROM awf.save_diffs d JOIN awf.save_blobs b USING (blob_hash, key_id)
                               WHERE d.save_id = s.save_id)),
           'last_verify', jsonb_build_object('integrity_ok', s.integrity_ok,
                                             'at', s.last_verified_at),
           'archives', coalesce((SELECT jsonb_agg(jsonb_build_object(
                 'archive_id', a.archive_id, 'reason', a.reason, 'from_turn', a.from_turn,
                 'to_turn', a.to_turn, 'created_at', a.created_at, 'restored_at', a.restored_at)
                 ORDER BY a.archive_id)
               FROM awf.save_archives a WHERE a.save_id = s.save_id), '[]'),
           'conflicts', (SELECT count(*) FROM awf.save_conflicts c WHERE c.save_id = s.save_id),
           'devices', coalesce((SELECT jsonb_agg(jsonb_build_object(
                 'device_id', v.device_id, 'last_turn_seen', v.last_turn_seen,
                 'last_seen_at', v.last_seen_at, 'token_expires_at', v.token_expires_at,
                 'expired', v.token_expires_at <= now()) ORDER BY v.device_id)
               FROM awf.devices v WHERE v.session_id = s.session_id), '[]'),
           'synced_by', coalesce((SELECT jsonb_agg(DISTINCT l.device_id)
               FROM awf.audit_log l WHERE l.save_id = s.save_id AND l.device_id IS NOT NULL),
               '[]'),
           'audit_rows', (SELECT count(*) FROM awf.audit_log l WHERE l.save_id = s.save_id))
         FROM awf.saves s WHERE s.save_id = $1",
        &[save_id.into()],
    );
    if let Some(v) = found {
        return JsonB(v);
    }
    let gone = audit::owner_json(
        "SELECT jsonb_build_object('at', deleted_at, 'reason', reason)
         FROM awf.save_tombstones WHERE save_id = $1",
        &[save_id.into()],
    );
    let msg = match gone {
        Some(t) => format!(
            "save {save_id} was deleted at {} ({})",
            t["at"].as_str().unwrap_or("?"),
            t["reason"].as_str().unwrap_or("?")
        ),
        None => format!("save {save_id} does not exist"),
    };
    raise(Error::not_found(msg), F)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{assert_sqlstate, json, one, run, save_with_turns, SID};
    use pgrx::prelude::*;
    use serde_json::json;

    #[pg_test]
    fn save_details_and_errors() {
        run("SET awf.sync_snapshot_every = 4");
        let save = save_with_turns(6);
        run(&format!("SELECT awf.save_restore('{save}', 5)"));
        run(&format!("SELECT awf.save_verify('{save}')"));
        run(&format!(
            "INSERT INTO awf.devices (device_id, user_id_hash, session_id, token_hash, token_expires_at)
             VALUES ('phone', 'u1', '{SID}', repeat('0', 64), now() + interval '1 day')"
        ));
        run(&format!(
            "INSERT INTO awf.save_conflicts (save_id, device_id, strategy, chosen, report)
             VALUES ('{save}', 'phone', 'longest_chain', 'server', '{{}}')"
        ));
        Spi::connect_mut(|c| {
            crate::audit::record(
                c,
                "sync_up",
                None,
                json!({"save_id": save, "device_id": "tablet"}),
            );
        });
        let d = json(&format!("SELECT awf.save_details('{save}')"));
        assert_eq!(d["save"]["save_id"], json!(save), "{d}");
        assert!(d["save"].get("head_state").is_none(), "{d}");
        assert_eq!(d["save"]["head_turn"], json!(5), "{d}");
        assert_eq!(d["turns"]["total"], json!(6), "{d}");
        assert_eq!(d["turns"]["base"], json!(2), "{d}");
        assert_eq!(d["turns"]["diff"], json!(4), "{d}");
        assert_eq!(
            (
                d["turns"]["first_turn"].clone(),
                d["turns"]["last_turn"].clone()
            ),
            (json!(0), json!(5)),
            "{d}"
        );
        assert!(d["bytes"]["turns_plain"].as_i64().unwrap() > 0, "{d}");
        assert_eq!(d["last_verify"]["integrity_ok"], json!(true), "{d}");
        assert!(d["last_verify"]["at"].is_string(), "{d}");
        assert_eq!(d["archives"].as_array().unwrap().len(), 1, "{d}");
        assert_eq!(d["archives"][0]["reason"], json!("manual_restore"), "{d}");
        assert_eq!(d["archives"][0]["from_turn"], json!(6), "{d}");
        assert_eq!(d["conflicts"], json!(1), "{d}");
        assert_eq!(d["devices"][0]["device_id"], json!("phone"), "{d}");
        assert_eq!(d["devices"][0]["expired"], json!(false), "{d}");
        assert_eq!(d["synced_by"], json!(["tablet"]), "{d}");
        assert!(d["audit_rows"].as_i64().unwrap() >= 3, "{d}");

        assert_sqlstate(
            "SELECT awf.save_details('00000000-0000-0000-0000-000000000000')",
            "P0002",
        );
        run(
            "INSERT INTO awf.save_tombstones (save_id, user_id_hash, reason, turns, bytes)
             VALUES ('00000000-0000-0000-0000-0000000000dd', 'u9', 'user request', 3, 100)",
        );
        assert_sqlstate(
            "SELECT awf.save_details('00000000-0000-0000-0000-0000000000dd')",
            "P0002",
        );
        assert_eq!(
            one::<crate::jsonb::JsonB>("SELECT awf.save_details(NULL)").map(|j| j.0),
            None
        );
    }
}
