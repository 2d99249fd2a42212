//! Privacy operations on cloud saves: a checksummed export of a save's whole history, deleting
//! a save (blobs no one else uses purged, audit details redacted, a tombstone left), erasing a
//! user (every save, session, device and the data key), and a user's storage quota.
//!
//! The export format (checksummed JSON Lines and its manifest) is `awf_core::jsonl`; redaction
//! is `awf_core::redact`. This module gathers and deletes rows.

use crate::audit;
use crate::errors::{raise, OrRaise};
use crate::gucs;
use crate::jsonb::JsonB;
use crate::saves::blobs;
use crate::saves::store::{self, Save, TurnRow};
use crate::spi::{col, get};
use awf_core::json::Map;
use awf_core::jsonl::{self, Builder};
use awf_core::redact::{redact, RedactOptions};
use awf_core::save::Kind;
use awf_core::{Error, Result};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::{json, Value};

/// The `format` named in the manifest of a save export.
pub const EXPORT_FORMAT: &str = "awf.save-export";

/// The export format version written into the header record.
pub const EXPORT_VERSION: i64 = 1;

/// A save's whole history as checksummed JSON Lines (`format => 'jsonl'`, the default) or as
/// one JSON document (`format => 'json'`): a header record (the save row without its head
/// state), one record per stored turn with its content (a base's state, a diff's RFC 6902
/// patch, a sealed turn's bytes in base64), each archive followed by its turns, the audit rows
/// of the save when `include_audit` (needs admin rights or SELECT on `awf.audit_log`), and a manifest with
/// the record count and the archive checksum (see `awf_core::jsonl`). Every blob is decoded
/// and checked on the way (XX001 rather than a wrong export). Audited.
#[pg_extern(volatile, parallel_unsafe)]
fn save_export(
    save_id: Uuid,
    format: default!(&str, "'jsonl'"),
    include_audit: default!(bool, false),
) -> String {
    const F: &str = "save_export";
    let as_json = match format {
        "jsonl" => false,
        "json" => true,
        other => raise(
            Error::invalid(format!(
                "unknown export format {other:?}: use 'jsonl' (JSON Lines) or 'json' (one document)"
            )),
            F,
        ),
    };
    crate::locks::connect_mut(|c| {
        let s = store::save(c, save_id, false);
        if include_audit && !may_read_audit(c) {
            raise(
                Error::not_allowed("include_audit needs admin rights (awf_admin, or an admin key)"),
                F,
            );
        }
        export_text(c, &s, as_json, include_audit, F)
    })
}

/// Builds a visible save's export (the caller's rights were checked) and audits it.
pub fn export_text(
    c: &mut SpiClient<'_>,
    s: &Save,
    as_json: bool,
    include_audit: bool,
    f: &'static str,
) -> String {
    let save_id = s.save_id;
    let format = if as_json { "json" } else { "jsonl" };
    let exported_at = crate::spi::one_json(c, "SELECT to_jsonb(now())", &[]).expect("now()");
    let mut b = Builder::new(EXPORT_FORMAT, Some(gucs::export_max_bytes()));
    export_records(c, s, include_audit, &exported_at, &mut b).or_raise(f);
    let records = b.len();
    let archive_sha256 = b.archive_sha256();
    let mut extra = Map::new();
    extra.insert("save_id".into(), json!(save_id.to_string()));
    extra.insert("exported_at".into(), exported_at);
    let text = if as_json {
        b.into_json(extra)
    } else {
        b.into_jsonl(extra)
    }
    .or_raise(f);
    audit::bump(c, "awf.export.saves", 1);
    audit::record(
        c,
        "save_export",
        s.session_id,
        json!({
            "save_id": save_id.to_string(),
            "format": format,
            "include_audit": include_audit,
            "records": records,
            "bytes": text.len(),
            "archive_sha256": archive_sha256,
        }),
    );
    text
}

pub fn may_read_audit(c: &mut SpiClient<'_>) -> bool {
    if crate::identity::is_admin() {
        return true;
    }
    let t = crate::spi::run(
        c,
        "SELECT has_table_privilege('awf.audit_log', 'SELECT')",
        Some(1),
        &[],
    )
    .expect("has_table_privilege");
    col(&t.first(), 1)
}

/// Pushes every record of a save's export except the manifest.
fn export_records(
    c: &mut SpiClient<'_>,
    s: &Save,
    include_audit: bool,
    exported_at: &Value,
    b: &mut Builder,
) -> Result<()> {
    let id = s.save_id;
    let row = crate::spi::one_json(
        c,
        "SELECT to_jsonb(s) FROM awf.saves s WHERE save_id = $1",
        &[id.into()],
    )
    .expect("the save's row");
    b.push(&json!({
        "type": "header",
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": exported_at,
        "save": row,
    }))?;
    for t in store::turns(c, id, i64::MIN, i64::MAX) {
        let mut r = turn_record(c, s, &t)?;
        r.insert("type".into(), json!("turn"));
        b.push(&Value::Object(r))?;
    }
    let archives: Vec<(i64, Value)> = crate::spi::run(
        c,
        "SELECT archive_id, to_jsonb(a) FROM awf.save_archives a WHERE save_id = $1
             ORDER BY archive_id",
        None,
        &[id.into()],
    )
    .expect("select awf.save_archives")
    .map(|r| (get(&r, 1), get::<JsonB>(&r, 2).0))
    .collect();
    for (archive_id, row) in archives {
        b.push(&json!({"type": "archive", "archive": row}))?;
        for t in archive_turns(c, archive_id) {
            let mut r = turn_record(c, s, &t)?;
            r.insert("type".into(), json!("archive_turn"));
            r.insert("archive_id".into(), json!(archive_id));
            b.push(&Value::Object(r))?;
        }
    }
    if include_audit {
        // Checked by the caller (may_read_audit); an admin key's transaction has no SELECT on
        // the table itself, so read it as the owner.
        let _owner = crate::audit::AsOwner::enter(c);
        let rows: Vec<Value> = crate::spi::run(
            c,
            "SELECT to_jsonb(l) FROM awf.audit_log l
                 WHERE l.save_id = $1 OR l.details->>'save_id' = $2 ORDER BY l.id",
            None,
            &[id.into(), id.to_string().into()],
        )
        .expect("select awf.audit_log")
        .map(|r| get::<JsonB>(&r, 1).0)
        .collect();
        for row in rows {
            b.push(&json!({"type": "audit", "entry": row}))?;
        }
    }
    Ok(())
}

/// The turns of an archive, in order.
fn archive_turns(c: &mut SpiClient<'_>, archive_id: i64) -> Vec<TurnRow> {
    crate::spi::run(
        c,
        "SELECT turn_id, kind, blob_hash, key_id, content_hash, chain_hash
         FROM awf.save_archive_turns WHERE archive_id = $1 ORDER BY turn_id",
        None,
        &[archive_id.into()],
    )
    .expect("select awf.save_archive_turns")
    .map(|r| TurnRow {
        turn_id: get(&r, 1),
        kind: get::<String>(&r, 2).parse().unwrap_or(Kind::Diff),
        blob_hash: get(&r, 3),
        key_id: get(&r, 4),
        content_hash: get(&r, 5),
        chain_hash: get(&r, 6),
    })
    .collect()
}

/// A turn's record (without its `type`): hashes and the decoded, checked content.
fn turn_record(c: &mut SpiClient<'_>, s: &Save, t: &TurnRow) -> Result<Map<String, Value>> {
    let plain = blobs::load(c, &t.blob_hash, &t.key_id).map_err(|e| {
        Error::new(
            e.kind,
            format!("turn {} of save {}: {}", t.turn_id, s.save_id, e.message),
        )
    })?;
    let content = match t.kind {
        Kind::Sealed => json!(jsonl::base64_encode(&plain)),
        // Base and diff blobs hold canonical JSON, so the record carries the same bytes.
        Kind::Base | Kind::Diff => awf_core::json::parse(&plain).map_err(|e| {
            Error::integrity(format!(
                "turn {} of save {} holds a blob that is not JSON: {}",
                t.turn_id, s.save_id, e.message
            ))
        })?,
    };
    let mut r = Map::new();
    r.insert("turn_id".into(), json!(t.turn_id));
    r.insert("kind".into(), json!(t.kind.as_str()));
    r.insert("content_hash".into(), json!(t.content_hash));
    r.insert("chain_hash".into(), json!(t.chain_hash));
    r.insert("blob_hash".into(), json!(t.blob_hash));
    r.insert("content".into(), content);
    Ok(r)
}

/// Deletes a save and everything of it: `reason` must not be empty. See [`delete_save`].
#[pg_extern(volatile, parallel_unsafe)]
fn save_delete(save_id: Uuid, reason: &str) -> JsonB {
    const F: &str = "save_delete";
    // An admin deletes any save; a device (through the gateway) only its own user's, which
    // row-level security decides below.
    if crate::gucs::acting_device().is_none() {
        crate::identity::require_admin(F);
    }
    check_reason(reason, F);
    crate::locks::connect_mut(|c| {
        let s = store::save(c, save_id, true);
        JsonB(delete_save(c, &s, reason))
    })
}

fn check_reason(reason: &str, f: &'static str) {
    if reason.trim().is_empty() {
        raise(
            Error::invalid("a reason is required (it is kept in the tombstone and the audit log)"),
            f,
        );
    }
}

/// Deletes a locked save: its turns, archives and conflicts (by cascade), the blobs no other
/// save's turn or archive references, and PII in the details of its audit rows; leaves a
/// tombstone (turns, bytes, reason) and a `save_delete` audit entry. `reason` is kept with
/// PII redacted. Returns the counts. Shared with retention (reason `retention`).
pub fn delete_save(c: &mut SpiClient<'_>, s: &Save, reason: &str) -> Value {
    // As the owner: the caller proved its right to the save by locking it under row-level
    // security; the gateway's login has no DML on the tables.
    let _owner = crate::audit::AsOwner::enter(c);
    let actor = crate::identity::actor();
    let id = s.save_id;
    let reason = redacted_text(c, reason);
    let (turns, turn_bytes) = {
        let t = crate::spi::run(
            c,
            "SELECT count(*), coalesce(sum(stored_bytes), 0)::bigint FROM awf.save_diffs
         WHERE save_id = $1",
            Some(1),
            &[id.into()],
        )
        .expect("count turns")
        .first();
        (col::<i64>(&t, 1), col::<i64>(&t, 2))
    };
    let (archives, archived_turns, archive_bytes) = {
        let t = crate::spi::run(
            c,
            "SELECT count(DISTINCT a.archive_id), count(t.turn_id),
                        coalesce(sum(t.stored_bytes), 0)::bigint
                 FROM awf.save_archives a LEFT JOIN awf.save_archive_turns t USING (archive_id)
                 WHERE a.save_id = $1",
            Some(1),
            &[id.into()],
        )
        .expect("count archives")
        .first();
        (col::<i64>(&t, 1), col::<i64>(&t, 2), col::<i64>(&t, 3))
    };
    let conflicts: i64 = crate::spi::one(
        c,
        "SELECT count(*) FROM awf.save_conflicts WHERE save_id = $1",
        &[id.into()],
    )
    .unwrap_or(0);
    let (hashes, key_ids): (Vec<String>, Vec<String>) = crate::spi::run(
        c,
        "SELECT blob_hash, key_id FROM awf.save_diffs WHERE save_id = $1
             UNION
             SELECT t.blob_hash, t.key_id FROM awf.save_archive_turns t
             JOIN awf.save_archives a USING (archive_id) WHERE a.save_id = $1",
        None,
        &[id.into()],
    )
    .expect("select the blobs of a save")
    .map(|r| (get::<String>(&r, 1), get::<String>(&r, 2)))
    .unzip();
    crate::spi::run(
        c,
        "DELETE FROM awf.saves WHERE save_id = $1",
        None,
        &[id.into()],
    )
    .expect("delete from awf.saves");
    // Devices waiting on the save wake and learn it is gone.
    super::notify::head_moved(c, id);
    let blobs_used = hashes.len() as i64;
    let (blobs_purged, bytes_freed) = {
        let t = crate::spi::run(
            c,
            "WITH gone AS (
                   DELETE FROM awf.save_blobs b
                   USING unnest($1::text[], $2::text[]) AS u(blob_hash, key_id)
                   WHERE b.blob_hash = u.blob_hash AND b.key_id = u.key_id
                     AND NOT EXISTS (SELECT FROM awf.save_diffs d
                                     WHERE d.blob_hash = b.blob_hash AND d.key_id = b.key_id)
                     AND NOT EXISTS (SELECT FROM awf.save_archive_turns a
                                     WHERE a.blob_hash = b.blob_hash AND a.key_id = b.key_id)
                   RETURNING b.stored_bytes)
                 SELECT count(*), coalesce(sum(stored_bytes), 0)::bigint FROM gone",
            Some(1),
            &[hashes.into(), key_ids.into()],
        )
        .expect("purge blobs")
        .first();
        (col::<i64>(&t, 1), col::<i64>(&t, 2))
    };
    // Last, after the row locks: rewriting audit rows takes the audit chain's lock.
    let redacted = audit::redact_details(c, id) as i64;
    let bytes = turn_bytes + archive_bytes;
    crate::spi::run(
        c,
        "INSERT INTO awf.save_tombstones (save_id, user_id_hash, session_id, reason, turns, bytes,
                                          deleted_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (save_id) DO UPDATE SET reason = EXCLUDED.reason, turns = EXCLUDED.turns,
           bytes = EXCLUDED.bytes, deleted_at = now(), deleted_by = EXCLUDED.deleted_by",
        None,
        &[
            id.into(),
            s.user_id_hash.as_str().into(),
            s.session_id.into(),
            reason.as_str().into(),
            (turns + archived_turns).into(),
            bytes.into(),
            actor.as_str().into(),
        ],
    )
    .expect("insert into awf.save_tombstones");
    let result = json!({
        "save_id": id.to_string(),
        "reason": reason,
        "turns": turns,
        "archives": archives,
        "archived_turns": archived_turns,
        "conflicts": conflicts,
        "bytes": bytes,
        "blobs_purged": blobs_purged,
        "blobs_kept": blobs_used - blobs_purged,
        "bytes_freed": bytes_freed,
        "audit_rows_redacted": redacted,
    });
    audit::bump(c, "awf.sync.saves_deleted", 1);
    audit::record(c, "save_delete", s.session_id, result.clone());
    result
}

/// Erases a user: every save (as `awf.save_delete`, each leaving a tombstone), every session
/// (with its turns, WAL and snapshots), every device, and the user's data key, so nothing
/// encrypted for them can be decrypted again, not even a copy of a blob kept elsewhere. PII in
/// the details of their saves' audit rows is redacted. P0002 when nothing of the user is left;
/// 22023 for an empty user or reason. Admin only.
#[pg_extern(volatile, parallel_unsafe)]
fn user_delete(user_id_hash: &str, reason: &str) -> JsonB {
    const F: &str = "user_delete";
    if user_id_hash.is_empty() {
        raise(Error::invalid("user_id_hash must not be empty"), F);
    }
    check_reason(reason, F);
    crate::locks::connect_mut(|c| {
        let user = user_id_hash;
        // Sessions before saves: the order awf.turn_submit locks them in.
        let sessions: Vec<Uuid> = crate::spi::column(
            c,
            "SELECT session_id FROM awf.sessions WHERE user_id_hash = $1
             ORDER BY session_id FOR UPDATE",
            &[user.into()],
        );
        let saves: Vec<Uuid> = crate::spi::column(
            c,
            "SELECT save_id FROM awf.saves WHERE user_id_hash = $1 ORDER BY save_id FOR UPDATE",
            &[user.into()],
        );
        let devices: Vec<String> = crate::spi::column(c, "SELECT device_id FROM awf.devices WHERE user_id_hash = $1 ORDER BY device_id FOR UPDATE", &[user.into()]);
        let keys: Vec<String> = crate::spi::column(
            c,
            "SELECT key_id FROM awf.data_keys WHERE user_id_hash = $1 FOR UPDATE",
            &[user.into()],
        );
        if saves.is_empty() && sessions.is_empty() && devices.is_empty() && keys.is_empty() {
            raise(
                Error::not_found(format!(
                    "user {user} has no saves, sessions, devices or data key (already erased?)"
                )),
                F,
            );
        }
        let (mut turns, mut bytes, mut blobs_purged, mut redacted) = (0i64, 0i64, 0i64, 0i64);
        for id in &saves {
            let s = store::save(c, *id, true);
            let r = delete_save(c, &s, reason);
            turns += r["turns"].as_i64().unwrap_or(0) + r["archived_turns"].as_i64().unwrap_or(0);
            bytes += r["bytes"].as_i64().unwrap_or(0);
            blobs_purged += r["blobs_purged"].as_i64().unwrap_or(0);
            redacted += r["audit_rows_redacted"].as_i64().unwrap_or(0);
        }
        // Rows no save ties together (sessions, devices, the user's own) are redacted too.
        redacted += audit::redact_user_rows(c, user, &sessions, &devices) as i64;
        let sessions_deleted = crate::spi::one::<i64>(
            c,
            "WITH gone AS (DELETE FROM awf.sessions WHERE user_id_hash = $1 RETURNING 1)
             SELECT count(*) FROM gone",
            &[user.into()],
        )
        .unwrap_or(0);
        let devices_deleted = crate::spi::one::<i64>(
            c,
            "WITH gone AS (DELETE FROM awf.devices WHERE user_id_hash = $1 RETURNING 1)
             SELECT count(*) FROM gone",
            &[user.into()],
        )
        .unwrap_or(0);
        // Destroying the wrapped data key is what makes every blob ever encrypted for this
        // user unreadable, including copies in backups or exports of the ciphertext.
        let keys_destroyed = crate::spi::one::<i64>(
            c,
            "WITH gone AS (DELETE FROM awf.data_keys WHERE user_id_hash = $1 RETURNING 1)
             SELECT count(*) FROM gone",
            &[user.into()],
        )
        .unwrap_or(0);
        for k in &keys {
            blobs_purged += crate::spi::one::<i64>(
                c,
                "WITH gone AS (
                   DELETE FROM awf.save_blobs b WHERE b.key_id = $1
                     AND NOT EXISTS (SELECT FROM awf.save_diffs d
                                     WHERE d.blob_hash = b.blob_hash AND d.key_id = b.key_id)
                     AND NOT EXISTS (SELECT FROM awf.save_archive_turns a
                                     WHERE a.blob_hash = b.blob_hash AND a.key_id = b.key_id)
                   RETURNING 1)
                 SELECT count(*) FROM gone",
                &[k.into()],
            )
            .unwrap_or(0);
        }
        {
            // The quota lock row carries the user id: an erased user leaves no trace there.
            let _owner = audit::AsOwner::enter(c);
            crate::spi::run(
                c,
                "DELETE FROM awf.locks WHERE name OPERATOR(pg_catalog.=) $1",
                None,
                &[format!("quota:{user}").into()],
            )
            .expect("delete from awf.locks");
        }
        let result = json!({
            "user_id_hash": user,
            "saves": saves.len(),
            "sessions": sessions_deleted,
            "devices": devices_deleted,
            "data_keys_destroyed": keys_destroyed,
            "turns": turns,
            "bytes": bytes,
            "blobs_purged": blobs_purged,
            "audit_rows_redacted": redacted,
        });
        audit::bump(c, "awf.sync.users_erased", 1);
        let reason = redacted_text(c, reason);
        audit::record(
            c,
            "user_delete",
            None,
            json!({"reason": reason, "counts": result}),
        );
        JsonB(result)
    })
}

/// A user's storage: `{user_id_hash, bytes_used, quota_bytes, saves, blobs, shared_blobs}`.
/// Every blob one of the user's saves references (a turn or an archived turn) counts once; a
/// blob other users' saves reference too is split evenly between the users referencing it
/// (rounded to the byte in the total). `quota_bytes` is `awf.sync_user_quota_mb`. An unknown
/// user has zeros. A caller that is not an admin may ask only about the user it acts for
/// (42501 otherwise); under row-level security only that user's saves are visible, so other
/// users sharing a blob are only seen by an admin.
#[pg_extern(stable)]
fn user_quota(user_id_hash: &str) -> JsonB {
    crate::identity::require_acting_for(user_id_hash, "user_quota");
    crate::locks::connect_mut(|c| {
        let t = crate::spi::run(
            c,
            "WITH mine AS (
                   SELECT d.blob_hash, d.key_id FROM awf.save_diffs d
                   JOIN awf.saves s USING (save_id) WHERE s.user_id_hash = $1
                   UNION
                   SELECT t.blob_hash, t.key_id FROM awf.save_archive_turns t
                   JOIN awf.save_archives a USING (archive_id)
                   JOIN awf.saves s ON s.save_id = a.save_id WHERE s.user_id_hash = $1),
                 shared AS (
                   SELECT m.blob_hash, m.key_id, b.stored_bytes,
                          (SELECT count(DISTINCT u.user_id_hash) FROM (
                             SELECT s.user_id_hash FROM awf.save_diffs d
                             JOIN awf.saves s USING (save_id)
                             WHERE d.blob_hash = m.blob_hash AND d.key_id = m.key_id
                             UNION ALL
                             SELECT s.user_id_hash FROM awf.save_archive_turns t
                             JOIN awf.save_archives a USING (archive_id)
                             JOIN awf.saves s ON s.save_id = a.save_id
                             WHERE t.blob_hash = m.blob_hash AND t.key_id = m.key_id) u
                          ) AS users
                   FROM mine m JOIN awf.save_blobs b USING (blob_hash, key_id))
                 SELECT (SELECT count(*) FROM awf.saves WHERE user_id_hash = $1),
                        count(*),
                        count(*) FILTER (WHERE users > 1),
                        coalesce(round(sum(stored_bytes::numeric / greatest(users, 1))), 0)::bigint
                 FROM shared",
            Some(1),
            &[user_id_hash.into()],
        )
        .expect("compute user quota")
        .first();
        JsonB(json!({
            "user_id_hash": user_id_hash,
            "bytes_used": col::<i64>(&t, 4),
            "quota_bytes": gucs::sync_user_quota_bytes(),
            "saves": col::<i64>(&t, 1),
            "blobs": col::<i64>(&t, 2),
            "shared_blobs": col::<i64>(&t, 3),
        }))
    })
}

/// `text` with any PII `awf_core::redact` finds replaced (a reason may name a person).
fn redacted_text(c: &mut SpiClient<'_>, text: &str) -> String {
    let r = redact(
        &json!(text),
        &RedactOptions::new(random_salt(c)),
        &mut gucs::budget(),
    )
    .or_raise("redact");
    match r.document {
        Value::String(s) => s,
        _ => text.to_owned(),
    }
}

fn random_salt(c: &mut SpiClient<'_>) -> String {
    let t = crate::spi::run(c, "SELECT gen_random_uuid()::text", Some(1), &[])
        .expect("gen_random_uuid");
    col(&t.first(), 1)
}

// pg_test functions live in schema `tests`, so the module must carry that name.
#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::saves::keys;
    use crate::saves::tests::tests::use_key_file;
    use crate::testing::{assert_sqlstate, json, one, run, SID};
    use awf_core::canonical::{canonical_bytes, content_hash, sha256_hex};
    use awf_core::codec::{self, keys::WrappedKey, DataKey};
    use awf_core::{jsonl, ErrorKind};
    use pgrx::prelude::*;
    use serde_json::{json, Value};

    const SID2: &str = "22222222-2222-2222-2222-222222222222";
    const SID3: &str = "33333333-3333-3333-3333-333333333333";

    /// Creates a session with the same small state as `testing::new_session`, attaches a save
    /// and plays `turns` turns; returns the save id. Saves made this way share the blob of
    /// their first turn (the same state under the same key) unless encrypted per user.
    fn save_for(sid: &str, user: &str, turns: i64) -> String {
        run(&format!(
            r#"SELECT awf.session_upsert('{sid}', '{user}', '{{"player": {{"hp": 10, "gold": 5, "inventory": []}}}}')"#
        ));
        let r = json(&format!(
            "SELECT awf.save_create_or_attach('{sid}', '{user}')"
        ));
        play(sid, 1, turns);
        r["save_id"].as_str().unwrap().to_owned()
    }

    fn play(sid: &str, from: i64, to: i64) {
        for n in from..=to {
            run(&format!(
                r#"SELECT awf.turn_submit('{sid}', {n}, '{{"txt": "Turn {n}.", "acts": [{{"op": "increment", "path": "/player/gold", "by": {n}}}, {{"op": "append", "path": "/player/inventory", "value": "item {n}"}}]}}')"#
            ));
        }
    }

    /// Writes an audit row through the hash chain, as the extension does.
    fn audit_row(save: Option<&str>, details: Value) {
        let save = save.map(|s| one::<pgrx::Uuid>(&format!("SELECT '{s}'::uuid")).unwrap());
        Spi::connect_mut(|c| {
            crate::audit::record_full(c, "test", None, save, None, details);
        });
    }

    fn count(sql: &str) -> i64 {
        one::<i64>(sql).unwrap_or(0)
    }

    fn export(save: &str, format: &str, audit: bool) -> String {
        one::<String>(&format!(
            "SELECT awf.save_export('{save}', '{format}', {audit})"
        ))
        .expect("export")
    }

    #[pg_test]
    fn export_lines_and_manifest_verify_and_a_tampered_line_does_not() {
        run("SET awf.sync_snapshot_every = 3");
        let save = save_for(SID, "u1", 5);
        run(&format!("SELECT awf.save_restore('{save}', 3)"));
        play(SID, 6, 6);
        audit_row(None, json!({"save_id": save, "n": 1}));
        let text = export(&save, "jsonl", true);
        let lines: Vec<&str> = text.lines().collect();
        assert!(text.ends_with('\n'));

        // Every line by hand: its hash is the SHA-256 of its record's canonical bytes, which
        // are exactly the line's bytes between the frame.
        let mut hashes = Vec::new();
        for l in &lines {
            let v: Value = serde_json::from_str(l).unwrap();
            let record = &v["record"];
            let bytes = canonical_bytes(record).unwrap();
            assert_eq!(v["sha256"], json!(sha256_hex(&bytes)), "{l}");
            assert_eq!(&l.as_bytes()[10..l.len() - 77], bytes.as_slice());
            assert_eq!(*l, jsonl::line(record).unwrap());
            hashes.push(v["sha256"].as_str().unwrap().to_owned());
        }
        let records: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["record"].clone())
            .collect();
        let manifest = records.last().unwrap();
        let n = lines.len() - 1;
        assert_eq!(manifest["type"], json!("manifest"));
        assert_eq!(manifest["format"], json!("awf.save-export"));
        assert_eq!(manifest["records"], json!(n));
        assert_eq!(manifest["save_id"], json!(save));
        assert_eq!(
            manifest["archive_sha256"],
            json!(jsonl::archive_sha256(&hashes[..n]))
        );
        let verified = jsonl::verify_jsonl(&text).unwrap();
        assert_eq!(verified.records.len(), n);

        // What the export holds: the header, turns 0..=4 (turn 4 is session turn 6), the
        // archive of turns 4 and 5 with both, the audit rows of the save.
        let of = |t: &str| records.iter().filter(|r| r["type"] == json!(t)).count();
        assert_eq!(of("header"), 1);
        assert_eq!(records[0]["type"], json!("header"));
        assert_eq!(records[0]["save"]["save_id"], json!(save));
        assert!(records[0]["save"].get("head_state").is_none());
        assert_eq!(records[0]["save"]["head_turn"], json!(4));
        assert_eq!(of("turn"), 5);
        assert_eq!(of("archive"), 1);
        assert_eq!(of("archive_turn"), 2);
        let audit: Vec<&Value> = records
            .iter()
            .filter(|r| r["type"] == json!("audit"))
            .collect();
        let actions: Vec<&str> = audit
            .iter()
            .map(|r| r["entry"]["action"].as_str().unwrap())
            .collect();
        assert!(actions.contains(&"save_create"), "{actions:?}");
        assert!(actions.contains(&"save_restore"), "{actions:?}");
        assert!(actions.contains(&"test"), "{actions:?}");
        assert_eq!(manifest["counts"]["audit"], json!(audit.len()));
        for r in records.iter().filter(|r| r["type"] == json!("turn")) {
            let content = &r["content"];
            let bytes = canonical_bytes(content).unwrap();
            assert_eq!(r["blob_hash"], json!(sha256_hex(&bytes)), "{r}");
            match r["kind"].as_str().unwrap() {
                "base" => assert_eq!(r["content_hash"], json!(content_hash(content).unwrap())),
                "diff" => assert!(content.is_array(), "a diff is an RFC 6902 patch: {r}"),
                other => panic!("unexpected kind {other}"),
            }
        }
        assert_eq!(
            records[1]["content"],
            json!({"player": {"hp": 10, "gold": 5, "inventory": []}}),
            "turn 0 is the attach base"
        );
        let archived: Vec<i64> = records
            .iter()
            .filter(|r| r["type"] == json!("archive_turn"))
            .map(|r| r["turn_id"].as_i64().unwrap())
            .collect();
        assert_eq!(archived, vec![4, 5]);

        // A tampered line is found, and so is a re-hashed one (by the archive checksum).
        let tampered = text.replacen("\"item 2\"", "\"item 7\"", 1);
        assert_ne!(tampered, text);
        let e = jsonl::verify_jsonl(&tampered).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Integrity, "{}", e.message);
        let i = lines.iter().position(|l| l.contains("\"item 2\"")).unwrap();
        let record: Value = serde_json::from_str::<Value>(lines[i]).unwrap()["record"].clone();
        let edited: Value =
            serde_json::from_str(&record.to_string().replacen("item 2", "item 7", 1)).unwrap();
        let mut forged: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        forged[i] = jsonl::line(&edited).unwrap();
        let forged = forged.join("\n") + "\n";
        let e = jsonl::verify_jsonl(&forged).unwrap_err();
        assert!(e.message.contains("archive_sha256"), "{}", e.message);
        let dropped = lines
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != 2)
            .map(|(_, l)| format!("{l}\n"))
            .collect::<String>();
        assert!(jsonl::verify_jsonl(&dropped).is_err());
    }

    #[pg_test]
    fn the_json_format_has_the_same_records_and_checksums() {
        let save = save_for(SID, "u1", 3);
        // now() is the transaction's start, so both exports carry the same exported_at.
        let lines = jsonl::verify_jsonl(&export(&save, "jsonl", false)).unwrap();
        let doc = export(&save, "json", false);
        let parsed: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(awf_core::canonical::canonical_string(&parsed).unwrap(), doc);
        assert_eq!(jsonl::verify_json(&doc).unwrap(), lines);
        assert_eq!(parsed["manifest"], lines.manifest);
        assert!(parsed["records"][0]["sha256"].is_string());
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM awf.audit_log WHERE action = 'save_export' AND details->>'save_id' = '{save}'"
            )),
            2,
            "every export is audited"
        );
        assert!(count("SELECT value FROM awf.metrics WHERE name = 'awf.export.saves'") >= 2);
    }

    #[pg_test]
    fn sealed_turns_are_exported_as_base64() {
        let r = json("SELECT awf.save_create_or_attach(NULL, 'u1', '1.0.0', true)");
        let save = r["save_id"].as_str().unwrap().to_owned();
        run(&format!(
            "SELECT awf.save_persist_sealed('{save}', 1, '\\xdeadbeef'::bytea)"
        ));
        let v = jsonl::verify_jsonl(&export(&save, "jsonl", false)).unwrap();
        let turn = &v.records[1];
        assert_eq!(turn["kind"], json!("sealed"));
        assert_eq!(turn["content"], json!("3q2+7w=="));
        assert_eq!(
            turn["blob_hash"],
            json!(sha256_hex(&[0xde, 0xad, 0xbe, 0xef]))
        );
    }

    #[pg_test]
    fn save_export_error_paths() {
        let save = save_for(SID, "u1", 2);
        assert_sqlstate(&format!("SELECT awf.save_export('{save}', 'xml')"), "22023");
        assert_sqlstate(
            "SELECT awf.save_export('00000000-0000-0000-0000-000000000000')",
            "P0002",
        );
        // Over awf.export_max_size_mb (54000): a 1.2 MB sealed turn is 1.6 MB of base64.
        let sealed = json("SELECT awf.save_create_or_attach(NULL, 'u1', '1.0.0', true)");
        let sealed = sealed["save_id"].as_str().unwrap().to_owned();
        run(&format!(
            "SELECT awf.save_persist_sealed('{sealed}', 1, decode(repeat('0123456789abcdef', 150000), 'hex'))"
        ));
        run("SET awf.export_max_size_mb = 1");
        let before_big = count("SELECT count(*) FROM awf.audit_log");
        assert_sqlstate(&format!("SELECT awf.save_export('{sealed}')"), "54000");
        assert_eq!(count("SELECT count(*) FROM awf.audit_log"), before_big);
        run("RESET awf.export_max_size_mb");
        // A corrupt blob fails the export (XX001) instead of exporting a wrong history.
        run(&format!(
            "UPDATE awf.save_blobs b SET data = set_byte(data, length(data) - 1, get_byte(data, length(data) - 1) # 1)
             FROM awf.save_diffs d
             WHERE d.save_id = '{save}' AND d.turn_id = 2 AND b.blob_hash = d.blob_hash AND b.key_id = d.key_id"
        ));
        assert_sqlstate(&format!("SELECT awf.save_export('{save}')"), "XX001");
        assert_eq!(
            count("SELECT count(*) FROM awf.audit_log WHERE action = 'save_export'"),
            0,
            "a failed export writes nothing"
        );
    }

    #[pg_test]
    fn an_app_user_exports_only_its_own_saves_and_no_audit() {
        let mine = save_for(SID, "u1", 2);
        let theirs = save_for(SID2, "u2", 1);
        run("CREATE ROLE awf_test_privacy_app IN ROLE awf_app");
        run("SET awf.user_id_hash = 'u1'");
        run("SET ROLE awf_test_privacy_app");
        let v = jsonl::verify_jsonl(&export(&mine, "jsonl", false)).unwrap();
        assert_eq!(v.manifest["counts"]["turn"], json!(3));
        assert_sqlstate(&format!("SELECT awf.save_export('{theirs}')"), "P0002");
        assert_sqlstate(
            &format!("SELECT awf.save_export('{mine}', 'jsonl', true)"),
            "42501",
        );
        assert_sqlstate(&format!("SELECT awf.save_delete('{mine}', 'x')"), "42501");
        assert_sqlstate("SELECT awf.user_delete('u1', 'x')", "42501");
        run("RESET ROLE");
    }

    #[pg_test]
    fn an_admin_role_exports_deletes_and_erases_without_superuser() {
        let a = save_for(SID, "u1", 2);
        let b = save_for(SID2, "u2", 1);
        run(&format!(
            "INSERT INTO awf.devices (device_id, user_id_hash, session_id, token_hash, token_expires_at)
             VALUES ('dev-u2', 'u2', '{SID2}', repeat('b', 64), now() + interval '1 day')"
        ));
        run("CREATE ROLE awf_test_privacy_admin IN ROLE awf_admin");
        run("SET ROLE awf_test_privacy_admin");
        let v = jsonl::verify_jsonl(&export(&a, "jsonl", true)).unwrap();
        assert!(v.manifest["counts"]["audit"].as_u64().unwrap() >= 1);
        assert!(
            json("SELECT awf.user_quota('u1')")["bytes_used"]
                .as_i64()
                .unwrap()
                > 0
        );
        let r = json(&format!("SELECT awf.save_delete('{a}', 'admin test')"));
        assert_eq!(r["turns"], json!(3), "{r}");
        let r = json("SELECT awf.user_delete('u2', 'admin test')");
        assert_eq!(r["saves"], json!(1), "{r}");
        assert_eq!(r["devices"], json!(1), "{r}");
        run("RESET ROLE");
        assert_eq!(count("SELECT count(*) FROM awf.saves"), 0);
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM awf.save_tombstones WHERE save_id IN ('{a}', '{b}')"
            )),
            2
        );
        assert_eq!(
            one::<String>(&format!(
                "SELECT deleted_by FROM awf.save_tombstones WHERE save_id = '{b}'"
            ))
            .as_deref(),
            Some("awf_test_privacy_admin")
        );
    }

    #[pg_test]
    fn delete_purges_only_unshared_blobs_and_leaves_a_tombstone() {
        let a = save_for(SID, "u1", 3);
        let b = save_for(SID2, "u2", 0);
        let shared = one::<String>(&format!(
            "SELECT blob_hash FROM awf.save_diffs WHERE save_id = '{a}' AND turn_id = 0"
        ))
        .unwrap();
        assert_eq!(
            one::<String>(&format!(
                "SELECT blob_hash FROM awf.save_diffs WHERE save_id = '{b}' AND turn_id = 0"
            )),
            Some(shared.clone()),
            "both saves start from the same state: one blob"
        );
        let blobs_of_a = count(&format!(
            "SELECT count(DISTINCT blob_hash) FROM awf.save_diffs WHERE save_id = '{a}'"
        ));
        assert_eq!(blobs_of_a, 4);
        audit_row(
            Some(&a),
            json!({"email": "alice@example.com", "from": "203.0.113.7", "turns": 3}),
        );
        audit_row(None, json!({"save_id": a, "note": "mail bob@example.org"}));
        run(&format!(
            "INSERT INTO awf.save_conflicts (save_id, strategy, chosen, report)
             VALUES ('{a}', 'server_wins', 'server', '{{}}')"
        ));
        let r = json(&format!(
            "SELECT awf.save_delete('{a}', 'asked by alice@example.com')"
        ));
        assert_eq!(r["turns"], json!(4), "{r}");
        assert_eq!(r["conflicts"], json!(1), "{r}");
        assert_eq!(r["blobs_purged"], json!(3), "{r}");
        assert_eq!(r["blobs_kept"], json!(1), "{r}");
        assert_eq!(r["audit_rows_redacted"], json!(2), "{r}");
        assert!(r["bytes"].as_i64().unwrap() > 0);
        assert!(!r["reason"].as_str().unwrap().contains("alice"), "{r}");

        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM awf.saves WHERE save_id = '{a}'"
            )),
            0
        );
        for t in ["save_diffs", "save_archives", "save_conflicts"] {
            assert_eq!(
                count(&format!(
                    "SELECT count(*) FROM awf.{t} WHERE save_id = '{a}'"
                )),
                0,
                "{t}"
            );
        }
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM awf.save_blobs WHERE blob_hash = '{shared}'"
            )),
            1,
            "the blob save {b} still uses survives"
        );
        assert_eq!(
            count("SELECT count(*) FROM awf.save_blobs"),
            1,
            "the others are gone"
        );
        assert_eq!(
            json(&format!("SELECT awf.save_verify('{b}')"))["ok"],
            json!(true)
        );
        let tomb = json(&format!(
            "SELECT to_jsonb(t) FROM awf.save_tombstones t WHERE save_id = '{a}'"
        ));
        assert_eq!(tomb["user_id_hash"], json!("u1"));
        assert_eq!(tomb["session_id"], json!(SID));
        assert_eq!(tomb["turns"], json!(4));
        assert_eq!(tomb["bytes"], r["bytes"]);
        assert!(tomb["reason"]
            .as_str()
            .unwrap()
            .starts_with("asked by [REDACTED:email:"));
        assert_eq!(
            count(
                "SELECT count(*) FROM awf.audit_log
                 WHERE details::text ~ '(alice@example\\.com|bob@example\\.org|203\\.0\\.113\\.7)'"
            ),
            0,
            "PII is redacted from the save's audit rows and never written again"
        );
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM awf.audit_log WHERE save_id = '{a}' AND details->>'turns' = '3'"
            )),
            1
        );
        let entry = json(&format!(
            "SELECT details FROM awf.audit_log WHERE action = 'save_delete' AND details->>'save_id' = '{a}'"
        ));
        assert_eq!(entry["turns"], json!(4));
        let v = json("SELECT awf.audit_verify()");
        assert_eq!(
            v["ok"],
            json!(true),
            "redaction keeps the audit chain intact: {v}"
        );
        // The session stays; it just has no save any more.
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM awf.sessions WHERE session_id = '{SID}'"
            )),
            1
        );
    }

    #[pg_test]
    fn save_delete_error_paths() {
        let a = save_for(SID, "u1", 1);
        assert_sqlstate(&format!("SELECT awf.save_delete('{a}', '  ')"), "22023");
        assert_sqlstate(&format!("SELECT awf.save_delete('{a}', '')"), "22023");
        assert_sqlstate(
            "SELECT awf.save_delete('00000000-0000-0000-0000-000000000000', 'x')",
            "P0002",
        );
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM awf.saves WHERE save_id = '{a}'"
            )),
            1
        );
        run(&format!("SELECT awf.save_delete('{a}', 'test')"));
        assert_sqlstate(&format!("SELECT awf.save_delete('{a}', 'test')"), "P0002");
        assert_sqlstate("SELECT awf.user_delete('', 'x')", "22023");
        assert_sqlstate("SELECT awf.user_delete('u1', '')", "22023");
        assert_sqlstate("SELECT awf.user_delete('nobody', 'x')", "P0002");
    }

    /// Every data key this backend can still unwrap.
    fn every_data_key() -> Vec<DataKey> {
        let ring = keys::keyring().unwrap().expect("a key file is set");
        let wrapped: Vec<Vec<u8>> = Spi::connect(|c| {
            c.select("SELECT wrapped FROM awf.data_keys", None, &[])
                .unwrap()
                .map(|r| r.get::<Vec<u8>>(1).unwrap().unwrap())
                .collect()
        });
        wrapped
            .iter()
            .map(|w| ring.unwrap(&WrappedKey::from_bytes(w).unwrap()).unwrap())
            .collect()
    }

    #[pg_test]
    fn erasure_destroys_the_data_key_so_a_kept_ciphertext_cannot_be_decrypted() {
        use_key_file(
            "privacy",
            &["ka:1111111111111111111111111111111111111111111111111111111111111111"],
        );
        let a = save_for(SID, "u1", 3);
        let b = save_for(SID2, "u2", 2);
        run(&format!(
            "INSERT INTO awf.devices (device_id, user_id_hash, session_id, token_hash, token_expires_at)
             VALUES ('dev-u1', 'u1', '{SID}', repeat('a', 64), now() + interval '1 day'),
                    ('dev-u2', 'u2', '{SID2}', repeat('b', 64), now() + interval '1 day')"
        ));
        audit_row(
            Some(&a),
            json!({"ip": "198.51.100.4", "contact": "carol@example.net"}),
        );
        run(&format!("SELECT awf.snapshot_create('{SID}', 'before')"));
        // A copy of one of u1's ciphertexts, kept outside the database.
        let blob = format!(
            "FROM awf.save_blobs b JOIN awf.save_diffs d USING (blob_hash, key_id)
             WHERE d.save_id = '{a}' AND d.turn_id = 2"
        );
        let copy = one::<Vec<u8>>(&format!("SELECT b.data {blob}")).unwrap();
        let key_id = one::<String>(&format!("SELECT b.key_id {blob}")).unwrap();
        assert!(!key_id.is_empty(), "the blob is encrypted");
        let plain = Spi::connect_mut(|c| {
            let key = keys::data_key_by_id(c, &key_id).unwrap();
            codec::decode(&copy, &key).unwrap()
        });
        assert!(String::from_utf8_lossy(&plain).contains("item 2"));
        let b_head = one::<String>(&format!(
            "SELECT awf.canonical_hash(awf.save_materialize('{b}'))"
        ));

        assert_eq!(
            count("SELECT count(*) FROM awf.locks WHERE name = 'quota:u1'"),
            1,
            "the quota lock row names the user"
        );
        let r = json("SELECT awf.user_delete('u1', 'erasure request')");
        assert_eq!(
            count("SELECT count(*) FROM awf.locks WHERE name = 'quota:u1'"),
            0,
            "an erased user's id is gone from the lock rows too"
        );
        assert_eq!(r["saves"], json!(1), "{r}");
        assert_eq!(r["sessions"], json!(1), "{r}");
        assert_eq!(r["devices"], json!(1), "{r}");
        assert_eq!(r["data_keys_destroyed"], json!(1), "{r}");
        assert_eq!(r["turns"], json!(4), "{r}");
        assert_eq!(r["audit_rows_redacted"], json!(1), "{r}");

        // Nothing of u1 is left but the tombstone and the audit trail.
        for (table, filter) in [
            ("saves", "user_id_hash = 'u1'"),
            ("sessions", "user_id_hash = 'u1'"),
            ("devices", "user_id_hash = 'u1'"),
            ("data_keys", "user_id_hash = 'u1'"),
            ("turns", &format!("session_id = '{SID}'") as &str),
            ("turn_wal", &format!("session_id = '{SID}'")),
            ("snapshots", &format!("session_id = '{SID}'")),
            ("save_blobs", &format!("key_id = '{key_id}'")),
        ] {
            assert_eq!(
                count(&format!("SELECT count(*) FROM awf.{table} WHERE {filter}")),
                0,
                "{table}"
            );
        }
        assert_eq!(
            one::<String>(&format!(
                "SELECT reason FROM awf.save_tombstones WHERE save_id = '{a}'"
            ))
            .as_deref(),
            Some("erasure request")
        );
        assert_eq!(
            count(
                "SELECT count(*) FROM awf.audit_log
                 WHERE details::text ~ '(198\\.51\\.100\\.4|carol@example\\.net)'"
            ),
            0
        );
        assert_eq!(
            count("SELECT count(*) FROM awf.audit_log WHERE action = 'user_delete'"),
            1
        );

        assert_eq!(json("SELECT awf.audit_verify()")["ok"], json!(true));

        // The kept copy cannot be decrypted: its data key is gone, and no key this server can
        // still unwrap opens it.
        let e = Spi::connect_mut(|c| keys::data_key_by_id(c, &key_id).unwrap_err());
        assert_eq!(e.kind, ErrorKind::Integrity, "{}", e.message);
        let remaining = every_data_key();
        assert_eq!(remaining.len(), 1, "u2's key is all that is left");
        let e = codec::decode(&copy, &remaining).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{}", e.message);
        for k in &remaining {
            assert!(codec::decode(&copy, k).is_err());
        }

        // Another user's save is untouched.
        assert_eq!(
            one::<String>(&format!(
                "SELECT awf.canonical_hash(awf.save_materialize('{b}'))"
            )),
            b_head
        );
        assert_eq!(
            json(&format!("SELECT awf.save_verify('{b}')"))["ok"],
            json!(true)
        );
        assert_eq!(count("SELECT count(*) FROM awf.devices"), 1);
        assert_sqlstate("SELECT awf.user_delete('u1', 'again')", "P0002");
        run("RESET awf.master_key_file");
    }

    #[pg_test]
    fn quota_counts_each_blob_once_and_splits_shared_ones() {
        let a = save_for(SID, "u1", 2);
        let _b = save_for(SID2, "u2", 0);
        let shared = count(&format!(
            "SELECT b.stored_bytes::bigint FROM awf.save_blobs b JOIN awf.save_diffs d USING (blob_hash, key_id)
             WHERE d.save_id = '{a}' AND d.turn_id = 0"
        ));
        let own = count(&format!(
            "SELECT sum(b.stored_bytes)::bigint FROM awf.save_blobs b JOIN awf.save_diffs d USING (blob_hash, key_id)
             WHERE d.save_id = '{a}' AND d.turn_id > 0"
        ));
        let q = json("SELECT awf.user_quota('u1')");
        let half_up = |x: i64| (x + 1) / 2;
        assert_eq!(q["user_id_hash"], json!("u1"));
        assert_eq!(q["bytes_used"], json!(half_up(2 * own + shared)), "{q}");
        assert_eq!(q["saves"], json!(1));
        assert_eq!(q["blobs"], json!(3));
        assert_eq!(q["shared_blobs"], json!(1));
        let q2 = json("SELECT awf.user_quota('u2')");
        assert_eq!(q2["bytes_used"], json!(half_up(shared)), "{q2}");
        assert_eq!(q2["blobs"], json!(1));

        // A second save of u1 on the same blob, and archived turns, change nothing.
        save_for(SID3, "u1", 0);
        run(&format!("SELECT awf.save_restore('{a}', 0)"));
        let again = json("SELECT awf.user_quota('u1')");
        assert_eq!(again["bytes_used"], q["bytes_used"], "{again}");
        assert_eq!(again["blobs"], json!(3));
        assert_eq!(again["saves"], json!(2));

        run("SET awf.sync_user_quota_mb = 7");
        let none = json("SELECT awf.user_quota('nobody')");
        assert_eq!(
            none,
            json!({"user_id_hash": "nobody", "bytes_used": 0, "quota_bytes": 7 * 1024 * 1024,
                   "saves": 0, "blobs": 0, "shared_blobs": 0})
        );
    }

    #[pg_test]
    fn retention_deletes_saves_untouched_for_the_retention_period() {
        let old = save_for(SID, "u1", 2);
        let fresh = save_for(SID2, "u2", 1);
        run(&format!(
            "UPDATE awf.saves SET updated_at = now() - interval '400 days' WHERE save_id = '{old}'"
        ));
        let r = json("SELECT awf.retention_enforce()");
        assert_eq!(r["saves_deleted"], json!(1), "{r}");
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM awf.saves WHERE save_id = '{old}'"
            )),
            0
        );
        assert_eq!(
            one::<String>(&format!(
                "SELECT reason FROM awf.save_tombstones WHERE save_id = '{old}'"
            ))
            .as_deref(),
            Some("retention")
        );
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM awf.audit_log WHERE action = 'save_delete'
                 AND details->>'save_id' = '{old}' AND details->>'reason' = 'retention'"
            )),
            1
        );
        assert_eq!(
            json(&format!("SELECT awf.save_verify('{fresh}')"))["ok"],
            json!(true)
        );
        assert_eq!(
            json("SELECT awf.retention_enforce()")["saves_deleted"],
            json!(0)
        );
        assert_eq!(json("SELECT awf.audit_verify()")["ok"], json!(true));
    }

    #[pg_test]
    fn user_delete_redacts_audit_rows_of_sessions_and_devices() {
        run("SELECT awf.session_upsert('77777777-7777-7777-7777-777777777777', 'u9', '{}')");
        run("SELECT awf.snapshot_create('77777777-7777-7777-7777-777777777777', 'for ann@example.com')");
        run("SELECT awf.device_register('ann-phone-10.1.2.3', 'u9')");
        assert!(
            count(
                "SELECT count(*) FROM awf.audit_log WHERE details::text LIKE '%ann@example.com%'"
            ) > 0
        );
        run("SELECT awf.user_delete('u9', 'erasure request')");
        assert_eq!(
            count("SELECT count(*) FROM awf.audit_log WHERE details::text LIKE '%ann@example.com%' OR details::text LIKE '%10.1.2.3%'"),
            0
        );
        assert_eq!(json("SELECT awf.audit_verify()")["ok"], json!(true));
    }
}
