//! Retention under concurrency: a save that a player touches while `awf.retention_enforce()`
//! waits for its lock is not stale any more, and is kept.

use awf_tests::TestDb;
use serde_json::json;
use std::time::Duration;

const SID: &str = "99999999-aaaa-4aaa-8aaa-999999999999";

#[test]
fn a_save_touched_while_retention_waits_is_kept() {
    let db = TestDb::new();
    let mut c = db.client();
    c.query_one(
        "SELECT awf.session_upsert($1::text::uuid, 'u1', $2::jsonb)",
        &[&SID, &json!({"gold": 0})],
    )
    .unwrap();
    let save: String = c
        .query_one(
            "SELECT awf.save_create_or_attach($1::text::uuid, 'u1') ->> 'save_id'",
            &[&SID],
        )
        .unwrap()
        .get(0);
    c.query_one(
        "SELECT awf.save_persist_turn($1::text::uuid, 1, '{\"gold\": 1}')",
        &[&save],
    )
    .unwrap();
    // Untouched for 400 days, as far as retention can tell.
    c.execute(
        "UPDATE awf.saves SET updated_at = now() - interval '400 days' WHERE save_id = $1::text::uuid",
        &[&save],
    )
    .unwrap();
    // A player's turn holds the save...
    let mut player = db.client();
    player.batch_execute("BEGIN").unwrap();
    player
        .query_one(
            "SELECT awf.save_persist_turn($1::text::uuid, 2, '{\"gold\": 2}')",
            &[&save],
        )
        .unwrap();
    // ...while retention starts and waits for it.
    let url = db.url();
    let retention = std::thread::spawn(move || {
        let mut r = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        r.batch_execute("SET awf.lock_timeout_ms = 60000; SET statement_timeout = '60s'")
            .unwrap();
        let out: serde_json::Value = r
            .query_one("SELECT awf.retention_enforce()", &[])
            .unwrap()
            .get(0);
        out
    });
    std::thread::sleep(Duration::from_millis(700));
    player.batch_execute("COMMIT").unwrap();
    let out = retention.join().unwrap();
    assert_eq!(out["saves_deleted"], json!(0), "{out}");
    let head: i64 = c
        .query_one(
            "SELECT head_turn FROM awf.saves WHERE save_id = $1::text::uuid",
            &[&save],
        )
        .unwrap()
        .get(0);
    assert_eq!(head, 2, "the touched save and its new turn are kept");
}
