//! Bounded work seen from a client: a call that would run long is stopped by
//! `statement_timeout` and by `pg_cancel_backend` promptly, with the work limits lifted as far
//! as they go, and the server keeps running.

use awf_tests::{sqlstate, TestDb};
use std::time::{Duration, Instant};

/// One call of many seconds: 50,000 inserts at the front of a 200,000-element array shift ten
/// billion elements (one call, so only the extension's own interrupt checks can stop it).
const LONG_CALL: &str = "SELECT jsonb_array_length(awf.json_patch_apply(
   (SELECT jsonb_agg(i) FROM generate_series(1, 200000) i),
   (SELECT jsonb_agg(jsonb_build_object('op', 'add', 'path', '/0', 'value', i))
      FROM generate_series(1, 50000) i)))";

fn started_at(c: &mut postgres::Client) -> String {
    c.query_one("SELECT pg_postmaster_start_time()::text", &[])
        .unwrap()
        .get(0)
}

#[test]
fn statement_timeout_and_cancel_stop_long_calls() {
    let db = TestDb::new();
    let mut c = db.client();
    let start = started_at(&mut c);
    c.batch_execute(
        "SET awf.max_work_units = 2147483647; SET awf.max_built_nodes = 2147483647;
         SET statement_timeout = '500ms'",
    )
    .unwrap();
    let t = Instant::now();
    let err = c.query_one(LONG_CALL, &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "57014", "{err:?}");
    let timeout_took = t.elapsed();
    assert!(timeout_took < Duration::from_secs(20), "{timeout_took:?}");

    c.batch_execute("SET statement_timeout = 0").unwrap();
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let canceller = std::thread::spawn({
        let url = db.url();
        move || {
            std::thread::sleep(Duration::from_millis(500));
            let mut k = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            k.query_one("SELECT pg_cancel_backend($1)", &[&pid])
                .unwrap();
        }
    });
    let t = Instant::now();
    let err = c.query_one(LONG_CALL, &[]).unwrap_err();
    canceller.join().unwrap();
    assert_eq!(sqlstate(&err), "57014", "{err:?}");
    let cancel_took = t.elapsed();
    assert!(cancel_took < Duration::from_secs(20), "{cancel_took:?}");
    assert_eq!(started_at(&mut c), start, "the postmaster did not restart");
    println!(
        "long patch: statement_timeout 500 ms stopped it after {timeout_took:?}, \
         pg_cancel_backend after 500 ms stopped it after {cancel_took:?}"
    );
}

#[test]
fn a_doubling_patch_is_refused_fast_with_default_limits() {
    let db = TestDb::new();
    let mut c = db.client();
    let start = started_at(&mut c);
    let ops: Vec<String> = (0..40)
        .map(|i| format!(r#"{{"op":"copy","from":"","path":"/k{i}"}}"#))
        .collect();
    let t = Instant::now();
    let err = c
        .query_one(
            &format!(
                "SELECT awf.json_patch_apply('{{\"a\": \"xxxxxxxxxxxxxxxx\"}}', '[{}]')",
                ops.join(",")
            ),
            &[],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "54000", "{err:?}");
    println!("40-op copy bomb refused with 54000 in {:?}", t.elapsed());
    assert_eq!(started_at(&mut c), start);
}

/// `n` copies of the whole document `{"a": {}}` to the bottom of its own chain of `a` members:
/// each doubles its depth. Before depth was checked where values land, 18 of them crashed the
/// backend (stack overflow) and with it the whole cluster.
fn depth_bomb(n: usize) -> serde_json::Value {
    let mut chain = 1usize;
    let mut ops = Vec::new();
    for _ in 0..n {
        ops.push(serde_json::json!({"op": "copy", "from": "", "path": "/a".repeat(chain + 1)}));
        chain = 2 * chain + 1;
    }
    serde_json::Value::Array(ops)
}

#[test]
fn a_depth_doubling_patch_is_refused_by_sql_and_by_sync() {
    let db = TestDb::new();
    let mut c = db.client();
    let start = started_at(&mut c);
    let bomb = depth_bomb(18);
    let t = Instant::now();
    let err = c
        .query_one(
            "SELECT awf.json_patch_apply('{\"a\": {}}', $1::jsonb)",
            &[&bomb],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "54000", "{err:?}");
    println!(
        "18-op depth bomb refused by json_patch_apply in {:?}",
        t.elapsed()
    );

    // The same patch as a device's turn: refused, and the save's head does not move.
    let sid = awf_tests::random_uuid();
    c.query_one(
        "SELECT awf.session_upsert($1::text::uuid, 'u1', '{\"a\": {}}')",
        &[&sid],
    )
    .unwrap();
    let save: String = c
        .query_one(
            "SELECT awf.save_create_or_attach($1::text::uuid, 'u1') ->> 'save_id'",
            &[&sid],
        )
        .unwrap()
        .get(0);
    let token: String = c
        .query_one(
            "SELECT awf.device_register('dev', 'u1', $1::text::uuid) ->> 'sync_token'",
            &[&sid],
        )
        .unwrap()
        .get(0);
    let row = c
        .query_one(
            "SELECT head_turn, head_chain FROM awf.saves WHERE save_id = $1::text::uuid",
            &[&save],
        )
        .unwrap();
    let (head, chain): (i64, String) = (row.get(0), row.get(1));
    let upload = |turns: serde_json::Value| {
        serde_json::json!({"save_id": save, "base_turn": head, "base_chain": chain,
                           "turns": turns})
    };
    let err = c
        .query_one(
            "SELECT awf.sync_up('dev', $1, $2::jsonb)",
            &[
                &token,
                &upload(serde_json::json!([{"turn_id": head + 1, "patch": bomb}])),
            ],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "54000", "{err:?}");

    // Many empty turns on one state: each is a full copy the upload keeps, so they are charged.
    let big: Vec<i32> = (0..100_000).collect();
    c.execute("SET awf.max_built_nodes = 1000000", &[]).unwrap();
    let turns: Vec<_> = (1..=20)
        .map(|i| serde_json::json!({"turn_id": head + i, "state": {"a": big}}))
        .collect();
    let err = c
        .query_one(
            "SELECT awf.sync_up('dev', $1, $2::jsonb)",
            &[&token, &upload(serde_json::Value::Array(turns))],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "54000", "{err:?}");
    let message = err.as_db_error().map(|d| d.message().to_owned());
    assert!(
        message
            .as_deref()
            .unwrap_or("")
            .contains("awf.max_built_nodes"),
        "{err:?}"
    );
    let now: i64 = c
        .query_one(
            "SELECT head_turn FROM awf.saves WHERE save_id = $1::text::uuid",
            &[&save],
        )
        .unwrap()
        .get(0);
    assert_eq!(now, head, "a refused upload moves nothing");
    assert_eq!(started_at(&mut c), start, "the postmaster did not restart");
}
