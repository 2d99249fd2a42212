//! Export and import of whole sessions as self-checking bundles. The bundle format
//! (sections, checksums, redaction, size limit, verification) is awf_core's `bundle` module;
//! this file gathers and restores the rows.

use crate::audit;
use crate::errors::{raise, OrRaise};
use crate::gucs;
use crate::jsonb::JsonB;
use crate::spi::col;
use awf_core::bundle::{self, BundleInput, ExportOptions};
use awf_core::{canonical, Error};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::{json, Value};

fn json_array(c: &mut SpiClient<'_>, sql: &str, sid: Uuid) -> Vec<Value> {
    match crate::spi::one_json(c, sql, &[sid.into()]) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    }
}

/// Exports a session (state, turns, WAL, snapshots, metadata) as a versioned bundle with a
/// SHA-256 per section and for the whole. `redact` defaults to `awf.export_redact_sensitive`;
/// the redaction report is part of the bundle. Over `awf.export_max_size_mb`: 54000.
#[pg_extern(volatile, parallel_unsafe)]
fn session_export(session_id: Option<Uuid>, redact: default!(Option<bool>, "NULL")) -> JsonB {
    const F: &str = "session_export";
    let session_id = crate::errors::required(session_id, "session_id", F);
    let redact = redact.unwrap_or_else(gucs::export_redact_sensitive);
    if !redact && !crate::identity::is_admin() {
        raise(
            Error::not_allowed(
                "an unredacted export (redact => false) needs the rights of awf_admin",
            ),
            "session_export",
        );
    }
    crate::locks::connect_mut(|c| {
        // Locked as a turn locks it, so every section describes the same moment.
        let visible = crate::sessions::store::lock_session(c, session_id);
        let session = visible
            .then(|| {
                crate::spi::one_json(
                    c,
                    "SELECT to_jsonb(s) - 'state' FROM awf.sessions s WHERE session_id = $1",
                    &[session_id.into()],
                )
            })
            .flatten();
        let Some(session) = session else {
            raise(
                Error::not_found(format!("session {session_id} does not exist")),
                F,
            )
        };
        let state = crate::spi::one_json(
            c,
            "SELECT state FROM awf.sessions WHERE session_id = $1",
            &[session_id.into()],
        )
        .unwrap_or(Value::Null);
        let turns = json_array(
            c,
            "SELECT jsonb_agg(to_jsonb(t) - 'session_id' ORDER BY t.turn_id)
             FROM awf.turns t WHERE session_id = $1",
            session_id,
        );
        let wal = json_array(
            c,
            "SELECT jsonb_agg(to_jsonb(w) - 'session_id' - 'id' ORDER BY w.turn_id)
             FROM awf.turn_wal w WHERE session_id = $1",
            session_id,
        );
        let snapshots = json_array(
            c,
            "SELECT jsonb_agg(to_jsonb(s) - 'session_id' ORDER BY s.id)
             FROM awf.snapshots s WHERE session_id = $1",
            session_id,
        );
        let metadata = crate::spi::one_json(c, "SELECT jsonb_build_object('exported_at', now(), 'source_database', current_database(),
                    'extension_version', (SELECT extversion FROM pg_extension WHERE extname = 'awf_lifecycle'),
                    'session_id', $1::text)", &[session_id.into()])
        .unwrap_or(Value::Null);
        // A fresh salt per export: tags correlate within one bundle, not across bundles.
        let salt = crate::spi::one_json(
            c,
            "SELECT to_jsonb(gen_random_uuid()::text) WHERE $1 IS NOT NULL",
            &[session_id.into()],
        )
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
        let (n_turns, n_snapshots) = (turns.len(), snapshots.len());
        let bundle = bundle::build(
            BundleInput {
                session,
                state,
                turns,
                wal,
                snapshots,
                metadata,
            },
            &ExportOptions {
                redact,
                salt,
                max_bytes: Some(gucs::export_max_bytes()),
            },
            &mut gucs::budget(),
        )
        .or_raise(F);
        audit::bump(c, "awf.export.sessions", 1);
        audit::record(
            c,
            "session_export",
            Some(session_id),
            json!({"redacted": redact, "turns": n_turns, "snapshots": n_snapshots,
                   "bundle_checksum": bundle["checksums"]["bundle"],
                   "redaction_counts": bundle["redaction"]["report"]["counts"]}),
        );
        JsonB(bundle)
    })
}

/// Imports a bundle as a new sandbox session that records its source; never overwrites.
/// The bundle's format, version and checksums are checked first (22023 saying what failed).
/// With `preserve_turn_id` the session keeps the source's turn numbers and counter; without
/// it the counter starts at 0 and the imported history is numbered up to 0 (the last
/// imported turn is 0, earlier ones negative), so the sandbox's next turn is 1.
#[pg_extern(volatile, parallel_unsafe)]
fn session_import(bundle: JsonB, preserve_turn_id: default!(bool, false)) -> JsonB {
    const F: &str = "session_import";
    crate::identity::require_admin(F);
    let mut budget = gucs::budget();
    let verified = bundle::verify(&bundle.0, &mut budget).or_raise(F);
    let session = verified.session();
    let state = Value::Object(verified.state().clone());
    let state_hash = canonical::content_hash_within(&state, &mut budget).or_raise(F);
    let text = |k: &str| session.get(k).and_then(Value::as_str).map(str::to_owned);
    let Some(user_id_hash) = text("user_id_hash").filter(|u| !u.is_empty()) else {
        raise(Error::invalid("bundle session has no user_id_hash"), F)
    };
    // jsonb may have rewritten 7 as 7.0; a missing or fractional counter is a bad bundle.
    let source_turn = session
        .get("turn_id")
        .and_then(|v| {
            v.as_i64().or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            })
        })
        .filter(|t| *t >= 0)
        .unwrap_or_else(|| raise(Error::invalid("bundle session has no valid turn_id"), F));
    let offset = if preserve_turn_id { 0 } else { -source_turn };
    let source_id = text("session_id");
    let source = json!({
        "bundle_checksum": verified.bundle_checksum,
        "redacted": verified.redacted,
        "source_session_id": source_id,
        "exported_at": verified.metadata().get("exported_at"),
        "source_database": verified.metadata().get("source_database"),
        "source_turn_id": source_turn,
    });
    check_rows(&verified).or_raise(F);
    // Snapshots of a redacted export hold redacted states: re-address them by what they hold.
    let mut snapshots = Vec::with_capacity(verified.snapshots().len());
    for s in verified.snapshots() {
        let mut payload = s.get("payload").cloned().unwrap_or(Value::Null);
        if !payload.is_object() {
            raise(Error::invalid("bundle snapshot has no payload object"), F);
        }
        let sh = canonical::content_hash(&payload["state"]).or_raise(F);
        payload["state_hash"] = json!(sh);
        let ch = canonical::content_hash(&json!({
            "version": payload["version"], "contract_ref": payload["contract_ref"], "state": payload["state"],
        }))
        .or_raise(F);
        let mut row = s.clone();
        row["payload"] = payload;
        row["content_hash"] = json!(ch);
        snapshots.push(row);
    }
    let turns = Value::Array(verified.turns().to_vec());
    // The payload hash is recomputed here, since a redacted export rewrote the payloads.
    let mut wal = verified.wal().to_vec();
    for w in &mut wal {
        if let Some(raw) = w.get("awf_raw") {
            let hash = awf_core::canonical::content_hash(raw).or_raise(F);
            w["payload_hash"] = Value::String(hash);
        }
    }
    let wal = Value::Array(wal);
    let snapshots = Value::Array(snapshots);
    let (n_turns, n_snapshots) = (verified.turns().len(), verified.snapshots().len());
    let bundle_checksum = verified.bundle_checksum.clone();
    crate::locks::connect_mut(|c| {
        // As the owner: only admins get here (checked above), and the gateway's login has no
        // INSERT on the tables, whatever key it presented.
        let owner = crate::audit::AsOwner::enter(c);
        let t = crate::spi::run(
            c,
            "INSERT INTO awf.sessions (session_id, user_id_hash, turn_id, state, state_hash,
                                           contract_ref, sandbox_of, source)
                 VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6::uuid, $7)
                 RETURNING session_id",
            Some(1),
            &[
                user_id_hash.as_str().into(),
                (source_turn + offset).into(),
                JsonB(state).into(),
                state_hash.as_str().into(),
                text("contract_ref").into(),
                source_id.clone().into(),
                JsonB(source).into(),
            ],
        )
        .expect("insert imported session");
        let new_id: Uuid = col(&t.first(), 1);
        crate::spi::run(c,
            "INSERT INTO awf.turns (session_id, turn_id, lines, acts, payload_hash, state_hash, applied_at)
             SELECT $1, (t->>'turn_id')::bigint + $2,
                    ARRAY(SELECT jsonb_array_elements_text(coalesce(t->'lines', '[]'))),
                    coalesce(t->'acts', '[]'), t->>'payload_hash', t->>'state_hash',
                    coalesce((t->>'applied_at')::timestamptz, now())
             FROM jsonb_array_elements($3) t",
            None,
            &[new_id.into(), offset.into(), JsonB(turns).into()],
        )
        .expect("insert imported turns");
        crate::spi::run(c,
            // Applied entries come over as history. Unapplied ones stay behind: they belong to
            // the source's state, and a sandbox must not replay them.
            "INSERT INTO awf.turn_wal (session_id, turn_id, awf_raw, payload_hash, state_hash_before,
                                       applied, attempts, last_error, created_at, applied_at)
             SELECT $1, (w->>'turn_id')::bigint + $2, w->'awf_raw', w->>'payload_hash',
                    w->>'state_hash_before', true, (w->>'attempts')::int,
                    w->>'last_error', (w->>'created_at')::timestamptz, (w->>'applied_at')::timestamptz
             FROM jsonb_array_elements($3) w
             WHERE (w->>'applied')::boolean",
            None,
            &[new_id.into(), offset.into(), JsonB(wal).into()],
        )
        .expect("insert imported WAL");
        crate::spi::run(c,
            "INSERT INTO awf.snapshots (session_id, turn_id, created_at, label, content_hash, payload)
             SELECT $1, (s->>'turn_id')::bigint + $2, (s->>'created_at')::timestamptz,
                    s->>'label', s->>'content_hash', s->'payload'
             FROM jsonb_array_elements($3) s
             ON CONFLICT (session_id, content_hash) DO NOTHING",
            None,
            &[new_id.into(), offset.into(), JsonB(snapshots).into()],
        )
        .expect("insert imported snapshots");
        drop(owner);
        audit::bump(c, "awf.import.sessions", 1);
        let result = json!({
            "session_id": new_id.to_string(),
            "sandbox_of": source_id,
            "turn_id": source_turn + offset,
            "turns": n_turns,
            "snapshots": n_snapshots,
            "state_hash": state_hash,
            "bundle_checksum": bundle_checksum,
        });
        audit::record(c, "session_import", Some(new_id), result.clone());
        JsonB(result)
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{assert_sqlstate, json, new_session, one, run, submit, SID};
    use pgrx::prelude::*;
    use serde_json::json;

    #[pg_test]
    fn export_import_round_trip() {
        new_session();
        submit(1, r#"[{"op": "increment", "path": "/player/gold"}]"#);
        submit(2, r#"[{"op": "pin", "text": "kept"}]"#);
        run(&format!("SELECT awf.snapshot_create('{SID}', 's')"));
        run(&format!(
            "CREATE TEMP TABLE b AS SELECT awf.session_export('{SID}', false) AS bundle"
        ));
        let r = json("SELECT awf.session_import(bundle, true) FROM b");
        assert_eq!(r["turn_id"], json!(2));
        assert_eq!(r["sandbox_of"], json!(SID));
        let new_id = r["session_id"].as_str().unwrap().to_owned();
        assert_ne!(new_id, SID);
        assert_eq!(
            one::<String>(&format!(
                "SELECT state_hash FROM awf.sessions WHERE session_id = '{new_id}'"
            )),
            one::<String>(&format!(
                "SELECT state_hash FROM awf.sessions WHERE session_id = '{SID}'"
            ))
        );
        // Without preserve_turn_id the sandbox counts from 0 and history ends at turn 0.
        let r = json("SELECT awf.session_import(bundle) FROM b");
        assert_eq!(r["turn_id"], json!(0));
        let sid2 = r["session_id"].as_str().unwrap().to_owned();
        assert_eq!(
            one::<String>(&format!(
                "SELECT string_agg(turn_id::text, ',' ORDER BY turn_id) FROM awf.turns WHERE session_id = '{sid2}'"
            ))
            .as_deref(),
            Some("-1,0")
        );
        run(&format!(
            r#"SELECT awf.turn_submit('{sid2}', 1, '{{"txt": "fresh"}}')"#
        ));
        assert_eq!(
            one::<i64>("SELECT value FROM awf.metrics WHERE name = 'awf.import.sessions'"),
            Some(2)
        );
    }

    /// Every redaction finding carries its pointer: 3,000 emails under five 100 KB member names
    /// (a 1.5 MB state) would report 1.5 GB of pointers. The export is refused within its
    /// budget instead, and writes nothing.
    #[pg_test]
    fn an_export_whose_redaction_report_would_explode_is_refused() {
        run(&format!(
            "SELECT awf.session_upsert('{SID}', 'u1', {})",
            (0..5).fold(
                "(SELECT jsonb_agg('mail ann@example.com'::text) FROM generate_series(1, 3000))"
                    .to_string(),
                |inner, l| format!("jsonb_build_object(repeat('k', 100000) || '{l}', {inner})")
            )
        ));
        let audit = one::<i64>("SELECT count(*) FROM awf.audit_log");
        assert_sqlstate(&format!("SELECT awf.session_export('{SID}')"), "54000");
        assert_eq!(one::<i64>("SELECT count(*) FROM awf.audit_log"), audit);
        assert_sqlstate(
            &format!("SELECT awf.redact(state) FROM awf.sessions WHERE session_id = '{SID}'"),
            "54000",
        );
    }

    #[pg_test]
    fn export_redacts_by_default_and_import_refuses_tampering() {
        run(&format!(
            r#"SELECT awf.session_upsert('{SID}', 'u1', '{{"player": {{"email": "ann@example.com"}}}}')"#
        ));
        let b = json(&format!("SELECT awf.session_export('{SID}')"));
        assert!(!b.to_string().contains("ann@example.com"));
        assert_eq!(b["redaction"]["report"]["counts"]["email"], json!(1));
        let sessions = one::<i64>("SELECT count(*) FROM awf.sessions");
        assert_sqlstate(
            &format!(
                "SELECT awf.session_import(jsonb_set(awf.session_export('{SID}', false), '{{sections,state,player,email}}', '\"x\"'))"
            ),
            "22023",
        );
        assert_sqlstate(
            &format!(
                "SELECT awf.session_import(awf.session_export('{SID}') #- '{{sections,wal}}')"
            ),
            "22023",
        );
        assert_sqlstate("SELECT awf.session_import('{}')", "22023");
        assert_eq!(one::<i64>("SELECT count(*) FROM awf.sessions"), sessions);
    }

    #[pg_test]
    fn export_error_paths() {
        new_session();
        assert_sqlstate(
            "SELECT awf.session_export('00000000-0000-0000-0000-000000000000')",
            "P0002",
        );
        run(&format!(
            "SELECT awf.session_upsert('{SID}', 'u1', jsonb_build_object('blob', repeat('x', 1100000)))"
        ));
        run("SET awf.export_max_size_mb = 1");
        assert_sqlstate(
            &format!("SELECT awf.session_export('{SID}', false)"),
            "54000",
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM awf.audit_log WHERE action = 'session_export'"),
            Some(0)
        );
    }

    #[pg_test]
    fn a_hand_built_bundle_with_malformed_rows_is_22023() {
        use awf_core::bundle::{build, BundleInput, ExportOptions};
        let bundle = build(
            BundleInput {
                session: json!({"session_id": SID, "user_id_hash": "u1", "turn_id": 1}),
                state: json!({"hp": 1}),
                turns: vec![json!({"turn_id": 1, "state_hash": "x"})],
                wal: vec![],
                snapshots: vec![],
                metadata: json!({}),
            },
            &ExportOptions {
                redact: false,
                salt: String::new(),
                max_bytes: None,
            },
            &mut awf_core::Budget::default(),
        )
        .unwrap();
        assert_sqlstate(&format!("SELECT awf.session_import('{bundle}')"), "22023");
        assert_eq!(one::<i64>("SELECT count(*) FROM awf.sessions"), Some(0));
    }
}

/// A required member of a bundle row: its name, its type check, and the type for messages.
type Member = (&'static str, fn(&Value) -> bool, &'static str);

/// The members each row kind needs, with their JSON types: a bundle whose checksums verify can
/// still have been built by hand, and a missing member must be 22023, not a constraint error.
fn check_rows(b: &bundle::VerifiedBundle<'_>) -> Result<(), Error> {
    fn need(section: &str, rows: &[Value], members: &[Member]) -> Result<(), Error> {
        for (i, row) in rows.iter().enumerate() {
            for (name, ok, what) in members {
                if !row.get(*name).is_some_and(ok) {
                    return Err(Error::invalid(format!(
                        "bundle section \"{section}\" row {i}: \"{name}\" must be {what}"
                    )));
                }
            }
        }
        Ok(())
    }
    fn int(v: &Value) -> bool {
        v.as_i64().is_some()
            || v.as_f64()
                .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9e15)
    }
    let text: fn(&Value) -> bool = Value::is_string;
    need(
        "turns",
        b.turns(),
        &[
            ("turn_id", int, "an integer"),
            ("payload_hash", text, "a string"),
            ("state_hash", text, "a string"),
        ],
    )?;
    need(
        "wal",
        b.wal(),
        &[
            ("turn_id", int, "an integer"),
            ("awf_raw", Value::is_object, "an object"),
            ("applied", Value::is_boolean, "a boolean"),
        ],
    )?;
    need(
        "snapshots",
        b.snapshots(),
        &[
            ("turn_id", int, "an integer"),
            ("payload", Value::is_object, "an object"),
        ],
    )
}
