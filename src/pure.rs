//! The pure helpers: immutable, strict, parallel-safe functions over jsonb.

use crate::errors::OrRaise;
use crate::jsonb::JsonB;
use awf_core::{canonical, diff, merge, patch, redact};
use pgrx::prelude::*;

/// The extension's version.
#[pg_extern(immutable, strict, parallel_safe)]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The RFC 8785 canonical text of a document: the bytes every hash is taken over.
#[pg_extern(immutable, strict, parallel_safe)]
fn canonical_json(doc: JsonB) -> String {
    canonical::canonical_string_within(&doc.0, &mut crate::gucs::budget())
        .or_raise("canonical_json")
}

/// SHA-256 (hex) of the canonical bytes of a document.
#[pg_extern(immutable, strict, parallel_safe)]
fn canonical_hash(doc: JsonB) -> String {
    canonical::content_hash_within(&doc.0, &mut crate::gucs::budget()).or_raise("canonical_hash")
}

/// An RFC 6902 patch turning `a` into `b`.
#[pg_extern(immutable, strict, parallel_safe)]
fn json_diff(a: JsonB, b: JsonB) -> JsonB {
    JsonB(diff::diff_value(&a.0, &b.0, &mut crate::gucs::budget()).or_raise("json_diff"))
}

/// Applies an RFC 6902 patch; any failing operation fails the whole patch.
#[pg_extern(immutable, strict, parallel_safe)]
fn json_patch_apply(doc: JsonB, patch: JsonB) -> JsonB {
    JsonB(patch::apply(&doc.0, &patch.0, &mut crate::gucs::budget()).or_raise("json_patch_apply"))
}

/// Three-way merge: `{"merged": ..., "conflicts": [...]}`; `rule` is ours, theirs or fail.
#[pg_extern(immutable, strict, parallel_safe)]
fn json_merge(base: JsonB, ours: JsonB, theirs: JsonB, rule: &str) -> JsonB {
    let rule: merge::MergeRule = rule.parse().or_raise("json_merge");
    let outcome = merge::merge(
        &base.0,
        &ours.0,
        &theirs.0,
        rule,
        &mut crate::gucs::budget(),
    )
    .or_raise("json_merge");
    JsonB(merge::merge_outcome_to_value(&outcome))
}

/// Redacts secrets and PII: `{"document": ..., "report": {...}}`. The salt keeps equal values
/// correlatable within one call site without exposing them.
#[pg_extern(immutable, strict, parallel_safe)]
fn redact(doc: JsonB, salt: default!(&str, "''")) -> JsonB {
    let out = redact::redact(
        &doc.0,
        &redact::RedactOptions {
            salt: salt.to_owned(),
        },
        &mut crate::gucs::budget(),
    )
    .or_raise("redact");
    JsonB(serde_json::json!({ "document": out.document, "report": out.report }))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::jsonb::JsonB;
    use crate::testing::{assert_sqlstate, one};
    use pgrx::prelude::*;
    use serde_json::json;

    #[pg_test]
    fn version_matches_crate() {
        assert_eq!(
            one::<String>("SELECT awf.version()").as_deref(),
            Some(env!("CARGO_PKG_VERSION"))
        );
    }

    #[pg_test]
    fn canonical_json_sorts_keys_and_normalizes_numbers() {
        let got = one::<String>(r#"SELECT awf.canonical_json('{"b": 1.50, "a": [1e2, "x"]}')"#);
        assert_eq!(got.as_deref(), Some(r#"{"a":[100,"x"],"b":1.5}"#));
    }

    #[pg_test]
    fn canonical_hash_is_sha256_of_canonical_bytes() {
        let got = one::<String>(r#"SELECT awf.canonical_hash('{"b":2,"a":1}')"#).unwrap();
        let again = one::<String>(r#"SELECT awf.canonical_hash('{"a":1,  "b":2.0}')"#).unwrap();
        assert_eq!(got, again);
        assert_eq!(got, awf_core::canonical::sha256_hex(br#"{"a":1,"b":2}"#));
    }

    #[pg_test]
    fn inexact_numbers_are_refused_with_22023() {
        assert_sqlstate(
            r#"SELECT awf.canonical_hash('{"id": 9007199254740993}')"#,
            "22023",
        );
        assert_sqlstate(
            r#"SELECT awf.canonical_json('[0.10000000000000000001]')"#,
            "22023",
        );
    }

    #[pg_test]
    fn diff_then_apply_round_trips() {
        let got = one::<bool>(
            r#"SELECT awf.json_patch_apply(a, awf.json_diff(a, b)) = b
               FROM (SELECT '{"hp": 10, "inv": ["a","b","c"]}'::jsonb a,
                            '{"hp": 7, "inv": ["a","x","b","c"], "gold": 1}'::jsonb b) t"#,
        );
        assert_eq!(got, Some(true));
        let ops = one::<JsonB>(r#"SELECT awf.json_diff('[1,2,3]', '[1,9,2,3]')"#).unwrap();
        assert_eq!(ops.0, json!([{"op": "add", "path": "/1", "value": 9}]));
    }

    #[pg_test]
    fn patch_apply_errors_are_22023() {
        let failed_test = r#"SELECT awf.json_patch_apply('{"a":1}',
            '[{"op":"replace","path":"/a","value":5},{"op":"test","path":"/a","value":2}]')"#;
        assert_sqlstate(failed_test, "22023");
        assert_sqlstate(
            r#"SELECT awf.json_patch_apply('{}', '[{"op":"remove","path":"/nope"}]')"#,
            "22023",
        );
        assert_sqlstate(
            r#"SELECT awf.json_patch_apply('{}', '{"op":"add"}')"#,
            "22023",
        );
    }

    #[pg_test]
    fn merge_reports_conflicts_and_rule_decides() {
        let got = one::<JsonB>(
            r#"SELECT awf.json_merge('{"a":1,"b":1}', '{"a":2,"b":1}', '{"a":3,"b":5}', 'theirs')"#,
        )
        .unwrap()
        .0;
        assert_eq!(got["merged"], json!({"a": 3, "b": 5}));
        assert_eq!(got["conflicts"][0]["path"], json!("/a"));
        assert_sqlstate(
            r#"SELECT awf.json_merge('{"a":1}', '{"a":2}', '{"a":3}', 'fail')"#,
            "23505",
        );
        assert_sqlstate(
            r#"SELECT awf.json_merge('{}', '{}', '{}', 'coin-flip')"#,
            "22023",
        );
    }

    #[pg_test]
    fn redact_reports_what_it_replaced() {
        let got =
            one::<JsonB>(r#"SELECT awf.redact('{"note": "mail me at ann@example.com", "hp": 3}')"#)
                .unwrap()
                .0;
        assert_eq!(got["document"]["hp"], json!(3));
        assert!(!got.to_string().contains("ann@example.com"));
        assert_eq!(got["report"]["counts"]["email"], json!(1));
    }

    /// `n` copies of the whole document: each doubles it.
    fn copy_bomb(n: usize) -> String {
        let ops: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"op":"copy","from":"","path":"/k{i}"}}"#))
            .collect();
        format!("[{}]", ops.join(","))
    }

    #[pg_test]
    fn a_doubling_patch_is_54000_not_an_out_of_memory() {
        let sql = format!(
            r#"SELECT awf.json_patch_apply('{{"a": "xxxxxxxxxxxxxxxx"}}', '{}')"#,
            copy_bomb(40)
        );
        assert_sqlstate(&sql, "54000");
        // The limit is a setting: lowered, even a small patch is refused.
        crate::testing::run("SET awf.max_built_nodes = 1000");
        assert_sqlstate(
            &format!(
                r#"SELECT awf.json_patch_apply('{{"a": 1}}', '{}')"#,
                copy_bomb(12)
            ),
            "54000",
        );
    }

    #[pg_test]
    fn documents_deeper_than_128_levels_are_22023() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        for f in [
            "canonical_hash('{d}')",
            "json_diff('{d}', '[]')",
            "json_patch_apply('{d}', '[]')",
        ] {
            assert_sqlstate(&format!("SELECT awf.{}", f.replace("{d}", &deep)), "22023");
        }
        let deep_obj = format!("{}1{}", r#"{"a":"#.repeat(150), "}".repeat(150));
        assert_sqlstate(
            &format!(
                "SELECT awf.turn_submit('{}', 1, '{deep_obj}')",
                crate::testing::SID
            ),
            "22023",
        );
    }

    #[pg_test]
    fn strict_functions_return_null_on_null() {
        assert_eq!(one::<String>("SELECT awf.canonical_hash(NULL)"), None);
        assert_eq!(
            one::<JsonB>("SELECT awf.json_diff(NULL, '{}')").map(|j| j.0),
            None
        );
    }

    #[pg_test]
    fn helpers_are_immutable_strict_parallel_safe() {
        let bad = one::<i64>(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'awf' AND p.proname IN ('version','canonical_json','canonical_hash',
               'json_diff','json_patch_apply','json_merge','redact')
               AND NOT (p.provolatile = 'i' AND p.proisstrict AND p.proparallel = 's')",
        );
        assert_eq!(bad, Some(0));
    }
}
