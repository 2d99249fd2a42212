//! pg_dump and restore with psql: the extension's tables are configuration tables
//! (`pg_extension_config_dump`), so a plain dump carries sessions, turns, the WAL, snapshots,
//! the audit log and counters, and the restored database plays on where it left off.

use awf_tests::{host_port, pg_command, random_uuid, run_ok, TempDir, TestDb};
use postgres::{Client, NoTls};
use serde_json::{json, Value};

fn submit(c: &mut Client, sid: &str, turn: i64, raw: &Value) -> Value {
    c.query_one(
        "SELECT awf.turn_submit($1::text::uuid, $2, $3::jsonb)",
        &[&sid, &turn, raw],
    )
    .unwrap_or_else(|e| panic!("turn {turn}: {e:?}"))
    .get(0)
}

fn payload(k: i64) -> Value {
    json!({"txt": format!("Turn {k}."),
           "acts": [{"op": "increment", "path": "/player/gold", "by": k},
                    {"op": "remember", "text": format!("Memory {k}"), "salience": 0.5}]})
}

/// Everything the extension keeps, as comparable rows (ids included: a restore keeps them).
fn fingerprint(c: &mut Client) -> Vec<String> {
    let queries = [
        "SELECT session_id::text || ' ' || user_id_hash || ' ' || turn_id || ' ' || state_hash || ' ' || awf.canonical_hash(state) || ' ' || coalesce(contract_ref, '-') FROM awf.sessions ORDER BY session_id",
        "SELECT session_id::text || ' ' || turn_id || ' ' || payload_hash || ' ' || state_hash || ' ' || array_to_string(lines, '|') || ' ' || acts::text FROM awf.turns ORDER BY session_id, turn_id",
        "SELECT id || ' ' || session_id::text || ' ' || turn_id || ' ' || applied || ' ' || attempts || ' ' || payload_hash || ' ' || state_hash_before || ' ' || awf_raw::text FROM awf.turn_wal ORDER BY id",
        "SELECT id || ' ' || session_id::text || ' ' || turn_id || ' ' || coalesce(label, '-') || ' ' || content_hash || ' ' || awf.canonical_hash(payload) FROM awf.snapshots ORDER BY id",
        "SELECT id || ' ' || action || ' ' || coalesce(session_id::text, '-') FROM awf.audit_log ORDER BY id",
        "SELECT name || ' ' || value FROM awf.metrics ORDER BY name",
    ];
    let mut out = Vec::new();
    for q in queries {
        for row in c.query(q, &[]).unwrap() {
            out.push(row.get::<_, String>(0));
        }
    }
    out
}

/// A fresh, empty database on the test cluster, dropped on drop.
struct EmptyDb {
    name: String,
    admin_url: String,
}

impl EmptyDb {
    fn new(admin_url: &str) -> Self {
        let name = format!("awf_restore_{:016x}", rand::random::<u64>());
        Client::connect(admin_url, NoTls)
            .unwrap()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        EmptyDb {
            name,
            admin_url: admin_url.to_owned(),
        }
    }
}

impl Drop for EmptyDb {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(&self.admin_url, NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Plain format, restored with psql.
#[test]
fn dump_and_restore_keeps_every_session() {
    dump_and_restore(false);
}

/// Custom format, restored with pg_restore.
#[test]
fn custom_format_dump_and_pg_restore() {
    dump_and_restore(true);
}

fn dump_and_restore(custom: bool) {
    let db = TestDb::new();
    let mut c = db.client();
    let sids: Vec<String> = (0..3).map(|_| random_uuid()).collect();
    let mut turns = 0;
    for (i, sid) in sids.iter().enumerate() {
        c.query_one(
            "SELECT awf.session_upsert($1::text::uuid, $2, $3::jsonb, 'contract/v2')",
            &[
                sid,
                &format!("user-{i}"),
                &json!({"player": {"name": format!("Hero {i}"), "gold": 0}, "npcs": {"mira": {"hp": 1.5}}}),
            ],
        )
        .unwrap();
        for k in 1..=(5 + i as i64) {
            submit(&mut c, sid, k, &payload(k));
            turns += 1;
            if k == 2 || k == 4 {
                c.query_one(
                    "SELECT awf.snapshot_create($1::text::uuid, $2)",
                    &[sid, &format!("turn {k}")],
                )
                .unwrap();
            }
        }
    }
    // One entry appended and not applied: the restored WAL must still hold it.
    let next0 = 5 + 1;
    c.query_one(
        "SELECT awf.wal_append($1::text::uuid, $2, $3::jsonb)",
        &[&sids[0], &next0, &payload(next0)],
    )
    .unwrap();
    let before = fingerprint(&mut c);

    let (host, port) = host_port(&db.url());
    let dir = TempDir::new();
    let file = dir.file("dump.sql");
    run_ok(pg_command("pg_dump").args([
        "-h",
        &host,
        "-p",
        &port.to_string(),
        "-U",
        "postgres",
        "-d",
        db.name(),
        "-f",
        &file,
        if custom { "-Fc" } else { "-Fp" },
    ]));
    let dump_len = std::fs::metadata(&file).unwrap().len();
    if !custom {
        let dump = std::fs::read_to_string(&file).unwrap();
        assert!(dump.contains("CREATE EXTENSION IF NOT EXISTS awf_lifecycle"));
        assert!(
            dump.contains("COPY awf.sessions"),
            "the dump carries the sessions' rows"
        );
    }

    let restored = EmptyDb::new(db.cluster_url());
    let port_s = port.to_string();
    let conn = [
        "-h",
        &host,
        "-p",
        &port_s,
        "-U",
        "postgres",
        "-d",
        &restored.name,
    ];
    if custom {
        run_ok(
            pg_command("pg_restore")
                .args(["--exit-on-error"])
                .args(conn)
                .arg(&file),
        );
    } else {
        run_ok(
            pg_command("psql")
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
                .args(conn)
                .args(["-f", &file]),
        );
    }
    let mut r = Client::connect(
        &awf_tests::with_dbname(db.cluster_url(), &restored.name),
        NoTls,
    )
    .unwrap();
    let after = fingerprint(&mut r);
    assert_eq!(after, before, "the restored database holds the same rows");
    let counts = r
        .query_one(
            "SELECT (SELECT count(*) FROM awf.sessions), (SELECT count(*) FROM awf.turns),
                    (SELECT count(*) FROM awf.turn_wal), (SELECT count(*) FROM awf.snapshots),
                    (SELECT count(*) FROM awf.turn_wal WHERE NOT applied)",
            &[],
        )
        .unwrap();
    let counts: Vec<i64> = (0..5).map(|i| counts.get(i)).collect();
    assert_eq!(counts, vec![3, turns, turns + 1, 6, 1]);

    // The restored database plays on: the pending entry applies, turns continue, and new
    // snapshots and WAL rows get fresh ids (the sequences came along).
    let rec: Vec<(String, String)> = r
        .query("SELECT turn_id::text, action FROM awf.wal_reconcile()", &[])
        .unwrap()
        .iter()
        .map(|x| (x.get(0), x.get(1)))
        .collect();
    assert_eq!(rec, vec![("6".to_owned(), "reapplied".to_owned())]);
    let res = submit(&mut r, &sids[0], 7, &payload(7));
    assert_eq!(res["duplicate"], json!(false));
    let res = submit(&mut r, &sids[2], 8, &payload(8));
    assert_eq!(res["turn_id"], json!(8));
    // The same on the original gives the same states.
    c.query("SELECT * FROM awf.wal_reconcile()", &[]).unwrap();
    let orig = submit(&mut c, &sids[0], 7, &payload(7));
    let rest: String = r
        .query_one(
            "SELECT state_hash FROM awf.sessions WHERE session_id = $1::text::uuid",
            &[&sids[0]],
        )
        .unwrap()
        .get(0);
    assert_eq!(orig["state_hash"].as_str().unwrap(), rest);
    let snap = r
        .query_one(
            "SELECT awf.snapshot_create($1::text::uuid, 'after restore')",
            &[&sids[1]],
        )
        .unwrap()
        .get::<_, Value>(0);
    let max_before: i64 = c
        .query_one("SELECT max(id) FROM awf.snapshots", &[])
        .unwrap()
        .get(0);
    assert!(
        snap["snapshot_id"].as_i64().unwrap() > max_before,
        "new snapshot ids continue after the restored ones: {snap}"
    );
    let restore = r
        .query_one(
            "SELECT awf.snapshot_restore($1::text::uuid, (SELECT min(id) FROM awf.snapshots WHERE session_id = $1::text::uuid))",
            &[&sids[1]],
        )
        .unwrap()
        .get::<_, Value>(0);
    assert_eq!(restore["turn_id"], json!(6));
    println!(
        "pg_dump ({}): 3 sessions, {turns} turns, {} WAL rows (1 pending), 6 snapshots dumped ({dump_len} bytes) and restored identically; play resumed at the next turn",
        if custom { "custom format, pg_restore" } else { "plain, psql" },
        turns + 1,
    );
}
