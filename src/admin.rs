//! Admin functions: `awf.audit_verify`, `awf.audit_query`, `awf.sync_stats`,
//! `awf.save_details`, `awf.device_details`.
//!
//! They only read, so they are not audited themselves. They are granted to `awf_admin` and to
//! the HTTP gateway (`awf_gateway`, admin only with a verified key), so each checks admin
//! rights first and then reads as the extension's owner, with `search_path` pinned.

use crate::audit;
use crate::errors::raise;
use crate::jsonb::JsonB;
use awf_core::Error;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::Uuid;
use serde_json::{json, Value};

/// Recomputes the audit log's hash chain in id order. Returns `{ok, rows_checked,
/// first_bad_id, last_good_id, reason, expected, found}` on a break, and `{ok: true,
/// rows_checked, head_id, head_hash, ...}` otherwise; a break also logs a WARNING.
///
/// With `anchor_id` and `anchor_hash` (a `head_id`/`head_hash` pair kept from an earlier run,
/// outside the database), the row `anchor_id` must still exist with that hash: that also
/// catches the newest rows being deleted, or the whole chain being recomputed by someone who
/// could write the table.
#[pg_extern(volatile, parallel_unsafe)]
fn audit_verify(
    anchor_id: default!(Option<i64>, "NULL"),
    anchor_hash: default!(Option<&str>, "NULL"),
) -> JsonB {
    const F: &str = "audit_verify";
    let anchor = match (anchor_id, anchor_hash) {
        (None, None) => None,
        (Some(id), Some(h))
            if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Some((id, h))
        }
        (Some(_), Some(h)) => raise(
            Error::invalid(format!(
                "anchor_hash must be 64 lowercase hex digits (a head_hash of audit_verify), not {h:?}"
            )),
            F,
        ),
        _ => raise(
            Error::invalid("anchor_id and anchor_hash go together: give both or neither"),
            F,
        ),
    };
    let report = crate::locks::connect_mut(|c| audit::verify(c, anchor));
    if report["ok"] != json!(true) {
        warning!(
            "awf.audit_verify: audit chain broken at id {}: {}",
            report["first_bad_id"],
            report["reason"].as_str().unwrap_or("")
        );
    }
    JsonB(report)
}

/// Most rows one `awf.audit_query` call returns.
const MAX_AUDIT_ROWS: i32 = 10_000;

/// Audit rows matching every given filter (AND), newest first (`at` descending, then id
/// descending), at most `max_rows` (default 1000; 1 to 10000, 22023 otherwise, so one call
/// never builds an unbounded answer). `from_ts` is inclusive,
/// `to_ts` exclusive; `from_ts` after `to_ts` is 22023.
#[allow(clippy::type_complexity)]
#[pg_extern(stable)]
fn audit_query(
    save_id: default!(Option<Uuid>, "NULL"),
    device_id: default!(Option<&str>, "NULL"),
    action: default!(Option<&str>, "NULL"),
    from_ts: default!(Option<TimestampWithTimeZone>, "NULL"),
    to_ts: default!(Option<TimestampWithTimeZone>, "NULL"),
    max_rows: default!(Option<i32>, 1000),
) -> TableIterator<
    'static,
    (
        name!(id, i64),
        name!(at, TimestampWithTimeZone),
        name!(actor, String),
        name!(action, String),
        name!(session_id, Option<Uuid>),
        name!(save_id, Option<Uuid>),
        name!(device_id, Option<String>),
        name!(details, JsonB),
    ),
> {
    const F: &str = "audit_query";
    crate::identity::require_admin(F);
    let max_rows = max_rows.unwrap_or(1000);
    if !(1..=MAX_AUDIT_ROWS).contains(&max_rows) {
        raise(
            Error::invalid(format!(
                "max_rows must be 1 to {MAX_AUDIT_ROWS}, not {max_rows}: page with from_ts/to_ts"
            )),
            F,
        );
    }
    if let (Some(from), Some(to)) = (from_ts, to_ts) {
        if from.into_inner() > to.into_inner() {
            raise(Error::invalid("from_ts must not be after to_ts"), F);
        }
    }
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<DatumWithOid<'_>> = Vec::new();
    let mut filter = |cond: &str, arg: DatumWithOid<'static>| {
        args.push(arg);
        conds.push(cond.replace('?', &format!("${}", args.len())));
    };
    if let Some(v) = save_id {
        filter("save_id = ?", v.into());
    }
    if let Some(v) = device_id {
        filter("device_id = ?", v.to_owned().into());
    }
    if let Some(v) = action {
        filter("action = ?", v.to_owned().into());
    }
    if let Some(v) = from_ts {
        filter("at >= ?", v.into());
    }
    if let Some(v) = to_ts {
        filter("at < ?", v.into());
    }
    let sql = format!(
        "SELECT id, at, actor, action, session_id, save_id, device_id, details
         FROM awf.audit_log {} {}
         ORDER BY at DESC, id DESC LIMIT {max_rows}",
        if conds.is_empty() { "" } else { "WHERE" },
        conds.join(" AND ")
    );
    let rows = crate::locks::connect_mut(|c| {
        let _owner = audit::AsOwner::enter(c);
        c.select(&sql, None, &args)
            .expect("select awf.audit_log")
            .map(|r| {
                (
                    r.get::<i64>(1).expect("id").expect("id is not NULL"),
                    r.get(2).expect("at").expect("at is not NULL"),
                    r.get::<String>(3)
                        .expect("actor")
                        .expect("actor is not NULL"),
                    r.get::<String>(4)
                        .expect("action")
                        .expect("action is not NULL"),
                    r.get::<Uuid>(5).expect("session_id"),
                    r.get::<Uuid>(6).expect("save_id"),
                    r.get::<String>(7).expect("device_id"),
                    r.get::<JsonB>(8)
                        .expect("details")
                        .unwrap_or(JsonB(Value::Null)),
                )
            })
            .collect::<Vec<_>>()
    });
    TableIterator::new(rows)
}

/// One jsonb value from a query (NULL when no row), read as the owner: call it only after
/// [`crate::identity::require_admin`].
fn one_json(sql: &str, args: &[DatumWithOid<'_>]) -> Option<Value> {
    crate::locks::connect_mut(|c| {
        let _owner = audit::AsOwner::enter(c);
        crate::spi::one_json(c, sql, args)
    })
}

/// Counts across cloud saves and sync: saves (total, sealed, integrity failed, unverified,
/// bytes stored), blobs (count, encrypted, stored and plain bytes, the plain bytes all
/// references would take without sharing, dedup and compression ratios), stored turns by
/// kind, archives by reason, devices (active = token not expired, expired), conflicts by
/// strategy and by chosen branch, tombstones, the audit log's size, and the `awf.sync.*`
/// metrics.
#[pg_extern(stable)]
fn sync_stats() -> JsonB {
    crate::identity::require_admin("sync_stats");
    let mut v = one_json(
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

/// One save for an operator: the save row, its stored
/// turns by kind, bytes (stored, plain), the last verification, its archives, its
/// conflict count, the devices attached to its session, the devices seen syncing it (from the
/// audit log), and its audit row count. Unknown save: P0002 (saying so when it was deleted).
#[pg_extern(stable)]
fn save_details(save_id: Uuid) -> JsonB {
    const F: &str = "save_details";
    crate::identity::require_admin(F);
    let found = one_json(
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
    let gone = one_json(
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

/// One device for an operator: its row without `token_hash`, whether its token has expired,
/// its user's saves (marking the one attached to the device's session), and its audit row
/// count. Unknown device: P0002.
#[pg_extern(stable)]
fn device_details(device_id: &str) -> JsonB {
    crate::identity::require_admin("device_details");
    let found = one_json(
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
    use crate::testing::{assert_sqlstate, json, new_session, one, run, submit, SID};
    use pgrx::prelude::*;
    use serde_json::{json, Value};

    use crate::testing::audited;

    fn verify() -> Value {
        json("SELECT awf.audit_verify()")
    }

    /// The id of the `k`-th audit row (0-based, in id order).
    fn nth_id(k: i64) -> i64 {
        one::<i64>(&format!(
            "SELECT id FROM awf.audit_log ORDER BY id OFFSET {k} LIMIT 1"
        ))
        .expect("row exists")
    }

    #[pg_test]
    fn verify_is_ok_on_an_empty_and_on_a_long_log() {
        let v = verify();
        assert_eq!(v["ok"], json!(true), "{v}");
        assert_eq!(v["head_hash"], json!(awf_core::audit_chain::GENESIS));
        // More rows than one verification batch.
        new_session();
        Spi::connect_mut(|c| {
            for i in 0..2100 {
                crate::audit::record(c, "bulk", None, json!({"i": i}));
            }
        });
        let v = verify();
        assert_eq!(v["ok"], json!(true), "{v}");
        assert_eq!(v["rows_checked"], json!(2100));
        assert_eq!(v["head_id"], json!(nth_id(2099)));
    }

    #[pg_test]
    fn edits_of_any_column_are_named() {
        audited(6);
        let target = nth_id(3);
        let edits = [
            ("details", "details = details || '{\"label\": \"forged\"}'"),
            ("action", "action = 'snapshot_delete'"),
            ("actor", "actor = 'mallory'"),
            ("at", "at = at + interval '1 microsecond'"),
            ("session_id", "session_id = NULL"),
            ("save_id", "save_id = gen_random_uuid()"),
            ("device_id", "device_id = 'phone'"),
            ("row_hash", "row_hash = repeat('a', 64)"),
            ("prev_hash", "prev_hash = NULL"),
        ];
        run("CREATE TEMP TABLE orig AS SELECT * FROM awf.audit_log");
        for (what, set) in edits {
            run(&format!(
                "UPDATE awf.audit_log SET {set} WHERE id = {target}"
            ));
            let v = verify();
            assert_eq!(v["ok"], json!(false), "{what}: {v}");
            assert_eq!(v["first_bad_id"], json!(target), "{what}: {v}");
            assert_eq!(v["last_good_id"], json!(nth_id(2)), "{what}: {v}");
            assert!(v["reason"].as_str().is_some(), "{what}: {v}");
            run(&format!(
                "UPDATE awf.audit_log a SET at = o.at, actor = o.actor, action = o.action,
                   session_id = o.session_id, save_id = o.save_id, device_id = o.device_id,
                   details = o.details, prev_hash = o.prev_hash, row_hash = o.row_hash
                 FROM orig o WHERE a.id = o.id AND a.id = {target}"
            ));
            assert_eq!(verify()["ok"], json!(true), "{what} restored");
        }
        // Editing a row and recomputing its own row_hash moves the break to the next row.
        let edited_hash = one::<String>(&format!(
            "SELECT encode(sha256(convert_to('awf-audit-v1' || chr(10) || prev_hash || chr(10) ||
                      awf.canonical_hash(jsonb_build_object(
                        'id', id::text,
                        'at_us', ((extract(epoch FROM at) * 1000000)::bigint)::text,
                        'actor', 'mallory', 'action', action, 'session_id', session_id,
                        'save_id', save_id, 'device_id', device_id, 'details', details)),
                      'UTF8')), 'hex')
             FROM awf.audit_log WHERE id = {target}"
        ))
        .unwrap();
        run(&format!(
            "UPDATE awf.audit_log SET actor = 'mallory', row_hash = '{edited_hash}' WHERE id = {target}"
        ));
        let v = verify();
        assert_eq!(v["first_bad_id"], json!(nth_id(4)), "{v}");
        assert!(v["reason"].as_str().unwrap().contains("prev_hash"), "{v}");
    }

    #[pg_test]
    fn a_deleted_row_is_named_at_the_next_row() {
        audited(5);
        let (gone, next) = (nth_id(2), nth_id(3));
        run(&format!(
            "CREATE TEMP TABLE gone AS SELECT * FROM awf.audit_log WHERE id = {gone}"
        ));
        run(&format!("DELETE FROM awf.audit_log WHERE id = {gone}"));
        let v = verify();
        assert_eq!(v["ok"], json!(false), "{v}");
        assert_eq!(v["first_bad_id"], json!(next), "{v}");
        assert_eq!(v["last_good_id"], json!(nth_id(1)), "{v}");
        assert!(v["reason"].as_str().unwrap().contains("deleted"), "{v}");
        run("INSERT INTO awf.audit_log SELECT * FROM gone");
        assert_eq!(verify()["ok"], json!(true));
        // The first row.
        let first = nth_id(0);
        run(&format!("DELETE FROM awf.audit_log WHERE id = {first}"));
        let v = verify();
        assert_eq!(v["first_bad_id"], json!(nth_id(0)), "{v}");
        assert_eq!(v["last_good_id"], json!(null), "{v}");
    }

    #[pg_test]
    fn inserted_rows_are_named() {
        audited(2);
        // Leave a gap in the ids, then two more rows.
        let before_gap = one::<i64>("SELECT max(id) FROM awf.audit_log").unwrap();
        run("SELECT nextval('awf.audit_log_id_seq'), nextval('awf.audit_log_id_seq')");
        run(&format!("SELECT awf.snapshot_create('{SID}', 'after gap')"));
        run(&format!("SELECT awf.snapshot_create('{SID}', 'last')"));
        let after_gap = one::<i64>(&format!(
            "SELECT min(id) FROM awf.audit_log WHERE id > {before_gap}"
        ))
        .unwrap();
        assert!(after_gap > before_gap + 1);
        let forged = before_gap + 1;
        // A plain INSERT, as an attacker with INSERT on the table would write it.
        run(&format!(
            "INSERT INTO awf.audit_log (id, action, details) VALUES ({forged}, 'snapshot_delete', '{{}}')"
        ));
        let v = verify();
        assert_eq!(v["first_bad_id"], json!(forged), "{v}");
        assert!(
            v["reason"]
                .as_str()
                .unwrap()
                .contains("prev_hash is missing"),
            "{v}"
        );
        // Copying a neighbour's hashes does not help.
        run(&format!(
            "UPDATE awf.audit_log f SET prev_hash = n.prev_hash, row_hash = n.row_hash
             FROM awf.audit_log n WHERE n.id = {after_gap} AND f.id = {forged}"
        ));
        assert_eq!(verify()["first_bad_id"], json!(forged));
        // Correct hashes for the forged row break the link to the row after it.
        run(&format!(
            "UPDATE awf.audit_log f SET prev_hash = p.row_hash,
               row_hash = encode(sha256(convert_to('awf-audit-v1' || chr(10) || p.row_hash || chr(10) ||
                 awf.canonical_hash(jsonb_build_object(
                   'id', f.id::text,
                   'at_us', ((extract(epoch FROM f.at) * 1000000)::bigint)::text,
                   'actor', f.actor, 'action', f.action, 'session_id', f.session_id,
                   'save_id', f.save_id, 'device_id', f.device_id, 'details', f.details)),
                 'UTF8')), 'hex')
             FROM awf.audit_log p WHERE p.id = {before_gap} AND f.id = {forged}"
        ));
        let v = verify();
        assert_eq!(v["first_bad_id"], json!(after_gap), "{v}");
        assert_eq!(v["last_good_id"], json!(forged), "{v}");
        run(&format!("DELETE FROM awf.audit_log WHERE id = {forged}"));
        assert_eq!(verify()["ok"], json!(true));
        // A forged row after the head.
        run("INSERT INTO awf.audit_log (action) VALUES ('forged')");
        let v = verify();
        assert_eq!(
            v["first_bad_id"],
            json!(one::<i64>("SELECT max(id) FROM awf.audit_log")),
            "{v}"
        );
    }

    #[pg_test]
    fn an_anchor_catches_deleted_newest_rows() {
        audited(4);
        let v = verify();
        let (head_id, head_hash) = (v["head_id"].as_i64().unwrap(), v["head_hash"].clone());
        let head_hash = head_hash.as_str().unwrap().to_owned();
        let anchored = |id: i64, h: &str| json(&format!("SELECT awf.audit_verify({id}, '{h}')"));
        assert_eq!(anchored(head_id, &head_hash)["ok"], json!(true));
        run(&format!("SELECT awf.snapshot_create('{SID}', 'later')"));
        assert_eq!(anchored(head_id, &head_hash)["ok"], json!(true));
        let wrong = "b".repeat(64);
        let v = anchored(head_id, &wrong);
        assert_eq!(
            (v["ok"].clone(), v["first_bad_id"].clone()),
            (json!(false), json!(head_id)),
            "{v}"
        );
        // Deleting the newest rows leaves a valid chain, but not the anchor.
        run(&format!("DELETE FROM awf.audit_log WHERE id >= {head_id}"));
        assert_eq!(verify()["ok"], json!(true));
        let v = anchored(head_id, &head_hash);
        assert_eq!(v["ok"], json!(false), "{v}");
        assert_eq!(v["first_bad_id"], json!(head_id), "{v}");
        assert!(v["reason"].as_str().unwrap().contains("missing"), "{v}");
        // Bad arguments.
        assert_sqlstate("SELECT awf.audit_verify(1)", "22023");
        assert_sqlstate("SELECT awf.audit_verify(NULL, repeat('a', 64))", "22023");
        assert_sqlstate("SELECT awf.audit_verify(1, 'ABC')", "22023");
        assert_sqlstate(
            &format!("SELECT awf.audit_verify(1, '{}')", "A".repeat(64)),
            "22023",
        );
    }

    #[pg_test]
    fn audit_query_filters_and_orders() {
        new_session();
        let (s1, s2) = (
            "0e6c1a52-0000-4000-8000-000000000001",
            "0e6c1a52-0000-4000-8000-000000000002",
        );
        Spi::connect_mut(|c| {
            crate::audit::record(
                c,
                "sync_up",
                None,
                json!({"save_id": s1, "device_id": "phone"}),
            );
            crate::audit::record(
                c,
                "sync_up",
                None,
                json!({"save_id": s1, "device_id": "tablet"}),
            );
            crate::audit::record(
                c,
                "sync_down",
                None,
                json!({"save_id": s1, "device_id": "phone"}),
            );
            crate::audit::record(
                c,
                "sync_up",
                None,
                json!({"save_id": s2, "device_id": "phone"}),
            );
            crate::audit::record(c, "other", None, json!({}));
        });
        let ids = |args: &str| {
            one::<Vec<i64>>(&format!(
                "SELECT coalesce(array_agg(id ORDER BY ord), '{{}}') FROM awf.audit_query({args})
                 WITH ORDINALITY AS q(id, at, actor, action, session_id, save_id, device_id, details, ord)"
            ))
            .unwrap()
        };
        let all = ids("");
        assert_eq!(all.len(), 5);
        assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first: {all:?}");
        assert_eq!(ids(&format!("save_id => '{s1}'")).len(), 3);
        assert_eq!(ids("device_id => 'phone'").len(), 3);
        assert_eq!(ids("action => 'sync_up'").len(), 3);
        assert_eq!(
            ids(&format!(
                "save_id => '{s1}', device_id => 'phone', action => 'sync_up'"
            )),
            vec![all[4]]
        );
        assert_eq!(ids("max_rows => 2"), all[..2].to_vec());
        assert_eq!(ids("action => 'nothing'"), Vec::<i64>::new());
        // Time range: every row is at now() in this transaction.
        assert_eq!(ids("from_ts => now()").len(), 5);
        assert_eq!(ids("to_ts => now()").len(), 0);
        assert_eq!(
            ids("from_ts => now(), to_ts => now() + interval '1 second'").len(),
            5
        );
        assert_eq!(ids("from_ts => now() + interval '1 second'").len(), 0);
        assert_eq!(
            one::<String>(
                "SELECT details->>'device_id' || ' ' || save_id || ' ' || actor
                 FROM awf.audit_query(action => 'sync_down')"
            )
            .as_deref(),
            Some(
                format!(
                    "phone {s1} {}",
                    one::<String>("SELECT current_user::text").unwrap()
                )
                .as_str()
            )
        );
        assert_eq!(ids("max_rows => NULL").len(), 5);
        assert_sqlstate("SELECT * FROM awf.audit_query(max_rows => 0)", "22023");
        assert_sqlstate("SELECT * FROM awf.audit_query(max_rows => -5)", "22023");
        assert_sqlstate("SELECT * FROM awf.audit_query(max_rows => 10001)", "22023");
        assert_eq!(ids("max_rows => 10000").len(), 5);
        assert_sqlstate(
            "SELECT * FROM awf.audit_query(from_ts => now(), to_ts => now() - interval '1 day')",
            "22023",
        );
    }

    /// Attaches a save to the test session and plays `turns` turns; returns the save id.
    fn save_with_turns(turns: i64) -> String {
        new_session();
        let r = json(&format!("SELECT awf.save_create_or_attach('{SID}', 'u1')"));
        for n in 1..=turns {
            submit(
                n,
                &format!(r#"[{{"op": "increment", "path": "/player/gold", "by": {n}}}]"#),
            );
        }
        r["save_id"].as_str().unwrap().to_owned()
    }

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
