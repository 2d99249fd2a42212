//! Runs the json-patch-tests conformance suite (RFC 6902) against `awf_core::patch`.

mod common;

use awf_core::json::value_eq;
use awf_core::patch::{apply, apply_in_place};
use serde_json::Value;

struct Counts {
    passed: usize,
    disabled: usize,
    failures: Vec<String>,
}

fn run_file(rel: &str) -> Counts {
    let cases = common::read_json(rel);
    let cases = cases.as_array().expect("suite file is an array");
    let mut c = Counts {
        passed: 0,
        disabled: 0,
        failures: Vec::new(),
    };
    for (i, case) in cases.iter().enumerate() {
        let label = format!(
            "{rel}[{i}] {}",
            case.get("comment").and_then(Value::as_str).unwrap_or("")
        );
        if case.get("disabled").and_then(Value::as_bool) == Some(true) {
            c.disabled += 1;
            continue;
        }
        let (Some(doc), Some(patch)) = (case.get("doc"), case.get("patch")) else {
            // A comment-only record.
            continue;
        };
        let result = apply(doc, patch, &mut awf_core::Budget::default());
        let mut in_place = doc.clone();
        let in_place_result =
            apply_in_place(&mut in_place, patch, &mut awf_core::Budget::default());
        match (case.get("expected"), case.get("error")) {
            (Some(expected), _) => match (&result, &in_place_result) {
                (Ok(got), Ok(())) if value_eq(got, expected) && value_eq(&in_place, expected) => {
                    c.passed += 1
                }
                _ => c.failures.push(format!(
                    "{label}: expected {expected}, got {result:?} / in place {in_place_result:?} {in_place}"
                )),
            },
            (None, Some(error)) => {
                if result.is_ok() {
                    c.failures
                        .push(format!("{label}: expected error {error}, got {result:?}"));
                } else if in_place_result.is_ok() {
                    c.failures
                        .push(format!("{label}: in-place apply succeeded, expected {error}"));
                } else if in_place != *doc {
                    c.failures.push(format!(
                        "{label}: failed in-place apply changed the doc to {in_place}"
                    ));
                } else {
                    c.passed += 1;
                }
            }
            // Neither: only the absence of a panic is checked, which getting here shows.
            (None, None) => c.passed += 1,
        }
    }
    c
}

#[test]
fn json_patch_tests_suite() {
    let mut failures = Vec::new();
    let mut lines = Vec::new();
    for rel in [
        "json-patch-tests/tests.json",
        "json-patch-tests/spec_tests.json",
    ] {
        let c = run_file(rel);
        lines.push(format!(
            "{} passed, {} disabled skipped ({})",
            c.passed,
            c.disabled,
            rel.trim_start_matches("json-patch-tests/")
        ));
        failures.extend(c.failures);
    }
    println!("json-patch: {}", lines.join("; "));
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
