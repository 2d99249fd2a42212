//! The pure SQL helpers over a real client connection: values travel through jsonb and the
//! wire protocol, so this checks what a game backend sees.

use awf_tests::{sqlstate, suites, TestDb};
use serde_json::Value;
use std::fs;

/// Every RFC 8785 suite input, sent as jsonb, hashes to the SHA-256 of the suite's expected
/// canonical bytes, and `awf.canonical_json` returns exactly those bytes.
#[test]
fn jcs_suite_through_jsonb() {
    let db = TestDb::new();
    let mut c = db.client();
    let dir = suites().join("jcs-rfc8785");
    let mut n = 0;
    for entry in fs::read_dir(dir.join("input")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let input: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let expected = fs::read_to_string(dir.join("output").join(&name)).unwrap();
        if name == "values.json" {
            // Its 333333333.33333329 has no exact f64; strict canonicalization refuses it
            // rather than round it (awf_core's jcs_suite test covers the rounded reading).
            let err = c
                .query_one("SELECT awf.canonical_hash($1::jsonb)", &[&input])
                .unwrap_err();
            assert_eq!(sqlstate(&err), "22023");
            assert!(err
                .as_db_error()
                .unwrap()
                .message()
                .contains("333333333.33333329"));
            n += 1;
            continue;
        }
        let row = c
            .query_one(
                "SELECT awf.canonical_json($1::jsonb), awf.canonical_hash($1::jsonb)",
                &[&input],
            )
            .unwrap();
        let canonical: String = row.get(0);
        let hash: String = row.get(1);
        assert_eq!(canonical, expected, "{name}");
        let again: String = c
            .query_one(
                "SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')",
                &[&expected],
            )
            .unwrap()
            .get(0);
        assert_eq!(
            hash, again,
            "{name}: hash is SHA-256 of the canonical bytes"
        );
        n += 1;
    }
    assert_eq!(n, 6);
    println!("jcs through jsonb: {n}/6 files (5 byte-exact, values.json refused as inexact)");
}

#[test]
fn bad_input_gets_its_sqlstate() {
    let db = TestDb::new();
    let mut c = db.client();
    let err = c
        .query_one(
            "SELECT awf.json_patch_apply('{}'::jsonb, '[{\"op\":\"move\",\"from\":\"/x\",\"path\":\"/y\"}]'::jsonb)",
            &[],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
    let err = c
        .query_one(
            "SELECT awf.canonical_hash('{\"big\": 123456789012345678901234567890}'::jsonb)",
            &[],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
    assert!(err
        .as_db_error()
        .unwrap()
        .message()
        .contains("123456789012345678901234567890"));
}

#[test]
fn diff_and_merge_round_trip_over_the_wire() {
    let db = TestDb::new();
    let mut c = db.client();
    let a: Value = serde_json::json!({"player": {"hp": 10, "inv": ["sword", "rope"]}, "turn": 1});
    let b: Value =
        serde_json::json!({"player": {"hp": 8, "inv": ["sword", "lamp", "rope"]}, "turn": 2});
    let same: bool = c
        .query_one(
            "SELECT awf.json_patch_apply($1::jsonb, awf.json_diff($1::jsonb, $2::jsonb)) = $2::jsonb",
            &[&a, &b],
        )
        .unwrap()
        .get(0);
    assert!(same);
    let merged: Value = c
        .query_one(
            "SELECT awf.json_merge($1::jsonb, $2::jsonb, $3::jsonb, 'ours')",
            &[&a, &b, &serde_json::json!({"player": {"hp": 10, "inv": ["sword", "rope"]}, "turn": 1, "gold": 5})],
        )
        .unwrap()
        .get(0);
    assert_eq!(merged["merged"]["gold"], 5);
    assert_eq!(merged["merged"]["player"]["hp"], 8);
    assert_eq!(merged["conflicts"], serde_json::json!([]));
}

/// Every document of the JSON parsing suite that PostgreSQL's own `jsonb_in` accepts comes back
/// from a function unchanged: the extension reads a jsonb argument and builds its jsonb result
/// directly (no text in between), and must agree with PostgreSQL on every value, byte for byte
/// in jsonb's text form. Documents `jsonb_in` refuses are refused before the extension runs.
#[test]
fn the_parsing_suite_round_trips_through_the_extensions_jsonb() {
    let db = TestDb::new();
    let mut c = db.client();
    let dir = suites().join("json-parsing/test_parsing");
    let (mut same, mut too_deep, mut refused_by_postgres) = (0, 0, 0);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json") && (n.starts_with("y_") || n.starts_with("i_")))
        .collect();
    names.sort();
    for name in &names {
        let bytes = fs::read(dir.join(name)).unwrap();
        let Ok(text) = String::from_utf8(bytes) else {
            refused_by_postgres += 1;
            continue;
        };
        let Ok(row) = c.query_one("SELECT $1::text::jsonb::text", &[&text]) else {
            refused_by_postgres += 1;
            continue;
        };
        let want: String = row.get(0);
        let got = c.query_one(
            "SELECT awf.json_patch_apply($1::text::jsonb, '[]')::text",
            &[&text],
        );
        match got {
            Ok(row) => {
                assert_eq!(row.get::<_, String>(0), want, "{name}");
                same += 1;
            }
            // The one refusal allowed: nesting past the parser's limit, with 22023.
            Err(e) => {
                assert_eq!(sqlstate(&e), "22023", "{name}: {e}");
                let msg = e.as_db_error().unwrap().message().to_owned();
                assert!(
                    msg.contains("nests deeper than 127 levels"),
                    "{name}: {msg}"
                );
                too_deep += 1;
            }
        }
    }
    println!(
        "json-parsing through jsonb: {same} documents round-trip exactly, {too_deep} refused as nested too deep (22023), {refused_by_postgres} refused by jsonb_in (of {} y_/i_ files)",
        names.len()
    );
    assert!(same >= 95, "only {same} documents were compared");
}

/// Numbers keep numeric's exact text through the extension, in both directions, including
/// those no double can hold; a document nested as deep as the parser allows is read, one
/// level deeper is refused with 22023.
#[test]
fn numbers_and_depth_through_the_extensions_jsonb() {
    let db = TestDb::new();
    let mut c = db.client();
    for n in [
        "0",
        "-0",
        "1.0",
        "1e400",
        "-1.5E-10",
        "0.1",
        "123456789012345678901234567890",
        "1.000000000000000000000000000001",
        "9007199254740993",
    ] {
        let doc = format!(r#"{{"n": {n}, "a": [{n}], "s": "{n}"}}"#);
        let row = c
            .query_one(
                "SELECT awf.json_patch_apply($1::text::jsonb, '[]')::text, $1::text::jsonb::text",
                &[&doc],
            )
            .unwrap();
        assert_eq!(row.get::<_, String>(0), row.get::<_, String>(1), "{n}");
    }
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let ok: String = c
        .query_one(
            "SELECT awf.json_patch_apply($1::text::jsonb, '[]')::text",
            &[&deep(127)],
        )
        .unwrap()
        .get(0);
    assert_eq!(ok, deep(127).replace("][", "], ["));
    let err = c
        .query_one(
            "SELECT awf.json_patch_apply($1::text::jsonb, '[]')",
            &[&deep(128)],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023", "{err}");
}
