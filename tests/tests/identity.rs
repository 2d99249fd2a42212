//! Identity that no caller can forge: `awf.user_id_hash` is superuser-only, a trusted backend
//! names the user for one transaction with `awf.act_as`, and the device-facing functions act
//! for the user of the device whose credential they verified, for that call only.

use awf_tests::{sqlstate, TestDb, TestRole};
use serde_json::json;

const VICTIM_SID: &str = "66666666-6666-6666-6666-666666666666";

/// The victim's session, with a cloud save and a device; returns (save id, device token).
fn victim(db: &TestDb) -> (String, String) {
    let mut c = db.client();
    c.query_one(
        "SELECT awf.session_upsert($1::text::uuid, 'victim', $2::jsonb)",
        &[&VICTIM_SID, &json!({"secret": "victim's", "gold": 1})],
    )
    .unwrap();
    let save: String = c
        .query_one(
            "SELECT awf.save_create_or_attach($1::text::uuid, 'victim') ->> 'save_id'",
            &[&VICTIM_SID],
        )
        .unwrap()
        .get(0);
    let token: String = c
        .query_one(
            "SELECT awf.device_register('victim-phone', 'victim', $1::text::uuid) ->> 'sync_token'",
            &[&VICTIM_SID],
        )
        .unwrap()
        .get(0);
    (save, token)
}

fn visible_sessions(c: &mut postgres::Client) -> i64 {
    c.query_one("SELECT count(*) FROM awf.sessions", &[])
        .unwrap()
        .get(0)
}

#[test]
fn no_setting_lets_an_untrusted_role_read_or_write_another_users_rows() {
    let db = TestDb::new();
    let (save, _) = victim(&db);
    let role = TestRole::new(&db, "awf_app");
    // A fresh backend, the library not loaded yet: SET may create a placeholder, which the
    // library discards when it loads instead of reading it.
    let mut c = db.client_as(role.name());
    let _ = c.batch_execute("SET awf.user_id_hash = 'victim'");
    let _ = c.batch_execute("SELECT set_config('awf.user_id_hash', 'victim', false)");
    assert_eq!(
        visible_sessions(&mut c),
        0,
        "sessions visible through a placeholder"
    );
    // Once loaded, the setting refuses outright.
    for sql in [
        "SET awf.user_id_hash = 'victim'",
        "SELECT set_config('awf.user_id_hash', 'victim', false)",
        "SELECT set_config('awf.user_id_hash', 'victim', true)",
        "ALTER ROLE CURRENT_USER SET awf.user_id_hash = 'victim'",
    ] {
        let err = c.batch_execute(sql).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{sql}");
    }
    assert_eq!(visible_sessions(&mut c), 0);
    for sql in [
        format!("SELECT awf.turn_submit('{VICTIM_SID}', 1, '{{\"acts\": []}}')"),
        format!("SELECT awf.save_materialize('{save}')"),
        format!("SELECT awf.snapshot_create('{VICTIM_SID}', 'x')"),
        format!("SELECT awf.session_export('{VICTIM_SID}')"),
    ] {
        let err = c.query(&sql, &[]).unwrap_err();
        assert!(
            ["P0002", "42501"].contains(&sqlstate(&err).as_str()),
            "{sql}: {err:?}"
        );
    }
    drop(c);
    // A role that is no trusted backend cannot name a user at all.
    let nobody = TestRole::new(&db, "");
    let mut n = db.client_as(nobody.name());
    let err = n.query("SELECT awf.act_as('victim')", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "act_as is for trusted backends");
    drop(n);
    let state: serde_json::Value = db
        .client()
        .query_one(
            "SELECT state FROM awf.sessions WHERE session_id = $1::text::uuid",
            &[&VICTIM_SID],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        state,
        json!({"secret": "victim's", "gold": 1}),
        "nothing was written"
    );
}

#[test]
fn act_as_lasts_one_transaction_so_a_pooled_connection_forgets_the_user() {
    let db = TestDb::new();
    victim(&db);
    let backend = TestRole::new(&db, "awf_app");
    let mut c = db.client_as(backend.name());
    let mut t = c.transaction().unwrap();
    t.query_one("SELECT awf.act_as('victim')", &[]).unwrap();
    let n: i64 = t
        .query_one("SELECT count(*) FROM awf.sessions", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the backend acts for the user it named");
    t.query_one(
        "SELECT awf.turn_submit($1::text::uuid, 1, '{\"acts\": [{\"op\": \"increment\", \"path\": \"/gold\"}]}')",
        &[&VICTIM_SID],
    )
    .unwrap();
    t.commit().unwrap();
    // The next request on the same connection acts for nobody.
    assert_eq!(visible_sessions(&mut c), 0);
}

#[test]
fn a_device_call_acts_for_the_devices_user_and_for_that_call_only() {
    let db = TestDb::new();
    let (save, token) = victim(&db);
    let server = TestRole::new(&db, "awf_app");
    let mut c = db.client_as(server.name());
    let down: serde_json::Value = c
        .query_one(
            "SELECT awf.sync_down('victim-phone', $1, $2::text::uuid, 0)",
            &[&token, &save],
        )
        .unwrap()
        .get(0);
    assert_eq!(down["save_id"], json!(save), "{down}");
    assert_eq!(
        visible_sessions(&mut c),
        0,
        "the device's user does not stick"
    );
    // A wrong token, an unknown device: one message for both.
    let mut msg = |device: &str, tok: &str| {
        let err = c
            .query(
                "SELECT awf.sync_down($1, $2, $3::text::uuid, 0)",
                &[&device, &tok, &save],
            )
            .unwrap_err();
        assert_eq!(sqlstate(&err), "42501");
        err.as_db_error().unwrap().message().replace(device, "D")
    };
    let wrong = msg(
        "victim-phone",
        "awf_0000000000000000000000000000000000000000000",
    );
    let unknown = msg("nobodys-phone", &token);
    assert_eq!(wrong, unknown);
}

/// The extension keeps its statements prepared per backend; PostgreSQL must still apply each
/// call's own identity to them. One pooled connection alternates between the victim and an
/// intruder many times (past the point where PostgreSQL switches a kept statement to a generic
/// plan): the victim's calls see and change the victim's rows, the intruder's never do.
#[test]
fn kept_statements_apply_each_calls_identity() {
    let db = TestDb::new();
    let (save, _) = victim(&db);
    let backend = TestRole::new(&db, "awf_app");
    let mut c = db.client_as(backend.name());
    let mut turn = 0i64;
    for round in 0..8 {
        let mut t = c.transaction().unwrap();
        t.query_one("SELECT awf.act_as('victim')", &[]).unwrap();
        turn += 1;
        t.query_one(
            "SELECT awf.turn_submit($1::text::uuid, $2, '{\"acts\": [{\"op\": \"increment\", \"path\": \"/gold\"}]}')",
            &[&VICTIM_SID, &turn],
        )
        .unwrap_or_else(|e| panic!("round {round}: the victim's turn: {e}"));
        let gold: serde_json::Value = t
            .query_one("SELECT awf.save_materialize($1::text::uuid)", &[&save])
            .unwrap()
            .get(0);
        assert_eq!(gold["gold"], json!(1 + turn), "round {round}");
        t.commit().unwrap();

        let mut t = c.transaction().unwrap();
        t.query_one("SELECT awf.act_as('intruder')", &[]).unwrap();
        let e = t
            .query_one("SELECT awf.save_materialize($1::text::uuid)", &[&save])
            .unwrap_err();
        assert_eq!(sqlstate(&e), "P0002", "round {round}: {e}");
        t.rollback().unwrap();
        let mut t = c.transaction().unwrap();
        t.query_one("SELECT awf.act_as('intruder')", &[]).unwrap();
        let e = t
            .query_one(
                "SELECT awf.turn_submit($1::text::uuid, $2, '{\"acts\": []}')",
                &[&VICTIM_SID, &(turn + 1)],
            )
            .unwrap_err();
        assert_eq!(sqlstate(&e), "P0002", "round {round}: {e}");
        t.rollback().unwrap();
    }
    let mut admin = db.client();
    let v: serde_json::Value = admin
        .query_one("SELECT awf.save_verify($1::text::uuid)", &[&save])
        .unwrap()
        .get(0);
    assert_eq!(v["ok"], json!(true), "{v}");
}
