//! Cloud saves over real connections: what the in-backend tests (`src/saves/tests.rs`, one
//! rolled-back transaction each) cannot show. Hundreds of realistic turns committed and read
//! back byte for byte from another connection, session turns flowing into the save, every
//! stored row corrupted in turn, limits that must leave nothing behind for a new connection,
//! encryption with real key files read by the server process, restore and undo across
//! connections, and retention that prunes without breaking the chain.

use awf_core::canonical::{canonical_bytes, sha256_hex};
use awf_sample::{game_state, next_turn, turn_of};
use awf_tests::{random_uuid, sqlstate, TempDir, TestDb, TestRole};
use postgres::{Client, GenericClient};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Helpers

/// The RFC 8785 bytes of a state (sample states always canonicalize).
fn canon(v: &Value) -> Vec<u8> {
    canonical_bytes(v).expect("sample states canonicalize")
}

fn upsert(c: &mut Client, sid: &str, user: &str, state: &Value) {
    let r: Value = c
        .query_one(
            "SELECT awf.session_upsert($1::text::uuid, $2, $3::jsonb)",
            &[&sid, &user, state],
        )
        .unwrap()
        .get(0);
    assert_eq!(r["created"], json!(true), "{r}");
}

/// Attaches a new save to a fresh session (turn 0) and returns its id.
fn attach(c: &mut Client, sid: &str, user: &str) -> String {
    let r: Value = c
        .query_one(
            "SELECT awf.save_create_or_attach($1::text::uuid, $2)",
            &[&sid, &user],
        )
        .unwrap()
        .get(0);
    assert_eq!(r["created"], json!(true), "{r}");
    assert_eq!(r["head_turn"], json!(0), "{r}");
    r["save_id"].as_str().expect("save_id").to_owned()
}

fn persist(
    c: &mut impl GenericClient,
    save: &str,
    turn: i64,
    state: &Value,
) -> Result<Value, postgres::Error> {
    c.query_one(
        "SELECT awf.save_persist_turn($1::text::uuid, $2, $3::jsonb)",
        &[&save, &turn, state],
    )
    .map(|r| r.get(0))
}

fn materialize_bytes(
    c: &mut impl GenericClient,
    save: &str,
    turn: i64,
) -> Result<Vec<u8>, postgres::Error> {
    c.query_one(
        "SELECT awf.save_materialize_bytes($1::text::uuid, $2)",
        &[&save, &turn],
    )
    .map(|r| r.get(0))
}

fn materialize(
    c: &mut impl GenericClient,
    save: &str,
    turn: i64,
) -> Result<Value, postgres::Error> {
    c.query_one(
        "SELECT awf.save_materialize($1::text::uuid, $2)",
        &[&save, &turn],
    )
    .map(|r| r.get(0))
}

fn verify(c: &mut impl GenericClient, save: &str) -> Value {
    c.query_one("SELECT awf.save_verify($1::text::uuid)", &[&save])
        .unwrap()
        .get(0)
}

fn submit(c: &mut Client, sid: &str, turn: i64, raw: &Value) -> Result<Value, postgres::Error> {
    c.query_one(
        "SELECT awf.turn_submit($1::text::uuid, $2, $3::jsonb)",
        &[&sid, &turn, raw],
    )
    .map(|r| r.get(0))
}

/// The SQLSTATE and message of a call that must fail.
fn failure<T>(r: Result<T, postgres::Error>, what: &str) -> (String, String) {
    match r {
        Ok(_) => panic!("expected {what} to fail, it succeeded"),
        Err(e) => {
            let msg = e
                .as_db_error()
                .map(|d| d.message().to_owned())
                .unwrap_or_else(|| e.to_string());
            (sqlstate(&e), msg)
        }
    }
}

/// `n` random alphanumeric characters: text that compresses to about 3/4 of its size.
fn noise(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// A turn of play through the built-in acts (the sample state has every path they touch).
fn act_payload(k: i64) -> Value {
    let mut acts = vec![
        json!({"op": "increment", "path": "/player/gold", "by": k % 7 + 1}),
        json!({"op": "append", "path": "/player/inventory", "value": format!("relic-{k}")}),
        json!({"op": "remember", "text": format!("Turn {k}: the party crossed the ford."),
               "salience": ((k % 4) + 1) as f64 / 4.0}),
    ];
    if k % 5 == 0 {
        acts.push(json!({"op": "pin", "text": format!("Milestone reached at turn {k}")}));
    }
    if k % 7 == 0 {
        acts.push(
            json!({"op": "objective", "id": "q-ford", "text": "Cross the ford",
                         "priority": k % 5 + 1, "status": "active"}),
        );
    }
    if k % 3 == 0 {
        let mut flags = Map::new();
        flags.insert(format!("seen_{k}"), json!(true));
        acts.push(json!({"op": "merge", "path": "/world/flags", "value": flags}));
    }
    json!({"txt": format!("Turn {k}.\nThe river rises."), "acts": acts})
}

/// The `awf.turns.state_hash` of every applied turn of a session.
fn turn_hashes(c: &mut Client, sid: &str) -> BTreeMap<i64, String> {
    c.query(
        "SELECT turn_id, state_hash FROM awf.turns WHERE session_id = $1::text::uuid ORDER BY turn_id",
        &[&sid],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Everything a refused call must leave as it was, read on a NEW connection.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    head_turn: i64,
    head_chain: String,
    head_content_hash: Option<String>,
    bytes_stored: i64,
    save_diffs: i64,
    all_save_diffs: i64,
    save_blobs: i64,
    /// (turn_id, state_hash, awf.turns rows, awf.turn_wal rows) of the save's session.
    session: Option<(i64, String, i64, i64)>,
}

fn footprint(db: &TestDb, save: &str) -> Footprint {
    let mut c = db.client();
    let r = c
        .query_one(
            "SELECT s.head_turn, s.head_chain, s.head_content_hash, s.bytes_stored,
                    (SELECT count(*) FROM awf.save_diffs d WHERE d.save_id = s.save_id),
                    (SELECT count(*) FROM awf.save_diffs),
                    (SELECT count(*) FROM awf.save_blobs),
                    s.session_id::text
             FROM awf.saves s WHERE s.save_id = $1::text::uuid",
            &[&save],
        )
        .unwrap();
    let sid: Option<String> = r.get(7);
    let session = sid.map(|sid| {
        let s = c
            .query_one(
                "SELECT x.turn_id, x.state_hash,
                        (SELECT count(*) FROM awf.turns t WHERE t.session_id = x.session_id),
                        (SELECT count(*) FROM awf.turn_wal w WHERE w.session_id = x.session_id)
                 FROM awf.sessions x WHERE x.session_id = $1::text::uuid",
                &[&sid],
            )
            .unwrap();
        (s.get(0), s.get(1), s.get(2), s.get(3))
    });
    Footprint {
        head_turn: r.get(0),
        head_chain: r.get(1),
        head_content_hash: r.get(2),
        bytes_stored: r.get(3),
        save_diffs: r.get(4),
        all_save_diffs: r.get(5),
        save_blobs: r.get(6),
        session,
    }
}

fn small_state(name: &str) -> Value {
    json!({"player": {"name": name, "gold": 1, "inventory": []}})
}

// ---------------------------------------------------------------------------------------------
// 1. Volume and exactness

/// A 500-turn save of a ~20 KB realistic state, persisted turn by turn and committed, gives
/// back every turn's exact canonical bytes on another connection; the jsonb form parses to the
/// same bytes; verify checks all 501 turns.
#[test]
fn a_500_turn_save_materializes_every_turn_byte_exact() {
    const TURNS: i64 = 500;
    const EVERY: i64 = 25;
    let seed = 500;
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(&format!("SET awf.sync_snapshot_every = {EVERY}"))
        .unwrap();
    let sid = random_uuid();
    let mut state = game_state(20_000, seed);
    upsert(&mut c, &sid, "u-500", &state);
    let save = attach(&mut c, &sid, "u-500");

    let mut kept = vec![canon(&state)];
    let start = turn_of(&state);
    let stmt = c
        .prepare("SELECT awf.save_persist_turn($1::text::uuid, $2, $3::jsonb)")
        .unwrap();
    for t in 1..=TURNS {
        next_turn(&mut state, start + t, seed);
        let bytes = canon(&state);
        let r: Value = c
            .query_one(&stmt, &[&save, &t, &state])
            .unwrap_or_else(|e| panic!("persist turn {t}: {e}"))
            .get(0);
        assert_eq!(r["turn_id"], json!(t), "{r}");
        let kind = if t % EVERY == 0 { "base" } else { "diff" };
        assert_eq!(r["kind"], json!(kind), "turn {t}: {r}");
        assert_eq!(r["content_hash"], json!(sha256_hex(&bytes)), "turn {t}");
        assert_eq!(r["state_bytes"], json!(bytes.len()), "turn {t}");
        kept.push(bytes);
    }
    drop(c);

    // Everything above is committed: read it back on a new connection.
    let mut r = db.client();
    let mb = r
        .prepare("SELECT awf.save_materialize_bytes($1::text::uuid, $2)")
        .unwrap();
    let mut mismatched = Vec::new();
    for t in 0..=TURNS {
        let got: Vec<u8> = r
            .query_one(&mb, &[&save, &t])
            .unwrap_or_else(|e| panic!("materialize_bytes turn {t}: {e}"))
            .get(0);
        if got != kept[t as usize] {
            mismatched.push(t);
        }
    }
    assert!(
        mismatched.is_empty(),
        "turns whose materialized bytes differ from the persisted state: {mismatched:?}"
    );
    let head: Vec<u8> = r
        .query_one(
            "SELECT awf.save_materialize_bytes($1::text::uuid)",
            &[&save],
        )
        .unwrap()
        .get(0);
    assert_eq!(head, kept[TURNS as usize], "the default target is the head");

    let sample: BTreeSet<i64> = (0..=TURNS)
        .step_by(17)
        .chain([1, 24, 25, 26, 249, 250, 251, 499, TURNS])
        .collect();
    for &t in &sample {
        let v = materialize(&mut r, &save, t).unwrap_or_else(|e| panic!("turn {t}: {e}"));
        assert_eq!(
            canon(&v),
            kept[t as usize],
            "save_materialize({t}) parses to other canonical bytes"
        );
    }

    let v = verify(&mut r, &save);
    assert_eq!(v["ok"], json!(true), "{v}");
    assert_eq!(v["turns_checked"], json!(TURNS + 1), "{v}");
    assert_eq!(v["first_bad_turn"], Value::Null, "{v}");

    // The head state as a stored jsonb (TOAST-compressed), to compare with.
    r.execute(
        "CREATE TEMP TABLE head AS SELECT awf.save_materialize($1::text::uuid) AS state",
        &[&save],
    )
    .unwrap();
    let row = r
        .query_one(
            "SELECT (SELECT sum(stored_bytes) FROM awf.save_diffs d WHERE d.save_id = s.save_id)::bigint,
                    (SELECT sum(stored_bytes) FROM awf.save_diffs d
                      WHERE d.save_id = s.save_id AND d.turn_id > 0)::bigint,
                    (SELECT count(*) FROM awf.save_diffs d WHERE d.save_id = s.save_id AND kind = 'base'),
                    s.bytes_stored,
                    pg_column_size(h.state::text::jsonb),
                    pg_column_size(h.state)
             FROM awf.saves s, head h WHERE s.save_id = $1::text::uuid",
            &[&save],
        )
        .unwrap();
    let (all_rows, turn_rows, bases, bytes_stored): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let (jsonb_raw, jsonb_toasted): (i32, i32) = (row.get(4), row.get(5));
    assert_eq!(
        bytes_stored, all_rows,
        "awf.saves.bytes_stored is the sum of its rows' stored_bytes"
    );
    let as_jsonb = TURNS * i64::from(jsonb_raw);
    assert!(
        turn_rows < as_jsonb,
        "{turn_rows} stored bytes for {TURNS} turns, not less than {as_jsonb} as plain jsonb"
    );
    println!(
        "saves (500 turns): {} turns byte-exact, {} parsed from jsonb, verify ok over {}; \
         storage {turn_rows} B for {TURNS} turns ({bases} bases incl. turn 0, {} B/turn) vs \
         {TURNS} x jsonb {jsonb_raw} B = {as_jsonb} B (x{:.1}), or {} B TOAST-compressed (x{:.1}); \
         canonical state {} B",
        TURNS + 1,
        sample.len(),
        v["turns_checked"],
        turn_rows / TURNS,
        as_jsonb as f64 / turn_rows as f64,
        TURNS * i64::from(jsonb_toasted),
        (TURNS * i64::from(jsonb_toasted)) as f64 / turn_rows as f64,
        kept[TURNS as usize].len()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Lifecycle turns flow into the save

/// Every committed `turn_submit` of a session with a save lands in the save as the same turn,
/// visible at once to another connection; a refused turn leaves no trace in session or save.
/// The save keeps no copy of its head state: each persist finds it in the backend's own copy
/// of the head it last wrote, in the session, or rebuilt from the blobs. Two connections take
/// turns on one save (each one's copy goes stale when the other moves the head), one turn is
/// rolled back after it was persisted (its copy must not be used), the session takes turns of
/// its own in between (the head comes from the session) and is finally deleted (the head is
/// rebuilt). Every turn must still read back byte-exact and the save verify.
#[test]
fn the_head_state_is_found_wherever_it_is_current() {
    let db = TestDb::new();
    let user = "u-heads";
    let sid = random_uuid();
    let mut a = db.client();
    let mut b = db.client();
    for c in [&mut a, &mut b] {
        c.batch_execute("SET awf.sync_snapshot_every = 7").unwrap();
    }
    let seed = 77;
    let mut state = game_state(8_000, seed);
    upsert(&mut a, &sid, user, &state);
    let save = attach(&mut a, &sid, user);
    let start = turn_of(&state);
    let mut kept = vec![canon(&state)];
    let mut turn = 0;
    let step = |c: &mut Client, state: &mut Value, kept: &mut Vec<Vec<u8>>, turn: &mut i64| {
        *turn += 1;
        next_turn(state, start + *turn, seed);
        let r = persist(c, &save, *turn, state).unwrap_or_else(|e| panic!("turn {turn}: {e}"));
        assert_eq!(
            r["content_hash"],
            json!(sha256_hex(&canon(state))),
            "turn {turn}"
        );
        kept.push(canon(state));
    };
    // Alternating connections: each persist finds the other's head, not its own stale copy.
    for i in 0..10 {
        let c = if i % 3 == 0 { &mut b } else { &mut a };
        step(c, &mut state, &mut kept, &mut turn);
    }
    // A persisted turn rolled back: connection a's copy of that head must not be used.
    {
        let mut tx = a.transaction().unwrap();
        let mut other = state.clone();
        next_turn(&mut other, start + turn + 1, seed + 1);
        persist(&mut tx, &save, turn + 1, &other).unwrap();
        tx.rollback().unwrap();
    }
    for _ in 0..3 {
        step(&mut a, &mut state, &mut kept, &mut turn);
    }
    // The session's own turns flow into the save: the first from a head rebuilt (the session's
    // state is not the head), the others from the session's state (it is).
    for k in 1..=4 {
        let r = submit(&mut b, &sid, k, &act_payload(k)).unwrap();
        assert_eq!(r["duplicate"], json!(false), "{r}");
        turn += 1;
        state = b
            .query_one(
                "SELECT state FROM awf.sessions WHERE session_id = $1::text::uuid",
                &[&sid],
            )
            .unwrap()
            .get(0);
        kept.push(canon(&state));
    }
    for _ in 0..3 {
        step(&mut a, &mut state, &mut kept, &mut turn);
    }
    // Without its session the save rebuilds its head from the blobs.
    a.execute(
        "DELETE FROM awf.sessions WHERE session_id = $1::text::uuid",
        &[&sid],
    )
    .unwrap();
    for i in 0..9 {
        let c = if i % 2 == 0 { &mut b } else { &mut a };
        step(c, &mut state, &mut kept, &mut turn);
    }

    let mut r = db.client();
    for (t, want) in kept.iter().enumerate() {
        let got = materialize_bytes(&mut r, &save, t as i64).unwrap();
        assert!(got == *want, "turn {t} reads back other bytes");
    }
    let v = verify(&mut r, &save);
    assert_eq!(v["ok"], json!(true), "{v}");
    assert_eq!(v["turns_checked"], json!(turn + 1), "{v}");
    println!(
        "head states: {} turns over two connections, a rollback, session turns and no session: \
         all byte-exact, verify ok",
        turn
    );
}

#[test]
fn session_turns_flow_into_the_save_and_a_failed_turn_persists_nothing() {
    const TURNS: i64 = 60;
    let db = TestDb::new();
    let user = "u-life";
    let sid = random_uuid();
    let mut c = db.client();
    c.batch_execute("SET awf.sync_snapshot_every = 10").unwrap();
    let state0 = game_state(6_000, 2);
    upsert(&mut c, &sid, user, &state0);
    let save = attach(&mut c, &sid, user);

    let mut obs = db.client();
    for k in 1..=TURNS {
        let r = submit(&mut c, &sid, k, &act_payload(k))
            .unwrap_or_else(|e| panic!("turn_submit {k}: {e}"));
        assert_eq!(r["duplicate"], json!(false), "{r}");
        let row = obs
            .query_one(
                "SELECT s.head_turn, s.head_content_hash, x.turn_id, x.state_hash
                 FROM awf.saves s JOIN awf.sessions x USING (session_id)
                 WHERE s.save_id = $1::text::uuid",
                &[&save],
            )
            .unwrap();
        let (head, head_hash, turn, hash): (i64, Option<String>, i64, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(
            (head, turn),
            (k, k),
            "after COMMIT of turn {k} another connection sees save head and session turn"
        );
        assert_eq!(head_hash.as_deref(), Some(hash.as_str()), "turn {k}");
    }
    drop(obs);

    let mut r = db.client();
    let hashes = turn_hashes(&mut r, &sid);
    assert_eq!(hashes.len(), TURNS as usize);
    let mut bad = Vec::new();
    for (&t, hash) in &hashes {
        let bytes = materialize_bytes(&mut r, &save, t).unwrap();
        if sha256_hex(&bytes) != *hash {
            bad.push(t);
        }
    }
    assert!(
        bad.is_empty(),
        "turns whose saved state hashes differ from awf.turns: {bad:?}"
    );
    let sql_bad: i64 = r
        .query_one(
            "SELECT count(*) FROM awf.turns t
             WHERE t.session_id = $1::text::uuid
               AND awf.canonical_hash(awf.save_materialize($2::text::uuid, t.turn_id)) <> t.state_hash",
            &[&sid, &save],
        )
        .unwrap()
        .get(0);
    assert_eq!(sql_bad, 0);
    assert_eq!(
        materialize_bytes(&mut r, &save, 0).unwrap(),
        canon(&state0),
        "turn 0 is the state the save was attached at"
    );
    let v = verify(&mut r, &save);
    assert_eq!(v["ok"], json!(true), "{v}");
    assert_eq!(v["turns_checked"], json!(TURNS + 1), "{v}");

    // Refused turns: nothing in the session, the WAL, the turn log or the save.
    let refused = [
        (
            "increment of a string",
            json!({"txt": "Ash counts.", "acts": [
                {"op": "increment", "path": "/player/name", "by": 1}]}),
        ),
        (
            "an unknown op",
            json!({"txt": "Ash teleports.", "acts": [
                {"op": "increment", "path": "/player/gold", "by": 1},
                {"op": "teleport", "path": "/player"}]}),
        ),
        (
            "a failing test after a valid act",
            json!({"txt": "Ash checks.", "acts": [
                {"op": "increment", "path": "/player/gold", "by": 100},
                {"op": "test", "path": "/player/gold", "value": -1}]}),
        ),
    ];
    for (what, raw) in &refused {
        let before = footprint(&db, &save);
        let (code, msg) = failure(
            submit(&mut c, &sid, TURNS + 1, raw),
            &format!("turn_submit with {what}"),
        );
        assert_eq!(code, "22023", "{what}: {msg}");
        let after = footprint(&db, &save);
        assert_eq!(after, before, "{what} left a trace");
    }
    // The refused turns consumed nothing: the same turn number is still free.
    submit(&mut c, &sid, TURNS + 1, &act_payload(TURNS + 1)).unwrap();
    let mut r = db.client();
    let f = footprint(&db, &save);
    assert_eq!(f.head_turn, TURNS + 1);
    let v = verify(&mut r, &save);
    assert_eq!(v["ok"], json!(true), "{v}");
    println!(
        "saves (lifecycle): {TURNS} committed turn_submit turns persisted as save turns 1..{TURNS}, \
         {} state hashes equal, {} refused turns left nothing, turn {} still free",
        hashes.len(),
        refused.len(),
        TURNS + 1
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Corruption anywhere is found

/// The byte of a blob to flip for the `i`-th row: cycling through the header (magic, version,
/// codec, cipher, key-id length, declared length) and the body and trailing check.
fn flip_position(i: usize, len: usize) -> usize {
    const HEADER: [usize; 8] = [0, 3, 4, 5, 6, 7, 8, 15];
    let k = i % (HEADER.len() + 4);
    let p = match k.checked_sub(HEADER.len()) {
        None => HEADER[k],
        Some(0) => 16,
        Some(1) => len / 2,
        Some(2) => len.saturating_sub(9),
        Some(_) => len - 1,
    };
    p.min(len - 1)
}

/// A byte flipped in any blob, or a hex digit changed in any row's content or chain hash: verify
/// names the first turn that uses it and materialize of that turn refuses with XX001.
#[test]
fn every_flipped_byte_is_found_by_verify_and_refused_by_materialize() {
    const TURNS: i64 = 40;
    // No-op turns (same state as before): their diff blob `[]` is shared.
    const NOOPS: [i64; 3] = [14, 15, 27];
    let seed = 3;
    let db = TestDb::new();
    let user = "u-flip";
    let sid = random_uuid();
    let mut c = db.client();
    c.batch_execute("SET awf.sync_snapshot_every = 10").unwrap();
    let mut state = game_state(4_000, seed);
    upsert(&mut c, &sid, user, &state);
    let save = attach(&mut c, &sid, user);
    let start = turn_of(&state);
    for t in 1..=TURNS {
        if !NOOPS.contains(&t) {
            next_turn(&mut state, start + t, seed);
        }
        persist(&mut c, &save, t, &state).unwrap_or_else(|e| panic!("turn {t}: {e}"));
    }
    let kinds: Vec<String> = c
        .query(
            "SELECT turn_id::text FROM awf.save_diffs WHERE save_id = $1::text::uuid AND kind = 'base' ORDER BY turn_id",
            &[&save],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kinds, ["0", "10", "20", "30", "40"], "bases every 10 turns");

    // (turn, blob_hash, key_id), and the earliest turn using each blob.
    let rows: Vec<(i64, String, String)> = c
        .query(
            "SELECT turn_id, blob_hash, key_id FROM awf.save_diffs WHERE save_id = $1::text::uuid ORDER BY turn_id",
            &[&save],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(rows.len(), TURNS as usize + 1);
    let mut first_use: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (t, h, k) in &rows {
        first_use.entry((h.clone(), k.clone())).or_insert(*t);
    }
    let shared = rows
        .iter()
        .filter(|(t, h, k)| first_use[&(h.clone(), k.clone())] != *t)
        .count();
    assert_eq!(shared, 2, "turns 15 and 27 reuse the blob of turn 14");

    let mut total = 0;
    let mut verify_caught = 0;
    let mut refused = 0;
    let mut misses: Vec<String> = Vec::new();
    let mut check = |c: &mut Client,
                     what: String,
                     corrupt: &str,
                     params: &[&(dyn postgres::types::ToSql + Sync)],
                     expect: i64| {
        total += 1;
        let mut tx = c.transaction().unwrap();
        let n = tx.execute(corrupt, params).unwrap();
        assert_eq!(n, 1, "{what}: corrupted one row");
        let v = verify(&mut tx, &save);
        if v["ok"] == json!(false) && v["first_bad_turn"] == json!(expect) {
            verify_caught += 1;
        } else {
            misses.push(format!(
                "{what}: save_verify = {v}, expected ok=false, first_bad_turn={expect}"
            ));
        }
        match materialize(&mut tx, &save, expect) {
            Ok(_) => misses.push(format!(
                "{what}: SELECT awf.save_materialize('{save}', {expect}) returned a state, expected XX001"
            )),
            Err(e) if sqlstate(&e) == "XX001" => refused += 1,
            Err(e) => misses.push(format!(
                "{what}: SELECT awf.save_materialize('{save}', {expect}) failed with {} ({}), expected XX001",
                sqlstate(&e),
                e.as_db_error().map(|d| d.message()).unwrap_or("")
            )),
        }
        tx.rollback().unwrap();
    };

    let flip_blob = "UPDATE awf.save_blobs SET data = set_byte(data, $3, get_byte(data, $3) # 255)
                     WHERE blob_hash = $1 AND key_id = $2";
    for (i, (t, h, k)) in rows.iter().enumerate() {
        let len: i32 = c
            .query_one(
                "SELECT length(data) FROM awf.save_blobs WHERE blob_hash = $1 AND key_id = $2",
                &[h, k],
            )
            .unwrap()
            .get(0);
        let pos = flip_position(i, len as usize) as i32;
        let expect = first_use[&(h.clone(), k.clone())];
        check(
            &mut c,
            format!("blob of turn {t} (byte {pos} of {len}, first used by turn {expect})"),
            flip_blob,
            &[h, k, &pos],
            expect,
        );
    }
    let flip_hex = |col: &str| {
        format!(
            "UPDATE awf.save_diffs SET {col} = overlay({col} placing
                 CASE substr({col}, $3, 1) WHEN '0' THEN '1' ELSE '0' END from $3 for 1)
             WHERE save_id = $1::text::uuid AND turn_id = $2"
        )
    };
    for col in ["content_hash", "chain_hash"] {
        let sql = flip_hex(col);
        for (i, (t, _, _)) in rows.iter().enumerate() {
            let pos = 1 + (i as i32 * 7) % 64;
            check(
                &mut c,
                format!("{col} of turn {t} (hex digit {pos})"),
                &sql,
                &[&save, t, &pos],
                *t,
            );
        }
    }
    let (total, verify_caught, refused) = (total, verify_caught, refused);

    // Everything was rolled back: the save is whole again.
    let v = verify(&mut c, &save);
    assert_eq!(v["ok"], json!(true), "after the rollbacks: {v}");
    println!(
        "saves (corruption): {total} corruptions ({} blobs incl. {shared} shared rows, {} content hashes, \
         {} chain hashes); verify caught {verify_caught}/{total}, materialize refused with XX001 {refused}/{total}",
        rows.len(),
        rows.len(),
        rows.len()
    );
    assert!(
        misses.is_empty(),
        "{} of {total} corruptions were not caught as specified:\n{}",
        misses.len(),
        misses.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Limits write nothing

/// A persist over the user quota, the diff limit or the save limit fails with 54000 naming the
/// limit, and a new connection sees nothing of it; a session turn whose save persist is over
/// the quota fails whole.
#[test]
fn limits_refuse_with_54000_and_write_nothing() {
    let db = TestDb::new();
    const MIB: i64 = 1024 * 1024;

    // (a) The user quota, across two saves of one user.
    let user = "u-quota";
    let mut c = db.client();
    c.batch_execute("SET awf.sync_user_quota_mb = 1; SET awf.sync_max_diff_bytes_kb = 65536")
        .unwrap();
    let (s1, s2) = (random_uuid(), random_uuid());
    upsert(&mut c, &s1, user, &small_state("Ash"));
    upsert(&mut c, &s2, user, &small_state("Bea"));
    let save1 = attach(&mut c, &s1, user);
    let save2 = attach(&mut c, &s2, user);
    let mut big1 = small_state("Ash");
    big1["noise"] = json!(noise(900_000));
    let r1 = persist(&mut c, &save1, 1, &big1).unwrap();
    let stored1 = r1["stored_bytes"].as_i64().unwrap();
    let used: i64 = c
        .query_one(
            "SELECT sum(bytes_stored)::bigint FROM awf.saves WHERE user_id_hash = $1",
            &[&user],
        )
        .unwrap()
        .get(0);
    assert!(
        used < MIB && used + stored1 > MIB,
        "test setup: {used} bytes used, a turn like the last ({stored1} bytes) must exceed 1 MB"
    );
    let before1 = footprint(&db, &save1);
    let before2 = footprint(&db, &save2);
    let mut big2 = small_state("Bea");
    big2["noise"] = json!(noise(900_000));
    let (code, msg) = failure(
        persist(&mut c, &save2, 1, &big2),
        "a persist over awf.sync_user_quota_mb",
    );
    assert_eq!(code, "54000", "{msg}");
    assert!(msg.contains("quota"), "the message names the quota: {msg}");
    assert_eq!(footprint(&db, &save2), before2, "the refused save");
    assert_eq!(footprint(&db, &save1), before1, "the user's other save");
    // The refused turn consumed nothing: with room it goes in as the same turn.
    c.batch_execute("SET awf.sync_user_quota_mb = 4").unwrap();
    let ok = persist(&mut c, &save2, 1, &big2).unwrap();
    assert_eq!(ok["turn_id"], json!(1));

    // (b) The diff limit.
    let user = "u-diff";
    let s3 = random_uuid();
    let mut c = db.client();
    c.batch_execute("SET awf.sync_max_diff_bytes_kb = 1")
        .unwrap();
    let mut st = small_state("Cid");
    upsert(&mut c, &s3, user, &st);
    let save3 = attach(&mut c, &s3, user);
    st["player"]["gold"] = json!(2);
    let r = persist(&mut c, &save3, 1, &st).unwrap();
    assert_eq!(r["kind"], json!("diff"), "{r}");
    let before = footprint(&db, &save3);
    st["player"]["notes"] = json!(noise(5_000));
    let (code, msg) = failure(
        persist(&mut c, &save3, 2, &st),
        "a persist over awf.sync_max_diff_bytes_kb",
    );
    assert_eq!(code, "54000", "{msg}");
    assert!(
        msg.contains("sync_max_diff_bytes_kb"),
        "the message names the diff limit: {msg}"
    );
    assert_eq!(footprint(&db, &save3), before, "the refused diff");

    // (c) The save size limit.
    let user = "u-size";
    let s4 = random_uuid();
    let mut c = db.client();
    c.batch_execute("SET awf.sync_max_save_bytes_mb = 1; SET awf.sync_max_diff_bytes_kb = 65536")
        .unwrap();
    let mut st = small_state("Dag");
    upsert(&mut c, &s4, user, &st);
    let save4 = attach(&mut c, &s4, user);
    st["noise"] = json!(noise(900_000));
    persist(&mut c, &save4, 1, &st).unwrap();
    let before = footprint(&db, &save4);
    assert!(before.bytes_stored < MIB, "{before:?}");
    st["noise"] = json!(noise(900_000));
    let (code, msg) = failure(
        persist(&mut c, &save4, 2, &st),
        "a persist over awf.sync_max_save_bytes_mb",
    );
    assert_eq!(code, "54000", "{msg}");
    assert!(
        msg.contains("sync_max_save_bytes_mb"),
        "the message names the save limit: {msg}"
    );
    assert_eq!(footprint(&db, &save4), before, "the refused save");

    // (d) A lifecycle turn whose save persist is over the quota fails whole.
    let user = "u-turn";
    let s5 = random_uuid();
    let mut c = db.client();
    c.batch_execute("SET awf.sync_user_quota_mb = 1; SET awf.sync_max_diff_bytes_kb = 65536")
        .unwrap();
    upsert(&mut c, &s5, user, &small_state("Eir"));
    let save5 = attach(&mut c, &s5, user);
    let before = footprint(&db, &save5);
    let raw = json!({"txt": "Eir finds a huge tome.",
                     "acts": [{"op": "add", "path": "/tome", "value": noise(1_600_000)}]});
    let (code, msg) = failure(
        submit(&mut c, &s5, 1, &raw),
        "turn_submit whose save persist is over the quota",
    );
    assert_eq!(code, "54000", "{msg}");
    assert!(msg.contains("quota"), "the message names the quota: {msg}");
    let after = footprint(&db, &save5);
    assert_eq!(after, before, "the refused turn left a trace");
    assert_eq!(
        after.session.as_ref().map(|s| (s.0, s.2, s.3)),
        Some((0, 0, 0)),
        "session at turn 0, no awf.turns row, no awf.turn_wal row"
    );
    // A small turn 1 still goes through, into session and save.
    submit(&mut c, &s5, 1, &act_payload_small()).unwrap();
    assert_eq!(footprint(&db, &save5).head_turn, 1);
    println!(
        "saves (limits): 4 over-limit calls refused with 54000 (user quota across 2 saves, diff 1 KB, \
         save 1 MB, turn_submit over quota); new connections saw no change; the refused turns stayed free"
    );
}

fn act_payload_small() -> Value {
    json!({"txt": "A quiet turn.", "acts": [{"op": "increment", "path": "/player/gold", "by": 1}]})
}

// ---------------------------------------------------------------------------------------------
// 5. Encryption and master-key rotation with real key files

fn key_line(id: &str) -> String {
    let key: [u8; 32] = rand::random();
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    format!("{id}:{hex}")
}

/// Rewrites the key file in place (readable by the server's OS user). The pause keeps two
/// rewrites apart in modification time, as an operator's edits are.
fn write_key_file(path: &str, lines: &[&str]) {
    use std::os::unix::fs::PermissionsExt;
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(path, format!("{}\n", lines.join("\n"))).expect("write key file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod key file");
}

/// Accepts an error 42501 or an answer that reveals nothing; returns what happened.
fn hidden(r: Result<Option<String>, postgres::Error>, path: &str, what: &str) -> String {
    match r {
        Err(e) => {
            let code = sqlstate(&e);
            assert_eq!(code, "42501", "{what}: {e}");
            "42501".to_owned()
        }
        Ok(v) => {
            let v = v.unwrap_or_default();
            assert!(
                v.is_empty() && !v.contains(path),
                "{what} shows the key file to a non-superuser: {v:?}"
            );
            "no value".to_owned()
        }
    }
}

/// Blobs written under a master key file are encrypted; rotating to a new master key re-wraps
/// the data key without touching a blob, after which the old key can go; without the key the
/// save cannot be read (P0002). A non-superuser can neither see nor set the key file.
#[test]
fn encrypted_saves_with_real_key_files_survive_rotation() {
    const TURNS: i64 = 30;
    let seed = 5;
    let db = TestDb::new();
    let dir = TempDir::new();
    let path = dir.file("master.key");
    let (a, b) = (key_line("key-a"), key_line("key-b"));
    write_key_file(&path, &[&a]);

    let user = "u-enc";
    let sid = random_uuid();
    let mut c = db.client();
    c.batch_execute(&format!("SET awf.master_key_file = '{path}'"))
        .unwrap();
    let mut state = game_state(6_000, seed);
    upsert(&mut c, &sid, user, &state);
    let save = attach(&mut c, &sid, user);
    let mut kept = vec![canon(&state)];
    let start = turn_of(&state);
    for t in 1..=TURNS {
        next_turn(&mut state, start + t, seed);
        persist(&mut c, &save, t, &state).unwrap_or_else(|e| panic!("turn {t}: {e}"));
        kept.push(canon(&state));
    }

    let (rows, plain_keys): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE key_id = '') FROM awf.save_diffs
                 WHERE save_id = $1::text::uuid",
                &[&save],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(rows, TURNS + 1);
    assert_eq!(plain_keys, 0, "every turn names a data key");
    let blobs: Vec<(String, String, Vec<u8>)> = c
        .query(
            "SELECT b.blob_hash, b.key_id, b.data FROM awf.save_blobs b
             WHERE (b.blob_hash, b.key_id) IN
                   (SELECT blob_hash, key_id FROM awf.save_diffs WHERE save_id = $1::text::uuid)
             ORDER BY b.blob_hash",
            &[&save],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(blobs.len() as i64, TURNS + 1);
    assert!(
        blobs.iter().all(|(_, k, _)| !k.is_empty()),
        "non-empty key_id"
    );
    // Plaintext that any of these blobs would show if they were only compressed.
    let mut needles: Vec<String> = vec![
        "\"game_state\"".into(),
        "\"episodic\"".into(),
        state["player"]["name"].as_str().unwrap().to_owned(),
        state["npcs"][0]["name"].as_str().unwrap().to_owned(),
    ];
    if let Some(e) = state
        .pointer("/memory/episodic")
        .and_then(Value::as_array)
        .and_then(|a| a.last())
        .and_then(|e| e["text"].as_str())
    {
        needles.push(e.chars().take(24).collect());
    }
    for (h, _, data) in &blobs {
        for n in &needles {
            assert!(
                !data.windows(n.len()).any(|w| w == n.as_bytes()),
                "blob {h} contains the plaintext {n:?}"
            );
        }
    }
    let (kept_hash, kept_key, kept_data) = blobs[0].clone();
    let (dk_rows, master): (i64, String) = {
        let r = c
            .query_one(
                "SELECT count(*), min(master_key_id) FROM awf.data_keys",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((dk_rows, master.as_str()), (1, "key-a"));
    let digest = |c: &mut Client| -> String {
        c.query_one(
            "SELECT md5(string_agg(md5(data), '' ORDER BY blob_hash, key_id)) FROM awf.save_blobs",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let blobs_before = digest(&mut c);

    // Rotation: the new key first, the old one after it.
    write_key_file(&path, &[&b, &a]);
    let r: Value = c
        .query_one("SELECT awf.rotate_master_key()", &[])
        .unwrap()
        .get(0);
    assert_eq!(r["rewrapped"], json!(1), "{r}");
    assert_eq!(r["data_keys"], json!(1), "{r}");
    assert_eq!(r["master_key_id"], json!("key-b"), "{r}");
    assert_eq!(digest(&mut c), blobs_before, "rotation rewrites no blob");
    let now: Vec<u8> = c
        .query_one(
            "SELECT data FROM awf.save_blobs WHERE blob_hash = $1 AND key_id = $2",
            &[&kept_hash, &kept_key],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        now, kept_data,
        "the kept blob is byte-identical after rotation"
    );

    // The old key removed: every turn still reads back exactly, here and on a new connection.
    write_key_file(&path, &[&b]);
    let mut fresh = db.client();
    fresh
        .batch_execute(&format!("SET awf.master_key_file = '{path}'"))
        .unwrap();
    for conn in [&mut c, &mut fresh] {
        for t in 0..=TURNS {
            let got = materialize_bytes(conn, &save, t)
                .unwrap_or_else(|e| panic!("turn {t} with key file B only: {e}"));
            assert_eq!(got, kept[t as usize], "turn {t} with key file B only");
        }
    }
    let v = verify(&mut fresh, &save);
    assert_eq!(v["ok"], json!(true), "{v}");
    drop(fresh);

    // A non-superuser: the key file is configured for its database, it is used, never shown.
    let db_name = db.name().to_owned();
    c.batch_execute(&format!(
        "ALTER DATABASE {db_name} SET awf.master_key_file = '{path}'"
    ))
    .unwrap();
    let app = TestRole::new(&db, "awf_app");
    let mut u = db.client();
    u.batch_execute(&format!(
        "SET awf.user_id_hash = '{user}'; SET ROLE {}",
        app.name()
    ))
    .unwrap();
    u.query_one("SELECT awf.version()", &[]).unwrap();
    let show = hidden(
        u.query_one("SHOW awf.master_key_file", &[])
            .map(|r| r.get(0)),
        &path,
        "SHOW awf.master_key_file",
    );
    let current = hidden(
        u.query_one("SELECT current_setting('awf.master_key_file')", &[])
            .map(|r| r.get(0)),
        &path,
        "current_setting('awf.master_key_file')",
    );
    let settings: Vec<Option<String>> = u
        .query(
            "SELECT setting FROM pg_settings WHERE name = 'awf.master_key_file'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for s in &settings {
        let s = s.clone().unwrap_or_default();
        assert!(
            s.is_empty() && !s.contains(&path),
            "pg_settings shows the key file to a non-superuser: {s:?}"
        );
    }
    for sql in [
        "SET awf.master_key_file = '/tmp/elsewhere.key'".to_owned(),
        "SELECT set_config('awf.master_key_file', '/tmp/elsewhere.key', false)".to_owned(),
        "ALTER ROLE CURRENT_USER SET awf.master_key_file = '/tmp/elsewhere.key'".to_owned(),
    ] {
        let (code, msg) = failure(u.batch_execute(&sql), &sql);
        assert_eq!(code, "42501", "{sql}: {msg}");
    }
    // It can still read its own encrypted save: the server reads the key, not the client.
    let head = materialize_bytes(&mut u, &save, TURNS).expect("awf_app reads its own save");
    assert_eq!(head, kept[TURNS as usize]);
    drop(u);

    // Only the old key left: the data key (now wrapped under B) cannot be unwrapped.
    write_key_file(&path, &[&a]);
    let mut missing = 0;
    for t in 0..=TURNS {
        let (code, msg) = failure(
            materialize_bytes(&mut c, &save, t),
            &format!("materialize of turn {t} with key file A only"),
        );
        assert_eq!(code, "P0002", "turn {t}: {msg}");
        missing += 1;
    }
    println!(
        "saves (encryption): {} blobs encrypted, no plaintext of {} needles; rotation rewrapped 1 key, \
         0 blobs rewritten; {} turns byte-exact with B only (2 connections); {missing} turns P0002 with A only; \
         non-superuser: SHOW {show}, current_setting {current}, pg_settings {} rows, 3 SETs refused 42501",
        blobs.len(),
        needles.len(),
        TURNS + 1,
        settings.len()
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Restore and undo

/// Turns that differ from the first branch's.
fn branch_payload(k: i64) -> Value {
    json!({"txt": format!("Turn {k}: Ash turns back."), "acts": [
        {"op": "increment", "path": "/player/gold", "by": -1},
        {"op": "append", "path": "/player/inventory", "value": format!("driftwood-{k}")}]})
}

fn archive_row(c: &mut Client, id: i64) -> (String, i64, i64, bool, i64) {
    let r = c
        .query_one(
            "SELECT a.reason, a.from_turn, a.to_turn, a.restored_at IS NOT NULL,
                    (SELECT count(*) FROM awf.save_archive_turns t WHERE t.archive_id = a.archive_id)
             FROM awf.save_archives a WHERE a.archive_id = $1",
            &[&id],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

fn session_state_bytes(c: &mut Client, sid: &str) -> (i64, String, Vec<u8>) {
    let r = c
        .query_one(
            "SELECT turn_id, state_hash, awf.canonical_json(state) FROM awf.sessions
             WHERE session_id = $1::text::uuid",
            &[&sid],
        )
        .unwrap();
    let text: String = r.get(2);
    (r.get(0), r.get(1), text.into_bytes())
}

/// `save_restore` archives the tail and rewinds save and session; new session turns continue
/// the save from the restored turn; `save_archive_restore` brings the old tail back and
/// archives the new one; each step on its own connection, nothing lost.
#[test]
fn restore_and_undo_across_connections() {
    let db = TestDb::new();
    let user = "u-restore";
    let sid = random_uuid();
    let mut a = db.client();
    upsert(&mut a, &sid, user, &game_state(5_000, 6));
    let save = attach(&mut a, &sid, user);
    for k in 1..=30 {
        submit(&mut a, &sid, k, &act_payload(k)).unwrap_or_else(|e| panic!("turn {k}: {e}"));
    }
    drop(a);

    let mut e = db.client();
    let orig: Vec<Vec<u8>> = (0..=30)
        .map(|t| materialize_bytes(&mut e, &save, t).unwrap())
        .collect();
    let hashes = turn_hashes(&mut e, &sid);
    for t in 1..=30 {
        assert_eq!(sha256_hex(&orig[t as usize]), hashes[&t], "turn {t}");
    }
    drop(e);

    // B: back to turn 20.
    let mut b = db.client();
    let r: Value = b
        .query_one("SELECT awf.save_restore($1::text::uuid, 20)", &[&save])
        .unwrap()
        .get(0);
    drop(b);
    assert_eq!(r["head_turn"], json!(20), "{r}");
    assert_eq!(r["archived_turns"], json!(10), "{r}");
    let archive = r["archive_id"].as_i64().expect("archive_id");

    let mut e = db.client();
    assert_eq!(
        archive_row(&mut e, archive),
        ("manual_restore".to_owned(), 21, 30, false, 10)
    );
    let f = footprint(&db, &save);
    assert_eq!((f.head_turn, f.save_diffs), (20, 21), "{f:?}");
    let (turn, hash, bytes) = session_state_bytes(&mut e, &sid);
    assert_eq!(turn, 30, "the session's turn counter keeps counting");
    assert_eq!(bytes, orig[20], "the session's state is turn 20's");
    assert_eq!(hash, hashes[&20]);
    let pre: i64 = e
        .query_one(
            "SELECT count(*) FROM awf.snapshots WHERE session_id = $1::text::uuid AND label = 'pre-save-restore'",
            &[&sid],
        )
        .unwrap()
        .get(0);
    assert_eq!(pre, 1, "the state before the restore was snapshotted");
    drop(e);

    // C: two new session turns become save turns 21 and 22.
    let mut cc = db.client();
    for k in [31, 32] {
        submit(&mut cc, &sid, k, &branch_payload(k)).unwrap_or_else(|e| panic!("turn {k}: {e}"));
    }
    drop(cc);
    let mut e = db.client();
    assert_eq!(footprint(&db, &save).head_turn, 22);
    let hashes2 = turn_hashes(&mut e, &sid);
    let new21 = materialize_bytes(&mut e, &save, 21).unwrap();
    let new22 = materialize_bytes(&mut e, &save, 22).unwrap();
    assert_eq!(
        sha256_hex(&new21),
        hashes2[&31],
        "session turn 31 is save turn 21"
    );
    assert_eq!(
        sha256_hex(&new22),
        hashes2[&32],
        "session turn 32 is save turn 22"
    );
    assert_ne!(new21, orig[21]);
    drop(e);

    // D: the archived branch comes back; the new one is archived.
    let mut d = db.client();
    let u: Value = d
        .query_one("SELECT awf.save_archive_restore($1)", &[&archive])
        .unwrap()
        .get(0);
    assert_eq!(u["head_turn"], json!(30), "{u}");
    assert_eq!(u["archive_id"], json!(archive), "{u}");
    let displaced = u["displaced_archive_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("the new turns 21..22 were archived: {u}"));
    let (code, msg) = failure(
        d.query_one("SELECT awf.save_archive_restore($1)", &[&archive]),
        "restoring an archive twice",
    );
    assert_eq!(code, "23505", "{msg}");
    drop(d);

    let mut e = db.client();
    assert!(archive_row(&mut e, archive).3, "marked restored");
    assert_eq!(
        archive_row(&mut e, displaced),
        ("manual_restore".to_owned(), 21, 22, false, 2)
    );
    for t in 0..=30 {
        assert_eq!(
            materialize_bytes(&mut e, &save, t).unwrap(),
            orig[t as usize],
            "turn {t} after the undo"
        );
    }
    let v = verify(&mut e, &save);
    assert_eq!(v["ok"], json!(true), "{v}");
    assert_eq!(v["turns_checked"], json!(31), "{v}");
    let (_, hash, bytes) = session_state_bytes(&mut e, &sid);
    assert_eq!(bytes, orig[30], "the session is back at turn 30's state");
    assert_eq!(hash, hashes[&30]);
    drop(e);

    // And the displaced branch can come back the same way: nothing was lost either way.
    let mut d = db.client();
    let w: Value = d
        .query_one("SELECT awf.save_archive_restore($1)", &[&displaced])
        .unwrap()
        .get(0);
    assert_eq!(w["head_turn"], json!(22), "{w}");
    let third = w["displaced_archive_id"]
        .as_i64()
        .expect("21..30 archived again");
    drop(d);
    let mut e = db.client();
    assert_eq!(materialize_bytes(&mut e, &save, 21).unwrap(), new21);
    assert_eq!(materialize_bytes(&mut e, &save, 22).unwrap(), new22);
    for t in 0..=20 {
        assert_eq!(
            materialize_bytes(&mut e, &save, t).unwrap(),
            orig[t as usize],
            "turn {t}"
        );
    }
    assert_eq!(
        archive_row(&mut e, third),
        ("manual_restore".to_owned(), 21, 30, false, 10)
    );
    let v = verify(&mut e, &save);
    assert_eq!(v["ok"], json!(true), "{v}");
    assert_eq!(v["turns_checked"], json!(23), "{v}");
    println!(
        "saves (restore): 30 turns, restore to 20 archived 10, 2 new turns as save 21..22, undo brought \
         back 21..30 (31 turns byte-exact, verify ok) and archived 2, redo brought them back and archived 10"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Retention

/// Retention prunes old history, re-bases the first kept turn, moves the origin, and deletes
/// only blobs nothing else uses; every kept turn still materializes exactly and verifies, and
/// another user's save is untouched.
#[test]
fn retention_prunes_old_turns_and_keeps_the_chain() {
    const TURNS: i64 = 100;
    const NOOPS: [i64; 2] = [30, 70];
    let seed = 7;
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute("SET awf.sync_snapshot_every = 25").unwrap();

    let sid = random_uuid();
    let mut state = game_state(5_000, seed);
    upsert(&mut c, &sid, "u-old", &state);
    let save = attach(&mut c, &sid, "u-old");
    let mut kept = vec![canon(&state)];
    let start = turn_of(&state);
    for t in 1..=TURNS {
        if !NOOPS.contains(&t) {
            next_turn(&mut state, start + t, seed);
        }
        persist(&mut c, &save, t, &state).unwrap_or_else(|e| panic!("turn {t}: {e}"));
        kept.push(canon(&state));
    }
    // Another user's save, recent, sharing the no-op diff blob.
    let sid2 = random_uuid();
    let mut state2 = game_state(3_000, 8);
    upsert(&mut c, &sid2, "u-new", &state2);
    let save2 = attach(&mut c, &sid2, "u-new");
    let mut kept2 = vec![canon(&state2)];
    let start2 = turn_of(&state2);
    for t in 1..=10 {
        if t != 5 {
            next_turn(&mut state2, start2 + t, 8);
        }
        persist(&mut c, &save2, t, &state2).unwrap();
        kept2.push(canon(&state2));
    }
    let noop_blob = sha256_hex(b"[]");

    c.execute(
        "UPDATE awf.save_diffs SET created_at = now() - interval '400 days'
         WHERE save_id = $1::text::uuid AND turn_id <= 60",
        &[&save],
    )
    .unwrap();
    let chain60: String = c
        .query_one(
            "SELECT chain_hash FROM awf.save_diffs WHERE save_id = $1::text::uuid AND turn_id = 60",
            &[&save],
        )
        .unwrap()
        .get(0);
    let chains_before: Vec<(i64, String)> = c
        .query(
            "SELECT turn_id, chain_hash FROM awf.save_diffs WHERE save_id = $1::text::uuid AND turn_id > 60 ORDER BY turn_id",
            &[&save],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let kind61: String = c
        .query_one(
            "SELECT kind FROM awf.save_diffs WHERE save_id = $1::text::uuid AND turn_id = 61",
            &[&save],
        )
        .unwrap()
        .get(0);
    assert_eq!(kind61, "diff", "test setup: turn 61 is a diff");
    // The blobs of turns 0..61 (61's diff is replaced by a base) that nothing else uses.
    let to_go: Vec<(String, String)> = c
        .query(
            "SELECT blob_hash, key_id FROM awf.save_diffs WHERE save_id = $1::text::uuid AND turn_id <= 61
             EXCEPT SELECT blob_hash, key_id FROM awf.save_diffs
                    WHERE NOT (save_id = $1::text::uuid AND turn_id <= 61)
             EXCEPT SELECT blob_hash, key_id FROM awf.save_archive_turns",
            &[&save],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let blobs_before: i64 = c
        .query_one("SELECT count(*) FROM awf.save_blobs", &[])
        .unwrap()
        .get(0);
    drop(c);

    let mut admin = db.client();
    let r: Value = admin
        .query_one("SELECT awf.retention_enforce()", &[])
        .unwrap()
        .get(0);
    drop(admin);
    assert_eq!(r["turns_pruned"], json!(61), "turns 0..60: {r}");
    assert_eq!(r["turns_rebased"], json!(1), "{r}");
    assert_eq!(r["saves_pruned"], json!(1), "{r}");
    assert_eq!(r["blobs_deleted"], json!(to_go.len()), "{r}");

    let mut e = db.client();
    let row = e
        .query_one(
            "SELECT s.origin_turn, s.origin_chain, s.head_turn, s.bytes_stored,
                    (SELECT min(turn_id) FROM awf.save_diffs d WHERE d.save_id = s.save_id),
                    (SELECT sum(stored_bytes)::bigint FROM awf.save_diffs d WHERE d.save_id = s.save_id)
             FROM awf.saves s WHERE s.save_id = $1::text::uuid",
            &[&save],
        )
        .unwrap();
    let (origin, origin_chain, head, bytes_stored, first, sum): (i64, String, i64, i64, i64, i64) = (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
    );
    assert_eq!(origin, 60, "the origin moves to the last pruned turn");
    assert_eq!(origin_chain, chain60, "with that turn's chain hash");
    assert_eq!((first, head), (61, TURNS));
    assert_eq!(bytes_stored, sum, "bytes_stored recounted");
    let (kind, blob_hash, content_hash): (String, String, String) = {
        let r = e
            .query_one(
                "SELECT kind, blob_hash, content_hash FROM awf.save_diffs WHERE save_id = $1::text::uuid AND turn_id = 61",
                &[&save],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!(kind, "base", "turn 61 re-based");
    assert_eq!(
        blob_hash, content_hash,
        "a base's blob is the state's bytes"
    );
    let chains_after: Vec<(i64, String)> = e
        .query(
            "SELECT turn_id, chain_hash FROM awf.save_diffs WHERE save_id = $1::text::uuid ORDER BY turn_id",
            &[&save],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        chains_after, chains_before,
        "kept turns keep their chain hashes"
    );

    for t in 61..=TURNS {
        assert_eq!(
            materialize_bytes(&mut e, &save, t).unwrap_or_else(|e| panic!("turn {t}: {e}")),
            kept[t as usize],
            "turn {t} after retention"
        );
    }
    let (code, msg) = failure(
        materialize_bytes(&mut e, &save, 60),
        "materialize of a pruned turn",
    );
    assert_eq!(code, "P0002", "{msg}");
    let v = verify(&mut e, &save);
    assert_eq!(v["ok"], json!(true), "{v}");
    assert_eq!(v["turns_checked"], json!(TURNS - 60), "{v}");

    let blobs_after: i64 = e
        .query_one("SELECT count(*) FROM awf.save_blobs", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        blobs_after,
        blobs_before - to_go.len() as i64 + 1,
        "unused blobs deleted, one base added for turn 61"
    );
    for (h, k) in &to_go {
        let n: i64 = e
            .query_one(
                "SELECT count(*) FROM awf.save_blobs WHERE blob_hash = $1 AND key_id = $2",
                &[h, k],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "blob {h} used only by pruned turns is deleted");
    }
    let noop_left: i64 = e
        .query_one(
            "SELECT count(*) FROM awf.save_blobs WHERE blob_hash = $1",
            &[&noop_blob],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        noop_left, 1,
        "the shared no-op blob (pruned turn 30, kept turn 70, other save) stays"
    );

    for t in 0..=10 {
        assert_eq!(
            materialize_bytes(&mut e, &save2, t).unwrap(),
            kept2[t as usize],
            "the other save's turn {t}"
        );
    }
    let v2 = verify(&mut e, &save2);
    assert_eq!(v2["ok"], json!(true), "{v2}");
    assert_eq!(v2["turns_checked"], json!(11), "{v2}");
    println!(
        "saves (retention): 61 turns pruned, turn 61 re-based, origin 60; {} kept turns byte-exact and \
         verified; save_blobs {blobs_before} -> {blobs_after} ({} deleted, 1 base added); other save intact (11 turns)",
        TURNS - 60,
        to_go.len()
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Admin-only functions

/// `awf.retention_enforce()` and `awf.rotate_master_key()` are admin only (docs/sql-api.md):
/// an `awf_app` login is refused (42501), an `awf_admin` login may run retention.
#[test]
fn retention_and_rotation_are_admin_only() {
    let db = TestDb::new();
    let app = TestRole::new(&db, "awf_app");
    let admin = TestRole::new(&db, "awf_admin");
    let mut u = db.client();
    u.batch_execute(&format!(
        "SET awf.user_id_hash = 'u-app'; SET ROLE {}",
        app.name()
    ))
    .unwrap();
    let mut refused = 0;
    for sql in [
        "SELECT awf.retention_enforce()",
        "SELECT awf.rotate_master_key()",
    ] {
        let (code, msg) = failure(u.query_one(sql, &[]), &format!("{sql} as awf_app"));
        assert_eq!(code, "42501", "{sql} as awf_app: {msg}");
        refused += 1;
    }
    drop(u);
    let mut a = db.client_as(admin.name());
    let r: Value = a
        .query_one("SELECT awf.retention_enforce()", &[])
        .unwrap()
        .get(0);
    assert!(r.get("turns_pruned").is_some(), "{r}");
    drop(a);
    println!("saves (admin only): {refused} admin functions refused to awf_app with 42501, retention ran as awf_admin");
}
