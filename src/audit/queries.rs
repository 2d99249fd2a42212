//! `awf.audit_verify` and `awf.audit_query`: the audit log for operators.
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

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{assert_sqlstate, audited, json, new_session, one, run, SID};
    use pgrx::prelude::*;
    use serde_json::{json, Value};

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
}
