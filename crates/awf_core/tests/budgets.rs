//! Bounded work: inputs built to make an algorithm blow up end in a limit error (54000 in
//! SQL) after bounded work, and leave their input untouched.

use awf_core::acts::{apply_acts, parse_acts};
use awf_core::diff::diff;
use awf_core::merge::{merge, MergeRule};
use awf_core::patch::{apply, apply_in_place};
use awf_core::{Budget, ErrorKind, Limits};
use serde_json::{json, Value};

/// `n` copies of the whole document into new members: each one doubles it.
fn copy_bomb(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"op": "copy", "from": "", "path": format!("/k{i}")}))
            .collect(),
    )
}

#[test]
fn a_doubling_patch_stops_at_the_node_limit_and_changes_nothing() {
    let orig = json!({"seed": "x".repeat(16)});
    let mut doc = orig.clone();
    let mut budget = Budget::default();
    let err = apply_in_place(&mut doc, &copy_bomb(40), &mut budget).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded, "{err}");
    assert!(err.message.contains("awf.max_built_nodes"), "{err}");
    assert_eq!(doc, orig, "a refused patch leaves the document as it was");
    // It stopped around the limit, not after building 2^40 values.
    assert!(budget.nodes_built() <= Limits::default().max_nodes * 2);
    println!(
        "copy bomb of 40 ops: refused after {} nodes, {} work units",
        budget.nodes_built(),
        budget.work_spent()
    );
}

#[test]
fn a_doubling_patch_inside_turn_acts_is_refused_too() {
    let acts = parse_acts(&copy_bomb(40)).unwrap();
    let err = apply_acts(&json!({"hp": 1}), &acts, 1, &mut Budget::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded, "{err}");
    // A small, honest patch still applies under the same defaults.
    let ok = apply(&json!({"a": 1}), &copy_bomb(3), &mut Budget::default()).unwrap();
    assert_eq!(ok["k2"]["k1"]["k0"]["a"], json!(1));
}

/// `n` copies of the whole document `{"a": {}}` to the bottom of its own chain of `a`
/// members: each one doubles its depth, so 18 of them (about 1 MB of paths) nest it 500,000
/// levels deep, which overflowed the stack on the next walk.
fn depth_bomb(n: usize) -> Value {
    let mut chain = 1usize;
    let mut ops = Vec::new();
    for _ in 0..n {
        ops.push(json!({"op": "copy", "from": "", "path": "/a".repeat(chain + 1)}));
        chain = 2 * chain + 1;
    }
    Value::Array(ops)
}

#[test]
fn a_depth_doubling_patch_stops_at_the_depth_limit() {
    let orig = json!({"a": {}});
    let mut doc = orig.clone();
    let err = apply_in_place(&mut doc, &depth_bomb(18), &mut Budget::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded, "{err}");
    assert!(err.message.contains("levels deep"), "{err}");
    assert_eq!(doc, orig);
    // Same through turn acts, and through moves into a deep path.
    let acts = parse_acts(&depth_bomb(18)).unwrap();
    let err = apply_acts(&orig, &acts, 1, &mut Budget::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded, "{err}");
    let mut chain = json!(1);
    for _ in 0..100 {
        chain = json!({ "c": chain });
    }
    let deep_path = format!("/b{}", "/c".repeat(99));
    let mv = json!([{"op": "move", "from": "/a", "path": format!("{deep_path}/x")}]);
    let mut doc = json!({"a": chain.clone(), "b": chain});
    let err = apply_in_place(&mut doc, &mv, &mut Budget::default()).unwrap_err();
    assert!(err.message.contains("levels deep"), "{err}");
    assert!(doc["a"].is_object(), "a refused move puts the value back");
    // Up to the limit is fine.
    let ok = json!([{"op": "add", "path": "/x", "value": [[[1]]]}]);
    apply(&json!({}), &ok, &mut Budget::default()).unwrap();
}

#[test]
fn merge_and_append_acts_cannot_nest_a_state_past_the_limit() {
    // Each act puts a 120-level value at the bottom of the previous one: 500 such acts would
    // nest the state 60,000 levels deep before the end-of-turn depth check saw it.
    let mut deep = json!({});
    for _ in 0..120 {
        deep = json!({ "": deep });
    }
    let acts = json!([
        {"op": "merge", "path": "/a", "value": deep},
        {"op": "merge", "path": format!("/a{}", "/".repeat(119)), "value": deep},
    ]);
    let acts = parse_acts(&acts).unwrap();
    let err = apply_acts(&json!({"a": {}}), &acts, 1, &mut Budget::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded, "{err}");
    assert!(
        err.message.contains("act 1") && err.message.contains("levels deep"),
        "{err}"
    );
    let acts =
        parse_acts(&json!([{"op": "append", "path": "/log", "value": [[[[[[[[deep]]]]]]]]}]))
            .unwrap();
    let err = apply_acts(&json!({"log": []}), &acts, 1, &mut Budget::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded, "{err}");
}

#[test]
fn copies_of_one_long_string_stop_at_the_byte_limit() {
    // Each copy is one node, so the node limit alone let this build 2 GB from a 1 MB input.
    let doc = json!({"s": "x".repeat(1 << 20)});
    let ops = Value::Array(
        (0..2_000)
            .map(|i| json!({"op": "copy", "from": "/s", "path": format!("/c{i}")}))
            .collect(),
    );
    let mut budget = Budget::default();
    let err = apply(&doc, &ops, &mut budget).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded, "{err}");
    assert!(err.message.contains("awf.max_built_mb"), "{err}");
    assert!(budget.bytes_built() <= Limits::default().max_bytes + (1 << 20));
    println!(
        "1 MB string copied: refused after {} MB built",
        budget.bytes_built() >> 20
    );
}

#[test]
fn diff_charges_the_path_of_every_operation() {
    // One long member name above 20,000 removed elements: each remove carries the name.
    let key = "k".repeat(100_000);
    let a = json!({ key.clone(): (0..20_000).collect::<Vec<_>>() });
    let b = json!({ key: [0] });
    let mut budget = Budget::default();
    let err = diff(&a, &b, &mut budget).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded, "{err}");
}

#[test]
fn array_shifts_are_charged() {
    // 2,000 inserts at the front of a 100,000-element array shift 200 million elements.
    let doc = Value::Array((0..100_000).map(Value::from).collect());
    let ops = Value::Array(
        (0..2_000)
            .map(|i| json!({"op": "add", "path": "/0", "value": i}))
            .collect(),
    );
    let err = apply(&doc, &ops, &mut Budget::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded, "{err}");
    assert!(err.message.contains("awf.max_work_units"), "{err}");
}

/// Distinct values that an unkeyed hash of their bits could be made to collide on; with a keyed
/// hash the alignment stays linear, and the work charged says so.
#[test]
fn diff_work_is_linear_in_the_input() {
    let mut last = 0u64;
    for n in [10_000usize, 40_000] {
        let a: Vec<Value> = (0..n).map(|i| json!([i, i.to_string()])).collect();
        let mut b = a.clone();
        // Edits spread everywhere, so prefix and suffix trimming cannot help.
        for i in (0..n).step_by(97) {
            b[i] = json!(["edited", i]);
        }
        b.reverse();
        let mut budget = Budget::default();
        let ops = diff(&Value::Array(a), &Value::Array(b), &mut budget).unwrap();
        let per_element = budget.work_spent() / n as u64;
        println!(
            "diff of {n}-element arrays: {} ops, {} work units ({per_element}/element)",
            ops.len(),
            budget.work_spent()
        );
        if last > 0 {
            assert!(
                per_element <= last * 2,
                "work per element grew from {last} to {per_element}: not linear"
            );
        }
        last = per_element.max(1);
    }
}

#[test]
fn diff_and_merge_stop_at_the_work_limit() {
    let a = Value::Array((0..50_000).map(|i| json!({"i": i})).collect());
    let b = Value::Array((0..50_000).map(|i| json!({"i": i + 1})).collect());
    let small = Limits {
        max_work: 10_000,
        max_nodes: 1_000_000,
        max_bytes: 1 << 30,
    };
    let err = diff(&a, &b, &mut Budget::new(small)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded, "{err}");
    let base = json!({"x": a});
    let ours = json!({"x": b, "y": 1});
    let theirs = json!({"x": 1});
    let err = merge(
        &base,
        &ours,
        &theirs,
        MergeRule::Ours,
        &mut Budget::new(small),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded, "{err}");
}
