//! Runs the RFC 7396 examples against `awf_core::merge_patch`, and checks that
//! `merge_patch_diff` reproduces each expected document.

mod common;

use awf_core::json::value_eq;
use awf_core::merge_patch::{merge_patch, merge_patch_diff, merge_patch_in_place};
use serde_json::Value;

#[test]
fn rfc7396_suite() {
    let cases = common::read_json("json-merge-patch-rfc7396/tests.json");
    let cases = cases.as_array().expect("suite file is an array");
    let mut failures = Vec::new();
    let (mut passed, mut diffed, mut unrepresentable) = (0, 0, 0);
    for (i, case) in cases.iter().enumerate() {
        let label = format!(
            "[{i}] {}",
            case.get("comment").and_then(Value::as_str).unwrap_or("")
        );
        let (doc, patch, expected) = (&case["doc"], &case["patch"], &case["expected"]);
        let got = merge_patch(doc, patch);
        let mut in_place = doc.clone();
        merge_patch_in_place(&mut in_place, patch);
        if value_eq(&got, expected) && value_eq(&in_place, expected) {
            passed += 1;
        } else {
            failures.push(format!(
                "{label}: expected {expected}, got {got} / in place {in_place}"
            ));
        }
        match merge_patch_diff(doc, expected) {
            Ok(p) if value_eq(&merge_patch(doc, &p), expected) => diffed += 1,
            Ok(p) => failures.push(format!("{label}: diff {p} does not reproduce {expected}")),
            Err(_) => unrepresentable += 1,
        }
    }
    println!(
        "merge-patch: {passed} passed of {} (rfc7396 tests.json); merge_patch_diff round-tripped \
         {diffed}, {unrepresentable} not representable",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
