//! Privacy operations over real connections: a save export written to a file and checked
//! offline by the very python3 script `docs/sql-api.md` documents (a tampered, truncated or
//! shuffled file fails it), and a committed user erasure after which a ciphertext copied out
//! beforehand cannot be decrypted, not even with the master key in hand.

use awf_core::codec::{self, keys::Keyring, keys::WrappedKey, DataKey};
use awf_core::jsonl;
use awf_tests::{random_uuid, sqlstate, TempDir, TempFile, TestDb};
use postgres::Client;
use serde_json::{json, Value};
use std::process::{Command, Output};

/// The python3 snippet under "Checking an export offline" in docs/sql-api.md.
fn documented_checker() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/sql-api.md");
    let doc = std::fs::read_to_string(path).expect("read docs/sql-api.md");
    let start = doc
        .find("### Checking an export offline")
        .expect("docs/sql-api.md has a section \"Checking an export offline\"");
    let rest = &doc[start..];
    let open = rest.find("```python\n").expect("with a python block") + "```python\n".len();
    let len = rest[open..].find("```").expect("the python block ends");
    rest[open..open + len].to_owned()
}

/// Runs the documented checker on a file.
fn check_offline(path: &str) -> Output {
    Command::new("python3")
        .arg("-c")
        .arg(documented_checker())
        .arg(path)
        .output()
        .expect("run python3")
}

fn check_text(text: &str) -> Output {
    let f = TempFile::with_contents(text);
    check_offline(f.path())
}

fn passes(out: &Output) -> bool {
    out.status.success()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn q(c: &mut Client, sql: &str, save: &str) -> Value {
    c.query_one(sql, &[&save]).unwrap().get(0)
}

/// A session of `user` with a state that is not all ASCII and holds decimals, its save, and
/// `turns` turns.
fn save_with_turns(c: &mut Client, user: &str, turns: i64) -> (String, String) {
    let sid = random_uuid();
    let state = json!({"player": {"name": "Zoë 🐉 \"the bold\"", "speed": 1.25, "gold": 5,
                                   "inventory": []},
                       "world": {"weather": "rain\nthen sun", "ratio": 0.1}});
    c.query_one(
        "SELECT awf.session_upsert($1::text::uuid, $2, $3::jsonb)",
        &[&sid, &user, &state],
    )
    .unwrap();
    let r: Value = c
        .query_one(
            "SELECT awf.save_create_or_attach($1::text::uuid, $2)",
            &[&sid, &user],
        )
        .unwrap()
        .get(0);
    let save = r["save_id"].as_str().unwrap().to_owned();
    play(c, &sid, 1, turns);
    (sid, save)
}

fn play(c: &mut Client, sid: &str, from: i64, to: i64) {
    for n in from..=to {
        let raw = json!({"txt": format!("Turn {n}."), "acts": [
            {"op": "increment", "path": "/player/gold", "by": n},
            {"op": "append", "path": "/player/inventory", "value": format!("item {n} ✨")},
        ]});
        c.query_one(
            "SELECT awf.turn_submit($1::text::uuid, $2, $3::jsonb)",
            &[&sid, &n, &raw],
        )
        .unwrap_or_else(|e| panic!("turn {n}: {e}"));
    }
}

#[test]
fn an_export_passes_the_documented_offline_check_and_a_tampered_one_fails() {
    let db = TestDb::new();
    let mut c = db.client();
    let (sid, save) = save_with_turns(&mut c, "u-export", 12);
    c.query_one(
        "SELECT awf.save_restore($1::text::uuid, 8)",
        &[&save.as_str()],
    )
    .unwrap();
    play(&mut c, &sid, 13, 14);
    let text: String = c
        .query_one(
            "SELECT awf.save_export($1::text::uuid, 'jsonl', true)",
            &[&save.as_str()],
        )
        .unwrap()
        .get(0);

    let dir = TempDir::new();
    let path = dir.file("save.jsonl");
    std::fs::write(&path, &text).unwrap();
    let out = check_offline(&path);
    assert!(passes(&out), "the documented check fails: {}", stderr(&out));
    let verified = jsonl::verify_jsonl(&text).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.starts_with(&format!("ok: {} records", verified.records.len())),
        "{stdout}"
    );
    assert!(stdout.contains(&verified.archive_sha256), "{stdout}");
    assert_eq!(verified.manifest["counts"]["archive"], json!(1));
    assert_eq!(verified.manifest["counts"]["archive_turn"], json!(4));
    assert_eq!(verified.manifest["counts"]["turn"], json!(11));
    // psql's unaligned output adds a newline; that still checks.
    assert!(passes(&check_text(&format!("{text}\n"))));

    // Every kind of damage fails, naming what failed.
    let lines: Vec<&str> = text.lines().collect();
    let join = |ls: Vec<&str>| ls.iter().map(|l| format!("{l}\n")).collect::<String>();
    let edited = text.replacen("item 3 ✨", "item 4 ✨", 1);
    assert_ne!(edited, text);
    let out = check_text(&edited);
    assert!(!passes(&out));
    assert!(stderr(&out).contains("sha256 mismatch"), "{}", stderr(&out));
    let flipped = text.replacen("\"speed\":1.25", "\"speed\":1.26", 1);
    assert_ne!(flipped, text);
    assert!(!passes(&check_text(&flipped)));

    let mut shuffled = lines.clone();
    shuffled.swap(2, 3);
    let out = check_text(&join(shuffled));
    assert!(
        stderr(&out).contains("archive_sha256 mismatch"),
        "{}",
        stderr(&out)
    );
    let mut dropped = lines.clone();
    dropped.remove(4);
    assert!(!passes(&check_text(&join(dropped))));
    let truncated = join(lines[..lines.len() - 1].to_vec());
    let out = check_text(&truncated);
    assert!(stderr(&out).contains("manifest"), "{}", stderr(&out));
    // A line re-hashed after an edit still breaks the archive checksum.
    let i = lines.iter().position(|l| l.contains("item 3 ✨")).unwrap();
    let record = &serde_json::from_str::<Value>(lines[i]).unwrap()["record"];
    let forged_record: Value =
        serde_json::from_str(&record.to_string().replacen("item 3", "item 9", 1)).unwrap();
    let forged_line = jsonl::line(&forged_record).unwrap();
    let mut forged = lines.clone();
    forged[i] = &forged_line;
    let out = check_text(&join(forged));
    assert!(
        stderr(&out).contains("archive_sha256 mismatch"),
        "{}",
        stderr(&out)
    );
    for bad in [&edited, &flipped, &truncated] {
        assert!(jsonl::verify_jsonl(bad).is_err());
    }

    // The single-document form carries the same kind of checksums.
    let doc: String = c
        .query_one(
            "SELECT awf.save_export($1::text::uuid, 'json')",
            &[&save.as_str()],
        )
        .unwrap()
        .get(0);
    let v = jsonl::verify_json(&doc).unwrap();
    assert_eq!(
        v.records.len(),
        verified.records.len() - verified.manifest["counts"]["audit"].as_u64().unwrap() as usize
    );
    let e = c
        .query_one(
            "SELECT awf.save_export($1::text::uuid, 'csv')",
            &[&save.as_str()],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22023");
}

fn key_line(id: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{id}:{hex}")
}

/// Every data key still in the database, unwrapped with the master key.
fn every_data_key(c: &mut Client, ring: &Keyring) -> Vec<DataKey> {
    c.query("SELECT wrapped FROM awf.data_keys", &[])
        .unwrap()
        .iter()
        .map(|r| {
            let w: Vec<u8> = r.get(0);
            ring.unwrap(&WrappedKey::from_bytes(&w).unwrap()).unwrap()
        })
        .collect()
}

#[test]
fn an_erased_user_stays_erased_and_a_kept_ciphertext_cannot_be_decrypted() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new();
    let dir = TempDir::new();
    let key_file = dir.file("master.key");
    let key = key_line("mk-privacy");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ring = Keyring::from_key_file(&key).unwrap();
    let mut c = db.client();
    c.batch_execute(&format!("SET awf.master_key_file = '{key_file}'"))
        .unwrap();
    let (sid, save) = save_with_turns(&mut c, "u-gone", 5);
    let (_, other) = save_with_turns(&mut c, "u-stays", 3);
    let other_head = q(
        &mut c,
        "SELECT awf.save_materialize($1::text::uuid)",
        &other,
    );
    // Copied out before the erasure: a ciphertext and, for good measure, its wrapped key.
    let row = c
        .query_one(
            "SELECT b.data, b.key_id, k.wrapped FROM awf.save_blobs b
             JOIN awf.save_diffs d USING (blob_hash, key_id)
             JOIN awf.data_keys k ON k.key_id = b.key_id
             WHERE d.save_id = $1::text::uuid AND d.turn_id = 3",
            &[&save.as_str()],
        )
        .unwrap();
    let (copy, key_id): (Vec<u8>, String) = (row.get(0), row.get(1));
    let wrapped: Vec<u8> = row.get(2);
    let old_key = ring
        .unwrap(&WrappedKey::from_bytes(&wrapped).unwrap())
        .unwrap();
    assert!(codec::decode(&copy, &old_key).is_ok(), "readable before");
    drop(old_key);
    drop(wrapped);

    let r: Value = c
        .query_one("SELECT awf.user_delete('u-gone', 'erasure request')", &[])
        .unwrap()
        .get(0);
    assert_eq!(r["saves"], json!(1), "{r}");
    assert_eq!(r["data_keys_destroyed"], json!(1), "{r}");

    // From a fresh connection, after commit: nothing of the user is left.
    let mut fresh = db.client();
    fresh
        .batch_execute(&format!("SET awf.master_key_file = '{key_file}'"))
        .unwrap();
    for (sql, what) in [
        (
            "SELECT count(*) FROM awf.saves WHERE user_id_hash = 'u-gone'",
            "saves",
        ),
        (
            "SELECT count(*) FROM awf.sessions WHERE user_id_hash = 'u-gone'",
            "sessions",
        ),
        (
            "SELECT count(*) FROM awf.data_keys WHERE user_id_hash = 'u-gone'",
            "data keys",
        ),
    ] {
        let n: i64 = fresh.query_one(sql, &[]).unwrap().get(0);
        assert_eq!(n, 0, "{what}");
    }
    let n: i64 = fresh
        .query_one(
            "SELECT count(*) FROM awf.save_blobs WHERE key_id = $1",
            &[&key_id],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the user's blobs are purged");
    let n: i64 = fresh
        .query_one(
            "SELECT count(*) FROM awf.turns WHERE session_id = $1::text::uuid",
            &[&sid],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let tomb: String = fresh
        .query_one(
            "SELECT reason FROM awf.save_tombstones WHERE save_id = $1::text::uuid",
            &[&save.as_str()],
        )
        .unwrap()
        .get(0);
    assert_eq!(tomb, "erasure request");

    // Every key the database still holds, unwrapped with the master key itself: none opens
    // the copy, whose key is gone.
    let keys = every_data_key(&mut fresh, &ring);
    assert_eq!(keys.len(), 1, "only u-stays' key is left");
    assert!(codec::decode(&copy, &keys).is_err());
    let e = fresh
        .query_one(
            "SELECT awf.save_materialize($1::text::uuid)",
            &[&save.as_str()],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&e), "P0002");
    let e = fresh
        .query_one("SELECT awf.user_delete('u-gone', 'again')", &[])
        .unwrap_err();
    assert_eq!(sqlstate(&e), "P0002");

    // The other user is untouched.
    assert_eq!(
        q(
            &mut fresh,
            "SELECT awf.save_materialize($1::text::uuid)",
            &other
        ),
        other_head
    );
    let v = q(&mut fresh, "SELECT awf.save_verify($1::text::uuid)", &other);
    assert_eq!(v["ok"], json!(true), "{v}");
}
