//! Roles and row-level security over real logins: an `awf_app` connection acts for the user
//! named by `awf.user_id_hash` and sees and changes only that user's sessions; admin
//! functions belong to `awf_admin`, which sees everything. The setting is superuser-only, so
//! these tests pin it from a superuser connection that then drops to the role (what a
//! backend does per transaction with `awf.act_as` is tested in `identity.rs`).

use awf_tests::{random_uuid, sqlstate, TestDb, TestRole};
use postgres::Client;
use serde_json::{json, Value};

fn as_user(db: &TestDb, role: &TestRole, user: Option<&str>) -> Client {
    let Some(u) = user else {
        return db.client_as(role.name());
    };
    let mut c = db.client();
    c.batch_execute(&format!(
        "SET awf.user_id_hash = '{u}'; SET ROLE {}",
        role.name()
    ))
    .unwrap();
    c
}

fn state(name: &str) -> Value {
    json!({"player": {"name": name, "gold": 1}})
}

fn turn(k: i64) -> Value {
    json!({"txt": format!("Turn {k}."), "acts": [{"op": "increment", "path": "/player/gold"},
                                                   {"op": "pin", "text": format!("Pin {k}")}]})
}

/// Runs `sql` with `(sid)` or `(sid, extra jsonb)` and returns the SQLSTATE it fails with.
fn fails(
    c: &mut Client,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> (String, String) {
    let err = c
        .query(sql, params)
        .err()
        .unwrap_or_else(|| panic!("expected {sql} to fail"));
    let msg = err
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_default();
    (sqlstate(&err), msg)
}

fn ids(c: &mut Client, sql: &str) -> Vec<String> {
    c.query(sql, &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// awf_app acting for u1 works on u1's session; acting for u2 it cannot see, play, snapshot,
/// export or overwrite it; with no user set it sees nothing.
#[test]
fn app_role_sees_and_changes_only_its_users_sessions() {
    let db = TestDb::new();
    let app = TestRole::new(&db, "awf_app");
    let admin_role = TestRole::new(&db, "awf_admin");
    let mut root = db.client();
    let (s1, s2) = (random_uuid(), random_uuid());

    let mut u1 = as_user(&db, &app, Some("u1"));
    let r: Value = u1
        .query_one(
            "SELECT awf.session_upsert($1::text::uuid, 'u1', $2::jsonb)",
            &[&s1, &state("Ash")],
        )
        .unwrap()
        .get(0);
    assert_eq!(r["created"], json!(true));
    for k in 1..=3 {
        let r: Value = u1
            .query_one(
                "SELECT awf.turn_submit($1::text::uuid, $2, $3::jsonb)",
                &[&s1, &k, &turn(k)],
            )
            .unwrap()
            .get(0);
        assert_eq!(r["duplicate"], json!(false));
    }
    let snap: Value = u1
        .query_one("SELECT awf.snapshot_create($1::text::uuid, 'mine')", &[&s1])
        .unwrap()
        .get(0);
    let snap_id = snap["snapshot_id"].as_i64().unwrap();
    u1.query_one("SELECT awf.recap($1::text::uuid, 2)", &[&s1])
        .unwrap();
    u1.query_one("SELECT awf.session_export($1::text::uuid)", &[&s1])
        .unwrap();
    u1.query_one(
        "SELECT awf.wal_append($1::text::uuid, 4, $2::jsonb)",
        &[&s1, &turn(4)],
    )
    .unwrap();
    u1.query_one("SELECT awf.wal_apply($1::text::uuid, 4)", &[&s1])
        .unwrap();

    let mut u2 = as_user(&db, &app, Some("u2"));
    u2.query_one(
        "SELECT awf.session_upsert($1::text::uuid, 'u2', $2::jsonb)",
        &[&s2, &state("Bea")],
    )
    .unwrap();
    u2.query_one(
        "SELECT awf.turn_submit($1::text::uuid, 1, $2::jsonb)",
        &[&s2, &turn(1)],
    )
    .unwrap();

    // Each user sees only its own rows, in every table.
    assert_eq!(
        ids(&mut u1, "SELECT session_id::text FROM awf.sessions"),
        vec![s1.clone()]
    );
    assert_eq!(
        ids(&mut u2, "SELECT session_id::text FROM awf.sessions"),
        vec![s2.clone()]
    );
    for table in ["awf.turns", "awf.turn_wal", "awf.snapshots"] {
        let sql = format!("SELECT DISTINCT session_id::text FROM {table}");
        assert_eq!(ids(&mut u1, &sql), vec![s1.clone()], "{table} as u1");
        let theirs = ids(&mut u2, &sql);
        assert!(!theirs.contains(&s1), "{table}: u2 sees none of u1's rows");
    }
    let n: i64 = u2
        .query_one("SELECT count(*) FROM awf.wal_list($1::text::uuid)", &[&s1])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);

    // u2 cannot act on u1's session: to u2 it does not exist.
    let not_found: [(&str, Vec<&(dyn postgres::types::ToSql + Sync)>); 8] = [
        (
            "SELECT awf.turn_submit($1::text::uuid, 5, '{\"txt\": \"hijack\"}'::jsonb)",
            vec![&s1],
        ),
        (
            "SELECT awf.wal_append($1::text::uuid, 5, '{\"txt\": \"hijack\"}'::jsonb)",
            vec![&s1],
        ),
        ("SELECT awf.wal_apply($1::text::uuid, 4)", vec![&s1]),
        (
            "SELECT awf.snapshot_create($1::text::uuid, 'theirs')",
            vec![&s1],
        ),
        (
            "SELECT awf.snapshot_restore($1::text::uuid, $2)",
            vec![&s1, &snap_id],
        ),
        (
            "SELECT awf.snapshot_delete($1::text::uuid, $2)",
            vec![&s1, &snap_id],
        ),
        ("SELECT awf.recap($1::text::uuid, 2)", vec![&s1]),
        ("SELECT awf.session_export($1::text::uuid)", vec![&s1]),
    ];
    for (sql, params) in &not_found {
        let (code, msg) = fails(&mut u2, sql, params);
        assert_eq!(code, "P0002", "{sql}: {msg}");
        assert!(msg.contains("does not exist"), "{sql}: {msg}");
    }
    // ...and cannot take it over or overwrite it, whoever it claims to be.
    for claimed in ["u2", "u1"] {
        let (code, msg) = fails(
            &mut u2,
            "SELECT awf.session_upsert($1::text::uuid, $2, $3::jsonb)",
            &[&s1, &claimed, &state("Mallory")],
        );
        assert_eq!(code, "42501", "session_upsert claiming {claimed}: {msg}");
    }
    let (code, _) = fails(
        &mut u2,
        "UPDATE awf.sessions SET state = '{}'::jsonb WHERE session_id = $1::text::uuid",
        &[&s1],
    );
    assert_eq!(code, "42501", "awf_app may not update sessions directly");
    let (code, _) = fails(
        &mut u2,
        "DELETE FROM awf.sessions WHERE session_id = $1::text::uuid",
        &[&s1],
    );
    assert_eq!(code, "42501", "awf_app may not delete sessions");
    let (code, _) = fails(&mut u2, "SELECT * FROM awf.audit_log", &[]);
    assert_eq!(code, "42501", "the audit log is the admins'");
    let (code, _) = fails(&mut u2, "SET awf.act_applier = 'public.my_applier'", &[]);
    assert_eq!(code, "42501", "only a superuser chooses the act applier");

    // u1's session is exactly as u1 left it.
    let row = root
        .query_one(
            "SELECT user_id_hash, turn_id, state #>> '{player,name}', (SELECT count(*) FROM awf.snapshots WHERE session_id = $1::text::uuid)
             FROM awf.sessions WHERE session_id = $1::text::uuid",
            &[&s1],
        )
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, i64>(1),
            row.get::<_, String>(2),
            row.get::<_, i64>(3)
        ),
        ("u1".to_owned(), 4, "Ash".to_owned(), 1)
    );

    // No user set: nothing visible, nothing creatable.
    let mut nobody = as_user(&db, &app, None);
    assert!(ids(&mut nobody, "SELECT session_id::text FROM awf.sessions").is_empty());
    let (code, msg) = fails(
        &mut nobody,
        "SELECT awf.session_upsert($1::text::uuid, 'u3', $2::jsonb)",
        &[&random_uuid(), &state("Nobody")],
    );
    assert_eq!(code, "42501", "{msg}");

    // The admin role sees both users' sessions.
    let mut adm = db.client_as(admin_role.name());
    let mut all = ids(&mut adm, "SELECT session_id::text FROM awf.sessions");
    all.sort();
    let mut expected = vec![s1.clone(), s2.clone()];
    expected.sort();
    assert_eq!(all, expected);
    drop((u1, u2, nobody, adm));
    println!(
        "security (RLS): u1 and u2 isolated in 4 tables; {} calls on another user's session refused with P0002, 2 takeovers with 42501",
        not_found.len()
    );
}

/// awf_app may not call the admin functions (42501); awf_admin may, and sees every user.
#[test]
fn admin_functions_belong_to_awf_admin() {
    let db = TestDb::new();
    let app = TestRole::new(&db, "awf_app");
    let admin_role = TestRole::new(&db, "awf_admin");
    let mut root = db.client();
    let (s1, s2) = (random_uuid(), random_uuid());

    let mut u1 = as_user(&db, &app, Some("u1"));
    u1.query_one(
        "SELECT awf.session_upsert($1::text::uuid, 'u1', $2::jsonb)",
        &[&s1, &state("Ash")],
    )
    .unwrap();
    u1.query_one(
        "SELECT awf.turn_submit($1::text::uuid, 1, $2::jsonb)",
        &[&s1, &turn(1)],
    )
    .unwrap();
    u1.query_one("SELECT awf.snapshot_create($1::text::uuid, 'one')", &[&s1])
        .unwrap();
    // Appended and never applied (the backend crashed): work for the admin.
    u1.query_one(
        "SELECT awf.wal_append($1::text::uuid, 2, $2::jsonb)",
        &[&s1, &turn(2)],
    )
    .unwrap();
    let mut u2 = as_user(&db, &app, Some("u2"));
    u2.query_one(
        "SELECT awf.session_upsert($1::text::uuid, 'u2', $2::jsonb)",
        &[&s2, &state("Bea")],
    )
    .unwrap();
    // An unredacted export is an admin right.
    let err = u1
        .query_one("SELECT awf.session_export($1::text::uuid, false)", &[&s1])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    let bundle: Value = db
        .client()
        .query_one("SELECT awf.session_export($1::text::uuid, false)", &[&s1])
        .unwrap()
        .get(0);

    let admin_calls: [(&str, Vec<&(dyn postgres::types::ToSql + Sync)>); 6] = [
        ("SELECT * FROM awf.wal_reconcile()", vec![]),
        ("SELECT * FROM awf.wal_reconcile($1::text::uuid)", vec![&s1]),
        ("SELECT awf.session_import($1::jsonb)", vec![&bundle]),
        ("SELECT awf.session_import($1::jsonb, true)", vec![&bundle]),
        ("SELECT awf.wal_cleanup()", vec![]),
        ("SELECT awf.snapshot_prune()", vec![]),
    ];
    for (sql, params) in &admin_calls {
        let (code, msg) = fails(&mut u1, sql, params);
        assert_eq!(code, "42501", "awf_app: {sql}: {msg}");
    }
    let (code, _) = fails(&mut u1, "SELECT awf.snapshot_prune($1::text::uuid)", &[&s1]);
    assert_eq!(code, "42501");
    let (code, _) = fails(&mut u1, "SELECT awf.wal_cleanup('1 day'::interval)", &[]);
    assert_eq!(code, "42501");
    // Refused calls changed nothing.
    let pending: i64 = root
        .query_one("SELECT count(*) FROM awf.turn_wal WHERE NOT applied", &[])
        .unwrap()
        .get(0);
    assert_eq!(pending, 1);
    let sessions: i64 = root
        .query_one("SELECT count(*) FROM awf.sessions", &[])
        .unwrap()
        .get(0);
    assert_eq!(sessions, 2);

    // The admin role: sees everything and runs every admin function.
    let mut adm = db.client_as(admin_role.name());
    let n: i64 = adm
        .query_one("SELECT count(*) FROM awf.sessions", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2, "awf_admin sees every user's sessions");
    let rec: Vec<(String, String)> = adm
        .query(
            "SELECT session_id::text, action FROM awf.wal_reconcile()",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rec, vec![(s1.clone(), "reapplied".to_owned())]);
    let imported: Value = adm
        .query_one("SELECT awf.session_import($1::jsonb, true)", &[&bundle])
        .unwrap()
        .get(0);
    assert_eq!(imported["sandbox_of"].as_str().unwrap(), s1);
    let deleted: i64 = adm
        .query_one("SELECT awf.wal_cleanup('0 seconds'::interval)", &[])
        .unwrap()
        .get(0);
    assert!(deleted >= 2, "applied entries cleaned: {deleted}");
    adm.batch_execute("SET awf.snapshot_max_count = 0").unwrap();
    let pruned: i64 = adm
        .query_one("SELECT awf.snapshot_prune()", &[])
        .unwrap()
        .get(0);
    assert!(pruned >= 1, "snapshots pruned: {pruned}");
    let actions: Vec<String> = ids(
        &mut adm,
        "SELECT DISTINCT action FROM awf.audit_log ORDER BY action",
    );
    for a in [
        "session_import",
        "snapshot_prune",
        "wal_cleanup",
        "wal_reconcile",
    ] {
        assert!(actions.contains(&a.to_owned()), "{a} audited: {actions:?}");
    }
    let actor: String = adm
        .query_one(
            "SELECT actor FROM awf.audit_log WHERE action = 'wal_reconcile'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(actor, admin_role.name(), "the audit row names who did it");
    // The app sees the reconciled turn of its own session.
    let turn_id: i64 = u1
        .query_one(
            "SELECT turn_id FROM awf.sessions WHERE session_id = $1::text::uuid",
            &[&s1],
        )
        .unwrap()
        .get(0);
    assert_eq!(turn_id, 2);
    drop((u1, u2, adm));
    println!(
        "security (roles): {} admin calls refused to awf_app with 42501; awf_admin reconciled 1, imported 1, cleaned {deleted}, pruned {pruned}",
        admin_calls.len() + 2
    );
}

/// A login in neither awf role can call the functions (EXECUTE is PUBLIC for non-admin
/// ones) but touches no row: the tables refuse it.
#[test]
fn a_role_outside_the_awf_roles_gets_nothing() {
    let db = TestDb::new();
    let outsider = TestRole::new(&db, "");
    let app = TestRole::new(&db, "awf_app");
    let s1 = random_uuid();
    let mut u1 = as_user(&db, &app, Some("u1"));
    u1.query_one(
        "SELECT awf.session_upsert($1::text::uuid, 'u1', $2::jsonb)",
        &[&s1, &state("Ash")],
    )
    .unwrap();
    let mut c = as_user(&db, &outsider, Some("u1"));
    let probes: [(&str, Vec<&(dyn postgres::types::ToSql + Sync)>); 5] = [
        ("SELECT count(*) FROM awf.sessions", vec![]),
        (
            "SELECT awf.turn_submit($1::text::uuid, 1, '{}'::jsonb)",
            vec![&s1],
        ),
        (
            "SELECT awf.session_upsert($1::text::uuid, 'u1', '{}'::jsonb)",
            vec![&s1],
        ),
        ("SELECT awf.session_export($1::text::uuid)", vec![&s1]),
        ("SELECT * FROM awf.wal_reconcile()", vec![]),
    ];
    for (sql, params) in &probes {
        let (code, msg) = fails(&mut c, sql, params);
        assert_eq!(code, "42501", "{sql}: {msg}");
    }
    let turn_id: i64 = db
        .client()
        .query_one(
            "SELECT turn_id FROM awf.sessions WHERE session_id = $1::text::uuid",
            &[&s1],
        )
        .unwrap()
        .get(0);
    assert_eq!(turn_id, 0);
    drop((u1, c));
    println!(
        "security (outsider): {} probes refused with 42501",
        probes.len()
    );
}

/// The tables whose rows decide credentials, keys and counters are written only by the
/// extension: `awf_app` may call the functions that write them, never write them itself.
#[test]
fn app_role_cannot_write_devices_keys_or_counters_directly() {
    let db = TestDb::new();
    let app = TestRole::new(&db, "awf_app");
    let mut c = as_user(&db, &app, Some("u1"));
    // Through the functions: registering and rotating work, and are counted.
    let token: String = c
        .query_one(
            "SELECT awf.device_register('phone', 'u1') ->> 'sync_token'",
            &[],
        )
        .unwrap()
        .get(0);
    c.query_one("SELECT awf.device_rotate_token('phone', $1)", &[&token])
        .unwrap();
    // Sessions, turns and snapshots through their functions work as before.
    let sid = random_uuid();
    c.query_one(
        "SELECT awf.session_upsert($1::text::uuid, 'u1', $2::jsonb)",
        &[&sid, &state("ann")],
    )
    .unwrap();
    c.query_one(
        "SELECT awf.turn_submit($1::text::uuid, 1, $2::jsonb)",
        &[&sid, &turn(1)],
    )
    .unwrap();
    let snap: i64 = c
        .query_one(
            "SELECT (awf.snapshot_create($1::text::uuid, 'mine') ->> 'snapshot_id')::bigint",
            &[&sid],
        )
        .unwrap()
        .get(0);
    c.query_one(
        "SELECT awf.snapshot_delete($1::text::uuid, $2)",
        &[&sid, &snap],
    )
    .unwrap();
    let (code, msg) = fails(
        &mut c,
        "SELECT awf.session_upsert(gen_random_uuid(), 'u2', '{}')",
        &[],
    );
    assert_eq!(code, "42501", "{msg}");
    // A save through its function works, and counts its bytes; one for another user does not.
    let bytes: i64 = c
        .query_one(
            "SELECT (awf.save_create_or_attach($1::text::uuid, 'u1') ->> 'head_turn')::bigint",
            &[&sid],
        )
        .unwrap()
        .get(0);
    assert_eq!(bytes, 1);
    let (code, msg) = fails(
        &mut c,
        "SELECT awf.save_create_or_attach(NULL, 'u2', sealed => true)",
        &[],
    );
    assert_eq!(code, "42501", "{msg}");
    // Registering for a user the call does not act for is refused before anything is written.
    let (code, msg) = fails(&mut c, "SELECT awf.device_register('tablet', 'u2')", &[]);
    assert_eq!(code, "42501", "{msg}");
    for sql in [
        "UPDATE awf.devices SET token_expires_at = 'infinity'",
        "INSERT INTO awf.devices (device_id, user_id_hash, token_hash, token_expires_at)
         VALUES ('forged', 'u1', '', 'infinity')",
        "INSERT INTO awf.data_keys (user_id_hash, key_id, wrapped, master_key_id)
         VALUES ('u1', 'dk-forged', '\\x00', 'm')",
        "UPDATE awf.metric_counters SET value = 0",
        "INSERT INTO awf.metric_counters (name, shard, value) VALUES ('turns_applied', 99, -1)",
        // A state changed without the WAL, history rewritten, a snapshot forged or dropped.
        "UPDATE awf.sessions SET state = '{\"player\": {\"gold\": 1000000}}'",
        "INSERT INTO awf.sessions (session_id, user_id_hash, state, state_hash)
         VALUES (gen_random_uuid(), 'u1', '{}', '')",
        "UPDATE awf.turns SET lines = '{}'",
        "UPDATE awf.turn_wal SET applied = true",
        "DELETE FROM awf.snapshots",
        // Escaping the quota, or rewriting a save's history.
        "UPDATE awf.saves SET bytes_stored = 0",
        "DELETE FROM awf.save_diffs",
        "UPDATE awf.save_archives SET restored_at = now()",
        "DELETE FROM awf.save_archive_turns",
        "UPDATE awf.save_conflicts SET chosen = 'client'",
    ] {
        let (code, msg) = fails(&mut c, sql, &[]);
        assert_eq!(code, "42501", "{sql}: {msg}");
    }
    // Nor can it lock the counters to stall every counted call.
    let mut tx = c.transaction().unwrap();
    let err = tx
        .batch_execute("LOCK TABLE awf.metric_counters IN EXCLUSIVE MODE")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
    drop(tx);
    let mut admin = db.client();
    let devices: i64 = admin
        .query_one(
            "SELECT count(*) FROM awf.devices WHERE token_expires_at > now() + interval '10 years'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(devices, 0);
    let n: i64 = admin
        .query_one("SELECT count(*) FROM awf.devices", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "only the registered device exists");
}

/// The checks a call makes as the caller (the row-level security reads that prove its right
/// to rows it then writes as the owner) run with a pinned search_path: an `=` of the caller's
/// own that is always true cannot make another user's session look like its own.
#[test]
fn a_callers_search_path_cannot_bend_the_ownership_checks() {
    let db = TestDb::new();
    let app = TestRole::new(&db, "awf_app");
    let mut root = db.client();
    let victim = random_uuid();
    root.query_one(
        "SELECT awf.session_upsert($1::text::uuid, 'u2', $2::jsonb)",
        &[&victim, &state("victim")],
    )
    .unwrap();
    let schema = format!("evil_{}", &app.name()[9..]);
    root.batch_execute(&format!(
        "CREATE SCHEMA {schema} AUTHORIZATION {}",
        app.name()
    ))
    .unwrap();
    let mut c = as_user(&db, &app, Some("u1"));
    let mine = random_uuid();
    c.query_one(
        "SELECT awf.session_upsert($1::text::uuid, 'u1', $2::jsonb)",
        &[&mine, &state("mallory")],
    )
    .unwrap();
    c.batch_execute(&format!(
        "CREATE FUNCTION {schema}.always(uuid, uuid) RETURNS boolean LANGUAGE sql AS 'SELECT true';
         CREATE OPERATOR {schema}.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = {schema}.always);
         SET search_path = {schema}, pg_catalog"
    ))
    .unwrap();
    let t1 = turn(1);
    for sql in [
        "SELECT awf.turn_submit($1::text::uuid, 1, $2::jsonb)",
        "SELECT awf.snapshot_create($1::text::uuid, 'x')",
    ] {
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = if sql.contains("$2") {
            vec![&victim, &t1]
        } else {
            vec![&victim]
        };
        let (code, msg) = fails(&mut c, sql, &params);
        assert_eq!(code, "P0002", "{sql}: {msg}");
    }
    let row = root
        .query_one(
            "SELECT turn_id, state #>> '{player,name}', (SELECT count(*) FROM awf.snapshots WHERE session_id = $1::text::uuid)
             FROM awf.sessions WHERE session_id = $1::text::uuid",
            &[&victim],
        )
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 0, "the victim's session did not move");
    assert_eq!(row.get::<_, String>(1), "victim");
    assert_eq!(row.get::<_, i64>(2), 0);
    root.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}
