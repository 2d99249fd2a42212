//! `awf.sync_stats` and `awf.device_details`: counts and devices for operators (admin only,
//! read as the owner).

use crate::audit;
use crate::errors::raise;
use crate::jsonb::JsonB;
use awf_core::Error;
use pgrx::prelude::*;
use serde_json::{json, Value};

/// Counts across cloud saves and sync: saves (total, sealed, integrity failed, unverified,
/// bytes stored), blobs (count, encrypted, stored and plain bytes, the plain bytes all
/// references would take without sharing, dedup and compression ratios), stored turns by
/// kind, archives by reason, devices (active = token not expired, expired), conflicts by
/// strategy and by chosen branch, tombstones, the audit log's size, and the `awf.sync.*`
/// metrics.
#[pg_extern(stable)]
fn sync_stats() -> JsonB {
    crate::identity::require_admin("sync_stats");
    let mut v = audit::owner_json(
        "SELECT jsonb_build_object(
           'saves', (SELECT jsonb_build_object(
               'total', count(*),
               'sealed', count(*) FILTER (WHERE sealed),
               'integrity_failed', count(*) FILTER (WHERE integrity_ok = false),
               'unverified', count(*) FILTER (WHERE integrity_ok IS NULL),
               'bytes_stored', coalesce(sum(bytes_stored), 0))
             FROM awf.saves),
           'blobs', (SELECT jsonb_build_object(
               'count', count(*),
               'encrypted', count(*) FILTER (WHERE key_id <> ''),
               'stored_bytes', coalesce(sum(stored_bytes), 0),
               'plain_bytes', coalesce(sum(plain_bytes), 0),
               'referenced_plain_bytes', (
                 SELECT coalesce(sum(b.plain_bytes), 0)
                 FROM (SELECT blob_hash, key_id FROM awf.save_diffs
                       UNION ALL
                       SELECT blob_hash, key_id FROM awf.save_archive_turns) r
                 JOIN awf.save_blobs b USING (blob_hash, key_id)))
             FROM awf.save_blobs),
           'turns', (SELECT jsonb_build_object(
               'total', count(*),
               'base', count(*) FILTER (WHERE kind = 'base'),
               'diff', count(*) FILTER (WHERE kind = 'diff'),
               'sealed', count(*) FILTER (WHERE kind = 'sealed'),
               'archived', (SELECT count(*) FROM awf.save_archive_turns))
             FROM awf.save_diffs),
           'archives', (SELECT jsonb_build_object(
               'total', count(*),
               'restored', count(*) FILTER (WHERE restored_at IS NOT NULL),
               'by_reason', coalesce((SELECT jsonb_object_agg(reason, n)
                                      FROM (SELECT reason, count(*) AS n FROM awf.save_archives
                                            GROUP BY reason) x), '{}'))
             FROM awf.save_archives),
           'devices', (SELECT jsonb_build_object(
               'total', count(*),
               'active', count(*) FILTER (WHERE token_expires_at > now()),
               'expired', count(*) FILTER (WHERE token_expires_at <= now()))
             FROM awf.devices),
           'conflicts', (SELECT jsonb_build_object(
               'total', count(*),
               'by_strategy', coalesce((SELECT jsonb_object_agg(strategy, n)
                                        FROM (SELECT strategy, count(*) AS n FROM awf.save_conflicts
                                              GROUP BY strategy) x), '{}'),
               'by_chosen', coalesce((SELECT jsonb_object_agg(chosen, n)
                                      FROM (SELECT chosen, count(*) AS n FROM awf.save_conflicts
                                            GROUP BY chosen) x), '{}'))
             FROM awf.save_conflicts),
           'tombstones', (SELECT jsonb_build_object(
               'total', count(*),
               'turns', coalesce(sum(turns), 0),
               'bytes', coalesce(sum(bytes), 0))
             FROM awf.save_tombstones),
           'audit', (SELECT jsonb_build_object('rows', count(*), 'newest_at', max(at))
                     FROM awf.audit_log),
           'metrics', coalesce((SELECT jsonb_object_agg(name, value) FROM awf.metrics
                                WHERE name LIKE 'awf.sync.%'), '{}'))",
        &[],
    )
    .expect("sync_stats returns a row");
    let num = |p: &str| v.pointer(p).and_then(Value::as_f64).unwrap_or(0.0);
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            json!((a / b * 1000.0).round() / 1000.0)
        } else {
            Value::Null
        }
    };
    // How many bytes sharing saves: referenced plain bytes over distinct plain bytes (1 = no
    // sharing); and how much compression saves: plain over stored bytes.
    let dedup = ratio(
        num("/blobs/referenced_plain_bytes"),
        num("/blobs/plain_bytes"),
    );
    let compression = ratio(num("/blobs/plain_bytes"), num("/blobs/stored_bytes"));
    v["blobs"]["dedup_ratio"] = dedup;
    v["blobs"]["compression_ratio"] = compression;
    JsonB(v)
}

/// One device for an operator: its row without `token_hash`, whether its token has expired,
/// its user's saves (marking the one attached to the device's session), and its audit row
/// count. Unknown device: P0002.
#[pg_extern(stable)]
fn device_details(device_id: &str) -> JsonB {
    crate::identity::require_admin("device_details");
    let found = audit::owner_json(
        "SELECT jsonb_build_object(
           'device', to_jsonb(d) - 'token_hash',
           'expired', d.token_expires_at <= now(),
           'saves', coalesce((SELECT jsonb_agg(jsonb_build_object(
                 'save_id', s.save_id, 'session_id', s.session_id, 'head_turn', s.head_turn,
                 'sealed', s.sealed, 'bytes_stored', s.bytes_stored,
                 'integrity_ok', s.integrity_ok, 'updated_at', s.updated_at,
                 'attached', s.session_id IS NOT NULL AND s.session_id = d.session_id)
                 ORDER BY s.created_at, s.save_id)
               FROM awf.saves s WHERE s.user_id_hash = d.user_id_hash), '[]'),
           'audit_rows', (SELECT count(*) FROM awf.audit_log l WHERE l.device_id = d.device_id))
         FROM awf.devices d WHERE d.device_id = $1",
        &[device_id.into()],
    );
    match found {
        Some(v) => JsonB(v),
        None => raise(
            Error::not_found(format!("device {device_id:?} does not exist")),
            "device_details",
        ),
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{assert_sqlstate, json, one, run, save_with_turns, SID};
    use pgrx::prelude::*;
    use serde_json::{json, Value};

    #[pg_test]
    fn sync_stats_counts() {
        let empty = json("SELECT awf.sync_stats()");
        assert_eq!(empty["saves"]["total"], json!(0), "{empty}");
        assert_eq!(empty["blobs"]["dedup_ratio"], json!(null), "{empty}");
        run("SET awf.sync_snapshot_every = 4");
        let save = save_with_turns(6);
        // A second, sealed save without a session.
        let sealed = json("SELECT awf.save_create_or_attach(NULL, 'u2', sealed => true)");
        assert_eq!(sealed["created"], json!(true), "{sealed}");
        run(&format!("SELECT awf.save_restore('{save}', 4)"));
        run(&format!(
            "INSERT INTO awf.devices (device_id, user_id_hash, session_id, token_hash, token_expires_at)
             VALUES ('phone', 'u1', '{SID}', repeat('0', 64), now() + interval '1 day'),
                    ('old', 'u1', NULL, repeat('0', 64), now() - interval '1 day')"
        ));
        run(&format!(
            "INSERT INTO awf.save_conflicts (save_id, device_id, strategy, chosen, report)
             VALUES ('{save}', 'phone', 'longest_chain', 'server', '{{}}'),
                    ('{save}', 'phone', 'server_wins', 'server', '{{}}'),
                    ('{save}', 'old', 'client_wins', 'client', '{{}}')"
        ));
        run(
            "INSERT INTO awf.save_tombstones (save_id, user_id_hash, reason, turns, bytes)
             VALUES (gen_random_uuid(), 'u9', 'user request', 3, 100)",
        );
        run(&format!(
            "UPDATE awf.saves SET integrity_ok = false WHERE save_id = '{save}'"
        ));
        let s = json("SELECT awf.sync_stats()");
        let q = |sql: &str| json!(one::<i64>(sql).unwrap());
        assert_eq!(s["saves"]["total"], json!(2), "{s}");
        assert_eq!(s["saves"]["sealed"], json!(1), "{s}");
        assert_eq!(s["saves"]["integrity_failed"], json!(1), "{s}");
        assert_eq!(s["saves"]["unverified"], json!(1), "{s}");
        assert_eq!(
            s["saves"]["bytes_stored"],
            q("SELECT sum(bytes_stored)::bigint FROM awf.saves"),
            "{s}"
        );
        assert_eq!(
            s["blobs"]["count"],
            q("SELECT count(*) FROM awf.save_blobs"),
            "{s}"
        );
        assert_eq!(
            s["blobs"]["stored_bytes"],
            q("SELECT sum(stored_bytes)::bigint FROM awf.save_blobs"),
            "{s}"
        );
        assert!(s["blobs"]["dedup_ratio"].as_f64().unwrap() >= 1.0, "{s}");
        assert!(s["blobs"]["compression_ratio"].as_f64().is_some(), "{s}");
        // Turns 0..4 stay (turn 0 and 4 bases), 5..6 were archived by the restore.
        assert_eq!(s["turns"]["total"], json!(5), "{s}");
        assert_eq!(s["turns"]["base"], json!(2), "{s}");
        assert_eq!(s["turns"]["diff"], json!(3), "{s}");
        assert_eq!(s["turns"]["sealed"], json!(0), "{s}");
        assert_eq!(s["turns"]["archived"], json!(2), "{s}");
        assert_eq!(s["archives"]["total"], json!(1), "{s}");
        assert_eq!(
            s["archives"]["by_reason"],
            json!({"manual_restore": 1}),
            "{s}"
        );
        assert_eq!(
            s["devices"],
            json!({"total": 2, "active": 1, "expired": 1}),
            "{s}"
        );
        assert_eq!(s["conflicts"]["total"], json!(3), "{s}");
        assert_eq!(
            s["conflicts"]["by_strategy"],
            json!({"longest_chain": 1, "server_wins": 1, "client_wins": 1}),
            "{s}"
        );
        assert_eq!(
            s["conflicts"]["by_chosen"],
            json!({"server": 2, "client": 1}),
            "{s}"
        );
        assert_eq!(
            s["tombstones"],
            json!({"total": 1, "turns": 3, "bytes": 100}),
            "{s}"
        );
        assert_eq!(
            s["metrics"]["awf.sync.turns_persisted"],
            q("SELECT value FROM awf.metrics WHERE name = 'awf.sync.turns_persisted'"),
            "{s}"
        );
        assert!(s["audit"]["rows"].as_i64().unwrap() >= 3, "{s}");
    }

    #[pg_test]
    fn device_details_and_errors() {
        let save = save_with_turns(1);
        let other = json("SELECT awf.save_create_or_attach(NULL, 'u1', sealed => true)");
        run(&format!(
            "INSERT INTO awf.devices (device_id, user_id_hash, session_id, token_hash, token_expires_at)
             VALUES ('phone', 'u1', '{SID}', repeat('f', 64), now() - interval '1 hour')"
        ));
        Spi::connect_mut(|c| {
            crate::audit::record(
                c,
                "sync_down",
                None,
                json!({"save_id": save, "device_id": "phone"}),
            );
        });
        let d = json("SELECT awf.device_details('phone')");
        assert_eq!(d["device"]["device_id"], json!("phone"), "{d}");
        assert_eq!(d["device"]["user_id_hash"], json!("u1"), "{d}");
        assert!(d["device"].get("token_hash").is_none(), "{d}");
        assert!(!d.to_string().contains(&"f".repeat(64)), "{d}");
        assert_eq!(d["expired"], json!(true), "{d}");
        let saves = d["saves"].as_array().unwrap();
        assert_eq!(saves.len(), 2, "{d}");
        let attached: Vec<&Value> = saves
            .iter()
            .filter(|s| s["attached"] == json!(true))
            .collect();
        assert_eq!(attached.len(), 1, "{d}");
        assert_eq!(attached[0]["save_id"], json!(save), "{d}");
        assert!(
            saves.iter().any(|s| s["save_id"] == other["save_id"]),
            "{d}"
        );
        assert_eq!(d["audit_rows"], json!(1), "{d}");
        run("UPDATE awf.devices SET token_expires_at = now() + interval '1 day'");
        assert_eq!(
            json("SELECT awf.device_details('phone')")["expired"],
            json!(false)
        );
        assert_sqlstate("SELECT awf.device_details('nope')", "P0002");
        assert_sqlstate("SELECT awf.device_details('')", "P0002");
    }
}
