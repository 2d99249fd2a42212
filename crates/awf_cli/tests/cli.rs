//! The `awf` binary end to end: real process, real database.

use awf_tests::{TempFile, TestDb};
use std::io::Write;
use std::process::{Command, Output};

fn awf(args: &[&str], db: Option<&TestDb>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_awf"));
    cmd.args(args).env_remove("DATABASE_URL");
    if let Some(db) = db {
        cmd.env("DATABASE_URL", db.url());
    }
    cmd.output().unwrap()
}

#[test]
fn version_flag() {
    let out = awf(&["--version"], None);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("awf {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn hash_calls_the_database() {
    let db = TestDb::new();
    let f = TempFile::with_contents(r#"{"b": 2, "a": [1.0, "x"]}"#);
    let out = awf(&["hash", f.path()], Some(&db));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: String = db
        .client()
        .query_one(
            "SELECT encode(sha256(convert_to('{\"a\":[1,\"x\"],\"b\":2}', 'UTF8')), 'hex')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), expected);
}

#[test]
fn hash_from_stdin() {
    let db = TestDb::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_awf"))
        .args(["hash", "-"])
        .env("DATABASE_URL", db.url())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"[]").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim().len(), 64);
}

#[test]
fn sql_errors_exit_1_with_sqlstate() {
    let db = TestDb::new();
    let f = TempFile::with_contents(r#"{"id": 9007199254740993}"#);
    let out = awf(&["hash", f.path()], Some(&db));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SQLSTATE 22023"));
}

#[test]
fn numbers_keep_their_exact_text() {
    let db = TestDb::new();
    let f = TempFile::with_contents("[0.10000000000000000001]");
    let out = awf(&["hash", f.path()], Some(&db));
    assert_eq!(
        out.status.code(),
        Some(1),
        "must not be rounded to 0.1 on the way"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = awf(&["hash", "/nonexistent/file.json"], None);
    assert_eq!(out.status.code(), Some(2));
    let f = TempFile::with_contents("{}");
    let out = awf(&["hash", f.path()], None);
    assert_eq!(out.status.code(), Some(2), "no database configured");
}

#[test]
fn operator_commands_report_and_exit_by_outcome() {
    let db = TestDb::new();
    let save: String = {
        let mut c = db.client();
        c.batch_execute(
            "SELECT awf.session_upsert('88888888-8888-8888-8888-888888888888', 'u1', '{\"hp\": 1}')",
        )
        .unwrap();
        c.query_one(
            "SELECT awf.save_create_or_attach('88888888-8888-8888-8888-888888888888', 'u1') ->> 'save_id'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let out = awf(&["--json", "verify", &save], Some(&db));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"ok\": true"));
    let out = awf(&["audit-verify"], Some(&db));
    assert!(out.status.success());
    let out = awf(&["stats"], Some(&db));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("saves"));
    let out = awf(&["retention"], Some(&db));
    assert!(out.status.success());
    let out = awf(&["reconcile"], Some(&db));
    assert!(out.status.success());
    // A corrupted save: verify prints the report and exits 4.
    db.client()
        .batch_execute("UPDATE awf.save_diffs SET content_hash = repeat('a', 64)")
        .unwrap();
    let out = awf(&["verify", &save], Some(&db));
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAILED at turn"));
    let out = awf(&["--json", "sync", "verify", "--save-id", &save], Some(&db));
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stdout).contains("first_bad_turn"));
    let out = awf(&["verify", "not-a-uuid"], Some(&db));
    assert_eq!(out.status.code(), Some(1), "22P02 from the database");
}

#[test]
fn admin_keys_are_created_listed_and_revoked() {
    let db = TestDb::new();
    let out = awf(&["--json", "admin-key", "create", "ops-cli"], Some(&db));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["name"], "ops-cli");
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("awfk_") && key.len() == 69, "{key}");
    // The key works for the gateway; the list never shows it.
    let verify = |key: &str| {
        let mut c = db.client();
        let mut tx = c.transaction().unwrap();
        tx.batch_execute("SET LOCAL ROLE awf_gateway").unwrap();
        tx.query_one("SELECT awf.act_as_admin($1)", &[&key])
            .map(|_| ())
    };
    verify(&key).unwrap();
    let out = awf(&["--json", "admin-key", "list"], Some(&db));
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(listed.contains("\"ops-cli\""), "{listed}");
    assert!(!listed.contains(&key[5..]), "the list never shows a key");
    // A second key of that name needs --replace.
    let out = awf(&["admin-key", "create", "ops-cli"], Some(&db));
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = awf(&["admin-key", "revoke", "ops-cli"], Some(&db));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = verify(&key).unwrap_err();
    assert_eq!(
        e.code().unwrap().code(),
        "28000",
        "a revoked key stops working"
    );
    let out = awf(&["admin-key", "revoke", "ops-cli"], Some(&db));
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("P0002"));
    let out = awf(&["admin-key", "create", "ops-cli", "--replace"], Some(&db));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `awf` and returns (exit code, stdout, stderr).
fn run(args: &[&str], db: &TestDb) -> (i32, String, String) {
    let out = awf(args, Some(db));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `awf --json ...`, expects success, and parses the output (a document or JSON lines).
fn json_of(args: &[&str], db: &TestDb) -> Vec<serde_json::Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out, err) = run(&all, db);
    assert_eq!(code, 0, "awf {args:?}: {err}");
    match serde_json::from_str(&out) {
        Ok(v) => vec![v],
        Err(_) => out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect(),
    }
}

#[test]
fn every_seed_command_works_and_fails_as_documented() {
    let db = TestDb::new();
    let sid = awf_tests::random_uuid();
    let save: String = {
        let mut c = db.client();
        c.execute(
            "SELECT awf.session_upsert($1::text::uuid, 'u-cli', '{\"player\": {\"gold\": 0}, \"hot\": {\"objectives\": [{\"text\": \"Find the key\", \"priority\": 2}]}}')",
            &[&sid],
        )
        .unwrap();
        let save: String = c
            .query_one(
                "SELECT awf.save_create_or_attach($1::text::uuid, 'u-cli') ->> 'save_id'",
                &[&sid],
            )
            .unwrap()
            .get(0);
        for k in 1..=3i64 {
            c.execute(
                "SELECT awf.turn_submit($1::text::uuid, $2, '{\"txt\": \"Ash finds gold.\", \"acts\": [{\"op\": \"increment\", \"path\": \"/player/gold\"}]}')",
                &[&sid, &k],
            )
            .unwrap();
        }
        save
    };
    let dir = awf_tests::TempDir::new();

    // Snapshots.
    let snap = &json_of(
        &["snapshot", "create", "--session", &sid, "--label", "cp1"],
        &db,
    )[0];
    let snap_id = snap["snapshot_id"].as_i64().unwrap().to_string();
    let (code, table, _) = run(&["snapshot", "list", "--session", &sid], &db);
    assert_eq!(code, 0);
    assert!(table.starts_with("ID"), "a table: {table}");
    assert!(table.contains("cp1"), "{table}");
    let listed = json_of(&["snapshot", "list", "--session", &sid], &db);
    assert_eq!(listed[0]["label"], "cp1", "JSON lines: {listed:?}");
    let (code, text, _) = run(
        &[
            "snapshot",
            "restore",
            "--session",
            &sid,
            "--snapshot",
            &snap_id,
        ],
        &db,
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("restored"), "{text}");
    let (code, _, err) = run(
        &[
            "snapshot",
            "restore",
            "--session",
            &sid,
            "--snapshot",
            "999999",
        ],
        &db,
    );
    assert_eq!(code, 5, "not found: {err}");
    assert!(err.contains("hint:"), "says what to do next: {err}");
    assert_eq!(
        run(
            &[
                "snapshot",
                "delete",
                "--session",
                &sid,
                "--snapshot",
                &snap_id
            ],
            &db
        )
        .0,
        0
    );
    assert_eq!(
        run(
            &[
                "snapshot",
                "delete",
                "--session",
                &sid,
                "--snapshot",
                &snap_id
            ],
            &db
        )
        .0,
        5
    );

    // Recap, with the seed's camelCase spelling too.
    let (code, text, _) = run(&["recap", "--session", &sid, "--lastTurns", "2"], &db);
    assert_eq!(code, 0);
    assert!(text.contains("Find the key"), "{text}");
    let recap = &json_of(&["recap", "--session", &sid, "--last-turns", "2"], &db)[0];
    assert!(recap["sentences"].is_array());
    assert_eq!(
        run(&["recap", "--session", &sid, "--last-turns", "5000"], &db).0,
        1
    );
    assert_eq!(
        run(&["recap", "--session", &awf_tests::random_uuid()], &db).0,
        5
    );

    // Export to a file and import it back as a new session.
    let bundle = dir.file("bundle.json");
    let summary = &json_of(&["export", "--session", &sid, "--output", &bundle], &db)[0];
    assert_eq!(summary["redacted"], true);
    let (code, _, err) = run(&["import", "--file", &bundle, "--preserveTurnId"], &db);
    assert_eq!(code, 0, "{err}");
    std::fs::write(&bundle, "{\"not\": \"a bundle\"}").unwrap();
    assert_eq!(run(&["import", "--file", &bundle], &db).0, 1, "22023");
    assert_eq!(run(&["import", "--file", "/nonexistent"], &db).0, 2);

    // The WAL.
    let wal = json_of(&["wal", "list", "--session", &sid], &db);
    assert_eq!(wal.len(), 3, "{wal:?}");
    let (code, text, _) = run(&["wal", "reconcile"], &db);
    assert_eq!((code, text.trim()), (0, "(none)"));
    let cleaned = &json_of(&["wal", "cleanup", "--days", "0"], &db)[0];
    // The session's three entries, and the imported copy's.
    assert!(cleaned["deleted"].as_i64().unwrap() >= 3, "{cleaned}");

    // Sync.
    let (code, text, _) = run(&["sync", "status"], &db);
    assert_eq!(code, 0);
    assert!(text.contains("saves"), "{text}");
    let details = &json_of(&["sync", "status", "--save-id", &save], &db)[0];
    assert_eq!(details["save"]["save_id"], save.as_str());
    let (code, text, _) = run(&["sync", "verify", "--save-id", &save], &db);
    assert_eq!(code, 0);
    assert!(text.contains(": ok"), "{text}");
    let sample = json_of(&["sync", "verify", "--sample", "100"], &db);
    assert!(sample.iter().all(|r| r["ok"] == true), "{sample:?}");
    assert_eq!(run(&["sync", "verify", "--sample", "101"], &db).0, 2);
    assert_eq!(run(&["sync", "verify"], &db).0, 2, "--save-id or --sample");
    let zip = dir.file("save.zip");
    let (code, _, err) = run(
        &[
            "sync",
            "export",
            "--save-id",
            &save,
            "--format",
            "zip",
            "--output",
            &zip,
        ],
        &db,
    );
    assert_eq!(code, 0, "{err}");
    let check = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; \
             print(len(z.read(z.namelist()[0]).splitlines()))",
            &zip,
        ])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let (code, jsonl, _) = run(&["sync", "export", "--save-id", &save], &db);
    assert_eq!(code, 0);
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        jsonl.lines().count().to_string(),
        "the zip holds the JSON Lines archive"
    );
    assert_eq!(
        run(
            &["sync", "export", "--save-id", &save, "--format", "zip"],
            &db
        )
        .0,
        2,
        "zip needs --output"
    );
    assert!(json_of(&["sync", "stats"], &db)[0]["saves"].is_object());
    let (code, text, _) = run(&["sync", "conflicts", "--save-id", &save], &db);
    assert_eq!((code, text.trim()), (0, "(none)"));

    // Cannot connect: exit 3 with a hint.
    let out = Command::new(env!("CARGO_BIN_EXE_awf"))
        .args([
            "sync",
            "stats",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint:"));
}

#[test]
fn completions_and_the_man_page_come_from_the_command_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let out = awf(&["completions", shell], None);
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("snapshot") && text.contains("admin-key"),
            "{shell}"
        );
    }
    let out = awf(&["man"], None);
    assert!(out.status.success());
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(
        man.starts_with(".ie") || man.contains(".TH"),
        "roff: {}",
        &man[..80]
    );
    assert!(man.contains("snapshot"));
}
