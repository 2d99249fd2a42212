//! Upgrades: a database created at every released version and updated with
//! `ALTER EXTENSION ... UPDATE` ends with exactly the objects, privileges and policies of a
//! fresh install, and keeps its data.

use awf_tests::TestDb;

/// Every released version, oldest first (their install scripts are in `sql/released/`).
const RELEASED: &[&str] = &["0.1.0"];

/// The extension's surface: functions (signature, result, volatility, strictness, security,
/// settings, body or symbol, privileges), columns, table privileges and policies, one line
/// each, sorted.
const SURFACE: &str = r#"
SELECT string_agg(line, E'\n' ORDER BY line) FROM (
  SELECT format('function %s -> %s %s strict=%s definer=%s config=%s src=%s acl=%s',
                p.oid::regprocedure, pg_get_function_result(p.oid), p.provolatile,
                p.proisstrict, p.prosecdef, p.proconfig, md5(p.prosrc), p.proacl) AS line
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'awf'
  UNION ALL
  SELECT format('column %s.%s %s notnull=%s default=%s', c.relname, a.attname,
                format_type(a.atttypid, a.atttypmod), a.attnotnull,
                pg_get_expr(d.adbin, d.adrelid))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
  WHERE n.nspname = 'awf' AND c.relkind IN ('r', 'v')
  UNION ALL
  SELECT format('relation %s kind=%s rls=%s acl=%s', c.relname, c.relkind, c.relrowsecurity, c.relacl)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'awf' AND c.relkind IN ('r', 'v', 'S', 'i')
  UNION ALL
  SELECT format('policy %s.%s roles=%s cmd=%s using=%s check=%s', tablename, policyname,
                roles, cmd, qual, with_check)
  FROM pg_policies WHERE schemaname = 'awf'
) s
"#;

fn surface(db: &TestDb) -> String {
    db.client()
        .query_one(SURFACE, &[])
        .expect("read the extension's surface")
        .get(0)
}

#[test]
fn every_released_version_updates_to_a_fresh_install() {
    let fresh = TestDb::new();
    let want = surface(&fresh);
    let current: String = fresh
        .client()
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'awf_lifecycle'",
            &[],
        )
        .unwrap()
        .get(0);
    for version in RELEASED {
        let db = TestDb::without_extension();
        let mut c = db.client();
        c.batch_execute(&format!(
            "CREATE EXTENSION awf_lifecycle VERSION '{version}';
             SELECT awf.session_upsert('11111111-1111-1111-1111-111111111111', 'u1', '{{\"hp\": 3}}');
             SELECT awf.turn_submit('11111111-1111-1111-1111-111111111111', 1,
               '{{\"txt\": \"Hit.\", \"acts\": [{{\"op\": \"increment\", \"path\": \"/hp\", \"by\": -1}}]}}');"
        ))
        .unwrap_or_else(|e| panic!("create version {version} with data: {e}"));
        c.batch_execute("ALTER EXTENSION awf_lifecycle UPDATE")
            .unwrap_or_else(|e| panic!("update from {version}: {e}"));
        let now: String = c
            .query_one(
                "SELECT extversion FROM pg_extension WHERE extname = 'awf_lifecycle'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(
            now, current,
            "the update from {version} ends at the current version"
        );
        drop(c);
        let got = surface(&db);
        if got != want {
            let only_fresh: Vec<&str> = want
                .lines()
                .filter(|l| !got.lines().any(|g| g == *l))
                .collect();
            let only_updated: Vec<&str> = got
                .lines()
                .filter(|l| !want.lines().any(|w| w == *l))
                .collect();
            panic!(
                "updating from {version} differs from a fresh install\n\
                 only in the fresh install:\n  {}\nonly after the update:\n  {}",
                only_fresh.join("\n  "),
                only_updated.join("\n  ")
            );
        }
        // The data came along and the next turn applies.
        let mut c = db.client();
        let hp: i64 = c
            .query_one(
                "SELECT (awf.turn_submit('11111111-1111-1111-1111-111111111111', 2,
                   '{\"acts\": [{\"op\": \"increment\", \"path\": \"/hp\", \"by\": -1}]}')->>'turn_id')::bigint",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(hp, 2);
        let state: serde_json::Value = c
            .query_one(
                "SELECT state FROM awf.sessions WHERE session_id = '11111111-1111-1111-1111-111111111111'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(state["hp"], 1);
        println!(
            "upgrade {version} -> {current}: surface of {} lines identical, data kept",
            want.lines().count()
        );
    }
}
