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
    let out = awf(&["verify", &save], Some(&db));
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
    assert!(String::from_utf8_lossy(&out.stdout).contains("first_bad_turn"));
    let out = awf(&["verify", "not-a-uuid"], Some(&db));
    assert_eq!(out.status.code(), Some(1), "22P02 from the database");
}

#[test]
fn admin_keys_are_created_listed_and_revoked() {
    let db = TestDb::new();
    let out = awf(&["admin-key", "create", "ops-cli"], Some(&db));
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
    let out = awf(&["admin-key", "list"], Some(&db));
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(listed.contains("\"ops-cli\""), "{listed}");
    assert!(!listed.contains(&key[5..]), "the list never shows a key");
    // A second key of that name needs --replace.
    let out = awf(&["admin-key", "create", "ops-cli"], Some(&db));
    assert_eq!(
        out.status.code(),
        Some(1),
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
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("P0002"));
    let out = awf(&["admin-key", "create", "ops-cli", "--replace"], Some(&db));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
