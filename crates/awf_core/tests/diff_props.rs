//! Properties of `awf_core::diff`: applying `diff(a, b)` to `a` gives `b` byte for byte in
//! canonical form, array edits stay small, and typical game-state patch sizes.

use awf_core::canonical::{canonical_bytes, canonical_string};
use awf_core::diff::{diff, diff_value};
use awf_core::json::push_token;
use awf_core::merge_patch::merge_patch_diff;
use awf_core::patch::{apply, ops_to_value, Op};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::time::Instant;

const KEYS: &[&str] = &["a", "b", "c", "d", "e/f", "~g"];
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "7",
    "1.0",
    "1.5",
    "-0.25",
    "2.50",
    "1e2",
    "100",
    "0.0",
    "123456789",
];
const STRINGS: &[&str] = &["", "a", "b", "x/y", "~", "héllo"];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(NUMBERS).prop_map(|t| serde_json::from_str(t).unwrap()),
        (-5i64..50).prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
    ]
}

fn doc() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..5).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// One edit: which container (by index into a walk of the tree), what to do, where, and
/// with what value.
type Mutation = (usize, u8, usize, Value);

fn containers(v: &Value, path: String, out: &mut Vec<String>) {
    match v {
        Value::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                containers(e, format!("{path}/{i}"), out);
            }
            out.push(path);
        }
        Value::Object(m) => {
            for (k, e) in m {
                containers(e, push_token(&path, k), out);
            }
            out.push(path);
        }
        _ => {}
    }
}

fn mutate(mut v: Value, muts: &[Mutation]) -> Value {
    for (which, kind, at, value) in muts {
        let mut found = Vec::new();
        containers(&v, String::new(), &mut found);
        if found.is_empty() {
            v = value.clone();
            continue;
        }
        let target = v.pointer_mut(&found[which % found.len()]).unwrap();
        match target {
            Value::Array(a) => {
                let len = a.len();
                match kind % 4 {
                    0 => a.insert(at % (len + 1), value.clone()),
                    1 if len > 0 => {
                        a.remove(at % len);
                    }
                    2 if len > 0 => a[at % len] = value.clone(),
                    3 if len > 1 => {
                        let e = a.remove(at % len);
                        a.insert((at / 7) % len, e);
                    }
                    _ => a.push(value.clone()),
                }
            }
            Value::Object(m) => {
                let key = KEYS[at % KEYS.len()];
                match kind % 3 {
                    0 => {
                        m.remove(key);
                    }
                    _ => {
                        m.insert(key.to_owned(), value.clone());
                    }
                }
            }
            _ => unreachable!("containers() lists only arrays and objects"),
        }
    }
    v
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (any::<usize>(), any::<u8>(), any::<usize>(), doc())
}

fn assert_round_trip(a: &Value, b: &Value) -> Result<(), TestCaseError> {
    let patch = diff_value(a, b, &mut awf_core::Budget::default()).unwrap();
    let patched = apply(a, &patch, &mut awf_core::Budget::default())
        .map_err(|e| TestCaseError::fail(format!("{a} -> {b}: patch {patch} failed: {e}")))?;
    prop_assert_eq!(
        canonical_bytes(&patched).unwrap(),
        canonical_bytes(b).unwrap(),
        "a={} b={} patch={}",
        a,
        b,
        patch
    );
    Ok(())
}

proptest! {
    // No regression files: integration tests have no lib.rs for proptest to anchor them to.
    #![proptest_config(ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn diff_round_trips_random_pairs(a in doc(), b in doc()) {
        assert_round_trip(&a, &b)?;
    }

    #[test]
    fn diff_round_trips_mutations(a in doc(), muts in prop::collection::vec(mutation(), 1..5)) {
        let b = mutate(a.clone(), &muts);
        assert_round_trip(&a, &b)?;
        assert_round_trip(&b, &a)?;
    }
}

fn item(i: usize) -> Value {
    json!({"id": i, "name": format!("item {i}"), "weight": (i % 13) as f64 / 2.0, "tags": ["x", i % 5]})
}

fn items(n: usize) -> Vec<Value> {
    (0..n).map(item).collect()
}

fn single_op(a: &Value, b: &Value) -> Op {
    let ops = diff(a, b, &mut awf_core::Budget::default()).unwrap();
    assert_eq!(ops.len(), 1, "expected one op, got {ops:?}");
    let patched = apply(a, &ops_to_value(&ops), &mut awf_core::Budget::default()).unwrap();
    assert_eq!(
        canonical_bytes(&patched).unwrap(),
        canonical_bytes(b).unwrap()
    );
    ops.into_iter().next().unwrap()
}

#[test]
fn one_insert_or_remove_in_1000_is_one_op() {
    for at in [0, 500, 1000] {
        let base = items(1000);
        let mut longer = base.clone();
        longer.insert(at, json!({"id": "new", "name": "fresh"}));
        let (a, b) = (json!({"inv": base}), json!({"inv": longer}));

        match single_op(&a, &b) {
            Op::Add { path, .. } => assert_eq!(path, format!("/inv/{at}")),
            other => panic!("insert at {at}: {other:?}"),
        }
        match single_op(&b, &a) {
            Op::Remove { path } => assert_eq!(path, format!("/inv/{at}")),
            other => panic!("remove at {at}: {other:?}"),
        }
    }
    // Removing an existing element (not just undoing an insertion).
    for at in [0, 500, 999] {
        let base = items(1000);
        let mut shorter = base.clone();
        shorter.remove(at);
        match single_op(&Value::Array(base), &Value::Array(shorter)) {
            Op::Remove { path } => assert_eq!(path, format!("/{at}")),
            other => panic!("remove at {at}: {other:?}"),
        }
    }
}

#[test]
fn one_changed_element_in_1000_touches_only_it() {
    for at in [0, 417, 999] {
        let a = Value::Array(items(1000));
        let mut b = a.clone();
        b[at]["name"] = json!("renamed");
        b[at]["tags"][1] = json!(99);
        b[at]["new"] = json!(true);
        let ops = diff(&a, &b, &mut awf_core::Budget::default()).unwrap();
        assert_eq!(ops.len(), 3, "{ops:?}");
        for op in &ops {
            assert!(op.path().starts_with(&format!("/{at}/")), "{op:?}");
        }
        let patched = apply(&a, &ops_to_value(&ops), &mut awf_core::Budget::default()).unwrap();
        assert_eq!(
            canonical_bytes(&patched).unwrap(),
            canonical_bytes(&b).unwrap()
        );

        // A scalar in place of an object is one replace of that element.
        let mut c = a.clone();
        c[at] = json!("gone");
        match single_op(&a, &c) {
            Op::Replace { path, .. } => assert_eq!(path, format!("/{at}")),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn big_unrelated_arrays_stay_bounded() {
    let a: Vec<Value> = (0..5000).map(|i| json!(i * 2)).collect();
    let b: Vec<Value> = (0..6000).map(|i| json!(format!("s{i}"))).collect();
    let (a, b) = (json!({"x": a}), json!({"x": b}));
    let t = Instant::now();
    let ops = diff(&a, &b, &mut awf_core::Budget::default()).unwrap();
    let took = t.elapsed();
    let patched = apply(&a, &ops_to_value(&ops), &mut awf_core::Budget::default()).unwrap();
    assert_eq!(
        canonical_bytes(&patched).unwrap(),
        canonical_bytes(&b).unwrap()
    );
    println!(
        "diff of unrelated 5,000 vs 6,000-element arrays: {} ops in {took:?}",
        ops.len()
    );
    // Nothing survives, so the array is replaced whole rather than element by element.
    assert_eq!(ops.len(), 1);

    // Many scattered edits past the alignment bound, with shared elements still present.
    let a: Vec<Value> = (0..4000).map(|i| json!(i)).collect();
    let b: Vec<Value> = (0..4000)
        .map(|i| if i % 3 == 0 { json!(-i) } else { json!(i) })
        .collect();
    let (a, b) = (Value::Array(a), Value::Array(b));
    let t = Instant::now();
    let ops = diff(&a, &b, &mut awf_core::Budget::default()).unwrap();
    let took = t.elapsed();
    let patched = apply(&a, &ops_to_value(&ops), &mut awf_core::Budget::default()).unwrap();
    assert_eq!(
        canonical_bytes(&patched).unwrap(),
        canonical_bytes(&b).unwrap()
    );
    println!(
        "diff of 4,000-element arrays with 1,334 scattered edits: {} ops in {took:?}",
        ops.len()
    );

    // Every element edited in place: past the edit-distance bound, pairs by index.
    let a: Vec<Value> = items(3000);
    let b: Vec<Value> = a
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e["weight"] = json!(-1);
            e
        })
        .collect();
    let (a, b) = (Value::Array(a), Value::Array(b));
    let ops = diff(&a, &b, &mut awf_core::Budget::default()).unwrap();
    assert_eq!(ops.len(), 3000);
    assert!(ops.iter().all(|op| op.path().ends_with("/weight")));
}

const LOCATIONS: [&str; 4] = ["square", "tavern", "forge", "gate"];
const MOODS: [&str; 3] = ["calm", "wary", "cheerful"];

/// A deterministic ~20 KB state shaped like a game session.
fn game_state() -> Value {
    game_state_scaled(1)
}

/// [`game_state`] with `scale` times as many NPCs, items and log lines.
fn game_state_scaled(scale: usize) -> Value {
    let npcs: Vec<Value> = (0..60 * scale)
        .map(|i| {
            json!({
                "id": format!("npc-{i:03}"),
                "name": format!("Villager {i}"),
                "location": LOCATIONS[i % 4],
                "pos": {"x": i * 3 % 50, "y": i * 7 % 50},
                "hp": 10 + i % 5,
                "mood": MOODS[i % 3],
                "flags": {"met": i % 2 == 0, "quest_giver": i % 9 == 0},
                "dialogue": [format!("Hello, traveller {i}."), "Nice weather today."]
            })
        })
        .collect();
    let inventory: Vec<Value> = (0..40 * scale)
        .map(|i| json!({"id": format!("it-{i}"), "name": format!("Item {i}"), "qty": 1 + i % 3, "weight": 0.5 + (i % 4) as f64}))
        .collect();
    let log: Vec<Value> = (0..60 * scale)
        .map(
            |i| json!({"turn": i, "text": format!("Turn {i}: something happened in the village.")}),
        )
        .collect();
    json!({
        "turn": 30,
        "player": {
            "name": "Ada", "hp": 42, "max_hp": 50, "gold": 117, "xp": 1234,
            "pos": {"x": 10, "y": 12, "location": "square"},
            "inventory": inventory,
            "quests": {"q1": {"state": "active", "step": 2}, "q2": {"state": "done", "step": 5}}
        },
        "npcs": npcs,
        "world": {"time": "evening", "weather": "rain", "flags": {"bridge_open": false, "festival": true}},
        "log": log
    })
}

fn report(label: &str, a: &Value, b: &Value) -> usize {
    let ops = diff(a, b, &mut awf_core::Budget::default()).unwrap();
    let patch = ops_to_value(&ops);
    let patched = apply(a, &patch, &mut awf_core::Budget::default()).unwrap();
    assert_eq!(
        canonical_bytes(&patched).unwrap(),
        canonical_bytes(b).unwrap()
    );
    let patch_bytes = canonical_string(&patch).unwrap().len();
    let merge = merge_patch_diff(a, b)
        .map(|m| format!("{} B", canonical_string(&m).unwrap().len()))
        .unwrap_or_else(|_| "n/a".into());
    println!(
        "patch size: {label}: {} ops, {patch_bytes} B JSON Patch (merge patch {merge}); state {} B",
        ops.len(),
        canonical_string(b).unwrap().len()
    );
    ops.len()
}

#[test]
fn typical_patch_sizes() {
    let a = game_state();
    let size = canonical_string(&a).unwrap().len();
    assert!((15_000..30_000).contains(&size), "state is {size} B");

    let mut b = a.clone();
    b["player"]["hp"] = json!(37);
    assert_eq!(report("one field changed (player hp)", &a, &b), 1);

    let mut b = a.clone();
    b["player"]["inventory"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "it-99", "name": "Silver key", "qty": 1, "weight": 0.1}));
    assert_eq!(report("item appended to inventory", &a, &b), 1);

    let mut b = a.clone();
    b["npcs"][17]["location"] = json!("gate");
    b["npcs"][17]["pos"] = json!({"x": 48, "y": 2});
    assert_eq!(report("NPC moved (location + x/y)", &a, &b), 3);

    let mut b = a.clone();
    let npc = b["npcs"].as_array_mut().unwrap().remove(5);
    b["npcs"].as_array_mut().unwrap().push(npc);
    report("NPC moved to the end of the npcs array", &a, &b);

    let mut b = a.clone();
    b["turn"] = json!(31);
    b["player"]["hp"] = json!(40);
    b["player"]["gold"] = json!(130);
    b["npcs"][3]["mood"] = json!("wary");
    b["player"]["inventory"].as_array_mut().unwrap().remove(2);
    b["log"]
        .as_array_mut()
        .unwrap()
        .push(json!({"turn": 30, "text": "Ada bought bread and argued with Villager 3."}));
    report("typical turn (6 edits)", &a, &b);
}

#[test]
fn numbers_equal_by_value_make_no_ops() {
    let a: Value = serde_json::from_str(r#"{"a": 1, "b": [1.5, 100], "c": {"d": 0}}"#).unwrap();
    let b: Value =
        serde_json::from_str(r#"{"a": 1.0, "b": [1.50, 1e2], "c": {"d": 0.0}}"#).unwrap();
    assert!(diff(&a, &b, &mut awf_core::Budget::default())
        .unwrap()
        .is_empty());
    let m = Map::new();
    assert_eq!(
        diff(
            &Value::Object(m.clone()),
            &Value::Object(m),
            &mut awf_core::Budget::default()
        )
        .unwrap(),
        Vec::<Op>::new()
    );
}

/// Timings for docs; meaningful only with `--release`: run with `--ignored --nocapture`.
#[test]
#[ignore]
fn timing_200kb_state() {
    use awf_core::patch::apply_in_place;
    let a = game_state_scaled(11);
    let mut b = a.clone();
    b["turn"] = json!(31);
    b["npcs"][300]["pos"] = json!({"x": 1, "y": 2});
    b["player"]["inventory"].as_array_mut().unwrap().remove(7);
    b["log"]
        .as_array_mut()
        .unwrap()
        .push(json!({"turn": 31, "text": "x"}));
    let size = canonical_string(&a).unwrap().len();
    let runs = 200;
    let t = Instant::now();
    let mut patch = Value::Null;
    for _ in 0..runs {
        patch = diff_value(&a, &b, &mut awf_core::Budget::default()).unwrap();
    }
    let diff_time = t.elapsed() / runs;
    let back = diff_value(&b, &a, &mut awf_core::Budget::default()).unwrap();
    let mut failing = back.clone();
    failing
        .as_array_mut()
        .unwrap()
        .push(json!({"op": "test", "path": "/turn", "value": -1}));
    let mut doc = a.clone();
    let t = Instant::now();
    for _ in 0..runs {
        apply_in_place(&mut doc, &patch, &mut awf_core::Budget::default()).unwrap();
        // A failing patch exercises the undo log; then revert for the next round.
        assert!(apply_in_place(&mut doc, &failing, &mut awf_core::Budget::default()).is_err());
        apply_in_place(&mut doc, &back, &mut awf_core::Budget::default()).unwrap();
    }
    let apply_time = t.elapsed() / runs / 3;
    let copy = a.clone();
    let t = Instant::now();
    for _ in 0..runs {
        assert!(awf_core::json::value_eq(&a, &copy));
    }
    let eq = t.elapsed() / runs;
    println!(
        "{size} B state, {} ops: diff {diff_time:?} (value_eq of the whole state {eq:?}); \
         apply_in_place {apply_time:?} per patch",
        patch.as_array().unwrap().len()
    );
}
