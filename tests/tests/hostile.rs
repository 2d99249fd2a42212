//! The hostile-input suite for SQL: every function of the `awf` schema, as listed by the
//! catalog (so a new function cannot be missed), is called with malformed, oversized, deeply
//! nested, hash-colliding, exponentially growing and wrongly typed arguments, one argument at
//! a time (the others valid), and with every JSON argument hostile at once.
//!
//! Each call must end, inside its statement timeout, in success or in a specific SQLSTATE:
//! never XX000 (internal error), 57014 (it ran past the budget), a resource error of class 53
//! or a lost connection, with a message of bounded length. Afterwards the postmaster has the same start time, the server log has
//! no crashed backend, and every extension table is byte for byte what it was: a refused call
//! left nothing behind (calls that succeed are rolled back too, so any change is a leak). The
//! one write a refusal makes on purpose is the audit row of a refused device credential
//! (`sync_refused`, written by a worker of its own so that it survives the rollback); the
//! fingerprint leaves those rows out and the suite counts them.
//! Functions granted to `awf_app` run as an `awf_app` login acting for the seeded user;
//! the others as an `awf_admin` login.

use awf_tests::{CrashWatch, TestDb, TestRole};
use postgres::Client;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SID: &str = "77777777-7777-7777-7777-777777777777";
const USER: &str = "hostile-u1";
const DEVICE: &str = "hostile-phone";
/// Each call's budget: a call the server stops here failed the suite.
const STATEMENT_TIMEOUT: &str = "20s";

/// One SQL function of the `awf` schema, from the catalog.
struct Func {
    name: String,
    args: Vec<(String, String)>,
    for_app: bool,
}

/// What the seeded database holds, for valid argument values.
struct Seed {
    save: String,
    token: String,
    admin_key: String,
    snapshot: i64,
    head: (i64, String),
    bundle: Value,
}

fn seed(c: &mut Client) -> Seed {
    let state = json!({"player": {"name": "Ash", "gold": 1, "log": []}, "npcs": [1, 2, 3]});
    c.query_one(
        "SELECT awf.session_upsert($1::text::uuid, $2, $3::jsonb)",
        &[&SID, &USER, &state],
    )
    .unwrap();
    let save: String = c
        .query_one(
            "SELECT awf.save_create_or_attach($1::text::uuid, $2) ->> 'save_id'",
            &[&SID, &USER],
        )
        .unwrap()
        .get(0);
    for k in 1..=3i64 {
        let turn = json!({"txt": format!("Turn {k}."), "acts": [
            {"op": "increment", "path": "/player/gold"},
            {"op": "append", "path": "/player/log", "value": format!("entry {k}")}]});
        c.query_one(
            "SELECT awf.turn_submit($1::text::uuid, $2, $3::jsonb)",
            &[&SID, &k, &turn],
        )
        .unwrap();
    }
    let snapshot: i64 = c
        .query_one(
            "SELECT (awf.snapshot_create($1::text::uuid, 'seed') ->> 'snapshot_id')::bigint",
            &[&SID],
        )
        .unwrap()
        .get(0);
    let token: String = c
        .query_one(
            "SELECT awf.device_register($1, $2, $3::text::uuid) ->> 'sync_token'",
            &[&DEVICE, &USER, &SID],
        )
        .unwrap()
        .get(0);
    let admin_key: String = c
        .query_one("SELECT awf.admin_key_create('hostile') ->> 'key'", &[])
        .unwrap()
        .get(0);
    let r = c
        .query_one(
            "SELECT head_turn, head_chain FROM awf.saves WHERE save_id = $1::text::uuid",
            &[&save],
        )
        .unwrap();
    let head = (r.get(0), r.get(1));
    let bundle: Value = c
        .query_one("SELECT awf.session_export($1::text::uuid)", &[&SID])
        .unwrap()
        .get(0);
    Seed {
        save,
        admin_key,
        token,
        snapshot,
        head,
        bundle,
    }
}

fn catalog(c: &mut Client) -> Vec<Func> {
    c.query(
        "SELECT p.proname::text, pg_get_function_identity_arguments(p.oid),
                has_function_privilege('awf_app', p.oid, 'EXECUTE')
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'awf' AND p.prokind = 'f' AND p.prorettype <> 'trigger'::regtype
          ORDER BY 1, 2",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| {
        let ident: String = r.get(1);
        let args = ident
            .split(", ")
            .filter(|a| !a.is_empty())
            .map(|a| {
                let (name, ty) = a.split_once(' ').expect("arguments are named");
                (name.to_owned(), ty.to_owned())
            })
            .collect();
        Func {
            name: r.get(0),
            args,
            for_app: r.get(2),
        }
    })
    .collect()
}

/// A SQL literal of `v` as jsonb.
fn jsonb(v: &Value) -> String {
    format!("'{}'::jsonb", v.to_string().replace('\'', "''"))
}

/// A valid value for the argument `name` of type `ty`, as a SQL expression.
fn valid(name: &str, ty: &str, s: &Seed) -> String {
    let turns = json!([{"turn_id": s.head.0 + 1,
                        "patch": [{"op": "add", "path": "/player/log/-", "value": "up"}]}]);
    let v = match (name, ty) {
        ("session_id", _) => format!("'{SID}'::uuid"),
        ("save_id", _) => format!("'{}'::uuid", s.save),
        ("user_id_hash", _) => format!("'{USER}'"),
        ("device_id", _) => format!("'{DEVICE}'"),
        ("sync_token", _) => format!("'{}'", s.token),
        ("key", _) => format!("'{}'", s.admin_key),
        ("name", _) => "'hostile-2'".into(),
        ("turn_id", _) => (s.head.0 + 1).to_string(),
        ("target_turn", _) => "2".into(),
        ("since_turn", _) => "0".into(),
        ("snapshot_id", _) => s.snapshot.to_string(),
        ("archive_id" | "anchor_id", _) => "1".into(),
        ("last_turns", _) => "2".into(),
        ("max_rows", _) => "10".into(),
        ("pct", _) => "50".into(),
        ("older_than", _) => "'1 day'::interval".into(),
        ("from_ts" | "to_ts" | "action" | "anchor_hash" | "version", _) => "NULL".into(),
        ("doc" | "a" | "base", _) => jsonb(&json!({"player": {"gold": 1}, "k": [1, 2]})),
        ("b" | "ours", _) => jsonb(&json!({"player": {"gold": 2}, "k": [2, 1, 3]})),
        ("theirs", _) => jsonb(&json!({"player": {"gold": 3}, "k": [1]})),
        ("patch", _) => jsonb(&json!([{"op": "add", "path": "/x", "value": 1}])),
        ("state", _) => jsonb(&json!({"player": {"gold": 9}})),
        ("awf_raw", _) => jsonb(&json!({"acts": [{"op": "increment", "path": "/player/gold"}]})),
        ("request", _) => jsonb(&json!({"save_id": s.save, "base_turn": s.head.0,
                                        "base_chain": s.head.1, "turns": turns})),
        ("bundle", _) => jsonb(&s.bundle),
        ("branches", _) => jsonb(&json!([
            {"branch_id": "a", "turn_id": 3, "chain_hash": "00", "length": 3, "server": true},
            {"branch_id": "b", "turn_id": 4, "chain_hash": "11", "length": 4}])),
        ("strategy", _) => "'longest'".into(),
        ("rule", _) => "'ours'".into(),
        ("format", _) => "'json'".into(),
        ("salt", _) => "'salt'".into(),
        ("label" | "reason" | "contract_ref", _) => "'hostile'".into(),
        ("sealed", "bytea") => "'\\x00010203'::bytea".into(),
        // Signed sync and download links: well-formed values (no secret is configured, so
        // the signing calls refuse with 55000; an unknown link is 28000).
        ("token", _) => format!("'{}'", "ab".repeat(32)),
        ("method", _) => "'GET'".into(),
        ("path", _) => "'/api/awf-cloud-sync/sync/down?save_id=x&since_turn=0'".into(),
        ("body_sha256", _) => format!("'{}'", "0".repeat(64)),
        ("signature", _) => format!("'t=0, n=nonce-nonce-nonce, s={}'", "0".repeat(64)),
        ("nonce", _) => "'nonce-nonce-nonce'".into(),
        ("status", _) => "200".into(),
        (_, "boolean") => "false".into(),
        _ => panic!("the hostile suite has no valid value for argument {name} {ty}: add one"),
    };
    format!("{v}::{ty}")
}

/// Hostile JSON: wrong types, nesting past every limit, wide and long values, arrays whose
/// elements all collide, and documents that grow exponentially under patch, acts or merge.
fn hostile_json() -> Vec<(&'static str, String)> {
    let deep = |n: usize| format!("(repeat('[', {n}) || repeat(']', {n}))::jsonb");
    let deep_obj =
        |n: usize| format!("(repeat('{{\"a\":', {n}) || '1' || repeat('}}', {n}))::jsonb");
    // 2,000 emails under ten 100 KB member names: a redaction report of 2 GB of pointers.
    let long_names = (0..10).fold(
        "(SELECT jsonb_agg('mail ann@example.com'::text) FROM generate_series(1, 2000))"
            .to_string(),
        |inner, level| format!("jsonb_build_object(repeat('k', 100000) || '{level}', {inner})"),
    );
    let copy_bomb =
        "(SELECT jsonb_agg(jsonb_build_object('op', 'copy', 'from', '', 'path', '/k' || i)) \
                     FROM generate_series(1, 40) i)";
    vec![
        ("null", "NULL".into()),
        ("json null", "'null'::jsonb".into()),
        ("number", "'1'::jsonb".into()),
        ("string", "'\"s\"'::jsonb".into()),
        ("empty array", "'[]'::jsonb".into()),
        ("empty object", "'{}'::jsonb".into()),
        ("129 deep array", deep(129)),
        ("1000 deep array", deep(1000)),
        ("200 deep object", deep_obj(200)),
        ("100000 deep array", deep(100_000)),
        ("100k-key object", "(SELECT jsonb_object_agg('k' || i, i) FROM generate_series(1, 100000) i)".into()),
        ("200k-element array", "(SELECT jsonb_agg(i) FROM generate_series(1, 200000) i)".into()),
        ("8 MB string", "to_jsonb(repeat('x', 8000000))".into()),
        ("50k equal objects", "(SELECT jsonb_agg('{\"a\": [1, {\"b\": 2}]}'::jsonb) FROM generate_series(1, 50000))".into()),
        ("wide state", "jsonb_build_object('player', (SELECT jsonb_object_agg('k' || i, repeat('v', 100)) FROM generate_series(1, 20000) i))".into()),
        ("extreme numbers", "'[1e1000, -1e-1000, 123456789012345678901234567890.5, -0, 0.0000000000000000000001]'::jsonb".into()),
        ("odd keys", "'{\"\": 1, \"~1\": 2, \"/\": 3, \"__proto__\": {\"x\": 1}, \"\\u00e9\\ud83d\\ude00\": 4}'::jsonb".into()),
        ("findings under long names", long_names),
        ("copy bomb patch", copy_bomb.into()),
        ("50k front inserts", "(SELECT jsonb_agg(jsonb_build_object('op', 'add', 'path', '/k/0', 'value', i)) FROM generate_series(1, 50000) i)".into()),
        ("bad patch ops", "'[{\"op\": \"move\", \"from\": \"/k\", \"path\": \"/k/0\"}, {\"op\": \"frob\", \"path\": \"/~2\"}, {\"path\": 7}]'::jsonb".into()),
        ("100k acts", "jsonb_build_object('acts', (SELECT jsonb_agg(jsonb_build_object('op', 'increment', 'path', '/player/gold')) FROM generate_series(1, 100000)))".into()),
        ("10 MB of merge acts", "jsonb_build_object('acts', (SELECT jsonb_agg(jsonb_build_object('op', 'merge', 'path', '/k' || i, 'value', jsonb_build_object('x', repeat('y', 10000)))) FROM generate_series(1, 1000) i))".into()),
        ("acts of wrong types", "'{\"acts\": [1, \"x\", {\"op\": null}, {\"op\": \"increment\", \"path\": \"/player/name\"}, {\"op\": \"set\", \"path\": 5}]}'::jsonb".into()),
        ("copy-bomb turns", format!("jsonb_build_object('turns', jsonb_build_array(jsonb_build_object('turn_id', 4, 'patch', {copy_bomb})))")),
        ("30k sync turns", "jsonb_build_object('base_turn', 3, 'turns', (SELECT jsonb_agg(jsonb_build_object('turn_id', 3 + i, 'patch', '[]'::jsonb)) FROM generate_series(1, 30000) i))".into()),
        ("sync fields of wrong types", "'{\"save_id\": 7, \"base_turn\": \"3\", \"base_chain\": [], \"turns\": {\"turn_id\": -1}}'::jsonb".into()),
        ("bundle of wrong shape", "'{\"format\": \"awf-bundle\", \"version\": 99, \"session\": [], \"turns\": \"x\", \"snapshots\": null}'::jsonb".into()),
        ("colliding branches", "(SELECT jsonb_agg(jsonb_build_object('branch_id', 'b', 'turn_id', i, 'chain_hash', 'x')) FROM generate_series(1, 20000) i)".into()),
    ]
}

/// Hostile variants of a valid `request`, `bundle` or `awf_raw` (the SQL expression `valid`):
/// well-formed enough to pass the first checks and carry the attack deeper.
fn hostile_named(name: &str, valid: &str, head: i64) -> Vec<(&'static str, String)> {
    let set = |path: &str, v: &str| format!("jsonb_set({valid}, '{path}', {v})");
    let deep = |n: usize| format!("(repeat('[', {n}) || repeat(']', {n}))::jsonb");
    let copy_bomb =
        "(SELECT jsonb_agg(jsonb_build_object('op', 'copy', 'from', '', 'path', '/k' || i)) \
                     FROM generate_series(1, 40) i)";
    match name {
        "request" => vec![
            ("turn with a copy bomb", set("{turns}", &format!(
                "jsonb_build_array(jsonb_build_object('turn_id', {}, 'patch', {copy_bomb}))", head + 1))),
            ("30k turns", set("{turns}", &format!(
                "(SELECT jsonb_agg(jsonb_build_object('turn_id', {head} + i, 'patch', \
                  jsonb_build_array(jsonb_build_object('op', 'add', 'path', '/k' || i, 'value', i)))) \
                  FROM generate_series(1, 30000) i)"))),
            ("turn adding a 129 deep value", set("{turns,0,patch,0,value}", &deep(129))),
            ("200 turns each adding 10k values", set("{turns}", &format!(
                "(SELECT jsonb_agg(jsonb_build_object('turn_id', {head} + i, 'patch', \
                  jsonb_build_array(jsonb_build_object('op', 'add', 'path', '/k' || i, 'value', \
                  (SELECT jsonb_agg(j) FROM generate_series(1, 10000) j))))) \
                  FROM generate_series(1, 200) i)"))),
            ("turn ids going backwards", set("{turns}", &format!(
                "jsonb_build_array(jsonb_build_object('turn_id', {}, 'patch', '[]'::jsonb), \
                  jsonb_build_object('turn_id', {}, 'patch', '[]'::jsonb))", head + 2, head + 1))),
            ("negative base turn", set("{base_turn}", "'-1'")),
            ("huge base turn", set("{base_turn}", "'9223372036854775807'")),
            ("1 MB base chain", set("{base_chain}", "to_jsonb(repeat('a', 1000000))")),
        ],
        "bundle" => vec![
            ("state 200 deep", set("{sections,state}", &deep(200))),
            ("30k turns", set("{sections,turns}", &format!(
                "(SELECT jsonb_agg({valid} #> '{{sections,turns,0}}') FROM generate_series(1, 30000))"))),
            ("wal entry of 100k acts", set("{sections,wal,0,awf_raw}",
                "jsonb_build_object('acts', (SELECT jsonb_agg(jsonb_build_object('op', 'increment', 'path', '/player/gold')) FROM generate_series(1, 100000)))")),
            ("session id not a uuid", set("{sections,session,session_id}", "'\"not-a-uuid\"'")),
            ("turn ids colliding", set("{sections,turns}", &format!(
                "jsonb_build_array({valid} #> '{{sections,turns,0}}', {valid} #> '{{sections,turns,0}}')"))),
        ],
        "awf_raw" => vec![
            ("act setting a 200 deep value", format!(
                "jsonb_build_object('acts', jsonb_build_array(jsonb_build_object('op', 'set', 'path', '/x', 'value', {})))",
                deep(200))),
            ("act on a 1000 deep path", "jsonb_build_object('acts', jsonb_build_array(jsonb_build_object('op', 'increment', 'path', repeat('/a', 1000))))".into()),
        ],
        _ => vec![],
    }
}

/// Hostile scalars by type.
fn hostile_scalar(ty: &str) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, &str)> = vec![("null", "NULL")];
    v.extend(match ty {
        "text" => vec![
            ("empty", "''"),
            ("1 MB", "repeat('x', 1000000)"),
            ("100k multibyte", "repeat('€', 100000)"),
            ("quote and SQL", "$q$x'); DROP TABLE awf.sessions; --$q$"),
            ("control and bidi", "E'\\t\\r\\n\\u202e\\u0001'"),
            ("format directives", "'%s%n%x{}'"),
            ("uuid-like", "'00000000-0000-0000-0000-000000000000'"),
        ],
        "uuid" => vec![
            ("nil", "'00000000-0000-0000-0000-000000000000'"),
            ("unknown", "'12345678-1234-4234-8234-123456789abc'"),
        ],
        "bigint" => vec![
            ("zero", "0"),
            ("negative", "-1"),
            ("max", "9223372036854775807"),
            ("min", "(-9223372036854775807 - 1)"),
        ],
        "integer" => vec![
            ("zero", "0"),
            ("negative", "-1"),
            ("max", "2147483647"),
            ("min", "(-2147483647 - 1)"),
        ],
        "double precision" => vec![
            ("NaN", "'NaN'"),
            ("infinity", "'Infinity'"),
            ("-infinity", "'-Infinity'"),
            ("negative", "-1"),
            ("huge", "1e308"),
        ],
        "boolean" => vec![("true", "true"), ("false", "false")],
        "bytea" => vec![
            ("empty", "''::bytea"),
            ("4 MB", "decode(repeat('ab', 4000000), 'hex')"),
            (
                "zstd frame claiming 1 TB",
                "'\\x28b52ffd60000000000100'::bytea",
            ),
        ],
        "timestamp with time zone" => vec![
            ("infinity", "'infinity'"),
            ("-infinity", "'-infinity'"),
            ("far past", "'4713-01-01 00:00:00+00 BC'"),
        ],
        "interval" => vec![
            ("negative", "'-1 day'"),
            ("huge", "'178000000 years'"),
            ("zero", "'0'"),
        ],
        other => panic!("the hostile suite has no hostile values for type {other}: add some"),
    });
    v.into_iter().map(|(l, e)| (l, e.to_owned())).collect()
}

/// Pairs for the first two JSON arguments together (diff and merge inputs): the same large
/// shape with a small difference, which is where a diff or merge does the most work.
fn hostile_pairs() -> Vec<(&'static str, String, String)> {
    let equal = |last: &str| {
        format!(
            "(SELECT jsonb_agg(CASE WHEN i = 50000 THEN '{last}'::jsonb \
             ELSE '{{\"a\": [1, {{\"b\": 2}}]}}'::jsonb END) FROM generate_series(1, 50000) i)"
        )
    };
    vec![
        (
            "50k equal objects, the last changed",
            equal("{\"a\": [1, {\"b\": 2}]}"),
            equal("{\"a\": 0}"),
        ),
        (
            "200k array and its reverse",
            "(SELECT jsonb_agg(i ORDER BY i) FROM generate_series(1, 200000) i)".into(),
            "(SELECT jsonb_agg(i ORDER BY i DESC) FROM generate_series(1, 200000) i)".into(),
        ),
        (
            "100k keys, every value changed",
            "(SELECT jsonb_object_agg('k' || i, i) FROM generate_series(1, 100000) i)".into(),
            "(SELECT jsonb_object_agg('k' || i, -i) FROM generate_series(1, 100000) i)".into(),
        ),
    ]
}

/// Builds each hostile JSON value once, in a table every role can read, and returns
/// expressions that read it back: building them per call would dominate the suite's time.
/// A value PostgreSQL itself cannot hold (nesting past its parser's limit) stays an
/// expression, so each call still meets that refusal.
fn materialized(c: &mut Client) -> Vec<(&'static str, String)> {
    c.batch_execute(
        "CREATE TABLE public.hostile_inputs (label text PRIMARY KEY, v jsonb);
         GRANT SELECT ON public.hostile_inputs TO PUBLIC",
    )
    .unwrap();
    let mut values = hostile_json();
    for (label, a, b) in hostile_pairs() {
        values.push((label, a));
        values.push((label, b));
    }
    let mut out = Vec::new();
    for (i, (label, expr)) in values.into_iter().enumerate() {
        let key = format!("{i}: {label}");
        let stored = c.execute(
            &format!("INSERT INTO public.hostile_inputs SELECT $1, ({expr})"),
            &[&key],
        );
        out.push(match stored {
            Ok(_) => (
                label,
                format!("(SELECT v FROM public.hostile_inputs WHERE label = '{key}')"),
            ),
            Err(_) => (label, expr),
        });
    }
    out
}

/// SQLSTATEs that mean the function lost control or the suite is wrong: an internal error,
/// the budget running out, a resource error, a crash; or a call the catalog says cannot be.
fn unacceptable(state: &str) -> bool {
    state.starts_with("XX")
        || state.starts_with("53")
        || state.starts_with("58")
        || state.starts_with("08")
        || state == "57014"
        || state.starts_with("57P")
        || matches!(state, "42883" | "42804" | "42601" | "42725" | "42P18")
}

/// Every extension table's content, seen as the superuser (no row-level security).
fn fingerprint(c: &mut Client) -> BTreeMap<String, String> {
    let tables: Vec<String> = c
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'awf' AND c.relkind = 'r' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    tables
        .into_iter()
        .map(|t| {
            let h: String = c
                .query_one(
                    &format!(
                        "SELECT count(*) || ':' || coalesce(md5(string_agg(md5(t::text), '' \
                         ORDER BY md5(t::text))), '') FROM awf.{t} t {}",
                        if t == "audit_log" {
                            "WHERE action <> 'sync_refused'"
                        } else {
                            ""
                        }
                    ),
                    &[],
                )
                .unwrap()
                .get(0);
            (t, h)
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    calls: usize,
    ok: usize,
    by_state: BTreeMap<String, usize>,
    failures: Vec<String>,
    slowest: Vec<(Duration, String)>,
}

/// Runs one call in its own transaction (rolled back) and records how it ended.
fn call(c: &mut Client, f: &Func, label: &str, sql: &str, tally: &mut Tally) {
    let prologue = if f.for_app {
        format!("BEGIN; SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'; SELECT awf.act_as('{USER}')")
    } else {
        format!("BEGIN; SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
    };
    c.batch_execute(&prologue).unwrap();
    let t = Instant::now();
    let res = c.query_one(sql, &[]);
    let took = t.elapsed();
    tally.calls += 1;
    tally.slowest.push((took, format!("{}: {label}", f.name)));
    if std::env::var_os("AWF_HOSTILE_VERBOSE").is_some() {
        let end = match &res {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.as_db_error().map_or(e.to_string(), |d| {
                format!("{} {}", d.code().code(), d.message())
            }),
        };
        println!("{}: {label}: {end} ({took:?})", f.name);
    }
    match res {
        Ok(_) => tally.ok += 1,
        Err(e) => match e.as_db_error() {
            Some(d) => {
                let state = d.code().code().to_owned();
                if d.message().len() > 2 * awf_core::error::MAX_MESSAGE_BYTES {
                    tally.failures.push(format!(
                        "{}: {label}: a {}-byte message echoes the input",
                        f.name,
                        d.message().len()
                    ));
                }
                if unacceptable(&state) {
                    tally.failures.push(format!(
                        "{}: {label}: {state} {} after {took:?}",
                        f.name,
                        d.message()
                    ));
                }
                *tally.by_state.entry(state).or_default() += 1;
            }
            None => panic!("{}: {label}: the connection was lost: {e}", f.name),
        },
    }
    c.batch_execute("ROLLBACK").unwrap();
}

/// The calls for one function: each argument hostile in turn, then all JSON ones at once.
fn calls_for(f: &Func, seed: &Seed, json: &[(&'static str, String)]) -> Vec<(String, String)> {
    let valid_args: Vec<String> = f.args.iter().map(|(n, t)| valid(n, t, seed)).collect();
    let render = |args: &[String]| {
        let named: Vec<String> = f
            .args
            .iter()
            .zip(args)
            .map(|((n, _), v)| format!("\"{n}\" => {v}"))
            .collect();
        format!(
            "SELECT count(*) FROM awf.\"{}\"({}) AS r",
            f.name,
            named.join(", ")
        )
    };
    let mut out = vec![("valid".to_owned(), render(&valid_args))];
    for (i, (name, ty)) in f.args.iter().enumerate() {
        let values = if ty == "jsonb" {
            json[..json.len() - 2 * hostile_pairs().len()].to_vec()
        } else {
            hostile_scalar(ty)
        };
        let values = values
            .into_iter()
            .chain(hostile_named(name, &valid_args[i], seed.head.0));
        for (label, expr) in values {
            let mut args = valid_args.clone();
            args[i] = format!("({expr})::{ty}");
            out.push((format!("{name} = {label}"), render(&args)));
        }
    }
    let json_args: Vec<usize> = (0..f.args.len())
        .filter(|&i| f.args[i].1 == "jsonb")
        .collect();
    if json_args.len() > 1 {
        let (singles, pairs) = json.split_at(json.len() - 2 * hostile_pairs().len());
        for (label, expr) in singles {
            let mut args = valid_args.clone();
            for &i in &json_args {
                args[i] = expr.clone();
            }
            out.push((format!("every jsonb = {label}"), render(&args)));
        }
        for pair in pairs.chunks(2) {
            let mut args = valid_args.clone();
            args[json_args[0]] = pair[0].1.clone();
            args[json_args[1]] = pair[1].1.clone();
            out.push((format!("first two jsonb = {}", pair[0].0), render(&args)));
        }
    }
    out
}

#[test]
fn every_sql_function_survives_hostile_input() {
    let db = TestDb::new();
    let app = TestRole::new(&db, "awf_app");
    let admin = TestRole::new(&db, "awf_admin");
    let mut root = db.client();
    let seed = seed(&mut root);
    let funcs = catalog(&mut root);
    let json = materialized(&mut root);
    assert!(funcs.len() >= 50, "only {} functions found", funcs.len());

    let watch = CrashWatch::start(&mut root);
    let before = fingerprint(&mut root);
    let mut app_c = db.client_as(app.name());
    let mut admin_c = db.client_as(admin.name());
    let mut tally = Tally::default();
    let t = Instant::now();
    for f in &funcs {
        let c = if f.for_app { &mut app_c } else { &mut admin_c };
        for (label, sql) in calls_for(f, &seed, &json) {
            call(c, f, &label, &sql, &mut tally);
        }
        let after = fingerprint(&mut root);
        assert_eq!(after, before, "calls of {} left rows behind", f.name);
    }
    let took = t.elapsed();

    watch.assert_no_crash(&mut root);
    let audited: i64 = root
        .query_one(
            "SELECT count(*) FROM awf.audit_log WHERE action = 'sync_refused'",
            &[],
        )
        .unwrap()
        .get(0);
    tally.slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    println!(
        "hostile SQL: {} calls to {} functions in {took:?}: {} succeeded, refused by SQLSTATE \
         {:?}; {audited} refused device credentials audited",
        tally.calls,
        funcs.len(),
        tally.ok,
        tally.by_state
    );
    for (d, what) in tally.slowest.iter().take(25) {
        println!("  slowest: {d:?} {what}");
    }
    assert!(
        tally.failures.is_empty(),
        "{} calls ended badly:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
}
