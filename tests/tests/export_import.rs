//! Export and import of whole sessions between two databases: the bundle carries the state,
//! turns, WAL and snapshots exactly; redaction removes secrets; limits and tampering are
//! refused without writing anything.

use awf_tests::{random_uuid, sqlstate, TempFile, TestDb};
use postgres::Client;
use serde_json::{json, Value};

fn upsert(c: &mut Client, sid: &str, state: &Value) -> Value {
    c.query_one(
        "SELECT awf.session_upsert($1::text::uuid, 'user-7', $2::jsonb, 'contract/v1')",
        &[&sid, state],
    )
    .unwrap()
    .get(0)
}

fn submit(c: &mut Client, sid: &str, turn: i64, raw: &Value) -> Value {
    c.query_one(
        "SELECT awf.turn_submit($1::text::uuid, $2, $3::jsonb)",
        &[&sid, &turn, raw],
    )
    .unwrap_or_else(|e| panic!("turn {turn}: {e:?}"))
    .get(0)
}

fn export(c: &mut Client, sid: &str, redact: Option<bool>) -> Result<Value, postgres::Error> {
    match redact {
        Some(r) => c.query_one("SELECT awf.session_export($1::text::uuid, $2)", &[&sid, &r]),
        None => c.query_one("SELECT awf.session_export($1::text::uuid)", &[&sid]),
    }
    .map(|r| r.get(0))
}

fn import(c: &mut Client, bundle: &Value, preserve: bool) -> Result<Value, postgres::Error> {
    c.query_one(
        "SELECT awf.session_import($1::jsonb, $2)",
        &[bundle, &preserve],
    )
    .map(|r| r.get(0))
}

/// The acts of turn `k`: every kind in rotation.
fn turn_payload(k: i64) -> Value {
    let act = match k % 7 {
        0 => json!({"op": "increment", "path": "/player/gold", "by": k}),
        1 => json!({"op": "append", "path": "/player/inventory", "value": format!("item-{k}")}),
        2 => json!({"op": "pin", "text": format!("Ash swore oath number {k}.")}),
        3 => {
            json!({"op": "remember", "text": format!("Ash saw omen {k}."), "salience": 0.25 * (k % 4) as f64})
        }
        4 => {
            json!({"op": "objective", "id": format!("q{}", k % 3), "text": format!("Quest step {k}"), "priority": k % 5})
        }
        5 => json!({"op": "replace", "path": "/player/hp", "value": 20 - k}),
        _ => {
            json!({"op": "merge", "path": "/world", "value": {"day": k, "weather": if k % 2 == 0 { "rain" } else { "sun" }}})
        }
    };
    json!({"txt": format!("Turn {k} begins.\nSomething happens on turn {k}."),
           "acts": [act, {"op": "increment", "path": "/world/ticks"}]})
}

struct Source {
    sid: String,
    state_hash: String,
    turns: i64,
}

/// A session with 20 varied turns and two snapshots.
fn build_source(c: &mut Client) -> Source {
    let sid = random_uuid();
    upsert(
        c,
        &sid,
        &json!({"player": {"name": "Ash", "hp": 20, "gold": 5, "inventory": []},
                "world": {"day": 0, "ticks": 0}, "npcs": {"mira": {"mood": "wary"}}}),
    );
    let mut last = Value::Null;
    for k in 1..=20 {
        last = submit(c, &sid, k, &turn_payload(k));
        if k == 7 || k == 14 {
            c.query_one(
                "SELECT awf.snapshot_create($1::text::uuid, $2)",
                &[&sid, &format!("after turn {k}")],
            )
            .unwrap();
        }
    }
    Source {
        sid,
        state_hash: last["state_hash"].as_str().unwrap().to_owned(),
        turns: 20,
    }
}

fn one_i64(c: &mut Client, sql: &str, sid: &str) -> i64 {
    c.query_one(sql, &[&sid]).unwrap().get(0)
}

fn turn_hashes(c: &mut Client, sid: &str) -> Vec<(i64, String, String)> {
    c.query(
        "SELECT turn_id, payload_hash, state_hash FROM awf.turns WHERE session_id = $1::text::uuid ORDER BY turn_id",
        &[&sid],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// An unredacted export imported into another database with the turn numbers kept is the
/// same session: same state hash, counter, turns, WAL and snapshots; a sandbox of the source.
#[test]
fn export_import_round_trip_into_another_database() {
    let src_db = TestDb::new();
    let dst_db = TestDb::new();
    let mut src = src_db.client();
    let mut dst = dst_db.client();
    let source = build_source(&mut src);

    let bundle = export(&mut src, &source.sid, Some(false)).unwrap();
    assert_eq!(bundle["format"], json!("awf.session-bundle"));
    assert_eq!(bundle["redaction"]["applied"], json!(false));
    // Carry it through a file, as an operator would.
    let file = TempFile::with_contents(&serde_json::to_string(&bundle).unwrap());
    let bundle: Value =
        serde_json::from_str(&std::fs::read_to_string(file.path()).unwrap()).unwrap();

    let r = import(&mut dst, &bundle, true).unwrap();
    let new_sid = r["session_id"].as_str().unwrap().to_owned();
    assert_ne!(new_sid, source.sid, "import never reuses the source id");
    assert_eq!(r["state_hash"].as_str().unwrap(), source.state_hash);
    assert_eq!(r["turn_id"], json!(20));
    assert_eq!(r["turns"], json!(20));
    assert_eq!(r["snapshots"], json!(2));
    assert_eq!(r["sandbox_of"].as_str().unwrap(), source.sid);

    let row = dst
        .query_one(
            "SELECT turn_id, state_hash, sandbox_of::text, state, contract_ref, user_id_hash
             FROM awf.sessions WHERE session_id = $1::text::uuid",
            &[&new_sid],
        )
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), source.turns);
    assert_eq!(row.get::<_, String>(1), source.state_hash);
    assert_eq!(row.get::<_, String>(2), source.sid);
    let src_row = src
        .query_one(
            "SELECT state, contract_ref, user_id_hash FROM awf.sessions WHERE session_id = $1::text::uuid",
            &[&source.sid],
        )
        .unwrap();
    assert_eq!(row.get::<_, Value>(3), src_row.get::<_, Value>(0));
    assert_eq!(
        row.get::<_, Option<String>>(4),
        src_row.get::<_, Option<String>>(1)
    );
    assert_eq!(row.get::<_, String>(5), src_row.get::<_, String>(2));

    assert_eq!(
        turn_hashes(&mut dst, &new_sid),
        turn_hashes(&mut src, &source.sid)
    );
    let count_turns = "SELECT count(*) FROM awf.turns WHERE session_id = $1::text::uuid";
    let count_snaps = "SELECT count(*) FROM awf.snapshots WHERE session_id = $1::text::uuid";
    let count_wal =
        "SELECT count(*) FROM awf.turn_wal WHERE session_id = $1::text::uuid AND applied";
    assert_eq!(one_i64(&mut dst, count_turns, &new_sid), 20);
    assert_eq!(one_i64(&mut dst, count_snaps, &new_sid), 2);
    assert_eq!(one_i64(&mut dst, count_wal, &new_sid), 20);
    let snaps = |c: &mut Client, sid: &str| -> Vec<(i64, Option<String>, String)> {
        c.query(
            "SELECT turn_id, label, content_hash FROM awf.snapshots WHERE session_id = $1::text::uuid ORDER BY turn_id",
            &[&sid],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    };
    assert_eq!(snaps(&mut dst, &new_sid), snaps(&mut src, &source.sid));
    // An imported snapshot restores (its hashes check out in the new database).
    let snap_id: i64 = dst
        .query_one(
            "SELECT id FROM awf.snapshots WHERE session_id = $1::text::uuid AND turn_id = 7",
            &[&new_sid],
        )
        .unwrap()
        .get(0);
    dst.query_one(
        "SELECT awf.snapshot_restore($1::text::uuid, $2)",
        &[&new_sid, &snap_id],
    )
    .unwrap();

    // Importing again makes a second, distinct sandbox; the first is untouched.
    let r2 = import(&mut dst, &bundle, true).unwrap();
    let second = r2["session_id"].as_str().unwrap().to_owned();
    assert_ne!(second, new_sid);
    let sandboxes: i64 = dst
        .query_one(
            "SELECT count(DISTINCT session_id) FROM awf.sessions WHERE sandbox_of = $1::text::uuid",
            &[&source.sid],
        )
        .unwrap()
        .get(0);
    assert_eq!(sandboxes, 2);
    assert_eq!(one_i64(&mut dst, count_turns, &second), 20);
    assert_eq!(
        one_i64(&mut dst, count_turns, &new_sid),
        20,
        "the first sandbox kept its turns"
    );
    let audits: i64 = dst
        .query_one(
            "SELECT count(*) FROM awf.audit_log WHERE action = 'session_import'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(audits, 2);
    // The sandbox plays on from turn 21, like the source would.
    let next =
        json!({"txt": "Onward.", "acts": [{"op": "increment", "path": "/player/gold", "by": 2}]});
    let a = submit(&mut dst, &second, 21, &next);
    let b = submit(&mut src, &source.sid, 21, &next);
    assert_eq!(a["state_hash"], b["state_hash"]);
    println!(
        "export/import: 20 turns, 2 snapshots, 20 WAL rows carried across databases; 2 sandboxes, state hashes equal"
    );
}

/// Without preserve_turn_id the sandbox starts at turn 0 (history numbered up to 0) and its
/// next turn is 1.
#[test]
fn import_without_preserving_turn_ids_restarts_the_counter() {
    let src_db = TestDb::new();
    let dst_db = TestDb::new();
    let mut src = src_db.client();
    let mut dst = dst_db.client();
    let source = build_source(&mut src);
    let bundle = export(&mut src, &source.sid, Some(false)).unwrap();

    let r = import(&mut dst, &bundle, false).unwrap();
    let sid = r["session_id"].as_str().unwrap().to_owned();
    assert_eq!(r["turn_id"], json!(0));
    assert_eq!(r["state_hash"].as_str().unwrap(), source.state_hash);
    let row = dst
        .query_one(
            "SELECT turn_id, state_hash FROM awf.sessions WHERE session_id = $1::text::uuid",
            &[&sid],
        )
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 0);
    assert_eq!(row.get::<_, String>(1), source.state_hash);
    let range = dst
        .query_one(
            "SELECT count(*), min(turn_id), max(turn_id) FROM awf.turns WHERE session_id = $1::text::uuid",
            &[&sid],
        )
        .unwrap();
    assert_eq!(
        (
            range.get::<_, i64>(0),
            range.get::<_, i64>(1),
            range.get::<_, i64>(2)
        ),
        (20, -19, 0)
    );
    // Same history, shifted.
    let shifted: Vec<_> = turn_hashes(&mut src, &source.sid)
        .into_iter()
        .map(|(t, p, s)| (t - 20, p, s))
        .collect();
    assert_eq!(turn_hashes(&mut dst, &sid), shifted);

    let err = dst
        .query_one(
            "SELECT awf.turn_submit($1::text::uuid, 21, '{}'::jsonb)",
            &[&sid],
        )
        .unwrap_err();
    assert_eq!(
        sqlstate(&err),
        "22023",
        "the source's numbering no longer applies"
    );
    let next = json!({"txt": "A new start.", "acts": [{"op": "increment", "path": "/player/gold", "by": 2}]});
    let t1 = submit(&mut dst, &sid, 1, &next);
    assert_eq!(
        (t1["turn_id"].clone(), t1["duplicate"].clone()),
        (json!(1), json!(false))
    );
    let t2 = submit(
        &mut dst,
        &sid,
        2,
        &json!({"acts": [{"op": "pin", "text": "The sandbox works."}]}),
    );
    assert_eq!(t2["turn_id"], json!(2));
    let twin = submit(&mut src, &source.sid, 21, &next);
    assert_eq!(
        t1["state_hash"], twin["state_hash"],
        "turn 1 of the sandbox = turn 21 of the source"
    );
    let pins: Value = dst
        .query_one(
            "SELECT state #> '{memory,warm,pins}' FROM awf.sessions WHERE session_id = $1::text::uuid",
            &[&sid],
        )
        .unwrap()
        .get(0);
    assert_eq!(pins.as_array().unwrap().last().unwrap()["turn"], json!(2));
    println!("export/import (renumbered): turns -19..0 imported, counter 0, turns 1 and 2 played");
}

/// The default export redacts: no email or API key anywhere in the bundle (state, turns,
/// WAL, snapshots), the report says what went, and the redacted bundle imports.
#[test]
fn redacted_export_leaves_no_secret_and_imports() {
    const EMAIL: &str = "ash.ketchum@example.com";
    const KEY: &str = "sk-proj-4f9Qa7Lm2Xc8Vb1Nz6Rt3Wy5Ke0Pd";
    let src_db = TestDb::new();
    let dst_db = TestDb::new();
    let mut src = src_db.client();
    let mut dst = dst_db.client();
    let sid = random_uuid();
    upsert(
        &mut src,
        &sid,
        &json!({"player": {"name": "Ash", "email": EMAIL, "gold": 1, "notes": []},
                "settings": {"llm": {"provider": "openai", "key_hint": format!("use {KEY} for the narrator")}}}),
    );
    submit(
        &mut src,
        &sid,
        1,
        &json!({"txt": format!("Ash mails {EMAIL}."),
                "acts": [{"op": "append", "path": "/player/notes", "value": format!("contact {EMAIL}, key {KEY}")}]}),
    );
    src.query_one(
        "SELECT awf.snapshot_create($1::text::uuid, 'with secrets')",
        &[&sid],
    )
    .unwrap();
    submit(
        &mut src,
        &sid,
        2,
        &json!({"acts": [{"op": "increment", "path": "/player/gold"}]}),
    );

    let bundle = export(&mut src, &sid, None).unwrap();
    let text = serde_json::to_string(&bundle).unwrap();
    assert!(!text.contains(EMAIL), "the email is gone from the bundle");
    assert!(!text.contains(KEY), "the API key is gone from the bundle");
    assert!(
        !text.contains("ash.ketchum"),
        "no part of the email is left"
    );
    assert_eq!(bundle["redaction"]["applied"], json!(true));
    let counts = &bundle["redaction"]["report"]["counts"];
    assert!(counts["email"].as_i64().unwrap_or(0) >= 1, "{counts}");
    assert!(counts["api_key"].as_i64().unwrap_or(0) >= 1, "{counts}");
    // Every section that held a secret was redacted, not just the state.
    for section in ["state", "turns", "wal", "snapshots"] {
        let s = bundle["sections"][section].to_string();
        assert!(
            s.contains("[REDACTED:email:"),
            "{section} holds the email's tag"
        );
    }

    let r = import(&mut dst, &bundle, true).unwrap();
    let new_sid = r["session_id"].as_str().unwrap().to_owned();
    let row = dst
        .query_one(
            "SELECT state::text, state_hash, awf.canonical_hash(state) FROM awf.sessions WHERE session_id = $1::text::uuid",
            &[&new_sid],
        )
        .unwrap();
    let (state, hash, recomputed): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert!(state.contains("[REDACTED:email:"), "{state}");
    assert!(state.contains("[REDACTED:api_key:"), "{state}");
    assert!(!state.contains(EMAIL) && !state.contains(KEY));
    assert_eq!(
        hash, recomputed,
        "the sandbox's hash is of the redacted state it holds"
    );
    // The redacted snapshot is restorable and the sandbox plays on.
    let snap: i64 = dst
        .query_one(
            "SELECT id FROM awf.snapshots WHERE session_id = $1::text::uuid",
            &[&new_sid],
        )
        .unwrap()
        .get(0);
    dst.query_one(
        "SELECT awf.snapshot_restore($1::text::uuid, $2)",
        &[&new_sid, &snap],
    )
    .unwrap();
    submit(
        &mut dst,
        &new_sid,
        3,
        &json!({"acts": [{"op": "increment", "path": "/player/gold"}]}),
    );
    let secrets_in_db: i64 = dst
        .query_one(
            "SELECT (SELECT count(*) FROM awf.sessions s WHERE strpos(s::text, $1) > 0 OR strpos(s::text, $2) > 0)
                  + (SELECT count(*) FROM awf.turns t WHERE strpos(t::text, $1) > 0 OR strpos(t::text, $2) > 0)
                  + (SELECT count(*) FROM awf.turn_wal w WHERE strpos(w::text, $1) > 0 OR strpos(w::text, $2) > 0)
                  + (SELECT count(*) FROM awf.snapshots p WHERE strpos(p::text, $1) > 0 OR strpos(p::text, $2) > 0)",
            &[&EMAIL, &KEY],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        secrets_in_db, 0,
        "the importing database never saw the secrets"
    );
    println!(
        "export/import (redacted): {} findings ({counts}), 0 secrets in the bundle, redacted sandbox imported",
        bundle["redaction"]["report"]["total"]
    );
}

/// An export over awf.export_max_size_mb is refused (54000) and leaves no trace.
#[test]
fn export_over_the_size_limit_is_refused() {
    let db = TestDb::new();
    let mut c = db.client();
    let sid = random_uuid();
    let chunk = "abcdefghij".repeat(100);
    let big: Vec<String> = (0..2000).map(|i| format!("{i:04}{chunk}")).collect();
    upsert(
        &mut c,
        &sid,
        &json!({"player": {"name": "Ash"}, "journal": big}),
    );
    let size: i64 = c
        .query_one(
            "SELECT octet_length(awf.canonical_json(state))::bigint FROM awf.sessions WHERE session_id = $1::text::uuid",
            &[&sid],
        )
        .unwrap()
        .get(0);
    assert!(size > 2_000_000, "the state is about 2 MB: {size}");
    let state_of = |c: &mut Client| -> (i64, i64) {
        let r = c
            .query_one(
                "SELECT (SELECT value FROM awf.metrics WHERE name = 'awf.export.sessions'),
                        (SELECT count(*) FROM awf.audit_log WHERE action = 'session_export')",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    let before = state_of(&mut c);

    c.batch_execute("SET awf.export_max_size_mb = 1").unwrap();
    for redact in [Some(false), None] {
        let err = export(&mut c, &sid, redact).unwrap_err();
        assert_eq!(sqlstate(&err), "54000", "{err:?}");
    }
    assert_eq!(
        state_of(&mut c),
        before,
        "no audit row, no metric for a refused export"
    );

    c.batch_execute("RESET awf.export_max_size_mb").unwrap();
    let ok = export(&mut c, &sid, Some(false)).unwrap();
    assert!(serde_json::to_string(&ok).unwrap().len() > 2_000_000);
    assert_eq!(state_of(&mut c), (before.0 + 1, before.1 + 1));
    println!("export/import (limit): {size}-byte state refused at 1 MB (54000), nothing recorded; exported at the default limit");
}

/// A bundle edited after export, or with a section removed, is refused (22023) and creates
/// no session.
#[test]
fn tampered_or_truncated_bundle_is_refused() {
    let src_db = TestDb::new();
    let dst_db = TestDb::new();
    let mut src = src_db.client();
    let mut dst = dst_db.client();
    let source = build_source(&mut src);
    let bundle = export(&mut src, &source.sid, Some(false)).unwrap();
    let sessions = |c: &mut Client| -> i64 {
        c.query_one(
            "SELECT (SELECT count(*) FROM awf.sessions) + (SELECT count(*) FROM awf.turns)
                  + (SELECT count(*) FROM awf.turn_wal) + (SELECT count(*) FROM awf.snapshots)",
            &[],
        )
        .unwrap()
        .get(0)
    };

    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut edited = bundle.clone();
    edited["sections"]["turns"][3]["lines"][0] = json!("Turn 4 begins, and Ash finds a dragon.");
    cases.push(("a turn's line edited", edited));
    let mut truncated = bundle.clone();
    truncated["sections"].as_object_mut().unwrap().remove("wal");
    cases.push(("the wal section removed", truncated));
    let mut no_sum = bundle.clone();
    no_sum["checksums"]["sections"]
        .as_object_mut()
        .unwrap()
        .remove("wal");
    cases.push(("a section checksum removed", no_sum));
    let mut dropped_turn = bundle.clone();
    dropped_turn["sections"]["turns"]
        .as_array_mut()
        .unwrap()
        .pop();
    cases.push(("the last turn dropped", dropped_turn));

    for (what, b) in &cases {
        for preserve in [true, false] {
            let err = import(&mut dst, b, preserve).unwrap_err();
            assert_eq!(sqlstate(&err), "22023", "{what}: {err:?}");
        }
        assert_eq!(sessions(&mut dst), 0, "{what}: nothing was created");
    }
    let audits: i64 = dst
        .query_one("SELECT count(*) FROM awf.audit_log", &[])
        .unwrap()
        .get(0);
    assert_eq!(audits, 0);
    // The untouched bundle still imports.
    import(&mut dst, &bundle, true).unwrap();
    println!(
        "export/import (tampering): {} tampered bundles refused with 22023, 0 sessions created",
        cases.len()
    );
}
