//! Bounded work seen from a client: a call that would run long is stopped by
//! `statement_timeout` and by `pg_cancel_backend` promptly, with the work limits lifted as far
//! as they go, and the server keeps running.

use awf_tests::{sqlstate, TestDb};
use std::time::{Duration, Instant};

/// Diffs of large, shuffled arrays: seconds of work.
const LONG_DIFF: &str = "SELECT count(awf.json_diff(
   (SELECT jsonb_agg(jsonb_build_array(i, i::text) ORDER BY i) FROM generate_series(1, 200000) i),
   (SELECT jsonb_agg(jsonb_build_array(i, 'x') ORDER BY -i) FROM generate_series(1, 200000) i)))
 FROM generate_series(1, 200)";

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
    let err = c.query_one(LONG_DIFF, &[]).unwrap_err();
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
    let err = c.query_one(LONG_DIFF, &[]).unwrap_err();
    canceller.join().unwrap();
    assert_eq!(sqlstate(&err), "57014", "{err:?}");
    let cancel_took = t.elapsed();
    assert!(cancel_took < Duration::from_secs(20), "{cancel_took:?}");
    assert_eq!(started_at(&mut c), start, "the postmaster did not restart");
    println!(
        "long diff: statement_timeout 500 ms stopped it after {timeout_took:?}, \
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
